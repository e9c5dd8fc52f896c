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
section imports what it needs when it runs.  Sections that write files
(persistence, memory) do so in a fresh temporary folder, removed when they finish;
the parallel section's memmap folders are made and removed by the libraries (under
a fresh temporary folder when a tmpdir is given).
"""
import dataclasses
import functools
import gc
import inspect
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from typing import Optional

__all__ = ["Row", "SECTIONS", "best_time", "per_call_time", "per_call_in_turns", "best_times_in_turns",
           "run", "main"]

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
    number = _calls_per_loop(func, target)
    return min(_time_loop(func, number) for _ in range(repeat)) / number


def _calls_per_loop(func, target):
    """How many calls of ``func()`` take about `target` seconds."""
    number = 1
    while True:
        elapsed = _time_loop(func, number)
        if elapsed >= target / 10 or number >= 10**7:
            break
        number *= 10
    return max(1, int(number * target / max(elapsed, 1e-9)))


def per_call_in_turns(funcs, repeat=5, target=0.1):
    """Best time per call of several fast functions, their timed loops taking turns.

    As :func:`per_call_time` for each function, except that loop ``i`` of
    every function runs before loop ``i + 1`` of any, in a rotating order, so
    that a slow period of a noisy machine (or the write-back of files the
    previous one wrote) weighs on all alike.

    Parameters
    ----------
    funcs : dict of str to callable
        Called with no arguments.
    repeat : int, default 5
        Number of timed loops of each function; the best loop counts.
    target : float, default 0.1
        Wanted duration of one loop in seconds.

    Returns
    -------
    dict of str to float
        Seconds per call, by the keys of `funcs`.
    """
    numbers = {key: _calls_per_loop(func, target) for key, func in funcs.items()}
    best = dict.fromkeys(funcs, float("inf"))
    order = list(funcs)
    for round_ in range(max(1, repeat)):
        for key in order[round_ % len(order):] + order[:round_ % len(order)]:
            best[key] = min(best[key], _time_loop(funcs[key], numbers[key]) / numbers[key])
    return best


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
    # The issue's goals are for the compiled twin; when the pure twin is the
    # active one, its own goal applies: not slower than joblib on arrays.
    for row in rows:
        if row.impl == "joblite":
            row.targets = dict(PURE_TARGETS) if row.nbytes is not None else {}


# --------------------------------------------------------------------------
# persistence section
# --------------------------------------------------------------------------

MIB = 1 << 20

# Sizes of the persistence workload.  'quick' runs in a few seconds: 8 MiB
# arrays, no 4 GiB memory-map case.  'repeat' is the most calls per figure
# (best counts); 'budget' (seconds) stops the repeats of slow calls early, and
# compressed dumps by joblib are timed once.
PERSISTENCE_SIZES = {
    "full": {"array_mib": 256, "slow_codec_mib": 32, "dicts": 50_000, "big_gib": 4,
             "repeat": 5, "budget": 2.0, "mmap_repeat": 25},
    "quick": {"array_mib": 8, "slow_codec_mib": 1, "dicts": 5_000, "big_gib": None,
              "repeat": 3, "budget": 0.5, "mmap_repeat": 10},
}

#: joblite codecs timed side by side on the smooth float64 array, at their
#: default levels; the slow ones (:data:`SLOW_CODECS`) on a slice of it.
CODECS = ("lz4", "zlib", "gzip", "zstd", "bz2", "lzma", "xz")
SLOW_CODECS = ("bz2", "lzma", "xz")

#: Free disk space (bytes) below which the 4 GiB memory-map case is skipped.
BIG_FILE_MIN_FREE = 10 << 30

# Goals from issue 3 ("Must reach"); see Row.targets for the sign convention.
PERSISTENCE_TARGETS = {
    "dump": {"vs_numpy": 0.9, "vs_joblib": 2.5},
    "load": {"vs_numpy": 1.0},
    "load mmap": {"ms": -1.0},
    "dump compressed": {"vs_joblib": 10, "size_vs_joblib": 0.9},
    "load compressed": {"vs_joblib": 5},
    "dicts": {"time_vs_pickle": -1.5},
    "peak memory": {"peak_over_result": -1.1},
}

#: Compressed workloads the goals apply to; smooth float64 is reported only.
COMPRESSION_TARGETED = ("small ints", "image-like")

_SECTION = "persistence"


@dataclasses.dataclass
class PersistImpl:
    """How one implementation writes and reads a file.

    Attributes
    ----------
    suffix : str
        File name suffix (``np.save`` appends ``.npy`` to names without it;
        joblib and joblite pick a codec from some suffixes, never from these).
    dump : callable
        ``dump(value, path)``.
    load : callable
        ``load(path) -> value``, without memory-mapping.
    load_mmap : callable or None
        ``load_mmap(path) -> value`` with ``mmap_mode='r'``; ``None`` when the
        implementation cannot memory-map.
    """

    suffix: str
    dump: object
    load: object
    load_mmap: object = None


def persistence_impls():
    """The uncompressed writers and readers to compare, by implementation name.

    Returns
    -------
    dict of str to PersistImpl or None
        ``'joblite'`` (``joblite.dump``/``load``), ``'numpy'``
        (``np.save``/``np.load``), ``'joblib'`` (``joblib.dump``/``load``) and
        ``'pickle'`` (``pickle.dump`` protocol 5 / ``pickle.load`` on an open
        file); ``None`` for a baseline that is not installed.
    """
    import numpy as np

    import joblite

    joblib = _optional_module("joblib")
    return {
        "joblite": PersistImpl(".joblite", lambda value, path: joblite.dump(value, path),
                               joblite.load, lambda path: joblite.load(path, mmap_mode="r")),
        "numpy": PersistImpl(".npy", lambda value, path: np.save(path, value, allow_pickle=False),
                             lambda path: np.load(path, allow_pickle=False),
                             lambda path: np.load(path, mmap_mode="r")),
        "joblib": None if joblib is None else PersistImpl(
            ".pkl", lambda value, path: joblib.dump(value, path), joblib.load,
            lambda path: joblib.load(path, mmap_mode="r")),
        "pickle": PersistImpl(".pickle", pickle_dump, pickle_load),
    }


def compressed_impls():
    """The compressed writers to compare, by implementation name.

    Returns
    -------
    dict of str to PersistImpl or None
        ``'joblite'`` (``compress=True``: byte-shuffle + lz4),
        ``'joblib zlib-3'`` (``joblib.dump(compress=3)``, joblib's default
        codec) and ``'joblib lz4'`` (``compress=('lz4', 3)``); ``None`` for a
        baseline that is not installed.
    """
    import importlib.util

    import joblite

    joblib = _optional_module("joblib")
    has_lz4 = importlib.util.find_spec("lz4") is not None
    impls = {"joblite": PersistImpl(".joblite", lambda v, p: joblite.dump(v, p, compress=True),
                                    joblite.load)}
    impls["joblib zlib-3"] = None if joblib is None else PersistImpl(
        ".pkl", lambda v, p: joblib.dump(v, p, compress=3), joblib.load)
    impls["joblib lz4"] = None if joblib is None or not has_lz4 else PersistImpl(
        ".pkl", lambda v, p: joblib.dump(v, p, compress=("lz4", 3)), joblib.load)
    return impls


def _optional_module(name):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def pickle_dump(value, path):
    """Write `value` with pickle protocol 5 to `path` (the pickle baseline)."""
    import pickle

    with open(path, "wb") as file:
        pickle.dump(value, file, protocol=5)


def pickle_load(path):
    """Read a pickle from `path` (the pickle baseline)."""
    import pickle

    with open(path, "rb") as file:
        return pickle.load(file)


# -- workload ---------------------------------------------------------------

def random_f64(nbytes):
    """Uniform random float64 in [0, 1), `nbytes` bytes, 1-D; incompressible."""
    import numpy as np

    return np.random.default_rng(0).random(nbytes // 8)


def smooth_f64(nbytes):
    """A random walk of small steps (cumulative sum of N(0, 1e-3)), float64, 1-D.

    Neighbours are close, so the sign, exponent and top mantissa bytes repeat;
    the low mantissa bytes stay noisy.
    """
    import numpy as np

    walk = np.random.default_rng(0).normal(0.0, 1e-3, nbytes // 8)
    return np.cumsum(walk, out=walk)


def small_ints(nbytes):
    """int64 values uniform in 0..255, 1-D: seven zero bytes out of eight."""
    import numpy as np

    return np.random.default_rng(0).integers(0, 256, nbytes // 8, dtype=np.int64)


def image_f32(nbytes):
    """An image-like float32 2-D field: smooth waves plus noise, quantised.

    Two sine patterns plus N(0, 0.02) noise, clipped to [0, 1] and rounded to
    steps of 1/256 (an 8-bit image stored as float32).  256 MiB gives shape
    (8192, 8192).
    """
    import numpy as np

    count = nbytes // 4
    height = 1 << ((count.bit_length() - 1) // 2)
    width = count // height
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    image = np.random.default_rng(0).standard_normal((height, width), dtype=np.float32)
    image *= np.float32(0.02)
    image += np.float32(0.5) + np.float32(0.25) * np.sin(np.float32(6 * np.pi) * x) \
        * np.cos(np.float32(4 * np.pi) * y)
    phase = np.float32(3) * x + np.float32(5) * y
    image += np.float32(0.15) * np.sin(np.float32(2 * np.pi) * phase)
    np.clip(image, 0.0, 1.0, out=image)
    image *= np.float32(256)
    np.rint(image, out=image)
    image /= np.float32(256)
    return image


def small_dicts(count):
    """``count`` small dicts ``{'id', 'name', 'score', 'tags'}``, seeded scores."""
    import numpy as np

    scores = np.random.default_rng(0).random(count).tolist()
    return [{"id": i, "name": f"item{i}", "score": scores[i], "tags": ["a", "b"]}
            for i in range(count)]


# -- timing helpers -----------------------------------------------------------

def time_fresh_write(write, value, path, repeat=3, budget=None):
    """Best time of ``write(value, path)``, each call to a path that does not exist.

    The file left by the previous call is deleted before each call (not
    timed), so that no writer overwrites the page cache of an existing file;
    the file of the last call is kept.

    Parameters
    ----------
    write : callable
        ``write(value, path)``.
    value : object
        What is written.
    path : str
        The file name.
    repeat : int, default 3
        Maximum number of calls.
    budget : float, optional
        No further call once the calls so far took longer (seconds).

    Returns
    -------
    float
        The shortest call, in seconds.
    """
    best, spent = float("inf"), 0.0
    for _ in range(max(1, repeat)):
        _remove(path)
        start = time.perf_counter()
        write(value, path)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        if budget is not None and spent > budget:
            break
    return best


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _check_roundtrip(loaded, value, where):
    """Raise if joblite gave back something else than what was dumped."""
    import numpy as np

    if isinstance(value, np.ndarray):
        same = (isinstance(loaded, np.ndarray) and loaded.dtype == value.dtype
                and loaded.shape == value.shape and np.array_equal(loaded, value))
    else:
        same = loaded == value
    if not same:
        raise RuntimeError(f"persistence benchmark, {where}: joblite loaded a value that "
                           "differs from the one it dumped; its figures would be meaningless")


def _speedups(rows, baselines, targets):
    """Set joblite's ratios ``key: baseline seconds / joblite seconds`` and its targets."""
    by_impl = {row.impl: row for row in rows}
    row = by_impl.get("joblite")
    if row is None or row.seconds is None:
        return
    for key, base in baselines.items():
        if base in by_impl:
            row.ratios[key] = _ratio(by_impl[base].seconds, row.seconds)
    row.targets = dict(targets)


