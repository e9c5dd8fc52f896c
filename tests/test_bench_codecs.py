"""``python -m joblite bench codecs PATH`` (joblite.bench.codecs) on the files a user has.

The command runs on small files of the kinds users keep (a ``.npy``, a
joblite dump, a joblib dump of a dict of arrays), and its recommendations
are checked against the measurements it prints.  No figure is asserted:
timings vary, the rules that turn them into recommendations do not.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import joblite
from joblite.__main__ import main as cli_main
from joblite.bench import codecs
from joblite.compressors import compressor_names

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent

# The joblite under test, for the child processes: the checkout's src/ or site-packages.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
AVAILABLE = [name for name in codecs.LEVELS if name in compressor_names()]
ROW = re.compile(
    r"^([ *!]) (0|\('[\w-]+', \d+\))\s+(joblite|joblib)\s+([\d,]+)\s+([\d.]+)"
    r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$"
)
RECOMMENDED = re.compile(
    r"^  (speed|size|balance)\s+compress=(0|\('[\w-]+', \d+\))\s+ratio ([\d.]+), "
    r"write ([\d.]+) MB/s, read ([\d.]+) MB/s$"
)


def run_codecs(cwd, *args, bench_args=()):
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    return subprocess.run(
        [sys.executable, "-m", "joblite", "bench", *bench_args, "codecs", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


@pytest.fixture
def files(tmp_path):
    """The files a user would point the command at, in a folder of their own."""
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    ints = rng.integers(0, 200, size=16_000, dtype=np.int64)
    smooth = np.cumsum(rng.normal(size=12_000))
    paths = {"ints.npy": folder / "ints.npy", "smooth.jl": folder / "smooth.jl", "run.joblib": folder / "run.joblib"}
    np.save(paths["ints.npy"], ints)
    joblite.dump(smooth, paths["smooth.jl"])
    joblib = pytest.importorskip("joblib")
    joblib.dump({"labels": ints[:4000].astype(np.int32), "signal": smooth, "name": "run 3"}, paths["run.joblib"])
    notes = folder / "notes.txt"
    notes.write_text("measurements of run 3, taken on Tuesday\n")
    paths["notes.txt"] = notes
    return {name: str(path) for name, path in paths.items()}


def parse_table(text):
    rows = [match.groups() for match in map(ROW.match, text.splitlines()) if match]
    table = [
        {
            "mark": mark,
            "compress": compress,
            "impl": impl,
            "file_bytes": int(size.replace(",", "")),
            "ratio": float(ratio),
            "write": float(write),
            "read": float(read),
        }
        for mark, compress, impl, size, ratio, write, _, read, _ in rows
    ]
    picks = {match[1]: match.groups()[1:] for match in map(RECOMMENDED.match, text.splitlines()) if match}
    return table, picks


def test_the_table_on_a_npy_file_covers_every_codec_and_recommends_from_its_rows(files, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = run_codecs(tmp_path, files["ints.npy"], "--tmpdir", str(scratch))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert all(len(line) <= codecs.WIDTH for line in text.splitlines()), max(text.splitlines(), key=len)
    assert list(scratch.iterdir()) == []  # the command removed its files
    assert "bench codecs: [1/" in result.stderr  # progress on stderr, not in the report
    table, picks = parse_table(text)
    measured = {(row["impl"], row["compress"]) for row in table}
    expected = {("joblite", "0")} | {
        ("joblite", repr((name, level))) for name in AVAILABLE for level in codecs.LEVELS[name]
    }
    expected |= {("joblib", "('zlib', 3)"), ("joblib", "('lz4', 3)")}
    assert measured == expected
    assert len(table) == len(expected)
    # the ratios printed are those of the file sizes printed
    reference = next(row for row in table if row["compress"] == "0")
    assert reference["ratio"] == 1.0
    for row in table:
        assert row["ratio"] == pytest.approx(reference["file_bytes"] / row["file_bytes"], abs=0.006)
    assert all(row["mark"] == " " for row in table if row["impl"] == "joblib")  # never marked
    assert "!" not in {row["mark"] for row in table}  # every round trip gave the array back
    # the recommendations are rows of the table, Pareto-optimal, with the figures printed there
    assert set(picks) == {"speed", "size", "balance"}
    joblite_rows = {row["compress"]: row for row in table if row["impl"] == "joblite"}
    for name, (compress, ratio, write, read) in picks.items():
        row = joblite_rows[compress]
        assert row["mark"] == "*", (name, row)
        assert (float(ratio), float(write), float(read)) == (row["ratio"], row["write"], row["read"])
    # small ints compress: the picks shrink the file, and "size" has the highest ratio of joblite's
    assert all(joblite_rows[pick[0]]["file_bytes"] < reference["file_bytes"] for pick in picks.values())
    assert joblite_rows[picks["size"][0]]["file_bytes"] == min(row["file_bytes"] for row in joblite_rows.values())


def _best(seconds):
    return min(seconds)


def test_the_json_document_of_a_joblite_file_keeps_its_schema_and_its_rules(files, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # --json and --tmpdir given to `bench`, before the tool, work as well
    result = run_codecs(tmp_path, files["smooth.jl"], "--repeat", "2", bench_args=("--json", "--tmpdir", str(scratch)))
    assert result.returncode == 0, result.stderr
    assert list(scratch.iterdir()) == []
    report = json.loads(result.stdout)
    assert list(report) == [
        "schema",
        "path",
        "object",
        "raw_bytes",
        "repeat",
        "balance_factor",
        "machine",
        "settings",
        "recommendations",
        "notes",
    ]
    assert report["schema"] == codecs.SCHEMA == "joblite.bench.codecs/1"
    assert report["path"] == files["smooth.jl"] and report["object"] == "numpy.ndarray float64 (12000,)"
    assert report["repeat"] == 2 and report["machine"]["joblite"] == joblite.__version__
    settings = report["settings"]
    assert {s["codec"] for s in settings if s["impl"] == "joblite"} == {None, *AVAILABLE}
    assert [s["compress"] for s in settings if s["impl"] == "joblib"] == ["('zlib', 3)", "('lz4', 3)"]
    reference = settings[0]
    assert (reference["compress"], reference["impl"]) == ("0", "joblite")
    assert report["raw_bytes"] == reference["file_bytes"] > 12_000 * 8
    for s in settings:
        assert s["round_trip"] is True
        assert len(s["write_seconds"]) == len(s["read_seconds"]) == 2
        assert s["ratio"] == pytest.approx(report["raw_bytes"] / s["file_bytes"])
        assert s["write_mb_per_s"] == pytest.approx(report["raw_bytes"] / _best(s["write_seconds"]) / 1e6)
        assert s["read_mb_per_s_median"] == pytest.approx(report["raw_bytes"] / np.median(s["read_seconds"]) / 1e6)
    # The rules, applied here to the figures of the document, pick what the command picked.
    mine = [s for s in settings if s["impl"] == "joblite"]

    def key(s):
        return (s["file_bytes"], _best(s["write_seconds"]), _best(s["read_seconds"]))

    def dominated(s):
        return any(all(a <= b for a, b in zip(key(o), key(s))) and key(o) != key(s) for o in mine)

    assert [s["pareto"] for s in settings] == [s["impl"] == "joblite" and not dominated(s) for s in settings]

    def combined(s):
        return _best(s["write_seconds"]) + _best(s["read_seconds"])

    shrinking = [s for s in mine if s["codec"] is not None and s["file_bytes"] < reference["file_bytes"]]
    assert shrinking  # a random walk in float64 shrinks a little, at least with the shuffle
    speed = min(shrinking, key=lambda s: (combined(s), s["file_bytes"]))
    size = min(shrinking, key=lambda s: (s["file_bytes"], combined(s)))
    balance = min(
        (s for s in shrinking if combined(s) <= report["balance_factor"] * combined(speed)),
        key=lambda s: (s["file_bytes"], combined(s)),
    )
    picks = report["recommendations"]
    assert {name: settings[pick["index"]]["compress"] for name, pick in picks.items()} == {
        name: pick["compress"] for name, pick in picks.items()
    }
    assert [settings[picks[name]["index"]] for name in ("speed", "size", "balance")] == [speed, size, balance]
    assert all(settings[pick["index"]]["pareto"] for pick in picks.values())


def test_a_joblib_dict_of_arrays_in_process_with_markdown_and_chosen_codecs(files, tmp_path, capsys):
    status = cli_main(["bench", "codecs", files["run.joblib"], "--repeat", "1", "--codec", "zlib", "--codec", "lz4"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    table, picks = parse_table(captured.out)
    assert "object: dict of 3 items" in captured.out
    assert {row["compress"] for row in table if row["impl"] == "joblite"} == {
        "0",
        *(f"('zlib', {level})" for level in codecs.LEVELS["zlib"]),
        *(f"('lz4', {level})" for level in codecs.LEVELS["lz4"]),
    }
    assert {row["compress"] for row in table if row["impl"] == "joblib"} == {"('zlib', 3)", "('lz4', 3)"}
    assert set(picks) == {"speed", "size", "balance"}
    # --markdown, given to `bench` before the tool: a Markdown table of the same rows
    status = cli_main(["bench", "--markdown", "codecs", files["run.joblib"], "--repeat", "1", "--codec", "bz2"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[2].startswith("| Pareto | compress= | by |")
    assert sum(line.startswith("| ") and "`('bz2', " in line for line in lines) == len(codecs.LEVELS["bz2"])
    assert sum(line.startswith("- **") for line in lines) == 3


def test_a_load_that_gives_back_another_object_is_flagged_and_fails_the_command(files, monkeypatch, capsys):
    joblib = pytest.importorskip("joblib")

    def lossy_joblib():  # joblib's rows, with a load that drops an element
        return (lambda value, path, compress: joblib.dump(value, path, compress=compress)), (
            lambda path: joblib.load(path)[:-1]
        )

    monkeypatch.setattr(codecs, "_joblib_io", lossy_joblib)
    status = cli_main(["bench", "codecs", files["ints.npy"], "--repeat", "2", "--codec", "zlib"])
    out = capsys.readouterr().out
    assert status == 1
    table, picks = parse_table(out)
    assert {row["compress"]: row["mark"] for row in table if row["impl"] == "joblib"} == {"('zlib', 3)": "!"}
    assert "!" not in {row["mark"] for row in table if row["impl"] == "joblite"}
    assert "note: joblib compress=('zlib', 3): the object loaded differs" in out
    assert set(picks) == {"speed", "size", "balance"}


@pytest.mark.parametrize("kind", ["not a joblite file", "missing", "folder"])
def test_a_file_the_command_cannot_load_is_named_without_a_traceback(files, tmp_path, kind):
    path = {
        "not a joblite file": files["notes.txt"],
        "missing": os.path.join(os.path.dirname(files["notes.txt"]), "gone.npy"),
        "folder": os.path.dirname(files["notes.txt"]),
    }[kind]
    result = run_codecs(tmp_path, path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert f"error: {path}: " in result.stderr
    why = {
        "not a joblite file": "neither a .npy file nor a file joblite.load reads",
        "missing": "No such file or directory",
        "folder": "Is a directory",
    }[kind]
    assert why in result.stderr


def test_bad_options_are_refused(files, tmp_path):
    result = run_codecs(tmp_path, files["ints.npy"], "--repeat", "0")
    assert result.returncode == 2 and "--repeat" in result.stderr and "'0'" in result.stderr
    result = run_codecs(tmp_path, files["ints.npy"], "--tmpdir", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "nowhere: not a folder" in result.stderr


def test_the_round_trip_check_sees_any_difference():
    base = np.array([0.0, 1.5, np.nan])
    assert codecs.same_object(base, base.copy())
    assert not codecs.same_object(base, base.astype(np.float32))
    assert not codecs.same_object(base, base.reshape(1, 3))
    assert not codecs.same_object(base, np.array([-0.0, 1.5, np.nan]))  # bits count, not ==
    assert not codecs.same_object(base, base.view(np.matrix))
    assert codecs.same_object({"a": [base, "x"], "b": float("nan")}, {"a": [base.copy(), "x"], "b": float("nan")})
    assert not codecs.same_object({"a": [base, "x"]}, {"a": (base, "x")})
    assert not codecs.same_object({"a": 1, "b": 2}, {"b": 2, "a": 1})  # key order is kept by a round trip
    big = np.zeros(3 << 20)  # 24 MiB, compared in slices: the last one counts too
    other = big.copy()
    other[-1] = 1.0
    assert codecs.same_object(big, big.copy()) and not codecs.same_object(big, other)
    objects = np.array([{"k": 1}, None], dtype=object)
    assert codecs.same_object(objects, np.array([{"k": 1}, None], dtype=object))
    assert not codecs.same_object(objects, np.array([{"k": 2}, None], dtype=object))


def _setting(impl, codec, level, file_bytes, write, read, round_trip=True):
    setting = codecs.Setting(impl, codec, level)
    setting.file_bytes, setting.write_seconds, setting.read_seconds = file_bytes, [write], [read]
    setting.round_trip = round_trip
    return setting


def test_the_recommendation_rules_on_known_figures():
    none = _setting("joblite", None, 0, 1000, 0.010, 0.010)
    fast = _setting("joblite", "lz4", 1, 500, 0.020, 0.010)  # 0.030 s
    dominated = _setting("joblite", "lz4", 4, 500, 0.050, 0.010)  # as small, slower
    mid = _setting("joblite", "zstd", 3, 300, 0.040, 0.015)  # 0.055 s: within 2x of 0.030
    slow = _setting("joblite", "xz", 6, 200, 0.500, 0.050)  # the smallest
    broken = _setting("joblite", "zlib", 9, 100, 0.001, 0.001, round_trip=False)  # never chosen
    joblib_row = _setting("joblib", "zlib", 3, 150, 0.002, 0.002)  # better, but for comparison only
    settings = [none, fast, dominated, mid, slow, broken, joblib_row]
    assert codecs.pareto_optimal(settings) == [none, fast, mid, slow]
    assert codecs.recommend(settings) == {"speed": fast, "size": slow, "balance": mid}
    assert codecs.recommend(settings, factor=20)["balance"] is slow
    # nothing shrinks the data: compress=0 for all three
    grown = [none, _setting("joblite", "lz4", 1, 1010, 0.011, 0.011)]
    assert set(codecs.recommend(grown).values()) == {none}
    with pytest.raises(ValueError, match="compress=0"):
        codecs.recommend([fast, slow])


def test_what_is_not_installed_is_left_out_with_a_note(monkeypatch):
    import importlib.util

    from joblite import compressors

    monkeypatch.delitem(compressors._COMPRESSORS, "zstd", raising=False)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "joblib" else find_spec(name, *a))
    report = codecs.measure(np.arange(5000) % 7, repeat=1, codecs=["zstd", "lz4"])
    assert [setting.compress for setting in report.settings] == ["0", "('lz4', 1)", "('lz4', 4)", "('lz4', 9)"]
    assert report.notes == [
        "codec 'zstd' is not available (pip install zstandard): no zstd rows",
        "joblib is not installed: no joblib rows to compare with",
    ]
    text = codecs.format_table(report)
    assert "note: joblib is not installed" in text and "joblib  " not in text
    assert report.recommendations["size"].codec == "lz4"
