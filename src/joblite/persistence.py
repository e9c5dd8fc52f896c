"""``dump``/``load``: pickle protocol 5 with every numpy array buffer out of band.

The pickle stream keeps the object structure; each numpy array buffer goes to
its own block of a container file (:mod:`joblite._container`, specified in
``docs/format_persistence.rst``), 64-byte aligned so that it can be
memory-mapped, compressed per block in independent chunks when asked.  This
module holds the API, the pickler and the rebuild functions that the pickle
streams name: their dotted names (``joblite.persistence._rebuild_array``...)
are written in every file, so they stay here under these names.  Files
written by ``joblib.dump`` are detected and read by :mod:`joblite._joblib_format`.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import reprlib
import warnings

from . import _blocks, _container, _files, _safe_unpickle, _validate, compressors
from ._container import FORMAT_VERSION
from ._safe_unpickle import CorruptFileError, UnsafeLoadError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

    from typing_extensions import Buffer

    from ._typing import Allowed, Compress, MmapMode, PathType, ReadableFile, WritableFile

__all__ = ["dump", "load", "dumps", "loads", "CorruptFileError", "UnsafeLoadError", "FORMAT_VERSION"]


# -- pickling: what the stream names ----------------------------------------------------
def _element_count(shape, order, what):
    """The number of elements of `shape`, after checking `shape` and `order` read from a file."""
    # A loop, not all() over a generator: this runs right after a large block's decoding, with
    # the interpreter's caches cold, where each piece of machinery touched costs microseconds.
    if type(shape) is not tuple:
        raise pickle.UnpicklingError(f"{what} with shape {reprlib.repr(shape)}, not a tuple of non-negative ints")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise pickle.UnpicklingError(f"{what} with shape {reprlib.repr(shape)}, not a tuple of non-negative ints")
        count *= dim
    if order != "C" and order != "F":
        raise pickle.UnpicklingError(f"{what} with order {reprlib.repr(order)}, neither 'C' nor 'F'")
    return count


def _rebuild_array(buffer, descr, shape, order):
    """Unpickling hook: the array `buffer` holds, as dtype `descr`, `shape`, `order`.

    `buffer` is what the loader handed to the unpickler for this out-of-band
    block: a 1-D uint8 ndarray or ``np.memmap`` of exactly the array's bytes.
    The arguments come from the file: a dtype holding Python objects (whose
    bytes would be taken for pointers), a malformed shape or order is refused.
    """
    import numpy as np

    dtype = _PLAIN_DTYPES.get(descr) if type(descr) is str else None
    if dtype is None:
        dtype = np.lib.format.descr_to_dtype(descr)
        if dtype.hasobject:
            raise pickle.UnpicklingError(f"array block of dtype {dtype}, which holds Python objects")
        _remember_plain(descr, dtype)
    count = _element_count(shape, order, "array block")
    if isinstance(buffer, memoryview) and isinstance(buffer.obj, np.ndarray):
        buffer = buffer.obj  # READONLY_BUFFER (a read-only array was dumped): mmap_mode decides, as in joblib
    if not isinstance(buffer, np.ndarray):
        buffer = np.frombuffer(buffer, dtype=np.uint8)
    if buffer.nbytes != count * dtype.itemsize:
        raise CorruptFileError(
            f"array block holds {buffer.nbytes} bytes, but dtype {dtype} and shape {shape} "
            f"need {count * dtype.itemsize}"
        )
    if count == 0 or dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    if len(shape) == 1:
        return buffer.view(dtype)  # already that shape: no reshape to run cold (see _element_count)
    return buffer.view(dtype).reshape(shape, order=order)


def _pushes_global(function):
    """The opcodes by which a protocol 5 pickler first names `function`: two strings, each memoized, STACK_GLOBAL."""
    module, name = function.__module__.encode(), function.__qualname__.encode()
    return b"\x8c%c%s\x94\x8c%c%s\x94\x93" % (len(module), module, len(name), name)


#: The bytes that name `_rebuild_array` in a stream, and the opcodes by which a protocol 5
#: stream reaches a callable other than through STACK_GLOBAL: EXT1, EXT2, EXT4.
_REBUILD_ARRAY_GLOBAL = _pushes_global(_rebuild_array)
_EXTENSION_CODES = (b"\x82", b"\x83", b"\x84")
#: The longest stream that `_load_container` scans for `_calls_only_rebuild_array` (bytes).
_DEFER_STREAM_MAX = 1 << 16


def _calls_only_rebuild_array(stream):
    """Whether unpickling the verified `stream`, as `dump` writes it, calls nothing but `_rebuild_array`.

    `dump` writes protocol 5, whose pickler reaches every function, method
    and class through STACK_GLOBAL, naming each once and then taking it
    from the memo, or, for a name of copyreg's extension registry, through
    EXT1, EXT2 or EXT4.  So a protocol 5 stream whose only STACK_GLOBAL
    names `_rebuild_array` and that has no EXT opcode calls nothing else;
    a data byte with an opcode's value only makes this False, the safe
    way.  Not a security check (a forged stream's GLOBAL or INST runs code
    under ``allowed=None`` anyway): it tells when a loader may hand
    `_rebuild_array` blocks whose decoding ends after the unpickling, no
    code of the file's being there to read them before.
    """
    data = stream if type(stream) is bytes else bytes(stream)
    if not data.startswith(b"\x80\x05") or data.count(b"\x93") != data.count(_REBUILD_ARRAY_GLOBAL):
        return False
    return not any(code in data for code in _EXTENSION_CODES)


def _rebuild_subclass(cls, base, state):
    """Unpickling hook for ndarray subclasses that pickle like ndarray (``np.matrix``).

    The view of `base` as `cls` gets `state` as instance attributes (its
    ``__dict__``): no ``__setstate__`` and no ``setattr`` runs, and `cls`
    must be a class the pickler writes so (not ``np.memmap``, whose
    attributes name a file).
    """
    import numpy as np

    if not (
        isinstance(cls, type)
        and issubclass(cls, np.ndarray)
        and not issubclass(cls, np.memmap)
        and cls.__reduce_ex__ is np.ndarray.__reduce_ex__
        and cls.__reduce__ is np.ndarray.__reduce__
    ):
        raise pickle.UnpicklingError(f"{reprlib.repr(cls)} is not an ndarray subclass that pickles like ndarray")
    if type(base) is not np.ndarray and type(base) is not np.memmap:
        raise pickle.UnpicklingError(f"the base of an ndarray subclass is a {type(base).__name__}")
    if state is not None and not (type(state) is dict and all(type(key) is str for key in state)):
        raise pickle.UnpicklingError("the attributes of an ndarray subclass are not a dict of names")
    array = base.view(cls)
    if state:
        array.__dict__.update(state)
    return array


def _rebuild_object_array(items, shape, order):
    """Unpickling hook: the object array of `shape` whose elements, in `order`, are the list `items`."""
    import numpy as np

    if type(items) is not list:
        raise pickle.UnpicklingError(f"the items of an object array are a {type(items).__name__}, not a list")
    count = _element_count(shape, order, "object array")
    if count != len(items):
        raise pickle.UnpicklingError(f"object array of shape {shape} with {len(items)} items")
    return np.fromiter(items, dtype=object, count=count).reshape(shape, order=order)


# The items an object array may hold to be pickled by _rebuild_object_array (and numpy's
# scalars but void ones): values that cannot refer back to the array.  A cycle through
# the array needs numpy's own form, which gives the array its items after it exists.
_ATOMS = frozenset({str, int, float, bool, type(None), bytes, complex})


# numpy.typecodes['All'] without 'O': the dtypes whose scalars hold no Python object.
_PLAIN_CHARS = frozenset("?bhilqnpBHILQNPefdgFDGSUVMm")
_PLAIN_DTYPES: dict[str, Any] = {}  # descr -> dtype, for the few descrs a process meets


def _is_plain(dtype):
    """A dtype fully described by its ``str``: no fields, sub-array, metadata or objects."""
    return dtype.char in _PLAIN_CHARS and dtype.fields is None and dtype.subdtype is None and dtype.metadata is None


def _remember_plain(descr, dtype):
    """Keep `dtype` for the next `descr` read, if it is plain and `descr` is its ``str``."""
    if type(descr) is str and _is_plain(dtype) and dtype.str == descr and len(_PLAIN_DTYPES) < 256:
        _PLAIN_DTYPES[descr] = dtype


def _rebuild_descr(descr):
    """Unpickling hook: the plain dtype (see :func:`_is_plain`) whose ``str`` is `descr`.

    The pickler writes plain dtypes this way, not as ``numpy.dtype`` plus a
    state that numpy's unpickling would trust, so that the numpy scalars of a
    dump load through the C unpickler.
    """
    dtype = _PLAIN_DTYPES.get(descr) if type(descr) is str else None
    if dtype is None:
        import numpy as np

        if type(descr) is not str or len(descr) > 32:
            raise pickle.UnpicklingError(f"a dtype descr {reprlib.repr(descr)} that is not a short str")
        dtype = np.dtype(descr)
        if not _is_plain(dtype) or dtype.str != descr:
            raise pickle.UnpicklingError(f"dtype descr {descr!r} does not spell a plain dtype")
        _remember_plain(descr, dtype)
    return dtype


class _Pickler(pickle.Pickler):
    """Protocol-5 pickler that sends every numpy array buffer (no object dtype) out of band.

    Each buffer becomes a block of the container: contiguous arrays are
    handed over as ``PickleBuffer`` of their own memory; a non-contiguous
    array as an empty placeholder buffer that the writer replaces by the
    array, streamed in C order in bounded chunks.  ``np.memmap`` is pickled
    as a plain array; an ndarray subclass that pickles like ndarray
    (``np.matrix``) as its ndarray view plus its class.
    """

    _np = None

    def __init__(self, file, blocks):
        super().__init__(file, protocol=5, buffer_callback=self._buffer)
        self._blocks = blocks
        self._pending = {}  # id of each PickleBuffer's exporter -> (the array to write, its itemsize)

    def _buffer(self, picklebuffer):
        self._blocks.append(self._pending.pop(id(picklebuffer.raw().obj)))
        return False

    def reducer_override(self, obj):
        np = self._np
        if np is None:
            import sys

            np = self._np = sys.modules.get("numpy")
            if np is None:  # no numpy imported: no array can be in `obj`
                return NotImplemented
        if not isinstance(obj, np.ndarray):
            if isinstance(obj, np.dtype) and _is_plain(obj):
                return _rebuild_descr, (obj.str,)
            return NotImplemented
        if obj.dtype.hasobject:
            if type(obj) is np.ndarray and obj.dtype.char == "O" and obj.dtype.metadata is None:
                order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
                items = obj.ravel(order=order).tolist()
                if all(
                    kind in _ATOMS or issubclass(kind, np.generic) and not issubclass(kind, np.void)
                    for kind in set(map(type, items))
                ):
                    return _rebuild_object_array, (items, obj.shape, order)
            return NotImplemented
        cls = type(obj)
        if cls is not np.ndarray and cls is not np.memmap:
            if cls.__reduce_ex__ is np.ndarray.__reduce_ex__ and cls.__reduce__ is np.ndarray.__reduce__:
                return _rebuild_subclass, (cls, obj.view(np.ndarray), getattr(obj, "__dict__", None))
            return NotImplemented
        dtype = obj.dtype
        descr = dtype.str if _is_plain(dtype) else np.lib.format.dtype_to_descr(dtype)
        if obj.flags.c_contiguous or obj.flags.f_contiguous:
            order = "C" if obj.flags.c_contiguous else "F"
            # As raw bytes: numpy exports no buffer for some dtypes (datetime64).
            exporter = (
                obj.reshape(-1, order=order).view(np.uint8) if obj.size and obj.itemsize else np.empty(0, np.uint8)
            )
            block = exporter
        else:
            exporter = bytearray()  # a placeholder: the array is streamed when written
            block, order = obj, "C"
        self._pending[id(exporter)] = (block, obj.itemsize)
        self._keep.append(exporter)
        return _rebuild_array, (pickle.PickleBuffer(exporter), descr, obj.shape, order)

    def dump(self, obj):
        self._keep = []  # exporters stay alive, so their ids stay unique, until pickled
        try:
            super().dump(obj)
        finally:
            self._keep = None


def _pickled(value):
    """The pickle stream of `value` and its out-of-band blocks, as `_container.write` takes them."""
    blocks = []
    stream = io.BytesIO()
    _Pickler(stream, blocks).dump(value)
    return stream.getbuffer(), blocks


def _write(fileobj, value, codec, level):
    """Pickle `value`, then write its container to the file object `fileobj`; return the bytes written.

    Nothing is written when `value` cannot be pickled.
    """
    return _container.write(fileobj, *_pickled(value), codec, level)


# joblib picks a compressor from the file name when compress= names none.
_EXTENSIONS = {".z": "zlib", ".gz": "gzip", ".bz2": "bz2", ".lzma": "lzma", ".xz": "xz", ".lz4": "lz4"}


def dump(
    value: object, filename: PathType | WritableFile, compress: Compress = 0, protocol: int | None = None
) -> list[str] | None:
    """Persist an arbitrary Python object, with its numpy arrays out of band, into one file.

    Parameters
    ----------
    value : object
        The object to store.  Numpy arrays of any dtype but object, contiguous
        or not (and ``np.memmap``, ``np.matrix``), go to their own 64-byte
        aligned blocks; everything else is pickled (protocol 5).
    filename : str, pathlib.Path or file object
        Where to write.  A path is written to a temporary name in the same
        folder (``<filename>.<pid>@<host>.<random>.tmp``) and renamed when
        complete, so that readers never see a partial file; the temporaries
        that dumps of processes gone from this host left in the folder are
        removed first.  A binary file object (an open file, ``io.BytesIO``,
        a ``gzip.GzipFile``, ``bz2.BZ2File`` or ``lzma.LZMAFile`` opened
        ``'wb'``, a pipe) is written from its current position, sequentially,
        without seeking.
    compress : bool, int 0-9, str or (str, int), optional
        ``False``/``0``: no compression (default; arrays can be memory-mapped
        on load).  ``True``: byte-shuffle + lz4, the default codec.  An int
        1-9: the default codec at that level.  A codec name (``'lz4'``,
        ``'zlib'``, ``'gzip'``, ``'bz2'``, ``'lzma'``, ``'xz'``, ``'zstd'``
        or a registered one) or a ``(name, level)`` tuple.  When `compress` is
        not given, a file name ending in ``.z``, ``.gz``, ``.bz2``,
        ``.lzma``, ``.xz`` or ``.lz4`` selects that codec, as in joblib.
    protocol : int, optional
        Kept for compatibility with joblib.  The container needs pickle
        protocol 5 (out-of-band buffers); ``None``, ``5`` and ``-1`` are
        accepted.

    Returns
    -------
    list of str
        ``[filename]`` for a path; ``None`` for a file object (as joblib).

    Raises
    ------
    ValueError
        If `compress`, `protocol` or `filename` is not valid; for `compress`
        and `filename` the message starts with joblib's words
        (``Non valid compress level given: "10".``, ``Second argument should
        be a filename or a file-like object``...).
    pickle.PicklingError, TypeError
        If part of `value` cannot be pickled; no file is left behind.

    See Also
    --------
    load, dumps
    """
    if protocol not in (None, 5, -1, pickle.HIGHEST_PROTOCOL):
        raise ValueError(f"protocol={protocol!r}: joblite files need pickle protocol 5 (use None)")
    if not isinstance(filename, (str, os.PathLike)):
        if not hasattr(filename, "write"):
            # joblib's words, then ours
            raise ValueError(
                f"Second argument should be a filename or a file-like object, {reprlib.repr(filename)} "
                f"(type {type(filename)}) was given: a str, a pathlib.Path or a binary file object "
                "(arguments are (value, filename))"
            )
    elif compress == 0 and not isinstance(compress, bool):
        compress = _EXTENSIONS.get(os.path.splitext(os.fspath(filename))[1].lower(), 0)
    codec, level = compressors.parse_compress(compress)
    if not isinstance(filename, (str, os.PathLike)):
        _write(filename, value, codec, level)
        return None
    path = os.fspath(filename)
    pickled, blocks = _pickled(value)
    with _container.compressing(pickled, blocks, codec, level) as started:
        # the first large block compresses on the pool's thread meanwhile
        _files.sweep_temporaries(os.path.dirname(path) or os.curdir)  # first: a killed dump's space comes back
        with _files.atomic_path(path) as temporary:
            _write_path(temporary, pickled, blocks, codec, level, started)
    return [path]


def write_file(value, path, codec, level):
    """Write the container of `value` to `path` in place, its disk blocks reserved first.

    The internal API under :func:`dump` and ``Memory`` entries, whose callers
    write to a temporary name and rename; `codec` and `level` come from
    :func:`joblite.compressors.parse_compress`.  Returns the file's length in bytes.
    """
    pickled, blocks = _pickled(value)
    with _container.compressing(pickled, blocks, codec, level) as started:
        return _write_path(path, pickled, blocks, codec, level, started)


def _write_path(path, pickled, blocks, codec, level, started):
    """Write the container to `path` (created or truncated), with what `_container.compressing` started."""
    with open(path, "wb") as fileobj:
        return _container.write(fileobj, pickled, blocks, codec, level, preallocate=True, started=started)


def dumps(value: object, compress: Compress = 0) -> bytes:
    """Return the bytes :func:`dump` would write for `value` (see :func:`dump`)."""
    stream = io.BytesIO()
    codec, level = compressors.parse_compress(compress)
    _write(stream, value, codec, level)
    return stream.getvalue()


# -- loading ---------------------------------------------------------------------------
def _load_container(container, mapfile, mmap_mode, admitted, keep=None):
    """Load the object of `container` (a `_container.Container`), mapping from `mapfile` when `mmap_mode` says."""
    where = container.where
    try:
        container.start_decoding()  # its threads decode the first large block while this thread unpickles
        stream = container.pickle_stream()
        if keep is not None and not container.blocks:
            keep.append(bytes(stream))
        if mmap_mode is not None and any(block.codec for block in container.blocks):
            warnings.warn(
                f"{where}: compressed arrays cannot be memory-mapped; mmap_mode={mmap_mode!r} "
                "has no effect on them and they are loaded in memory",
                UserWarning,
                stacklevel=4,
            )
        if mmap_mode == "r+" and mapfile is not None and any(block.codec == 0 for block in container.blocks):
            container.mark_mapped_writable(mapfile)
        # When only _rebuild_array meets the blocks, the whole stream is unpickled while the kernels'
        # threads decode them, and finish_deferred waits for them before the object is returned;
        # that Python work is then done before the decoding has evicted the interpreter's caches.
        defer = (
            admitted is None
            and container.decoding_started()
            and len(stream) <= _DEFER_STREAM_MAX
            and _calls_only_rebuild_array(stream)
        )
        buffers = (container.block(index, mapfile, mmap_mode, defer) for index in range(len(container.blocks)))
        value = _safe_unpickle.load_stream(stream, buffers, admitted, where)
        container.finish_deferred()
        return value
    finally:
        container.cancel_decoding()


#: Enough leading bytes to tell a container (its magic) from every kind of joblib file.
_HEAD = 8
_READ_ALL_PIECE = 1 << 16  # GzipFile decompresses 64 KiB reads three times faster than 4 MiB ones


def _random_access(fileobj):
    """Whether reading `fileobj` at any offset is cheap: an OS file (buffered or not) or ``io.BytesIO``.

    A compressed file object (``gzip.GzipFile``...) seeks by decompressing
    again from its start, and its ``fileno()`` is its compressed file's.
    """
    from ._joblib_format.streams import is_raw_file

    return is_raw_file(fileobj) or isinstance(fileobj, io.BytesIO)


def _seekable(fileobj):
    try:
        return bool(fileobj.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class _Prefixed(io.RawIOBase):
    """The bytes `head`, already read from the file object `rest`, then what `rest` still holds."""

    def __init__(self, head, rest):
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self):
        return True

    def readinto(self, buffer):
        with memoryview(buffer) as view, view.cast("B") as out:
            if self._head:
                count = min(len(out), len(self._head))
                out[:count] = self._head[:count]
                self._head = self._head[count:]
                return count
            data = self._rest.read(len(out))
            out[: len(data)] = data
            return len(data)


def _read_head(fileobj):
    """The first bytes from the position of the seekable `fileobj`, which stays where it is.

    A compressed file object peeks them: seeking it back would decompress it again.
    """
    peek = getattr(fileobj, "peek", None)
    if peek is not None:
        head = bytes(peek(_HEAD)[:_HEAD])
        if len(head) == _HEAD:
            return head
    start = fileobj.tell()
    head = fileobj.read(_HEAD)
    fileobj.seek(start)
    return head


def _is_container(head):
    return head[: len(_container.MAGIC)] == _container.MAGIC


def _joblib_kind(head):
    """What kind of joblib file starts with `head` (see ``_joblib_format.detect``); None for a container."""
    if _is_container(head):
        return None
    from . import _joblib_format  # only when needed: most files are joblite's

    return _joblib_format.detect(head)


def _is_dump_start(head):
    return _is_container(head) or _joblib_kind(head) is not None


def _positioned(fileobj):
    """`fileobj` (or a reader over it) at the start of the dump to load, and the dump's first bytes.

    A dump is read from the current position when one starts there; a
    seekable object where none does (typically: at its end, right after
    ``dump``) is read from its start, as ``joblib.load`` reads an
    ``io.BytesIO``.  A non-seekable object is read on from where it is,
    its first bytes kept in front of the rest.
    """
    if _seekable(fileobj):
        head = _read_head(fileobj)
        if not _is_dump_start(head) and fileobj.tell() != 0:
            fileobj.seek(0)
            head = _read_head(fileobj)
        return fileobj, head
    head = b""
    while len(head) < _HEAD:
        piece = fileobj.read(_HEAD - len(head))
        if not piece:
            break
        head += piece
    return io.BufferedReader(_Prefixed(head, fileobj)), head


def _read_rest(fileobj):
    """Everything `fileobj` holds from its position on, read in bounded pieces into one bytearray."""
    data = bytearray()
    while True:
        piece = fileobj.read(_READ_ALL_PIECE)
        if not piece:
            return data
        data += piece


def _ignored_mmap_mode(fileobj, mmap_mode, where, compressed):
    """Warn that `mmap_mode` does nothing for the file object `fileobj`, in joblib's words where it warns."""
    if compressed:
        message = (
            f'mmap_mode "{mmap_mode}" is not compatible with compressed file {where}. '
            f'"{mmap_mode}" flag will be ignored.'
        )
    elif isinstance(fileobj, io.BytesIO):
        message = (
            f'In memory persistence is not compatible with mmap_mode "{mmap_mode}" flag passed. '
            "mmap_mode option will be ignored."
        )
    elif not _random_access(fileobj):
        message = f'"{fileobj!r}" is not a raw file, mmap_mode "{mmap_mode}" flag will be ignored.'
    else:  # joblib ignores it silently here
        message = (
            f'mmap_mode "{mmap_mode}" has no effect when loading from a file object ({where}): '
            "pass the path of the file to memory-map its arrays. mmap_mode option will be ignored."
        )
    warnings.warn(message, UserWarning, stacklevel=4)


