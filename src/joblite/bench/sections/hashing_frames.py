"""Rows of the ``hashing`` section for pandas frames: one frame per column kind (issue 13, items 1 and 3)."""

import importlib.util

from ..report import Row, progress, ratio
from ..timing import best_times_in_turns

__all__ = ["FRAME_KINDS", "FRAME_SIZES", "FRAME_TARGETS", "frame_rows", "make_frame"]

SECTION = "hashing"

# Rows per frame; joblib pickles object strings one by one (about 3 s per
# million), so its calls stop at the budget after one call.
FRAME_SIZES = {
    "full": {"rows": 1_000_000, "repeat": 5, "budget": 1.0},
    "quick": {"rows": 200_000, "repeat": 3, "budget": 0.3},
}

# Goal from issue 13: pandas frames of every column kind >= 5x joblib.
FRAME_TARGETS = {"vs_joblib": 5}


#: The column kinds of :func:`make_frame`, in the order of the table.
FRAME_KINDS = (
    "numeric",
    "categorical",
    "string (object)",
    "string (str)",
    "string[pyarrow]",
    "datetime",
    "datetime tz",
    "Int64",
    "Float64",
    "boolean",
    "interval",
    "period",
    "sparse",
)


def make_frame(kind, rows):
    """A seeded pandas frame of one column kind, with a default ``RangeIndex``.

    Parameters
    ----------
    kind : str
        One of :data:`FRAME_KINDS`: numeric (float64 and int64 columns),
        categorical (1,000 string categories), strings as objects, as the
        default ``str`` dtype (Arrow-backed when pyarrow is installed) and as
        ``string[pyarrow]``, naive and tz-aware datetimes, nullable ``Int64``,
        ``Float64`` and ``boolean`` (10 % missing), intervals, periods and a
        sparse column (10 % stored).
    rows : int
        Rows of the frame.

    Returns
    -------
    pandas.DataFrame or None
        None for ``string[pyarrow]`` when pyarrow is not installed.

    Raises
    ------
    ValueError
        If `kind` is not one of :data:`FRAME_KINDS`.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(13)
    words = np.array([f"word{i:04d}" for i in range(1000)], dtype=object)
    picks = rng.integers(0, len(words), rows)
    ints = rng.integers(0, 1 << 40, rows)
    missing = rng.random(rows) < 0.1
    instants = pd.to_datetime(pd.Timestamp("2020-01-01").value + ints * 1000)
    columns = {
        "numeric": lambda: {"x": rng.random(rows), "n": ints},
        "categorical": lambda: {"c": pd.Categorical.from_codes(picks, categories=list(words))},
        "string (object)": lambda: {"s": pd.Series(words[picks], dtype=object)},
        "string (str)": lambda: {"s": pd.Series(words[picks], dtype="str")},
        "string[pyarrow]": lambda: {"s": pd.Series(words[picks], dtype="string[pyarrow]")},
        "datetime": lambda: {"t": instants},
        "datetime tz": lambda: {"t": instants.tz_localize("Europe/Paris")},
        "Int64": lambda: {"v": pd.arrays.IntegerArray(ints, missing)},
        "Float64": lambda: {"v": pd.arrays.FloatingArray(rng.random(rows), missing)},
        "boolean": lambda: {"v": pd.arrays.BooleanArray(ints % 2 == 0, missing)},
        "interval": lambda: {"v": pd.arrays.IntervalArray.from_arrays(ints, ints + 5)},
        "period": lambda: {"v": pd.period_range("2000-01-01", periods=rows, freq="D")},
        "sparse": lambda: {"v": pd.arrays.SparseArray(np.where(missing, ints, 0), fill_value=0)},
    }
    if kind not in columns:
        raise ValueError(f"unknown frame kind {kind!r}; expected one of {FRAME_KINDS}")
    if kind == "string[pyarrow]" and importlib.util.find_spec("pyarrow") is None:
        return None
    return pd.DataFrame(columns[kind]())


def frame_rows(context, impls):
    """Hash a pandas frame of each column kind with joblite, joblib and dask tokenize.

    The calls of a case take turns (best of several rounds), so that the
    ratios come from the same moments of the machine.

    Parameters
    ----------
    context : joblite.bench.sections.Context
        ``quick``: 200,000 rows instead of 1,000,000, fewer rounds.
    impls : dict of str to callable or None
        Hash functions by implementation (``'joblite'``, ``'joblib'``,
        ``'tokenize'``); None when not installed.

    Returns
    -------
    list of Row
        Per column kind (:data:`FRAME_KINDS`, :func:`make_frame`): joblite, with ratios
        ``vs_joblib`` and ``vs_tokenize`` and the target
        :data:`FRAME_TARGETS`, then each baseline.  No rows when pandas is
        not installed; a row with a note for a kind that needs pyarrow.
    """
    if importlib.util.find_spec("pandas") is None:
        return []
    sizes = context.sizes(FRAME_SIZES)
    rows = []
    progress("hashing: building the pandas frames")
    for kind in FRAME_KINDS:
        frame = make_frame(kind, sizes["rows"])
        if kind == "string (str)":
            kind = f"string (str, {frame.dtypes.iloc[0].storage} storage)"
        label = f"pandas frame, {kind} ({sizes['rows']:,} rows)"
        if frame is None:
            rows.append(Row(SECTION, label, "joblite", note="pyarrow not installed"))
            continue
        progress(f"  hashing: {label}")
        calls = {impl: (lambda func=func: func(frame)) for impl, func in impls.items() if func is not None}
        best = best_times_in_turns(calls, sizes["repeat"], sizes["budget"])
        case = {impl: Row(SECTION, label, impl, seconds) for impl, seconds in best.items()}
        joblite = case["joblite"]
        for base in ("joblib", "tokenize"):
            if base in case:
                joblite.ratios[f"vs_{base}"] = ratio(case[base].seconds, joblite.seconds)
        joblite.targets = dict(FRAME_TARGETS)
        rows.append(joblite)
        rows += [
            case[impl] if impl in case else Row(SECTION, label, impl, note="not installed")
            for impl in impls
            if impl != "joblite"
        ]
    return rows
