"""Compression codecs and the chunked, byte-shuffled block format.

A *block* (the bytes of one array, or the pickle stream) is compressed in
independent chunks of about ``CHUNK_SIZE`` bytes, so that two threads can share
the work and a reader can decompress straight into the final array with
bounded scratch memory.  Every chunk is first byte-shuffled by the item size
of the data (Blosc's shuffle: byte ``j`` of every item goes to plane ``j``),
then compressed by a codec.  Shuffling groups the bytes that vary slowly
(exponents, the high bytes of small integers), so every codec finds longer
repeats, lz4 most of all: lz4 has no entropy coder, and without the shuffle
it cannot use a mostly-constant byte that recurs every 8 bytes.  An item size
of 1 (the pickle stream, ``uint8`` data) disables the shuffle.

The compressed block, all integers little-endian (``joblite._impl.codec``
writes and validates it)::

    u32 n_chunks                 ceil(raw_length / chunk length), 0 if empty
    u32 compressed_size          n_chunks times
    compressed chunks            back to back, in order

The frame does not name its codec, item size or chunk length: the container
records them, with the raw length, and passes them back to `decompress_block`.
The chunk length is ``chunk_size`` rounded down to a multiple of the item size
(`chunk_length`); chunks are compressed independently, so the result is
deterministic: the same input, codec, level, item size and chunk size give the
same bytes with any number of threads and with either kernel twin.

Codecs are looked up by name in a registry (`register_compressor`); their
modules (lz4, bz2, lzma, zstandard) are imported on first use.

A reader allocates a block's raw length before it decompresses into it, so
that length is checked against the stored bytes first (`max_raw_length`): each
chunk takes a 4-byte size and at least one byte and holds at most one chunk
length, and a codec with a known worst case (``max_ratio``) cannot expand one
stored byte into more than that many.  The built-in bounds and their sources:

======  =========  ==============================================================
codec   max_ratio  source
======  =========  ==============================================================
lz4     255        lz4 block format: past the first 15, each byte of a match
                   length adds at most 255 output bytes
zlib    1032       zlib's technical details (zlib.net/zlib_tech.html): a 258-byte
gzip               match coded in 2 bits is deflate's best case
lzma    7100       LZMA range coder: a probability adapts by 1/32 and never
xz                 exceeds 2017/2048, so a coded bit costs at least 0.022 bits,
                   and a 273-byte match (the longest) takes 14 coded bits:
                   at most 7091 bytes out per byte in (16 MiB of zeros: 6837)
zstd    32768      RFC 8878: a 4-byte RLE block (3-byte header, 1 byte) decodes
                   to at most 128 KiB, the largest block
bz2     none       its run-length stages hold 16 MiB of zeros in 45 bytes;
                   only the chunk length bounds it
======  =========  ==============================================================
"""
import concurrent.futures
import importlib.util
import operator
import os
import sys
import threading
from collections import deque

from . import _impl

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_COMPRESSOR",
    "MAX_CHUNK_SIZE",
    "CompressorBase",
    "chunk_length",
    "compress_block",
    "compressor_names",
    "decompress_block",
    "frame_header",
    "get_compressor",
    "iter_compressed_chunks",
    "max_raw_length",
    "parse_compress",
    "register_compressor",
    "verify_block",
]

CHUNK_SIZE = 1 << 20
"""Default uncompressed chunk length (bytes): fits in L2, and 256 chunks per 256 MiB."""

MAX_CHUNK_SIZE = 1 << 30
"""Largest chunk length (bytes): every codec's worst-case output still fits the frame's u32 sizes."""

MAX_WORKERS = 64

DEFAULT_COMPRESSOR = "lz4"

# the kernel twin (a module attribute, so that tests can swap in the other twin)
_codec = _impl.codec


