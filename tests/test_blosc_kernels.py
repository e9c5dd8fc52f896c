"""``BloscDecoder`` and ``BloscEncoder``, the kernels that load and dump 'blosc-*' blocks: both twins.

Each thread (those that ``start`` puts to work, then the one that calls
``run``) takes the next chunk.  The decoder reads it (from a file
descriptor, or the frame in memory), checks its checksum and its Blosc
header, and decodes it into its place; the encoder compresses it, hashes
it, and writes the chunks whose place it completes.  The compiled twin does
this with c-blosc compiled into joblite, in threads of its own that never
run Python; the pure twin with the ``blosc`` package, in Python threads.  Both must give the bytes that the package
gives, report the same first failing chunk, and refuse the same bad
arguments.
"""

import errno
import os
import struct
import subprocess
import sys
import threading
import time

import blosc
import numpy as np
import pytest
import xxhash

import _persistence_helpers as H
from joblite import _blocks as B
from joblite import _container, dump, dumps, load
from joblite import compressors as C
from joblite._safe_unpickle import CorruptFileError

BLOSC_CODECS = ["blosc-lz4", "blosc-lz4-bitshuffle", "blosc-zstd", "blosc-zstd-bitshuffle"]
JOBLITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(B.__file__)))


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


def started(kernel, threads):
    """``kernel.run()`` with ``threads - 1`` threads started first (their count checked); its result."""
    assert kernel.start(threads - 1) == threads - 1
    return kernel.run()


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
        assert started(decoder, threads) == -1
    finally:
        os.close(fd)
    assert bytes(out) == raw and into == frame[:header] + bytes(len(frame) - header)  # chunks not read into it


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
        assert decoder.run() == 6  # still the first failure: no thread takes a chunk after it
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


