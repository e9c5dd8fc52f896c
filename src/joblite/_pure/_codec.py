"""Pure-Python twin of ``joblite._ext._codec``: byte shuffle and chunk framing.

The byte shuffle is Blosc's (Alted, "Blosc, an extremely fast, multi-threaded,
meta-compressor library"): byte ``j`` of every item goes to plane ``j``, so
that the bytes that vary slowly (exponents, high bytes of small integers) end
up next to one another, where a codec finds long repeats.  Here it is a numpy
transpose; the compiled twin gives the same bytes.

The frame of a compressed block, all integers little-endian::

    u32 n_chunks
    u32 compressed_size      (n_chunks times)
    compressed chunks        (back to back, in order)

numpy is imported on first use, so that importing the kernels stays cheap.
"""

import operator
import struct

U32_MAX = 0xFFFFFFFF

_u32 = struct.Struct("<I")


def _byte_array(obj, name, writable=False):
    """`obj` as a 1-D uint8 numpy array over the same memory (no copy).

    Raises
    ------
    TypeError
        If `obj` does not support the buffer protocol.
    ValueError
        If it is not C-contiguous, or read-only while `writable` is asked for.
    """
    import numpy as np

    view = memoryview(obj)
    if not view.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous buffer")
    if writable and view.readonly:
        raise ValueError(f"{name} must be a writable buffer")
    return np.frombuffer(view, np.uint8)


def _transpose(src, itemsize, out, forward):
    """Validate the arguments of (un)shuffle, then move the bytes."""
    import numpy as np

    size = operator.index(itemsize)
    if size < 1:
        raise ValueError(f"itemsize must be >= 1, got {itemsize!r}")
    source = _byte_array(src, "src")
    target = _byte_array(out, "out", writable=True)
    if source.size != target.size:
        raise ValueError(f"src and out differ in length: {source.size} and {target.size} bytes")
    if np.may_share_memory(source, target):
        raise ValueError("src and out overlap; they must be separate buffers")
    if size == 1 or size >= source.size:  # at most one item: a copy
        target[:] = source
        return
    whole = source.size - source.size % size
    if forward:
        target[:whole].reshape(size, -1)[...] = source[:whole].reshape(-1, size).T
    else:
        target[:whole].reshape(-1, size)[...] = source[:whole].reshape(size, -1).T
    target[whole:] = source[whole:]


def shuffle(src, itemsize, out):
    """Byte-shuffle `src` into `out`: byte ``j`` of every item goes to plane ``j``.

    With ``n = len(src) // itemsize`` whole items, ``out[j * n + i] =
    src[i * itemsize + j]``; the trailing ``len(src) % itemsize`` bytes are
    copied unchanged to the end of `out`.  ``itemsize=1`` is a copy.

    Parameters
    ----------
    src : bytes-like
        C-contiguous buffer to read, any length (bytes).
    itemsize : int
        Size of one item in bytes, >= 1.
    out : writable bytes-like
        C-contiguous buffer of the same length as `src`, not overlapping it.

    Raises
    ------
    TypeError
        If `itemsize` is not an integer, or `src` or `out` is not a buffer.
    ValueError
        If ``itemsize < 1``, a buffer is not C-contiguous, `out` is read-only,
        the lengths differ, or the buffers overlap.
    """
    _transpose(src, itemsize, out, forward=True)


def unshuffle(src, itemsize, out):
    """Invert `shuffle`: gather byte ``j`` of each item back from plane ``j``.

    ``out[i * itemsize + j] = src[j * n + i]`` with ``n = len(src) //
    itemsize``; the trailing ``len(src) % itemsize`` bytes are copied unchanged.
    Parameters and exceptions are those of `shuffle`.
    """
    _transpose(src, itemsize, out, forward=False)


def pack_chunks(sizes):
    """Frame header of a compressed block: ``u32 n_chunks`` then one ``u32`` size per chunk.

    Parameters
    ----------
    sizes : iterable of int
        Compressed size of each chunk, in order (bytes).

    Returns
    -------
    bytes
        ``4 + 4 * n_chunks`` bytes, little-endian; the chunks follow it.

    Raises
    ------
    TypeError
        If a size is not an integer.
    ValueError
        If a size or the number of chunks does not fit in a ``u32``.
    """
    sizes = [operator.index(size) for size in sizes]
    if len(sizes) > U32_MAX:
        raise ValueError(f"{len(sizes)} chunks do not fit the frame's u32 chunk count")
    for i, size in enumerate(sizes):
        if not 0 <= size <= U32_MAX:
            raise ValueError(f"chunk {i}: compressed size {size} is outside the frame's u32 range")
    return struct.pack(f"<I{len(sizes)}I", len(sizes), *sizes)


