"""Parallel and delayed: the behaviour users rely on, with real worker processes and threads.

Results equal a plain loop on every backend; joblib's ``n_jobs`` semantics;
``prefer``/``require``; ``parallel_config`` (thread-local, nestable) and its
deprecated alias; a custom backend made from the documented base class;
``return_as`` (ordered and completion-order generators, early break cancels);
context managers reusing workers; ``__main__`` functions, lambdas and
closures in processes; nested calls and BLAS thread limits in workers;
exceptions; bad arguments; progress (callback, verbose, bars); batching; and
the compiled and pure twins of the task kernels agreeing.

Tasks that must wait for the test (to prove a result arrived before others
finished) wait for a flag with a generous limit (``funcs.WAIT_SECONDS``) and
report whether they saw it, so that a broken implementation fails instead of
hanging.  Nothing here asserts a duration.
"""

import functools
import inspect
import io
import itertools
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import uuid
from concurrent.futures import Future

import pytest

import _parallel_funcs as funcs
import joblite
from joblite import (
    Parallel,
    ParallelBackendBase,
    cpu_count,
    delayed,
    effective_n_jobs,
    parallel_backend,
    parallel_config,
    register_parallel_backend,
)
from joblite.backends import BACKENDS, default_backend_name, get_backend_factory

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
BACKEND_NAMES = ["loky", "threading", "sequential", "multiprocessing"]
PROCESS_BACKENDS = ["loky", "multiprocessing"]


@pytest.fixture(scope="module", autouse=True)
def stop_worker_processes():
    """The loky workers the module started end with it (they are otherwise kept for reuse)."""
    yield
    import loky

    loky.get_reusable_executor().shutdown(wait=True, kill_workers=True)


class RecordingBackend(ParallelBackendBase):
    """A backend written from the documented base class only: each batch runs inline in a Future.

    Records the ``n_jobs`` it is configured with and how many tasks each
    submitted batch held (from the results of ``batch()``).
    """

    supports_sharedmem = True
    instances = []

    def __init__(self, **backend_kwargs):
        super().__init__(**backend_kwargs)
        self.configured = []
        self.batch_sizes = []
        self.stops = 0
        RecordingBackend.instances.append(self)

    def configure(self, n_jobs, parallel):
        self.configured.append(n_jobs)
        return self.effective_n_jobs(n_jobs)

    def submit(self, batch):
        future = Future()
        try:
            results, seconds = batch()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            self.batch_sizes.append(len(results))
            future.set_result((results, seconds))
        return future

    def stop(self):
        self.stops += 1


@pytest.fixture
def recording():
    """The name of a freshly registered RecordingBackend; unregistered afterwards."""
    name = f"recording-{uuid.uuid4().hex[:8]}"
    RecordingBackend.instances.clear()
    register_parallel_backend(name, RecordingBackend)
    yield name
    BACKENDS.pop(name, None)
    RecordingBackend.instances.clear()


def squares(n):
    return [x * x for x in range(n)]


# -- results equal a plain loop ------------------------------------------------------------
@pytest.mark.parametrize("n_jobs", [1, 2, -1, -2])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_results_equal_a_loop(backend, n_jobs):
    parallel = Parallel(n_jobs=n_jobs, backend=backend)
    for n in (0, 1, 3, 3000):
        assert parallel(delayed(funcs.square)(x) for x in range(n)) == squares(n), n  # generator
        assert parallel([delayed(funcs.square)(x) for x in range(n)]) == squares(n), n  # list
    # keyword arguments, and several functions in one call
    tasks = []
    for i in range(60):
        tasks += [
            delayed(funcs.add)(i, y=2, z=i),
            delayed(funcs.negate)(i),
            delayed(funcs.add)(i, i),
            delayed(funcs.square)(x=i),
        ]
    expected = [function(*args, **kwargs) for function, args, kwargs in tasks]
    assert parallel(tasks) == expected
    assert parallel(iter(tasks)) == expected


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_return_as_modes_give_the_same_results(backend):
    tasks = [delayed(funcs.square)(x) for x in range(500)]
    assert Parallel(n_jobs=2, backend=backend, return_as="list")(tasks) == squares(500)
    generator = Parallel(n_jobs=2, backend=backend, return_as="generator")(iter(tasks))
    assert not isinstance(generator, list)
    assert list(generator) == squares(500)
    unordered = list(Parallel(n_jobs=2, backend=backend, return_as="generator_unordered")(iter(tasks)))
    assert sorted(unordered) == squares(500)
    for return_as in ("list", "generator", "generator_unordered"):
        assert list(Parallel(n_jobs=2, backend=backend, return_as=return_as)([])) == []
        assert list(Parallel(n_jobs=2, backend=backend, return_as=return_as)(iter([]))) == []


def test_lambdas_and_closures_run_in_processes():
    offset = 1000

    def closure(x):
        return x + offset

    results = Parallel(n_jobs=2)(delayed(f)(x) for x in range(20) for f in (lambda x: (x * 3, os.getpid()), closure))
    assert [value for value, _ in results[0::2]] == [x * 3 for x in range(20)]
    assert os.getpid() not in {pid for _, pid in results[0::2]}  # really in worker processes
    assert results[1::2] == [x + offset for x in range(20)]


