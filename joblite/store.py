"""The cache store: where ``Memory`` keeps function results, on a folder many processes and hosts share.

Layout of the ``'local'`` backend under ``<location>/joblite/`` (see the
caching guide)::

    CACHEDIR.TAG                           marks the folder as a store (cachedir spec)
    <module>/<function>/func_code.json     code digest and source of the function
    <module>/<function>/<kk>/<key>.out     (metadata, result), in the persistence container format
    <module>/<function>/<kk>/.<key>.<pid>@<host>.<n>.tmp   an entry being written
    .tmp/<pid>@<host>/                     other temporaries of one process, and notes of
                                           the function folders it writes entries into
    .locks/<function token>-<key>.lock     "being computed" locks (backend_options={'lock': True})
    .usage.json                            size of the store at the last scan (bytes_limit)

``<key>`` is the hex digest of the call arguments and ``<kk>`` its first two
characters: 256 shard folders per function, so that millions of entries do
not land in one folder.  An entry is one file, written whole under a temporary
name and renamed: it holds the pair ``(metadata, result)``, so that a miss
creates one file (creating files is the slow part of a write on shared
filesystems) and a validation callback reads the entry once.  The file's
modification time is the entry's last access, which joblite sets itself on
loads (at most once a second), so ``noatime`` mounts do not matter.
"""
import atexit
import collections
import collections.abc
import errno
import itertools
import json
import math
import numbers
import os
import re
import shutil
import threading
import time
import warnings

from . import _safe_unpickle, persistence
from ._owners import HOST, pid_alive

__all__ = ["CacheWarning", "CacheItemInfo", "StoreBackendBase", "FileSystemStoreBackend",
           "CodeRecordMissing", "register_store_backend", "store_backend"]


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

FUNC_CODE_FORMAT = 1
_HOST = HOST
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]")
_TOUCH_INTERVAL_NS = 10 ** 9   # at most one access-time update of an entry a second
_STREAMS_KEPT = 4096           # small entries whose verified stream a process keeps,
_STREAM_KEPT_MAX = 4096        # each of at most this many bytes (16 MiB in all)
_STALE_TEMPORARY = 3600.0      # seconds without change after which another host's temporaries go
_AUTO_REDUCE_TO = 0.9          # automatic bytes_limit enforcement leaves this much headroom
_SCAN_LOCK = "size-scan.lock"  # in .locks/: one process at a time scans for bytes_limit


