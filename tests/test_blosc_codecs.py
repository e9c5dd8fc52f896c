"""The 'blosc-*' codecs: c-blosc 1.x buffers per chunk, checked before c-blosc reads them.

Each chunk of a block is one Blosc buffer that the ``blosc`` package reads
alone; its 16-byte header is checked against the frame (lengths, codec)
before c-blosc decodes it, because the package trusts it.  Forged chunks
(with the container's checksums valid) give ``CorruptFileError``, never a
crash: the mutation campaign runs in a child process, where a crash would
show as a signal.
"""

import os
import struct
import subprocess
import sys

import blosc
import numpy as np
import pytest

import _persistence_helpers as H
from joblite import _blocks as B
from joblite import compressors as C
from joblite import dump, dumps, load, loads
from joblite.persistence import CorruptFileError

BLOSC_CODECS = ["blosc-lz4", "blosc-lz4-bitshuffle", "blosc-zstd", "blosc-zstd-bitshuffle"]
HEADER = struct.Struct("<BBBBIII")
JOBLITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(B.__file__)))


def records(count):
    dtype = np.dtype([("id", "<i8"), ("x", "<f8"), ("flag", "?"), ("code", "<i2"), ("v", "<f4")])
    out = np.zeros(count, dtype)
    out["id"] = np.arange(count)
    out["x"] = np.linspace(0, 1, count)
    out["code"] = np.arange(count) % 7
    return out


def test_the_default_codec_is_blosc_lz4_at_level_5():
    assert C.DEFAULT_COMPRESSOR == "blosc-lz4"
    assert C.parse_compress(True) == ("blosc-lz4", 5)
    assert H.parse(dumps(np.arange(10), compress=True))["codecs"] == ["none", "blosc-lz4"]


@pytest.mark.parametrize("name", BLOSC_CODECS)
@pytest.mark.parametrize(
    "value",
    [
        np.arange(3 << 20, dtype=np.int64) % 1000,  # 24 MiB: 24 chunks of 1 MiB
        np.linspace(0, 1, 1 << 20, dtype=np.float32).reshape(1024, 1024)[:, ::-1],  # a view, not contiguous
        records(100_000),  # 23-byte items: chunks of whole items
        np.arange(300, dtype=np.uint8),
        np.zeros((0, 5), np.float64),
        np.array(["ab", "cdé"] * 1000),  # 12-byte items
        np.zeros(70_000, dtype="V300"),  # items over Blosc's 255-byte typesize: no shuffle
    ],
    ids=["int64-24MiB", "f32-view", "records", "uint8", "empty", "unicode", "void300"],
)
def test_round_trip(name, value, tmp_path):
    path = tmp_path / "a.jl"
    dump(value, path, compress=name)
    got = load(path)
    assert got.dtype == value.dtype and got.shape == value.shape
    assert got.tobytes() == value.tobytes()
    assert loads(dumps(value, compress=name)).tobytes() == value.tobytes()  # the in-memory reader


@pytest.mark.parametrize("name", BLOSC_CODECS)
@pytest.mark.parametrize("itemsize", [1, 2, 4, 8, 16, 23])
def test_every_chunk_is_the_buffer_blosc_itself_writes(name, itemsize):
    """Blosc shuffles (joblite's shuffle is skipped), and any blosc reader reads each chunk alone."""
    data = (np.arange(60_000, dtype=np.uint32) % 251).astype(np.uint8)
    codec = C.get_compressor(name)
    block = B.compress_block(data, itemsize, name, 7, chunk_size=9_200)
    step = B.chunk_length(itemsize, 9_200)
    count = int.from_bytes(block[:4], "little")
    sizes = struct.unpack_from(f"<{count}I", block, 4)
    position = 4 + 4 * count
    for index, size in enumerate(sizes):
        chunk = block[position : position + size]
        piece = data[index * step : (index + 1) * step]
        shuffle = blosc.BITSHUFFLE if codec.bitshuffle else blosc.SHUFFLE
        assert chunk == blosc.compress(piece, typesize=itemsize, clevel=7, shuffle=shuffle, cname=codec.cname)
        assert blosc.decompress(chunk) == piece.tobytes()
        position += size


