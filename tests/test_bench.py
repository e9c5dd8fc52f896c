"""The main job, ``python -m joblite bench``, runs and reports figures with their baselines."""
import json
import subprocess
import sys

import pytest


def run_bench(cwd, *args):
    # Run from elsewhere than the checkout, so that `-m joblite` finds the installed package.
    result = subprocess.run([sys.executable, "-m", "joblite", "bench", "--quick", "--json", *args],
                            capture_output=True, text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("section", ["hashing", "persistence", "memory"])
def test_quick_bench_reports_joblite_against_its_baselines(section, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    report = run_bench(tmp_path, "--section", section, "--tmpdir", str(files))
    rows = [row for row in report["rows"] if row["section"] == section]
    assert rows
    joblite_rows = [row for row in rows if row["impl"] == "joblite"]
    assert joblite_rows and all(row["seconds"] is None or row["seconds"] > 0 for row in rows)
    assert any(row["ratios"] for row in joblite_rows)  # ratios against a baseline of the same run
    assert "machine" in report
    assert list(files.iterdir()) == []  # the benchmark removed its files


def test_bench_rejects_an_unknown_section(tmp_path):
    result = subprocess.run([sys.executable, "-m", "joblite", "bench", "--section", "nope"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "nope" in result.stderr
