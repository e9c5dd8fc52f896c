"""Golden persistence files: files written by an earlier joblite keep loading, and the format cannot drift.

``data/persistence/`` holds one folder per format version, ``v1/``, ``v2/``,
..., each with the files that ``make_golden.py`` wrote under that version and
its own ``manifest.json`` (file names in it are relative to the folder).  The
script only ever writes the folder of today's ``FORMAT_VERSION`` (run it only
when the format changes on purpose, with a bump of ``FORMAT_VERSION``); the
folders of older versions are kept byte for byte, as the files users already
have on disk.

Every file of every version must load to ``make_golden.golden_value()``
(``large_value()`` for the large file, whose manifest entry names it)
exactly, on both kernel twins, and say its folder's version in its header; the
uncompressed file of the current version must also be reproduced bit for bit
by dumping that value today.  A failure here means that files on users' disks
would no longer load, or that the byte layout changed without a new version.
"""

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import struct

import numpy as np
import pytest
import xxhash

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


def _load_manifests():
    """``version -> manifest`` of every version folder ``v<version>/``."""
    manifests = {}
    for folder in os.listdir(DATA):
        match = re.fullmatch(r"v([1-9][0-9]*)", folder)
        if match and os.path.isdir(os.path.join(DATA, folder)):
            with open(os.path.join(DATA, folder, "manifest.json"), encoding="utf-8") as handle:
                manifests[int(match.group(1))] = json.load(handle)
    return manifests


GENERATOR = _load_generator()
MANIFESTS = _load_manifests()
VERSIONS = sorted(MANIFESTS)
CURRENT = persistence.FORMAT_VERSION
# every golden file, named with its folder: "v1/uncompressed.jl"
CONTAINERS = sorted(f"v{version}/{name}" for version, manifest in MANIFESTS.items() for name in manifest["files"])


def path_of(name):
    return os.path.join(DATA, *name.split("/"))


def version_of(name):
    """The format version of golden file `name` ("v2/uncompressed.jl"): its folder's."""
    return int(name.split("/")[0][1:])


def entry_of(name):
    """The manifest entry (codec, size, sha256) of golden file `name`."""
    return MANIFESTS[version_of(name)]["files"][name.split("/", 1)[1]]


def read(name):
    with open(path_of(name), "rb") as handle:
        return handle.read()


def test_format_version_is_2_and_has_the_newest_golden_folder():
    assert persistence.FORMAT_VERSION == 2
    assert VERSIONS[-1] == persistence.FORMAT_VERSION
    assert VERSIONS == list(range(1, CURRENT + 1))  # no version's files were dropped


@pytest.mark.parametrize("version", VERSIONS)
def test_each_manifest_is_its_folders_version(version):
    assert MANIFESTS[version]["format_version"] == version


@pytest.mark.parametrize("version", VERSIONS)
def test_every_codec_that_is_always_available_has_a_golden_file(version):
    files = MANIFESTS[version]["files"]
    assert {entry["codec"] for entry in files.values()} == {"none"} | set(GENERATOR.CODECS)
    # zstd needs the optional zstandard package; every other built-in codec is always there
    assert set(GENERATOR.CODECS) == {codec.name for codec in _builtins()} - {"zstd"}


def test_golden_files_are_unchanged_and_small():
    total = 0
    for version in VERSIONS:
        listed = set(MANIFESTS[version]["files"])
        assert set(os.listdir(os.path.join(DATA, f"v{version}"))) == listed | {"manifest.json"}, version
    for name in CONTAINERS:
        data = read(name)
        entry = entry_of(name)
        assert len(data) == entry["size"], name
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{name} was modified"
        total += len(data)
    # the budget covers the files of every version together: about 50 KiB a version
    # (v1 + v2: about 98 KiB), so it holds a few more versions before it needs a look
    assert total < 200 * 1024


@pytest.mark.parametrize("name", CONTAINERS)
def test_header_version_is_its_folders_version(name):
    data = read(name)
    assert data[:8] == b"\x89JOBLITE"
    (version, flags) = struct.unpack_from("<HH", data, 8)
    assert (version, flags) == (version_of(name), 0)
    layout = H.parse(data)
    codec = entry_of(name)["codec"]
    assert layout["codecs"] == (["none"] if codec == "none" else ["none", codec])
    assert all(block["offset"] % 64 == 0 for block in layout["blocks"])


def part_checksum(stored, version, compressed):
    """A part's checksum as its version defines it, its chunk checksums checked first (version 2)."""
    if version > 1 and compressed:
        count = int.from_bytes(stored[:4], "little")
        frame = stored[: len(stored) - 8 * count]
        sizes = struct.unpack_from(f"<{count}I", frame, 4)
        assert len(frame) == 4 + 4 * count + sum(sizes)
        assert H.with_checksums(frame) == stored  # each chunk's xxh3_64, after the frame
    return H.part_checksum(stored, version, compressed)


