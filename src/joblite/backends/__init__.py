"""Parallel backends: what runs the batches of tasks ``Parallel`` hands out.

A backend turns a batch (see :class:`Batch`) into a future.  ``'loky'``
(processes, the default), ``'threading'``, ``'sequential'`` and ``'dask'``
(a dask.distributed cluster, :mod:`joblite.backends.dask`) are built in;
``'multiprocessing'`` is kept as a name for joblib scripts and runs on loky
processes.  Register others with :func:`register_parallel_backend`: a
subclass of :class:`ParallelBackendBase`, or a backend written to joblib's
protocol (``joblite.backends._joblib_protocol``).  A multiprocessing
context runs on ``joblite.backends.mp_context``.
"""

from __future__ import annotations

import operator
import os
import threading
import time

from .. import _impl

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable
    from typing import Any

    from ..parallel import Parallel

__all__ = [
    "ParallelBackendBase",
    "Batch",
    "running_tasks",
    "register_parallel_backend",
    "get_backend_factory",
    "make_backend",
    "BACKENDS",
    "cpu_count",
]

#: name -> factory (a ParallelBackendBase subclass or a callable returning an instance)
BACKENDS: dict[str, Callable[..., Any]] = {}
_DEFAULT = ["loky"]

# Environment variables that size the thread pools of BLAS and OpenMP libraries.
THREAD_LIMIT_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# Set while a batch runs: nested Parallel calls run on `nested` (a backend name), else sequentially.
_WORKER = threading.local()
# Set in a worker process by its initializer, and not through the environment,
# which the processes that tasks start would inherit.
_WORKER_PROCESS = False


def mark_worker_process():
    """Make :func:`in_worker` true in this whole process (called when a worker process starts)."""
    global _WORKER_PROCESS
    _WORKER_PROCESS = True


def in_worker():
    """Whether this code runs inside a ``Parallel`` worker (process or thread)."""
    return _WORKER_PROCESS or getattr(_WORKER, "active", False)


def nested_backend():
    """The backend a ``Parallel`` call made by a running task uses when it names none.

    Returns
    -------
    str or None
        ``'dask'`` in a task of the dask backend (nested calls go to the same
        cluster); None elsewhere (nested calls run sequentially).
    """
    return getattr(_WORKER, "nested", None)


def cpu_count(only_physical_cores: bool = False) -> int:
    """The number of CPUs this process may use: affinity and cgroup (container) limits respected.

    Parameters
    ----------
    only_physical_cores : bool, optional
        Count physical cores rather than logical CPUs (hyper-threads), when
        that can be found out.

    Returns
    -------
    int
        At least 1.  From :func:`loky.cpu_count`, which reads the cgroup
        files at each call (0.2 ms, a fifth of what a short ``Parallel``
        call costs otherwise): its answer is kept for up to a second, and
        asked again at once when the process's CPU affinity or
        ``LOKY_MAX_CPU_COUNT`` changes.  A new cgroup limit (a container
        resized while it runs) is seen within a second.
    """
    affinity = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    key = (affinity, os.environ.get("LOKY_MAX_CPU_COUNT"))
    now = time.monotonic()
    cached = _CPU_COUNTS.get(bool(only_physical_cores))
    if cached is not None and cached[0] == key and now - cached[1] < CPU_COUNT_SECONDS:
        return cached[2]
    import loky

    count = max(1, loky.cpu_count(only_physical_cores=only_physical_cores))
    _CPU_COUNTS[bool(only_physical_cores)] = (key, now, count)
    return count


#: Seconds :func:`cpu_count` keeps an answer for the same affinity and ``LOKY_MAX_CPU_COUNT``.
CPU_COUNT_SECONDS = 1.0
# only_physical_cores -> ((affinity, LOKY_MAX_CPU_COUNT), time.monotonic() of the count, count)
_CPU_COUNTS: dict[bool, tuple[Any, float, int]] = {}