def _missing(name, impl, note="not installed"):
    return Row(_SECTION, name, impl, note=note)


# -- cases --------------------------------------------------------------------

def uncompressed_rows(label, value, impls, folder, sizes):
    """Uncompressed dump, load and memory-mapped load, plus peak memory of a load.

    Parameters
    ----------
    label : str
        Workload name, e.g. ``'random f64 256 MiB'``.
    value : numpy.ndarray
        The array written.
    impls : dict of str to PersistImpl or None
        From :func:`persistence_impls`.
    folder : str
        Temporary folder for the files (each removed once measured).
    sizes : dict
        Repeats and time budget, from :data:`PERSISTENCE_SIZES`.

    Returns
    -------
    list of Row
        Dump rows (ratios ``vs_numpy``, ``vs_joblib`` for joblite), load rows
        (same), memory-mapped load rows (``ms``) and peak-memory rows
        (``peak_over_result``).
    """
    nbytes = value.nbytes
    dumps, loads, mmaps, peaks = [], [], [], []
    available = {impl: entry for impl, entry in impls.items() if entry is not None}
    paths = {impl: os.path.join(folder, "array" + entry.suffix) for impl, entry in available.items()}
    # Writers take turns, in a rotating order, so that page-cache and write-back
    # state (the file written just before being flushed) weighs on all alike.
    _progress(f"  persistence: {label} dumps, {', '.join(available)} in turn")
    dump_seconds = dict.fromkeys(available, float("inf"))
    order = list(available)
    for round_ in range(max(len(order), sizes["repeat"])):
        for impl in order[round_ % len(order):] + order[:round_ % len(order)]:
            dump_seconds[impl] = min(dump_seconds[impl],
                                     time_fresh_write(available[impl].dump, value, paths[impl], 1))
    for impl, entry in impls.items():
        if entry is None:
            for rows, case in ((dumps, "dump"), (loads, "load"), (mmaps, "load mmap 'r'"),
                               (peaks, "load peak memory")):
                rows.append(_missing(f"{label}: {case}", impl))
            continue
        path = paths[impl]
        _progress(f"  persistence: {label} load with {impl}")
        seconds = dump_seconds[impl]
        dumps.append(Row(_SECTION, f"{label}: dump", impl, seconds, nbytes,
                         _gib_per_s(nbytes, seconds)))
        if impl == "joblite":
            _check_roundtrip(entry.load(path), value, f"{label} load")
        seconds = best_time(lambda: entry.load(path), sizes["repeat"], sizes["budget"])
        loads.append(Row(_SECTION, f"{label}: load", impl, seconds, nbytes,
                         _gib_per_s(nbytes, seconds)))
        if entry.load_mmap is not None:
            seconds = best_time(lambda: entry.load_mmap(path), sizes["mmap_repeat"])
            mmaps.append(Row(_SECTION, f"{label}: load mmap 'r'", impl, seconds,
                             ratios={"ms": seconds * 1e3}))
        peaks.append(peak_memory_row(f"{label}: load peak memory", impl, entry, path, folder))
        _remove(path)
    _speedups(dumps, {"vs_numpy": "numpy", "vs_joblib": "joblib"}, PERSISTENCE_TARGETS["dump"])
    _speedups(loads, {"vs_numpy": "numpy", "vs_joblib": "joblib"}, PERSISTENCE_TARGETS["load"])
    _speedups(mmaps, {"vs_numpy": "numpy", "vs_joblib": "joblib"}, PERSISTENCE_TARGETS["load mmap"])
    for row in peaks:
        if row.impl == "joblite" and "peak_over_result" in row.ratios:
            row.targets = dict(PERSISTENCE_TARGETS["peak memory"])
    return dumps + loads + mmaps + peaks


# Run in a fresh interpreter: argv = impl, warm-up file, file.  A warm-up load
# of a tiny file of the same kind does the lazy imports first.  On Linux the
# peak RSS (VmHWM) is then reset to the current RSS (/proc/self/clear_refs,
# "5"), so that the peak read after the load is the load's own; elsewhere the
# figure is the growth of ru_maxrss across the load, which can understate it.
_PEAK_SCRIPT = r"""
import json, resource, sys
impl, warm, path = sys.argv[1:4]
import numpy as np
if impl == "joblite":
    import joblite
    load = joblite.load
elif impl == "joblib":
    import joblib
    load = joblib.load
elif impl == "numpy":
    load = np.load
else:
    import pickle
    def load(name):
        with open(name, "rb") as file:
            return pickle.load(file)
def status(key):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(key)
def maxrss():
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
load(warm)
try:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before, peak = status("VmRSS"), lambda: status("VmHWM")
    method = "VmHWM reset"
except OSError:
    before, peak = maxrss(), maxrss
    method = "ru_maxrss"
value = load(path)
print(json.dumps({"before": before, "peak": peak(), "nbytes": int(value.nbytes), "method": method}))
"""

def peak_memory_row(name, impl, entry, path, folder):
    """Peak memory of loading `path` (no mmap), in a fresh interpreter.

    Parameters
    ----------
    name : str
        Case name.
    impl : str
        Implementation name, also passed to the subprocess.
    entry : PersistImpl
        Writes the tiny warm-up file.
    path : str
        The file to load, written by `entry`.
    folder : str
        Where the warm-up file goes (removed afterwards).

    Returns
    -------
    Row
        ``peak_over_result``: (peak RSS during the load - RSS before it) /
        bytes of the loaded array; 1.0 means no memory beyond the result.
    """
    import numpy as np

    import joblite

    warm = os.path.join(folder, "warm" + entry.suffix)
    _remove(warm)
    entry.dump(np.arange(1000, dtype=np.float64), warm)
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    try:
        result = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, impl, warm, path],
                                capture_output=True, text=True, env=env)
    finally:
        _remove(warm)
    if result.returncode:
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        return Row(_SECTION, name, impl, note=f"subprocess failed: {tail}")
    figures = json.loads(result.stdout)
    return Row(_SECTION, name, impl, ratios={
        "peak_over_result": (figures["peak"] - figures["before"]) / figures["nbytes"]},
        note="" if figures["method"] == "VmHWM reset" else "peak from ru_maxrss growth")


def compressed_rows(label, value, impls, folder, sizes, targeted):
    """Compressed dump and load of `value` with joblite's default and joblib's codecs.

    Parameters
    ----------
    label : str
        Workload name, e.g. ``'small ints i64 256 MiB'``.
    value : numpy.ndarray
        The array written.
    impls : dict of str to PersistImpl or None
        From :func:`compressed_impls`.
    folder : str
        Temporary folder (each file removed once measured).
    sizes : dict
        From :data:`PERSISTENCE_SIZES`.
    targeted : bool
        Whether the issue's compression goals apply to this workload.

    Returns
    -------
    list of Row
        Dump rows with ``compression_ratio`` (array bytes / file bytes); for
        joblite also ``vs_joblib`` (times faster than joblib zlib-3) and
        ``size_vs_joblib`` (its compression ratio over joblib zlib-3's); load
        rows with ``vs_joblib`` for joblite.
    """
    nbytes = value.nbytes
    dumps, loads = [], []
    for impl, entry in impls.items():
        if entry is None:
            dumps.append(_missing(f"{label}: dump compressed", impl))
            loads.append(_missing(f"{label}: load compressed", impl))
            continue
        path = os.path.join(folder, "compressed" + entry.suffix)
        _progress(f"  persistence: {label} compressed with {impl}")
        slow = impl != "joblite"
        seconds = time_fresh_write(entry.dump, value, path, 1 if slow else sizes["repeat"],
                                   sizes["budget"])
        dumps.append(Row(_SECTION, f"{label}: dump compressed", impl, seconds, nbytes,
                         _gib_per_s(nbytes, seconds),
                         ratios={"compression_ratio": nbytes / os.path.getsize(path)}))
        if impl == "joblite":
            _check_roundtrip(entry.load(path), value, f"{label} compressed load")
        seconds = best_time(lambda: entry.load(path), sizes["repeat"], sizes["budget"])
        loads.append(Row(_SECTION, f"{label}: load compressed", impl, seconds, nbytes,
                         _gib_per_s(nbytes, seconds)))
        _remove(path)
    _speedups(dumps, {"vs_joblib": "joblib zlib-3"},
              PERSISTENCE_TARGETS["dump compressed"] if targeted else {})
    _speedups(loads, {"vs_joblib": "joblib zlib-3"},
              PERSISTENCE_TARGETS["load compressed"] if targeted else {})
    mine = dumps[0] if dumps and dumps[0].impl == "joblite" else None
    zlib = next((row for row in dumps if row.impl == "joblib zlib-3"), None)
    if mine is not None and mine.seconds is not None and zlib is not None:
        mine.ratios["size_vs_joblib"] = _ratio(mine.ratios.get("compression_ratio"),
                                               zlib.ratios.get("compression_ratio"))
    return dumps + loads


