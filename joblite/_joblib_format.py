"""Reading files written by ``joblib.dump`` (joblib >= 0.10), without importing joblib.

File format (as written by joblib 0.10 up to 1.6; facts, not code, taken from
joblib's ``numpy_pickle.py`` and ``compressor.py``):

* The file is one pickle stream, either as is (it starts with the PROTO
  opcode ``0x80`` for protocols >= 2) or compressed as a whole into one
  stream of zlib (``78``), gzip (``1f 8b``), bz2 (``BZh``), lzma "alone"
  (``5d 00``), xz (``fd 37 7a 58 5a 00``) or lz4 frame format
  (``04 22 4d 18``).  Files starting with ``ZF0x`` come from joblib < 0.10.
* Every ``numpy.ndarray``, ``numpy.matrix`` and ``numpy.memmap`` is pickled
  as an instance of ``joblib.numpy_pickle.NumpyArrayWrapper`` whose state
  dict holds ``subclass``, ``shape``, ``order`` ('C' or 'F'), ``dtype``,
  ``allow_mmap`` and, since joblib 1.2, ``numpy_array_alignment_bytes``
  (16).  Right after the BUILD opcode of the wrapper (and after the end of
  the current protocol-4 frame, which joblib forces there) come the array
  bytes, outside the pickle grammar:

  - object dtypes: a complete nested pickle stream (protocol 5) of the array;
  - other dtypes: when the alignment is set, one byte ``p`` (1..16) and ``p``
    bytes ``0xff`` so that the data starts at a multiple of the alignment in
    the (uncompressed) stream; then ``prod(shape) * itemsize`` raw bytes in
    the array's order ('F' for Fortran-contiguous arrays, else 'C'), in the
    dtype's byte order.

* joblib's loader converts arrays to the native byte order when no
  ``mmap_mode`` is given (``ensure_native_byte_order='auto'``); memmaps keep
  the file's byte order.  Memmapping is done only for uncompressed files
  and only for wrappers with ``allow_mmap``; ``'w+'`` is treated as ``'r+'``.

Safety: the unpickler is :class:`joblite._safe_unpickle.SafeUnpickler`, the
one both readers share (the loading policy of ``allowed=``, numpy's
unpickling made memory-safe); its ``find_class`` here first maps joblib's
wrapper names to the inert :class:`_ArrayWrapper` of this module (joblib is
never imported for them).  Reads are bounded by the data really present, so a
corrupt length cannot allocate terabytes.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import reprlib
import warnings

from . import compressors
from ._safe_unpickle import NON_NATIVE as _NON_NATIVE
from ._safe_unpickle import CorruptFileError, SafeUnpickler, UnsafeLoadError

__all__ = [
    "DETECT_BYTES",
    "JoblibFormatError",
    "JoblibLegacyFormatError",
    "detect",
    "load_joblib",
]

#: How many leading bytes :func:`detect` looks at (fewer are fine for most kinds).
DETECT_BYTES = 6

_ZLIB = "zlib"
_GZIP = "gzip"
_BZ2 = "bz2"
_LZMA = "lzma"
_XZ = "xz"
_LZ4 = "lz4"
_PICKLE = "pickle"
_COMPAT = "compat"
COMPRESSIONS = (_ZLIB, _GZIP, _BZ2, _LZMA, _XZ, _LZ4)

# Prefixes of the whole-file compressions joblib writes (its ``compressor.py``).
_PREFIXES = (
    (_GZIP, b"\x1f\x8b\x08"),            # gzip member, deflate method
    (_BZ2, b"BZh"),                      # then the block size digit '1'..'9'
    (_LZMA, b"\x5d\x00"),                # lzma "alone": lc=3 lp=0 pb=2, dict size low byte 0
    (_XZ, b"\xfd7zXZ\x00"),
    (_LZ4, b"\x04\x22\x4d\x18"),         # lz4 frame magic
)

_CHUNK = 1 << 23          # array bytes are read (or decompressed) at most this many at a time
_IN_CHUNK = 1 << 18       # compressed input read at a time
_BUFFER = 1 << 18         # read-ahead buffer over a decompressed stream
_DEFAULT_ALIGNMENT = 16   # joblib's NUMPY_ARRAY_ALIGNMENT_BYTES
_MMAP_MODES = ("r", "r+", "w+", "c")
# Opcodes that can start a pickle of protocol 0 or 1 (they push something without a memo).
_PROTOCOL_0_1_STARTS = frozenset(b"(}])cNIJKMLFGSTUVX")

# Module paths under which joblib (or the copy vendored by scikit-learn < 0.23)
# pickled its array wrappers.
_JOBLIB_MODULES = (
    "joblib.numpy_pickle",
    "joblib.numpy_pickle_compat",
    "sklearn.externals.joblib.numpy_pickle",
    "sklearn.externals.joblib.numpy_pickle_compat",
)
_LEGACY_WRAPPERS = ("NDArrayWrapper", "ZNDArrayWrapper")


class JoblibFormatError(CorruptFileError):
    """A joblib file is truncated, corrupted, or not what its first bytes say.

    Attributes
    ----------
    where : str
        The file (its name, or a description of the file object).
    problem : str
        What is wrong, with the byte offset where it is known.
    """

    def __init__(self, where, problem):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        return type(self), (self.where, self.problem)


class JoblibLegacyFormatError(CorruptFileError):
    """The file was written by joblib < 0.10 (arrays in separate files); not supported."""

    def __init__(self, where):
        self.where = where
        super().__init__(
            f"{where}: written by joblib < 0.10, which stores arrays in separate .npy/.z files "
            "next to the pickle; this older format is not supported: load it with joblib and "
            "dump it again"
        )

    def __reduce__(self):
        return type(self), (self.where,)


def detect(head):
    """Tell what kind of ``joblib.dump`` file starts with the bytes `head`.

    Parameters
    ----------
    head : bytes-like
        The first bytes of the file: :data:`DETECT_BYTES` (6) bytes are
        enough; with fewer, only the kinds whose signature fits are found.

    Returns
    -------
    str or None
        ``'zlib'``, ``'gzip'``, ``'bz2'``, ``'lzma'``, ``'xz'`` or ``'lz4'``
        for a file compressed as a whole (``compress=`` of ``joblib.dump``),
        ``'pickle'`` for an uncompressed pickle stream of protocol 2 or
        higher, ``'compat'`` for the format of joblib < 0.10 (which
        :func:`load_joblib` refuses with a clear message), and None for
        anything else.

    Notes
    -----
    The signatures are those of joblib's ``compressor.py``, a little
    stricter where the format allows: the zlib header must pass its own
    check (``(CMF*256 + FLG) % 31 == 0``, no preset dictionary), gzip must
    use deflate, bz2 must give its block size digit, xz its full 6-byte
    magic and a pickle its protocol byte.  Uncompressed pickles of protocol
    0 or 1 (``joblib.dump(..., protocol=0)``) carry no signature and are not
    detected, although :func:`load_joblib` reads them.
    """
    head = bytes(head[:DETECT_BYTES])
    if len(head) < 2:
        return None
    first, second = head[0], head[1]
    if first == 0x80:
        return _PICKLE if 2 <= second <= pickle.HIGHEST_PROTOCOL else None
    if first == 0x78:
        valid = ((first << 8) | second) % 31 == 0 and not second & 0x20
        return _ZLIB if valid else None
    if head.startswith(b"ZF0x"):
        return _COMPAT
    for name, prefix in _PREFIXES:
        if head.startswith(prefix):
            if name == _BZ2 and len(head) > 3 and not 0x31 <= head[3] <= 0x39:
                return None
            return name
    return None


# --------------------------------------------------------------------------------------------
# Reading: a bounded source over the (decompressed) stream


class _ZlibDecompressor:
    """zlib/gzip decompressobj with the ``needs_input``/``eof`` interface of bz2 and lzma."""

    def __init__(self, wbits):
        import zlib

        self._d = zlib.decompressobj(wbits)
        self._tail = b""
        self._full = False

    @property
    def eof(self):
        return self._d.eof

    @property
    def needs_input(self):
        return not self._tail and not self._full

    def decompress(self, data, max_length):
        if self._tail:
            data = self._tail + data
        out = self._d.decompress(data, max_length)
        self._tail = self._d.unconsumed_tail
        self._full = len(out) == max_length
        return out


def _decompressor(codec):
    if codec == _ZLIB:
        return _ZlibDecompressor(15)
    if codec == _GZIP:
        return _ZlibDecompressor(31)
    if codec == _BZ2:
        import bz2

        return bz2.BZ2Decompressor()
    if codec in (_LZMA, _XZ):
        import lzma

        return lzma.LZMADecompressor(lzma.FORMAT_ALONE if codec == _LZMA else lzma.FORMAT_XZ)
    if codec == _LZ4:
        try:
            import lz4.frame
        except ImportError as exc:
            raise ValueError(
                "this joblib file is compressed with lz4, and the 'lz4' package is not "
                "installed: pip install lz4"
            ) from exc
        return lz4.frame.LZ4FrameDecompressor()
    raise ValueError(f"unknown joblib compression {codec!r}")  # pragma: no cover


class _DecompressingReader(io.RawIOBase):
    """The decompressed bytes of one compressed stream read from `fileobj` (read-only, forward)."""

    def __init__(self, fileobj, codec, where):
        super().__init__()
        self._fp = fileobj
        self._codec = codec
        self._where = where
        self._dec = _decompressor(codec)
        self._pos = 0          # decompressed bytes handed out
        self._consumed = 0     # compressed bytes read
        self._hungry = False   # the last call gave nothing without input: read input first
        # joblib's whole-file compressions are the formats of these codecs: at most
        # max_ratio decompressed bytes per compressed byte (None: no such bound).
        ratio = compressors.get_compressor(codec).max_ratio
        length = _stream_length(fileobj)
        self._most = None if ratio is None or length is None else ratio * length

    def most_left(self):
        """At most how many decompressed bytes are still to come; None if unknown."""
        return None if self._most is None else max(self._most - self._pos, 0)

    def readable(self):
        return True

    def tell(self):
        return self._pos

    def readinto(self, buffer):
        with memoryview(buffer) as view, view.cast("B") as out:
            want = min(len(out), _CHUNK)
            if want == 0:
                return 0
            while not self._dec.eof:
                if self._hungry or self._dec.needs_input:
                    data = self._fp.read(_IN_CHUNK)
                    if not data:
                        raise JoblibFormatError(
                            self._where,
                            f"the {self._codec} stream ends after {self._consumed} compressed "
                            f"bytes ({self._pos} decompressed), before its end marker: the file "
                            "is truncated",
                        )
                    self._consumed += len(data)
                else:
                    data = b""
                try:
                    chunk = self._dec.decompress(data, want)
                except Exception as exc:
                    raise JoblibFormatError(
                        self._where,
                        f"corrupt {self._codec} data within the first {self._consumed} "
                        f"compressed bytes ({type(exc).__name__}: {exc})",
                    ) from exc
                if chunk:
                    self._hungry = False
                    size = len(chunk)
                    out[:size] = chunk
                    self._pos += size
                    return size
                self._hungry = not data
            return 0


class _Source:
    """What the unpickler reads: the (decompressed) stream, with bounded reads.

    ``read(n)`` never allocates more than the data that is really there, so a
    corrupt length in the stream cannot ask for terabytes up front.
    """

    def __init__(self, fileobj, size, where, compressed=None):
        self._f = fileobj
        self.readline = fileobj.readline
        self.tell = fileobj.tell
        self.size = size              # total size of an uncompressed file, if known
        self.where = where
        self.compressed = compressed  # the _DecompressingReader under `fileobj`, if any

    def remaining(self):
        if self.size is None:
            return None
        return max(self.size - self._f.tell(), 0)

    def most_remaining(self):
        """At most how many bytes are left to read; None if unknown (exact when uncompressed)."""
        if self.compressed is None:
            return self.remaining()
        most = self.compressed.most_left()
        return None if most is None else most + _BUFFER   # and what the read-ahead buffer holds

    def skip_exact(self, n, what):
        """Read and drop `n` bytes, at most ``_CHUNK`` at a time."""
        while n > 0:
            piece = self._f.read(min(n, _CHUNK))
            if not piece:
                raise JoblibFormatError(
                    self.where, f"the file ends in the middle of {what} (truncated or corrupt)")
            n -= len(piece)

    def read(self, n):
        if n <= _CHUNK:
            return self._f.read(n)
        left = self.remaining()
        if left is not None:
            return self._f.read(min(n, left))
        parts = []
        while n > 0:
            part = self._f.read(min(n, _CHUNK))
            if not part:
                break
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def read_exact(self, n, what):
        data = self.read(n)
        if len(data) != n:
            raise JoblibFormatError(
                self.where, f"the file ends in the middle of {what} (truncated)")
        return data

    def readinto_exact(self, view, what):
        """Fill the byte memoryview `view` from the stream, at most ``_CHUNK`` bytes at a time."""
        readinto = getattr(self._f, "readinto", None)
        total = len(view)
        done = 0
        while done < total:
            piece = view[done:done + _CHUNK]
            if readinto is not None:
                got = readinto(piece)
            else:
                data = self._f.read(len(piece))
                got = len(data)
                piece[:got] = data
            if not got:
                raise JoblibFormatError(
                    self.where,
                    f"the file ends in the middle of {what}: {done} of {total} bytes present "
                    "(truncated)",
                )
            done += got

    def seek(self, position):
        self._f.seek(position)


def _stream_length(fileobj):
    """Bytes from the position of `fileobj` to its end; None if unknown."""
    size = _file_size(fileobj)
    try:
        return None if size is None else max(size - fileobj.tell(), 0)
    except (AttributeError, OSError, ValueError):
        return None


def _has_descriptor(fileobj):
    try:
        fileobj.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


def _file_size(fileobj):
    try:
        return os.fstat(fileobj.fileno()).st_size
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    getbuffer = getattr(fileobj, "getbuffer", None)
    if getbuffer is not None:
        with getbuffer() as view:
            return view.nbytes
    try:
        if fileobj.seekable():
            here = fileobj.tell()
            end = fileobj.seek(0, io.SEEK_END)
            fileobj.seek(here)
            return end
    except (AttributeError, OSError, ValueError):
        pass
    return None


# --------------------------------------------------------------------------------------------
# The unpickler


class _ArrayWrapper:
    """Stands in for joblib's ``NumpyArrayWrapper`` during unpickling: it only holds the state.

    It has no behaviour that the file can trigger: BUILD stores the state
    dict, and the unpickler turns the instance into the array right away.
    """

    __slots__ = ("state",)

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return "<joblib NumpyArrayWrapper placeholder>"


def _wrapper_global(module, name, where):
    """joblib's array wrapper as the inert :class:`_ArrayWrapper`; None for any other name."""
    if module in _JOBLIB_MODULES:
        if name == "NumpyArrayWrapper":
            return _ArrayWrapper
        if name in _LEGACY_WRAPPERS:
            raise JoblibLegacyFormatError(where)
    return None