class Batch:
    """A batch of tasks, pickled once and run by one worker.

    Tasks of one function called without keywords (the common
    ``delayed(f)(x) for x in ...``) are held as ``function`` and the list of
    their arguments (``single``: each task's only argument, when each has
    exactly one; else their argument tuples), and travel as the function
    once and that list, which pickles smaller and runs faster; others as a
    list of tasks.

    Made by :meth:`take` (and by unpickling), never directly.
    """

    __slots__ = ("function", "items", "start", "size", "single")

    @classmethod
    def take(cls, tasks, count, start):
        """The batch of the next `count` tasks of the iterator `tasks` (fewer at its end); None at its end.

        Raises
        ------
        TypeError
            If an item is not a ``delayed`` task, naming its index in the call.
        """
        function, items, single = _impl.tasks.take_batch(tasks, count, start)
        if not items:
            return None
        return _rebuild_batch(function, items, single, start, len(items))

    def __call__(self, nested=None):
        """Run the batch; return ``(results, seconds)``.

        Parameters
        ----------
        nested : str, optional
            The backend of the ``Parallel`` calls its tasks make without naming
            one (see :func:`nested_backend`); None: they run sequentially.
        """
        start = time.perf_counter()
        with running_tasks(nested):
            if self.single:
                results = _impl.tasks.run_values(self.function, self.items)
            elif self.function is not None:
                results = _impl.tasks.run_calls(self.function, self.items)
            else:
                results = _impl.tasks.run_tasks(self.items)
        return results, time.perf_counter() - start

    def __reduce__(self):
        return _rebuild_batch, (self.function, self.items, self.single, self.start, self.size)

    def __setstate__(self, state):
        """Set ``(function, items, start, size)``, the argument tuples in `items` when `function` is set."""
        self.function, self.items, self.start, self.size = state
        self.single = False

    def task(self, index):
        """The task of this batch at position `index` of the call, as ``(function, args, kwargs)``."""
        item = self.items[index - self.start]
        if self.single:
            return self.function, (item,), {}
        return (self.function, item, {}) if self.function is not None else item


def _rebuild_batch(function, items, single, start, size):
    """The :class:`Batch` of a pickle: `items` holds each task's only argument if `single`."""
    batch = Batch.__new__(Batch)
    batch.function, batch.items, batch.single, batch.start, batch.size = function, items, single, start, size
    return batch


class running_tasks:
    """While a batch's tasks run, :func:`in_worker` is true and nested calls use `nested` (a backend name)."""

    __slots__ = ("nested", "previous")

    def __init__(self, nested=None):
        self.nested = nested

    def __enter__(self):
        self.previous = getattr(_WORKER, "active", False), getattr(_WORKER, "nested", None)
        _WORKER.active, _WORKER.nested = True, self.nested

    def __exit__(self, *exc_info):
        _WORKER.active, _WORKER.nested = self.previous