# -- codecs -----------------------------------------------------------------------------
class CompressorBase:
    """A block codec: compresses one chunk of bytes into one self-contained stream.

    Subclass it, set the class attributes, implement `compress` and
    `decompress`, and register an instance with `register_compressor`.  Both
    methods are called from several threads at once (each call with its own
    data), so they must not share mutable state; they should release the GIL
    while they work, or the second thread brings no speed.

    Attributes
    ----------
    name : str
        Registry name, recorded in files; must equal the name it is
        registered under.
    default_level : int
        Level used when only the name is given (``compress='name'``).
    levels : range
        Valid levels; 0 is never one of them (``compress`` level 0 means no
        compression, as in joblib).
    max_ratio : int or None
        The most bytes that one stored byte of a stream can decompress to,
        at worst (not on typical data).  Readers refuse a block that claims
        more than this times its stored bytes before they allocate memory
        for it (`max_raw_length`); a bound that is too small makes valid
        files unreadable.  None (the default): no bound but the chunk length.
    """

    name = None
    default_level = None
    levels = range(1, 10)
    max_ratio = None

    def compress(self, data, level):
        """Compress one chunk.

        Parameters
        ----------
        data : bytes-like
            The (shuffled) chunk, C-contiguous; not to be kept after returning.
        level : int
            A level in `levels`.

        Returns
        -------
        bytes
            The compressed stream; it must not depend on anything but `data`
            and `level` (no time stamps), so that files are reproducible.
        """
        raise NotImplementedError(f"{type(self).__name__}.compress")

    def decompress(self, data, raw_length):
        """Decompress one chunk.

        Parameters
        ----------
        data : bytes-like
            A stream made by `compress`, or corrupted bytes.
        raw_length : int
            Length the chunk had before compression (bytes).

        Returns
        -------
        bytes-like
            The chunk; on corrupted input, raise any exception (it is
            reported as a ``ValueError``) or return the wrong length.  To
            bound memory on hostile input, do not produce much more than
            `raw_length` bytes.
        """
        raise NotImplementedError(f"{type(self).__name__}.decompress")


def _finish_stream(decompressor, data, raw_length):
    """Run a stdlib-style streaming decompressor; at most ``raw_length + 1`` bytes come out."""
    # one spare byte lets the decoder move past its end marker, or shows the stream is longer
    raw = decompressor.decompress(data, raw_length + 1)
    if not decompressor.eof:
        if len(raw) > raw_length:
            raise ValueError(f"the stream holds more than {raw_length} bytes")
        raise ValueError("the stream is truncated")
    if decompressor.unused_data:
        raise ValueError(f"{len(decompressor.unused_data)} bytes follow the end of the stream")
    return raw


class _LZ4(CompressorBase):
    """lz4 block format (``lz4.block``, sizes not stored: the frame knows them).

    Levels 1 to 3 use lz4's fast mode (``mode='default'``, the same output for
    all three: joblib's "fast" levels); 4 to 12 use lz4-HC at that level.
    After the byte shuffle HC gains little: on 256 MiB of small int64 and of
    image-like float32 it wrote 2.5 to 20 times slower for output 0.1 to 7 %
    smaller.
    """

    name = "lz4"
    default_level = 1
    levels = range(1, 13)
    max_ratio = 255

    def compress(self, data, level):
        from lz4 import block

        if level <= 3:
            return block.compress(data, mode="default", store_size=False)
        return block.compress(data, mode="high_compression", compression=level, store_size=False)

    def decompress(self, data, raw_length):
        from lz4 import block

        return block.decompress(data, uncompressed_size=raw_length)


class _Zlib(CompressorBase):
    """zlib stream (RFC 1950), ``zlib`` levels 1 to 9."""

    name = "zlib"
    default_level = 3
    wbits = 15
    max_ratio = 1032

    def compress(self, data, level):
        import zlib

        compressor = zlib.compressobj(level, zlib.DEFLATED, self.wbits)
        return compressor.compress(data) + compressor.flush()

    def decompress(self, data, raw_length):
        import zlib

        return _finish_stream(zlib.decompressobj(self.wbits), data, raw_length)


class _Gzip(_Zlib):
    """gzip member (RFC 1952) written by zlib: modification time 0, so reproducible."""

    name = "gzip"
    wbits = 31


class _BZ2(CompressorBase):
    """bzip2 stream, block sizes 100k to 900k for levels 1 to 9."""

    name = "bz2"
    default_level = 3

    def compress(self, data, level):
        import bz2

        return bz2.compress(data, level)

    def decompress(self, data, raw_length):
        import bz2

        return _finish_stream(bz2.BZ2Decompressor(), data, raw_length)


class _LZMA(CompressorBase):
    """LZMA "alone" format (``lzma.FORMAT_ALONE``), as joblib's ``'lzma'``; presets 1 to 9."""

    name = "lzma"
    default_level = 3
    format_name = "FORMAT_ALONE"
    max_ratio = 7100
    # preset 9 decodes in about 65 MiB; a corrupted header asking for more is refused
    memlimit = 1 << 27

    def compress(self, data, level):
        import lzma

        return lzma.compress(data, format=getattr(lzma, self.format_name), preset=level)

    def decompress(self, data, raw_length):
        import lzma

        decompressor = lzma.LZMADecompressor(format=getattr(lzma, self.format_name), memlimit=self.memlimit)
        return _finish_stream(decompressor, data, raw_length)