@pytest.mark.parametrize("name", CONTAINERS)
def test_part_checksums_follow_their_versions_rule(name):
    data, version = read(name), version_of(name)
    layout = H.parse(data)
    (stream_checksum,) = struct.unpack_from("<Q", data, 32)
    assert stream_checksum == part_checksum(data[slice(*layout["pickle"])], version, layout["pickle_codec"])
    for block in layout["blocks"]:
        assert block["checksum"] == part_checksum(data[slice(*block["range"])], version, block["codec"])


def test_version_2_changed_only_compressed_parts():
    """The uncompressed files of versions 1 and 2 differ only in the header's version (and its checksum)."""
    old, new = read("v1/uncompressed.jl"), read("v2/uncompressed.jl")
    assert len(old) == len(new)
    patched = bytearray(old)
    struct.pack_into("<H", patched, 8, 2)
    struct.pack_into("<Q", patched, 56, xxhash.xxh3_64_intdigest(bytes(patched[:56])))
    assert bytes(patched) == new


@pytest.mark.parametrize("version", VERSIONS)
def test_expected_value_matches_the_manifest(version):
    """The generator's values are still the ones the files were written from."""
    assert GENERATOR.array_digests(GENERATOR.expected_value()) == MANIFESTS[version]["arrays"]
    if "large_arrays" in MANIFESTS[version]:
        assert GENERATOR.array_digests(GENERATOR.large_value()) == MANIFESTS[version]["large_arrays"]


def test_the_large_golden_file_holds_what_the_small_ones_cannot():
    """Two chunks (so the header's hint), c-blosc blocks capped at 512 KiB, and a compressed pickle stream."""
    large = [name for name in CONTAINERS if is_large(name)]
    assert large == [f"v{version}/large-blosc-lz4.jl" for version in VERSIONS if version >= 2]
    for name in large:
        data = read(name)
        layout = H.parse(data)
        assert layout["hints"] == 1 and layout["pickle_codec"] == 1
        (block,) = layout["blocks"]
        offset = block["offset"]
        count = int.from_bytes(data[offset : offset + 4], "little")
        assert count == 2
        first = offset + 4 + 4 * count  # the first chunk: a c-blosc buffer, its block size at bytes 8 to 12
        assert int.from_bytes(data[first + 4 : first + 8], "little") == 1 << 20
        assert int.from_bytes(data[first + 8 : first + 12], "little") == 1 << 19


def is_large(name):
    """Whether golden file `name` holds ``make_golden.large_value()``, not the small value."""
    return entry_of(name).get("value") == "make_golden.large_value()"


def check_content(got, name, mmap=False):
    if is_large(name):
        H.assert_same(got, GENERATOR.large_value())
        assert GENERATOR.array_digests(got) == MANIFESTS[version_of(name)]["large_arrays"]
        return
    expected = GENERATOR.expected_value()
    H.assert_same(got, expected)
    for key, value in got.items():
        if isinstance(value, np.ndarray) and value.size:  # an empty array may come back either way
            assert (type(value) is np.memmap) == mmap, key
    assert got["fortran"].flags.f_contiguous
    assert got["strided-view"].flags.c_contiguous
    assert GENERATOR.array_digests(got) == MANIFESTS[version_of(name)]["arrays"]


@pytest.mark.parametrize("name", CONTAINERS)
def test_golden_file_loads_exactly(name):
    check_content(load(path_of(name)), name)
    check_content(loads(read(name), allowed="numpy"), name)


@pytest.mark.parametrize("name", CONTAINERS)
def test_golden_file_with_mmap(name):
    compressed = entry_of(name)["codec"] != "none"
    with (
        pytest.warns(UserWarning, match="compressed arrays cannot be memory-mapped")
        if compressed
        else contextlib.nullcontext()
    ):
        got = load(path_of(name), mmap_mode="r")
    check_content(got, name, mmap=not compressed)


def test_uncompressed_golden_file_is_reproduced_bit_for_bit(tmp_path):
    golden = read(f"v{CURRENT}/uncompressed.jl")
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
    check_content(loads(data), f"v{CURRENT}/compressed-{codec}.jl")
    golden = H.parse(read(f"v{CURRENT}/compressed-{codec}.jl"))
    today = H.parse(data)
    assert today["version"] == golden["version"] == CURRENT
    assert [b["raw_length"] for b in today["blocks"]] == [b["raw_length"] for b in golden["blocks"]]
    assert [b["itemsize"] for b in today["blocks"]] == [b["itemsize"] for b in golden["blocks"]]
    assert [b["codec"] for b in today["blocks"]] == [b["codec"] for b in golden["blocks"]]
    assert today["pickle_raw_length"] == golden["pickle_raw_length"]
    assert today["pickle_codec"] == golden["pickle_codec"]
