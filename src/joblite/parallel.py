"""``Parallel`` and ``delayed``: joblib's readable parallel loops, with low per-task overhead.

``Parallel(n_jobs=2)(delayed(f)(x) for x in xs)`` cuts the tasks into
batches whose size follows the measured task durations, hands them to a
backend (:mod:`joblite.backends`: loky processes, threads, or the caller),
and collects the results in order (``return_as='list'`` or
``'generator'``) or as they finish (``'generator_unordered'``).  See the
parallel guide for batching, memmapping, progress, failures and thread
limits.
"""

from __future__ import annotations

import builtins
import collections
import concurrent.futures
import functools
import gc
import itertools
import math
import multiprocessing
import numbers
import re
import sys
import threading
import time
import uuid
import warnings

from . import _impl, _validate
from ._progress import Progress
from .backends import (
    Batch,
    ParallelBackendBase,
    check_backend,
    check_n_jobs,
    cpu_count,
    default_backend_name,
    get_backend_factory,
    in_worker,
    make_backend,
    nested_backend,
    register_parallel_backend,
    resolve_n_jobs,
    running_tasks,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, Literal

    from typing_extensions import Self

    from ._typing import BackendSpec, Task, WorkerMmapMode

__all__ = [
    "Parallel",
    "delayed",
    "parallel_config",
    "parallel_backend",
    "register_parallel_backend",
    "cpu_count",
    "effective_n_jobs",
    "ParallelBackendBase",
    "ParallelTimeoutError",
]

# joblib.parallel names its backend classes; code written for it (its custom backend guide's
# get_nested_backend) imports them from there.  Imported when first asked for (loky is slow).
_BACKEND_CLASSES = {
    "LokyBackend": "processes",
    "MultiprocessingBackend": "processes",
    "ThreadingBackend": "threads",
    "SequentialBackend": "sequential",
}


def __getattr__(name):
    module = _BACKEND_CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"joblite.backends.{module}"), name)


#: ``delayed(function)(*args, **kwargs)`` returns the task ``(function, args, kwargs)``.
delayed = _impl.tasks.Delayed

RETURN_AS = ("list", "generator", "generator_unordered")
_UNSET: Any = object()
_DEFAULTS: dict[str, Any] = {
    "backend": None,
    "n_jobs": None,
    "verbose": 0,
    "temp_folder": None,
    "max_nbytes": "1M",
    "mmap_mode": "r",
    "prefer": None,
    "require": None,
    "inner_max_num_threads": None,
    "backend_kwargs": {},
}
_CONFIG = threading.local()


class ParallelTimeoutError(multiprocessing.TimeoutError, builtins.TimeoutError):
    """A task ran longer than ``Parallel``'s `timeout`.

    Both the builtin :class:`TimeoutError` and :class:`multiprocessing.TimeoutError`
    (what joblib raises), so that ``except`` clauses written for either catch it.
    """


def _config_stack():
    stack = getattr(_CONFIG, "stack", None)
    if stack is None:
        stack = _CONFIG.stack = [dict(_DEFAULTS)]
    return stack


def _current_config():
    return _config_stack()[-1]


class parallel_config:
    """Settings for the ``Parallel`` calls made inside a ``with`` block (in this thread).

    Nested blocks override the settings they name; the others keep the
    outer block's value.

    Parameters
    ----------
    backend : str, backend instance or multiprocessing context, optional
        As for :class:`Parallel`.
    n_jobs : int, optional
    verbose : int, optional
    temp_folder : str, optional
    max_nbytes : int or str, optional
    mmap_mode : {'r', 'r+', 'w+', 'c'}, optional
        ``'w+'`` is taken as ``'r+'``, as joblib does.
    prefer : {'processes', 'threads'}, optional
    require : {'sharedmem'}, optional
    inner_max_num_threads : int, optional
        Threads each worker process gives BLAS/OpenMP libraries (default:
        ``cpu_count() // n_jobs``).
    **backend_params
        Keyword arguments for the backend.

    Raises
    ------
    ValueError
        If a setting is not valid.
    """

    def __init__(
        self,
        backend: BackendSpec | None = _UNSET,
        *,
        n_jobs: int | None = _UNSET,
        verbose: int = _UNSET,
        temp_folder: str | None = _UNSET,
        max_nbytes: int | str | None = _UNSET,
        mmap_mode: WorkerMmapMode = _UNSET,
        prefer: Literal["processes", "threads"] | None = _UNSET,
        require: Literal["sharedmem"] | None = _UNSET,
        inner_max_num_threads: int | None = _UNSET,
        **backend_params: Any,
    ) -> None:
        settings = {
            "backend": backend,
            "n_jobs": n_jobs,
            "verbose": verbose,
            "temp_folder": temp_folder,
            "max_nbytes": max_nbytes,
            "mmap_mode": mmap_mode,
            "prefer": prefer,
            "require": require,
            "inner_max_num_threads": inner_max_num_threads,
        }
        self.settings = {key: value for key, value in settings.items() if value is not _UNSET}
        if backend_params:
            self.settings["backend_kwargs"] = backend_params
        _check_settings(self.settings)

    def __enter__(self) -> Self:
        stack = _config_stack()
        merged = dict(stack[-1])
        merged.update(self.settings)
        stack.append(merged)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _config_stack().pop()


