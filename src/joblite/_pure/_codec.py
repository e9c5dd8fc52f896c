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


def _blosc_decoder_arguments(chunk_size, cname, fd, offset):
    """`BloscDecoder`'s checks of its scalar arguments (both twins); ``(chunk_size, codec code, fd, offset)``."""
    step, descriptor, base = operator.index(chunk_size), operator.index(fd), operator.index(offset)
    if step < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    if cname not in BLOSC_CODES:
        raise ValueError(f"cname must be one of {sorted(BLOSC_CODES)}, got {cname!r}")
    if base < 0:
        raise ValueError(f"offset must be >= 0, got {offset!r}")
    return step, BLOSC_CODES[cname], descriptor, base


def _blosc_encoder_arguments(chunk_size, itemsize, cname, level, fd, offset, window, blocksize):
    """`BloscEncoder`'s checks of its scalar arguments (both twins); the integers, in order."""
    step, size, clevel = operator.index(chunk_size), operator.index(itemsize), operator.index(level)
    descriptor, base, ahead = operator.index(fd), operator.index(offset), operator.index(window)
    block = operator.index(blocksize)
    if step < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    if not 1 <= size <= 255:
        raise ValueError(f"itemsize must be 1 to 255, got {itemsize!r}")
    if cname not in BLOSC_CODES:
        raise ValueError(f"cname must be one of {sorted(BLOSC_CODES)}, got {cname!r}")
    if not 0 <= clevel <= 9:
        raise ValueError(f"level must be 0 to 9, got {level!r}")
    if descriptor < -1 or base < 0 or ahead < 1:
        raise ValueError(
            f"fd must be >= -1 (-1: given later), offset >= 0 and window >= 1, got {fd!r}, {offset!r} and {window!r}"
        )
    if not 0 <= block < 1 << 31:
        raise ValueError(f"blocksize must be 0 to 2**31 - 1, got {blocksize!r}")
    return step, size, clevel, descriptor, base, ahead, block


def _blosc_file_arguments(fd, offset):
    """`BloscEncoder.set_file`'s checks (both twins); the integers, in order."""
    descriptor, base = operator.index(fd), operator.index(offset)
    if descriptor < 0 or base < 0:
        raise ValueError(f"fd and offset must be >= 0, got {fd!r} and {offset!r}")
    return descriptor, base


def _pool_threads(threads):
    """`start`'s `threads` of `BloscDecoder` and `BloscEncoder`, checked (both twins)."""
    wanted = operator.index(threads)
    if not 0 <= wanted < 64:
        raise ValueError(f"threads must be 0 to 63, got {threads!r}")
    return wanted


def wake_threads(threads):
    """Check `threads` as the compiled twin does; nothing to wake here, where `start` starts Python threads."""
    _pool_threads(threads)


class _Kernel:
    """`start` and `run` of the pure twins of both kernels: Python threads on `_share`, then the caller.

    A subclass defines `_share` (take chunks until none is left), `_count`
    (its chunks), `_failed` (the first that failed; `_count`: none) and
    `_what` (its name in errors).
    """

    _what: str
    _threads = None  # the started threads, once `start` ran

    def start(self, threads):
        """Put `threads` threads to work now (at most once); see the compiled twin."""
        import threading

        wanted = _pool_threads(threads)
        if self._threads is not None:
            raise ValueError(f"the {self._what} has started already")
        self._threads = [threading.Thread(target=self._share, daemon=True) for _ in range(wanted)]
        for thread in self._threads:
            thread.start()
        return wanted

    def run(self):
        """Take the chunks not taken yet, then wait for the started threads; see the compiled twin."""
        self._share()
        self._join()
        return -1 if self._failed >= self._count else self._failed

    def _join(self):
        for thread in self._threads or ():
            thread.join()


class BloscDecoder(_Kernel):
    """Decodes the c-blosc chunks of a frame into their places in `out`: started threads, then the caller.

    The pure twin of the compiled class (same parameters, results and
    exceptions; see its docstring): here each chunk is read with
    ``os.preadv``, hashed with the ``xxhash`` package and decoded with
    ``blosc.decompress_ptr`` of the ``blosc`` package (c-blosc, one thread
    per call, the GIL released), and `start` starts Python threads, which
    take the GIL between those steps.
    """

    _what = "decoder"

    def __init__(self, frame, chunks, chunk_size, out, cname, checksums=None, fd=-1, offset=0):
        import itertools
        import threading

        self._step, self._code, self._fd, self._base = _blosc_decoder_arguments(chunk_size, cname, fd, offset)
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
        self._count = self._failed = count  # the lowest index that failed (count: none)
        self._stopped = False
        self._lock = threading.Lock()

    def cancel(self):
        """Stop the started threads (each finishes the chunk it holds) and wait for them."""
        self._stopped = True
        self._join()

    def _share(self):
        """Decode the chunks not taken yet until none is left, or one fails."""
        for i in self._next:
            if i >= len(self._chunks) or i > self._failed or self._stopped:
                return
            if not self._decoded(i):
                with self._lock:
                    self._failed = min(self._failed, i)
                return

    def _decoded(self, i):
        import os

        import blosc
        import xxhash

        start, length = self._chunks[i]
        chunk = memoryview(self._frame[start : start + length])
        if self._fd >= 0:  # into a buffer of its own, as the compiled twin: the frame is not touched
            chunk = memoryview(bytearray(length))
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