class _InnerUnpickler(SafeUnpickler):
    """Reads the nested pickle stream of an object-dtype array, with the outer rules for globals."""

    def __init__(self, source, outer):
        super().__init__(source, admitted=outer.admitted, where=outer.where)

    def resolve(self, module, name):
        return _wrapper_global(module, name, self.where) or super().resolve(module, name)


class _JoblibUnpickler(SafeUnpickler):
    """The shared checked unpickler (the C one cannot intercept BUILD), expanding array wrappers."""

    dispatch = SafeUnpickler.dispatch.copy()

    def __init__(self, source, *, mapfile, mmap_mode, ensure_native, admitted):
        super().__init__(source, admitted=admitted, where=source.where)
        self.source = source
        self.mapfile = mapfile
        self.mmap_mode = mmap_mode
        self.ensure_native = ensure_native

    def resolve(self, module, name):
        return _wrapper_global(module, name, self.where) or super().resolve(module, name)

    # -- BUILD: a finished wrapper becomes its array -----------------------------------------

    def load_build(self):
        SafeUnpickler.load_build(self)
        if type(self.stack[-1]) is _ArrayWrapper:
            self.stack[-1] = self._read_array(self.stack[-1])

    dispatch[pickle.BUILD[0]] = load_build

    def _fail(self, problem):
        raise JoblibFormatError(self.where, problem)

    def _wrapper_fields(self, wrapper):
        np = self.np
        state = getattr(wrapper, "state", None)
        if not isinstance(state, dict):
            self._fail(f"array wrapper near byte {self.source.tell()} has no state dict")
        try:
            subclass = state["subclass"]
            shape = state["shape"]
            order = state["order"]
            dtype = state["dtype"]
        except KeyError as exc:
            self._fail(f"array wrapper near byte {self.source.tell()} lacks the field {exc}")
        if not (isinstance(subclass, type) and issubclass(subclass, np.ndarray)):
            self._fail(f"array wrapper: subclass {reprlib.repr(subclass)} is not a numpy.ndarray "
                       "subclass")
        if not isinstance(dtype, np.dtype):
            self._fail(f"array wrapper: dtype is a {type(dtype).__name__}, not a numpy.dtype")
        if type(shape) is not tuple or not all(
                type(n) is int and n >= 0
                or isinstance(n, np.integer) and not isinstance(n, bool) and n >= 0
                for n in shape):
            self._fail(f"array wrapper: shape {reprlib.repr(shape)} is not a tuple of "
                       "non-negative integers")
        if order != "C" and order != "F":
            self._fail(f"array wrapper: order {reprlib.repr(order)} is neither 'C' nor 'F'")
        shape = tuple(map(int, shape))
        allow_mmap = bool(state.get("allow_mmap", False))
        alignment = state.get("numpy_array_alignment_bytes")  # absent before joblib 1.2
        if alignment is not None and (not isinstance(alignment, int) or isinstance(alignment, bool)
                                      or not 1 <= alignment <= 255):
            self._fail(f"array wrapper: alignment {reprlib.repr(alignment)} is not an integer "
                       "in 1..255")
        return subclass, shape, order, dtype, allow_mmap, alignment

    def _at_frame_end(self):
        # joblib ends the protocol-4 frame right after the wrapper; the array data follow
        # outside any frame, so read from the file once the frame is used up.
        frame = getattr(getattr(self, "_unframer", None), "current_frame", None)
        if frame is not None:
            if frame.read(1):
                self._fail(
                    f"array data near byte {self.source.tell()} do not start at the end of a "
                    "pickle frame: the file is corrupt or was not written by joblib"
                )
            self._unframer.current_frame = None

    def _skip_padding(self, alignment):
        pad = self.source.read_exact(1, "the padding before an array")[0]
        if pad > alignment:
            self._fail(
                f"array padding of {pad} bytes near byte {self.source.tell()} exceeds the "
                f"alignment of {alignment}"
            )
        if pad and self.source.read_exact(pad, "the padding before an array") != b"\xff" * pad:
            self._fail(f"array padding before byte {self.source.tell()} is not 0xff bytes")
        return 1 + pad

    def _read_array(self, wrapper):
        np = self.np
        subclass, shape, order, dtype, allow_mmap, alignment = self._wrapper_fields(wrapper)
        self._at_frame_end()
        memmapped = False
        if dtype.hasobject:
            array = self._read_object_array(shape)
        elif self.mmap_mode is not None and allow_mmap:
            array = self._map_array(shape, order, dtype, alignment)
            memmapped = True
        else:
            array = self._read_into(shape, order, dtype, alignment)
        if (self.ensure_native and not memmapped and not dtype.hasobject
                and _byte_order_mismatch(dtype)):
            # joblib's _ensure_native_byte_order, in place: the array is ours alone.
            array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
        if subclass is not np.ndarray and subclass is not np.memmap and type(array) is not subclass:
            array = array.view(subclass)
        return array

    def _read_object_array(self, shape):
        np = self.np
        inner = _InnerUnpickler(self.source, self)
        array = inner.load()
        if not isinstance(array, np.ndarray) or not array.dtype.hasobject:
            self._fail(
                f"the nested pickle of an object array ending near byte {self.source.tell()} "
                f"holds a {type(array).__name__}, not an object array"
            )
        if array.shape != shape:
            self._fail(
                f"the object array ending near byte {self.source.tell()} has shape "
                f"{array.shape}, its wrapper says {shape}"
            )
        return array

    def _read_into(self, shape, order, dtype, alignment):
        np = self.np
        source = self.source
        if alignment is not None:
            self._skip_padding(alignment)
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        most = source.most_remaining()
        if most is not None and nbytes > most:
            if source.compressed is None:
                left = f"only {most} remain (truncated or corrupt file)"
            else:
                left = (f"the rest of the {source.compressed._codec} stream can decompress to at most "
                        f"{most} (corrupt file)")
            self._fail(f"an array of shape {shape} and dtype {dtype} needs {nbytes} bytes at "
                       f"{'decompressed ' if source.compressed else ''}byte {source.tell()}, but {left}")
        try:
            flat = np.empty(count, dtype=dtype)
        except MemoryError:
            # Within what the stream can hold (bz2 has no tighter bound): a stream without
            # those bytes is corrupt; a valid one really needs more memory than there is
            # (reported as a JoblibFormatError caused by this MemoryError).
            source.skip_exact(nbytes, f"an array of {nbytes} bytes")
            raise
        except ValueError as exc:
            self._fail(f"cannot make an array of shape {shape} and dtype {dtype}: {exc}")
        if nbytes:
            with memoryview(flat.view(np.uint8).reshape(-1)) as view:
                source.readinto_exact(view, f"an array of {nbytes} bytes")
        if order == "F":
            return flat.reshape(shape[::-1]).transpose()
        return flat.reshape(shape)

    def _map_array(self, shape, order, dtype, alignment):
        np = self.np
        source = self.source
        start = source.tell()
        offset = start + (self._skip_padding(alignment) if alignment is not None else 0)
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes > source.size:
            self._fail(
                f"an array of shape {shape} and dtype {dtype} needs {nbytes} bytes at byte "
                f"{offset}, but the file has {source.size} bytes (truncated or corrupt file)"
            )
        if self.mmap_mode == "w+":
            self.mmap_mode = "r+"   # as joblib: never truncate the file
        # Mapped from the open file the stream is read from, never from its path:
        # a file replaced meanwhile (temporary + rename) cannot mix two versions.
        array = np.memmap(self.mapfile, dtype=dtype, mode=self.mmap_mode, offset=offset,
                          shape=shape, order=order)
        source.seek(offset + nbytes)
        if alignment is None and start % _DEFAULT_ALIGNMENT:
            warnings.warn(
                f"the memmapped array at byte {offset} of {self.where} is not aligned to "
                f"{_DEFAULT_ALIGNMENT} bytes (file written by joblib < 1.2); some libraries "
                "(BLAS, PyTorch) may crash on it: dump it again to align it",
                UserWarning,
                stacklevel=2,
            )
        return array


