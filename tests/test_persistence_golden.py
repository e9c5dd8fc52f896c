"""Golden persistence files: files written by an earlier joblite keep loading, and the format cannot drift.

``data/persistence/`` holds files written by ``make_golden.py`` (run only when
the format changes on purpose, with a bump of ``FORMAT_VERSION``) and a
manifest.  Each file must load to ``make_golden.golden_value()`` exactly, on
both kernel twins; the uncompressed one must also be reproduced bit for bit
by dumping that value today.  A failure here means that files on users' disks
would no longer load, or that the byte layout changed without a new version.
"""

import contextlib
import hashlib
import importlib.util
import json
import os
import struct

import numpy as np
import pytest

import _persistence_helpers as H
from joblite import persistence
from joblite.compressors import _builtins
from joblite.persistence import dump, dumps, load, loads

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "persistence")


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_golden", os.path.join(DATA, "make_golden.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _load_generator()
with open(os.path.join(DATA, "manifest.json"), encoding="utf-8") as _handle:
    MANIFEST = json.load(_handle)
CONTAINERS = sorted(name for name in MANIFEST["files"] if name.endswith(".jl"))


def path_of(name):
    return os.path.join(DATA, *name.split("/"))


def test_format_version_is_1():
    assert persistence.FORMAT_VERSION == 1
    assert MANIFEST["format_version"] == persistence.FORMAT_VERSION


def test_every_codec_that_is_always_available_has_a_golden_file():
    assert {MANIFEST["files"][name]["codec"] for name in CONTAINERS} == {"none"} | set(GENERATOR.CODECS)
    # zstd needs the optional zstandard package; every other built-in codec is always there
    assert set(GENERATOR.CODECS) == {codec.name for codec in _builtins()} - {"zstd"}


def test_golden_files_are_unchanged_and_small():
    total = 0
    for name, entry in MANIFEST["files"].items():
        with open(path_of(name), "rb") as handle:
            data = handle.read()
        assert len(data) == entry["size"], name
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{name} was modified"
        total += len(data)
    assert total < 200 * 1024


@pytest.mark.parametrize("name", CONTAINERS)
def test_header_says_version_1(name):
    with open(path_of(name), "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89JOBLITE"
    (version, flags) = struct.unpack_from("<HH", data, 8)
    assert (version, flags) == (1, 0)
    layout = H.parse(data)
    codec = MANIFEST["files"][name]["codec"]
    assert layout["codecs"] == (["none"] if codec == "none" else ["none", codec])
    assert all(block["offset"] % 64 == 0 for block in layout["blocks"])


def test_expected_value_matches_the_manifest():
    """The generator's value is still the one the files were written from."""
    assert GENERATOR.array_digests(GENERATOR.expected_value()) == MANIFEST["arrays"]


def check_content(got, mmap=False):
    expected = GENERATOR.expected_value()
    H.assert_same(got, expected)
    for key, value in got.items():
        if isinstance(value, np.ndarray) and value.size:  # an empty array may come back either way
            assert (type(value) is np.memmap) == mmap, key
    assert got["fortran"].flags.f_contiguous
    assert got["strided-view"].flags.c_contiguous
    assert GENERATOR.array_digests(got) == MANIFEST["arrays"]


@pytest.mark.parametrize("name", CONTAINERS)
def test_golden_file_loads_exactly(name):
    check_content(load(path_of(name)))
    with open(path_of(name), "rb") as handle:
        check_content(loads(handle.read(), allowed="numpy"))


@pytest.mark.parametrize("name", CONTAINERS)
def test_golden_file_with_mmap(name):
    compressed = MANIFEST["files"][name]["codec"] != "none"
    with (
        pytest.warns(UserWarning, match="compressed arrays cannot be memory-mapped")
        if compressed
        else contextlib.nullcontext()
    ):
        got = load(path_of(name), mmap_mode="r")
    check_content(got, mmap=not compressed)


def test_uncompressed_golden_file_is_reproduced_bit_for_bit(tmp_path):
    with open(path_of("uncompressed.jl"), "rb") as handle:
        golden = handle.read()
    value = GENERATOR.golden_value()
    assert dumps(value) == golden
    dump(value, tmp_path / "again.jl")
    assert (tmp_path / "again.jl").read_bytes() == golden


@pytest.mark.parametrize("codec", GENERATOR.CODECS)
def test_compressed_golden_files_round_trip_today(codec):
    """Dumping the golden value today with the same codec gives a file that loads the same.

    (Not compared bit for bit: compressed bytes depend on the codec library's version.)
    """
    data = dumps(GENERATOR.golden_value(), compress=codec)
    check_content(loads(data))
    with open(path_of(f"compressed-{codec}.jl"), "rb") as handle:
        golden = H.parse(handle.read())
    today = H.parse(data)
    assert [b["raw_length"] for b in today["blocks"]] == [b["raw_length"] for b in golden["blocks"]]
    assert [b["itemsize"] for b in today["blocks"]] == [b["itemsize"] for b in golden["blocks"]]
    assert today["pickle_raw_length"] == golden["pickle_raw_length"]
