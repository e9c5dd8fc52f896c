"""Where ``Memory`` files a call: the function's id, its code record in the store, the call's key.

A cached function is filed under ``func_id`` (``'module/qualified name'``),
with a code record in the store; each call under ``(func_id, args_id)``,
``args_id`` being :func:`joblite.hashing.key_digest` of the call's bound
arguments and of whatever else decides the result.  :func:`prepare` works
out, once per process, all that does not change from call to call (a
:class:`FunctionKeys`); :meth:`FunctionKeys.call_id` keys each call.
"""

from __future__ import annotations

import inspect
import warnings
import weakref

from . import func_inspect
from .hashing import closure_digest, key_digest
from .hashing import hash as _hash
from .store import CacheWarning

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FunctionKeys", "UnhashableArguments", "check_code", "forget_checks", "identify", "prepare"]

# (store root, func_id) -> (weak reference to the function, code digest), for this process:
# a second, different function filed under the same name gets a name of its own.
_LIVE_FUNCTIONS: dict[tuple[str, str], tuple[weakref.ref[Any], str]] = {}
# function -> (code digest, source): reading and parsing source takes a millisecond
_CODE_DIGESTS: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()
# (store location, func_id, code digest) already checked against the store in this process
_CHECKED_CODE: set[tuple[str, str, str]] = set()
# Warnings given while preparing point at the first call: this module's function, prepare,
# MemorizedFunc._prepare, the call's steps, _Steps, the driver, MemorizedFunc.__call__, its caller.
_AT_FIRST_CALL = 8


class UnhashableArguments(TypeError):
    """The arguments of a call cannot be hashed into a cache key."""


class FunctionKeys:
    """How the calls of one cached function are keyed: what :func:`prepare` computes once per process.

    Attributes
    ----------
    func_id : str
        Where entries are filed: ``'module/name'``.
    binder : func_inspect.CallBinder
    closure_digest : str or None
        What besides the arguments decides the result: the digest of the
        closure's values, or of the callable itself (partials, callable
        objects); None when nothing does.
    bound_self : object or None
        The instance of a bound method, hashed with each call's arguments.
    code : tuple of str
        ``(code digest, source)``, as the code record holds them.
    fault : OSError or None
        The error met checking the code record in the store; while there is
        one, nothing in the store is trusted.
    """

    __slots__ = ("func_id", "binder", "closure_digest", "bound_self", "code", "fault")

    def call_id(self, args, kwargs):
        """Key one call: ``((func_id, args_id), values)``, `values` being the bound arguments.

        Raises
        ------
        TypeError
            If the arguments do not fit the signature.
        UnhashableArguments
            If they cannot be hashed; the message names the argument.
        """
        binder = self.binder
        values = binder.values(args, kwargs)
        key = binder.key_values(values)
        if self.closure_digest is not None:
            key = (self.closure_digest, key)
        if self.bound_self is not None:
            key = (self.bound_self, key)
        try:
            return (self.func_id, key_digest(key)), values
        except TypeError:
            # Hash again by name, for a message that names the argument.
            named = dict(zip(binder.key_names(), binder.key_values(values)))
            try:
                key_digest(named)
            except TypeError as exc:
                raise UnhashableArguments(f"cannot cache {self.func_id}: {exc}") from None
            raise UnhashableArguments(f"cannot cache {self.func_id}: its arguments cannot be hashed") from None


def identify(func):
    """``(module, name, code digest, source)`` of `func`; see :func:`func_inspect.function_name`."""
    return func_inspect.function_name(func) + _code_digest(func)


def _code_digest(func):
    target = getattr(func, "__func__", func)
    try:
        return _CODE_DIGESTS[target]
    except (KeyError, TypeError):
        pass
    found = func_inspect.code_digest(func, _hash)
    try:
        _CODE_DIGESTS[target] = found
    except TypeError:  # not weakly referable
        pass
    return found


def prepare(func, binder, store, identity, verbose):
    """Work out how the calls of `func` are keyed, and check its code record in `store`.

    Parameters
    ----------
    func : callable
    binder : func_inspect.CallBinder
        Binds the calls' arguments (with the parameters to ignore).
    store : StoreBackendBase
    identity : tuple of str
        What :func:`identify` gave, in this process or in the one that sent
        the cached function here.
    verbose : int
        Above 0, a change of code is warned about.

    Returns
    -------
    FunctionKeys
        Its ``fault`` is the ``OSError`` met checking the code record, if any.
    """
    keys = FunctionKeys()
    module, name, digest, source = identity
    func_id = f"{module}/{name}"
    target = getattr(func, "__func__", func)
    live_key = (getattr(store, "location", None), func_id)
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
    keys.func_id = func_id
    keys.binder = binder
    keys.bound_self = getattr(func, "__self__", None) if inspect.ismethod(func) else None
    keys.closure_digest = _closure_digest(func, target, digest)
    keys.code = (digest, source)
    keys.fault = None
    try:
        check_code(store, func_id, digest, source, verbose)
    except OSError as exc:
        keys.fault = exc
    return keys


def _closure_digest(func, target, code):
    """What besides the arguments decides the result: closure values, or the callable itself."""
    try:
        if code == "" and not inspect.ismethod(func):
            return _hash(func)  # partials, callable objects: their state is part of the key
        return closure_digest(target)
    except TypeError as exc:
        warnings.warn(
            f"{getattr(func, '__qualname__', func)}: the values it closes over cannot be hashed "
            f"({exc}); they are not part of the cache key",
            CacheWarning,
            stacklevel=_AT_FIRST_CALL,
        )
        return None


def check_code(store, func_id, digest, source, verbose):
    """Make sure the store's code record of `func_id` is this code's, clearing older entries.

    A record checked once in this process is not read again, until
    :func:`forget_checks`.

    Raises
    ------
    OSError
        If the record cannot be read or written, or older entries removed.
    """
    checked = (store.location, func_id, digest)
    if checked in _CHECKED_CODE:
        return
    record = store.get_cached_func_code(func_id)
    if record is None or record.get("code_digest") != digest or record.get("format") != func_inspect.CODE_FORMAT:
        if record is not None:
            if verbose > 0:
                warnings.warn(
                    f"the code of {func_id} has changed since its results were cached in "
                    f"{store.location}: clearing them",
                    CacheWarning,
                    stacklevel=_AT_FIRST_CALL,
                )
            store.clear_path(func_id)
        store.store_cached_func_code(
            func_id, {"format": func_inspect.CODE_FORMAT, "func_id": func_id, "code_digest": digest, "source": source}
        )
    _CHECKED_CODE.add(checked)


def forget_checks(location, func_id=None):
    """After a clear, the code records are gone: check (and write) them again."""
    for checked in [c for c in _CHECKED_CODE if c[0] == location and func_id in (None, c[1])]:
        _CHECKED_CODE.discard(checked)
