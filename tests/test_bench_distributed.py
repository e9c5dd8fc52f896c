"""``python -m joblite bench --section distributed``: joblite on dask against joblib's and plain dask."""

import json
import os
import subprocess
import sys

import pytest

import joblite
from joblite.bench import cli
from joblite.bench.sections.distributed import DISTRIBUTED_TARGETS

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent

pytest.importorskip("distributed")

IMPLS = ["joblite", "joblib", "client.map"]
# The cases of a --quick run, in order (sizes: DISTRIBUTED_SIZES['quick']).
CASES = [
    "200 tiny tasks, 2 dask workers",
    "5,000 tiny tasks, 2 dask workers",
    "64 tasks on one 16 MiB f64 array, 2 dask workers",
    "64 tasks on one 16 MiB f64 array, the same call again",
]


def test_the_section_is_named_but_not_in_the_default_run():
    assert "distributed" in cli.SECTIONS
    assert "distributed" not in cli.DEFAULT_SECTIONS
    assert cli.DEFAULT_SECTIONS == [name for name in cli.SECTIONS if name != "distributed"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One quick run of the section, as a user starts it, in a fresh interpreter."""
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(joblite.__file__))
    others = [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path]
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + others)
    command = [sys.executable, "-m", "joblite", "bench", "--quick", "--json", "--section", "distributed"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path_factory.mktemp("bench")
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_quick_run_gives_the_documented_rows(report):
    rows = report["rows"]
    assert [(row["section"], row["name"], row["impl"]) for row in rows] == [
        ("distributed", case, impl) for case in CASES for impl in IMPLS
    ]
    assert report["machine"]["joblite_with_ext"] == joblite.__with_ext__
    assert all(row["seconds"] > 0 for row in rows)
    joblite_rows = [row for row in rows if row["impl"] == "joblite"]
    # every goal of issue 11 has its figure, measured against a baseline of the same run
    for row in joblite_rows:
        assert row["targets"], row
        assert all(row["ratios"].get(key) is not None for key in row["targets"]), row
    if joblite.__with_ext__:
        assert [row["targets"] for row in joblite_rows] == [
            DISTRIBUTED_TARGETS[goal] for goal in ("tasks", "many tasks", "array argument", "repeated call")
        ]
    for row in rows[:6]:
        assert row["impl"] == "client.map" or row["ratios"]["time_vs_map"] > 0


def test_the_bytes_sent_are_counted_in_copies_of_the_array(report):
    rows = {(row["name"], row["impl"]): row for row in report["rows"]}
    first, again = CASES[2], CASES[3]
    for case in (first, again):
        for impl in IMPLS:
            ratios = rows[case, impl]["ratios"]
            assert ratios["copies_per_worker"] == pytest.approx(ratios["arrived_mib"] / (16 * 2), rel=1e-6)
    # plain dask scatters the array to one worker and the other copies it: one copy per worker, every call
    assert rows[first, "client.map"]["ratios"]["copies_per_worker"] == pytest.approx(1.0, rel=0.01)
    assert rows[again, "client.map"]["ratios"]["copies_per_worker"] == pytest.approx(1.0, rel=0.01)
    # joblite sends the array once, at most a copy per worker, and nothing when it is already there
    assert 0.5 * 0.99 <= rows[first, "joblite"]["ratios"]["copies_per_worker"] <= 1.01
    assert rows[again, "joblite"]["ratios"]["copies_per_worker"] == 0
    # joblib sends it again
    assert rows[again, "joblib"]["ratios"]["copies_per_worker"] >= 0.5 * 0.99
