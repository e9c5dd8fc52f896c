"""The seeded workloads of the benchmark, shared by ``python -m joblite bench`` and ``asv_benchmarks/``.

What is measured, and nothing about how: the data (seeded with
``numpy.random.default_rng(0)``, so that every run and both tools see the
same values), the implementations compared (each ``None`` when it is not
installed), the functions that ``Memory`` caches and the tasks that
``Parallel`` runs, and the calls written as a user writes them.  The sizes
are the caller's: the sections of :mod:`joblite.bench.sections` and the asv
benchmarks each choose theirs.  This is the only module of
:mod:`joblite.bench` that asv imports.

Nothing here imports numpy, joblib or dask at module import time.
"""
import dataclasses
import functools
import gc
import importlib
import math
import os
import time

from . import procmem
from .children import ChildFailed, run_child

__all__ = [
    "BUSY_SECONDS", "EXECUTOR_CHUNKSIZE", "MEMORY_CALLS", "PARALLEL_N_JOBS", "SMALL_ARGS",
    "WARM_UP_ARRAY_BYTES", "PersistImpl", "array_argument_call", "array_call_memory", "array_part_sum",
    "array_results_call", "busy_task", "busy_tasks_call", "compressed_impls", "full_array", "hash_function",
    "image_f32", "memory_array_argument", "memory_array_result", "memory_impls", "memory_small",
    "optional_attr", "optional_module", "parallel_array_memory", "parallel_impls", "persistence_impls",
    "pickle_dump", "pickle_load", "random_array", "random_f64", "random_floats", "small_dicts",
    "small_ints", "smooth_f64", "str_int_dict", "tiny_task", "tiny_tasks_call", "tiny_tasks_executor_call",
    "tiny_tasks_loop", "warm_up_array",
]

#: The arguments of a typical cached call, ``f(1, 2.0, 'abc', x=3)``: ``(args, kwargs)``.
SMALL_ARGS = ((1, 2.0, "abc"), {"x": 3})