# -- BloscEncoder ------------------------------------------------------------------------------
def encode(twin, data, chunk_size, itemsize, name, level, path, offset=0, window=1, threads=2):
    """Run a BloscEncoder of `twin` in `threads` threads into the file `path`; its results."""
    codec = C.get_compressor(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        blocksize = codec.blocksize(level, itemsize)
        encoder = twin.codec.BloscEncoder(
            data, chunk_size, itemsize, codec.cname, codec.bitshuffle, level, fd, offset, window, blocksize
        )
        result = started(encoder, threads)
    finally:
        os.close(fd)
    return encoder, result


@pytest.mark.parametrize("name", BLOSC_CODECS)
@pytest.mark.parametrize("itemsize", [1, 2, 4, 8, 23, 255])
def test_the_encoder_writes_the_chunks_of_the_blosc_package(twin, name, itemsize, tmp_path):
    raw = sample(50_000, seed=itemsize)
    step = B.chunk_length(itemsize, 4096)
    expected = list(B.iter_compressed_chunks(raw, itemsize, name, 7, chunk_size=4096))  # the package's chunks
    for threads, window in ((1, 1), (2, 1), (3, 2), (4, 100)):
        path = tmp_path / f"{threads}-{window}"
        encoder, result = encode(twin, raw, step, itemsize, name, 7, path, 10, window, threads)
        assert result == -1 and encoder.failure() is None
        sizes, digests = encoder.result()
        assert sizes == [len(chunk) for chunk, _ in expected]
        assert digests == [digest for _, digest in expected]
        assert path.read_bytes() == bytes(10) + b"".join(chunk for chunk, _ in expected)


@pytest.mark.parametrize("chunk_size", [16, 100, 224, 225, 1009, 4096, 65_541])
def test_the_kernels_checksums_are_the_xxh3_64_of_the_xxhash_package(twin, chunk_size, tmp_path):
    """Chunks of 32 bytes to 64 KiB: xxh3's short, middle and long inputs (on x86 the
    compiled twin hashes long ones with the loop xxHash's dispatcher chose, AVX-512's here)."""
    raw = np.random.default_rng(chunk_size).integers(0, 256, 3 * chunk_size - 1, np.uint8).tobytes()
    encoder, result = encode(twin, raw, chunk_size, 1, "blosc-lz4", 5, tmp_path / "chunks")
    assert result == -1
    sizes, digests = encoder.result()
    stored = (tmp_path / "chunks").read_bytes()
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    assert sizes == [min(chunk_size, len(raw) - i * chunk_size) + 16 for i in range(3)]  # stored, not compressed
    assert digests == [xxhash.xxh3_64_intdigest(stored[o : o + n]) for o, n in zip(offsets, sizes)]
    out = bytearray(len(raw))
    decoder = twin.codec.BloscDecoder(stored, list(zip(offsets, sizes)), chunk_size, out, "lz4", digests)
    assert decoder.run() == -1 and out == raw
    wrong = [*digests[:2], digests[2] ^ 1]
    assert twin.codec.BloscDecoder(stored, list(zip(offsets, sizes)), chunk_size, out, "lz4", wrong).run() == 2


@pytest.mark.parametrize("name", BLOSC_CODECS)
@pytest.mark.parametrize("itemsize, level", [(8, 5), (16, 5), (3, 9), (8, 1)])
def test_the_encoder_makes_the_blocks_of_the_blosc_package_in_large_chunks(twin, name, itemsize, level, tmp_path):
    """Chunks as large as a dump's: c-blosc's blocks of at most 512 KiB (`_Blosc.blocksize`), alike in both twins."""
    raw = np.frombuffer(sample(3 << 20, seed=itemsize), np.uint8) % 9
    step = B.chunk_length(itemsize, 1 << 20)
    expected = list(B.iter_compressed_chunks(raw, itemsize, name, level, chunk_size=1 << 20))  # the package's chunks
    encoder, result = encode(twin, raw, step, itemsize, name, level, tmp_path / "big")
    assert result == -1 and encoder.result()[0] == [len(chunk) for chunk, _ in expected]
    assert (tmp_path / "big").read_bytes() == b"".join(chunk for chunk, _ in expected)
    blocksize = struct.unpack_from("<I", expected[0][0], 8)[0]
    assert blocksize <= C.BLOSC_MAX_BLOCK


def test_the_encoder_of_an_empty_block_writes_nothing(twin, tmp_path):
    encoder, result = encode(twin, b"", 4096, 8, "blosc-lz4", 5, tmp_path / "empty")
    assert result == -1 and encoder.result() == ([], [])
    assert (tmp_path / "empty").read_bytes() == b""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failed_write_stops_the_encoder_and_names_its_errno(twin):
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        encoder = twin.codec.BloscEncoder(sample(40_000), 4096, 1, "lz4", False, 5, fd, 0, 2)
        assert started(encoder, 2) == 0
        assert encoder.run() == 0  # still the first failure: no thread takes a chunk after it
    finally:
        os.close(fd)
    assert encoder.failure() == (0, errno.ENOSPC)
    with pytest.raises(ValueError, match="chunk 0 of 10 failed"):
        encoder.result()


BAD_FILE = r"fd must be >= -1 \(-1: given later\), offset >= 0 and window >= 1, "


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"chunk_size": 0}, ValueError, "chunk_size must be >= 1, got 0"),
        ({"itemsize": 256}, ValueError, "itemsize must be 1 to 255, got 256"),
        ({"cname": "blosclz"}, ValueError, r"cname must be one of \['lz4', 'zstd'\], got 'blosclz'"),
        ({"level": 10}, ValueError, "level must be 0 to 9, got 10"),
        ({"window": 0}, ValueError, BAD_FILE + "got 1, 0 and 0"),
        ({"fd": -2}, ValueError, BAD_FILE + "got -2, 0 and 1"),
        ({"blocksize": -1}, ValueError, r"blocksize must be 0 to 2\*\*31 - 1, got -1"),
        ({"data": np.arange(10)[::2]}, ValueError, "data must be a C-contiguous buffer"),
        ({"data": "text"}, TypeError, None),
    ],
)
def test_the_encoder_refuses_bad_arguments_alike(twin, change, error, message):
    arguments = {"data": b"x" * 100, "chunk_size": 10, "itemsize": 1, "cname": "lz4", "bitshuffle": False}
    arguments.update({"level": 5, "fd": 1, "offset": 0, "window": 1}, **change)
    with pytest.raises(error, match=message):
        twin.codec.BloscEncoder(**arguments)


