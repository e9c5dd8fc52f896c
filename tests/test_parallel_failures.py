"""``Parallel`` on real processes when things go wrong: memmapped arguments and their cleanup,
workers that die, timeouts, KeyboardInterrupt, killed callers, bad tasks (issue 5, items 5 and 7;
issue 9, items 4 and 7: the call after each kind of failed call, a full disk, a missing temp
folder, a SIGKILLed caller's workers and folder).

Every test starts the workers it needs and stops them (the fixture ``env``
kills loky's reusable executor before and after each test, so workers always
inherit this test's ``JOBLITE_TEMP_FOLDER``; loky keeps one executor per
thread, and those of the threads ``within`` starts end with their threads).  Memmap folders go to a
``temp`` folder inside ``tmp_path`` (``JOBLITE_TEMP_FOLDER`` or
``temp_folder=``); the fixture also checks that none of ours is left in
``/dev/shm``.  The tasks live in tests/_parallel_workers.py (importable, so
workers unpickle them by reference), which is also the script of the caller
processes that tests interrupt or kill.

``JOBLITE_FAILING_CALLS`` (default 100) is the number of failed calls in a row
of the stress test.

Timing is never asserted except as generous bounds where the failure is a
hang (``HANG``) or a slow shutdown: the issue asks that workers be gone
within 2 s of a KeyboardInterrupt; the tests allow ``GONE`` = 5 s, slack for
a machine loaded by other test runs.
"""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from loky.process_executor import TerminatedWorkerError

import _parallel_workers as W
import joblite
from joblite import Parallel, delayed
from joblite.backends.processes import WorkerDiedError

pytestmark = [
    pytest.mark.skipif(
        sys.platform == "win32" or not hasattr(signal, "SIGKILL"), reason="needs POSIX processes, signals and /proc"
    ),
    # The handling of failed calls is the process backend's policy; the task kernels' error paths
    # run on each twin in test_parallel_dispatch.py and test_parallel.py.
    pytest.mark.twin_independent,
]

try:
    import psutil
except ImportError:  # /proc is read instead
    psutil = None

HANG = 60.0  # seconds: a call or a process that takes longer than this has hung
GONE = 5.0  # seconds for processes to go away: the 2 s plus slack for a loaded machine
PREFIX = "joblite_memmapping_"
HOST = socket.gethostname()
SHM = "/dev/shm"
MAX_NBYTES = 1000  # bytes: BIG arrays are memory-mapped, SMALL ones are not
BIG = 4096  # float64 elements: 32 KiB
SMALL = 16
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_parallel_workers.py")
JOBLITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))


# -- processes ---------------------------------------------------------------------------
def _proc_state(pid):
    """(state letter, ppid, cmdline) of `pid` from /proc, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as fileobj:
            stat = fileobj.read()
        with open(f"/proc/{pid}/cmdline", "rb") as fileobj:
            cmdline = fileobj.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), cmdline


def alive(pid):
    """Whether `pid` is running (a zombie, waiting to be reaped, is not)."""
    if psutil is not None:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    state = _proc_state(pid)
    return state is not None and state[0] not in ("Z", "X")


def wait_gone(pids, seconds):
    """Wait until none of `pids` is alive or `seconds` have passed; return those still alive."""
    deadline = time.monotonic() + seconds
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def children():
    """{pid: (alive, cmdline)} of the direct children of this process."""
    me = os.getpid()
    if psutil is not None:
        found = {}
        for child in psutil.Process(me).children():
            try:
                found[child.pid] = (child.status() != psutil.STATUS_ZOMBIE, " ".join(child.cmdline()))
            except psutil.NoSuchProcess:
                pass
        return found
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            state = _proc_state(int(name))
            if state is not None and state[1] == me:
                found[int(name)] = (state[0] not in ("Z", "X"), state[2])
    return found


def descendants(pid):
    """Pids of the children of `pid`, their children, and so on."""
    if psutil is not None:
        try:
            return {child.pid for child in psutil.Process(pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            state = _proc_state(int(name))
            if state is not None:
                parents.setdefault(state[1], []).append(int(name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def loky_workers():
    """(live, zombie) pids of this process's loky worker processes (not loky's resource tracker)."""
    workers = {pid: info for pid, info in children().items() if "popen_loky" in info[1]}
    return (
        [pid for pid, (is_alive, _) in workers.items() if is_alive],
        [pid for pid, (is_alive, _) in workers.items() if not is_alive],
    )


def stop_loky():
    """Kill the workers of loky's reusable executor (the next call starts fresh ones)."""
    import loky

    loky.get_reusable_executor(kill_workers=True).shutdown(wait=True, kill_workers=True)