class ParallelBackendBase:
    """What a parallel backend implements; register one with :func:`register_parallel_backend`.

    ``Parallel`` calls :meth:`configure` and :meth:`start_call` at the start
    of each call, then :meth:`submit` for each batch, :meth:`end_call` when
    the call ends
    (whichever way), and :meth:`stop` (or :meth:`abort` after a timeout, an
    interrupt or a dead worker; inside a ``with Parallel(...)`` block,
    :meth:`stop` only when the block ends).

    Attributes
    ----------
    uses_processes : bool
        Tasks run in other processes: arguments are pickled (and large arrays
        memory-mapped).
    supports_sharedmem : bool
        Tasks share the caller's memory (``require='sharedmem'``).
    can_terminate : bool
        :meth:`abort` stops running tasks (processes can be killed, threads
        cannot).
    target_batch_seconds : float
        Seconds of work per batch that ``batch_size='auto'`` aims at: enough
        to make the backend's cost per batch small (0.02 here; 0.3 for dask).
    max_batch_size : int
        The most tasks ``batch_size='auto'`` puts in a batch (fewer when the
        call's length is known: at least 4 batches per worker).  It bounds
        the time the caller spends building a batch while results wait:
        8192 here; 16384 for loky processes, whose cost per batch (about
        0.3 ms in the caller's process) calls for larger batches of tiny
        tasks; 32768 for dask, whose cost per batch (a round trip
        through the scheduler, ten milliseconds or more) calls for larger
        batches of tiny tasks.
    default_n_jobs : int
        The ``n_jobs`` of a ``Parallel`` given none (and no
        :class:`parallel_config` value): 1 here; -1 (the whole cluster) for
        dask.
    sequential_with_one_worker : bool
        With one worker, ``Parallel`` runs the batches in the caller instead
        (nothing to start or send).  False for backends whose tasks must run
        on their workers (a cluster's hosts, memory and resources).
    batch_cost_from_wall_time : bool
        ``batch_size='auto'`` takes a batch's cost to be the larger of its
        work and its wall time (submit to result, shared with the batches
        ahead of it), which also counts moving its results back: True here.
        False for dask, whose round trip per task (ten milliseconds or more,
        whatever the batch's size) is no cost of the tasks: batches sized by
        it would grow only a few times per round trip.  There the batch's
        future reports its whole cost itself (in the worker: unpickling and
        running it; in the caller: unpickling its results).
    runs_in_caller : bool
        The backend runs each batch in the calling thread as it is submitted
        (the sequential backend): ``Parallel`` then runs the tasks straight
        from the iterable instead, batch by batch, without building batches
        nor calling :meth:`submit`.  False here.
    """

    uses_processes = False
    supports_sharedmem = False
    can_terminate = False
    target_batch_seconds = 0.02
    max_batch_size = 8192
    default_n_jobs = 1
    sequential_with_one_worker = True
    batch_cost_from_wall_time = True
    runs_in_caller = False

    def __init__(self, **backend_kwargs: Any) -> None:
        self.backend_kwargs = backend_kwargs

    def effective_n_jobs(self, n_jobs: int) -> int:
        """The number of workers `n_jobs` means for this backend (>= 1).

        Raises
        ------
        ValueError
            If `n_jobs` is 0 or not an int.
        """
        return resolve_n_jobs(n_jobs)

    def configure(self, n_jobs: int | None, parallel: Parallel) -> int:
        """Get the workers ready; return the number of workers.

        Parameters
        ----------
        n_jobs : int
            As given to ``Parallel``.
        parallel : Parallel
            The caller; its ``temp_folder``, ``max_nbytes``, ``mmap_mode`` and
            ``inner_max_num_threads`` settings apply.
        """
        raise NotImplementedError

    def start_call(self) -> None:
        """A call starts: called after :meth:`configure`, before the call's first :meth:`submit`."""

    def compute_batch_size(self) -> int | None:
        """Tasks per batch for ``batch_size='auto'``; None (here): sized by ``Parallel`` from measurements."""
        return None

    def submit(self, batch: Batch) -> concurrent.futures.Future[Any]:
        """Start running `batch`; return a :class:`concurrent.futures.Future` of ``batch()``."""
        raise NotImplementedError

    def end_call(self, completed: bool) -> None:
        """A call ended: completed (every result taken), or not (an error, a generator closed early...).

        Called at the end of every call, also inside a ``with Parallel(...)``
        block, before :meth:`stop` or :meth:`abort`; the futures of the call's
        batches not done yet are cancelled already.  Backends that hold
        something per call (tasks on a cluster, data sent for the call)
        release it here.

        Parameters
        ----------
        completed : bool
        """

    def stop(self) -> None:
        """The call is over; keep reusable workers (they end on their own when idle)."""

    def abort(self) -> None:
        """Stop everything now: cancel queued batches and end the workers if possible."""
        self.stop()

    def translate(self, exc: BaseException) -> BaseException:
        """The exception ``Parallel`` raises for `exc`, the error of a batch's future (default: itself)."""
        return exc


def check_n_jobs(n_jobs):
    """`n_jobs` as an int, if it is one that joblib takes (not 0); else ``ValueError`` naming it."""
    try:
        if isinstance(n_jobs, bool):
            raise TypeError
        n_jobs = operator.index(n_jobs)  # numpy integers too
    except TypeError:
        raise ValueError(f"n_jobs={n_jobs!r} must be an int (-1 for all CPUs) or None") from None
    if n_jobs == 0:
        raise ValueError("n_jobs=0 means no worker; use n_jobs=1 to run in this process, -1 for all CPUs")
    return n_jobs


def resolve_n_jobs(n_jobs):
    """joblib's n_jobs: -1 all CPUs, -2 all but one..., a positive int as is; 0 raises."""
    n_jobs = check_n_jobs(n_jobs)
    if n_jobs < 0:
        return max(1, cpu_count() + 1 + n_jobs)
    return n_jobs