def test_an_encoder_without_a_file_holds_its_chunks_until_it_is_given_one(twin, tmp_path):
    raw = sample(50_000, seed=3)
    expected = list(B.iter_compressed_chunks(raw, 2, "blosc-lz4", 5, chunk_size=4096))
    encoder = twin.codec.BloscEncoder(raw, 4096, 2, "lz4", False, 5, window=100)
    assert started(encoder, 2) == -1  # every chunk compressed, none written
    with pytest.raises(ValueError, match="13 of 13 chunks are not written"):
        encoder.result()
    path = tmp_path / "late"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        encoder.set_file(fd, 5)
        with pytest.raises(ValueError, match="the encoder has a file already"):
            encoder.set_file(fd, 5)
        assert encoder.run() == -1
    finally:
        os.close(fd)
    assert encoder.result() == ([len(chunk) for chunk, _ in expected], [digest for _, digest in expected])
    assert path.read_bytes() == bytes(5) + b"".join(chunk for chunk, _ in expected)


def test_without_a_file_the_window_bounds_the_chunks_held(twin, tmp_path):
    raw = sample(50_000, seed=4)
    encoder = twin.codec.BloscEncoder(raw, 4096, 1, "lz4", False, 5, window=2)
    results = []
    early = threading.Thread(target=lambda: results.append(encoder.run()))
    early.start()
    early.join(0.5)
    assert early.is_alive()  # two chunks held, waiting for the file to write them
    path = tmp_path / "late"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        encoder.set_file(fd, 0)
        results.append(encoder.run())
        early.join()
    finally:
        os.close(fd)
    assert results == [-1, -1]
    assert path.read_bytes() == b"".join(chunk for chunk, _ in B.iter_compressed_chunks(raw, 1, "blosc-lz4", 5, 4096))


def test_a_cancelled_encoder_stops_its_threads_and_writes_nothing(twin):
    encoder = twin.codec.BloscEncoder(sample(50_000), 4096, 1, "lz4", False, 5, window=2)
    results = []
    early = threading.Thread(target=lambda: results.append(encoder.run()))
    early.start()
    early.join(0.2)
    encoder.cancel()
    early.join(10)
    assert not early.is_alive() and results == [0]
    assert encoder.failure() == (0, errno.ECANCELED)
    with pytest.raises(ValueError, match="chunk 0 of 13 failed"):
        encoder.result()


@pytest.mark.parametrize("fd, offset", [(-1, 0), (3, -1)])
def test_set_file_refuses_a_bad_file_alike(twin, fd, offset):
    encoder = twin.codec.BloscEncoder(b"x" * 100, 10, 1, "lz4", False, 5)
    with pytest.raises(ValueError, match=f"fd and offset must be >= 0, got {fd} and {offset}"):
        encoder.set_file(fd, offset)


@pytest.mark.parametrize("kernel", ["decoder", "encoder"])
def test_start_refuses_a_bad_count_and_a_second_start_alike(twin, kernel):
    raw = sample(3 * 4096)
    frame, chunks, _, step = block_of(raw, 1, "blosc-lz4", 4096)
    if kernel == "decoder":
        made = twin.codec.BloscDecoder(frame, chunks, step, bytearray(len(raw)), "lz4")
    else:
        made = twin.codec.BloscEncoder(raw, 4096, 1, "lz4", False, 5, window=100)
    for bad in (-1, 64):
        with pytest.raises(ValueError, match=f"threads must be 0 to 63, got {bad}"):
            made.start(bad)
    with pytest.raises(TypeError):
        made.start(1.0)
    assert made.start(1) == 1
    with pytest.raises(ValueError, match=f"the {kernel} has started already"):
        made.start(1)
    assert made.run() == -1


