"""What runs in a dask worker: unpickle a batch, run it under thread limits, send back its outcome."""

from __future__ import annotations

import contextlib
import pickle
import sys
import threading
import time
import traceback

import cloudpickle
import distributed

from .. import cpu_count

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["run_batch", "scattered_argument", "in_dask_task"]

_LOADING = threading.local()  # the scattered objects of the batch being unpickled in this thread
_CORES: list[int] = []  # this host's cores, found once per process
_CONTROLLER: list[Any] = []  # [modules loaded when made, threadpoolctl.ThreadpoolController]
_CONTROLLER_LOCK = threading.Lock()  # (a worker may have several threads)


def in_dask_task():
    """Whether this thread runs a dask task."""
    return hasattr(distributed.worker.thread_state, "execution_state")


def scattered_argument(position):
    """A large argument of the batch being unpickled; arrays read-only, as the worker's copy is shared."""
    obj = _LOADING.objects[position]
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(obj, numpy.ndarray) and obj.flags.writeable:
        obj = obj.view()
        obj.flags.writeable = False
    return obj


def run_batch(payload, inner_threads, retries, *objects):
    """Run a pickled batch in a dask worker; return its pickled outcome.

    Parameters
    ----------
    payload : bytes
        The batch, its large arguments replaced by references to `objects`.
    inner_threads : int or None
        BLAS/OpenMP threads; None: the worker thread's share of the cores.
    retries : int
        Runs again of a batch whose task raised.
    *objects
        The large arguments, from the worker's memory (dask resolved them).

    Returns
    -------
    bytes
        ``("ok", results, seconds)`` (`seconds`: unpickling and running
        the batch, retries included) or ``("raised", exception, traceback
        text)``, pickled.  Errors are returned, not raised, so that dask does
        not log them as failed tasks.
    """
    try:
        start = time.perf_counter()
        _LOADING.objects = objects
        try:
            batch = pickle.loads(payload)
        finally:
            _LOADING.objects = None
        unpickling = time.perf_counter() - start
        # (Setting the limits takes about a millisecond whatever the batch: not counted as its
        # cost, which the auto batcher divides among the tasks.)
        with _thread_limits(inner_threads):
            start = time.perf_counter()
            for attempt in range(retries + 1):
                try:
                    results, _ = batch(nested="dask")
                    break
                except BaseException:
                    if attempt == retries:
                        raise
            seconds = unpickling + time.perf_counter() - start
        return cloudpickle.dumps(("ok", results, seconds), protocol=5)
    except BaseException as exc:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        # The text says it all; a traceback object would travel too (dask installs tblib's
        # pickling), and its frames, rebuilt in the caller, would keep the task's future alive.
        exc.__traceback__ = exc.__cause__ = exc.__context__ = None
        try:
            return cloudpickle.dumps(("raised", exc, text), protocol=5)
        except Exception as error:
            replacement = RuntimeError(
                f"{type(exc).__module__}.{type(exc).__qualname__}: {exc} "
                f"(the exception could not be pickled to be sent back: {error})"
            )
            return cloudpickle.dumps(("raised", replacement, text), protocol=5)


def _thread_limits(inner_threads):
    """BLAS/OpenMP threads limited to the worker thread's share of the host's cores (or `inner_threads`)."""
    controller = _controller()
    if controller is None:
        return contextlib.nullcontext()
    if inner_threads is None:
        if not _CORES:
            _CORES.append(cpu_count())
        inner_threads = max(1, _CORES[0] // distributed.get_worker().state.nthreads)
    return controller.limit(limits=inner_threads)


def _controller():
    """This process's ``threadpoolctl.ThreadpoolController``, or None without threadpoolctl.

    Finding the thread pools scans the loaded libraries (a millisecond, per
    batch otherwise); the scan is made again when modules were imported
    since, as a task may have loaded one (numpy's BLAS...).
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # threadpoolctl is in joblite[dask]; a worker may lack it
        return None
    with _CONTROLLER_LOCK:
        if not _CONTROLLER or _CONTROLLER[0] != len(sys.modules):
            _CONTROLLER[:] = [len(sys.modules), ThreadpoolController()]
        return _CONTROLLER[1]
