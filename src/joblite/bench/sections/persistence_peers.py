"""The persistence section's peer: joblite's compressed ``dump``/``load`` against Blosc.

Blosc is what numeric-data users pick for compressed arrays: c-blosc through the ``blosc``
package, c-blosc2 through ``blosc2`` (the same codecs as in numcodecs, zarr and hdf5plugin).
joblite's ``'blosc-*'`` codecs stand on the same c-blosc, one Blosc buffer per chunk of a
block, the chunks shared by joblite's threads.  Each data kind is written and read four ways,
with the same codec (lz4), the same byte shuffle by the item size and the same number of
threads (2):

* ``joblite``: ``dump(value, path, compress=True)`` (``'blosc-lz4'``) and ``load(path)``;
* ``blosc file``: ``blosc.compress`` of the array's bytes, then one write of the result to a
  file; one read of the file, then ``blosc.decompress_ptr`` into a new array (the end-to-end
  baseline of issue 17);
* ``blosc memory``: the same compression and decompression, without the file;
* ``blosc2 file``: ``blosc2.asarray(value, urlpath=...)`` and ``blosc2.open(path)[:]``.

Blosc's level is its default, 5.  Each implementation runs in a process of its own
(:func:`peer_server` behind a :class:`~joblite.bench.children.ChildServer`), which loads
the array from a ``.npy`` file, makes one untimed dump and load, then times the calls it
is asked for (``time.perf_counter``, in that process) while the others wait.  Sharing one
process, the implementations changed each other's state: the ``blosc`` package's thread
pool (stopped by joblite's settings, started again by Blosc's), and the heap, where an
output array came from memory that an earlier call had mapped, or from fresh pages (a
16 MiB load of records: about 520 page faults and 1.4 ms more, on either side).  c-blosc's
16 MiB load of small integers took 1.3 ms in some processes and 2.2 ms in others, without
page faults; in processes of their own, 1.2 to 1.4 ms in all but one of about ten.  The processes take turns
(:func:`~joblite.bench.timing.best_times_in_turns`, ``peer_rounds`` rounds), the writers,
then the readers, so that a slow spell of the machine weighs on all of them alike:
``joblite`` and ``blosc file`` with each other, then ``blosc2 file`` and ``blosc memory``
(`_TURNS`).  In the full bench, ``peer_processes`` sets of processes share the rounds, one
set after the other, and the figures pool them; ``vs_blosc_process_low`` is the lowest of
the sets' own medians.  The rows give each file's compression ratio (``blosc memory``: that
of its compressed bytes), and the joblite rows ``vs_blosc``, how many times
faster than ``blosc file``: the median over the rounds of Blosc's time over joblite's in
the same round, steadier than the ratio of the best times, which may come from different
rounds (the lowest and highest of the rounds' ratios are ``vs_blosc_low`` and
``vs_blosc_high``); and ``size_vs_blosc`` (joblite's compression ratio over Blosc's).  The
other codecs (`PEER_VARIANTS`: bit shuffle, zstd) are compared with ``blosc file`` at the
same settings on the data kinds they are meant for.
"""

import contextlib
import os
import statistics
import time
from functools import partial

from ..._files import remove_if_exists
from ..report import Row, gib_per_s, progress, ratio
from ..timing import Timing, best_times_in_turns, paired_ratios
from ..workloads import PersistImpl, image_f32, optional_module, random_f64, small_ints, smooth_f64
from .persistence import SECTION, _check_roundtrip, _missing

__all__ = [
    "PEER_DATA",
    "PEER_LEVEL",
    "PEER_TARGETS",
    "PEER_THREADS",
    "PEER_VARIANTS",
    "blosc_impls",
    "peer_rows",
    "peer_server",
    "records",
]

#: Blosc's level, its default, and that of joblite's ``'blosc-*'`` codecs.
PEER_LEVEL = 5
#: Threads of every implementation: joblite's default ``workers`` and Blosc's ``nthreads``.
PEER_THREADS = 2

#: Issue 17's goals for joblite's rows: at least Blosc's end-to-end throughput, at 0.98 times
#: its compression ratio.
PEER_TARGETS = {"dump": {"vs_blosc": 1.0, "size_vs_blosc": 0.98}, "load": {"vs_blosc": 1.0}}