def test_functions_defined_in_main_run_in_processes(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent("""
        import json, os, sys
        from joblite import Parallel, delayed

        def cube(x):
            return x ** 3

        def make_adder(k):
            def adder(x):
                return x + k
            return adder

        class Scaler:
            def __init__(self, k):
                self.k = k

            def __call__(self, x):
                return x * self.k

        def pid_of(x):
            return os.getpid()

        if __name__ == "__main__":
            out = {"me": os.getpid()}
            for backend in ("loky", "multiprocessing"):
                run = Parallel(n_jobs=2, backend=backend)
                out[backend] = {
                    "function": run(delayed(cube)(i) for i in range(10)),
                    "lambda": run(delayed(lambda x: x - 1)(i) for i in range(10)),
                    "closure": run(delayed(make_adder(100))(i) for i in range(10)),
                    "instance": run(delayed(Scaler(3))(i) for i in range(10)),
                    "pids": sorted(set(run(delayed(pid_of)(i) for i in range(10)))),
                }
            json.dump(out, sys.stdout)
    """)
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_PARENT, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for backend in ("loky", "multiprocessing"):
        assert out[backend]["function"] == [i**3 for i in range(10)]
        assert out[backend]["lambda"] == [i - 1 for i in range(10)]
        assert out[backend]["closure"] == [i + 100 for i in range(10)]
        assert out[backend]["instance"] == [i * 3 for i in range(10)]
        assert out["me"] not in out[backend]["pids"]  # really in worker processes


# -- n_jobs --------------------------------------------------------------------------------
def test_n_jobs_semantics():
    cpus = cpu_count()
    assert cpus >= 1
    assert effective_n_jobs() == effective_n_jobs(-1) == cpus
    assert effective_n_jobs(-2) == max(1, cpus - 1)
    assert effective_n_jobs(-cpus - 10) == 1
    assert effective_n_jobs(3) == 3
    assert effective_n_jobs(None) == 1
    with parallel_config(n_jobs=3):
        assert effective_n_jobs(None) == 3
    with pytest.raises(ValueError, match="n_jobs=0"):
        effective_n_jobs(0)
    physical = cpu_count(only_physical_cores=True)
    assert 1 <= physical <= cpus
    if hasattr(os, "sched_getaffinity"):
        assert cpus <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("n_jobs", [2, -1, -2, 1])
def test_n_jobs_gives_that_many_workers(capfd, n_jobs):
    Parallel(n_jobs=n_jobs, backend="threading", verbose=1)(delayed(funcs.square)(x) for x in range(10))
    assert f"[Parallel(n_jobs={effective_n_jobs(n_jobs)})]" in capfd.readouterr().err


def test_n_jobs_none_takes_the_context_value_or_one(capfd, recording):
    assert Parallel().n_jobs == 1
    Parallel(backend="threading", verbose=1)(delayed(funcs.square)(x) for x in range(5))
    assert "[Parallel(n_jobs=1)]" in capfd.readouterr().err
    with parallel_config(n_jobs=2):
        Parallel(backend="threading", verbose=1)(delayed(funcs.square)(x) for x in range(5))
    assert "[Parallel(n_jobs=2)]" in capfd.readouterr().err
    with parallel_config(backend=recording, n_jobs=3):
        assert Parallel()(delayed(funcs.square)(x) for x in range(50)) == squares(50)
    [backend] = RecordingBackend.instances
    assert backend.configured == [3] and sum(backend.batch_sizes) == 50


def test_effective_n_jobs_follows_the_active_backend():
    with parallel_config(backend="sequential"):
        assert effective_n_jobs(-1) == 1
        assert effective_n_jobs(2) == 1


def test_numpy_integer_n_jobs_is_accepted():
    np = pytest.importorskip("numpy")
    assert Parallel(n_jobs=np.int64(2), backend="threading")(delayed(funcs.square)(x) for x in range(5)) == squares(5)


# -- prefer / require ----------------------------------------------------------------------
@pytest.mark.parametrize("settings", [dict(prefer="threads"), dict(require="sharedmem")])
def test_prefer_threads_and_require_sharedmem_share_memory(settings):
    shared = []
    pids = Parallel(n_jobs=2, **settings)(delayed(funcs.append_to)(shared, x) for x in range(100))
    assert sorted(shared) == list(range(100))
    assert set(pids) == {os.getpid()}
    shared.clear()
    with parallel_config(n_jobs=2, **settings):
        Parallel()(delayed(funcs.append_to)(shared, x) for x in range(100))
    assert sorted(shared) == list(range(100))


@pytest.mark.parametrize("backend", PROCESS_BACKENDS)
def test_require_sharedmem_with_a_process_backend_raises(backend):
    with pytest.raises(ValueError, match=f"{backend}.*sharedmem"):
        Parallel(n_jobs=2, backend=backend, require="sharedmem")


def test_require_sharedmem_inside_a_process_backend_config_uses_threads():
    shared = []
    with parallel_config(backend="loky"):
        Parallel(n_jobs=2, require="sharedmem")(delayed(funcs.append_to)(shared, x) for x in range(20))
    assert sorted(shared) == list(range(20))


# -- parallel_config -----------------------------------------------------------------------
def test_parallel_config_is_thread_local_and_nestable(recording):
    seen_by_other_thread = {}

    def other_thread():
        try:
            seen_by_other_thread["n_jobs"] = effective_n_jobs(None)
            seen_by_other_thread["results"] = Parallel(n_jobs=2, prefer="threads")(
                delayed(funcs.square)(x) for x in range(20)
            )
        except BaseException as exc:  # reported below
            seen_by_other_thread["error"] = exc

    with parallel_config(backend=recording, n_jobs=3):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(60)
        assert not thread.is_alive()
        assert "error" not in seen_by_other_thread, seen_by_other_thread
        assert seen_by_other_thread == {"n_jobs": 1, "results": squares(20)}
        assert RecordingBackend.instances == []  # the other thread did not get this block's backend

        Parallel()(delayed(funcs.square)(x) for x in range(10))
        with parallel_config(n_jobs=2):  # overrides n_jobs, keeps the backend
            Parallel()(delayed(funcs.square)(x) for x in range(10))
            with parallel_config(backend="threading"):
                Parallel()(delayed(funcs.square)(x) for x in range(10))
                assert effective_n_jobs(None) == 2
        Parallel()(delayed(funcs.square)(x) for x in range(10))  # the outer settings again
        assert [backend.configured for backend in RecordingBackend.instances] == [[3], [2], [3]]
    assert effective_n_jobs(None) == 1
    Parallel(n_jobs=2, prefer="threads")(delayed(funcs.square)(x) for x in range(10))
    assert len(RecordingBackend.instances) == 3


def test_parallel_backend_is_a_deprecated_alias(recording):
    with pytest.warns(DeprecationWarning):
        with parallel_backend(recording, n_jobs=2):
            assert Parallel()(delayed(funcs.square)(x) for x in range(30)) == squares(30)
    [backend] = RecordingBackend.instances
    assert backend.configured == [2] and sum(backend.batch_sizes) == 30


def test_parallel_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="n_jobs=0"):
        parallel_config(n_jobs=0)
    with pytest.raises(ValueError, match="no-such-backend"):
        parallel_config(backend="no-such-backend")
    with pytest.raises(ValueError, match="gpu"):
        parallel_config(prefer="gpu")


