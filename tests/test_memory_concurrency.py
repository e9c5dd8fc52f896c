"""``Memory``'s local store under load and faults: many real processes, SIGKILLs, stale locks,
crashed writers, and stores that fail (a full disk, a read-only store, an entry that cannot be
removed, a store removed while in use; tmpfs mounts and ``chattr +i``, skipped where not allowed).

The workers are separate Python processes (``subprocess``, started with the
code of tests/_memory_workers.py, importable, so nothing depends on fork);
they share one cache folder in ``tmp_path``, report what they saw in files,
and are killed or joined before each test ends.  After each scenario the store
is checked the way a user would: ``python -m joblite cache verify`` (when that
command exists) and, in any case, by loading every ``.out`` entry with
``joblite.load`` and comparing it with the true value; then a fresh process
calls every key.

Timing is never asserted except as generous upper bounds where the failure is
a hang (``HANG``), and as lower bounds that follow from the lock's own rules
(a lock that looks alive may not be broken).
"""

import collections
import contextlib
import errno
import glob
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings

import pytest

import _memory_workers as W
import joblite
from joblite import Memory
from joblite.__main__ import main

pytestmark = [
    pytest.mark.skipif(
        not hasattr(signal, "SIGKILL") or sys.platform == "win32", reason="needs POSIX processes and SIGKILL"
    ),
    # Locks, files and processes are the store's policy; the digests that name its entries are
    # the same on both twins (the golden hashing tests), and test_memory.py runs on the active one.
    pytest.mark.twin_independent,
]