def records(nbytes):
    """A seeded mixed-dtype record array, `nbytes` bytes: 23-byte items, unaligned.

    Fields: ``id`` (int64, increasing), ``x`` (float64, a random walk), ``flag`` (bool),
    ``code`` (int16, 16 values) and ``v`` (float32 in [0, 1) rounded to 1/1024): a table of
    measurements as numpy holds one.
    """
    import numpy as np

    dtype = np.dtype([("id", "<i8"), ("x", "<f8"), ("flag", "?"), ("code", "<i2"), ("v", "<f4")])
    count = nbytes // dtype.itemsize
    rng = np.random.default_rng(0)
    out = np.empty(count, dtype)
    out["id"] = np.arange(count) * 3 + 1_000_000
    out["x"] = np.cumsum(rng.normal(0, 1e-3, count))
    out["flag"] = rng.random(count) < 0.1
    out["code"] = rng.integers(0, 16, count)
    out["v"] = np.round(rng.random(count, dtype=np.float32) * 1024) / 1024
    return out


#: The data kinds of the comparison: (key, label, builder of `nbytes` bytes).
PEER_DATA = (
    ("small ints", "small ints i64", small_ints),
    ("image-like", "image-like f32", image_f32),
    ("smooth", "smooth f64", smooth_f64),
    ("random", "random f64", random_f64),
    ("records", "records 23 B", records),
)

#: The other codecs compared, with the data kinds they are meant for: integers with few
#: significant bits and smooth floats (bit shuffle), smaller files (zstd).
PEER_VARIANTS = {
    "blosc-lz4-bitshuffle": ("small ints", "image-like", "smooth"),
    "blosc-zstd": ("small ints", "image-like", "smooth"),
    "blosc-zstd-bitshuffle": ("small ints", "image-like", "smooth"),
}


def _blosc_settings(blosc, codec):
    """The ``blosc.compress`` arguments of the joblite codec named `codec`, but the item size."""
    from ...compressors import get_compressor

    compressor = get_compressor(codec)
    shuffle = blosc.BITSHUFFLE if compressor.bitshuffle else blosc.SHUFFLE
    return {"clevel": PEER_LEVEL, "shuffle": shuffle, "cname": compressor.cname}


def _use_blosc(blosc):
    # the package's own defaults, whatever joblite's last call set (both are process-wide)
    blosc.set_nthreads(PEER_THREADS)
    blosc.set_releasegil(False)


def _blosc_file(blosc, value, codec):
    shape, dtype = value.shape, value.dtype
    settings = _blosc_settings(blosc, codec)

    def dump(value, path):
        _use_blosc(blosc)
        data = blosc.compress(memoryview(value).cast("B"), typesize=value.itemsize, **settings)
        with open(path, "wb") as file:
            file.write(data)

    def load(path):
        import numpy as np

        _use_blosc(blosc)
        with open(path, "rb") as file:
            data = file.read()
        out = np.empty(shape, dtype)
        blosc.decompress_ptr(data, out.ctypes.data)
        return out

    return PersistImpl(".blosc", dump, load)


def _blosc2_file(blosc2):
    def dump(value, path):
        cparams = blosc2.CParams(
            codec=blosc2.Codec.LZ4, clevel=PEER_LEVEL, filters=[blosc2.Filter.SHUFFLE], nthreads=PEER_THREADS
        )
        blosc2.asarray(value, urlpath=path, mode="w", cparams=cparams)

    def load(path):
        return blosc2.open(path, dparams=blosc2.DParams(nthreads=PEER_THREADS))[:]

    return PersistImpl(".b2nd", dump, load)


def blosc_impls(value, codec="blosc-lz4"):
    """The compressed writers compared on `value`, by implementation name.

    Parameters
    ----------
    value : numpy.ndarray
        The array written.
    codec : str, default 'blosc-lz4'
        joblite's codec (``compress=codec``), and Blosc's settings for the same.

    Returns
    -------
    dict of str to PersistImpl or None
        ``'joblite'``, ``'blosc file'`` and, for ``'blosc-lz4'`` only, ``'blosc2 file'``;
        ``None`` for a peer that is not installed.
    """
    import blosc

    import joblite

    impls = {
        "joblite": PersistImpl(".joblite", lambda v, p: joblite.dump(v, p, compress=codec), joblite.load),
        "blosc file": _blosc_file(blosc, value, codec),
    }
    if codec == "blosc-lz4":
        blosc2 = optional_module("blosc2")
        impls["blosc2 file"] = None if blosc2 is None else _blosc2_file(blosc2)
    return impls


