"""Array arguments reach worker processes as memory-mapped files where they can.

A process backend pickles each batch with :meth:`ArrayMemmapper.dumps`, in
the caller's thread.  Numpy arrays there travel one of three ways:

* An array that views a file through an ``np.memmap`` (the memmap itself,
  or any slice, column, block or reshape of it: its chain of ``.base``
  ends at an ``np.memmap`` of an existing file) travels as a view of a
  memmap of that same file, at the same byte offset, with the same shape,
  strides and dtype, mapped with the memmap's own mode (``'w+'`` as
  ``'r+'``: the file must not be truncated again), whatever its size and
  ``max_nbytes``: what workers write to an ``'r+'``/``'w+'`` memmap lands
  in the caller's file, an ``'r'`` one stays read-only, and a ``'c'`` one
  is copy-on-write in the worker too (the worker maps the file: it does not
  see what the caller changed in its own ``'c'`` copy).  An array that is
  not writeable in the caller is mapped ``'r'``.  Nothing is copied or
  written.
* Any other array of at least ``max_nbytes`` bytes is written once per
  call, as a ``.npy`` file (64-byte aligned data, written to a temporary
  name and renamed), into a folder of the call; the workers get
  ``np.load(path, mmap_mode=...)`` with the call's `mmap_mode` (``'r'`` by
  default), so they share the pages instead of each holding a copy.
* Smaller arrays, and every array when ``max_nbytes`` is None, travel as
  out-of-band buffers of the batch's pickle, copied once, into the message
  loky sends.

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

from __future__ import annotations

import atexit
import errno
import io
import mmap
import os
import pickle
import shutil
import stat
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
_SHM_MIN_FREE = 2 << 30  # /dev/shm is used when it has at least this much room (bytes)


def parse_max_nbytes(value):
    """Bytes from joblib's ``max_nbytes``: an int, a float such as ``1e6``, a string like ``'1M'``, or None.

    See :func:`joblite._validate.parse_size`; None (never write arrays to
    memory-map them) stays None.
    """
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
        if dead_on_this_host(name[len(_PREFIX) :].rsplit("_", 1)[0]):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            removed += 1
    return removed


def _load_memmap(path, mmap_mode):
    import numpy as np

    return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


def _map_file_view(filename, mode, offset, nbytes, dtype, shape, strides, first):
    """The worker's side of ``ArrayMemmapper._file_view``: a view of a memmap of `filename`.

    The bytes ``[offset, offset + nbytes)`` of the file are mapped with
    `mode`, and the array is the view of them whose first element is at byte
    `first` of that range; it is an ``np.memmap`` (``filename``, ``mode``
    and ``offset``: those of the mapped range), as numpy makes views of
    memmaps.
    """
    import numpy as np

    mapped = np.memmap(filename, dtype=np.uint8, mode=mode, offset=offset, shape=(nbytes,))
    view = np.ndarray(shape, dtype, buffer=mapped, offset=first, strides=strides).view(np.memmap)
    view.__array_finalize__(mapped)  # what numpy's own subclass views do: take the map's file
    return view


# The C pickler reads its dispatch table from this slot; cloudpickle's class-level
# table hides it from plain attribute assignment (loky sets it the same way).
_DISPATCH_TABLE_SLOT = pickle.Pickler.__dict__["dispatch_table"]


class ArrayMemmapper:
    """Pickles the batches of one call for worker processes, memory-mapping arrays (module docstring).

    Parameters
    ----------
    temp_folder : str, optional
        Parent folder of the call's folder; see the module docstring.  It
        must exist.
    max_nbytes : int, float, str or None
        Arrays of at least this many bytes are written to the call's folder
        and memory-mapped (``'1M'``: 1 MiB; ``1e6``: 10**6 bytes); None:
        never.  Memmaps of files, and their views, travel as memmaps of
        their file whatever this is.
    mmap_mode : {'r', 'r+', 'w+', 'c'}
        How workers map the arrays written to the call's folder (``'w+'``
        maps ``'r+'``: it must not truncate).

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
        self._written = {}  # id(array) -> (array, path): each array written once per call
        self._files = {}  # id(memmap) -> (memmap, bytes in its file): each file looked at once per call
        self._refers = False  # the batch being pickled refers to a file of the folder
        self._lock = threading.Lock()
        self._held = set()  # futures of the batches sent that refer to the folder, until done
        self._closed = False  # the call ended

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
        self._files.clear()
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
        if array.dtype.hasobject:
            return _plain_reduce(array)
        file_view = self._file_view(array)
        if file_view is not None:
            return file_view
        if self.max_nbytes is None or array.nbytes < self.max_nbytes:
            return _plain_reduce(array)
        self._refers = True
        return _load_memmap, (self._write(array), self.mmap_mode)

    def _file_view(self, array):
        """The reduction of `array` as a view of the file of the memmap it views, or None if it views none.

        None as well for an empty array, or when the file is not a regular
        file that holds the array's bytes any more (removed, truncated).
        """
        root = _backing_memmap(array)
        if root is None or array.size == 0:
            return None
        low, high, first = _byte_span(array)
        offset = root.offset + low - root.__array_interface__["data"][0]
        if self._file_size(root) < offset + high - low:
            return None
        mode = "r" if not array.flags.writeable else "r+" if root.mode == "w+" else root.mode
        return _map_file_view, (root.filename, mode, offset, high - low, array.dtype, array.shape, array.strides, first)

    def _file_size(self, root):
        """Bytes in the regular file `root` maps (-1 if it is not one), looked up once per call and file."""
        known = self._files.get(id(root))
        if known is not None and known[0] is root:
            return known[1]
        try:
            info = os.stat(root.filename)
            size = info.st_size if stat.S_ISREG(info.st_mode) else -1
        except OSError:
            size = -1
        self._files[id(root)] = (root, size)
        return size

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
            sweep_dead_folders(parent)  # a listing of the folder, once per call
            folder = os.path.join(parent, f"{_PREFIX}{owner()}_{uuid.uuid4().hex[:8]}")
            try:
                os.mkdir(folder, 0o700)
            except (FileNotFoundError, NotADirectoryError) as exc:
                if setting is None:
                    raise
                raise type(exc)(
                    exc.errno,
                    f"{setting}={parent!r} is not an existing folder: large array "
                    f"arguments are memory-mapped there, and joblite does not create it "
                    f"(create it, or choose another {setting})",
                    parent,
                ) from exc
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
        hint = "; free some space, point temp_folder (or JOBLITE_TEMP_FOLDER) to a larger folder, or raise max_nbytes"
    return OSError(
        exc.errno,
        f"could not write a large array argument ({nbytes} bytes) to be "
        f"memory-mapped by the workers into {folder} ({free}): {exc.strerror}{hint}",
        folder,
    )


