"""``dump``/``load``: pickle protocol 5 with every numpy array buffer out of band.

The pickle stream keeps the object structure; each numpy array buffer goes to
its own block, 64-byte aligned so that it can be memory-mapped, compressed per
block in independent chunks when asked.  The container layout is specified in
``docs/format_persistence.rst`` (format version 1).  Files written by
``joblib.dump`` are detected and read by :mod:`joblite._joblib_format`.
"""
import contextvars
import errno
import io
import math
import os
import pickle
import re
import reprlib
import struct
import uuid
import warnings

import xxhash

from . import _impl, _owners, _safe_unpickle, compressors
from ._safe_unpickle import CorruptFileError, UnsafeLoadError

__all__ = ["dump", "load", "dumps", "loads", "CorruptFileError", "UnsafeLoadError", "FORMAT_VERSION"]

#: Version of the container format written by :func:`dump`.
FORMAT_VERSION = 1

MAGIC = b"\x89JOBLITE"
# Set when a file was memory-mapped writable ('r+'): its blocks may have been
# written through the mapping, so their checksums no longer hold.
FLAG_MAPPED_WRITABLE = 1
FOOTER_MAGIC = b"JLBLOCKS"
ALIGNMENT = 64
_HEADER = struct.Struct("<8sHHIQQQB7xQQ")   # magic .. checksum of the header itself
_ENTRY = struct.Struct("<QQQBB6xQQ")        # one block of the table
_FOOTER = struct.Struct("<8sQQQQQ8xQ")      # magic .. checksum of the footer itself
assert _HEADER.size == ALIGNMENT and _FOOTER.size == ALIGNMENT and _ENTRY.size == 48

MMAP_MODES = (None, "r", "r+", "w+", "c")
_MAX_READ_CHUNK = 1 << 24
_READ_PIECE = 1 << 20  # hashed while still in L2: measured fastest here
_OVERLAP_MIN = 1 << 23  # from this size on, I/O and checksum run side by side
_WRITE_PIECE = 1 << 22   # measured best here for writing while hashing
_PARALLEL_READ_PIECE = 1 << 24
_SMALL_FILE = 1 << 16
_PREALLOCATE_MIN = 1 << 20  # reserving blocks first pays off for large files only


def _checksum(buffer):
    return xxhash.xxh3_64_intdigest(buffer)


def _padding(offset):
    return -offset % ALIGNMENT


# -- writing ---------------------------------------------------------------------------
class _Block:
    """One array buffer to write: the array itself, kept alive until it is written."""

    __slots__ = ("array", "itemsize")

    def __init__(self, array, itemsize):
        self.array = array
        self.itemsize = itemsize


def _element_count(shape, order, what):
    """The number of elements of `shape`, after checking `shape` and `order` read from a file."""
    if type(shape) is not tuple or not all(type(dim) is int and dim >= 0 for dim in shape):
        raise pickle.UnpicklingError(f"{what} with shape {reprlib.repr(shape)}, not a tuple of "
                                     "non-negative ints")
    if order != "C" and order != "F":
        raise pickle.UnpicklingError(f"{what} with order {reprlib.repr(order)}, neither 'C' nor 'F'")
    return math.prod(shape)


def _rebuild_array(buffer, descr, shape, order):
    """Unpickling hook: the array `buffer` holds, as dtype `descr`, `shape`, `order`.

    `buffer` is what the loader handed to the unpickler for this out-of-band
    block: a 1-D uint8 ndarray or ``np.memmap`` of exactly the array's bytes.
    The arguments come from the file: a dtype holding Python objects (whose
    bytes would be taken for pointers), a malformed shape or order is refused.
    """
    import numpy as np

    dtype = np.lib.format.descr_to_dtype(descr)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"array block of dtype {dtype}, which holds Python objects")
    count = _element_count(shape, order, "array block")
    if isinstance(buffer, memoryview) and isinstance(buffer.obj, np.ndarray):
        buffer = buffer.obj  # READONLY_BUFFER (a read-only array was dumped): mmap_mode decides, as in joblib
    if not isinstance(buffer, np.ndarray):
        buffer = np.frombuffer(buffer, dtype=np.uint8)
    if buffer.nbytes != count * dtype.itemsize:
        raise CorruptFileError(
            f"array block holds {buffer.nbytes} bytes, but dtype {dtype} and shape {shape} "
            f"need {count * dtype.itemsize}")
    if count == 0 or dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    return buffer.view(dtype).reshape(shape, order=order)


def _rebuild_subclass(cls, base, state):
    """Unpickling hook for ndarray subclasses that pickle like ndarray (``np.matrix``).

    The view of `base` as `cls` gets `state` as instance attributes (its
    ``__dict__``): no ``__setstate__`` and no ``setattr`` runs, and `cls`
    must be a class the pickler writes so (not ``np.memmap``, whose
    attributes name a file).
    """
    import numpy as np

    if not (isinstance(cls, type) and issubclass(cls, np.ndarray) and not issubclass(cls, np.memmap)
            and cls.__reduce_ex__ is np.ndarray.__reduce_ex__ and cls.__reduce__ is np.ndarray.__reduce__):
        raise pickle.UnpicklingError(f"{reprlib.repr(cls)} is not an ndarray subclass that pickles "
                                     "like ndarray")
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
_PLAIN_DTYPES = {}   # descr -> dtype, for the few descrs a process meets


