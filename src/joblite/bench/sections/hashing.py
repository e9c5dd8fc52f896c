"""Section ``hashing``: ``joblite.hash`` against ``joblib.hash`` and ``dask.base.tokenize``."""

import gc

from ..report import PURE_TARGETS, Row, gib_per_s, progress, ratio, with_ext
from ..timing import best_time, best_times_in_turns, per_call_time
from ..workloads import SMALL_ARGS, hash_function, random_array, random_floats, small_dicts, str_int_dict
from .hashing_frames import frame_rows

__all__ = ["HASHING_SIZES", "HASHING_TARGETS", "LAYOUT_TARGETS", "hashing_section", "layout_rows", "make_layouts"]

SECTION = "hashing"

# Sizes of the hashing workload; 'quick' runs in a few seconds (its array,
# 64 MiB, is still larger than CPU caches, so a.sum() reads from memory).
HASHING_SIZES = {
    "full": {
        "shape": (8192, 8192),
        "dicts": 100_000,
        "floats": 1_000_000,
        "str_int": 100_000,
        "repeat": 3,
        "budget": 2.0,
        "layout_mib": 128,
    },
    "quick": {
        "shape": (4096, 2048),
        "dicts": 10_000,
        "floats": 100_000,
        "str_int": 10_000,
        "repeat": 2,
        "budget": 0.5,
        "layout_mib": 16,
    },
}

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

# Goals from issue 13 for every non-contiguous layout (make_layouts).
LAYOUT_TARGETS = {"vs_joblib": 5, "vs_memory_read": 0.25}


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

    a = random_array(sizes["shape"])
    arrays = [
        ("array C order", a),
        ("array F order", np.asfortranarray(a)),
        ("array strided a[::2]", a[::2]),
    ]
    objects = [
        ("list of dicts", small_dicts(sizes["dicts"])),
        ("list of floats", random_floats(sizes["floats"])),
        ("dict str->int", str_int_dict(sizes["str_int"])),
    ]
    return {"arrays": arrays, "objects": objects}


