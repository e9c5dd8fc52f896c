"""Backends written for joblib, run by joblite's ``Parallel``; ``backend=`` instances and multiprocessing contexts.

A backend written to joblib's custom-backend guide (here: a subclass of
joblib's ``ParallelBackendBase`` on a ``ThreadPoolExecutor``, as in the
guide; one written from scratch without joblib, duck-typed; an older one
whose results are read with ``job.get()``; and joblib's own loky,
multiprocessing and threading backends registered in joblib's registry, as
ray's ``register_ray()`` registers its backend) gives the results in order,
raises task errors with their type, reports progress, returns generators,
runs nested calls and goes through joblib's lifecycle (configure,
start_call/stop_call, abort_everything, terminate).  ``backend=`` also takes
a joblite backend instance and a multiprocessing context.  Nothing here
asserts a duration.
"""

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import _parallel_funcs as funcs
import joblite
from joblite import Parallel, delayed, parallel_config, register_parallel_backend
from joblite.backends import BACKENDS, get_backend_factory

joblib = pytest.importorskip("joblib")
from joblib._parallel_backends import LokyBackend as JoblibLoky  # noqa: E402
from joblib._parallel_backends import MultiprocessingBackend as JoblibMultiprocessing  # noqa: E402
from joblib._parallel_backends import ThreadingBackend as JoblibThreading  # noqa: E402

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))


def squares(n):
    return [x * x for x in range(n)]


def process_name(_=None):
    return multiprocessing.current_process().name


class GuideBackend(joblib.ParallelBackendBase):
    """The minimal backend of joblib's custom-backend guide, recording what joblib's Parallel calls."""

    supports_retrieve_callback = True
    uses_threads = True
    supports_sharedmem = True

    def __init__(self, nesting_level=None, **backend_kwargs):
        super().__init__(nesting_level=nesting_level, **backend_kwargs)
        self.calls = []
        self.submitted = 0
        self._executor = None

    def configure(self, n_jobs=1, parallel=None, **backend_kwargs):
        self.calls.append("configure")
        self.parallel = parallel
        self.configure_kwargs = backend_kwargs
        n_jobs = self.effective_n_jobs(n_jobs)
        self._executor = ThreadPoolExecutor(n_jobs)
        return n_jobs

    def terminate(self):
        self.calls.append("terminate")
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def effective_n_jobs(self, n_jobs):
        return n_jobs

    def start_call(self):
        self.calls.append("start_call")

    def stop_call(self):
        self.calls.append("stop_call")

    def abort_everything(self, ensure_ready=True):
        self.calls.append(f"abort_everything(ensure_ready={ensure_ready})")

    def submit(self, func, callback):
        self.submitted += 1
        future = self._executor.submit(func)
        future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future):
        return future.result()


class ScratchBackend:
    """joblib's protocol written from scratch, without joblib: a thread pool with callbacks."""

    supports_retrieve_callback = True
    supports_sharedmem = True
    uses_threads = True
    default_n_jobs = 1
    nesting_level = 0

    def __init__(self):
        self.pool = None
        self.terminated = 0

    def effective_n_jobs(self, n_jobs):
        return n_jobs if n_jobs > 0 else os.cpu_count()

    def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, **kwargs):
        self.pool = ThreadPoolExecutor(self.effective_n_jobs(n_jobs))
        return self.effective_n_jobs(n_jobs)

    def submit(self, func, callback=None):
        future = self.pool.submit(func)
        future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, out):
        return out.result()

    def terminate(self):
        self.terminated += 1
        self.pool.shutdown()

    def abort_everything(self, ensure_ready=True):
        pass


class _Job:
    """A job of :class:`OldStyleBackend`: its result is read with ``get()``, as joblib does for such backends."""

    def __init__(self, future):
        self.future = future

    def get(self, timeout=None):
        return self.future.result(timeout)


class OldStyleBackend(ScratchBackend):
    """A backend without ``supports_retrieve_callback``: its callback only says that a job is done."""

    supports_retrieve_callback = False

    def submit(self, func, callback=None):
        future = self.pool.submit(func)
        future.add_done_callback(lambda _: callback(None))
        return _Job(future)


