"""``Memory``: transparent disk caching of function results, with joblib's names and semantics.

A call's entry is keyed by the function's identity and :func:`joblite.hash`
of its bound arguments (defaults filled in, ``ignore``\\ d names dropped); the
result is stored with :mod:`joblite.persistence` through a store backend
(:mod:`joblite.store`).  See the caching guide for keys, code changes,
concurrency, locking and size limits.
"""
import asyncio
import collections.abc
import datetime
import functools
import inspect
import numbers
import os
import time
import warnings
import weakref

from . import _impl, compressors, func_inspect, persistence
from .hashing import _cell_value, _digest_factory, hash as _hash, reduce_object
from .store import (CacheWarning, CodeRecordMissing, describe_os_error, parse_size, register_store_backend,
                    store_backend, warn_not_removed)

__all__ = ["Memory", "MemorizedFunc", "AsyncMemorizedFunc", "NotMemorizedFunc", "MemorizedResult",
           "NotMemorizedResult", "expires_after", "register_store_backend", "CacheWarning"]

_MISSING = object()
_NO_CLOSURE = ()
# (store root, func_id) -> (weak reference to the function, code digest), for this process:
# a second, different function filed under the same name gets a name of its own.
_LIVE_FUNCTIONS = {}
# function -> (code digest, source): reading and parsing source takes a millisecond
_CODE_DIGESTS = weakref.WeakKeyDictionary()
# (store location, func_id, code digest) already checked against the store in this process
_CHECKED_CODE = set()


def _forget_checks(location, func_id=None):
    """After a clear, the code records are gone: check (and write) them again."""
    for checked in [c for c in _CHECKED_CODE if c[0] == location and func_id in (None, c[1])]:
        _CHECKED_CODE.discard(checked)


def _code_digest(func):
    target = getattr(func, "__func__", func)
    try:
        return _CODE_DIGESTS[target]
    except (KeyError, TypeError):
        pass
    found = func_inspect.code_digest(func, _hash)
    try:
        _CODE_DIGESTS[target] = found
    except TypeError:   # not weakly referable
        pass
    return found


_KEY_DIGEST = _digest_factory("xxh3_128")


def _args_digest(key_object):
    hasher = _impl.hasher.StreamHasher(_KEY_DIGEST, reduce_object)
    hasher.update(key_object, "args")
    return hasher.hexdigest()


class _UnhashableArguments(TypeError):
    """The arguments of a call cannot be hashed into a cache key."""


def _warn(message, stacklevel=4):
    warnings.warn(message, CacheWarning, stacklevel=stacklevel)


def _check_verbose(verbose):
    """Refuse a `verbose` that is not an int (bools and numpy integers are ints, as for joblib)."""
    if not isinstance(verbose, numbers.Integral):
        raise TypeError(f"verbose={verbose!r} must be an int (0: silent; 1 and more: more output)")


class _Faults:
    """What went wrong with the store during one call: the first problem is warned about, once.

    A store that misbehaves (full, read-only, removed) usually fails every
    operation of a call in turn: the lookup, the lock, the code record, the
    write.  The call warns about the first and returns the computed result.
    """

    __slots__ = ("func_id", "location", "message")

    def __init__(self, prepared, location):
        self.func_id = prepared.func_id
        self.location = location
        self.message = None
        if prepared.fault is not None:
            self.fault("checking the code record (the cache is not used)", prepared.fault)

    def warn(self, message):
        if self.message is None:
            self.message = message

    def fault(self, what, exc):
        """Note the ``OSError`` `exc` met while doing `what`."""
        self.warn(f"{self.func_id}: the cache at {self.location} failed while {what}: "
                  f"{describe_os_error(exc)}; the computed result is returned")

    def emit(self, stacklevel):
        if self.message is not None:
            warnings.warn(self.message, CacheWarning, stacklevel=stacklevel + 1)


_RUN, _LOCK = "run", "lock"   # what the miss path asks of its caller (see MemorizedFunc._miss)


class _Prepared:
    """What a MemorizedFunc computes once per process, at its first call.

    ``fault`` is the ``OSError`` met checking the function's code record in
    the store, or None; a MemorizedFunc keeps only a fault-free one.
    """

    __slots__ = ("func_id", "module", "name", "binder", "closure_digest", "bound_self", "code", "fault")


