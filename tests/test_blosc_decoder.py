"""``BloscDecoder``, the kernel that loads 'blosc-*' blocks: both twins, checked against the definition.

Each thread that calls ``run`` takes the next chunk, reads it (from a file
descriptor, or the frame in memory), checks its checksum and its Blosc
header, and decodes it into its place.  The compiled twin does this with
c-blosc compiled into joblite, without the GIL; the pure twin with the
``blosc`` package.  Both must give the bytes that ``blosc.decompress`` gives,
report the same first failing chunk, and refuse the same bad arguments.
"""

import os
import struct
import threading

import blosc
import numpy as np
import pytest
import xxhash

from joblite import _blocks as B
from joblite import compressors as C

BLOSC_CODECS = ["blosc-lz4", "blosc-lz4-bitshuffle", "blosc-zstd", "blosc-zstd-bitshuffle"]


def block_of(raw, itemsize, name, chunk_size):
    """A frame of `raw` in chunks of `chunk_size` bytes, its chunk table, checksums and step."""
    sizes, digests, chunks = [], [], []
    for chunk, digest in B.iter_compressed_chunks(raw, itemsize, name, 5, chunk_size=chunk_size):
        chunks.append(bytes(chunk))
        sizes.append(len(chunk))
        digests.append(digest)
    frame = B._codec.pack_chunks(sizes) + b"".join(chunks)
    step = B.chunk_length(itemsize, chunk_size)
    return bytearray(frame), B._codec.unpack_chunks(frame, len(raw), step), digests, step


def sample(length, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 4, length) * 7 + np.arange(length) % 5).astype(np.uint8).tobytes()


@pytest.mark.parametrize("name", BLOSC_CODECS)
@pytest.mark.parametrize("itemsize", [1, 2, 4, 8, 23])
@pytest.mark.parametrize("length", [1, 16, 4095, 40_000])
def test_decodes_every_chunk_as_blosc_does(twin, name, itemsize, length):
    raw = sample(length, seed=length + itemsize)
    frame, chunks, digests, step = block_of(raw, itemsize, name, 4096)
    cname = C.get_compressor(name).cname
    for checksums in (None, digests):
        out = bytearray(length)
        decoder = twin.codec.BloscDecoder(frame, chunks, step, out, cname, checksums)
        assert decoder.run() == -1
        assert bytes(out) == raw
        assert decoder.run() == -1  # nothing left to take


