"""Section ``persistence``: ``joblite.dump``/``load`` against ``np.save``/``np.load``, joblib and pickle."""

import gc
import io
import os

from ..._files import remove_if_exists
from .. import procmem
from ..children import ChildFailed, run_child
from ..report import GIB, MIB, Row, add_speedups, gib_per_s, progress, ratio, size_label
from ..timing import best_time, rotated, time_fresh_write
from ..workloads import (
    PersistImpl,
    compressed_impls,
    image_f32,
    optional_module,
    persistence_impls,
    random_f64,
    small_dicts,
    small_ints,
    smooth_f64,
)

__all__ = [
    "BIG_FILE_MIN_FREE",
    "CODECS",
    "PERSISTENCE_SIZES",
    "PERSISTENCE_TARGETS",
    "SLOW_CODECS",
    "load_peak_memory",
    "persistence_section",
]

SECTION = "persistence"

# Sizes of the persistence workload.  'quick' runs in a few seconds: 8 MiB
# arrays, no 4 GiB memory-map case.  'repeat' is the most calls per figure
# (best counts); 'budget' (seconds) stops the repeats of slow calls early, and
# compressed dumps by joblib are timed once.  'dump_rounds' is the number of
# rounds in which the uncompressed writers take turns: a 256 MiB dump varies by
# up to 15% between calls on a shared machine, so the best of 9 is a steadier
# figure than the best of 5 (a round of the four writers takes about half a second).
# 'peer_rounds' is the number of rounds of the Blosc comparison at its largest size, whose
# figures are the median of the rounds' ratios, and 'peer_budget' its budget, large enough
# that the zstd codecs (about 0.5 s a 256 MiB dump) run every round; 'peer_mib' its array
# sizes in MiB, the largest first (the other codecs are compared at that size only).  A
# smaller size runs proportionally more rounds (144 at 16 MiB), in about the same time: its
# single rounds vary more (0.27 to 2.8 times at 16 MiB in one run, 0.52 to 4.2 at 256 MiB),
# and the median of 9 moved by 15% between runs.  Each implementation runs in a process of its
# own, and 'peer_processes' sets of such processes share the rounds, so that no one process's
# heap decides a figure (see persistence_peers).
PERSISTENCE_SIZES = {
    "full": {
        "array_mib": 256,
        "slow_codec_mib": 32,
        "dicts": 50_000,
        "big_gib": 4,
        "repeat": 5,
        "dump_rounds": 9,
        "peer_rounds": 9,
        "peer_budget": 6.0,
        "peer_mib": (256, 16),
        "peer_processes": 3,
        "budget": 2.0,
        "mmap_repeat": 25,
    },
    "quick": {
        "array_mib": 8,
        "slow_codec_mib": 1,
        "dicts": 5_000,
        "big_gib": None,
        "repeat": 3,
        "dump_rounds": 3,
        "peer_rounds": 3,
        "peer_budget": 0.5,
        "peer_mib": (8,),
        "peer_processes": 1,
        "budget": 0.5,
        "mmap_repeat": 10,
    },
}

#: joblite codecs timed side by side on the smooth float64 array, at their
#: default levels; the slow ones (:data:`SLOW_CODECS`) on a slice of it.
CODECS = ("lz4", "zlib", "gzip", "zstd", "bz2", "lzma", "xz")
SLOW_CODECS = ("bz2", "lzma", "xz")

#: Free disk space (bytes) below which the 4 GiB memory-map case is skipped.
BIG_FILE_MIN_FREE = 10 << 30

# Goals from issues 3 and 13 ("Must reach"); see Row.targets for the sign convention.
# Issue 13: dump at least as fast as np.save on 256 MiB; compressed loads of the
# targeted workloads 8 times joblib zlib-3's, at 0.9 times its compression ratio.
PERSISTENCE_TARGETS = {
    "dump": {"vs_numpy": 1.0, "vs_joblib": 2.5},
    "load": {"vs_numpy": 1.0},
    "load mmap": {"ms": -1.0},
    "dump compressed": {"vs_joblib": 10, "size_vs_joblib": 0.9},
    "load compressed": {"vs_joblib": 8},
    "dicts": {"time_vs_pickle": -1.5},
    "peak memory": {"peak_over_result": -1.1},
}