# Registered once for the module: in joblite's registry, and (the way ray's register_ray()
# and joblib-spark register theirs) in joblib's, under names joblite does not know.
register_parallel_backend("joblib-guide", GuideBackend)
register_parallel_backend("joblib-scratch", ScratchBackend)
joblib.register_parallel_backend("joblib-only-guide", GuideBackend)
joblib.register_parallel_backend("joblib-only-loky", JoblibLoky)
joblib.register_parallel_backend("joblib-only-multiprocessing", JoblibMultiprocessing)
joblib.register_parallel_backend("joblib-only-threading", JoblibThreading)

NAMES = [
    "joblib-guide",
    "joblib-scratch",
    "joblib-only-guide",
    "joblib-only-loky",
    "joblib-only-multiprocessing",
    "joblib-only-threading",
]
SPECS = NAMES + ["guide-instance", "old-style-instance"]


def make(spec):
    """A `backend=` value for `spec`: a registered name, or a joblib-protocol instance."""
    return {"guide-instance": GuideBackend, "old-style-instance": OldStyleBackend}.get(spec, lambda: spec)()


@pytest.fixture(autouse=True)
def _names_stay_out_of_joblites_registry():
    yield
    for name in ("joblib-only-guide", "joblib-only-loky", "joblib-only-multiprocessing", "joblib-only-threading"):
        assert name not in BACKENDS  # looked up in joblib's registry at each use


# -- results, errors, progress, generators ---------------------------------------------------
@pytest.mark.parametrize("return_as", ["list", "generator"])
@pytest.mark.parametrize("spec", SPECS)
def test_results_in_order(spec, return_as):
    results = Parallel(n_jobs=2, backend=make(spec), return_as=return_as)(delayed(funcs.square)(x) for x in range(200))
    assert list(results) == squares(200)


@pytest.mark.parametrize("spec", SPECS)
def test_generator_unordered_gives_every_result(spec):
    results = Parallel(n_jobs=2, backend=make(spec), return_as="generator_unordered")(
        delayed(funcs.square)(x) for x in range(100)
    )
    assert sorted(results) == squares(100)


@pytest.mark.parametrize("spec", SPECS)
def test_task_error_raised_with_its_type(spec):
    with pytest.raises(ValueError, match="fail_on refuses 7"):
        Parallel(n_jobs=2, backend=make(spec))(delayed(funcs.fail_on)(x, 7) for x in range(30))
    # the backend works again for the next call
    assert Parallel(n_jobs=2, backend=make(spec))(delayed(funcs.square)(x) for x in range(5)) == squares(5)


@pytest.mark.parametrize("spec", SPECS)
def test_progress_verbose_and_callback(spec, capfd):
    seen = []
    results = Parallel(
        n_jobs=2, backend=make(spec), verbose=1, callback=lambda index, result: seen.append((index, result))
    )([delayed(funcs.square)(x) for x in range(40)])
    assert results == squares(40)
    assert sorted(seen) == list(enumerate(squares(40)))
    err = capfd.readouterr().err
    assert "[Parallel(n_jobs=2)]: Done   40 out of 40 tasks" in err


@pytest.mark.parametrize("spec", ["joblib-only-loky", "joblib-only-multiprocessing"])
def test_joblib_process_backends_run_tasks_in_other_processes(spec):
    pids = Parallel(n_jobs=2, backend=spec, batch_size=1)(delayed(funcs.getpid)() for _ in range(20))
    assert os.getpid() not in pids


@pytest.mark.parametrize("spec", ["joblib-guide", "joblib-only-threading"])
def test_nested_calls_run_in_the_worker(spec):
    results = Parallel(n_jobs=2, backend=spec)(delayed(funcs.nested)(3) for _ in range(4))
    for (pid, thread), inner, _ in results:
        assert pid == os.getpid()  # a thread backend
        assert inner == [(pid, thread)] * 3  # sequentially, in the task's thread


