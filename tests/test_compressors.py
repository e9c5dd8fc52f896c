"""Byte shuffle, chunk framing and block compression (``joblite.compressors``).

The kernel twins (``_codec``) run each test of theirs (fixture ``twin``) and
are compared with each other when the compiled one is built (fixture
``twins``): the same bytes, the same exceptions.  The block functions are
tested on the active twin, for every registered codec, and against corrupted
frames, which must raise ``ValueError`` and never crash the process.
"""

import bz2
import lzma
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from joblite import _blocks as B
from joblite import compressors as C

SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)
CODECS = C.compressor_names()
# codecs whose stream carries a checksum of its content: a corrupted chunk never decodes silently
CHECKSUMMED = {"zlib", "gzip", "bz2", "xz"}


def outcome(function, *args):
    """The result, or the type and text of the exception, of ``function(*args)``."""
    try:
        return "ok", function(*args)
    except Exception as exc:  # compared between the twins
        return type(exc).__name__, str(exc)


def reference_shuffle(data, itemsize):
    n = len(data) // itemsize
    planes = [bytes(data[i * itemsize + j] for i in range(n)) for j in range(itemsize)]
    return b"".join(planes) + bytes(data[n * itemsize :])


def run_shuffle(codec, name, data, itemsize):
    out = bytearray(len(data))
    getattr(codec, name)(data, itemsize, out)
    return bytes(out)


# -- shuffle -----------------------------------------------------------------------------
@pytest.mark.parametrize("itemsize", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 63, 64, 65, 200])
def test_shuffle_matches_the_definition(twin, itemsize, length):
    data = bytes(np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8))
    shuffled = run_shuffle(twin.codec, "shuffle", data, itemsize)
    assert shuffled == reference_shuffle(data, itemsize)
    assert run_shuffle(twin.codec, "unshuffle", shuffled, itemsize) == data


def test_shuffle_of_an_array_groups_bytes_by_significance(twin):
    a = np.arange(1000, dtype="<u4")
    out = np.empty(a.nbytes, np.uint8)
    twin.codec.shuffle(a, 4, out)
    planes = out.reshape(4, 1000)
    assert (planes[0] == (a & 0xFF)).all() and (planes[1] == (a >> 8)).all()
    assert not planes[2:].any()
    back = np.empty_like(a)
    twin.codec.unshuffle(out, 4, back)
    assert (back == a).all()


@settings(max_examples=300, **SETTINGS)
@given(data=st.binary(max_size=3000), itemsize=st.integers(1, 16))
def test_twins_shuffle_identically(twins, data, itemsize):
    ext, pure = (kernels.codec for kernels in twins)
    for name in ("shuffle", "unshuffle"):
        assert run_shuffle(ext, name, data, itemsize) == run_shuffle(pure, name, data, itemsize)
    assert run_shuffle(ext, "unshuffle", run_shuffle(ext, "shuffle", data, itemsize), itemsize) == data


@pytest.mark.parametrize("itemsize", [2, 3, 4, 8, 12, 16, 40, 5000, 70_000])
def test_twins_shuffle_large_buffers_identically(twins, itemsize):
    # past the compiled twin's 16 KiB item blocks, with a tail of partial items
    ext, pure = (kernels.codec for kernels in twins)
    data = np.random.default_rng(itemsize).integers(0, 256, 300_007, dtype=np.uint8).tobytes()
    for name in ("shuffle", "unshuffle"):
        assert run_shuffle(ext, name, data, itemsize) == run_shuffle(pure, name, data, itemsize)


def _shuffle_error_cases():
    ro = b"x" * 16
    rw = bytearray(16)
    shared = bytearray(32)
    return [
        (ro, 0, rw),
        (ro, -3, rw),
        (ro, 2.0, rw),
        (ro, "4", rw),
        (ro, None, rw),
        (ro, 4, bytearray(15)),
        (ro, 4, b"y" * 16),
        (ro, 4, memoryview(rw).toreadonly()),
        (memoryview(bytearray(32))[::2], 4, rw),
        (ro, 4, memoryview(bytearray(32))[::2]),
        (12345, 4, rw),
        (ro, 4, "a string"),
        (rw, 4, rw),
        (memoryview(shared)[:16], 4, memoryview(shared)[8:24]),
        (ro, 2**70, bytearray(16)),
        (b"", 2**70, bytearray()),
        (b"", 0, bytearray()),
        (np.zeros((2, 8), np.uint8), 8, np.zeros(16, np.uint8)),
        (np.zeros((4, 4), np.uint8).T, 4, rw),
    ]


def shuffle_outcomes(codec, case):
    """The outcome of shuffle and of unshuffle, each on a fresh copy of error case `case`."""
    results = {}
    for name in ("shuffle", "unshuffle"):
        src, itemsize, out = _shuffle_error_cases()[case]
        results[name] = outcome(getattr(codec, name), src, itemsize, out)
    return results


