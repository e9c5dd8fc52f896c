"""joblib code run unchanged on joblite: the behaviours joblib's example gallery and user guide rely on.

Each test is one thing a joblib script does (a memmap filled by workers, a
cached function called twice, a Parallel subclass drawing a tqdm bar, a
custom backend...), written against ``joblite`` with joblib's spelling of the
call.  ``/work/notes/gallery_survey.md`` maps each test to the example or
guide section it comes from.  Worker functions live at module level: workers
import this module by name (``tests/`` is on ``sys.path``, and loky hands
``sys.path`` to its workers).
"""

import bz2
import gzip
import io
import lzma
import multiprocessing
import os
import pickle
import time

import numpy as np
import pytest

import joblite
from joblite import Memory, Parallel, ParallelBackendBase, delayed, dump, load, parallel_config

# ---------------------------------------------------------------- worker functions


def fill_slot(out, idx, value):
    """Write one slot of a shared output array, as the parallel_memmap example does."""
    out[idx] = value


def slice_mean(data, start, stop):
    return float(data[start:stop].mean())


def is_memmap(obj):
    return isinstance(obj, np.memmap)


def seeded_draw(seed):
    return np.random.RandomState(seed).randint(10, size=5).tolist()


def unseeded_draw(_):
    return np.random.randint(1 << 30, size=5).tolist()


def getenv(name):
    return os.environ.get(name)


def set_env_flag(value):
    os.environ["JOBLITE_DROPIN_INIT"] = value


def touch_and_take_column(marker_dir, data, column):
    """A costly step that leaves one marker file per real computation (workers are other processes)."""
    with open(os.path.join(marker_dir, f"{column}-{os.getpid()}-{time.monotonic_ns()}"), "w"):
        pass
    return data[:, column]


def add(a, b=2):
    return a + b


def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"bad value {x}")
    return x


def markers(folder):
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------- public names


def test_every_name_in_joblib_all_exists_in_joblite():
    joblib = pytest.importorskip("joblib")
    missing = [name for name in joblib.__all__ if not hasattr(joblite, name)]
    assert missing == []


def test_backend_base_and_loky_backend_import_from_parallel_module():
    # custom_parallel_backend.rst subclasses ParallelBackendBase and returns LokyBackend from
    # get_nested_backend; joblib exposes both in joblib.parallel.
    from joblite.parallel import LokyBackend
    from joblite.parallel import ParallelBackendBase as Base

    assert Base is ParallelBackendBase
    assert issubclass(LokyBackend, ParallelBackendBase)


# ---------------------------------------------------------------- memmaps and workers (parallel_memmap, parallel_numpy)


def test_workers_fill_slices_of_a_w_plus_memmap_and_the_caller_sees_them(tmp_path):
    out = np.memmap(tmp_path / "out.mmap", dtype=np.float64, shape=8, mode="w+")
    Parallel(n_jobs=2)(delayed(fill_slot)(out, i, i * 1.5) for i in range(8))
    np.testing.assert_array_equal(np.asarray(out), np.arange(8) * 1.5)
    del out


def test_workers_write_into_an_r_plus_memmap_from_load(tmp_path):
    filename = str(tmp_path / "data.pkl")
    dump(np.zeros(6), filename)
    data = load(filename, mmap_mode="r+")
    Parallel(n_jobs=2)(delayed(fill_slot)(data, i, i + 1.0) for i in range(6))
    np.testing.assert_array_equal(np.asarray(data), np.arange(1.0, 7.0))
    del data
    np.testing.assert_array_equal(load(filename), np.arange(1.0, 7.0))


def test_read_only_memmap_from_load_gives_the_same_results_in_workers(tmp_path):
    data = np.random.RandomState(0).random_sample(20_000)
    filename = str(tmp_path / "data.pkl")
    dump(data, filename)
    mapped = load(filename, mmap_mode="r")
    bounds = [(start, start + 5000) for start in range(0, 15_000, 2500)]
    expected = [slice_mean(data, a, b) for a, b in bounds]
    got = Parallel(n_jobs=2)(delayed(slice_mean)(mapped, a, b) for a, b in bounds)
    assert got == expected
    del mapped