def _load_fileobj(fileobj, where, mmap_mode, admitted, own_file=False):
    """Load the dump that `fileobj` holds: a container or a joblib file, either compressed as a whole.

    `own_file`: `fileobj` is the file that :func:`load_path` opened, at its
    start, from which arrays can be memory-mapped; a user's file object is
    never mapped (`mmap_mode` is ignored with a warning, as in joblib).
    Containers are read at their offsets where that is cheap (an OS file, at
    its start, or an ``io.BytesIO``), else read whole into memory first; a
    joblib stream is read sequentially.
    """
    fileobj, head = _positioned(fileobj)
    kind = _joblib_kind(head)
    compressed = False
    if kind is not None:
        from . import _joblib_format

        compressed = kind in _joblib_format.COMPRESSIONS
    if mmap_mode is not None and not own_file:
        _ignored_mmap_mode(fileobj, mmap_mode, where, compressed)
        mmap_mode = None
    if _is_container(head):
        if _random_access(fileobj) and fileobj.tell() == 0:
            mapfile = fileobj if own_file and mmap_mode else None
            return _load_container(_container.Container(fileobj, where), mapfile, mmap_mode, admitted)
        data = _read_rest(fileobj)  # offsets in a container are from its start
        return _load_container(_container.Container(None, where, data), None, None, admitted)
    from . import _joblib_format

    if compressed:
        source = _joblib_format.open_source(fileobj, kind, where)
        if source.file.peek(_HEAD)[: len(_container.MAGIC)] == _container.MAGIC:
            # A container in a file compressed as a whole (dumped into a GzipFile...).
            if mmap_mode is not None:
                _ignored_mmap_mode(fileobj, mmap_mode, where, compressed)
            data = _read_rest(source.file)
            return _load_container(_container.Container(None, where, data), None, None, admitted)
        return _joblib_format.load_joblib(source, mmap_mode=mmap_mode, admitted=admitted, where=where)
    if kind is not None:
        return _joblib_format.load_joblib(fileobj, mmap_mode=mmap_mode, admitted=admitted, where=where)
    raise CorruptFileError(f"{where}: not a joblite or joblib file (it starts with {bytes(head)!r})")


