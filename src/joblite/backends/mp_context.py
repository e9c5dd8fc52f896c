"""``backend=multiprocessing.get_context(method)``: worker processes of that start method, as in joblib.

joblib takes a ``multiprocessing`` context as a backend and runs the tasks
on a ``multiprocessing.Pool`` of that context (its multiprocessing
backend).  This does the same, with joblite's batches: pickled in the
caller with cloudpickle, large arrays memory-mapped
(:mod:`joblite._memmapping`), and the worker processes marked as workers.
The pool lives for one call (or one ``with Parallel(...)`` block).
"""

import os

from . import THREAD_LIMIT_VARIABLES, ParallelBackendBase, cpu_count, mark_worker_process, resolve_n_jobs

__all__ = ["ContextBackend"]


class ContextBackend(ParallelBackendBase):
    """A ``multiprocessing.Pool`` made from `context`.

    A pool does not notice that a worker died (a segfault, ``os._exit``, the
    out-of-memory killer): the task is lost and the call waits for it, as
    with joblib's multiprocessing backend; a `timeout` ends such a call.

    Parameters
    ----------
    context : multiprocessing context
        From ``multiprocessing.get_context('spawn' | 'forkserver' | 'fork')``,
        or the ``multiprocessing`` module (its default start method).
    maxtasksperchild : int, optional
        Batches a worker runs before the pool replaces it
        (``multiprocessing.Pool``'s option); None: no limit.

    Raises
    ------
    TypeError
        For any other option.
    ValueError
        For a `maxtasksperchild` that is not an int >= 1.
    """

    uses_processes = True
    can_terminate = True

    def __init__(self, context, maxtasksperchild=None, **backend_kwargs):
        if backend_kwargs:
            raise TypeError(
                f"a multiprocessing context backend got unknown option(s) "
                f"{', '.join(sorted(backend_kwargs))}; it takes maxtasksperchild"
            )
        if maxtasksperchild is not None and (
            isinstance(maxtasksperchild, bool) or not isinstance(maxtasksperchild, int) or maxtasksperchild < 1
        ):
            raise ValueError(f"maxtasksperchild={maxtasksperchild!r} must be an int >= 1 or None")
        super().__init__()
        self.context = context
        self.maxtasksperchild = maxtasksperchild
        self._pool = None
        self._memmapper = None
        self._futures = set()

    def __repr__(self):
        return f"ContextBackend(start method {self.context.get_start_method()!r})"

    def configure(self, n_jobs, parallel):
        from .._memmapping import ArrayMemmapper

        n_jobs = resolve_n_jobs(n_jobs)
        if self._memmapper is None:
            self._memmapper = ArrayMemmapper(parallel.temp_folder, parallel.max_nbytes, parallel.mmap_mode)
        if self._pool is None:
            inner = str(parallel.inner_max_num_threads or max(1, cpu_count() // n_jobs))
            saved = {name: os.environ.get(name) for name in THREAD_LIMIT_VARIABLES}
            # The workers inherit the environment when they start, here: the thread limits
            # are set for that moment only.
            os.environ.update({name: inner for name in THREAD_LIMIT_VARIABLES})
            try:
                self._pool = self.context.Pool(
                    n_jobs, initializer=_started, initargs=(os.getpid(),), maxtasksperchild=self.maxtasksperchild
                )
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
        return n_jobs

    def submit(self, batch):
        import concurrent.futures

        from .processes import PickledBatch

        data, buffers, refers = self._memmapper.dumps(batch)
        # The pool pickles with the default protocol, which cannot take out-of-band buffers;
        # bytearrays give the worker writable arrays, as loky's buffers do.
        task = PickledBatch(data, [bytearray(buffer) for buffer in buffers])
        future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        self._pool.apply_async(task, callback=future.set_result, error_callback=future.set_exception)
        if refers:
            self._memmapper.hold(future)
        return future

    def stop(self):
        """End the pool's processes and remove the call's memmap folder."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
            for future in list(self._futures):  # lost with the pool: release their memmaps
                if not future.done():
                    future.set_exception(RuntimeError("the worker pool was terminated"))
        if self._memmapper is not None:
            self._memmapper.close()
            self._memmapper = None


def _started(caller_pid):
    """Initializer of each worker: it is a worker; a child of the caller also exits when the caller dies.

    A forkserver's workers are children of the fork server (which exits with
    the caller), not of the caller.
    """
    from .processes import _worker_started

    if os.getppid() == caller_pid:
        _worker_started(caller_pid)
    else:
        mark_worker_process()
