"""asv benchmarks of joblite, with joblib as the baseline.

Run from ``asv_benchmarks/``:

``asv run --quick --python=same --dry-run --show-stderr``
    Smoke run (CI): every benchmark once, against the joblite installed in
    the current interpreter, nothing saved.
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
