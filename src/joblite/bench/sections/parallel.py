"""Section ``parallel``: ``joblite.Parallel`` against ``joblib.Parallel``, the stdlib and a plain loop."""

import contextlib
import gc
import math
import sys

from ..report import MIB, Row, add_speedups, gib_per_s, progress, pure_twin_targets, ratio, size_label
from ..timing import best_time, best_times_in_turns
from ..workloads import (
    BUSY_SECONDS,
    PARALLEL_N_JOBS,
    array_argument_call,
    array_results_call,
    busy_task,
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

__all__ = [
    "DISPATCH_TASKS",
    "EXECUTOR_CHUNKS_PER_WORKER",
    "LOKY_FIRST_NOTE",
    "PARALLEL_SIZES",
    "PARALLEL_TARGETS",
    "dispatch_call",
    "dispatch_executor_call",
    "dispatch_loop",
    "light_task",
    "making_tasks",
    "parallel_section",
    "start_joblib_workers_first",
    "trivial_task",
]

SECTION = "parallel"

# Sizes of the parallel workload.  'quick' runs in a few seconds plus the start
# of the worker processes: 10k tiny tasks (for threads too: joblib's threading
# backend takes seconds on 100k), 200 busy tasks, 4 results, and a 64 MiB array
# (the memory figure has a few MiB of noise: the first memory-mapped task of a
# worker that had none in the warm-up imports numpy's loading code).
# 'repeat' is the most calls per figure (best counts; the calls of the
# implementations take turns), 'budget' (seconds) stops an implementation's
# repeats once its calls took that long; 'array_repeat' and 'busy_repeat' are
# the repeats of the slower cases.
PARALLEL_SIZES = {
    "full": {
        "tiny": 100_000,
        "dispatch": 100_000,
        "busy": 1000,
        "array_mib": 256,
        "array_tasks": 8,
        "results": 16,
        "result_mib": 8,
        "repeat": 5,
        "busy_repeat": 3,
        "array_repeat": 3,
        "budget": 3.0,
    },
    "quick": {
        "tiny": 10_000,
        "dispatch": 10_000,
        "busy": 200,
        "array_mib": 64,
        "array_tasks": 8,
        "results": 4,
        "result_mib": 8,
        "repeat": 3,
        "busy_repeat": 2,
        "array_repeat": 2,
        "budget": 0.5,
    },
}

# Goals from issues 5 and 13 ("Must reach"); see Row.targets for the sign convention.
PARALLEL_TARGETS = {
    "tiny processes": {"vs_joblib": 4, "time_vs_executor": -1.3},
    "tiny threads": {"vs_joblib": 10},
    "n_jobs=1": {"time_vs_loop": -3.0},
    "array argument": {"vs_joblib": 1.0, "mem_over_array": -2.2},
    "dispatch processes": {"time_vs_executor": -1.0},
    "dispatch n_jobs=1": {"time_vs_loop": -3.0},
}

#: Chunks per worker of the ``ProcessPoolExecutor.map`` baseline of the dispatch rows:
#: ``chunksize = ceil(tasks / (4 * workers))``, ``multiprocessing.Pool.map``'s own choice.
EXECUTOR_CHUNKS_PER_WORKER = 4


def trivial_task(x):
    """The trivial task of the dispatch rows: ``x + 1`` (tens of nanoseconds)."""
    return x + 1


def light_task(x):
    """The light task of the dispatch rows: about a microsecond of integer arithmetic."""
    for _ in range(8):
        x = (x * 7 + 3) % 1000003
    return x


#: The dispatch rows' tasks: label -> module-level function (workers import it by name).
DISPATCH_TASKS = {"trivial (x + 1)": trivial_task, "light (~1 µs)": light_task}


def dispatch_call(lib, task, count, **parallel_kwargs):
    """``lib.Parallel(**parallel_kwargs)(lib.delayed(task)(x) for x in range(count))``."""
    Parallel, delayed = lib.Parallel, lib.delayed
    return lambda: Parallel(**parallel_kwargs)(delayed(task)(x) for x in range(count))


def dispatch_loop(task, count):
    """The plain loop: ``[task(x) for x in range(count)]``."""
    return lambda: [task(x) for x in range(count)]


def dispatch_executor_call(executor, task, count, workers):
    """``list(executor.map(task, range(count), chunksize=...))``, 4 chunks a worker (multiprocessing's)."""
    chunksize = max(1, math.ceil(count / (EXECUTOR_CHUNKS_PER_WORKER * workers)))
    return lambda: list(executor.map(task, range(count), chunksize=chunksize))


#: Note on joblib's process rows when the standalone loky was imported before joblib's workers started.
LOKY_FIRST_NOTE = (
    "loky was imported before joblib's workers started: joblib's workers are the "
    "standalone loky's, which breaks the clean-up of joblib's memmaps"
)


def _check_parallel(name, key, same):
    if not same:
        raise RuntimeError(
            f"parallel benchmark, {name}: {key} returned other results than the "
            "tasks compute; its figures would be meaningless"
        )


def _time_parallel_case(name, calls, warm_ups, check, repeat, budget, missing=(), nbytes=None):
    """Warm up, time `calls` in turns; one row per implementation: the timed ones, then those not installed.

    The ratios are set by the caller.
    """
    for warm in warm_ups:
        warm()
    progress(f"  parallel: {name}, {', '.join(calls)} in turns")
    seconds = best_times_in_turns(calls, repeat, budget, check)
    rows = [Row(SECTION, name, impl, seconds[impl], nbytes, gib_per_s(nbytes, seconds[impl])) for impl in calls]
    return rows + [Row(SECTION, name, impl, note="not installed") for impl in missing]


def _time_ratio(rows, key, base, targets=None):
    """joblite's and joblib's ``key``: their time over `base`'s (lower is better); joblite's targets."""
    by_impl = {row.impl: row for row in rows}
    for impl in ("joblite", "joblib"):
        row = by_impl.get(impl)
        if row is not None and row.seconds is not None and base in by_impl:
            row.ratios[key] = ratio(row.seconds, by_impl[base].seconds)
    if targets:
        by_impl["joblite"].targets.update(targets)


def _equal_results(name, expected):
    """A ``check(key, result)`` for :func:`~joblite.bench.timing.best_times_in_turns`: is it `expected`?"""
    return lambda key, result: _check_parallel(name, key, result == expected)


def start_joblib_workers_first(libs, kwargs):
    """Start joblib's worker processes before anything imports the standalone ``loky``.

    joblib 1.6 vendors loky, and both copies register their process context
    under the name ``'loky'`` in ``multiprocessing``: a joblib pool started
    after ``import loky`` (as joblite's process backend does) runs the
    standalone loky's workers, whose resource tracker is not joblib's; joblib
    then cannot count the users of its memmapped files, retries removing its
    folder for a second at the end of every call with a large array, and
    leaves it until exit.  A joblib user does not have two lokys in one
    process, so the bench starts joblib's workers first (with the ``Parallel``
    arguments of every process case, so that joblib keeps them), and its
    figures are joblib's own.

    Parameters
    ----------
    libs : dict of str to module
        From :func:`~joblite.bench.workloads.parallel_impls`, installed ones only.
    kwargs : dict
        ``Parallel`` arguments of the process cases.

    Returns
    -------
    bool
        Whether the standalone loky was already imported (joblib's figures may
        then be off; the rows say so).
    """
    loky_first = "loky" in sys.modules
    if "joblib" in libs:
        progress("  parallel: starting joblib's worker processes")
        tiny_tasks_call(libs["joblib"], 100, **kwargs)()
    return loky_first


def tiny_process_rows(libs, missing, sizes, kwargs):
    """100k tiny tasks on 2 processes: joblite, joblib (loky), a chunked ProcessPoolExecutor.map.

    `kwargs` are the ``Parallel`` arguments of every process case (``n_jobs``,
    ``temp_folder``), the same throughout, so that each library keeps its workers.
    """
    from concurrent.futures import ProcessPoolExecutor

    count = sizes["tiny"]
    name = f"{count:,} tiny tasks, {PARALLEL_N_JOBS} processes"
    expected = tiny_tasks_loop(count)()
    with ProcessPoolExecutor(PARALLEL_N_JOBS) as executor:
        calls = {impl: tiny_tasks_call(lib, count, **kwargs) for impl, lib in libs.items()}
        calls["executor"] = tiny_tasks_executor_call(executor, count)
        warm_ups = [tiny_tasks_call(lib, 100, **kwargs) for lib in libs.values()]
        # all the executor's workers started (map submits every chunk at once)
        warm_ups.append(lambda: list(executor.map(tiny_task, range(100), chunksize=10)))
        rows = _time_parallel_case(
            name, calls, warm_ups, _equal_results(name, expected), sizes["repeat"], sizes["budget"], missing
        )
    add_speedups(rows, {"vs_joblib": "joblib"}, {})
    _time_ratio(rows, "time_vs_executor", "executor", PARALLEL_TARGETS["tiny processes"])
    return rows


def dispatch_process_rows(libs, missing, sizes, kwargs):
    """Trivial and light tasks on 2 processes: joblite, joblib and a chunked ``ProcessPoolExecutor.map``.

    The executor's chunks are ``ceil(tasks / (4 * workers))`` (multiprocessing's
    heuristic).  Every pool is started and warmed before the timing (one small
    call each), so that no pool's start-up is timed.
    """
    from concurrent.futures import ProcessPoolExecutor

    count = sizes["dispatch"]
    rows = []
    with ProcessPoolExecutor(PARALLEL_N_JOBS) as executor:
        for label, task in DISPATCH_TASKS.items():
            name = f"{count:,} {label} tasks, {PARALLEL_N_JOBS} processes"
            expected = dispatch_loop(task, count)()
            calls = {impl: dispatch_call(lib, task, count, **kwargs) for impl, lib in libs.items()}
            calls["executor"] = dispatch_executor_call(executor, task, count, PARALLEL_N_JOBS)
            warm_ups = [dispatch_call(lib, task, 100, **kwargs) for lib in libs.values()]
            warm_ups.append(dispatch_executor_call(executor, task, 100, PARALLEL_N_JOBS))  # every worker up
            case = _time_parallel_case(
                name, calls, warm_ups, _equal_results(name, expected), sizes["repeat"], sizes["budget"], missing
            )
            add_speedups(case, {"vs_joblib": "joblib"}, {})
            _time_ratio(case, "time_vs_executor", "executor", PARALLEL_TARGETS["dispatch processes"])
            rows += case
    return rows


#: The reference row of the ``n_jobs=1`` dispatch cases: only making the tasks, no call.
MAKING_TASKS = "making the tasks only"


def making_tasks(lib, task, count):
    """``[None for _ in (lib.delayed(task)(x) for x in range(count))]``: the tasks made, none run.

    What any ``Parallel`` call pays before its first task runs: the floor of
    the ``n_jobs=1`` rows.
    """
    delayed = lib.delayed
    return lambda: [None for _ in (delayed(task)(x) for x in range(count))]


def dispatch_sequential_rows(libs, missing, sizes):
    """Trivial and light tasks with ``n_jobs=1`` against the plain loop ``[f(x) for x in xs]``.

    A reference row times only making the tasks with joblite's ``delayed``
    (``delayed(f)(x) for x in xs``, consumed, none run), in the same turns.
    """
    count = sizes["dispatch"]
    rows = []
    for label, task in DISPATCH_TASKS.items():
        name = f"{count:,} {label} tasks, n_jobs=1"
        loop = dispatch_loop(task, count)
        expected = loop()
        calls = {impl: dispatch_call(lib, task, count, n_jobs=1) for impl, lib in libs.items()}
        calls["loop"] = loop
        calls[MAKING_TASKS] = making_tasks(libs["joblite"], task, count)
        warm_ups = [dispatch_call(lib, task, 100, n_jobs=1) for lib in libs.values()]
        check = _equal_results(name, expected)
        case = _time_parallel_case(
            name,
            calls,
            warm_ups,
            lambda key, result: key == MAKING_TASKS or check(key, result),
            sizes["repeat"],
            sizes["budget"],
            missing,
        )
        add_speedups(case, {"vs_joblib": "joblib"}, {})
        _time_ratio(case, "time_vs_loop", "loop", PARALLEL_TARGETS["dispatch n_jobs=1"])
        by_impl = {row.impl: row for row in case}
        by_impl[MAKING_TASKS].ratios["time_vs_loop"] = ratio(by_impl[MAKING_TASKS].seconds, by_impl["loop"].seconds)
        rows += case
    return rows


def tiny_thread_rows(libs, missing, sizes):
    """The tiny tasks on 2 threads: joblite's threading backend against joblib's."""
    count = sizes["tiny"]
    name = f"{count:,} tiny tasks, {PARALLEL_N_JOBS} threads"
    expected = tiny_tasks_loop(count)()
    kwargs = {"n_jobs": PARALLEL_N_JOBS, "backend": "threading"}
    calls = {impl: tiny_tasks_call(lib, count, **kwargs) for impl, lib in libs.items()}
    warm_ups = [tiny_tasks_call(lib, 100, **kwargs) for lib in libs.values()]
    rows = _time_parallel_case(
        name, calls, warm_ups, _equal_results(name, expected), sizes["repeat"], sizes["budget"], missing
    )
    add_speedups(rows, {"vs_joblib": "joblib"}, PARALLEL_TARGETS["tiny threads"])
    return rows


def busy_task_rows(libs, missing, sizes, kwargs):
    """1,000 tasks of 1 ms of busy CPU on 2 processes; the plain loop (1 CPU) for reference."""
    count = sizes["busy"]
    name = f"{count:,} tasks of {BUSY_SECONDS * 1e3:g} ms (busy loop), {PARALLEL_N_JOBS} processes"
    calls = {impl: busy_tasks_call(lib, count, **kwargs) for impl, lib in libs.items()}
    warm_ups = [busy_tasks_call(lib, 10, **kwargs) for lib in libs.values()]
    rows = _time_parallel_case(
        name,
        calls,
        warm_ups,
        lambda key, result: _check_parallel(name, key, len(result) == count),
        sizes["busy_repeat"],
        sizes["budget"],
        missing,
    )
    progress(f"  parallel: {name}, plain loop")
    loop = best_time(lambda: [busy_task(BUSY_SECONDS) for _ in range(count)], 1)
    rows.insert(len(calls), Row(SECTION, name, "loop", loop))
    add_speedups(rows, {"vs_joblib": "joblib"}, {})
    _time_ratio(rows, "time_vs_loop", "loop")
    return rows


def array_argument_rows(libs, missing, sizes, kwargs):
    """8 tasks on one 256 MiB float64 array argument: time, and peak memory in fresh processes."""
    import numpy as np

    nbytes, tasks = sizes["array_mib"] * MIB, sizes["array_tasks"]
    name = f"{tasks} tasks on one {size_label(nbytes)} f64 array, {PARALLEL_N_JOBS} processes"
    progress(f"  parallel: building a {size_label(nbytes)} float64 array")
    a = random_f64(nbytes)
    total = float(a.sum())
    small = warm_up_array(a)
    calls = {impl: array_argument_call(lib, a, tasks, **kwargs) for impl, lib in libs.items()}
    warm_ups = [array_argument_call(lib, small, tasks, **kwargs) for lib in libs.values()]
    rows = _time_parallel_case(
        name,
        calls,
        warm_ups,
        lambda key, result: _check_parallel(name, key, bool(np.isclose(sum(result), total))),
        sizes["array_repeat"],
        sizes["budget"],
        missing,
        nbytes,
    )
    del a, small, calls
    gc.collect()
    for row in rows:
        if row.seconds is None:
            continue
        progress(f"  parallel: {name}, peak memory with {row.impl} in a fresh process")
        figures = parallel_array_memory(row.impl, nbytes, tasks, kwargs.get("temp_folder"))
        if "error" in figures:
            row.note = f"peak memory not measured: {figures['error']}"
            continue
        row.ratios["mem_over_array"] = figures["mem_over_array"]
        row.ratios["total_mem_over_array"] = figures["total_over_array"]
        row.note = _memory_note(figures)
    add_speedups(rows, {"vs_joblib": "joblib"}, PARALLEL_TARGETS["array argument"])
    return rows


def _memory_note(figures):
    def mib(value):
        return f"{value / MIB:.0f} MiB"

    peak = figures["at_peak"]
    note = (
        f"peak {mib(figures['peak'])} = caller {mib(peak['caller'])} + workers "
        f"{mib(peak['workers'])} + memmap folder {mib(peak['folder'])}; before the call "
        f"{mib(figures['idle'])} (array {mib(figures['nbytes'])}); "
        f"{figures['samples']} samples"
    )
    if figures["left"]:
        note += (
            f"; {len(figures['left'])} memmap folder(s) still there after the call, "
            f"{mib(sum(figures['left'].values()))} in them"
        )
    return note


def array_result_rows(libs, missing, sizes, kwargs):
    """16 tasks each returning an 8 MiB float64 array, on 2 processes."""
    import numpy as np

    tasks, count = sizes["results"], sizes["result_mib"] * MIB // 8
    nbytes = tasks * count * 8
    name = f"{tasks} tasks returning {size_label(count * 8)} f64 arrays, {PARALLEL_N_JOBS} processes"
    calls = {impl: array_results_call(lib, tasks, count, **kwargs) for impl, lib in libs.items()}
    warm_ups = [array_results_call(lib, 2, 10, **kwargs) for lib in libs.values()]

    def check(key, results):
        _check_parallel(
            name,
            key,
            len(results) == tasks
            and all(
                isinstance(r, np.ndarray) and r.shape == (count,) and r[0] == i and r[-1] == i
                for i, r in enumerate(results)
            ),
        )

    rows = _time_parallel_case(name, calls, warm_ups, check, sizes["repeat"], sizes["budget"], missing, nbytes)
    add_speedups(rows, {"vs_joblib": "joblib"}, {})
    return rows


def sequential_rows(libs, missing, sizes):
    """``n_jobs=1`` on the tiny tasks against the plain loop ``[f(x) for x in xs]``."""
    count = sizes["tiny"]
    name = f"{count:,} tiny tasks, n_jobs=1"
    loop = tiny_tasks_loop(count)
    expected = loop()
    calls = {impl: tiny_tasks_call(lib, count, n_jobs=1) for impl, lib in libs.items()}
    calls["loop"] = loop
    warm_ups = [tiny_tasks_call(lib, 100, n_jobs=1) for lib in libs.values()]
    rows = _time_parallel_case(
        name, calls, warm_ups, _equal_results(name, expected), sizes["repeat"], sizes["budget"], missing
    )
    add_speedups(rows, {"vs_joblib": "joblib"}, {})
    _time_ratio(rows, "time_vs_loop", "loop", PARALLEL_TARGETS["n_jobs=1"])
    return rows


def parallel_section(context):
    """Time ``Parallel`` of joblite against joblib's on the same workloads, in the same run.

    The workload (sizes for the default run; ``quick`` uses 10,000 tiny,
    trivial and light tasks, 200 busy tasks, a 64 MiB array and 4 results), each timed for
    joblite and joblib with ``Parallel(n_jobs=2)(delayed(f)(x) for x in
    ...)`` as a user writes it, their calls taking turns, best of repeats
    (the tasks and calls are those of :mod:`joblite.bench.workloads`, and
    of this module for the dispatch rows):

    * 100,000 tiny tasks (``tiny_task``, about 0.2 µs each) on
      2 processes (loky, both libraries' default), and the stdlib
      ``ProcessPoolExecutor(2).map(f, xs, chunksize=1000)``;
    * the same on 2 threads (``backend='threading'``);
    * 1,000 tasks of 1 ms of busy CPU (``busy_task``, a spin on the
      thread's CPU time, not a sleep: both CPUs are busy, so every bit of
      overhead shows) on 2 processes, and the plain loop (one CPU; the ideal
      on two is half of it);
    * 8 tasks ``array_part_sum`` on one 256 MiB random float64 array
      argument (each task gets the whole array and sums an eighth of it) on
      2 processes; and the peak memory of such a call, measured in a fresh
      process per library (``parallel_array_memory``);
    * 16 tasks each returning an 8 MiB float64 array (``full_array``);
    * ``n_jobs=1`` on the tiny tasks against the plain loop
      ``[tiny_task(x) for x in xs]``;
    * dispatch: 100,000 trivial tasks (``trivial_task``, ``x + 1``) and
      100,000 light ones (``light_task``, about 1 µs) on 2 processes, against
      the stdlib ``ProcessPoolExecutor(2).map(f, xs, chunksize=ceil(len(xs) /
      8))`` (multiprocessing's chunk heuristic, 4 chunks a worker), and with
      ``n_jobs=1`` against the plain loop ``[f(x) for x in xs]`` (and, for
      reference, the time of only making the tasks ``delayed(f)(x) for x in
      xs``, which every call pays).

    Worker processes (and threads) are warmed up first: one small call with
    the same settings before the timing, so that neither library's worker
    start-up is timed.  Every timed call's results are checked once.  The
    pools stay up between calls, as each library keeps them.

    Parameters
    ----------
    context : joblite.bench.sections.Context
        ``quick``: small sizes and fewer repeats, to run in a few seconds
        plus the start of the worker processes.  ``tmpdir``: when given, the
        memmap folders of both libraries go under a fresh folder made in it
        (``temp_folder``), removed at the end; otherwise each library
        chooses as it does for its users (``/dev/shm`` when it has room).

    Returns
    -------
    list of Row
        Ratios: ``vs_joblib`` (times faster than joblib), ``time_vs_executor``
        and ``time_vs_loop`` (time over the baseline's, lower is better),
        ``mem_over_array`` (peak memory of the array case: the array plus what
        the call adds, over the array size; the targeted figure) and
        ``total_mem_over_array`` (the whole peak, interpreters included, over
        the array size).
    """
    sizes = context.sizes(PARALLEL_SIZES)
    impls = parallel_impls()
    libs = {impl: lib for impl, lib in impls.items() if lib is not None}
    missing = [impl for impl, lib in impls.items() if lib is None]
    rows = []
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(context.scratch_folder()) if context.tmpdir is not None else None
        kwargs = {"n_jobs": PARALLEL_N_JOBS}
        if folder is not None:
            kwargs["temp_folder"] = folder
        progress(f"parallel: memmap folders in {folder or 'each library default temp folder'}")
        loky_first = start_joblib_workers_first(libs, kwargs)
        rows += tiny_process_rows(libs, missing, sizes, kwargs)
        rows += dispatch_process_rows(libs, missing, sizes, kwargs)
        rows += tiny_thread_rows(libs, missing, sizes)
        rows += busy_task_rows(libs, missing, sizes, kwargs)
        rows += array_argument_rows(libs, missing, sizes, kwargs)
        gc.collect()
        rows += array_result_rows(libs, missing, sizes, kwargs)
        gc.collect()
        rows += sequential_rows(libs, missing, sizes)
        rows += dispatch_sequential_rows(libs, missing, sizes)
    if loky_first:
        for row in rows:
            if row.impl == "joblib" and row.seconds is not None and "processes" in row.name:
                row.note = "; ".join(filter(None, [row.note, LOKY_FIRST_NOTE]))
    pure_twin_targets(rows, kept=["mem_over_array"])
    return rows
