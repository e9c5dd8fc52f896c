"""What every cache store backend is: the base class, its size policy, and the registry of backends.

A backend stores one entry per call, ``call_id = (func_id, args_id)``, for
``Memory``; :class:`StoreBackendBase` says what it implements, and
:func:`register_store_backend` makes it available as
``Memory(..., backend=name)``.  The ``'local'`` backend is
:class:`joblite.store.local.FileSystemStoreBackend`.
"""

from __future__ import annotations

import collections
import errno
import time
import warnings

from .._validate import parse_age, parse_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from .._typing import AgeLimit, BytesLimit, CallId, Compress, EntryLock, MmapMode, PathType

__all__ = [
    "SCAN_SHARE",
    "CacheWarning",
    "CacheItemInfo",
    "CodeRecordMissing",
    "StoreBackendBase",
    "describe_os_error",
    "naming",
    "register_store_backend",
    "store_backend",
    "warn_not_removed",
]

_AUTO_REDUCE_TO = 0.9  # automatic bytes_limit enforcement leaves this much headroom
#: Automatic ``bytes_limit`` scans a store at most once per this many times the
#: duration of its last scan: a writer spends at most 2% of its time scanning.
SCAN_SHARE = 50


class CacheWarning(UserWarning):
    """A cache entry could not be read or written; the call still returns a correct result."""


class CodeRecordMissing(LookupError):
    """A function's folder lost its code record (cleared by another process): write it, then the entry."""


CacheItemInfo = collections.namedtuple("CacheItemInfo", "func_id args_id path size last_access")
CacheItemInfo.__doc__ = """One cache entry, as listed by :meth:`StoreBackendBase.get_items`.

Attributes
----------
func_id : str
    The function, ``'module/qualified name'``.
args_id : str
    Hex digest of its call arguments.
path : str
    Where the entry's result is stored.
size : int
    Bytes on disk, result and metadata.
last_access : float
    Time of the last load or write, in seconds since the epoch.
"""


def describe_os_error(exc):
    """An ``OSError`` as warnings and reports give it: ``'<path>: <reason> (<ERRNO>, errno <n>)'``."""
    reason = exc.strerror or str(exc)
    if exc.errno in errno.errorcode:
        reason += f" ({errno.errorcode[exc.errno]}, errno {exc.errno})"
    if exc.filename is None:
        return reason
    where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
    return f"{where}: {reason}"


def warn_not_removed(location, failed, stacklevel):
    """One CacheWarning about the entries `failed` (from :meth:`StoreBackendBase.evict`), if any."""
    if failed:
        warnings.warn(
            f"{location}: {len(failed)} of the cache entries due for removal could not be "
            f"removed (others were removed instead); the first: {describe_os_error(failed[0][1])}",
            CacheWarning,
            stacklevel=stacklevel,
        )


def naming(exc, path):
    """`exc`, or when it names no file (a failed write or close), the same error naming `path`."""
    return exc if exc.filename is not None else type(exc)(exc.errno, exc.strerror, path)