# Folders made by this process and not removed yet: removed at exit whatever happened.
_LIVE: set[tuple[int, str]] = set()
_LIVE_LOCK = threading.Lock()


def _track(folder):
    with _LIVE_LOCK:
        _LIVE.add((os.getpid(), folder))
    resource_tracker.register(folder, "folder")


def _remove_folder(folder):
    with _LIVE_LOCK:
        if (os.getpid(), folder) not in _LIVE:  # already removed at exit
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


def _backing_memmap(array):
    """The ``np.memmap`` of a named file whose map `array` views (through its ``.base`` chain), or None.

    None for arrays of anonymous maps and of memmaps without a file name.
    """
    import numpy as np

    while isinstance(array, np.ndarray):
        base = array.base
        if isinstance(base, mmap.mmap):
            if isinstance(array, np.memmap) and array.filename and not base.closed:
                return array
            return None
        array = base
    return None


def _byte_span(array):
    """``(low, high, first)``: `array`'s lowest and one-past-highest byte addresses; its first element's from low.

    Negative strides put elements below the first one.
    """
    start = array.__array_interface__["data"][0]
    low = high = start
    for extent, stride in zip(array.shape, array.strides):
        reach = (extent - 1) * stride
        if reach < 0:
            low += reach
        else:
            high += reach
    return low, high + array.itemsize, start - low