@pytest.mark.parametrize("case", range(len(_shuffle_error_cases())))
def test_shuffle_arguments_are_checked(twin, case):
    results = shuffle_outcomes(twin.codec, case)
    assert results["shuffle"] == results["unshuffle"]


@pytest.mark.parametrize("case", range(len(_shuffle_error_cases())))
def test_twins_check_shuffle_arguments_identically(twins, case):
    ext, pure = twins
    assert shuffle_outcomes(ext.codec, case) == shuffle_outcomes(pure.codec, case)


def test_shuffle_error_messages(twin):
    k = twin.codec
    with pytest.raises(ValueError, match=r"itemsize must be >= 1, got 0"):
        k.shuffle(b"ab", 0, bytearray(2))
    with pytest.raises(ValueError, match="differ in length: 2 and 3 bytes"):
        k.shuffle(b"ab", 1, bytearray(3))
    with pytest.raises(ValueError, match="out must be a writable buffer"):
        k.unshuffle(b"ab", 1, b"cd")
    with pytest.raises(ValueError, match="src must be a C-contiguous buffer"):
        k.shuffle(memoryview(b"abcd")[::2], 1, bytearray(2))
    with pytest.raises(ValueError, match="overlap"):
        buf = bytearray(8)
        k.shuffle(memoryview(buf)[:4], 2, memoryview(buf)[2:6])
    with pytest.raises(TypeError):
        k.shuffle(b"ab", 1.0, bytearray(2))
    # an item larger than the buffer: all trailing bytes, copied
    out = bytearray(3)
    k.shuffle(b"abc", 2**70, out)
    assert out == b"abc"


def test_shuffle_releases_the_buffers(twin):
    out = bytearray(64)
    twin.codec.shuffle(bytes(64), 8, out)
    out.extend(b"x")  # resizing fails while a buffer export is still held


# -- frame -------------------------------------------------------------------------------
def test_frame_layout(twin):
    k = twin.codec
    assert k.pack_chunks([]) == b"\0\0\0\0"
    header = k.pack_chunks([3, 0x01020304])
    assert header == b"\x02\0\0\0\x03\0\0\0\x04\x03\x02\x01"
    frame = header + b"abc" + bytes(0x01020304)
    assert k.unpack_chunks(frame, 10, 5) == [(12, 3), (15, 0x01020304)]
    assert k.unpack_chunks(b"\0\0\0\0", 0, 1) == []
    assert k.unpack_chunks(memoryview(k.pack_chunks([1]) + b"z"), 1, 1 << 20) == [(8, 1)]


@pytest.mark.parametrize(
    "data, raw_length, chunk_size, message",
    [
        (b"", 0, 1, "truncated: 0 bytes, its chunk count needs 4"),
        (b"\1\0\0", 1, 1, "truncated: 3 bytes"),
        (b"\1\0\0\0", 0, 1, "declares 1 chunks; 0 expected for raw_length 0"),
        (b"\0\0\0\0", 1, 1, "declares 0 chunks; 1 expected"),
        (b"\2\0\0\0\1\0\0\0", 10, 5, "truncated: 8 bytes, its header of 2 chunk sizes needs 12"),
        (b"\1\0\0\0\5\0\0\0abcd", 3, 4, "sizes add up to 5 bytes, but 4 bytes follow its 8-byte header"),
        (b"\1\0\0\0\3\0\0\0abcd", 3, 4, "sizes add up to 3 bytes, but 4 bytes"),
        (b"\1\0\0\0\xff\xff\xff\xffabcd", 3, 4, "sizes add up to 4294967295 bytes"),
        (b"\xff\xff\xff\xff", 2**40, 1, "declares 4294967295 chunks; 1099511627776 expected"),
        (b"\xff\xff\xff\xff", 2**32 - 1, 1, "header of 4294967295 chunk sizes needs 17179869184"),
        (b"\0\0\0\0", -1, 1, "raw_length must be >= 0, got -1"),
        (b"\0\0\0\0", 0, 0, "chunk_size must be >= 1, got 0"),
        (memoryview(b"\0\0\0\0\0\0\0\0")[::2], 0, 1, "data must be a C-contiguous buffer"),
    ],
)
def test_frame_errors(twin, data, raw_length, chunk_size, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        twin.codec.unpack_chunks(data, raw_length, chunk_size)


def test_pack_chunks_checks_sizes(twin):
    k = twin.codec
    with pytest.raises(ValueError, match="chunk 1: compressed size 4294967296 is outside"):
        k.pack_chunks([1, 2**32])
    with pytest.raises(ValueError, match="compressed size -1"):
        k.pack_chunks([-1])
    with pytest.raises(TypeError):
        k.pack_chunks([1.5])
    assert k.pack_chunks(iter([2**32 - 1])) == b"\1\0\0\0\xff\xff\xff\xff"


@settings(max_examples=400, **SETTINGS)
@given(
    sizes=st.lists(st.integers(0, 40), max_size=12),
    raw_length=st.integers(0, 200) | st.sampled_from([-1, 2**64, 2**32]),
    chunk_size=st.integers(1, 64) | st.sampled_from([0, -5, 2**63]),
    cut=st.integers(0, 600),
    flip=st.lists(st.tuples(st.integers(0, 600), st.integers(1, 255)), max_size=3),
)
def test_twins_frame_identically(twins, sizes, raw_length, chunk_size, cut, flip):
    ext, pure = (kernels.codec for kernels in twins)
    header = ext.pack_chunks(sizes)
    assert header == pure.pack_chunks(sizes)
    frame = bytearray(header + bytes(sum(sizes)))
    for position, mask in flip:
        if position < len(frame):
            frame[position] ^= mask
    for data in (bytes(frame), bytes(frame[:cut]), bytes(frame) + b"\0" * (cut % 5)):
        got = outcome(ext.unpack_chunks, data, raw_length, chunk_size)
        assert got == outcome(pure.unpack_chunks, data, raw_length, chunk_size)
        assert got[0] in ("ok", "ValueError")


# -- parse_compress ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "compress, expected",
    [
        (False, ("", 0)),
        (0, ("", 0)),
        (None, ("", 0)),
        (True, ("blosc-lz4", 5)),
        (1, ("blosc-lz4", 1)),
        (3, ("blosc-lz4", 3)),
        (9, ("blosc-lz4", 9)),
        (np.int64(5), ("blosc-lz4", 5)),
        ("lz4", ("lz4", 1)),
        ("blosc-zstd-bitshuffle", ("blosc-zstd-bitshuffle", 5)),
        (("blosc-lz4-bitshuffle", 9), ("blosc-lz4-bitshuffle", 9)),
        ("zlib", ("zlib", 3)),
        ("gzip", ("gzip", 3)),
        ("bz2", ("bz2", 3)),
        ("lzma", ("lzma", 3)),
        ("xz", ("xz", 3)),
        (("zlib", 6), ("zlib", 6)),
        (("lz4", 12), ("lz4", 12)),
        (("xz", 9), ("xz", 9)),
        (("zlib", 0), ("", 0)),
        (("lz4", None), ("lz4", 1)),
        (("bz2", np.uint8(2)), ("bz2", 2)),
    ],
)
def test_parse_compress_valid(compress, expected):
    assert C.parse_compress(compress) == expected