# -- custom backends -----------------------------------------------------------------------
def test_custom_backend_from_the_documented_base_class():
    name = f"custom-{uuid.uuid4().hex[:8]}"
    RecordingBackend.instances.clear()
    register_parallel_backend(name, RecordingBackend)
    try:
        tasks = [delayed(funcs.add)(x, z=1) for x in range(200)]
        assert Parallel(n_jobs=2, backend=name)(tasks) == [x + 1 for x in range(200)]
        with parallel_config(backend=name, n_jobs=2):
            assert Parallel()(delayed(funcs.square)(x) for x in range(50)) == squares(50)
        instance = RecordingBackend()
        assert Parallel(n_jobs=2, backend=instance)(delayed(funcs.square)(x) for x in range(5)) == squares(5)
        assert [sum(backend.batch_sizes) for backend in RecordingBackend.instances] == [200, 50, 5]
        assert all(backend.stops >= 1 for backend in RecordingBackend.instances)
        with pytest.raises(ValueError, match="fail_on refuses 7"):
            Parallel(n_jobs=2, backend=name)(delayed(funcs.fail_on)(x, 7) for x in range(20))
    finally:
        BACKENDS.pop(name, None)
    with pytest.raises(ValueError, match=name):
        Parallel(backend=name)


def test_register_parallel_backend_make_default(recording):
    previous = default_backend_name()
    made = []

    def factory(**kwargs):  # a plain callable returning an instance is a factory too
        made.append(RecordingBackend(**kwargs))
        return made[-1]

    register_parallel_backend(recording, factory, make_default=True)
    try:
        assert Parallel(n_jobs=2)(delayed(funcs.square)(x) for x in range(40)) == squares(40)
        assert len(made) == 1 and sum(made[0].batch_sizes) == 40
    finally:
        register_parallel_backend(previous, get_backend_factory(previous), make_default=True)
    assert default_backend_name() == previous
    pids = Parallel(n_jobs=2)(delayed(funcs.getpid)() for _ in range(10))
    assert len(made) == 1
    assert os.getpid() not in pids  # the default is loky processes again
    with pytest.raises(ValueError):
        register_parallel_backend("", RecordingBackend)
    with pytest.raises(ValueError):
        register_parallel_backend("not-callable", 3)


# -- return_as -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_ordered_generator_yields_before_later_tasks_finish(tmp_path, backend):
    flag = str(tmp_path / "first-result-received")
    results = Parallel(n_jobs=2, backend=backend, return_as="generator")(
        delayed(funcs.wait_for_flag)(None if i == 0 else flag, i) for i in range(6)
    )
    try:
        first = next(results)
    finally:
        open(flag, "w").close()  # tasks 1..5 were waiting for this
    rest = list(results)
    assert first == (0, True)
    assert rest == [(i, True) for i in range(1, 6)]  # they saw the flag: task 0 came first


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_unordered_generator_yields_in_completion_order(tmp_path, backend):
    flag = str(tmp_path / "others-received")
    order = []
    try:
        for value, saw_flag in Parallel(n_jobs=2, backend=backend, return_as="generator_unordered")(
            delayed(funcs.wait_for_flag)(flag if i == 0 else None, i) for i in range(6)
        ):
            order.append((value, saw_flag))
            if len(order) == 5:
                open(flag, "w").close()  # task 0 was waiting for this
    finally:
        open(flag, "w").close()
    assert sorted(order[:5]) == [(i, True) for i in range(1, 6)]
    assert order[5] == (0, True)  # the slow first task comes last