class StoreBackendBase:
    """What a cache store backend implements; register one with :func:`register_store_backend`.

    A call is identified by ``call_id = (func_id, args_id)``: the function's
    identity (``'module/qualified name'``) and the hex digest of its
    arguments.  Subclasses implement the methods that raise
    ``NotImplementedError``; the size policy (:meth:`reduce_size`,
    :meth:`enforce_bytes_limit`) is built on :meth:`get_items` and
    :meth:`clear_item`.  Every method may be called from many processes at
    once; a reader must never see a partial entry.

    Attributes
    ----------
    location : str
        Set by :meth:`configure`.
    """

    location: str | None = None

    def configure(self, location: PathType, verbose: int = 0, backend_options: dict[str, Any] | None = None) -> None:
        """Set up the store at `location`, creating it if needed.

        Parameters
        ----------
        location : str or pathlib.Path
        verbose : int
        backend_options : dict, optional
            Backend-specific options; unknown keys raise ``ValueError``.
        """
        raise NotImplementedError

    def load_item(self, call_id: CallId, mmap_mode: MmapMode | None = None) -> Any:
        """Return the stored result, recording the access for :meth:`reduce_size`.

        Raises
        ------
        KeyError
            If there is no such entry.
        Exception
            Anything else means the entry is unreadable (``Memory`` warns and
            recomputes it).
        """
        raise NotImplementedError

    def load_item_and_metadata(self, call_id: CallId, mmap_mode: MmapMode | None = None) -> tuple[Any, dict[str, Any]]:
        """Return ``(result, metadata)``; raises as :meth:`load_item`."""
        return self.load_item(call_id, mmap_mode), self.get_metadata(call_id)

    def dump_item(self, call_id: CallId, value: object, metadata: dict[str, Any], compress: Compress = 0) -> int:
        """Store `value` and its `metadata` (a JSON-able dict) atomically; return the bytes written.

        Raises
        ------
        Exception
            If `value` cannot be pickled; nothing is left behind.
        """
        raise NotImplementedError

    def contains_item(self, call_id: CallId) -> bool:
        """Return whether the entry exists (without reading it)."""
        raise NotImplementedError

    def get_metadata(self, call_id: CallId) -> dict[str, Any]:
        """Return the metadata dict stored with the entry; ``KeyError`` if there is none."""
        raise NotImplementedError

    def clear_item(self, call_id: CallId) -> None:
        """Remove one entry; no error if it is already gone."""
        raise NotImplementedError

    def clear_path(self, func_id: str) -> None:
        """Remove every entry of one function and its code record."""
        raise NotImplementedError

    def clear(self) -> None:
        """Remove everything in the store."""
        raise NotImplementedError

    def get_cached_func_code(self, func_id: str) -> dict[str, Any] | None:
        """Return the code record stored by :meth:`store_cached_func_code`, or None."""
        raise NotImplementedError

    def store_cached_func_code(self, func_id: str, record: dict[str, Any]) -> None:
        """Store the code record (a JSON-able dict) of a function."""
        raise NotImplementedError

    def get_items(self, func_id: str | None = None) -> list[CacheItemInfo]:
        """Return a list of :data:`CacheItemInfo`, of one function or of all."""
        raise NotImplementedError

    def iter_items(self, func_id: str | None = None) -> Iterator[CacheItemInfo]:
        """Yield what :meth:`get_items` returns; a backend that can list its entries lazily overrides it.

        Summaries of large stores (:meth:`enforce_bytes_limit`'s scan, ``cache
        info``) go through it, so that they need not hold every entry at once.
        """
        return iter(self.get_items(func_id))

    def entry_lock(self, call_id: CallId) -> EntryLock | None:
        """Return a lock on computing this entry, or None when the backend does not lock.

        The lock has ``acquire_or_wait(is_done) -> bool`` (True: the caller
        holds it and computes; False: `is_done()` became true while waiting)
        and ``release()``.
        """
        return None

    def reduce_size(
        self, bytes_limit: BytesLimit | None = None, items_limit: int | None = None, age_limit: AgeLimit | None = None
    ) -> list[CacheItemInfo]:
        """Remove least-recently-used entries until the limits hold.

        Entries that cannot be removed (an ``OSError``) are skipped: the next
        ones are removed instead, and one :class:`CacheWarning` names the
        first of them with its error.  :meth:`evict` returns them instead.

        Parameters
        ----------
        bytes_limit : int or str, optional
            Most bytes the store may hold (``'10G'`` style strings accepted).
        items_limit : int, optional
            Most entries it may hold.
        age_limit : datetime.timedelta, float or str, optional
            Entries not accessed for longer are removed: seconds, or a string
            like ``'7d'`` (see :func:`parse_age`).

        Returns
        -------
        list of CacheItemInfo
            The entries removed.

        Raises
        ------
        ValueError
            If a limit is not valid.
        OSError
            If the store cannot be listed.
        """
        removed, failed = self.evict(bytes_limit, items_limit, age_limit)
        warn_not_removed(self.location, failed, stacklevel=3)
        return removed

    def evict(
        self, bytes_limit: BytesLimit | None = None, items_limit: int | None = None, age_limit: AgeLimit | None = None
    ) -> tuple[list[CacheItemInfo], list[tuple[CacheItemInfo, OSError]]]:
        """:meth:`reduce_size`, returning the entries it could not remove instead of warning.

        Returns
        -------
        removed : list of CacheItemInfo
            The entries removed, least recently used first.
        failed : list of (CacheItemInfo, OSError)
            The entries that were due for removal but could not be removed,
            with the error; the entries after them were removed instead.
        """
        bytes_limit = parse_size(bytes_limit, "bytes_limit")
        age_limit = parse_age(age_limit, "age_limit")
        if items_limit is not None and (
            isinstance(items_limit, bool) or not isinstance(items_limit, int) or items_limit < 0
        ):
            raise ValueError(f"items_limit={items_limit!r} must be an int >= 0")
        items = sorted(self.get_items(), key=lambda item: item.last_access)
        total = sum(item.size for item in items)
        count = len(items)
        now = time.time()
        removed, failed = [], []
        for item in items:
            too_old = age_limit is not None and now - item.last_access > age_limit
            if not (
                too_old
                or (bytes_limit is not None and total > bytes_limit)
                or (items_limit is not None and count > items_limit)
            ):
                break
            try:
                self.clear_item((item.func_id, item.args_id))
            except OSError as exc:
                failed.append((item, exc))
                continue
            removed.append(item)
            total -= item.size
            count -= 1
        self._usage_known(total)
        return removed, failed

    # -- automatic bytes_limit: a scan now and then, not on every write ----------------
    size_check_interval = 60.0
    _usage_base = None
    _usage_written = 0
    _usage_checked = 0.0
    _scan_seconds = 0.0

    def enforce_bytes_limit(self, bytes_limit: int, written: int) -> list[tuple[CacheItemInfo, OSError]]:
        """Keep the store under `bytes_limit` after a write of `written` bytes.

        The store's size is known from the last scan (shared between processes
        by :meth:`read_usage`) plus what this process wrote since; a scan,
        which removes least-recently-used entries down to 90% of the limit,
        runs only when that estimate passes the limit or the last scan is
        older than :attr:`size_check_interval` seconds, or than
        :data:`SCAN_SHARE` times the duration of the last scan when that is
        longer: a store of millions of entries is not listed every minute.

        Returns
        -------
        list of (CacheItemInfo, OSError)
            The entries a scan could not remove (see :meth:`evict`).

        Raises
        ------
        OSError
            If the store cannot be listed, or the scan lock taken.
        """
        self._usage_written += written
        now = time.time()
        if self._usage_base is None or now - self._usage_checked > self._check_interval():
            self._usage_checked = now
            record = self.read_usage()
            if record is not None:
                self._scan_seconds = record[2]
            if record is not None and now - record[1] <= self._check_interval():
                self._usage_base, self._usage_written = record[0], 0
            else:
                return self._scan(bytes_limit)
        if (self._usage_base or 0) + self._usage_written > bytes_limit:
            return self._scan(bytes_limit)
        return []

    def _check_interval(self):
        """Seconds between two scans (0: at every write, as :attr:`size_check_interval` 0 asks)."""
        if not self.size_check_interval:
            return 0.0
        return max(self.size_check_interval, SCAN_SHARE * self._scan_seconds)

    def _scan(self, bytes_limit):
        """Measure the store and, over `bytes_limit`, evict down to 90% of it (one process at a time)."""
        if not self.begin_scan():
            return []
        began = time.perf_counter()
        try:
            total = sum(item.size for item in self.iter_items())
            self._scan_seconds = time.perf_counter() - began
            if total > bytes_limit:
                return self.evict(bytes_limit=int(bytes_limit * _AUTO_REDUCE_TO))[1]
            self._usage_known(total)
            return []
        finally:
            self.end_scan()

    def _usage_known(self, total):
        self._usage_base, self._usage_written, self._usage_checked = total, 0, time.time()
        self.write_usage(total, self._scan_seconds)

    def read_usage(self) -> tuple[int, float, float] | None:
        """Return ``(bytes, time of the scan, seconds the scan took)`` from the last scan by any process, or None."""
        return None

    def write_usage(self, total: int, scan_seconds: float) -> None:
        """Record that a scan found `total` bytes now, taking `scan_seconds` seconds to list the store."""

    def begin_scan(self) -> bool:
        """Return whether this process may scan now (no other process is scanning)."""
        return True

    def end_scan(self) -> None:
        """End what :meth:`begin_scan` began."""


