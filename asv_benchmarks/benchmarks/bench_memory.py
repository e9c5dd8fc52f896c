"""``Memory`` benchmarks for asv: joblite's cache hits and misses against joblib's.

The cached functions and data are those of ``python -m joblite bench``
(section ``memory``), from :mod:`joblite.bench.workloads`, at asv's sizes so
that the suite stays fast:

* a cache hit with small arguments, ``f(1, 2.0, 'abc', x=3)`` returning a
  small tuple (``memory_small``);
* a cache miss with small arguments, a new first argument on every call:
  hashing, lookup, the trivial function, and storing result and metadata;
* a cache hit whose argument is a 128 MiB random float64 array, with a small
  result (``memory_array_argument``): mostly hashing;
* a cache hit returning a 128 MiB random float64 array
  (``memory_array_result``), with ``mmap_mode='r'`` and without (and the
  peak memory of the latter);
* hits, misses and the listing of a store of 1,000 or 5,000 entries
  (``StoreSize``; the bench's full run goes to 1,000,000).

Every ``Memory`` has ``verbose=0`` and its own cache folder: made with
``tempfile.mkdtemp`` by ``setup`` and removed by ``teardown``, or, for the
large results, written once by ``setup_cache`` in the working folder asv
gives it (a temporary folder that asv removes when the run ends).  ``setup``
makes the first call in the process (imports, the function's code check)
outside the timing, and checks that a hit is a hit.  joblib raises
``NotImplementedError`` in ``setup`` when it is not installed; asv then skips
it.
"""

import functools
import itertools
import os
import random
import shutil
import tempfile

from joblite.bench.workloads import (
    SMALL_ARGS,
    memory_array_argument,
    memory_array_result,
    memory_impls,
    memory_small,
    random_f64,
)

from . import available, scaled

IMPLS = ["joblite", "joblib"]

#: Bytes of the large argument and of the large result: 128 MiB of float64.
ARRAY_BYTES = scaled(128 << 20)

#: ``mmap_mode`` of the hits returning the large array.
MMAP_MODES = [None, "r"]

_DATA_CACHE = {}


def make_array():
    """The seeded 128 MiB random float64 array (memoised in this process)."""
    if "array" not in _DATA_CACHE:
        _DATA_CACHE["array"] = random_f64(ARRAY_BYTES)
    return _DATA_CACHE["array"]


def get_memory_class(impl):
    """Return the ``Memory`` class of `impl`.

    Parameters
    ----------
    impl : {'joblite', 'joblib'}

    Returns
    -------
    type

    Raises
    ------
    NotImplementedError
        If joblib is not installed.
    """
    return available(memory_impls()[impl], impl)


def check_hit(func, *args, **kwargs):
    """Raise unless the result of ``func(*args, **kwargs)`` is in `func`'s cache."""
    if not func.check_call_in_cache(*args, **kwargs):
        raise RuntimeError(f"{func!r}: the call is not in the cache; a hit benchmark would time a miss")


