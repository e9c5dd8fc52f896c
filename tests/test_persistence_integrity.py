"""Truncated, corrupted and foreign files: always ``CorruptFileError``, never another error, a crash or a hang.

Every region of a container is damaged in turn (header, pickle stream, each
block, block table, footer): truncations at every byte, byte and bit flips,
appended and prepended garbage, foreign files.  Then *resealed* damage: the
checksums are recomputed after the change (corruption that happened before
the file was checksummed, or a hand-crafted file), which gets past the
checksums to the structural checks: table fields, codec list, compressed
frames, the decompressors of the active kernel twin.
"""

import importlib.util
import io
import os
import pickle
import random
import signal
import struct
import zlib

import numpy as np
import pytest

import _persistence_helpers as H
from joblite import compressors
from joblite.persistence import CorruptFileError, dump, dumps, load, loads

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# deliberately small: every byte of these files is damaged in turn
VALUE = {
    "a": np.arange(10, dtype=">i2"),
    "f": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "view": np.arange(40, dtype=np.int32)[::4],
    "empty": np.empty(0),
    "t": np.array(["2020-01-01", "NaT"], dtype="M8[D]"),
    "s": "text",
    "l": [1, 2.5, None, (b"x",)],
}
COMPRESS = [0, "lz4", "zlib"]


def expected_value(value=VALUE):
    return dict(value, view=np.ascontiguousarray(value["view"]))


def same(got, value=VALUE):
    expected = expected_value(value)
    if got.keys() != expected.keys():
        return False
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            if got[key].dtype != value.dtype or got[key].tobytes() != value.tobytes():
                return False
        elif got[key] != value:
            return False
    return True


