"""The ``'local'`` store backend: a folder of the local or a shared (NFS, Lustre) filesystem.

Entries are written whole under a temporary name and renamed; what killed
processes leave (temporaries, locks) is swept by the next process that
writes.  Where each file goes is :mod:`joblite.store.layout`'s; the locks
are :mod:`joblite.store.locks`'.  The file's modification time is the
entry's last access, which joblite sets itself on loads (at most once a
second), so ``noatime`` mounts do not matter.
"""

import atexit
import collections.abc
import contextlib
import itertools
import json
import math
import numbers
import os
import shutil
import time

from .. import _safe_unpickle, _validate, persistence
from .._files import remove_if_exists, scandir
from .._owners import owner
from . import layout
from .base import CacheItemInfo, CodeRecordMissing, StoreBackendBase, naming, register_store_backend
from .locks import EntryLock, owner_gone

__all__ = ["FileSystemStoreBackend", "remove_process_folder"]

_TOUCH_INTERVAL_NS = 10**9  # at most one access-time update of an entry a second
_STREAMS_KEPT = 4096  # small entries whose verified stream a process keeps,
_STREAM_KEPT_MAX = 4096  # each of at most this many bytes (16 MiB in all)
_STALE_TEMPORARY = 3600.0  # seconds without change after which another host's temporaries go


def _seconds_option(options, name, default, zero_allowed):
    """``backend_options[name]``: a finite number of seconds, > 0 (or >= 0 when `zero_allowed`)."""
    value = options.pop(name, default)
    if (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 or (zero_allowed and value == 0))
    ):
        return float(value)
    raise ValueError(
        f"backend_options[{name!r}]={value!r} must be a finite number of seconds {'>= 0' if zero_allowed else '> 0'}"
    )


@contextlib.contextmanager
def _removed_on_failure(temporary, path):
    """Remove the file `temporary` if the block fails; an ``OSError`` then names `path`, which it was written for."""
    try:
        yield
    except OSError as exc:
        remove_if_exists(temporary)
        raise naming(exc, path) from exc
    except BaseException:
        remove_if_exists(temporary)
        raise


