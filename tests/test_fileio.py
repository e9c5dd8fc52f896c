"""The file-system hint kernel (preallocation) and the large-block read/write paths."""

import os
import sys

import numpy as np
import pytest

import joblite
from joblite.persistence import CorruptFileError


def test_preallocate_reserves_without_changing_the_size(twin, tmp_path):
    preallocate = twin.fileio.preallocate
    path = tmp_path / "f"
    with open(path, "wb") as fileobj:
        reserved = preallocate(fileobj.fileno(), 1 << 20)
        assert preallocate(fileobj.fileno(), 0) is False
    assert isinstance(reserved, bool)
    assert os.path.getsize(path) == 0
    if twin.name == "pure":
        assert reserved is False


@pytest.fixture(scope="module")
def large():
    # Above the size from which reads run on two threads and writes overlap the checksum.
    return np.random.default_rng(0).random(3 << 20)  # 24 MiB


def test_large_block_round_trip_and_exact_size(large, tmp_path):
    path = tmp_path / "large.joblite"
    joblite.dump({"a": large, "b": large[::3]}, path)
    loaded = joblite.load(path)
    assert np.array_equal(loaded["a"], large) and np.array_equal(loaded["b"], large[::3])
    # the reserved blocks never show as file length
    assert os.path.getsize(path) < large.nbytes * 4 // 3 + 4096


def test_large_block_damage_is_found(large, tmp_path):
    path = tmp_path / "large.joblite"
    joblite.dump(large, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="block 0: checksum mismatch"):
        joblite.load(path)
    assert joblite.load(path, mmap_mode="r").shape == large.shape  # mapping reads nothing


def test_large_block_truncation_is_found(large, tmp_path):
    path = tmp_path / "large.joblite"
    joblite.dump(large, path)
    data = path.read_bytes()
    with open(path, "wb") as fileobj:  # a block cut short, then a valid-looking tail
        fileobj.write(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        joblite.load(path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fallocate is Linux's")
def test_compiled_twin_reserves_on_linux(twins, tmp_path):
    ext, _ = twins
    preallocate = ext.fileio.preallocate
    with open(tmp_path / "f", "wb") as fileobj:
        reserved = preallocate(fileobj.fileno(), 1 << 20)
    if reserved:  # tmpfs and ext4 reserve; some file systems refuse, which is allowed
        assert os.stat(tmp_path / "f").st_blocks * 512 >= 1 << 20
