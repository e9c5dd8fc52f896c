"""``python -m joblite bench --compare``: changes between two recorded runs, weighed against their spread.

``tests/data/bench/run_a.json`` and ``run_b.json`` are two quick runs of the
same build, one after the other, on the project's 2-CPU machine (sections
hashing, parallel and import).  The slowed run is ``run_b`` with every time
of joblite's doubled and its figures recomputed: what a 2x slowdown of
joblite looks like, the baselines unchanged.
"""

import dataclasses
import json
import pathlib
import subprocess
import sys

import pytest

from joblite.bench.compare import LOWER_IS_BETTER, MIN_TOLERANCE, compare_runs, format_changes
from joblite.bench.report import WIDTH, rows_from_json, to_json

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent

DATA = pathlib.Path(__file__).resolve().parent / "data" / "bench"
RUN_A = DATA / "run_a.json"
RUN_B = DATA / "run_b.json"

# Figures that are not times: a slower joblite leaves them as they were.
NOT_TIMES = {"mem_over_array", "total_mem_over_array", "peak_over_result", "arrived_mib", "copies_per_worker"}


def read(path):
    return rows_from_json(path.read_text())


def slowed(rows, factor=2.0):
    """`rows` with joblite's times multiplied by `factor` and its figures recomputed."""
    out = []
    for row in rows:
        if row.impl != "joblite" or row.seconds is None:
            out.append(row)
            continue
        ratios = {}
        for key, value in row.ratios.items():
            if value is None or key in NOT_TIMES or key.startswith(("compression", "size")):
                ratios[key] = value
            else:
                ratios[key] = value * factor if key in LOWER_IS_BETTER else value / factor
        spread = [value * factor for value in row.spread] if row.spread else None
        out.append(dataclasses.replace(row, seconds=row.seconds * factor, ratios=ratios, spread=spread))
    return out


def run_compare(*paths, cwd):
    return subprocess.run(
        [sys.executable, "-m", "joblite", "bench", "--compare", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,  # elsewhere than the checkout: `-m joblite` finds the installed package
    )


def test_two_runs_of_the_same_build_compare_quietly(tmp_path):
    (old, _), (new, _) = read(RUN_A), read(RUN_B)
    changes = compare_runs(old, new)
    assert len(changes) > 40  # every figure of both runs: the comparison saw them
    assert [change for change in changes if change.verdict == "regressed"] == []
    result = run_compare(RUN_A, RUN_B, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 regressed" in result.stdout.splitlines()[0]


def test_a_2x_slowdown_of_joblite_is_caught(tmp_path):
    (old, _), (new, facts) = read(RUN_A), read(RUN_B)
    slow = slowed(new)
    changes = compare_runs(old, slow)
    timed = [c for c in changes if c.impl == "joblite" and c.key not in NOT_TIMES]
    flagged = [c for c in timed if c.verdict == "regressed"]
    # Most of joblite's figures are caught, in every section; the others spread over 2x
    # in one of the runs, which the table shows (their tolerance).
    assert len(flagged) > len(timed) / 2, [(c.name, c.key, c.change, c.tolerance) for c in timed]
    assert {c.section for c in flagged} == {"hashing", "parallel", "import"}
    assert not [c for c in changes if c.verdict == "improved"]
    # Through the command line, from two recorded files: exit status 1 and REGRESSED lines.
    slow_file = tmp_path / "slow.json"
    slow_file.write_text(to_json(slow, facts))
    result = run_compare(RUN_A, slow_file, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.endswith(" REGRESSED") for line in lines) == sum(c.verdict == "regressed" for c in changes)


def test_the_rule_flags_every_change_beyond_the_tolerance_and_nothing_within():
    """The same run slowed 2x: each timed figure changes by exactly 2x; its tolerance decides."""
    old, _ = read(RUN_A)
    for change in compare_runs(old, slowed(old)):
        if change.impl != "joblite" or change.key in NOT_TIMES:
            assert change.verdict == "same"
        else:
            assert change.verdict == ("regressed" if change.tolerance < 1.0 else "same"), change


def test_a_speedup_is_reported_as_better_not_as_a_regression():
    (old, _), (new, _) = read(RUN_A), read(RUN_B)
    changes = compare_runs(slowed(old), new)
    assert not [c for c in changes if c.verdict == "regressed"]
    assert sum(c.verdict == "improved" for c in changes) > 20


def test_the_tolerance_is_the_runs_own_spread_and_at_least_the_floor():
    (old, _), (new, _) = read(RUN_A), read(RUN_B)
    changes = compare_runs(old, new)
    assert min(c.tolerance for c in changes) == MIN_TOLERANCE
    assert max(c.tolerance for c in changes) > MIN_TOLERANCE  # some case was noisier than the floor


def test_the_comparison_fits_100_columns():
    (old, _), (new, facts) = read(RUN_A), read(RUN_B)
    text = format_changes(compare_runs(old, slowed(new)), facts)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "[hashing]" in text and "[parallel]" in text


def test_bad_compare_arguments_are_refused_with_a_message(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "a run"}))
    result = run_compare(RUN_A, bad, cwd=tmp_path)
    assert result.returncode == 2 and str(bad) in result.stderr and "Traceback" not in result.stderr
    result = run_compare(RUN_A, RUN_B, RUN_A, cwd=tmp_path)
    assert result.returncode == 2 and "OLD.json [NEW.json]" in result.stderr
    result = run_compare(tmp_path / "missing.json", RUN_B, cwd=tmp_path)
    assert result.returncode == 2 and "missing.json" in result.stderr


def test_one_recorded_run_is_compared_with_a_run_made_now(tmp_path):
    # The parallel section: its figures are ratios of two timed calls, defined however loaded the
    # machine is (the import section's start-up-subtracted figure can come out as 0 under load,
    # and a 0 is not compared).
    result = subprocess.run(
        [sys.executable, "-m", "joblite", "bench", "--quick", "--section", "parallel", "--compare", str(RUN_A)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode in (0, 1), result.stderr
    assert "[parallel]" in result.stdout and "x joblib" in result.stdout
    assert "figures in both runs" in result.stdout and "\n0 figures in both runs" not in "\n" + result.stdout
    assert "[parallel]" in result.stderr  # the new run's own report goes to stderr