def make_layouts(nbytes):
    """Views of the layouts users pass, over one seeded array of `nbytes` bytes.

    Parameters
    ----------
    nbytes : int
        Size of the source array, in bytes (a multiple of 1 MiB).

    Returns
    -------
    list of (str, numpy.ndarray)
        Case names and views: element-strided 1-D views (steps 2 and 3),
        a column ``X[:, j]`` of a C-ordered (n, 16) matrix, a row and every
        other row of an F-ordered matrix, F-ordered arrays wide (2048 rows),
        tall (64 columns) and square, a 3-D slice ``A[:, ::2, 1:]``, and a
        strided 1-D view and a wide F-ordered array of each other item size
        (uint8, int16, float32, complex128).  Views share the source's
        memory (float32 has its own array of the same size).
    """
    import numpy as np

    a = random_array(nbytes // 8)
    side = int((nbytes // 8) ** 0.5)
    layouts = [
        ("1-D a[::2] float64", a[::2]),
        ("1-D a[::3] float64", a[::3]),
        ("C column X[:, j] of (n, 16) float64", a.reshape(-1, 16)[:, 3]),
        ("F row X[j] of (2048, n) float64", a.reshape(-1, 2048).T[5]),
        ("F rows X[::2] of (2048, n) float64", a.reshape(-1, 2048).T[::2]),
        ("F wide (2048, n) float64", a.reshape(-1, 2048).T),
        ("F tall (n, 64) float64", a.reshape(64, -1).T),
        ("F square (n, n) float64", a[: side * side].reshape(side, side).T),
        ("3-D A[:, ::2, 1:] of (64, n, 64) float64", a.reshape(64, -1, 64)[:, ::2, 1:]),
    ]
    for dtype in (np.uint8, np.int16, np.float32, np.complex128):
        name = np.dtype(dtype).name
        # float64's low halves seen as float32 would hold NaNs: float32 gets its own values
        items = np.random.default_rng(1).random(nbytes // 4, np.float32) if dtype is np.float32 else a.view(dtype)
        layouts.append((f"1-D a[::2] {name}", items[::2]))
        layouts.append((f"F wide (2048, n) {name}", items.reshape(-1, 2048).T))
    return layouts


def layout_rows(sizes, impls):
    """Hash every layout of :func:`make_layouts` with joblite and joblib, next to ``a.sum()`` of the view.

    The three calls of a case take turns (best of several rounds), so that
    the ratios come from the same moments of the machine.

    Parameters
    ----------
    sizes : dict
        One entry of :data:`HASHING_SIZES` (``layout_mib``: the source array).
    impls : dict of str to callable or None
        Hash functions by implementation; ``'joblite'`` and ``'joblib'`` are used.

    Returns
    -------
    list of Row
        Per case: joblite (ratios ``vs_joblib`` and ``vs_memory_read``,
        targets :data:`LAYOUT_TARGETS`), joblib, and ``a.sum()`` (numpy's
        read of the same view: the memory-read reference).
    """
    rows = []
    for name, view in make_layouts(sizes["layout_mib"] << 20):
        label = f"{name} ({view.nbytes >> 20} MiB)" if view.nbytes >= 1 << 20 else f"{name} ({view.nbytes >> 10} KiB)"
        progress(f"  hashing: layout {name}")
        calls = {"joblite": lambda: impls["joblite"](view), "a.sum()": view.sum}
        if impls["joblib"] is not None:
            calls["joblib"] = lambda: impls["joblib"](view)
        best = best_times_in_turns(calls, sizes["repeat"] + 1, sizes["budget"])
        case = {
            impl: Row(SECTION, label, impl, seconds, view.nbytes, gib_per_s(view.nbytes, seconds))
            for impl, seconds in best.items()
        }
        if "joblib" not in case:
            case["joblib"] = Row(SECTION, label, "joblib", note="not installed")
        joblite = case["joblite"]
        joblite.ratios["vs_joblib"] = ratio(case["joblib"].seconds, joblite.seconds)
        joblite.ratios["vs_memory_read"] = ratio(case["a.sum()"].seconds, joblite.seconds)
        joblite.targets = dict(LAYOUT_TARGETS)
        rows += [joblite, case["joblib"], case["a.sum()"]]
    return rows


def memory_read_row(a, sizes):
    """Time ``a.sum()``, the machine's memory-read throughput.

    Returns
    -------
    Row
        Implementation ``'numpy'``, with GiB/s; the reference of the
        ``vs_memory_read`` ratios.
    """
    seconds = best_time(a.sum, repeat=2 * sizes["repeat"] + 1)
    return Row(SECTION, "memory read a.sum()", "numpy", seconds, a.nbytes, gib_per_s(a.nbytes, seconds))


def time_case(name, obj, impls, sizes, nbytes=None, target_key=None):
    """Time one object with each implementation and compute the ratios.

    Parameters
    ----------
    name : str
        Case name printed in the table.
    obj : object
        What is hashed.
    impls : dict of str to callable or None
        Hash functions by implementation (:func:`~joblite.bench.workloads.hash_function`).
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
            rows.append(Row(SECTION, name, impl, note="not installed"))
            continue
        progress(f"  hashing: {name} with {impl}")
        # joblite is fast: more repeats; baselines are slow: stop at the budget.
        repeat = sizes["repeat"] + 2 if impl == "joblite" else sizes["repeat"]
        seconds = best_time(lambda: func(obj), repeat, sizes["budget"])
        rows.append(Row(SECTION, name, impl, seconds, nbytes, gib_per_s(nbytes, seconds)))
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
                row.ratios[f"vs_{base}"] = ratio(by_impl[base].seconds, row.seconds)
        row.targets = dict(targets if impl == "joblite" else PURE_TARGETS)


def small_args_rows(impls):
    """Time the small argument tuple ``((1, 2.0, 'abc'), {'x': 3})`` per call.

    Returns
    -------
    list of Row
        ``seconds`` is the time of one call; joblite's row carries
        ``us_per_call`` and the speed-ups.
    """
    rows = []
    for impl, func in impls.items():
        if func is None:
            rows.append(Row(SECTION, "small args", impl, note="not installed"))
            continue
        progress(f"  hashing: small args with {impl}")
        seconds = per_call_time(lambda: func(SMALL_ARGS))
        rows.append(Row(SECTION, "small args", impl, seconds, ratios={"us_per_call": seconds * 1e6}))
    _add_hashing_ratios(rows, HASHING_TARGETS["small args"])
    return rows


def hashing_section(context):
    """Hash a real, seeded workload with joblite, joblib and dask tokenize.

    The workload (sizes for the default run; ``quick`` uses smaller ones):
    a 512 MiB float64 array ``a`` of shape (8192, 8192), its F-ordered copy,
    the strided view ``a[::2]``, a list of 100,000 small dicts, a list of
    1,000,000 floats, a dict of 100,000 str to int, and the small argument
    tuple ``((1, 2.0, 'abc'), {'x': 3})`` (time per call).  The pure-Python
    twin is also timed on the arrays, and ``a.sum()`` gives the machine's
    memory-read throughput in the same run.  Then the layouts of
    :func:`make_layouts` (views of a 128 MiB array; 16 MiB in ``quick``),
    each timed with joblite, joblib and ``a.sum()`` of the view, and the
    pandas frames of :func:`~joblite.bench.sections.hashing_frames.frame_rows`.

    Parameters
    ----------
    context : joblite.bench.sections.Context
        ``quick``: small sizes and fewer repeats; writes no file.

    Returns
    -------
    list of Row
        Ratios: ``vs_joblib`` and ``vs_tokenize`` (times faster than the
        baseline), ``vs_memory_read`` (joblite GiB/s over ``a.sum()`` GiB/s)
        and ``us_per_call`` for the small arguments.
    """
    sizes = context.sizes(HASHING_SIZES)
    impls = {impl: hash_function(impl) for impl in ("joblite", "joblib", "tokenize")}
    progress("hashing: building the workload")
    workload = make_hashing_workload(sizes)
    a = workload["arrays"][0][1]
    memory = memory_read_row(a, sizes)
    rows = [memory]
    array_impls = {
        "joblite": impls["joblite"],
        "pure": hash_function("pure"),
        "joblib": impls["joblib"],
        "tokenize": impls["tokenize"],
    }
    for name, array in workload["arrays"]:
        label = f"{name} ({array.nbytes >> 20} MiB)"
        case = time_case(label, array, array_impls, sizes, array.nbytes, name)
        case[0].ratios["vs_memory_read"] = ratio(case[0].gib_per_s, memory.gib_per_s)
        rows += case
    del workload["arrays"], a, array  # free the arrays before the next cases
    gc.collect()
    rows += layout_rows(sizes, impls)
    gc.collect()
    for name, obj in workload["objects"]:
        rows += time_case(f"{name} ({len(obj):,})", obj, impls, sizes, target_key=name)
    rows += small_args_rows(impls)
    rows += frame_rows(context, impls)
    if not with_ext():
        # The goals are for the compiled twin; when the pure twin is the
        # active one, its own goal applies: not slower than joblib on arrays.
        for row in rows:
            if row.impl == "joblite":
                row.targets = dict(PURE_TARGETS) if row.nbytes is not None else {}
    return rows
