"""What kind of stream a joblib file is, and reading it: whole-file decompression, bounded reads.

joblib compresses a file as a whole (zlib, gzip, bz2, lzma, xz or lz4 frame
format) or not at all; :func:`detect` tells which from the first bytes, and
:func:`open_source` gives the :class:`Source` the unpickler reads, whose
reads never allocate more than the data that is really there.
"""

import io
import os
import pickle
import stat

from .. import compressors
from .errors import JoblibFormatError

__all__ = [
    "DETECT_BYTES",
    "COMPRESSIONS",
    "COMPAT",
    "PROTOCOL_0_1_STARTS",
    "detect",
    "is_raw_file",
    "open_source",
    "DecompressingReader",
    "Source",
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
#: What :func:`detect` says of a file of joblib < 0.10.
COMPAT = "compat"
#: The whole-file compressions :func:`detect` can name.
COMPRESSIONS = (_ZLIB, _GZIP, _BZ2, _LZMA, _XZ, _LZ4)

# Prefixes of the whole-file compressions joblib writes (its ``compressor.py``).
_PREFIXES = (
    (_GZIP, b"\x1f\x8b\x08"),  # gzip member, deflate method
    (_BZ2, b"BZh"),  # then the block size digit '1'..'9'
    (_LZMA, b"\x5d\x00"),  # lzma "alone": lc=3 lp=0 pb=2, dict size low byte 0
    (_XZ, b"\xfd7zXZ\x00"),
    (_LZ4, b"\x04\x22\x4d\x18"),  # lz4 frame magic
)

_CHUNK = 1 << 23  # array bytes are read (or decompressed) at most this many at a time
_IN_CHUNK = 1 << 18  # compressed input read at a time
_BUFFER = 1 << 18  # read-ahead buffer over a decompressed stream
#: Opcodes that can start a pickle of protocol 0 or 1 (they push something without a memo).
PROTOCOL_0_1_STARTS = frozenset(b"(}])cNIJKMLFGSTUVX")


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
        :func:`joblite._joblib_format.load_joblib` refuses with a clear message), and None for
        anything else.

    Notes
    -----
    The signatures are those of joblib's ``compressor.py``, a little
    stricter where the format allows: the zlib header must pass its own
    check (``(CMF*256 + FLG) % 31 == 0``, no preset dictionary), gzip must
    use deflate, bz2 must give its block size digit, xz its full 6-byte
    magic and a pickle its protocol byte.  Uncompressed pickles of protocol
    0 or 1 (``joblib.dump(..., protocol=0)``) carry no signature and are not
    detected, although :func:`joblite._joblib_format.load_joblib` reads them.
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
        return COMPAT
    for name, prefix in _PREFIXES:
        if head.startswith(prefix):
            if name == _BZ2 and len(head) > 3 and not 0x31 <= head[3] <= 0x39:
                return None
            return name
    return None


# -- reading: a bounded source over the (decompressed) stream ----------------------------
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
                "this joblib file is compressed with lz4, and the 'lz4' package is not installed: pip install lz4"
            ) from exc
        return lz4.frame.LZ4FrameDecompressor()
    raise ValueError(f"unknown joblib compression {codec!r}")  # pragma: no cover


class DecompressingReader(io.RawIOBase):
    """The decompressed bytes of one compressed stream read from `fileobj` (read-only, forward)."""

    def __init__(self, fileobj, codec, where):
        super().__init__()
        self._fp = fileobj
        self.codec = codec
        self._where = where
        self._dec = _decompressor(codec)
        self._pos = 0  # decompressed bytes handed out
        self._consumed = 0  # compressed bytes read
        self._hungry = False  # the last call gave nothing without input: read input first
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
                            f"the {self.codec} stream ends after {self._consumed} compressed "
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
                        f"corrupt {self.codec} data within the first {self._consumed} "
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