def test_nested_calls_in_joblib_process_workers():
    results = Parallel(n_jobs=2, backend="joblib-only-loky")(delayed(funcs.nested)(3) for _ in range(2))
    for (pid, thread), inner, _ in results:
        assert pid != os.getpid()
        assert inner == [(pid, thread)] * 3


# -- joblib's lifecycle ----------------------------------------------------------------------
def test_lifecycle_of_a_call():
    backend = GuideBackend()
    Parallel(n_jobs=2, backend=backend)(delayed(funcs.square)(x) for x in range(10))
    assert backend.calls == ["configure", "start_call", "stop_call", "terminate"]
    # joblib's configure keyword arguments, and the Parallel attributes its backends read
    assert backend.configure_kwargs["max_nbytes"] == 1024**2
    assert backend.configure_kwargs["mmap_mode"] == "r"
    assert hasattr(backend.configure_kwargs["context"], "Pool")
    assert backend.parallel.n_jobs == 2 and isinstance(backend.parallel._id, str)
    assert backend.parallel._backend_kwargs["max_nbytes"] == 1024**2


def test_base_class_batch_size_of_one_is_honoured():
    # joblib's ParallelBackendBase.compute_batch_size() is 1: one submit per task, as in joblib
    backend = GuideBackend()
    Parallel(n_jobs=2, backend=backend)(delayed(funcs.square)(x) for x in range(50))
    assert backend.submitted == 50


def test_failed_call_aborts_then_terminates():
    backend = GuideBackend()
    with pytest.raises(ValueError):
        Parallel(n_jobs=2, backend=backend)(delayed(funcs.fail_on)(x, 3) for x in range(10))
    assert backend.calls == [
        "configure",
        "start_call",
        "abort_everything(ensure_ready=False)",
        "stop_call",
        "terminate",
    ]


def test_context_manager_configures_once_and_keeps_the_backend_ready():
    backend = GuideBackend()
    with Parallel(n_jobs=2, backend=backend) as parallel:
        assert parallel(delayed(funcs.square)(x) for x in range(5)) == squares(5)
        with pytest.raises(ValueError):
            parallel(delayed(funcs.fail_on)(x, 1) for x in range(5))
        assert parallel(delayed(funcs.square)(x) for x in range(3)) == squares(3)
        assert "terminate" not in backend.calls
    assert backend.calls == [
        "configure",
        "start_call",
        "stop_call",
        "start_call",
        "abort_everything(ensure_ready=True)",
        "stop_call",
        "start_call",
        "stop_call",
        "terminate",
    ]


def test_generator_left_early_aborts():
    backend = GuideBackend()
    results = Parallel(n_jobs=2, backend=backend, return_as="generator")(delayed(funcs.square)(x) for x in range(100))
    assert next(results) == 0
    results.close()
    assert backend.calls[-3:] == ["abort_everything(ensure_ready=False)", "stop_call", "terminate"]


def test_one_worker_runs_in_the_caller():
    backend = GuideBackend()
    pids = Parallel(n_jobs=1, backend=backend)(delayed(funcs.where)() for _ in range(5))
    assert pids == [(os.getpid(), threading.get_ident())] * 5
    assert backend.submitted == 0


# -- finding backends ------------------------------------------------------------------------
def test_parallel_config_with_a_joblib_name_an_instance_and_a_joblite_instance():
    with parallel_config(backend="joblib-only-guide", n_jobs=2):
        assert Parallel()(delayed(funcs.square)(x) for x in range(10)) == squares(10)
    backend = GuideBackend()
    with parallel_config(backend=backend, n_jobs=2):
        assert Parallel()(delayed(funcs.square)(x) for x in range(10)) == squares(10)
    assert backend.submitted == 10
    threads = get_backend_factory("threading")()
    with parallel_config(backend=threads, n_jobs=2):
        where = Parallel()(delayed(funcs.where)() for _ in range(20))
    assert {pid for pid, _ in where} == {os.getpid()}
    assert joblite.effective_n_jobs(3) == 3


def test_joblite_backend_instance():
    threads = get_backend_factory("threading")()
    pids = Parallel(n_jobs=2, backend=threads)(delayed(funcs.getpid)() for _ in range(10))
    assert set(pids) == {os.getpid()}
    loky = get_backend_factory("loky")()
    pids = Parallel(n_jobs=2, backend=loky)(delayed(funcs.getpid)() for _ in range(10))
    assert os.getpid() not in pids