@pytest.fixture(autouse=True)
def no_hang():
    """Each test fails rather than hangs (SIGALRM after 120 s)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def timeout(signum, frame):
        raise TimeoutError("a load hung on a damaged file")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(120)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_corrupt(data, where=None, **kwargs):
    """`loads` raises CorruptFileError, nothing else; returns the message."""
    try:
        loads(data, allowed="numpy", **kwargs)
    except CorruptFileError as exc:
        message = str(exc)
    except BaseException as exc:  # noqa: B902 - the point is to catch anything else
        pytest.fail(f"{where}: expected CorruptFileError, got {type(exc).__name__}: {exc}")
    else:
        pytest.fail(f"{where}: a damaged file loaded without error")
    return message


def assert_corrupt_file(path, where=None, mmap_mode=None):
    try:
        load(path, mmap_mode=mmap_mode, allowed="numpy")
    except CorruptFileError as exc:
        assert str(path) in str(exc), "the message names the file"
        return str(exc)
    except BaseException as exc:  # noqa: B902
        pytest.fail(f"{where}: expected CorruptFileError, got {type(exc).__name__}: {exc}")
    pytest.fail(f"{where}: a damaged file loaded without error")


def regions(data):
    """``(name, start, stop)`` of every checksummed region of a container, and the unchecked bytes.

    The unchecked bytes are the zero padding and the frame of a compressed
    empty array (4 bytes, "0 chunks"): the loader does not read a block whose
    raw length is 0, and there is nothing in it to get wrong.
    """
    layout = H.parse(data)
    out = [("header", *layout["header"]), ("pickle stream", *layout["pickle"])]
    out += [(f"block {index}", *block["range"]) for index, block in enumerate(layout["blocks"]) if block["raw_length"]]
    out += [("block table", *layout["table"]), ("footer", *layout["footer"])]
    unchecked = layout["padding"] + [
        block["range"] for block in layout["blocks"] if block["length"] and not block["raw_length"]
    ]
    return out, unchecked


def region_of(data, position):
    named, padding = regions(data)
    for name, start, stop in named:
        if start <= position < stop:
            return name
    for start, stop in padding:
        if start <= position < stop:
            return "unchecked"
    raise AssertionError(position)


@pytest.fixture(scope="module", params=COMPRESS, ids=lambda c: f"compress={c}")
def small(request):
    data = dumps(VALUE, compress=request.param)
    assert same(loads(data))
    return data


def test_small_file_has_every_region(small):
    named, padding = regions(small)
    names = [name for name, _, _ in named]
    assert names[:2] == ["header", "pickle stream"] and names[-2:] == ["block table", "footer"]
    blocks = [name for name in names if name.split()[-1].isdigit()]
    assert len(blocks) == 4  # and the empty array's block, which holds nothing
    assert padding


# -- truncation ---------------------------------------------------------------------------
def test_truncated_at_every_byte(small):
    for cut in range(len(small)):
        assert_corrupt(small[:cut], f"cut at {cut} of {len(small)}")


def test_truncated_files_every_64_bytes(small, tmp_path):
    path = tmp_path / "cut.jl"
    for cut in list(range(0, len(small), 64)) + [len(small) - 1, len(small) - 63]:
        path.write_bytes(small[:cut])
        for mode in (None, "r"):
            assert_corrupt_file(path, f"cut at {cut}, mmap_mode={mode}", mmap_mode=mode)


@pytest.mark.parametrize("compress", [0, "lz4", "blosc-lz4"])
def test_truncated_large_file_random_cuts(tmp_path, compress):
    rng = np.random.default_rng(7)
    value = {
        "x": rng.standard_normal(300_000),
        "i": np.arange(500_000, dtype=np.int32) % 77,
        "v": np.arange(2_000_000, dtype=np.uint8)[::3],
        "s": "tail",
    }
    path = tmp_path / "large.jl"
    dump(value, path, compress=compress)
    data = path.read_bytes()
    named, _ = regions(data)
    cuts = sorted(
        set(
            rng.integers(0, len(data), 40).tolist()
            + [start for _, start, _ in named]
            + [stop - 1 for _, _, stop in named]
            + [len(data) - 1]
        )
    )
    cut_path = tmp_path / "cut.jl"
    for cut in cuts:
        cut_path.write_bytes(data[:cut])
        assert_corrupt_file(cut_path, f"cut at {cut}")
        assert_corrupt_file(cut_path, f"cut at {cut}, mmap", mmap_mode="r")
    assert_corrupt(data[: len(data) // 2], "half")


# -- byte and bit flips -------------------------------------------------------------------
@pytest.mark.parametrize("compress", [0, "blosc-lz4"])
def test_flips_in_a_large_file_name_their_region(tmp_path, compress):
    """A file larger than the loader's first read: its first and last bytes come from two reads, the rest at offsets."""
    value = {"x": np.random.default_rng(3).standard_normal(400_000), "i": np.arange(300_000) % 97, "s": "tail"}
    path = tmp_path / "large.jl"
    dump(value, path, compress=compress)
    data = path.read_bytes()
    assert len(data) > 1 << 20
    named, _ = regions(data)
    damaged = tmp_path / "damaged.jl"
    for name, start, stop in named:
        for position in sorted({start, (start + stop) // 2, stop - 1}):
            flipped = bytearray(data)
            flipped[position] ^= 0x5A
            damaged.write_bytes(flipped)
            message = assert_corrupt_file(damaged, f"{name} at {position}")
            no_magic = name == "header" and position < 8 and "not a joblite or joblib file" in message
            assert name in message or no_magic, (position, message)


def test_flip_every_byte(small):
    """Every byte of every checksummed region is detected; the zero padding is not data."""
    for position in range(len(small)):
        damaged = bytearray(small)
        damaged[position] ^= 0xFF
        region = region_of(small, position)
        if region == "unchecked":
            try:
                got = loads(bytes(damaged), allowed="numpy")
            except CorruptFileError:
                continue
            assert same(got), f"unchecked byte {position} changed the loaded value"
            continue
        message = assert_corrupt(bytes(damaged), f"byte {position} ({region})")
        if region == "header" and position < 8:
            assert "not a joblite" in message or "magic" in message
        else:
            assert region in message, f"byte {position}: {message!r} does not name {region!r}"


def test_flip_every_bit_of_each_region(small):
    rng = random.Random(3)
    named, _ = regions(small)
    for name, start, stop in named:
        positions = range(start, stop) if stop - start <= 64 else sorted(rng.sample(range(start, stop), 64))
        for position in positions:
            for bit in range(8):
                damaged = bytearray(small)
                damaged[position] ^= 1 << bit
                assert_corrupt(bytes(damaged), f"bit {bit} of byte {position} ({name})")


def test_flips_on_disk_with_and_without_mmap(small, tmp_path):
    """With mmap_mode the blocks are not read (nor checked), but every other region is."""
    path = tmp_path / "flip.jl"
    named, _ = regions(small)
    for name, start, stop in named:
        for position in {start, (start + stop) // 2, stop - 1}:
            damaged = bytearray(small)
            damaged[position] ^= 0x55
            path.write_bytes(damaged)
            message = assert_corrupt_file(path, f"byte {position} ({name})")
            assert name in message or (name == "header" and position < 8)
            if not name.startswith("block ") or H.parse(small)["codecs"] != ["none"]:
                assert_corrupt_file(path, f"byte {position} ({name}), mmap", mmap_mode="r")


def test_zeroed_and_swapped_regions(small):
    named, _ = regions(small)
    for name, start, stop in named:
        damaged = bytearray(small)
        damaged[start:stop] = bytes(stop - start)
        assert_corrupt(bytes(damaged), f"{name} zeroed")
    # two regions of the file swapped (the same length: the first and last 64 bytes)
    assert_corrupt(small[-64:] + small[64:-64] + small[:64], "header and footer swapped")


# -- garbage around the file --------------------------------------------------------------
@pytest.mark.parametrize("garbage", [b"\x00", bytes(64), b"\n", b"garbage" * 100, "footer", "container"])
def test_appended_garbage(small, tmp_path, garbage):
    if garbage == "footer":
        garbage = small[-64:]
    elif garbage == "container":
        garbage = small
    assert_corrupt(small + garbage, "appended")
    path = tmp_path / "appended.jl"
    path.write_bytes(small + garbage)
    assert_corrupt_file(path, "appended")
    assert_corrupt_file(path, "appended, mmap", mmap_mode="r")


@pytest.mark.parametrize("garbage", [b"\x00", bytes(64), b"#!", b"\x89JOBLITE"])
def test_prepended_garbage(small, garbage):
    assert_corrupt(garbage + small, "prepended")


# -- foreign files ------------------------------------------------------------------------
def npy_bytes():
    stream = io.BytesIO()
    np.save(stream, np.arange(100.0))
    return stream.getvalue()


def foreign_files():
    rng = random.Random(11)
    files = {
        "empty": b"",
        "one-byte": b"\x89",
        "png": b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(500)),
        "npy": npy_bytes(),
        "zip": b"PK\x03\x04" + bytes(200),
        "text": b"hello world\n" * 20,
        "hdf5": b"\x89HDF\r\n\x1a\n" + bytes(300),
        "elf": b"\x7fELF\x02\x01\x01" + bytes(300),
        "magic-only": b"\x89JOBLITE",
        "header-only": dumps(1)[:64],
        "header-and-zeros": dumps(1)[:64] + bytes(64),
        "all-zero-128": bytes(128),
        "all-ff": b"\xff" * 4096,
        "folder-pickle": b"\x89JLFOLDR\x01\x00" + pickle.dumps([1, 2], protocol=5),
    }
    for seed in range(8):
        generator = random.Random(seed)
        files[f"random-{seed}"] = bytes(generator.randrange(256) for _ in range(generator.randrange(1, 3000)))
    return files


FOREIGN = foreign_files()


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_foreign_file(tmp_path, name):
    data = FOREIGN[name]
    assert_corrupt(data, name)
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    assert_corrupt_file(path, name)
    assert_corrupt_file(path, name, mmap_mode="r")


JOBLIB_LOOKALIKES = {
    "zlib": b"\x78\x9c" + bytes(range(256)),
    "lz4": b"\x04\x22\x4d\x18" + bytes(300),
    "xz": b"\xfd7zXZ\x00" + bytes(range(256)),
    "lzma": b"\x5d\x00\x00" + bytes(300),
    "bz2": b"BZh9" + bytes(3),
    "pickle": b"\x80\x05" + bytes(300),
    "pickle-truncated": b"\x80\x04",
    "joblib-zlib-compat": b"ZF0x" + bytes(300),
    "lz4-prefixed-container": b"\x04\x22\x4d\x18" + dumps(VALUE),
}


@pytest.mark.parametrize("name", sorted(JOBLIB_LOOKALIKES))
def test_damaged_joblib_lookalikes(tmp_path, name):
    assert_corrupt(JOBLIB_LOOKALIKES[name], name)


# -- resealed damage: past the checksums, into the structural checks -----------------------
def field(data, offset, fmt, value):
    damaged = bytearray(data)
    struct.pack_into(fmt, damaged, offset, value)
    return H.reseal(bytes(damaged))


def entry_offset(data, index):
    return H.parse(data)["table"][0] + index * H.ENTRY.size


def codec_list_offset(data):
    return H.parse(data)["table"][0] + len(H.parse(data)["blocks"]) * H.ENTRY.size


def structural_cases(data):
    """``name -> damaged bytes``, each with valid checksums."""
    layout = H.parse(data)
    size = len(data)
    first = entry_offset(data, 0)
    second = entry_offset(data, 1)
    table_offset, table_end = layout["table"]
    footer = size - 64
    cases = {
        "version 3": field(data, 8, "<H", 3),
        "version 0": field(data, 8, "<H", 0),
        "unknown flag 2": field(data, 10, "<H", 2),
        "pickle codec out of range": field(data, 40, "<B", 7),
        "pickle length past the table": field(data, 16, "<Q", size),
        "pickle length huge": field(data, 16, "<Q", 2**63),
        "pickle length short": field(data, 16, "<Q", layout["pickle_length"] - 1),
        "pickle length zero": field(data, 16, "<Q", 0),
        "block misaligned": field(data, first, "<Q", layout["blocks"][0]["offset"] + 8),
        "block over the pickle stream": field(data, first, "<Q", 64),
        "block past the table": field(data, first + 8, "<Q", size),
        "block length huge": field(data, first + 8, "<Q", 2**64 - 1),
        "block offset huge": field(data, first, "<Q", 2**64 - 64),
        "blocks overlap": field(data, second, "<Q", layout["blocks"][0]["offset"]),
        "codec index out of range": field(data, first + 24, "<B", 9),
        "itemsize 0": field(data, first + 25, "<B", 0),
        "raw length smaller": field(data, first + 16, "<Q", layout["blocks"][0]["raw_length"] - 2),
        "raw length larger": field(data, first + 16, "<Q", layout["blocks"][0]["raw_length"] + 2),
        "raw length zero": field(data, first + 16, "<Q", 0),
        "n_blocks larger": field(data, footer + 24, "<Q", len(layout["blocks"]) + 1),
        "n_blocks huge": field(data, footer + 24, "<Q", 2**60),
        "n_blocks smaller": field(data, footer + 24, "<Q", len(layout["blocks"]) - 1),
        "n_blocks zero": field(data, footer + 24, "<Q", 0),
        "table offset": field(data, footer + 8, "<Q", table_offset - 64),
        "table offset huge": field(data, footer + 8, "<Q", 2**64 - 1),
        "table length": field(data, footer + 16, "<Q", table_end - table_offset + 1),
        "table length huge": field(data, footer + 16, "<Q", 2**63),
        "file length": H.reseal(
            bytes(data[: footer + 40]) + struct.pack("<Q", size + 64) + data[footer + 48 :], fix_length=False
        ),
        "codec count zero": field(data, codec_list_offset(data), "<H", 0),
        "codec count huge": field(data, codec_list_offset(data), "<H", 0xFFFF),
        "codec name long": field(data, codec_list_offset(data) + 2, "<B", 255),
        "codec name not ascii": field(data, codec_list_offset(data) + 3, "<B", 0xE9),
        "first codec not none": field(data, codec_list_offset(data) + 3, "<B", ord("m")),
        "blocks swapped in the table": H.reseal(
            data[:first] + data[second : second + 48] + data[first : first + 48] + data[second + 48 :]
        ),
    }
    if layout["codecs"] != ["none"]:
        codec_name = codec_list_offset(data) + 2 + 5 + 1  # after count, 'none'
        compressed = next(i for i, b in enumerate(layout["blocks"]) if b["codec"] and b["raw_length"] > 8)
        block = layout["blocks"][compressed]
        entry = entry_offset(data, compressed)
        cases.update(
            {
                "unknown codec name": field(data, codec_name, "<B", ord("q")),
                # resealed as version 1: each compressed part is checksummed whole, and its
                # frame does not add up, with the chunk checksums after it
                "labelled version 1": field(data, 8, "<H", 1),
                "chunk size zero": field(data, 48, "<Q", 0),
                "chunk size huge": field(data, 48, "<Q", 2**63),
                "chunk size one": field(data, 48, "<Q", 1),
                "pickle raw length smaller": field(data, 24, "<Q", layout["pickle_raw_length"] - 1),
                "pickle raw length larger": field(data, 24, "<Q", layout["pickle_raw_length"] + 1),
                "pickle raw length zero": field(data, 24, "<Q", 0),
                "compressed raw length larger": field(data, entry + 16, "<Q", block["raw_length"] + 1),
                "compressed raw length smaller": field(data, entry + 16, "<Q", block["raw_length"] - 1),
                "compressed itemsize changed": field(data, entry + 25, "<B", block["itemsize"] + 1),
                "frame chunk count": field(data, block["offset"], "<I", 2),
                "frame chunk count huge": field(data, block["offset"], "<I", 0xFFFFFFFF),
                "frame chunk size": field(data, block["offset"] + 4, "<I", block["length"]),
                "frame chunk size small": field(data, block["offset"] + 4, "<I", 1),
                "frame chunk size huge": field(data, block["offset"] + 4, "<I", 0xFFFFFFFF),
                "frame chunk data zeroed": H.reseal(
                    data[: block["offset"] + 8] + bytes(block["length"] - 8) + data[block["offset"] + block["length"] :]
                ),
                # lz4 and lzma-alone carry no checksum of their own: a changed literal can decode
                (
                    "frame chunk data flipped"
                    + (" (no codec checksum)" if layout["codecs"][1] in ("lz4", "lzma") else "")
                ): H.reseal(
                    data[: block["offset"] + 9]
                    + bytes([data[block["offset"] + 9] ^ 0xFF])
                    + data[block["offset"] + 10 :]
                ),
                "pickle frame zeroed": H.reseal(
                    data[: 64 + 8] + bytes(layout["pickle_length"] - 8) + data[64 + layout["pickle_length"] :]
                ),
            }
        )
    return cases


# a pickle stream long enough to be compressed in a compressed file (from 4 KiB on)
LONG_STREAM_VALUE = dict(VALUE, text="joblite " * 600)


def dumps_long_stream(compress):
    data = dumps(LONG_STREAM_VALUE, compress=compress)
    assert bool(H.parse(data)["pickle_codec"]) == bool(compress)
    return data


@pytest.fixture(scope="module", params=COMPRESS, ids=lambda c: f"compress={c}")
def structural(request):
    return structural_cases(dumps_long_stream(request.param))


def test_resealing_alone_changes_nothing(small):
    assert H.reseal(small) == small


# Resealed changes that make another valid file (the checksums cover the stored bytes,
# not their meaning): they may load, as other data, but never crash.
UNDETECTABLE = {
    "blocks swapped in the table",
    "compressed itemsize changed",
    "frame chunk data flipped (no codec checksum)",
}


def test_structural_damage(structural):
    for name, data in structural.items():
        if name in UNDETECTABLE:
            try:
                got = loads(data, allowed="numpy")
            except CorruptFileError:
                continue
            assert not same(got, LONG_STREAM_VALUE), name
            continue
        assert_corrupt(data, name)


@pytest.mark.parametrize("where", ["block raw length", "pickle raw length"])
def test_huge_declared_raw_length(where):
    """A compressed block (or pickle stream) claiming a huge raw length is refused before allocation."""
    data = dumps_long_stream("lz4")
    layout = H.parse(data)
    if where == "pickle raw length":
        offsets = [(24, value) for value in (2**40, 2**62, 2**64 - 1)]
    else:
        index = next(i for i, b in enumerate(layout["blocks"]) if b["raw_length"])
        offsets = [(entry_offset(data, index) + 16, value) for value in (2**40, 2**62, 2**64 - 1)]
    for offset, value in offsets:
        assert_corrupt(field(data, offset, "<Q", value), f"{where} = {value}")


CLAIM_SCRIPT = r"""
import struct, sys
sys.path.insert(0, {tests!r})
import _persistence_helpers as H
H.limit_address_space(3 << 30)  # never let a claim eat this machine
import numpy as np
from joblite.persistence import CorruptFileError, dumps, loads

data = dumps({{"a": np.arange(1000) % 7, "s": "x" * 200}}, compress="zlib")
layout = H.parse(data)

def field(d, offset, value):
    d = bytearray(d)
    struct.pack_into("<Q", d, offset, value)
    return H.reseal(bytes(d))

largest_chunks = field(data, 48, 1 << 30)  # a valid header: chunks of 1 GiB, the maximum
for what, offset, length in [("pickle", 24, layout["pickle_length"]),
                             ("block", layout["table"][0] + 16, layout["blocks"][0]["length"])]:
    claim = max(length - 4, 0) // 5 * (1 << 30)  # as much as the stored length allows
    try:
        loads(field(largest_chunks, offset, claim), allowed="numpy")
        print(what, "loaded")
    except CorruptFileError:
        print(what, "corrupt")
    except BaseException as exc:
        print(what, type(exc).__name__)
"""


@pytest.mark.skipif(importlib.util.find_spec("resource") is None, reason="needs POSIX resource limits")
def test_largest_chunk_size_claims_are_refused_before_allocation():
    import subprocess
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(tests)] + sys.path))
    result = subprocess.run(
        [sys.executable, "-c", CLAIM_SCRIPT.format(tests=tests)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pickle", "corrupt", "block", "corrupt"], result.stdout


def test_resealed_flip_every_byte_outside_the_pickle_stream(small):
    """Past the checksums, every structural field is still validated: loads or CorruptFileError."""
    layout = H.parse(small)
    pickle_start, pickle_stop = layout["pickle"]
    for position in range(len(small)):
        if pickle_start <= position < pickle_stop:
            continue
        for xor in (0xFF, 0x01, 0x80):
            damaged = bytearray(small)
            damaged[position] ^= xor
            damaged = H.reseal(bytes(damaged))
            try:
                loads(damaged, allowed="numpy")
            except CorruptFileError:
                pass
            except BaseException as exc:  # noqa: B902
                pytest.fail(
                    f"byte {position} ^ {xor:#x} ({region_of(small, position)}), resealed: {type(exc).__name__}: {exc}"
                )


def test_resealed_pickle_stream_damage_never_escapes_numpy_mode(small, tmp_path):
    """A resealed, damaged pickle stream under allowed='numpy': any Exception but no code runs.

    (The unpickler may raise TypeError, UnicodeDecodeError... on a stream
    with valid checksums; what matters here is that nothing but the admitted
    globals is ever called, and that nothing crashes or hangs.)
    """
    layout = H.parse(small)
    start, stop = layout["pickle"]
    if layout["codecs"] != ["none"]:
        pytest.skip("a compressed pickle stream is damaged as a whole by the frame checks")
    before = set(os.listdir(tmp_path))
    for position in range(start, stop):
        for xor in (0xFF, 0x01, 0x10):
            damaged = bytearray(small)
            damaged[position] ^= xor
            try:
                loads(H.reseal(bytes(damaged)), allowed="numpy")
            except (MemoryError, Exception):
                pass
    assert set(os.listdir(tmp_path)) == before


def test_compressed_frames_every_codec_resealed():
    """Garbage inside each codec's chunks, with valid checksums: CorruptFileError naming the block."""
    rng = random.Random(5)
    value = {"a": np.arange(50_000, dtype=np.int64) % 13, "b": np.linspace(0, 1, 20_000)}
    for codec in compressors.compressor_names():
        if codec not in ("lz4", "zlib", "gzip", "bz2", "lzma", "xz", "zstd"):
            continue
        data = dumps(value, compress=codec)
        layout = H.parse(data)
        for index, block in enumerate(layout["blocks"]):
            frame_header = 4 + 4 * struct.unpack_from("<I", data, block["offset"])[0]
            start = block["offset"] + frame_header
            stop = block["offset"] + block["length"]
            for _ in range(25):
                damaged = bytearray(data)
                for position in rng.sample(range(start, stop), min(3, stop - start)):
                    damaged[position] ^= rng.randrange(1, 256)
                damaged = H.reseal(bytes(damaged))
                try:
                    got = loads(damaged, allowed="numpy")
                except CorruptFileError as exc:
                    assert f"block {index}" in str(exc), str(exc)
                    continue
                except BaseException as exc:  # noqa: B902
                    pytest.fail(f"{codec}, block {index}: {type(exc).__name__}: {exc}")
                # some codecs carry no checksum of their own: a changed literal decodes
                assert got.keys() == value.keys()


def test_lz4_crafted_chunks_do_not_overrun():
    """lz4 block data crafted to write past its output (match offsets and lengths): rejected."""
    raw = np.zeros(4096, dtype=np.uint8)
    stream = dumps_stream(raw)
    crafted_chunks = [
        b"\x1f\x00" + b"\xff" * 40,  # literal length runs off the input
        b"\x0f" + b"\x01\x00" + b"\xff" * 20,  # match length far past the output
        b"\x10A\xff\xff",  # match offset before the start
        b"\x00",  # nothing
        b"\xf0" + b"\xff" * 100 + b"\x00",  # a huge literal run
    ]
    for chunk in crafted_chunks:
        frame = struct.pack("<II", 1, len(chunk)) + chunk
        data = H.build(stream, [(frame, raw.nbytes, 1, 1)], codecs=("none", "lz4"))
        assert_corrupt(data, f"crafted lz4 chunk {chunk[:8]!r}")


def dumps_stream(array):
    data = dumps(array)
    return data[slice(*H.parse(data)["pickle"])]


def test_zlib_bomb_is_bounded():
    """A chunk that inflates far past its raw length is refused without inflating it all."""
    raw = np.zeros(1024, dtype=np.uint8)
    bomb = zlib.compress(bytes(1 << 28), 9)  # 256 MiB of zeros in ~260 KB
    frame = struct.pack("<II", 1, len(bomb)) + bomb
    data = H.build(dumps_stream(raw), [(frame, raw.nbytes, 1, 1)], codecs=("none", "zlib"))
    import tracemalloc

    tracemalloc.start()
    try:
        assert_corrupt(data, "zlib bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_paths_in_messages(tmp_path):
    path = tmp_path / "named.jl"
    dump(VALUE, path)
    data = path.read_bytes()
    layout = H.parse(data)
    block = layout["blocks"][1]
    damaged = bytearray(data)
    damaged[block["offset"]] ^= 1
    path.write_bytes(damaged)
    message = assert_corrupt_file(path, "block")
    assert "block 1" in message and "checksum" in message
    assert isinstance(pytest.raises(ValueError, load, path).value, CorruptFileError)