class _XZ(_LZMA):
    """xz container (``lzma.FORMAT_XZ``, CRC64 check), as joblib's ``'xz'``; presets 1 to 9."""

    name = "xz"
    format_name = "FORMAT_XZ"


class _Zstd(CompressorBase):
    """Zstandard frame (``zstandard`` package), levels 1 to 22, content size recorded."""

    name = "zstd"
    default_level = 3
    levels = range(1, 23)
    max_ratio = 32768

    def compress(self, data, level):
        import zstandard

        # a compressor object serves one call at a time: one per call
        return zstandard.ZstdCompressor(level=level).compress(data)

    def decompress(self, data, raw_length):
        import zstandard

        declared = zstandard.frame_content_size(data)
        if declared == -1:
            raise ValueError("the zstd frame does not declare its content size")
        if declared != raw_length:  # checked first: the decoder allocates what the frame declares
            raise ValueError(f"the zstd frame declares {declared} bytes")
        return zstandard.ZstdDecompressor().decompress(data, allow_extra_data=False)


_COMPRESSORS = {}


def _builtins():
    codecs = [_LZ4(), _Zlib(), _Gzip(), _BZ2(), _LZMA(), _XZ()]
    if importlib.util.find_spec("zstandard") is not None:  # found, not imported
        codecs.append(_Zstd())
    return codecs


def register_compressor(name, compressor, force=False):
    """Add a codec to the registry, under `name`.

    Parameters
    ----------
    name : str
        Registry name; equals ``compressor.name``.  Files record it, so a
        reader needs the same codec registered under the same name.
    compressor : CompressorBase
        The codec instance.
    force : bool, default False
        Replace a codec already registered under `name`.

    Raises
    ------
    TypeError
        If `compressor` is not a `CompressorBase` instance.
    ValueError
        If `name` is not a non-empty str equal to ``compressor.name``, if
        `compressor` has no valid ``default_level`` in its ``levels``, if its
        ``max_ratio`` is neither None nor an int >= 1, or if `name` is taken
        and `force` is false.
    """
    if not isinstance(compressor, CompressorBase):
        raise TypeError(
            f"compressor must be an instance of joblite.compressors.CompressorBase, "
            f"got {type(compressor).__qualname__}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(f"compressor name must be a non-empty str, got {name!r}")
    if compressor.name != name:
        raise ValueError(f"compressor.name is {compressor.name!r}; it must equal the registered name {name!r}")
    if not isinstance(compressor.levels, range) or 0 in compressor.levels:
        raise ValueError(f"compressor {name!r}: levels must be a range without 0, got {compressor.levels!r}")
    if compressor.default_level not in compressor.levels:
        raise ValueError(
            f"compressor {name!r}: default_level {compressor.default_level!r} is not in its levels "
            f"{compressor.levels!r}"
        )
    ratio = compressor.max_ratio
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1):
        raise ValueError(f"compressor {name!r}: max_ratio must be None or an int >= 1, got {ratio!r}")
    if name in _COMPRESSORS and not force:
        raise ValueError(f"a compressor named {name!r} is already registered; pass force=True to replace it")
    _COMPRESSORS[name] = compressor


for _compressor in _builtins():
    register_compressor(_compressor.name, _compressor)
del _compressor


def compressor_names():
    """Names of the registered codecs, sorted."""
    return sorted(_COMPRESSORS)


def get_compressor(name):
    """The codec registered under `name`.

    Raises
    ------
    ValueError
        If no codec is registered under `name`; the message lists those that are.
    """
    try:
        return _COMPRESSORS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown compressor {name!r}; registered: {', '.join(compressor_names())}"
        ) from None


# -- joblib's compress= ------------------------------------------------------------------
def _bad_compress(compress, why=""):
    return ValueError(
        f"invalid compress={compress!r}{why}; expected False/True, an int 0 to 9, a compressor "
        f"name ({', '.join(repr(n) for n in compressor_names())}), or a (name, level) tuple"
    )


