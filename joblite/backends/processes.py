"""``backend='loky'``: batches run in worker processes of a reusable ``loky`` executor.

Workers are started once and reused across calls until they have been idle
for `idle_worker_timeout` seconds.  Functions defined in ``__main__``,
lambdas and closures reach them through cloudpickle (loky's pickler falls
back to it only for what the standard pickle cannot do).  Arrays larger than
``max_nbytes`` travel as memory-mapped files (:mod:`joblite._memmapping`).
"""
import re
import signal

import loky
from loky.process_executor import TerminatedWorkerError

from . import THREAD_LIMIT_VARIABLES, ParallelBackendBase, cpu_count, in_worker, resolve_n_jobs
from .._memmapping import get_memmapper

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
    return (f"exit code {code}: the task called os._exit({code}), or compiled code "
            "called exit()")


def explain_terminated(exc):
    """A :class:`WorkerDiedError` for loky's `exc`, naming each exit code or signal and its usual cause."""
    codes = [int(code) for code in re.findall(r"\((-?\d+)\)", str(exc))]
    reasons = "; ".join(_explain(code) for code in sorted(set(codes))) or "its exit code is unknown"
    return WorkerDiedError(f"a worker process died while running a task ({reasons}). The other tasks "
                           "of the call were cancelled; the next call starts fresh workers.", codes)


class LokyBackend(ParallelBackendBase):
    """Worker processes from :func:`loky.get_reusable_executor`.

    Parameters
    ----------
    idle_worker_timeout : float, optional
        Seconds an idle worker waits for work before it exits (default 300).
    """

    uses_processes = True
    can_terminate = True

    def __init__(self, idle_worker_timeout=300, **backend_kwargs):
        super().__init__(**backend_kwargs)
        self.idle_worker_timeout = idle_worker_timeout
        self._executor = None
        self._memmapper = None

    def effective_n_jobs(self, n_jobs):
        n_jobs = resolve_n_jobs(n_jobs)
        return 1 if in_worker() else n_jobs

    def configure(self, n_jobs, parallel):
        n_jobs = self.effective_n_jobs(n_jobs)
        inner = parallel.inner_max_num_threads or max(1, cpu_count() // n_jobs)
        env = {name: str(inner) for name in THREAD_LIMIT_VARIABLES}
        env["JOBLITE_IN_WORKER"] = "1"
        if self._memmapper is None:
            self._memmapper = get_memmapper(parallel.temp_folder, parallel.max_nbytes, parallel.mmap_mode)
            self._memmapper.begin_call()
        self._executor = loky.get_reusable_executor(
            max_workers=n_jobs, timeout=self.idle_worker_timeout, env=env,
            job_reducers=self._memmapper.reducers(), result_reducers={}, reuse="auto")
        if parallel.timeout is not None:
            # Workers start on the first submit: do it now, so that the start-up of
            # the processes does not count against the first tasks' timeout.
            self._executor.submit(int).result()
        return n_jobs

    def submit(self, batch):
        return self._executor.submit(batch)

    def stop(self):
        if self._memmapper is not None:
            self._memmapper.end_call()
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


