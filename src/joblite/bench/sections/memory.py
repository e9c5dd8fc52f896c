"""Section ``memory``: ``joblite.Memory`` against ``joblib.Memory``, cache hits and misses."""

import functools
import gc
import itertools
import os
import shutil

from ..report import MIB, Row, add_speedups, gib_per_s, progress, pure_twin_targets, size_label
from ..timing import best_time, fill_in_turns, per_call_in_turns
from ..workloads import (
    MEMORY_CALLS,
    SMALL_ARGS,
    memory_array_argument,
    memory_array_result,
    memory_impls,
    memory_small,
    random_f64,
)
from .memory_store import large_store_rows

__all__ = ["MEMORY_SIZES", "MEMORY_TARGETS", "memory_section"]

SECTION = "memory"

# Sizes of the memory workload.  'quick' runs in a few seconds: 16 MiB arrays.
# 'repeat' is the most calls per figure of the array cases (best counts; the
# fast implementation gets two more) and 'budget' (seconds) stops the repeats
# of slow calls early; 'loops' and 'loop_seconds' are the number of timed
# loops and the wanted duration of one loop of the per-call hit figures (see
# per_call_time).  Misses are timed over the first 'fill' entries of a new
# cache (blocks of 'fill_block' calls), then in that cache; they write files,
# and the file system's latency comes in bursts on a busy machine: that figure
# is the best of many short loops ('miss_loops' of 'miss_loop_seconds').
# 'large_stores': whether to build the stores of a million entries (minutes;
# see memory_store), in the full run only.
MEMORY_SIZES = {
    "full": {
        "array_mib": 1024,
        "repeat": 5,
        "budget": 6.0,
        "mmap_repeat": 25,
        "loops": 5,
        "loop_seconds": 0.2,
        "fill": 2000,
        "fill_block": 100,
        "miss_loops": 20,
        "miss_loop_seconds": 0.02,
        "large_stores": True,
    },
    "quick": {
        "array_mib": 16,
        "repeat": 3,
        "budget": 0.5,
        "mmap_repeat": 10,
        "loops": 3,
        "loop_seconds": 0.05,
        "fill": 300,
        "fill_block": 50,
        "miss_loops": 6,
        "miss_loop_seconds": 0.01,
        "large_stores": False,
    },
}

# Goals from issue 9; see Row.targets for the sign convention.
MEMORY_TARGETS = {
    "hit small args": {"us_per_call": -25.0, "vs_joblib": 10},
    "hit array argument": {"vs_joblib": 10},
    "hit array result mmap": {"ms": -2.0},
    "miss small args": {"vs_joblib": 3},
}


def _memory_rows(name, impls):
    """Rows of implementations that are not installed, and the available ones."""
    missing = [Row(SECTION, name, impl, note="not installed") for impl, cls in impls.items() if cls is None]
    return missing, {impl: cls for impl, cls in impls.items() if cls is not None}


def _check_calls(key, expected, name, impl):
    """Raise if the cached function ran another number of times than `expected`."""
    if MEMORY_CALLS[key] != expected:
        raise RuntimeError(
            f"memory benchmark, {name}: {impl} ran the function "
            f"{MEMORY_CALLS[key] - expected:+d} times more than a "
            f"{'hit' if name.startswith('hit') else 'miss'} would; its figures "
            "would be meaningless"
        )


def _per_call_rows(name, seconds):
    """One row per implementation of per-call times `seconds`, with ``us_per_call``."""
    return [Row(SECTION, name, impl, seconds[impl], ratios={"us_per_call": seconds[impl] * 1e6}) for impl in seconds]