@pytest.mark.skipif("zstd" not in CODECS, reason="zstandard is not installed")
def test_parse_compress_zstd():
    assert C.parse_compress("zstd") == ("zstd", 3)
    assert C.parse_compress(("zstd", 22)) == ("zstd", 22)
    with pytest.raises(ValueError, match="level must be an int 1 to 22"):
        C.parse_compress(("zstd", 23))


@pytest.mark.parametrize(
    "compress",
    [
        -1,
        10,
        100,
        3.0,
        0.0,
        "",
        "ZLIB",
        "snappy",
        ("zlib",),
        ("zlib", 3, 1),
        ("zlib", 10),
        ("zlib", -1),
        ("zlib", 3.0),
        ("zlib", True),
        ("zlib", False),
        ("lz4", 13),
        ("nope", 3),
        (3, "zlib"),
        ["zlib", 3],
        b"zlib",
        object(),
        {"zlib": 3},
        np.bool_(True),
        complex(1),
    ],
    ids=repr,
)
def test_parse_compress_invalid(compress):
    with pytest.raises(ValueError) as info:
        C.parse_compress(compress)
    message = str(info.value)
    assert repr(compress) in message
    assert "'lz4'" in message and "'zlib'" in message and "'xz'" in message


# -- registry ----------------------------------------------------------------------------
@pytest.fixture
def registry():
    saved = dict(C._COMPRESSORS)
    yield C._COMPRESSORS
    C._COMPRESSORS.clear()
    C._COMPRESSORS.update(saved)


class Reverse(C.CompressorBase):
    """A toy codec: bytes reversed."""

    name = "reverse"
    default_level = 1
    levels = range(1, 3)

    def compress(self, data, level):
        return bytes(data)[::-1]

    def decompress(self, data, raw_length):
        return bytes(data)[::-1]


class Truncating(Reverse):
    name = "truncating"

    def decompress(self, data, raw_length):
        return bytes(data)[::-1][:-1]


def test_register_compressor(registry):
    C.register_compressor("reverse", Reverse())
    assert "reverse" in C.compressor_names()
    assert C.parse_compress("reverse") == ("reverse", 1)
    assert C.parse_compress(("reverse", 2)) == ("reverse", 2)
    data = np.arange(5000, dtype=np.int32)
    block = B.compress_block(data, 4, "reverse", 2, chunk_size=1000)
    out = np.empty_like(data)
    B.decompress_block(block, data.nbytes, 4, "reverse", out, chunk_size=1000)
    assert (out == data).all()
    with pytest.raises(ValueError, match="already registered; pass force=True"):
        C.register_compressor("reverse", Reverse())
    replacement = Reverse()
    C.register_compressor("reverse", replacement, force=True)
    assert C.get_compressor("reverse") is replacement
    built_in = type("FakeLZ4", (Reverse,), {"name": "lz4"})()
    C.register_compressor("lz4", built_in, force=True)
    assert C.get_compressor("lz4") is built_in


