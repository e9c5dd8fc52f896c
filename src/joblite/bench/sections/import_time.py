"""Section ``import``: the time of ``import joblite`` against ``import joblib``, in fresh interpreters."""

import subprocess
import sys
import time

from ..children import child_environment
from ..report import Row, progress, ratio

__all__ = ["import_seconds", "import_section"]

SECTION = "import"


def import_seconds(statements, repeat=5):
    """Best wall time of ``python -c statement`` in fresh interpreters.

    The statements are run in turn, round after round, so that a slow
    period of the machine affects them all alike.  The interpreters have
    the environment of the benchmark's fresh processes
    (:func:`~joblite.bench.children.child_environment`): ``import joblite``
    imports the joblite measured by the other sections.

    Parameters
    ----------
    statements : list of str
        Python code, e.g. ``['pass', 'import joblite']``: what is timed.
    repeat : int, default 5
        Number of rounds; the fastest run of each statement counts.

    Returns
    -------
    list of float or None
        Seconds per statement, including interpreter start-up; ``None`` for
        a statement that fails (e.g. the module is not installed).
    """
    env = child_environment()
    best = [float("inf")] * len(statements)
    for _ in range(repeat):
        for i, statement in enumerate(statements):
            if best[i] is None:
                continue
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", statement], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            elapsed = time.perf_counter() - start
            best[i] = None if result.returncode else min(best[i], elapsed)
    return best


def import_section(context):
    """Time ``import joblite`` against ``import joblib`` in fresh processes.

    Each figure is the best wall time of ``python -c "import ..."`` minus the
    best time of ``python -c pass`` (interpreter start-up), over interleaved
    rounds.

    Parameters
    ----------
    context : joblite.bench.sections.Context
        ``quick``: fewer rounds (5 instead of 15); writes no file.

    Returns
    -------
    list of Row
        ``joblite`` carries ``time_vs_joblib``: its import time over joblib's
        (lower is better; the goal is at most 0.2).
    """
    progress("import: timing fresh interpreters")
    impls = ["joblite", "joblib"]
    startup, *totals = import_seconds(["pass"] + [f"import {m}" for m in impls], repeat=5 if context.quick else 15)
    rows = []
    for impl, total in zip(impls, totals):
        seconds = None if total is None else max(total - startup, 0.0)
        rows.append(Row(SECTION, f"import {impl}", impl, seconds, note="" if total is not None else "not installed"))
    rows[0].ratios["time_vs_joblib"] = ratio(rows[0].seconds, rows[1].seconds)
    if rows[0].ratios["time_vs_joblib"] is not None:
        rows[0].targets = {"time_vs_joblib": -0.2}
    rows.append(Row(SECTION, "interpreter start-up (subtracted)", "python", startup))
    return rows