class MemorizedResult:
    """A reference to a result in the cache, as ``call_and_shelve`` returns it.

    It pickles small (the store configuration and the call's identity), so it
    can be sent to another process, which loads the result with :meth:`get`.

    Parameters
    ----------
    store_backend : StoreBackendBase
    call_id : tuple of str
        ``(func_id, args_id)``.
    mmap_mode : {None, 'r+', 'r', 'w+', 'c'}, optional
        How arrays of the result are loaded.
    verbose : int, optional
    metadata : dict, optional
        The entry's metadata when it is known.

    Attributes
    ----------
    func_id, args_id : str
    """

    def __init__(self, store_backend, call_id, mmap_mode=None, verbose=0, metadata=None):
        self.store_backend = store_backend
        self.func_id, self.args_id = call_id
        self.mmap_mode = mmap_mode
        self.verbose = verbose
        self.metadata = metadata

    @property
    def location(self):
        return self.store_backend.location

    def get(self):
        """Load and return the result.

        Raises
        ------
        KeyError
            If the entry is no longer in the cache (cleared or evicted).
        """
        try:
            return self.store_backend.load_item((self.func_id, self.args_id), self.mmap_mode)
        except KeyError:
            raise KeyError(f"the result of {self.func_id} with arguments {self.args_id} is no longer "
                           f"in the cache at {self.location} (cleared or evicted)") from None

    def clear(self):
        """Remove the result from the cache."""
        self.store_backend.clear_item((self.func_id, self.args_id))

    def __repr__(self):
        return f"MemorizedResult(location={self.location!r}, func={self.func_id!r}, args_id={self.args_id!r})"

    def __reduce__(self):
        return (_rebuild_result, (_backend_state(self.store_backend), (self.func_id, self.args_id),
                                  self.mmap_mode, self.verbose, self.metadata))


def _backend_state(backend):
    options = backend.options() if hasattr(backend, "options") else None
    return type(backend), backend.location, options


def _backend_from_state(state):
    cls, location, options = state
    backend = cls()
    backend.configure(location, backend_options=options)
    return backend


def _rebuild_result(backend_state, call_id, mmap_mode, verbose, metadata):
    return MemorizedResult(_backend_from_state(backend_state), call_id, mmap_mode, verbose, metadata)


class NotMemorizedResult:
    """What ``call_and_shelve`` returns without a cache: the value itself, held in memory."""

    __slots__ = ("value", "valid")

    def __init__(self, value):
        self.value = value
        self.valid = True

    def get(self):
        """Return the value; ``KeyError`` after :meth:`clear`."""
        if not self.valid:
            raise KeyError("the result has been cleared")
        return self.value

    def clear(self):
        """Forget the value."""
        self.valid = False
        self.value = None

    def __repr__(self):
        return f"NotMemorizedResult({self.value!r})" if self.valid else "NotMemorizedResult(<cleared>)"


class NotMemorizedFunc:
    """A function wrapped by ``Memory(location=None)``: every call computes; nothing is stored.

    Parameters
    ----------
    func : callable
    """

    def __init__(self, func):
        self.func = func
        functools.update_wrapper(self, func, updated=())  # not its __dict__: it may hold our names

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def call_and_shelve(self, *args, **kwargs):
        """Call and return a :class:`NotMemorizedResult` holding the value."""
        return NotMemorizedResult(self.func(*args, **kwargs))

    def call(self, *args, **kwargs):
        """Call and return ``(output, {})``."""
        return self.func(*args, **kwargs), {}

    def check_call_in_cache(self, *args, **kwargs):
        """Always False: nothing is cached."""
        return False

    def clear(self, warn=True):
        """Nothing to clear."""

    def __repr__(self):
        return f"NotMemorizedFunc(func={self.func!r})"

    def __reduce__(self):
        return NotMemorizedFunc, (self.func,)


