"""``Memory``: transparent disk caching of function results, with joblib's names and semantics.

``Memory`` holds a cache's configuration and wraps functions in:

- ``MemorizedFunc`` / ``AsyncMemorizedFunc`` (:mod:`joblite._memorized_func`):
  a plain hit, and the one path of a cache miss (``_cache_miss``), for sync
  and async functions alike;
- ``NotMemorizedFunc`` (here), without a cache.

A call's entry is filed under the function's identity and the digest of its
bound arguments (defaults filled in, ``ignore``\\ d names dropped), worked out
in :mod:`joblite._memory_keys`; the result is stored with
:mod:`joblite.persistence` through a store backend (:mod:`joblite.store`).
``call_and_shelve`` returns the references of :mod:`joblite._memory_results`.
See the caching guide for keys, code changes, concurrency, locking and size
limits.
"""

from __future__ import annotations

import collections.abc
import datetime
import functools
import inspect
import os
import time

from . import compressors
from ._memorized_func import AsyncMemorizedFunc, MemorizedFunc, check_verbose
from ._memory_keys import forget_checks
from ._memory_results import MemorizedResult, NotMemorizedResult
from ._validate import check_mmap_mode, parse_size
from .store import CacheWarning, register_store_backend, store_backend, warn_not_removed

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Literal, overload

    from ._typing import AgeLimit, BytesLimit, Compress, MmapMode, PathType, ValidationCallback
    from .store import CacheItemInfo

__all__ = [
    "Memory",
    "MemorizedFunc",
    "AsyncMemorizedFunc",
    "NotMemorizedFunc",
    "MemorizedResult",
    "NotMemorizedResult",
    "expires_after",
    "register_store_backend",
    "CacheWarning",
]


