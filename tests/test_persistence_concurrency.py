"""Persistence against other processes: files replaced while they are mapped, dumps killed mid-write.

* Torn reads: one process replaces a file in a loop (temporary + rename, as
  ``dump`` and ``Memory`` do) with versions whose pickle stream and array
  bytes both carry the version number, while this process loads it with
  ``mmap_mode`` in a loop.  A load that maps the arrays of one version under
  the pickle stream of another is torn; none may be.  Each scenario runs
  ``JOBLITE_TORN_READ_SECONDS`` seconds (default 3; the issue asks for 15).
* A ``dump`` killed (SIGKILL) while it writes a large array leaves its
  temporary, full size; the next ``dump`` into that folder removes it, and
  never the temporary of a live process or of another host.

The writers are real processes started here (``python -c``), stopped by a
file and joined before each test ends; everything they write is in
``tmp_path``.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

import _persistence_helpers as H
import joblite
from joblite import _files

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX processes and SIGKILL")

HOST = socket.gethostname()
TESTS = os.path.dirname(os.path.abspath(__file__))
JOBLITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
SECONDS = float(os.environ.get("JOBLITE_TORN_READ_SECONDS", "3") or 3)
HANG = 120.0  # seconds: a process that takes longer has hung


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([JOBLITE_ROOT, TESTS] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


# -- torn reads ---------------------------------------------------------------------------------
WRITER = r"""
import json, os, sys, warnings
import numpy as np
import joblite
import _persistence_helpers as H

kind, target, n, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
writes = 0
if kind == "memory":
    cached = joblite.Memory(target, verbose=0).cache(H.versioned_value)
while not os.path.exists(stop):
    writes += 1
    H.VERSION[0] = writes
    if kind == "container":
        joblite.dump(H.versioned_value(n), target)
    elif kind == "joblib":
        import joblib
        temporary = f"{target}.{os.getpid()}.tmp"
        joblib.dump(H.versioned_value(n), temporary)
        os.replace(temporary, target)
    else:
        cached.call(n)