def _as_int(value):
    """`value` as an int (numpy integers too); None for bools and non-integers."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def parse_compress(compress):
    """Interpret joblib's ``compress=`` argument.

    ==========================  ==================================================
    `compress`                  result
    ==========================  ==================================================
    ``False``, ``0``, ``None``  ``('', 0)``: no compression
    ``True``                    ``('lz4', 1)``: byte-shuffle + lz4, fast mode
    int 1 to 9                  ``('lz4', compress)``; see below
    ``'name'``                  ``('name', default level of that codec)``
    ``('name', level)``         ``('name', level)``; level 0 means no compression
                                (``('', 0)``), level None the codec's default
    ==========================  ==================================================

    joblib compresses with zlib when given an int; joblite uses its default
    codec, lz4, at the same level number: 1 to 3 are lz4's fast mode, 4 to 9
    lz4-HC, slower to write and a little smaller.  Pass ``('zlib', level)``
    for joblib's choice.  Unlike joblib's ``dump``, this does not look at file
    name extensions.

    Parameters
    ----------
    compress : bool, int, str, tuple or None
        The argument as given to ``dump``.

    Returns
    -------
    (str, int)
        Codec name (``''`` for none) and level.

    Raises
    ------
    ValueError
        For anything else: negative or larger ints, floats, unknown names,
        tuples that are not ``(registered name, valid level)``, bool levels.
        The message names the value and lists the valid codec names.
    """
    if compress is None or compress is False:
        return "", 0
    if compress is True:
        return DEFAULT_COMPRESSOR, get_compressor(DEFAULT_COMPRESSOR).default_level
    if isinstance(compress, str):
        if compress not in _COMPRESSORS:
            raise _bad_compress(compress, ": unknown compressor name")
        return compress, _COMPRESSORS[compress].default_level
    if isinstance(compress, tuple):
        if len(compress) != 2 or not isinstance(compress[0], str):
            raise _bad_compress(compress, ": a tuple must be (name, level)")
        name, level = compress
        if name not in _COMPRESSORS:
            raise _bad_compress(compress, f": unknown compressor name {name!r}")
        codec = _COMPRESSORS[name]
        if level is None:
            return name, codec.default_level
        number = _as_int(level)
        if number == 0:
            return "", 0
        if number not in codec.levels:
            raise _bad_compress(
                compress, f": level must be an int {codec.levels.start} to {codec.levels.stop - 1} for {name!r}"
            )
        return name, number
    number = _as_int(compress)
    if number is None or not 0 <= number <= 9:
        raise _bad_compress(compress)
    if number == 0:
        return "", 0
    return DEFAULT_COMPRESSOR, number


# -- blocks ------------------------------------------------------------------------------
def _byte_view(obj, name, writable=False):
    view = memoryview(obj)
    if not view.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous buffer")
    if writable and view.readonly:
        raise ValueError(f"{name} must be a writable buffer")
    return view.cast("B")


def _int_in(value, name, low, high):
    number = _as_int(value)
    if number is None or not low <= number <= high:
        raise ValueError(f"{name} must be an int from {low} to {high}, got {value!r}")
    return number


def chunk_length(itemsize, chunk_size=CHUNK_SIZE):
    """Uncompressed length of every chunk but the last (bytes).

    `chunk_size` rounded down to a multiple of `itemsize`, at least one item,
    so that no item straddles two chunks.

    Raises
    ------
    ValueError
        If `itemsize` or `chunk_size` is not an int from 1 to `MAX_CHUNK_SIZE`.
    """
    itemsize = _int_in(itemsize, "itemsize", 1, MAX_CHUNK_SIZE)
    chunk_size = _int_in(chunk_size, "chunk_size", 1, MAX_CHUNK_SIZE)
    return max(itemsize, chunk_size - chunk_size % itemsize)


def frame_header(sizes):
    """The frame header for chunks of these compressed sizes (``4 + 4 * len(sizes)`` bytes).

    For writers that stream `iter_compressed_chunks`: reserve the header's
    length, write the chunks, then write this in the reserved space.

    Raises
    ------
    ValueError
        If a size or the count does not fit in a u32.
    """
    return _codec.pack_chunks(sizes)


_pool = None
_pool_size = 0
_pool_lock = threading.Lock()
_scratch = threading.local()


def _forget_pool():
    # a forked child has the executor object but not its threads: start afresh
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor(workers):
    """The shared thread pool, grown to at least `workers` threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < workers:
            old = _pool
            _pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="joblite-codec")
            _pool_size = workers
            if old is not None:
                old.shutdown(wait=False)  # its queued chunks still run
        return _pool