HOST = socket.gethostname()
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_memory_workers.py")
JOBLITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
HANG = 120.0  # seconds: a wait longer than this is a hang, hence a failure
N_PROCESSES, N_CALLS, N_KEYS = 8, 200, 50  # the figures: 8 processes x 200 calls over 50 keys
SHM = "/dev/shm"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([JOBLITE_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _cli_available():
    """Whether ``python -m joblite cache verify`` exists in the joblite under test."""
    try:
        return importlib.util.find_spec("joblite.store.cli") is not None
    except ImportError:
        return False


# -- the worker processes --------------------------------------------------------------
class Workers:
    """Starts worker processes; whatever is still running at the end is killed and joined."""

    def __init__(self, folder):
        self.folder = folder
        self.procs = []
        self.env = _env()

    def start(self, mode, **cfg):
        name = f"{mode}{len(self.procs)}"
        cfg = dict(cfg, mode=mode)
        cfg.setdefault("report", str(self.folder / f"{name}.report"))
        cfg.setdefault("ready", str(self.folder / f"{name}.ready"))
        log_path = self.folder / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, WORKER, json.dumps(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=str(self.folder),
            )
        proc.cfg, proc.name, proc.log_path = cfg, name, log_path
        self.procs.append(proc)
        return proc

    @staticmethod
    def log(proc):
        try:
            return proc.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def wait(self, proc, timeout=HANG):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(
                f"{proc.name} (pid {proc.pid}) did not finish within {timeout} s (a hang); log:\n{self.log(proc)}"
            )
        return proc.returncode

    def wait_ready(self, procs, timeout=HANG):
        deadline = time.monotonic() + timeout
        for proc in procs:
            while not os.path.exists(proc.cfg["ready"]):
                if proc.poll() is not None:
                    pytest.fail(f"{proc.name} exited ({proc.returncode}) before it was ready; log:\n{self.log(proc)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{proc.name} not ready within {timeout} s")
                time.sleep(0.01)

    def report(self, proc):
        assert proc.returncode == 0, f"{proc.name} exited with {proc.returncode}; log:\n{self.log(proc)}"
        with open(proc.cfg["report"]) as fileobj:
            report = json.load(fileobj)
        assert report["with_ext"] == bool(joblite.__with_ext__), "the worker runs the other twin"
        return report

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=60)


@pytest.fixture
def workers(tmp_path):
    shm_before = set(os.listdir(SHM)) if os.path.isdir(SHM) else set()
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.close()
    if os.path.isdir(SHM):
        pids = {str(proc.pid) for proc in started.procs} | {str(os.getpid())}
        ours = [name for name in set(os.listdir(SHM)) - shm_before if pids & set(re.findall(r"\d+", name))]
        assert not ours, f"left in {SHM} by the test's processes: {ours}"


def _new_store(location):
    """Create the store at `location` before the workers start.

    Many processes creating one new store at once is the subject of its own
    test (test_processes_opening_a_new_store_at_once); the other scenarios
    start from an existing, empty store.
    """
    Memory(location, verbose=0)
    return location


def _sigkill(proc):
    """SIGKILL `proc` if it still runs; return whether it was killed by this call."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return proc.returncode == -signal.SIGKILL


def _counter(path):
    """The computations recorded in a counter file: a list of (pid, key, time)."""
    try:
        with open(path) as fileobj:
            lines = fileobj.read().splitlines()
    except FileNotFoundError:
        return []
    return [(int(pid), int(key), float(when)) for pid, key, when in (line.split() for line in lines)]


def _wait_for(condition, what, timeout=HANG, poll=0.005):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(poll)


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


# -- checking the store as a user would ---------------------------------------------------
def _store_problems(location):
    """Check every entry of the store at `location`.

    Returns ``(entries, problems)``: ``entries`` maps each key to the list of
    ``.out`` files that hold it (temporaries under ``.tmp`` are not entries);
    ``problems`` lists what is wrong: ``cache verify`` (when the command
    exists) not exiting 0, any entry listed by the store whose file does not
    load with ``joblite.load`` (which verifies every checksum) or whose result
    (``load_item``) is not the true value, and any ``.out`` file outside
    ``.tmp`` that the store does not list.
    """
    problems = []
    backend = Memory(location, verbose=0).store_backend
    if _cli_available():
        # --dry-run: check only; without it verify also sweeps, which the tests check is done
        # by the next write of a new process.
        run = subprocess.run(
            [sys.executable, "-m", "joblite", "cache", "verify", "--dry-run", "--json", str(location)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=HANG,
        )
        output = f"{run.stdout[-3000:]}{run.stderr[-3000:]}"
        if run.returncode != 0:
            problems.append(f"cache verify exited {run.returncode}:\n{output}")
        else:
            report = json.loads(run.stdout)
            if report.get("corrupt") or report.get("checked") != len(backend.get_items()):
                problems.append(f"cache verify exited 0 but reported:\n{output}")
    root = os.path.join(location, "joblite")
    files = set()
    for folder, subfolders, names in os.walk(root):
        if folder == root:
            subfolders[:] = [name for name in subfolders if name not in (".tmp", ".locks")]
        files.update(os.path.join(folder, name) for name in names if name.endswith(".out"))
    entries = collections.defaultdict(list)
    for item in backend.get_items():
        files.discard(item.path)
        if os.path.basename(os.path.dirname(item.path)) != item.args_id[:2]:
            problems.append(f"{item.path}: not in its shard folder")
        try:
            joblite.load(item.path)  # the whole file, every checksum
            value = backend.load_item((item.func_id, item.args_id))
        except Exception as exc:
            problems.append(f"{item.path}: {type(exc).__name__}: {exc}")
            continue
        problem = W.mismatch(value)
        if problem:
            problems.append(f"{item.path}: {problem}")
        else:
            entries[value["key"]].append(item.path)
        del value
    problems.extend(f"{path}: a result file the store does not list" for path in sorted(files))
    return dict(entries), problems


def _assert_store_valid(location):
    entries, problems = _store_problems(location)
    assert not problems, "\n".join(problems)
    duplicated = {key: paths for key, paths in entries.items() if len(paths) > 1}
    assert not duplicated, f"one call stored under several names: {duplicated}"
    return entries


def test_verify_step_detects_a_truncated_entry(tmp_path):
    # The store check used by the other tests can fail: a truncated entry is reported,
    # by `cache verify` (exit 1) when it exists and by loading every entry in any case.
    location = tmp_path / "cache"
    cached = Memory(location, verbose=0).cache(W.compute)
    for key in range(6):
        assert W.mismatch(cached(key), key) is None
    entries = _assert_store_valid(location)
    assert sorted(entries) == list(range(6))
    path = entries[5][0]  # key 5: a 1 MiB result
    size = os.path.getsize(path)
    with open(path, "r+b") as fileobj:
        fileobj.truncate(size // 2)
    entries, problems = _store_problems(location)
    assert 5 not in entries
    assert any(path in problem for problem in problems), problems
    if _cli_available():
        assert any(problem.startswith("cache verify exited 1") for problem in problems), problems


# -- item 10: the load test ----------------------------------------------------------------
def _check_load_reports(workers, procs, killed):
    """Every call reported by every worker returned the true value; no warning, no exception."""
    for proc in procs:
        with open(proc.cfg["report"]) as fileobj:
            lines = fileobj.read().splitlines()
        events = []
        for number, line in enumerate(lines):
            try:
                events.append(json.loads(line))
            except ValueError:
                # Only the last line of a killed worker may be cut short.
                assert proc in killed and number == len(lines) - 1, f"{proc.name}: unreadable report line {line!r}"
        assert events and events[0]["event"] == "start", f"{proc.name}: {Workers.log(proc)}"
        assert events[0]["with_ext"] == bool(joblite.__with_ext__), "the worker runs the other twin"
        wrong = [event for event in events if event["event"] not in ("start", "ok", "done")]
        assert not wrong, f"{proc.name} (pid {proc.pid}) saw: {wrong[:10]}"
        done = [event["key"] for event in events if event["event"] == "ok"]
        assert done == proc.cfg["keys"][: len(done)]
        if proc in killed:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 0, f"{proc.name} exited {proc.returncode}: {Workers.log(proc)}"
            assert events[-1]["event"] == "done" and len(done) == N_CALLS, proc.name


def _lines(path):
    try:
        with open(path, "rb") as fileobj:
            return fileobj.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _load_round(workers, location, options, rng, kill=False):
    """8 workers x 200 calls over 50 keys on `location`; with `kill`, 4 of them are SIGKILLed.

    Each worker calls the keys in 4 shuffled passes, so that the survivors
    alone call every key.  A victim is killed at a random moment: once it has
    reported a random number of calls (0 to 75% of them), plus a random
    0-5 ms; two of the victims, within their first pass over the keys (when
    most results are written) and, moreover, at a moment when they are
    writing a result if they do so within 0.1 s (their temporary folder holds
    a ``.out``).  Moments are counted in calls, not seconds, so that they fall
    within the victims' lives however fast the survivors get once the others
    are dead.  Returns ``(procs, killed)``.
    """
    start = location.parent / f"{location.name}.start"
    counter = location.parent / f"{location.name}.counter"
    tmp = location / "joblite" / ".tmp"
    _new_store(location)
    procs = []
    for index in range(N_PROCESSES):
        keys = []
        for _ in range(N_CALLS // N_KEYS):
            keys += rng.sample(range(N_KEYS), N_KEYS)
        procs.append(
            workers.start(
                "load",
                location=str(location),
                backend_options=options,
                keys=keys,
                start=str(start),
                counter=str(counter),
                mmap_mode="r" if index % 2 else None,
            )
        )
    workers.wait_ready(procs)
    start.touch()
    began = time.monotonic()
    killed = []
    if kill:
        # victim -> [calls to wait for (+1: the 'start' line), extra delay, waits for a write]
        plan = {
            proc: [
                rng.randint(0, N_KEYS // 2 if number < 2 else N_CALLS * 3 // 4) + 1,
                rng.uniform(0.0, 0.005),
                number < 2,
            ]
            for number, proc in enumerate(rng.sample(procs, N_PROCESSES // 2))
        }
        due = {}
        while plan and time.monotonic() < began + HANG:
            now = time.monotonic()
            for proc, (calls, delay, while_writing) in list(plan.items()):
                if proc.poll() is not None:
                    del plan[proc]  # finished before its moment: not killed
                    continue
                if proc not in due:
                    if _lines(proc.cfg["report"]) >= calls:
                        due[proc] = (now + delay, now + delay + (0.1 if while_writing else 0.0))
                    continue
                moment, latest = due[proc]
                if now < moment:
                    continue
                if now < latest and not any(name.endswith(".out") for name in _listdir(tmp / f"{proc.pid}@{HOST}")):
                    continue
                if _sigkill(proc):
                    killed.append(proc)
                del plan[proc]
            time.sleep(0.0005)
    for proc in procs:
        workers.wait(proc, timeout=max(1.0, began + HANG - time.monotonic()))
    return procs, killed


def _fresh_check(workers, location, options, killed=()):
    """A fresh process calls every key (all must be hits with the true value), then writes a new key.

    Its first write sweeps: afterwards ``.tmp`` holds only its own folder and
    ``.locks`` no lock file.  When processes were `killed`, at least one of
    them must have left a temporary folder beforehand (or the check proves nothing).
    """
    tmp = os.path.join(location, "joblite", ".tmp")
    if killed:
        left = [name for name in _listdir(tmp) if int(name.partition("@")[0]) in {p.pid for p in killed}]
        assert left, "no killed worker left a temporary folder to sweep"
    counter = location.parent / f"{location.name}.fresh-counter"
    proc = workers.start(
        "check",
        location=str(location),
        backend_options=options,
        keys=list(range(N_KEYS)),
        new_key=N_KEYS + 1000,
        counter=str(counter),
    )
    workers.wait(proc)
    report = workers.report(proc)
    assert report["missing"] == [], "entries missing after the round"
    assert report["problems"] == [] and report["events"] == [], report
    assert [key for _, key, _ in _counter(counter)] == [N_KEYS + 1000], "hits were recomputed"
    assert report["stored_new_key"]
    assert report["tmp"] == [f"{proc.pid}@{HOST}"], (
        f"temporaries of dead processes not swept by the first write of a new process: {report['tmp']}"
    )
    assert [name for name in report["locks"] if name.endswith(".lock")] == [], report["locks"]


@pytest.mark.parametrize("lock", [False, True], ids=["no-lock", "lock"])
def test_many_processes_share_one_store(tmp_path, workers, lock):
    # The full figures (8 x 200 calls over 50 keys), two rounds: ~5-7 s per parameter
    # on 2 cores, both twins.
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    options = {"lock": True} if lock else {}

    # Round 1: all 8 workers run to the end.
    location = tmp_path / "round1"
    procs, killed = _load_round(workers, location, options, rng)
    assert killed == []
    _check_load_reports(workers, procs, killed)
    computed = collections.Counter(key for _, key, _ in _counter(location.parent / "round1.counter"))
    assert set(computed) == set(range(N_KEYS))
    if lock:
        # Nobody died: with the lock each entry was computed exactly once in all.
        assert computed == collections.Counter(range(N_KEYS)), {k: n for k, n in computed.items() if n > 1}
    entries = _assert_store_valid(location)
    assert sorted(entries) == list(range(N_KEYS))
    _fresh_check(workers, location, options)

    # Round 2: the same on a new folder, 4 of the 8 workers SIGKILLed at random moments
    # while the others keep going.
    location = tmp_path / "round2"
    procs, killed = _load_round(workers, location, options, rng, kill=True)
    assert len(killed) >= 3, f"only {len(killed)} workers were killed before they finished (seed {seed})"
    _check_load_reports(workers, procs, killed)
    partial = [
        name for proc in killed for name in _listdir(os.path.join(location, "joblite", ".tmp", f"{proc.pid}@{HOST}"))
    ]
    entries = _assert_store_valid(location)
    assert sorted(entries) == list(range(N_KEYS)), f"seed {seed}"
    _fresh_check(workers, location, options, killed)
    print(f"seed {seed}: {len(killed)} killed, temporaries left by them: {partial}")


def test_processes_opening_a_new_store_at_once(tmp_path, workers):
    # 8 processes start together and each opens the same 30 new cache folders, one after
    # the other, calling one function in each: opening a store that another process is
    # creating at the same moment must work (no exception, no warning, the true value).
    # (This test found that a process listing an untagged root while another creates the
    # same store took the other's temporary tag, or the folders written right after the tag,
    # for foreign files: store/layout.py claim_root() now ignores temporary tags and looks
    # for the tag again before it refuses a folder.)
    locations = [str(tmp_path / f"cache{number}") for number in range(30)]
    start = tmp_path / "start"
    procs = [
        workers.start("open", locations=locations, key=index % 3, start=str(start)) for index in range(N_PROCESSES)
    ]
    workers.wait_ready(procs)
    start.touch()
    for proc in procs:
        workers.wait(proc)
    failures = []
    for proc in procs:
        report = workers.report(proc)
        failures += [f"pid {report['pid']}: {event}" for event in report["events"]]
    assert not failures, f"{len(failures)} failed calls, e.g.:\n" + "\n".join(failures[:5])
    for location in locations[:3]:
        assert sorted(_assert_store_valid(location)) == [0, 1, 2]


# -- item 5: a missing entry asked for by 8 processes at once ----------------------------
@pytest.mark.parametrize("lock", [True, False], ids=["lock", "no-lock"])
def test_missing_entry_asked_for_at_once(tmp_path, workers, lock):
    location = _new_store(tmp_path / "cache")
    options = {"lock": True} if lock else {}
    counter = tmp_path / "counter"
    start = tmp_path / "start"
    procs = [
        workers.start(
            "once",
            location=str(location),
            backend_options=options,
            func="slow",
            args=[7],
            sleep=0.5,
            counter=str(counter),
            start=str(start),
        )
        for _ in range(N_PROCESSES)
    ]
    workers.wait_ready(procs)
    start.touch()
    for proc in procs:
        workers.wait(proc)
    reports = [workers.report(proc) for proc in procs]
    for report in reports:
        assert report["problem"] is None and report["events"] == [], report
    missed = sum(not report["was_cached"] for report in reports)
    assert missed >= 2, "the processes did not ask for the entry at the same time"
    computations = _counter(counter)
    if lock:
        assert len(computations) == 1, f"computed {len(computations)} times under the lock: {computations}"
    else:
        assert 1 <= len(computations) <= missed
    entries = _assert_store_valid(location)
    assert list(entries) == [7]
    assert [name for name in _listdir(location / "joblite" / ".locks") if name.endswith(".lock")] == []


# -- stale locks ---------------------------------------------------------------------------
def test_lock_of_a_killed_holder_does_not_block(tmp_path, workers):
    # lock_timeout is long (120 s): the waiters must notice the dead holder by its pid,
    # not by the timeout.
    location = _new_store(tmp_path / "cache")
    options = {"lock": True, "lock_timeout": 120.0}
    counter = tmp_path / "counter"
    holder = workers.start(
        "once", location=str(location), backend_options=options, func="slow", args=[3], sleep=600, counter=str(counter)
    )
    _wait_for(lambda: len(_counter(counter)) == 1 or holder.poll() is not None, "the holder computing")
    assert holder.poll() is None, Workers.log(holder)
    locks = location / "joblite" / ".locks"
    held = [name for name in _listdir(locks) if name.endswith(".lock")]
    assert len(held) == 1, held
    assert (locks / held[0]).read_text() == f"{holder.pid}@{HOST}"
    waiters = [
        workers.start(
            "once",
            location=str(location),
            backend_options=options,
            func="slow",
            args=[3],
            sleep=0.2,
            counter=str(counter),
        )
        for _ in range(3)
    ]
    workers.wait_ready(waiters)
    time.sleep(1.0)
    # While the holder lives, the waiters wait: nobody else computes.
    assert [pid for pid, _, _ in _counter(counter)] == [holder.pid]
    assert all(waiter.poll() is None for waiter in waiters)
    assert _sigkill(holder)
    for waiter in waiters:
        workers.wait(waiter, timeout=30.0)  # far under lock_timeout
    reports = [workers.report(waiter) for waiter in waiters]
    for report in reports:
        assert not report["was_cached"]
        assert report["problem"] is None and report["events"] == [], report
    pids = [pid for pid, _, _ in _counter(counter)]
    assert len(pids) == 2 and pids[0] == holder.pid and pids[1] in {w.pid for w in waiters}, pids
    assert _listdir(locks) == []
    assert list(_assert_store_valid(location)) == [3]


@pytest.mark.parametrize("age", ["old", "fresh", "refreshed"])
def test_lock_of_another_host(tmp_path, workers, age):
    # A lock file '12345@otherhost': its holder's pid cannot be checked from here, so it
    # is broken only once it has not been refreshed for lock_timeout seconds.
    #   old: last refreshed an hour ago, broken at once;
    #   fresh: just written, broken after lock_timeout;
    #   refreshed: kept fresh for 3 s (a live holder elsewhere), then abandoned.
    lock_timeout = 1.0
    location = tmp_path / "cache"
    options = {"lock": True, "lock_timeout": lock_timeout}
    counter = tmp_path / "counter"
    # The call's identity, through the public API: shelve the same call in a scratch store.
    shelved = Memory(tmp_path / "scratch", verbose=0).cache(W.slow).call_and_shelve(11)
    backend = Memory(location, verbose=0, backend_options=options).store_backend
    lock_path = backend.entry_lock((shelved.func_id, shelved.args_id)).path
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "w") as fileobj:
        fileobj.write("12345@otherhost")
    if age == "old":
        os.utime(lock_path, (time.time() - 3600, time.time() - 3600))
    last_refresh = os.stat(lock_path).st_mtime
    waiter = workers.start(
        "once", location=str(location), backend_options=options, func="slow", args=[11], counter=str(counter)
    )
    if age == "refreshed":
        workers.wait_ready([waiter])
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            try:
                os.utime(lock_path)
                last_refresh = os.stat(lock_path).st_mtime
            except FileNotFoundError:
                pytest.fail("a lock refreshed by its holder was broken")
            assert _counter(counter) == [], "a lock refreshed by its holder was broken"
            time.sleep(0.1)
    workers.wait(waiter, timeout=60.0)
    report = workers.report(waiter)
    assert report["problem"] is None and report["events"] == [], report
    computations = _counter(counter)
    assert [pid for pid, _, _ in computations] == [waiter.pid]
    if age != "old":
        # Not before the lock was lock_timeout seconds without refresh (0.05 s: file
        # timestamps come from the kernel's coarse clock).
        assert computations[0][2] >= last_refresh + lock_timeout - 0.05, (computations, last_refresh)
    assert _listdir(os.path.dirname(lock_path)) == []
    assert list(_assert_store_valid(location)) == [11]


# -- item 4: a writer killed mid-write ---------------------------------------------------------
def test_writer_killed_mid_write_leaves_no_entry(tmp_path, workers):
    location = tmp_path / "cache"
    root = location / "joblite"
    counter = tmp_path / "counter"
    mib = 200
    try:
        for attempt in range(3):
            key = 100 + attempt
            victim = workers.start("once", location=str(location), func="huge", args=[key, mib], counter=str(counter))
            # Its temporary result file, hidden next to the entry (or, were writes
            # not atomic, the entry itself).
            temporaries = str(root / "*" / "huge" / "*" / f".*.{victim.pid}@{HOST}.*.tmp")
            _wait_for(
                lambda: (
                    victim.poll() is not None
                    or glob.glob(temporaries)
                    or glob.glob(str(root / "*" / "huge" / "*" / "*.out"))
                ),
                "the writer's result file",
                poll=0.0002,
            )
            time.sleep(random.uniform(0.0, 0.02))  # into the write (~0.1-0.5 s for 200 MiB)
            was_killed = _sigkill(victim)
            entries, problems = _store_problems(location)
            assert not problems, "\n".join(problems)
            if was_killed and key not in entries:
                break
            # The write had finished before the kill; try again with another key.
        else:
            pytest.fail("the writer could not be killed during its write in 3 attempts")
        assert victim.returncode == -signal.SIGKILL
        assert glob.glob(temporaries), "the killed writer left no temporary (killed before it wrote?)"

        later = workers.start("once", location=str(location), func="huge", args=[key, mib], counter=str(counter))
        workers.wait(later)
        report = workers.report(later)
        assert report["was_cached"] is False
        assert report["problem"] is None and report["events"] == [], report
        assert [pid for pid, _, _ in _counter(counter)][-2:] == [victim.pid, later.pid]
        # The later process's first write swept the dead writer's temporaries.
        assert report["tmp"] == [f"{later.pid}@{HOST}"], report["tmp"]
        assert glob.glob(temporaries) == []  # found through the dead writer's notes
        entries = _assert_store_valid(location)
        assert len(entries[key]) == 1
    finally:
        shutil.rmtree(location, ignore_errors=True)  # 200 MiB files: not kept in pytest's basetemp


# -- lock files: complete or absent; a stale empty or garbled one broken at once -----------------
def _lock_path(tmp_path, location, options, func, key):
    """The lock file of the call func(key) in the store at `location`, through the public API."""
    shelved = Memory(tmp_path / "scratch", verbose=0).cache(func).call_and_shelve(key)
    backend = Memory(location, verbose=0, backend_options=options).store_backend
    return backend.entry_lock((shelved.func_id, shelved.args_id)).path


@pytest.mark.parametrize("content", [b"", b"\x00\x13\xfe garbled"], ids=["empty", "garbled"])
def test_an_empty_or_garbled_lock_is_broken_at_once(tmp_path, workers, content):
    # Left by a crash between creating and writing the lock (older versions created it
    # empty first): it names no holder, so no holder will ever refresh or release it.
    # lock_timeout is an hour: waiting for it would be a hang.
    location = tmp_path / "cache"
    options = {"lock": True, "lock_timeout": 3600.0}
    lock_path = _lock_path(tmp_path, location, options, W.slow, 12)
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "wb") as fileobj:
        fileobj.write(content)
    counter = tmp_path / "counter"
    waiter = workers.start(
        "once", location=str(location), backend_options=options, func="slow", args=[12], counter=str(counter)
    )
    workers.wait(waiter, timeout=60.0)
    report = workers.report(waiter)
    assert report["problem"] is None and report["events"] == [], report
    assert [pid for pid, _, _ in _counter(counter)] == [waiter.pid]
    assert report["locks"] == [] and _listdir(os.path.dirname(lock_path)) == []
    assert list(_assert_store_valid(location)) == [12]


def test_lock_files_are_complete_or_absent(tmp_path, workers):
    # A process taking and releasing one lock in a loop is SIGKILLed at random moments:
    # whatever it leaves under the lock's name holds its pid@host, never less.
    location = _new_store(tmp_path / "cache")
    root = location / "joblite"
    lock_path = root / ".locks" / "probe.lock"
    rng = random.Random()
    holders = 0
    for round_ in range(25):
        proc = workers.start("locks", location=str(location), lock=str(lock_path), root=str(root))
        workers.wait_ready([proc])
        time.sleep(rng.uniform(0.0, 0.03))
        assert _sigkill(proc), Workers.log(proc)
        try:
            content = lock_path.read_bytes()
        except FileNotFoundError:
            continue
        assert content == f"{proc.pid}@{HOST}".encode(), (round_, content)
        holders += 1
        # Its holder is dead: the next process breaks it at once (it does not wait).
        assert Memory(location, verbose=0).store_backend.sweep() >= 1 and not lock_path.exists()
    print(f"{holders} of 25 kills left a held lock")
    leftovers = [name for name in _listdir(root / ".locks") if not name.endswith(".new")]
    assert leftovers == [], leftovers  # temporaries ('.new') are swept after lock_timeout


# -- store faults: the cached call returns the computed value with one CacheWarning ------------
@contextlib.contextmanager
def _tmpfs(folder, size):
    """A tmpfs of `size` mounted on the new folder `folder`; skips the test where mounting is not allowed."""
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "joblite-test", str(folder)], capture_output=True, text=True
    )
    if run.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {run.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _remount(folder, mode):
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True, capture_output=True)


def _fill(folder):
    """Write a file in `folder` until its filesystem is full (ENOSPC); return its path."""
    path = folder / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, bytes(1 << 16))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return path


@contextlib.contextmanager
def _immutable(path):
    """Make the folder `path` immutable (chattr +i: nothing in it can be created, renamed or removed,
    even by root); skips the test where the filesystem or the process cannot."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr command")
    run = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if run.returncode != 0:
        pytest.skip(f"cannot make a folder immutable here: {run.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def _one_cache_warning(call, *expected):
    """Run `call()`; check that it warned exactly once, with a CacheWarning holding each of `expected`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = call()
    messages = [f"{warning.category.__name__}: {warning.message}" for warning in caught]
    assert len(caught) == 1 and caught[0].category is joblite.CacheWarning, messages
    assert caught[0].filename == __file__  # points at the call, not into joblite
    for text in expected:
        assert text in messages[0], messages[0]
    return value


def _no_warning(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


def _args_id(tmp_path, func, key):
    return Memory(tmp_path / "scratch", verbose=0).cache(func).call_and_shelve(key).args_id


@pytest.mark.parametrize("lock", [False, True], ids=["no-lock", "lock"])
def test_a_full_disk_returns_computed_values_with_one_warning(tmp_path, workers, lock):
    options = {"lock": True, "lock_timeout": 3600.0} if lock else {}
    with _tmpfs(tmp_path / "disk", "2m") as disk:
        location = disk / "cache"
        memory = Memory(location, verbose=0, backend_options=options)
        known = memory.cache(W.compute)
        assert W.mismatch(known(1), 1) is None  # its code record and one entry are written
        filler = _fill(disk)
        for cached, key in [(known, 2), (memory.cache(W.slow), 3)]:  # slow: new to the store
            value = _one_cache_warning(lambda: cached(key), "ENOSPC", str(location))
            assert W.mismatch(value, key) is None
        assert W.mismatch(_no_warning(lambda: known(1)), 1) is None  # hits still work
        # No lock and no temporary of one is left by the failed writes.
        assert _listdir(location / "joblite" / ".locks") == []

        # Space again: another process computes and stores key 3 at once (a lock
        # left behind would make it wait lock_timeout, an hour).
        filler.unlink()
        counter = tmp_path / "counter"
        proc = workers.start(
            "once", location=str(location), backend_options=options, func="slow", args=[3], counter=str(counter)
        )
        workers.wait(proc, timeout=60.0)
        report = workers.report(proc)
        assert report["problem"] is None and report["events"] == [] and not report["was_cached"], report
        assert [pid for pid, _, _ in _counter(counter)] == [proc.pid]
        assert sorted(_assert_store_valid(location)) == [1, 3]


def test_a_read_only_store_returns_computed_values_with_one_warning(tmp_path):
    with _tmpfs(tmp_path / "disk", "8m") as disk:
        location = disk / "cache"
        cached = Memory(location, verbose=0).cache(W.compute)
        for key in (1, 2, 3):
            cached(key)
        _remount(disk, "ro")
        try:
            for key in (1, 2, 3):
                assert W.mismatch(_no_warning(lambda: cached(key)), key) is None
            calls = {
                "a miss": (cached, 7),
                "a new function": (Memory(location, verbose=0).cache(W.slow), 8),
                "lock=True": (Memory(location, verbose=0, backend_options={"lock": True}).cache(W.compute), 9),
                "bytes_limit": (Memory(location, verbose=0, bytes_limit=1).cache(W.compute), 11),
            }
            for what, (func, key) in calls.items():
                value = _one_cache_warning(lambda: func(key), "EROFS", str(location))
                assert W.mismatch(value, key) is None, what
            memory = Memory(location, verbose=0)
            assert (
                _one_cache_warning(lambda: memory.reduce_size(items_limit=0), "EROFS", "3 of the cache entries") == []
            )
            assert len(memory.store_backend.get_items()) == 3
        finally:
            _remount(disk, "rw")


def test_an_entry_that_cannot_be_removed_is_skipped_and_reported(tmp_path, capsys):
    location = tmp_path / "cache"
    memory = Memory(location, verbose=0)
    cached = memory.cache(W.compute)
    for key in (1, 2, 3, 4, 6, 7):
        cached(key)
    backend = memory.store_backend
    items = {item.args_id: item for item in backend.get_items()}
    stuck = items[_args_id(tmp_path, W.compute, 1)]
    now = time.time()
    for age, item in enumerate(sorted(items.values(), key=lambda item: item.path != stuck.path)):
        os.utime(item.path, (now - 1000 + age, now - 1000 + age))  # the stuck entry is the oldest
    size = max(item.size for item in items.values())
    # A new entry in another shard folder than the stuck one.
    key = next(
        key for key in range(100, 200) if key % 5 and _args_id(tmp_path, W.compute, key)[:2] != stuck.args_id[:2]
    )
    with _immutable(os.path.dirname(stuck.path)):
        limited = Memory(location, verbose=0, bytes_limit=3 * size).cache(W.compute)
        value = _one_cache_warning(lambda: limited(key), "EPERM", stuck.path, "bytes_limit")
        assert W.mismatch(value, key) is None
        left = {item.path for item in backend.get_items()}
        assert stuck.path in left and len(left) <= 3  # others were removed in its place

        removed = _one_cache_warning(lambda: memory.reduce_size(items_limit=0), "EPERM", stuck.path)
        assert stuck.path not in {item.path for item in removed}
        assert [item.path for item in backend.get_items()] == [stuck.path]

        status = main(["cache", "prune", str(location), "--items-limit", "0", "--json"])
        report = json.loads(capsys.readouterr().out)
        assert status == 3 and report["removed"] == []
        assert [entry["path"] for entry in report["errors"]] == [stuck.path]
        assert "EPERM" in report["errors"][0]["error"]
        assert main(["cache", "prune", str(location), "--items-limit", "0"]) == 3
        assert f"not removed: {stuck.func_id} {stuck.args_id}" in capsys.readouterr().out
    assert main(["cache", "prune", str(location), "--items-limit", "0"]) == 0
    assert backend.get_items() == []


@pytest.mark.parametrize("lock", [False, True], ids=["no-lock", "lock"])
@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_store_removed_or_replaced_while_in_use(tmp_path, how, lock):
    location = tmp_path / "cache"
    cached = Memory(location, verbose=0, backend_options={"lock": lock}).cache(W.compute)
    cached(1)
    root = location / "joblite"
    shutil.rmtree(root)
    if how == "replaced":
        root.write_text("a file where the store was")
    for key in (1, 2):  # a former hit, a new key
        value = _one_cache_warning(lambda: cached(key), str(root))
        assert W.mismatch(value, key) is None
    # Not made again piecemeal (folders of entries without their tag and code records).
    assert root.is_file() if how == "replaced" else not root.exists()
    assert sorted(os.listdir(location)) == (["joblite"] if how == "replaced" else [])
    # A new Memory on the location makes the store again, or says why it cannot.
    if how == "replaced":
        with pytest.raises(ValueError, match=f"{root} exists and is not a folder"):
            Memory(location, verbose=0)
    else:
        assert W.mismatch(_no_warning(lambda: Memory(location, verbose=0).cache(W.compute)(2)), 2) is None
        assert sorted(_assert_store_valid(location)) == [2]


def test_an_empty_scan_lock_does_not_stop_bytes_limit(tmp_path):
    # A 0-byte size-scan.lock (a crash between creating and writing it) named no
    # holder, so it was kept for 10 minutes, and no process could enforce bytes_limit.
    location = tmp_path / "cache"
    probe = Memory(tmp_path / "probe", verbose=0)
    probe.cache(W.compute)(1)
    [item] = probe.store_backend.get_items()
    limit = 10 * item.size
    memory = Memory(location, verbose=0, bytes_limit=limit, backend_options={"size_check_interval": 0})
    locks = location / "joblite" / ".locks"
    locks.mkdir()
    (locks / "size-scan.lock").write_bytes(b"")
    cached = memory.cache(W.compute)
    for key in range(1, 60):
        if key % 5:
            cached(key)
    total = sum(item.size for item in memory.store_backend.get_items())
    assert total <= limit, (total, limit)
    assert _listdir(locks) == []
