"""Large array arguments reach worker processes as read-only memory-mapped files.

A process backend pickles each batch with :meth:`ArrayMemmapper.dumps`, in
the caller's thread.  Each numpy array of at least ``max_nbytes`` bytes met
there is written once per call, as a ``.npy`` file (64-byte aligned data,
written to a temporary name and renamed), into a folder of the call; the
workers get ``np.load(path, mmap_mode=...)``, so they share the pages instead
of each holding a copy.  Arrays that already are ``np.memmap`` views of a file
are passed by file name and offset, without writing anything.  Smaller arrays
travel as out-of-band buffers of the batch's pickle, copied once, into the
message loky sends.

The folder is ``joblite_memmapping_<pid>@<host>_<random>`` under the temp
folder: ``temp_folder``, else ``JOBLITE_TEMP_FOLDER``, else ``/dev/shm`` when
it has room, else the system temp folder.  A temp folder that is given must
exist: it is never created.

The folder lives until nothing can use it: it is removed once its call has
ended *and* every batch that refers to it has finished or been cancelled.
After a failed call, batches already queued in the executor still run, and
still find their files; the folder goes when the last of them is done (in the
background: the failed call does not wait).  The folder is also registered
with loky's resource tracker, which removes it when the caller is killed
(SIGKILL), once the workers, which exit when their caller dies, are gone.
What is still there at exit is removed then, and folders of dead processes of
this host are swept when a new folder is made.
"""
import atexit
import errno
import io
import os
import pickle
import shutil
import tempfile
import threading
import uuid

import cloudpickle
from loky.backend import resource_tracker

from . import _files, _validate
from ._owners import dead_on_this_host, owner

__all__ = ["ArrayMemmapper", "parse_max_nbytes", "choose_temp_folder", "sweep_dead_folders"]

_PREFIX = "joblite_memmapping_"
_SHM = "/dev/shm"
_SHM_MIN_FREE = 2 << 30   # /dev/shm is used when it has at least this much room (bytes)


def parse_max_nbytes(value):
    """Bytes from joblib's ``max_nbytes``: an int, a string like ``'1M'``, or None (never memmap)."""
    return _validate.parse_size(value, "max_nbytes")


def choose_temp_folder(temp_folder=None):
    """The parent folder of memmap folders and the setting it comes from.

    Returns
    -------
    (str, str or None)
        The folder (``~`` expanded, made absolute), and the name of the
        setting that gave it (``'temp_folder'`` or ``'JOBLITE_TEMP_FOLDER'``),
        or None for a folder joblite chose (``/dev/shm`` or the system temp
        folder).
    """
    if temp_folder is not None:
        return os.path.abspath(os.path.expanduser(os.fspath(temp_folder))), "temp_folder"
    from_env = os.environ.get("JOBLITE_TEMP_FOLDER")
    if from_env:
        return os.path.abspath(os.path.expanduser(from_env)), "JOBLITE_TEMP_FOLDER"
    try:
        stat = os.statvfs(_SHM)
        if stat.f_bavail * stat.f_frsize >= _SHM_MIN_FREE and os.access(_SHM, os.W_OK):
            return _SHM, None
    except OSError:
        pass
    return tempfile.gettempdir(), None


def sweep_dead_folders(parent):
    """Remove the memmap folders of dead processes of this host under `parent`; return how many."""
    removed = 0
    try:
        names = os.listdir(parent)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(_PREFIX):
            continue
        if dead_on_this_host(name[len(_PREFIX):].rsplit("_", 1)[0]):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            removed += 1
    return removed


def _load_memmap(path, mmap_mode):
    import numpy as np

    return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


def _rebuild_memmap(filename, dtype, shape, order, offset, mode):
    import numpy as np

    return np.memmap(filename, dtype=dtype, shape=shape, order=order, offset=offset, mode=mode)


# The C pickler reads its dispatch table from this slot; cloudpickle's class-level
# table hides it from plain attribute assignment (loky sets it the same way).
_DISPATCH_TABLE_SLOT = pickle.Pickler.__dict__["dispatch_table"]


