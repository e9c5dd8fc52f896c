"""Large array arguments reach worker processes as read-only memory-mapped files.

During a ``Parallel`` call on processes, each numpy array of at least
``max_nbytes`` bytes met while pickling a batch is written once, as a
``.npy`` file (64-byte aligned data, written to a temporary name and
renamed), into a folder of the call; the workers get ``np.load(path,
mmap_mode=...)``, so they share the pages instead of each holding a copy.
Arrays that already are ``np.memmap`` views of a file are passed by file name
and offset, without writing anything.

The folder is ``joblite_memmapping_<pid>@<host>_<random>`` under the temp
folder: ``temp_folder``, else ``JOBLITE_TEMP_FOLDER``, else ``/dev/shm`` when
it has room, else the system temp folder.  It is removed when the call ends
(also after an error, a timeout or an interrupt); folders of processes that
died (SIGKILL) are removed by the next :class:`ArrayMemmapper` started on the
same host.
"""
import os
import shutil
import tempfile
import threading
import uuid

from ._owners import dead_on_this_host, owner

__all__ = ["ArrayMemmapper", "get_memmapper", "parse_max_nbytes", "choose_temp_folder",
           "sweep_dead_folders"]

_PREFIX = "joblite_memmapping_"
_SHM = "/dev/shm"
_SHM_MIN_FREE = 2 << 30   # /dev/shm is used when it has at least this much room (bytes)


def parse_max_nbytes(value):
    """Bytes from joblib's ``max_nbytes``: an int, a string like ``'1M'``, or None (never memmap)."""
    if value is None:
        return None
    from .store import parse_size

    return parse_size(value, "max_nbytes")


def choose_temp_folder(temp_folder=None):
    """The parent folder of memmap folders, following the order in the module docstring."""
    if temp_folder is not None:
        return os.fspath(temp_folder)
    from_env = os.environ.get("JOBLITE_TEMP_FOLDER")
    if from_env:
        return from_env
    try:
        stat = os.statvfs(_SHM)
        if stat.f_bavail * stat.f_frsize >= _SHM_MIN_FREE and os.access(_SHM, os.W_OK):
            return _SHM
    except OSError:
        pass
    return tempfile.gettempdir()


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


class ArrayMemmapper:
    """Pickling reducers that send large arrays as memmaps, and the folder they write to.

    Parameters
    ----------
    temp_folder : str, optional
        Parent folder of the per-call folders; see the module docstring.
    max_nbytes : int, str or None
        Arrays of at least this many bytes are memory-mapped (``'1M'``: 1 MiB);
        None: never.
    mmap_mode : {'r', 'r+', 'c'}
        How workers map them.
    """

    def __init__(self, temp_folder=None, max_nbytes="1M", mmap_mode="r"):
        if mmap_mode not in ("r", "r+", "c", "w+"):
            raise ValueError(f"mmap_mode={mmap_mode!r} is not one of 'r', 'r+', 'c'")
        self.temp_folder = temp_folder
        self.max_nbytes = parse_max_nbytes(max_nbytes)
        self.mmap_mode = "r+" if mmap_mode == "w+" else mmap_mode
        self._folder = None
        self._written = {}   # id(array) -> (array, path): each array written once per call
        self._lock = threading.Lock()
        self._calls = 0

    def __reduce__(self):
        # loky sends the reducers along to the workers it starts, which never
        # use them to write: a fresh memmapper, without this call's state.
        return ArrayMemmapper, (self.temp_folder, self.max_nbytes, self.mmap_mode)

    @property
    def folder(self):
        """The folder of the current call, or None before the first array is written."""
        return self._folder

    def reducers(self):
        """``{type: reducer}`` for loky's ``job_reducers``."""
        import numpy as np

        return {np.ndarray: self._reduce, np.memmap: self._reduce}

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
        path = self._write(array)
        if path is None:
            return _plain_reduce(array)
        return _load_memmap, (path, self.mmap_mode)

    def _write(self, array):
        import numpy as np

        with self._lock:
            if not self._calls:   # the call ended while this batch was being pickled
                return None
            known = self._written.get(id(array))
            if known is not None and known[0] is array:
                return known[1]
            folder = self._call_folder()
            path = os.path.join(folder, f"{len(self._written):05d}.npy")
            temporary = path + ".tmp"
            with open(temporary, "wb") as fileobj:
                np.lib.format.write_array(fileobj, array, allow_pickle=False)
            os.replace(temporary, path)
            self._written[id(array)] = (array, path)
            return path

    def _call_folder(self):
        if self._folder is None:
            parent = choose_temp_folder(self.temp_folder)
            sweep_dead_folders(parent)   # a listing of the folder, once per call
            self._folder = os.path.join(parent, f"{_PREFIX}{owner()}_{uuid.uuid4().hex[:8]}")
            os.makedirs(self._folder)
        return self._folder

    def begin_call(self):
        """A call starts using the memmapper (calls of several threads may overlap)."""
        with self._lock:
            self._calls += 1

    def end_call(self):
        """A call ended; when no call is running, remove the folder and forget its arrays."""
        with self._lock:
            self._calls = max(0, self._calls - 1)
            if self._calls:
                return
            folder, self._folder = self._folder, None
            self._written.clear()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


_MEMMAPPERS = {}
_MEMMAPPERS_LOCK = threading.Lock()


def get_memmapper(temp_folder, max_nbytes, mmap_mode):
    """The process's memmapper for these settings: the same reducers, so loky keeps its workers."""
    key = (None if temp_folder is None else os.fspath(temp_folder), parse_max_nbytes(max_nbytes), mmap_mode)
    with _MEMMAPPERS_LOCK:
        memmapper = _MEMMAPPERS.get(key)
        if memmapper is None:
            memmapper = _MEMMAPPERS[key] = ArrayMemmapper(temp_folder, max_nbytes, mmap_mode)
        return memmapper


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