def test_arrays_above_a_float_max_nbytes_reach_workers_as_memmaps():
    got = Parallel(n_jobs=2, max_nbytes=1e6)(delayed(is_memmap)(np.ones(int(n))) for n in (1e2, 1e4, 1e6))
    assert got == [False, False, True]


def test_memmap_slices_and_ndarray_views_of_a_memmap_reach_workers_as_memmaps(tmp_path):
    filename = str(tmp_path / "large.pkl")
    dump(np.arange(1000.0), filename)
    large = load(filename, mmap_mode="r+")
    small = large[2:5]
    view = np.asarray(small)
    assert Parallel(n_jobs=2, max_nbytes=None)(delayed(is_memmap)(a) for a in (large, small, view)) == [True] * 3
    del large, small, view


# ---------------------------------------------------------------- progress (parallel_with_tqdm)


class RecordingParallel(Parallel):
    """The tqdm recipe's shape: an extra __call__ argument and print_progress reading the counters."""

    def __call__(self, iterable, n_tasks):
        self.n_tasks = n_tasks
        self.seen = []
        return super().__call__(iterable)

    def print_progress(self):
        self.seen.append(self.n_completed_tasks)


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_a_parallel_subclass_overriding_print_progress_sees_every_task_complete(backend):
    p = RecordingParallel(n_jobs=2, backend=backend)
    out = p((delayed(add)(i) for i in range(7)), 7)
    assert out == [i + 2 for i in range(7)]
    assert p.seen and p.seen[-1] == 7
    assert p.seen == sorted(p.seen)
    assert p.n_dispatched_tasks == 7
    assert 1 <= p.n_dispatched_batches <= 7


def test_a_tqdm_wrapped_input_iterable_is_consumed_with_pre_dispatch():
    tqdm = pytest.importorskip("tqdm")
    bar_output = io.StringIO()
    p = Parallel(n_jobs=2, pre_dispatch=4, batch_size=1)
    out = p(delayed(add)(t) for t in tqdm.tqdm([7, 2, 3, 5], file=bar_output))
    assert out == [9, 4, 5, 7]


# ---------------------------------------------------------------- return_as (parallel_generator)


def test_generator_return_as_yields_in_order_and_unordered_yields_the_same_set():
    gen = Parallel(n_jobs=2, return_as="generator")(delayed(add)(i) for i in range(10))
    assert not isinstance(gen, list)
    assert list(gen) == [i + 2 for i in range(10)]
    unordered = Parallel(n_jobs=2, return_as="generator_unordered")(delayed(add)(i) for i in range(10))
    assert sorted(unordered) == [i + 2 for i in range(10)]


def test_generator_results_can_be_reduced_one_by_one():
    total = 0
    for block in Parallel(n_jobs=2, return_as="generator")(delayed(np.full)((100, 10), i) for i in range(6)):
        total = total + block
    np.testing.assert_array_equal(total, np.full((100, 10), 15))


# ---------------------------------------------------------------- random state (parallel_random_state)


@pytest.mark.parametrize("backend", ["loky", "threading", "multiprocessing"])
def test_seeded_tasks_give_the_same_vectors_in_every_backend_and_run(backend):
    seeds = [[i, 42] for i in range(5)]
    expected = [seeded_draw(s) for s in seeds]
    assert Parallel(n_jobs=2, backend=backend)(delayed(seeded_draw)(s) for s in seeds) == expected
    assert Parallel(n_jobs=2, backend=backend)(delayed(seeded_draw)(s) for s in seeds) == expected


def test_unseeded_numpy_draws_differ_between_loky_tasks():
    vectors = Parallel(n_jobs=2, backend="loky")(delayed(unseeded_draw)(i) for i in range(4))
    assert len({tuple(v) for v in vectors}) == 4


# ---------------------------------------------------------------- Memory (memory_basic_usage, memory.rst)


def test_a_cached_function_with_a_numpy_argument_is_not_recomputed(tmp_path):
    calls = []

    def costly(data, column_index=0):
        calls.append(column_index)
        return data[column_index]

    cached = Memory(tmp_path, verbose=0).cache(costly)
    data = np.random.RandomState(42).randn(1000, 10)
    first = cached(data)
    second = cached(data.copy())
    np.testing.assert_array_equal(first, data[0])
    np.testing.assert_array_equal(second, data[0])
    assert calls == [0]
    cached(data, 3)
    assert calls == [0, 3]


