"""Memory of processes and memmap folders (joblite.bench.procmem), read from Linux's /proc."""

import os
import subprocess
import sys

import pytest

from joblite.bench import procmem

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = [
    pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux's /proc/<pid>/smaps_rollup"),
    pytest.mark.twin_independent,
]

MIB = 1 << 20

# A child that holds 64 MiB of written (anonymous) memory until its stdin closes.
HOLDER = "import sys; data = bytes(range(256)) * (256 * 1024); print('ready', flush=True); sys.stdin.read()"


@pytest.fixture
def holder():
    child = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        yield child
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()


def test_the_memory_of_children_and_of_memmap_folders_is_counted(holder, tmp_path):
    assert holder.pid in procmem.descendants(os.getpid())
    assert procmem.pss_anon(holder.pid) >= 64 * MIB
    folder = tmp_path / f"joblite_memmapping_{os.getpid()}@host_abc"
    folder.mkdir()
    (folder / "a.npy").write_bytes(b"x" * (2 * MIB))
    (tmp_path / "joblite_memmapping_1@host_other").mkdir()  # another process's: not counted
    assert procmem.memmap_folders([str(tmp_path)], os.getpid()) == [str(folder)]
    assert procmem.allocated_bytes(str(folder)) >= 2 * MIB
    with procmem.MemorySampler([str(tmp_path)]) as sampler:
        pass
    caller, workers, folder_bytes = sampler.peak
    assert sampler.samples >= 2
    assert caller > 0 and workers >= 64 * MIB and folder_bytes >= 2 * MIB


def test_a_process_that_ended_has_no_memory(holder):
    pid = holder.pid
    holder.stdin.close()
    holder.wait(timeout=30)
    assert procmem.pss_anon(pid) == 0


def test_the_peak_of_this_process_is_its_own_since_the_start():
    peak = procmem.start_peak()
    data = bytes(range(256)) * (128 * 1024)  # 32 MiB, written
    assert peak.read() - peak.before >= 32 * MIB - MIB
    del data


def test_memmap_folder_parents_are_the_temp_folder_when_given(tmp_path):
    assert procmem.memmap_folder_parents(tmp_path) == [str(tmp_path)]
    parents = procmem.memmap_folder_parents()
    assert parents[0] == "/dev/shm" and len(parents) == len(set(parents))