class MemorizedFunc:
    """A function whose results are cached on disk, as ``Memory.cache`` returns it.

    Calling it returns the cached result for these arguments if there is
    one, else calls the function and stores the result.  The store never
    makes a call fail: when it cannot be read or written (a full disk, a
    read-only or removed store), the call returns the computed result with
    one :class:`CacheWarning` naming the file and the error.

    Parameters
    ----------
    func : callable
        The function to cache.
    store_backend : StoreBackendBase
        Where entries are stored.
    ignore : list of str, optional
        Parameter names that do not take part in the cache key.
    mmap_mode : {None, 'r+', 'r', 'w+', 'c'}, optional
        Arrays of cached results are loaded as ``np.memmap`` with this mode.
    compress : bool, int, str or tuple, optional
        As for :func:`joblite.dump`.
    verbose : int, optional
        0: silent; 1 and more: a ``[Memory] Calling ...`` line and the
        duration on each computation, and the input repr in the metadata;
        above 4 the load time of hits; above 10 also the cache decisions.
    cache_validation_callback : callable, optional
        ``callback(metadata) -> bool``; when it returns False the cached
        result is recomputed.  The metadata dict has ``'duration'`` (s) and
        ``'time'`` (s since the epoch).
    bytes_limit : int, optional
        Store size (bytes) enforced after each write; see ``Memory``.

    Attributes
    ----------
    func : callable
    func_id : str
        ``'module/qualified name'``, under which entries are filed.
    """

    def __init__(self, func, store_backend, ignore=None, mmap_mode=None, compress=False, verbose=1,
                 cache_validation_callback=None, bytes_limit=None):
        if not callable(func):
            raise TypeError(f"func={func!r} is not callable")
        if cache_validation_callback is not None and not callable(cache_validation_callback):
            raise ValueError(f"cache_validation_callback={cache_validation_callback!r} is not callable")
        if ignore is not None and (isinstance(ignore, str) or not all(isinstance(n, str) for n in ignore)):
            raise ValueError(f"ignore={ignore!r} must be a list of parameter names")
        self.func = func
        self.store_backend = store_backend
        self.ignore = list(ignore or [])
        persistence._check_mmap_mode(mmap_mode)   # validates
        self.mmap_mode = mmap_mode
        self.compress = compress
        self._compress = compressors.parse_compress(compress)
        _check_verbose(verbose)
        self._verbose = verbose
        self.cache_validation_callback = cache_validation_callback
        self.bytes_limit = bytes_limit
        self.timestamp = time.time()
        self._binder = func_inspect.CallBinder(func, self.ignore)  # also checks `ignore`
        self._prepared = None
        self._identity = None
        try:
            functools.update_wrapper(self, func, updated=())  # not its __dict__: it may hold our names
        except AttributeError:
            pass

    # -- identity, once per process -------------------------------------------------------
    @property
    def func_id(self):
        return self._prepare().func_id

    def _prepare(self):
        prepared = self._prepared
        if prepared is not None:
            return prepared
        prepared = _Prepared()
        func = self.func
        module, name, digest, source = self._identify()
        func_id = f"{module}/{name}"
        target = getattr(func, "__func__", func)
        live_key = (getattr(self.store_backend, "location", None), func_id)
        live = _LIVE_FUNCTIONS.get(live_key)
        if live is not None and live[1] != digest and live[0]() not in (None, target):
            # Two different functions of one name alive in this process.
            name = f"{name}-{digest[:8]}"
            func_id = f"{module}/{name}"
        else:
            try:
                _LIVE_FUNCTIONS[live_key] = (weakref.ref(target), digest)
            except TypeError:
                pass
        prepared.func_id, prepared.module, prepared.name = func_id, module, name
        prepared.binder = self._binder
        prepared.bound_self = getattr(func, "__self__", None) if inspect.ismethod(func) else None
        prepared.closure_digest = self._closure_digest(func, target, digest)
        prepared.code = (digest, source)
        try:
            self._check_code(func_id, digest, source)
        except OSError as exc:
            # Not kept: the next call checks again; until then nothing in the store is trusted.
            prepared.fault = exc
            return prepared
        prepared.fault = None
        self._prepared = prepared
        return prepared

    def _identify(self):
        """``(module, name, code digest, source)``, found in the process that made this object.

        It travels with the object when it is pickled: in a worker process,
        ``__main__`` is another script and the source may not be readable, and
        the entries must still be filed, and the code checked, as in the caller.
        """
        if self._identity is None:
            self._identity = func_inspect.function_name(self.func) + _code_digest(self.func)
        return self._identity

    def _closure_digest(self, func, target, code):
        """What besides the arguments decides the result: closure values, or the callable itself."""
        try:
            if code == "" and not inspect.ismethod(func):
                return _hash(func)   # partials, callable objects: their state is part of the key
            cells = getattr(target, "__closure__", None)
            if not cells:
                return _NO_CLOSURE
            return _hash(tuple(_cell_value(cell) for cell in cells))
        except TypeError as exc:
            _warn(f"{getattr(func, '__qualname__', func)}: the values it closes over cannot be hashed "
                  f"({exc}); they are not part of the cache key")
            return _NO_CLOSURE

    def _check_code(self, func_id, digest, source):
        """Make sure the store's code record of `func_id` is this code's, clearing older entries.

        Raises
        ------
        OSError
            If the record cannot be read or written, or older entries removed.
        """
        store = self.store_backend
        checked = (store.location, func_id, digest)
        if checked in _CHECKED_CODE:
            return
        record = store.get_cached_func_code(func_id)
        if record is None or record.get("code_digest") != digest or \
                record.get("format") != func_inspect.CODE_FORMAT:
            if record is not None:
                if self._verbose > 0:
                    _warn(f"the code of {func_id} has changed since its results were cached in "
                          f"{store.location}: clearing them", stacklevel=5)
                store.clear_path(func_id)
            store.store_cached_func_code(func_id, {"format": func_inspect.CODE_FORMAT, "func_id": func_id,
                                                   "code_digest": digest, "source": source})
        _CHECKED_CODE.add(checked)

    def _call_id(self, prepared, args, kwargs):
        values = prepared.binder.values(args, kwargs)
        key = prepared.binder.key_values(values)
        if prepared.closure_digest is not _NO_CLOSURE:
            key = (prepared.closure_digest, key)
        if prepared.bound_self is not None:
            key = (prepared.bound_self, key)
        try:
            return (prepared.func_id, _args_digest(key)), values
        except TypeError:
            # Hash again by name, for a message that names the argument.
            named = dict(zip(prepared.binder.key_names(), prepared.binder.key_values(values)))
            try:
                _args_digest(named)
            except TypeError as exc:
                raise _UnhashableArguments(f"cannot cache {prepared.func_id}: {exc}") from None
            raise _UnhashableArguments(f"cannot cache {prepared.func_id}: its arguments cannot be hashed")

    # -- the public calls --------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self._cached_call(args, kwargs, shelving=False)

    def call_and_shelve(self, *args, **kwargs):
        """Call (or find in the cache) and return a :class:`MemorizedResult` instead of the value.

        Returns
        -------
        MemorizedResult
        """
        return self._cached_call(args, kwargs, shelving=True)

    def call(self, *args, **kwargs):
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
        prepared = self._prepare()
        call_id, values = self._call_id(prepared, args, kwargs)
        faults = _Faults(prepared, self.store_backend.location)
        try:
            output, start, duration = self._run(prepared, values, args, kwargs)
            metadata = None if prepared.fault is not None else \
                self._store(prepared, call_id, values, output, start, duration, faults)
        finally:
            faults.emit(stacklevel=2)
        return output, metadata

    def check_call_in_cache(self, *args, **kwargs):
        """Return whether the result of this call is in the cache (without loading it).

        Raises
        ------
        TypeError
            If the arguments do not fit the signature or cannot be hashed.
        """
        prepared = self._prepare()
        call_id, _ = self._call_id(prepared, args, kwargs)
        if prepared.fault is not None:
            _Faults(prepared, self.store_backend.location).emit(stacklevel=2)
            return False
        return self.store_backend.contains_item(call_id)

    def clear(self, warn=True):
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
        prepared = self._prepare()
        if warn and self._verbose > 0:
            print(f"[Memory] Clearing function cache of {prepared.func_id} in {self.store_backend.location}")
        self.store_backend.clear_path(prepared.func_id)
        _forget_checks(self.store_backend.location, prepared.func_id)
        self._prepared = None

    # -- the work ------------------------------------------------------------------------
    def _lookup(self, prepared, call_id, shelving, faults):
        """The cached result (or a MemorizedResult) or _MISSING."""
        store = self.store_backend
        callback = self.cache_validation_callback
        metadata = None
        start = time.perf_counter() if self._verbose > 4 else 0.0
        try:
            if shelving:
                if callback is None:
                    return MemorizedResult(store, call_id, self.mmap_mode, self._verbose - 1) \
                        if store.contains_item(call_id) else _MISSING
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
            faults.warn(f"{prepared.func_id}: the cached result {call_id[1]} in {store.location} cannot be "
                        f"loaded ({type(exc).__name__}: {exc}); computing it again")
            return _MISSING
        if callback is not None and not callback(metadata):
            if self._verbose > 10:
                print(f"[Memory] {prepared.func_id}: cached result {call_id[1]} rejected by the "
                      "cache_validation_callback")
            return _MISSING
        if shelving:
            return MemorizedResult(store, call_id, self.mmap_mode, self._verbose - 1, metadata)
        if self._verbose > 4:
            print(func_inspect.format_duration(prepared.name, time.perf_counter() - start, "cache loaded "))
        return value

    def _cached_call(self, args, kwargs, shelving):
        prepared = self._prepared
        trusted = True
        if prepared is None:
            prepared = self._prepare()
            trusted = prepared.fault is None
        try:
            call_id, values = self._call_id(prepared, args, kwargs)
        except _UnhashableArguments as exc:
            _warn(f"{exc}; calling it without the cache", stacklevel=4)
            output = self.func(*args, **kwargs)
            return NotMemorizedResult(output) if shelving else output
        looked_up = False
        if trusted and not shelving and self.cache_validation_callback is None and self._verbose <= 4:
            # The hit path, with nothing in the way; anything but a plain miss
            # goes through the full lookup, which reports it.
            try:
                return self.store_backend.load_item(call_id, self.mmap_mode)
            except KeyError:
                looked_up = True
            except Exception:
                pass
        faults = _Faults(prepared, self.store_backend.location)
        steps = self._miss(prepared, call_id, values, shelving, looked_up, faults)
        try:
            request = next(steps)
            while True:
                if request[0] is _RUN:
                    reply = self._run(prepared, values, args, kwargs)
                else:
                    reply = self._acquire(request[1], call_id, faults)
                request = steps.send(reply)
        except StopIteration as done:
            return done.value
        finally:
            steps.close()   # releases a lock held when the function raised
            faults.emit(stacklevel=3)

    def _miss(self, prepared, call_id, values, shelving, looked_up, faults):
        """The miss path, one for sync and async calls: a generator of the steps that may block.

        It yields ``(_RUN, None)``, to be sent ``(output, start, duration)``
        from running the function, and ``(_LOCK, lock)``, to be sent what
        :meth:`_acquire` returns; its return value is the call's result.
        Store faults are noted in `faults`, never raised.
        """
        if prepared.fault is not None:   # the code record could not be checked: the store is not used
            output, _, _ = yield _RUN, None
            return NotMemorizedResult(output) if shelving else output
        if not looked_up:
            found = self._lookup(prepared, call_id, shelving, faults)
            if found is not _MISSING:
                return found
        lock = self.store_backend.entry_lock(call_id)
        held = None
        if lock is not None:
            held = yield _LOCK, lock
        try:
            if held is not None:   # held, or computed by another process meanwhile: look again
                found = self._lookup(prepared, call_id, shelving, faults)
                if found is not _MISSING:
                    return found
            output, start, duration = yield _RUN, None
            return self._store_result(prepared, call_id, values, shelving, output, start, duration, faults)
        finally:
            if held:   # after the write: waiters then find the entry
                self._release(lock, faults)

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

    def _run(self, prepared, values, args, kwargs):
        if self._verbose > 0:
            print(func_inspect.format_call(prepared.module, prepared.name, prepared.binder.names, values))
        start = time.time()
        output = self.func(*args, **kwargs)
        return output, start, time.time() - start

    def _store(self, prepared, call_id, values, output, start, duration, faults):
        """Store `output`; return its metadata, or None when it could not be stored (noted in `faults`)."""
        metadata = {"duration": duration, "time": start}
        if self._verbose > 0:
            metadata["input_args"] = {name: func_inspect.short_repr(value)
                                      for name, value in zip(prepared.binder.names, values)}
        store = self.store_backend
        try:
            self._check_code(prepared.func_id, *prepared.code)   # once more after a Memory.clear()
            try:
                written = store.dump_item(call_id, output, metadata, self._compress)
            except CodeRecordMissing:   # another process cleared the function meanwhile
                _forget_checks(store.location, prepared.func_id)
                self._check_code(prepared.func_id, *prepared.code)
                written = store.dump_item(call_id, output, metadata, self._compress)
        except OSError as exc:
            faults.fault("storing the result (it will be computed again next time)", exc)
            return None
        except Exception as exc:
            faults.warn(f"{prepared.func_id}: the result ({type(output).__name__}) cannot be stored in the "
                        f"cache at {store.location} ({type(exc).__name__}: {exc}); it is returned but will "
                        "be computed again next time")
            return None
        if self._verbose > 0:
            print(func_inspect.format_duration(prepared.name, duration))
        if self.bytes_limit is not None:
            try:
                failed = store.enforce_bytes_limit(self.bytes_limit, written)
            except OSError as exc:
                faults.fault("keeping it under bytes_limit", exc)
            else:
                if failed:
                    faults.fault(f"keeping it under bytes_limit ({len(failed)} "
                                 f"{'entry' if len(failed) == 1 else 'entries'} could not be removed)",
                                 failed[0][1])
        return metadata

    def _store_result(self, prepared, call_id, values, shelving, output, start, duration, faults):
        metadata = self._store(prepared, call_id, values, output, start, duration, faults)
        if shelving:
            if metadata is None:
                return NotMemorizedResult(output)
            return MemorizedResult(self.store_backend, call_id, self.mmap_mode, self._verbose - 1, metadata)
        if metadata is not None and self.mmap_mode is not None:
            # As joblib: the first call returns what later calls will, memmaps included.
            try:
                return self.store_backend.load_item(call_id, self.mmap_mode)
            except Exception:
                pass
        return output

    # -- pickling and display ------------------------------------------------------------
    def __reduce__(self):
        module = getattr(self.func, "__module__", None)
        qualname = getattr(self.func, "__qualname__", "")
        if module != "__main__" and "<" not in qualname and _global(module, qualname) is self:
            # A decorated module-level function: its name leads to this object, the
            # function itself is not reachable by name.
            return _global, (module, qualname)
        return (_rebuild_memorized, (type(self), self.func, _backend_state(self.store_backend), self.ignore,
                                     self.mmap_mode, self.compress, self._verbose,
                                     self.cache_validation_callback, self.bytes_limit, self._identify()))

    def __repr__(self):
        return (f"{type(self).__name__}(func={self.func!r}, "
                f"location={self.store_backend.location!r})")


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


