"""The chunked, byte-shuffled block format: how one block is split, shuffled, compressed and framed.

A *block* (the bytes of one array, or the pickle stream) is compressed in
independent chunks of about `default_chunk_size` bytes, so that two threads can share
the work and a reader can decompress straight into the final array with
bounded scratch memory.  Every chunk is first byte-shuffled by the item size
of the data (Blosc's shuffle: byte ``j`` of every item goes to plane ``j``),
then compressed by a codec of :mod:`joblite.compressors`; the ``'blosc-*'``
codecs shuffle each chunk themselves (c-blosc's SIMD byte or bit shuffle),
and decompress straight into the final array.  Their chunks are loaded, and
dumped to files, by the kernels ``BloscDecoder`` and ``BloscEncoder``, whose
threads read or write, check and code the chunks without the GIL.  Shuffling groups
the bytes that vary slowly (exponents, the high bytes of small integers), so
every codec finds longer repeats, lz4 most of all: lz4 has no entropy coder,
and without the shuffle it cannot use a mostly-constant byte that recurs every
8 bytes.  An item size of 1 (the pickle stream, ``uint8`` data) disables the
shuffle.

The compressed block, all integers little-endian (``joblite._impl.codec``
writes and validates it)::

    u32 n_chunks                 ceil(raw_length / chunk length), 0 if empty
    u32 compressed_size          n_chunks times
    compressed chunks            back to back, in order

The frame does not name its codec, item size or chunk length: the container
records them, with the raw length, and passes them back to `decompress_block`.
`iter_compressed_chunks` gives each chunk's ``xxh3_64`` checksum with it,
computed by the thread that compressed it while the chunk is in its cache;
`decompress_block` checks each chunk against its checksum, when given the
list, in the thread that decodes it, before it decodes it (the container
stores the list after the frame).
The chunk length is ``chunk_size`` rounded down to a multiple of the item size
(`chunk_length`); chunks are compressed independently, so the result is
deterministic: the same input, codec, level, item size and chunk size give the
same bytes with any number of threads and with either kernel twin.  The
chunks of a block are compressed and decompressed by the calling thread and
a thread pool shared by all blocks: taken from a shared counter when each
thread can finish what it takes (`decompress_block`; `start_compression` and
`compress_into`, which write each chunk at its place), or handed to the caller in order
(`iter_compressed_chunks`, for a consumer that writes them one after the
other).

A reader allocates a block's raw length before it decompresses into it, so
that length is checked against the stored bytes first (`max_raw_length`): each
chunk takes a 4-byte size and at least one byte and holds at most one chunk
length, and a codec with a known worst case (its ``max_ratio``, whose sources
the docstring of :mod:`joblite.compressors` gives) cannot expand one stored
byte into more than that many.
"""

import concurrent.futures
import errno
import itertools
import os
import sys
import threading
from collections import deque

from xxhash import xxh3_64_intdigest as _checksum

from . import _impl
from ._validate import as_int
from .compressors import _LZ4, _Blosc, compressor_and_level, get_compressor

__all__ = [
    "BLOSC_CHUNKS",
    "CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "MAX_WORKERS",
    "chunk_length",
    "compress_block",
    "compress_into",
    "decompress_block",
    "default_chunk_size",
    "frame_header",
    "iter_compressed_chunks",
    "max_raw_length",
    "reads_into_thread_buffers",
    "start_compression",
    "start_decompression",
    "verify_block",
    "wake_threads",
]

CHUNK_SIZE = 1 << 20
"""Default uncompressed chunk length (bytes): fits in L2, and 256 chunks per 256 MiB."""

BLOSC_CHUNKS = 16
"""Chunks in the largest block of a file written with a ``'blosc-*'`` codec, about (`default_chunk_size`)."""

MAX_CHUNK_SIZE = 1 << 30
"""Largest chunk length (bytes): every codec's worst-case output still fits the frame's u32 sizes."""

MAX_WORKERS = 64
"""Most threads one call may ask to compress or decompress its chunks at once."""

# the kernel twin (a module attribute, so that tests can swap in the other twin)
_codec = _impl.codec


def _byte_view(obj, name, writable=False):
    view = memoryview(obj)
    if not view.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous buffer")
    if writable and view.readonly:
        raise ValueError(f"{name} must be a writable buffer")
    return view.cast("B")


def _int_in(value, name, low, high):
    number = as_int(value)
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