print(json.dumps({"writes": writes}))
"""


class Writer:
    """A process that rewrites `target` in a loop until `stop` is called; then its write count."""

    def __init__(self, kind, target, n, folder):
        self.stop_file = os.path.join(folder, f"stop-{uuid.uuid4().hex[:8]}")
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, kind, str(target), str(n), self.stop_file],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self):
        with open(self.stop_file, "w"):
            pass
        try:
            out, err = self.process.communicate(timeout=HANG)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.unlink(self.stop_file)
        assert self.process.returncode == 0, err
        return json.loads(out)["writes"]


def _wait_for(predicate, what):
    deadline = time.monotonic() + HANG
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _check(value, counts):
    """Count a loaded value as consistent or torn (its array is not all its version)."""
    version, array = value["version"], value["a"]
    counts["loads"] += 1
    counts["mapped"] += isinstance(array, np.memmap)
    if not (array[0] == version and array[-1] == version and (array == version).all()):
        counts["torn"] += 1
        if len(counts.setdefault("examples", [])) < 5:  # (pickle's version, first and last items)
            counts["examples"].append((version, int(array[0]), int(array[-1])))


def _read_loop(load, counts):
    modes = ("r", "c")
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        _check(load(modes[counts["loads"] % 2]), counts)


@pytest.mark.parametrize(
    "kind, n",
    [("container", 100_000), ("container", 1000), ("joblib", 100_000)],
    ids=["container-large", "container-small", "joblib-file"],
)
def test_no_torn_reads_while_the_file_is_replaced(tmp_path, kind, n, record_property):
    """0 torn loads while another process replaces the file (temporary + rename) in a loop.

    ``container-small`` is under 64 KiB: read in one piece, then mapped.
    """
    path = tmp_path / ("value.pkl" if kind == "joblib" else "value.jl")
    writer = Writer(kind, path, n, tmp_path)
    counts = {"loads": 0, "mapped": 0, "torn": 0}
    try:
        _wait_for(path.exists, "the first version")
        _read_loop(lambda mode: joblite.load(path, mmap_mode=mode, allowed="numpy"), counts)
    finally:
        counts["writes"] = writer.stop()
    record_property("torn_reads", counts)
    print(f"\n{kind} ({n} items): {counts}")
    assert counts["torn"] == 0, counts
    assert counts["mapped"] == counts["loads"] and counts["writes"] > 1


def test_no_torn_reads_from_a_memory_entry_being_rewritten(tmp_path, record_property):
    """``Memory(mmap_mode='r')`` hits load through the same reader: never a torn entry."""
    location = tmp_path / "cache"
    writer = Writer("memory", location, 100_000, tmp_path)
    counts = {"loads": 0, "mapped": 0, "torn": 0, "computed here": 0}
    H.VERSION[0] = -1  # what this process would compute: never mistaken for a hit
    cached = {mode: joblite.Memory(location, mmap_mode=mode, verbose=0).cache(H.versioned_value) for mode in ("r", "c")}
    try:
        _wait_for(lambda: cached["r"].check_call_in_cache(100_000), "the first entry")

        def load(mode):
            value = cached[mode](100_000)
            if value["version"] == -1:
                counts["computed here"] += 1
            return value

        _read_loop(load, counts)
    finally:
        counts["writes"] = writer.stop()
    record_property("torn_reads", counts)
    print(f"\nMemory entry: {counts}")
    assert counts["torn"] == 0, counts
    assert counts["writes"] > 1 and counts["computed here"] < counts["loads"]


def test_joblib_file_is_mapped_from_the_open_file_not_its_path(tmp_path):
    """An open joblib file whose path is replaced before the load still gives its own arrays."""
    from joblite._joblib_format import load_joblib

    joblib = pytest.importorskip("joblib")
    path = tmp_path / "value.pkl"
    H.VERSION[0] = 1
    joblib.dump(H.versioned_value(1000), path)
    H.VERSION[0] = 2
    joblib.dump(H.versioned_value(1000), tmp_path / "next.pkl")
    with open(path, "rb") as fileobj:
        os.replace(tmp_path / "next.pkl", path)
        value = load_joblib(fileobj, str(path), mmap_mode="r")
    assert isinstance(value["a"], np.memmap) and value["version"] == 1 and (value["a"] == 1).all()


@pytest.mark.parametrize("kind", ["container-large", "container-small", "joblib"])
def test_memmaps_name_their_file(tmp_path, kind):
    """``np.memmap.filename`` is the loaded path, as when numpy opens it (users pass it on)."""
    path = tmp_path / "value.jl"
    value = {"a": np.arange(100_000 if kind == "container-large" else 100, dtype=np.float64)}
    if kind == "joblib":
        pytest.importorskip("joblib").dump(value, path)
    else:
        joblite.dump(value, path)
    for mode in ("r", "c", "r+"):
        mapped = joblite.load(path, mmap_mode=mode)["a"]
        assert isinstance(mapped, np.memmap) and mapped.filename == str(path) and mapped.mode == mode


@pytest.mark.parametrize("kind", ["container", "joblib"])
def test_r_plus_needs_a_writable_file_only_to_map(tmp_path, kind, monkeypatch):
    """``mmap_mode='r+'`` on a read-only file: PermissionError when arrays would be mapped; a load otherwise."""
    dump = pytest.importorskip("joblib").dump if kind == "joblib" else joblite.dump
    arrays, plain = tmp_path / "arrays", tmp_path / "plain"
    dump({"a": np.arange(10.0)}, arrays)
    dump({"b": [1, 2.5, "x"]}, plain)
    for path in (arrays, plain):
        path.chmod(0o444)
    if os.geteuid() == 0:  # root may open it for writing anyway: refuse as the file system would
        os_open = os.open

        def refusing(path, flags, *args, **kwargs):
            if flags & os.O_RDWR and str(path).startswith(str(tmp_path)):
                raise PermissionError(13, "Permission denied", path)
            return os_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(PermissionError):
        joblite.load(arrays, mmap_mode="r+")
    assert joblite.load(plain, mmap_mode="r+") == {"b": [1, 2.5, "x"]}
    assert isinstance(joblite.load(arrays, mmap_mode="r")["a"], np.memmap)


# -- a dump killed mid-write --------------------------------------------------------------------
KILLED_WRITER = r"""
import sys
import numpy as np
import joblite

