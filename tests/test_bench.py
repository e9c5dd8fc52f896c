"""The main job, ``python -m joblite bench``, runs and reports figures with their baselines."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

# Memmap folders of joblite's Parallel: joblite_memmapping_<pid>@<host>_<random>.
MEMMAP_PREFIX = "joblite_memmapping_"


def run_bench(cwd, *args):
    # Run from elsewhere than the checkout, so that `-m joblite` finds the installed package.
    result = subprocess.run([sys.executable, "-m", "joblite", "bench", "--quick", "--json", *args],
                            capture_output=True, text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def memmap_folders():
    """joblite's memmap folders in the places Parallel puts them by default."""
    found = set()
    for parent in {"/dev/shm", tempfile.gettempdir()}:
        if os.path.isdir(parent):
            found |= {os.path.join(parent, name) for name in os.listdir(parent)
                      if name.startswith(MEMMAP_PREFIX)}
    return found


def owner_alive(folder):
    pid = os.path.basename(folder)[len(MEMMAP_PREFIX):].split("@")[0]
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
        # every goal of the issue has its figure, measured against a baseline of the same run
        targeted = [row for row in joblite_rows if row["targets"]]
        assert len(targeted) == 4
        for row in targeted:
            assert all(row["ratios"].get(key) is not None for key in row["targets"]), row
        impls = {row["impl"] for row in rows}
        assert {"joblite", "joblib", "executor", "loop"} <= impls


def test_bench_rejects_an_unknown_section(tmp_path):
    result = subprocess.run([sys.executable, "-m", "joblite", "bench", "--section", "nope"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "nope" in result.stderr