def test_a_function_cached_inside_a_method_is_computed_once(tmp_path):
    # memory_basic_usage.py wraps a module-level function with memory.cache at every method call.
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    memory = Memory(tmp_path / "cache", verbose=0)

    class Algorithm:
        def __init__(self, column=0):
            self.column = column

        def transform(self, data):
            return memory.cache(touch_and_take_column, ignore=["marker_dir"])(str(marker_dir), data, self.column)

    data = np.arange(12.0).reshape(3, 4)
    algo = Algorithm(column=1)
    np.testing.assert_array_equal(algo.transform(data), data[:, 1])
    np.testing.assert_array_equal(algo.transform(data), data[:, 1])
    assert len(markers(marker_dir)) == 1
    memory.clear(warn=False)
    algo.transform(data)
    assert len(markers(marker_dir)) == 2


def test_nested_parallel_and_memory_checkpoint_is_reused_across_rounds(tmp_path):
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    memory = Memory(tmp_path / "cache", verbose=0)
    cached = memory.cache(touch_and_take_column, ignore=["marker_dir"])
    data = np.random.RandomState(0).randn(500, 4)
    first = Parallel(n_jobs=2)(delayed(cached)(str(marker_dir), data, c) for c in range(4))
    assert len(markers(marker_dir)) == 4
    second = Parallel(n_jobs=2)(delayed(cached)(str(marker_dir), data, c) for c in range(4))
    assert len(markers(marker_dir)) == 4
    for a, b, c in zip(first, second, range(4)):
        np.testing.assert_array_equal(a, data[:, c])
        np.testing.assert_array_equal(b, data[:, c])


def test_cached_numpy_ufunc_with_mmap_mode_returns_a_memmap_on_the_second_call(tmp_path):
    square = Memory(tmp_path, mmap_mode="r", verbose=0).cache(np.square)
    a = np.vander(np.arange(3)).astype(float)
    first = square(a)
    second = square(a)
    assert isinstance(second, np.memmap)
    np.testing.assert_array_equal(first, a**2)
    np.testing.assert_array_equal(second, a**2)
    del second


def test_memory_log_shows_the_call_as_written(tmp_path, capsys):
    cached = Memory(tmp_path, verbose=1).cache(add)
    cached(1)
    out = capsys.readouterr().out
    assert "[Memory] Calling" in out
    assert "add(1)\n" in out


def test_memorized_func_built_directly_from_a_function_and_a_location(tmp_path):
    from joblite.memory import MemorizedFunc

    calls = []

    def double(x):
        calls.append(x)
        return 2 * x

    func = MemorizedFunc(double, str(tmp_path))
    assert func(3) == 6
    assert func(3) == 6
    assert calls == [3]


def test_memory_cache_returns_the_classes_joblite_memory_names(tmp_path):
    # memory.rst checks type(func) against joblib.memory.MemorizedFunc.
    import joblite.memory

    func = Memory(tmp_path, verbose=0).cache(add)
    assert type(func) is joblite.memory.MemorizedFunc
    assert type(func.call_and_shelve(1)) is joblite.memory.MemorizedResult


def test_memorized_result_repr_names_location_function_and_arguments(tmp_path):
    result = Memory(tmp_path, verbose=0).cache(add).call_and_shelve(1)
    assert result.get() == 3
    text = repr(result)
    assert text.startswith("MemorizedResult(location=") and str(tmp_path) in text and "add" in text
    assert result.args_id in text
    result.clear()


# ---------------------------------------------------------------- serialization (serialization_and_wrappers)


def test_wrap_non_picklable_objects_makes_a_lambda_picklable_by_stdlib_pickle():
    wrapped = joblite.wrap_non_picklable_objects(lambda x: 2 * x)
    assert pickle.loads(pickle.dumps(wrapped))(21) == 42
    assert Parallel(n_jobs=2)(delayed(wrapped)(i) for i in range(3)) == [0, 2, 4]