def optional_module(name):
    """The module `name`, or ``None`` when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def optional_attr(module_name, attr):
    """``module.attr``, or ``None`` when the module is not installed."""
    module = optional_module(module_name)
    return None if module is None else getattr(module, attr)


# -- data -----------------------------------------------------------------------------------

def random_array(shape):
    """Uniform random float64 in [0, 1) of `shape` (C order); incompressible."""
    import numpy as np

    return np.random.default_rng(0).random(shape)


def random_f64(nbytes):
    """Uniform random float64 in [0, 1), `nbytes` bytes, 1-D; incompressible."""
    return random_array(nbytes // 8)


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
    scores = random_array(count).tolist()
    return [{"id": i, "name": f"item{i}", "score": scores[i], "tags": ["a", "b"]}
            for i in range(count)]


def random_floats(count):
    """A list of `count` Python floats, uniform in [0, 1)."""
    return random_array(count).tolist()


def str_int_dict(count):
    """A dict of `count` str keys (``'key<hex>'``, seeded) to the ints 0, 1, ..."""
    import numpy as np

    keys = np.random.default_rng(0).integers(0, 2**62, count).tolist()
    return {f"key{k:x}": i for i, k in enumerate(keys)}


# -- hashing --------------------------------------------------------------------------------

def hash_function(impl):
    """The hash function ``func(obj) -> str`` of `impl`, or ``None`` when it is not available here.

    Parameters
    ----------
    impl : {'joblite', 'ext', 'pure', 'joblib', 'tokenize'}
        ``joblite.hash`` (the active twin), one named twin of joblite,
        ``joblib.hash`` (md5, its default) or ``dask.base.tokenize``.

    Returns
    -------
    callable or None

    Raises
    ------
    ValueError
        If `impl` is none of these.
    """
    if impl == "joblite":
        import joblite

        return joblite.hash
    if impl in ("ext", "pure"):
        from joblite._impl import available_twins
        from joblite.hashing import hash_with_twin

        return functools.partial(hash_with_twin, impl) if impl in available_twins() else None
    if impl == "joblib":
        return optional_attr("joblib", "hash")
    if impl == "tokenize":
        return optional_attr("dask.base", "tokenize")
    raise ValueError(f"unknown hash implementation {impl!r}; "
                     "choose from 'joblite', 'ext', 'pure', 'joblib', 'tokenize'")


# -- persistence ----------------------------------------------------------------------------

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

    joblib = optional_module("joblib")
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

    joblib = optional_module("joblib")
    has_lz4 = importlib.util.find_spec("lz4") is not None
    impls = {"joblite": PersistImpl(".joblite", lambda v, p: joblite.dump(v, p, compress=True),
                                    joblite.load)}
    impls["joblib zlib-3"] = None if joblib is None else PersistImpl(
        ".pkl", lambda v, p: joblib.dump(v, p, compress=3), joblib.load)
    impls["joblib lz4"] = None if joblib is None or not has_lz4 else PersistImpl(
        ".pkl", lambda v, p: joblib.dump(v, p, compress=("lz4", 3)), joblib.load)
    return impls


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


# -- Memory ---------------------------------------------------------------------------------

#: How many times each cached function below really ran (not served from a cache), by name:
#: a hit must not change it, a miss must add one.
MEMORY_CALLS = {"small": 0, "array_argument": 0, "array_result": 0}


def memory_small(a, b, c, x=0):
    """The cached function of the small-argument cases: returns the small tuple ``(a, b, c, x)``."""
    MEMORY_CALLS["small"] += 1
    return (a, b, c, x)


def memory_array_argument(a):
    """The cached function of the large-argument case: returns ``(a.shape, a.dtype.str)``, small."""
    MEMORY_CALLS["array_argument"] += 1
    return (a.shape, a.dtype.str)


def memory_array_result(nbytes):
    """The cached function of the large-result case: returns ``random_f64(nbytes)``."""
    MEMORY_CALLS["array_result"] += 1
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

    return {"joblite": joblite.Memory, "joblib": optional_attr("joblib", "Memory")}


# -- Parallel -------------------------------------------------------------------------------

#: Workers (processes or threads) of every parallel case but ``n_jobs=1``.
PARALLEL_N_JOBS = 2
#: ``chunksize`` of the stdlib ``ProcessPoolExecutor.map`` baseline.
EXECUTOR_CHUNKSIZE = 1000
#: Seconds of one busy task (:func:`busy_task`).
BUSY_SECONDS = 0.001
#: Bytes of the array of the warm-up call of the array case: above ``max_nbytes``
#: (1 MiB), so that it is memory-mapped too.
WARM_UP_ARRAY_BYTES = 2 << 20


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

    return {"joblite": joblite, "joblib": optional_module("joblib")}


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


# -- memory of the array-argument call, in a fresh process ----------------------------------

def parallel_array_memory(impl, nbytes, tasks, temp_folder=None):
    """Peak memory of one call of :func:`array_argument_call`, measured in a fresh process.

    The process (:func:`array_call_memory`) builds the random float64 array
    of `nbytes` bytes, warms up the workers (one small call), then makes the
    call while a background thread samples, every
    :data:`~joblite.bench.procmem.MEMORY_SAMPLE_INTERVAL` seconds, the
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
    if not os.path.exists("/proc/self/smaps_rollup"):
        return {"error": "needs Linux's /proc/<pid>/smaps_rollup"}
    try:
        return run_child(array_call_memory, impl, nbytes, tasks, temp_folder or "")
    except ChildFailed as exc:
        return {"error": str(exc)}


def array_call_memory(impl, nbytes, tasks, temp_folder):
    """Body of the fresh process of :func:`parallel_array_memory`.

    The arguments are those of :func:`parallel_array_memory`, as strings;
    `temp_folder` ``''`` for the library's default.

    Returns
    -------
    dict
        The figures :func:`parallel_array_memory` returns.
    """
    nbytes, tasks, temp_folder = int(nbytes), int(tasks), temp_folder or None
    lib = importlib.import_module(impl)
    kwargs = {"n_jobs": PARALLEL_N_JOBS}
    if temp_folder is not None:
        kwargs["temp_folder"] = temp_folder
    a = random_f64(nbytes)
    total = float(a.sum())
    array_argument_call(lib, warm_up_array(a), tasks, **kwargs)()   # workers started, memmapping ready
    call = array_argument_call(lib, a, tasks, **kwargs)
    gc.collect()
    sampler = procmem.MemorySampler(procmem.memmap_folder_parents(temp_folder))
    idle_parts = min((sampler.sample() for _ in range(3)), key=sum)
    idle = sum(idle_parts)
    with sampler:
        results = call()
    if not abs(sum(results) - total) <= 1e-9 * abs(total):
        raise RuntimeError(f"{impl}: the tasks' sums do not add up to a.sum()")
    peak = sum(sampler.peak)
    left = {os.path.basename(path): procmem.allocated_bytes(path)
            for path in procmem.memmap_folders(sampler.parents, sampler.pid)}
    return {
        "nbytes": nbytes, "idle": idle, "peak": peak, "samples": sampler.samples, "left": left,
        "at_peak": dict(zip(("caller", "workers", "folder"), sampler.peak)),
        "before": dict(zip(("caller", "workers", "folder"), idle_parts)),
        "mem_over_array": (nbytes + peak - idle) / nbytes,
        "total_over_array": peak / nbytes,
    }
