"""Worker processes for tests/test_memory_concurrency.py.

Run as ``python tests/_memory_workers.py '<json config>'``: the script imports
itself as the module ``_memory_workers``, so that the cached functions are
filed under the same name (``_memory_workers/<function>``) in every process
and in the test process, which imports this module too.

Every worker reports what it saw in a file (``cfg['report']``); no exception
escapes a call: it is written to the report instead.  The cached functions
append one line ``<pid> <key> <time>`` to ``COUNTER`` each time they actually
compute, so that the test can count computations across processes.

:class:`Crash` and :class:`Hang` are results whose unpickling kills the
process (SIGSEGV) or never ends, for the tests of ``cache verify``.
"""

import json
import os
import signal
import sys
import time
import warnings

import numpy as np

BIG_EVERY = 5  # keys 0, 5, 10, ... give ~1 MiB results, the others small ones
BIG_LENGTH = 131072  # float64: 1 MiB
COUNTER = None  # path of the computation counter file, set by main()
SLOW_SECONDS = 0.0  # how long slow() takes, set by main()


# -- the values and the cached functions ----------------------------------------------
def true_value(key):
    """The value compute(key) and slow(key) return, computed without any cache."""
    length = BIG_LENGTH if key % BIG_EVERY == 0 else 16
    return {
        "key": key,
        "square": key * key,
        "label": f"k{key}",
        "data": np.random.default_rng(key).standard_normal(length),
    }


def huge_value(key, mib):
    """The value huge(key, mib) returns: `mib` MiB of float64."""
    return {"key": key, "mib": mib, "data": np.arange(mib * BIG_LENGTH, dtype=np.float64) + key}


def _count(key):
    if COUNTER is not None:
        with open(COUNTER, "a") as fileobj:  # O_APPEND: one short write per line
            fileobj.write(f"{os.getpid()} {key} {time.time()!r}\n")


def compute(key):
    _count(key)
    return true_value(key)


def slow(key):
    _count(key)
    time.sleep(SLOW_SECONDS)
    return true_value(key)


def huge(key, mib):
    _count(key)
    return huge_value(key, mib)


def mismatch(value, key=None):
    """None if `value` is the true value (of `key` when given), else what is wrong."""
    if not isinstance(value, dict) or "key" not in value:
        return f"not a result dict: {type(value).__name__}"
    if key is not None and value["key"] != key:
        return f"result of key {value['key']!r} returned for key {key!r}"
    data = value.get("data")
    if not isinstance(data, np.ndarray):
        return f"data is {type(data).__name__}"
    if "mib" in value:
        expected_length = value["mib"] * BIG_LENGTH
        if data.dtype != np.float64 or data.shape != (expected_length,):
            return f"data has dtype {data.dtype} and shape {data.shape}"
        step = 1 << 21
        for start in range(0, expected_length, step):  # chunks: no second 200 MiB array
            stop = min(start + step, expected_length)
            if not np.array_equal(data[start:stop], np.arange(start, stop, dtype=np.float64) + value["key"]):
                return f"data differs in [{start}:{stop}]"
        return None
    expected = true_value(value["key"])
    if set(value) != set(expected):
        return f"keys {sorted(value)}"
    for name in ("key", "square", "label"):
        if value[name] != expected[name]:
            return f"{name} is {value[name]!r}, expected {expected[name]!r}"
    if data.dtype != np.float64 or data.shape != expected["data"].shape:
        return f"data has dtype {data.dtype} and shape {data.shape}"
    if not np.array_equal(data, expected["data"]):
        return "data differs"
    return None


def crash_loader():
    """Kill this process with SIGSEGV, as a segfault in an unpickler would."""
    os.kill(os.getpid(), signal.SIGSEGV)


def hang_loader(seconds):
    time.sleep(seconds)


class Crash:
    """Pickles as a call of crash_loader: an entry holding one kills the process that loads it."""

    def __reduce__(self):
        return crash_loader, ()


class Hang:
    """Pickles as a call of hang_loader: an entry holding one takes `seconds` to load."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __reduce__(self):
        return hang_loader, (self.seconds,)


# -- the worker modes ------------------------------------------------------------------
def _memory(cfg):
    from joblite import Memory

    return Memory(
        cfg["location"], verbose=0, mmap_mode=cfg.get("mmap_mode"), backend_options=cfg.get("backend_options")
    )


def _ready_and_wait(cfg):
    """Say "ready" (a file), then wait for the start file when there is one."""
    if cfg.get("ready"):
        with open(cfg["ready"], "w") as fileobj:
            fileobj.write(str(os.getpid()))
    start = cfg.get("start")
    if start:
        deadline = time.monotonic() + 120
        while not os.path.exists(start):
            if time.monotonic() > deadline:
                raise RuntimeError("no start signal within 120 s")
            time.sleep(0.001)


def _call(func, args, key, events):
    """Call `func(*args)`; return the value or None, recording warnings and exceptions in `events`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = func(*args)
        except Exception as exc:  # reported, never raised
            value = None
            events.append({"event": "exception", "key": key, "what": f"{type(exc).__name__}: {exc}"})
    for warning in caught:
        events.append({"event": "warning", "key": key, "what": f"{warning.category.__name__}: {warning.message}"})
    return value