def memory_small_rows(impls, folder, sizes):
    """Cache hits and misses of ``f(1, 2.0, 'abc', x=3)``, time per call.

    Each implementation caches :func:`~joblite.bench.workloads.memory_small`
    in its own fresh folder under `folder`, with ``verbose=0``.  The hit is
    timed after a first call that stores the entry.  A miss calls
    ``f(i, 2.0, 'abc', x=3)`` with a new ``i`` on every call (the same
    sequence for every implementation), so each call hashes, finds no entry,
    runs the function and stores its result and metadata.  Misses are timed
    twice: over the first ``sizes['fill']`` entries of the new cache (one
    pass, in blocks of ``sizes['fill_block']`` calls taking turns; joblite
    makes its 256 shard folders then), and then in that cache (best loop,
    :func:`~joblite.bench.timing.per_call_in_turns`): the targeted figure, a
    cache in use.  Dirty pages are written back (``os.sync``) before each, so
    that earlier work's write-back does not stall the file creations being
    timed.

    Returns
    -------
    list of Row
        Hit rows then miss rows; ``us_per_call`` and, for joblite,
        ``vs_joblib``.
    """
    args, kwargs = SMALL_ARGS
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
    progress(f"  memory: {hit_name}, {', '.join(funcs)} in turns")
    expected = MEMORY_CALLS["small"]
    seconds = per_call_in_turns(
        {impl: functools.partial(func, *args, **kwargs) for impl, func in funcs.items()},
        sizes["loops"],
        sizes["loop_seconds"],
    )
    _check_calls("small", expected, hit_name, ", ".join(funcs))
    hits += _per_call_rows(hit_name, seconds)
    fresh = {impl: itertools.count(2) for impl in funcs}  # 1 is the entry of the hits

    def miss(impl):
        func, count = funcs[impl], fresh[impl]
        return lambda: func(next(count), *args[1:], **kwargs)

    for rows, name in ((fills, fill_name), (misses, miss_name)):
        progress(f"  memory: {name}, {', '.join(funcs)} in turns")
        # Misses create files: the write-back of earlier work (the previous
        # cases, another run's GiB files) would stall those creations at random.
        os.sync()
        if rows is fills:
            seconds = fill_in_turns({impl: miss(impl) for impl in funcs}, sizes["fill"], sizes["fill_block"])
        else:
            seconds = per_call_in_turns(
                {impl: miss(impl) for impl in funcs}, sizes["miss_loops"], sizes["miss_loop_seconds"]
            )
        rows += _per_call_rows(name, seconds)
    calls = sum(next(count) - 2 for count in fresh.values())
    _check_calls("small", expected + calls, miss_name, ", ".join(funcs))
    for impl in funcs:
        shutil.rmtree(os.path.join(folder, f"small-{impl}"), ignore_errors=True)
    add_speedups(hits, {"vs_joblib": "joblib"}, MEMORY_TARGETS["hit small args"])
    add_speedups(fills, {"vs_joblib": "joblib"}, {})
    add_speedups(misses, {"vs_joblib": "joblib"}, MEMORY_TARGETS["miss small args"])
    return hits + fills + misses


def memory_array_argument_rows(impls, folder, sizes, nbytes):
    """Cache hit of ``memory_array_argument`` on a random float64 array of `nbytes` bytes.

    The cached function is :func:`~joblite.bench.workloads.memory_array_argument`;
    the call's time is mostly hashing the argument (the result is small).

    Returns
    -------
    list of Row
        With GiB/s (argument bytes per second); joblite's row has ``vs_joblib``.
    """
    name = f"hit: {size_label(nbytes)} f64 array argument"
    rows, available = _memory_rows(name, impls)
    progress(f"  memory: building a {size_label(nbytes)} float64 array")
    a = random_f64(nbytes)
    for impl, memory_class in available.items():
        location = os.path.join(folder, f"array-argument-{impl}")
        func = memory_class(location, verbose=0).cache(memory_array_argument)
        progress(f"  memory: {name} with {impl}")
        func(a)  # the miss that stores the entry
        expected = MEMORY_CALLS["array_argument"]
        repeat = sizes["repeat"] + 2 if impl == "joblite" else sizes["repeat"]
        seconds = best_time(lambda: func(a), repeat, sizes["budget"])
        _check_calls("array_argument", expected, name, impl)
        rows.append(Row(SECTION, name, impl, seconds, nbytes, gib_per_s(nbytes, seconds)))
        shutil.rmtree(location, ignore_errors=True)
    add_speedups(rows, {"vs_joblib": "joblib"}, MEMORY_TARGETS["hit array argument"])
    return rows