def _blosc_memory(value):
    """``blosc memory``: compress and decompress `value` without a file.

    Returns
    -------
    compress, decompress, stored : callable
        Called with no arguments: `decompress` decompresses what the last call of
        `compress` made, `stored` gives its size in bytes.
    """
    import blosc
    import numpy as np

    settings = _blosc_settings(blosc, "blosc-lz4")
    source = memoryview(value).cast("B")
    kept = {}

    def compress():
        _use_blosc(blosc)
        kept["data"] = blosc.compress(source, typesize=value.itemsize, **settings)

    def decompress():
        _use_blosc(blosc)
        out = np.empty(value.shape, value.dtype)
        blosc.decompress_ptr(kept["data"], out.ctypes.data)

    return compress, decompress, lambda: len(kept["data"])


def _vs_blosc(row, per_round, targets):
    """Set joblite's `row` ``vs_blosc`` (and its low and high) from the rounds' ratios, and its `targets`."""
    row.ratios["vs_blosc"] = statistics.median(per_round)
    row.ratios["vs_blosc_low"] = min(per_round)
    row.ratios["vs_blosc_high"] = max(per_round)
    row.targets = dict(targets)


def peer_server(value_path, path, codec, impl, where):
    """The handler of one implementation's process of its own (a `~joblite.bench.children.ChildServer` factory).

    It loads the array saved at `value_path`, dumps it to `path` and loads
    it once (not timed: threads started, file cached; joblite's file is
    checked to give the array back), then answers calls.

    Parameters
    ----------
    value_path : str
        A ``.npy`` file of the array compared.
    path : str
        The implementation's file (unused by ``'blosc memory'``).
    codec : str
        joblite's codec, and Blosc's settings for the same (see `blosc_impls`).
    impl : str
        ``'joblite'``, ``'blosc file'``, ``'blosc2 file'`` or ``'blosc memory'``.
    where : str
        Names the case in the error raised when joblite's file does not give the array back.

    Returns
    -------
    callable
        ``handler(what)``: for ``'dump'`` (`path` removed first, not timed)
        and ``'load'``, one call, and its duration in seconds
        (``time.perf_counter``); for ``'stored'``, the bytes written (int).

    Raises
    ------
    RuntimeError
        If joblite's file does not give the array back.
    """
    import numpy as np

    value = np.load(value_path)
    if impl == "blosc memory":
        dump, load, stored = _blosc_memory(value)
    else:
        entry = blosc_impls(value, codec)[impl]
        dump, load, stored = partial(entry.dump, value, path), partial(entry.load, path), partial(_size, path)
    dump()
    loaded = load()
    if impl == "joblite":
        _check_roundtrip(loaded, value, where)
    del loaded
    calls = {"dump": dump, "load": load}

    def handler(what):
        if what == "stored":
            return stored()
        if what == "dump" and impl != "blosc memory":
            remove_if_exists(path)
        start = time.perf_counter()
        result = calls[what]()
        elapsed = time.perf_counter() - start
        del result
        return elapsed

    return handler


#: The implementations that take turns with each other: joblite and its baseline alone, so that
#: each always follows the other (with more, a rotated order gives each the same predecessor
#: every round, and blosc2's calls slowed the one after them by 10 to 25%), then the others.
_TURNS = (("joblite", "blosc file"), ("blosc2 file", "blosc memory"))


def _peer_samples(value_path, impls, folder, rounds, budget, codec, where):
    """Time the implementations on the array saved at `value_path`, each in a process of its own, taking turns.

    Returns
    -------
    dict
        ``'dump'`` and ``'load'``: each installed implementation's times
        (seconds), one per round it ran; ``'stored'``: the bytes each wrote.
    """
    from ..children import ChildServer

    paths = {
        impl: os.path.join(folder, "peer-" + impl.replace(" ", "-") + entry.suffix)
        for impl, entry in impls.items()
        if entry is not None
    }
    if codec == "blosc-lz4":
        paths["blosc memory"] = ""
    progress(f"  persistence: {', '.join(paths)} taking turns, each in a process of its own")
    try:
        with contextlib.ExitStack() as stack:
            servers = {
                impl: stack.enter_context(ChildServer(peer_server, value_path, path, codec, impl, where))
                for impl, path in paths.items()
            }
            # the first answers: every process has loaded the array and made its untimed calls
            stored = {impl: server.call("stored") for impl, server in servers.items()}
            times = {}
            for what in ("dump", "load"):
                times[what] = {}
                for group in _TURNS:
                    calls = {impl: partial(servers[impl].call, what) for impl in group if impl in servers}
                    if calls:
                        times[what].update(best_times_in_turns(calls, rounds, budget, reported=True))
    finally:
        for path in paths.values():
            if path:
                remove_if_exists(path)
    result = {what: {impl: list(timing.samples) for impl, timing in times[what].items()} for what in times}
    result["stored"] = stored
    return result