def within(seconds, function, *args, **kwargs):
    """``function(*args, **kwargs)``, failing the test if it has not returned or raised after `seconds`."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{function!r} hung: still running after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- folders -----------------------------------------------------------------------------
def call_folders(parent):
    return sorted(name for name in os.listdir(parent) if name.startswith(PREFIX))


def owner_pid(name):
    return int(name[len(PREFIX) :].split("@", 1)[0])


def shm_folders():
    try:
        return set(call_folders(SHM))
    except OSError:
        return set()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """``temp``: the folder memmaps go to (``JOBLITE_TEMP_FOLDER``); fresh workers; nothing of ours left in /dev/shm."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("JOBLITE_TEMP_FOLDER", str(temp))
    stop_loky()  # the workers of this test inherit this JOBLITE_TEMP_FOLDER
    shm_before = shm_folders()
    ours = {os.getpid()}
    yield temp
    ours.update(children())
    stop_loky()
    leaked = sorted(name for name in shm_folders() - shm_before if owner_pid(name) in ours)
    for name in leaked:
        shutil.rmtree(os.path.join(SHM, name), ignore_errors=True)
    assert not leaked, f"memmap folders of this test left in {SHM}: {leaked}"


def big(offset=0.0):
    return np.arange(BIG, dtype=np.float64) + offset


def processes(temp, **kwargs):
    """``Parallel(n_jobs=2)`` memory-mapping arrays >= MAX_NBYTES into `temp`.

    ``temp_folder=`` is given (not only JOBLITE_TEMP_FOLDER) so that each test has
    its own memmapper: joblite keeps one per settings per process.
    """
    return Parallel(**dict({"n_jobs": 2, "max_nbytes": MAX_NBYTES, "temp_folder": str(temp)}, **kwargs))


def warm(parallel):
    """Run no-op tasks on `parallel` until both of its workers have answered (fresh pools start slowly)."""
    pids = set()
    for _ in range(50):
        pids.update(within(HANG, parallel, [delayed(W.nap)(0.1) for _ in range(4)]))
        if len(pids) >= 2:
            return pids
    pytest.fail(f"the second worker never answered (pids {pids})")


# ======================================================================================
# Memmapping
# ======================================================================================
def test_large_array_reaches_workers_as_read_only_memmap_written_once(env):
    a, b = big(), big(0.5)
    tasks = [delayed(W.describe)(a if i % 2 == 0 else b) for i in range(12)]
    seen = Parallel(n_jobs=2, max_nbytes=MAX_NBYTES)(tasks)  # into JOBLITE_TEMP_FOLDER

    folders = set()
    for i, info in enumerate(seen):
        expected = a if i % 2 == 0 else b
        assert info["memmap"] and info["type"] == "memmap", info["type"]
        assert not info["writeable"], "a memmapped argument must be read-only with mmap_mode='r'"
        assert info["values"] == expected.tolist()
        folder, filename = os.path.split(info["filename"])
        folders.add(folder)
        assert os.path.dirname(folder) == str(env)
        assert os.path.basename(folder).startswith(f"{PREFIX}{os.getpid()}@{HOST}_")
        # each of the two arrays is written once for the whole call, whatever the task count
        assert set(info["folder_files"]) <= {"00000.npy", "00001.npy"}, info["folder_files"]
        assert filename in info["folder_files"]
    assert len(folders) == 1, "one folder per call"
    assert {seen[0]["filename"], seen[1]["filename"]} == {info["filename"] for info in seen}
    assert not os.path.exists(folders.pop()), "the call's folder must be removed when the call ends"
    assert os.listdir(env) == []


@pytest.mark.parametrize(
    "size, max_nbytes", [(SMALL, MAX_NBYTES), (BIG, None)], ids=["smaller-than-max_nbytes", "max_nbytes-None"]
)
def test_array_not_memmapped_arrives_as_plain_ndarray(env, size, max_nbytes):
    array = np.arange(size, dtype=np.float64)
    seen = Parallel(n_jobs=2, max_nbytes=max_nbytes)(delayed(W.describe)(array) for _ in range(4))
    for info in seen:
        assert info["type"] == "ndarray" and not info["memmap"] and info["filename"] is None
        assert info["writeable"]
        assert info["values"] == array.tolist()
    assert os.listdir(env) == [], "nothing is written for arrays sent by pickle"


def test_memmap_argument_is_passed_by_file_and_offset(env, tmp_path):
    path = str(tmp_path / "data.bin")
    whole = np.memmap(path, dtype=np.float64, mode="w+", shape=(1000,))
    whole[:] = np.arange(1000.0)
    whole.flush()
    at_offset = np.memmap(path, dtype=np.float64, mode="r", offset=160, shape=(500,))
    arguments = [
        (whole, 0),  # the whole file
        (whole[100:600], 800),  # a slice view: 100 float64 into the file
        (whole[100:600:2], 800),  # a strided view: the range it spans is mapped
        (at_offset, 160),  # a memmap opened at an offset
        (at_offset[50:300], 560),  # a slice of it: 160 + 50 * 8
    ]
    probe = [delayed(W.describe)(array) for array, _ in arguments] + [delayed(W.listdir)(str(env))]
    seen = processes(env)(probe)
    for (array, offset), info in zip(arguments, seen):
        assert info["memmap"] and os.path.realpath(info["filename"]) == os.path.realpath(path)
        assert info["offset"] == offset
        assert info["values"] == np.asarray(array).tolist()
        # mapped with the memmap's own mode ('w+' as 'r+'), not the call's mmap_mode='r'
        assert info["writeable"] is (array.mode == "w+")
    assert seen[-1] == [], f"a memmap argument must not be written again: {seen[-1]}"
    assert sorted(os.listdir(tmp_path)) == ["data.bin", "temp"] and os.listdir(env) == []
    del whole, at_offset


