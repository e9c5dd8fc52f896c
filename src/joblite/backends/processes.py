"""``backend='loky'``: batches run in worker processes of a reusable ``loky`` executor.

Workers are started once and reused across calls until they have been idle
for `idle_worker_timeout` seconds, and exit on their own when the caller
dies.  Each batch is pickled in the caller (:mod:`joblite._memmapping`):
functions defined in ``__main__``, lambdas and closures reach the workers
through cloudpickle; ``np.memmap`` arguments of files, and their views, as
memmaps of the same file (what workers write there reaches the caller's
file); other arrays of at least ``max_nbytes`` as read-only memory-mapped
files of the call.  A batch the worker cannot unpickle fails as a task, with
its error.
"""

import multiprocessing
import os
import pickle
import re
import signal
import threading
import time
import warnings

import loky
from loky.process_executor import TerminatedWorkerError

from .._memmapping import ArrayMemmapper
from . import (
    THREAD_LIMIT_VARIABLES,
    ParallelBackendBase,
    cpu_count,
    in_worker,
    mark_worker_process,
    nested_backend,
    resolve_n_jobs,
)

__all__ = ["LokyBackend", "MultiprocessingBackend", "WorkerDiedError"]


class WorkerDiedError(TerminatedWorkerError):
    """A worker process died while running a task: loky's ``TerminatedWorkerError``, explained.

    Attributes
    ----------
    exit_codes : list of int
        Exit codes of the dead workers; negative values are signals.
    """

    def __init__(self, message, exit_codes=()):
        super().__init__(message)
        self.exit_codes = list(exit_codes)


def _explain(code):
    """What an exit code (negative: a signal) usually means."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        meaning = {
            "SIGKILL": "killed with SIGKILL, most often by the kernel's out-of-memory killer "
            "(the worker used too much memory) or by a job scheduler",
            "SIGSEGV": "a segmentation fault, usually in compiled code (a C extension) called by the task",
            "SIGBUS": "a bus error: often a memory-mapped file that was truncated or removed",
            "SIGABRT": "an abort, usually an assertion failing in compiled code",
            "SIGTERM": "terminated by another process (SIGTERM)",
        }.get(name, f"ended by {name}")
        return f"{name} ({code}): {meaning}"
    return f"exit code {code}: the task called os._exit({code}), or compiled code called exit()"


def explain_terminated(exc):
    """A :class:`WorkerDiedError` for loky's `exc`, naming each exit code or signal and its usual cause."""
    codes = [int(code) for code in re.findall(r"\((-?\d+)\)", str(exc))]
    reasons = "; ".join(_explain(code) for code in sorted(set(codes))) or "its exit code is unknown"
    return WorkerDiedError(
        f"a worker process died while running a task ({reasons}). The other tasks "
        "of the call were cancelled; the next call starts fresh workers.",
        codes,
    )


