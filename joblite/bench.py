"""The main job: ``python -m joblite bench``, joblite against its baselines.

The benchmark is made of *sections*, registered by name in :data:`SECTIONS`.
Each section is a function ``section(quick) -> list of Row`` that builds a
real, seeded workload, times joblite and its baselines on it in the same run,
and returns one :class:`Row` per (case, implementation), with the ratios that
matter already computed.  :func:`run` runs the sections and prints either a
table or one JSON document.

Figures are ratios against baselines measured in the same process and run
(see ``DESIGN.md``): absolute times depend on the machine, ratios much less.

Nothing here imports numpy, joblib or dask at module import time; each
section imports what it needs when it runs.
"""
import dataclasses
import gc
import json
import os
import platform
import subprocess
import sys
import time
from typing import Optional

__all__ = ["Row", "SECTIONS", "best_time", "per_call_time", "run", "main"]

GIB = float(1 << 30)


@dataclasses.dataclass
class Row:
    """One measurement: a case timed with one implementation.

    Attributes
    ----------
    section : str
        Name of the section that produced the row, e.g. ``'hashing'``.
    name : str
        The case, e.g. ``'array 512 MiB, C order'``.
    impl : str
        The implementation timed, e.g. ``'joblite'``, ``'joblib'``.
    seconds : float or None
        Best time of one call, in seconds; ``None`` when the implementation is
        not available (the table prints ``-``).
    nbytes : int or None
        Bytes of array data processed by one call, for throughput figures.
    gib_per_s : float or None
        ``nbytes / seconds`` in GiB/s (GiB = 2**30 bytes), when `nbytes` is set.
    ratios : dict of str to float
        Figures relative to baselines of the same run, e.g. ``'vs_joblib'``:
        how many times faster than ``joblib.hash``.
    targets : dict of str to float
        Goals from the issue for some ratios: a positive value is a minimum
        (the ratio must be at least that), a negative value ``-x`` a maximum
        (the ratio or time must be at most ``x``).
    note : str
        Free text, e.g. why an implementation is missing.
    """

    section: str
    name: str
    impl: str
    seconds: Optional[float] = None
    nbytes: Optional[int] = None
    gib_per_s: Optional[float] = None
    ratios: dict = dataclasses.field(default_factory=dict)
    targets: dict = dataclasses.field(default_factory=dict)
    note: str = ""

    def meets_targets(self):
        """Whether every ratio with a target reaches it.

        Returns
        -------
        bool or None
            ``None`` when the row has no target or a targeted ratio is missing.
        """
        if not self.targets:
            return None
        for key, goal in self.targets.items():
            value = self.ratios.get(key)
            if value is None:
                return None
            if (goal >= 0 and value < goal) or (goal < 0 and value > -goal):
                return False
        return True


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------

def best_time(func, repeat=3, budget=None):
    """Best wall time of ``func()`` over up to `repeat` calls.

    Parameters
    ----------
    func : callable
        Called with no arguments.
    repeat : int, default 3
        Maximum number of calls.
    budget : float, optional
        Time budget in seconds: no further call is started once the calls so
        far took longer than this.  At least one call is always made.

    Returns
    -------
    float
        The shortest call, in seconds (``time.perf_counter``).
    """
    best = float("inf")
    spent = 0.0
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        func()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        if budget is not None and spent > budget:
            break
    return best


def per_call_time(func, repeat=5, target=0.1):
    """Best time per call of a fast ``func()``, measured over many calls.

    Parameters
    ----------
    func : callable
        Called with no arguments.
    repeat : int, default 5
        Number of timed loops; the best loop counts.
    target : float, default 0.1
        Wanted duration of one loop in seconds; the number of calls per loop
        is calibrated to reach it.

    Returns
    -------
    float
        Seconds per call.
    """
    number = 1
    while True:
        elapsed = _time_loop(func, number)
        if elapsed >= target / 10 or number >= 10**7:
            break
        number *= 10
    number = max(1, int(number * target / max(elapsed, 1e-9)))
    return min(_time_loop(func, number) for _ in range(repeat)) / number


def _time_loop(func, number):
    start = time.perf_counter()
    for _ in range(number):
        func()
    return time.perf_counter() - start


def _gib_per_s(nbytes, seconds):
    if nbytes is None or not seconds:
        return None
    return nbytes / GIB / seconds


def _ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _progress(message):
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# hashing section
# --------------------------------------------------------------------------

