"""``MemorizedFunc``: a function whose results are cached; a plain hit, and the one path of a cache miss.

A plain hit returns from :meth:`MemorizedFunc.__call__`; everything else
(a miss, ``call_and_shelve``, a damaged entry, a failing store, arguments
that cannot be hashed), for sync and async functions alike, is
:meth:`MemorizedFunc._cache_miss`, whose steps that block (running the
function, waiting for a lock) are run by a driver: ``MemorizedFunc._drive``
in the caller's thread, ``AsyncMemorizedFunc._drive`` in the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import numbers
import time
import warnings

from . import compressors, func_inspect
from ._memory_keys import UnhashableArguments, check_code, forget_checks, identify, prepare
from ._memory_results import (
    MemorizedResult,
    NotMemorizedResult,
    backend_from_state,
    backend_state,
    entry_name,
    function_place,
    open_store,
)
from ._validate import check_mmap_mode
from .store import CacheWarning, CodeRecordMissing, describe_os_error

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._typing import Compress, MmapMode, PathType, ValidationCallback
    from .store import StoreBackendBase

__all__ = ["MemorizedFunc", "AsyncMemorizedFunc", "check_verbose"]

_MISSING = object()
# What the steps of a call (see MemorizedFunc._cache_miss) yield to have the function called.
_CALL = object()


def check_verbose(verbose):
    """Refuse a `verbose` that is not an int (bools and numpy integers are ints, as for joblib)."""
    if not isinstance(verbose, numbers.Integral):
        raise TypeError(f"verbose={verbose!r} must be an int (0: silent; 1 and more: more output)")


class _Faults:
    """What went wrong with the store during one call: the first problem is warned about, once.

    A store that misbehaves (full, read-only, removed) usually fails every
    operation of a call in turn: the lookup, the lock, the code record, the
    write.  The call warns about the first and returns the computed result.
    Used as a context manager, it warns when the call ends; `stacklevel`
    counts from the frame that opened it.
    """

    __slots__ = ("func_id", "location", "stacklevel", "message")

    def __init__(self, func_id, location, stacklevel):
        self.func_id = func_id
        self.location = location
        self.stacklevel = stacklevel
        self.message = None

    def warn(self, message):
        if self.message is None:
            self.message = message

    def fault(self, what, exc):
        """Note the ``OSError`` `exc` met while doing `what`."""
        self.warn(
            f"{self.func_id}: the cache at {self.location} failed while {what}: "
            f"{describe_os_error(exc)}; the computed result is returned"
        )

    def code_record(self, exc):
        """Note that the code record could not be checked (`exc`): this call does not use the cache."""
        self.fault("checking the code record (the cache is not used)", exc)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.message is not None:
            warnings.warn(self.message, CacheWarning, stacklevel=self.stacklevel + 1)


class _Steps:
    """The steps of one call (a generator, see ``MemorizedFunc._cache_miss``), as a driver runs them.

    Iterating gives each request; the driver sets :attr:`reply` before asking
    for the next.  When the steps are done, :attr:`result` is the call's.
    Leaving the ``with`` block closes them, which releases a lock they hold
    when the function raised.  The generator is always resumed from here, so
    the warnings it gives count the same frames above them.
    """

    __slots__ = ("_steps", "reply", "result")

    def __init__(self, steps):
        self._steps = steps
        self.reply = None
        self.result = None

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._steps.send(self.reply)
        except StopIteration as done:
            self.result = done.value
            raise StopIteration from None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._steps.close()


class MemorizedFunc:
    """A function whose results are cached on disk, as ``Memory.cache`` returns it.

    Calling it returns the cached result for these arguments if there is
    one, else calls the function and stores the result.  The store never
    makes a call fail: when it cannot be read or written (a full disk, a
    read-only or removed store), the call returns the computed result with
    one :class:`CacheWarning` naming the file and the error.

    It is what ``Memory(location).cache(func)`` returns; built directly,
    ``MemorizedFunc(func, location)`` files its entries in the same cache.

    Parameters
    ----------
    func : callable
        The function to cache.
    location : str, pathlib.Path or StoreBackendBase
        The cache folder, as for :class:`joblite.Memory`, or a configured
        store backend.
    backend : str, optional
        The store backend, when `location` is a folder; default ``'local'``.
    ignore : list of str, optional
        Parameter names that do not take part in the cache key.
    mmap_mode : {None, 'r+', 'r', 'w+', 'c'}, optional
        Arrays of cached results are loaded as ``np.memmap`` with this mode.
    compress : bool, int, str or tuple, optional
        As for :func:`joblite.dump`.
    verbose : int, optional
        0: silent; 1 and more: joblib's ``[Memory] Calling ...`` block and
        the duration on each computation, and the input repr in the
        metadata; above 1 a ``[Memory] ...: Loading f...`` line on each
        load; above 4 the load time; above 10 also the entry's path and the
        cache decisions.
    timestamp : float, optional
        The reference time (s since the epoch) of the ``Loading`` lines;
        default now.
    cache_validation_callback : callable, optional
        ``callback(metadata) -> bool``; when it returns False the cached
        result is recomputed.  The metadata dict has ``'duration'`` (s) and
        ``'time'`` (s since the epoch).
    bytes_limit : int, optional
        Store size (bytes) enforced after each write; see ``Memory``.

    Raises
    ------
    TypeError
        If `func` is not callable, `location` is not a folder or a store
        backend, or `verbose` is not an int.
    ValueError
        If `backend`, `ignore`, `mmap_mode`, `compress` or
        `cache_validation_callback` is not valid.

    Attributes
    ----------
    func : callable
    func_id : str
        ``'module/qualified name'``, under which entries are filed.
    store_backend : StoreBackendBase
    """

    def __init__(
        self,
        func: Callable[..., Any],
        location: PathType | StoreBackendBase,
        backend: str = "local",
        ignore: list[str] | None = None,
        mmap_mode: MmapMode | None = None,
        compress: Compress = False,
        verbose: int = 1,
        timestamp: float | None = None,
        cache_validation_callback: ValidationCallback | None = None,
        *,
        bytes_limit: int | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"func={func!r} is not callable")
        if cache_validation_callback is not None and not callable(cache_validation_callback):
            raise ValueError(f"cache_validation_callback={cache_validation_callback!r} is not callable")
        if ignore is not None and (isinstance(ignore, str) or not all(isinstance(n, str) for n in ignore)):
            raise ValueError(f"ignore={ignore!r} must be a list of parameter names")
        check_mmap_mode(mmap_mode)  # validates; the store maps 'w+' as 'r+'
        self._compress = compressors.parse_compress(compress)
        check_verbose(verbose)
        self.store_backend = open_store(location, backend, verbose)
        self.func = func
        self.ignore = list(ignore or [])
        self.mmap_mode = mmap_mode
        self.compress = compress
        self._verbose = verbose
        self.cache_validation_callback = cache_validation_callback
        self.bytes_limit = bytes_limit
        self.timestamp = time.time() if timestamp is None else timestamp
        self._binder = func_inspect.CallBinder(func, self.ignore)  # also checks `ignore`
        self._keys = None  # a FunctionKeys, once prepared without a fault
        self._identity = None
        try:
            functools.update_wrapper(self, func, updated=())  # not its __dict__: it may hold our names
        except AttributeError:
            pass

    # -- identity, once per process -------------------------------------------------------
    @property
    def func_id(self) -> str:
        return self._prepare().func_id

    def _prepare(self):
        """How this function's calls are keyed (a ``FunctionKeys``), kept once its code record is checked."""
        keys = self._keys
        if keys is None:
            keys = prepare(self.func, self._binder, self.store_backend, self._identify(), self._verbose)
            if keys.fault is None:  # else the next call checks again; until then the store is not used
                self._keys = keys
        return keys

    def _identify(self):
        """``(module, name, code digest, source)``, found in the process that made this object.

        It travels with the object when it is pickled: in a worker process,
        ``__main__`` is another script and the source may not be readable, and
        the entries must still be filed, and the code checked, as in the caller.
        """
        if self._identity is None:
            self._identity = identify(self.func)
        return self._identity

    # -- the public calls: a plain hit returns in __call__, the rest is _cache_miss's ------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        keys = self._keys
        if keys is not None and self.cache_validation_callback is None and self._verbose <= 1:
            # A plain hit returns here, with nothing in the way.  A plain miss goes on
            # with its key, looked up; anything else to the miss path's full lookup.
            try:
                key = keys.call_id(args, kwargs)
            except UnhashableArguments:
                pass  # the miss path warns
            else:
                try:
                    return self.store_backend.load_item(key[0], self.mmap_mode)
                except KeyError:
                    return self._drive(self._cache_miss(args, kwargs, False, key, looked_up=True), args, kwargs)
                except Exception:  # the full lookup of the miss path reports it
                    return self._drive(self._cache_miss(args, kwargs, False, key), args, kwargs)
        return self._drive(self._cache_miss(args, kwargs, False), args, kwargs)

    def call_and_shelve(self, *args: Any, **kwargs: Any) -> MemorizedResult:
        """Call (or find in the cache) and return a :class:`MemorizedResult` instead of the value.

        Returns
        -------
        MemorizedResult
        """
        return self._drive(self._cache_miss(args, kwargs, True), args, kwargs)

    def call(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any] | None]:
        """Call the function, store its result whether cached or not, and return it with its metadata.

        Returns
        -------
        output : object
        metadata : dict or None
            ``'duration'`` (s), ``'time'`` (s since the epoch) and, at
            ``verbose`` > 0, ``'input_args'``: the repr of each argument.
            None when the result could not be stored (a
            :class:`CacheWarning` says why).
        """
        return self._drive(self._recompute(args, kwargs), args, kwargs)

    def check_call_in_cache(self, *args: Any, **kwargs: Any) -> bool:
        """Return whether the result of this call is in the cache (without loading it).

        Raises
        ------
        TypeError
            If the arguments do not fit the signature or cannot be hashed.
        """
        keys = self._prepare()
        call_id, _ = keys.call_id(args, kwargs)
        if keys.fault is not None:
            with _Faults(keys.func_id, self.store_backend.location, stacklevel=2) as faults:
                faults.code_record(keys.fault)
            return False
        return self.store_backend.contains_item(call_id)

    def clear(self, warn: bool = True) -> None:
        """Remove every cached result of this function.

        Parameters
        ----------
        warn : bool, optional
            Print which function is cleared when ``verbose`` > 0.

        Raises
        ------
        OSError
            If the store cannot be written.
        """
        keys = self._prepare()
        if warn and self._verbose > 0:
            print(f"[Memory] Clearing function cache of {keys.func_id} in {self.store_backend.location}")
        self.store_backend.clear_path(keys.func_id)
        forget_checks(self.store_backend.location, keys.func_id)
        self._keys = None

    # -- a cache miss ---------------------------------------------------------------------
    def _cache_miss(self, args, kwargs, shelving, key=None, looked_up=False):
        """A call that is not a plain hit, one path for sync and async functions; a generator.

        The steps: key the call (arguments that cannot be hashed: run the
        function without the cache); look the entry up, unless the caller
        did (`looked_up`); take the entry's lock, when the store has locks,
        or wait until another process has stored it; look up again after
        waiting; run the function; store the result; release the lock, after
        the write so that those waiting find the entry.  When the store
        fails, the computed result is returned and the first fault is warned
        about when the call ends (:class:`_Faults`), never raised.

        The steps that block are the driver's (:meth:`_drive`, in this thread
        or in the event loop): the generator yields ``_CALL`` to be sent the
        function's output for the call's arguments, or a callable (waiting
        for the lock) to be sent what it returns.  Its return value is the
        call's: the value, or a (Not)MemorizedResult when `shelving`.

        Parameters
        ----------
        args : tuple
        kwargs : dict
        shelving : bool
            For ``call_and_shelve``.
        key : tuple, optional
            ``(call_id, values)`` when the caller has keyed the call.
        looked_up : bool, optional
            The caller has looked `key` up and found no entry.
        """
        keys = self._prepare()
        with _Faults(keys.func_id, self.store_backend.location, stacklevel=5) as faults:
            if key is None:
                try:
                    key = keys.call_id(args, kwargs)
                except UnhashableArguments as exc:
                    faults.warn(f"{exc}; calling it without the cache")
                    output = yield _CALL
                    return NotMemorizedResult(output) if shelving else output
            call_id, values = key
            if keys.fault is not None:
                faults.code_record(keys.fault)
                output, _, _ = yield from self._run(keys, args, kwargs)
                return NotMemorizedResult(output) if shelving else output
            if not looked_up:
                found = self._lookup(keys, call_id, shelving, faults)
                if found is not _MISSING:
                    return found
            if self._verbose > 10:
                logging.getLogger("joblite").warning(
                    "[%s]: Computing func %s, argument hash %s in location %s",
                    self,
                    self._display_name,
                    call_id[1],
                    function_place(self.store_backend, call_id[0]),
                )
            lock = self.store_backend.entry_lock(call_id)
            held = None
            if lock is not None:
                held = yield functools.partial(self._acquire, lock, call_id, faults)
            try:
                if held is not None:  # held, or computed by another process meanwhile: look again
                    found = self._lookup(keys, call_id, shelving, faults)
                    if found is not _MISSING:
                        return found
                output, start, duration = yield from self._run(keys, args, kwargs)
                return self._store_result(keys, call_id, values, shelving, output, start, duration, faults)
            finally:
                if held:  # after the write: those waiting then find the entry
                    self._release(lock, faults)

    def _recompute(self, args, kwargs):
        """The steps of :meth:`call`, run as :meth:`_cache_miss`'s are: run the function, store the result."""
        keys = self._prepare()
        call_id, values = keys.call_id(args, kwargs)
        with _Faults(keys.func_id, self.store_backend.location, stacklevel=5) as faults:
            if keys.fault is not None:
                faults.code_record(keys.fault)
            output, start, duration = yield from self._run(keys, args, kwargs)
            if keys.fault is not None:
                return output, None
            return output, self._store(keys, call_id, values, output, start, duration, faults)

    def _drive(self, steps, args, kwargs):
        """Run the steps of a call (:meth:`_cache_miss`, :meth:`_recompute`) in this thread; their result."""
        with _Steps(steps) as run:
            for request in run:
                run.reply = self.func(*args, **kwargs) if request is _CALL else request()
        return run.result

    def _run(self, keys, args, kwargs):
        """Steps: announce the call (its arguments as passed), have the function called.

        Returns ``(output, start, duration)``.
        """
        if self._verbose > 0:
            print(func_inspect.format_call(self.func, args, kwargs))
        start = time.time()
        output = yield _CALL
        return output, start, time.time() - start

    def _lookup(self, keys, call_id, shelving, faults):
        """The cached result (or a MemorizedResult) or _MISSING."""
        store = self.store_backend
        callback = self.cache_validation_callback
        metadata = None
        start = time.perf_counter() if self._verbose > 4 else 0.0
        try:
            if shelving:
                if callback is None:
                    return self._result(call_id) if store.contains_item(call_id) else _MISSING
                metadata = store.get_metadata(call_id)
            elif callback is None:
                value = store.load_item(call_id, self.mmap_mode)
            else:
                value, metadata = store.load_item_and_metadata(call_id, self.mmap_mode)
        except KeyError:
            return _MISSING
        except OSError as exc:
            faults.fault("reading the entry", exc)
            return _MISSING
        except Exception as exc:  # an unreadable entry is recomputed, never the caller's problem
            faults.warn(
                f"{keys.func_id}: the cached result {call_id[1]} in {store.location} cannot be "
                f"loaded ({type(exc).__name__}: {exc}); computing it again"
            )
            return _MISSING
        if callback is not None and not callback(metadata):
            if self._verbose > 10:
                print(f"[Memory] {keys.func_id}: cached result {call_id[1]} rejected by the cache_validation_callback")
            return _MISSING
        if shelving:
            return self._result(call_id, metadata)
        if self._verbose > 1:
            print(self._loading(call_id))
        if self._verbose > 4:
            print(func_inspect.format_duration(self._display_name, time.perf_counter() - start, "cache loaded "))
        return value

    def _acquire(self, lock, call_id, faults):
        """Take `lock` or wait for the entry: True (held), False (the entry appeared) or None (failed)."""
        try:
            return lock.acquire_or_wait(lambda: self.store_backend.contains_item(call_id))
        except OSError as exc:
            faults.fault("taking the lock (computing without it)", exc)
            return None

    @staticmethod
    def _release(lock, faults):
        try:
            lock.release()
        except OSError as exc:
            faults.fault("releasing the lock", exc)

    def _store(self, keys, call_id, values, output, start, duration, faults):
        """Store `output`; return its metadata, or None when it could not be stored (noted in `faults`)."""
        metadata = {"duration": duration, "time": start}
        if self._verbose > 0:
            metadata["input_args"] = func_inspect.input_reprs(keys.binder, values)
        store = self.store_backend
        if self._verbose > 10:
            print(f"Persisting in {entry_name(store, call_id)}")
        try:
            check_code(store, keys.func_id, *keys.code, self._verbose)  # once more after a Memory.clear()
            try:
                written = store.dump_item(call_id, output, metadata, self._compress)
            except CodeRecordMissing:  # another process cleared the function meanwhile
                forget_checks(store.location, keys.func_id)
                check_code(store, keys.func_id, *keys.code, self._verbose)
                written = store.dump_item(call_id, output, metadata, self._compress)
        except OSError as exc:
            faults.fault("storing the result (it will be computed again next time)", exc)
            return None
        except Exception as exc:
            faults.warn(
                f"{keys.func_id}: the result ({type(output).__name__}) cannot be stored in the "
                f"cache at {store.location} ({type(exc).__name__}: {exc}); it is returned but will "
                "be computed again next time"
            )
            return None
        if self._verbose > 0:
            print(func_inspect.format_duration(self._display_name, duration))
        if self.bytes_limit is not None:
            try:
                failed = store.enforce_bytes_limit(self.bytes_limit, written)
            except OSError as exc:
                faults.fault("keeping it under bytes_limit", exc)
            else:
                if failed:
                    faults.fault(
                        f"keeping it under bytes_limit ({len(failed)} "
                        f"{'entry' if len(failed) == 1 else 'entries'} could not be removed)",
                        failed[0][1],
                    )
        return metadata

    def _store_result(self, keys, call_id, values, shelving, output, start, duration, faults):
        metadata = self._store(keys, call_id, values, output, start, duration, faults)
        if shelving:
            if metadata is None:
                return NotMemorizedResult(output)
            return self._result(call_id, metadata)
        if metadata is not None and self.mmap_mode is not None:
            # As joblib: the first call returns what later calls will, memmaps included.
            try:
                output = self.store_backend.load_item(call_id, self.mmap_mode)
            except Exception:
                return output
            if self._verbose > 1:
                print(self._loading(call_id, metadata))
        return output

    # -- what the [Memory] lines show -----------------------------------------------------
    @functools.cached_property
    def _display_name(self):
        """The function's ``__name__``, as joblib's lines show it."""
        return func_inspect.display_name(self.func)[1]

    def _loading(self, call_id, metadata=None):
        return func_inspect.format_loading(
            self._display_name,
            self.timestamp,
            metadata,
            entry_name(self.store_backend, call_id) if self._verbose >= 10 else None,
        )

    def _result(self, call_id, metadata=None):
        """The :class:`MemorizedResult` of `call_id`, loading as joblib's does, one verbose level lower."""
        return MemorizedResult(
            self.store_backend,
            call_id,
            mmap_mode=self.mmap_mode,
            verbose=self._verbose - 1,
            timestamp=self.timestamp,
            metadata=metadata,
            name=self._display_name,
        )

    # -- pickling and display ------------------------------------------------------------
    def __reduce__(self):
        module = getattr(self.func, "__module__", None)
        qualname = getattr(self.func, "__qualname__", "")
        if module != "__main__" and "<" not in qualname and _global(module, qualname) is self:
            # A decorated module-level function: its name leads to this object, the
            # function itself is not reachable by name.
            return _global, (module, qualname)
        return (
            _rebuild_memorized,
            (
                type(self),
                self.func,
                backend_state(self.store_backend),
                self.ignore,
                self.mmap_mode,
                self.compress,
                self._verbose,
                self.timestamp,
                self.cache_validation_callback,
                self.bytes_limit,
                self._identify(),
            ),
        )

    def __repr__(self):
        return f"{type(self).__name__}(func={self.func!r}, location={self.store_backend.location})"