def memory_array_result_rows(impls, folder, sizes, nbytes):
    """Cache hits of ``memory_array_result``: a random float64 array of `nbytes` bytes.

    The cached function is :func:`~joblite.bench.workloads.memory_array_result`.
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

    label = f"hit: returns {size_label(nbytes)} f64 array"
    mmap_name, load_name = f"{label}, mmap_mode='r'", f"{label}, no mmap"
    mmaps, available = _memory_rows(mmap_name, impls)
    loads, _ = _memory_rows(load_name, impls)
    head = random_f64(min(nbytes, MIB))  # the first MiB of the result, to check loads
    for impl, memory_class in available.items():
        location = os.path.join(folder, f"array-result-{impl}")
        plain = memory_class(location, verbose=0).cache(memory_array_result)
        mapped = memory_class(location, mmap_mode="r", verbose=0).cache(memory_array_result)
        progress(f"  memory: {label}: storing it with {impl}")
        plain(nbytes)  # the miss that computes and stores the entry
        gc.collect()
        expected = MEMORY_CALLS["array_result"]
        for func, mode in ((mapped, "r"), (plain, None)):
            loaded = func(nbytes)
            if not (
                isinstance(loaded, np.ndarray)
                and loaded.dtype == np.float64
                and loaded.shape == (nbytes // 8,)
                and isinstance(loaded, np.memmap) == bool(mode)
                and np.array_equal(loaded[: head.size], head)
            ):
                raise RuntimeError(
                    f"memory benchmark, {label} (mmap_mode={mode!r}): {impl} gave "
                    f"back {type(loaded).__name__} {getattr(loaded, 'shape', '')}, not "
                    "the stored array; its figures would be meaningless"
                )
            del loaded
        progress(f"  memory: {mmap_name} with {impl}")
        seconds = best_time(lambda: mapped(nbytes), sizes["mmap_repeat"])
        mmaps.append(Row(SECTION, mmap_name, impl, seconds, ratios={"ms": seconds * 1e3}))
        progress(f"  memory: {load_name} with {impl}")
        seconds = best_time(lambda: plain(nbytes), sizes["repeat"], sizes["budget"])
        loads.append(Row(SECTION, load_name, impl, seconds, nbytes, gib_per_s(nbytes, seconds)))
        _check_calls("array_result", expected, label, impl)
        shutil.rmtree(location, ignore_errors=True)
        gc.collect()
    add_speedups(mmaps, {"vs_joblib": "joblib"}, MEMORY_TARGETS["hit array result mmap"])
    add_speedups(loads, {"vs_joblib": "joblib"}, {})
    return mmaps + loads


def memory_section(context):
    """Time ``Memory`` of joblite against joblib's: cache hits and misses.

    The workload (seeded; sizes for the default run, ``quick`` uses 16 MiB
    arrays and fewer repeats), with the cached functions of
    :mod:`joblite.bench.workloads`:

    * a cache hit with small arguments, ``f(1, 2.0, 'abc', x=3)`` returning
      a small tuple (time per call, best loop of many calls);
    * a cache miss with small arguments, a new one each call: hashing, the
      lookup, the (trivial) function and storing its result and metadata, as
      each library does it at ``verbose=0`` (joblib also stores the repr of
      the arguments);
    * a cache hit whose argument is a 1 GiB random float64 array (the result
      is small): mostly hashing the argument;
    * a cache hit returning a 1 GiB random float64 array, loaded with
      ``mmap_mode='r'`` and without;
    * full run only: a store of 1,000,000 entries (joblib: 100,000) built by
      real cached calls in one process per core, its hits, misses, ``cache
      info``, ``ls`` and ``prune`` and ``reduce_size`` against a store of
      1,000 entries in the same run (:mod:`.memory_store`).

    Each library, each case, uses its own fresh cache folder under a fresh
    folder (:meth:`~joblite.bench.sections.Context.scratch_folder`), removed
    when the case (or the section) ends.  Every figure checks that hits did
    not run the function and that misses ran it once per call.

    Parameters
    ----------
    context : joblite.bench.sections.Context
        ``quick``: small sizes and fewer repeats; ``tmpdir``: where the
        cache folders are made.

    Returns
    -------
    list of Row
        Ratios: ``vs_joblib`` (times faster than joblib), ``us_per_call``
        for the small-argument cases and ``ms`` for the memory-mapped hit;
        for the large stores ``vs_small_store`` (times the 1,000-entry
        store's) and ``s`` (seconds of a command).
    """
    sizes = context.sizes(MEMORY_SIZES)
    nbytes = sizes["array_mib"] * MIB
    impls = memory_impls()
    rows = []
    with context.scratch_folder() as folder:
        progress(f"memory: cache folders in {folder}")
        rows += memory_small_rows(impls, folder, sizes)
        rows += memory_array_argument_rows(impls, folder, sizes, nbytes)
        gc.collect()
        rows += memory_array_result_rows(impls, folder, sizes, nbytes)
        pure_twin_targets(rows)
        if sizes["large_stores"]:  # their targets are about scale, the same for both twins
            rows += large_store_rows(folder)
    return rows