@pytest.mark.parametrize("threads", [2, 4])
def test_threads_share_the_chunks_of_a_file(twin, threads, tmp_path):
    raw = (np.arange(3 << 18, dtype=np.int64) % 1013).tobytes()  # 6 MiB: 48 chunks of 128 KiB
    frame, chunks, digests, step = block_of(raw, 8, "blosc-lz4", 1 << 17)
    path = tmp_path / "frame"
    path.write_bytes(b"x" * 100 + bytes(frame))  # the frame at offset 100 of the file
    header = len(B._codec.pack_chunks([0] * len(chunks)))
    into = bytearray(frame[:header]) + bytearray(len(frame) - header)  # only the header read yet
    out = bytearray(len(raw))
    fd = os.open(path, os.O_RDONLY)
    try:
        decoder = twin.codec.BloscDecoder(into, chunks, step, out, "lz4", digests, fd, 100)
        results = []
        workers = [threading.Thread(target=lambda: results.append(decoder.run())) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        os.close(fd)
    assert results == [-1] * threads
    assert bytes(out) == raw and into == frame


def forged(frame, chunks, index, edit):
    """`frame` with chunk `index` replaced by ``edit(chunk)`` of the same length."""
    offset, length = chunks[index]
    out = bytearray(frame)
    out[offset : offset + length] = edit(bytes(frame[offset : offset + length]))
    return out


def _header_field(position, value):
    return lambda chunk: chunk[:position] + struct.pack("<I", value) + chunk[position + 4 :]


@pytest.mark.parametrize(
    "edit, with_checksums",
    [
        (lambda chunk: chunk[:20] + bytes(len(chunk) - 20), True),  # no longer matches its checksum
        (lambda chunk: chunk[:20] + bytes(len(chunk) - 20), False),  # ... and c-blosc cannot decode it
        (_header_field(4, 4095), False),  # nbytes
        (_header_field(12, 99), False),  # cbytes
        (lambda chunk: chunk[:2] + bytes([chunk[2] & 0x1F | 4 << 5]) + chunk[3:], False),  # zstd, not lz4
    ],
    ids=["checksum", "content", "nbytes", "cbytes", "codec"],
)
def test_reports_the_first_bad_chunk_and_decodes_those_before_it(twins, edit, with_checksums):
    raw = sample(10 * 4096, seed=3)
    frame, chunks, digests, step = block_of(raw, 4, "blosc-lz4", 4096)
    bad = forged(frame, chunks, 6, edit)
    for twin in twins:
        out = bytearray(len(raw))
        decoder = twin.codec.BloscDecoder(bad, chunks, step, out, "lz4", digests if with_checksums else None)
        assert decoder.run() == 6, twin.name
        assert bytes(out[: 6 * step]) == raw[: 6 * step]
        assert decoder.run() == -1  # no thread takes a chunk after the one that failed
        assert set(out[7 * step :]) <= {0}


def test_a_chunk_shorter_than_a_blosc_header_and_a_file_cut_short_are_reported(twin, tmp_path):
    raw = sample(3 * 4096, seed=4)
    frame, chunks, digests, step = block_of(raw, 1, "blosc-lz4", 4096)
    short = [chunks[0], (chunks[1][0], 15), chunks[2]]
    assert twin.codec.BloscDecoder(frame, short, step, bytearray(len(raw)), "lz4").run() == 1
    path = tmp_path / "cut"
    path.write_bytes(bytes(frame[: chunks[2][0] + 7]))  # the last chunk cut after 7 bytes
    fd = os.open(path, os.O_RDONLY)
    try:
        decoder = twin.codec.BloscDecoder(bytearray(len(frame)), chunks, step, bytearray(len(raw)), "lz4", None, fd)
        assert decoder.run() == 2
    finally:
        os.close(fd)


def test_twins_agree_on_a_campaign_of_damaged_chunks(twins):
    raw = (np.arange(12 * 1024, dtype=np.int32) % 97).tobytes()
    frame, chunks, _, step = block_of(raw, 4, "blosc-zstd", 8192)
    rng = np.random.default_rng(5)
    for _ in range(200):
        bad = bytearray(frame)
        for position in rng.integers(len(B._codec.pack_chunks([0] * len(chunks))), len(frame), 3):
            bad[position] = int(rng.integers(0, 256))
        results = []
        for twin in twins:
            out = bytearray(len(raw))
            failed = twin.codec.BloscDecoder(bad, chunks, step, out, "zstd").run()
            results.append((failed, bytes(out) if failed == -1 else bytes(out[: max(failed, 0) * step])))
        assert results[0] == results[1]


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"chunk_size": 0}, ValueError, "chunk_size must be >= 1, got 0"),
        ({"cname": "zlib"}, ValueError, r"cname must be one of \['lz4', 'zstd'\], got 'zlib'"),
        ({"offset": -1, "fd": 0}, ValueError, "offset must be >= 0, got -1"),
        ({"out": bytes(3000)}, ValueError, "out must be a writable buffer"),
        ({"frame": b"read-only", "fd": 0}, ValueError, "frame must be a writable buffer"),
        ({"out": bytearray(5000)}, ValueError, "3 chunks of 1024 bytes cannot fill out's 5000 bytes"),
        ({"chunks": [(0, 10), (5, 10**6), (0, 1)]}, ValueError, "chunk 1 of 3 lies outside the frame"),
        ({"checksums": [1, 2]}, ValueError, "2 chunk checksums for 3 chunks"),
        ({"out": "not a buffer"}, TypeError, None),
        ({"chunk_size": 1.5}, TypeError, None),
    ],
)
def test_bad_arguments_are_refused_alike(twin, change, error, message):
    frame, chunks, digests, step = block_of(sample(3000), 1, "blosc-lz4", 1024)
    arguments = {"frame": frame, "chunks": chunks, "chunk_size": step, "out": bytearray(3000), "cname": "lz4"}
    arguments.update(change)
    with pytest.raises(error, match=message):
        twin.codec.BloscDecoder(**arguments)


def test_the_decoder_holds_its_buffers(twin):
    raw = sample(5 * 4096, seed=6)
    frame, chunks, digests, step = block_of(raw, 2, "blosc-lz4-bitshuffle", 4096)
    out = np.zeros(len(raw), np.uint8)
    decoder = twin.codec.BloscDecoder(bytes(frame), chunks, step, memoryview(out), "lz4", digests)
    del frame
    assert decoder.run() == -1
    assert out.tobytes() == raw


def test_chunks_the_blosc_package_writes_decode_alike(twins):
    """A chunk of any c-blosc 1.x writer (here the package's, at every level) is read by both twins."""
    data = np.linspace(0, 1, 50_000).astype(np.float32).tobytes()
    for level in range(10):
        chunk = blosc.compress(data, typesize=4, clevel=level, shuffle=blosc.BITSHUFFLE, cname="lz4")
        digest = xxhash.xxh3_64_intdigest(chunk)
        for twin in twins:
            out = bytearray(len(data))
            assert twin.codec.BloscDecoder(chunk, [(0, len(chunk))], len(data), out, "lz4", [digest]).run() == -1
            assert out == data
