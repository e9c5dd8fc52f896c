"""Small file operations of the writers (``joblite._files``): atomic writes, temporaries, ``.npy`` files."""

import errno
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import joblite
from joblite import _files
from joblite._owners import HOST


def _listing(folder):
    return sorted(os.listdir(folder))


def _dead_pid():
    """The pid of a process of this host that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_temporary_names_carry_their_owner(tmp_path):
    """``<target>.<pid>@<host>.<random>.tmp``, which the sweep parses whatever the target's name."""
    target = str(tmp_path / "a.b@c.1@x.jl")
    name = os.path.basename(_files.temporary_name(target))
    assert name.startswith(f"a.b@c.1@x.jl.{os.getpid()}@{HOST}.") and name.endswith(".tmp")
    assert _files.temporary_name(target) != _files.temporary_name(target)


@pytest.mark.parametrize("existing", [b"old", None])
def test_atomic_path_leaves_the_target_as_it_was_when_the_block_raises(tmp_path, existing):
    target = tmp_path / "data.bin"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(KeyError, match="in the block"):
        with _files.atomic_path(str(target)) as temporary:
            assert os.path.dirname(temporary) == str(tmp_path)
            with open(temporary, "wb") as fileobj:
                fileobj.write(b"half of the new")
            raise KeyError("in the block")
    assert _listing(tmp_path) == ([] if existing is None else ["data.bin"])  # no temporary left
    if existing is not None:
        assert target.read_bytes() == existing


def test_atomic_path_replaces_the_target_whole(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with _files.atomic_path(str(target)) as temporary:
        with open(temporary, "wb") as fileobj:
            fileobj.write(b"new")
        assert target.read_bytes() == b"old"  # readers see the old file until the block ends
    assert target.read_bytes() == b"new"
    assert _listing(tmp_path) == ["data.bin"]


def test_sweep_removes_a_dead_owners_temporary_and_keeps_the_others(tmp_path):
    dead = _dead_pid()
    swept = f"data.jl.{dead}@{HOST}.0123456789ab.tmp"
    keep = [
        os.path.basename(_files.temporary_name(str(tmp_path / "data.jl"))),  # this live process's
        f"data.jl.{dead}@not-{HOST}.0123456789ab.tmp",  # another host's: its pids mean nothing here
        f"notes.{dead}@{HOST}.txt.tmp",  # not a writer's temporary
        "data.jl",
    ]
    for name in keep + [swept]:
        (tmp_path / name).write_bytes(b"x")
    _files.sweep_temporaries(str(tmp_path))
    assert _listing(tmp_path) == sorted(keep)


def test_sweep_lists_a_folder_at_most_once_per_interval(tmp_path, monkeypatch):
    _files.sweep_temporaries(str(tmp_path))
    left = tmp_path / f"data.jl.{_dead_pid()}@{HOST}.0123456789ab.tmp"
    left.write_bytes(b"x")  # the folder changed, but was listed just now: not listed again
    _files.sweep_temporaries(str(tmp_path))
    assert left.exists()
    monkeypatch.setattr(_files, "SWEEP_INTERVAL", 0.0)
    _files.sweep_temporaries(str(tmp_path))
    assert not left.exists()
    left.write_bytes(b"x")
    os.utime(tmp_path, ns=(0, _files._FOLDER_TIMES[str(tmp_path)][0]))  # as if unchanged since
    _files.sweep_temporaries(str(tmp_path))
    assert left.exists()


def test_remove_if_exists_and_scandir_take_missing_paths(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    assert [entry.name for entry in _files.scandir(str(tmp_path))] == ["f"]
    assert _files.scandir(str(path)) == [] and _files.scandir(str(tmp_path / "gone")) == []
    assert _files.remove_if_exists(str(path)) is True
    assert _files.remove_if_exists(str(path)) is False


def _data_offset(path):
    with open(path, "rb") as fileobj:
        major, _ = np.lib.format.read_magic(fileobj)
        getattr(np.lib.format, f"read_array_header_{major}_0")(fileobj)
        return fileobj.tell()


ARRAYS = {
    "C": np.arange(30_000, dtype=np.float64).reshape(100, 300),
    "F": np.asfortranarray(np.arange(30_000, dtype=np.int32).reshape(300, 100)),
    "strided": np.arange(60_000, dtype=np.int16).reshape(200, 300)[::3, 1::2],
    "empty": np.empty((0, 7), dtype=np.float32),
    "record": np.zeros(50, dtype=[("a", "<i8"), ("b", ">f4"), ("c", "S3")]),
}


@pytest.mark.parametrize("kind", sorted(ARRAYS))
def test_write_npy_round_trips_with_aligned_data(tmp_path, kind):
    array = ARRAYS[kind]
    path = str(tmp_path / "a.npy")
    _files.write_npy(path, np.zeros(3))  # replaced below
    _files.write_npy(path, array)
    loaded = np.load(path)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    assert np.array_equal(loaded, array)
    assert loaded.flags.f_contiguous == array.flags.f_contiguous
    assert _data_offset(path) % 64 == 0
    assert os.path.getsize(path) == _data_offset(path) + array.nbytes
    assert np.array_equal(np.load(path, mmap_mode="r"), array)
    assert _listing(tmp_path) == ["a.npy"]


# A file size limit makes the write fail part way, as a full disk would (SIGXFSZ ignored: EFBIG).
FULL_DISK_WRITER = r"""
import resource, signal, sys
import numpy as np
from joblite import _files

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    _files.write_npy(sys.argv[1], np.ones(1 << 20)[::int(sys.argv[2])])
except OSError as exc:
    print(exc.errno)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file size limits")
@pytest.mark.parametrize("step", [1, 2], ids=["contiguous", "strided"])
def test_write_npy_that_fails_raises_the_errno_and_keeps_the_old_file(tmp_path, step):
    path = str(tmp_path / "a.npy")
    _files.write_npy(path, np.arange(4))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__))))
    child = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, path, str(step)], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == [str(errno.EFBIG)]
    assert np.array_equal(np.load(path), np.arange(4))
    assert _listing(tmp_path) == ["a.npy"]
