"""``Parallel`` benchmarks for asv: joblite's ``Parallel``/``delayed`` against joblib's.

The tasks and calls are those of ``python -m joblite bench`` (section
``parallel``), from :mod:`joblite.bench.workloads`, at asv's sizes so that
the suite stays fast; every call is ``Parallel(n_jobs=2)(delayed(f)(x) for x
in ...)`` as a user writes it, the same for both libraries:

* 20,000 tiny tasks (``tiny_task``, about 0.2 µs of math each) on
  2 processes (loky), and the stdlib
  ``ProcessPoolExecutor(2).map(f, xs, chunksize=1000)``;
* the same on 2 threads (``backend='threading'``);
* 200 tasks of 1 ms of CPU time each (``busy_task``, a spin on the thread's
  CPU time) on 2 processes;
* 8 tasks on one 64 MiB random float64 array argument (``array_part_sum``),
  and the peak memory of such a call (caller, workers and memmap folder, in
  a fresh process, over the array's size: ``parallel_array_memory``);
* 8 tasks each returning an 8 MiB float64 array (``full_array``);
* ``n_jobs=1`` on the tiny tasks, and the plain loop ``[f(x) for x in xs]``;
* dispatch, as the bench's rows (tasks and calls from
  :mod:`joblite.bench.sections.parallel`): 100,000 trivial (``x + 1``) and
  light (about 1 µs) tasks on 2 processes, and the stdlib
  ``ProcessPoolExecutor(2).map`` in ``ceil(len / 8)`` chunks; and with
  ``n_jobs=1``, and the plain loop.

``setup`` warms the workers up (one small call with the same settings), so
that neither library's worker start-up is timed.  asv runs each parameter
combination in its own process: joblib's workers never meet the standalone
loky that joblite uses (see
:func:`joblite.bench.sections.parallel.start_joblib_workers_first`).
joblib raises ``NotImplementedError`` in ``setup`` when it is not installed;
asv then skips it.
"""

import sys
from concurrent.futures import ProcessPoolExecutor

from joblite.bench.sections.parallel import DISPATCH_TASKS, dispatch_call, dispatch_executor_call, dispatch_loop
from joblite.bench.workloads import (
    array_argument_call,
    array_results_call,
    busy_tasks_call,
    parallel_array_memory,
    parallel_impls,
    random_f64,
    tiny_task,
    tiny_tasks_call,
    tiny_tasks_executor_call,
    tiny_tasks_loop,
    warm_up_array,
)

from . import available, scaled

IMPLS = ["joblite", "joblib"]

N_JOBS = 2
#: Tiny tasks per call (processes, threads and n_jobs=1).
TINY_TASKS = scaled(20_000)
#: Trivial and light tasks per call of the dispatch benchmarks (the bench's figure).
DISPATCH_COUNT = scaled(100_000)
#: The dispatch benchmarks' tasks, by a short name.
DISPATCH_KINDS = {"trivial": DISPATCH_TASKS["trivial (x + 1)"], "light": DISPATCH_TASKS["light (~1 µs)"]}
#: Tasks of 1 ms of CPU per call.
BUSY_TASKS = 200
#: Bytes of the array argument, and tasks given it.
ARRAY_BYTES = scaled(64 << 20)
ARRAY_TASKS = 8
#: Tasks returning an array, and float64 items of each result (8 MiB).
RESULT_TASKS = 8
RESULT_ITEMS = scaled(8 << 20) // 8

_DATA_CACHE = {}


def make_array():
    """The seeded 64 MiB random float64 array (memoised in this process)."""
    if "array" not in _DATA_CACHE:
        _DATA_CACHE["array"] = random_f64(ARRAY_BYTES)
    return _DATA_CACHE["array"]


def get_lib(impl):
    """Return the module of `impl` (``joblite`` or ``joblib``), which has ``Parallel`` and ``delayed``.

    Raises
    ------
    NotImplementedError
        If joblib is not installed.
    """
    return available(parallel_impls()[impl], impl)


def shut_down_joblib_workers():
    """Stop joblib's reusable loky executor, if this process started one, and wait for it.

    asv ends each benchmark process with ``os._exit``, which skips joblib's
    own clean-up: its memmap folder and its loky semaphores stayed in
    ``/dev/shm``, one set per process (joblite's standalone loky left none).
    """
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)


class _Calls:
    """A call per parameter combination, made in ``setup`` after a warm-up call."""

    params = [IMPLS]
    param_names = ["impl"]
    timeout = 300

    def time_call(self, *params):
        self.call()

    def teardown(self, *params):
        shut_down_joblib_workers()