class Source:
    """What the unpickler reads: the (decompressed) stream, with bounded reads.

    ``read(n)`` never allocates more than the data that is really there, so a
    corrupt length in the stream cannot ask for terabytes up front.
    """

    def __init__(self, fileobj, size, where, compressed=None):
        self.file = fileobj
        self.readline = fileobj.readline
        self.tell = fileobj.tell
        self.size = size  # total size of an uncompressed file, if known
        self.where = where
        self.compressed = compressed  # the DecompressingReader under `fileobj`, if any

    def mappable(self):
        """Whether arrays can be memory-mapped from the file: uncompressed, with a file descriptor."""
        return self.compressed is None and _has_descriptor(self.file)

    def drain(self):
        """Read a compressed stream to its end, so that its check and end marker are verified."""
        if self.compressed is not None:
            while self.read(_CHUNK):
                pass

    def remaining(self):
        if self.size is None:
            return None
        return max(self.size - self.file.tell(), 0)

    def most_remaining(self):
        """At most how many bytes are left to read; None if unknown (exact when uncompressed)."""
        if self.compressed is None:
            return self.remaining()
        most = self.compressed.most_left()
        return None if most is None else most + _BUFFER  # and what the read-ahead buffer holds

    def skip_exact(self, n, what):
        """Read and drop `n` bytes, at most ``_CHUNK`` at a time."""
        while n > 0:
            piece = self.file.read(min(n, _CHUNK))
            if not piece:
                raise JoblibFormatError(self.where, f"the file ends in the middle of {what} (truncated or corrupt)")
            n -= len(piece)

    def read(self, n):
        if n <= _CHUNK:
            return self.file.read(n)
        left = self.remaining()
        if left is not None:
            return self.file.read(min(n, left))
        parts = []
        while n > 0:
            part = self.file.read(min(n, _CHUNK))
            if not part:
                break
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def read_exact(self, n, what):
        data = self.read(n)
        if len(data) != n:
            raise JoblibFormatError(self.where, f"the file ends in the middle of {what} (truncated)")
        return data

    def readinto_exact(self, view, what):
        """Fill the byte memoryview `view` from the stream, at most ``_CHUNK`` bytes at a time."""
        readinto = getattr(self.file, "readinto", None)
        total = len(view)
        done = 0
        while done < total:
            piece = view[done : done + _CHUNK]
            if readinto is not None:
                got = readinto(piece)
            else:
                data = self.file.read(len(piece))
                got = len(data)
                piece[:got] = data
            if not got:
                raise JoblibFormatError(
                    self.where,
                    f"the file ends in the middle of {what}: {done} of {total} bytes present (truncated)",
                )
            done += got

    def seek(self, position):
        self.file.seek(position)


def _stream_length(fileobj):
    """Bytes from the position of `fileobj` to its end; None if unknown."""
    size = _file_size(fileobj)
    try:
        return None if size is None else max(size - fileobj.tell(), 0)
    except (AttributeError, OSError, ValueError):
        return None


def is_raw_file(fileobj):
    """Whether `fileobj` reads an OS file's bytes as they are: ``io.FileIO``, buffered or not.

    ``gzip.GzipFile``, ``bz2.BZ2File`` and ``lzma.LZMAFile`` have a
    ``fileno()`` too, the descriptor of their compressed file: neither its
    size nor its bytes are those that the object reads.
    """
    return isinstance(getattr(fileobj, "raw", fileobj), io.FileIO)


def _has_descriptor(fileobj):
    if not is_raw_file(fileobj):
        return False
    try:
        fileobj.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


def _is_decompressing(fileobj):
    """Whether `fileobj` is a file object of the standard library that decompresses what it reads."""
    import bz2
    import gzip
    import lzma

    return isinstance(fileobj, (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile))


def _file_size(fileobj):
    """The size of what `fileobj` holds, if known cheaply; None for a pipe, a compressed file object..."""
    if _has_descriptor(fileobj):
        status = os.fstat(fileobj.fileno())
        return status.st_size if stat.S_ISREG(status.st_mode) else None
    if isinstance(fileobj, io.BytesIO):
        with fileobj.getbuffer() as view:
            return view.nbytes
    if _is_decompressing(fileobj):
        return None  # seeking to its end would decompress it all, and again to come back
    try:
        if fileobj.seekable():
            here = fileobj.tell()
            end = fileobj.seek(0, io.SEEK_END)
            fileobj.seek(here)
            return end
    except (AttributeError, OSError, ValueError):
        pass
    return None


def open_source(fileobj, kind, where):
    """The :class:`Source` of the pickle stream of a joblib file of `kind` (see :func:`detect`).

    `fileobj` is positioned at the start of the file; a file compressed as a
    whole is decompressed as it is read.
    """
    if kind in COMPRESSIONS:
        raw = DecompressingReader(fileobj, kind, where)
        return Source(io.BufferedReader(raw, buffer_size=_BUFFER), None, where, raw)
    if isinstance(fileobj, io.RawIOBase):
        fileobj = io.BufferedReader(fileobj, buffer_size=_BUFFER)
    return Source(fileobj, _file_size(fileobj), where)