def test_mmap_mode_r_plus_lets_workers_write_into_a_memmap_input(env, tmp_path):
    path = str(tmp_path / "shared.bin")
    np.arange(1000.0).tofile(path)
    shared = np.memmap(path, dtype=np.float64, mode="r+", shape=(1000,))
    modes = processes(env, mmap_mode="r+")(delayed(W.write_into)(shared, i, -1.0 - i) for i in range(6))
    assert set(modes) == {"r+"}
    expected = np.arange(1000.0)
    expected[:6] = -1.0 - np.arange(6)
    assert np.array_equal(np.fromfile(path), expected), "the workers' writes must reach the file"
    assert np.array_equal(shared, expected), "and the caller's own memmap of it"
    assert os.listdir(env) == []
    del shared


@pytest.mark.parametrize("mmap_mode", ["r+", "c"])
def test_memmap_created_with_w_plus_keeps_its_data(env, tmp_path, mmap_mode):
    path = str(tmp_path / "created.bin")
    created = np.memmap(path, dtype=np.float64, mode="w+", shape=(1000,))
    created[:] = np.arange(1000.0)
    created.flush()
    (info,) = processes(env, mmap_mode=mmap_mode)([delayed(W.describe)(created)])
    assert info["values"] == np.arange(1000.0).tolist(), "the worker must see the file's data"
    assert np.array_equal(np.fromfile(path), np.arange(1000.0)), "the file must keep its data"
    del created


def test_returned_arrays_are_plain_ndarrays_and_leave_no_file(env):
    results = processes(env)(delayed(W.make_array)(BIG, i) for i in range(4))
    for i, result in enumerate(results):
        assert type(result) is np.ndarray, f"result {i} is a {type(result).__name__}"
        assert result.flags.writeable and np.array_equal(result, np.full(BIG, float(i)))
    assert os.listdir(env) == [], "returned arrays must not leave files in the temp folder"


def test_default_temp_folder_is_dev_shm_and_is_cleaned(env, monkeypatch):
    from joblite._memmapping import choose_temp_folder

    monkeypatch.delenv("JOBLITE_TEMP_FOLDER")
    if choose_temp_folder() != (SHM, None):
        pytest.skip(f"{SHM} is not the default temp folder here (missing or under 2 GiB free)")
    (info,) = Parallel(n_jobs=2, max_nbytes=MAX_NBYTES)([delayed(W.describe)(big())])
    folder = os.path.dirname(info["filename"])
    assert os.path.dirname(folder) == SHM and os.path.basename(folder).startswith(f"{PREFIX}{os.getpid()}@")
    assert not os.path.exists(folder)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs mounted in `tmp_path`, to fill for real (needs root: skipped where it cannot mount)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_temp_folder_raises_enospc_naming_the_folder_and_the_size(env, tiny_tmpfs):
    # Issue 9, item 7: a full disk while writing a large argument came out as loky's
    # PicklingError, the real cause only as text.
    array = np.ones(1 << 18)  # 2 MiB, in a 1 MiB file system
    with pytest.raises(OSError) as info:
        within(HANG, processes(tiny_tmpfs), [delayed(W.describe)(array)] * 2)
    error = info.value
    assert type(error) is OSError and error.errno == errno.ENOSPC, repr(error)
    message = str(error)
    assert str(tiny_tmpfs) in message and f"{array.nbytes} bytes" in message, message
    assert isinstance(error.__cause__, OSError) and error.__cause__.errno == errno.ENOSPC
    assert wait_empty(tiny_tmpfs, HANG) == [], "no partial file and no folder are left"
    # the same settings still work for what fits, and the array goes through another folder
    assert within(HANG, processes(tiny_tmpfs), [delayed(W.describe)(big())])[0]["memmap"]
    assert within(HANG, processes(env), [delayed(W.describe)(array)])[0]["values"] == array.tolist()
    assert os.listdir(tiny_tmpfs) == [] and os.listdir(env) == []


@pytest.mark.parametrize("how", ["temp_folder", "JOBLITE_TEMP_FOLDER", "a file"])
def test_a_temp_folder_that_does_not_exist_is_not_created(env, tmp_path, monkeypatch, how):
    # Issue 9, item 7: Parallel(temp_folder='/nonexistent/x') created that folder (as joblib does).
    missing = tmp_path / "missing" / "x"
    if how == "JOBLITE_TEMP_FOLDER":
        monkeypatch.setenv("JOBLITE_TEMP_FOLDER", str(missing))
        parallel = Parallel(n_jobs=2, max_nbytes=MAX_NBYTES)
        setting, error = how, FileNotFoundError
    elif how == "a file":
        missing = tmp_path / "file"
        missing.write_text("not a folder")
        parallel = processes(missing)
        setting, error = "temp_folder", NotADirectoryError
    else:
        parallel = processes(missing)
        setting, error = how, FileNotFoundError
    with pytest.raises(error) as info:
        within(HANG, parallel, [delayed(W.describe)(big())])
    assert f"{setting}={str(missing)!r}" in str(info.value), str(info.value)
    assert not (tmp_path / "missing").exists(), "the temp folder must not be created"
    assert within(HANG, parallel, [delayed(W.echo)(i) for i in range(3)]) == [0, 1, 2], (
        "calls without large arrays need no temp folder"
    )


