"""The container file of :func:`joblite.dump`: its writer (format version 2) and its reader (versions 1 and 2).

A container is a header, a pickle stream (protocol 5), one 64-byte aligned
block per out-of-band buffer (a numpy array's bytes, compressed per block in
independent chunks when asked), a block table and a footer, each part with an
``xxh3_64`` checksum (a compressed part: of its frame header and the list of
its chunks' checksums that follows its frame); ``docs/format_persistence.rst``
specifies it.  This
module knows the bytes only: what the stream means (the pickler and the
rebuild functions it names) is :mod:`joblite.persistence`'s.

:func:`write` writes one; :class:`Container` validates one and hands out its
pickle stream and blocks; :func:`verify_file` checks one without unpickling
it.  The cache store reads its entries through :class:`Container` and names
files with :func:`checksum`.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import mmap
import os
import struct

import xxhash

from . import _blocks, _impl
from ._safe_unpickle import CorruptFileError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "ALIGNMENT",
    "FLAG_MAPPED_WRITABLE",
    "SMALL_FILE",
    "BlockEntry",
    "Container",
    "checksum",
    "compressing",
    "verify_file",
    "write",
]

#: Version of the container format written by :func:`write`; readers also read version 1.
FORMAT_VERSION = 2
_READ_VERSIONS = (1, 2)

MAGIC = b"\x89JOBLITE"
#: Set when a file was memory-mapped writable ('r+'): its blocks may have been
#: written through the mapping, so their checksums no longer hold.
FLAG_MAPPED_WRITABLE = 1
#: Header hint bit: a compressed part of the file holds more than one chunk of a ``'blosc-*'``
#: codec, which the kernels' threads decode (a hint for speed: readers trust nothing else to it).
HINT_KERNEL_THREADS = 1
FOOTER_MAGIC = b"JLBLOCKS"
ALIGNMENT = 64
_HEADER = struct.Struct("<8sHHIQQQB7xQQ")  # magic .. checksum of the header itself
_ENTRY = struct.Struct("<QQQBB6xQQ")  # one block of the table
_FOOTER = struct.Struct("<8sQQQQQ8xQ")  # magic .. checksum of the footer itself
assert _HEADER.size == ALIGNMENT and _FOOTER.size == ALIGNMENT and _ENTRY.size == 48

#: Files up to this size (bytes) are read in one call when loaded.
SMALL_FILE = 1 << 16
_MAX_READ_CHUNK = 1 << 24
_READ_PIECE = 1 << 20  # hashed while still in L2: measured fastest here
_OVERLAP_MIN = 1 << 23  # from this size on, I/O and checksum run side by side
_PIECE = 1 << 20  # hashed, then written by the same thread while still in its cache (`_write_hashed`)
_PARALLEL_READ_PIECE = 1 << 24
_PREALLOCATE_MIN = 1 << 20  # reserving blocks first pays off for large files only
_PIPELINE_MIN = 1 << 20  # compressed blocks from this size on are read by the threads that decode them
_COMPRESSED_STREAM_MIN = 1 << 12  # a shorter pickle stream is stored as it is: compressing costs more than it saves
_TAIL = 1 << 13  # read at once when a reader opens a file: its footer, block table and last checksum list


def checksum(buffer):
    """The ``xxh3_64`` digest (an int) of `buffer`, as every part of a container carries it."""
    return xxhash.xxh3_64_intdigest(buffer)


def _padding(offset):
    return -offset % ALIGNMENT


def _checksum_list(checksums):
    """The stored list of a compressed part's chunk checksums: one ``u64`` each."""
    return struct.pack(f"<{len(checksums)}Q", *checksums)


def _compressed_part(chunks):
    """The pieces of a compressed part from its ``(chunk, checksum)`` pairs, and the part's checksum.

    Version 2 stores a compressed part as its frame (header, then chunks)
    followed by the list of its chunks' checksums; the part's own checksum
    covers the frame header and that list, which a reader checks first.
    """
    header = _blocks.frame_header([len(chunk) for chunk, _ in chunks])
    trailer = _checksum_list([digest for _, digest in chunks])
    return [header, *(chunk for chunk, _ in chunks), trailer], checksum(header + trailer)


# -- writing ---------------------------------------------------------------------------
def _chunk_size(pickled, blocks, codec):
    """The chunk length (bytes) of every compressed part of the container of `pickled` and `blocks`."""
    if not codec:
        return _blocks.CHUNK_SIZE
    return _blocks.default_chunk_size(codec, max((array.nbytes for array, _ in blocks), default=len(pickled)))


def _hints(stream_length, blocks, codec, chunk_size):
    """The header's hint bits for `blocks` and a compressed pickle stream of `stream_length` bytes (0: none)."""
    if not codec or not _blocks.reads_into_thread_buffers(codec):
        return 0
    parts = [(stream_length, 1)] + [(array.nbytes, _shuffled_itemsize(size)) for array, size in blocks]
    if any(nbytes > _blocks.chunk_length(size, chunk_size) for nbytes, size in parts):
        return HINT_KERNEL_THREADS
    return 0


def hints(head):
    """The hint bits of the header that a container file's first bytes `head` hold, not verified (0 if too short).

    A reader acts on them before it verifies the header, for speed only:
    ``HINT_KERNEL_THREADS`` wakes the kernels' threads (see
    `joblite._blocks.wake_threads`) while the container is read.
    """
    return int.from_bytes(head[12:16], "little") if len(head) >= 16 else 0


