"""The main job, ``python -m joblite bench`` (joblite.bench.cli), runs and reports figures with their baselines."""

import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

import joblite

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel (with the twin it reports).
pytestmark = pytest.mark.twin_independent

# Memmap folders of joblite's Parallel: joblite_memmapping_<pid>@<host>_<random>.
MEMMAP_PREFIX = "joblite_memmapping_"


def run_bench(cwd, *args, as_json=True):
    # Run from elsewhere than the checkout, so that `-m joblite` finds the installed package.
    result = subprocess.run(
        [sys.executable, "-m", "joblite", "bench", "--quick", *args] + (["--json"] if as_json else []),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if as_json else result.stdout


def memmap_folders():
    """joblite's memmap folders in the places Parallel puts them by default."""
    found = set()
    for parent in {"/dev/shm", tempfile.gettempdir()}:
        if os.path.isdir(parent):
            found |= {os.path.join(parent, name) for name in os.listdir(parent) if name.startswith(MEMMAP_PREFIX)}
    return found


def owner_alive(folder):
    pid = os.path.basename(folder)[len(MEMMAP_PREFIX) :].split("@")[0]
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


@pytest.mark.parametrize("section", ["hashing", "persistence", "memory", "parallel"])
def test_quick_bench_reports_joblite_against_its_baselines(section, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    before = memmap_folders()
    report = run_bench(tmp_path, "--section", section, "--tmpdir", str(files))
    rows = [row for row in report["rows"] if row["section"] == section]
    assert rows
    joblite_rows = [row for row in rows if row["impl"] == "joblite"]
    assert joblite_rows and all(row["seconds"] is None or row["seconds"] > 0 for row in rows)
    assert any(row["ratios"] for row in joblite_rows)  # ratios against a baseline of the same run
    assert "machine" in report
    assert list(files.iterdir()) == []  # the benchmark removed its files
    # no memmap folder left behind by the benchmark's processes (other runs' live ones are fine)
    assert [folder for folder in memmap_folders() - before if not owner_alive(folder)] == []
    if section == "parallel":
        # every goal of the issues has its figure, measured against a baseline of the same run:
        # four from the issue on Parallel, four on trivial and light tasks (issue 13)
        targeted = [row for row in joblite_rows if row["targets"]]
        assert len(targeted) == 8
        assert sum("trivial" in row["name"] or "light" in row["name"] for row in targeted) == 4
        for row in targeted:
            assert all(row["ratios"].get(key) is not None for key in row["targets"]), row
        impls = {row["impl"] for row in rows}
        assert {"joblite", "joblib", "executor", "loop"} <= impls


def test_bench_rejects_an_unknown_section(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "joblite", "bench", "--section", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "nope" in result.stderr


MACHINE_KEYS = [
    "cpu_count",
    "usable_cpus",
    "platform",
    "processor",
    "python",
    "python_implementation",
    "numpy",
    "joblite",
    "joblite_with_ext",
    "joblite_twins",
    "joblib",
    "dask",
    "xxhash",
]
ROW_KEYS = [
    "section",
    "name",
    "impl",
    "seconds",
    "nbytes",
    "gib_per_s",
    "ratios",
    "targets",
    "note",
    "spread",
    "meets_targets",
]
IMPORT_CASES = [
    ("import joblite", "joblite"),
    ("import joblib", "joblib"),
    ("interpreter start-up (subtracted)", "python"),
]


def test_the_json_document_keeps_its_schema(tmp_path):
    # The cheapest section; what tools reading the JSON rely on, key by key.
    report = run_bench(tmp_path, "--section", "import")
    assert list(report) == ["schema", "machine", "rows"]
    assert report["schema"] == "joblite.bench/1"
    assert list(report["machine"]) == MACHINE_KEYS
    assert report["machine"]["joblite_with_ext"] == joblite.__with_ext__  # the twin of this run
    rows = report["rows"]
    assert [list(row) for row in rows] == [ROW_KEYS] * 3
    assert [(row["section"], row["name"], row["impl"]) for row in rows] == [
        ("import", name, impl) for name, impl in IMPORT_CASES
    ]
    assert all(isinstance(row["seconds"], float) and row["seconds"] >= 0 for row in rows)
    assert list(rows[0]["ratios"]) == ["time_vs_joblib"]
    assert rows[0]["targets"] == {"time_vs_joblib": -0.2}
    assert isinstance(rows[0]["meets_targets"], bool)
    assert all(row["nbytes"] is None and row["gib_per_s"] is None and row["note"] == "" for row in rows)


def test_the_table_keeps_its_layout(tmp_path):
    lines = run_bench(tmp_path, "--section", "import", as_json=False).splitlines()
    assert lines[0].startswith("machine: ") and lines[1].startswith("python ")
    assert lines[2].startswith("joblite ") and lines[3] == ""
    assert re.fullmatch(r"\[import\] [01] of 1 targets met(, 1 MISSED)?", lines[4]), lines[4]
    # one table per section, with only the columns it uses: the import section has no GiB/s
    assert re.split(r"\s{2,}", lines[5]) == ["case", "impl", "time", "figure", "value", "target"]
    assert [re.split(r"\s{2,}", line)[0] for line in lines[6:9]] == [name for name, _ in IMPORT_CASES]
    assert lines[9:] == [
        "",
        "t / joblib: import time over joblib's, interpreter start-up subtracted (lower is better);",
        "target: the issues' goal for the row's figures and whether it is met (>= a minimum, <= a maximum).",
    ]
    assert max(len(line) for line in lines) <= 100


def test_the_markdown_report(tmp_path):
    text = run_bench(tmp_path, "--section", "import", "--markdown", as_json=False)
    assert text.startswith("- machine: ")
    assert "### import" in text
    assert "| case | impl | time | t / joblib | target |" in text
    # --json and --markdown are one choice
    result = subprocess.run(
        [sys.executable, "-m", "joblite", "bench", "--json", "--markdown"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


@pytest.mark.parametrize(
    "options, tool",
    [
        (["--compare=old.json"], ["codecs", "data.npy"]),
        (["--plot", "charts"], ["parallel", "math:sqrt", "--args", "4"]),
        (["--quick", "--section", "hashing"], ["codecs", "data.npy"]),
    ],
)
def test_the_sections_options_are_refused_by_the_tools_not_ignored(tmp_path, options, tool):
    result = subprocess.run(
        [sys.executable, "-m", "joblite", "bench", *options, *tool], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert f"bench {tool[0]}: " in result.stderr and "apply to the bench's sections" in result.stderr
    assert all(option.split("=")[0] in result.stderr for option in options if option.startswith("--"))
    assert not (tmp_path / "charts").exists()