def parallel_backend(
    backend: BackendSpec, n_jobs: int = -1, inner_max_num_threads: int | None = None, **backend_params: Any
) -> parallel_config:
    """Deprecated alias of :class:`parallel_config`, as in joblib.

    Returns
    -------
    parallel_config
    """
    warnings.warn(
        "parallel_backend is deprecated; use parallel_config(backend=..., n_jobs=...)", DeprecationWarning, stacklevel=2
    )
    return parallel_config(
        backend=backend, n_jobs=n_jobs, inner_max_num_threads=inner_max_num_threads, **backend_params
    )


def _check_settings(settings):
    if settings.get("prefer") not in (None, "processes", "threads"):
        raise ValueError(f"prefer={settings['prefer']!r} must be 'processes', 'threads' or None")
    if settings.get("require") not in (None, "sharedmem"):
        raise ValueError(f"require={settings['require']!r} must be 'sharedmem' or None")
    _validate.check_mmap_mode(settings.get("mmap_mode", "r"), none_allowed=False)
    if settings.get("n_jobs") is not None:
        check_n_jobs(settings["n_jobs"])
    backend = settings.get("backend")
    if backend is not None:
        check_backend(backend)
    inner = settings.get("inner_max_num_threads")
    if inner is not None and (isinstance(inner, bool) or not isinstance(inner, int) or inner < 1):
        raise ValueError(f"inner_max_num_threads={inner!r} must be an int >= 1")


def effective_n_jobs(n_jobs: int | None = -1) -> int:
    """The number of workers `n_jobs` gives with the current backend (see :class:`Parallel`).

    Parameters
    ----------
    n_jobs : int, optional
        -1 (default): all CPUs; -2 all but one, and so on.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If `n_jobs` is 0.
    """
    config = _current_config()
    if n_jobs is None:
        n_jobs = config["n_jobs"] or 1
    check_n_jobs(n_jobs)
    backend = config["backend"]
    if in_worker():
        backend = nested_backend()
        if backend is None:
            return 1
        return make_backend(backend).effective_n_jobs(n_jobs)
    if backend is None:
        return resolve_n_jobs(n_jobs)
    return make_backend(backend, **config["backend_kwargs"]).effective_n_jobs(n_jobs)