def _shuffled_itemsize(itemsize):
    """The item size a block is shuffled by: its items' size, 1 for items of 256 bytes or more."""
    return itemsize if 0 < itemsize < 256 else 1


def _compressed_to_file(array, itemsize, chunk_size):
    """Whether `_write_compressed` writes the block of `array` chunk by chunk as it compresses, to a file."""
    return array.flags.c_contiguous and array.nbytes > _blocks.chunk_length(itemsize, chunk_size)


@contextlib.contextmanager
def compressing(pickled, blocks, codec, level):
    """Start compressing the first block that :func:`write` will write to a file as it compresses it.

    A dump's first large block starts compressing, on a thread of the
    kernels' pool, before its file is open: meanwhile the calling thread sweeps the
    folder, names and opens the temporary file and writes the header.  On
    exit, a compression that :func:`write` did not finish is cancelled.

    Parameters
    ----------
    pickled, blocks, codec, level :
        As for :func:`write`, which must be called with ``preallocate=True``.

    Yields
    ------
    (int, joblite._blocks.Compression) or None
        The block's index and its compression, to give :func:`write` as
        `started`; None when no block qualifies (no codec, or no contiguous
        block of two chunks or more).
    """
    started = None
    try:
        chunk_size = _chunk_size(pickled, blocks, codec)
        for index, (array, itemsize) in enumerate(blocks if codec else ()):
            itemsize = _shuffled_itemsize(itemsize)
            if _compressed_to_file(array, itemsize, chunk_size):
                started = index, _blocks.start_compression(array, itemsize, codec, level, chunk_size)
                break
        yield started
    finally:
        if started is not None:
            started[1].cancel()


def write(fileobj, pickled, blocks, codec, level, preallocate=False, started=None):
    """Write a container to the binary file object `fileobj`, from its current position.

    Parameters
    ----------
    fileobj : binary file object
        Written sequentially, never seeked.
    pickled : bytes-like
        The pickle stream (protocol 5) whose out-of-band buffers are `blocks`, in order.
    blocks : list of (numpy.ndarray, int)
        Each block's array and the item size (bytes) its compression shuffles
        by: a contiguous array as a flat uint8 view of its memory, a
        non-contiguous one as itself (written in C order, in bounded chunks).
    codec : str or None
        A codec name of :mod:`joblite.compressors` for every block, and for
        the stream when it is 4 KiB or longer (a shorter one is stored as
        it is), or None; `level` is its level.
    preallocate : bool, optional
        `fileobj` is a regular file of our own: reserve the disk blocks of a
        large uncompressed file first, which makes the large writes faster,
        and write large uncompressed blocks straight to its descriptor while
        they are hashed (see `_write_hashed`).
    started : (int, joblite._blocks.Compression), optional
        What :func:`compressing` yielded for the same arguments: the block
        whose compression started before `fileobj` was open (`preallocate`
        must be true).

    Returns
    -------
    int
        The number of bytes written.
    """
    codecs = ["none", codec] if codec else ["none"]
    chunk_size = _chunk_size(pickled, blocks, codec)
    stream_codec = len(codecs) - 1 if len(pickled) >= _COMPRESSED_STREAM_MIN else 0
    if stream_codec:
        pieces, stream_checksum = _compressed_part(
            list(_blocks.iter_compressed_chunks(pickled, 1, codec, level, chunk_size))
        )
        stored = b"".join(pieces)
    else:
        stored, stream_checksum = pickled, checksum(pickled)
    hints = _hints(len(pickled) if stream_codec else 0, blocks, codec, chunk_size)
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, 0, hints, len(stored), len(pickled), stream_checksum, stream_codec, chunk_size, 0
    )
    if preallocate and not codec:
        names_length = sum(1 + len(name) for name in codecs) + 2
        total = _planned_length(
            len(stored), [array.nbytes for array, _ in blocks], len(blocks) * _ENTRY.size + names_length
        )
        if total >= _PREALLOCATE_MIN:
            _impl.fileio.preallocate(fileobj.fileno(), total)
    out = _Writer(fileobj, fileobj.fileno() if preallocate else None)
    out.write(header[:-8] + struct.pack("<Q", checksum(header[:-8])))
    out.write(stored)
    table = bytearray()
    for index, (array, itemsize) in enumerate(blocks):
        out.pad()
        itemsize = _shuffled_itemsize(itemsize)
        offset = out.position
        if codec:
            compression = started[1] if started is not None and started[0] == index else None
            digest = _write_compressed(out, array, itemsize, codec, level, chunk_size, compression)
            raw_length = array.nbytes
        else:
            hasher = xxhash.xxh3_64()
            raw_length = _write_array(out, array, hasher)
            digest = hasher.intdigest()
        table += _ENTRY.pack(offset, out.position - offset, raw_length, len(codecs) - 1, itemsize, digest, 0)
    table += struct.pack("<H", len(codecs))
    for name in codecs:
        encoded = name.encode("ascii")
        table += struct.pack("<B", len(encoded)) + encoded
    out.pad()
    table_offset = out.position
    out.write(table)
    footer = _FOOTER.pack(
        FOOTER_MAGIC, table_offset, len(table), len(blocks), checksum(table), out.position + ALIGNMENT, 0
    )
    out.write(footer[:-8] + struct.pack("<Q", checksum(footer[:-8])))
    return out.position