class _FreshCache:
    """A cache folder per benchmark, made by ``setup`` (:meth:`cached`) and removed by ``teardown``."""

    params = [IMPLS]
    param_names = ["impl"]
    timeout = 300

    def cached(self, impl, func):
        """`func` cached by `impl`'s ``Memory`` (``verbose=0``) in a fresh folder."""
        memory_class = get_memory_class(impl)
        self.folder = tempfile.mkdtemp(prefix="joblite-asv-")
        return memory_class(self.folder, verbose=0).cache(func)

    def teardown(self, *params):
        folder = getattr(self, "folder", None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


class HitSmallArgs(_FreshCache):
    """Cache hit of ``f(1, 2.0, 'abc', x=3)``, which returns a small tuple."""

    def setup(self, impl):
        func = self.cached(impl, memory_small)
        args, kwargs = SMALL_ARGS
        func(*args, **kwargs)  # the miss that stores the entry
        check_hit(func, *args, **kwargs)
        self.call = functools.partial(func, *args, **kwargs)

    def time_hit(self, impl):
        self.call()


class MissSmallArgs(_FreshCache):
    """Cache miss and store of ``f(i, 2.0, 'abc', x=3)``, a new ``i`` on every call."""

    def setup(self, impl):
        self.func = self.cached(impl, memory_small)
        self.fresh = itertools.count(1)
        self.func(0, 2.0, "abc", x=3)  # first call in the process, outside the timing

    def time_miss(self, impl):
        self.func(next(self.fresh), 2.0, "abc", x=3)


class HitArrayArgument(_FreshCache):
    """Cache hit of ``f(a)``, ``a`` a 128 MiB random float64 array; the result is small."""

    def setup(self, impl):
        self.array = make_array()
        self.func = self.cached(impl, memory_array_argument)
        self.func(self.array)  # the miss that stores the entry
        check_hit(self.func, self.array)

    def time_hit(self, impl):
        self.func(self.array)


class HitArrayResult:
    """Cache hit returning a 128 MiB random float64 array, memory-mapped or read."""

    params = [IMPLS, MMAP_MODES]
    param_names = ["impl", "mmap_mode"]
    timeout = 300

    def setup_cache(self):
        locations = {}
        for impl in IMPLS:
            try:
                memory_class = get_memory_class(impl)
            except NotImplementedError:
                continue
            locations[impl] = os.path.abspath(f"cache-{impl}")
            memory_class(locations[impl], verbose=0).cache(memory_array_result)(ARRAY_BYTES)
        return locations

    def setup(self, locations, impl, mmap_mode):
        memory_class = get_memory_class(impl)
        if impl not in locations:
            raise NotImplementedError(f"no cache was written for {impl}")
        self.func = memory_class(locations[impl], mmap_mode=mmap_mode, verbose=0).cache(memory_array_result)
        check_hit(self.func, ARRAY_BYTES)
        self.func(ARRAY_BYTES)  # first call in the process, outside the timing

    def time_hit(self, locations, impl, mmap_mode):
        self.func(ARRAY_BYTES)

    def peakmem_hit(self, locations, impl, mmap_mode):
        self.func(ARRAY_BYTES)


class StoreSize:
    """Hits, misses and the listing of a store of 1,000 or 5,000 small entries (``f(i, 2.0, 'abc', x=3)``).

    The bench (``python -m joblite bench``, full run) does the same on a store
    of 1,000,000 entries, and on joblib's at 100,000; asv keeps to joblite's
    stores of up to 5,000 entries so that its smoke run stays short.  (joblib's
    5,000-entry store, built the same way, once reported an entry it had just
    stored as missing in the smoke run, which failed it; that was not looked
    into further.)
    ``setup_cache`` builds each store once, by real cached calls, in the
    working folder asv gives it.
    """

    params = [["joblite"], [scaled(1_000), scaled(5_000)]]
    param_names = ["impl", "entries"]
    timeout = 600

    def setup_cache(self):
        locations = {}
        for impl in IMPLS:
            try:
                memory_class = get_memory_class(impl)
            except NotImplementedError:
                continue
            for entries in self.params[1]:
                location = locations[impl, entries] = os.path.abspath(f"store-{impl}-{entries}")
                func = memory_class(location, verbose=0).cache(memory_small)
                for i in range(entries):
                    func(i, 2.0, "abc", x=3)
        return locations

    def setup(self, locations, impl, entries):
        if (impl, entries) not in locations:
            raise NotImplementedError(f"no store was written for {impl}")
        self.memory = get_memory_class(impl)(locations[impl, entries], verbose=0)
        self.func = self.memory.cache(memory_small)
        keys = random.Random(entries).sample(range(entries), min(entries, 1000))
        check_hit(self.func, keys[0], 2.0, "abc", x=3)
        self.keys = itertools.cycle(keys)
        self.fresh = itertools.count(10 * entries + random.randrange(10**9) * 100)

    def time_hit(self, locations, impl, entries):
        self.func(next(self.keys), 2.0, "abc", x=3)

    def time_miss(self, locations, impl, entries):
        self.func(next(self.fresh), 2.0, "abc", x=3)

    def time_get_items(self, locations, impl, entries):
        self.memory.store_backend.get_items()