@pytest.mark.parametrize(
    "name, compressor, error",
    [
        ("x", object(), TypeError),
        ("x", zlib, TypeError),
        ("x", Reverse, TypeError),
        ("reverse", None, TypeError),
        ("other", Reverse(), ValueError),
        ("", type("E", (Reverse,), {"name": ""})(), ValueError),
        (3, Reverse(), ValueError),
        ("reverse", type("B", (Reverse,), {"default_level": 5})(), ValueError),
        ("reverse", type("Z", (Reverse,), {"levels": range(0, 3)})(), ValueError),
        ("zlib", type("Z2", (Reverse,), {"name": "zlib"})(), ValueError),
    ],
)
def test_register_compressor_rejects(registry, name, compressor, error):
    before = dict(registry)
    with pytest.raises(error):
        C.register_compressor(name, compressor)
    assert registry == before


def test_get_compressor_lists_names():
    with pytest.raises(
        ValueError, match="unknown compressor 'nope'; registered: blosc-lz4, blosc-lz4-bitshuffle, blosc-zstd, "
    ):
        C.get_compressor("nope")
    with pytest.raises(ValueError):
        C.get_compressor(["unhashable"])


def test_codecs_are_imported_lazily():
    code = (
        "import sys, joblite.compressors as c; c.parse_compress(True); c.compressor_names(); "
        "print(sorted(m for m in ('blosc', 'lz4', 'lz4.block', 'lzma', 'bz2', 'zstandard', 'numpy') "
        "if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -- blocks ------------------------------------------------------------------------------
def sample(nbytes, seed=0):
    """Compressible bytes: small integers with runs, like real numeric data."""
    rng = np.random.default_rng(seed)
    values = np.repeat(rng.integers(0, 300, nbytes // 16 + 1), 2).astype("<u8")
    return values.view(np.uint8)[:nbytes].copy()


def roundtrip(data, itemsize, name, level=None, chunk_size=4096, workers=2):
    level = C.get_compressor(name).default_level if level is None else level
    block = B.compress_block(data, itemsize, name, level, chunk_size=chunk_size, workers=workers)
    out = np.full(len(data), 0xAA, np.uint8)
    B.decompress_block(block, len(data), itemsize, name, out, chunk_size=chunk_size, workers=workers)
    assert out.tobytes() == bytes(data)
    return block


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("nbytes", [0, 1, 7, 4000, 4096, 4097, 3 * 4096, 50_001])
@pytest.mark.parametrize("itemsize", [1, 3, 8])
def test_roundtrip(name, nbytes, itemsize):
    data = sample(nbytes)
    block = roundtrip(data, itemsize, name)
    step = B.chunk_length(itemsize, 4096)
    count = -(-nbytes // step)
    assert int.from_bytes(block[:4], "little") == count
    if nbytes == 0:
        assert block == b"\0\0\0\0"


@pytest.mark.parametrize("name", CODECS)
def test_roundtrip_every_level(name):
    data = sample(20_000, seed=1)
    for level in C.get_compressor(name).levels:
        roundtrip(data, 8, name, level, chunk_size=8192)


def test_roundtrip_default_chunks_of_a_large_array():
    a = np.random.default_rng(3).normal(size=(700, 1000)).astype(np.float32)  # 2.7 MiB: 3 chunks
    block = B.compress_block(a, 4, "lz4", 1)
    assert int.from_bytes(block[:4], "little") == 3
    out = np.empty_like(a)
    B.decompress_block(block, a.nbytes, 4, "lz4", out)
    assert (out == a).all()


def test_shuffle_makes_numbers_smaller():
    ints = np.random.default_rng(4).integers(0, 256, 100_000, dtype=np.int64)
    shuffled = B.compress_block(ints, 8, "lz4", 1)
    plain = B.compress_block(ints, 1, "lz4", 1)
    assert len(shuffled) * 2 < len(plain)


def test_chunk_length():
    assert B.chunk_length(1) == B.CHUNK_SIZE
    assert B.chunk_length(3, 100) == 99
    assert B.chunk_length(8, 4) == 8  # at least one item
    assert B.chunk_length(np.int64(4), 10) == 8
    for bad in (0, -1, 2.0, True, B.MAX_CHUNK_SIZE + 1, None):
        with pytest.raises(ValueError, match="itemsize must be an int from 1 to"):
            B.chunk_length(bad)
        with pytest.raises(ValueError, match="chunk_size must be an int from 1 to"):
            B.chunk_length(1, bad)


@pytest.mark.parametrize("name", CODECS)
def test_output_does_not_depend_on_threads_or_twin(twin, name, monkeypatch):
    data = sample(40_000, seed=5)
    level = C.get_compressor(name).default_level
    blocks = {B.compress_block(data, 8, name, level, chunk_size=3000)}  # by the active twin
    monkeypatch.setattr(B, "_codec", twin.codec)  # the block functions take the kernel from here
    for workers in (1, 2, 3):
        blocks.add(B.compress_block(data, 8, name, level, chunk_size=3000, workers=workers))
        blocks.add(B.compress_block(memoryview(data).cast("B"), 8, name, level, chunk_size=3000))
    roundtrip(data, 8, name, chunk_size=3000)
    assert len(blocks) == 1


def test_streaming_the_chunks_gives_the_block_and_each_chunks_checksum():
    data = sample(30_000, seed=6)
    chunks = B.iter_compressed_chunks(data, 4, "zlib", 3, chunk_size=4000)
    pieces = [chunk for chunk, _ in chunks]
    assert len(pieces) == 8
    assert B.frame_header([len(p) for p in pieces]) + b"".join(pieces) == B.compress_block(
        data, 4, "zlib", 3, chunk_size=4000
    )
    checksums = [digest for _, digest in B.iter_compressed_chunks(data, 4, "zlib", 3, chunk_size=4000, workers=1)]
    assert checksums == [xxhash.xxh3_64_intdigest(piece) for piece in pieces]


@pytest.mark.parametrize("name", ["lz4", "blosc-lz4", "zlib"])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_chunk_that_does_not_match_its_checksum_is_refused_before_it_is_decoded(name, workers):
    data = sample(30_000, seed=9)
    pairs = list(B.iter_compressed_chunks(data, 8, name, 1, chunk_size=4000))
    frame = B.frame_header([len(chunk) for chunk, _ in pairs]) + b"".join(chunk for chunk, _ in pairs)
    checksums = [digest for _, digest in pairs]
    out = bytearray(len(data))
    B.decompress_block(frame, len(data), 8, name, out, chunk_size=4000, workers=workers, checksums=checksums)
    assert bytes(out) == bytes(data)
    checksums[2] ^= 1
    out = bytearray(b"\xab" * len(data))
    with pytest.raises(ValueError, match=f"^chunk 2 of {len(pairs)}: checksum mismatch$"):
        B.decompress_block(frame, len(data), 8, name, out, chunk_size=4000, workers=workers, checksums=checksums)
    assert out[8000:12000] == b"\xab" * 4000  # chunk 2 was never decoded
    with pytest.raises(ValueError, match=f"^chunk 2 of {len(pairs)}: checksum mismatch$"):
        B.verify_block(frame, len(data), 8, name, chunk_size=4000, workers=workers, checksums=checksums)
    with pytest.raises(ValueError, match=f"^{len(pairs) - 1} chunk checksums for {len(pairs)} chunks$"):
        B.decompress_block(frame, len(data), 8, name, out, chunk_size=4000, checksums=checksums[1:])


class Counting(Reverse):
    """Counts the chunks compressed, to see how far the threads run ahead of the reader."""

    name = "counting"

    def __init__(self):
        self.started = 0
        self.lock = threading.Lock()

    def compress(self, data, level):
        with self.lock:
            self.started += 1
        return super().compress(data, level)


@pytest.mark.parametrize(
    ("chunk_size", "ahead_bytes", "most"),
    [(1000, 1 << 26, 16), (1000, 5000, 5), (1000, 100, 4)],  # 8 a thread; 64 MiB of input; never under 2 a thread
)
def test_the_threads_run_a_bounded_way_ahead_of_the_reader(registry, monkeypatch, chunk_size, ahead_bytes, most):
    codec = Counting()
    C.register_compressor("counting", codec)
    monkeypatch.setattr(B, "_AHEAD_BYTES", ahead_bytes)
    chunks = B.iter_compressed_chunks(sample(100_000, seed=8), 1, "counting", 1, chunk_size=chunk_size, workers=2)
    try:
        next(chunks)
        deadline = time.monotonic() + 10
        while codec.started < most and time.monotonic() < deadline:  # give the threads time to run on
            time.sleep(0.01)
        time.sleep(0.05)
        # `most` chunks, the one taken included, were given to the threads: the others wait for the reader
        assert codec.started == most
    finally:
        chunks.close()


class ByThread(Reverse):
    """Counts the chunks each thread compressed and decompressed; the pool's threads are slow."""

    name = "by-thread"

    def __init__(self):
        self.caller = threading.get_ident()
        self.by_caller = {"compress": 0, "decompress": 0}

    def _count(self, what):
        if threading.get_ident() == self.caller:
            self.by_caller[what] += 1
        else:
            time.sleep(0.005)

    def compress(self, data, level):
        self._count("compress")
        return super().compress(data, level)

    def decompress(self, data, raw_length):
        self._count("decompress")
        return super().decompress(data, raw_length)


def test_the_calling_thread_takes_chunks_while_it_waits(registry):
    # two workers are the caller and one pool thread: the caller does not sit idle while the pool works
    codec = ByThread()
    C.register_compressor(codec.name, codec)
    data = sample(64_000, seed=9)
    frame = B.compress_block(data, 1, codec.name, 1, chunk_size=1000, workers=2)
    assert codec.by_caller["compress"] > 0
    assert frame == B.compress_block(data, 1, codec.name, 1, chunk_size=1000, workers=1)
    out = bytearray(len(data))
    B.decompress_block(frame, len(data), 1, codec.name, out, chunk_size=1000, workers=2)
    assert codec.by_caller["decompress"] > 0
    assert bytes(out) == bytes(data)


@pytest.mark.parametrize("name", ["blosc-lz4", "lz4", "zlib"])
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_compress_into_places_each_chunk_of_the_block_once(name, workers):
    data = sample(200_000, seed=11)
    pairs = list(B.iter_compressed_chunks(data, 8, name, 1, chunk_size=4000))
    written, threads = {}, set()

    def write(chunk, position):
        assert position not in written
        written[position] = chunk
        threads.add(threading.get_ident())

    sizes, digests = B.compress_into(data, 8, name, 1, write, chunk_size=4000, workers=workers)
    assert sizes == [len(chunk) for chunk, _ in pairs] and digests == [digest for _, digest in pairs]
    assert [written[position] for position in sorted(written)] == [chunk for chunk, _ in pairs]
    assert sorted(written) == [sum(sizes[:index]) for index in range(len(sizes))]
    assert B.compress_into(b"", 8, name, 1, write) == ([], [])
    if workers == 1:
        assert threads == {threading.get_ident()}


class Failing(Reverse):
    """Fails on the chunks that start with given bytes; counts the chunks it compressed."""

    name = "failing-some"

    def __init__(self, bad):
        self.bad, self.done = bad, []

    def compress(self, data, level):
        data = bytes(data)
        if data[:1] in self.bad:
            raise RuntimeError(f"bad chunk {data[:1]!r}")
        self.done.append(data[:1])
        return super().compress(data, level)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_compress_into_raises_the_first_chunks_error(registry, workers):
    data = b"".join(bytes([index]) * 1000 for index in range(40))  # chunk i holds bytes of value i
    codec = Failing({bytes([7]), bytes([3])})
    C.register_compressor(codec.name, codec)
    for _ in range(5):
        with pytest.raises(RuntimeError, match=r"^bad chunk b'\\x03'$"):
            B.compress_into(data, 1, codec.name, 1, lambda chunk, position: None, chunk_size=1000, workers=workers)
    assert all(chunk[0] < 30 for chunk in codec.done)  # the threads stopped taking chunks soon after


class Gate(Reverse):
    """Holds chunk 0 (the chunk of zeros) for 0.3 s; records the other chunks as they start."""

    name = "gate"

    def __init__(self):
        self.started = []

    def compress(self, data, level):
        data = bytes(data)
        if data[0] == 0:
            time.sleep(0.3)
        else:
            self.started.append(data[0])
        return super().compress(data, level)


def test_compress_into_holds_a_bounded_window_of_chunks_while_one_is_slow(registry, monkeypatch):
    monkeypatch.setattr(B, "_AHEAD_BYTES", 8_000)  # a window of 8 chunks of 1000 bytes
    codec = Gate()
    C.register_compressor(codec.name, codec)
    data = b"".join(bytes([index]) * 1000 for index in range(40))
    placed = []
    B.compress_into(data, 1, codec.name, 1, lambda chunk, position: placed.append(position), chunk_size=1000)
    # while chunk 0 was held, the other thread took chunks 1 to 7 only, none of them placed
    assert codec.started[:7] == list(range(1, 8)) and len(placed) == 40
    assert max(codec.started[:7]) < 8


class Interrupted(Reverse):
    """Raises KeyboardInterrupt in the calling thread at its fifth chunk; counts the chunks started."""

    name = "interrupted"

    def __init__(self):
        self.caller, self.by_caller, self.started = threading.get_ident(), 0, []

    def compress(self, data, level):
        self.started.append(threading.get_ident())
        if threading.get_ident() == self.caller:
            self.by_caller += 1
            if self.by_caller == 5:
                raise KeyboardInterrupt
        time.sleep(0.001)
        return super().compress(data, level)


def test_an_interrupted_compress_into_leaves_no_thread_running(registry):
    codec = Interrupted()
    C.register_compressor(codec.name, codec)
    data = sample(400_000, seed=12)
    with pytest.raises(KeyboardInterrupt):
        B.compress_into(data, 1, codec.name, 1, lambda chunk, position: None, chunk_size=1000, workers=3)
    count = len(codec.started)
    time.sleep(0.05)
    assert len(codec.started) == count < 400  # the pool's threads stopped, and before the call returned


def test_stopping_the_stream_early():
    data = sample(400_000, seed=7)
    chunks = B.iter_compressed_chunks(data, 8, "lz4", 1, chunk_size=1000)
    first = next(chunks)
    chunks.close()
    assert first == next(B.iter_compressed_chunks(data, 8, "lz4", 1, chunk_size=1000))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="nope"), "unknown compressor 'nope'"),
        (dict(level=0), "level must be an int from 1 to 12 for compressor 'lz4', got 0"),
        (dict(level=True), "got True"),
        (dict(name="zlib", level=10), "from 1 to 9 for compressor 'zlib', got 10"),
        (dict(itemsize=0), "itemsize must be an int from 1"),
        (dict(chunk_size=0), "chunk_size must be an int from 1"),
        (dict(workers=0), "workers must be an int from 1 to 64, got 0"),
        (dict(data=memoryview(bytes(16))[::2]), "data must be a C-contiguous buffer"),
        (dict(data=np.zeros((4, 4)).T), "data must be a C-contiguous buffer"),
    ],
)
def test_compress_arguments_are_checked_at_the_call(kwargs, message):
    args = dict(data=bytes(100), itemsize=4, name="lz4", level=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        B.iter_compressed_chunks(**args)  # before any chunk is asked for
    with pytest.raises(ValueError, match=message):
        B.compress_block(**args)
    with pytest.raises(TypeError):
        B.compress_block(12345, 4, "lz4", 1)


def test_decompress_arguments_are_checked():
    data = sample(1000)
    block = B.compress_block(data, 4, "lz4", 1)
    with pytest.raises(ValueError, match="out holds 999 bytes, but raw_length is 1000"):
        B.decompress_block(block, 1000, 4, "lz4", bytearray(999))
    with pytest.raises(ValueError, match="out must be a writable buffer"):
        B.decompress_block(block, 1000, 4, "lz4", bytes(1000))
    with pytest.raises(ValueError, match="out must be a C-contiguous buffer"):
        B.decompress_block(block, 1000, 4, "lz4", memoryview(bytearray(2000))[::2])
    with pytest.raises(ValueError, match="raw_length must be an int from 0"):
        B.decompress_block(block, -1, 4, "lz4", bytearray(1000))
    with pytest.raises(ValueError, match="unknown compressor 'nope'"):
        B.decompress_block(block, 1000, 4, "nope", bytearray(1000))
    with pytest.raises(ValueError, match="declares 1 chunks; 2 expected"):
        B.decompress_block(block, 1000, 4, "lz4", bytearray(1000), chunk_size=512)


def test_codec_returning_a_wrong_length(registry):
    C.register_compressor("truncating", Truncating())
    block = B.compress_block(bytes(range(250)) * 40, 1, "truncating", 1, chunk_size=4000)
    with pytest.raises(ValueError, match=r"chunk 0 of 3 decompressed by 'truncating' to 3999 bytes, expected 4000"):
        B.decompress_block(block, 10_000, 1, "truncating", bytearray(10_000), chunk_size=4000)


def test_codec_errors_in_threads_propagate(registry):
    class Failing(Reverse):
        name = "failing"

        def compress(self, data, level):
            if bytes(data[:1]) == b"\x07":
                raise RuntimeError("boom")
            return bytes(data)

    C.register_compressor("failing", Failing())
    data = bytearray(10_000)
    data[5000] = 7
    with pytest.raises(RuntimeError, match="boom"):
        B.compress_block(data, 1, "failing", 1, chunk_size=1000)
    roundtrip(sample(10_000), 8, "zlib")  # the shared pool still works


class NotBytes(Reverse):
    name = "notbytes"

    def compress(self, data, level):
        return bytearray(data)


def test_codec_returning_not_bytes(registry):
    C.register_compressor("notbytes", NotBytes())
    with pytest.raises(TypeError, match="compressor 'notbytes' returned bytearray, not bytes"):
        B.compress_block(bytes(10), 1, "notbytes", 1)


@pytest.mark.parametrize("name", CODECS)
def test_decompressor_errors_become_value_errors(name):
    data = sample(12_000, seed=8)
    block = bytearray(B.compress_block(data, 8, name, C.get_compressor(name).default_level, chunk_size=4000))
    offsets = B._codec.unpack_chunks(block, len(data), 4000)
    offset, length = offsets[1]
    block[offset : offset + length] = b"\xfe" * length  # garbage of the right size in chunk 1
    with pytest.raises(ValueError, match=rf"cannot decompress chunk 1 of 3 with compressor '{name}': \w+") as info:
        B.decompress_block(block, len(data), 8, name, bytearray(len(data)), chunk_size=4000, workers=1)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("name", CODECS)
def test_trailing_bytes_in_a_chunk(name):
    data = sample(5000, seed=9)
    level = C.get_compressor(name).default_level
    chunk = C.get_compressor(name).compress(bytes(data), level)
    block = B.frame_header([len(chunk) + 3]) + chunk + b"xyz"
    try:
        B.decompress_block(block, 5000, 1, name, bytearray(5000), chunk_size=5000)
    except ValueError as exc:
        assert "chunk 0 of 1" in str(exc)
    else:
        assert name == "lz4"  # lz4 blocks end where the data ends: it cannot notice


def corrupt_outcome(block, data, itemsize, name, chunk_size, workers=2):
    """'ok' with the decoded bytes, or 'ValueError'; any other exception fails the test."""
    out = bytearray(len(data))
    try:
        B.decompress_block(block, len(data), itemsize, name, out, chunk_size=chunk_size, workers=workers)
    except ValueError:
        return "ValueError", None
    return "ok", bytes(out)


@pytest.mark.parametrize("name", CODECS)
def test_truncated_and_extended_blocks(name):
    data = sample(9000, seed=10)
    block = B.compress_block(data, 4, name, C.get_compressor(name).default_level, chunk_size=2000)
    for cut in list(range(0, 40)) + list(range(40, len(block), 7)):
        assert corrupt_outcome(block[:cut], data, 4, name, 2000)[0] == "ValueError", cut
    assert corrupt_outcome(block + b"\0", data, 4, name, 2000)[0] == "ValueError"
    assert corrupt_outcome(block, data[:-1], 4, name, 2000)[0] == "ValueError"  # wrong raw length


@pytest.mark.parametrize("name", CODECS)
def test_wrong_counts_and_oversized_sizes(name):
    data = sample(9000, seed=11)
    block = bytearray(B.compress_block(data, 4, name, C.get_compressor(name).default_level, chunk_size=2000))
    for word, value in [(0, 4), (0, 6), (0, 0), (0, 2**32 - 1), (1, 2**32 - 1), (1, 0), (5, 2**31), (3, 1)]:
        bad = bytearray(block)
        bad[4 * word : 4 * word + 4] = value.to_bytes(4, "little")
        assert corrupt_outcome(bytes(bad), data, 4, name, 2000)[0] == "ValueError", (word, value)
    # a size moved from one chunk to the next: the frame adds up, the chunks do not decode
    bad = bytearray(block)
    first = int.from_bytes(bad[4:8], "little")
    second = int.from_bytes(bad[8:12], "little")
    bad[4:8] = (first - 1).to_bytes(4, "little")
    bad[8:12] = (second + 1).to_bytes(4, "little")
    assert corrupt_outcome(bytes(bad), data, 4, name, 2000)[0] == "ValueError"


@pytest.mark.parametrize("name", CODECS)
@settings(max_examples=60, **SETTINGS)
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
    workers=st.sampled_from([1, 2]),
)
def test_flipped_bytes_never_crash(name, flips, workers):
    data = sample(7000, seed=12)
    block = bytearray(B.compress_block(data, 8, name, C.get_compressor(name).default_level, chunk_size=1500))
    for position, mask in flips:
        block[position % len(block)] ^= mask
    result, decoded = corrupt_outcome(bytes(block), data, 8, name, 1500, workers)
    if result == "ok" and name in CHECKSUMMED:
        assert decoded == bytes(data)