def _is_plain(dtype):
    """A dtype fully described by its ``str``: no fields, sub-array, metadata or objects."""
    return (dtype.char in _PLAIN_CHARS and dtype.fields is None and dtype.subdtype is None
            and dtype.metadata is None)


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
        if len(_PLAIN_DTYPES) < 256:
            _PLAIN_DTYPES[descr] = dtype
    return dtype


class _ArrayPickler(pickle.Pickler):
    """Protocol-5 pickler that hands every numpy array (no object dtype) to `reduce_array`.

    ``np.memmap`` is pickled as a plain array; an ndarray subclass that pickles
    like ndarray (``np.matrix``) as its ndarray view plus its class.
    """

    _np = None

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
                if all(kind in _ATOMS or issubclass(kind, np.generic) and not issubclass(kind, np.void)
                       for kind in set(map(type, items))):
                    return _rebuild_object_array, (items, obj.shape, order)
            return NotImplemented
        cls = type(obj)
        if cls is not np.ndarray and cls is not np.memmap:
            if cls.__reduce_ex__ is np.ndarray.__reduce_ex__ and cls.__reduce__ is np.ndarray.__reduce__:
                return _rebuild_subclass, (cls, obj.view(np.ndarray), getattr(obj, "__dict__", None))
            return NotImplemented
        return self.reduce_array(obj)


class _Pickler(_ArrayPickler):
    """Sends every numpy array buffer out of band, to a block of the container.

    Contiguous arrays are handed over as ``PickleBuffer`` of their own memory.
    A non-contiguous array is handed over as an empty placeholder buffer that
    the writer replaces by the array, streamed in C order in bounded chunks.
    """

    def __init__(self, file, blocks):
        super().__init__(file, protocol=5, buffer_callback=self._buffer)
        self._blocks = blocks
        self._pending = {}  # id of each PickleBuffer's exporter -> the block to write

    def _buffer(self, picklebuffer):
        self._blocks.append(self._pending.pop(id(picklebuffer.raw().obj)))
        return False

    def reduce_array(self, obj):
        np = self._np
        descr = np.lib.format.dtype_to_descr(obj.dtype)
        if obj.flags.c_contiguous or obj.flags.f_contiguous:
            order = "C" if obj.flags.c_contiguous else "F"
            # As raw bytes: numpy exports no buffer for some dtypes (datetime64).
            exporter = (obj.reshape(-1, order=order).view(np.uint8) if obj.size and obj.itemsize
                        else np.empty(0, np.uint8))
            block = exporter
        else:
            exporter = bytearray()  # a placeholder: the array is streamed when written
            block, order = obj, "C"
        self._pending[id(exporter)] = _Block(block, obj.itemsize)
        self._keep.append(exporter)
        return _rebuild_array, (pickle.PickleBuffer(exporter), descr, obj.shape, order)

    def dump(self, obj):
        self._keep = []  # exporters stay alive, so their ids stay unique, until pickled
        try:
            super().dump(obj)
        finally:
            self._keep = None


# joblib picks a compressor from the file name when compress= names none.
_EXTENSIONS = {".z": "zlib", ".gz": "gzip", ".bz2": "bz2", ".lzma": "lzma", ".xz": "xz", ".lz4": "lz4"}