def test_generator_starts_the_tasks_at_the_call():
    started = threading.Event()
    results = Parallel(n_jobs=2, backend="threading", return_as="generator")(
        delayed(funcs.set_event)(started) for _ in range(1)
    )
    try:
        assert started.wait(5), "no task ran before the generator was iterated"
    finally:
        assert list(results) == [True]


@pytest.mark.parametrize("backend", ["loky", "threading", "sequential"])
def test_breaking_out_of_a_generator_cancels_the_rest(tmp_path, backend):
    counter = tmp_path / "started"
    pulled = []

    def tasks():
        for i in range(200):
            pulled.append(i)
            yield delayed(funcs.count_and_sleep)(str(counter), i, 0.05)

    n_jobs = 1 if backend == "sequential" else 2
    for first in Parallel(n_jobs=n_jobs, backend=backend, return_as="generator")(tasks()):  # noqa: B007
        break  # the generator is dropped here, which closes it
    assert first == 0
    # the next call works (and on loky/threads it queues behind anything not cancelled)
    assert Parallel(n_jobs=n_jobs, backend=backend)(delayed(funcs.square)(x) for x in range(20)) == squares(20)
    count = -1
    for _ in range(40):  # let tasks already running finish writing
        lines = counter.read_text().split() if counter.exists() else []
        if len(lines) == count:
            break
        count = len(lines)
        time.sleep(0.25)
    assert 1 <= count <= 20, count
    assert len(pulled) <= 40, len(pulled)


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_breaking_out_of_a_generator_inside_a_context_manager(backend):
    with Parallel(n_jobs=2, backend=backend, return_as="generator") as parallel:
        for first in parallel(delayed(funcs.square)(x) for x in range(10000)):  # noqa: B007
            break
        assert first == 0
        assert list(parallel(delayed(funcs.square)(x) for x in range(50))) == squares(50)
        unfinished = parallel(delayed(funcs.square)(x) for x in range(10000))
        next(unfinished)
        with pytest.raises(RuntimeError, match="already running"):  # one call at a time, as in joblib
            next(parallel(delayed(funcs.square)(x) for x in range(5)))
        unfinished.close()
        assert list(parallel(delayed(funcs.square)(x) for x in range(50))) == squares(50)


# -- context manager -----------------------------------------------------------------------
def workers_of(parallel, folder):
    """Where the tasks of one call of `parallel` ran: two tasks meet first, so both of its workers work."""
    folder.mkdir()
    return set(
        parallel(
            [delayed(funcs.rendezvous)(str(folder), 2) for _ in range(2)] + [delayed(funcs.where)() for _ in range(30)]
        )
    )


def test_context_manager_reuses_worker_processes(tmp_path):
    with Parallel(n_jobs=2) as parallel:
        first = workers_of(parallel, tmp_path / "first")
        second = workers_of(parallel, tmp_path / "second")
        with pytest.raises(ValueError):
            parallel(delayed(funcs.fail_on)(x, 3) for x in range(10))
        third = workers_of(parallel, tmp_path / "third")
    pids = {pid for pid, _ in first}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {pid for pid, _ in second} == {pid for pid, _ in third} == pids


def test_context_manager_reuses_threads(tmp_path):
    with Parallel(n_jobs=2, backend="threading") as parallel:
        first = workers_of(parallel, tmp_path / "first")
        second = workers_of(parallel, tmp_path / "second")
    assert {pid for pid, _ in first | second} == {os.getpid()}
    assert len(first) == 2 and threading.get_ident() not in {thread for _, thread in first}
    assert second == first


@pytest.mark.parametrize("backend, timeout", [("threading", 0.5), ("loky", 3)])
def test_context_manager_call_after_an_aborted_call(tmp_path, backend, timeout):
    flag = str(tmp_path / "never") if backend == "loky" else threading.Event()
    try:
        with Parallel(n_jobs=2, backend=backend, timeout=timeout) as parallel:
            assert parallel(delayed(funcs.square)(x) for x in range(4)) == squares(4)  # workers up
            with pytest.raises(TimeoutError):
                parallel(delayed(funcs.wait_for_flag)(flag if x == 0 else None, x) for x in range(4))
            assert parallel(delayed(funcs.square)(x) for x in range(4)) == squares(4)
    finally:
        if isinstance(flag, threading.Event):
            flag.set()


def test_context_manager_call_after_a_broken_pool():
    with Parallel(n_jobs=2) as parallel:
        with pytest.raises(Exception, match="un-serialize|more"):
            parallel(delayed(funcs.raise_two_argument_error)(x) for x in range(4))
        assert parallel(delayed(funcs.square)(x) for x in range(4)) == squares(4)
    assert Parallel(n_jobs=2)(delayed(funcs.square)(x) for x in range(4)) == squares(4)


# -- nested calls and thread limits --------------------------------------------------------
@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_nested_parallel_runs_in_the_worker(backend):
    results = Parallel(n_jobs=2, backend=backend)(delayed(funcs.nested)(4) for _ in range(4))
    for (pid, thread), inner, children in results:
        assert inner == [(pid, thread)] * 4  # in the worker itself, one task after the other
        if backend == "loky":
            assert pid != os.getpid()
            assert children in (None, [])  # no process started by the nested call
        else:
            assert pid == os.getpid() and thread != threading.get_ident()