def _in_order(task, items, workers):
    """Yield ``task(item)`` for each item, in order; up to ``2 * workers`` run ahead."""
    if workers == 1 or len(items) <= 1:
        for item in items:
            yield task(item)
        return
    pool = _executor(workers)
    pending = deque()
    try:
        for item in items:
            if len(pending) == 2 * workers:
                yield pending.popleft().result()
            pending.append(pool.submit(task, item))
        while pending:
            yield pending.popleft().result()
    finally:
        # after an error, or when the consumer stops early: nothing runs on after we return
        for future in pending:
            future.cancel()
        concurrent.futures.wait(pending)


def _scratch_view(nbytes):
    """A writable view of `nbytes` bytes, reused by each thread for every chunk."""
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or len(buffer) < nbytes:
        buffer = _scratch.buffer = bytearray(nbytes)
    return memoryview(buffer)[:nbytes]


def _codec_and_level(name, level):
    codec = get_compressor(name)
    number = _as_int(level)
    if number not in codec.levels:
        raise ValueError(
            f"level must be an int from {codec.levels.start} to {codec.levels.stop - 1} "
            f"for compressor {name!r}, got {level!r}"
        )
    return codec, number


def iter_compressed_chunks(data, itemsize, name, level, chunk_size=CHUNK_SIZE, workers=2):
    """Shuffle and compress `data` chunk by chunk; yield the compressed chunks in order.

    The arguments are checked at the call, before the first chunk.  At most
    about ``2 * workers`` compressed chunks and one chunk of scratch per
    thread are held besides what the caller keeps.  To write a frame without
    holding the whole block: reserve ``4 + 4 * n_chunks`` bytes, write the
    chunks, then write ``frame_header(sizes)`` in the reserved space.

    Parameters
    ----------
    data : bytes-like
        The block, C-contiguous (e.g. a memoryview of a contiguous array).
    itemsize : int
        Shuffle item size (bytes): the array's ``dtype.itemsize``, or 1 for no
        shuffle.
    name : str
        Registered codec name.
    level : int
        Level valid for that codec.
    chunk_size : int, default CHUNK_SIZE
        Target uncompressed chunk length (bytes); see `chunk_length`.
    workers : int, default 2
        Threads compressing chunks at once (a shared pool); 1 works in the
        calling thread.

    Yields
    ------
    bytes
        Each compressed chunk; there are ``ceil(len(data) / chunk_length)``.

    Raises
    ------
    TypeError
        If `data` is not a buffer, or the codec returns something other than bytes.
    ValueError
        If `data` is not C-contiguous, `name` is not registered, `level` is
        not valid for it, or `itemsize`, `chunk_size` or `workers` is out of
        range (see `chunk_length`).
    """
    codec, level = _codec_and_level(name, level)
    view = _byte_view(data, "data")
    size = _int_in(itemsize, "itemsize", 1, MAX_CHUNK_SIZE)
    step = chunk_length(size, chunk_size)
    workers = _int_in(workers, "workers", 1, MAX_WORKERS)

    def compress_chunk(start):
        piece = view[start:start + step]
        if size > 1:
            scratch = _scratch_view(len(piece))
            _codec.shuffle(piece, size, scratch)
            piece = scratch
        result = codec.compress(piece, level)
        if not isinstance(result, bytes):
            raise TypeError(f"compressor {name!r} returned {type(result).__qualname__}, not bytes")
        return result

    return _in_order(compress_chunk, range(0, len(view), step), workers)


def compress_block(data, itemsize, name, level, chunk_size=CHUNK_SIZE, workers=2):
    """Shuffle and compress `data` into one framed block.

    Parameters and exceptions are those of `iter_compressed_chunks`.

    Returns
    -------
    bytes
        The frame: ``frame_header`` followed by the compressed chunks.
    """
    chunks = list(iter_compressed_chunks(data, itemsize, name, level, chunk_size, workers))
    return frame_header([len(chunk) for chunk in chunks]) + b"".join(chunks)