# Sizes of the hashing workload; 'quick' runs in a few seconds (its array,
# 64 MiB, is still larger than CPU caches, so a.sum() reads from memory).
HASHING_SIZES = {
    "full": {"shape": (8192, 8192), "dicts": 100_000, "floats": 1_000_000,
             "str_int": 100_000, "repeat": 3, "budget": 2.0},
    "quick": {"shape": (4096, 2048), "dicts": 10_000, "floats": 100_000,
              "str_int": 10_000, "repeat": 2, "budget": 0.5},
}

SMALL_ARGS = ((1, 2.0, "abc"), {"x": 3})

# Goals from issue 2 ("Must reach"); see Row.targets for the sign convention.
HASHING_TARGETS = {
    "array C order": {"vs_joblib": 15, "vs_memory_read": 0.8},
    "array F order": {"vs_joblib": 5},
    "array strided a[::2]": {"vs_joblib": 5},
    "list of dicts": {"vs_joblib": 15, "vs_tokenize": 5},
    "list of floats": {"vs_joblib": 15, "vs_tokenize": 5},
    "dict str->int": {"vs_joblib": 15, "vs_tokenize": 5},
    "small args": {"us_per_call": -2.0},
}
PURE_TARGETS = {"vs_joblib": 1.0}


def hashing_baselines():
    """The hash functions to compare, by implementation name.

    Returns
    -------
    dict of str to callable or None
        ``'joblite'`` (the active twin), ``'joblib'`` (``joblib.hash``, md5)
        and ``'tokenize'`` (``dask.base.tokenize``); ``None`` for a baseline
        that is not installed.
    """
    import joblite

    return {
        "joblite": joblite.hash,
        "joblib": _optional_attr("joblib", "hash"),
        "tokenize": _optional_attr("dask.base", "tokenize"),
    }


def _optional_attr(module_name, attr):
    import importlib

    try:
        return getattr(importlib.import_module(module_name), attr)
    except ImportError:
        return None


def _pure_hash():
    from joblite.hashing import hash_with_twin

    return lambda obj: hash_with_twin("pure", obj)