def peer_rows(label, value, folder, sizes, codec="blosc-lz4"):
    """joblite's compressed dump and load of `value` against Blosc's (see the module docstring).

    Parameters
    ----------
    label : str
        Workload name, e.g. ``'smooth f64 256 MiB'``.
    value : numpy.ndarray
        The array written.
    folder : str
        Temporary folder (each file removed once measured).
    sizes : dict
        From :data:`~joblite.bench.sections.persistence.PERSISTENCE_SIZES`: ``'peer_rounds'``
        (rounds of the writers' turns, then of the readers'), ``'peer_budget'`` (seconds
        of calls after which an implementation misses the next rounds) and, optionally,
        ``'peer_processes'`` (default 1): that many sets of processes, one process per
        implementation, share the rounds, one set after the other, and the figures pool
        their rounds, so that no one process's state (its heap, its threads' cores)
        decides them.
    codec : str, default 'blosc-lz4'
        joblite's codec; for another than ``'blosc-lz4'``, only ``blosc file`` is compared,
        at the same settings, and the case names name the codec.

    Returns
    -------
    list of Row
        Dump rows with ``compression_ratio``, then load rows, in the same order of
        implementations; the joblite rows with ``vs_blosc``, ``vs_blosc_low`` and
        ``vs_blosc_high``, with several sets of processes ``vs_blosc_process_low`` (the
        lowest of the sets' own medians) and, for the dump, ``size_vs_blosc``.

    Raises
    ------
    joblite.bench.children.ChildFailed
        If a process fails, e.g. when joblite's file does not give `value` back.
    """
    import numpy as np

    case = label if codec == "blosc-lz4" else f"{label}, {codec}"
    names = (f"{case}: dump vs Blosc", f"{case}: load vs Blosc")
    processes = sizes.get("peer_processes", 1)
    rounds, budget = sizes["peer_rounds"], sizes["peer_budget"]
    progress(f"  persistence: {case}, in {processes} set{'s' if processes > 1 else ''} of processes")
    impls = blosc_impls(value, codec)
    value_path = os.path.join(folder, "peer-value.npy")
    np.save(value_path, value)
    try:
        share = -(-rounds // processes)
        parts = [
            _peer_samples(value_path, impls, folder, share, budget / processes, codec, names[1])
            for _ in range(processes)
        ]
    finally:
        remove_if_exists(value_path)
    order = [*impls, "blosc memory"] if codec == "blosc-lz4" else list(impls)
    nbytes = value.nbytes
    dumps, loads = [], []
    for impl in order:
        if impl not in parts[0]["dump"]:
            dumps.append(_missing(names[0], impl))
            loads.append(_missing(names[1], impl))
            continue
        dump = Timing([sample for part in parts for sample in part["dump"][impl]])
        load = Timing([sample for part in parts for sample in part["load"][impl]])
        dumps.append(Row(SECTION, names[0], impl, dump, nbytes, gib_per_s(nbytes, dump)))
        dumps[-1].ratios["compression_ratio"] = nbytes / parts[0]["stored"][impl]
        loads.append(Row(SECTION, names[1], impl, load, nbytes, gib_per_s(nbytes, load)))
    for rows, what in ((dumps, "dump"), (loads, "load")):
        by_process = [paired_ratios(Timing(part[what]["blosc file"]), Timing(part[what]["joblite"])) for part in parts]
        _vs_blosc(rows[0], [ratio for ratios in by_process for ratio in ratios], PEER_TARGETS[what])
        if len(parts) > 1:
            rows[0].ratios["vs_blosc_process_low"] = min(statistics.median(ratios) for ratios in by_process)
    mine, peer = dumps[0], dumps[order.index("blosc file")]
    mine.ratios["size_vs_blosc"] = ratio(mine.ratios["compression_ratio"], peer.ratios["compression_ratio"])
    return dumps + loads


def _size(path):
    """Bytes of the file or folder at `path` (blosc2 may write either)."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)
    return os.path.getsize(path)
