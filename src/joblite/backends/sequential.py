"""``backend='sequential'``: every batch runs in the caller, at once."""

from concurrent.futures import Future

from . import ParallelBackendBase


class SequentialBackend(ParallelBackendBase):
    """Runs each batch in the calling thread when it is submitted; one worker.

    ``Parallel`` runs the tasks itself, straight from the iterable
    (``runs_in_caller``); :meth:`submit` serves other callers of a backend.
    """

    supports_sharedmem = True
    runs_in_caller = True

    def effective_n_jobs(self, n_jobs):
        super().effective_n_jobs(n_jobs)  # validates
        return 1

    def configure(self, n_jobs, parallel):
        return 1

    def submit(self, batch):
        future = Future()
        try:
            future.set_result(batch())
        except BaseException as exc:  # KeyboardInterrupt too: the caller re-raises it
            future.set_exception(exc)
        return future
