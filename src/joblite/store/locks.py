"""Lock files of the store: ``pid@host`` in a file, refreshed while held, broken when its holder is gone.

A lock is taken by linking a complete temporary file to the lock's name
(:class:`EntryLock`); one thread per process refreshes the modification time
of every lock the process holds (the heartbeat), so that a holder killed on
another host is noticed after the lock's timeout, and one killed on this
host at once (its pid is gone).  Names come from :mod:`joblite._owners`.
"""

import errno
import itertools
import os
import re
import threading
import time

from .. import _owners
from .._files import remove_if_exists
from . import layout
from .base import naming

__all__ = ["EntryLock", "owner_gone"]


def owner_gone(name, mtime, stale_after, heartbeat):
    """Whether the process named by `name` (``'pid@host'``) is gone.

    A process of this host is gone when its pid is.  Otherwise (another host),
    or when `heartbeat` says the owner refreshes `mtime` while it lives (so an
    old `mtime` with a live pid means the pid was reused), it is gone after
    `stale_after` seconds of silence.
    """
    if _owners.dead_on_this_host(name):
        return True
    pid, _, host = name.partition("@")
    if host == _owners.HOST and pid.isdigit() and (int(pid) == os.getpid() or not heartbeat):
        return False  # this process, or one alive here that does not refresh `mtime`
    return time.time() - mtime > stale_after


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
                self._thread = threading.Thread(target=self._run, name="joblite-lock-heartbeat", daemon=True)
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
        store exists (see :func:`joblite.store.layout.make_folder`).
    """

    def __init__(self, path, timeout, root=None):
        self.path = path
        self.timeout = timeout
        self.root = root
        self._owner = _owners.owner()

    def try_acquire(self):
        """Take the lock if it is free; return whether this process now holds it.

        Raises
        ------
        OSError
            If the lock cannot be written (a full disk, a read-only store, a
            store removed meanwhile); nothing is left behind.
        """
        temporary = layout.lock_temporary(self.path, self._owner, next(_LOCK_TEMPORARIES))
        try:
            fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            layout.make_folder(self.root, os.path.dirname(self.path))
            fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        try:
            try:
                content = self._owner.encode()
                if os.write(fd, content) != len(content):
                    raise OSError(errno.ENOSPC, "short write of a lock file", self.path)
            except OSError as exc:
                raise naming(exc, self.path) from exc
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
            remove_if_exists(temporary)
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
        if _OWNER.fullmatch(owner) and not owner_gone(owner, mtime, self.timeout, heartbeat=True):
            return False
        # Rename first: of several processes breaking it, one wins; the others
        # find no file.  Then make sure what was renamed is the stale lock and
        # not one just taken by a live process.
        aside = layout.lock_temporary(self.path, self._owner, time.monotonic_ns(), broken=True)
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        try:
            with open(aside, "rb") as fileobj:
                if fileobj.read(512).decode("utf-8", "replace") != owner:
                    try:
                        os.link(aside, self.path)  # give it back, unless taken again meanwhile
                    except OSError:
                        pass
        finally:
            remove_if_exists(aside)
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
            remove_if_exists(self.path)