def test_unknown_backend_names_and_objects_raise_value_error():
    with pytest.raises(ValueError, match="'no-such-backend' is not a registered parallel backend"):
        Parallel(backend="no-such-backend")
    with pytest.raises(ValueError, match="no-such-backend"):
        parallel_config(backend="no-such-backend")
    with pytest.raises(ValueError, match="object"):
        Parallel(backend=object())


def test_a_factory_returning_no_backend_raises_value_error():
    register_parallel_backend("joblite-test-not-a-backend", lambda **kwargs: 42)
    try:
        with pytest.raises(ValueError, match="42"):
            Parallel(n_jobs=2, backend="joblite-test-not-a-backend")
    finally:
        del BACKENDS["joblite-test-not-a-backend"]


def test_joblib_is_imported_only_for_names_joblite_does_not_know():
    script = textwrap.dedent("""
        import sys
        from joblite import Parallel, delayed, parallel_config
        Parallel(n_jobs=2, backend="threading")(delayed(abs)(-x) for x in range(5))
        with parallel_config(backend="sequential"):
            Parallel()(delayed(abs)(-x) for x in range(5))
        assert "joblib" not in sys.modules, "imported for a joblite name"
        try:
            Parallel(backend="no-such-backend")
        except ValueError:
            pass
        assert "joblib" in sys.modules, "not looked up in joblib's registry"
    """)
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)


# -- multiprocessing contexts ----------------------------------------------------------------
@pytest.mark.parametrize(
    "method, worker_name",
    [("spawn", "SpawnPoolWorker"), ("forkserver", "ForkServerPoolWorker"), ("fork", "ForkPoolWorker")],
)
def test_multiprocessing_context_starts_processes_with_its_method(method, worker_name):
    context = multiprocessing.get_context(method)
    names = Parallel(n_jobs=2, backend=context)(delayed(process_name)() for _ in range(6))
    assert all(name.startswith(worker_name) for name in names), names
    assert Parallel(n_jobs=2, backend=context)(delayed(funcs.square)(x) for x in range(50)) == squares(50)
    with pytest.raises(ValueError, match="fail_on refuses 2"):
        Parallel(n_jobs=2, backend=context)(delayed(funcs.fail_on)(x, 2) for x in range(10))


def test_multiprocessing_context_memmaps_large_arrays():
    np = pytest.importorskip("numpy")
    data = np.arange(300_000, dtype=np.float64)  # 2.4 MB: above max_nbytes
    context = multiprocessing.get_context("spawn")
    with Parallel(n_jobs=2, backend=context) as parallel:
        kinds = parallel(delayed(type)(data) for _ in range(2))
        totals = parallel(delayed(np.sum)(data) for _ in range(2))
    assert all(kind is np.memmap for kind in kinds)
    assert totals == [data.sum()] * 2


def test_multiprocessing_context_with_a_timeout_raises(tmp_path):
    context = multiprocessing.get_context("fork")
    counter = str(tmp_path / "started")
    with pytest.raises(multiprocessing.TimeoutError):
        Parallel(n_jobs=2, backend=context, timeout=0.5)(
            delayed(funcs.count_and_sleep)(counter, x, 30) for x in range(2)
        )


# -- timeouts on dask ------------------------------------------------------------------------
def test_dask_timeout_is_both_timeout_errors(tmp_path):
    distributed = pytest.importorskip("distributed")
    counter = str(tmp_path / "started")
    import dask

    with (
        dask.config.set({"temporary-directory": str(tmp_path)}),
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            local_directory=str(tmp_path),
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        with pytest.raises(multiprocessing.TimeoutError) as info:
            Parallel(backend="dask", client=client, timeout=0.5)(
                delayed(funcs.count_and_sleep)(counter, x, 2) for x in range(2)
            )
        assert isinstance(info.value, TimeoutError)
        assert "did not finish within timeout=0.5" in str(info.value)