def test_a_python_process_started_by_a_task_runs_parallel_with_its_workers(tmp_path):
    # Issue 9, item 7: workers were marked by JOBLITE_IN_WORKER=1 in their environment, which the
    # processes their tasks start inherit; a Parallel(n_jobs=2) there then ran in one process.
    (seen,) = Parallel(n_jobs=2)([delayed(funcs.parallel_in_a_subprocess)(str(tmp_path))])
    assert seen == {
        "in_worker": False,
        "effective_n_jobs": 2,
        "processes": 2,
        "ran_here": False,
        "JOBLITE_IN_WORKER": None,
    }
    # while in the worker itself, a nested call still runs in that worker
    [(where, inner, _)] = Parallel(n_jobs=2)([delayed(funcs.nested)(2)])
    assert inner == [where] * 2 and where[0] != os.getpid()


def test_thread_limits_in_worker_processes():
    n_jobs = 2
    default = max(1, cpu_count() // n_jobs)
    for env, blas in Parallel(n_jobs=n_jobs)(delayed(funcs.thread_limits)() for _ in range(4)):
        assert env == {name: str(default) for name in funcs.THREAD_LIMIT_VARIABLES}
        if blas:
            assert blas == [default]
    inner = default + 1
    with parallel_config(inner_max_num_threads=inner):
        for env, blas in Parallel(n_jobs=n_jobs)(delayed(funcs.thread_limits)() for _ in range(4)):
            assert env == {name: str(inner) for name in funcs.THREAD_LIMIT_VARIABLES}
            if blas and inner <= cpu_count():
                assert blas == [inner]
    assert os.environ.get("JOBLITE_IN_WORKER") != "1"


# -- exceptions ----------------------------------------------------------------------------
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_exception_keeps_its_type_and_the_worker_traceback(backend, n_jobs):
    with pytest.raises(ValueError, match="fail_on refuses 13") as info:
        Parallel(n_jobs=n_jobs, backend=backend)(delayed(funcs.fail_on)(x, 13) for x in range(40))
    assert type(info.value) is ValueError
    text = "".join(traceback.format_exception(info.value))
    assert "fail_on" in text
    if backend in PROCESS_BACKENDS and n_jobs > 1:
        assert info.value.__cause__ is not None and "fail_on" in str(info.value.__cause__)
    # the next call works
    assert Parallel(n_jobs=n_jobs, backend=backend)(delayed(funcs.square)(x) for x in range(40)) == squares(40)


# -- bad arguments -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_jobs=0), ValueError, "n_jobs=0"),
        (dict(n_jobs="two"), ValueError, "n_jobs='two'"),
        (dict(n_jobs=1.5), ValueError, "n_jobs=1.5"),
        (dict(batch_size=0), ValueError, "batch_size=0"),
        (dict(batch_size="x"), ValueError, "batch_size='x'"),
        (dict(batch_size=-3), ValueError, "batch_size=-3"),
        (dict(backend="no-such-backend"), ValueError, "no-such-backend"),
        (dict(return_as="x"), ValueError, "return_as='x'"),
        (dict(pre_dispatch="bogus"), ValueError, "pre_dispatch='bogus'"),
        (dict(pre_dispatch=0), ValueError, "pre_dispatch=0"),
        (dict(timeout=-1), ValueError, "timeout=-1"),
        (dict(timeout=0), ValueError, "timeout=0"),
        (dict(timeout=float("nan")), ValueError, "timeout=nan"),
        (dict(timeout="5"), ValueError, "timeout='5'"),
        (dict(prefer="gpu"), ValueError, "prefer='gpu'"),
        (dict(require="magic"), ValueError, "require='magic'"),
        (dict(progress="yes"), ValueError, "progress='yes'"),
        (dict(callback=3), ValueError, "callback=3"),
    ],
)
def test_bad_arguments_raise_naming_the_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        Parallel(**kwargs)


@pytest.mark.parametrize("pre_dispatch", ["2 *", "1 2", "jobs", "n_jobs +"])
def test_malformed_pre_dispatch_raises_value_error(pre_dispatch):
    with pytest.raises(ValueError, match="pre_dispatch"):
        Parallel(n_jobs=2, pre_dispatch=pre_dispatch)


@pytest.mark.parametrize("backend, n_jobs", [("sequential", 1), ("threading", 2), ("loky", 2)])
def test_an_item_that_is_not_a_task_raises_type_error_naming_its_index(backend, n_jobs):
    tasks = [delayed(funcs.square)(x) for x in range(100)]
    tasks[57] = 57
    with pytest.raises(TypeError, match="item 57"):
        Parallel(n_jobs=n_jobs, backend=backend)(tasks)
    with pytest.raises(TypeError, match="item 57"):
        Parallel(n_jobs=n_jobs, backend=backend)(iter(tasks))
    with pytest.raises(TypeError, match="item 0"):
        Parallel(n_jobs=n_jobs, backend=backend)([funcs.square])
    assert Parallel(n_jobs=n_jobs, backend=backend)(delayed(funcs.square)(x) for x in range(5)) == squares(5)


@pytest.mark.parametrize("value", [3, None, "abc"])
def test_delayed_of_a_non_callable_raises_type_error(value):
    with pytest.raises(TypeError, match=repr(value)):
        delayed(value)