def test_wrap_non_picklable_objects_as_a_decorator_under_delayed():
    @delayed
    @joblite.wrap_non_picklable_objects
    def double(i, *args):
        return 2 * i

    assert Parallel(n_jobs=2)(double(21, list(range(1000))) for _ in range(2)) == [42, 42]


def test_locally_defined_functions_run_in_processes_with_a_large_argument():
    def func_async(i, *args):
        return 2 * i

    big = list(range(100_000))
    assert Parallel(n_jobs=2)(delayed(func_async)(21, big) for _ in range(2)) == [42, 42]


# ---------------------------------------------------------------- persistence (compressors_comparison, persistence.rst)


COMPRESS_VALUES = [0, 3, True, "zlib", ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3), "lz4", ("lz4", 3)]


@pytest.mark.parametrize("compress", COMPRESS_VALUES, ids=repr)
def test_dump_load_round_trip_through_an_open_file_for_each_compress_value(tmp_path, compress):
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "duration": rng.randint(0, 100, 2000),
            "src_bytes": rng.rand(2000),
            "protocol_type": rng.choice(["tcp", "udp", "icmp"], 2000),
        }
    )
    path = tmp_path / "data.joblib"
    with open(path, "wb") as f:
        dump(frame, f, compress=compress)
    with open(path, "rb") as f:
        loaded = load(f)
    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.parametrize("suffix", [".z", ".gz", ".bz2", ".lzma", ".xz", ".lz4"])
def test_dump_picks_the_compressor_from_the_file_extension(tmp_path, suffix):
    obj = {"a": np.arange(100), "b": [1, 2, 3]}
    filename = str(tmp_path / f"obj.pkl{suffix}")
    assert dump(obj, filename) == [filename]
    loaded = load(filename)
    np.testing.assert_array_equal(loaded["a"], obj["a"])
    assert loaded["b"] == obj["b"]


@pytest.mark.parametrize("opener", [gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile], ids=lambda o: o.__name__)
def test_dump_load_into_a_user_compressed_file_object(tmp_path, opener):
    arr = np.arange(1000.0)
    path = str(tmp_path / "obj")
    with opener(path, "wb") as fo:
        dump(arr, fo)
    with opener(path, "rb") as fo:
        np.testing.assert_array_equal(load(fo), arr)


def test_load_with_r_plus_mmap_mode_edits_the_file(tmp_path):
    filename = str(tmp_path / "a.pkl")
    dump(np.zeros(4), filename)
    mapped = load(filename, mmap_mode="r+")
    assert isinstance(mapped, np.memmap)
    mapped[1] = 5
    mapped.flush()
    del mapped
    np.testing.assert_array_equal(load(filename), [0, 5, 0, 0])


# ---------------------------------------------------------------- backends (custom_parallel_backend.rst, parallel.rst)


class ExecutorBackend(ParallelBackendBase):
    """custom_parallel_backend.rst's minimal backend: submit(func, callback) on a thread pool."""

    supports_retrieve_callback = True

    def __init__(self, endpoint=None, api_key=None, nesting_level=0):
        super().__init__(nesting_level=nesting_level)
        self.endpoint = endpoint
        self.api_key = api_key

    def configure(self, n_jobs=1, parallel=None, **backend_kwargs):
        from concurrent.futures import ThreadPoolExecutor

        n_jobs = self.effective_n_jobs(n_jobs)
        self._executor = ThreadPoolExecutor(n_jobs)
        return n_jobs

    def terminate(self):
        self._executor.shutdown()
        self._executor = None

    def effective_n_jobs(self, n_jobs):
        return 2 if n_jobs in (None, -1) else n_jobs

    def submit(self, func, callback):
        future = self._executor.submit(func)
        future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future):
        return future.result()


def test_a_custom_backend_with_submit_and_callback_runs_the_tasks():
    joblite.register_parallel_backend("dropin_custom", ExecutorBackend)
    with parallel_config("dropin_custom"):
        assert Parallel(2)(delayed(add)(i) for i in range(10)) == [i + 2 for i in range(10)]