# ======================================================================================
# Failures: the call's folder lives while batches use it, and the next call works
# ======================================================================================
ROUNDS = 10


class GeneratorError(Exception):
    """Raised by the task generator of the 'generator-error' ending."""


def _interrupt(index, result):
    raise KeyboardInterrupt


def _interrupt_at_third(index, result):
    if index == 2:
        raise KeyboardInterrupt


def _generator_failing_at(a, bad):
    for i in range(40):
        if i == bad:
            raise GeneratorError(f"the task generator fails at item {i}")
        yield delayed(W.nap_or_fail)(i, -1, 0.02, a)


def _break_after_first(parallel, tasks):
    for _ in parallel(tasks):  # return_as='generator': the consumer stops early
        break


ENDINGS = {
    # ending: (Parallel keyword arguments, run(parallel, array), exception it raises or None)
    "task-error": ({}, lambda p, a: p([delayed(W.nap_or_fail)(i, 3, 0.02, a) for i in range(40)]), W.TaskError),
    "generator-error": ({}, lambda p, a: p(_generator_failing_at(a, 6)), GeneratorError),
    "early-break": (
        {"return_as": "generator"},
        lambda p, a: _break_after_first(p, [delayed(W.nap_or_fail)(i, -1, 0.02, a) for i in range(40)]),
        None,
    ),
    "timeout": (
        {"timeout": 0.5},
        lambda p, a: p(
            [delayed(W.nap)(0.02, None, a) for _ in range(4)]
            + [delayed(W.nap)(60, None, a)]
            + [delayed(W.nap)(0.02, None, a) for _ in range(8)]
        ),
        TimeoutError,
    ),
    "worker-death": (
        {},
        lambda p, a: p(
            [delayed(W.nap)(0.02, None, a) for _ in range(4)]
            + [delayed(W.exit_with)(3, a)]
            + [delayed(W.nap)(0.02, None, a) for _ in range(20)]
        ),
        WorkerDiedError,
    ),
    "keyboard-interrupt": (
        {"callback": _interrupt_at_third},
        lambda p, a: p([delayed(W.nap_or_fail)(i, -1, 0.02, a) for i in range(40)]),
        KeyboardInterrupt,
    ),
}


def wait_empty(folder, seconds):
    """Wait until `folder` is empty or `seconds` have passed; return what is left in it."""
    deadline = time.monotonic() + seconds
    while os.listdir(folder) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.listdir(folder)


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_after_each_kind_of_failed_call_the_next_call_works(env, ending):
    # Issue 9, item 4: with a memmapped argument, a call that failed (or whose generator was
    # left early) removed its folder while batches of it still sat in loky's queue; a worker
    # then could not unpickle them, and the NEXT call raised BrokenProcessPool, 10 rounds of 10.
    kwargs, run, expected = ENDINGS[ending]

    def fail_then_call(a, fresh):
        # back to back, in one thread (loky keeps one reusable executor per thread), as in a
        # script: the next call must not start late enough for a broken pool to have been
        # noticed and replaced in between
        try:
            run(processes(env, **kwargs), a)
        except BaseException as exc:
            raised = exc
        else:
            raised = None
        return raised, processes(env)([delayed(W.describe)(fresh)] * 3)

    for r in range(ROUNDS):
        fresh = big(-1.0 - r)
        raised, seen = within(HANG, fail_then_call, big(100.0 * r), fresh)
        if expected is None:
            assert raised is None, f"round {r}: {raised!r}"
        else:
            assert isinstance(raised, expected), f"round {r}: {raised!r}"
        assert [info["values"] for info in seen] == [fresh.tolist()] * 3, f"round {r}"
        assert all(info["memmap"] for info in seen), f"round {r}: the array was not memory-mapped"
    # what the failed calls left in the executor finishes, and takes its folders along
    assert wait_empty(env, HANG) == [], f"folders left after {ending}"