def _rebuild_memorized(cls, func, backend_state, ignore, mmap_mode, compress, verbose, callback,
                       bytes_limit, identity):
    memorized = cls(func, _backend_from_state(backend_state), ignore, mmap_mode, compress, verbose, callback,
                    bytes_limit)
    memorized._identity = identity
    return memorized


class AsyncMemorizedFunc(MemorizedFunc):
    """A cached coroutine function: calls return awaitables, as joblib's do.

    The cache lookup and store happen in the event loop's thread; waiting for
    another process's lock happens in a worker thread.
    """

    async def __call__(self, *args, **kwargs):
        return await self._cached_call_async(args, kwargs, shelving=False)

    async def call_and_shelve(self, *args, **kwargs):
        return await self._cached_call_async(args, kwargs, shelving=True)

    async def call(self, *args, **kwargs):
        prepared = self._prepare()
        call_id, values = self._call_id(prepared, args, kwargs)
        faults = _Faults(prepared, self.store_backend.location)
        try:
            output, start, duration = await self._run_async(prepared, values, args, kwargs)
            metadata = None if prepared.fault is not None else \
                self._store(prepared, call_id, values, output, start, duration, faults)
        finally:
            faults.emit(stacklevel=2)
        return output, metadata

    async def _run_async(self, prepared, values, args, kwargs):
        if self._verbose > 0:
            print(func_inspect.format_call(prepared.module, prepared.name, prepared.binder.names, values))
        start = time.time()
        output = await self.func(*args, **kwargs)
        return output, start, time.time() - start

    async def _cached_call_async(self, args, kwargs, shelving):
        prepared = self._prepared or self._prepare()
        try:
            call_id, values = self._call_id(prepared, args, kwargs)
        except _UnhashableArguments as exc:
            _warn(f"{exc}; calling it without the cache", stacklevel=4)
            output = await self.func(*args, **kwargs)
            return NotMemorizedResult(output) if shelving else output
        faults = _Faults(prepared, self.store_backend.location)
        steps = self._miss(prepared, call_id, values, shelving, False, faults)
        try:
            request = next(steps)
            while True:
                if request[0] is _RUN:
                    reply = await self._run_async(prepared, values, args, kwargs)
                else:
                    reply = await asyncio.to_thread(self._acquire, request[1], call_id, faults)
                request = steps.send(reply)
        except StopIteration as done:
            return done.value
        finally:
            steps.close()
            faults.emit(stacklevel=3)