@pytest.mark.parametrize("name", BLOSC_CODECS)
@pytest.mark.parametrize("itemsize", [1, 2, 3, 4, 5, 8, 9, 16, 17, 23, 255])
def test_blocks_are_those_c_blosc_chooses_up_to_512_kib(name, itemsize):
    """`_Blosc.blocksize` follows c-blosc's own choice (read back from the package's buffers), capped."""
    codec = C.get_compressor(name)
    data = np.zeros((3 << 19) // itemsize * itemsize, np.uint8)
    data[::7] = 1
    shuffle = blosc.BITSHUFFLE if codec.bitshuffle else blosc.SHUFFLE
    for level in range(1, 10):
        blosc.set_blocksize(0)
        own = blosc.compress(data, typesize=itemsize, clevel=level, shuffle=shuffle, cname=codec.cname)
        chosen = struct.unpack_from("<I", own, 8)[0]
        assert C._blosc_default_blocksize(codec.cname, level, itemsize) == chosen
        chunk = codec.compress(data, level, itemsize)
        capped = chosen if chosen <= C.BLOSC_MAX_BLOCK else C.BLOSC_MAX_BLOCK // itemsize * itemsize
        assert struct.unpack_from("<I", chunk, 8)[0] == capped, level
        assert codec.decompress(chunk, len(data)) == data.tobytes()


def test_bitshuffle_and_zstd_make_smooth_floats_smaller():
    smooth = np.cumsum(np.random.default_rng(0).normal(0, 1e-3, 1 << 20)).astype(np.float32)
    sizes = {name: len(B.compress_block(smooth, 4, name, 5)) for name in BLOSC_CODECS}
    assert sizes["blosc-lz4-bitshuffle"] < sizes["blosc-lz4"]
    assert sizes["blosc-zstd-bitshuffle"] < sizes["blosc-zstd"] < sizes["blosc-lz4"]


def test_the_package_settings_do_not_change_the_bytes():
    """blosc's process-wide thread count and GIL setting, and its BLOSC_* variables, leave the bytes alone."""
    value = np.arange(1 << 20, dtype=np.int64) % 977
    expected = dumps(value, compress=True)
    blosc.set_nthreads(4)
    blosc.set_releasegil(False)
    blosc.set_blocksize(4096)
    try:
        assert dumps(value, compress=True) == expected
    finally:
        blosc.set_blocksize(0)
    code = (
        "import sys, numpy as np; from joblite import dumps; "
        "sys.stdout.buffer.write(dumps(np.arange(1 << 20, dtype=np.int64) % 977, compress=True))"
    )
    env = dict(os.environ, BLOSC_CLEVEL="9", BLOSC_COMPRESSOR="zstd", BLOSC_SHUFFLE="BITSHUFFLE", BLOSC_NTHREADS="2")
    env["PYTHONPATH"] = os.pathsep.join([JOBLITE_ROOT] + sys.path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == expected


def _chunk(name="blosc-lz4", nbytes=5000):
    data = (np.arange(nbytes) % 13).astype(np.uint8).tobytes()
    return C.get_compressor(name).compress(data, 5, 1), data


@pytest.mark.parametrize(
    "forge, message",
    [
        (lambda c: c[:15], "15 bytes are shorter than a Blosc header"),
        (lambda c: c[:-1], "the Blosc header says {cbytes} compressed bytes, the chunk has {short}"),
        (lambda c: c + b"\0", "the Blosc header says {cbytes} compressed bytes, the chunk has {long}"),
        (lambda c: c[:4] + struct.pack("<I", 4999) + c[8:], "the Blosc header says 4999 raw bytes, expected 5000"),
        (lambda c: c[:4] + struct.pack("<I", 1 << 31) + c[8:], f"the Blosc header says {1 << 31} raw bytes"),
        (lambda c: c[:2] + bytes([c[2] & 0x1F | 4 << 5]) + c[3:], "names codec number 4, not lz4"),
    ],
    ids=["short", "cut", "longer", "nbytes", "huge-nbytes", "codec"],
)
def test_a_forged_chunk_header_is_refused_before_blosc_reads_it(forge, message):
    chunk, _ = _chunk()
    cbytes = len(chunk)
    message = message.format(cbytes=cbytes, short=cbytes - 1, long=cbytes + 1)
    codec = C.get_compressor("blosc-lz4")
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        codec.decompress(forge(chunk), 5000)
    out = np.zeros(5000, np.uint8)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        codec.decompress_into(forge(chunk), out.ctypes.data, 5000)
    assert not out.any()  # nothing was written


def test_a_forged_chunk_in_a_resealed_file_is_corrupt():
    value = np.arange(1 << 20, dtype=np.int64)
    data = bytearray(dumps(value, compress=True))
    layout = H.parse(bytes(data))
    block = layout["blocks"][0]
    first_chunk = block["offset"] + 4 + 4 * int.from_bytes(data[block["offset"] : block["offset"] + 4], "little")
    struct.pack_into("<I", data, first_chunk + 4, 1 << 30)  # nbytes: Blosc would write 1 GiB there
    with pytest.raises(CorruptFileError, match="block 0: cannot decompress chunk 0 of 8 with compressor 'blosc-lz4'"):
        loads(H.reseal(bytes(data)))


MUTATION_SCRIPT = r"""
import random, struct, sys
import blosc
import numpy as np
from joblite import compressors as C
rng = random.Random(int(sys.argv[1]))
outcomes = {"same": 0, "error": 0, "other bytes": 0}
for name in ("blosc-lz4", "blosc-lz4-bitshuffle", "blosc-zstd", "blosc-zstd-bitshuffle"):
    codec = C.get_compressor(name)
    data = np.cumsum(np.random.default_rng(1).integers(-3, 4, 6000)).astype(np.int32).tobytes()
    for itemsize in (1, 4, 23):
        good = bytearray(codec.compress(data, 5, itemsize))
        for _ in range(int(sys.argv[2])):
            chunk = bytearray(good)
            for _ in range(rng.choice([1, 2, 4, 16])):
                where = rng.randrange(len(chunk))
                if rng.random() < 0.5:
                    chunk[where] ^= 1 << rng.randrange(8)
                else:
                    chunk[where] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            if rng.random() < 0.7:  # keep the lengths the header check compares
                struct.pack_into("<I", chunk, 4, len(data))
                struct.pack_into("<I", chunk, 12, len(chunk))
            out = np.full(len(data) + 64, 0xAB, np.uint8)
            try:
                codec.decompress_into(bytes(chunk), out.ctypes.data, len(data))
            except ValueError:
                outcomes["error"] += 1
                continue
            except blosc.blosc_extension.error:  # blosc's own error on a bad stream
                outcomes["error"] += 1
                continue
            assert (out[len(data):] == 0xAB).all(), "wrote past the end"
            outcomes["same" if out[: len(data)].tobytes() == data else "other bytes"] += 1
print(outcomes)
"""


def test_mutated_chunks_never_crash_nor_write_past_the_chunk():
    """Thousands of damaged chunks with consistent headers: an error or some bytes, in place, never a crash."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([JOBLITE_ROOT] + sys.path))
    count = os.environ.get("JOBLITE_BLOSC_MUTATIONS", "300")
    proc = subprocess.run(
        [sys.executable, "-c", MUTATION_SCRIPT, "17", count], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    outcomes = eval(proc.stdout)  # a dict literal printed by the child
    assert outcomes["error"] > 0 and sum(outcomes.values()) == 12 * int(count)


def test_files_of_the_former_default_lz4_stay_readable(tmp_path):
    value = {"a": np.arange(100_000, dtype=np.float64), "b": records(1000)}
    path = tmp_path / "old.jl"
    dump(value, path, compress="lz4")
    assert H.parse(path.read_bytes())["codecs"] == ["none", "lz4"]
    H.assert_same(load(path), value)


def test_blosc_ratio_bounds_hold_for_constant_data():
    for name in BLOSC_CODECS:
        codec = C.get_compressor(name)
        for itemsize, size in [(1, 1 << 20), (8, 1 << 24), (23, 1 << 24)]:  # the smallest and largest chunks
            stored = codec.compress(bytes(size), 9, itemsize)
            assert size <= codec.max_ratio * len(stored), (name, itemsize, len(stored))


def test_the_chunks_grow_with_the_largest_block():
    """A sixteenth of the largest block, a power of two from 1 to 16 MiB; joblite's own codecs: 1 MiB."""
    expected = {0: 1, 16: 1, 32: 2, 64: 4, 200: 8, 256: 16, 4096: 16}
    assert {mib: B.default_chunk_size("blosc-lz4", mib << 20) >> 20 for mib in expected} == expected
    assert B.default_chunk_size("lz4", 1 << 30) == B.CHUNK_SIZE
    value = {"small": np.arange(10), "large": np.zeros(64 << 17)}  # 64 MiB of float64
    assert H.parse(dumps(value, compress=True))["chunk_size"] == 4 << 20
    assert H.parse(dumps(value, compress="zlib"))["chunk_size"] == 1 << 20


@pytest.mark.parametrize("name", ["blosc-lz4", "lz4"])
def test_a_file_written_as_it_is_compressed_has_the_bytes_of_one_written_whole(name, tmp_path):
    """A block of several chunks to a file of our own streams them, its frame header last; a file object does not."""
    value = {"a": np.arange(3 << 17, dtype=np.int64) % 1000, "b": np.ones(10)}  # 3 chunks of 1 MiB, and one chunk
    path = tmp_path / "a.jl"
    dump(value, path, compress=name)
    assert path.read_bytes() == dumps(value, compress=name)
    H.assert_same(load(path), value)


@pytest.mark.parametrize("name", ["blosc-lz4", "blosc-zstd-bitshuffle", "lz4", "zlib"])
def test_a_large_block_read_while_decoded_is_checked_chunk_by_chunk(name, tmp_path):
    """Chunks are checked as they are read: a damaged chunk is its checksum's mismatch, a forged one the codec's."""
    value = np.random.default_rng(0).integers(0, 1 << 40, 3 << 20)  # 24 MiB, stored in about 15
    good = dumps(value, compress=name)
    block = H.parse(good)["blocks"][0]
    assert block["length"] >= 1 << 22  # read by the decoding threads
    count = int.from_bytes(good[block["offset"] : block["offset"] + 4], "little")
    sizes = struct.unpack_from(f"<{count}I", good, block["offset"] + 4)
    last_chunk = block["offset"] + 4 + 4 * count + sum(sizes[:-1])
    path = tmp_path / "damaged.jl"
    for target, message in [
        (last_chunk + sizes[-1] // 2, f"block 0: chunk {count - 1} of {count}: checksum mismatch"),
        (block["offset"] + block["length"] - 3, "block 0: checksum mismatch"),  # the checksum list
        (block["offset"] + 5, "block 0: checksum mismatch"),  # the frame header
    ]:
        data = bytearray(good)
        data[target] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(CorruptFileError, match=message):
            load(path)
    data = bytearray(good)
    data[last_chunk + sizes[-1] // 2] ^= 0xFF
    path.write_bytes(H.reseal(bytes(data)))
    try:
        got = load(path)
    except CorruptFileError as exc:
        assert "block 0: " in str(exc) and "checksum" not in str(exc)
    else:  # a codec without a checksum of its own may decode the damage into other values
        assert got.shape == value.shape and not np.array_equal(got, value)