def parse_size(value, name):
    """Bytes from an int or a string with a K/M/G/T suffix (powers of 1024), as joblib reads them.

    Raises
    ------
    ValueError
        Naming `name` and the value, if it is neither.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be a number of bytes or a string like '10G'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name}={value!r} must not be negative")
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)i?B?\s*", value, re.IGNORECASE)
        if match:
            power = " KMGT".index(match.group(2).upper() or " ")
            return int(float(match.group(1)) * 1024 ** power)
    raise ValueError(f"{name}={value!r} must be a number of bytes or a string like '10G'")


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
        warnings.warn(f"{location}: {len(failed)} of the cache entries due for removal could not be "
                      f"removed (others were removed instead); the first: {describe_os_error(failed[0][1])}",
                      CacheWarning, stacklevel=stacklevel)


def _naming(exc, path):
    """`exc`, or when it names no file (a failed write or close), the same error naming `path`."""
    return exc if exc.filename is not None else type(exc)(exc.errno, exc.strerror, path)


def _seconds_option(options, name, default, zero_allowed):
    """``backend_options[name]``: a finite number of seconds, > 0 (or >= 0 when `zero_allowed`)."""
    value = options.pop(name, default)
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and \
            (value > 0 or (zero_allowed and value == 0)):
        return float(value)
    raise ValueError(f"backend_options[{name!r}]={value!r} must be a finite number of seconds "
                     f"{'>= 0' if zero_allowed else '> 0'}")


_AGE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", re.IGNORECASE)
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(value, name="age_limit"):
    """Seconds from a number, a ``datetime.timedelta``, or ``'90'``, ``'90s'``, ``'15m'``, ``'12h'``, ``'7d'``, ``'2w'``.

    Parameters
    ----------
    value : float, datetime.timedelta, str or None
        None stays None.
    name : str, optional
        Named in the error message.

    Returns
    -------
    float or None

    Raises
    ------
    ValueError
        Naming `name` and the value, if it is none of these, or negative.
    """
    if value is None:
        return None
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else value
    if isinstance(seconds, str):
        match = _AGE.fullmatch(seconds)
        if match is not None:
            return float(match.group(1)) * _AGE_UNITS[match.group(2).lower()]
    elif not isinstance(seconds, bool) and isinstance(seconds, (int, float)) and seconds >= 0:
        return float(seconds)
    raise ValueError(f"{name}={value!r} must be a datetime.timedelta, a number of seconds >= 0 or a "
                     "string like '90s', '15m', '12h', '7d' or '2w'")


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

    location = None

    def configure(self, location, verbose=0, backend_options=None):
        """Set up the store at `location`, creating it if needed.

        Parameters
        ----------
        location : str or pathlib.Path
        verbose : int
        backend_options : dict, optional
            Backend-specific options; unknown keys raise ``ValueError``.
        """
        raise NotImplementedError

    def load_item(self, call_id, mmap_mode=None):
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

    def load_item_and_metadata(self, call_id, mmap_mode=None):
        """Return ``(result, metadata)``; raises as :meth:`load_item`."""
        return self.load_item(call_id, mmap_mode), self.get_metadata(call_id)

    def dump_item(self, call_id, value, metadata, compress=0):
        """Store `value` and its `metadata` (a JSON-able dict) atomically; return the bytes written.

        Raises
        ------
        Exception
            If `value` cannot be pickled; nothing is left behind.
        """
        raise NotImplementedError

    def contains_item(self, call_id):
        """Return whether the entry exists (without reading it)."""
        raise NotImplementedError

    def get_metadata(self, call_id):
        """Return the metadata dict stored with the entry; ``KeyError`` if there is none."""
        raise NotImplementedError

    def clear_item(self, call_id):
        """Remove one entry; no error if it is already gone."""
        raise NotImplementedError

    def clear_path(self, func_id):
        """Remove every entry of one function and its code record."""
        raise NotImplementedError

    def clear(self):
        """Remove everything in the store."""
        raise NotImplementedError

    def get_cached_func_code(self, func_id):
        """Return the code record stored by :meth:`store_cached_func_code`, or None."""
        raise NotImplementedError

    def store_cached_func_code(self, func_id, record):
        """Store the code record (a JSON-able dict) of a function."""
        raise NotImplementedError

    def get_items(self, func_id=None):
        """Return a list of :data:`CacheItemInfo`, of one function or of all."""
        raise NotImplementedError

    def entry_lock(self, call_id):
        """Return a lock on computing this entry, or None when the backend does not lock.

        The lock has ``acquire_or_wait(is_done) -> bool`` (True: the caller
        holds it and computes; False: `is_done()` became true while waiting)
        and ``release()``.
        """
        return None

    def reduce_size(self, bytes_limit=None, items_limit=None, age_limit=None):
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

    def evict(self, bytes_limit=None, items_limit=None, age_limit=None):
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
        if items_limit is not None and (isinstance(items_limit, bool) or not isinstance(items_limit, int)
                                        or items_limit < 0):
            raise ValueError(f"items_limit={items_limit!r} must be an int >= 0")
        items = sorted(self.get_items(), key=lambda item: item.last_access)
        total = sum(item.size for item in items)
        count = len(items)
        now = time.time()
        removed, failed = [], []
        for item in items:
            too_old = age_limit is not None and now - item.last_access > age_limit
            if not (too_old or (bytes_limit is not None and total > bytes_limit)
                    or (items_limit is not None and count > items_limit)):
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

    def enforce_bytes_limit(self, bytes_limit, written):
        """Keep the store under `bytes_limit` after a write of `written` bytes.

        The store's size is known from the last scan (shared between processes
        by :meth:`read_usage`) plus what this process wrote since; a scan,
        which removes least-recently-used entries down to 90% of the limit,
        runs only when that estimate passes the limit or the last scan is
        older than :attr:`size_check_interval` seconds.

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
        if self._usage_base is None or now - self._usage_checked > self.size_check_interval:
            self._usage_checked = now
            record = self.read_usage()
            if record is not None and now - record[1] <= self.size_check_interval:
                self._usage_base, self._usage_written = record[0], 0
            else:
                return self._scan(bytes_limit)
        if (self._usage_base or 0) + self._usage_written > bytes_limit:
            return self._scan(bytes_limit)
        return []

    def _scan(self, bytes_limit):
        """Measure the store and, over `bytes_limit`, evict down to 90% of it (one process at a time)."""
        if not self.begin_scan():
            return []
        try:
            items = self.get_items()
            total = sum(item.size for item in items)
            if total > bytes_limit:
                return self.evict(bytes_limit=int(bytes_limit * _AUTO_REDUCE_TO))[1]
            self._usage_known(total)
            return []
        finally:
            self.end_scan()

    def _usage_known(self, total):
        self._usage_base, self._usage_written, self._usage_checked = total, 0, time.time()
        self.write_usage(total)

    def read_usage(self):
        """Return ``(bytes, time of the scan)`` from the last scan by any process, or None."""
        return None

    def write_usage(self, total):
        """Record that a scan found `total` bytes now."""

    def begin_scan(self):
        """Return whether this process may scan now (no other process is scanning)."""
        return True

    def end_scan(self):
        """End what :meth:`begin_scan` began."""