def remove_process_folder(path):
    """Remove a process's temporary folder `path` and its notes, when it writes no more (at exit)."""
    for name in os.listdir(path) if os.path.isdir(path) else ():
        if layout.is_note(name):
            remove_if_exists(os.path.join(path, name))
    try:
        os.rmdir(path)
    except OSError:  # not empty (a temporary of a write still in progress in a thread) or gone
        pass


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
            raise ValueError(
                f"backend_options: unknown option(s) {sorted(options)} for the 'local' "
                "backend (known: lock, lock_timeout, size_check_interval)"
            )
        self.location = os.fspath(location)
        self.verbose = verbose
        self.root = layout.store_root(self.location)
        layout.claim_root(self.root)
        self._func_dirs = {}
        self._counter = itertools.count()
        self._tmp_pid = None
        self._tmp_refreshed = 0.0
        self._writing_into = set()  # function ids this process noted (see _note_writing_into)
        self._owner = owner()
        self._scan_lock = None
        # entry path -> [(inode, size, mtime), verified pickle stream] of small entries
        # without arrays: a hit on an unchanged file skips opening and checking it
        self._streams = {}

    def options(self):
        """The backend options this store was configured with."""
        return {"lock": self.lock, "lock_timeout": self.lock_timeout, "size_check_interval": self.size_check_interval}

    # -- paths --------------------------------------------------------------------------
    def func_dir(self, func_id):
        """The folder of a function's entries."""
        path = self._func_dirs.get(func_id)
        if path is None:
            path = self._func_dirs[func_id] = layout.function_folder(self.root, func_id)
        return path

    def _entry(self, call_id):
        func_id, args_id = call_id
        return layout.entry_path(self._func_dirs.get(func_id) or self.func_dir(func_id), args_id)

    def _tmp_dir(self):
        pid = os.getpid()
        if self._tmp_pid != pid:  # first write of this process (also after a fork)
            self._tmp_path = layout.process_folder(self.root)
            self.sweep()
            layout.make_folder(self.root, self._tmp_path)
            self._tmp_pid = pid
            self._owner = owner()
            self._writing_into = set()
            atexit.register(remove_process_folder, self._tmp_path)
        return self._tmp_path

    def _temporary(self, suffix):
        return layout.process_temporary(self._tmp_dir(), next(self._counter), suffix)

    def _move_into_place(self, temporary, path):
        try:
            os.replace(temporary, path)
        except FileNotFoundError:
            if not os.path.exists(temporary):
                raise
            layout.make_folder(self.root, os.path.dirname(path))
            os.replace(temporary, path)

    def _write_json(self, path, record):
        temporary = self._temporary(".json")
        with _removed_on_failure(temporary, path):
            try:
                fileobj = open(temporary, "w", encoding="utf-8")
            except FileNotFoundError:  # our temporary folder was swept meanwhile
                layout.make_folder(self.root, os.path.dirname(temporary))
                fileobj = open(temporary, "w", encoding="utf-8")
            with fileobj:
                json.dump(record, fileobj)
            self._move_into_place(temporary, path)

    # -- entries ------------------------------------------------------------------------
    def _load(self, call_id, mmap_mode):
        path = self._entry(call_id)
        if mmap_mode is not None:
            mmap_mode = _validate.check_mmap_mode(mmap_mode)  # 'w+' would truncate the entry
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
                pair = layout.read_entry(path, mmap_mode, keep)
            except FileNotFoundError:
                raise KeyError(call_id) from None
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
        temporary = layout.entry_temporary(entry, args_id, self._owner, next(self._counter))
        with _removed_on_failure(temporary, entry):
            try:
                size = persistence.write_file((metadata, value), temporary, codec, level)
            except FileNotFoundError:
                self._new_shard(func_id, os.path.dirname(entry))
                size = persistence.write_file((metadata, value), temporary, codec, level)
            os.replace(temporary, entry)
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
            If the store was removed or replaced (see :func:`joblite.store.layout.make_folder`).
        """
        if not layout.is_store_root(self.root):
            layout.make_folder(self.root, shard)  # raises, naming the store
        if not os.path.isfile(os.path.join(self.func_dir(func_id), layout.CODE_RECORD)):
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
        if now - self._tmp_refreshed > _STALE_TEMPORARY / 4:  # alive: not swept by other hosts
            self._tmp_refreshed = now
            try:
                os.utime(folder)
            except OSError:
                pass
        if func_id in self._writing_into:
            return
        relative = os.path.relpath(self.func_dir(func_id), self.root)
        note = os.path.join(folder, layout.note_name(relative))
        try:
            with open(note, "w", encoding="utf-8") as fileobj:
                fileobj.write(relative)
        except FileNotFoundError:  # our temporary folder was swept meanwhile
            layout.make_folder(self.root, folder)
            with open(note, "w", encoding="utf-8") as fileobj:
                fileobj.write(relative)
        self._writing_into.add(func_id)

    def contains_item(self, call_id):
        return os.path.exists(self._entry(call_id))

    def get_metadata(self, call_id):
        return self._load(call_id, "r")[1]  # arrays are mapped, not read

    def clear_item(self, call_id):
        remove_if_exists(self._entry(call_id))

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
        layout.claim_root(self.root)  # never empties a folder that is not a store
        for entry in os.scandir(self.root):
            if entry.name in (layout.TMP_FOLDER, layout.STORE_TAG):
                continue
            if entry.is_dir(follow_symlinks=False):
                self._discard(entry.path)
            else:
                remove_if_exists(entry.path)
        self._usage_base = None

    def get_cached_func_code(self, func_id):
        try:
            return layout.read_json_record(os.path.join(self.func_dir(func_id), layout.CODE_RECORD))
        except ValueError:
            return {}

    def store_cached_func_code(self, func_id, record):
        path = os.path.join(self.func_dir(func_id), layout.CODE_RECORD)
        layout.make_folder(self.root, os.path.dirname(path))
        self._write_json(path, record)

    def function_dirs(self):
        """Yield ``(func_id, folder)`` for every function folder of the store."""
        for module in scandir(self.root):
            if not layout.is_module_folder(module):
                continue
            for function in scandir(module.path):
                if not function.is_dir(follow_symlinks=False):
                    continue
                try:
                    record = layout.read_json_record(os.path.join(function.path, layout.CODE_RECORD))
                except (OSError, ValueError):
                    record = None
                func_id = record.get("func_id") if record is not None else None
                yield func_id or f"{module.name}/{function.name}", function.path

    def get_items(self, func_id=None):
        return list(self.iter_items(func_id))

    def iter_items(self, func_id=None):
        """Yield the :data:`CacheItemInfo` of the entries of one function, or of all, one shard folder at a time.

        Nothing is held but one shard's listing, so that a store of millions
        of entries is summarised (``cache info``) in bounded memory.
        """
        folders = [(func_id, self.func_dir(func_id))] if func_id is not None else self.function_dirs()
        suffix = layout.ENTRY_SUFFIX
        cut = -len(suffix)
        for func, folder in folders:
            self._func_dirs.setdefault(func, folder)
            for shard in scandir(folder):
                if not layout.is_shard(shard):
                    continue
                for entry in scandir(shard.path):
                    name = entry.name
                    if not name.endswith(suffix):
                        continue
                    try:
                        stat = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # removed since the listing
                        continue
                    yield CacheItemInfo(func, name[:cut], entry.path, stat.st_size, stat.st_mtime)

    def entry_lock(self, call_id):
        if not self.lock:
            return None
        return EntryLock(layout.lock_path(self.root, *call_id), self.lock_timeout, self.root)

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
        for folder in scandir(os.path.join(self.root, layout.TMP_FOLDER)):
            try:
                mtime = folder.stat(follow_symlinks=False).st_mtime
                if owner_gone(folder.name, mtime, stale_after, heartbeat=False):
                    removed += self._remove_temporaries_of(folder)
                    shutil.rmtree(folder.path, ignore_errors=True)
                    removed += 1
            except OSError:
                continue
        for lock in scandir(os.path.join(self.root, layout.LOCKS_FOLDER)):
            try:
                if layout.is_scan_lock(lock.name):
                    removed += self._scan_entry_lock().break_if_stale()
                elif layout.is_lock(lock.name):
                    removed += EntryLock(lock.path, self.lock_timeout).break_if_stale()
                elif (
                    layout.is_lock_temporary(lock.name)
                    and time.time() - lock.stat(follow_symlinks=False).st_mtime > self.lock_timeout
                ):
                    # left by a process killed while breaking or taking a lock
                    remove_if_exists(lock.path)
                    removed += 1
            except OSError:
                continue
        return removed

    def _remove_temporaries_of(self, folder):
        """Remove the temporaries a gone process left in the function folders its folder notes."""
        removed = 0
        for note in scandir(folder.path):
            if not layout.is_note(note.name):
                continue
            try:
                with open(note.path, encoding="utf-8") as fileobj:
                    relative = fileobj.read(4096)
            except (OSError, ValueError):
                continue
            function = os.path.normpath(os.path.join(self.root, relative))
            if os.path.dirname(os.path.dirname(function)) != os.path.normpath(self.root):
                continue  # not a function folder of this store
            for shard in scandir(function):
                if not layout.is_shard(shard):
                    continue
                for entry in scandir(shard.path):
                    if layout.is_temporary_of(entry.name, folder.name):
                        try:
                            remove_if_exists(entry.path)
                        except OSError:
                            continue
                        removed += 1
        return removed

    def read_usage(self):
        try:
            record = layout.read_json_record(os.path.join(self.root, layout.USAGE_RECORD))
            if record is None:
                return None
            seconds = float(record.get("scan_seconds", 0.0))
            return int(record["bytes"]), float(record["time"]), seconds if 0.0 <= seconds < math.inf else 0.0
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_usage(self, total, scan_seconds):
        try:
            self._write_json(
                os.path.join(self.root, layout.USAGE_RECORD),
                {"bytes": total, "time": time.time(), "scan_seconds": scan_seconds},
            )
        except OSError:
            pass  # only saves other processes a scan; the store's own faults are reported where they stop a write

    def _scan_entry_lock(self):
        # A scan of a large store on NFS may take minutes: a long timeout.
        return EntryLock(layout.scan_lock_path(self.root), max(self.lock_timeout, 600.0), self.root)

    def begin_scan(self):
        self._scan_lock = self._scan_entry_lock()
        return self._scan_lock.try_acquire() or (self._scan_lock.break_if_stale() and self._scan_lock.try_acquire())

    def end_scan(self):
        self._scan_lock.release()


register_store_backend("local", FileSystemStoreBackend)
