"""asv benchmarks of joblite, with joblib as the baseline.

Run from ``asv_benchmarks/``:

``JOBLITE_ASV_SMOKE=1 asv run --quick --python=same --dry-run --show-stderr --launch-method forkserver``
    Smoke run (CI): every benchmark once, against the joblite installed in
    the current interpreter, on data and task counts 1/16 of the sizes below
    (`scaled`), nothing saved.  It checks that every benchmark runs, not what
    it measures.
``asv run --python=same``
    Full figures for the installed joblite.
``asv run``
    Build joblite from the repository (``..``) in a fresh virtualenv and
    benchmark it; ``asv continuous`` / ``asv compare`` to compare commits.

Benchmarks parameterised by ``impl`` compare the compiled twin (``'ext'``),
the pure-Python twin (``'pure'``) and ``joblib`` on the same seeded data; an
implementation that is not available here is skipped (``NotImplementedError``
in ``setup``, asv's convention: :func:`available`).  The seeded data, the
implementations and the calls are those of ``python -m joblite bench``, from
:mod:`joblite.bench.workloads`.
"""

import os

#: Divisor of every data size and task count: 16 in CI's smoke run (``JOBLITE_ASV_SMOKE`` set to a
#: non-empty value other than ``0``), where the data's making and the baselines' slow codecs took
#: most of its eight minutes; 1 otherwise.
SCALE = 16 if os.environ.get("JOBLITE_ASV_SMOKE", "") not in ("", "0") else 1


def scaled(size):
    """`size` (bytes, items or tasks) divided by `SCALE`; at least 1."""
    return max(1, size // SCALE)


def available(value, impl):
    """`value`, what implementation `impl` of a benchmark needs; asv skips the benchmark when it is ``None``.

    Raises
    ------
    NotImplementedError
        If `value` is ``None``: `impl` is not available here (not installed,
        or a twin not built).
    """
    if value is None:
        raise NotImplementedError(f"{impl} is not available here (not installed, or not built)")
    return value
