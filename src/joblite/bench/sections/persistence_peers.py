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

Blosc's level is its default, 5; the rows give each file's compression ratio, and the
joblite rows ``vs_blosc`` (times faster than ``blosc file``) and ``size_vs_blosc`` (joblite's
compression ratio over Blosc's).  The other codecs (`PEER_VARIANTS`: bit shuffle, zstd) are
compared with ``blosc file`` at the same settings on the data kinds they are meant for.
"""

import os
from functools import partial

from ..._files import remove_if_exists
from ..report import Row, add_speedups, gib_per_s, progress, ratio
from ..timing import best_times_in_turns
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


def _memory_rows(names, value, sizes):
    """``blosc memory``: compress and decompress `value` without a file."""
    import blosc
    import numpy as np

    from ..timing import best_time

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

    nbytes = value.nbytes
    rows = []
    for name, call in zip(names, (compress, decompress)):
        seconds = best_time(call, sizes["repeat"], sizes["budget"])
        rows.append(Row(SECTION, name, "blosc memory", seconds, nbytes, gib_per_s(nbytes, seconds)))
    rows[0].ratios["compression_ratio"] = nbytes / len(kept["data"])
    return tuple(rows)


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
        From :data:`~joblite.bench.sections.persistence.PERSISTENCE_SIZES`.
    codec : str, default 'blosc-lz4'
        joblite's codec; for another than ``'blosc-lz4'``, only ``blosc file`` is compared,
        at the same settings, and the case names name the codec.

    Returns
    -------
    list of Row
        Dump rows with ``compression_ratio``, then load rows; the joblite rows with
        ``vs_blosc`` and, for the dump, ``size_vs_blosc``.
    """
    case = label if codec == "blosc-lz4" else f"{label}, {codec}"
    names = (f"{case}: dump vs Blosc", f"{case}: load vs Blosc")
    impls = blosc_impls(value, codec)
    entries = {impl: entry for impl, entry in impls.items() if entry is not None}
    paths = {
        impl: os.path.join(folder, "peer-" + impl.replace(" ", "-") + entry.suffix) for impl, entry in entries.items()
    }
    progress(f"  persistence: {case}, {', '.join(entries)} taking turns")
    # the writers take turns, each to a path that does not exist, and then the readers do, so
    # that a slow spell of this shared machine weighs on all of them alike
    dump_times = best_times_in_turns(
        {impl: partial(entry.dump, value, paths[impl]) for impl, entry in entries.items()},
        sizes["repeat"],
        sizes["budget"],
        setup=lambda impl: remove_if_exists(paths[impl]),
    )
    _check_roundtrip(entries["joblite"].load(paths["joblite"]), value, names[1])
    load_times = best_times_in_turns(
        {impl: partial(entry.load, paths[impl]) for impl, entry in entries.items()}, sizes["repeat"], sizes["budget"]
    )
    dumps, loads = [], []
    for impl in impls:
        if impl not in entries:
            dumps.append(_missing(names[0], impl))
            loads.append(_missing(names[1], impl))
            continue
        nbytes = value.nbytes
        dumps.append(Row(SECTION, names[0], impl, dump_times[impl], nbytes, gib_per_s(nbytes, dump_times[impl])))
        dumps[-1].ratios["compression_ratio"] = nbytes / _size(paths[impl])
        loads.append(Row(SECTION, names[1], impl, load_times[impl], nbytes, gib_per_s(nbytes, load_times[impl])))
        remove_if_exists(paths[impl])
    if codec == "blosc-lz4":
        memory = _memory_rows(names, value, sizes)
        dumps.append(memory[0])
        loads.append(memory[1])
    add_speedups(dumps, {"vs_blosc": "blosc file"}, PEER_TARGETS["dump"])
    add_speedups(loads, {"vs_blosc": "blosc file"}, PEER_TARGETS["load"])
    mine, peer = dumps[0], next((row for row in dumps if row.impl == "blosc file"), None)
    if mine.seconds is not None and peer is not None and peer.seconds is not None:
        mine.ratios["size_vs_blosc"] = ratio(mine.ratios.get("compression_ratio"), peer.ratios.get("compression_ratio"))
    return dumps + loads


def _size(path):
    """Bytes of the file or folder at `path` (blosc2 may write either)."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)
    return os.path.getsize(path)
