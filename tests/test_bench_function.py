"""`python -m joblite bench parallel MODULE:FUNCTION`: a user's function through Parallel, a setting recommended."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import joblite
from joblite.bench.function import RULE, SCHEMA, recommend, settings_grid

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent

SRC = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))

USERMOD = textwrap.dedent(
    """
    import os
    import threading
    import time

    NOT_CALLABLE = 3
    LOCK = threading.Lock()


    def slow(x):
        time.sleep(0.002)
        return x * x


    def plus_one(x):
        return x + 1


    def add(a, b):
        return a + b


    def doubled(row):
        return row * 2


    def pid(x):
        time.sleep(0.01)
        return os.getpid()


    def lock(x):
        return LOCK  # cannot be pickled back from a worker process


    def broken(x):
        raise ValueError(f"cannot take {x!r}")


    class Work:
        @staticmethod
        def triple(x):
            return 3 * x
    """
)


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "usermod.py").write_text(USERMOD)
    (tmp_path / "badimport.py").write_text("import not_there_abc\n")
    return tmp_path


def bench(cwd, *args, ok=True):
    env = dict(os.environ, PYTHONPATH=SRC)
    result = subprocess.run(
        [sys.executable, "-m", "joblite", "bench", "parallel", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env=env,
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def bench_json(cwd, *args):
    report = json.loads(bench(cwd, *args, "--json").stdout)
    assert report["schema"] == SCHEMA
    return report


def check_rule(loop, settings, recommended, tolerance=0.0):
    """The recommended entry is the simplest whose median is within the fastest one's min-max range.

    `loop` and `settings` (in the printed order, simplest first) are dicts with
    ``median``, ``max`` and ``results``; `recommended` is an index into
    ``[loop] + settings``; `tolerance` allows for printed figures' rounding.
    """
    entries = [loop] + [s for s in settings if s["results"] == "equal"]
    chosen = ([loop] + settings)[recommended]
    assert chosen["results"] == "equal"  # a setting whose results differ is never recommended
    fastest = min(entries, key=lambda entry: entry["median"])
    assert chosen["median"] <= fastest["max"] * (1 + tolerance)
    for simpler in entries[: entries.index(chosen)]:
        assert simpler["median"] > fastest["max"] * (1 - tolerance)


def check_report(report, repeat):
    loop = report["loop"]
    groups = {(s["backend"], s["workers"]) for s in report["settings"]}
    assert len(loop["times"]) == repeat * len(groups)  # the loop takes turns with every group
    assert loop["consistent"]
    flat = [dict(loop["seconds"], results="equal")]
    for setting in report["settings"]:
        assert setting["error"] is None, setting
        assert len(setting["times"]) == repeat
        seconds = setting["seconds"]
        assert seconds["min"] <= seconds["median"] <= seconds["max"]
        assert setting["speedup"]["median"] == pytest.approx(loop["seconds"]["median"] / seconds["median"])
        assert setting["speedup"]["min"] <= setting["speedup"]["median"] <= setting["speedup"]["max"]
        flat.append(dict(seconds, results=setting["results"]))
    choice = report["recommendation"]
    assert choice["rule"] == RULE
    if choice["kind"] == "loop":
        index = 0
    else:
        index = 1 + [s["call"] for s in report["settings"]].index(choice["call"])
        assert choice["call"] == (
            f"Parallel(n_jobs={choice['n_jobs']}, backend={choice['backend']!r}, batch_size={choice['batch_size']!r})"
        )
    check_rule(flat[0], flat[1:], index)


def test_json_report_times_every_setting_checks_results_and_follows_the_rule(user_dir):
    report = bench_json(user_dir, "usermod:slow", "--args", "40", "--repeat", "2")
    assert report["function"] == "usermod:slow"
    assert report["args"] == {"source": "40", "count": 40, "unpack": False}
    settings = report["settings"]
    assert {s["backend"] for s in settings} == {"sequential", "threading", "loky"}
    assert all(s["results"] == "equal" for s in settings)  # every setting returned the loop's results
    assert {s["batch_size"] for s in settings if s["backend"] == "loky"} >= {"auto", 1}
    keys = [(s["backend"], s["workers"], s["batch_size"]) for s in settings]
    assert len(keys) == len(set(keys))  # n_jobs=-1 is not timed again as its number of workers
    assert max(s["workers"] for s in settings) == joblite.cpu_count()
    check_report(report, repeat=2)


def parse_table(text):
    """The printed rows (loop first, as dicts of median, max, results, call) and the recommended index."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-----")) + 1
    rows = []
    for line in lines[start:]:
        if not line:
            break
        fields = line.split()
        if fields[0] == "loop":
            median, spread, results = fields[1], fields[2], fields[-1]
            call = None
        else:
            backend, n_jobs, _, batch, median, spread = fields[:6]
            results = fields[-1]
            batch = repr(batch) if batch == "auto" else batch
            call = f"Parallel(n_jobs={n_jobs}, backend={backend!r}, batch_size={batch})"
        low, high = spread.split("-")
        rows.append({"median": float(median), "min": float(low), "max": float(high), "results": results, "call": call})
    rows[0]["results"] = "equal"  # the reference
    match = re.search(r"^recommended: (.*)$", text, re.MULTILINE)
    assert match, text
    chosen = match.group(1)
    index = 0 if chosen.startswith("the plain loop") else [row["call"] for row in rows].index(chosen)
    return rows, index