def codec_rows(label, value, folder, sizes, codecs):
    """joblite's codecs side by side: dump and load of `value` with each, default level.

    Parameters
    ----------
    label : str
        Workload name, e.g. ``'smooth f64 256 MiB'``.
    value : numpy.ndarray
        The array written.
    folder : str
        Temporary folder (each file removed once measured).
    sizes : dict
        From :data:`PERSISTENCE_SIZES`.
    codecs : sequence of str
        Codec names; one not registered here (``'zstd'`` without the
        ``zstandard`` package) gives a row with a note.

    Returns
    -------
    list of Row
        Dump rows with ``compression_ratio``, then load rows; implementation
        ``'joblite'``, the codec and level in the case name.
    """
    import joblite
    from joblite import compressors

    nbytes = value.nbytes
    dumps, loads = [], []
    path = os.path.join(folder, "codec.joblite")
    for codec in codecs:
        try:
            level = compressors.parse_compress(codec)[1]
        except ValueError:
            dumps.append(_missing(f"{label}: dump compress={codec!r}", "joblite",
                                  f"codec {codec!r} is not registered (package not installed)"))
            continue
        case = f"compress={codec!r} (level {level})"
        _progress(f"  persistence: {label} with {case}")
        seconds = time_fresh_write(lambda v, p: joblite.dump(v, p, compress=codec), value, path,
                                   sizes["repeat"], sizes["budget"])
        dumps.append(Row(_SECTION, f"{label}: dump {case}", "joblite", seconds, nbytes,
                         _gib_per_s(nbytes, seconds),
                         ratios={"compression_ratio": nbytes / os.path.getsize(path)}))
        _check_roundtrip(joblite.load(path), value, f"{label} {case} load")
        seconds = best_time(lambda: joblite.load(path), sizes["repeat"], sizes["budget"])
        loads.append(Row(_SECTION, f"{label}: load {case}", "joblite", seconds, nbytes,
                         _gib_per_s(nbytes, seconds)))
        _remove(path)
    return dumps + loads


def dicts_rows(label, value, impls, folder, sizes):
    """Dump and load of a list of small dicts: joblite against pickle (and joblib).

    Returns
    -------
    list of Row
        joblite's rows carry ``time_vs_pickle`` (its time over pickle
        protocol 5's, lower is better) and ``vs_joblib``.
    """
    dumps, loads = [], []
    for impl in ("joblite", "pickle", "joblib"):
        entry = impls.get(impl)
        if entry is None:
            dumps.append(_missing(f"{label}: dump", impl))
            loads.append(_missing(f"{label}: load", impl))
            continue
        path = os.path.join(folder, "dicts" + entry.suffix)
        _progress(f"  persistence: {label} with {impl}")
        seconds = time_fresh_write(entry.dump, value, path, sizes["repeat"], sizes["budget"])
        dumps.append(Row(_SECTION, f"{label}: dump", impl, seconds))
        if impl == "joblite":
            _check_roundtrip(entry.load(path), value, f"{label} load")
        seconds = best_time(lambda: entry.load(path), sizes["repeat"], sizes["budget"])
        loads.append(Row(_SECTION, f"{label}: load", impl, seconds))
        _remove(path)
    for rows in (dumps, loads):
        _speedups(rows, {"vs_joblib": "joblib"}, PERSISTENCE_TARGETS["dicts"])
        mine, base = rows[0], rows[1]
        if mine.seconds is not None:
            mine.ratios["time_vs_pickle"] = _ratio(mine.seconds, base.seconds)
    return dumps + loads


class _SparseZeroWriter:
    """A binary file wrapper that leaves a hole where a large all-zero write goes.

    Used to write the 4 GiB memory-map case with the writers' own code
    (``joblite.dump``, ``joblib.dump`` to a file object) without writing
    4 GiB to disk: the file has the same bytes, most of them a hole.
    """

    HOLE_MIN = 1 << 20

    def __init__(self, raw):
        self._raw = raw

    def write(self, data):
        import numpy as np

        view = memoryview(data)
        count = view.nbytes
        if (count >= self.HOLE_MIN and view.c_contiguous
                and not np.frombuffer(view.cast("B"), np.uint8).any()):
            self._raw.seek(count, io.SEEK_CUR)
        else:
            self._raw.write(view)
        return count

    def tell(self):
        return self._raw.tell()

    def flush(self):
        self._raw.flush()

    def finish(self):
        """Give the file its full length when it ends with a hole."""
        self._raw.truncate(self._raw.tell())


def _write_sparse(dump, value, path):
    with open(path, "wb") as raw:
        writer = _SparseZeroWriter(raw)
        dump(value, writer)
        writer.finish()


def big_mmap_rows(gib, folder, sizes):
    """O(1) check: memory-mapped load of a `gib` GiB float64 array of zeros.

    The files are written by each library's own writer (``joblite.dump`` and
    ``joblib.dump`` to a file object that turns the all-zero array bytes into
    a hole, ``np.lib.format.open_memmap`` for numpy), so they need neither
    RAM nor disk space for the array.  Skipped when the folder's file system
    has less than :data:`BIG_FILE_MIN_FREE` bytes free.

    Returns
    -------
    list of Row
        ``ms`` per implementation; joblite's target is under 1 ms.
    """
    import shutil

    import numpy as np

    import joblite

    name = f"zeros f64 {gib} GiB: load mmap 'r'"
    free = shutil.disk_usage(folder).free
    if free < BIG_FILE_MIN_FREE:
        return [_missing(name, "joblite", f"skipped: {free / GIB:.1f} GiB free disk, "
                                          f"{BIG_FILE_MIN_FREE / GIB:.0f} GiB wanted")]
    count = (gib << 30) // 8
    zeros = np.zeros(count)  # calloc'ed: zero pages, no RAM
    joblib = _optional_module("joblib")

    def write_numpy(path):
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(count,))
        del array

    writers = {
        "joblite": (".joblite", lambda path: _write_sparse(joblite.dump, zeros, path),
                    lambda path: joblite.load(path, mmap_mode="r")),
        "numpy": (".npy", write_numpy, lambda path: np.load(path, mmap_mode="r")),
        "joblib": None if joblib is None else (
            ".pkl", lambda path: _write_sparse(joblib.dump, zeros, path),
            lambda path: joblib.load(path, mmap_mode="r")),
    }
    rows = []
    for impl, entry in writers.items():
        if entry is None:
            rows.append(_missing(name, impl))
            continue
        suffix, write, load = entry
        path = os.path.join(folder, "big" + suffix)
        _progress(f"  persistence: {name} with {impl}")
        try:
            write(path)
            loaded = load(path)
            if loaded.shape != (count,) or loaded.dtype != np.float64:
                raise RuntimeError(f"persistence benchmark, {name}: {impl} loaded "
                                   f"{loaded.dtype} {loaded.shape}, not float64 ({count},)")
            del loaded
            seconds = best_time(lambda: load(path), sizes["mmap_repeat"])
        finally:
            _remove(path)
        rows.append(Row(_SECTION, name, impl, seconds, ratios={"ms": seconds * 1e3}))
    _speedups(rows, {"vs_numpy": "numpy", "vs_joblib": "joblib"}, PERSISTENCE_TARGETS["load mmap"])
    return rows