def make_hashing_workload(sizes):
    """Build the seeded objects of the hashing section.

    Parameters
    ----------
    sizes : dict
        One entry of :data:`HASHING_SIZES`.

    Returns
    -------
    dict
        ``'arrays'``: list of (case name, array); ``'objects'``: list of
        (case name, object).  The arrays are a C-ordered float64 array
        ``a`` of `sizes['shape']`, its F-ordered copy and the view
        ``a[::2]``; the objects a list of small dicts, a list of floats and
        a dict of str to int.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random(sizes["shape"])
    arrays = [
        ("array C order", a),
        ("array F order", np.asfortranarray(a)),
        ("array strided a[::2]", a[::2]),
    ]
    n = sizes["dicts"]
    scores = rng.random(n).tolist()
    dicts = [{"id": i, "name": f"item{i}", "score": scores[i], "tags": ["a", "b"]}
             for i in range(n)]
    floats = rng.random(sizes["floats"]).tolist()
    keys = rng.integers(0, 2**62, sizes["str_int"]).tolist()
    str_int = {f"key{k:x}": i for i, k in enumerate(keys)}
    objects = [
        ("list of dicts", dicts),
        ("list of floats", floats),
        ("dict str->int", str_int),
    ]
    return {"arrays": arrays, "objects": objects}


def memory_read_row(a, sizes):
    """Time ``a.sum()``, the machine's memory-read throughput.

    Parameters
    ----------
    a : numpy.ndarray
        The contiguous float64 array of the workload.
    sizes : dict
        Repeats, from :data:`HASHING_SIZES`.

    Returns
    -------
    Row
        Implementation ``'numpy'``, with GiB/s; the reference of the
        ``vs_memory_read`` ratios.
    """
    seconds = best_time(a.sum, repeat=2 * sizes["repeat"] + 1)
    return Row("hashing", "memory read a.sum()", "numpy", seconds, a.nbytes,
               _gib_per_s(a.nbytes, seconds))


def time_case(name, obj, impls, sizes, nbytes=None, target_key=None):
    """Time one object with each implementation and compute the ratios.

    Parameters
    ----------
    name : str
        Case name printed in the table.
    obj : object
        What is hashed.
    impls : dict of str to callable or None
        From :func:`hashing_baselines`, optionally with ``'pure'``.
    sizes : dict
        Repeats and time budget, from :data:`HASHING_SIZES`.
    nbytes : int, optional
        Array bytes, for GiB/s.
    target_key : str, optional
        Key into :data:`HASHING_TARGETS`.

    Returns
    -------
    list of Row
        One per implementation, joblite first.
    """
    rows = []
    for impl, func in impls.items():
        if func is None:
            rows.append(Row("hashing", name, impl, note="not installed"))
            continue
        _progress(f"  hashing: {name} with {impl}")
        # joblite is fast: more repeats; baselines are slow: stop at the budget.
        repeat = sizes["repeat"] + 2 if impl == "joblite" else sizes["repeat"]
        seconds = best_time(lambda: func(obj), repeat, sizes["budget"])
        rows.append(Row("hashing", name, impl, seconds, nbytes,
                        _gib_per_s(nbytes, seconds)))
    _add_hashing_ratios(rows, HASHING_TARGETS.get(target_key or name, {}))
    return rows


def _add_hashing_ratios(rows, targets):
    by_impl = {row.impl: row for row in rows}
    for impl in ("joblite", "pure"):
        row = by_impl.get(impl)
        if row is None or row.seconds is None:
            continue
        for base in ("joblib", "tokenize"):
            if base in by_impl:
                row.ratios[f"vs_{base}"] = _ratio(by_impl[base].seconds, row.seconds)
        row.targets = dict(targets if impl == "joblite" else PURE_TARGETS)


def small_args_rows(impls):
    """Time the small argument tuple ``((1, 2.0, 'abc'), {'x': 3})`` per call.

    Parameters
    ----------
    impls : dict of str to callable or None
        From :func:`hashing_baselines`.

    Returns
    -------
    list of Row
        ``seconds`` is the time of one call; joblite's row carries
        ``us_per_call`` and the speed-ups.
    """
    rows = []
    for impl, func in impls.items():
        if func is None:
            rows.append(Row("hashing", "small args", impl, note="not installed"))
            continue
        _progress(f"  hashing: small args with {impl}")
        seconds = per_call_time(lambda: func(SMALL_ARGS))
        rows.append(Row("hashing", "small args", impl, seconds,
                        ratios={"us_per_call": seconds * 1e6}))
    _add_hashing_ratios(rows, HASHING_TARGETS["small args"])
    return rows


def hashing_section(quick=False):
    """Hash a real, seeded workload with joblite, joblib and dask tokenize.

    The workload (sizes for the default run; ``quick`` uses smaller ones):
    a 512 MiB float64 array ``a`` of shape (8192, 8192), its F-ordered copy,
    the strided view ``a[::2]``, a list of 100,000 small dicts, a list of
    1,000,000 floats, a dict of 100,000 str to int, and the small argument
    tuple ``((1, 2.0, 'abc'), {'x': 3})`` (time per call).  The pure-Python
    twin is also timed on the arrays, and ``a.sum()`` gives the machine's
    memory-read throughput in the same run.

    Parameters
    ----------
    quick : bool, default False
        Small sizes and fewer repeats, to run in a few seconds.

    Returns
    -------
    list of Row
        Ratios: ``vs_joblib`` and ``vs_tokenize`` (times faster than the
        baseline), ``vs_memory_read`` (joblite GiB/s over ``a.sum()`` GiB/s)
        and ``us_per_call`` for the small arguments.
    """
    sizes = HASHING_SIZES["quick" if quick else "full"]
    impls = hashing_baselines()
    _progress("hashing: building the workload")
    workload = make_hashing_workload(sizes)
    a = workload["arrays"][0][1]
    memory = memory_read_row(a, sizes)
    rows = [memory]
    array_impls = {"joblite": impls["joblite"], "pure": _pure_hash(),
                   "joblib": impls["joblib"], "tokenize": impls["tokenize"]}
    for name, array in workload["arrays"]:
        label = f"{name} ({array.nbytes >> 20} MiB)"
        case = time_case(label, array, array_impls, sizes, array.nbytes, name)
        case[0].ratios["vs_memory_read"] = _ratio(case[0].gib_per_s, memory.gib_per_s)
        rows += case
    del workload["arrays"], a, array  # free the arrays before the next cases
    gc.collect()
    for name, obj in workload["objects"]:
        rows += time_case(f"{name} ({len(obj):,})", obj, impls, sizes, target_key=name)
    rows += small_args_rows(impls)
    if not _with_ext():
        _judge_as_pure_twin(rows)
    return rows


def _with_ext():
    import joblite

    return bool(joblite.__with_ext__)


def _judge_as_pure_twin(rows):
    # The goals are for the compiled twin; when the pure twin is the
    # active one, its own goal applies: not slower than joblib on arrays.
    for row in rows:
        if row.impl == "joblite":
            row.targets = dict(PURE_TARGETS) if row.nbytes is not None else {}


# --------------------------------------------------------------------------
# import section
# --------------------------------------------------------------------------

def import_seconds(statements, repeat=5):
    """Best wall time of ``python -c statement`` in fresh interpreters.

    The statements are run in turn, round after round, so that a slow
    period of the machine affects them all alike.

    Parameters
    ----------
    statements : list of str
        Python code, e.g. ``['pass', 'import joblite']``.
    repeat : int, default 5
        Number of rounds; the fastest run of each statement counts.

    Returns
    -------
    list of float or None
        Seconds per statement, including interpreter start-up; ``None`` for
        a statement that fails (e.g. the module is not installed).
    """
    best = [float("inf")] * len(statements)
    for _ in range(repeat):
        for i, statement in enumerate(statements):
            if best[i] is None:
                continue
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", statement],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            elapsed = time.perf_counter() - start
            best[i] = None if result.returncode else min(best[i], elapsed)
    return best


def import_section(quick=False):
    """Time ``import joblite`` against ``import joblib`` in fresh processes.

    Each figure is the best wall time of ``python -c "import ..."`` minus the
    best time of ``python -c pass`` (interpreter start-up), over interleaved
    rounds.

    Parameters
    ----------
    quick : bool, default False
        Fewer rounds (5 instead of 15).

    Returns
    -------
    list of Row
        ``joblite`` carries ``time_vs_joblib``: its import time over joblib's
        (lower is better; the goal is at most 0.2).
    """
    _progress("import: timing fresh interpreters")
    impls = ["joblite", "joblib"]
    startup, *totals = import_seconds(["pass"] + [f"import {m}" for m in impls],
                                      repeat=5 if quick else 15)
    rows = []
    for impl, total in zip(impls, totals):
        seconds = None if total is None else max(total - startup, 0.0)
        rows.append(Row("import", f"import {impl}", impl, seconds,
                        note="" if total is not None else "not installed"))
    rows[0].ratios["time_vs_joblib"] = _ratio(rows[0].seconds, rows[1].seconds)
    if rows[0].ratios["time_vs_joblib"] is not None:
        rows[0].targets = {"time_vs_joblib": -0.2}
    rows.append(Row("import", "interpreter start-up (subtracted)", "python", startup))
    return rows


# --------------------------------------------------------------------------
# registry, machine facts, output
# --------------------------------------------------------------------------

#: Section name -> function ``section(quick) -> list of Row``; run in this order.
SECTIONS = {
    "hashing": hashing_section,
    "import": import_section,
}


def machine_facts():
    """Collect facts about the machine and the software measured.

    Returns
    -------
    dict
        CPU counts, platform, Python, numpy, joblite (version, twin in use,
        twins available), joblib, dask and xxhash versions (``None`` when not
        installed).
    """
    import joblite
    from joblite._impl import available_twins

    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cpus = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": _version("numpy"),
        "joblite": joblite.__version__,
        "joblite_with_ext": bool(joblite.__with_ext__),
        "joblite_twins": available_twins(),
        "joblib": _version("joblib"),
        "dask": _version("dask"),
        "xxhash": _version("xxhash"),
    }


def _version(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _format_seconds(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _format_number(value, suffix=""):
    return "-" if value is None else f"{value:.3g}{suffix}"


_IMPL_LABELS = {"pure": "joblite pure twin", "tokenize": "dask tokenize"}

_RATIO_COLUMNS = [("vs_joblib", "x joblib"), ("vs_tokenize", "x tokenize"),
                  ("vs_memory_read", "/ a.sum()"), ("time_vs_joblib", "t / joblib")]


def format_table(rows, facts):
    """Render rows and machine facts as a plain-text table.

    Parameters
    ----------
    rows : list of Row
        The measurements, in print order.
    facts : dict
        From :func:`machine_facts`.

    Returns
    -------
    str
        Machine facts, then one line per row grouped by section, then a key
        to the ratio columns.
    """
    lines = [_format_facts(facts), ""]
    header = ["case", "impl", "time", "GiB/s"] + [title for _, title in _RATIO_COLUMNS]
    header.append("target")
    table = [header]
    for row in rows:
        cells = [row.name, _impl_label(row.impl, facts), _format_seconds(row.seconds),
                 _format_number(row.gib_per_s) if row.nbytes is not None else ""]
        cells += [_format_number(row.ratios.get(key), "") if key in row.ratios else ""
                  for key, _ in _RATIO_COLUMNS]
        cells.append(_format_target(row))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    section = None
    for row, cells in zip([None] + rows, table):
        if row is not None and row.section != section:
            section = row.section
            lines.append(f"[{section}]")
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
    lines.append("")
    lines.append("x joblib / x tokenize: times faster than that baseline; "
                 "/ a.sum(): GiB/s over the a.sum() memory-read GiB/s;")
    lines.append("t / joblib: import time over joblib's, interpreter start-up "
                 "subtracted (lower is better); target: goal of issue 2 and whether "
                 "it is met.")
    return "\n".join(lines)


def _impl_label(impl, facts):
    if impl == "joblite":
        return "joblite (ext)" if facts.get("joblite_with_ext") else "joblite (pure)"
    return _IMPL_LABELS.get(impl, impl)


def _format_target(row):
    if not row.targets:
        return ""
    goals = []
    for key, goal in row.targets.items():
        if key == "us_per_call":
            goals.append(f"<={-goal:g} µs")
        elif goal < 0:
            goals.append(f"<={-goal:g}")
        else:
            goals.append(f">={goal:g}")
    met = row.meets_targets()
    verdict = "?" if met is None else ("ok" if met else "MISSED")
    return f"{' '.join(goals)} {verdict}"


def _format_facts(facts):
    twin = "compiled (ext)" if facts["joblite_with_ext"] else "pure-Python"
    return "\n".join([
        f"machine: {facts['cpu_count']} CPUs ({facts['usable_cpus']} usable), "
        f"{facts['platform']}",
        f"python {facts['python']} ({facts['python_implementation']}), "
        f"numpy {facts['numpy']}, joblib {facts['joblib'] or '-'}, "
        f"dask {facts['dask'] or '-'}, xxhash {facts['xxhash'] or '-'}",
        f"joblite {facts['joblite']}: {twin} twin in use "
        f"(__with_ext__={facts['joblite_with_ext']}), "
        f"twins available: {', '.join(facts['joblite_twins'])}",
    ])


def to_json(rows, facts):
    """Render rows and machine facts as one JSON document.

    Parameters
    ----------
    rows : list of Row
        The measurements.
    facts : dict
        From :func:`machine_facts`.

    Returns
    -------
    str
        An object ``{"machine": {...}, "rows": [...]}``; each row has
        ``section``, ``name``, ``impl``, ``seconds``, ``nbytes``,
        ``gib_per_s``, ``ratios``, ``targets``, ``meets_targets`` and
        ``note``; missing values are ``null``.
    """
    out = []
    for row in rows:
        item = dataclasses.asdict(row)
        item["meets_targets"] = row.meets_targets()
        out.append(item)
    return json.dumps({"machine": facts, "rows": out}, indent=2)


def run(sections=None, quick=False, as_json=False, file=None):
    """Run benchmark sections and print the results.

    Parameters
    ----------
    sections : list of str, optional
        Names from :data:`SECTIONS`, run in the given order; all by default.
    quick : bool, default False
        Small workloads and few repeats.
    as_json : bool, default False
        Print one JSON document instead of a table.
    file : file-like, optional
        Where to print; ``sys.stdout`` by default.  Progress goes to stderr.

    Returns
    -------
    list of Row
        The measurements printed.

    Raises
    ------
    ValueError
        If a section name is unknown.
    """
    names = list(sections) if sections else list(SECTIONS)
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown benchmark section(s) {unknown}; "
                         f"choose from {list(SECTIONS)}")
    facts = machine_facts()
    rows = []
    for name in names:
        rows += SECTIONS[name](quick=quick)
    text = to_json(rows, facts) if as_json else format_table(rows, facts)
    print(text, file=file or sys.stdout)
    return rows


def main(args):
    """Entry point of ``python -m joblite bench``.

    Parameters
    ----------
    args : argparse.Namespace
        With ``quick``, ``json`` and ``section`` (list of str or None).

    Returns
    -------
    int
        Exit status, 0.
    """
    run(sections=args.section, quick=args.quick, as_json=args.json)
    return 0