def _byte_order_mismatch(dtype):
    """joblib's rule: swap when the dtype, or every field of a structured dtype, is non-native."""
    if dtype.byteorder == _NON_NATIVE:
        return True
    return bool(
        dtype.byteorder == "|"
        and dtype.fields
        and all(field[0].byteorder == _NON_NATIVE for field in dtype.fields.values())
    )


# --------------------------------------------------------------------------------------------
# Entry point


def _describe(fileobj, filename):
    if filename is not None:
        return os.fspath(filename)
    name = getattr(fileobj, "name", None)
    if isinstance(name, (str, bytes, os.PathLike)):
        return os.fsdecode(name)
    return f"<{type(fileobj).__name__}>"


def _peek_head(fileobj, where):
    try:
        if fileobj.seekable():
            start = fileobj.tell()
            head = fileobj.read(DETECT_BYTES)
            fileobj.seek(start)
            return head
    except (AttributeError, OSError):
        pass
    peek = getattr(fileobj, "peek", None)
    if peek is not None:
        return peek(DETECT_BYTES)[:DETECT_BYTES]
    raise ValueError(f"{where}: a joblib file must be read from a seekable or peekable file object")


def load_joblib(fileobj, filename=None, mmap_mode=None, admitted=None, *,
                ensure_native_byte_order="auto", where=None):
    """Read an object written by ``joblib.dump`` (joblib >= 0.10) from a binary file object.

    Parameters
    ----------
    fileobj : binary file object
        Open for reading and positioned at the start of the joblib dump
        (an open file, ``io.BytesIO``...).
    filename : str or os.PathLike, optional
        The path of that file, to name it in messages.
    mmap_mode : {None, 'r', 'r+', 'w+', 'c'}, optional
        As in ``joblib.load``: arrays of an uncompressed file come back as
        ``np.memmap`` views into the file (``'w+'`` is treated as ``'r+'``
        so that the file is never truncated).  They are mapped from
        `fileobj` itself (its file descriptor; for ``'r+'`` it must be open
        for writing), so that they come from the file the pickle stream
        was read from even if its path is replaced meanwhile.  Compressed
        files and file objects without a file descriptor (``io.BytesIO``)
        cannot be mapped: a ``UserWarning`` says so and the arrays are read
        into memory.  Object arrays are always read into memory.
    admitted : frozenset of str, optional
        The result of :func:`joblite._safe_unpickle.resolve_allowed`; None (the
        default) is full pickle.  joblib's array wrappers are always
        admitted, as inert placeholders of this module.
    ensure_native_byte_order : bool or 'auto', optional
        As in ``joblib.load``: convert arrays read into memory to the native
        byte order.  ``'auto'`` (default) means "when `mmap_mode` is None";
        memmaps always keep the file's byte order.
    where : str, optional
        How messages name the file; by default `filename`, else the name of
        `fileobj`, else its type.

    Returns
    -------
    object
        The object that was dumped, with its arrays (``numpy.matrix`` ones as
        ``numpy.matrix``, ``numpy.memmap`` ones as plain arrays unless
        memmapped).

    Raises
    ------
    JoblibFormatError
        (a ``ValueError``) if the file is truncated or corrupt, if it is not
        a joblib file, or if an object in it cannot be rebuilt (the original
        exception is chained as ``__cause__``).
    JoblibLegacyFormatError
        (a ``ValueError``) for files of joblib < 0.10.
    UnsafeLoadError
        If the file names a global that `admitted` does not admit; nothing
        named by it has been imported or run.
    ValueError
        For a bad `mmap_mode`, or an lz4 file without the ``lz4`` package.

    Notes
    -----
    Differences from ``joblib.load`` (1.6): ``numpy.matrix`` arrays come back
    as matrices (joblib under numpy 2 returns plain arrays); a compressed
    stream is read to its end, so that its checksum and end marker are
    verified; numpy dtypes are rebuilt through numpy's constructors and
    array states are checked before numpy sees them, which refuses crafted
    streams (a state applied twice, an object array with too few items)
    that would crash numpy, and could refuse a dtype of a third-party
    package whose pickled form is not numpy's.  Protocol 0 and 1 dumps are
    read too, although :func:`detect` does not recognise them.
    """
    if mmap_mode is not None and mmap_mode not in _MMAP_MODES:
        raise ValueError(f"mmap_mode={mmap_mode!r} is not one of None, 'r', 'r+', 'w+', 'c'")
    if ensure_native_byte_order == "auto":
        ensure_native_byte_order = mmap_mode is None
    elif ensure_native_byte_order and mmap_mode is not None:
        raise ValueError(
            "ensure_native_byte_order=True cannot be used with mmap_mode="
            f"{mmap_mode!r}: memmaps keep the byte order of the file"
        )
    if where is None:
        where = _describe(fileobj, filename)
    head = _peek_head(fileobj, where)
    kind = detect(head)
    if kind == _COMPAT:
        raise JoblibLegacyFormatError(where)
    if kind is None and (not head or head[0] not in _PROTOCOL_0_1_STARTS):
        # Not a compression signature and not a protocol >= 2 pickle.  A protocol 0/1
        # pickle (no signature, but an opcode that can start a pickle) is still tried.
        raise JoblibFormatError(where, f"not a joblib file (it starts with {bytes(head)!r})")

    if kind in COMPRESSIONS:
        if mmap_mode is not None:
            warnings.warn(
                f'mmap_mode "{mmap_mode}" is not compatible with compressed file {where}. '
                f'"{mmap_mode}" flag will be ignored.',
                UserWarning,
                stacklevel=2,
            )
        raw = _DecompressingReader(fileobj, kind, where)
        source = _Source(io.BufferedReader(raw, buffer_size=_BUFFER), None, where, raw)
        mmap_mode = None
    else:
        if isinstance(fileobj, io.RawIOBase):
            fileobj = io.BufferedReader(fileobj, buffer_size=_BUFFER)
        if mmap_mode is not None and not _has_descriptor(fileobj):
            warnings.warn(
                f'In memory persistence is not compatible with mmap_mode "{mmap_mode}" flag '
                f"passed ({where}). mmap_mode option will be ignored.",
                UserWarning,
                stacklevel=2,
            )
            mmap_mode = None
        source = _Source(fileobj, _file_size(fileobj), where)

    unpickler = _JoblibUnpickler(
        source,
        mapfile=fileobj if mmap_mode is not None else None,
        mmap_mode=mmap_mode,
        ensure_native=bool(ensure_native_byte_order),
        admitted=admitted,
    )
    try:
        value = unpickler.load()
        if source.compressed:
            # Read the compressed stream to its end so that its check (adler32, CRC,
            # xxh32 of lz4 when present) and end marker are verified: a file cut in its
            # last bytes is reported, not silently accepted.
            while source.read(_CHUNK):
                pass
        return value
    except (JoblibFormatError, JoblibLegacyFormatError, UnsafeLoadError):
        raise
    except OSError:
        # Not the file's content (decompression errors are JoblibFormatError already):
        # reading the file failed, or memory-mapping it was not permitted (mmap_mode='r+'
        # on a read-only file) -- as joblib, let the system error through.
        raise
    except Exception as exc:
        try:
            at = f" near {'decompressed ' if source.compressed else ''}byte {source.tell()}"
        except Exception:  # pragma: no cover - tell() of a broken stream
            at = ""
        if isinstance(exc, EOFError):
            problem = f"the pickle stream ends before its STOP opcode{at}: the file is truncated"
        elif isinstance(exc, UnicodeDecodeError):
            problem = (f"cannot decode a string{at} (a corrupt file, or a pickle written by "
                       "Python 2, which is not supported)")
        else:
            detail = str(exc)
            if len(detail) > 300:
                detail = detail[:300] + "..."
            problem = (f"cannot be unpickled{at} (truncated or corrupt file, or an object in it "
                       f"failed to rebuild): {type(exc).__name__}: {detail}")
        raise JoblibFormatError(where, problem) from exc