_BACKENDS: dict[str, type[StoreBackendBase]] = {}


def register_store_backend(backend_name: str, backend: type[StoreBackendBase]) -> None:
    """Make `backend` available as ``Memory(..., backend=backend_name)``.

    Parameters
    ----------
    backend_name : str
    backend : type
        A subclass of :class:`StoreBackendBase`, instantiated without arguments
        and then configured.

    Raises
    ------
    ValueError
        If `backend_name` is not a str or `backend` is not such a subclass.
    """
    if not isinstance(backend_name, str):
        raise ValueError(f"backend_name={backend_name!r} must be a str")
    if not (isinstance(backend, type) and issubclass(backend, StoreBackendBase)):
        raise ValueError(f"backend={backend!r} must be a subclass of StoreBackendBase")
    _BACKENDS[backend_name] = backend


def store_backend(backend, location, verbose=0, backend_options=None):
    """Return the configured store backend named `backend` for `location`."""
    if isinstance(backend, StoreBackendBase):
        return backend
    cls = _BACKENDS.get(backend)
    if cls is None:
        raise ValueError(
            f"backend={backend!r} is not a registered store backend (registered: {', '.join(sorted(_BACKENDS))})"
        )
    instance = cls()
    instance.configure(location, verbose=verbose, backend_options=backend_options)
    return instance