_BACKENDS = {}


def register_store_backend(backend_name, backend):
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
        raise ValueError(f"backend={backend!r} is not a registered store backend "
                         f"(registered: {', '.join(sorted(_BACKENDS))})")
    instance = cls()
    instance.configure(location, verbose=verbose, backend_options=backend_options)
    return instance


# -- the local filesystem backend -----------------------------------------------------
def _owner_gone(owner, mtime, stale_after, heartbeat):
    """Whether the process named by `owner` (``'pid@host'``) is gone.

    A process of this host is gone when its pid is.  Otherwise (another host),
    or when `heartbeat` says the owner refreshes `mtime` while it lives (so an
    old `mtime` with a live pid means the pid was reused), it is gone after
    `stale_after` seconds of silence.
    """
    pid, _, host = owner.partition("@")
    if host == _HOST and pid.isdigit():
        if int(pid) == os.getpid():
            return False
        if not pid_alive(int(pid)):
            return True
        if not heartbeat:
            return False
    return time.time() - mtime > stale_after


def process_folder(root):
    """This process's temporary folder in the store whose root folder is `root`."""
    return os.path.join(root, ".tmp", f"{os.getpid()}@{_HOST}")


def remove_process_folder(path):
    """Remove a process's temporary folder `path` and its notes, when it writes no more (at exit)."""
    for name in os.listdir(path) if os.path.isdir(path) else ():
        if name.startswith("writes-"):
            _remove(os.path.join(path, name))
    try:
        os.rmdir(path)
    except OSError:   # not empty (a temporary of a write still in progress in a thread) or gone
        pass


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _Heartbeat:
    """One thread per process that refreshes the mtime of every lock it holds."""

    def __init__(self):
        self._held = {}
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._thread = None

    def add(self, path, interval):
        with self._guard:
            self._held[path] = interval
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="joblite-lock-heartbeat",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, path):
        with self._guard:
            self._held.pop(path, None)

    def _run(self):
        while True:
            with self._guard:
                held = dict(self._held)
            self._wake.clear()
            for path in held:
                try:
                    os.utime(path)
                except OSError:
                    pass
            self._wake.wait(min(held.values(), default=1.0))


_HEARTBEAT = _Heartbeat()


_OWNER = re.compile(r"[0-9]+@\S+")
_LOCK_TEMPORARIES = itertools.count()


