"""The seeded workloads (joblite.bench.workloads) that ``python -m joblite bench`` and asv share."""

import numpy as np
import pytest

import joblite
from joblite.bench import workloads

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent


@pytest.mark.parametrize(
    "build, dtype",
    [
        (workloads.random_f64, np.float64),
        (workloads.smooth_f64, np.float64),
        (workloads.small_ints, np.int64),
        (workloads.image_f32, np.float32),
    ],
)
def test_arrays_have_the_size_asked_and_the_same_values_every_time(build, dtype):
    a = build(4 << 20)
    assert a.dtype == dtype and a.nbytes == 4 << 20
    np.testing.assert_array_equal(a, build(4 << 20))


def test_the_image_is_square_quantised_to_an_8_bit_scale():
    image = workloads.image_f32(4 << 20)
    assert image.shape == (1024, 1024)
    assert image.min() >= 0 and image.max() <= 1
    np.testing.assert_array_equal(image * 256, np.rint(image * 256))


def test_objects_are_seeded():
    dicts = workloads.small_dicts(100)
    assert dicts == workloads.small_dicts(100) and len(dicts) == 100
    assert set(dicts[0]) == {"id", "name", "score", "tags"}
    assert workloads.random_floats(10) == workloads.random_floats(10)
    table = workloads.str_int_dict(50)
    assert table == workloads.str_int_dict(50) and sorted(table.values()) == list(range(50))


def test_hash_functions_agree_and_an_unknown_one_is_named():
    obj = workloads.small_dicts(10)
    digests = {
        workloads.hash_function(impl)(obj)
        for impl in ("joblite", "ext", "pure")
        if workloads.hash_function(impl) is not None
    }
    assert digests == {joblite.hash(obj)}
    with pytest.raises(ValueError, match="'md5'"):
        workloads.hash_function("md5")


@pytest.mark.parametrize("impl", ["joblite", "numpy", "joblib", "pickle"])
def test_each_persistence_implementation_reads_what_it_wrote(impl, tmp_path):
    entry = workloads.persistence_impls()[impl]
    value = workloads.random_f64(1 << 16)
    path = str(tmp_path / ("value" + entry.suffix))
    entry.dump(value, path)
    np.testing.assert_array_equal(entry.load(path), value)
    if entry.load_mmap is not None:
        mapped = entry.load_mmap(path)
        assert isinstance(mapped, np.memmap)
        np.testing.assert_array_equal(mapped, value)
        del mapped


def test_compressed_writers_compress(tmp_path):
    value = workloads.small_ints(1 << 20)
    for impl, entry in workloads.compressed_impls().items():
        path = tmp_path / (impl.replace(" ", "-") + entry.suffix)
        entry.dump(value, str(path))
        assert path.stat().st_size < value.nbytes / 2, impl
        np.testing.assert_array_equal(entry.load(str(path)), value)


def test_cached_functions_count_the_calls_that_really_ran(tmp_path):
    func = joblite.Memory(str(tmp_path), verbose=0).cache(workloads.memory_small)
    args, kwargs = workloads.SMALL_ARGS
    before = workloads.MEMORY_CALLS["small"]
    assert func(*args, **kwargs) == (1, 2.0, "abc", 3)
    assert func(*args, **kwargs) == (1, 2.0, "abc", 3)  # a hit
    assert workloads.MEMORY_CALLS["small"] == before + 1


@pytest.mark.parametrize("lib_name", ["joblite", "joblib"])
def test_parallel_calls_compute_what_the_loop_computes(lib_name):
    lib = workloads.parallel_impls()[lib_name]
    assert lib.__name__ == lib_name
    assert workloads.tiny_tasks_call(lib, 50, n_jobs=1)() == workloads.tiny_tasks_loop(50)()
    a = workloads.random_f64(1 << 16)
    assert sum(workloads.array_argument_call(lib, a, 4, n_jobs=1)()) == pytest.approx(a.sum())
    results = workloads.array_results_call(lib, 3, 5, n_jobs=1)()
    assert [r.tolist() for r in results] == [[float(i)] * 5 for i in range(3)]
    assert workloads.busy_tasks_call(lib, 2, n_jobs=1)() == [workloads.BUSY_SECONDS] * 2
