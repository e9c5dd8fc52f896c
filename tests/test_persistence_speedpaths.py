"""The fast paths of dump and load (issue 13): direct large writes, and lz4 chunks decoded in place.

* ``dump`` to a path writes each large uncompressed block straight to the
  file's descriptor, from two threads that take turns hashing and writing
  its pieces: the file must hold exactly the bytes that ``dumps`` gives (the
  same container), for any size, layout and neighbour blocks; a failed write
  must leave nothing, and a failing checksum must reach the caller.
* ``load`` decodes the lz4 chunks of a block by ranges (``lz4_unshuffle``),
  straight into the final array: every twin gives the same bytes as the
  definition (lz4 then unshuffle), whatever the chunk boundaries, and a bad
  chunk is reported with the codec's own error, never a crash.
"""

import errno
import importlib.util
import json
import os
import signal
import threading
import time

import numpy as np
import pytest

import joblite
from joblite import _blocks as B
from joblite import _container
from joblite._safe_unpickle import CorruptFileError

lz4_block = pytest.importorskip("lz4.block")

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "persistence")


def frame_of(raw, itemsize, chunk_size):
    """An lz4 frame of `raw` (shuffled by `itemsize`) and its chunk table."""
    block = B.compress_block(raw, itemsize, "lz4", 1, chunk_size=chunk_size)
    return block, B._codec.unpack_chunks(block, len(raw), B.chunk_length(itemsize, chunk_size))