class Memory:
    """A context for caching function results on disk: ``Memory(location).cache(f)``.

    Parameters
    ----------
    location : str, pathlib.Path or None
        The cache folder (created if needed); entries go to its ``joblite``
        sub-folder, so one folder can serve joblib and joblite.  None: no
        caching, ``cache`` returns the function wrapped in a
        :class:`NotMemorizedFunc`.
    backend : str, optional
        A store backend registered with :func:`register_store_backend`;
        ``'local'`` (default) is a folder on a local or shared filesystem.
    mmap_mode : {None, 'r+', 'r', 'w+', 'c'}, optional
        Arrays of cached results are loaded as ``np.memmap`` with this mode
        (O(1) whatever their size); None loads them in memory.
    compress : bool, int, str or tuple, optional
        Compression of stored results, as for :func:`joblite.dump`; compressed
        arrays cannot be memory-mapped.
    verbose : int, optional
        See :class:`MemorizedFunc`; default 1.
    bytes_limit : int or str, optional
        The store is kept under this size (bytes; ``'10G'`` style accepted)
        automatically: after writes, least-recently-used entries are removed
        down to 90% of it.  The size is rescanned only when this process's
        estimate passes the limit or once a minute, not on every write.
    backend_options : dict, optional
        Options of the backend; for ``'local'``: ``{'lock': True}`` to
        compute a missing entry once when many processes ask for it at once,
        ``'lock_timeout'`` (s, default 60), ``'size_check_interval'`` (s,
        default 60).

    Raises
    ------
    ValueError
        If `backend`, `mmap_mode`, `compress`, `bytes_limit` or
        `backend_options` is not valid (the message names the option, e.g.
        ``backend_options['lock_timeout']``, and the value).
    TypeError
        If `location` is not a str, a path or None, or `verbose` not an int.
    """

    def __init__(self, location=None, backend="local", mmap_mode=None, compress=False, verbose=1,
                 bytes_limit=None, backend_options=None):
        persistence._check_mmap_mode(mmap_mode)   # validates
        self.mmap_mode = mmap_mode
        compressors.parse_compress(compress)  # validates
        self.compress = compress
        _check_verbose(verbose)
        self._verbose = verbose
        self.bytes_limit = parse_size(bytes_limit, "bytes_limit")
        self.backend = backend
        if backend_options is not None and not isinstance(backend_options, collections.abc.Mapping):
            raise ValueError(f"backend_options={backend_options!r} must be a dict")
        self.backend_options = dict(backend_options or {})
        self.timestamp = time.time()
        if location is not None and not isinstance(location, (str, os.PathLike)):
            raise TypeError(f"location={location!r} must be a str, a pathlib.Path or None")
        self.location = None if location is None else os.fspath(location)
        self.store_backend = None if location is None else \
            store_backend(backend, self.location, verbose, self.backend_options)

    def cache(self, func=None, *, ignore=None, verbose=None, mmap_mode=False, cache_validation_callback=None):
        """Decorate `func` so that its results are cached; also usable as ``@memory.cache(...)``.

        Parameters
        ----------
        func : callable, optional
            The function; when omitted, returns a decorator taking it.  A
            coroutine function gives an :class:`AsyncMemorizedFunc`.
        ignore : list of str, optional
            Parameter names that do not take part in the cache key (e.g.
            ``['verbose']``).
        verbose : int, optional
            Default: the Memory's.
        mmap_mode : {None, 'r+', 'r', 'w+', 'c'} or False, optional
            False (default): the Memory's.
        cache_validation_callback : callable, optional
            ``callback(metadata) -> bool``; see :func:`expires_after`.

        Returns
        -------
        MemorizedFunc, AsyncMemorizedFunc or NotMemorizedFunc

        Raises
        ------
        ValueError
            If a name in `ignore` is not a parameter of `func`, or an
            argument is not valid.
        """
        if func is None:
            return functools.partial(self.cache, ignore=ignore, verbose=verbose, mmap_mode=mmap_mode,
                                     cache_validation_callback=cache_validation_callback)
        if self.store_backend is None:
            return NotMemorizedFunc(getattr(func, "func", func) if isinstance(func, MemorizedFunc) else func)
        if isinstance(func, MemorizedFunc):
            func = func.func
        cls = AsyncMemorizedFunc if inspect.iscoroutinefunction(func) else MemorizedFunc
        return cls(func, self.store_backend, ignore=ignore,
                   mmap_mode=self.mmap_mode if mmap_mode is False else mmap_mode,
                   compress=self.compress, verbose=self._verbose if verbose is None else verbose,
                   cache_validation_callback=cache_validation_callback, bytes_limit=self.bytes_limit)

    def clear(self, warn=True):
        """Remove everything cached in this location.

        Parameters
        ----------
        warn : bool, optional
            Print what is cleared when ``verbose`` > 0.
        """
        if self.store_backend is None:
            return
        if warn and self._verbose > 0:
            print(f"[Memory] Clearing the whole cache at {self.location}")
        self.store_backend.clear()
        _forget_checks(self.store_backend.location)

    def reduce_size(self, bytes_limit=None, items_limit=None, age_limit=None):
        """Remove least-recently-used entries until the limits hold.

        Parameters
        ----------
        bytes_limit : int or str, optional
            Default: the Memory's ``bytes_limit``.
        items_limit : int, optional
        age_limit : datetime.timedelta, float (s) or str (e.g. ``'7d'``), optional

        Returns
        -------
        list of CacheItemInfo
            The entries removed.  Entries that cannot be removed are skipped
            (later ones are removed instead) and named in one
            :class:`CacheWarning`.
        """
        if self.store_backend is None:
            return []
        if bytes_limit is None:
            bytes_limit = self.bytes_limit
        if bytes_limit is None and items_limit is None and age_limit is None:
            return []
        removed, failed = self.store_backend.evict(bytes_limit, items_limit, age_limit)
        warn_not_removed(self.location, failed, stacklevel=3)
        return removed

    def eval(self, func, *args, **kwargs):
        """Return ``func(*args, **kwargs)``, through the cache."""
        if self.store_backend is None:
            return func(*args, **kwargs)
        return self.cache(func)(*args, **kwargs)

    def __repr__(self):
        return f"Memory(location={self.location!r})"

    def __reduce__(self):
        return (Memory, (self.location, self.backend, self.mmap_mode, self.compress, self._verbose,
                         self.bytes_limit, self.backend_options))


def expires_after(days=0, seconds=0, microseconds=0, milliseconds=0, minutes=0, hours=0, weeks=0):
    """A ``cache_validation_callback`` that rejects results computed longer ago than the given time.

    Parameters
    ----------
    days, seconds, microseconds, milliseconds, minutes, hours, weeks : float, optional
        As for ``datetime.timedelta``.

    Returns
    -------
    callable
        ``callback(metadata) -> bool``.
    """
    limit = datetime.timedelta(days=days, seconds=seconds, microseconds=microseconds,
                               milliseconds=milliseconds, minutes=minutes, hours=hours,
                               weeks=weeks).total_seconds()

    def cache_validation_callback(metadata):
        return time.time() - metadata["time"] < limit

    return cache_validation_callback