#: Compressed workloads the goals apply to; smooth float64 is reported only.
COMPRESSION_TARGETED = ("small ints", "image-like")

#: The ratios of the uncompressed cases: times faster than these baselines.
_VS_NUMPY_AND_JOBLIB = {"vs_numpy": "numpy", "vs_joblib": "joblib"}


def _check_roundtrip(loaded, value, where):
    """Raise if joblite gave back something else than what was dumped."""
    import numpy as np

    if isinstance(value, np.ndarray):
        same = (
            isinstance(loaded, np.ndarray)
            and loaded.dtype == value.dtype
            and loaded.shape == value.shape
            and np.array_equal(loaded, value)
        )
    else:
        same = loaded == value
    if not same:
        raise RuntimeError(
            f"persistence benchmark, {where}: joblite loaded a value that "
            "differs from the one it dumped; its figures would be meaningless"
        )


def _missing(name, impl, note="not installed"):
    return Row(SECTION, name, impl, note=note)


def _write_and_load_rows(names, impl, entry, value, path, sizes, repeat):
    """Dump `value` to `path` (best of `repeat`), check joblite's round trip, time the load.

    `names` are the case names of the dump row and of the load row.

    Returns
    -------
    tuple of Row
        The dump row, the load row; the file stays for the caller.
    """
    nbytes = getattr(value, "nbytes", None)
    seconds = time_fresh_write(entry.dump, value, path, repeat, sizes["budget"])
    dump = Row(SECTION, names[0], impl, seconds, nbytes, gib_per_s(nbytes, seconds))
    if impl == "joblite":
        _check_roundtrip(entry.load(path), value, names[1])
    seconds = best_time(lambda: entry.load(path), sizes["repeat"], sizes["budget"])
    return dump, Row(SECTION, names[1], impl, seconds, nbytes, gib_per_s(nbytes, seconds))


# -- cases ------------------------------------------------------------------------------------


def uncompressed_rows(label, value, impls, folder, sizes):
    """Uncompressed dump, load and memory-mapped load, plus peak memory of a load.

    Parameters
    ----------
    label : str
        Workload name, e.g. ``'random f64 256 MiB'``.
    value : numpy.ndarray
        The array written.
    impls : dict of str to PersistImpl or None
        From :func:`~joblite.bench.workloads.persistence_impls`.
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
    progress(f"  persistence: {label} dumps, {', '.join(available)} in turn")
    dump_seconds = dict.fromkeys(available, float("inf"))
    for round_ in range(max(len(available), sizes["dump_rounds"])):
        for impl in rotated(list(available), round_):
            dump_seconds[impl] = min(dump_seconds[impl], time_fresh_write(available[impl].dump, value, paths[impl], 1))
    for impl, entry in impls.items():
        if entry is None:
            for rows, case in ((dumps, "dump"), (loads, "load"), (mmaps, "load mmap 'r'"), (peaks, "load peak memory")):
                rows.append(_missing(f"{label}: {case}", impl))
            continue
        path = paths[impl]
        progress(f"  persistence: {label} load with {impl}")
        seconds = dump_seconds[impl]
        dumps.append(Row(SECTION, f"{label}: dump", impl, seconds, nbytes, gib_per_s(nbytes, seconds)))
        if impl == "joblite":
            _check_roundtrip(entry.load(path), value, f"{label} load")
        seconds = best_time(lambda: entry.load(path), sizes["repeat"], sizes["budget"])
        loads.append(Row(SECTION, f"{label}: load", impl, seconds, nbytes, gib_per_s(nbytes, seconds)))
        if entry.load_mmap is not None:
            seconds = best_time(lambda: entry.load_mmap(path), sizes["mmap_repeat"])
            mmaps.append(Row(SECTION, f"{label}: load mmap 'r'", impl, seconds, ratios={"ms": seconds * 1e3}))
        peaks.append(peak_memory_row(f"{label}: load peak memory", impl, entry, path, folder))
        remove_if_exists(path)
    add_speedups(dumps, _VS_NUMPY_AND_JOBLIB, PERSISTENCE_TARGETS["dump"])
    add_speedups(loads, _VS_NUMPY_AND_JOBLIB, PERSISTENCE_TARGETS["load"])
    add_speedups(mmaps, _VS_NUMPY_AND_JOBLIB, PERSISTENCE_TARGETS["load mmap"])
    for row in peaks:
        if row.impl == "joblite" and "peak_over_result" in row.ratios:
            row.targets = dict(PERSISTENCE_TARGETS["peak memory"])
    return dumps + loads + mmaps + peaks


def peak_memory_row(name, impl, entry, path, folder):
    """Peak memory of loading `path` (no mmap), in a fresh interpreter (:func:`load_peak_memory`).

    Parameters
    ----------
    name : str
        Case name.
    impl : str
        Implementation name, also passed to the fresh interpreter.
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

    warm = os.path.join(folder, "warm" + entry.suffix)
    remove_if_exists(warm)
    entry.dump(np.arange(1000, dtype=np.float64), warm)
    try:
        figures = run_child(load_peak_memory, impl, warm, path)
    except ChildFailed as exc:
        return Row(SECTION, name, impl, note=str(exc))
    finally:
        remove_if_exists(warm)
    return Row(
        SECTION,
        name,
        impl,
        ratios={"peak_over_result": (figures["peak"] - figures["before"]) / figures["nbytes"]},
        note="" if figures["method"] == "VmHWM reset" else "peak from ru_maxrss growth",
    )