def test_table_fits_100_columns_and_recommends_by_the_printed_figures(user_dir):
    text = bench(user_dir, "usermod:slow", "--args", "0:40", "--repeat", "2").stdout
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert text.startswith("usermod:slow: 40 calls (--args 0:40), 2 runs per setting")
    rows, index = parse_table(text)
    assert [row["call"] for row in rows][:2] == [None, "Parallel(n_jobs=1, backend='sequential', batch_size='auto')"]
    assert len(rows) == 1 + len(settings_grid(40))  # the loop and every setting of the default grid
    check_rule(rows[0], rows[1:], index, tolerance=1e-3)  # printed with 4 significant digits
    assert "rule: the simplest setting" in text


def test_setting_with_other_results_is_reported_and_never_recommended(user_dir):
    # os.getpid() in loky's workers differs from the caller's: loky "computes" other results.
    args = ["usermod:pid", "--args", "8", "--repeat", "1", "--backend", "loky", "--n-jobs", "1,2", "--batch-size", "1"]
    report = bench_json(user_dir, *args)
    results = {s["backend"]: s["results"] for s in report["settings"]}
    assert results == {"sequential": "equal", "loky": "differ"}
    assert report["recommendation"]["backend"] != "loky"
    text = bench(user_dir, *args).stdout
    assert "returned results that differ from the loop's" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_setting_that_fails_is_reported_and_never_recommended(user_dir):
    args = ["usermod:lock", "--args", "4", "--repeat", "1", "--backend", "loky", "--n-jobs", "1,2", "--batch-size", "1"]
    report = bench_json(user_dir, *args)
    failed = [s for s in report["settings"] if s["backend"] == "loky"]
    assert len(failed) == 1 and failed[0]["results"] == "error" and "lock" in failed[0]["error"].lower()
    assert failed[0]["seconds"] is None and failed[0]["speedup"] is None
    assert report["recommendation"]["backend"] != "loky"
    text = bench(user_dir, *args).stdout
    assert "note: Parallel(n_jobs=2, backend='loky', batch_size=1) failed:" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_arguments_from_npy_json_and_joblite_files(user_dir):
    rows = np.arange(12, dtype=np.int64).reshape(6, 2)
    np.save(user_dir / "rows.npy", rows)
    report = bench_json(user_dir, "usermod:doubled", "--args", "rows.npy", "--repeat", "1", "--backend", "threading")
    assert report["args"]["count"] == 6
    assert all(s["results"] == "equal" for s in report["settings"])  # arrays compared element-wise
    check_report(report, repeat=1)

    (user_dir / "pairs.json").write_text(json.dumps([[1, 2], [3, 4], [5, 6]]))
    report = bench_json(
        user_dir, "usermod:add", "--args", "pairs.json", "--unpack", "--repeat", "1", "--backend", "threading"
    )
    assert report["args"] == {"source": "pairs.json", "count": 3, "unpack": True}
    assert all(s["results"] == "equal" for s in report["settings"])

    joblite.dump([1.5, 2.5, 3.5, 4.5], user_dir / "values.joblite")
    report = bench_json(
        user_dir, "usermod:Work.triple", "--args", "values.joblite", "--repeat", "1", "--backend", "threading"
    )
    assert report["args"]["count"] == 4
    check_report(report, repeat=1)


