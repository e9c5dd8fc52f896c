"""The command line's dispatch, ``python -m joblite`` (:mod:`joblite.__main__`): building its parser is cheap.

Each command imports what it needs when it runs; asking for help builds every
parser, and must not import numpy or, through the store, the persistence code.
"""

import os
import subprocess
import sys

import pytest

import joblite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
# imported by a command when it runs, never to build the parser
HEAVY = [
    "numpy",
    "joblib",
    "joblite.persistence",
    "joblite._container",
    "joblite.store.local",
    "joblite.store.maintenance",
    "joblite.bench.report",
    "joblite.bench.workloads",
]


def run_joblite(*args):
    """Run ``python -X importtime -m joblite *args`` in a fresh process: its stdout and the modules it imported."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "joblite", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return proc.stdout, {line.rsplit("|", 1)[1].strip() for line in lines}


@pytest.mark.parametrize(
    "args, shown",
    [
        (["--help"], "cache"),
        (["bench", "--help"], "--section"),
        (["cache", "--help"], "verify"),
        (["cache", "ls", "--help"], "{name,size,age}"),
        (["cache", "verify", "--help"], "(default 600)"),
    ],
)
def test_help_imports_no_heavy_module(args, shown):
    out, modules = run_joblite(*args)
    assert shown in out
    assert {"joblite.bench.cli", "joblite.store.cli"} <= modules  # the parsers were built
    assert sorted(modules.intersection(HEAVY)) == []