def test_delayed_makes_joblib_tasks():
    assert delayed(funcs.add)(1, 2, z=3) == (funcs.add, (1, 2), {"z": 3})
    assert pickle.loads(pickle.dumps(delayed(funcs.add)))(1) == (funcs.add, (1,), {})
    joblib = pytest.importorskip("joblib")
    tasks = [joblib.delayed(funcs.add)(x, z=1) for x in range(10)]  # joblib's tasks are the same tuples
    assert Parallel(n_jobs=2, backend="threading")(tasks) == [x + 1 for x in range(10)]


# -- progress ------------------------------------------------------------------------------
@pytest.mark.parametrize("return_as", ["list", "generator_unordered"])
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_callback_once_per_task_in_the_caller(backend, n_jobs, return_as):
    calls = []
    results = Parallel(
        n_jobs=n_jobs,
        backend=backend,
        return_as=return_as,
        callback=lambda index, result: calls.append((index, result, os.getpid())),
    )(delayed(funcs.square)(x) for x in range(300))
    assert sorted(results) == squares(300)
    assert sorted(index for index, _, _ in calls) == list(range(300))
    assert all(result == index * index for index, result, _ in calls)
    assert {pid for _, _, pid in calls} == {os.getpid()}


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_verbose_prints_joblib_lines_on_stderr(capfd, backend):
    Parallel(n_jobs=2, backend=backend, verbose=1)(delayed(funcs.square)(x) for x in range(50))
    out, err = capfd.readouterr()
    assert "[Parallel(n_jobs=" in err and "Done" in err
    assert out == ""
    Parallel(n_jobs=2, backend=backend)(delayed(funcs.square)(x) for x in range(50))
    assert capfd.readouterr() == ("", "")


def test_progress_force_with_tqdm(capfd):
    pytest.importorskip("tqdm")
    Parallel(n_jobs=2, backend="threading", progress="force")([delayed(funcs.square)(x) for x in range(40)])
    out, err = capfd.readouterr()
    assert "40/40" in err and out == ""


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


@pytest.mark.parametrize("backend", ["threading", "sequential"])
def test_progress_force_without_tqdm_draws_a_text_bar(capfd, no_tqdm, backend):
    Parallel(n_jobs=2, backend=backend, progress="force")([delayed(funcs.square)(x) for x in range(40)])
    out, err = capfd.readouterr()
    assert "40/40" in err and out == ""


def test_text_bar_shows_the_final_count_for_a_generator(capfd, no_tqdm):
    Parallel(n_jobs=2, backend="threading", progress="force")(delayed(funcs.square)(x) for x in range(40))
    err = capfd.readouterr().err
    assert err.rstrip().rsplit("\r", 1)[-1].startswith("40 tasks done"), repr(err)


def test_progress_true_only_on_a_terminal(capfd, monkeypatch, no_tqdm):
    Parallel(n_jobs=2, backend="threading", progress=True)([delayed(funcs.square)(x) for x in range(40)])
    assert capfd.readouterr() == ("", "")  # stderr is not a terminal here

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    Parallel(n_jobs=2, backend="threading", progress=True)([delayed(funcs.square)(x) for x in range(40)])
    assert "40/40" in terminal.getvalue()


# -- batching ------------------------------------------------------------------------------
def test_auto_batching_sends_far_fewer_batches_than_tasks(recording):
    n = 20000
    for tasks in (
        lambda: (delayed(funcs.square)(x) for x in range(n)),
        lambda: [delayed(funcs.square)(x) for x in range(n)],
    ):
        RecordingBackend.instances.clear()
        assert Parallel(n_jobs=2, backend=recording)(tasks()) == squares(n)
        [backend] = RecordingBackend.instances
        assert sum(backend.batch_sizes) == n
        assert len(backend.batch_sizes) <= n // 100, len(backend.batch_sizes)


class HoldingBackend(RecordingBackend):
    """Batches run when the test says: each submitted batch waits in ``held`` for :meth:`release`."""

    def __init__(self, **backend_kwargs):
        super().__init__(**backend_kwargs)
        self.held = []
        self.submitted = 0
        self.lock = threading.Lock()

    def submit(self, batch):
        future = Future()
        with self.lock:
            self.held.append((batch, future))
            self.submitted += 1
        return future

    def release(self):
        with self.lock:
            held, self.held = self.held, []
        for batch, future in held:
            results, seconds = batch()
            self.batch_sizes.append(len(results))
            future.set_result((results, seconds))


def test_no_more_batches_than_workers_until_one_is_measured():
    # Before a batch's cost is known, batches hold one task each: more of them than
    # workers would wait in a queue (and on a cluster, cost a round trip each).
    backend = HoldingBackend()
    results = []
    call = threading.Thread(
        target=lambda: results.extend(
            Parallel(n_jobs=2, backend=backend)(delayed(funcs.square)(x) for x in range(2000))
        )
    )
    call.start()
    try:
        deadline = time.monotonic() + 30
        while backend.submitted < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # (time for more, if the call sent more)
        assert backend.submitted == 2  # pre_dispatch (2 * n_jobs) would allow 4
        while call.is_alive() and time.monotonic() < deadline:
            backend.release()
            time.sleep(0.001)
    finally:
        while call.is_alive():
            backend.release()
            call.join(0.01)
    assert results == squares(2000)
    assert backend.batch_sizes[:2] == [1, 1] and max(backend.batch_sizes) > 1


