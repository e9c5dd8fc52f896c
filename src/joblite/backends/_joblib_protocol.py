"""Backends written to joblib's backend protocol, run by joblite's ``Parallel``.

joblib's custom-backend guide has a backend run a callable with
``submit(func, callback)`` and hand its result back through
``retrieve_result_callback(out)`` (or, for older backends,
``retrieve_result(job)`` once the callback has fired).  This module adapts
such a backend (a subclass of joblib's ``ParallelBackendBase``, or any
object with that ``submit``) onto joblite's :class:`ParallelBackendBase`,
so that backends published for joblib (ray's ``register_ray()``,
joblib-spark...) run joblite's calls.  joblib itself is never imported here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import inspect
import sys
import threading
import time
import weakref

from . import ParallelBackendBase, check_n_jobs, resolve_n_jobs

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["JoblibProtocolBackend", "is_joblib_backend"]


def is_joblib_backend(obj):
    """Whether `obj` is a backend instance written to joblib's protocol (and not a joblite one).

    It is an instance of joblib's ``ParallelBackendBase`` (when joblib is
    imported: such an instance cannot exist otherwise), or has a ``submit``
    method that takes a ``callback``: also a subclass of joblite's own
    ``ParallelBackendBase`` written to joblib's guide (``import joblite as
    joblib`` makes ``joblib.parallel.ParallelBackendBase`` joblite's).
    """
    if isinstance(obj, type):
        return False
    backends = sys.modules.get("joblib._parallel_backends")
    if backends is not None and isinstance(obj, backends.ParallelBackendBase):
        return True
    submit = getattr(obj, "submit", None)
    if not callable(submit):
        return False
    function = getattr(submit, "__func__", None)  # a method: the answer is its class's
    if function is None:
        return _takes_callback(submit)
    known = _TAKES_CALLBACK.get(function)
    if known is None:
        known = _TAKES_CALLBACK[function] = _takes_callback(submit)
    return known


# submit function of a backend class -> whether it takes a callback (inspect.signature
# costs a tenth of a millisecond, and every Parallel() asks)
_TAKES_CALLBACK: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _takes_callback(submit):
    try:
        return "callback" in inspect.signature(submit).parameters
    except (TypeError, ValueError):
        return False


class _Task:
    """The callable a joblib backend runs for a batch: returns the batch's list of results.

    joblib's own batches (``BatchedCalls``) have a length: some backends read it.
    """

    __slots__ = ("batch",)

    def __init__(self, batch):
        self.batch = batch

    def __call__(self):
        return self.batch()[0]

    def __len__(self):
        return self.batch.size

    def __reduce__(self):
        return _Task, (self.batch,)


class JoblibProtocolBackend(ParallelBackendBase):
    """joblite's backend interface over a backend written to joblib's protocol.

    The backend's lifecycle follows joblib's ``Parallel``: ``configure`` once
    until ``terminate`` (also across the calls of a ``with Parallel(...)``
    block), ``start_call``/``stop_call`` around each call run on its workers,
    ``abort_everything(ensure_ready=...)`` when a call fails or is left early,
    and ``terminate`` when the call (or the ``with`` block) ends.  The tasks'
    results come from ``retrieve_result_callback(out)`` when
    ``supports_retrieve_callback`` is true, else from
    ``retrieve_result(job)`` after the callback fired (``job.get()`` when the
    backend has no such method).  ``batch_size='auto'`` uses the backend's
    ``compute_batch_size()``, told of each batch through
    ``batch_completed(size, seconds)``, when it has them.  When the backend
    configures one worker (or falls back to joblib's sequential backend), the
    batches run in the caller, as joblib runs them.

    Parameters
    ----------
    backend : object
        The joblib-protocol backend instance.
    """

    sequential_with_one_worker = True

    def __init__(self, backend):
        super().__init__()
        if getattr(backend, "nesting_level", 0) is None:
            backend.nesting_level = 0  # joblib's Parallel sets it; get_nested_backend adds 1 to it
        self.backend = self._original = backend
        self.uses_processes = not getattr(backend, "uses_threads", False)
        self.supports_sharedmem = bool(getattr(backend, "supports_sharedmem", False))
        self.can_terminate = callable(getattr(backend, "abort_everything", None))
        self.default_n_jobs = getattr(backend, "default_n_jobs", 1)
        self._parallel = None
        self._n_workers = None  # set while configured
        self._inline = False
        self._calling = False
        self._retrieval = None
        self._retriever = None
        self._lock = threading.Lock()

    def __repr__(self):
        return f"JoblibProtocolBackend({self.backend!r})"

    def effective_n_jobs(self, n_jobs):
        """The backend's ``effective_n_jobs(n_jobs)``; a negative answer counts CPUs as joblite does."""
        n_jobs = check_n_jobs(n_jobs)
        answer = self.backend.effective_n_jobs(n_jobs)
        if answer is None or answer < 1:
            return resolve_n_jobs(n_jobs) if n_jobs < 0 else 1
        return int(answer)

    def configure(self, n_jobs, parallel):
        """``backend.configure(n_jobs=..., parallel=parallel, **parallel._backend_kwargs)``, once until stopped."""
        self._parallel = parallel
        if self._n_workers is None:
            while True:
                try:
                    answer = self.backend.configure(n_jobs=n_jobs, parallel=parallel, **parallel._backend_kwargs)
                    break
                except Exception as exc:
                    # joblib's FallbackToBackend(other): configure `other` instead
                    if type(exc).__name__ != "FallbackToBackend" or not hasattr(exc, "backend"):
                        raise
                    self.backend = exc.backend
                    if getattr(self.backend, "nesting_level", 0) is None:
                        self.backend.nesting_level = self._original.nesting_level
            n_workers = self.effective_n_jobs(n_jobs) if answer is None else int(answer)
            if n_workers < 1:
                n_workers = self.effective_n_jobs(n_jobs)
            self._inline = n_workers == 1
            self._n_workers = n_workers
        return self._n_workers

    def start_call(self):
        """``backend.start_call()``, and enter its ``retrieval_context()``, unless the batches run inline."""
        if self._inline:
            return
        self._calling = True
        if callable(getattr(self.backend, "start_call", None)):
            self.backend.start_call()
        context = getattr(self.backend, "retrieval_context", None)
        if callable(context):
            self._retrieval = contextlib.ExitStack()
            self._retrieval.enter_context(context())

    def compute_batch_size(self):
        """The backend's ``compute_batch_size()`` (joblib's base class: 1), or None if it has none."""
        compute = getattr(self.backend, "compute_batch_size", None)
        if self._inline or not callable(compute):
            return None
        size = compute()  # (None from joblite's own base class: no preference)
        return None if size is None else max(1, int(size))

    def submit(self, batch: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        # Running: Parallel cannot cancel it (joblib backends cancel through abort_everything),
        # so the backend's callback always finds it able to take its outcome.
        future.set_running_or_notify_cancel()
        if self._inline:
            try:
                future.set_result(batch())
            except BaseException as exc:
                future.set_exception(exc)
            return future
        backend = self.backend
        started = time.perf_counter()
        lock = threading.Lock()
        state = {"job": None, "fired": False}

        def complete(outcome, error):
            seconds = time.perf_counter() - started
            with lock:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(error)
                    return
                future.set_result((outcome, seconds))
            batch_completed = getattr(backend, "batch_completed", None)
            if callable(batch_completed):
                batch_completed(batch.size, seconds)

        callback: Callable[..., None]
        if getattr(backend, "supports_retrieve_callback", False):

            def callback(out, *args, **kwargs):
                try:
                    results = backend.retrieve_result_callback(out)
                except BaseException as exc:
                    complete(None, exc)
                else:
                    complete(results, None)
        else:
            # Older backends: the callback only says the job is done; its result is
            # taken with retrieve_result(job), in another thread, since a pool's
            # callback runs before the job's own result is ready to be read.
            def callback(*args, **kwargs):
                with lock:
                    state["fired"] = True
                    job = state["job"]
                if job is not None:
                    self._retrieve_later(job, complete)

        job = backend.submit(_Task(batch), callback=callback)
        with lock:
            state["job"] = job
            fired = state["fired"]
        if fired and not getattr(backend, "supports_retrieve_callback", False):
            self._retrieve_later(job, complete)
        return future

    def _retrieve_later(self, job, complete):
        with self._lock:
            if self._retriever is None:
                self._retriever = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="joblite-joblib-retrieve")
        self._retriever.submit(self._retrieve, job, complete)

    def _retrieve(self, job, complete):
        try:
            retrieve = getattr(self.backend, "retrieve_result", None)
            results = retrieve(job) if callable(retrieve) else job.get()
        except BaseException as exc:
            complete(None, exc)
        else:
            complete(results, None)

    def end_call(self, completed):
        """A failed or abandoned call aborts the backend's tasks (``abort_everything``); ``stop_call()``."""
        if not self._calling:
            return
        self._calling = False
        try:
            if self._retrieval is not None:
                self._retrieval.close()
                self._retrieval = None
            if not completed and callable(getattr(self.backend, "abort_everything", None)):
                self.backend.abort_everything(ensure_ready=bool(getattr(self._parallel, "_managed", False)))
        finally:
            if callable(getattr(self.backend, "stop_call", None)):
                self.backend.stop_call()

    def stop(self):
        """``backend.terminate()``: the next call configures it again."""
        if self._n_workers is None:
            return
        self._n_workers = None
        backend, self.backend = self.backend, self._original
        try:
            if callable(getattr(backend, "terminate", None)):
                backend.terminate()
        finally:
            if self._retriever is not None:
                self._retriever.shutdown(wait=False)
                self._retriever = None

    def abort(self):
        """The backend's tasks were aborted when the call ended (see :meth:`end_call`): terminate it."""
        self.stop()