def persistence_section(quick=False, tmpdir=None):
    """Time ``dump``/``load`` of joblite against np.save/np.load, joblib and pickle.

    The workload (seeded, ``numpy.random.default_rng(0)``; sizes for the
    default run, ``quick`` uses 8 MiB arrays and 5,000 dicts):

    * uncompressed: a 256 MiB random float64 array, written by joblite,
      ``np.save``, ``joblib.dump`` and ``pickle.dump`` (protocol 5, to a
      file); read back without and with ``mmap_mode='r'``; and a 4 GiB array
      of zeros read with ``mmap_mode='r'`` (not in ``quick``);
    * peak memory of a non-mmap load of the 256 MiB array, each in a fresh
      interpreter;
    * compressed: 256 MiB of small ints (int64 in 0..255), an image-like
      float32 (8192, 8192) field quantised to steps of 1/256, and a smooth
      float64 random walk, with joblite's default (``compress=True``:
      byte-shuffle + lz4) against ``joblib.dump(compress=3)`` (zlib 3) and
      ``joblib.dump(compress=('lz4', 3))``;
    * every joblite codec at its default level on the smooth float64 array;
      bz2, lzma and xz on a 32 MiB slice of it (they are slow);
    * a list of 50,000 small dicts against pickle protocol 5 (and joblib).

    Every timed write goes to a path that does not exist (the previous file
    is deleted first, for every implementation alike), in a fresh folder made
    with ``tempfile.mkdtemp`` that is removed at the end.  Loads read files
    just written, from the page cache.

    Parameters
    ----------
    quick : bool, default False
        Small sizes and fewer repeats, to run in a few seconds.
    tmpdir : str, optional
        Where the temporary folder is made; the system's temporary
        directory by default.

    Returns
    -------
    list of Row
        Ratios: ``vs_numpy`` and ``vs_joblib`` (times faster than the
        baseline), ``time_vs_pickle``, ``ms`` (memory-mapped loads),
        ``compression_ratio``, ``size_vs_joblib`` and ``peak_over_result``.
    """
    import shutil
    import tempfile

    sizes = PERSISTENCE_SIZES["quick" if quick else "full"]
    nbytes = sizes["array_mib"] * MIB
    mib = f"{sizes['array_mib']} MiB"
    folder = tempfile.mkdtemp(prefix="joblite-bench-", dir=tmpdir)
    rows = []
    try:
        _progress(f"persistence: files in {folder}")
        rows += uncompressed_rows(f"random f64 {mib}", random_f64(nbytes), persistence_impls(),
                                  folder, sizes)
        gc.collect()
        impls = compressed_impls()
        workloads = [("small ints", "small ints i64", small_ints),
                     ("image-like", "image-like f32", image_f32),
                     ("smooth", "smooth f64", smooth_f64)]
        for key, label, build in workloads:
            _progress(f"persistence: building {label} {mib}")
            value = build(nbytes)
            rows += compressed_rows(f"{label} {mib}", value, impls, folder, sizes,
                                    key in COMPRESSION_TARGETED)
            if key == "smooth":
                fast = [codec for codec in CODECS if codec not in SLOW_CODECS]
                slow = [codec for codec in CODECS if codec in SLOW_CODECS]
                rows += codec_rows(f"{label} {mib}", value, folder, sizes, fast)
                part = value[:sizes["slow_codec_mib"] * MIB // value.itemsize]
                rows += codec_rows(f"{label} {sizes['slow_codec_mib']} MiB slice", part, folder,
                                   sizes, slow)
                del part
            del value
            gc.collect()
        count = sizes["dicts"]
        rows += dicts_rows(f"{count // 1000}k small dicts", small_dicts(count),
                           persistence_impls(), folder, sizes)
        if sizes["big_gib"]:
            rows += big_mmap_rows(sizes["big_gib"], folder, sizes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------
# memory section
# --------------------------------------------------------------------------

# Sizes of the memory workload.  'quick' runs in a few seconds: 16 MiB arrays.
# 'repeat' is the most calls per figure of the array cases (best counts; the
# fast implementation gets two more) and 'budget' (seconds) stops the repeats
# of slow calls early; 'loops' and 'loop_seconds' are the number of timed
# loops and the wanted duration of one loop of the per-call hit figures (see
# per_call_time).  Misses are timed over the first 'fill' entries of a new
# cache (blocks of 'fill_block' calls), then in that cache; they write files,
# and the file system's latency comes in bursts on a busy machine: that figure
# is the best of many short loops ('miss_loops' of 'miss_loop_seconds').
MEMORY_SIZES = {
    "full": {"array_mib": 1024, "repeat": 5, "budget": 6.0, "mmap_repeat": 25, "loops": 5,
             "loop_seconds": 0.2, "fill": 2000, "fill_block": 100, "miss_loops": 20,
             "miss_loop_seconds": 0.02},
    "quick": {"array_mib": 16, "repeat": 3, "budget": 0.5, "mmap_repeat": 10, "loops": 3,
              "loop_seconds": 0.05, "fill": 300, "fill_block": 50, "miss_loops": 6,
              "miss_loop_seconds": 0.01},
}

#: The arguments of the small-argument cases: ``f(1, 2.0, 'abc', x=3)``.
MEMORY_SMALL_ARGS = ((1, 2.0, "abc"), {"x": 3})

# Goals from issue 9; see Row.targets for the sign convention.
MEMORY_TARGETS = {
    "hit small args": {"us_per_call": -25.0, "vs_joblib": 10},
    "hit array argument": {"vs_joblib": 10},
    "hit array result mmap": {"ms": -2.0},
    "miss small args": {"vs_joblib": 3},
}

_MEMORY = "memory"

# How many times each cached function of the workload really ran (not served
# from a cache), to check that a hit is a hit and a miss a miss.
_MEMORY_CALLS = {"small": 0, "array_argument": 0, "array_result": 0}


def memory_small(a, b, c, x=0):
    """The cached function of the small-argument cases: returns the small tuple ``(a, b, c, x)``."""
    _MEMORY_CALLS["small"] += 1
    return (a, b, c, x)


def memory_array_argument(a):
    """The cached function of the large-argument case: returns ``(a.shape, a.dtype.str)``, small."""
    _MEMORY_CALLS["array_argument"] += 1
    return (a.shape, a.dtype.str)


def memory_array_result(nbytes):
    """The cached function of the large-result case: returns ``random_f64(nbytes)``."""
    _MEMORY_CALLS["array_result"] += 1
    return random_f64(nbytes)


def memory_impls():
    """The ``Memory`` classes to compare, by implementation name.

    Returns
    -------
    dict of str to type or None
        ``'joblite'`` (``joblite.Memory``) and ``'joblib'``
        (``joblib.Memory``); ``None`` for a baseline that is not installed.
    """
    import joblite

    return {"joblite": joblite.Memory, "joblib": _optional_attr("joblib", "Memory")}


def _size_label(nbytes):
    return f"{nbytes // (1 << 30)} GiB" if nbytes >= GIB and not nbytes % (1 << 30) \
        else f"{nbytes // MIB} MiB"


def _memory_rows(name, impls):
    """Rows of implementations that are not installed, and the available ones."""
    missing = [Row(_MEMORY, name, impl, note="not installed")
               for impl, cls in impls.items() if cls is None]
    return missing, {impl: cls for impl, cls in impls.items() if cls is not None}


def _check_calls(key, expected, name, impl):
    """Raise if the cached function ran another number of times than `expected`."""
    if _MEMORY_CALLS[key] != expected:
        raise RuntimeError(f"memory benchmark, {name}: {impl} ran the function "
                           f"{_MEMORY_CALLS[key] - expected:+d} times more than a "
                           f"{'hit' if name.startswith('hit') else 'miss'} would; its figures "
                           "would be meaningless")


def memory_small_rows(impls, folder, sizes):
    """Cache hits and misses of ``f(1, 2.0, 'abc', x=3)``, time per call.

    Each implementation caches :func:`memory_small` in its own fresh folder
    under `folder`, with ``verbose=0``.  The hit is timed after a first call
    that stores the entry.  A miss calls ``f(i, 2.0, 'abc', x=3)`` with a new
    ``i`` on every call (the same sequence for every implementation), so each
    call hashes, finds no entry, runs the function and stores its result and
    metadata.  Misses are timed twice: over the first ``sizes['fill']``
    entries of the new cache (one pass, in blocks of ``sizes['fill_block']``
    calls taking turns; joblite makes its 256 shard folders then), and then
    in that cache (best loop, :func:`per_call_in_turns`): the targeted
    figure, a cache in use.  Dirty pages are written back (``os.sync``)
    before each, so that earlier work's write-back does not stall the file
    creations being timed.

    Returns
    -------
    list of Row
        Hit rows then miss rows; ``us_per_call`` and, for joblite,
        ``vs_joblib``.
    """
    import itertools

    args, kwargs = MEMORY_SMALL_ARGS
    hit_name = "hit: small args f(1, 2.0, 'abc', x=3)"
    fill_name = f"miss + store: small args, first {sizes['fill']:,} entries of a new cache"
    miss_name = f"miss + store: small args, cache of {sizes['fill']:,}+ entries"
    hits, available = _memory_rows(hit_name, impls)
    fills, _ = _memory_rows(fill_name, impls)
    misses, _ = _memory_rows(miss_name, impls)
    funcs = {}
    for impl, memory_class in available.items():
        funcs[impl] = memory_class(os.path.join(folder, f"small-{impl}"), verbose=0).cache(memory_small)
        funcs[impl](*args, **kwargs)  # the miss that stores the entry; first-call set-up
    _progress(f"  memory: {hit_name}, {', '.join(funcs)} in turns")
    expected = _MEMORY_CALLS["small"]
    seconds = per_call_in_turns({impl: functools.partial(func, *args, **kwargs)
                                 for impl, func in funcs.items()},
                                sizes["loops"], sizes["loop_seconds"])
    _check_calls("small", expected, hit_name, ", ".join(funcs))
    hits += [Row(_MEMORY, hit_name, impl, seconds[impl], ratios={"us_per_call": seconds[impl] * 1e6})
             for impl in funcs]
    fresh = {impl: itertools.count(2) for impl in funcs}  # 1 is the entry of the hits

    def miss(impl):
        func, count = funcs[impl], fresh[impl]
        return lambda: func(next(count), *args[1:], **kwargs)

    for rows, name in ((fills, fill_name), (misses, miss_name)):
        _progress(f"  memory: {name}, {', '.join(funcs)} in turns")
        # Misses create files: the write-back of earlier work (the previous
        # cases, another run's GiB files) would stall those creations at random.
        os.sync()
        if rows is fills:
            seconds = _fill_in_turns({impl: miss(impl) for impl in funcs}, sizes["fill"],
                                     sizes["fill_block"])
        else:
            seconds = per_call_in_turns({impl: miss(impl) for impl in funcs},
                                        sizes["miss_loops"], sizes["miss_loop_seconds"])
        rows += [Row(_MEMORY, name, impl, seconds[impl], ratios={"us_per_call": seconds[impl] * 1e6})
                 for impl in funcs]
    calls = sum(next(count) - 2 for count in fresh.values())
    _check_calls("small", expected + calls, miss_name, ", ".join(funcs))
    for impl in funcs:
        _rmtree(os.path.join(folder, f"small-{impl}"))
    _speedups(hits, {"vs_joblib": "joblib"}, MEMORY_TARGETS["hit small args"])
    _speedups(fills, {"vs_joblib": "joblib"}, {})
    _speedups(misses, {"vs_joblib": "joblib"}, MEMORY_TARGETS["miss small args"])
    return hits + fills + misses


def _fill_in_turns(funcs, count, block):
    """Seconds per call of `count` calls of each function, made in blocks taking turns."""
    total = dict.fromkeys(funcs, 0.0)
    order = list(funcs)
    for round_, start in enumerate(range(0, count, block)):
        number = min(block, count - start)
        for key in order[round_ % len(order):] + order[:round_ % len(order)]:
            total[key] += _time_loop(funcs[key], number)
    return {key: total[key] / count for key in funcs}


def memory_array_argument_rows(impls, folder, sizes, nbytes):
    """Cache hit of :func:`memory_array_argument` on a random float64 array of `nbytes` bytes.

    The call's time is mostly hashing the argument (the result is small).

    Returns
    -------
    list of Row
        With GiB/s (argument bytes per second); joblite's row has ``vs_joblib``.
    """
    name = f"hit: {_size_label(nbytes)} f64 array argument"
    rows, available = _memory_rows(name, impls)
    _progress(f"  memory: building a {_size_label(nbytes)} float64 array")
    a = random_f64(nbytes)
    for impl, memory_class in available.items():
        location = os.path.join(folder, f"array-argument-{impl}")
        func = memory_class(location, verbose=0).cache(memory_array_argument)
        _progress(f"  memory: {name} with {impl}")
        func(a)  # the miss that stores the entry
        expected = _MEMORY_CALLS["array_argument"]
        repeat = sizes["repeat"] + 2 if impl == "joblite" else sizes["repeat"]
        seconds = best_time(lambda: func(a), repeat, sizes["budget"])
        _check_calls("array_argument", expected, name, impl)
        rows.append(Row(_MEMORY, name, impl, seconds, nbytes, _gib_per_s(nbytes, seconds)))
        _rmtree(location)
    _speedups(rows, {"vs_joblib": "joblib"}, MEMORY_TARGETS["hit array argument"])
    return rows


def memory_array_result_rows(impls, folder, sizes, nbytes):
    """Cache hits of :func:`memory_array_result`: a random float64 array of `nbytes` bytes.

    For each implementation, one folder holds the entry, stored by a first
    call; it is then loaded by a ``Memory`` with ``mmap_mode='r'`` (the array
    is a memmap of the entry, O(1)) and by one without (the array is read).

    Returns
    -------
    list of Row
        Memory-mapped hits (``ms``, joblite's target at most 2 ms) then
        in-memory hits (GiB/s); joblite's rows have ``vs_joblib``.
    """
    import numpy as np

    label = f"hit: returns {_size_label(nbytes)} f64 array"
    mmap_name, load_name = f"{label}, mmap_mode='r'", f"{label}, no mmap"
    mmaps, available = _memory_rows(mmap_name, impls)
    loads, _ = _memory_rows(load_name, impls)
    head = random_f64(min(nbytes, MIB))  # the first MiB of the result, to check loads
    for impl, memory_class in available.items():
        location = os.path.join(folder, f"array-result-{impl}")
        plain = memory_class(location, verbose=0).cache(memory_array_result)
        mapped = memory_class(location, mmap_mode="r", verbose=0).cache(memory_array_result)
        _progress(f"  memory: {label}: storing it with {impl}")
        plain(nbytes)  # the miss that computes and stores the entry
        gc.collect()
        expected = _MEMORY_CALLS["array_result"]
        for func, mode in ((mapped, "r"), (plain, None)):
            loaded = func(nbytes)
            if not (isinstance(loaded, np.ndarray) and loaded.dtype == np.float64
                    and loaded.shape == (nbytes // 8,) and isinstance(loaded, np.memmap) == bool(mode)
                    and np.array_equal(loaded[:head.size], head)):
                raise RuntimeError(f"memory benchmark, {label} (mmap_mode={mode!r}): {impl} gave "
                                   f"back {type(loaded).__name__} {getattr(loaded, 'shape', '')}, not "
                                   "the stored array; its figures would be meaningless")
            del loaded
        _progress(f"  memory: {mmap_name} with {impl}")
        seconds = best_time(lambda: mapped(nbytes), sizes["mmap_repeat"])
        mmaps.append(Row(_MEMORY, mmap_name, impl, seconds, ratios={"ms": seconds * 1e3}))
        _progress(f"  memory: {load_name} with {impl}")
        seconds = best_time(lambda: plain(nbytes), sizes["repeat"], sizes["budget"])
        loads.append(Row(_MEMORY, load_name, impl, seconds, nbytes, _gib_per_s(nbytes, seconds)))
        _check_calls("array_result", expected, label, impl)
        _rmtree(location)
        gc.collect()
    _speedups(mmaps, {"vs_joblib": "joblib"}, MEMORY_TARGETS["hit array result mmap"])
    _speedups(loads, {"vs_joblib": "joblib"}, {})
    return mmaps + loads


def _rmtree(path):
    """Remove the folder `path` and what it holds; no error if it is not there."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def memory_section(quick=False, tmpdir=None):
    """Time ``Memory`` of joblite against joblib's: cache hits and misses.

    The workload (seeded; sizes for the default run, ``quick`` uses 16 MiB
    arrays and fewer repeats), with the cached functions
    :func:`memory_small`, :func:`memory_array_argument` and
    :func:`memory_array_result`:

    * a cache hit with small arguments, ``f(1, 2.0, 'abc', x=3)`` returning
      a small tuple (time per call, best loop of many calls);
    * a cache miss with small arguments, a new one each call: hashing, the
      lookup, the (trivial) function and storing its result and metadata, as
      each library does it at ``verbose=0`` (joblib also stores the repr of
      the arguments);
    * a cache hit whose argument is a 1 GiB random float64 array (the result
      is small): mostly hashing the argument;
    * a cache hit returning a 1 GiB random float64 array, loaded with
      ``mmap_mode='r'`` and without.

    Each library, each case, uses its own fresh cache folder under a folder
    made with ``tempfile.mkdtemp``, removed when the case (or the section)
    ends.  Every figure checks that hits did not run the function and that
    misses ran it once per call.

    Parameters
    ----------
    quick : bool, default False
        Small sizes and fewer repeats, to run in a few seconds.
    tmpdir : str, optional
        Where the temporary folder is made; the system's temporary
        directory by default.

    Returns
    -------
    list of Row
        Ratios: ``vs_joblib`` (times faster than joblib), ``us_per_call``
        for the small-argument cases and ``ms`` for the memory-mapped hit.
    """
    import tempfile

    sizes = MEMORY_SIZES["quick" if quick else "full"]
    nbytes = sizes["array_mib"] * MIB
    impls = memory_impls()
    folder = tempfile.mkdtemp(prefix="joblite-bench-", dir=tmpdir)
    rows = []
    try:
        _progress(f"memory: cache folders in {folder}")
        rows += memory_small_rows(impls, folder, sizes)
        rows += memory_array_argument_rows(impls, folder, sizes, nbytes)
        gc.collect()
        rows += memory_array_result_rows(impls, folder, sizes, nbytes)
    finally:
        _rmtree(folder)
    if not _with_ext():
        for row in rows:
            if row.impl == "joblite" and row.targets:
                row.targets = dict(PURE_TARGETS)
    return rows


# --------------------------------------------------------------------------
# parallel section
# --------------------------------------------------------------------------

# Sizes of the parallel workload.  'quick' runs in a few seconds plus the start
# of the worker processes: 10k tiny tasks (for threads too: joblib's threading
# backend takes seconds on 100k), 200 busy tasks, 4 results, and a 64 MiB array
# (the memory figure has a few MiB of noise: the first memory-mapped task of a
# worker that had none in the warm-up imports numpy's loading code).
# 'repeat' is the most calls per figure (best counts; the calls of the
# implementations take turns), 'budget' (seconds) stops an implementation's
# repeats once its calls took that long; 'array_repeat' and 'busy_repeat' are
# the repeats of the slower cases.
PARALLEL_SIZES = {
    "full": {"tiny": 100_000, "busy": 1000, "array_mib": 256, "array_tasks": 8, "results": 16,
             "result_mib": 8, "repeat": 5, "busy_repeat": 3, "array_repeat": 3, "budget": 3.0},
    "quick": {"tiny": 10_000, "busy": 200, "array_mib": 64, "array_tasks": 8, "results": 4,
              "result_mib": 8, "repeat": 3, "busy_repeat": 2, "array_repeat": 2, "budget": 0.5},
}

#: Workers (processes or threads) of every parallel case but ``n_jobs=1``.
PARALLEL_N_JOBS = 2
#: ``chunksize`` of the stdlib ``ProcessPoolExecutor.map`` baseline.
EXECUTOR_CHUNKSIZE = 1000
#: Seconds of one busy task (:func:`busy_task`).
BUSY_SECONDS = 0.001
#: Bytes of the array of the warm-up call of the array case: above ``max_nbytes``
#: (1 MiB), so that it is memory-mapped too.
WARM_UP_ARRAY_BYTES = 2 * MIB
#: Seconds between two memory samples of :func:`parallel_array_memory`.
MEMORY_SAMPLE_INTERVAL = 0.005

# Goals from issue 5 ("Must reach"); see Row.targets for the sign convention.
PARALLEL_TARGETS = {
    "tiny processes": {"vs_joblib": 4, "time_vs_executor": -1.3},
    "tiny threads": {"vs_joblib": 10},
    "n_jobs=1": {"time_vs_loop": -3.0},
    "array argument": {"vs_joblib": 1.0, "mem_over_array": -2.2},
}

_PARALLEL = "parallel"

#: Prefixes of the memmap folders, followed by the pid of the process that made them.
MEMMAP_FOLDER_PREFIXES = {"joblite": "joblite_memmapping_{pid}@",
                          "joblib": "joblib_memmapping_folder_{pid}_"}


def tiny_task(x):
    """The tiny task: ``math.sqrt(x) * 0.5 + math.sin(x) * 0.25 + x``.

    About 0.15-0.2 µs a call in a plain loop (a loop over 100,000 takes
    15-20 ms, as the sequential loop of DESIGN.md's reference figures): the
    per-task overheads of the parallel cases are measured against that much
    work.  Without the ``sin`` term it takes about half as long.
    """
    return math.sqrt(x) * 0.5 + math.sin(x) * 0.25 + x


def busy_task(seconds):
    """Keep a CPU busy for `seconds` of this thread's CPU time (a ``time.thread_time`` spin).

    CPU time, not wall time: a task that waits for a CPU does not count that
    wait as work, so a busy machine slows it down as it would real work.

    Returns
    -------
    float
        `seconds`.
    """
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return seconds


def array_part_sum(a, part, parts):
    """``a[i0:i1].sum()`` over part `part` of `parts` equal slices of the 1-D array `a`."""
    start, stop = len(a) * part // parts, len(a) * (part + 1) // parts
    return float(a[start:stop].sum())


def full_array(value, count):
    """``np.full(count, value, dtype=np.float64)``: a result of ``8 * count`` bytes."""
    import numpy as np

    return np.full(count, value, dtype=np.float64)


def warm_up_array(a):
    """A copy of the first :data:`WARM_UP_ARRAY_BYTES` bytes of `a`, for the warm-up call.

    Large enough to be memory-mapped, so that the warm-up also runs each
    library's memmapping code once, in the caller and in the workers (whose
    first memory-mapped argument imports numpy's loading code): neither that
    nor the workers' start is timed or counted as the call's memory.
    """
    return a[:WARM_UP_ARRAY_BYTES // a.itemsize].copy()


def parallel_impls():
    """The libraries compared, by implementation name.

    Returns
    -------
    dict of str to module or None
        ``'joblite'`` and ``'joblib'`` (``None`` when not installed); both
        have ``Parallel`` and ``delayed``.
    """
    import joblite

    return {"joblite": joblite, "joblib": _optional_module("joblib")}


# The calls timed; each returns a function of no argument that makes one call.
# They are written as a user writes them, the same for both libraries.

def tiny_tasks_call(lib, count, **parallel_kwargs):
    """``lib.Parallel(**parallel_kwargs)(lib.delayed(tiny_task)(x) for x in range(count))``."""
    Parallel, delayed = lib.Parallel, lib.delayed
    return lambda: Parallel(**parallel_kwargs)(delayed(tiny_task)(x) for x in range(count))


def tiny_tasks_loop(count):
    """The plain loop: ``[tiny_task(x) for x in range(count)]``."""
    return lambda: [tiny_task(x) for x in range(count)]


def tiny_tasks_executor_call(executor, count):
    """``list(executor.map(tiny_task, range(count), chunksize=EXECUTOR_CHUNKSIZE))``."""
    return lambda: list(executor.map(tiny_task, range(count), chunksize=EXECUTOR_CHUNKSIZE))


def busy_tasks_call(lib, count, **parallel_kwargs):
    """`count` tasks of :data:`BUSY_SECONDS` each, :func:`busy_task`, with ``lib.Parallel``."""
    Parallel, delayed = lib.Parallel, lib.delayed
    return lambda: Parallel(**parallel_kwargs)(delayed(busy_task)(BUSY_SECONDS) for _ in range(count))


def array_argument_call(lib, a, tasks, **parallel_kwargs):
    """`tasks` tasks :func:`array_part_sum` ``(a, i, tasks)``, each given the whole array `a`."""
    Parallel, delayed = lib.Parallel, lib.delayed
    return lambda: Parallel(**parallel_kwargs)(delayed(array_part_sum)(a, i, tasks) for i in range(tasks))


def array_results_call(lib, tasks, count, **parallel_kwargs):
    """`tasks` tasks :func:`full_array` ``(i, count)``, each returning ``8 * count`` bytes."""
    Parallel, delayed = lib.Parallel, lib.delayed
    return lambda: Parallel(**parallel_kwargs)(delayed(full_array)(i, count) for i in range(tasks))


def best_times_in_turns(calls, repeat=3, budget=None, check=None):
    """Best wall time of each of several calls, the calls taking turns.

    Round ``i`` calls every function once, in an order rotated by ``i``, so
    that a slow period of the machine weighs on all alike.

    Parameters
    ----------
    calls : dict of str to callable
        Called with no arguments.
    repeat : int, default 3
        Rounds.
    budget : float, optional
        Seconds: a function whose calls so far took longer is not called in
        the next rounds (it is always called once).
    check : callable, optional
        ``check(key, result)`` after the first call of each function; raises
        if the result is wrong.

    Returns
    -------
    dict of str to float
        The shortest call of each function, in seconds.
    """
    best = dict.fromkeys(calls, float("inf"))
    spent = dict.fromkeys(calls, 0.0)
    order = list(calls)
    for round_ in range(max(1, repeat)):
        for key in order[round_ % len(order):] + order[:round_ % len(order)]:
            if round_ and budget is not None and spent[key] > budget:
                continue
            start = time.perf_counter()
            result = calls[key]()
            elapsed = time.perf_counter() - start
            if check is not None and round_ == 0:
                check(key, result)
            del result
            best[key] = min(best[key], elapsed)
            spent[key] += elapsed
    return best


def _check_parallel(name, key, same):
    if not same:
        raise RuntimeError(f"parallel benchmark, {name}: {key} returned other results than the "
                           "tasks compute; its figures would be meaningless")


def _parallel_rows(name, calls, missing, seconds, nbytes=None):
    """One Row per implementation: the timed ones, then those not installed."""
    rows = [Row(_PARALLEL, name, impl, seconds[impl], nbytes, _gib_per_s(nbytes, seconds[impl]))
            for impl in calls]
    return rows + [Row(_PARALLEL, name, impl, note="not installed") for impl in missing]


def _time_parallel_case(name, calls, warm_ups, check, repeat, budget, missing=(), nbytes=None):
    """Warm up, time `calls` in turns, return the rows (ratios set by the caller)."""
    for warm in warm_ups:
        warm()
    _progress(f"  parallel: {name}, {', '.join(calls)} in turns")
    seconds = best_times_in_turns(calls, repeat, budget, check)
    return _parallel_rows(name, calls, missing, seconds, nbytes)


def _time_ratio(rows, key, base, targets=None):
    """joblite's and joblib's ``key``: their time over `base`'s (lower is better); joblite's targets."""
    by_impl = {row.impl: row for row in rows}
    for impl in ("joblite", "joblib"):
        row = by_impl.get(impl)
        if row is not None and row.seconds is not None and base in by_impl:
            row.ratios[key] = _ratio(row.seconds, by_impl[base].seconds)
    if targets:
        by_impl["joblite"].targets.update(targets)


#: Note on joblib's process rows when the standalone loky was imported before joblib's workers started.
LOKY_FIRST_NOTE = ("loky was imported before joblib's workers started: joblib's workers are the "
                   "standalone loky's, which breaks the clean-up of joblib's memmaps")


def start_joblib_workers_first(libs, kwargs):
    """Start joblib's worker processes before anything imports the standalone ``loky``.

    joblib 1.6 vendors loky, and both copies register their process context
    under the name ``'loky'`` in ``multiprocessing``: a joblib pool started
    after ``import loky`` (as joblite's process backend does) runs the
    standalone loky's workers, whose resource tracker is not joblib's; joblib
    then cannot count the users of its memmapped files, retries removing its
    folder for a second at the end of every call with a large array, and
    leaves it until exit.  A joblib user does not have two lokys in one
    process, so the bench starts joblib's workers first (with the ``Parallel``
    arguments of every process case, so that joblib keeps them), and its
    figures are joblib's own.

    Parameters
    ----------
    libs : dict of str to module
        From :func:`parallel_impls`, installed ones only.
    kwargs : dict
        ``Parallel`` arguments of the process cases.

    Returns
    -------
    bool
        Whether the standalone loky was already imported (joblib's figures may
        then be off; the rows say so).
    """
    loky_first = "loky" in sys.modules
    if "joblib" in libs:
        _progress("  parallel: starting joblib's worker processes")
        tiny_tasks_call(libs["joblib"], 100, **kwargs)()
    return loky_first


def tiny_process_rows(libs, missing, sizes, kwargs):
    """100k tiny tasks on 2 processes: joblite, joblib (loky), a chunked ProcessPoolExecutor.map.

    `kwargs` are the ``Parallel`` arguments of every process case (``n_jobs``,
    ``temp_folder``), the same throughout, so that each library keeps its workers.
    """
    from concurrent.futures import ProcessPoolExecutor

    count = sizes["tiny"]
    name = f"{count:,} tiny tasks, {PARALLEL_N_JOBS} processes"
    expected = tiny_tasks_loop(count)()
    with ProcessPoolExecutor(PARALLEL_N_JOBS) as executor:
        calls = {impl: tiny_tasks_call(lib, count, **kwargs) for impl, lib in libs.items()}
        calls["executor"] = tiny_tasks_executor_call(executor, count)
        warm_ups = [tiny_tasks_call(lib, 100, **kwargs) for lib in libs.values()]
        # all the executor's workers started (map submits every chunk at once)
        warm_ups.append(lambda: list(executor.map(tiny_task, range(100), chunksize=10)))
        rows = _time_parallel_case(name, calls, warm_ups,
                                   lambda key, result: _check_parallel(name, key, result == expected),
                                   sizes["repeat"], sizes["budget"], missing)
    _speedups(rows, {"vs_joblib": "joblib"}, {})
    _time_ratio(rows, "time_vs_executor", "executor", PARALLEL_TARGETS["tiny processes"])
    return rows


def tiny_thread_rows(libs, missing, sizes):
    """The tiny tasks on 2 threads: joblite's threading backend against joblib's."""
    count = sizes["tiny"]
    name = f"{count:,} tiny tasks, {PARALLEL_N_JOBS} threads"
    expected = tiny_tasks_loop(count)()
    kwargs = {"n_jobs": PARALLEL_N_JOBS, "backend": "threading"}
    calls = {impl: tiny_tasks_call(lib, count, **kwargs) for impl, lib in libs.items()}
    warm_ups = [tiny_tasks_call(lib, 100, **kwargs) for lib in libs.values()]
    rows = _time_parallel_case(name, calls, warm_ups,
                               lambda key, result: _check_parallel(name, key, result == expected),
                               sizes["repeat"], sizes["budget"], missing)
    _speedups(rows, {"vs_joblib": "joblib"}, PARALLEL_TARGETS["tiny threads"])
    return rows


def busy_task_rows(libs, missing, sizes, kwargs):
    """1,000 tasks of 1 ms of busy CPU on 2 processes; the plain loop (1 CPU) for reference."""
    count = sizes["busy"]
    name = f"{count:,} tasks of {BUSY_SECONDS * 1e3:g} ms (busy loop), {PARALLEL_N_JOBS} processes"
    calls = {impl: busy_tasks_call(lib, count, **kwargs) for impl, lib in libs.items()}
    warm_ups = [busy_tasks_call(lib, 10, **kwargs) for lib in libs.values()]
    rows = _time_parallel_case(name, calls, warm_ups,
                               lambda key, result: _check_parallel(name, key, len(result) == count),
                               sizes["busy_repeat"], sizes["budget"], missing)
    _progress(f"  parallel: {name}, plain loop")
    loop = best_time(lambda: [busy_task(BUSY_SECONDS) for _ in range(count)], 1)
    rows.insert(len(calls), Row(_PARALLEL, name, "loop", loop))
    _speedups(rows, {"vs_joblib": "joblib"}, {})
    _time_ratio(rows, "time_vs_loop", "loop")
    return rows


def array_argument_rows(libs, missing, sizes, kwargs):
    """8 tasks on one 256 MiB float64 array argument: time, and peak memory in fresh processes."""
    import numpy as np

    nbytes, tasks = sizes["array_mib"] * MIB, sizes["array_tasks"]
    name = f"{tasks} tasks on one {_size_label(nbytes)} f64 array, {PARALLEL_N_JOBS} processes"
    _progress(f"  parallel: building a {_size_label(nbytes)} float64 array")
    a = random_f64(nbytes)
    total = float(a.sum())
    small = warm_up_array(a)
    calls = {impl: array_argument_call(lib, a, tasks, **kwargs) for impl, lib in libs.items()}
    warm_ups = [array_argument_call(lib, small, tasks, **kwargs) for lib in libs.values()]
    rows = _time_parallel_case(
        name, calls, warm_ups,
        lambda key, result: _check_parallel(name, key, bool(np.isclose(sum(result), total))),
        sizes["array_repeat"], sizes["budget"], missing, nbytes)
    del a, small, calls
    gc.collect()
    for row in rows:
        if row.seconds is None:
            continue
        _progress(f"  parallel: {name}, peak memory with {row.impl} in a fresh process")
        figures = parallel_array_memory(row.impl, nbytes, tasks, kwargs.get("temp_folder"))
        if "error" in figures:
            row.note = f"peak memory not measured: {figures['error']}"
            continue
        row.ratios["mem_over_array"] = figures["mem_over_array"]
        row.ratios["total_mem_over_array"] = figures["total_over_array"]
        row.note = _memory_note(figures)
    _speedups(rows, {"vs_joblib": "joblib"}, PARALLEL_TARGETS["array argument"])
    return rows


def _memory_note(figures):
    mib = lambda value: f"{value / MIB:.0f} MiB"  # noqa: E731
    peak = figures["at_peak"]
    note = (f"peak {mib(figures['peak'])} = caller {mib(peak['caller'])} + workers "
            f"{mib(peak['workers'])} + memmap folder {mib(peak['folder'])}; before the call "
            f"{mib(figures['idle'])} (array {mib(figures['nbytes'])}); "
            f"{figures['samples']} samples")
    if figures["left"]:
        note += (f"; {len(figures['left'])} memmap folder(s) still there after the call, "
                 f"{mib(sum(figures['left'].values()))} in them")
    return note


def array_result_rows(libs, missing, sizes, kwargs):
    """16 tasks each returning an 8 MiB float64 array, on 2 processes."""
    import numpy as np

    tasks, count = sizes["results"], sizes["result_mib"] * MIB // 8
    nbytes = tasks * count * 8
    name = f"{tasks} tasks returning {_size_label(count * 8)} f64 arrays, {PARALLEL_N_JOBS} processes"
    calls = {impl: array_results_call(lib, tasks, count, **kwargs) for impl, lib in libs.items()}
    warm_ups = [array_results_call(lib, 2, 10, **kwargs) for lib in libs.values()]

    def check(key, results):
        _check_parallel(name, key, len(results) == tasks and all(
            isinstance(r, np.ndarray) and r.shape == (count,) and r[0] == i and r[-1] == i
            for i, r in enumerate(results)))

    rows = _time_parallel_case(name, calls, warm_ups, check, sizes["repeat"], sizes["budget"],
                               missing, nbytes)
    _speedups(rows, {"vs_joblib": "joblib"}, {})
    return rows


def sequential_rows(libs, missing, sizes):
    """``n_jobs=1`` on the tiny tasks against the plain loop ``[f(x) for x in xs]``."""
    count = sizes["tiny"]
    name = f"{count:,} tiny tasks, n_jobs=1"
    loop = tiny_tasks_loop(count)
    expected = loop()
    calls = {impl: tiny_tasks_call(lib, count, n_jobs=1) for impl, lib in libs.items()}
    calls["loop"] = loop
    warm_ups = [tiny_tasks_call(lib, 100, n_jobs=1) for lib in libs.values()]
    rows = _time_parallel_case(name, calls, warm_ups,
                               lambda key, result: _check_parallel(name, key, result == expected),
                               sizes["repeat"], sizes["budget"], missing)
    _speedups(rows, {"vs_joblib": "joblib"}, {})
    _time_ratio(rows, "time_vs_loop", "loop", PARALLEL_TARGETS["n_jobs=1"])
    return rows


# -- memory of the array-argument case, in a fresh process ----------------------

def _pss_anon(pid):
    """Bytes of anonymous memory of `pid`, proportional share (``Pss_Anon``); 0 if it ended."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as file:
            for line in file:
                if line.startswith(b"Pss_Anon:"):
                    return int(line.split()[1]) * 1024
    except (ProcessLookupError, FileNotFoundError):
        return 0
    raise OSError(f"/proc/{pid}/smaps_rollup has no Pss_Anon line (Linux 5.x or later needed)")


def _children(pid):
    """Process ids of the children of `pid` (all its threads'), from /proc."""
    found = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as file:
                found += [int(child) for child in file.read().split()]
        except OSError:
            pass
    return found


def _descendants(pid):
    found, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


def memmap_folder_parents(temp_folder=None):
    """The folders where joblite and joblib may make their memmap folders.

    `temp_folder` when given; else ``/dev/shm``, the system's temporary
    folder and the folders named by ``JOBLITE_TEMP_FOLDER`` and
    ``JOBLIB_TEMP_FOLDER``.
    """
    import tempfile

    if temp_folder is not None:
        return [os.fspath(temp_folder)]
    parents = ["/dev/shm", tempfile.gettempdir()]
    parents += [os.environ[name] for name in ("JOBLITE_TEMP_FOLDER", "JOBLIB_TEMP_FOLDER")
                if os.environ.get(name)]
    return [parent for i, parent in enumerate(parents) if parent not in parents[:i]]


def memmap_folders(parents, pid):
    """Paths of the memmap folders that process `pid` made (joblite's and joblib's) in `parents`."""
    prefixes = tuple(prefix.format(pid=pid) for prefix in MEMMAP_FOLDER_PREFIXES.values())
    found = []
    for parent in parents:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        found += [os.path.join(parent, name) for name in names if name.startswith(prefixes)]
    return found


def _allocated_bytes(folder):
    """Bytes allocated to the files under `folder` (``st_blocks``); 0 for what vanishes meanwhile."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


class _MemorySampler:
    """Samples, in a background thread, the memory of this process, its children and memmap folders.

    One sample is ``(caller, workers, folder)`` in bytes: the ``Pss_Anon`` of
    this process, the sum of the ``Pss_Anon`` of its descendants, and the
    bytes allocated to the memmap folders this process made in `parents`.
    """

    def __init__(self, parents, interval=MEMORY_SAMPLE_INTERVAL):
        import threading

        self.parents = parents
        self.interval = interval
        self.pid = os.getpid()
        self.peak = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="joblite-bench-memory", daemon=True)
        self._error = None

    def sample(self):
        caller = _pss_anon(self.pid)
        workers = sum(_pss_anon(pid) for pid in _descendants(self.pid))
        folder = sum(_allocated_bytes(path) for path in memmap_folders(self.parents, self.pid))
        return caller, workers, folder

    def _record(self):
        sample = self.sample()
        self.samples += 1
        if self.peak is None or sum(sample) > sum(self.peak):
            self.peak = sample

    def _run(self):
        try:
            while not self._stop.wait(self.interval):
                self._record()
        except BaseException as exc:   # reported by stop()
            self._error = exc

    def __enter__(self):
        self._record()
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._record()


def parallel_memory_child(argv):
    """Body of the fresh process of :func:`parallel_array_memory`; prints its figures as JSON.

    Parameters
    ----------
    argv : list of str
        ``[impl, nbytes, tasks, temp_folder]``; `temp_folder` ``''`` for the
        library's default.
    """
    import importlib

    impl, nbytes, tasks, temp_folder = argv[0], int(argv[1]), int(argv[2]), argv[3] or None
    lib = importlib.import_module(impl)
    kwargs = {"n_jobs": PARALLEL_N_JOBS}
    if temp_folder is not None:
        kwargs["temp_folder"] = temp_folder
    a = random_f64(nbytes)
    total = float(a.sum())
    array_argument_call(lib, warm_up_array(a), tasks, **kwargs)()   # workers started, memmapping ready
    call = array_argument_call(lib, a, tasks, **kwargs)
    gc.collect()
    sampler = _MemorySampler(memmap_folder_parents(temp_folder))
    idle_parts = min((sampler.sample() for _ in range(3)), key=sum)
    idle = sum(idle_parts)
    with sampler:
        results = call()
    if not abs(sum(results) - total) <= 1e-9 * abs(total):
        raise RuntimeError(f"{impl}: the tasks' sums do not add up to a.sum()")
    peak = sum(sampler.peak)
    left = {os.path.basename(path): _allocated_bytes(path)
            for path in memmap_folders(sampler.parents, sampler.pid)}
    print(json.dumps({
        "nbytes": nbytes, "idle": idle, "peak": peak, "samples": sampler.samples, "left": left,
        "at_peak": dict(zip(("caller", "workers", "folder"), sampler.peak)),
        "before": dict(zip(("caller", "workers", "folder"), idle_parts)),
        "mem_over_array": (nbytes + peak - idle) / nbytes,
        "total_over_array": peak / nbytes,
    }))


def parallel_array_memory(impl, nbytes, tasks, temp_folder=None):
    """Peak memory of one call of :func:`array_argument_call`, measured in a fresh process.

    The process builds the random float64 array of `nbytes` bytes, warms up
    the workers (one small call), then makes the call while a background
    thread samples, every :data:`MEMORY_SAMPLE_INTERVAL` seconds, the
    anonymous memory (``Pss_Anon`` of ``/proc/<pid>/smaps_rollup``) of the
    process and of its children (the workers), plus the bytes of the memmap
    folders the process made.  The memmapped files are counted once, as the
    folder's bytes: in the workers they are shared file pages, not anonymous
    memory; shared libraries are not counted.

    Parameters
    ----------
    impl : {'joblite', 'joblib'}
    nbytes : int
        Bytes of the array.
    tasks : int
        Tasks of the call, each given the whole array.
    temp_folder : str, optional
        ``temp_folder`` of ``Parallel``; the library's default when None.

    Returns
    -------
    dict
        ``mem_over_array``: (the array + what the call adds to the memory
        of the process, the workers and the memmap folder, at its peak) /
        `nbytes`: 2.0 is the array plus one copy in the folder;
        ``total_over_array``: the peak of the whole (interpreters included)
        / `nbytes`; ``idle``, ``peak`` (bytes), ``at_peak`` (its parts),
        ``samples``, ``left`` (memmap folders still there right after the
        call: name -> bytes in them).
        ``error`` instead when the measure failed (not Linux, an old kernel).
    """
    import joblite

    if not os.path.exists("/proc/self/smaps_rollup"):
        return {"error": "needs Linux's /proc/<pid>/smaps_rollup"}
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    code = "import sys; from joblite.bench import parallel_memory_child; parallel_memory_child(sys.argv[1:])"
    result = subprocess.run([sys.executable, "-c", code, impl, str(nbytes), str(tasks), temp_folder or ""],
                            capture_output=True, text=True, env=env)
    if result.returncode:
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"subprocess failed: {tail}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def parallel_section(quick=False, tmpdir=None):
    """Time ``Parallel`` of joblite against joblib's on the same workloads, in the same run.

    The workload (sizes for the default run; ``quick`` uses 10,000 tiny
    tasks, 200 busy tasks, a 64 MiB array and 4 results), each timed for
    joblite and joblib with ``Parallel(n_jobs=2)(delayed(f)(x) for x in
    ...)`` as a user writes it, their calls taking turns, best of repeats:

    * 100,000 tiny tasks (:func:`tiny_task`, about 0.2 µs each) on
      2 processes (loky, both libraries' default), and the stdlib
      ``ProcessPoolExecutor(2).map(f, xs, chunksize=1000)``;
    * the same on 2 threads (``backend='threading'``);
    * 1,000 tasks of 1 ms of busy CPU (:func:`busy_task`, a spin on the
      thread's CPU time, not a sleep: both CPUs are busy, so every bit of
      overhead shows) on 2 processes, and the plain loop (one CPU; the ideal
      on two is half of it);
    * 8 tasks :func:`array_part_sum` on one 256 MiB random float64 array
      argument (each task gets the whole array and sums an eighth of it) on
      2 processes; and the peak memory of such a call, measured in a fresh
      process per library (see :func:`parallel_array_memory`);
    * 16 tasks each returning an 8 MiB float64 array (:func:`full_array`);
    * ``n_jobs=1`` on the tiny tasks against the plain loop
      ``[tiny_task(x) for x in xs]``.

    Worker processes (and threads) are warmed up first: one small call with
    the same settings before the timing, so that neither library's worker
    start-up is timed.  Every timed call's results are checked once.  The
    pools stay up between calls, as each library keeps them.

    Parameters
    ----------
    quick : bool, default False
        Small sizes and fewer repeats, to run in a few seconds plus the start
        of the worker processes.
    tmpdir : str, optional
        When given, the memmap folders of both libraries go under a fresh
        folder made in it (``temp_folder``), removed at the end; otherwise
        each library chooses as it does for its users (``/dev/shm`` when it
        has room).

    Returns
    -------
    list of Row
        Ratios: ``vs_joblib`` (times faster than joblib), ``time_vs_executor``
        and ``time_vs_loop`` (time over the baseline's, lower is better),
        ``mem_over_array`` (peak memory of the array case: the array plus what
        the call adds, over the array size; the targeted figure) and
        ``total_mem_over_array`` (the whole peak, interpreters included, over
        the array size).
    """
    import tempfile

    sizes = PARALLEL_SIZES["quick" if quick else "full"]
    impls = parallel_impls()
    libs = {impl: lib for impl, lib in impls.items() if lib is not None}
    missing = [impl for impl, lib in impls.items() if lib is None]
    folder = tempfile.mkdtemp(prefix="joblite-bench-", dir=tmpdir) if tmpdir is not None else None
    kwargs = {"n_jobs": PARALLEL_N_JOBS}
    if folder is not None:
        kwargs["temp_folder"] = folder
    rows = []
    try:
        _progress(f"parallel: memmap folders in {folder or 'each library default temp folder'}")
        loky_first = start_joblib_workers_first(libs, kwargs)
        rows += tiny_process_rows(libs, missing, sizes, kwargs)
        rows += tiny_thread_rows(libs, missing, sizes)
        rows += busy_task_rows(libs, missing, sizes, kwargs)
        rows += array_argument_rows(libs, missing, sizes, kwargs)
        gc.collect()
        rows += array_result_rows(libs, missing, sizes, kwargs)
        gc.collect()
        rows += sequential_rows(libs, missing, sizes)
    finally:
        if folder is not None:
            _rmtree(folder)
    if loky_first:
        for row in rows:
            if row.impl == "joblib" and row.seconds is not None and "processes" in row.name:
                row.note = "; ".join(filter(None, [row.note, LOKY_FIRST_NOTE]))
    if not _with_ext():
        for row in rows:
            if row.impl == "joblite" and row.targets:
                targets = {key: value for key, value in row.targets.items() if key == "mem_over_array"}
                targets.update(PURE_TARGETS)
                row.targets = targets
    return rows


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
    "persistence": persistence_section,
    "memory": memory_section,
    "parallel": parallel_section,
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


_IMPL_LABELS = {"pure": "joblite pure twin", "tokenize": "dask tokenize",
                "pickle": "pickle p5", "executor": "ProcessPoolExecutor.map chunksize=1000",
                "loop": "plain loop"}

# (ratio key, column title, meaning); the table shows the columns its rows use.
_RATIO_COLUMNS = [
    ("vs_joblib", "x joblib",
     "times faster than joblib (compressed cases: than joblib zlib-3)"),
    ("vs_tokenize", "x tokenize", "times faster than dask tokenize"),
    ("vs_numpy", "x numpy", "times faster than np.save / np.load"),
    ("vs_memory_read", "/ a.sum()", "GiB/s over the a.sum() memory-read GiB/s"),
    ("time_vs_joblib", "t / joblib",
     "import time over joblib's, interpreter start-up subtracted (lower is better)"),
    ("time_vs_pickle", "t / pickle", "time over pickle protocol 5's (lower is better)"),
    ("ms", "ms", "milliseconds per call (memory-mapped loads)"),
    ("compression_ratio", "raw/file", "compression ratio: array bytes over file bytes"),
    ("size_vs_joblib", "raw/file / joblib",
     "compression ratio over joblib zlib-3's on the same data"),
    ("peak_over_result", "peak / result",
     "peak memory of the load in a fresh process, over the size of its result"),
    ("time_vs_executor", "t / executor",
     "time over the stdlib ProcessPoolExecutor.map's, chunksize=1000 (lower is better)"),
    ("time_vs_loop", "t / loop",
     "time over the plain loop's [f(x) for x in xs] in the caller (lower is better)"),
    ("mem_over_array", "mem / array",
     "peak memory of a call in a fresh process (the array plus what the call adds to the caller, "
     "the workers and the memmap folder) over the array's size"),
    ("total_mem_over_array", "all mem / array",
     "the same with the interpreters' own memory (caller and workers before the call) counted"),
]


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
    columns = [column for column in _RATIO_COLUMNS
               if any(column[0] in row.ratios for row in rows)]
    header = ["case", "impl", "time", "GiB/s"] + [title for _, title, _ in columns]
    header.append("target")
    table = [header]
    for row in rows:
        cells = [row.name, _impl_label(row.impl, facts), _format_seconds(row.seconds),
                 _format_number(row.gib_per_s) if row.nbytes is not None else ""]
        cells += [_format_number(row.ratios.get(key), "") if key in row.ratios else ""
                  for key, _, _ in columns]
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
    for _, title, meaning in columns:
        lines.append(f"{title}: {meaning};")
    lines.append("target: goal of the issue (hashing: issue 2, persistence: issue 3, memory: issue 9, "
                 "parallel: issue 5) and whether it is met.")
    notes = [row for row in rows if row.note]
    if notes:
        lines.append("")
        lines.append("notes:")
        lines += [f"  {row.name}, {_impl_label(row.impl, facts)}: {row.note}" for row in notes]
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


def run(sections=None, quick=False, as_json=False, file=None, tmpdir=None):
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
    tmpdir : str, optional
        Where sections that write files (persistence, memory) make their temporary
        folder; the system's temporary directory by default.  The parallel
        section puts its memmap folders there when it is given.

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
        section = SECTIONS[name]
        options = {}
        if "tmpdir" in inspect.signature(section).parameters:
            options["tmpdir"] = tmpdir
        rows += section(quick=quick, **options)
    text = to_json(rows, facts) if as_json else format_table(rows, facts)
    print(text, file=file or sys.stdout)
    return rows


def main(args):
    """Entry point of ``python -m joblite bench``.

    Parameters
    ----------
    args : argparse.Namespace
        With ``quick``, ``json``, ``section`` (list of str or None) and
        optionally ``tmpdir`` (str or None; when absent or None, the
        ``JOBLITE_BENCH_TMPDIR`` environment variable, then the system's
        temporary directory).

    Returns
    -------
    int
        Exit status, 0.
    """
    tmpdir = getattr(args, "tmpdir", None) or os.environ.get("JOBLITE_BENCH_TMPDIR") or None
    run(sections=args.section, quick=args.quick, as_json=args.json, tmpdir=tmpdir)
    return 0