class LokyBackend(ParallelBackendBase):
    """Worker processes from :func:`loky.get_reusable_executor`.

    Parameters
    ----------
    idle_worker_timeout : float, optional
        Seconds an idle worker waits for work before it exits (default 300).
    initializer : callable, optional
        Called as ``initializer(*initargs)`` in each worker process when it
        starts (after joblite's own set-up), as joblib passes it to loky.
    initargs : tuple, optional
        Its arguments.
    env : dict of str to str, optional
        Environment variables set in the workers (over joblite's BLAS/OpenMP
        thread limits).

    Raises
    ------
    TypeError
        For any other option (joblib passes unknown ones on to loky, which
        refuses them too), or an `initializer` that is not callable.
    """

    uses_processes = True
    can_terminate = True
    # A batch costs about 0.3 ms in the caller's process whatever its size (pickling it,
    # loky's threads handing it over, its results back): after the first batches, 100,000
    # tiny tasks of a generator go in 6 batches instead of 12.
    max_batch_size = 16384

    def __init__(self, idle_worker_timeout=300, initializer=None, initargs=(), env=None, **backend_kwargs):
        if backend_kwargs:
            raise TypeError(
                f"{type(self).__name__} got unknown option(s) {', '.join(sorted(backend_kwargs))}; "
                "it takes idle_worker_timeout, initializer, initargs and env"
            )
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer={initializer!r} must be callable")
        super().__init__()
        self.idle_worker_timeout = idle_worker_timeout
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self.env = dict(env or {})
        self._executor = None
        self._memmapper = None
        self._n_workers = 1
        self._submitted = 0  # batches of the current call

    def effective_n_jobs(self, n_jobs):
        """`n_jobs` as a number of processes; 1 inside a worker that cannot start processes.

        Inside a worker of joblite's local backends, nested calls run in the
        worker.  A daemonic process (a dask worker, unless dask's config
        ``distributed.worker.daemon`` is False) cannot start processes: 1,
        with a warning.
        """
        n_jobs = resolve_n_jobs(n_jobs)
        if n_jobs == 1 or in_worker() and nested_backend() is None:
            return 1
        if multiprocessing.current_process().daemon:
            if nested_backend() == "dask":
                message = (
                    "backend='loky' asked inside a dask worker, whose process is a daemon (dask's "
                    "config distributed.worker.daemon, True by default) and cannot start worker "
                    "processes: the tasks run sequentially. Leave the backend out to run them on "
                    "the dask cluster, or start the workers with distributed.worker.daemon: False."
                )
            else:
                message = (
                    "backend='loky' asked inside a daemonic process, which cannot start worker "
                    "processes: the tasks run sequentially."
                )
            warnings.warn(message, UserWarning, stacklevel=4)
            return 1
        return n_jobs

    def configure(self, n_jobs, parallel):
        n_jobs = self.effective_n_jobs(n_jobs)
        inner = parallel.inner_max_num_threads or max(1, cpu_count() // n_jobs)
        env = {**{name: str(inner) for name in THREAD_LIMIT_VARIABLES}, **self.env}
        if self._memmapper is None:
            self._memmapper = ArrayMemmapper(parallel.temp_folder, parallel.max_nbytes, parallel.mmap_mode)
        self._executor = loky.get_reusable_executor(
            max_workers=n_jobs,
            timeout=self.idle_worker_timeout,
            env=env,
            result_reducers={},
            initializer=_worker_started,
            initargs=(os.getpid(), self.initializer, self.initargs),
            reuse="auto",
        )
        if parallel.timeout is not None:
            # Workers start on the first submit: do it now, so that the start-up of
            # the processes does not count against the first tasks' timeout.
            self._executor.submit(int).result()
        self._n_workers = n_jobs
        return n_jobs

    def start_call(self):
        self._submitted = 0

    def submit(self, batch):
        data, buffers, refers = self._memmapper.dumps(batch)
        future = self._executor.submit(PickledBatch(data, buffers))
        if refers:
            self._memmapper.hold(future)  # its files stay until the worker is done with it
        # The first batch of each worker: hand the GIL to loky's threads, which send it to
        # the idle worker; the caller would otherwise go on building the next batch and keep
        # them waiting for up to the interpreter's switch interval (5 ms).  Later batches
        # queue behind others: there the caller, which makes the tasks, would wait instead,
        # while loky's threads pass the GIL among themselves (3 to 5 ms a batch of 8192
        # tiny tasks, half the time of a call).
        if self._submitted < self._n_workers:
            time.sleep(0)
        self._submitted += 1
        return future

    def stop(self):
        """The call is over: its memmap folder goes once no batch of it is left in the executor.

        The executor is let go: loky keeps it for the next call of this thread,
        and ends its workers once the thread is gone (a failed call's traceback
        must not keep them alive).
        """
        self._executor = None
        if self._memmapper is not None:
            self._memmapper.close()
            self._memmapper = None

    def abort(self):
        """Kill the workers (the next call gets fresh ones) and remove the memmap folder."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, kill_workers=True)
            self._executor = None
        self.stop()

    def translate(self, exc):
        """The exception to raise for `exc`, an error of a batch's future."""
        if isinstance(exc, TerminatedWorkerError) and not isinstance(exc, WorkerDiedError):
            return explain_terminated(exc)
        return exc


class MultiprocessingBackend(LokyBackend):
    """``backend='multiprocessing'``, kept for joblib scripts: the same loky worker processes."""


class PickledBatch:
    """A batch pickled in the caller (see :meth:`joblite._memmapping.ArrayMemmapper.dumps`), run in a worker.

    Unpickling it is part of running it: an argument that cannot be rebuilt
    in the worker (a missing module or file) fails the batch like a task
    error, instead of breaking the pool.
    """

    __slots__ = ("data", "buffers", "batch")

    def __init__(self, data, buffers):
        self.data = data
        self.buffers = buffers
        self.batch = None

    def __reduce__(self):
        return PickledBatch, (self.data, self.buffers)

    def __call__(self):
        """Run the batch; return ``(results, seconds)``."""
        # Kept until loky drops its call item, after the result is sent: then the
        # worker unmaps the batch's memmapped arguments, and the caller's removal of
        # the folder does not have to free their pages (about 30 ms per 256 MiB).
        self.batch = pickle.loads(self.data, buffers=self.buffers)
        return self.batch()


_CALLER_POLL_SECONDS = 0.2  # how often a worker checks that its caller is alive


def _worker_started(caller_pid, initializer=None, initargs=()):
    """Initializer of each worker process: marks it a worker that exits when its caller dies; then the user's."""
    mark_worker_process()
    try:
        # Arrays are what joblite sends: numpy loads while the worker starts, not
        # inside the first task (and its timeout).
        import numpy  # noqa: F401
    except ImportError:
        pass
    threading.Thread(target=_exit_when_orphaned, args=(caller_pid,), name="joblite-caller-watch", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _exit_when_orphaned(caller_pid):
    # A worker is a child of its caller; once the caller is gone (SIGKILL, a crash) it
    # is re-parented, and its results can go nowhere.  Exiting lets loky's resource
    # tracker, which waits for every process of the caller, remove the memmap folders.
    while os.getppid() == caller_pid:
        time.sleep(_CALLER_POLL_SECONDS)
    os._exit(1)