class TinyTasksProcesses(_Calls):
    """20,000 tiny tasks on 2 processes: joblite, joblib (loky) and a chunked ProcessPoolExecutor.map."""

    params = [IMPLS + ["executor"]]

    def setup(self, impl):
        self.executor = None
        if impl == "executor":
            self.executor = ProcessPoolExecutor(N_JOBS)
            list(self.executor.map(tiny_task, range(100), chunksize=10))  # every worker started
            self.call = tiny_tasks_executor_call(self.executor, TINY_TASKS)
            return
        lib = get_lib(impl)
        tiny_tasks_call(lib, 100, n_jobs=N_JOBS)()
        self.call = tiny_tasks_call(lib, TINY_TASKS, n_jobs=N_JOBS)

    def teardown(self, impl):
        if self.executor is not None:
            self.executor.shutdown()
        super().teardown(impl)


class TinyTasksThreads(_Calls):
    """20,000 tiny tasks on 2 threads (``backend='threading'``)."""

    def setup(self, impl):
        lib = get_lib(impl)
        tiny_tasks_call(lib, 100, n_jobs=N_JOBS, backend="threading")()
        self.call = tiny_tasks_call(lib, TINY_TASKS, n_jobs=N_JOBS, backend="threading")


class BusyTasks(_Calls):
    """200 tasks of 1 ms of CPU time on 2 processes."""

    def setup(self, impl):
        lib = get_lib(impl)
        busy_tasks_call(lib, 10, n_jobs=N_JOBS)()
        self.call = busy_tasks_call(lib, BUSY_TASKS, n_jobs=N_JOBS)


class ArrayArgument(_Calls):
    """8 tasks on one 64 MiB float64 array argument, on 2 processes (the array is memory-mapped)."""

    def setup(self, impl):
        lib = get_lib(impl)
        a = make_array()
        array_argument_call(lib, warm_up_array(a), ARRAY_TASKS, n_jobs=N_JOBS)()  # memmapping ready too
        self.call = array_argument_call(lib, a, ARRAY_TASKS, n_jobs=N_JOBS)


class ArrayArgumentMemory:
    """Peak memory of the 64 MiB array call, in a fresh process, over the array's size.

    The array, plus what the call adds to the anonymous memory of the caller
    and of its workers, plus the memmap folder; 2.0 is the array and one copy
    in the folder.
    """

    params = [IMPLS]
    param_names = ["impl"]
    timeout = 300

    def setup(self, impl):
        get_lib(impl)

    def track_mem_over_array(self, impl):
        figures = parallel_array_memory(impl, ARRAY_BYTES, ARRAY_TASKS)
        if "error" in figures:
            raise RuntimeError(figures["error"])
        return figures["mem_over_array"]

    track_mem_over_array.unit = "bytes / array bytes"


class ArrayResults(_Calls):
    """8 tasks each returning an 8 MiB float64 array, on 2 processes."""

    def setup(self, impl):
        lib = get_lib(impl)
        array_results_call(lib, 2, 10, n_jobs=N_JOBS)()
        self.call = array_results_call(lib, RESULT_TASKS, RESULT_ITEMS, n_jobs=N_JOBS)


class Sequential(_Calls):
    """20,000 tiny tasks with ``n_jobs=1``, and the plain loop ``[f(x) for x in xs]``."""

    params = [IMPLS + ["loop"]]

    def setup(self, impl):
        if impl == "loop":
            self.call = tiny_tasks_loop(TINY_TASKS)
            return
        lib = get_lib(impl)
        tiny_tasks_call(lib, 100, n_jobs=1)()
        self.call = tiny_tasks_call(lib, TINY_TASKS, n_jobs=1)


class DispatchProcesses(_Calls):
    """100,000 trivial or light tasks on 2 processes; and a chunked ProcessPoolExecutor.map."""

    params = [IMPLS + ["executor"], list(DISPATCH_KINDS)]
    param_names = ["impl", "task"]

    def setup(self, impl, kind):
        task = DISPATCH_KINDS[kind]
        self.executor = None
        if impl == "executor":
            self.executor = ProcessPoolExecutor(N_JOBS)
            dispatch_executor_call(self.executor, task, 100, N_JOBS)()  # every worker started
            self.call = dispatch_executor_call(self.executor, task, DISPATCH_COUNT, N_JOBS)
            return
        lib = get_lib(impl)
        dispatch_call(lib, task, 100, n_jobs=N_JOBS)()
        self.call = dispatch_call(lib, task, DISPATCH_COUNT, n_jobs=N_JOBS)

    def teardown(self, impl, kind):
        if self.executor is not None:
            self.executor.shutdown()
        super().teardown(impl, kind)


class DispatchSequential(_Calls):
    """100,000 trivial or light tasks with ``n_jobs=1``; and the plain loop."""

    params = [IMPLS + ["loop"], list(DISPATCH_KINDS)]
    param_names = ["impl", "task"]

    def setup(self, impl, kind):
        task = DISPATCH_KINDS[kind]
        if impl == "loop":
            self.call = dispatch_loop(task, DISPATCH_COUNT)
            return
        lib = get_lib(impl)
        dispatch_call(lib, task, 100, n_jobs=1)()
        self.call = dispatch_call(lib, task, DISPATCH_COUNT, n_jobs=1)