def register_parallel_backend(name: str, factory: Callable[..., Any], make_default: bool = False) -> None:
    """Make `factory` available as ``Parallel(backend=name)`` and ``parallel_config(backend=name)``.

    Parameters
    ----------
    name : str
    factory : callable
        Called with the backend keyword arguments; returns a
        :class:`ParallelBackendBase`, or a backend written to joblib's
        protocol (adapted, see
        ``joblite.backends._joblib_protocol.JoblibProtocolBackend``).
        Usually the class itself.
    make_default : bool, optional
        Use it when no backend is given.

    Raises
    ------
    ValueError
        If `name` is not a str or `factory` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r} must be a non-empty str")
    if not callable(factory):
        raise ValueError(f"factory={factory!r} must be callable (a ParallelBackendBase subclass)")
    BACKENDS[name] = factory
    if make_default:
        _DEFAULT[0] = name


def default_backend_name():
    """The backend used when none is given."""
    return _DEFAULT[0]


def get_backend_factory(name):
    """The factory registered under `name`: joblite's, else (when joblib is installed) joblib's.

    A name joblite does not know is looked up in joblib's registry
    (``joblib.parallel.BACKENDS``, where ``joblib.register_parallel_backend``
    and packages such as ray's ``register_ray()`` put their backends, and
    joblib's ``EXTERNAL_BACKENDS``); joblib is imported only then.

    Raises
    ------
    ValueError
        Naming the registered backends, if `name` is not one.
    """
    if isinstance(name, str) and name not in BACKENDS and name in _BUILTINS:
        import importlib

        module, attribute = _BUILTINS[name]
        BACKENDS[name] = getattr(importlib.import_module(f"joblite.backends.{module}"), attribute)
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        pass
    factory = _joblib_factory(name) if isinstance(name, str) else None
    if factory is None:
        raise ValueError(
            f"backend={name!r} is not a registered parallel backend "
            f"(registered: {', '.join(sorted(set(BACKENDS) | set(_BUILTINS)))}; "
            "or a name in joblib's registry, a backend instance or a multiprocessing "
            "context)"
        ) from None
    return factory


def _joblib_factory(name):
    """The factory joblib has registered under `name`, or None (also when joblib is not installed)."""
    try:
        import joblib.parallel
    except ImportError:
        return None
    if name not in joblib.parallel.BACKENDS and name in getattr(joblib.parallel, "EXTERNAL_BACKENDS", {}):
        joblib.parallel.EXTERNAL_BACKENDS[name]()  # registers it, or raises ImportError naming the package
    return joblib.parallel.BACKENDS.get(name)


def _is_mp_context(spec):
    # joblib's test: a multiprocessing context (or the multiprocessing module) has Pool and Lock
    return not isinstance(spec, str) and hasattr(spec, "Pool") and hasattr(spec, "Lock")


def check_backend(spec):
    """Raise ``ValueError`` naming `spec` unless :func:`make_backend` takes it (without making the backend)."""
    if isinstance(spec, ParallelBackendBase) or _is_mp_context(spec):
        return
    if isinstance(spec, str):
        get_backend_factory(spec)
        return
    from ._joblib_protocol import is_joblib_backend

    if not is_joblib_backend(spec):
        raise ValueError(
            f"backend={spec!r} is not a backend name, a backend instance (joblite's, or "
            "one written to joblib's protocol) or a multiprocessing context"
        )


def make_backend(spec, **backend_kwargs):
    """The joblite backend instance for `spec`.

    Parameters
    ----------
    spec : str, ParallelBackendBase, joblib-protocol backend or multiprocessing context
        A registered name (joblite's, else joblib's registry), whose factory is
        called with `backend_kwargs`; an instance, used as it is; an instance
        written to joblib's backend protocol, adapted
        (``joblite.backends._joblib_protocol.JoblibProtocolBackend``); a
        ``multiprocessing`` context (or the module), for worker processes of
        its start method (``joblite.backends.mp_context.ContextBackend``).
    **backend_kwargs
        For the factory of a name, or the context backend.

    Returns
    -------
    ParallelBackendBase

    Raises
    ------
    ValueError
        If `spec` is none of these, or a factory returns something that is no backend.
    """
    if _is_mp_context(spec):
        from .mp_context import ContextBackend

        return ContextBackend(context=spec, **backend_kwargs)
    from ._joblib_protocol import JoblibProtocolBackend, is_joblib_backend

    instance = get_backend_factory(spec)(**backend_kwargs) if isinstance(spec, str) else spec
    # (before the class test: a class written to joblib's guide may derive from joblite's
    # base, which is what `import joblite as joblib` gives it)
    if is_joblib_backend(instance):
        return JoblibProtocolBackend(instance)
    if isinstance(instance, ParallelBackendBase):
        return instance
    raise ValueError(
        f"backend={spec!r} gives {instance!r}, which is neither a joblite ParallelBackendBase "
        "nor a backend written to joblib's protocol (with submit(func, callback))"
    )


# Built-in backends are imported when first asked for (loky takes 60 ms to import, distributed 1 s).
_BUILTINS = {
    "loky": ("processes", "LokyBackend"),
    "multiprocessing": ("processes", "MultiprocessingBackend"),
    "threading": ("threads", "ThreadingBackend"),
    "sequential": ("sequential", "SequentialBackend"),
    "dask": ("dask", "DaskBackend"),
}