class _AutoBatcher:
    """Batch sizes from measured task durations: `target` seconds of work per batch.

    The first batches hold one task each; after that, the size follows the
    seconds per task measured: a faster measure at once, a slower one through
    an exponential average (weighted by the batch's share of the current
    size), so it reacts when task durations change.  A fixed `batch_size` is
    used as given.
    """

    def __init__(self, batch_size, total, n_jobs, target, largest, backend_size=None):
        self.target = target
        self.fixed = None if batch_size == "auto" else batch_size
        self.backend_size = backend_size if self.fixed is None else None
        self.seconds_per_task = None
        self.limit = largest if total is None else max(1, min(largest, -(-total // (4 * n_jobs))))

    @property
    def measured(self):
        """Whether the sizes come from a measure (or are fixed), rather than a first guess of 1."""
        return self.fixed is not None or self.backend_size is not None or self.seconds_per_task is not None

    def size(self):
        if self.fixed is not None:
            return self.fixed
        if self.backend_size is not None:
            size = self.backend_size()
            if size is not None:
                return size
        if self.seconds_per_task is None:
            return 1
        return self._measured_size(self.seconds_per_task)

    def _measured_size(self, seconds_per_task):
        return max(1, min(self.limit, int(self.target / max(seconds_per_task, 1e-9))))

    def record(self, count, seconds):
        per_task = seconds / count
        previous = self.seconds_per_task
        # Faster than estimated: believed at once (a small batch's time is mostly the fixed
        # cost of a batch, which a larger one shares: on dask, a millisecond or more).
        # Slower: averaged, so that one slow batch does not shrink the next ones too much, and
        # in proportion to the batch's share of the current size: the late return of a small
        # batch (sent at the end of the iterable, or while the sizes grew) is the fixed cost
        # of a batch and the wait behind others, not the cost of its tasks.
        if previous is None or per_task < previous:
            self.seconds_per_task = per_task
        else:
            weight = 0.5 * min(1.0, count / self._measured_size(previous))
            self.seconds_per_task = previous + weight * (per_task - previous)


def _describe(task, index):
    import reprlib

    try:
        function, args, kwargs = task
        name = getattr(function, "__qualname__", None) or repr(function)
        arguments = [reprlib.repr(arg) for arg in args] + [f"{k}={reprlib.repr(v)}" for k, v in kwargs.items()]
        return f"task {index}, {name}({', '.join(arguments)})"
    except Exception:
        return f"task {index}"


def _check_timeout(timeout):
    """Seconds from `timeout`, or None for no timeout (None, or infinity)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise ValueError(f"timeout={timeout!r} must be a number of seconds > 0, or None")
    seconds = float(timeout)
    if math.isnan(seconds):
        raise ValueError(f"timeout={timeout!r} is not a number of seconds; use None (or inf) for no timeout")
    if seconds <= 0:
        # joblib accepts it, and then every task that is not already done times out
        raise ValueError(f"timeout={timeout!r} must be a number of seconds > 0, or None")
    return None if math.isinf(seconds) else seconds


def _pre_dispatch_batches(pre_dispatch, n_jobs):
    if pre_dispatch == "all":
        return None
    if isinstance(pre_dispatch, int) and not isinstance(pre_dispatch, bool):
        value = pre_dispatch
    elif (
        isinstance(pre_dispatch, str)
        and re.fullmatch(r"\s*(\d+|n_jobs)(\s*[*+]\s*(\d+|n_jobs))*\s*", pre_dispatch)
        and "**" not in pre_dispatch
    ):
        value = _evaluate(pre_dispatch.replace("n_jobs", str(n_jobs)))
    else:
        raise ValueError(
            f"pre_dispatch={pre_dispatch!r} must be 'all', an int or an expression of n_jobs such as '2 * n_jobs'"
        )
    if value < 1:
        raise ValueError(f"pre_dispatch={pre_dispatch!r} gives {value} batches; it must give at least 1")
    return value


@functools.lru_cache(maxsize=64)
def _evaluate(expression):
    """The value of `expression`: digits, ``*`` and ``+`` only (checked); cached, as eval is slow."""
    return eval(expression, {"__builtins__": {}})


class Parallel:
    """Run tasks made with :func:`delayed` on workers; joblib's ``Parallel``.

    ``Parallel(n_jobs=2)(delayed(f)(x) for x in xs)`` returns
    ``[f(x) for x in xs]``.  Used as a context manager, it keeps its workers
    across calls.

    Parameters
    ----------
    n_jobs : int, optional
        Workers: -1 all CPUs, -2 all but one and so on; None takes the
        :class:`parallel_config` value, else the backend's default (1; -1,
        the whole cluster, for dask).  1 runs every task in the caller
        (except on dask, where it runs one batch at a time on the cluster).
        0 raises ``ValueError``.
    backend : str, backend instance or multiprocessing context, optional
        ``'loky'`` (default: processes), ``'threading'``, ``'sequential'``,
        ``'multiprocessing'`` (loky processes too), ``'dask'`` (a
        dask.distributed cluster: see :class:`joblite.backends.dask.DaskBackend`),
        a registered name (joblite's, else joblib's registry), an instance
        (of :class:`ParallelBackendBase`, or written to joblib's backend
        protocol), or a ``multiprocessing`` context (a pool of processes of
        its start method).
    return_as : {'list', 'generator', 'generator_unordered'}, optional
        A list; a generator of results in task order as they become
        available (memory bounded by `pre_dispatch`); or a generator in
        completion order.
    verbose : int, optional
        Progress lines on stderr above 0, as joblib prints them.
    timeout : float, optional
        Seconds a task may run; a longer task raises
        ``ParallelTimeoutError`` (a builtin ``TimeoutError`` and a
        ``multiprocessing.TimeoutError``) naming it, and worker processes are killed (threads cannot be).  With a
        timeout, tasks are batched one by one.  Not applied with ``n_jobs=1``.
        None or ``inf``: no timeout.
    pre_dispatch : int, str, optional
        Batches handed out ahead of the results: ``'2 * n_jobs'`` (default),
        an int, or ``'all'``.
    batch_size : int or 'auto', optional
        Tasks per batch; ``'auto'`` (default) sizes batches from measured
        durations for about 20 ms of work each (0.3 s on dask, where a task
        costs about a millisecond).
    temp_folder : str, optional
        Where large array arguments are memory-mapped (see the guide).  It
        must exist: joblite does not create it.
    max_nbytes : int or str or None, optional
        Arrays of at least this size (``'1M'`` default) are sent to process
        workers as read-only memmaps (on dask: sent to the cluster once per
        call); None never.
    mmap_mode : {'r', 'r+', 'w+', 'c'}, optional
        How workers map them (default ``'r'``; ``'w+'`` is taken as ``'r+'``, as joblib does).
    prefer : {'processes', 'threads'}, optional
        The default backend to use when none is given.
    require : {'sharedmem'}, optional
        Tasks must share the caller's memory: threads.
    progress : bool or 'force', optional
        A tqdm bar (a text bar without tqdm) on stderr when it is a terminal,
        or always with ``'force'``.
    callback : callable, optional
        ``callback(index, result)`` in the caller's process for each finished
        task, with every backend.
    **backend_kwargs
        Passed to the backend (e.g. ``idle_worker_timeout`` for loky,
        ``client`` for dask).

    Raises
    ------
    ValueError
        For a bad `n_jobs`, `backend`, `return_as`, `batch_size`,
        `pre_dispatch`, `timeout` (also 0, negative or nan), `prefer` or
        `require`, naming it.
    """

    def __init__(
        self,
        n_jobs: int | None = None,
        backend: BackendSpec | None = None,
        return_as: Literal["list", "generator", "generator_unordered"] = "list",
        verbose: int = _UNSET,
        timeout: float | None = None,
        pre_dispatch: int | str = "2 * n_jobs",
        batch_size: int | Literal["auto"] = "auto",
        temp_folder: str | None = _UNSET,
        max_nbytes: int | str | None = _UNSET,
        mmap_mode: WorkerMmapMode = _UNSET,
        prefer: Literal["processes", "threads"] | None = _UNSET,
        require: Literal["sharedmem"] | None = _UNSET,
        progress: bool | Literal["force"] = False,
        callback: Callable[[int, Any], object] | None = None,
        **backend_kwargs: Any,
    ) -> None:
        config = _current_config()
        pick = lambda value, name: config[name] if value is _UNSET else value  # noqa: E731
        self.verbose = pick(verbose, "verbose")
        self.temp_folder = pick(temp_folder, "temp_folder")
        self.max_nbytes = pick(max_nbytes, "max_nbytes")
        self.mmap_mode = pick(mmap_mode, "mmap_mode")
        self.prefer = pick(prefer, "prefer")
        self.require = pick(require, "require")
        self.inner_max_num_threads = config["inner_max_num_threads"]
        _check_settings({"prefer": self.prefer, "require": self.require, "mmap_mode": self.mmap_mode})
        if self.prefer == "processes" and self.require == "sharedmem":
            raise ValueError("prefer='processes' contradicts require='sharedmem' (processes share no memory)")
        if return_as not in RETURN_AS:
            raise ValueError(f"return_as={return_as!r} must be one of {RETURN_AS}")
        if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size={batch_size!r} must be 'auto' or an int >= 1")
        timeout = _check_timeout(timeout)
        if progress not in (False, True, "force"):
            raise ValueError(f"progress={progress!r} must be True, False or 'force'")
        if callback is not None and not callable(callback):
            raise ValueError(f"callback={callback!r} must be callable")
        self.return_as = return_as
        self.timeout = timeout
        self.batch_size = batch_size
        self.progress = progress
        self.callback = callback
        if n_jobs is None:
            n_jobs = config["n_jobs"]  # None: the backend's default
        if n_jobs is not None:
            check_n_jobs(n_jobs)
        self.n_jobs = n_jobs
        self._backend = self._choose_backend(backend, config, backend_kwargs)
        self._n_workers = self._backend.effective_n_jobs(self.n_jobs)
        self.pre_dispatch = pre_dispatch
        self._pre_dispatch = _pre_dispatch_batches(pre_dispatch, self._n_workers)
        self._managed = False
        self._running = False
        self._id = uuid.uuid4().hex  # joblib's; its backends name per-Parallel resources after it
        self._progress = None
        self._dispatching = False
        self.n_tasks = None
        self.n_dispatched_batches = self.n_dispatched_tasks = self.n_completed_tasks = 0

    def _choose_backend(self, backend, config, backend_kwargs):
        explicit = backend is not None  # given to Parallel itself, not by parallel_config
        if backend is None:
            backend = config["backend"]
            kwargs = dict(config["backend_kwargs"])
        else:
            kwargs = {}
        kwargs.update(backend_kwargs)
        if backend is None:
            threads = self.prefer == "threads" or self.require == "sharedmem"
            backend = "threading" if threads else default_backend_name()
        if in_worker() and not explicit:
            backend = nested_backend() or "sequential"
            kwargs = {}
        instance = make_backend(backend, **kwargs)
        if self.require == "sharedmem" and not instance.supports_sharedmem:
            if explicit:
                raise ValueError(f"backend={backend!r} does not share memory, but require='sharedmem'")
            instance = make_backend("threading", **kwargs)
        if self.n_jobs is None:
            self.n_jobs = instance.default_n_jobs
        if (
            instance.sequential_with_one_worker
            and instance.effective_n_jobs(self.n_jobs) == 1
            and not isinstance(instance, _sequential_class())
        ):
            instance = _sequential_class()()  # one worker: the caller does it faster
        return instance

    # -- context manager: workers kept across calls ------------------------------------------
    def __enter__(self) -> Self:
        self._n_workers = self._backend.configure(self.n_jobs, self)
        self._managed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._managed = False
        self._backend.stop()

    def __repr__(self):
        return f"Parallel(n_jobs={self.n_jobs}, backend={type(self._backend).__name__})"

    # -- what joblib's backends and Parallel subclasses read ---------------------------------
    @property
    def _backend_kwargs(self):
        """The keyword arguments joblib's ``Parallel`` gives its backend's ``configure``."""
        from ._memmapping import parse_max_nbytes

        return {
            "max_nbytes": parse_max_nbytes(self.max_nbytes),
            "temp_folder": self.temp_folder,
            "mmap_mode": self.mmap_mode,
            "prefer": self.prefer,
            "require": self.require,
            "verbose": max(0, self.verbose - 50),
            "context": multiprocessing.get_context(),
        }

    def _print(self, msg):
        """Write ``[Parallel(...)]: msg`` on stderr (stdout from verbose 50), if verbose; as joblib."""
        if self.verbose:
            stream = sys.stderr if self.verbose < 50 else sys.stdout
            stream.write(f"[Parallel(n_jobs={self.n_jobs})]: {msg}\n")

    def print_progress(self) -> None:
        """Report progress: called after each finished batch, and once when the call ends.

        The default prints the ``verbose`` lines.  A subclass may override it
        (joblib's tqdm recipe), reading :attr:`n_completed_tasks`,
        :attr:`n_dispatched_tasks`, :attr:`n_dispatched_batches`,
        :attr:`n_tasks` (the number of tasks, or None when the iterable has
        no length) and :meth:`_is_completed`.
        """
        if self._progress is not None:
            self._progress.report(self._is_completed())

    def _is_completed(self):
        """Whether every task of the call was handed out and has finished (joblib's name)."""
        return not self._dispatching and self.n_completed_tasks == self.n_dispatched_tasks

    # -- a call ----------------------------------------------------------------------------
    def __call__(self, iterable: Iterable[Task]) -> Any:
        """Run the tasks of `iterable`; return their results (see `return_as`).

        Raises
        ------
        Exception
            The first exception a task raised, with its original type (and the
            worker's traceback as its ``__cause__`` for processes).
        ParallelTimeoutError
            If a task ran longer than `timeout`: both the builtin
            ``TimeoutError`` and ``multiprocessing.TimeoutError``.
        joblite.backends.processes.WorkerDiedError
            (loky's ``TerminatedWorkerError``) if a worker process died.
        TypeError
            If an item of `iterable` is not a ``delayed`` task.
        OSError
            On process backends, if a large array argument cannot be written
            for memmapping (the errno of the failure, ``ENOSPC`` for a full
            disk, naming the folder and the bytes needed), or if the
            `temp_folder` given does not exist (``FileNotFoundError``).
        """
        if self._running:
            raise RuntimeError("this Parallel is already running a call (use one Parallel per thread)")
        chunks = self._results(iterable, ordered=self.return_as != "generator_unordered")
        next(chunks)  # as joblib: the first batches are dispatched now, not at the first next()
        if self.return_as == "list":
            output = []
            for results in chunks:
                output.extend(results)
            return output
        return _flatten(chunks)

    def _results(self, iterable, ordered):
        """Generator of the results of a call, a batch's list at a time."""
        total = len(iterable) if hasattr(iterable, "__len__") else None
        backend = self._backend
        self._running = True
        self.n_tasks = total
        self.n_dispatched_batches = self.n_dispatched_tasks = self.n_completed_tasks = 0
        self._dispatching = True
        self._progress = None
        completed = False
        pending = {}
        failure = None
        try:
            # Also inside a with block: after an abort or a broken pool this makes
            # fresh workers, and otherwise returns the same ones at once.
            n_workers = backend.configure(self.n_jobs, self)
            self._print(f"Using backend {type(backend).__name__} with {n_workers} concurrent workers.")
            self._progress = Progress(total, self.verbose, self.progress, self.callback, n_workers)
            backend.start_call()
            sizer = backend.compute_batch_size if backend.compute_batch_size() is not None else None
            batcher = _AutoBatcher(
                1 if self.timeout is not None else self.batch_size,
                total,
                n_workers,
                backend.target_batch_seconds,
                backend.max_batch_size,
                sizer,
            )
            limit = self._pre_dispatch if self._pre_dispatch is not None else float("inf")
            tasks = iter(iterable)
            if backend.runs_in_caller:
                yield from self._run_in_caller(tasks, batcher, limit)
                completed = True
                return
            started = {}  # future -> when it became one of the n_workers oldest (timeouts)
            submitted = {}  # future -> (when it was submitted, batches pending then)
            waiting = {}  # ordered results not yet yielded: start index -> results
            next_index = index = 0
            exhausted = False
            first_round = True
            while True:
                # Building a batch allocates a tuple per task, all alive until the batch
                # is sent: the collector would go through them many times (half the
                # caller's time on 100k tiny tasks), so it waits until the batch is out.
                collect = gc.isenabled()
                if collect:
                    gc.disable()
                try:
                    # Until a batch's cost is known, batches hold one task each: more of
                    # them than workers would only wait in a queue.
                    while not exhausted and len(pending) < (limit if batcher.measured else min(limit, n_workers)):
                        batch = Batch.take(tasks, batcher.size(), index)
                        if batch is None:
                            exhausted = True
                            self._dispatching = False
                            break
                        index += batch.size
                        ahead = len(pending)
                        self.n_dispatched_batches += 1
                        self.n_dispatched_tasks += batch.size
                        future = backend.submit(batch)
                        submitted[future] = (time.perf_counter(), ahead)
                        future.add_done_callback(_record_completion)
                        pending[future] = batch
                finally:
                    if collect:
                        gc.enable()
                if first_round:
                    first_round = False
                    yield []
                if not pending:
                    break
                done = self._wait(pending, started, n_workers)
                for future in sorted(done, key=lambda f: pending[f].start):
                    batch = pending.pop(future)
                    started.pop(future, None)
                    try:
                        results, seconds = future.result()
                    except BaseException as exc:
                        error = backend.translate(exc)
                        if error is exc:
                            raise
                        raise error from exc
                    # The batch's cost: its work in the worker, or its wall time (which
                    # also counts moving large results) shared with the batches ahead of it.
                    sent, ahead = submitted.pop(future)
                    if backend.batch_cost_from_wall_time:
                        wall = (getattr(future, "_joblite_done", None) or time.perf_counter()) - sent
                        seconds = max(seconds, wall / (1 + ahead / n_workers))
                    batcher.record(batch.size, seconds)
                    self.n_completed_tasks += batch.size
                    if self._progress.active:
                        self._progress.finished(batch.start, results)
                    self.print_progress()
                    if not ordered:
                        yield results
                    elif batch.start == next_index:
                        yield results
                        next_index += batch.size
                        while next_index in waiting:
                            later = waiting.pop(next_index)
                            yield later
                            next_index += len(later)
                    else:
                        waiting[batch.start] = results
            completed = True
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._running = False
            self._dispatching = False
            for future in pending:
                future.cancel()
            backend.end_call(completed)
            # (_worker_died imports: not for the GeneratorExit of a generator closed at
            # interpreter exit, when nothing can be imported any more)
            if not completed and (
                isinstance(failure, (KeyboardInterrupt, TimeoutError))
                or isinstance(failure, Exception)
                and backend.uses_processes
                and isinstance(failure, _worker_died())
            ):
                backend.abort()  # stuck, interrupted or broken workers: end them now
            elif not self._managed:
                backend.stop()
            if self._progress is not None:
                if completed:
                    self.print_progress()
                self._progress.close()

    def _run_in_caller(self, tasks, batcher, limit):
        """The results of a call whose backend runs batches in the caller, a batch's list at a time.

        The tasks run straight from `tasks`, batch by batch (sized as for any
        backend, and run up to `limit` batches ahead of the results taken, as
        submitted batches would be): no batch is built, nothing is done per
        task but calling it.  After a task raised, no further task is taken;
        the error is raised in its turn, after the results of the batches
        before it.
        """
        ran = collections.deque()  # (index of the first task, results) not yielded yet
        failure = None
        index = 0
        first_round = True
        while True:
            while self._dispatching and failure is None and len(ran) < (limit if batcher.measured else 1):
                begin = time.perf_counter()
                try:
                    with running_tasks():
                        results = _impl.tasks.run_next(tasks, batcher.size(), index)
                except BaseException as exc:  # KeyboardInterrupt too: raised in its turn
                    failure = exc
                    self.n_dispatched_batches += 1
                    break
                if not results:
                    self._dispatching = False
                    break
                batcher.record(len(results), time.perf_counter() - begin)
                self.n_dispatched_batches += 1
                self.n_dispatched_tasks += len(results)
                ran.append((index, results))
                index += len(results)
            if first_round:
                first_round = False
                yield []
            if not ran:
                if failure is not None:
                    raise failure
                return
            start, results = ran.popleft()
            self.n_completed_tasks += len(results)
            if self._progress.active:
                self._progress.finished(start, results)
            self.print_progress()
            yield results

    def _wait(self, pending, started, n_workers):
        """Wait (without polling) for at least one batch; raise TimeoutError for an overdue task."""
        if self.timeout is None:
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            return done
        while True:
            now = time.monotonic()
            for future in itertools.islice(pending, n_workers):  # the oldest: running
                started.setdefault(future, now)
            oldest = min(started[future] for future in itertools.islice(pending, n_workers))
            remaining = oldest + self.timeout - now
            if remaining <= 0:
                late = next(future for future in itertools.islice(pending, n_workers) if started[future] == oldest)
                batch = pending[late]
                raise ParallelTimeoutError(
                    f"{_describe(batch.task(batch.start), batch.start)} did not finish within timeout={self.timeout} s"
                )
            done, _ = concurrent.futures.wait(
                pending, timeout=remaining, return_when=concurrent.futures.FIRST_COMPLETED
            )
            if done:
                return done


def _record_completion(future):
    future._joblite_done = time.perf_counter()


def _flatten(chunks):
    """One result at a time; closing it closes `chunks`, which cancels what is left of the call."""
    try:
        for results in chunks:
            yield from results
    finally:
        chunks.close()


def _worker_died():
    from .backends.processes import WorkerDiedError

    return WorkerDiedError


def _sequential_class():
    return get_backend_factory("sequential")