class LateBackend(RecordingBackend):
    """Results reach the caller 30 ms after the batch ran: a round trip much longer than the work."""

    batch_cost_from_wall_time = False
    max_batch_size = 500

    def submit(self, batch):
        future = Future()
        results, seconds = batch()
        self.batch_sizes.append(len(results))
        timer = threading.Timer(0.03, future.set_result, ((results, seconds),))
        timer.daemon = True
        timer.start()
        return future


def test_a_backend_can_size_batches_by_their_work_and_cap_them(recording):
    # batch_cost_from_wall_time=False: the 30 ms round trip is not taken for work, so
    # tiny tasks reach max_batch_size at once; the wall time would keep them at one task.
    register_parallel_backend(recording, LateBackend)
    assert Parallel(n_jobs=2, backend=recording)(delayed(funcs.square)(x) for x in range(3000)) == squares(3000)
    [backend] = RecordingBackend.instances
    sizes = backend.batch_sizes
    assert max(sizes) == 500
    # Once a batch is full, the rest are (but the last): the cost per task is known.
    assert set(sizes[sizes.index(500) : -1]) <= {500}, sizes
    # Before: the first task of each worker, then the batches already in flight
    # (pre_dispatch, 2 * n_jobs) when the first measures came back, 30 ms later on
    # a busy machine; never a long run of small batches.
    assert len(sizes) <= 2 + 4 + 3000 // 500, sizes