def _global(module, qualname):
    """The object `module`.`qualname`, importing `module`; None if it is not there."""
    import importlib

    try:
        found = importlib.import_module(module)
    except ImportError:
        return None
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


def _rebuild_memorized(
    cls, func, backend_state, ignore, mmap_mode, compress, verbose, timestamp, callback, bytes_limit, identity
):
    memorized = cls(
        func,
        backend_from_state(backend_state),
        ignore=ignore,
        mmap_mode=mmap_mode,
        compress=compress,
        verbose=verbose,
        timestamp=timestamp,
        cache_validation_callback=callback,
        bytes_limit=bytes_limit,
    )
    memorized._identity = identity
    return memorized


class AsyncMemorizedFunc(MemorizedFunc):
    """A cached coroutine function: calls return awaitables, as joblib's do.

    The steps of a call are :class:`MemorizedFunc`'s; here the function is
    awaited, and waiting for another process's lock happens in a worker
    thread.  The cache lookup and store happen in the event loop's thread.
    """

    # Calls return awaitables of what MemorizedFunc's return, as joblib's do.
    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await self._drive(self._cache_miss(args, kwargs, False), args, kwargs)

    async def call_and_shelve(self, *args: Any, **kwargs: Any) -> MemorizedResult:  # type: ignore[override]
        return await self._drive(self._cache_miss(args, kwargs, True), args, kwargs)

    async def call(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any] | None]:  # type: ignore[override]
        return await self._drive(self._recompute(args, kwargs), args, kwargs)

    async def _drive(self, steps, args, kwargs):
        """Run the steps of a call in the event loop: the function awaited, the lock waited for in a thread."""
        with _Steps(steps) as run:
            for request in run:
                run.reply = await (self.func(*args, **kwargs) if request is _CALL else asyncio.to_thread(request))
        return run.result