def run_load(cfg):
    """Call compute(key) for each key of cfg['keys'], one report line per call."""
    import joblite

    cached = _memory(cfg).cache(compute)
    truth = {key: true_value(key) for key in set(cfg["keys"])}
    with open(cfg["report"], "w", buffering=1) as report:
        report.write(json.dumps({"event": "start", "pid": os.getpid(), "with_ext": bool(joblite.__with_ext__)}) + "\n")
        _ready_and_wait(cfg)
        for key in cfg["keys"]:
            events = []
            value = _call(cached, (key,), key, events)
            if not events:
                problem = mismatch(value, key)
                if problem is None and not np.array_equal(value["data"], truth[key]["data"]):
                    problem = "data differs from the true value computed before the run"
                events.append({"event": "bad", "key": key, "what": problem} if problem else {"event": "ok", "key": key})
            for event in events:
                report.write(json.dumps(event) + "\n")
            del value
        report.write(json.dumps({"event": "done"}) + "\n")


def run_check(cfg):
    """A fresh process: check_call_in_cache and call every key, then (optionally) write a new key.

    The report is one JSON document; after the write it lists ``.tmp`` and
    ``.locks`` of the store, as this (still live) process sees them.
    """
    import joblite

    memory = _memory(cfg)
    cached = memory.cache(compute)
    result = {"pid": os.getpid(), "with_ext": bool(joblite.__with_ext__), "missing": [], "problems": [], "events": []}
    for key in cfg["keys"]:
        if not cached.check_call_in_cache(key):
            result["missing"].append(key)
        value = _call(cached, (key,), key, result["events"])
        problem = mismatch(value, key)
        if problem:
            result["problems"].append([key, problem])
    new_key = cfg.get("new_key")
    if new_key is not None:
        value = _call(cached, (new_key,), new_key, result["events"])
        problem = mismatch(value, new_key)
        if problem:
            result["problems"].append([new_key, problem])
        result["stored_new_key"] = cached.check_call_in_cache(new_key)
    root = os.path.join(cfg["location"], "joblite")
    result["tmp"] = sorted(_listdir(os.path.join(root, ".tmp")))
    result["locks"] = sorted(_listdir(os.path.join(root, ".locks")))
    with open(cfg["report"], "w") as fileobj:
        json.dump(result, fileobj)


def run_once(cfg):
    """One call of slow(key) or huge(key, mib); the report is one JSON document."""
    import joblite

    func = {"slow": slow, "huge": huge}[cfg["func"]]
    cached = _memory(cfg).cache(func)
    args = tuple(cfg["args"])
    result = {"pid": os.getpid(), "with_ext": bool(joblite.__with_ext__), "events": []}
    _ready_and_wait(cfg)
    result["was_cached"] = cached.check_call_in_cache(*args)
    result["t_call"] = time.time()
    value = _call(cached, args, args[0], result["events"])
    result["t_return"] = time.time()
    result["problem"] = mismatch(value, args[0])
    del value
    root = os.path.join(cfg["location"], "joblite")
    result["tmp"] = sorted(_listdir(os.path.join(root, ".tmp")))
    result["locks"] = sorted(_listdir(os.path.join(root, ".locks")))
    with open(cfg["report"], "w") as fileobj:
        json.dump(result, fileobj)


def run_open(cfg):
    """Open each store of cfg['locations'] (new folders) right after the start signal and call compute(key).

    The report is one JSON document: the events (exceptions, warnings, wrong values).
    """
    import joblite
    from joblite import Memory

    result = {"pid": os.getpid(), "with_ext": bool(joblite.__with_ext__), "events": [], "calls": 0}
    _ready_and_wait(cfg)
    for location in cfg["locations"]:

        def call(key, location=location):
            return Memory(location, verbose=0, backend_options=cfg.get("backend_options")).cache(compute)(key)

        value = _call(call, (cfg["key"],), cfg["key"], result["events"])
        if value is not None:
            result["calls"] += 1
            problem = mismatch(value, cfg["key"])
            if problem:
                result["events"].append({"event": "bad", "key": cfg["key"], "what": problem})
    with open(cfg["report"], "w") as fileobj:
        json.dump(result, fileobj)


def run_locks(cfg):
    """Take and release the lock file cfg['lock'] in a loop, until killed."""
    from joblite.store import EntryLock

    lock = EntryLock(cfg["lock"], 3600.0, cfg["root"])
    _ready_and_wait(cfg)
    while True:
        if lock.try_acquire():
            lock.release()


def _listdir(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def main(argv):
    global COUNTER, SLOW_SECONDS

    cfg = json.loads(argv[0])
    COUNTER = cfg.get("counter")
    SLOW_SECONDS = float(cfg.get("sleep", 0.0))
    {"load": run_load, "check": run_check, "once": run_once, "open": run_open, "locks": run_locks}[cfg["mode"]](cfg)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _memory_workers

    sys.exit(_memory_workers.main(sys.argv[1:]))