def test_parallel_config_passes_extra_arguments_to_the_backend_constructor():
    made = []

    class RecordingBackend(ExecutorBackend):
        def __init__(self, endpoint, api_key, nesting_level=0):
            super().__init__(endpoint, api_key, nesting_level)
            made.append((endpoint, api_key))

    joblite.register_parallel_backend("dropin_kwargs", RecordingBackend)
    with parallel_config(backend="dropin_kwargs", endpoint="http://compute", api_key="42"):
        assert Parallel(n_jobs=2)(delayed(add)(i) for i in range(4)) == [2, 3, 4, 5]
    assert made and set(made) == {("http://compute", "42")}


def test_inner_max_num_threads_reaches_loky_workers():
    with parallel_config(backend="loky", inner_max_num_threads=2):
        assert Parallel(n_jobs=2)(delayed(getenv)("OMP_NUM_THREADS") for _ in range(2)) == ["2", "2"]


def test_loky_initializer_and_initargs_from_parallel_config_run_in_workers():
    with parallel_config(backend="loky", initializer=set_env_flag, initargs=("yes",)):
        got = Parallel(n_jobs=2)(delayed(getenv)("JOBLITE_DROPIN_INIT") for _ in range(4))
    assert got == ["yes"] * 4


def test_loky_env_option_reaches_the_workers_and_unknown_options_are_named():
    with parallel_config(backend="loky", env={"JOBLITE_DROPIN_ENV": "set"}):
        assert Parallel(n_jobs=2)(delayed(getenv)("JOBLITE_DROPIN_ENV") for _ in range(2)) == ["set", "set"]
    with pytest.raises(TypeError, match="unknown option.*no_such_option"):
        Parallel(n_jobs=2, backend="loky", no_such_option=1)


def test_maxtasksperchild_on_a_multiprocessing_context_gives_each_batch_a_fresh_worker():
    # joblib's 'multiprocessing' backend is a multiprocessing.Pool; joblite's runs on loky,
    # which has no such option: a context gives the pool (see the differences page).
    with parallel_config(backend=multiprocessing.get_context("spawn"), maxtasksperchild=1):
        pids = Parallel(n_jobs=2, batch_size=1)(delayed(os.getpid)() for _ in range(4))
    assert len(set(pids)) == 4
    with pytest.raises(TypeError, match="maxtasksperchild"):
        Parallel(n_jobs=2, backend="multiprocessing", maxtasksperchild=1)


def test_require_sharedmem_lets_tasks_mutate_a_shared_object():
    shared = set()
    assert Parallel(n_jobs=2, require="sharedmem")(delayed(shared.add)(i) for i in range(5)) == [None] * 5
    assert shared == set(range(5))


def test_parallel_as_a_context_manager_reuses_its_workers():
    with Parallel(n_jobs=2) as parallel:
        first = set(parallel(delayed(os.getpid)() for _ in range(4)))
        second = set(parallel(delayed(os.getpid)() for _ in range(4)))
    assert os.getpid() not in first
    assert len(first | second) <= 2


def test_a_timeout_is_a_multiprocessing_timeout_error():
    with pytest.raises(multiprocessing.TimeoutError):
        Parallel(n_jobs=2, backend="threading", timeout=0.1)(delayed(time.sleep)(0.6) for _ in range(2))


def test_a_task_error_is_raised_with_its_own_type_and_message():
    with pytest.raises(ValueError, match="bad value 3"):
        Parallel(n_jobs=2)(delayed(fail_on)(i, 3) for i in range(6))


def test_verbose_progress_at_50_and_above_goes_to_stdout(capsys):
    Parallel(n_jobs=2, backend="threading", verbose=100)(delayed(add)(i) for i in range(3))
    captured = capsys.readouterr()
    assert "[Parallel(n_jobs=2)]: Done" in captured.out
    assert "Using backend" in captured.out


def test_dask_backend_runs_a_loop_on_a_local_cluster():
    distributed = pytest.importorskip("distributed")
    # distributed_backend_simple.py: the Client made last is the default one, found by backend="dask".
    with (
        distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):
        with parallel_config(backend="dask"):
            out = Parallel(verbose=0)(delayed(add)(i) for i in range(10))
    assert out == [i + 2 for i in range(10)]