def max_raw_length(name, length, itemsize=1, chunk_size=CHUNK_SIZE):
    """The most bytes a framed block of `length` stored bytes can decompress to.

    Every chunk takes a 4-byte size entry and at least one byte, and holds at
    most one chunk length (`chunk_length`); when the codec registered under
    `name` has a ``max_ratio``, its chunks also hold at most that many bytes
    per stored byte.  Readers check a block's claimed raw length against this
    before they allocate memory for it.

    Parameters
    ----------
    name : str
        Codec name; an unregistered one is bounded by the chunk length only.
    length : int
        Stored bytes of the block, frame header included.
    itemsize, chunk_size : int
        As given to `compress_block`.

    Returns
    -------
    int
        The bound, in bytes.

    Raises
    ------
    ValueError
        If `itemsize` or `chunk_size` is out of range (see `chunk_length`).
    """
    body = max(length - 4, 0)
    bound = body // 5 * chunk_length(itemsize, chunk_size)
    ratio = getattr(_COMPRESSORS.get(name), "max_ratio", None)
    return bound if ratio is None else min(bound, ratio * body)


def _each_chunk(data, raw_length, itemsize, name, chunk_size, workers, out):
    """Decompress every chunk of a frame and check its length; unshuffle into `out` unless None."""
    codec = get_compressor(name)
    size = _int_in(itemsize, "itemsize", 1, MAX_CHUNK_SIZE)
    step = chunk_length(size, chunk_size)
    workers = _int_in(workers, "workers", 1, MAX_WORKERS)
    raw_length = _int_in(raw_length, "raw_length", 0, sys.maxsize)
    frame = _byte_view(data, "data")
    if out is not None:
        target = _byte_view(out, "out", writable=True)
        if len(target) != raw_length:
            raise ValueError(f"out holds {len(target)} bytes, but raw_length is {raw_length!r}")
    chunks = _codec.unpack_chunks(frame, raw_length, step)
    count = len(chunks)

    def decompress_chunk(index):
        offset, length = chunks[index]
        start = index * step
        expected = min(step, raw_length - start)
        try:
            raw = codec.decompress(frame[offset:offset + length], expected)
        except MemoryError:
            raise
        except Exception as exc:  # whatever the codec raises on bad input
            raise ValueError(
                f"cannot decompress chunk {index} of {count} with compressor {name!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        got = memoryview(raw).nbytes
        if got != expected:
            raise ValueError(
                f"chunk {index} of {count} decompressed by {name!r} to {got} bytes, expected {expected}"
            )
        if out is not None:
            _codec.unshuffle(raw, size, target[start:start + expected])

    for _ in _in_order(decompress_chunk, range(count), workers):
        pass


def decompress_block(data, raw_length, itemsize, name, out, chunk_size=CHUNK_SIZE, workers=2):
    """Decompress a framed block and unshuffle it straight into `out`.

    The frame is validated before any chunk is decompressed; each chunk is
    decompressed (``workers`` at a time), its length checked, and unshuffled
    into its place in `out`: no full-size intermediate copy.

    Parameters
    ----------
    data : bytes-like
        The frame, as written by `compress_block` (C-contiguous; a memoryview
        of a memory-mapped file works).
    raw_length : int
        Uncompressed length of the block (bytes); ``len(out)`` must equal it.
    itemsize, name, chunk_size :
        As given to `compress_block` (the level is not needed).
    out : writable bytes-like
        Destination, C-contiguous, ``raw_length`` bytes (e.g. a memoryview of
        the final array).  Left partly written if an error is raised.
    workers : int, default 2
        Threads decompressing chunks at once; 1 works in the calling thread.

    Raises
    ------
    TypeError
        If `data` or `out` is not a buffer.
    ValueError
        If an argument is invalid (as for `compress_block`; `out` read-only,
        not C-contiguous or of another length than `raw_length`), the frame is
        inconsistent (truncated, wrong chunk count, sizes that do not add up),
        a chunk cannot be decompressed (the codec's own exception, such as
        ``zlib.error`` or ``LZ4BlockError``, is chained), or a chunk
        decompresses to another length than expected.  The message names the
        codec and the chunk.
    """
    _each_chunk(data, raw_length, itemsize, name, chunk_size, workers, out)


def verify_block(data, raw_length, itemsize, name, chunk_size=CHUNK_SIZE, workers=2):
    """Check that a framed block decompresses to `raw_length` bytes, keeping none of them.

    What `decompress_block` checks, in the memory of a few chunks: a reader
    that cannot allocate a block's raw length tells a corrupt block (this
    raises) from a valid one that needs more memory than there is.

    Parameters and exceptions are those of `decompress_block`, without `out`.
    """
    _each_chunk(data, raw_length, itemsize, name, chunk_size, workers, None)