# 512 MiB that take no memory (a broadcast view: written in chunks): the dump takes a while
print("start", flush=True)
joblite.dump({"big": np.broadcast_to(np.float64(7.0), (1 << 26,))}, sys.argv[1])
print("done", flush=True)
"""


def _size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:  # renamed: the dump finished
        return 1 << 62


def _temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def _killed_mid_write(target):
    """SIGKILL a process while it dumps 512 MiB to `target`: its pid and its temporary.

    The process is stopped (SIGSTOP) as soon as its temporary appears, then
    let run a millisecond at a time until the temporary holds data (the
    compiled twin reserves its full size before writing the blocks; the pure
    one writes it piece by piece), then killed.
    """
    folder = os.path.dirname(target)
    for _ in range(5):  # a loaded machine may let the dump finish before it is seen: try again
        joblite.dump({"old": 1}, target)
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, target], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        mine = []
        try:
            assert process.stdout.readline() == b"start\n"
            prefix = f"{os.path.basename(target)}.{process.pid}@{HOST}."
            deadline = time.monotonic() + HANG
            while process.poll() is None and not mine and time.monotonic() < deadline:
                mine = [name for name in _temporaries(folder) if name.startswith(prefix)]
            if mine:
                os.kill(process.pid, signal.SIGSTOP)
                for _ in range(1000):
                    if _size(os.path.join(folder, mine[0])) >= 1 << 20:
                        break
                    os.kill(process.pid, signal.SIGCONT)
                    time.sleep(0.001)
                    os.kill(process.pid, signal.SIGSTOP)
                process.kill()
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=HANG)
        if process.returncode == -signal.SIGKILL and mine and os.path.exists(os.path.join(folder, mine[0])):
            return process.pid, mine[0]
    pytest.fail("could not kill a dump while it was writing")


@pytest.mark.parametrize("next_dump", ["same target", "same folder"])
def test_killed_dump_leaves_a_temporary_that_the_next_dump_sweeps(tmp_path, next_dump, monkeypatch):
    target = str(tmp_path / "data.jl")
    pid, temporary = _killed_mid_write(target)
    monkeypatch.setattr(_files, "SWEEP_INTERVAL", 0.0)  # this process listed the folder just now
    assert os.path.getsize(tmp_path / temporary) >= 1 << 20  # the issue saw it full size
    assert joblite.load(target) == {"old": 1}  # the target is untouched
    # Temporaries that must stay: a live process's (this one's, and a sleeping child's) and
    # another host's (its processes cannot be seen from here).
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        keep = [
            f"data.jl.{os.getpid()}@{HOST}.{uuid.uuid4().hex[:12]}.tmp",
            f"other.jl.{sleeper.pid}@{HOST}.{uuid.uuid4().hex[:12]}.tmp",
            f"data.jl.{pid}@not-{HOST}.{uuid.uuid4().hex[:12]}.tmp",
            f"notes.{pid}@{HOST}.txt.tmp",
        ]  # not a dump's temporary
        for name in keep:
            (tmp_path / name).write_bytes(b"x")
        joblite.dump({"new": 2}, target if next_dump == "same target" else str(tmp_path / "other.jl"))
        assert _temporaries(tmp_path) == sorted(keep)
    finally:
        sleeper.kill()
        sleeper.wait()
    for name in keep:
        (tmp_path / name).unlink()