class EntryLock:
    """A lock file holding ``pid@host``, refreshed while held, broken when stale.

    It is taken by writing ``pid@host`` to a temporary and linking it to the
    lock's name, which fails if that name exists: a lock file is complete or
    absent, never empty, even on a full disk or after a crash (``link`` is
    atomic on local filesystems and on NFS).  A lock is stale when its holder
    is a dead process of this host, when it has not been refreshed for
    `timeout` seconds (the holder refreshes it every ``timeout / 4``), or at
    once when it does not hold ``pid@host`` (an empty lock left by a crash of
    an older joblite), so a holder killed on another host delays the others
    by at most `timeout`.

    Parameters
    ----------
    path : str
        The lock file, in a folder of the store.
    timeout : float
        Seconds, see above.
    root : str, optional
        The store's root folder: the lock's folder is created only while the
        store exists (see :func:`_make_folder`).
    """

    def __init__(self, path, timeout, root=None):
        self.path = path
        self.timeout = timeout
        self.root = root
        self._owner = f"{os.getpid()}@{_HOST}"

    def try_acquire(self):
        """Take the lock if it is free; return whether this process now holds it.

        Raises
        ------
        OSError
            If the lock cannot be written (a full disk, a read-only store, a
            store removed meanwhile); nothing is left behind.
        """
        temporary = f"{self.path}.{self._owner}.{next(_LOCK_TEMPORARIES)}.new"
        try:
            fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            _make_folder(self.root, os.path.dirname(self.path))
            fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        try:
            try:
                content = self._owner.encode()
                if os.write(fd, content) != len(content):
                    raise OSError(errno.ENOSPC, "short write of a lock file", self.path)
            except OSError as exc:
                raise _naming(exc, self.path) from exc
            finally:
                os.close(fd)
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                # Over NFS a link whose reply was lost reports EEXIST: the link
                # count of our own file tells whether it was made.
                if os.stat(temporary).st_nlink != 2:
                    return False
        finally:
            _remove(temporary)
        _HEARTBEAT.add(self.path, self.timeout / 4)
        return True

    def break_if_stale(self):
        """Remove the lock if its holder is gone; return whether it was removed."""
        try:
            with open(self.path, "rb") as fileobj:
                owner = fileobj.read(512).decode("utf-8", "replace")
                mtime = os.fstat(fileobj.fileno()).st_mtime
        except FileNotFoundError:
            return True
        if _OWNER.fullmatch(owner) and not _owner_gone(owner, mtime, self.timeout, heartbeat=True):
            return False
        # Rename first: of several processes breaking it, one wins; the others
        # find no file.  Then make sure what was renamed is the stale lock and
        # not one just taken by a live process.
        aside = f"{self.path}.{self._owner}.{time.monotonic_ns()}.stale"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        try:
            with open(aside, "rb") as fileobj:
                if fileobj.read(512).decode("utf-8", "replace") != owner:
                    try:
                        os.link(aside, self.path)   # give it back, unless taken again meanwhile
                    except OSError:
                        pass
        finally:
            _remove(aside)
        return True

    def acquire_or_wait(self, is_done, poll=0.01, max_poll=0.5):
        """Take the lock, or wait until `is_done()` is true; return True if the lock is held.

        Raises
        ------
        OSError
            As :meth:`try_acquire`, or if the lock file cannot be read.
        """
        while True:
            if self.try_acquire():
                return True
            if is_done():
                return False
            if self.break_if_stale():
                continue
            time.sleep(poll)
            poll = min(max_poll, poll * 1.5)

    def release(self):
        """Let go of the lock, unless it was broken and taken by another process meanwhile."""
        _HEARTBEAT.remove(self.path)
        try:
            with open(self.path, "rb") as fileobj:
                mine = fileobj.read(512).decode("utf-8", "replace") == self._owner
        except FileNotFoundError:
            return
        if mine:
            _remove(self.path)


#: Marks the root of a store (the Cache Directory Tagging specification, which
#: backup tools honour): joblite only writes into, or clears, a folder that has it.
STORE_TAG = "CACHEDIR.TAG"
_TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
             "# This file is a cache directory tag created by joblite (Memory).\n"
             "# For information about cache directory tags see https://bford.info/cachedir/\n")


def is_store_root(root):
    """Whether `root` is the root folder of a local store (it holds :data:`STORE_TAG`)."""
    return os.path.isfile(os.path.join(root, STORE_TAG))


