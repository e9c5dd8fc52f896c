"""The seeded workloads of the benchmark, shared by ``python -m joblite bench`` and ``asv_benchmarks/``.

What is measured, and nothing about how: the data (seeded with
``numpy.random.default_rng(0)``, so that every run and both tools see the
same values), the implementations compared (each ``None`` when it is not
installed), the functions that ``Memory`` caches and the tasks that
``Parallel`` runs, and the calls written as a user writes them (on dask too,
with the benchmark's cluster and its count of the bytes sent).  The sizes
are the caller's: the sections of :mod:`joblite.bench.sections` and the asv
benchmarks each choose theirs.  This is the only module of
:mod:`joblite.bench` that asv imports.

Nothing here imports numpy, joblib or dask at module import time.
"""

import contextlib
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
    "ARRIVED_BYTES_PLUGIN",
    "BUSY_SECONDS",
    "DASK_IMPLS",
    "DASK_WORKERS",
    "EXECUTOR_CHUNKSIZE",
    "MAP_CHUNKS_PER_WORKER",
    "MEMORY_CALLS",
    "PARALLEL_N_JOBS",
    "SMALL_ARGS",
    "WARM_UP_ARRAY_BYTES",
    "PersistImpl",
    "array_argument_call",
    "array_call_memory",
    "array_part_sum",
    "array_results_call",
    "arrived_bytes",
    "busy_task",
    "busy_tasks_call",
    "compressed_impls",
    "copies_sent",
    "dask_array_argument_call",
    "dask_tiny_tasks_call",
    "full_array",
    "hash_function",
    "image_f32",
    "local_cluster",
    "memory_array_argument",
    "memory_array_result",
    "memory_impls",
    "memory_small",
    "optional_attr",
    "optional_module",
    "parallel_array_memory",
    "parallel_impls",
    "persistence_impls",
    "pickle_dump",
    "pickle_load",
    "random_array",
    "random_f64",
    "random_floats",
    "release_joblite_reuse",
    "small_dicts",
    "small_ints",
    "smooth_f64",
    "str_int_dict",
    "tiny_chunk",
    "tiny_task",
    "tiny_tasks_call",
    "tiny_tasks_executor_call",
    "tiny_tasks_loop",
    "warm_up_array",
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
    image += np.float32(0.5) + np.float32(0.25) * np.sin(np.float32(6 * np.pi) * x) * np.cos(np.float32(4 * np.pi) * y)
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
    return [{"id": i, "name": f"item{i}", "score": scores[i], "tags": ["a", "b"]} for i in range(count)]


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
    raise ValueError(
        f"unknown hash implementation {impl!r}; choose from 'joblite', 'ext', 'pure', 'joblib', 'tokenize'"
    )


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
        "joblite": PersistImpl(
            ".joblite",
            lambda value, path: joblite.dump(value, path),
            joblite.load,
            lambda path: joblite.load(path, mmap_mode="r"),
        ),
        "numpy": PersistImpl(
            ".npy",
            lambda value, path: np.save(path, value, allow_pickle=False),
            lambda path: np.load(path, allow_pickle=False),
            lambda path: np.load(path, mmap_mode="r"),
        ),
        "joblib": None
        if joblib is None
        else PersistImpl(
            ".pkl",
            lambda value, path: joblib.dump(value, path),
            joblib.load,
            lambda path: joblib.load(path, mmap_mode="r"),
        ),
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
    impls = {"joblite": PersistImpl(".joblite", lambda v, p: joblite.dump(v, p, compress=True), joblite.load)}
    impls["joblib zlib-3"] = (
        None if joblib is None else PersistImpl(".pkl", lambda v, p: joblib.dump(v, p, compress=3), joblib.load)
    )
    impls["joblib lz4"] = (
        None
        if joblib is None or not has_lz4
        else PersistImpl(".pkl", lambda v, p: joblib.dump(v, p, compress=("lz4", 3)), joblib.load)
    )
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
    return a[: WARM_UP_ARRAY_BYTES // a.itemsize].copy()


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
    array_argument_call(lib, warm_up_array(a), tasks, **kwargs)()  # workers started, memmapping ready
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
    left = {
        os.path.basename(path): procmem.allocated_bytes(path)
        for path in procmem.memmap_folders(sampler.parents, sampler.pid)
    }
    return {
        "nbytes": nbytes,
        "idle": idle,
        "peak": peak,
        "samples": sampler.samples,
        "left": left,
        "at_peak": dict(zip(("caller", "workers", "folder"), sampler.peak)),
        "before": dict(zip(("caller", "workers", "folder"), idle_parts)),
        "mem_over_array": (nbytes + peak - idle) / nbytes,
        "total_over_array": peak / nbytes,
    }


# -- Parallel on dask.distributed -----------------------------------------------------------

#: Worker processes of the benchmark's ``LocalCluster`` (:func:`local_cluster`), one thread each.
DASK_WORKERS = 2
#: Chunks per worker of the chunked ``client.map`` baseline (:func:`dask_tiny_tasks_call`).
MAP_CHUNKS_PER_WORKER = 4
#: Name of the worker plugin that counts the bytes arriving in a worker's memory.
ARRIVED_BYTES_PLUGIN = "joblite-bench-arrived-bytes"


@contextlib.contextmanager
def local_cluster():
    """The benchmark's cluster: start it, yield its ``distributed.Client``, close both at the end.

    A ``LocalCluster`` of :data:`DASK_WORKERS` worker processes of one thread
    each, on the loopback interface, without dashboard; every worker counts
    the bytes of data that arrive in its memory (:func:`arrived_bytes`).

    Yields
    ------
    distributed.Client
        Connected, with every worker up.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=DASK_WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(DASK_WORKERS, timeout=60)
        client.register_plugin(_arrived_bytes_plugin(), name=ARRIVED_BYTES_PLUGIN)
        yield client


def _arrived_bytes_plugin():
    """A ``distributed.WorkerPlugin`` whose ``total`` counts the bytes arriving in its worker's memory.

    It counts each key that enters the worker's memory from elsewhere than
    the worker's own execution: data scattered by the caller, or copied from
    another worker for a task; nothing of the task messages or results.  The
    class is made here so that this module does not import distributed; the
    plugin travels to the workers by value (cloudpickle).
    """
    from distributed import WorkerPlugin

    class ArrivedBytes(WorkerPlugin):
        def setup(self, worker):
            self.tasks = worker.state.tasks
            self.total = 0

        def transition(self, key, start, finish, **kwargs):
            if finish == "memory" and start not in ("executing", "long-running"):
                self.total += self.tasks[key].nbytes or 0

    return ArrivedBytes()


def _worker_arrived_bytes(dask_worker):
    return dask_worker.plugins[ARRIVED_BYTES_PLUGIN].total


def arrived_bytes(client):
    """Bytes of data that arrived in the workers' memory so far, summed over the workers.

    Data scattered by the caller and data copied from one worker to another
    for a task count; task messages and results do not.  The difference
    across a call is what the call made travel (every transfer a call needs
    is done when its results are in).
    """
    return sum(client.run(_worker_arrived_bytes).values())


#: The implementations of the dask cases: joblite's and joblib's dask backends, and plain dask.
DASK_IMPLS = ("joblite", "joblib", "client.map")


def _on_dask(lib, client, call):
    """`call` made inside ``lib.parallel_config(backend='dask', client=client)``, as a user writes it."""

    def run():
        with lib.parallel_config(backend="dask", client=client):
            return call()

    return run


def dask_tiny_tasks_call(impl, client, count):
    """`count` tiny tasks on `client`'s cluster, the way of `impl`.

    Parameters
    ----------
    impl : {'joblite', 'joblib', 'client.map'}
        ``'joblite'`` and ``'joblib'``: :func:`tiny_tasks_call` with
        ``n_jobs=-1`` inside ``parallel_config(backend='dask',
        client=client)``.  ``'client.map'``: the inputs ``range(count)`` in
        ``DASK_WORKERS * MAP_CHUNKS_PER_WORKER`` consecutive lists,
        ``client.map(tiny_chunk, chunks, pure=False)``, the results gathered
        and unpickled in order.
    client : distributed.Client
    count : int

    Returns
    -------
    callable or None
        A function of no argument that makes one call and returns the
        results; ``None`` when `impl`'s library is not installed.
    """
    if impl != "client.map":
        lib = parallel_impls()[impl]
        return None if lib is None else _on_dask(lib, client, tiny_tasks_call(lib, count, n_jobs=-1))
    import pickle

    chunks = DASK_WORKERS * MAP_CHUNKS_PER_WORKER
    xs = list(range(count))
    parts = [xs[count * i // chunks : count * (i + 1) // chunks] for i in range(chunks)]

    def call():
        futures = client.map(tiny_chunk, parts, pure=False)
        return [result for part in client.gather(futures) for result in pickle.loads(part)]

    return call


def tiny_chunk(xs):
    """``[tiny_task(x) for x in xs]`` as one pickle (protocol 5): a chunk of the ``client.map`` baseline.

    One pickle, because distributed serializes a returned list of floats item
    by item (about 0.1 ms an item), which would time that rather than
    dask's per-task cost.
    """
    import pickle

    return pickle.dumps([tiny_task(x) for x in xs], protocol=5)


def dask_array_argument_call(impl, client, a, tasks, fresh=False):
    """Tasks :func:`array_part_sum` ``(a, i, tasks)`` sharing `a`, as `impl` runs them on `client`'s cluster.

    Parameters
    ----------
    impl : {'joblite', 'joblib', 'client.map'}
        ``'joblite'`` and ``'joblib'``: :func:`array_argument_call` with
        ``n_jobs=-1`` inside ``parallel_config(backend='dask',
        client=client)``.  ``'client.map'``: ``client.scatter(a,
        hash=False)`` (to one worker; the others copy it when their tasks
        need it), ``client.map(array_part_sum, [future] * tasks,
        range(tasks), [tasks] * tasks, pure=False)``, the results gathered,
        the future released.
    client : distributed.Client
    a : numpy.ndarray
        1-D.
    tasks : int
    fresh : bool, default False
        Make every call a first call: joblite releases the arrays it keeps
        on the cluster for reuse (:func:`release_joblite_reuse`) at the
        start of each call, so that it sends `a` as the others do.

    Returns
    -------
    callable or None
        A function of no argument that makes one call and returns the
        tasks' sums; ``None`` when `impl`'s library is not installed.
    """
    if impl == "client.map":

        def call():
            future = client.scatter(a, hash=False)
            try:
                futures = client.map(array_part_sum, [future] * tasks, range(tasks), [tasks] * tasks, pure=False)
                return client.gather(futures)
            finally:
                future.release()

        return call
    lib = parallel_impls()[impl]
    if lib is None:
        return None
    call = _on_dask(lib, client, array_argument_call(lib, a, tasks, n_jobs=-1))
    if not fresh or impl != "joblite":
        return call

    def first_call():
        release_joblite_reuse(client)
        return call()

    return first_call


def release_joblite_reuse(client):
    """Drop the arrays joblite's dask backend keeps on `client`'s cluster for reuse by later calls."""
    from joblite.backends.dask import release_scattered

    release_scattered(client)


def copies_sent(client, call, nbytes):
    """Make ``call()``; return the copies of an `nbytes` array it made travel, per worker.

    Returns
    -------
    float
        The bytes that arrived in the workers' memory during the call
        (:func:`arrived_bytes`) over ``nbytes * DASK_WORKERS``: 1.0 is one
        copy per worker.
    """
    before = arrived_bytes(client)
    call()
    return (arrived_bytes(client) - before) / (nbytes * DASK_WORKERS)