def sample(length, seed=0):
    """Bytes that compress a little (small integers with noise), `length` long."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 4, length) * 7 + np.arange(length) % 3).astype(np.uint8).tobytes()


# -- lz4_unshuffle: the kernel ---------------------------------------------------------------
@pytest.mark.parametrize("itemsize", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("length", [1, 15, 16, 17, 255, 4096, 4097, 12_288, 12_289])
def test_lz4_unshuffle_gives_the_raw_bytes(twin, itemsize, length):
    raw = sample(length, seed=length)
    chunk_size = 4096  # a multiple of every item size above but 3: boundaries fall in and between items
    block, chunks = frame_of(raw, itemsize, chunk_size)
    step = B.chunk_length(itemsize, chunk_size)
    out = bytearray(length)
    assert twin.codec.lz4_unshuffle(block, chunks, 0, len(chunks), step, itemsize, out) == -1
    assert bytes(out) == raw


def test_lz4_unshuffle_writes_only_its_range(twin):
    raw = sample(10_000, seed=1)
    block, chunks = frame_of(raw, 8, 1024)
    out = bytearray(b"\xaa" * len(raw))
    assert twin.codec.lz4_unshuffle(block, chunks, 3, 6, 1024, 8, out) == -1
    assert bytes(out[3 * 1024 : 6 * 1024]) == raw[3 * 1024 : 6 * 1024]
    assert set(out[: 3 * 1024]) == {0xAA} and set(out[6 * 1024 :]) == {0xAA}
    assert twin.codec.lz4_unshuffle(block, chunks, 4, 4, 1024, 8, out) == -1  # an empty range


def test_lz4_unshuffle_reports_the_first_bad_chunk(twin):
    raw = sample(10_000, seed=2)
    block, chunks = frame_of(raw, 4, 1024)
    broken = bytearray(block)
    offset, length = chunks[5]
    broken[offset : offset + length] = b"\xfe" * length
    assert twin.codec.lz4_unshuffle(broken, chunks, 0, len(chunks), 1024, 4, bytearray(len(raw))) == 5
    # chunks that claim bytes beyond the frame, or a destination too short for them
    for bad in ([(len(block) - 2, 10)] + chunks[1:], [(0, len(block) + 1)] + chunks[1:]):
        assert twin.codec.lz4_unshuffle(block, bad, 0, len(chunks), 1024, 4, bytearray(len(raw))) == 0
    assert twin.codec.lz4_unshuffle(block, chunks, 0, len(chunks), 1024, 4, bytearray(3000)) in (2, 3)
    # a chunk that decodes to fewer bytes than its place holds
    short = lz4_block.compress(raw[:1000], store_size=False)
    assert twin.codec.lz4_unshuffle(short, [(0, len(short))], 0, 1, 1024, 1, bytearray(1024)) == 0


def test_lz4_unshuffle_rejects_bad_arguments(twin):
    block, chunks = frame_of(sample(3000), 4, 1024)
    with pytest.raises(ValueError, match="chunk range 2 to 9 is outside the 3 chunks"):
        twin.codec.lz4_unshuffle(block, chunks, 2, 9, 1024, 4, bytearray(3000))
    with pytest.raises(ValueError, match="chunk_size and itemsize must be >= 1"):
        twin.codec.lz4_unshuffle(block, chunks, 0, 3, 0, 4, bytearray(3000))
    with pytest.raises(ValueError, match="out must be a writable buffer"):
        twin.codec.lz4_unshuffle(block, chunks, 0, 3, 1024, 4, bytes(3000))
    with pytest.raises(TypeError):
        twin.codec.lz4_unshuffle(block, chunks, 0, 3, 1024, 4, "not a buffer")


@pytest.mark.parametrize("itemsize", [2, 4, 8])
def test_unshuffle_twins_agree_on_long_odd_runs(twins, itemsize):
    ext, pure = twins
    for length in (16 * itemsize - 1, 16 * itemsize, 16 * itemsize + 5, 100_003):
        data = sample(length, seed=length)
        got = [bytearray(length), bytearray(length)]
        ext.codec.unshuffle(data, itemsize, got[0])
        pure.codec.unshuffle(data, itemsize, got[1])
        assert got[0] == got[1]


# -- decompress_block and load through the fast path --------------------------------------------
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_blocks_decode_the_same_with_any_twin_and_thread_count(twin, workers, monkeypatch):
    raw = sample(50_001, seed=3)
    block = B.compress_block(raw, 8, "lz4", 1, chunk_size=4096)
    monkeypatch.setattr(B, "_codec", twin.codec)
    out = bytearray(len(raw))
    B.decompress_block(block, len(raw), 8, "lz4", out, chunk_size=4096, workers=workers)
    assert bytes(out) == raw


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_chunk_is_reported_with_the_codecs_error(twin, workers, monkeypatch):
    raw = sample(20_000, seed=4)
    block = bytearray(B.compress_block(raw, 4, "lz4", 1, chunk_size=4000))
    offset, length = B._codec.unpack_chunks(block, len(raw), 4000)[3]
    block[offset : offset + length] = b"\xfe" * length
    monkeypatch.setattr(B, "_codec", twin.codec)
    with pytest.raises(ValueError, match=r"cannot decompress chunk 3 of 5 with compressor 'lz4': \w+") as info:
        B.decompress_block(block, len(raw), 4, "lz4", bytearray(len(raw)), chunk_size=4000, workers=workers)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((0,), np.float64),
        ((1,), np.int8),
        ((1_048_577,), np.int64),
        ((333, 777), np.float32),
        ((3, 5, 7), np.complex128),
    ],
)
def test_compressed_arrays_round_trip_in_any_twin(twin, shape, dtype, tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    value = (
        rng.integers(0, 100, shape) if np.dtype(dtype).kind in "iu" else rng.standard_normal(shape).round(2)
    ).astype(dtype)
    views = [value, value.T, value[::2]] if value.ndim > 1 else [value, value[::3]]
    monkeypatch.setattr(B, "_codec", twin.codec)
    for index, view in enumerate(views):
        path = tmp_path / f"{index}.jl"
        joblite.dump(view, path, compress=True)
        loaded = joblite.load(path)
        assert loaded.dtype == view.dtype and loaded.shape == view.shape
        assert np.array_equal(loaded, view)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_golden_lz4_file_loads_through_each_twin(twin, monkeypatch, version):
    """A file written by an earlier joblite decodes through the new path to the arrays it held."""
    with open(os.path.join(DATA, version, "manifest.json"), encoding="utf-8") as handle:
        expected = json.load(handle)["arrays"]
    monkeypatch.setattr(B, "_codec", twin.codec)
    got = joblite.load(os.path.join(DATA, version, "compressed-lz4.jl"))
    assert _golden_generator().array_digests(got) == expected


def _golden_generator():
    spec = importlib.util.spec_from_file_location("make_golden", os.path.join(DATA, "make_golden.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_truncated_compressed_file_raises(tmp_path):
    path = tmp_path / "a.jl"
    joblite.dump(np.arange(300_000), path, compress=True)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 100):
        (tmp_path / "cut.jl").write_bytes(data[:cut])
        with pytest.raises(CorruptFileError):
            joblite.load(tmp_path / "cut.jl")


# -- dump: the direct write of large blocks -----------------------------------------------------
@pytest.fixture
def direct_writes(monkeypatch):
    """Every uncompressed block of at least 1 KiB takes the direct path (normally 8 MiB), in pieces of 4 KiB
    written by ``os.pwrite`` calls of at most 1000 bytes."""
    monkeypatch.setattr(_container, "_OVERLAP_MIN", 1024)
    monkeypatch.setattr(_container, "_PIECE", 4096)
    monkeypatch.setattr(B, "MAX_WRITE", 1000)


@pytest.mark.parametrize(
    "value",
    [
        np.arange(1000, dtype=np.float64),  # above the threshold
        np.arange(1001, dtype=np.int8),  # an odd size
        np.zeros(0),  # empty
        np.arange(40_000, dtype=np.float32).reshape(200, 200).T,  # F-ordered: gathered in chunks
        np.arange(30_000, dtype=np.int16)[::3],  # strided
        {"a": np.arange(5000.0), "small": np.arange(3), "b": np.ones(3001, np.uint8), "tail": "text"},
    ],
    ids=["f64", "odd", "empty", "f-order", "strided", "neighbours"],
)
def test_direct_writes_give_the_bytes_of_dumps(direct_writes, value, tmp_path):
    path = tmp_path / "a.jl"
    joblite.dump(value, path)
    assert path.read_bytes() == joblite.dumps(value)  # file objects take the piecewise path
    loaded = joblite.load(path)
    if isinstance(value, dict):
        assert loaded.keys() == value.keys() and loaded["tail"] == "text"
        assert all(np.array_equal(loaded[key], value[key]) for key in ("a", "small", "b"))
    else:
        assert np.array_equal(loaded, value) and loaded.dtype == value.dtype
    assert _container.verify_file(path) == path.stat().st_size


def test_a_failed_direct_write_leaves_no_file(direct_writes, tmp_path, monkeypatch):
    def full_disk(fd, view, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(B, "pwrite_all", full_disk)
    with pytest.raises(OSError, match="No space left"):
        joblite.dump(np.arange(10_000.0), tmp_path / "a.jl")
    assert os.listdir(tmp_path) == []


def test_a_direct_write_failing_after_some_pieces_raises_its_error_and_leaves_no_file(
    direct_writes, tmp_path, monkeypatch
):
    written = []
    pwrite_all = B.pwrite_all

    def fills_up(fd, view, offset):
        if len(written) == 3:
            os.pwrite(fd, view[: len(view) // 2], offset)
            raise OSError(28, "No space left on device")
        written.append(len(view))
        pwrite_all(fd, view, offset)

    monkeypatch.setattr(B, "pwrite_all", fills_up)
    with pytest.raises(OSError, match="No space left"):
        joblite.dump(np.arange(10_000.0), tmp_path / "a.jl")
    assert written == [4096] * 3 and os.listdir(tmp_path) == []


def test_a_failing_checksum_raises_its_error_in_the_caller(direct_writes, tmp_path):
    class BrokenDigest:
        def update(self, data):
            raise MemoryError("no memory for the checksum")

    with open(tmp_path / "raw", "wb") as fileobj:
        out = _container._Writer(fileobj, fileobj.fileno())
        with pytest.raises(MemoryError, match="no memory for the checksum"):
            _container._write_hashed(out, np.arange(10_000, dtype=np.uint8), BrokenDigest())
    assert out.position == 0


def test_an_interrupted_dump_raises_once_every_piece_is_written_and_leaves_no_file(
    direct_writes, tmp_path, monkeypatch
):
    written = []
    pwrite_all = B.pwrite_all
    caller = threading.get_ident()

    def interrupting(fd, view, offset):
        if not written:
            time.sleep(0.05)  # the caller is waiting for the threads by now
            signal.pthread_kill(caller, signal.SIGINT)
        written.append(offset)
        pwrite_all(fd, view, offset)

    monkeypatch.setattr(B, "pwrite_all", interrupting)
    with pytest.raises(KeyboardInterrupt):
        joblite.dump(np.arange(10_000.0), tmp_path / "a.jl")
    assert len(written) == 20 and os.listdir(tmp_path) == []  # 80,000 bytes in pieces of 4 KiB


def test_pwrite_all_writes_everything_at_its_offset(tmp_path):
    data = memoryview(sample(70_001))
    fd = os.open(tmp_path / "raw", os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, b"head")
        B.pwrite_all(fd, data, 4)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 4
    finally:
        os.close(fd)
    assert (tmp_path / "raw").read_bytes() == b"head" + bytes(data)


def test_pwrite_all_raises_when_a_write_writes_nothing(tmp_path, monkeypatch):
    """A write of nothing (not an error) is reported as EIO, not retried forever."""
    monkeypatch.setattr(B.os, "pwrite", lambda fd, view, offset: 0)
    fd = os.open(tmp_path / "raw", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="wrote nothing at offset 4") as caught:
            B.pwrite_all(fd, memoryview(b"data"), 4)
    finally:
        os.close(fd)
    assert caught.value.errno == errno.EIO
