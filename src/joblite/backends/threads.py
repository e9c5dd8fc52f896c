"""``backend='threading'``: batches run on a pool of threads of the caller's process."""

from concurrent.futures import ThreadPoolExecutor

from . import ParallelBackendBase


class ThreadingBackend(ParallelBackendBase):
    """A thread pool: tasks share the caller's memory; useful when they release the GIL.

    Threads cannot be stopped from outside: after a timeout or an interrupt,
    tasks already running finish in the background.
    """

    supports_sharedmem = True

    def __init__(self, **backend_kwargs):
        super().__init__(**backend_kwargs)
        self._pool = None
        self._n_jobs = None

    def configure(self, n_jobs, parallel):
        n_jobs = self.effective_n_jobs(n_jobs)
        if self._pool is None or self._n_jobs != n_jobs:
            self.stop()
            self._pool = ThreadPoolExecutor(n_jobs, thread_name_prefix="joblite-worker")
            self._n_jobs = n_jobs
        return n_jobs

    def submit(self, batch):
        return self._pool.submit(batch)

    def stop(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