class _FilenameTypeError(TypeError, ValueError):
    """`filename` of :func:`load` is neither a path nor a file object.

    A TypeError, in the words of the one ``joblib.load`` raises (from its
    ``open(filename)``), and a ValueError, as joblite raised before.
    """


def load(
    filename: PathType | bytes | ReadableFile, mmap_mode: MmapMode | None = None, *, allowed: Allowed = None
) -> Any:
    """Reconstruct an object persisted with :func:`dump` (or ``joblib.dump``).

    Parameters
    ----------
    filename : str, bytes, pathlib.Path or file object
        The file to read.  A binary file object (an open file, ``io.BytesIO``,
        a ``gzip.GzipFile``, ``bz2.BZ2File`` or ``lzma.LZMAFile`` opened
        ``'rb'``, a pipe) is read from its current position when a dump
        starts there, else, if it is seekable, from its start (as
        ``joblib.load`` reads an ``io.BytesIO``).  A file compressed as a
        whole (gzip, bz2, lzma, xz, zlib, lz4 frame: joblib's ``compress=``,
        or a dump into a ``GzipFile``...) is recognised by its first bytes
        and decompressed while it is read, from a path or a file object.
    mmap_mode : {None, 'r', 'r+', 'w+', 'c'}, optional
        With a mode, uncompressed arrays come back as ``np.memmap`` views into
        the file, in O(1) time whatever their size, without reading or
        checksumming them; ``'w+'`` is treated as ``'r+'``, as joblib does.
        Compressed arrays cannot be mapped: they are decompressed, with a
        warning.  Ignored with a ``UserWarning`` for file objects (joblib
        ignores it too) and for files compressed as a whole.  Without a
        mode, each block is read straight into its final array and its
        checksum verified.
    allowed : None, {'numpy', 'safe'} or list of str, optional
        What the file may name.  None (default) is full pickle: a file can
        run any code it names, so load only files you trust.  ``'numpy'`` (or
        ``'safe'``) admits an exact list of dotted names: builtin containers
        and scalars, numpy arrays, dtypes and scalars, the datetime types,
        Decimal, Fraction, UUID, pathlib paths, collections types and
        joblite's own rebuild functions.  A list of dotted names admits
        those exact names too (e.g.
        ``['sklearn.linear_model._base.LinearRegression']``), and
        ``'package.module.*'`` the classes and functions defined in that
        module.  Under a restriction the file can call only admitted names,
        reach no module, open no file (``numpy.memmap`` is refused), and
        numpy objects are rebuilt with their state checked.  The
        "Security" page of the documentation lists the names and the checks.

    Returns
    -------
    object
        The reconstructed object.

    Raises
    ------
    UnsafeLoadError
        If the file names a global that `allowed` does not admit, or uses
        one in a way a restricted load refuses; nothing refused has run.
    CorruptFileError
        (a ``ValueError``) if the file is truncated, corrupted (checksum
        mismatch), or not a joblite or joblib file; the message names the file,
        the part (header, block N, ...) and what is wrong.
    ValueError
        If `mmap_mode` or `allowed` is not valid.
    TypeError
        (also a ``ValueError``) if `filename` is neither a path nor an object
        with ``read``; the message starts as joblib's: ``expected str, bytes
        or os.PathLike object``.
    FileNotFoundError
        If `filename` does not exist.

    See Also
    --------
    dump, loads
    """
    mmap_mode = _validate.check_mmap_mode(mmap_mode)
    admitted = _safe_unpickle.resolve_allowed(allowed)
    if isinstance(filename, (str, bytes, os.PathLike)):
        return load_path(os.fsdecode(filename), mmap_mode, admitted)
    if not hasattr(filename, "read"):
        raise _FilenameTypeError(
            f"expected str, bytes or os.PathLike object, not {type(filename).__name__}: "
            f"filename must be a path or a binary file object, got "
            f"{reprlib.repr(filename)}"
        )
    name = getattr(filename, "name", None)
    where = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else repr(filename)
    return _load_fileobj(filename, where, mmap_mode, admitted)


