"""``Parallel(backend='dask')`` benchmarks for asv: joblite against joblib's dask backend and plain dask.

The workloads of ``python -m joblite bench --section distributed``, from
:mod:`joblite.bench.workloads`, at asv's sizes.  Each benchmark starts its
own cluster in ``setup`` (``local_cluster``: a ``LocalCluster`` of 2 worker
processes of one thread each, on loopback, no dashboard; about 3 s) and
closes it in ``teardown``.  ``impl`` is ``'joblite'`` or ``'joblib'``, each
written as a user writes it, ``Parallel(n_jobs=-1)(delayed(f)(x) for x in
...)`` inside ``parallel_config(backend='dask', client=client)``, or
``'client.map'``, the same work in plain dask:

* 2,000 and 20,000 tiny tasks (``tiny_task``); the dask baseline is a
  chunked ``client.map``, 4 chunks per worker (``dask_tiny_tasks_call``);
* 64 tasks sharing one 64 MiB float64 array (``array_part_sum``): the time
  of a first call, and the copies of the array it sent (the bytes arrived
  in the workers' memory over the array's size times the number of
  workers: ``copies_sent``); the dask baseline scatters the array once and
  maps over its future (``dask_array_argument_call``).  joblite's timed
  call first releases the arrays it keeps for reuse (``fresh=True``), so
  that every call sends the array;
* the same call made again after a first one in ``setup``: its time, and
  the copies it sent (joblite reuses the array already on the cluster).

``setup`` makes one small call first, so that the workers' imports are not
timed.  asv skips every benchmark (``NotImplementedError`` in ``setup``)
when ``distributed`` is not installed, and joblib's when joblib is not.
"""

import contextlib
import importlib.util

from joblite.bench.workloads import (
    DASK_IMPLS,
    copies_sent,
    dask_array_argument_call,
    dask_tiny_tasks_call,
    local_cluster,
    parallel_impls,
    random_f64,
    warm_up_array,
)

from . import available, scaled

#: Tiny tasks per call of the two task cases.
TINY_TASKS = scaled(2_000)
MANY_TASKS = scaled(20_000)
#: Bytes of the shared array argument, and tasks given it.
ARRAY_BYTES = scaled(64 << 20)
ARRAY_TASKS = 64

_DATA_CACHE = {}


def make_array():
    """The seeded 64 MiB random float64 array (memoised in this process)."""
    if "array" not in _DATA_CACHE:
        _DATA_CACHE["array"] = random_f64(ARRAY_BYTES)
    return _DATA_CACHE["array"]


class _OnCluster:
    """A cluster per benchmark, started in ``setup`` and closed in ``teardown``."""

    params = [list(DASK_IMPLS)]
    param_names = ["impl"]
    timeout = 300

    def setup(self, impl):
        available(importlib.util.find_spec("distributed"), "distributed")
        if impl != "client.map":
            available(parallel_impls()[impl], impl)
        self.stack = contextlib.ExitStack()
        self.client = self.stack.enter_context(local_cluster())

    def teardown(self, impl):
        self.stack.close()

    def time_call(self, impl):
        self.call()


class _Tasks(_OnCluster):
    count = None

    def setup(self, impl):
        super().setup(impl)
        dask_tiny_tasks_call(impl, self.client, 100)()
        self.call = dask_tiny_tasks_call(impl, self.client, self.count)


class TinyTasks(_Tasks):
    """2,000 tiny tasks on the 2 dask workers."""

    count = TINY_TASKS


class ManyTinyTasks(_Tasks):
    """20,000 tiny tasks on the 2 dask workers."""

    count = MANY_TASKS


class _ArrayCall(_OnCluster):
    def track_copies_per_worker(self, impl):
        return copies_sent(self.client, self.call, ARRAY_BYTES)

    track_copies_per_worker.unit = "array copies per worker"


class ArrayArgument(_ArrayCall):
    """64 tasks sharing one 64 MiB float64 array, a first call: its time, and the copies it sent."""

    def setup(self, impl):
        super().setup(impl)
        a = make_array()
        dask_array_argument_call(impl, self.client, warm_up_array(a), ARRAY_TASKS)()
        self.call = dask_array_argument_call(impl, self.client, a, ARRAY_TASKS, fresh=True)


class RepeatedCall(_ArrayCall):
    """The same call again, after a first one in ``setup``: its time, and the copies it sent."""

    def setup(self, impl):
        super().setup(impl)
        self.call = dask_array_argument_call(impl, self.client, make_array(), ARRAY_TASKS)
        self.call()