class NotMemorizedFunc:
    """A function wrapped by ``Memory(location=None)``: every call computes; nothing is stored.

    Parameters
    ----------
    func : callable
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        functools.update_wrapper(self, func, updated=())  # not its __dict__: it may hold our names

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def call_and_shelve(self, *args: Any, **kwargs: Any) -> NotMemorizedResult:
        """Call and return a :class:`NotMemorizedResult` holding the value."""
        return NotMemorizedResult(self.func(*args, **kwargs))

    def call(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Call and return ``(output, {})``."""
        return self.func(*args, **kwargs), {}

    def check_call_in_cache(self, *args: Any, **kwargs: Any) -> bool:
        """Always False: nothing is cached."""
        return False

    def clear(self, warn: bool = True) -> None:
        """Nothing to clear."""

    def __repr__(self):
        return f"NotMemorizedFunc(func={self.func!r})"

    def __reduce__(self):
        return NotMemorizedFunc, (self.func,)


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
    backend_options : dict, optional
        Options of the backend; for ``'local'``: ``{'lock': True}`` to
        compute a missing entry once when many processes ask for it at once,
        ``'lock_timeout'`` (s, default 60), ``'size_check_interval'`` (s,
        default 60).
    bytes_limit : int or str, optional, keyword-only
        The store is kept under this size (bytes; ``'10G'`` style accepted)
        automatically: after writes, least-recently-used entries are removed
        down to 90% of it.  The size is rescanned only when this process's
        estimate passes the limit or once a minute, not on every write.

    Raises
    ------
    ValueError
        If `backend`, `mmap_mode`, `compress`, `bytes_limit` or
        `backend_options` is not valid (the message names the option, e.g.
        ``backend_options['lock_timeout']``, and the value).
    TypeError
        If `location` is not a str, a path or None, or `verbose` not an int.
    """

    def __init__(
        self,
        location: PathType | None = None,
        backend: str = "local",
        mmap_mode: MmapMode | None = None,
        compress: Compress = False,
        verbose: int = 1,
        backend_options: dict[str, Any] | None = None,
        *,
        bytes_limit: BytesLimit | None = None,
    ) -> None:
        check_mmap_mode(mmap_mode)  # validates; the store maps 'w+' as 'r+'
        self.mmap_mode = mmap_mode
        compressors.parse_compress(compress)  # validates
        self.compress = compress
        check_verbose(verbose)
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
        self.store_backend = (
            None if location is None else store_backend(backend, self.location, verbose, self.backend_options)
        )

    if TYPE_CHECKING:

        @overload
        def cache(
            self,
            func: None = None,
            *,
            ignore: list[str] | None = None,
            verbose: int | None = None,
            mmap_mode: MmapMode | Literal[False] | None = False,
            cache_validation_callback: ValidationCallback | None = None,
        ) -> Callable[[Callable[..., Any]], MemorizedFunc | NotMemorizedFunc]: ...

        @overload
        def cache(
            self,
            func: Callable[..., Any],
            *,
            ignore: list[str] | None = None,
            verbose: int | None = None,
            mmap_mode: MmapMode | Literal[False] | None = False,
            cache_validation_callback: ValidationCallback | None = None,
        ) -> MemorizedFunc | NotMemorizedFunc: ...

    def cache(
        self,
        func: Callable[..., Any] | None = None,
        *,
        ignore: list[str] | None = None,
        verbose: int | None = None,
        mmap_mode: MmapMode | Literal[False] | None = False,
        cache_validation_callback: ValidationCallback | None = None,
    ) -> Any:
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
            return functools.partial(
                self.cache,
                ignore=ignore,
                verbose=verbose,
                mmap_mode=mmap_mode,
                cache_validation_callback=cache_validation_callback,
            )
        if self.store_backend is None:
            return NotMemorizedFunc(getattr(func, "func", func) if isinstance(func, MemorizedFunc) else func)
        if isinstance(func, MemorizedFunc):
            func = func.func
        cls = AsyncMemorizedFunc if inspect.iscoroutinefunction(func) else MemorizedFunc
        return cls(
            func,
            self.store_backend,
            ignore=ignore,
            mmap_mode=self.mmap_mode if mmap_mode is False else mmap_mode,
            compress=self.compress,
            verbose=self._verbose if verbose is None else verbose,
            timestamp=self.timestamp,
            cache_validation_callback=cache_validation_callback,
            bytes_limit=self.bytes_limit,
        )

    def clear(self, warn: bool = True) -> None:
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
        forget_checks(self.store_backend.location)

    def reduce_size(
        self, bytes_limit: BytesLimit | None = None, items_limit: int | None = None, age_limit: AgeLimit | None = None
    ) -> list[CacheItemInfo]:
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

    def eval(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Return ``func(*args, **kwargs)``, through the cache."""
        if self.store_backend is None:
            return func(*args, **kwargs)
        return self.cache(func)(*args, **kwargs)

    def __repr__(self):
        return f"Memory(location={self.location!r})"

    def __reduce__(self):
        return (
            _rebuild_memory,
            (
                self.location,
                self.backend,
                self.mmap_mode,
                self.compress,
                self._verbose,
                self.backend_options,
                self.bytes_limit,
            ),
        )


def _rebuild_memory(location, backend, mmap_mode, compress, verbose, backend_options, bytes_limit):
    return Memory(location, backend, mmap_mode, compress, verbose, backend_options, bytes_limit=bytes_limit)


def expires_after(
    days: float = 0,
    seconds: float = 0,
    microseconds: float = 0,
    milliseconds: float = 0,
    minutes: float = 0,
    hours: float = 0,
    weeks: float = 0,
) -> ValidationCallback:
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
    limit = datetime.timedelta(
        days=days,
        seconds=seconds,
        microseconds=microseconds,
        milliseconds=milliseconds,
        minutes=minutes,
        hours=hours,
        weeks=weeks,
    ).total_seconds()

    def cache_validation_callback(metadata):
        return time.time() - metadata["time"] < limit

    return cache_validation_callback