def unpack_chunks(data, raw_length, chunk_size):
    """Validate the frame of a compressed block; locate its chunks.

    Parameters
    ----------
    data : bytes-like
        The whole frame: header and chunks (C-contiguous).
    raw_length : int
        Length of the uncompressed block (bytes), >= 0.
    chunk_size : int
        Uncompressed length of every chunk but the last (bytes), >= 1.

    Returns
    -------
    list of (int, int)
        ``(offset, length)`` of each compressed chunk in `data` (bytes).

    Raises
    ------
    TypeError
        If `raw_length` or `chunk_size` is not an integer, or `data` is not a buffer.
    ValueError
        If ``raw_length < 0`` or ``chunk_size < 1``, `data` is not C-contiguous,
        or the frame is inconsistent: truncated, a chunk count other than
        ``ceil(raw_length / chunk_size)``, or chunk sizes that do not add up to
        the bytes that follow the header.
    """
    raw = operator.index(raw_length)
    step = operator.index(chunk_size)
    if raw < 0:
        raise ValueError(f"raw_length must be >= 0, got {raw_length!r}")
    if step < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    frame = _byte_array(data, "data")
    total = frame.size
    if total < 4:
        raise ValueError(f"frame is truncated: {total} bytes, its chunk count needs 4")
    count = _u32.unpack_from(frame, 0)[0]
    expected = -(-raw // step)
    if count != expected:
        raise ValueError(
            f"frame declares {count} chunks; {expected} expected for raw_length {raw} in chunks of {step} bytes"
        )
    header = 4 + 4 * count
    if total < header:
        raise ValueError(f"frame is truncated: {total} bytes, its header of {count} chunk sizes needs {header}")
    sizes = struct.unpack_from(f"<{count}I", frame, 4)
    if sum(sizes) != total - header:
        raise ValueError(
            f"frame chunk sizes add up to {sum(sizes)} bytes, but {total - header} bytes "
            f"follow its {header}-byte header"
        )
    chunks = []
    offset = header
    for size in sizes:
        chunks.append((offset, size))
        offset += size
    return chunks


def lz4_unshuffle(data, chunks, first, stop, chunk_size, itemsize, out):
    """Decode lz4 chunks ``first`` to ``stop - 1`` of a frame and unshuffle each into its place in `out`.

    Chunk ``i`` holds ``out[i * chunk_size:(i + 1) * chunk_size]`` (the last
    one may be shorter), stored byte-shuffled by `itemsize` (1: not
    shuffled) and compressed with the lz4 block format.  Here through
    ``lz4.block``, one chunk at a time; the compiled twin decodes without
    the GIL and without a per-chunk object.

    Parameters
    ----------
    data : bytes-like
        The frame (C-contiguous).
    chunks : list of (int, int)
        ``(offset, length)`` of every chunk in `data`, from `unpack_chunks`.
    first, stop : int
        The range of chunk indices to decode, ``0 <= first <= stop <= len(chunks)``.
    chunk_size : int
        Uncompressed length of every chunk but the last (bytes), >= 1.
    itemsize : int
        Shuffle item size (bytes), >= 1.
    out : writable bytes-like
        The whole destination, C-contiguous.

    Returns
    -------
    int
        -1 when every chunk decoded to its expected length; otherwise the
        index of the first chunk of the range that did not (corrupt data, a
        wrong length, or a chunk out of bounds), whose later chunks are left
        undecoded.  The caller reports it with the codec's own error.

    Raises
    ------
    TypeError
        If an argument is not an integer or not a buffer.
    ValueError
        If the range, `chunk_size` or `itemsize` is out of range, a buffer is
        not C-contiguous, or `out` is read-only.
    """
    lo, hi = operator.index(first), operator.index(stop)
    step, size = operator.index(chunk_size), operator.index(itemsize)
    if not 0 <= lo <= hi <= len(chunks):
        raise ValueError(f"chunk range {first!r} to {stop!r} is outside the {len(chunks)} chunks")
    if step < 1 or size < 1:
        raise ValueError(f"chunk_size and itemsize must be >= 1, got {chunk_size!r} and {itemsize!r}")
    if lo == hi:
        return -1
    from lz4 import block

    frame = _byte_array(data, "data")
    target = _byte_array(out, "out", writable=True)
    for i in range(lo, hi):
        offset, length = chunks[i]
        start = i * step
        if not (start < target.size and 0 <= offset <= frame.size and 0 <= length <= frame.size - offset):
            return i
        expected = min(step, target.size - start)
        try:
            raw = block.decompress(frame[offset : offset + length], uncompressed_size=expected)
        except Exception:  # whatever lz4 raises on bad input: the caller reports it
            return i
        if len(raw) != expected:
            return i
        unshuffle(raw, size, target[start : start + expected])
    return -1


# c-blosc 1.x buffer header (blosc.h, "Blosc header format"): version, versionlz, flags,
# typesize, nbytes, blocksize, cbytes; the top 3 bits of flags name the codec
BLOSC_CODES = {"lz4": 1, "zstd": 4}
_BLOSC_HEADER = struct.Struct("<BBBBIII")


class BloscDecoder:
    """Decodes the c-blosc chunks of a frame into their places in `out`, shared by the threads that call `run`.

    The pure twin of the compiled class (same parameters, results and
    exceptions; see its docstring): here each chunk is read with
    ``os.preadv``, hashed with the ``xxhash`` package and decoded with
    ``blosc.decompress_ptr`` of the ``blosc`` package (c-blosc, one thread
    per call, the GIL released), so the threads take the GIL between those
    steps.
    """

    def __init__(self, frame, chunks, chunk_size, out, cname, checksums=None, fd=-1, offset=0):
        import itertools
        import threading

        self._step = operator.index(chunk_size)
        self._fd = operator.index(fd)
        self._base = operator.index(offset)
        if self._step < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        if cname not in BLOSC_CODES:
            raise ValueError(f"cname must be one of {sorted(BLOSC_CODES)}, got {cname!r}")
        if self._base < 0:
            raise ValueError(f"offset must be >= 0, got {offset!r}")
        self._code = BLOSC_CODES[cname]
        self._frame = _byte_array(frame, "frame", self._fd >= 0)
        self._out = _byte_array(out, "out", True)
        self._address = self._out.ctypes.data
        count = len(chunks)
        if count != -(-len(self._out) // self._step):
            raise ValueError(f"{count} chunks of {self._step} bytes cannot fill out's {len(self._out)} bytes")
        if checksums is not None and len(checksums) != count:
            raise ValueError(f"{len(checksums)} chunk checksums for {count} chunks")
        self._chunks = []
        for i in range(count):
            start, length = (operator.index(value) for value in chunks[i])
            if not (0 <= start <= len(self._frame) and 0 <= length <= len(self._frame) - start):
                raise ValueError(f"chunk {i} of {count} lies outside the frame of {len(self._frame)} bytes")
            self._chunks.append((start, length))
        self._checksums = None if checksums is None else [operator.index(value) for value in checksums]
        self._next = itertools.count()
        self._failed = count  # the lowest index that failed (count: none)
        self._lock = threading.Lock()

    def run(self):
        """Decode the chunks not taken yet until none is left, or one fails; see the compiled twin."""
        for i in self._next:
            if i >= len(self._chunks) or i > self._failed:
                return -1
            if not self._decoded(i):
                with self._lock:
                    self._failed = min(self._failed, i)
                return i
        return -1  # not reached: the counter is endless

    def _decoded(self, i):
        import os

        import blosc
        import xxhash

        start, length = self._chunks[i]
        chunk = memoryview(self._frame[start : start + length])
        if self._fd >= 0:
            done = 0
            try:
                while done < length:
                    got = os.preadv(self._fd, [chunk[done:]], self._base + start + done)
                    if not got:
                        return False
                    done += got
            except OSError:
                return False
        if self._checksums is not None and xxhash.xxh3_64_intdigest(chunk) != self._checksums[i]:
            return False
        expected = min(self._step, len(self._out) - i * self._step)
        if length < _BLOSC_HEADER.size:
            return False
        _, _, flags, _, nbytes, _, cbytes = _BLOSC_HEADER.unpack_from(chunk)
        if cbytes != length or nbytes != expected or flags >> 5 != self._code:
            return False
        blosc.set_releasegil(True)  # c-blosc's *_ctx functions: one thread, no BLOSC_* variables
        blosc.set_nthreads(1)
        try:
            blosc.decompress_ptr(chunk, self._address + i * self._step)
        except Exception:  # blosc_extension.error, whatever the chunk holds
            return False
        return True