def _write_array(out, array, digest):
    """Write `array`'s bytes in C order (non-contiguous ones in bounded chunks); return the count."""
    import numpy as np

    if array.flags.c_contiguous:
        _write_hashed(out, array, digest)
        return array.nbytes
    chunks = np.nditer(
        array,
        flags=["external_loop", "buffered", "zerosize_ok"],
        buffersize=max(1, (1 << 20) // max(array.itemsize, 1)),
        order="C",
    )
    for chunk in chunks:
        data = np.ascontiguousarray(chunk).view(np.uint8)
        digest.update(data)
        out.write(data)
    return array.nbytes


def _write_compressed(out, array, itemsize, codec, level, chunk_size, compression=None):
    """Write the compressed part of `array`'s bytes in C order; return its checksum.

    To a file of our own (``out.fd``), a contiguous block of more than one
    chunk is written chunk by chunk as the threads compress them
    (`joblite._blocks.start_compression`, or `compression` if it started
    already: each chunk is written with ``pwrite`` at its offset by the
    thread that places it), after the space of the frame header, which is
    written last: the writes overlap the compression and are shared by the
    threads.  Each chunk's checksum comes from the thread that compressed
    it.  Otherwise the block is compressed whole, then written.  The bytes
    are the same either way.
    """
    if out.fd is None or not _compressed_to_file(array, itemsize, chunk_size):
        pieces, digest = _compressed_part(_compressed_chunks(array, itemsize, codec, level, chunk_size))
        for piece in pieces:
            out.write(piece)
        return digest
    count = -(-array.nbytes // _blocks.chunk_length(itemsize, chunk_size))
    out.flush()
    header_offset = os.lseek(out.fd, 0, os.SEEK_CUR)
    first = header_offset + 4 + 4 * count
    if compression is None:
        compression = _blocks.start_compression(array, itemsize, codec, level, chunk_size)
    sizes, digests = compression.finish(out.fd, first)
    header, trailer = _blocks.frame_header(sizes), _checksum_list(digests)
    _blocks.pwrite_all(out.fd, memoryview(trailer), first + sum(sizes))
    _blocks.pwrite_all(out.fd, memoryview(header), header_offset)
    end = first + sum(sizes) + len(trailer)
    os.lseek(out.fd, end, os.SEEK_SET)
    out.position += end - header_offset
    return checksum(header + trailer)


def _compressed_chunks(array, itemsize, codec, level, chunk_size):
    """The ``(chunk, checksum)`` pairs of `array`'s bytes in C order, compressed.

    A contiguous block (a uint8 view) is compressed by several threads; a
    non-contiguous array is gathered a chunk at a time into one chunk of
    scratch, so that no full copy is made.  The bytes are the same either way.
    """
    import numpy as np

    if array.flags.c_contiguous:
        return list(_blocks.iter_compressed_chunks(array if array.nbytes else b"", itemsize, codec, level, chunk_size))
    step = _blocks.chunk_length(itemsize, chunk_size)
    scratch = np.empty(step, dtype=np.uint8)
    chunks, filled = [], 0
    for piece in np.nditer(
        array, flags=["external_loop", "buffered", "zerosize_ok"], buffersize=max(1, step // array.itemsize), order="C"
    ):
        data = np.ascontiguousarray(piece).view(np.uint8)
        start = 0
        while start < data.nbytes:
            take = min(step - filled, data.nbytes - start)
            scratch[filled : filled + take] = data[start : start + take]
            filled += take
            start += take
            if filled == step:
                chunks.extend(_blocks.iter_compressed_chunks(scratch, itemsize, codec, level, chunk_size, workers=1))
                filled = 0
    if filled:
        chunks.extend(_blocks.iter_compressed_chunks(scratch[:filled], itemsize, codec, level, chunk_size, workers=1))
    return chunks


def _write_hashed(out, data, digest):
    """Write the C-contiguous uint8 array `data` through the `_Writer` `out` and feed it to `digest`.

    For large data written to a file of our own (``out.fd``), two helper
    threads take turns over 1 MiB pieces: each hashes its piece when the
    other has hashed the one before (the digest is a stream), then writes it
    with ``os.pwrite`` straight from the array's memory while the other
    hashes the next.  Both calls release the GIL.  Each piece is written by
    the core that has just hashed it, from its own cache: the write, which
    is the critical path, copies from cache rather than from memory, and
    with two cores the checksum is off that path (256 MiB: 0.98-1.14x
    ``np.save`` with both cores free, against 0.87-1.05x for one whole
    write beside a hashing thread).  This thread waits for both, even when
    interrupted; they write through a duplicate of the descriptor that they
    close themselves.  Other file objects are hashed, then written whole.
    """
    if data.nbytes < _OVERLAP_MIN or out.fd is None:
        digest.update(data)
        out.write(data)
        return
    import _thread

    out.flush()
    view = memoryview(data)
    start = os.lseek(out.fd, 0, os.SEEK_CUR)
    fd = os.dup(out.fd)  # the threads' own, closed by them: never another file's, whatever happens here
    turns = (_thread.allocate_lock(), _thread.allocate_lock())  # whose piece is hashed next
    turns[1].acquire()
    failure = []  # the first error stops the work; the turns go on, so that no thread waits forever

    def take_turns(parity):
        for offset in range(parity * _PIECE, len(view), 2 * _PIECE):
            piece = view[offset : offset + _PIECE]
            turns[parity].acquire()
            try:
                if not failure:
                    digest.update(piece)
            except BaseException as exc:
                failure.append(exc)
            finally:
                turns[1 - parity].release()
            try:
                if not failure:
                    _blocks.pwrite_all(fd, piece, start + offset)
            except BaseException as exc:
                failure.append(exc)

    def odd_pieces(finished):
        try:
            take_turns(1)
        finally:
            finished.release()

    def even_pieces(done):
        # Not the calling thread, which alone gets KeyboardInterrupt: the turns are never cut short.
        try:
            finished = _thread.allocate_lock()
            finished.acquire()
            try:
                _thread.start_new_thread(odd_pieces, (finished,))
            except BaseException as exc:  # no second thread: nothing was written
                failure.append(exc)
                return
            take_turns(0)
            finished.acquire()
        finally:
            os.close(fd)
            ended.append(True)  # before the release: the caller may be interrupted right after acquiring
            done.release()

    done = _thread.allocate_lock()
    done.acquire()
    ended = []
    try:
        _thread.start_new_thread(even_pieces, (done,))
    except BaseException:
        os.close(fd)
        raise
    interrupted = None
    while True:
        try:
            # A KeyboardInterrupt may land while waiting or just after the lock is taken:
            # `ended`, not the lock, says whether the threads are done.
            if ended:
                break
            done.acquire()
        except BaseException as exc:  # raised once no write is left
            interrupted = exc
    if interrupted is not None:
        raise interrupted
    if failure:
        raise failure[0]
    os.lseek(out.fd, start + len(view), os.SEEK_SET)
    out.position += len(view)


class _Writer:
    """Counts what it writes, so that offsets are known without seeking.

    `fd` is the descriptor of a regular file of our own (None otherwise):
    large blocks are then written to it directly (`_write_hashed`).
    """

    def __init__(self, fileobj, fd=None):
        self.write_raw = fileobj.write
        self.flush = getattr(fileobj, "flush", lambda: None)
        self.fd = fd
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


# -- reading ---------------------------------------------------------------------------
#: One entry of the block table: where the block is (bytes from the file's start),
#: its stored and raw lengths, its codec index, item size and ``xxh3_64`` checksum.
BlockEntry = collections.namedtuple("BlockEntry", "offset length raw_length codec itemsize checksum")

_CODEC_LISTS: dict[bytes, Any] = {}  # bytes of a block table's codec list -> the parsed names


#: A frame buffer of `Container._start_decompressed`, kept for the next large block.
_SPARE_FRAMES: list[Any] = []


def _spare_frame(length):
    """A writable buffer of at least `length` bytes for a frame whose chunks the threads read from the file.

    For the codecs whose threads read the chunks into buffers of their own
    (`joblite._blocks.reads_into_thread_buffers`), only the frame's header
    is written there.  So it is an anonymous memory map, whose pages cost
    nothing until they are touched, kept for the next large block, not
    memory of the heap: a temporary of the frame's size allocated and
    freed on each load, beside the array that outlives it, made the heap
    give that array fresh pages in some processes here (page faults on 3
    of its 16 MiB, which doubled the time of a 16 MiB load of random
    floats), and a new map for each load cost more than it saved
    (mapping, the header page's fault and unmapping: 7% of a 16 MiB load).
    """
    try:
        frame = _SPARE_FRAMES.pop()
    except IndexError:  # none yet, or another thread's load has it
        frame = None
    if frame is None or len(frame) < length:
        frame = mmap.mmap(-1, length)
    return frame


def _pread_bytes(fd, length, offset):
    """Up to `length` bytes at `offset` of the file descriptor `fd`: fewer only where the file ends."""
    pieces, done = [], 0
    while done < length:
        piece = os.pread(fd, min(length - done, _MAX_READ_CHUNK), offset + done)
        if not piece:
            break
        pieces.append(piece)
        done += len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class Container:
    """The validated header, footer and block table of a container file.

    Parameters
    ----------
    fileobj : int, binary file object or None
        An OS file descriptor, or a seekable file object, of the file, the
        container starting at offset 0; None when `data` is given.  Parts
        are read at their offsets with ``os.pread`` when there is a
        descriptor (a file object's ``fileno()``), so the position of
        `fileobj` is not relied on.
    where : str
        How errors name the file.
    data : bytes or bytearray, optional
        The whole file, when it is already read (a small file, or one read
        from a stream that cannot seek cheaply): then `fileobj` is not read.
    head : bytes, optional
        The file's first bytes, when they are already read: the parts that
        lie within them (the header, a short pickle stream, the first
        block's frame header) are not read again.

    Attributes
    ----------
    version : int
        The header's format version: 1 or 2.
    flags : int
        The header's flags (:data:`FLAG_MAPPED_WRITABLE`).
    codecs : tuple of str
        The codec names, ``'none'`` first; a block's ``codec`` indexes it.
    blocks : list of BlockEntry
        The block table.
    pickle_length, pickle_raw_length : int
        Stored and raw (decompressed) lengths of the pickle stream (bytes).
    pickle_codec : int
        The codec index of the pickle stream.

    Raises
    ------
    CorruptFileError
        If the file is truncated, corrupt or not a container of this format
        version, naming `where`, the part and what is wrong.
    """

    def __init__(self, fileobj, where, data=None, head=b""):
        self.where = where
        self.data = data
        self.file = fileobj if not isinstance(fileobj, int) else None
        self.fd = fileobj if isinstance(fileobj, int) else self._fileno()
        self._read_already = ((0, head),)
        self._decoding = None  # (block index, _BlockDecoding or None), from start_decoding
        self._deferred = []  # (_BlockDecoding, entry, part) of the blocks that block(defer=True) gave undecoded
        header = self.read(0, ALIGNMENT, "header")
        (
            magic,
            self.version,
            self.flags,
            _,
            self.pickle_length,
            self.pickle_raw_length,
            self.pickle_checksum,
            self.pickle_codec,
            self.chunk_size,
            header_checksum,
        ) = _HEADER.unpack(header)
        if magic != MAGIC:
            self.fail("header", f"bad magic bytes {magic!r}")
        if checksum(header[:-8]) != header_checksum:
            self.fail("header", "checksum mismatch")
        if not 1 <= self.chunk_size <= _MAX_READ_CHUNK:
            # Also bounds what a small forged file can claim to decompress to.
            self.fail("header", f"chunk size {self.chunk_size} is out of range (1 to {_MAX_READ_CHUNK})")
        if self.version not in _READ_VERSIONS or self.flags & ~FLAG_MAPPED_WRITABLE:
            self.fail(
                "header",
                f"format version {self.version} (flags {self.flags}) is not supported by this "
                f"joblite, which reads versions {' and '.join(map(str, _READ_VERSIONS))}",
            )
        size = self._size()
        if size < 2 * ALIGNMENT:
            self.fail("footer", f"file is truncated ({size} bytes)")
        if self.fd is not None and size > len(head):
            # One read for the footer, the block table before it and the last block's checksums.
            start = max(size - _TAIL, len(head))
            self._read_already = ((0, head), (start, _pread_bytes(self.fd, size - start, start)))
        footer = self.read(size - ALIGNMENT, ALIGNMENT, "footer")
        magic, table_offset, table_length, n_blocks, table_checksum, file_length, footer_checksum = _FOOTER.unpack(
            footer
        )
        if magic != FOOTER_MAGIC or checksum(footer[:-8]) != footer_checksum:
            self.fail("footer", "missing or corrupt (the file may be truncated)")
        if file_length != size:
            self.fail("footer", f"the file has {size} bytes, the footer says {file_length}")
        pickle_end = ALIGNMENT + self.pickle_length
        if not (
            pickle_end <= table_offset
            and table_offset + table_length == size - ALIGNMENT
            and n_blocks * _ENTRY.size <= table_length
        ):
            self.fail("block table", "offsets are inconsistent")
        table = self.read(table_offset, table_length, "block table")
        if checksum(table) != table_checksum:
            self.fail("block table", "checksum mismatch")
        self.codecs = self._codec_names(table, n_blocks * _ENTRY.size)
        if self.pickle_codec >= len(self.codecs):
            self.fail("header", f"codec index {self.pickle_codec} is out of range")
        if self.pickle_codec == 0 and self.pickle_raw_length != self.pickle_length:
            self.fail("header", "uncompressed pickle stream with two lengths")
        self._check_raw_length("pickle stream", self.pickle_codec, self.pickle_length, self.pickle_raw_length)
        self.blocks = []
        previous_end = pickle_end
        for index in range(n_blocks):
            entry = BlockEntry(*_ENTRY.unpack_from(table, index * _ENTRY.size)[:6])
            offset, length, raw_length, codec, itemsize, _ = entry
            if offset % ALIGNMENT or offset < previous_end or offset + length > table_offset:
                self.fail(f"block {index}", f"offset {offset} and length {length} are out of bounds")
            if codec >= len(self.codecs) or itemsize == 0:
                self.fail(f"block {index}", f"codec index {codec} or itemsize {itemsize} is invalid")
            if codec == 0 and raw_length != length:
                self.fail(f"block {index}", f"uncompressed block of {length} bytes claims {raw_length}")
            self._check_raw_length(f"block {index}", codec, length, raw_length, itemsize)
            previous_end = offset + length
            self.blocks.append(entry)

    def start_decoding(self):
        """Start reading and decoding this file's first large compressed block now, for :meth:`block` to finish.

        A loader calls it as soon as the container is read, before the
        Python work that precedes the block (verifying the pickle stream,
        unpickling up to the block, or the whole stream with
        ``block(defer=True)``), and :meth:`cancel_decoding` once the
        load ends: the kernels' thread decodes chunks meanwhile (see
        `joblite._blocks.start_decompression`).  Only a block that
        :meth:`block` reads while the kernels' threads decode it (a
        version-2 file read through its descriptor, a ``'blosc-*'`` block
        of ``_PIPELINE_MIN`` stored bytes or more) starts so; nothing starts
        when its memory cannot be allocated (:meth:`block` then tells a
        corrupt block from a valid one that needs more memory).

        Raises
        ------
        CorruptFileError
            If the block's frame header or checksum list is corrupt.
        """
        for index, entry in enumerate(self.blocks):
            if self._pipelined(entry):
                if _blocks.reads_into_thread_buffers(self.codecs[entry.codec]):
                    self._decoding = (index, self._start_decompressed(entry, f"block {index}"))
                return

    def decoding_started(self):
        """Whether :meth:`start_decoding` started a block's decoding that :meth:`block` has not taken yet."""
        return self._decoding is not None

    def _pipelined(self, entry):
        """Whether :meth:`block` reads the block `entry` while its chunks are decoded (`_start_decompressed`)."""
        return entry.codec > 0 and self.version > 1 and self.fd is not None and entry.length >= _PIPELINE_MIN

    def cancel_decoding(self):
        """Stop what :meth:`start_decoding` and :meth:`block` started and did not finish, and wait for their threads."""
        if self._decoding is not None:
            started = self._decoding[1]
            self._decoding = None
            if started is not None:
                started.cancel()
        deferred, self._deferred = self._deferred, []
        for started, _, _ in deferred:
            started.cancel()

    def finish_deferred(self):
        """Finish decoding the blocks that :meth:`block` gave undecoded (``defer=True``), in order.

        Raises
        ------
        CorruptFileError
            If a block is corrupt; the blocks after it are not finished
            (:meth:`cancel_decoding` stops them).
        MemoryError
            If a codec could not allocate a chunk's memory.
        """
        while self._deferred:
            started, entry, part = self._deferred[0]
            self._finish_decompressed(started, entry, part)
            del self._deferred[0]

    def _check_raw_length(self, part, codec, length, raw_length, itemsize=1):
        """Refuse a raw length the stored bytes cannot hold, before memory is allocated for it."""
        if codec:
            name = self.codecs[codec]
            possible = _blocks.max_raw_length(name, length, itemsize, self.chunk_size)
            if raw_length > possible:
                self.fail(
                    part,
                    f"claims {raw_length} raw bytes, but its {length} stored bytes of {name!r} "
                    f"data can hold at most {possible}",
                )

    def fail(self, part, what):
        """Raise :class:`CorruptFileError` naming the file, `part` and `what` is wrong."""
        raise CorruptFileError(f"{self.where}: {part}: {what}")

    def _size(self):
        """The file's length (bytes)."""
        if self.data is not None:
            return len(self.data)
        if self.fd is not None:
            return os.fstat(self.fd).st_size
        return self.file.seek(0, io.SEEK_END)

    def read(self, offset, length, part):
        """Exactly `length` bytes at `offset`, or :meth:`fail` naming `part` as truncated."""
        if self.data is not None:
            return self._slice(self.data, offset, length, part)
        for start, piece in self._read_already:
            if start <= offset and offset + length <= start + len(piece):
                return piece[offset - start : offset - start + length]
        if self.fd is not None:
            return self._slice(_pread_bytes(self.fd, length, offset), 0, length, part, offset)
        self.file.seek(offset)
        return self._slice(self.file.read(length), 0, length, part, offset)

    def _slice(self, data, start, length, part, offset=None):
        """``data[start:start + length]``, or :meth:`fail` naming `part` as truncated at `offset`."""
        piece = data[start : start + length]
        if len(piece) != length:
            where = start if offset is None else offset
            self.fail(part, f"truncated: {len(piece)} of {length} bytes at offset {where}")
        return piece

    def _codec_names(self, table, start):
        key = bytes(table[start:])
        names = _CODEC_LISTS.get(key)
        if names is None:
            names = self._parse_codec_names(table, start)
            if len(_CODEC_LISTS) < 64:  # a handful of distinct lists in practice
                _CODEC_LISTS[key] = names
        return names

    def _parse_codec_names(self, table, start):
        try:
            (count,) = struct.unpack_from("<H", table, start)
            names, position = [], start + 2
            for _ in range(count):
                (length,) = struct.unpack_from("<B", table, position)
                name = bytes(table[position + 1 : position + 1 + length]).decode("ascii")
                if len(name) != length:
                    raise struct.error("name runs past the table")
                names.append(name)
                position += 1 + length
        except (struct.error, UnicodeDecodeError) as exc:
            self.fail("block table", f"codec names are corrupt ({exc})")
        if not names or names[0] != "none":
            self.fail("block table", f"codec list {names!r} does not start with 'none'")
        return tuple(names)

    def _decompressed(self, stored, raw_length, itemsize, codec, part, checksums=None):
        """A new uint8 array of the `raw_length` bytes that the frame `stored` decompresses to.

        `checksums`: its chunks' checksums (version 2), checked as they are decoded.
        """
        import numpy as np

        name = self.codecs[codec]
        try:
            try:
                out = np.empty(raw_length, dtype=np.uint8)  # not zero-filled: pages come as written
            except MemoryError:
                # The claim is within what the stored bytes can hold (bz2 has no tighter bound):
                # a corrupt block is reported as such, a valid one really needs the memory.
                _blocks.verify_block(stored, raw_length, itemsize, name, self.chunk_size, checksums=checksums)
                raise
            _blocks.decompress_block(stored, raw_length, itemsize, name, out, self.chunk_size, checksums=checksums)
        except ValueError as exc:  # also an unknown codec: install it, or register_compressor
            self.fail(part, str(exc))
        return out

    def _read_verified(self, offset, view, expected, part):
        """Read into `view` and verify its checksum against `expected` (None: no check), piece by piece.

        Small blocks: each piece is hashed right after it is read, while it is
        still in cache.  Large blocks: two threads read while this one hashes.
        """
        digest = xxhash.xxh3_64()
        total = len(view)
        if self.data is not None:
            with memoryview(self.data) as data:
                for start in range(0, total, _READ_PIECE):
                    piece = view[start : start + _READ_PIECE]
                    piece[:] = self._slice(data, offset + start, len(piece), part)
                    digest.update(piece)
        elif total < _OVERLAP_MIN or self.fd is None:
            for start in range(0, total, _READ_PIECE):
                piece = view[start : start + _READ_PIECE]
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
                reads = [
                    readers.submit(self._pread, self.fd, view[start : start + piece], offset + start, part)
                    for start in starts
                ]
                for start, read in zip(starts, reads):
                    read.result()
                    digest.update(view[start : start + piece])
        if expected is not None and digest.intdigest() != expected:
            self.fail(part, "checksum mismatch")

    def _fileno(self):
        if self.file is None:
            return None
        try:
            return self.file.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None

    def _pread(self, fd, piece, offset, part):
        """Read exactly ``len(piece)`` bytes at `offset` of `fd`, or :meth:`fail` naming `part` as truncated."""
        try:
            _blocks.pread_all(fd, piece, offset)
        except ValueError as exc:
            self.fail(part, str(exc))

    def _fill(self, piece, offset, part):
        """Read exactly ``len(piece)`` bytes at `offset` into `piece`."""
        if self.fd is not None:
            self._pread(self.fd, piece, offset, part)
            return
        self.file.seek(offset)
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
        header = bytearray(self.read(0, ALIGNMENT, "header"))
        struct.pack_into("<H", header, 10, self.flags | FLAG_MAPPED_WRITABLE)
        struct.pack_into("<Q", header, ALIGNMENT - 8, checksum(header[:-8]))
        mapfile.seek(0)
        mapfile.write(header)
        mapfile.flush()
        self.flags |= FLAG_MAPPED_WRITABLE

    def pickle_stream(self):
        """The pickle stream, its checksum verified, decompressed if it is stored compressed."""
        part = "pickle stream"
        stored = self.read(ALIGNMENT, self.pickle_length, part)
        if self.pickle_codec == 0 or self.version == 1:
            if checksum(stored) != self.pickle_checksum:
                self.fail(part, "checksum mismatch")
            if self.pickle_codec == 0:
                return stored
            return self._decompressed(stored, self.pickle_raw_length, 1, self.pickle_codec, part)
        view = memoryview(stored)
        frame_length, checksums = self._frame_checksums(view, self.pickle_checksum, part)
        return self._decompressed(view[:frame_length], self.pickle_raw_length, 1, self.pickle_codec, part, checksums)

    def _chunk_count(self, head, length, part):
        """The chunk count that `head` (a part's first bytes) gives, once `length` stored bytes can hold them."""
        count = int.from_bytes(head[:4], "little")
        if length < 4 + 12 * count:
            self.fail(part, f"{length} stored bytes cannot hold the frame header and checksums of {count} chunks")
        return count

    def _chunk_checksums(self, header, trailer, expected, part):
        """The chunk checksums of a version-2 compressed part, from its frame `header` and checksum list `trailer`.

        Both are verified against the part's checksum `expected` first.
        """
        header, trailer = bytes(header), bytes(trailer)
        if checksum(header + trailer) != expected:
            self.fail(part, "checksum mismatch")
        return struct.unpack(f"<{len(trailer) // 8}Q", trailer)

    def _frame_checksums(self, view, expected, part):
        """The frame length and chunk checksums of the version-2 compressed part in `view`."""
        count = self._chunk_count(view, len(view), part)
        frame_length = len(view) - 8 * count
        return frame_length, self._chunk_checksums(view[: 4 + 4 * count], view[frame_length:], expected, part)

    def _frame_ends(self, entry, part):
        """The frame header and the chunk checksums of the version-2 compressed block `entry`, read from the file."""
        offset, length = entry.offset, entry.length
        count = self._chunk_count(self.read(offset, min(4, length), part), length, part)
        header = self.read(offset, 4 + 4 * count, part)
        trailer = self.read(offset + length - 8 * count, 8 * count, part)
        return header, self._chunk_checksums(header, trailer, entry.checksum, part)

    def verify_chunks(self, entry, part):
        """Verify a version-2 compressed block chunk by chunk, reading at most 16 MiB at a time."""
        header, checksums = self._frame_ends(entry, part)
        offset, count = entry.offset, len(checksums)
        frame_length = entry.length - 8 * count
        sizes = struct.unpack(f"<{count}I", header[4:])
        if 4 + 4 * count + sum(sizes) != frame_length:
            self.fail(part, f"chunk sizes add up to {sum(sizes)} bytes, the frame holds {frame_length - 4 - 4 * count}")
        position = offset + 4 + 4 * count
        for index, size in enumerate(sizes):
            digest = xxhash.xxh3_64()
            for start in range(0, size, _MAX_READ_CHUNK):
                digest.update(self.read(position + start, min(_MAX_READ_CHUNK, size - start), part))
            if digest.intdigest() != checksums[index]:
                self.fail(part, f"chunk {index} of {count}: checksum mismatch")
            position += size

    def pickle_ends(self, head, tail):
        """The first `head` and the last `tail` bytes of the pickle stream (fewer if it is shorter).

        An uncompressed stream is not read whole (and so not checksummed):
        this tells what a stream holds from its opcodes at both ends, cheaply.

        Returns
        -------
        (bytes, bytes)
        """
        length = self.pickle_raw_length
        if self.pickle_codec:
            stream = self.pickle_stream()
            return bytes(stream[:head]), bytes(stream[max(length - tail, 0) :])
        return (
            bytes(self.read(ALIGNMENT, min(head, length), "pickle stream")),
            bytes(self.read(ALIGNMENT + max(length - tail, 0), min(tail, length), "pickle stream")),
        )

    def block(self, index, mapfile, mmap_mode, defer=False):
        """The bytes of block `index`: an ``np.memmap`` (O(1)) or a freshly read uint8 array.

        `mapfile` is an open file object of this very file (not its path,
        which another process may have replaced since the header was read).
        With `defer`, a block that is read while it is decoded (see
        :meth:`start_decoding`) is returned at once, its bytes not decoded
        yet: the caller must not read it before :meth:`finish_deferred`
        returns.  Loaders pass it only when :meth:`decoding_started`: the
        other codecs decode at ``finish``, and holding their blocks would
        only hold their frames longer.
        """
        import numpy as np

        entry = self.blocks[index]
        offset, length, raw_length, codec, itemsize, expected = entry
        part = f"block {index}"
        if raw_length == 0:
            return np.empty(0, dtype=np.uint8)
        if mmap_mode is not None and codec == 0 and mapfile is not None:
            return np.memmap(mapfile, dtype=np.uint8, mode=mmap_mode, offset=offset, shape=(raw_length,))
        if codec == 0:
            out = np.empty(raw_length, dtype=np.uint8)  # no larger than the file: checked in __init__
            verify = not self.flags & FLAG_MAPPED_WRITABLE
            self._read_verified(offset, memoryview(out), expected if verify else None, part)
            return out
        if self._pipelined(entry):
            if self._decoding is not None and self._decoding[0] == index:
                started = self._decoding[1]
                self._decoding = None
            else:
                started = self._start_decompressed(entry, part)
            if defer and started is not None:
                self._deferred.append((started, entry, part))
                return started.out
            return self._finish_decompressed(started, entry, part)
        stored = np.empty(length, dtype=np.uint8)
        view = memoryview(stored)
        if self.version == 1:  # one checksum of the whole part: read and verify it, then decompress it
            self._read_verified(offset, view, expected, part)
            return self._decompressed(stored, raw_length, itemsize, codec, part)
        self._read_verified(offset, view, None, part)
        frame_length, checksums = self._frame_checksums(view, expected, part)
        return self._decompressed(view[:frame_length], raw_length, itemsize, codec, part, checksums)

    def _start_decompressed(self, entry, part):
        """Start decompressing a large compressed block of a version-2 file while its chunks are read.

        The frame header and the checksum list are read and verified first;
        then each thread reads the chunks it decompresses and checks them
        against their checksums, so that reading (a copy from the page
        cache) and hashing are shared by the threads, each on data in its
        own cache, and overlap decoding.  No byte is decoded before its
        checksum is verified.  The array is allocated before the frame's
        buffer, which does not outlive the decoding (see `_spare_frame`).
        Returns a `_BlockDecoding`, or None when the array's memory cannot
        be allocated.
        """
        import numpy as np

        offset, length, raw_length, codec, itemsize, _ = entry
        header, checksums = self._frame_ends(entry, part)
        try:
            out = np.empty(raw_length, dtype=np.uint8)
        except MemoryError:
            return None
        spare = _blocks.reads_into_thread_buffers(self.codecs[codec])
        frame = _spare_frame(length) if spare else np.empty(length, dtype=np.uint8)
        view = memoryview(frame)
        view[: len(header)] = header
        try:
            decompression = _blocks.start_decompression(
                view[: length - 8 * len(checksums)],
                raw_length,
                itemsize,
                self.codecs[codec],
                out,
                self.chunk_size,
                source=(self.fd, offset),
                checksums=checksums,
            )
        except ValueError as exc:
            self.fail(part, str(exc))
        return _BlockDecoding(decompression, out, frame if spare else None)

    def _finish_decompressed(self, started, entry, part):
        """The block that `started` (from :meth:`_start_decompressed`) decodes, once it is decoded."""
        import numpy as np

        if started is None:  # tell a corrupt block from a valid one that needs more memory
            offset, length, raw_length, codec, itemsize, _ = entry
            _, checksums = self._frame_ends(entry, part)
            view = memoryview(np.empty(length, dtype=np.uint8))
            self._read_verified(offset, view, None, part)
            frame_length = length - 8 * len(checksums)
            return self._decompressed(view[:frame_length], raw_length, itemsize, codec, part, checksums)
        try:
            return started.finish()
        except ValueError as exc:
            self.fail(part, str(exc))


class _BlockDecoding:
    """A block's decompression started by `Container._start_decompressed`: `finish` gives the block, `out`."""

    def __init__(self, decompression, out, frame):
        self._decompression, self.out, self._frame = decompression, out, frame

    def finish(self):
        """The decoded block (`out`, a uint8 array); raises what `joblite._blocks.Decompression.finish` raises."""
        self._decompression.finish()
        self._keep_frame()
        return self.out

    def cancel(self):
        """Stop the decoding (see `joblite._blocks.Decompression.cancel`)."""
        self._decompression.cancel()
        self._keep_frame()

    def _keep_frame(self):
        if self._frame is not None:
            _SPARE_FRAMES[:] = [self._frame]  # only its header page was touched


def verify_file(path):
    """Check a container file without unpickling it.

    The internal API under ``python -m joblite cache verify``: the header,
    footer and block table are validated as :func:`joblite.load` does, the
    checksums of the pickle stream and of every block are verified (blocks
    are read in bounded pieces, whatever their size; the blocks of a file
    mapped with ``mmap_mode='r+'`` have no valid checksum and are only read;
    a compressed block of a version-2 file is verified chunk by chunk),
    and the pickle stream is walked with :func:`pickletools.genops` to its
    ``STOP`` opcode, which imports nothing: no module the file names is needed.

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

    path = os.fspath(path)
    with open(path, "rb") as fileobj:
        container = Container(fileobj, path)
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
            container.fail("pickle stream", f"names {buffers} out-of-band buffers for {len(container.blocks)} blocks")
        for index, entry in enumerate(container.blocks):
            if entry.codec and container.version > 1:
                container.verify_chunks(entry, f"block {index}")
                continue
            digest = xxhash.xxh3_64()
            for start in range(0, entry.length, _MAX_READ_CHUNK):
                digest.update(
                    container.read(entry.offset + start, min(_MAX_READ_CHUNK, entry.length - start), f"block {index}")
                )
            if digest.intdigest() != entry.checksum and (entry.codec or not container.flags & FLAG_MAPPED_WRITABLE):
                container.fail(f"block {index}", "checksum mismatch")
        return fileobj.seek(0, io.SEEK_END)