def test_wake_threads_refuses_a_bad_count_alike(twin):
    for bad in (-1, 64):
        with pytest.raises(ValueError, match=f"threads must be 0 to 63, got {bad}"):
            twin.codec.wake_threads(bad)
    with pytest.raises(TypeError):
        twin.codec.wake_threads(1.0)
    assert twin.codec.wake_threads(0) is None


def test_woken_threads_take_the_next_job_then_stop_waiting(twin):
    raw = (np.arange(1 << 21, dtype=np.int64) % 1013).tobytes()
    frame, chunks, _, step = block_of(raw, 8, "blosc-lz4", 1 << 16)
    out = bytearray(len(raw))
    twin.codec.wake_threads(2)
    decoder = twin.codec.BloscDecoder(frame, chunks, step, out, "lz4")
    assert started(decoder, 3) == -1 and bytes(out) == raw
    twin.codec.wake_threads(2)  # and no job comes: the threads wait a while, then sleep
    before = time.process_time()
    time.sleep(0.2)
    assert time.process_time() - before < 0.1  # two threads waiting on by spinning would use 0.4 s


def test_large_loads_share_a_spare_frame_that_only_the_frame_header_reaches(tmp_path):
    small = np.random.default_rng(1).integers(0, 256, 1 << 21)  # 16 MiB each, 2 MiB compressed
    noise = np.random.default_rng(0).standard_normal(1 << 21)  # incompressible: a larger frame
    for name, value in (("small", small), ("noise", noise)):
        dump(value, tmp_path / name, compress=True)
    dump(noise, tmp_path / "lz4", compress="lz4")
    _container._SPARE_FRAMES.clear()
    assert np.array_equal(load(tmp_path / "small"), small)
    (first,) = _container._SPARE_FRAMES
    assert np.array_equal(load(tmp_path / "small"), small)
    assert _container._SPARE_FRAMES == [first]
    assert np.array_equal(load(tmp_path / "lz4"), noise)  # read into its frame: not a spare one
    assert _container._SPARE_FRAMES == [first]
    assert np.array_equal(load(tmp_path / "noise"), noise)
    (second,) = _container._SPARE_FRAMES
    assert len(second) > len(first)
    header = 4 + 4 * 16  # 16 chunks of 1 MiB
    assert not any(second[header:])  # the threads read the chunks into buffers of their own


@pytest.mark.parametrize("name", ["blosc-lz4", "blosc-zstd-bitshuffle", "lz4"])
def test_a_started_decompression_finishes_to_the_block(twin, name, monkeypatch):
    raw = (np.arange(1 << 18, dtype=np.int64) % 1013).tobytes()  # 2 MiB: 32 chunks of 64 KiB
    frame, _, digests, _ = block_of(raw, 8, name, 1 << 16)
    monkeypatch.setattr(B, "_codec", twin.codec)
    out = bytearray(len(raw))
    started = B.start_decompression(frame, len(raw), 8, name, out, chunk_size=1 << 16, workers=3, checksums=digests)
    started.finish()
    assert bytes(out) == raw
    started.cancel()  # after finish: nothing to stop
    assert bytes(out) == raw