class ArrayMemmapper:
    """Pickles the batches of one call for worker processes, memory-mapping large arrays.

    Parameters
    ----------
    temp_folder : str, optional
        Parent folder of the call's folder; see the module docstring.  It
        must exist.
    max_nbytes : int, str or None
        Arrays of at least this many bytes are memory-mapped (``'1M'``: 1 MiB);
        None: never.
    mmap_mode : {'r', 'r+', 'w+', 'c'}
        How workers map them (``'w+'`` maps ``'r+'``: it must not truncate).

    Raises
    ------
    ValueError
        If `mmap_mode` or `max_nbytes` is not valid.
    """

    def __init__(self, temp_folder=None, max_nbytes="1M", mmap_mode="r"):
        mmap_mode = _validate.check_mmap_mode(mmap_mode, none_allowed=False)
        import numpy as np

        self.temp_folder = temp_folder
        self.max_nbytes = parse_max_nbytes(max_nbytes)
        self.mmap_mode = mmap_mode
        # a dict: the C pickler looks types up in it for every object it has no fast path for
        self._table = dict(cloudpickle.Pickler.dispatch_table)
        self._table.update({np.ndarray: self._reduce, np.memmap: self._reduce})
        self._folder = None
        self._written = {}   # id(array) -> (array, path): each array written once per call
        self._refers = False   # the batch being pickled refers to a file of the folder
        self._lock = threading.Lock()
        self._held = set()   # futures of the batches sent that refer to the folder, until done
        self._closed = False   # the call ended

    def dumps(self, obj):
        """Pickle `obj` (a batch) for a worker process, with cloudpickle, protocol 5.

        Returns
        -------
        data : bytes
            The pickle stream.
        buffers : list of pickle.PickleBuffer
            Its out-of-band buffers (arrays under `max_nbytes`), for
            ``pickle.loads(data, buffers=buffers)``.
        refers : bool
            Whether it refers to a file of the call's folder: then
            :meth:`hold` the folder for the batch.

        Raises
        ------
        OSError
            If a large array cannot be written: the errno of the failure
            (``ENOSPC`` for a full disk), naming the folder and the bytes
            needed; or if the temp folder does not exist, naming the setting.
        pickle.PicklingError, TypeError
            If `obj` holds something that cannot be pickled.
        """
        stream = io.BytesIO()
        buffers = []
        pickler = cloudpickle.Pickler(stream, protocol=5, buffer_callback=buffers.append)
        _DISPATCH_TABLE_SLOT.__set__(pickler, self._table)
        self._refers = False
        pickler.dump(obj)
        return stream.getvalue(), buffers, self._refers

    def hold(self, future):
        """Keep the folder until `future` (of a batch that refers to it) is done or cancelled."""
        with self._lock:
            self._held.add(future)
        future.add_done_callback(self._release)

    def close(self):
        """The call ended: forget its arrays; the folder goes once no batch refers to it.

        When every batch is done already (the call took all the results, or
        its workers were killed), the folder is removed before this returns.
        """
        self._written.clear()
        with self._lock:
            self._closed = True
            # done, though their callbacks may not have run yet
            self._held = {future for future in self._held if not future.done()}
        self._release()

    def _release(self, future=None):
        with self._lock:
            self._held.discard(future)
            if not self._closed or self._held or self._folder is None:
                return
            folder, self._folder = self._folder, None
        _remove_folder(folder)

    def _reduce(self, array):
        import numpy as np

        if self.max_nbytes is None or array.nbytes < self.max_nbytes or array.dtype.hasobject:
            return _plain_reduce(array)
        if isinstance(array, np.memmap) and array.filename and array._mmap is not None:
            offset = array.offset + _byte_offset(array)
            if offset is not None and (array.flags.c_contiguous or array.flags.f_contiguous):
                order = "C" if array.flags.c_contiguous else "F"
                # A memmap made with 'w+' must not be truncated again by the workers.
                mode = "r" if self.mmap_mode == "r" else "r+" if array.mode == "w+" else array.mode
                return _rebuild_memmap, (array.filename, array.dtype, array.shape, order, offset, mode)
        self._refers = True
        return _load_memmap, (self._write(array), self.mmap_mode)

    def _write(self, array):
        known = self._written.get(id(array))
        if known is not None and known[0] is array:
            return known[1]
        folder = self._call_folder()
        path = os.path.join(folder, f"{len(self._written):05d}.npy")
        try:
            _files.write_npy(path, array)
        except OSError as exc:
            raise _write_error(exc, folder, array.nbytes) from exc
        self._written[id(array)] = (array, path)
        return path

    def _call_folder(self):
        if self._folder is None:
            parent, setting = choose_temp_folder(self.temp_folder)
            sweep_dead_folders(parent)   # a listing of the folder, once per call
            folder = os.path.join(parent, f"{_PREFIX}{owner()}_{uuid.uuid4().hex[:8]}")
            try:
                os.mkdir(folder, 0o700)
            except (FileNotFoundError, NotADirectoryError) as exc:
                if setting is None:
                    raise
                raise type(exc)(
                    exc.errno, f"{setting}={parent!r} is not an existing folder: large array "
                    f"arguments are memory-mapped there, and joblite does not create it "
                    f"(create it, or choose another {setting})", parent) from exc
            _track(folder)
            with self._lock:
                self._folder = folder
        return self._folder


def _write_error(exc, folder, nbytes):
    """The error for a large array that could not be written: `exc`'s errno, with what was needed."""
    try:
        stat = os.statvfs(folder)
        free = f"{stat.f_bavail * stat.f_frsize} bytes free there"
    except OSError:
        free = "free space unknown"
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        hint = ("; free some space, point temp_folder (or JOBLITE_TEMP_FOLDER) to a larger "
                "folder, or raise max_nbytes")
    return OSError(exc.errno, f"could not write a large array argument ({nbytes} bytes) to be "
                   f"memory-mapped by the workers into {folder} ({free}): {exc.strerror}{hint}",
                   folder)


# Folders made by this process and not removed yet: removed at exit whatever happened.
_LIVE = set()
_LIVE_LOCK = threading.Lock()


def _track(folder):
    with _LIVE_LOCK:
        _LIVE.add((os.getpid(), folder))
    resource_tracker.register(folder, "folder")


def _remove_folder(folder):
    with _LIVE_LOCK:
        if (os.getpid(), folder) not in _LIVE:   # already removed at exit
            return
        _LIVE.discard((os.getpid(), folder))
    shutil.rmtree(folder, ignore_errors=True)
    resource_tracker.unregister(folder, "folder")


@atexit.register
def _remove_live_folders():
    with _LIVE_LOCK:
        # a forked child inherits the set: it removes only what it made itself
        folders = [folder for pid, folder in _LIVE if pid == os.getpid()]
    for folder in folders:
        _remove_folder(folder)


def _plain_reduce(array):
    return array.__reduce_ex__(5)


def _byte_offset(array):
    """Offset in bytes of `array`'s first element from the start of its memmap's buffer."""
    import numpy as np

    base = array
    while isinstance(base.base, np.ndarray):
        base = base.base
    start = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    return start if start >= 0 else None