def test_hostile_lzma_header_is_refused():
    # an LZMA "alone" header asking for a 4 GiB dictionary: refused, not allocated
    chunk = bytearray(lzma.compress(b"abc" * 100, format=lzma.FORMAT_ALONE, preset=1))
    chunk[1:5] = (2**32 - 1).to_bytes(4, "little")
    block = B.frame_header([len(chunk)]) + bytes(chunk)
    with pytest.raises(ValueError, match="chunk 0 of 1 with compressor 'lzma': LZMAError"):
        B.decompress_block(block, 300, 1, "lzma", bytearray(300), chunk_size=300)


def test_streams_longer_than_declared_are_cut_short():
    bomb = bz2.compress(bytes(10**7))
    block = B.frame_header([len(bomb)]) + bomb
    with pytest.raises(ValueError, match="the stream holds more than 100 bytes"):
        B.decompress_block(block, 100, 1, "bz2", bytearray(100), chunk_size=100)
    bomb = zlib.compress(bytes(10**7))
    block = B.frame_header([len(bomb)]) + bomb
    with pytest.raises(ValueError, match="the stream holds more than 100 bytes"):
        B.decompress_block(block, 100, 1, "zlib", bytearray(100), chunk_size=100)


@pytest.mark.skipif("zstd" not in CODECS, reason="zstandard is not installed")
def test_zstd_frame_declaring_another_size():
    import zstandard

    chunk = zstandard.ZstdCompressor().compress(bytes(10**6))
    block = B.frame_header([len(chunk)]) + chunk
    with pytest.raises(ValueError, match="the zstd frame declares 1000000 bytes"):
        B.decompress_block(block, 100, 1, "zstd", bytearray(100), chunk_size=100)
    chunk = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(100))
    block = B.frame_header([len(chunk)]) + chunk
    with pytest.raises(ValueError, match="the zstd frame does not declare its content size"):
        B.decompress_block(block, 100, 1, "zstd", bytearray(100), chunk_size=100)


def _compress_in_child(queue):
    data = sample(100_000)
    queue.put(B.compress_block(data, 8, "lz4", 1, chunk_size=10_000, workers=2))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_the_thread_pool_survives_fork():
    expected = B.compress_block(sample(100_000), 8, "lz4", 1, chunk_size=10_000, workers=2)  # pool running
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_compress_in_child, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=60) == expected
    finally:
        child.join(60)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