def test_a_started_decompression_checks_its_arguments_at_once_and_its_chunks_at_finish(twin, monkeypatch):
    raw = (np.arange(1 << 17, dtype=np.int64) % 1013).tobytes()
    frame, chunks, digests, _ = block_of(raw, 8, "blosc-lz4", 1 << 16)
    monkeypatch.setattr(B, "_codec", twin.codec)
    with pytest.raises(ValueError, match="out holds"):
        B.start_decompression(frame, len(raw), 8, "blosc-lz4", bytearray(len(raw) - 1), chunk_size=1 << 16)
    offset, length = chunks[5]
    frame[offset + length // 2] ^= 0xFF
    started = B.start_decompression(frame, len(raw), 8, "blosc-lz4", bytearray(len(raw)), 1 << 16, 2, None, digests)
    with pytest.raises(ValueError, match="chunk 5 of 16: checksum mismatch"):
        started.finish()


def test_a_cancelled_decompression_stops_its_threads_before_it_returns(twin, monkeypatch):
    raw = (np.arange(1 << 21, dtype=np.int64) % 1013).tobytes()  # 16 MiB: 256 chunks of 64 KiB
    frame, _, _, _ = block_of(raw, 8, "blosc-lz4", 1 << 16)
    monkeypatch.setattr(B, "_codec", twin.codec)
    out = bytearray(len(raw))
    B.start_decompression(frame, len(raw), 8, "blosc-lz4", out, chunk_size=1 << 16, workers=3).cancel()
    after = bytes(out)
    time.sleep(0.05)
    assert bytes(out) == after  # no thread writes once cancel has returned (how far they got depends on timing)


def _flip_in_pickle_stream(path):
    data = bytearray(path.read_bytes())
    start, stop = H.parse(data)["pickle"]
    data[(start + stop) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_load_decodes_its_large_block_while_it_unpickles_and_stops_it_when_the_load_fails(
    twin, tmp_path, monkeypatch
):
    value = {"x": np.random.default_rng(2).integers(0, 256, 1 << 21), "name": "a" * 100}  # 16 MiB, 2 MiB stored
    dump(value, tmp_path / "good", compress=True)
    dump(value, tmp_path / "bad", compress=True)
    _flip_in_pickle_stream(tmp_path / "bad")
    monkeypatch.setattr(B, "_codec", twin.codec)
    seen = []
    pickle_stream = _container.Container.pickle_stream

    def watched(self):
        seen.append(self._decoding is not None)  # the block's decoding started before the stream is read
        return pickle_stream(self)

    monkeypatch.setattr(_container.Container, "pickle_stream", watched)
    _container._SPARE_FRAMES.clear()
    loaded = load(tmp_path / "good")
    assert np.array_equal(loaded["x"], value["x"]) and loaded["name"] == value["name"]
    (frame,) = _container._SPARE_FRAMES
    with pytest.raises(CorruptFileError, match="pickle stream: checksum mismatch"):
        load(tmp_path / "bad")
    assert seen == [True, True]
    assert _container._SPARE_FRAMES == [frame]  # the stopped decoding gave its frame back, untouched
    assert not any(frame[4 + 4 * 16 :])
    assert np.array_equal(load(tmp_path / "good")["x"], value["x"])


class _Watched:
    """Holds what its reduce function saw of an array when the stream was unpickled."""

    def __init__(self, array):
        self.array = array

    def __reduce__(self):
        return _seen_at_unpickling, (self.array,)


def _seen_at_unpickling(array):
    watched = _Watched(array)
    watched.seen = array.copy()  # code of the file's, reading the block while the stream is unpickled
    return watched


def _deferred_blocks(monkeypatch):
    """The `defer` argument of each `Container.block` call, recorded in the list returned."""
    calls = []
    block = _container.Container.block

    def watched(self, index, mapfile, mmap_mode, defer=False):
        calls.append(defer)
        return block(self, index, mapfile, mmap_mode, defer)

    monkeypatch.setattr(_container.Container, "block", watched)
    return calls


def test_a_load_unpickles_while_its_blocks_decode_and_checks_them_before_it_returns(twin, tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    value = {  # three blocks of 16, 4 and 2 MiB, each stored in 1 MiB or more: all read while decoded
        "a": rng.integers(0, 256, 1 << 21),
        "b": [rng.integers(0, 1 << 20, 1 << 19), "x" * 10],
        "c": rng.normal(size=1 << 18).astype(np.float64),
    }
    dump(value, tmp_path / "good", compress=True)
    layout = H.parse((tmp_path / "good").read_bytes())
    assert [block["length"] >= 1 << 20 for block in layout["blocks"]] == [True, True, True]
    data = bytearray((tmp_path / "good").read_bytes())
    second = layout["blocks"][1]
    data[second["offset"] + second["length"] // 2] ^= 0xFF  # in a chunk of the second block
    (tmp_path / "bad").write_bytes(bytes(data))
    monkeypatch.setattr(B, "_codec", twin.codec)
    calls = _deferred_blocks(monkeypatch)
    loaded = load(tmp_path / "good")
    assert calls == [True, True, True]
    H.assert_same(loaded, value)
    with pytest.raises(CorruptFileError, match=r"bad: block 1: chunk \d+ of \d+: checksum mismatch"):
        load(tmp_path / "bad")
    H.assert_same(load(tmp_path / "good"), value)  # nothing left running from the failed load
    calls.clear()
    dump([value["a"], "t" * (1 << 16)], tmp_path / "long", compress=True)  # a stream too long to be scanned
    assert load(tmp_path / "long")[1] == "t" * (1 << 16) and calls == [False]
    held = []
    finish_deferred = _container.Container.finish_deferred

    def watched_finish(self):
        held.append(len(self._deferred))
        return finish_deferred(self)

    monkeypatch.setattr(_container.Container, "finish_deferred", watched_finish)
    load(tmp_path / "good")
    dump(value, tmp_path / "lz4", compress="lz4")  # decoded at finish: held undecoded, its frames would only wait
    H.assert_same(load(tmp_path / "lz4"), value)
    assert held == [3, 0]


@pytest.mark.parametrize("allowed", [None, ["test_blosc_kernels._seen_at_unpickling"]])
def test_code_of_the_file_sees_a_block_only_once_it_is_decoded(allowed, tmp_path, monkeypatch):
    array = np.random.default_rng(5).integers(0, 256, 1 << 21)  # 16 MiB, 2 MiB stored
    dump(_Watched(array), tmp_path / "watched", compress=True)
    dump([array, _Watched(array)], tmp_path / "array first", compress=True)
    calls = _deferred_blocks(monkeypatch)
    for name in ("watched", "array first"):
        loaded = load(tmp_path / name, allowed=allowed)
        watched = loaded if name == "watched" else loaded[1]
        assert np.array_equal(watched.seen, array) and np.array_equal(watched.array, array)
    assert calls == [False, False]


def _stream(value):
    return bytes(_container.Container(None, "<bytes>", dumps(value)).pickle_stream())


def test_blocks_are_decoded_after_the_unpickling_only_for_streams_that_call_nothing_but_rebuild_array():
    import collections
    import copyreg
    import pickle

    from joblite.persistence import _calls_only_rebuild_array

    array = np.arange(12.0)
    for value in (array, [array, {"b": (array, 1.5)}], {"x": array.reshape(3, 4), "y": "text"}, [1, "a"]):
        assert _calls_only_rebuild_array(_stream(value))
    assert _calls_only_rebuild_array(memoryview(_stream(array)))
    for value in (
        np.matrix(array.reshape(3, 4)),  # an ndarray subclass: its class is called
        [array, _Watched(array)],
        np.ma.masked_array(array),
        [array, np.float64(2.0)],  # numpy's scalar reconstruction
        np.empty(0x93 << 8),  # a 0x93 byte in the shape: taken for STACK_GLOBAL, in the safe direction
    ):
        assert not _calls_only_rebuild_array(_stream(value)), value
    legacy = pickle.dumps([array.tobytes(), collections.OrderedDict(a=1)], protocol=2)  # GLOBAL, not STACK_GLOBAL
    assert b"\x93" not in legacy and not _calls_only_rebuild_array(legacy)
    copyreg.add_extension("collections", "OrderedDict", 0x2FA)  # pickled as EXT2, no STACK_GLOBAL
    try:
        stream = _stream([array, collections.OrderedDict(a=1)])
        assert b"\x83" in stream and not _calls_only_rebuild_array(stream)
    finally:
        copyreg.remove_extension("collections", "OrderedDict", 0x2FA)


def test_a_large_block_without_memory_for_its_array_is_told_corrupt_or_valid(tmp_path, monkeypatch):
    value = np.random.default_rng(3).integers(0, 256, 1 << 21)  # 16 MiB, 2 MiB stored
    dump(value, tmp_path / "good", compress=True)
    data = bytearray((tmp_path / "good").read_bytes())
    block = H.parse(data)["blocks"][0]
    data[(block["offset"] + block["offset"] + block["length"]) // 2] ^= 0xFF  # in a chunk
    (tmp_path / "bad").write_bytes(bytes(data))
    empty = np.empty

    def no_memory_for_the_array(shape, *args, **kwargs):
        if shape == value.nbytes:
            raise MemoryError(f"no {shape} bytes")
        return empty(shape, *args, **kwargs)

    monkeypatch.setattr(np, "empty", no_memory_for_the_array)
    for allowed in (None, []):  # the C unpickler, which retries on its own MemoryError, and the checked one
        with pytest.raises(MemoryError):
            load(tmp_path / "good", allowed=allowed)
        with pytest.raises(CorruptFileError, match=r"block 0: chunk \d+ of 16: checksum mismatch"):
            load(tmp_path / "bad", allowed=allowed)
    monkeypatch.undo()
    assert np.array_equal(load(tmp_path / "good"), value)


def test_the_header_hints_at_the_kernels_threads_for_blosc_parts_of_several_chunks(tmp_path):
    two_chunks = np.arange(1 << 18, dtype=np.int64)  # 2 MiB: two chunks of 1 MiB
    cases = [
        (two_chunks, True, _container.HINT_KERNEL_THREADS),
        (two_chunks, "blosc-zstd-bitshuffle", _container.HINT_KERNEL_THREADS),
        (two_chunks[: 1 << 17], True, 0),  # one chunk: decoded by the calling thread alone
        (two_chunks, "lz4", 0),
        (two_chunks, 0, 0),
        ([str(n) for n in range(300_000)], True, _container.HINT_KERNEL_THREADS),  # a large compressed stream
    ]
    for value, compress, hints in cases:
        path = tmp_path / "a.jl"
        dump(value, path, compress=compress)
        assert H.parse(path.read_bytes())["hints"] == _container.hints(path.read_bytes()[:16]) == hints
    assert _container.hints(b"\x89JOBLITE\x02\x00") == 0


def test_a_forged_hint_changes_nothing_but_a_wake(tmp_path):
    value = np.arange(1 << 17, dtype=np.int64)
    data = bytearray(dumps(value))
    data[12] |= _container.HINT_KERNEL_THREADS
    data[56:64] = xxhash.xxh3_64_intdigest(bytes(data[:56])).to_bytes(8, "little")
    (tmp_path / "a.jl").write_bytes(bytes(data))
    assert np.array_equal(load(tmp_path / "a.jl"), value)


def test_a_cancelled_decoder_stops_its_threads_before_it_returns(twin):
    raw = (np.arange(1 << 21, dtype=np.int64) % 1013).tobytes()  # 16 MiB: 256 chunks of 64 KiB
    frame, chunks, _, step = block_of(raw, 8, "blosc-lz4", 1 << 16)
    out = bytearray(len(raw))
    decoder = twin.codec.BloscDecoder(frame, chunks, step, out, "lz4")
    assert decoder.start(2) == 2
    decoder.cancel()
    after = bytes(out)
    time.sleep(0.05)
    assert bytes(out) == after  # no thread writes once cancel has returned
    assert decoder.run() == -1 and bytes(out) == after  # and no chunk is taken after it


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_while_the_threads_decode_does_not_wait_for_them(twin):
    raw = (np.arange(1 << 21, dtype=np.int64) % 1013).tobytes()
    frame, chunks, _, step = block_of(raw, 8, "blosc-lz4", 1 << 16)
    out = bytearray(len(raw))
    decoder = twin.codec.BloscDecoder(frame, chunks, step, out, "lz4")
    decoder.start(1)
    pid = os.fork()
    if pid == 0:  # the child: the parent's threads are not here, so there is nothing to wait for
        decoder.cancel()
        del decoder
        os._exit(0)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0
    assert decoder.run() == -1 and bytes(out) == raw  # the parent's threads went on


def test_a_started_decoder_that_is_dropped_waits_for_its_threads(twin):
    if twin.name == "pure":
        pytest.skip("the pure twin's threads hold the decoder, and so its buffers")
    raw = (np.arange(1 << 21, dtype=np.int64) % 1013).tobytes()
    frame, chunks, _, step = block_of(raw, 8, "blosc-lz4", 1 << 16)
    out = bytearray(len(raw))
    decoder = twin.codec.BloscDecoder(frame, chunks, step, out, "lz4")
    decoder.start(2)
    del decoder  # its memory goes: the threads must be done with it
    out[:] = bytes(len(out))
    time.sleep(0.05)
    assert not any(out)


@pytest.mark.parametrize("name", ["blosc-lz4", "lz4"])
def test_a_compression_started_early_writes_the_chunks_of_iter_compressed_chunks(name, tmp_path, monkeypatch):
    monkeypatch.setattr(B, "_AHEAD_BYTES", 1)  # a window of 4 chunks: the pool's thread waits for the file
    raw = sample(50_000, seed=5)
    expected = list(B.iter_compressed_chunks(raw, 8, name, 5, chunk_size=4096))
    compression = B.start_compression(raw, 8, name, 5, chunk_size=4096)
    path = tmp_path / "early"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert compression.finish(fd, 64) == ([len(c) for c, _ in expected], [d for _, d in expected])
    finally:
        os.close(fd)
    compression.cancel()  # after finish: nothing to stop
    assert path.read_bytes() == bytes(64) + b"".join(chunk for chunk, _ in expected)


def test_a_dump_whose_file_cannot_be_opened_cancels_the_compression_it_started(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "_AHEAD_BYTES", 1)  # the pool's thread waits for the file after 4 chunks
    compressions = []
    real = B.start_compression
    monkeypatch.setattr(B, "start_compression", lambda *args: compressions.append(real(*args)) or compressions[-1])
    value = np.arange(4 << 20, dtype=np.int64)  # 32 MiB: 16 chunks of 2 MiB
    with pytest.raises(FileNotFoundError):
        dump(value, tmp_path / "missing" / "a.jl", compress=True)
    assert [compression._encoder.failure() for compression in compressions] == [(0, errno.ECANCELED)]
    dump(value, tmp_path / "a.jl", compress=True)
    assert np.array_equal(load(tmp_path / "a.jl"), value)
    assert os.listdir(tmp_path) == ["a.jl"]


@pytest.mark.parametrize("name", BLOSC_CODECS)
def test_a_dump_to_a_file_holds_the_bytes_of_dumps(name, tmp_path):
    """The encoder's file (either twin) against the in-memory writer, which compresses with the package."""
    records = np.zeros(40_000, [("id", "<i8"), ("x", "<f8"), ("flag", "?"), ("code", "<i2"), ("v", "<f4")])
    records["id"], records["x"] = np.arange(40_000), np.linspace(0, 1, 40_000)
    value = {"ints": np.arange(3 << 18, dtype=np.int64) % 1013, "records": records, "tail": "t"}
    path = tmp_path / "a.jl"
    dump(value, path, compress=name)
    assert path.read_bytes() == dumps(value, compress=name)
    loaded = load(path)
    assert (
        loaded["ints"].tobytes() == value["ints"].tobytes()
        and loaded["records"].tobytes() == value["records"].tobytes()
    )


def test_a_compressed_dump_to_a_full_file_system_raises_and_leaves_no_file(tmp_path):
    """A write past RLIMIT_FSIZE fails with EFBIG (Python ignores SIGXFSZ) from the encoder's threads."""
    code = (
        "import resource, sys, os, numpy as np, joblite\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))\n"
        "try:\n"
        "    joblite.dump(np.random.default_rng(0).random(1 << 20), sys.argv[1], compress=True)\n"
        "except OSError as exc:\n"
        "    print(exc.errno, os.listdir(os.path.dirname(sys.argv[1])))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([JOBLITE_ROOT] + sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.jl")], capture_output=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == [str(errno.EFBIG), "[]"]