def load_path(path, mmap_mode, admitted, keep=None):
    """Load the file at `path`: the internal API under :func:`load` and ``Memory`` cache hits.

    `mmap_mode` and `admitted` are already validated.  `keep`, a list: when
    the file is a small container without array blocks, its verified pickle
    stream is appended to it, for a caller that unpickles it again later
    without reading the file.
    """
    # Everything comes from this one descriptor, memory maps too: a reader sees
    # one version of a file that another process replaces (temporary + rename).
    fd, writable = _open_to_load(path, mmap_mode)
    try:
        data = os.read(fd, _container.SMALL_FILE)
        if _is_container(data):
            if _container.hints(data) & _container.HINT_KERNEL_THREADS:
                _blocks.wake_threads()  # awake, not asleep, when the first block's decoding starts
            # A small file is read whole by that one read (a short read of a regular file is
            # its end): small containers are what a Memory cache hit loads most often.  A
            # large one is read at its offsets, its first bytes not again.
            if len(data) < _container.SMALL_FILE:
                container = _container.Container(None, path, data)
            else:
                container, keep = _container.Container(fd, path, head=data), None
            if mmap_mode is None:
                return _load_container(container, None, None, admitted, keep)
            with _named_file(fd, path, writable) as mapfile:
                return _load_container(container, mapfile, mmap_mode, admitted, keep)
        with _named_file(fd, path, writable) as fileobj:
            fileobj.seek(0)
            return _load_fileobj(fileobj, path, mmap_mode, admitted, own_file=True)
    finally:
        os.close(fd)


def _open_to_load(path, mmap_mode):
    """A descriptor of `path`, and whether it is writable: arrays mapped 'r+' need that.

    A file that cannot be opened for writing is opened for reading: it loads
    when nothing in it is mapped, and mapping raises ``PermissionError``.
    """
    if mmap_mode == "r+":
        try:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC), True
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False


def _named_file(fd, path, writable):
    """A file object over `fd` that leaves it open, named `path` (``np.memmap.filename`` records it)."""
    fileobj = open(fd, "r+b" if writable else "rb", closefd=False)
    fileobj.raw.name = path
    return fileobj


def loads(data: Buffer, *, allowed: Allowed = None) -> Any:
    """Reconstruct an object from the bytes :func:`dumps` returned (see :func:`load`)."""
    admitted = _safe_unpickle.resolve_allowed(allowed)
    return _load_fileobj(io.BytesIO(data), "<bytes>", None, admitted)