def _claim_root(root):
    """Create the store root `root`, or check that an existing folder is one.

    Raises
    ------
    ValueError
        If `root` exists, is not empty and is not a store: a folder that
        happens to be named ``joblite`` (a package's source, say) is never
        written into or cleared; or if it is not a folder.
    """
    if is_store_root(root):
        return
    if os.path.lexists(root) and not os.path.isdir(root):
        raise ValueError(f"{root} exists and is not a folder, so it cannot hold a joblite cache store; "
                         "choose another location for Memory")
    os.makedirs(root, exist_ok=True)
    with os.scandir(root) as entries:
        foreign = sorted(entry.name for entry in entries
                         if entry.name != STORE_TAG and not entry.name.startswith(f".{STORE_TAG}."))
    if foreign and not is_store_root(root):   # another process may have just made it a store
        raise ValueError(f"{root} exists and is not a joblite cache store (it has no {STORE_TAG} and "
                         f"holds {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                         "choose another location for Memory")
    temporary = f"{root}/.{STORE_TAG}.{os.getpid()}@{_HOST}"
    with open(temporary, "w", encoding="ascii") as fileobj:
        fileobj.write(_TAG_TEXT)
    os.replace(temporary, os.path.join(root, STORE_TAG))


def _make_folder(root, folder):
    """Create `folder` (and its parents) in the store whose root folder is `root`.

    A store removed or replaced while a process uses it is not made again
    piecemeal (a folder of entries without its tag or code records): the
    ``FileNotFoundError`` names the root; a new ``Memory`` on its location
    creates it again.
    """
    if root is not None and not is_store_root(root):
        raise FileNotFoundError(errno.ENOENT, "the cache store was removed or replaced while in use "
                                "(a new Memory on its location creates it again)", root)
    os.makedirs(folder, exist_ok=True)


class FileSystemStoreBackend(StoreBackendBase):
    """The ``'local'`` store: a folder of the local or a shared (NFS, Lustre) filesystem.

    `backend_options` keys (all optional):

    ``lock`` : bool, default False
        When many processes ask for the same missing entry at once, one
        computes it and the others wait, then load it.
    ``lock_timeout`` : float, default 60
        Seconds after which the lock of a holder that stopped refreshing it
        (killed on another host) is broken.  A dead holder on the same host
        is noticed at once.
    ``size_check_interval`` : float, default 60
        Seconds between two scans of the store for ``bytes_limit``.
    """

    def configure(self, location, verbose=0, backend_options=None):
        if backend_options is not None and not isinstance(backend_options, collections.abc.Mapping):
            raise ValueError(f"backend_options={backend_options!r} must be a dict")
        options = dict(backend_options or {})
        self.lock = options.pop("lock", False)
        if not isinstance(self.lock, bool):
            raise ValueError(f"backend_options['lock']={self.lock!r} must be True or False")
        self.lock_timeout = _seconds_option(options, "lock_timeout", 60.0, zero_allowed=False)
        self.size_check_interval = _seconds_option(options, "size_check_interval", 60.0, zero_allowed=True)
        if options:
            raise ValueError(f"backend_options: unknown option(s) {sorted(options)} for the 'local' "
                             "backend (known: lock, lock_timeout, size_check_interval)")
        self.location = os.fspath(location)
        self.verbose = verbose
        self.root = os.path.join(self.location, "joblite")
        _claim_root(self.root)
        self._func_dirs = {}
        self._counter = itertools.count()
        self._tmp_pid = None
        self._tmp_refreshed = 0.0
        self._writing_into = set()   # function ids this process noted (see _note_writing_into)
        self._owner = f"{os.getpid()}@{_HOST}"
        self._scan_lock = None
        # entry path -> [(inode, size, mtime), verified pickle stream] of small entries
        # without arrays: a hit on an unchanged file skips opening and checking it
        self._streams = {}

    def options(self):
        """The backend options this store was configured with."""
        return {"lock": self.lock, "lock_timeout": self.lock_timeout,
                "size_check_interval": self.size_check_interval}

    # -- paths --------------------------------------------------------------------------
    def func_dir(self, func_id):
        """The folder of a function's entries."""
        path = self._func_dirs.get(func_id)
        if path is None:
            module, _, name = func_id.partition("/")
            path = os.path.join(self.root, _NAME_UNSAFE.sub("_", module), _NAME_UNSAFE.sub("_", name))
            self._func_dirs[func_id] = path
        return path

    def _entry(self, call_id):
        func_id, args_id = call_id
        return f"{self.func_dir(func_id)}/{args_id[:2]}/{args_id}"

    def _tmp_dir(self):
        pid = os.getpid()
        if self._tmp_pid != pid:   # first write of this process (also after a fork)
            self._tmp_path = process_folder(self.root)
            self.sweep()
            _make_folder(self.root, self._tmp_path)
            self._tmp_pid = pid
            self._owner = f"{pid}@{_HOST}"
            self._writing_into = set()
            atexit.register(remove_process_folder, self._tmp_path)
        return self._tmp_path

    def _temporary(self, suffix):
        return os.path.join(self._tmp_dir(), f"{next(self._counter)}{suffix}")

    def _move_into_place(self, temporary, path):
        try:
            os.replace(temporary, path)
        except FileNotFoundError:
            if not os.path.exists(temporary):
                raise
            _make_folder(self.root, os.path.dirname(path))
            os.replace(temporary, path)

    def _write_json(self, path, record):
        temporary = self._temporary(".json")
        try:
            try:
                fileobj = open(temporary, "w", encoding="utf-8")
            except FileNotFoundError:   # our temporary folder was swept meanwhile
                _make_folder(self.root, os.path.dirname(temporary))
                fileobj = open(temporary, "w", encoding="utf-8")
            with fileobj:
                json.dump(record, fileobj)
            self._move_into_place(temporary, path)
        except OSError as exc:
            _remove(temporary)
            raise _naming(exc, path) from exc
        except BaseException:
            _remove(temporary)
            raise

    # -- entries ------------------------------------------------------------------------
    def _load(self, call_id, mmap_mode):
        func_id, args_id = call_id
        path = f"{self._func_dirs.get(func_id) or self.func_dir(func_id)}/{args_id[:2]}/{args_id}.out"
        if mmap_mode is not None:
            mmap_mode = persistence._check_mmap_mode(mmap_mode)   # 'w+' would truncate the entry
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise KeyError(call_id) from None
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        known = self._streams.get(path)
        if known is not None and known[0] == signature:
            # The same file as last time: its verified stream, unpickled afresh (as load does).
            pair = _safe_unpickle.load_stream(known[1], (), None, path)
        else:
            keep = []
            try:
                pair = persistence.load_path(path, mmap_mode, None, keep)
            except FileNotFoundError:
                raise KeyError(call_id) from None
            if not (type(pair) is tuple and len(pair) == 2 and type(pair[0]) is dict):
                raise persistence.CorruptFileError(f"{path}: not a joblite cache entry (metadata, result)")
            if keep and len(keep[0]) <= _STREAM_KEPT_MAX:
                if len(self._streams) >= _STREAMS_KEPT:
                    del self._streams[next(iter(self._streams))]
                self._streams[path] = known = [signature, keep[0]]
        if time.time_ns() - stat.st_mtime_ns > _TOUCH_INTERVAL_NS:
            self._touch(path, known)
        return pair[1], pair[0]

    def _touch(self, path, known):
        """Record an access: the entry file's mtime, set at most once a second."""
        now = time.time_ns()
        try:
            os.utime(path, ns=(now, now))
        except OSError:  # a read-only store is still readable
            return
        if known is not None:
            known[0] = known[0][:2] + (now,)

    def load_item(self, call_id, mmap_mode=None):
        return self._load(call_id, mmap_mode)[0]

    def load_item_and_metadata(self, call_id, mmap_mode=None):
        return self._load(call_id, mmap_mode)

    def dump_item(self, call_id, value, metadata, compress=0):
        codec, level = compress
        func_id, args_id = call_id
        self._note_writing_into(func_id)
        entry = self._entry(call_id)
        # Next to the entry: a rename within one folder costs a third of one
        # across folders here (ext4), and the name is hidden and unique.
        temporary = f"{os.path.dirname(entry)}/.{args_id}.{self._owner}.{next(self._counter)}.tmp"
        try:
            try:
                size = persistence.write_file((metadata, value), temporary, codec, level)
            except FileNotFoundError:
                self._new_shard(func_id, os.path.dirname(entry))
                size = persistence.write_file((metadata, value), temporary, codec, level)
            os.replace(temporary, entry + ".out")
        except OSError as exc:
            _remove(temporary)
            raise _naming(exc, entry + ".out") from exc
        except BaseException:
            _remove(temporary)
            raise
        return size

    def _new_shard(self, func_id, shard):
        """Create the shard folder `shard`, unless the function's code record is gone.

        Raises
        ------
        CodeRecordMissing
            If the function's folder has no code record (another process
            cleared it): entries are written only under the record of the
            code that computed them.
        FileNotFoundError
            If the store was removed or replaced (see :func:`_make_folder`).
        """
        if not is_store_root(self.root):
            _make_folder(self.root, shard)   # raises, naming the store
        if not os.path.isfile(os.path.join(self.func_dir(func_id), "func_code.json")):
            raise CodeRecordMissing(func_id)
        os.makedirs(shard, exist_ok=True)

    def _note_writing_into(self, func_id):
        """Leave in this process's temporary folder which function folders it writes temporaries into.

        A process killed mid-write leaves a temporary in a shard folder; the
        sweep that finds the process gone looks for its temporaries in the
        function folders named here, instead of walking the whole store.
        """
        folder = self._tmp_dir()
        now = time.time()
        if now - self._tmp_refreshed > _STALE_TEMPORARY / 4:   # alive: not swept by other hosts
            self._tmp_refreshed = now
            try:
                os.utime(folder)
            except OSError:
                pass
        if func_id in self._writing_into:
            return
        relative = os.path.relpath(self.func_dir(func_id), self.root)
        note = os.path.join(folder, f"writes-{persistence._checksum(relative.encode()):016x}")
        try:
            with open(note, "w", encoding="utf-8") as fileobj:
                fileobj.write(relative)
        except FileNotFoundError:   # our temporary folder was swept meanwhile
            _make_folder(self.root, folder)
            with open(note, "w", encoding="utf-8") as fileobj:
                fileobj.write(relative)
        self._writing_into.add(func_id)

    def contains_item(self, call_id):
        return os.path.exists(self._entry(call_id) + ".out")

    def get_metadata(self, call_id):
        return self._load(call_id, "r")[1]   # arrays are mapped, not read

    def clear_item(self, call_id):
        _remove(self._entry(call_id) + ".out")

    def _discard(self, path):
        """Rename `path` aside (atomic for readers) and remove it."""
        aside = self._temporary(".trash")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        shutil.rmtree(aside, ignore_errors=True)

    def clear_path(self, func_id):
        self._discard(self.func_dir(func_id))

    def clear(self):
        _claim_root(self.root)   # never empties a folder that is not a store
        for entry in os.scandir(self.root):
            if entry.name in (".tmp", STORE_TAG):
                continue
            if entry.is_dir(follow_symlinks=False):
                self._discard(entry.path)
            else:
                _remove(entry.path)
        self._usage_base = None

    def get_cached_func_code(self, func_id):
        try:
            with open(os.path.join(self.func_dir(func_id), "func_code.json"), "rb") as fileobj:
                record = json.loads(fileobj.read())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def store_cached_func_code(self, func_id, record):
        path = os.path.join(self.func_dir(func_id), "func_code.json")
        _make_folder(self.root, os.path.dirname(path))
        self._write_json(path, record)

    def function_dirs(self):
        """Yield ``(func_id, folder)`` for every function folder of the store."""
        for module in _scandir(self.root):
            if module.name.startswith(".") or not module.is_dir(follow_symlinks=False):
                continue
            for function in _scandir(module.path):
                if not function.is_dir(follow_symlinks=False):
                    continue
                record = None
                try:
                    with open(os.path.join(function.path, "func_code.json"), "rb") as fileobj:
                        record = json.loads(fileobj.read())
                except (OSError, ValueError):
                    pass
                func_id = record.get("func_id") if isinstance(record, dict) else None
                yield func_id or f"{module.name}/{function.name}", function.path

    def get_items(self, func_id=None):
        items = []
        folders = [(func_id, self.func_dir(func_id))] if func_id is not None else self.function_dirs()
        for owner, folder in folders:
            self._func_dirs.setdefault(owner, folder)
            for shard in _scandir(folder):
                if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                    continue
                for entry in _scandir(shard.path):
                    if not entry.name.endswith(".out"):
                        continue
                    try:
                        stat = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    items.append(CacheItemInfo(owner, entry.name[:-4], entry.path, stat.st_size,
                                               stat.st_mtime))
        return items

    def entry_lock(self, call_id):
        if not self.lock:
            return None
        func_id, args_id = call_id
        token = persistence._checksum(func_id.encode())
        return EntryLock(os.path.join(self.root, ".locks", f"{token:016x}-{args_id}.lock"),
                         self.lock_timeout, self.root)

    # -- housekeeping -------------------------------------------------------------------
    def sweep(self, stale_after=_STALE_TEMPORARY):
        """Remove what killed processes left: temporaries and stale locks.

        Temporaries of a dead process of this host go at once; those of other
        hosts after `stale_after` seconds without change.  What cannot be
        removed (an ``OSError``) is left for a later sweep.

        Returns
        -------
        int
            How many files or folders were removed.
        """
        removed = 0
        for folder in _scandir(os.path.join(self.root, ".tmp")):
            try:
                mtime = folder.stat(follow_symlinks=False).st_mtime
                if _owner_gone(folder.name, mtime, stale_after, heartbeat=False):
                    removed += self._remove_temporaries_of(folder)
                    shutil.rmtree(folder.path, ignore_errors=True)
                    removed += 1
            except OSError:
                continue
        for lock in _scandir(os.path.join(self.root, ".locks")):
            try:
                if lock.name == _SCAN_LOCK:
                    removed += self._scan_entry_lock().break_if_stale()
                elif lock.name.endswith(".lock"):
                    removed += EntryLock(lock.path, self.lock_timeout).break_if_stale()
                elif lock.name.endswith((".stale", ".new")) and \
                        time.time() - lock.stat(follow_symlinks=False).st_mtime > self.lock_timeout:
                    # left by a process killed while breaking or taking a lock
                    _remove(lock.path)
                    removed += 1
            except OSError:
                continue
        return removed

    def _remove_temporaries_of(self, folder):
        """Remove the temporaries a gone process left in the function folders its folder notes."""
        removed = 0
        suffix = f".{folder.name}."
        for note in _scandir(folder.path):
            if not note.name.startswith("writes-"):
                continue
            try:
                with open(note.path, encoding="utf-8") as fileobj:
                    relative = fileobj.read(4096)
            except (OSError, ValueError):
                continue
            function = os.path.normpath(os.path.join(self.root, relative))
            if os.path.dirname(os.path.dirname(function)) != os.path.normpath(self.root):
                continue   # not a function folder of this store
            for shard in _scandir(function):
                if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                    continue
                for entry in _scandir(shard.path):
                    if entry.name.startswith(".") and suffix in entry.name and entry.name.endswith(".tmp"):
                        try:
                            _remove(entry.path)
                        except OSError:
                            continue
                        removed += 1
        return removed

    def read_usage(self):
        try:
            with open(os.path.join(self.root, ".usage.json"), "rb") as fileobj:
                record = json.loads(fileobj.read())
            return int(record["bytes"]), float(record["time"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_usage(self, total):
        try:
            self._write_json(os.path.join(self.root, ".usage.json"), {"bytes": total, "time": time.time()})
        except OSError:
            pass   # only saves other processes a scan; the store's own faults are reported where they stop a write

    def _scan_entry_lock(self):
        # A scan of a large store on NFS may take minutes: a long timeout.
        return EntryLock(os.path.join(self.root, ".locks", _SCAN_LOCK), max(self.lock_timeout, 600.0),
                         self.root)

    def begin_scan(self):
        self._scan_lock = self._scan_entry_lock()
        return self._scan_lock.try_acquire() or \
            (self._scan_lock.break_if_stale() and self._scan_lock.try_acquire())

    def end_scan(self):
        self._scan_lock.release()


def _scandir(path):
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return []
        raise


register_store_backend("local", FileSystemStoreBackend)
