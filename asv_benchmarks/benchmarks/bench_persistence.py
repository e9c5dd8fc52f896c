"""Persistence benchmarks for asv: ``joblite.dump``/``load`` against joblib, numpy and pickle.

Data are seeded (``numpy.random.default_rng(0)``) and smaller than in
``python -m joblite bench`` so that the suite stays fast: 64 MiB arrays
(random float64; small ints, int64 in 0..255; an image-like float32 field
quantised to steps of 1/256; a smooth float64 random walk) and 50,000 small
dicts, plus the bench's 256 MiB random float64 array for the uncompressed
dump against ``np.save`` (issue 13's target: at least as fast).  The default and
fast codecs (joblite's ``compress=True``, i.e.
byte-shuffle + lz4, joblib's ``compress=True``, i.e. zlib 3, and lz4, zlib,
zstd) compress the 64 MiB arrays; the compatibility codecs (gzip, bz2, lzma,
xz: slow) an 8 MiB slice of the smooth float64 array.

Files:

* every timed write goes to a new file name in a folder made by ``setup``
  with ``tempfile.mkdtemp`` and removed by ``teardown``; timed writes run
  with ``number = 1``, so asv calls ``teardown``/``setup`` between two
  writes, and no writer overwrites the page cache of an existing file;
* the files that the load benchmarks read are written once by
  ``setup_cache``, in the working folder asv gives it (a temporary folder
  that asv removes when the run ends).  The loading processes never hold the
  source data, so ``peakmem_load`` shows the memory of the load itself (plus
  the interpreter with numpy and the library imported).

Implementations that do not apply (``pickle`` cannot memory-map, numpy has no
codecs, joblib has no zstd) or are not installed raise ``NotImplementedError``
in ``setup``; asv then skips them.
"""

import importlib.util
import itertools
import os
import shutil
import tempfile

import numpy as np

from joblite.bench.sections.persistence_peers import PEER_DATA, blosc_impls
from joblite.bench.workloads import image_f32, persistence_impls, random_f64, small_dicts, small_ints, smooth_f64

from . import available, scaled

IMPLS = ["joblite", "joblib", "numpy", "pickle"]

#: Arrays for the compression benchmarks.
DATA = ["small_ints", "image_f32", "smooth_f64"]

#: ``'default'`` is ``compress=True``: byte-shuffle + lz4 for joblite, zlib 3
#: for joblib.  The others are codec names at each library's default level.
FAST_CODECS = ["default", "lz4", "zlib", "zstd"]
#: The compatibility codecs, timed on an 8 MiB slice (bz2, lzma, xz are slow).
ARCHIVE_CODECS = ["gzip", "bz2", "lzma", "xz"]
COMPRESSED_IMPLS = ["joblite", "joblib"]

ARRAY_BYTES = scaled(64 << 20)
LARGE_BYTES = scaled(256 << 20)  # the uncompressed dump against np.save, at the bench's size
SLOW_SLICE_BYTES = scaled(8 << 20)
N_DICTS = scaled(50_000)

_DATA_CACHE = {}


# -- data -------------------------------------------------------------------------------
def make_data(kind):
    """Build the seeded object `kind` (memoised in this process).

    Parameters
    ----------
    kind : {'random_f64', 'random_f64_256', 'small_ints', 'image_f32', 'smooth_f64', 'dicts'}
        64 MiB arrays (256 MiB for ``'random_f64_256'``): uniform float64; int64 in 0..255; an image-like
        float32 (4096, 4096) field (two sine patterns plus N(0, 0.02) noise,
        clipped to [0, 1], rounded to steps of 1/256); a random walk of
        N(0, 1e-3) steps.  ``'dicts'``: 50,000 small dicts.

    Returns
    -------
    numpy.ndarray or list of dict
    """
    if kind not in _DATA_CACHE:
        _DATA_CACHE[kind] = _BUILDERS[kind]()
    return _DATA_CACHE[kind]


# The same seeded workloads as ``python -m joblite bench``, at asv's sizes.
_BUILDERS = {
    "random_f64": lambda: random_f64(ARRAY_BYTES),
    "random_f64_256": lambda: random_f64(LARGE_BYTES),
    "small_ints": lambda: small_ints(ARRAY_BYTES),
    "image_f32": lambda: image_f32(ARRAY_BYTES),
    "smooth_f64": lambda: smooth_f64(ARRAY_BYTES),
    "dicts": lambda: small_dicts(N_DICTS),
}