def _write_array(write, array, checksum):
    """Write `array`'s bytes in C order (non-contiguous ones in bounded chunks); return the count."""
    import numpy as np

    if array.flags.c_contiguous:
        _write_hashed(write, array, checksum)
        return array.nbytes
    chunks = np.nditer(array, flags=["external_loop", "buffered", "zerosize_ok"],
                       buffersize=max(1, (1 << 20) // max(array.itemsize, 1)), order="C")
    for chunk in chunks:
        data = np.ascontiguousarray(chunk).view(np.uint8)
        checksum.update(data)
        write(data)
    return array.nbytes




def _compressed_block(array, itemsize, codec, level):
    """The framed compressed block of `array`'s bytes in C order.

    A contiguous block (a uint8 view) is compressed by several threads; a
    non-contiguous array is gathered a chunk at a time into one chunk of
    scratch, so that no full copy is made.  The bytes are the same either way.
    """
    import numpy as np

    if array.flags.c_contiguous:
        return compressors.compress_block(array if array.nbytes else b"", itemsize, codec, level)
    step = compressors.chunk_length(itemsize)
    scratch = np.empty(step, dtype=np.uint8)
    chunks, filled = [], 0
    for piece in np.nditer(array, flags=["external_loop", "buffered", "zerosize_ok"],
                           buffersize=max(1, step // array.itemsize), order="C"):
        data = np.ascontiguousarray(piece).view(np.uint8)
        start = 0
        while start < data.nbytes:
            take = min(step - filled, data.nbytes - start)
            scratch[filled:filled + take] = data[start:start + take]
            filled += take
            start += take
            if filled == step:
                chunks.extend(compressors.iter_compressed_chunks(scratch, itemsize, codec, level, workers=1))
                filled = 0
    if filled:
        chunks.extend(compressors.iter_compressed_chunks(scratch[:filled], itemsize, codec, level, workers=1))
    return compressors.frame_header([len(chunk) for chunk in chunks]) + b"".join(chunks)


def _write_hashed(write, data, checksum):
    """Write the C-contiguous uint8 array `data` and feed it to `checksum`.

    For large data the write of each piece runs in a helper thread while this
    thread hashes the piece: the write releases the GIL (xxhash does not), so
    the checksum costs next to nothing on two cores.
    """
    if data.nbytes < _OVERLAP_MIN:
        checksum.update(data)
        write(data)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="joblite-write") as writer:
        previous = None
        for start in range(0, data.nbytes, _WRITE_PIECE):
            piece = data[start:start + _WRITE_PIECE]
            current = writer.submit(write, piece)  # one thread: the pieces stay in order
            checksum.update(piece)
            if previous is not None:
                previous.result()
            previous = current
        previous.result()


class _Writer:
    """Counts what it writes, so that offsets are known without seeking."""

    def __init__(self, fileobj):
        self.write_raw = fileobj.write
        self.position = 0

    def write(self, data):
        self.write_raw(data)
        self.position += memoryview(data).nbytes

    def pad(self):
        padding = _padding(self.position)
        if padding:
            self.write(bytes(padding))


def _planned_length(pickle_length, block_lengths, table_length):
    """Length of a container file whose parts have these lengths (bytes)."""
    position = ALIGNMENT + pickle_length
    for length in block_lengths:
        position += _padding(position) + length
    position += _padding(position) + table_length
    return position + ALIGNMENT


def _write_container(fileobj, value, codec, level, preallocate=False):
    """Write `value` as a joblite container to the binary file object `fileobj`.

    With `preallocate` (a regular file of our own), the disk blocks of a large
    uncompressed file are reserved first, which makes the large writes faster.
    Returns the number of bytes written.
    """
    import xxhash

    blocks = []
    stream = io.BytesIO()
    _Pickler(stream, blocks).dump(value)
    pickled = stream.getbuffer()
    codecs = ["none", codec] if codec else ["none"]
    chunk_size = compressors.CHUNK_SIZE
    stored = compressors.compress_block(pickled, 1, codec, level) if codec else pickled
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, 0, len(stored), len(pickled),
                          _checksum(stored), len(codecs) - 1, chunk_size, 0)
    if preallocate and not codec:
        names_length = sum(1 + len(name) for name in codecs) + 2
        total = _planned_length(len(stored), [block.array.nbytes for block in blocks],
                                len(blocks) * _ENTRY.size + names_length)
        if total >= _PREALLOCATE_MIN:
            _impl.fileio.preallocate(fileobj.fileno(), total)
    out = _Writer(fileobj)
    out.write(header[:-8] + struct.pack("<Q", _checksum(header[:-8])))
    out.write(stored)
    table = bytearray()
    for block in blocks:
        out.pad()
        array = block.array
        itemsize = block.itemsize if 0 < block.itemsize < 256 else 1
        offset = out.position
        checksum = xxhash.xxh3_64()
        if codec:
            data = _compressed_block(array, itemsize, codec, level)
            checksum.update(data)
            out.write(data)
            raw_length = array.nbytes
        else:
            raw_length = _write_array(out.write, array, checksum)
        table += _ENTRY.pack(offset, out.position - offset, raw_length, len(codecs) - 1,
                             itemsize, checksum.intdigest(), 0)
    table += struct.pack("<H", len(codecs))
    for name in codecs:
        encoded = name.encode("ascii")
        table += struct.pack("<B", len(encoded)) + encoded
    out.pad()
    table_offset = out.position
    out.write(table)
    footer = _FOOTER.pack(FOOTER_MAGIC, table_offset, len(table), len(blocks), _checksum(table),
                          out.position + ALIGNMENT, 0)
    out.write(footer[:-8] + struct.pack("<Q", _checksum(footer[:-8])))
    return out.position


def _temporary_name(path):
    """A name next to `path` that no other process or thread picks: its owner (pid@host), a random part."""
    return f"{path}.{_owners.owner()}.{uuid.uuid4().hex[:12]}.tmp"


# A temporary of this host: the digits cannot hold a dot, so the owner's pid is found
# whatever dots and '@' the target's name holds.
_LOCAL_TEMPORARY = re.compile(rf"\.(\d+)@{re.escape(_owners.HOST)}\.[0-9a-f]{{12}}\.tmp\Z")


# folder -> its modification time (ns) when this process last swept it or renamed a dump into it
_FOLDER_TIMES = {}


def _sweep_temporaries(folder):
    """Remove the temporaries that dumps killed on this host left in `folder` (their owner is gone).

    Temporaries of live processes, and of other hosts (whose processes
    cannot be seen from here), are left alone.  A folder that only this
    process changed since it last looked (same modification time) is not
    listed again: dumps into a folder of many files stay cheap.
    """
    folder = os.path.abspath(folder)
    try:
        if os.stat(folder).st_mtime_ns == _FOLDER_TIMES.get(folder):
            return
        entries = os.scandir(folder)
    except OSError:
        return   # the dump itself reports a missing or unreadable folder
    with entries:
        for entry in entries:
            match = _LOCAL_TEMPORARY.search(entry.name) if entry.name.endswith(".tmp") else None
            if match and not _owners.pid_alive(int(match.group(1))):
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass   # removed by another sweeper, or not ours to remove
    _note_folder(folder)


def _note_folder(folder):
    """Remember the modification time of `folder`, which this process just changed."""
    if len(_FOLDER_TIMES) > 4096:   # a bound for processes that write into very many folders
        _FOLDER_TIMES.clear()
    try:
        _FOLDER_TIMES[os.path.abspath(folder)] = os.stat(folder).st_mtime_ns
    except OSError:
        pass


def dump(value, filename, compress=0, protocol=None):
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
        removed first.  A binary file object (also ``io.BytesIO``) is written
        from its current position.
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
        If `compress`, `protocol` or `filename` is not valid.
    pickle.PicklingError, TypeError
        If part of `value` cannot be pickled; no file is left behind.

    See Also
    --------
    load, dumps
    """
    if protocol not in (None, 5, -1, pickle.HIGHEST_PROTOCOL):
        raise ValueError(f"protocol={protocol!r}: joblite files need pickle protocol 5 (use None)")
    is_path = isinstance(filename, (str, os.PathLike))
    if not is_path and not hasattr(filename, "write"):
        raise ValueError(
            f"filename must be a str, a pathlib.Path or a binary file object, got "
            f"{reprlib.repr(filename)} (type {type(filename).__name__}); arguments are (value, filename)")
    if is_path and compress == 0 and not isinstance(compress, bool):
        compress = _EXTENSIONS.get(os.path.splitext(os.fspath(filename))[1].lower(), 0)
    codec, level = compressors.parse_compress(compress)
    if not is_path:
        _write_container(filename, value, codec, level)
        return None
    path = os.fspath(filename)
    folder = os.path.dirname(path) or os.curdir
    _sweep_temporaries(folder)   # first: a killed dump's space comes back
    temporary = _temporary_name(path)
    try:
        write_file(value, temporary, codec, level)
        os.replace(temporary, path)
        _note_folder(folder)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return [path]


def write_file(value, path, codec, level):
    """Write the container of `value` to `path` in place, its disk blocks reserved first.

    The internal API under :func:`dump` and ``Memory`` entries, whose callers
    write to a temporary name and rename; `codec` and `level` come from
    :func:`joblite.compressors.parse_compress`.  Returns the file's length in bytes.
    """
    with open(path, "wb") as fileobj:
        return _write_container(fileobj, value, codec, level, preallocate=True)


def dumps(value, compress=0):
    """Return the bytes :func:`dump` would write for `value` (see :func:`dump`)."""
    stream = io.BytesIO()
    codec, level = compressors.parse_compress(compress)
    _write_container(stream, value, codec, level)
    return stream.getvalue()


# -- reading ---------------------------------------------------------------------------
_CODEC_LISTS = {}   # bytes of a block table's codec list -> the parsed names


class _Container:
    """The validated header, footer and block table of a container file."""

    def __init__(self, fileobj, where, data=None):
        self.file = fileobj
        self.where = where
        self.data = data   # the whole file, when it is small and already read
        header = self._read(0, ALIGNMENT, "header")
        (magic, version, self.flags, _, self.pickle_length, self.pickle_raw_length, self.pickle_checksum,
         self.pickle_codec, self.chunk_size, checksum) = _HEADER.unpack(header)
        if magic != MAGIC:
            self.fail("header", f"bad magic bytes {magic!r}")
        if _checksum(header[:-8]) != checksum:
            self.fail("header", "checksum mismatch")
        if not 1 <= self.chunk_size <= _MAX_READ_CHUNK:
            # Also bounds what a small forged file can claim to decompress to.
            self.fail("header", f"chunk size {self.chunk_size} is out of range (1 to {_MAX_READ_CHUNK})")
        if version != FORMAT_VERSION or self.flags & ~FLAG_MAPPED_WRITABLE:
            self.fail("header", f"format version {version} (flags {self.flags}) is not supported by this "
                                f"joblite, which reads version {FORMAT_VERSION}")
        size = len(data) if data is not None else fileobj.seek(0, io.SEEK_END)
        if size < 2 * ALIGNMENT:
            self.fail("footer", f"file is truncated ({size} bytes)")
        footer = self._read(size - ALIGNMENT, ALIGNMENT, "footer")
        magic, table_offset, table_length, n_blocks, table_checksum, file_length, checksum = \
            _FOOTER.unpack(footer)
        if magic != FOOTER_MAGIC or _checksum(footer[:-8]) != checksum:
            self.fail("footer", "missing or corrupt (the file may be truncated)")
        if file_length != size:
            self.fail("footer", f"the file has {size} bytes, the footer says {file_length}")
        pickle_end = ALIGNMENT + self.pickle_length
        if not (pickle_end <= table_offset and table_offset + table_length == size - ALIGNMENT
                and n_blocks * _ENTRY.size <= table_length):
            self.fail("block table", "offsets are inconsistent")
        table = self._read(table_offset, table_length, "block table")
        if _checksum(table) != table_checksum:
            self.fail("block table", "checksum mismatch")
        self.codecs = self._codec_names(table, n_blocks * _ENTRY.size)
        if self.pickle_codec >= len(self.codecs):
            self.fail("header", f"codec index {self.pickle_codec} is out of range")
        if self.pickle_codec == 0 and self.pickle_raw_length != self.pickle_length:
            self.fail("header", "uncompressed pickle stream with two lengths")
        self._check_raw_length("pickle stream", self.pickle_codec, self.pickle_length,
                               self.pickle_raw_length)
        self.blocks = []
        previous_end = pickle_end
        for index in range(n_blocks):
            entry = _ENTRY.unpack_from(table, index * _ENTRY.size)
            offset, length, raw_length, codec, itemsize, checksum, _ = entry
            if offset % ALIGNMENT or offset < previous_end or offset + length > table_offset:
                self.fail(f"block {index}", f"offset {offset} and length {length} are out of bounds")
            if codec >= len(self.codecs) or itemsize == 0:
                self.fail(f"block {index}", f"codec index {codec} or itemsize {itemsize} is invalid")
            if codec == 0 and raw_length != length:
                self.fail(f"block {index}", f"uncompressed block of {length} bytes claims {raw_length}")
            self._check_raw_length(f"block {index}", codec, length, raw_length, itemsize)
            previous_end = offset + length
            self.blocks.append(entry[:6])

    def _check_raw_length(self, part, codec, length, raw_length, itemsize=1):
        """Refuse a raw length the stored bytes cannot hold, before memory is allocated for it."""
        if codec:
            name = self.codecs[codec]
            possible = compressors.max_raw_length(name, length, itemsize, self.chunk_size)
            if raw_length > possible:
                self.fail(part, f"claims {raw_length} raw bytes, but its {length} stored bytes of {name!r} "
                                f"data can hold at most {possible}")

    def fail(self, part, what):
        raise CorruptFileError(f"{self.where}: {part}: {what}")

    def _read(self, offset, length, part):
        if self.data is not None:
            data = self.data[offset:offset + length]
        else:
            self.file.seek(offset)
            data = self.file.read(length)
        if len(data) != length:
            self.fail(part, f"truncated: {len(data)} of {length} bytes at offset {offset}")
        return data

    def _codec_names(self, table, start):
        key = bytes(table[start:])
        names = _CODEC_LISTS.get(key)
        if names is None:
            names = self._parse_codec_names(table, start)
            if len(_CODEC_LISTS) < 64:   # a handful of distinct lists in practice
                _CODEC_LISTS[key] = names
        return names

    def _parse_codec_names(self, table, start):
        try:
            (count,) = struct.unpack_from("<H", table, start)
            names, position = [], start + 2
            for _ in range(count):
                (length,) = struct.unpack_from("<B", table, position)
                name = bytes(table[position + 1:position + 1 + length]).decode("ascii")
                if len(name) != length:
                    raise struct.error("name runs past the table")
                names.append(name)
                position += 1 + length
        except (struct.error, UnicodeDecodeError) as exc:
            self.fail("block table", f"codec names are corrupt ({exc})")
        if not names or names[0] != "none":
            self.fail("block table", f"codec list {names!r} does not start with 'none'")
        return tuple(names)

    def _decompressed(self, stored, raw_length, itemsize, codec, part):
        """A new uint8 array of the `raw_length` bytes that the frame `stored` decompresses to."""
        import numpy as np

        name = self.codecs[codec]
        try:
            try:
                out = np.empty(raw_length, dtype=np.uint8)  # not zero-filled: pages come as written
            except MemoryError:
                # The claim is within what the stored bytes can hold (bz2 has no tighter bound):
                # a corrupt block is reported as such, a valid one really needs the memory.
                compressors.verify_block(stored, raw_length, itemsize, name, chunk_size=self.chunk_size)
                raise
            compressors.decompress_block(stored, raw_length, itemsize, name, out, chunk_size=self.chunk_size)
        except ValueError as exc:  # also an unknown codec: install it, or register_compressor
            self.fail(part, str(exc))
        return out

    def _read_verified(self, offset, view, checksum, part):
        """Read into `view` and verify its checksum (None: no check), piece by piece.

        Small blocks: each piece is hashed right after it is read, while it is
        still in cache.  Large blocks: two threads read while this one hashes.
        """
        import xxhash

        digest = xxhash.xxh3_64()
        total = len(view)
        fd = self._fileno()
        if total < _OVERLAP_MIN or fd is None:
            self.file.seek(offset)
            for start in range(0, total, _READ_PIECE):
                piece = view[start:start + _READ_PIECE]
                self._fill(piece, offset + start, part)
                digest.update(piece)
        else:
            # Two threads read pieces at their offsets (reads release the GIL and
            # copying from the page cache is CPU work, so two cores share it)
            # while this thread hashes the pieces already read, in order.
            from concurrent.futures import ThreadPoolExecutor

            piece = _PARALLEL_READ_PIECE
            starts = range(0, total, piece)
            with ThreadPoolExecutor(2, thread_name_prefix="joblite-read") as readers:
                reads = [readers.submit(self._pread, fd, view[start:start + piece], offset + start, part)
                         for start in starts]
                for start, read in zip(starts, reads):
                    read.result()
                    digest.update(view[start:start + piece])
        if checksum is not None and digest.intdigest() != checksum:
            self.fail(part, "checksum mismatch")

    def _fileno(self):
        try:
            return self.file.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None

    def _pread(self, fd, piece, offset, part):
        """Read exactly ``len(piece)`` bytes at `offset` of `fd`, leaving the file position alone."""
        done, total = 0, len(piece)
        while done < total:
            count = os.preadv(fd, [piece[done:]], offset + done)
            if not count:
                self.fail(part, f"truncated: {done} of {total} bytes at offset {offset}")
            done += count

    def _fill(self, piece, offset, part):
        """Read exactly ``len(piece)`` bytes, the file being at `offset`."""
        done, total = 0, len(piece)
        while done < total:
            count = self.file.readinto(piece[done:])
            if not count:
                self.fail(part, f"truncated: {done} of {total} bytes at offset {offset}")
            done += count

    def mark_mapped_writable(self, mapfile):
        """Set FLAG_MAPPED_WRITABLE in the header, through `mapfile`, before the file is mapped 'r+'."""
        if self.flags & FLAG_MAPPED_WRITABLE:
            return
        if not mapfile.writable():
            raise PermissionError(errno.EACCES, "mmap_mode='r+' needs a file open for writing", self.where)
        header = bytearray(self._read(0, ALIGNMENT, "header"))
        struct.pack_into("<H", header, 10, self.flags | FLAG_MAPPED_WRITABLE)
        struct.pack_into("<Q", header, ALIGNMENT - 8, _checksum(header[:-8]))
        mapfile.seek(0)
        mapfile.write(header)
        mapfile.flush()
        self.flags |= FLAG_MAPPED_WRITABLE

    def pickle_stream(self):
        stored = self._read(ALIGNMENT, self.pickle_length, "pickle stream")
        if _checksum(stored) != self.pickle_checksum:
            self.fail("pickle stream", "checksum mismatch")
        if self.pickle_codec == 0:
            return stored
        return self._decompressed(stored, self.pickle_raw_length, 1, self.pickle_codec, "pickle stream")

    def block(self, index, mapfile, mmap_mode):
        """The bytes of block `index`: an ``np.memmap`` (O(1)) or a freshly read uint8 array.

        `mapfile` is an open file object of this very file (not its path,
        which another process may have replaced since the header was read).
        """
        import numpy as np

        offset, length, raw_length, codec, itemsize, checksum = self.blocks[index]
        part = f"block {index}"
        if raw_length == 0:
            return np.empty(0, dtype=np.uint8)
        if mmap_mode is not None and codec == 0 and mapfile is not None:
            return np.memmap(mapfile, dtype=np.uint8, mode=mmap_mode, offset=offset, shape=(raw_length,))
        if codec == 0:
            out = np.empty(raw_length, dtype=np.uint8)  # no larger than the file: checked in __init__
            verify = not self.flags & FLAG_MAPPED_WRITABLE
            self._read_verified(offset, memoryview(out), checksum if verify else None, part)
            return out
        stored = self._read(offset, length, part)
        if _checksum(stored) != checksum:
            self.fail(part, "checksum mismatch")
        return self._decompressed(stored, raw_length, itemsize, codec, part)


def _load_container(fileobj, where, mapfile, mmap_mode, admitted, data=None, keep=None):
    container = _Container(fileobj, where, data)
    stream = container.pickle_stream()
    if keep is not None and not container.blocks:
        keep.append(bytes(stream))
    if mmap_mode is not None and any(block[3] for block in container.blocks):
        warnings.warn(f"{where}: compressed arrays cannot be memory-mapped; mmap_mode={mmap_mode!r} "
                      "has no effect on them and they are loaded in memory", UserWarning, stacklevel=4)
    if mmap_mode == "r+" and mapfile is not None and any(block[3] == 0 for block in container.blocks):
        container.mark_mapped_writable(mapfile)
    buffers = (container.block(index, mapfile, mmap_mode) for index in range(len(container.blocks)))
    return _safe_unpickle.load_stream(stream, buffers, admitted, where)


def _check_mmap_mode(mmap_mode):
    if mmap_mode not in MMAP_MODES:
        raise ValueError(f"mmap_mode={mmap_mode!r} is not one of {MMAP_MODES}")
    return "r+" if mmap_mode == "w+" else mmap_mode  # as joblib: never truncate the file


def _load_fileobj(fileobj, where, mapfile, mmap_mode, admitted):
    """Load from `fileobj`; with `mmap_mode`, `mapfile` is `fileobj` itself, a file on disk."""
    if not fileobj.seekable():
        fileobj = io.BytesIO(fileobj.read())
    start = fileobj.tell()
    head = fileobj.read(len(MAGIC))
    fileobj.seek(start)
    if head == MAGIC:
        if start:
            fileobj = io.BytesIO(fileobj.read())  # offsets in the file are from its start
            mapfile = None
        return _load_container(fileobj, where, mapfile, mmap_mode, admitted)
    from . import _joblib_format  # only when needed: most files are joblite's

    if _joblib_format.detect(head) is not None:
        return _joblib_format.load_joblib(fileobj, mmap_mode=mmap_mode, admitted=admitted, where=where)
    raise CorruptFileError(f"{where}: not a joblite or joblib file (it starts with {bytes(head)!r})")


def load(filename, mmap_mode=None, *, allowed=None):
    """Reconstruct an object persisted with :func:`dump` (or ``joblib.dump``).

    Parameters
    ----------
    filename : str, pathlib.Path or file object
        The file to read; a binary file object (also ``io.BytesIO``) is read
        from its current position.
    mmap_mode : {None, 'r', 'r+', 'w+', 'c'}, optional
        With a mode, uncompressed arrays come back as ``np.memmap`` views into
        the file, in O(1) time whatever their size, without reading or
        checksumming them; ``'w+'`` is treated as ``'r+'``, as joblib does.
        Compressed arrays cannot be mapped: they are decompressed, with a
        warning.  Ignored (with a warning) for file objects.  Without a mode,
        each block is read straight into its final array and its checksum
        verified.
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
    FileNotFoundError
        If `filename` does not exist.

    See Also
    --------
    dump, loads
    """
    mmap_mode = _check_mmap_mode(mmap_mode)
    admitted = _safe_unpickle.resolve_allowed(allowed)
    if isinstance(filename, (str, os.PathLike)):
        return load_path(os.fspath(filename), mmap_mode, admitted)
    if not hasattr(filename, "read"):
        raise ValueError(f"filename must be a str, a pathlib.Path or a binary file object, got "
                         f"{reprlib.repr(filename)} (type {type(filename).__name__})")
    if mmap_mode is not None:
        warnings.warn("mmap_mode has no effect when loading from a file object", UserWarning, stacklevel=2)
    where = getattr(filename, "name", None) or repr(filename)
    return _load_fileobj(filename, where, None, None, admitted)


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
        data = os.read(fd, _SMALL_FILE)
        if len(data) < _SMALL_FILE and data[:len(MAGIC)] == MAGIC:
            # The whole file in one read (a short read of a regular file is its
            # end): small containers are what a Memory cache hit loads most often.
            if mmap_mode is None:
                return _load_container(io.BytesIO(data), path, None, None, admitted, data, keep)
            with _named_file(fd, path, writable) as mapfile:
                return _load_container(io.BytesIO(data), path, mapfile, mmap_mode, admitted, data, keep)
        with _named_file(fd, path, writable) as fileobj:
            fileobj.seek(0)
            return _load_fileobj(fileobj, path, fileobj if mmap_mode else None, mmap_mode, admitted)
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


def loads(data, *, allowed=None):
    """Reconstruct an object from the bytes :func:`dumps` returned (see :func:`load`)."""
    admitted = _safe_unpickle.resolve_allowed(allowed)
    return _load_fileobj(io.BytesIO(data), "<bytes>", None, None, admitted)


def verify_file(path):
    """Check a container file written by :func:`dump` without unpickling it.

    The internal API under ``python -m joblite cache verify``: the header,
    footer and block table are validated as :func:`load` does, the checksums
    of the pickle stream and of every block are verified (blocks are read in
    bounded pieces, whatever their size; the blocks of a file mapped with
    ``mmap_mode='r+'`` have no valid checksum and are only read), and the
    pickle stream is walked with :func:`pickletools.genops` to its ``STOP``
    opcode, which imports nothing: no module the file names is needed.

    Parameters
    ----------
    path : str or pathlib.Path
        A joblite container file.

    Returns
    -------
    int
        Bytes checked: the size of the file.

    Raises
    ------
    CorruptFileError
        If the file is truncated, corrupt or not a joblite container; the
        message names the file and the part (header, footer, block table,
        pickle stream, block N).
    OSError
        If the file cannot be read (``FileNotFoundError`` if it is missing).
    """
    import pickletools

    import xxhash

    path = os.fspath(path)
    with open(path, "rb") as fileobj:
        container = _Container(fileobj, path)
        stream = container.pickle_stream()
        buffers, stop = 0, -1
        try:
            for opcode, _, position in pickletools.genops(io.BytesIO(stream)):
                buffers += opcode.name == "NEXT_BUFFER"
                stop = position
        except Exception as exc:  # genops reports a malformed stream in many ways
            container.fail("pickle stream", f"malformed ({type(exc).__name__}: {exc})")
        if stop + 1 != len(stream):
            container.fail("pickle stream", f"{len(stream) - stop - 1} bytes after its STOP opcode")
        if buffers != len(container.blocks):
            container.fail("pickle stream", f"names {buffers} out-of-band buffers for "
                                            f"{len(container.blocks)} blocks")
        for index, (offset, length, _, codec, _, checksum) in enumerate(container.blocks):
            digest = xxhash.xxh3_64()
            for start in range(0, length, _MAX_READ_CHUNK):
                digest.update(container._read(offset + start, min(_MAX_READ_CHUNK, length - start),
                                              f"block {index}"))
            if digest.intdigest() != checksum and (codec or not container.flags & FLAG_MAPPED_WRITABLE):
                container.fail(f"block {index}", "checksum mismatch")
        return fileobj.seek(0, io.SEEK_END)


# -- external blocks: one .npy file per array, next to a pickle stream ------------------
_FOLDER_LOADER = contextvars.ContextVar("joblite_folder_loader", default=None)
_FOLDER_MAGIC = b"\x89JLFOLDR"


class _FolderPickler(_ArrayPickler):
    """Writes each array to its own ``.npy`` file as it meets it."""

    def __init__(self, file, folder, prefix):
        super().__init__(file, protocol=5)
        self._folder = folder
        self._prefix = prefix
        # Each dump's array files have names of their own: a reader of the
        # previous pickle still finds the arrays it names.
        self._token = uuid.uuid4().hex[:12]
        self.files = []

    def reduce_array(self, obj):
        np = self._np
        name = f"{self._prefix}.{self._token}.{len(self.files):04d}.npy"
        path = os.path.join(self._folder, name)
        temporary = _temporary_name(path)
        try:
            with open(temporary, "wb") as fileobj:
                # numpy writes non-contiguous arrays in bounded chunks, and pads
                # the header so that the data is 64-byte aligned.
                np.lib.format.write_array(fileobj, obj, allow_pickle=False)
            os.replace(temporary, path)
        except BaseException:
            _remove_quietly(temporary)
            raise
        self.files.append(path)
        return _rebuild_external, (name,)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rebuild_external(name):
    """Unpickling hook: the array in the ``.npy`` file `name`, relative to the folder being loaded.

    `name` comes from the file: it must name a ``.npy`` file directly in the
    folder, not a symbolic link (which could lead out of it); the file is
    read with ``allow_pickle=False``.
    """
    import numpy as np

    loader = _FOLDER_LOADER.get()
    if loader is None:
        raise CorruptFileError("an external array block can only be loaded by load_folder")
    folder, mmap_mode = loader
    if (not isinstance(name, str) or os.path.basename(name) != name or not name.endswith(".npy")
            or (os.altsep and os.altsep in name)):
        raise CorruptFileError(f"{folder}: external block name {reprlib.repr(name)} is not the name of "
                               "a .npy file in the folder")
    path = os.path.join(folder, name)
    if os.path.islink(path):
        raise CorruptFileError(f"{folder}: external block {name!r} is a symbolic link")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except FileNotFoundError:
        raise CorruptFileError(f"{folder}: external block {name!r} is missing") from None
    except ValueError as exc:
        raise CorruptFileError(f"{path}: not a valid .npy file ({exc})") from None


def dump_folder(value, folder, name="value"):
    """Persist `value` as ``folder/name.pkl`` plus one ``.npy`` file per numpy array.

    The internal API under ``Memory`` entries and the arrays sent to worker
    processes: each array file is a valid ``.npy`` (64-byte aligned data) that
    ``np.load(path, mmap_mode='r')`` can open alone, and the pickle stream
    names the files by their name relative to `folder`.  Every file is
    written to a temporary name and renamed; the pickle file comes last, so
    it exists only once everything it names does.

    Parameters
    ----------
    value : object
        The object to store.
    folder : str or pathlib.Path
        An existing folder.
    name : str, optional
        File name prefix: ``name.pkl`` and ``name.<token>.0000.npy``,
        ``name.<token>.0001.npy``..., where the token is new for each dump;
        array files of earlier dumps under the same name are removed once the
        new pickle file is in place.

    Returns
    -------
    list of str
        The paths written, the pickle file last.

    Raises
    ------
    ValueError
        If `name` is not a plain file name.
    """
    _check_folder_name(name)
    folder = os.fspath(folder)
    stream = io.BytesIO()
    stream.write(_FOLDER_MAGIC + struct.pack("<H", FORMAT_VERSION))
    pickler = _FolderPickler(stream, folder, name)
    try:
        pickler.dump(value)
        path = os.path.join(folder, name + ".pkl")
        temporary = _temporary_name(path)
        try:
            with open(temporary, "wb") as fileobj:
                fileobj.write(stream.getbuffer())
            os.replace(temporary, path)
        except BaseException:
            _remove_quietly(temporary)
            raise
    except BaseException:
        for written in pickler.files:
            _remove_quietly(written)
        raise
    # The arrays of earlier dumps under this name are no longer named by the pickle.
    current = {os.path.basename(written) for written in pickler.files}
    for entry in os.listdir(folder):
        if entry.startswith(name + ".") and entry.endswith(".npy") and entry not in current:
            _remove_quietly(os.path.join(folder, entry))
    return pickler.files + [path]


def _check_folder_name(name):
    if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
        raise ValueError(f"name={name!r} must be a plain file name")


def load_folder(folder, name="value", mmap_mode=None, *, allowed=None):
    """Load what :func:`dump_folder` wrote; arrays are ``np.memmap`` with a `mmap_mode`.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder given to :func:`dump_folder`.
    name : str, optional
        The same `name`.
    mmap_mode : {None, 'r', 'r+', 'w+', 'c'}, optional
        As for :func:`load`.
    allowed : None, {'numpy', 'safe'} or list of str, optional
        As for :func:`load`.

    Returns
    -------
    object

    Raises
    ------
    CorruptFileError
        If the pickle file or an array file is missing, truncated or corrupt.
    UnsafeLoadError
        If the pickle names a global that `allowed` does not admit.
    """
    _check_folder_name(name)
    mmap_mode = _check_mmap_mode(mmap_mode)
    admitted = _safe_unpickle.resolve_allowed(allowed)
    folder = os.fspath(folder)
    path = os.path.join(folder, name + ".pkl")
    try:
        with open(path, "rb") as fileobj:
            data = fileobj.read()
    except FileNotFoundError:
        raise CorruptFileError(f"{path}: missing") from None
    head = _FOLDER_MAGIC + struct.pack("<H", FORMAT_VERSION)
    if data[:len(head)] != head:
        raise CorruptFileError(f"{path}: not a joblite folder pickle of format version {FORMAT_VERSION}")
    token = _FOLDER_LOADER.set((folder, mmap_mode))
    try:
        return _safe_unpickle.load_stream(data[len(head):], (), admitted, path)
    finally:
        _FOLDER_LOADER.reset(token)