def write_bad_files(folder):
    (folder / "dict.json").write_text('{"a": 1}')
    (folder / "empty.json").write_text("[]")
    (folder / "broken.json").write_text("[1, 2")
    (folder / "garbage.npy").write_bytes(b"not an npy file at all")
    (folder / "garbage.pkl").write_bytes(b"\x00\x01 neither joblite nor joblib")
    (folder / "ints.json").write_text("[1, 2, 3]")


@pytest.mark.parametrize(
    ("spec", "arguments", "named"),
    [
        ("nomodule_xyz:f", ["--args", "3"], "nomodule_xyz"),
        ("usermod:missing", ["--args", "3"], "missing"),
        ("usermod:Work.nothing", ["--args", "3"], "nothing"),
        ("usermod:NOT_CALLABLE", ["--args", "3"], "NOT_CALLABLE"),
        ("usermod", ["--args", "3"], "'usermod'"),
        ("usermod:slow:x", ["--args", "3"], "usermod:slow:x"),
        ("badimport:f", ["--args", "3"], "not_there_abc"),
        ("usermod:slow", ["--args", "nope.npy"], "nope.npy"),
        ("usermod:slow", ["--args", "dict.json"], "dict.json"),
        ("usermod:slow", ["--args", "empty.json"], "empty.json"),
        ("usermod:slow", ["--args", "broken.json"], "broken.json"),
        ("usermod:slow", ["--args", "garbage.npy"], "garbage.npy"),
        ("usermod:slow", ["--args", "garbage.pkl"], "garbage.pkl"),
        ("usermod:add", ["--args", "ints.json", "--unpack"], "ints.json"),
        ("usermod:slow", ["--args", "5:1:0"], "5:1:0"),
        ("usermod:slow", ["--args", "3", "--n-jobs", "1,0"], "1,0"),
        ("usermod:slow", ["--args", "3", "--batch-size", "auto,0"], "auto,0"),
        ("usermod:slow", ["--args", "3", "--repeat", "0"], "--repeat 0"),
    ],
)
def test_bad_spec_or_arguments_exit_2_naming_them(user_dir, spec, arguments, named):
    write_bad_files(user_dir)
    result = bench(user_dir, spec, *arguments, ok=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert named in result.stderr
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_a_function_failing_in_the_plain_loop_exits_1_with_its_error(user_dir):
    result = bench(user_dir, "usermod:broken", "--args", "3", ok=False)
    assert result.returncode == 1
    assert "usermod:broken" in result.stderr and "ValueError: cannot take 0" in result.stderr
    assert "Traceback" not in result.stderr


def spread(median, low=None, high=None):
    return {"min": low if low is not None else median, "median": median, "max": high if high is not None else median}


def setting(call, median, low, high, results="equal"):
    seconds = spread(median, low, high)
    return {"call": call, "backend": "threading", "n_jobs": 2, "batch_size": "auto", "seconds": seconds,
            "speedup": None, "results": results}  # fmt: skip


def test_recommend_follows_the_rule_on_given_spreads():
    loop = spread(1.0, 0.95, 1.05)
    # clearly faster, beyond the spreads: the fastest
    choice = recommend(loop, [setting("a", 0.8, 0.78, 0.82), setting("b", 0.5, 0.48, 0.52)])
    assert choice["kind"] == "parallel" and choice["call"] == "b"
    # the simpler one's median within the fastest's range: the simpler one
    choice = recommend(loop, [setting("a", 0.52, 0.5, 0.6), setting("b", 0.5, 0.45, 0.53)])
    assert choice["call"] == "a"
    # nothing beats the loop beyond the spread: the loop
    choice = recommend(loop, [setting("a", 0.97, 0.9, 1.2)])
    assert choice["kind"] == "loop" and choice["call"] == "[f(x) for x in args]"
    # faster but with other results: never
    choice = recommend(loop, [setting("a", 0.1, 0.1, 0.1, results="differ"), setting("b", 2.0, 2.0, 2.0)])
    assert choice["kind"] == "loop"