class BloscEncoder(_Kernel):
    """Compresses a block into c-blosc chunks and writes them to a file: started threads, then the caller.

    The pure twin of the compiled class (same parameters, results and
    exceptions; see its docstring): here each chunk is compressed by
    ``blosc.compress`` of the ``blosc`` package, hashed with the ``xxhash``
    package and written with ``os.pwrite``, the threads (Python threads,
    from `start`) taking turns under a lock.
    """

    _what = "encoder"

    def __init__(self, data, chunk_size, itemsize, cname, bitshuffle, level, fd=-1, offset=0, window=1, blocksize=0):
        import threading

        step, size, clevel, descriptor, base, ahead, self._blocksize = _blosc_encoder_arguments(
            chunk_size, itemsize, cname, level, fd, offset, window, blocksize
        )
        self._data = _byte_array(data, "data")
        self._step, self._size, self._level, self._cname = step, size, clevel, cname
        self._bitshuffle, self._fd, self._base, self._window = bool(bitshuffle), descriptor, base, ahead
        self._count = -(-len(self._data) // step)
        self._chunks = [None] * self._count
        self._sizes = [0] * self._count
        self._digests = [0] * self._count
        self._turn = threading.Condition()
        self._next = self._placed = self._position = self._written = 0
        self._writing = False
        self._failed, self._error = self._count, 0

    def _fail(self, index, error):
        """Under the lock: record chunk `index` as failed with `error` if it is the first."""
        if index < self._failed:
            self._failed, self._error = index, error
        self._turn.notify_all()

    def _ready(self):
        """Under the lock: whether the next chunk to place is compressed, and nothing failed."""
        return self._placed < self._count and self._chunks[self._placed] is not None and self._failed == self._count

    def _can_write(self):
        """Under the lock: whether a thread may write the next chunk to place (the file is known)."""
        return not self._writing and self._fd >= 0 and self._ready()

    def _must_wait(self):
        """Under the lock: nothing to write, and the next chunk is past the window."""
        return (
            not self._can_write()
            and self._next < self._count
            and self._failed == self._count
            and self._next >= self._written + self._window
        )

    def _share(self):
        """Compress the chunks not taken yet, and write those placed while the file is known.

        Returns -1, or the chunk this thread failed on.
        """
        with self._turn:
            while True:
                self._turn.wait_for(lambda: not self._must_wait())
                if self._can_write():
                    self._writing = True
                    failed = self._write_placed()
                    self._writing = False
                    if failed >= 0:
                        return failed
                    continue
                if self._next >= self._count or self._failed < self._count:
                    return -1
                index = self._next
                self._next += 1
                self._turn.release()
                try:
                    chunk, digest = self._compress(index)
                finally:
                    self._turn.acquire()
                if chunk is None:
                    self._fail(index, 0)
                    return index
                self._chunks[index], self._sizes[index], self._digests[index] = chunk, len(chunk), digest

    def _compress(self, index):
        """Chunk `index` compressed and its digest, or (None, 0) if c-blosc could not compress it."""
        import blosc
        import xxhash

        start = index * self._step
        blosc.set_releasegil(True)  # as joblite.compressors._blosc sets the package
        blosc.set_nthreads(1)
        blosc.set_blocksize(self._blocksize)
        shuffle = blosc.BITSHUFFLE if self._bitshuffle else blosc.SHUFFLE
        try:
            chunk = blosc.compress(
                self._data[start : start + self._step].tobytes(),
                typesize=self._size,
                clevel=self._level,
                shuffle=shuffle,
                cname=self._cname,
            )
        except Exception:  # blosc_extension.error
            return None, 0
        return chunk, xxhash.xxh3_64_intdigest(chunk)

    def _write_placed(self):
        """Under the lock (released while writing): write the chunks whose place is known; -1 or the failed one."""
        import os

        while self._ready():
            placed = self._placed
            self._placed += 1
            at = self._base + self._position
            self._position += self._sizes[placed]
            self._turn.release()
            error = 0
            try:
                view = memoryview(self._chunks[placed])
                while view:
                    put = os.pwrite(self._fd, view, at)
                    if not put:
                        raise OSError(5, os.strerror(5))  # EIO, as the compiled twin
                    view, at = view[put:], at + put
            except OSError as exc:
                error = exc.errno or 5
            finally:
                self._turn.acquire()
            self._chunks[placed] = None
            if error:
                self._fail(placed, error)
                return placed
            self._written = placed + 1
            self._turn.notify_all()
        return -1

    def set_file(self, fd, offset):
        """Give the file of an encoder made with ``fd=-1``; see the compiled twin."""
        descriptor, base = _blosc_file_arguments(fd, offset)
        with self._turn:
            if self._fd >= 0:
                raise ValueError("the encoder has a file already")
            self._fd, self._base = descriptor, base
            self._turn.notify_all()

    def cancel(self):
        """Stop every thread taking chunks and wait for the started ones; see the compiled twin."""
        import errno

        with self._turn:
            if self._failed == self._count and self._count > 0:
                self._failed, self._error = 0, errno.ECANCELED
            self._turn.notify_all()
        self._join()

    def failure(self):
        """``(index, errno)`` of the first chunk that failed (errno 0: not compressed), or None."""
        if self._failed == self._count:
            return None
        return self._failed, self._error

    def result(self):
        """The compressed size (bytes) and the ``xxh3_64`` digest of each chunk; see the compiled twin."""
        if self.failure() is not None:
            raise ValueError(f"chunk {self._failed} of {self._count} failed")
        if self._written < self._count:
            raise ValueError(f"{self._count - self._written} of {self._count} chunks are not written")
        return list(self._sizes), list(self._digests)