def test_batches_left_in_the_executor_after_a_failure_still_find_their_files(env, tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    a = big(7.0)
    tasks = [delayed(W.fail_at)(0, 0, a)] + [delayed(W.record)(i, str(report), a, 0.3) for i in range(1, 12)]
    with pytest.raises(W.TaskError):
        within(HANG, processes(env, batch_size=1), tasks)
    at_raise = W.read_reports(report, ".task")
    # no other call: the folder goes by itself once the batches are done
    assert wait_empty(env, HANG) == [], "the failed call's folder must be removed once its batches are done"
    records = W.read_reports(report, ".task")
    assert len(records) > len(at_raise), "batches of the failed call were left in the executor and ran"
    for entry in records:
        assert entry["memmap"] and entry["sum"] == float(a.sum()), entry
        assert entry["folder_exists"], f"the folder was removed while task {entry['i']} still used it"


# ======================================================================================
# Worker death
# ======================================================================================
DEATHS = {
    "os._exit(3)": (W.exit_with, (3,), [3], ["exit code 3", "os._exit(3)"]),
    "segfault": (W.segfault, (), [-11], ["SIGSEGV", "segmentation fault"]),
    "SIGKILL": (W.kill_self, (), [-9], ["SIGKILL", "out-of-memory"]),
}


@pytest.mark.parametrize("death", list(DEATHS))
def test_worker_death_raises_explained_error_and_next_call_gets_fresh_workers(env, death):
    function, args, codes, words = DEATHS[death]
    before = warm(Parallel(n_jobs=2))
    tasks = [delayed(W.nap)(0.1), delayed(function)(*args)] + [delayed(W.nap)(5) for _ in range(4)]
    with pytest.raises(WorkerDiedError) as info:
        within(HANG, Parallel(n_jobs=2), tasks)
    error = info.value
    assert isinstance(error, TerminatedWorkerError)
    assert error.exit_codes == codes
    message = str(error)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert wait_gone(sorted(before), GONE) == [], "the broken pool's workers must be ended"

    after = set(within(HANG, Parallel(n_jobs=2), [delayed(W.nap)(0.2) for _ in range(4)]))
    assert after and not after & before, "the next call must run on fresh workers"
    assert os.listdir(env) == []


def test_worker_died_error_is_a_loky_terminated_worker_error():
    assert issubclass(WorkerDiedError, TerminatedWorkerError)


# ======================================================================================
# Timeout
# ======================================================================================
def test_timeout_names_the_task_and_terminates_its_worker(env, tmp_path):
    stuck = tmp_path / "stuck"
    stuck.mkdir()
    tasks = [delayed(W.echo)(0), delayed(W.echo)(1), delayed(W.nap)(60, str(stuck)), delayed(W.echo)(3)]
    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        within(HANG, Parallel(n_jobs=2, timeout=0.5), tasks)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "task 2" in message and "nap" in message and "0.5" in message, message
    assert elapsed < 20, f"TimeoutError came {elapsed:.1f} s after the start (timeout=0.5)"

    (stuck_pid,) = [entry["pid"] for entry in W.read_reports(stuck)]
    assert wait_gone([stuck_pid], GONE) == [], "the stuck worker must be terminated"
    assert within(HANG, Parallel(n_jobs=2, timeout=0.5), [delayed(W.echo)(i) for i in range(4)]) == [0, 1, 2, 3]


def test_timeout_does_not_count_worker_start_up(env):
    # Found by this file (fixed in 1bfe685, LokyBackend.configure waits for a no-op task when a
    # timeout is set): a batch's clock starts when it is submitted, so the start of fresh workers
    # (about 0.25 s here: on the first call and after any timeout, worker death or interrupt)
    # counted against the first tasks, and the TimeoutError blamed task 0, which never ran.
    stop_loky()  # a cold pool, as after a failed call
    assert within(HANG, Parallel(n_jobs=2, timeout=0.1), [delayed(W.echo)(i) for i in range(4)]) == [0, 1, 2, 3]


_RELEASE = threading.Event()  # lets the stuck thread of the threading case end


@pytest.mark.parametrize(
    "backend, tasks",
    [
        ("loky", lambda: [delayed(W.nap)(0.1), delayed(W.exit_with)(3)]),
        ("threading", lambda: [delayed(W.wait_event)(_RELEASE, 30)]),
    ],
    ids=["loky-worker-death", "threading-timeout"],
)
def test_parallel_context_manager_still_works_after_an_abort(env, backend, tasks):
    # Found by this file (fixed in 1bfe685: every call configures the backend): after an abort
    # (timeout, worker death, interrupt) the next call in a ``with Parallel(...)`` block failed
    # with AttributeError: 'NoneType' object has no attribute 'submit'.
    _RELEASE.clear()
    try:
        with Parallel(n_jobs=2, backend=backend, timeout=1.0) as parallel:
            with pytest.raises(WorkerDiedError if backend == "loky" else TimeoutError):
                within(HANG, parallel, tasks())
            _RELEASE.set()
            assert within(HANG, parallel, [delayed(W.echo)(i) for i in range(4)]) == [0, 1, 2, 3]
    finally:
        _RELEASE.set()


# ======================================================================================
# KeyboardInterrupt in the caller (a real SIGINT, in a caller process of its own)
# ======================================================================================
class Caller:
    """A caller process running tests/_parallel_workers.py; killed, with its children, at the end."""

    def __init__(self, tmp_path, mode, seconds, temp, rounds=1):
        self.report = tmp_path / "report"
        self.report.mkdir()
        self.log = tmp_path / "caller.log"
        cfg = {"mode": mode, "report": str(self.report), "seconds": seconds, "temp_folder": str(temp), "rounds": rounds}
        environ = dict(os.environ, JOBLITE_TEMP_FOLDER=str(temp))
        environ["PYTHONPATH"] = os.pathsep.join(
            [JOBLITE_ROOT] + ([environ["PYTHONPATH"]] if environ.get("PYTHONPATH") else [])
        )
        with open(self.log, "wb") as log:
            # a session of its own: a SIGINT to its group reaches it and its workers, not pytest
            self.proc = subprocess.Popen(
                [sys.executable, SCRIPT, json.dumps(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environ,
                start_new_session=True,
            )
        self.descendants = set()

    def worker_reports(self, count, folder=None):
        """Wait for `count` workers to report a running task (in `folder`, else the report folder)."""
        deadline = time.monotonic() + HANG
        while time.monotonic() < deadline:
            where = folder or self.report
            reports = W.read_reports(where) if where.exists() else []
            if len(reports) >= count:
                self.remember_descendants()
                return reports
            if self.proc.poll() is not None:
                pytest.fail(f"the caller exited with {self.proc.returncode}: {self.output()}")
            time.sleep(0.02)
        pytest.fail(f"no {count} workers reported within {HANG} s: {self.output()}")

    def wait_report(self, name):
        """Wait for the caller's report `name` in the report folder; return it."""
        path = self.report / name
        deadline = time.monotonic() + HANG
        while not path.exists():
            if self.proc.poll() is not None and not path.exists():
                pytest.fail(f"the caller exited with {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {name} within {HANG} s: {self.output()}")
            time.sleep(0.02)
        return json.loads(path.read_text())

    def remember_descendants(self):
        if self.proc.poll() is None:
            self.descendants.update(descendants(self.proc.pid))

    def output(self):
        return self.log.read_text(errors="replace")[-3000:]

    def close(self):
        """Kill the caller and its loky workers; wait for the rest (loky's resource trackers) to exit.

        The resource trackers are not killed: once the workers are gone they exit on their own and
        unlink the caller's semaphores (``/dev/shm/sem.loky-<pid>-*``); killed, they would leave them.
        Returns the caller's semaphores still in /dev/shm.
        """
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(HANG)
        self.remember_descendants()
        for pid in self.descendants:
            state = _proc_state(pid)
            if state is not None and "popen_loky" in state[2] and alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for pid in wait_gone(sorted(self.descendants), HANG):  # a hang: end it anyway
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.semaphores()

    def semaphores(self):
        try:
            return sorted(name for name in os.listdir(SHM) if name.startswith(f"sem.loky-{self.proc.pid}-"))
        except OSError:
            return []


@pytest.fixture
def caller(tmp_path, env):
    made = []

    def start(mode, seconds, rounds=1):
        made.append(Caller(tmp_path, mode, seconds, env, rounds))
        return made[-1]

    yield start
    for one in made:
        if one.close():  # only if the test failed before its own check
            for name in one.semaphores():
                os.unlink(os.path.join(SHM, name))


@pytest.mark.parametrize("target", ["caller", "process-group"])
def test_keyboard_interrupt_stops_workers_and_removes_the_folder(env, caller, target):
    run = caller("interrupt", 60)
    reports = run.worker_reports(2)
    workers = {entry["pid"] for entry in reports}
    (folder,) = {entry["folder"] for entry in reports}
    assert len(workers) == 2 and os.path.isdir(folder)
    assert os.path.basename(folder).startswith(f"{PREFIX}{run.proc.pid}@")

    signalled = time.monotonic()
    if target == "caller":
        os.kill(run.proc.pid, signal.SIGINT)  # a SIGINT to the caller alone
    else:
        os.killpg(run.proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    left = wait_gone(sorted(workers), GONE)
    gone_after = time.monotonic() - signalled
    assert left == [], f"workers {left} still alive {GONE} s after SIGINT ({run.output()})"
    assert run.proc.wait(HANG) == 130, run.output()
    assert (run.report / "interrupted.json").exists(), "the caller saw a KeyboardInterrupt"
    assert not os.path.exists(folder), "the memmap folder must be removed after KeyboardInterrupt"
    assert os.listdir(env) == []
    assert run.close() == [], f"the caller's loky semaphores left in {SHM}"
    print(f"workers gone {gone_after:.2f} s after SIGINT to the {target}")


def test_after_ctrl_c_on_a_caller_the_next_call_works(env, caller):
    # Issue 9, item 4, the Ctrl-C ending: ROUNDS times, a real SIGINT to the caller's process
    # group interrupts a call on a memmapped array; the caller's next call must work.
    run = caller("interrupt-rounds", 60, rounds=ROUNDS)
    for r in range(ROUNDS):
        run.worker_reports(2, run.report / f"round{r}")
        os.killpg(run.proc.pid, signal.SIGINT)
        outcome = run.wait_report(f"round{r}.json")
        assert outcome == {"interrupted": True, "memmap": [True] * 3, "values_ok": [True] * 3}, f"round {r}: {outcome}"
    assert run.proc.wait(HANG) == 0, run.output()
    assert os.listdir(env) == [], "folders left by the interrupted calls"
    assert run.close() == [], f"the caller's loky semaphores left in {SHM}"


def test_a_call_still_open_at_exit_leaves_no_folder(env, caller):
    # A generator that is never closed (its consumer, a daemon thread, is stuck in it) never ends
    # its call: the folder is removed at exit, without loky's resource tracker warning of a leak.
    run = caller("open-generator", 0.1)
    assert run.proc.wait(HANG) == 0, run.output()
    folders = json.loads((run.report / "exiting.json").read_text())["folders"]
    assert len(folders) == 1 and owner_pid(folders[0]) == run.proc.pid, "the call had a folder"
    assert os.listdir(env) == [], "the folder of the open call must be removed at exit"
    output = run.output()
    assert "Exception ignored" not in output and "leaked" not in output, output
    assert run.close() == [], f"the caller's loky semaphores left in {SHM}"


# ======================================================================================
# A killed caller: its workers exit, its folder is removed
# ======================================================================================
def _dead_pid():
    pid = 4_000_000
    while alive(pid) or os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def test_workers_and_folder_of_a_sigkilled_caller_go_without_another_call(env, caller):
    # Issue 9, item 7: a SIGKILLed caller's workers stayed until their idle timeout (300 s), and its
    # memmap folder until another call swept it.  Now the workers see their caller die and exit,
    # and loky's resource tracker, once they are gone, removes the folder.
    run = caller("suicide", 30)
    assert run.proc.wait(HANG) == -signal.SIGKILL, run.output()
    children = json.loads((run.report / "children.json").read_text())["children"]
    run.descendants.update(children)
    folders = {entry["folder"] for entry in W.read_reports(run.report)}
    assert len(folders) == 1 and os.path.dirname(folders.pop()) == str(env)
    workers = {entry["pid"] for entry in W.read_reports(run.report)}
    assert workers and workers <= set(children), (workers, children)

    left = wait_gone(sorted(children), GONE)
    assert left == [], f"processes of the killed caller still alive {GONE} s later: {left}"
    assert wait_empty(env, GONE) == [], "the killed caller's memmap folder must be removed"
    assert run.close() == [], f"the caller's loky semaphores left in {SHM}"


def test_folder_of_a_caller_killed_with_its_workers_is_swept_by_the_next_call(env, caller):
    run = caller("interrupt", 60)
    reports = run.worker_reports(2)
    (folder,) = {entry["folder"] for entry in reports}
    # the whole process group: the caller, its workers and loky's resource tracker
    os.killpg(run.proc.pid, signal.SIGKILL)
    assert run.proc.wait(HANG) == -signal.SIGKILL, run.output()
    assert wait_gone(sorted(run.descendants), HANG) == []
    assert os.listdir(folder), "nothing was left to remove the folder and its array files"
    run.close()

    # folders that must stay: a live process's, another host's
    live = env / f"{PREFIX}{os.getppid()}@{HOST}_0live000"
    other_host = env / f"{PREFIX}{_dead_pid()}@not-{HOST}_0other00"
    for keep in (live, other_host):
        keep.mkdir()
        (keep / "00000.npy").write_bytes(b"x")

    # the next call on processes with a large array, in this process, removes the dead caller's folder
    seen = within(HANG, processes(env), [delayed(W.describe)(big())] * 2)
    assert seen[0]["values"] == big().tolist()
    assert not os.path.exists(folder), "the dead caller's folder must be swept"
    assert live.exists() and other_host.exists(), "folders of live processes and other hosts stay"
    for keep in (live, other_host):
        (keep / "00000.npy").unlink()
        keep.rmdir()
    assert os.listdir(env) == []


# ======================================================================================
# 100 failing calls leave nothing
# ======================================================================================
def _sigint_main_thread_soon(delay):
    main = threading.main_thread().ident
    timer = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


# Failed calls in a row (4 kinds taking turns); .ci/run sets fewer to keep CI within its time.
FAILING_CALLS = int(os.environ.get("JOBLITE_FAILING_CALLS", "100") or 100)


def test_hundred_failing_calls_leave_no_file_and_no_worker(env):
    assert FAILING_CALLS % 8 == 4 or FAILING_CALLS % 8 == 0, "every kind and variant must run"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal
    try:
        array = big()
        outcomes = {}
        leftovers = []
        for call in range(FAILING_CALLS):
            kind = ("error", "timeout", "death", "interrupt")[call % 4]
            timer = None
            if kind == "error":
                parallel = processes(env)
                tasks = [delayed(W.fail_at)(i, 2, array) for i in range(6)]
                expected = W.TaskError
            elif kind == "timeout":
                parallel = processes(env, timeout=0.3)
                tasks = [delayed(W.echo)(0, array), delayed(W.nap)(30, None, array), delayed(W.echo)(2, array)]
                expected = TimeoutError
            elif kind == "death":
                parallel = processes(env)
                death = delayed(W.exit_with)(9, array) if call % 8 < 4 else delayed(W.kill_self)(array)
                tasks = [delayed(W.nap)(30, None, array), death]
                expected = WorkerDiedError
            else:  # an interrupt: raised by a callback, or a real SIGINT while the call waits
                if call % 8 < 4:
                    parallel = processes(env, callback=_interrupt)
                    tasks = [delayed(W.echo)(0, array), delayed(W.nap)(30, None, array)]
                else:
                    parallel = processes(env)
                    tasks = [delayed(W.nap)(30, None, array) for _ in range(3)]
                expected = KeyboardInterrupt
            try:
                if kind == "interrupt" and call % 8 >= 4:
                    timer = _sigint_main_thread_soon(0.3)
                    parallel(tasks)  # in the main thread: the SIGINT must reach it
                else:
                    within(HANG, parallel, tasks)
            except expected:
                outcomes[kind] = outcomes.get(kind, 0) + 1
            finally:
                if timer is not None:
                    timer.join()
            left = wait_empty(env, GONE)  # a task error lets the call's other batches finish first
            if left:
                leftovers.append((call, kind, left))
        each = FAILING_CALLS // 4
        assert outcomes == {"error": each, "timeout": each, "death": each, "interrupt": each}
        assert leftovers == [], f"files left in the temp folder after failed calls: {leftovers[:5]}"
        assert os.listdir(env) == []

        live, zombies = loky_workers()
        assert len(live) <= 2, f"more live workers than n_jobs=2: {live}"
        assert zombies == [], f"dead workers nobody reaped: {zombies}"
        stop_loky()
        assert wait_gone(live, GONE) == []
        assert loky_workers() == ([], []), "no worker left once loky's executor is shut down"
    finally:
        signal.signal(signal.SIGINT, previous)


# ======================================================================================
# Threads
# ======================================================================================
def test_threading_exception_keeps_its_type(env):
    with pytest.raises(W.TaskError, match="task 3 failed"):
        within(HANG, Parallel(n_jobs=2, backend="threading"), [delayed(W.fail_at)(i, 3) for i in range(8)])
    assert within(HANG, Parallel(n_jobs=2, backend="threading"), [delayed(W.echo)(i) for i in range(4)]) == [0, 1, 2, 3]


def test_threading_timeout_raises_and_the_call_returns(env):
    # Threads cannot be killed (documented): the task keeps running after the TimeoutError,
    # until it ends on its own; here it waits for an event the test sets afterwards.
    release = threading.Event()
    before = {thread.ident for thread in threading.enumerate()}
    try:
        with pytest.raises(TimeoutError) as info:
            within(
                HANG,
                Parallel(n_jobs=2, backend="threading", timeout=0.3),
                [delayed(W.echo)(0), delayed(W.wait_event)(release, HANG)],
            )
        assert "task 1" in str(info.value) and "wait_event" in str(info.value), str(info.value)
    finally:
        release.set()
    deadline = time.monotonic() + HANG
    while [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("joblite")]:
        assert time.monotonic() < deadline, "the worker thread did not end after its task ended"
        time.sleep(0.02)
    assert within(HANG, Parallel(n_jobs=2, backend="threading"), [delayed(W.echo)(i) for i in range(4)]) == [0, 1, 2, 3]


# ======================================================================================
# A bad task
# ======================================================================================
def test_an_argument_the_worker_cannot_unpickle_fails_the_task_not_the_pool(env):
    # It broke loky's pool (BrokenProcessPool, every worker killed); now unpickling is part
    # of running the batch, and its error is the task's.
    def scenario():  # in one thread: loky keeps one reusable executor per thread
        before = set()
        for _ in range(50):
            before.update(Parallel(n_jobs=2)([delayed(W.nap)(0.1) for _ in range(4)]))
            if len(before) == 2:
                break
        try:
            Parallel(n_jobs=2)([delayed(W.echo)(i) for i in range(4)] + [delayed(W.echo)(W.Unbuildable())])
        except W.TaskError as exc:
            error = exc
        else:
            error = None
        return before, error, set(Parallel(n_jobs=2)([delayed(W.nap)(0.1) for _ in range(8)]))

    before, error, after = within(HANG, scenario)
    assert error is not None and "cannot be rebuilt" in str(error), repr(error)
    assert len(before) == 2 and after <= before, f"the workers stay up: {before} then {after}"


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_non_delayed_item_midway_raises_type_error_naming_its_index(env, tmp_path, backend):
    report = tmp_path / "report"
    report.mkdir()
    array = big()

    def tasks():
        for i in range(12):
            yield ("not a task", i) if i == 7 else delayed(W.nap)(0.05, str(report), array)

    with pytest.raises(TypeError, match=r"item 7\b"):
        within(HANG, processes(env, backend=backend, batch_size=1), tasks())
    if backend == "loky":
        assert {entry["folder"] for entry in W.read_reports(report)} != {None}
    # the batches sent before the bad item finish, then the folder goes
    assert wait_empty(env, HANG) == [], f"left after a bad task: {os.listdir(env)}"
    assert within(HANG, Parallel(n_jobs=2, backend=backend), [delayed(W.echo)(i) for i in range(4)]) == [0, 1, 2, 3]