def compressed_data(kind, codec):
    """The array compressed with `codec`: `kind`, or its first 8 MiB for an archive codec."""
    value = make_data(kind)
    if codec in ARCHIVE_CODECS:
        value = value.reshape(-1)[: SLOW_SLICE_BYTES // value.itemsize]
    return value


# -- implementations ----------------------------------------------------------------------
def get_impl(impl):
    """Return ``(suffix, dump, load, load_mmap)`` for `impl`.

    Parameters
    ----------
    impl : {'joblite', 'joblib', 'numpy', 'pickle'}
        As :func:`joblite.bench.workloads.persistence_impls`.

    Returns
    -------
    tuple
        File suffix, ``dump(value, path)``, ``load(path)`` and
        ``load_mmap(path)`` (``mmap_mode='r'``; ``None`` for pickle).

    Raises
    ------
    NotImplementedError
        If joblib is not installed.
    """
    entry = available(persistence_impls()[impl], impl)
    return entry.suffix, entry.dump, entry.load, entry.load_mmap


def compress_argument(impl, codec):
    """The ``compress=`` argument for `impl` and `codec`.

    Raises
    ------
    NotImplementedError
        If `impl` cannot compress (numpy, pickle), is not installed, or lacks
        `codec` (joblib has no zstd; lz4 and zstd need their packages).
    """
    if impl not in COMPRESSED_IMPLS:
        raise NotImplementedError(f"{impl} has no compression")
    get_impl(impl)  # raises when joblib is missing
    compress = True if codec == "default" else codec
    if impl == "joblib":
        if codec == "zstd":
            raise NotImplementedError("joblib has no zstd codec")
        if codec == "lz4" and importlib.util.find_spec("lz4") is None:
            raise NotImplementedError("lz4 is not installed")
        return compress
    import joblite

    try:
        joblite.dumps(np.zeros(1), compress=compress)
    except ValueError as exc:
        raise NotImplementedError(f"joblite has no {codec!r} codec here") from exc
    return compress


def compressed_dump(impl, compress):
    """``dump(value, path)`` of `impl` with ``compress=compress``, and its file suffix."""
    if impl == "joblite":
        import joblite

        return ".joblite", lambda value, path: joblite.dump(value, path, compress=compress)
    import joblib

    return ".pkl", lambda value, path: joblib.dump(value, path, compress=compress)


def compressed_load(impl):
    """``load(path)`` of `impl`."""
    if impl == "joblite":
        import joblite

        return joblite.load
    import joblib

    return joblib.load


# -- frames -------------------------------------------------------------------------------
class _FreshWrites:
    """Each timed call writes a new file in a folder removed by ``teardown``."""

    number = 1  # asv re-runs teardown and setup before every timed call
    timeout = 300

    def make_folder(self):
        self.folder = tempfile.mkdtemp(prefix="joblite-asv-")
        self.names = itertools.count()

    def fresh_path(self, suffix):
        return os.path.join(self.folder, f"{next(self.names)}{suffix}")

    def warm_up(self):
        """A first, small call in this process (imports, thread pool), outside the timing."""
        head = self.value[:10] if isinstance(self.value, list) else self.value.reshape(-1)[:1024]
        self.dump(head, self.fresh_path(self.suffix))

    def teardown(self, *params):
        folder = getattr(self, "folder", None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


# -- uncompressed -------------------------------------------------------------------------
class Dump(_FreshWrites):
    """Uncompressed dump of a 64 MiB random float64 array."""

    params = [IMPLS]
    param_names = ["impl"]

    def setup(self, impl):
        self.suffix, self.dump, _, _ = get_impl(impl)
        self.value = make_data("random_f64")
        self.make_folder()
        self.warm_up()

    def time_dump(self, impl):
        self.dump(self.value, self.fresh_path(self.suffix))


class DumpLarge(_FreshWrites):
    """Uncompressed dump of a 256 MiB random float64 array: joblite against ``np.save`` (issue 13's size)."""

    params = [["joblite", "numpy"]]
    param_names = ["impl"]

    def setup(self, impl):
        self.suffix, self.dump, _, _ = get_impl(impl)
        self.value = make_data("random_f64_256")
        self.make_folder()
        self.warm_up()

    def time_dump(self, impl):
        self.dump(self.value, self.fresh_path(self.suffix))


class _ArrayFiles:
    """Files of the 64 MiB random float64 array, one per implementation, written once."""

    params = [IMPLS]
    param_names = ["impl"]
    timeout = 300

    def setup_cache(self):
        value = make_data("random_f64")
        paths = {}
        for impl in IMPLS:
            try:
                suffix, dump, _, _ = get_impl(impl)
            except NotImplementedError:
                continue
            paths[impl] = os.path.abspath("array" + suffix)
            dump(value, paths[impl])
        return paths

    def setup(self, paths, impl):
        _, _, self.load, self.load_mmap = get_impl(impl)
        if impl not in paths:
            raise NotImplementedError(f"no file was written for {impl}")
        self.path = paths[impl]


class Load(_ArrayFiles):
    """Load of the 64 MiB array without memory-mapping, and its peak memory."""

    def time_load(self, paths, impl):
        self.load(self.path)

    def peakmem_load(self, paths, impl):
        self.load(self.path)


class LoadMmap(_ArrayFiles):
    """Load of the 64 MiB array with ``mmap_mode='r'``: O(1), the array is not read."""

    def setup(self, paths, impl):
        super().setup(paths, impl)
        if self.load_mmap is None:
            raise NotImplementedError(f"{impl} cannot memory-map")
        self.load_mmap(self.path)  # first call in the process outside the timing

    def time_load_mmap(self, paths, impl):
        self.load_mmap(self.path)


# -- compressed -------------------------------------------------------------------------------
class _CompressedCase:
    """Frame of the compression benchmarks: params ``(data, impl, codec)``, as subclasses say."""

    repeat = (1, 5, 10.0)
    timeout = 600

    def case(self, data, impl, codec):
        """``(compress argument, array)`` of one combination; NotImplementedError if n/a."""
        return compress_argument(impl, codec), compressed_data(data, codec)


class _CompressedDump(_FreshWrites, _CompressedCase):
    def setup(self, *params):
        compress, self.value = self.case(*params)
        self.suffix, self.dump = compressed_dump(params[-2], compress)
        self.make_folder()
        self.warm_up()

    def time_dump(self, *params):
        self.dump(self.value, self.fresh_path(self.suffix))


class _CompressedLoad(_CompressedCase):
    # asv keys setup_cache by its source line, so each concrete class has its
    # own, which calls this.
    def write_files(self):
        """Write one file per combination of ``self.params`` in the working folder."""
        files = {}
        for params in itertools.product(*self.params):
            try:
                compress, value = self.case(*params)
            except NotImplementedError:
                continue
            suffix, dump = compressed_dump(params[-2], compress)
            path = os.path.abspath("-".join(params) + suffix)
            dump(value, path)
            files[params] = (path, value.nbytes / os.path.getsize(path))
        return files

    def setup(self, files, *params):
        if params not in files:
            self.case(*params)  # raises NotImplementedError with the reason
            raise NotImplementedError(f"no file was written for {params}")
        self.path, self.ratio = files[params]
        self.load = compressed_load(params[-2])
        self.load(self.path)  # first call in the process outside the timing

    def time_load(self, files, *params):
        self.load(self.path)

    def track_compression_ratio(self, files, *params):
        return self.ratio

    track_compression_ratio.unit = "array bytes / file bytes"


class CompressedDump(_CompressedDump):
    """Compressed dump of the 64 MiB arrays, per array kind, library and fast codec."""

    params = [DATA, COMPRESSED_IMPLS, FAST_CODECS]
    param_names = ["data", "impl", "codec"]


class CompressedLoad(_CompressedLoad):
    """Compressed load and compression ratio of the 64 MiB arrays, per kind, library, codec."""

    params = [DATA, COMPRESSED_IMPLS, FAST_CODECS]
    param_names = ["data", "impl", "codec"]

    def setup_cache(self):
        return self.write_files()

    setup_cache.timeout = 600


class ArchiveCodecDump(_CompressedDump):
    """Dump with the compatibility codecs, on the first 8 MiB of the smooth float64 array."""

    params = [["smooth_f64"], COMPRESSED_IMPLS, ARCHIVE_CODECS]
    param_names = ["data", "impl", "codec"]


class ArchiveCodecLoad(_CompressedLoad):
    """Load and compression ratio with the compatibility codecs, smooth float64, 8 MiB."""

    params = [["smooth_f64"], COMPRESSED_IMPLS, ARCHIVE_CODECS]
    param_names = ["data", "impl", "codec"]

    def setup_cache(self):
        return self.write_files()

    setup_cache.timeout = 600


# -- against Blosc (issue 17) ----------------------------------------------------------------
#: The data kinds and implementations of the bench's Blosc comparison (lz4, shuffle, 2 threads).
PEER_KINDS = [key for key, _, _ in PEER_DATA]
PEER_IMPLS = ["joblite", "blosc file", "blosc2 file"]


def peer_case(kind, impl):
    """``(array, PersistImpl)`` of one combination, the array 64 MiB; NotImplementedError if n/a."""
    key = ("peer", kind)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = dict((name, build) for name, _, build in PEER_DATA)[kind](ARRAY_BYTES)
    value = _DATA_CACHE[key]
    return value, available(blosc_impls(value)[impl], impl)


class PeerDump(_FreshWrites):
    """Compressed dump against Blosc's compress + write and blosc2's file, per data kind."""

    params = [PEER_KINDS, PEER_IMPLS]
    param_names = ["data", "impl"]
    repeat = (1, 5, 10.0)
    timeout = 600

    def setup(self, data, impl):
        self.value, entry = peer_case(data, impl)
        self.suffix, self.dump = entry.suffix, entry.dump
        self.make_folder()
        self.warm_up()

    def time_dump(self, data, impl):
        self.dump(self.value, self.fresh_path(self.suffix))


class PeerLoad:
    """Load (read + decompress) against Blosc's and blosc2's, and the compression ratios."""

    params = [PEER_KINDS, PEER_IMPLS]
    param_names = ["data", "impl"]
    repeat = (1, 5, 10.0)
    timeout = 600

    def setup_cache(self):
        files = {}
        for params in itertools.product(*self.params):
            try:
                value, entry = peer_case(*params)
            except NotImplementedError:
                continue
            path = os.path.abspath("peer-" + "-".join(params).replace(" ", "_") + entry.suffix)
            entry.dump(value, path)
            files[params] = (path, value.nbytes / os.path.getsize(path))
        return files

    setup_cache.timeout = 600

    def setup(self, files, *params):
        if params not in files:
            peer_case(*params)  # raises NotImplementedError with the reason
            raise NotImplementedError(f"no file was written for {params}")
        self.path, self.ratio = files[params]
        self.load = peer_case(*params)[1].load
        self.load(self.path)  # first call in the process outside the timing

    def time_load(self, files, *params):
        self.load(self.path)

    def track_compression_ratio(self, files, *params):
        return self.ratio

    track_compression_ratio.unit = "array bytes / file bytes"


# -- small objects --------------------------------------------------------------------------
class DumpDicts(_FreshWrites):
    """Dump of 50,000 small dicts ``{'id', 'name', 'score', 'tags'}``."""

    params = [IMPLS]
    param_names = ["impl"]

    def setup(self, impl):
        if impl == "numpy":
            raise NotImplementedError("np.save is for arrays")
        self.suffix, self.dump, _, _ = get_impl(impl)
        self.value = make_data("dicts")
        self.make_folder()
        self.warm_up()

    def time_dump(self, impl):
        self.dump(self.value, self.fresh_path(self.suffix))


class LoadDicts:
    """Load of 50,000 small dicts."""

    params = [IMPLS]
    param_names = ["impl"]
    timeout = 300

    def setup_cache(self):
        value = make_data("dicts")
        paths = {}
        for impl in IMPLS:
            if impl == "numpy":
                continue
            try:
                suffix, dump, _, _ = get_impl(impl)
            except NotImplementedError:
                continue
            paths[impl] = os.path.abspath("dicts" + suffix)
            dump(value, paths[impl])
        return paths

    def setup(self, paths, impl):
        if impl == "numpy":
            raise NotImplementedError("np.load is for arrays")
        _, _, self.load, _ = get_impl(impl)
        if impl not in paths:
            raise NotImplementedError(f"no file was written for {impl}")
        self.path = paths[impl]

    def time_load(self, paths, impl):
        self.load(self.path)
