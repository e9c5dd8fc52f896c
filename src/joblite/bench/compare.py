"""``python -m joblite bench --compare OLD.json [NEW.json]``: what changed between two runs.

Two runs of the bench are compared figure by figure: every ratio of a row
(``x joblib``, ``t / loop``...) that both runs measured for the same case and
implementation.  Ratios are compared, not times, because each ratio's
baseline was timed in the same run: two runs on different machines, or on a
busy and a quiet one, still compare.  The absolute figures
(:data:`ABSOLUTE`: microseconds per call, seconds...) are not compared.

A change is flagged only when it is beyond the spread the runs themselves
measured.  For a figure of case *c*, the noise of a run is the largest
relative spread ``max / min - 1`` of the measures of *c*'s rows in that run
(:attr:`~joblite.bench.report.Row.spread`); the tolerance is the sum of both
runs' noise, and never less than :data:`MIN_TOLERANCE`.  A change within the
tolerance is not flagged, even a real one: a figure whose measures spread
over 2x cannot show a 2x slowdown, and the table prints each tolerance.  A figure that got
worse by more than the tolerance (``old / new - 1`` for figures where higher
is better, ``new / old - 1`` for the others) is a regression; better by more
than it, an improvement.
"""

import dataclasses
import textwrap

__all__ = ["ABSOLUTE", "LOWER_IS_BETTER", "MIN_TOLERANCE", "Change", "compare_runs", "format_changes"]

#: The smallest tolerance.  On the project's shared 2-CPU machine, the figures of two
#: quick runs of one build, one after the other, differed by up to 1.36x even where both
#: runs' own measures agreed within 25% (tests/data/bench): less is not called a change.
MIN_TOLERANCE = 0.5

#: Ratio keys whose lower values are better (times, memory, bytes sent); higher is
#: better for the others (how many times faster, compression ratios).
LOWER_IS_BETTER = frozenset(
    {
        "time_vs_joblib",
        "time_vs_pickle",
        "time_vs_executor",
        "time_vs_loop",
        "time_vs_map",
        "ms",
        "us_per_call",
        "s",
        "us_per_entry",
        "vs_small_store",
        "peak_over_result",
        "mem_over_array",
        "total_mem_over_array",
        "arrived_mib",
        "copies_per_worker",
    }
)


#: Figures in absolute units, which depend on the machine and its load as much as on the
#: code: left out of the comparison.
ABSOLUTE = frozenset({"ms", "us_per_call", "s", "us_per_entry", "arrived_mib"})


@dataclasses.dataclass
class Change:
    """One figure measured by both runs.

    Attributes
    ----------
    section, name, impl : str
        The row's section, case and implementation.
    key : str
        The ratio key (see the report's key to the columns).
    old, new : float
        The figure in each run.
    change : float
        ``new / old``.
    tolerance : float
        Relative change within which the two runs' spread explains it.
    verdict : str
        ``'regressed'``, ``'improved'`` or ``'same'`` (within the tolerance).
    """

    section: str
    name: str
    impl: str
    key: str
    old: float
    new: float
    change: float
    tolerance: float
    verdict: str


def _noise(rows):
    """Largest relative spread ``max / min - 1`` among `rows`; 0 when none kept its measures."""
    spreads = [row.spread[2] / row.spread[0] - 1 for row in rows if row.spread and row.spread[0] > 0]
    return max(spreads, default=0.0)


def compare_runs(old_rows, new_rows):
    """Every figure both runs measured, and whether it changed beyond their spread.

    Parameters
    ----------
    old_rows, new_rows : list of Row
        The rows of each run (:func:`~joblite.bench.report.rows_from_json`).

    Returns
    -------
    list of Change
        In the order of `new_rows`, then of the figures' keys.
    """
    old_by_row = {(row.section, row.name, row.impl): row for row in old_rows}
    old_cases, new_cases = {}, {}
    for rows, cases in ((old_rows, old_cases), (new_rows, new_cases)):
        for row in rows:
            cases.setdefault((row.section, row.name), []).append(row)
    changes = []
    for row in new_rows:
        before = old_by_row.get((row.section, row.name, row.impl))
        if before is None:
            continue
        case = (row.section, row.name)
        tolerance = max(MIN_TOLERANCE, _noise(old_cases[case]) + _noise(new_cases[case]))
        for key, new in row.ratios.items():
            if key in ABSOLUTE:
                continue
            old = before.ratios.get(key)
            if old is None or new is None or old <= 0 or new <= 0:
                continue
            worse = new / old - 1 if key in LOWER_IS_BETTER else old / new - 1
            better = old / new - 1 if key in LOWER_IS_BETTER else new / old - 1
            verdict = "regressed" if worse > tolerance else ("improved" if better > tolerance else "same")
            changes.append(Change(row.section, row.name, row.impl, key, old, new, new / old, tolerance, verdict))
    return changes


def format_changes(changes, facts, width=100):
    """The comparison as text that fits `width` columns.

    Parameters
    ----------
    changes : list of Change
        From :func:`compare_runs`.
    facts : dict
        The new run's machine facts (names the twin measured).
    width : int, default 100
        Columns of the terminal.

    Returns
    -------
    str
        A summary line, then per section a table: case, implementation,
        figure, old and new values, the change, the tolerance and the
        verdict (``REGRESSED``, ``better`` or nothing).
    """
    from .report import _RATIO_COLUMNS, _impl_label, _sections, layout_table

    titles = {key: title for key, title, _ in _RATIO_COLUMNS}
    regressed = sum(change.verdict == "regressed" for change in changes)
    improved = sum(change.verdict == "improved" for change in changes)
    lines = [
        f"{len(changes)} figures in both runs: {regressed} regressed, {improved} improved, "
        f"{len(changes) - regressed - improved} within the runs' spread"
    ]
    for section, members in _sections(changes):
        cells, previous = [], None
        for change in members:
            cells.append(
                [
                    change.name if change.name != previous else "",
                    _impl_label(change.impl, facts),
                    titles.get(change.key, change.key),
                    f"{change.old:.3g}",
                    f"{change.new:.3g}",
                    f"x{change.change:.2f}",
                    f"±{change.tolerance:.0%}",
                    {"regressed": "REGRESSED", "improved": "better"}.get(change.verdict, ""),
                ]
            )
            previous = change.name
        header = ["case", "impl", "figure", "old", "new", "change", "spread", ""]
        lines += ["", f"[{section}]"] + layout_table(header, cells, width, left={1, 2, 7})
    lines += [
        "",
        "change: new over old; spread: the change the two runs' own spread explains (both runs' largest "
        f"max/min - 1 among the case's measures, at least {MIN_TOLERANCE:.0%}); REGRESSED: worse beyond it.",
    ]
    return "\n".join(lines[:-1] + textwrap.wrap(lines[-1], width, subsequent_indent="  "))