@pytest.mark.parametrize("n", [1, 7, 100, 701])
def test_fixed_batch_size(recording, n):
    assert Parallel(n_jobs=2, backend=recording, batch_size=7)(delayed(funcs.square)(x) for x in range(n)) == squares(n)
    [backend] = RecordingBackend.instances
    assert len(backend.batch_sizes) == -(-n // 7)
    assert backend.batch_sizes == [7] * (n // 7) + ([n % 7] if n % 7 else [])


def test_timeout_sends_one_task_per_batch(recording):
    assert Parallel(n_jobs=2, backend=recording, timeout=60, batch_size=10)(
        delayed(funcs.square)(x) for x in range(100)
    ) == squares(100)
    [backend] = RecordingBackend.instances
    assert backend.batch_sizes == [1] * 100


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_timeout_inf_means_no_timeout(backend):
    # Issue 9, item 7: timeout=inf raised OverflowError while waiting for the first batch.
    parallel = Parallel(n_jobs=2, backend=backend, timeout=float("inf"))
    assert parallel(delayed(funcs.square)(x) for x in range(50)) == squares(50)
    assert parallel.timeout is None


def test_timeout_inf_keeps_auto_batching(recording):
    assert Parallel(n_jobs=2, backend=recording, timeout=float("inf"), batch_size=10)(
        delayed(funcs.square)(x) for x in range(100)
    ) == squares(100)
    [backend] = RecordingBackend.instances
    assert backend.batch_sizes == [10] * 10


def test_n_jobs_one_runs_in_the_caller(recording):
    where = Parallel(n_jobs=1, backend=recording)(delayed(funcs.where)() for _ in range(10))
    assert set(where) == {(os.getpid(), threading.get_ident())}


# -- the twins of the task kernels (fixture ``twins``) ------------------------------------
def outcome(function, *args):
    """The result, or the type and text of the exception, of ``function(*args)``."""
    try:
        return "ok", function(*args)
    except Exception as exc:  # compared between the twins
        return type(exc).__name__, str(exc)


def test_twins_delayed_agree(twins):
    ext, pure = (kernels.tasks for kernels in twins)
    for twin in (ext, pure):
        assert twin.Delayed(funcs.add)(1, 2, z=3) == (funcs.add, (1, 2), {"z": 3})
        assert twin.Delayed(funcs.getpid)() == (funcs.getpid, (), {})
        assert twin.Delayed(funcs.add).function is funcs.add
        assert pickle.loads(pickle.dumps(twin.Delayed(funcs.add)))(5) == (funcs.add, (5,), {})
    assert repr(ext.Delayed(funcs.add)) == repr(pure.Delayed(funcs.add))
    for twin in (ext, pure):  # what joblib's functools.wraps gives, and inspect follows
        task = twin.Delayed(funcs.add)
        assert (task.__name__, task.__qualname__, task.__wrapped__) == ("add", "add", funcs.add)
        assert inspect.signature(task) == inspect.signature(funcs.add)
        with pytest.raises(AttributeError):
            _ = twin.Delayed(functools.partial(funcs.add, 1)).__name__
    for value in (3, None, "abc", [funcs.add], (funcs.add,)):
        assert outcome(ext.Delayed, value) == outcome(pure.Delayed, value)
        assert outcome(ext.Delayed, value)[0] == "TypeError"


def test_twins_run_calls_and_run_tasks_agree(twins):
    ext, pure = (kernels.tasks for kernels in twins)
    call_cases = [
        (funcs.square, []),
        (funcs.square, [(x,) for x in range(50)]),
        (funcs.add, [(1, 2), (3, 4), (5,)]),
        (funcs.fail_on, [(1, 2), (2, 2), (3, 2)]),
        (funcs.add, [(1, 2, 3, 4)]),
    ]
    for function, arguments in call_cases:
        assert outcome(ext.run_calls, function, list(arguments)) == outcome(pure.run_calls, function, list(arguments))
    task_cases = [
        [],
        [(funcs.add, (1,), {"z": 2}), (funcs.negate, (3,), {}), (funcs.square, (), {"x": 4})],
        [(funcs.square, (1,), {}), (funcs.fail_on, (2,), {"bad": 2})],
        [(funcs.square, (1,), {"nope": 1})],
    ]
    for tasks in task_cases:
        assert outcome(ext.run_tasks, list(tasks)) == outcome(pure.run_tasks, list(tasks))
    assert outcome(ext.run_tasks, task_cases[1])[1] == [3, -3, 16]


def test_twins_split_tasks_alike(twins):
    ext, pure = (kernels.tasks for kernels in twins)
    f, g = funcs.square, funcs.negate
    cases = [
        [],
        [(f, (1,), {}), (f, (2,), {})],  # one function, no keywords
        [(f, (1,), {}), (g, (2,), {})],  # two functions
        [(f, (1,), {"z": 1}), (f, (2,), {})],  # keywords first
        [(f, (1,), {}), (f, (2,), {"z": 3})],  # keywords later
        [(f, (1,), {}), 3],  # not a task
        [5],
        [(f, (1,), {}), (f, [2], {})],  # args not a tuple
        [(f, (1,), {}), (f, (2,), None)],  # kwargs not a dict
        [(f, (1,), {}), (3, (2,), {})],  # not callable
        [(f, (1,))],  # two items
        [(f, (1,), {}, None)],  # four items
        [[f, (1,), {}]],  # a list, not a tuple
        [(f, (1,), {}), (f, (2,), {}), ("f", (2,), {})],
    ]
    for tasks, start in itertools.product(cases, (0, 1000)):
        expected = outcome(pure.take_batch, iter(tasks), len(tasks), start)
        assert outcome(ext.take_batch, iter(tasks), len(tasks), start) == expected, (tasks, start)
        if expected[0] == "TypeError":
            assert (
                f"item {start}" in expected[1]
                or f"item {start + 1}" in expected[1]
                or f"item {start + 2}" in expected[1]
            )
    assert outcome(pure.take_batch, iter(cases[1]), 2, 0) == ("ok", (f, [1, 2], True))
    assert outcome(pure.take_batch, iter(cases[2]), 2, 0) == ("ok", (None, cases[2], False))
    assert outcome(pure.take_batch, iter(cases[5]), 2, 40)[1].startswith(
        "Parallel expects tasks made with delayed(function)(*args, **kwargs); item 41 is 3"
    )


# -- Parallel subclass hooks (joblib's tqdm recipe) and timeouts, as joblib has them ------------
class CountingParallel(Parallel):
    """joblib's tqdm recipe (examples/parallel/parallel_with_tqdm.py), with a bar that records its counts."""

    def __call__(self, iterable, n_tasks):
        self.seen = []  # (n_completed_tasks, n_dispatched_tasks, n_dispatched_batches, completed)
        self.closed = 0
        return super().__call__(iterable)

    def print_progress(self):
        self.seen.append(
            (self.n_completed_tasks, self.n_dispatched_tasks, self.n_dispatched_batches, self._is_completed())
        )
        if self._is_completed():
            self.closed += 1


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_print_progress_subclass_sees_the_counts(backend, n_jobs):
    parallel = CountingParallel(n_jobs=n_jobs, backend=backend)
    results = parallel((delayed(funcs.square)(x) for x in range(300)), 300)
    assert results == squares(300)
    completed = [seen[0] for seen in parallel.seen]
    assert completed == sorted(completed) and completed[-1] == 300
    assert all(done <= dispatched for done, dispatched, _, _ in parallel.seen)
    assert parallel.seen[-1][:2] == (300, 300) and parallel.seen[-1][3]
    assert 1 <= parallel.n_dispatched_batches <= 300
    assert parallel.n_dispatched_tasks == parallel.n_completed_tasks == 300
    assert parallel.closed >= 1
    assert not any(seen[3] for seen in parallel.seen if seen[0] < 300)


def test_tqdm_recipe_shows_every_task(capfd):
    tqdm = pytest.importorskip("tqdm").tqdm

    class ParallelTqdm(Parallel):
        def __call__(self, iterable, n_tasks):
            self.tqdm = tqdm(total=n_tasks)
            return super().__call__(iterable)

        def print_progress(self):
            self.tqdm.update(self.n_completed_tasks - self.tqdm.n)
            if self._is_completed():
                self.tqdm.close()

    for n_jobs in (1, 2):
        parallel = ParallelTqdm(n_jobs=n_jobs)
        assert parallel((delayed(funcs.square)(x) for x in range(50)), 50) == squares(50)
        assert parallel.tqdm.n == 50
        assert "50/50" in capfd.readouterr().err


def test_print_progress_default_keeps_verbose_lines(capfd):
    Parallel(n_jobs=2, backend="threading", verbose=1)([delayed(funcs.square)(x) for x in range(64)])
    last = capfd.readouterr().err.rstrip().splitlines()[-1]
    assert last.startswith("[Parallel(n_jobs=2)]: Done   64 out of 64 tasks | elapsed: "), last


@pytest.mark.parametrize("backend", ["loky", "threading", "multiprocessing"])
def test_timeout_is_both_timeout_errors(backend, tmp_path):
    import multiprocessing

    counter = str(tmp_path / "started")
    with pytest.raises(multiprocessing.TimeoutError) as info:
        Parallel(n_jobs=2, backend=backend, timeout=0.5)(
            delayed(funcs.count_and_sleep)(counter, x, 3) for x in range(2)
        )
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, joblite.parallel.ParallelTimeoutError)
    assert "did not finish within timeout=0.5" in str(info.value)