def load_peak_memory(impl, warm, path):
    """Body of the fresh interpreter of :func:`peak_memory_row`: the memory of one load of `path` by `impl`.

    A warm-up load of the tiny file `warm` (of the same kind) does the lazy
    imports first; the peak is then reset (:func:`~joblite.bench.procmem.start_peak`),
    so that the peak read after the load is the load's own.

    Returns
    -------
    dict
        ``before`` and ``peak`` (bytes resident before the load, at its
        peak), ``nbytes`` (of the loaded array) and ``method`` (how the peak
        was read).
    """
    load = persistence_impls()[impl].load
    load(warm)
    peak = procmem.start_peak()
    value = load(path)
    return {"before": peak.before, "peak": peak.read(), "nbytes": int(value.nbytes), "method": peak.method}


def compressed_rows(label, value, impls, folder, sizes, targeted):
    """Compressed dump and load of `value` with joblite's default and joblib's codecs.

    Parameters
    ----------
    label : str
        Workload name, e.g. ``'small ints i64 256 MiB'``.
    value : numpy.ndarray
        The array written.
    impls : dict of str to PersistImpl or None
        From :func:`~joblite.bench.workloads.compressed_impls`.
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
    names = (f"{label}: dump compressed", f"{label}: load compressed")
    dumps, loads = [], []
    for impl, entry in impls.items():
        if entry is None:
            dumps.append(_missing(names[0], impl))
            loads.append(_missing(names[1], impl))
            continue
        path = os.path.join(folder, "compressed" + entry.suffix)
        progress(f"  persistence: {label} compressed with {impl}")
        dump, load = _write_and_load_rows(
            names, impl, entry, value, path, sizes, sizes["repeat"] if impl == "joblite" else 1
        )
        dump.ratios["compression_ratio"] = value.nbytes / os.path.getsize(path)
        dumps.append(dump)
        loads.append(load)
        remove_if_exists(path)
    add_speedups(dumps, {"vs_joblib": "joblib zlib-3"}, PERSISTENCE_TARGETS["dump compressed"] if targeted else {})
    add_speedups(loads, {"vs_joblib": "joblib zlib-3"}, PERSISTENCE_TARGETS["load compressed"] if targeted else {})
    mine = dumps[0] if dumps and dumps[0].impl == "joblite" else None
    zlib = next((row for row in dumps if row.impl == "joblib zlib-3"), None)
    if mine is not None and mine.seconds is not None and zlib is not None:
        mine.ratios["size_vs_joblib"] = ratio(
            mine.ratios.get("compression_ratio"), zlib.ratios.get("compression_ratio")
        )
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

    dumps, loads = [], []
    path = os.path.join(folder, "codec.joblite")
    for codec in codecs:
        try:
            level = compressors.parse_compress(codec)[1]
        except ValueError:
            dumps.append(
                _missing(
                    f"{label}: dump compress={codec!r}",
                    "joblite",
                    f"codec {codec!r} is not registered (package not installed)",
                )
            )
            continue
        case = f"compress={codec!r} (level {level})"
        progress(f"  persistence: {label} with {case}")
        entry = PersistImpl(".joblite", lambda v, p, codec=codec: joblite.dump(v, p, compress=codec), joblite.load)
        dump, load = _write_and_load_rows(
            (f"{label}: dump {case}", f"{label}: load {case}"), "joblite", entry, value, path, sizes, sizes["repeat"]
        )
        dump.ratios["compression_ratio"] = value.nbytes / os.path.getsize(path)
        dumps.append(dump)
        loads.append(load)
        remove_if_exists(path)
    return dumps + loads


def dicts_rows(label, value, impls, folder, sizes):
    """Dump and load of a list of small dicts: joblite against pickle (and joblib).

    Returns
    -------
    list of Row
        joblite's rows carry ``time_vs_pickle`` (its time over pickle
        protocol 5's, lower is better) and ``vs_joblib``.
    """
    names = (f"{label}: dump", f"{label}: load")
    dumps, loads = [], []
    for impl in ("joblite", "pickle", "joblib"):
        entry = impls.get(impl)
        if entry is None:
            dumps.append(_missing(names[0], impl))
            loads.append(_missing(names[1], impl))
            continue
        path = os.path.join(folder, "dicts" + entry.suffix)
        progress(f"  persistence: {label} with {impl}")
        dump, load = _write_and_load_rows(names, impl, entry, value, path, sizes, sizes["repeat"])
        dumps.append(dump)
        loads.append(load)
        remove_if_exists(path)
    for rows in (dumps, loads):
        add_speedups(rows, {"vs_joblib": "joblib"}, PERSISTENCE_TARGETS["dicts"])
        mine, base = rows[0], rows[1]
        if mine.seconds is not None:
            mine.ratios["time_vs_pickle"] = ratio(mine.seconds, base.seconds)
    return dumps + loads


# -- the 4 GiB memory-mapped load -------------------------------------------------------------


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
        if count >= self.HOLE_MIN and view.c_contiguous and not np.frombuffer(view.cast("B"), np.uint8).any():
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
        return [
            _missing(
                name, "joblite", f"skipped: {free / GIB:.1f} GiB free disk, {BIG_FILE_MIN_FREE / GIB:.0f} GiB wanted"
            )
        ]
    count = (gib << 30) // 8
    zeros = np.zeros(count)  # calloc'ed: zero pages, no RAM
    joblib = optional_module("joblib")

    def write_numpy(path):
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(count,))
        del array

    writers = {
        "joblite": (
            ".joblite",
            lambda path: _write_sparse(joblite.dump, zeros, path),
            lambda path: joblite.load(path, mmap_mode="r"),
        ),
        "numpy": (".npy", write_numpy, lambda path: np.load(path, mmap_mode="r")),
        "joblib": None
        if joblib is None
        else (
            ".pkl",
            lambda path: _write_sparse(joblib.dump, zeros, path),
            lambda path: joblib.load(path, mmap_mode="r"),
        ),
    }
    rows = []
    for impl, entry in writers.items():
        if entry is None:
            rows.append(_missing(name, impl))
            continue
        suffix, write, load = entry
        path = os.path.join(folder, "big" + suffix)
        progress(f"  persistence: {name} with {impl}")
        try:
            write(path)
            loaded = load(path)
            if loaded.shape != (count,) or loaded.dtype != np.float64:
                raise RuntimeError(
                    f"persistence benchmark, {name}: {impl} loaded "
                    f"{loaded.dtype} {loaded.shape}, not float64 ({count},)"
                )
            del loaded
            seconds = best_time(lambda: load(path), sizes["mmap_repeat"])
        finally:
            remove_if_exists(path)
        rows.append(Row(SECTION, name, impl, seconds, ratios={"ms": seconds * 1e3}))
    add_speedups(rows, _VS_NUMPY_AND_JOBLIB, PERSISTENCE_TARGETS["load mmap"])
    return rows


# -- the section ------------------------------------------------------------------------------


def persistence_section(context):
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
    * joblite's ``compress=True`` against Blosc (lz4, shuffle, 2 threads: ``blosc`` in
      memory and to a file, ``blosc2`` to a file) on small ints, image-like, smooth and
      random float64, and 23-byte mixed-dtype records
      (:mod:`~joblite.bench.sections.persistence_peers`);
    * every joblite codec at its default level on the smooth float64 array;
      bz2, lzma and xz on a 32 MiB slice of it (they are slow);
    * a list of 50,000 small dicts against pickle protocol 5 (and joblib).

    Every timed write goes to a path that does not exist (the previous file
    is deleted first, for every implementation alike), in a fresh folder
    (:meth:`~joblite.bench.sections.Context.scratch_folder`) removed at the
    end.  Loads read files just written, from the page cache.

    Parameters
    ----------
    context : joblite.bench.sections.Context
        ``quick``: small sizes and fewer repeats; ``tmpdir``: where the
        files are written.

    Returns
    -------
    list of Row
        Ratios: ``vs_numpy`` and ``vs_joblib`` (times faster than the
        baseline), ``time_vs_pickle``, ``ms`` (memory-mapped loads),
        ``compression_ratio``, ``size_vs_joblib`` and ``peak_over_result``.
    """
    sizes = context.sizes(PERSISTENCE_SIZES)
    nbytes = sizes["array_mib"] * MIB
    mib = f"{sizes['array_mib']} MiB"
    rows = []
    with context.scratch_folder() as folder:
        progress(f"persistence: files in {folder}")
        rows += uncompressed_rows(f"random f64 {mib}", random_f64(nbytes), persistence_impls(), folder, sizes)
        gc.collect()
        impls = compressed_impls()
        workloads = [
            ("small ints", "small ints i64", small_ints),
            ("image-like", "image-like f32", image_f32),
            ("smooth", "smooth f64", smooth_f64),
        ]
        for key, label, build in workloads:
            progress(f"persistence: building {label} {mib}")
            value = build(nbytes)
            rows += compressed_rows(f"{label} {mib}", value, impls, folder, sizes, key in COMPRESSION_TARGETED)
            if key == "smooth":
                fast = [codec for codec in CODECS if codec not in SLOW_CODECS]
                slow = [codec for codec in CODECS if codec in SLOW_CODECS]
                rows += codec_rows(f"{label} {mib}", value, folder, sizes, fast)
                part = value[: sizes["slow_codec_mib"] * MIB // value.itemsize]
                rows += codec_rows(f"{label} {sizes['slow_codec_mib']} MiB slice", part, folder, sizes, slow)
                del part
            del value
            gc.collect()
        # the peer's comparison (issue 17); imported here: that module builds on this one
        from .persistence_peers import PEER_DATA, PEER_VARIANTS, peer_rows

        for key, label, build in PEER_DATA:
            for index, peer_mib in enumerate(sizes["peer_mib"]):
                case = f"{label} {size_label(peer_mib * MIB)}"
                progress(f"persistence: building {case} for the Blosc comparison")
                value = build(peer_mib * MIB)
                rounds = sizes["peer_rounds"] * sizes["peer_mib"][0] // peer_mib
                rows += peer_rows(case, value, folder, dict(sizes, peer_rounds=rounds))
                for codec, kinds in PEER_VARIANTS.items():
                    if index == 0 and key in kinds:
                        rows += peer_rows(case, value, folder, sizes, codec)
                del value
                gc.collect()
        count = sizes["dicts"]
        rows += dicts_rows(f"{count // 1000}k small dicts", small_dicts(count), persistence_impls(), folder, sizes)
        if sizes["big_gib"]:
            rows += big_mmap_rows(sizes["big_gib"], folder, sizes)
    return rows