def default_chunk_size(name, largest=0):
    """The chunk length (bytes) of a file written with the codec `name` whose largest block has `largest` bytes.

    `CHUNK_SIZE` for joblite's own codecs.  The ``'blosc-*'`` codecs split
    each chunk into blocks of their own, so the chunk length barely changes
    the work (one thread decoded 16 MiB of small integers in chunks of
    256 KiB to 4 MiB in the same time, within 10%): their chunk length is
    the power of two nearest below ``largest / BLOSC_CHUNKS``, from 1 MiB
    to 16 MiB (the most a reader accepts), so that two threads share 16
    chunks or more and a dump still writes while it compresses.  Measured
    here against Blosc's own file, on five kinds of data (the ratio of the
    medians of paired runs): on 256 MiB arrays, 16 MiB chunks dumped 3 to
    10% and loaded 5 to 25% faster than 4 MiB ones; on 16 MiB arrays (200
    runs), a sixteenth of the array dumped 0.99 to 1.09 and loaded 1.02 to
    1.21 times as fast as an eighth (the thread that finishes first waits
    less for the other), and a thirty-second was no faster than a
    sixteenth; in a process whose heap had first held larger arrays (no
    page faults on either side; 150 runs, small integers, image-like floats
    and records), 0.98 to 1.01 and 0.96 to 1.01, small integers the
    lowest; on 64 MiB arrays (50 runs), a sixteenth dumped 1.00 to 1.03 and
    loaded 0.98 to 1.02 times as fast as an eighth.  Measured again with
    the early start of loads (`start_decompression`) and c-blosc's kept
    scratch, a thirty-second (chunks from 512 KiB) against a sixteenth on
    16 MiB arrays (each in a process of its own, 8 sets of 200 paired
    rounds): smooth and random floats dumped and loaded 1.07 to 1.11 times
    as fast, small integers 1.02 to 1.03, records 0.99 to 1.00, but
    image-like float32 0.95 to 0.96 (one c-blosc block per chunk instead of
    two); not adopted, for that loss, and with c-blosc's blocks capped at
    512 KiB (`joblite.compressors._Blosc.blocksize`) a thirty-second was
    slower for both: small integers 0.97 to 0.98, image-like floats 0.97 to
    0.98 (4 sets of 200 paired rounds).  Measured again at 256 MiB for the
    zstd codecs, whose 16 MiB chunk takes tens of milliseconds, so that the
    thread that finishes first waits longest for the other: 4 MiB chunks
    made image-like float32 with ``'blosc-zstd-bitshuffle'`` dump 1.01 to
    1.03 times as fast and load 0.94 to 0.99 times (five runs of 24 or 32
    paired rounds), and with ``'blosc-lz4'`` 1.04 and 0.96; not adopted.

    Parameters
    ----------
    name : str
        A registered codec name.
    largest : int, default 0
        Bytes of the file's largest block (raw, before compression).

    Returns
    -------
    int
        The chunk length to give `compress_block`, in bytes.

    Raises
    ------
    ValueError
        If `name` is not a registered codec.
    """
    if not isinstance(get_compressor(name), _Blosc):
        return CHUNK_SIZE
    return 1 << max(20, min(24, (max(largest, 1) // BLOSC_CHUNKS).bit_length() - 1))


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


def _executor(threads):
    """The shared thread pool, grown to at least `threads` threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < threads:
            old = _pool
            _pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="joblite-codec")
            _pool_size = threads
            if old is not None:
                old.shutdown(wait=False)  # its queued chunks still run
        return _pool


_AHEAD_PER_WORKER = 8  # tasks queued per thread: a thread that finishes one never waits for the next
_AHEAD_BYTES = 1 << 26  # about the most input bytes whose compressed chunks are queued or held at once


def _ran_here(task, item):
    """A finished future holding ``task(item)``, run in the calling thread, or the Exception it raised."""
    future = concurrent.futures.Future()
    try:
        future.set_result(task(item))
    except Exception as exc:  # raised in its turn, as from a thread of the pool
        future.set_exception(exc)
    return future


def _in_order(task, items, workers, ahead):
    """Yield ``task(item)`` for each item, in order; up to `ahead` (at least ``2 * workers``) run ahead.

    The calling thread is one of the `workers`: ``workers - 1`` threads of
    the shared pool take the queued tasks in order, and while the next
    result is not ready, the calling thread runs the earliest task no
    thread has started.  On two cores this keeps two threads busy, not
    three competing for them: loads of 4 to 32 MiB ran 0.97 to 1.23 (most
    1.01 to 1.08) and dumps 0.97 to 1.11 times as fast as with two threads
    of the pool and a waiting caller (the median of 31 paired runs here),
    256 MiB 0.92 to 1.13 by codec and data.  The queue is deep
    for the same reason: a thread that submits the next task while the
    others run gets the CPU late, and a shallow queue runs dry.
    """
    if workers == 1 or len(items) <= 1:
        for item in items:
            yield task(item)
        return
    pool = _executor(workers - 1)
    pending = deque()  # (future, item), in order
    ahead = max(ahead, 2 * workers)

    def first_result():
        head = pending[0][0]
        while not head.done():
            for index, (future, item) in enumerate(pending):
                if future.cancel():  # no thread has started it: run it here
                    pending[index] = (_ran_here(task, item), item)
                    break
            else:
                break  # all are running: wait for the first
        return pending.popleft()[0].result()

    try:
        for item in items:
            if len(pending) == ahead:
                yield first_result()
            pending.append((pool.submit(task, item), item))
        while pending:
            yield first_result()
    finally:
        # after an error, or when the consumer stops early: nothing runs on after we return
        for future, _ in pending:
            future.cancel()
        concurrent.futures.wait([future for future, _ in pending])


def _scratch_view(nbytes):
    """A writable view of `nbytes` bytes, reused by each thread for every chunk."""
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or len(buffer) < nbytes:
        buffer = _scratch.buffer = bytearray(nbytes)
    return memoryview(buffer)[:nbytes]


def iter_compressed_chunks(data, itemsize, name, level, chunk_size=CHUNK_SIZE, workers=2):
    """Shuffle and compress `data` chunk by chunk; yield the compressed chunks and their checksums, in order.

    The arguments are checked at the call, before the first chunk.  Besides
    what the caller keeps, at most ``8 * workers`` compressed chunks, and no
    more than those of 64 MiB of `data` (but always ``2 * workers``), are
    held, with one chunk of scratch per thread.  To write a frame without
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
        Threads compressing chunks at once: the calling thread and
        ``workers - 1`` threads of a shared pool; 1 works in the calling
        thread only.

    Yields
    ------
    (bytes, int)
        Each compressed chunk and its ``xxh3_64`` digest, computed by the
        thread that compressed it; there are ``ceil(len(data) / chunk_length)``.

    Raises
    ------
    TypeError
        If `data` is not a buffer, or the codec returns something other than bytes.
    ValueError
        If `data` is not C-contiguous, `name` is not registered, `level` is
        not valid for it, or `itemsize`, `chunk_size` or `workers` is out of
        range (see `chunk_length`).
    """
    compress_chunk, starts, workers = _chunk_compressor(data, itemsize, name, level, chunk_size, workers)
    ahead = min(_AHEAD_PER_WORKER * workers, _AHEAD_BYTES // max(starts.step, 1))
    return _in_order(compress_chunk, starts, workers, ahead)


def _chunk_compressor(data, itemsize, name, level, chunk_size, workers):
    """Check the arguments; return ``compress_chunk(start)``, the chunks' start offsets and `workers`.

    ``compress_chunk`` gives the compressed chunk that starts at byte
    ``start`` of `data`, and its ``xxh3_64`` digest.
    """
    codec, level = compressor_and_level(name, level)
    view = _byte_view(data, "data")
    size = _int_in(itemsize, "itemsize", 1, MAX_CHUNK_SIZE)
    step = chunk_length(size, chunk_size)
    workers = _int_in(workers, "workers", 1, MAX_WORKERS)

    def compress_chunk(start):
        piece = view[start : start + step]
        if isinstance(codec, _Blosc):
            result = codec.compress(piece, level, size)
        else:
            if size > 1:
                scratch = _scratch_view(len(piece))
                _codec.shuffle(piece, size, scratch)
                piece = scratch
            result = codec.compress(piece, level)
        if not isinstance(result, bytes):
            raise TypeError(f"compressor {name!r} returned {type(result).__qualname__}, not bytes")
        return result, _checksum(result)

    return compress_chunk, range(0, len(view), step), workers


def compress_into(data, itemsize, name, level, write, chunk_size=CHUNK_SIZE, workers=2):
    """Shuffle and compress `data` chunk by chunk; hand each chunk to `write` at its place, from any thread.

    The threads share the chunks as `decompress_block`'s do (a shared
    counter, no task object or wake-up per chunk).  Once every chunk before
    it is compressed, a chunk's place is known: the thread that completes
    that prefix calls ``write(chunk, position)`` for each chunk it places,
    ``position`` being the chunk's byte offset from the first chunk's, so
    that the writes of both threads overlap the compression (a file of
    one's own: ``os.pwrite``; calls for different chunks may run at once).
    No thread takes a chunk more than 64 MiB of `data` (``2 * workers``
    chunks at least) past the first chunk not yet written, which bounds
    the compressed chunks held.  The chunks and their order are those of
    `iter_compressed_chunks`.

    Parameters
    ----------
    data, itemsize, name, level, chunk_size, workers :
        As for `iter_compressed_chunks`.
    write : callable
        ``write(chunk, position)``: `chunk` is bytes, `position` an int.

    Returns
    -------
    (list of int, list of int)
        The compressed size (bytes) and the ``xxh3_64`` digest of each chunk, in order.

    Raises
    ------
    TypeError, ValueError
        As `iter_compressed_chunks`, at the call; then what the codec or
        `write` raised for the first chunk that failed (the other threads
        stop taking chunks).
    """
    compress_chunk, starts, workers = _chunk_compressor(data, itemsize, name, level, chunk_size, workers)
    count = len(starts)
    sizes, digests = [0] * count, [0] * count
    ready = {}  # index -> a compressed chunk whose place is not known yet
    placed = [0, 0]  # chunks placed, and the position after them
    lock = threading.Lock()

    def task(index):
        chunk, digests[index] = compress_chunk(starts[index])
        mine = []
        with lock:
            ready[index] = chunk
            while placed[0] in ready:
                chunk = ready.pop(placed[0])
                sizes[placed[0]] = len(chunk)
                mine.append((chunk, placed[1]))
                placed[0] += 1
                placed[1] += len(chunk)
        for chunk, position in mine:
            write(chunk, position)

    window = max(2 * workers, _AHEAD_BYTES // max(starts.step, 1))
    _shared(task, range(count), workers, window)
    return sizes, digests


class Compression:
    """A block's compression into a file, started before the file is open: see `start_compression`."""

    def __init__(self, data, itemsize, name, level, chunk_size, workers):
        codec, level = compressor_and_level(name, level)
        if not isinstance(codec, _Blosc):
            _chunk_compressor(data, itemsize, name, level, chunk_size, workers)  # the checks, at the call
            self._encoder, self._arguments = None, (data, itemsize, name, level, chunk_size, workers)
            return
        view = _byte_view(data, "data")
        size = _int_in(itemsize, "itemsize", 1, MAX_CHUNK_SIZE)
        step = chunk_length(size, chunk_size)
        workers = _int_in(workers, "workers", 1, MAX_WORKERS)
        window = max(2 * workers, _AHEAD_BYTES // step)
        blocksize = codec.blocksize(level, size)
        self._encoder = _codec.BloscEncoder(
            view, step, size, codec.cname, codec.bitshuffle, level, -1, 0, window, blocksize
        )
        self._codec, self._name, self._level, self._view, self._step, self._size = codec, name, level, view, step, size
        self._finished = False
        self._encoder.start(max(min(workers, -(-len(view) // step)) - 1, 0))

    def finish(self, fd, offset):
        """Write the chunks, back to back from `offset` of the file open as `fd`; the calling thread joins in.

        Returns
        -------
        (list of int, list of int)
            The compressed size (bytes) and the ``xxh3_64`` digest of each chunk, in order.

        Raises
        ------
        TypeError, ValueError
            What the codec raised for the first chunk that failed.
        MemoryError
            If a chunk's buffer could not be allocated.
        OSError
            If a write failed (the other threads stop taking chunks).
        """
        if self._encoder is None:

            def write(chunk, position):
                pwrite_all(fd, memoryview(chunk), offset + position)

            data, itemsize, name, level, chunk_size, workers = self._arguments
            return compress_into(data, itemsize, name, level, write, chunk_size, workers)
        encoder = self._encoder
        self._finished = True
        try:
            encoder.set_file(fd, offset)
            encoder.run()
        except BaseException:
            encoder.cancel()
            raise
        failure = encoder.failure()
        if failure is None:
            return encoder.result()
        index, error = failure
        if error == errno.ENOMEM:
            raise MemoryError(f"no memory to compress chunk {index} with compressor {self._name!r}")
        if error:
            raise OSError(error, os.strerror(error))
        chunk = self._view[index * self._step : (index + 1) * self._step]
        self._codec.compress(chunk, self._level, self._size)  # raises the codec's own error
        raise ValueError(f"compressor {self._name!r} could not compress chunk {index}")

    def cancel(self):
        """Stop the threads and drop the chunks held, once `finish` is not going to be called; no-op after it."""
        if self._encoder is not None and not self._finished:
            self._finished = True
            self._encoder.cancel()


def reads_into_thread_buffers(name):
    """Whether `decompress_block`, given a `source`, reads the chunks of the codec `name` into buffers of its threads.

    True for the ``'blosc-*'`` codecs: their frame buffer (`data`) is then
    not touched past the frame header.  False for the others, whose chunks
    are read into their places in `data`, or for a name that is not
    registered.
    """
    try:
        return isinstance(get_compressor(name), _Blosc)
    except ValueError:
        return False


def wake_threads(workers=2):
    """Wake the ``workers - 1`` threads of the kernels' pool ahead of a ``'blosc-*'`` block's decoding or compression.

    The threads that `start_decompression` or `start_compression` will
    start (see `_codec.wake_threads`) are woken now, so that they are awake
    when the job comes, after the Python work that leads to it: a thread
    asleep takes tens of microseconds to wake.

    Raises
    ------
    ValueError
        If `workers` is not an int from 1 to `MAX_WORKERS`.
    """
    workers = _int_in(workers, "workers", 1, MAX_WORKERS)
    if workers > 1:
        _codec.wake_threads(workers - 1)


def start_compression(data, itemsize, name, level, chunk_size=CHUNK_SIZE, workers=2):
    """Start compressing `data` for a file that is not open yet; `Compression.finish` writes it there.

    The chunks, written back to back from the offset given to ``finish``,
    are those of `iter_compressed_chunks`.  The ``'blosc-*'`` codecs go
    through `_codec.BloscEncoder`: ``workers - 1`` threads of the kernels'
    own pool (threads that never run Python, see the encoder) start
    compressing at once, holding their chunks
    (no more than 64 MiB of `data`, ``2 * workers`` chunks at least) until
    ``finish(fd, offset)`` gives the file; then the calling thread joins
    them, and the threads write the chunks whose place they complete, as
    they go.  So a dump opens its file, writes its header and so on while
    the first chunks compress.  The other codecs start at ``finish``,
    through `compress_into` and ``os.pwrite``.  When ``finish`` is not
    going to be called (the file could not be opened), ``cancel()`` stops
    the threads and drops what they hold.

    Parameters
    ----------
    data, itemsize, name, level, chunk_size, workers :
        As for `iter_compressed_chunks` (`itemsize` 1 to 255 for the
        ``'blosc-*'`` codecs); `data` must not change until ``finish``
        or ``cancel`` returns.

    Returns
    -------
    Compression
        ``finish(fd, offset)``: `fd` a regular file open for writing,
        `offset` where the first chunk goes (bytes; the file position is
        left alone); it returns the compressed size (bytes) and the
        ``xxh3_64`` digest of each chunk, in order, and raises what the
        codec or a write raised for the first chunk that failed.

    Raises
    ------
    TypeError, ValueError
        As `iter_compressed_chunks`, at the call.
    """
    return Compression(data, itemsize, name, level, chunk_size, workers)


def compress_block(data, itemsize, name, level, chunk_size=CHUNK_SIZE, workers=2):
    """Shuffle and compress `data` into one framed block.

    Parameters and exceptions are those of `iter_compressed_chunks`.

    Returns
    -------
    bytes
        The frame: ``frame_header`` followed by the compressed chunks.
    """
    chunks = [chunk for chunk, _ in iter_compressed_chunks(data, itemsize, name, level, chunk_size, workers)]
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
    try:
        ratio = get_compressor(name).max_ratio
    except ValueError:  # not registered here: only the chunk length bounds it
        ratio = None
    return bound if ratio is None else min(bound, ratio * body)


def _undecodable(index, count, name, exc):
    """The ValueError for chunk `index` of `count` that codec `name` failed on with `exc`."""
    return ValueError(
        f"cannot decompress chunk {index} of {count} with compressor {name!r}: {type(exc).__name__}: {exc}"
    )


class Decompression:
    """A block's decompression, started before its caller needs the block: see `start_decompression`."""

    def __init__(self, data, raw_length, itemsize, name, out, chunk_size, workers, source, checksums):
        codec = get_compressor(name)
        size = _int_in(itemsize, "itemsize", 1, MAX_CHUNK_SIZE)
        step = chunk_length(size, chunk_size)
        workers = _int_in(workers, "workers", 1, MAX_WORKERS)
        raw_length = _int_in(raw_length, "raw_length", 0, sys.maxsize)
        frame = _byte_view(data, "data")
        target = None
        if out is not None:
            target = _byte_view(out, "out", writable=True)
            if len(target) != raw_length:
                raise ValueError(f"out holds {len(target)} bytes, but raw_length is {raw_length!r}")
        chunks = _codec.unpack_chunks(frame, raw_length, step)
        if checksums is not None and len(checksums) != len(chunks):
            raise ValueError(f"{len(checksums)} chunk checksums for {len(chunks)} chunks")
        self._codec, self._name, self._size, self._step, self._workers = codec, name, size, step, workers
        self._raw_length, self._frame, self._target, self._chunks = raw_length, frame, target, chunks
        self._source, self._checksums, self._finished = source, checksums, False
        self._decoder = None
        if target is not None and isinstance(codec, _Blosc):
            fd, offset = source if source is not None else (-1, 0)
            self._decoder = _codec.BloscDecoder(frame, chunks, step, target, codec.cname, checksums, fd, offset)
            self._decoder.start(max(min(workers, len(chunks)) - 1, 0))

    def finish(self):
        """Decompress the chunks not done yet, the calling thread joining in, and wait for the other threads.

        Raises
        ------
        ValueError
            What `decompress_block` raises for a chunk that fails.
        MemoryError
            If a codec could not allocate a chunk's memory.
        """
        self._finished = True
        if self._decoder is not None:
            self._finish_blosc()
            return
        codec, chunks, step, workers = self._codec, self._chunks, self._step, self._workers
        if self._target is not None and type(codec) is _LZ4:
            tasks, decode = _lz4_tasks(self._frame, chunks, step, self._size, self._target, workers, self._decompress)
        else:
            tasks = [(index, index + 1) for index in range(len(chunks))]

            def decode(first, stop):
                self._decompress(first)

        _run(tasks, decode, self._frame, chunks, workers, self._source, self._checksums)

    def cancel(self):
        """Stop the threads started and wait for them, once `finish` is not going to be called; no-op after it."""
        if self._decoder is not None and not self._finished:
            self._finished = True
            self._decoder.cancel()

    def _decompress(self, index):
        """Decompress chunk `index` through the codec's own path, check its length, unshuffle it into place."""
        offset, length = self._chunks[index]
        count, step, name = len(self._chunks), self._step, self._name
        start = index * step
        expected = min(step, self._raw_length - start)
        try:
            raw = self._codec.decompress(self._frame[offset : offset + length], expected)
        except MemoryError:
            raise
        except Exception as exc:  # whatever the codec raises on bad input
            raise _undecodable(index, count, name, exc) from exc
        got = memoryview(raw).nbytes
        if got != expected:
            raise ValueError(f"chunk {index} of {count} decompressed by {name!r} to {got} bytes, expected {expected}")
        if self._target is not None:
            _codec.unshuffle(raw, self._size, self._target[start : start + expected])

    def _finish_blosc(self):
        """Run the c-blosc decoder's loop here too (see `_codec.BloscDecoder`), then wait for its threads.

        The calling thread and the ``workers - 1`` threads of the kernels'
        own pool that ``__init__`` started read, check and decode the chunks:
        no GIL, no Python step per chunk, and no wait for a Python thread to
        take the GIL at either end.  A chunk that fails there goes through
        the codec's own path (`source` read, checksum,
        `_Blosc.decompress_into`), which raises the error that the failure
        deserves, as for every other codec.
        """
        decoder, codec, frame, chunks = self._decoder, self._codec, self._frame, self._chunks
        try:
            first = decoder.run()
        except BaseException:  # the pure twin's loop, interrupted: its threads stop before this returns
            decoder.cancel()
            raise
        if first >= 0:
            decode_one = _blosc_decoder(codec, frame, chunks, self._step, self._raw_length, self._target)
            _run(
                [(first, first + 1)],
                lambda index, _: decode_one(index),
                frame,
                chunks,
                1,
                self._source,
                self._checksums,
            )
            raise ValueError(f"cannot decompress chunk {first} of {len(chunks)} with compressor {codec.name!r}")


def _run(tasks, decode, frame, chunks, workers, source, checksums):
    """``decode(first, stop)`` each task, a range of chunks, `workers` at a time, reading through `source`.

    Each thread reads its range (``source.fill``) and checks each of its
    chunks against `checksums` (None: no check) just before it decodes them,
    while they are in its cache.
    """
    count = len(chunks)

    def task(bounds):
        first, stop = bounds
        if source is not None:
            _fill(source, frame, chunks[first][0], chunks[stop - 1][0] + chunks[stop - 1][1])
        if checksums is not None:
            for index in range(first, stop):
                offset, length = chunks[index]
                if _checksum(frame[offset : offset + length]) != checksums[index]:
                    raise ValueError(f"chunk {index} of {count}: checksum mismatch")
        decode(first, stop)

    _shared(task, tasks, workers)


def _fill(source, frame, start, stop):
    """Read bytes ``start:stop`` of `frame` from ``source = (fd, offset)``, the frame being at `offset` of `fd`."""
    fd, offset = source
    pread_all(fd, frame[start:stop], offset + start)


def pread_all(fd, view, offset):
    """Read exactly ``len(view)`` bytes at `offset` of the file descriptor `fd` into `view`.

    The file position is left alone.

    Parameters
    ----------
    fd : int
        A file descriptor open for reading.
    view : writable bytes-like
        Where the bytes go, C-contiguous; its length is the count to read.
    offset : int
        Where to read in the file (bytes).

    Raises
    ------
    ValueError
        ``truncated: ...`` if the file ends first.
    OSError
        If a read fails.
    """
    done, total = 0, len(view)
    while done < total:
        count = os.preadv(fd, [view[done:]], offset + done)
        if not count:
            raise ValueError(f"truncated: {done} of {total} bytes at offset {offset}")
        done += count


MAX_WRITE = 1 << 30  # per os.pwrite call: Linux writes at most 2 GiB - 4 KiB at once


def pwrite_all(fd, view, offset):
    """Write all of `view` to the file descriptor `fd` at `offset`, leaving the file position alone.

    Parameters
    ----------
    fd : int
        A file descriptor open for writing.
    view : bytes-like
        The bytes to write, C-contiguous.
    offset : int
        Where the first byte goes in the file (bytes).

    Raises
    ------
    OSError
        If a write fails, or writes nothing (``EIO``, as `_codec.BloscEncoder`
        reports it), which would otherwise loop forever.
    """
    done, total = 0, len(view)
    while done < total:
        put = os.pwrite(fd, view[done : done + MAX_WRITE], offset + done)
        if not put:
            raise OSError(errno.EIO, f"{os.strerror(errno.EIO)}: wrote nothing at offset {offset + done}")
        done += put


def _shared(task, items, workers, window=None):
    """``task(item)`` for each item, by the calling thread and ``workers - 1`` threads of the pool.

    Each thread takes the next item not taken (a shared counter) until none
    is left, as c-blosc's threads share a buffer's blocks: no task object,
    queue or wake-up per item, and a thread that finishes early takes the
    next item.  With a `window`, a thread waits to take item ``i`` until
    every item before ``i - window + 1`` is finished (a bound on what tasks
    hold).  Results are not kept.  Items are taken in order, so every item
    before one that failed was taken and is finished when this returns: the
    exception raised is that of the first item that failed, whatever the
    threads' timing.  The calling thread waits for the pool's threads
    before it returns, even when interrupted.
    """
    if workers == 1 or len(items) <= 1:
        for item in items:
            task(item)
        return
    counter = itertools.count()
    failures = []  # (index, exception): the threads take no item after a failed one
    stop = []  # set when the calling thread is interrupted
    finished = set()  # items finished after the first unfinished one, `done[0]`
    done = [0]
    turn = threading.Condition()

    def work():
        for index in counter:
            if index >= len(items):
                return
            if window is not None and index >= done[0] + window:
                with turn:
                    while index >= done[0] + window and not (failures or stop):
                        turn.wait()
            if stop or any(failed < index for failed, _ in failures):
                return
            try:
                task(items[index])
            except Exception as exc:
                failures.append((index, exc))
                with turn:
                    turn.notify_all()
                return
            if window is not None:
                with turn:
                    finished.add(index)
                    while done[0] in finished:
                        finished.remove(done[0])
                        done[0] += 1
                    turn.notify_all()

    pool = _executor(workers - 1)
    helpers = [pool.submit(work) for _ in range(min(workers - 1, len(items) - 1))]
    try:
        work()
    except BaseException:
        stop.append(True)
        with turn:
            turn.notify_all()
        raise
    finally:
        for helper in helpers:
            helper.cancel()  # not started by now: every item is taken, or the work stopped
        concurrent.futures.wait(helpers)
    if failures:
        raise min(failures, key=lambda failure: failure[0])[1]
    for helper in helpers:
        if not helper.cancelled():
            helper.result()  # what a helper raised that is not an Exception (work() lets it through)


def _blosc_decoder(codec, frame, chunks, step, raw_length, target):
    """The decoder of one chunk: Blosc decompresses (and unshuffles) it straight into `target`."""
    import numpy as np

    count = len(chunks)
    address = np.frombuffer(target, dtype=np.uint8).ctypes.data if count else 0

    def decompress_chunk(index):
        offset, length = chunks[index]
        start = index * step
        try:
            codec.decompress_into(frame[offset : offset + length], address + start, min(step, raw_length - start))
        except MemoryError:
            raise
        except Exception as exc:  # the header check's ValueError, or blosc_extension.error
            raise _undecodable(index, count, codec.name, exc) from exc

    return decompress_chunk


_PARTS_PER_WORKER = 4  # ranges of chunks per thread: a thread that finishes early takes another


def _lz4_tasks(frame, chunks, step, size, target, workers, decompress_chunk):
    """Ranges of lz4 chunks, each decoded and unshuffled into `target` by one call of the kernel.

    Each range is one call of `lz4_unshuffle` (no GIL, no per-chunk
    object), several ranges at once.  The first chunk that fails is
    decompressed again by `decompress_chunk`, which raises the codec's own
    error, as for every other codec.
    """
    count = len(chunks)
    parts = min(count, workers * _PARTS_PER_WORKER if workers > 1 else 1)
    bounds = [count * part // parts for part in range(parts + 1)] if parts else [0]

    def decode(first, stop):
        failed = _codec.lz4_unshuffle(frame, chunks, first, stop, step, size, target)
        if failed >= 0:
            decompress_chunk(failed)
            raise ValueError(f"cannot decompress chunk {failed} of {count} with compressor 'lz4'")

    return [(bounds[part], bounds[part + 1]) for part in range(parts)], decode


def decompress_block(
    data, raw_length, itemsize, name, out, chunk_size=CHUNK_SIZE, workers=2, source=None, checksums=None
):
    """Decompress a framed block and unshuffle it straight into `out`.

    The frame is validated before any chunk is decompressed; each chunk is
    checked against its checksum when `checksums` is given, then
    decompressed (``workers`` at a time), its length checked, and unshuffled
    into its place in `out`: no full-size intermediate copy.  Chunks of the
    built-in lz4 codec are decoded by ranges of chunks, each range in one call
    of the kernel (``lz4_unshuffle``: no GIL, no object per chunk), and those
    of the ``'blosc-*'`` codecs by each thread's loop of ``BloscDecoder``
    (read, check and decode without the GIL).

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
        Threads decompressing chunks at once: the calling thread and
        ``workers - 1`` threads of a shared pool (for the ``'blosc-*'``
        codecs, of the kernels' own pool: see `_codec.BloscDecoder`); 1
        works in the calling thread only.
    source : (int, int), optional
        ``(fd, offset)``: the frame's chunks are still in the file open as
        `fd`, where the frame starts at `offset` (bytes), so that reading
        overlaps decompressing: each thread reads the chunks it takes just
        before it checks and decodes them, into `data` (writable), or for
        the ``'blosc-*'`` codecs into a buffer of its own.  `data` must then
        already hold the frame header.  None: `data` holds the whole frame.
    checksums : sequence of int, optional
        The ``xxh3_64`` digest of each compressed chunk, as
        `iter_compressed_chunks` gives them: each chunk is checked by the
        thread that decodes it, before it decodes it.  None: no check.

    Raises
    ------
    TypeError
        If `data` or `out` is not a buffer.
    ValueError
        If an argument is invalid (as for `compress_block`; `out` read-only,
        not C-contiguous or of another length than `raw_length`), the frame is
        inconsistent (truncated, wrong chunk count, sizes that do not add up),
        `checksums` does not hold one digest per chunk, a chunk does not
        match its checksum, a chunk cannot be decompressed (the codec's own
        exception, such as ``zlib.error`` or ``LZ4BlockError``, is chained),
        or a chunk decompresses to another length than expected.  The
        message names the chunk, and the codec when it failed.
    """
    Decompression(data, raw_length, itemsize, name, out, chunk_size, workers, source, checksums).finish()


def start_decompression(
    data, raw_length, itemsize, name, out, chunk_size=CHUNK_SIZE, workers=2, source=None, checksums=None
):
    """Start `decompress_block` now; ``finish()`` of the result completes it, the calling thread joining in.

    For the ``'blosc-*'`` codecs, the ``workers - 1`` threads of the
    kernels' pool (see `_codec.BloscDecoder`) start reading, checking and
    decoding chunks at once, so that a loader can go on with its own work
    (unpickling up to the block) meanwhile; the other codecs start at
    ``finish``.  `data`, `out` and the file of `source` must stay as they
    are until ``finish`` or ``cancel`` returns, and nothing may read `out`
    before ``finish`` returns.

    Parameters
    ----------
    data, raw_length, itemsize, name, out, chunk_size, workers, source, checksums :
        As for `decompress_block`.

    Returns
    -------
    Decompression
        ``finish()`` returns None once `out` holds the block, and raises
        what `decompress_block` raises; ``cancel()``, when ``finish`` is
        not going to be called, stops the threads (each completes the chunk
        it holds) and waits for them.

    Raises
    ------
    TypeError, ValueError
        As `decompress_block`, for the arguments and the frame header, at
        the call; a chunk's failure is raised by ``finish``.
    """
    return Decompression(data, raw_length, itemsize, name, out, chunk_size, workers, source, checksums)


def verify_block(data, raw_length, itemsize, name, chunk_size=CHUNK_SIZE, workers=2, checksums=None):
    """Check that a framed block decompresses to `raw_length` bytes, keeping none of them.

    What `decompress_block` checks, in the memory of a few chunks: a reader
    that cannot allocate a block's raw length tells a corrupt block (this
    raises) from a valid one that needs more memory than there is.

    Parameters and exceptions are those of `decompress_block`, without `out`.
    """
    Decompression(data, raw_length, itemsize, name, None, chunk_size, workers, None, checksums).finish()
