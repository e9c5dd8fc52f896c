"""``backend='dask'``: batches run as tasks of a dask.distributed cluster.

The cluster is found from ``client=``, ``scheduler_host=``, ``scheduler_file=``
(the scheduler file a batch script's ``dask scheduler --scheduler-file``
writes) or the current default client.  Each batch is pickled in the caller
(cloudpickle: functions of ``__main__`` and lambdas travel by value) and runs
as one dask task, keyed ``batch_of_<function>_<n>_calls-<uuid>``, never
assumed pure.

Large arguments (numpy arrays of at least ``max_nbytes``, pandas objects, and
any other argument dask's ``sizeof`` finds that large) are taken out of the
batches and scattered to the cluster once per call; every task that uses one
gets it as a dependency, so a worker holds one copy whatever the number of
tasks (arrays reach tasks read-only).  They are keyed by content
(:func:`joblite.hash`): a call that passes an array equal to one a previous
call sent reuses the copy on the cluster.  What finished calls sent is kept
for reuse up to ``reuse_nbytes`` per client (least recently used first out);
:func:`release_scattered` lets it go.

A call never waits for something that may not come: a worker that dies
while it has a batch fails the call at once (the scheduler's
``remove-worker`` event names the batch) with
:class:`~joblite.backends.processes.WorkerDiedError`; with no worker at all,
the call waits ``wait_for_workers_timeout`` seconds.  When a call ends early
(an error, a timeout, Ctrl-C, a generator closed), its dask tasks are
cancelled and the data it scattered is released.  Tasks already running
finish in their worker thread (dask cannot interrupt a thread); their results
are dropped.
"""

import os
import threading
import time
import uuid

try:
    import distributed
    from distributed.threadpoolexecutor import thread_state as _POOL_THREAD  # .proceed: in the pool
except ImportError as exc:  # pragma: no cover - the tests skip without distributed
    raise ImportError(f"backend='dask' needs the distributed package: pip install 'joblite[dask]' ({exc})") from exc

from ... import _validate
from ..._memmapping import parse_max_nbytes
from .. import ParallelBackendBase, check_n_jobs
from ..processes import WorkerDiedError
from ._call import Call
from ._clients import find_client, release_scattered
from ._worker import in_dask_task

__all__ = ["DaskBackend", "release_scattered", "REUSE_NBYTES"]

#: Default of ``reuse_nbytes``: bytes of scattered arguments kept on each client's cluster for
#: later calls.
REUSE_NBYTES = "1G"

# Options of client.submit that apply to every batch (others would reach the function).
_SUBMIT_OPTIONS = ("workers", "resources", "priority", "fifo_timeout", "allow_other_workers")


class DaskBackend(ParallelBackendBase):
    """Batches as tasks of a dask.distributed cluster: ``Parallel(backend='dask')``.

    ``n_jobs=-1`` (the default on this backend) uses every thread of the
    cluster's workers; a positive ``n_jobs`` caps the batches running at
    once (even 1 runs on the cluster).

    Parameters
    ----------
    client : distributed.Client, optional
        The client to use.
    scheduler_host : str, optional
        The scheduler's address (``'tcp://host:8786'``); one client per address
        is made and kept for the process.
    scheduler_file : str or path, optional
        The JSON file ``dask scheduler --scheduler-file`` writes; waited for up
        to `wait_for_workers_timeout` seconds if it does not exist yet.
    scatter : list or tuple, optional
        Objects sent to the cluster at the start of each call, whatever their
        size; the tasks given them (found by identity) get them from there.
    wait_for_workers_timeout : float, optional
        Seconds to wait for a first worker (an adaptive or queued cluster)
        before raising ``TimeoutError``; default 10.
    reuse_nbytes : int or str, optional
        Bytes of scattered arguments kept on the cluster after a call, per
        client, so that later calls with equal arguments send nothing
        (default ``'1G'``; 0 keeps nothing).  Inside a dask task nothing is
        kept.
    retries : int, optional
        Run a batch whose task raises again, up to this many times, on the
        same worker (a worker that dies is not retried: the call fails).
    **submit_options
        ``workers``, ``resources``, ``priority``, ``fifo_timeout``,
        ``allow_other_workers``: passed to every ``client.submit`` (and
        ``workers`` to ``client.scatter``).

    Raises
    ------
    ValueError
        For more than one of `client`, `scheduler_host`, `scheduler_file`,
        a bad `wait_for_workers_timeout`, `reuse_nbytes` or `retries`, or an
        unknown submit option, naming it.
    TypeError
        If `client` is not a ``distributed.Client`` or `scatter` not a list
        or tuple.
    """

    uses_processes = True
    target_batch_seconds = 0.3  # a dask task costs about a millisecond
    max_batch_size = 32768
    default_n_jobs = -1
    sequential_with_one_worker = False
    batch_cost_from_wall_time = False  # batches report their cost: see the base class

    def __init__(
        self,
        client=None,
        scheduler_host=None,
        scheduler_file=None,
        scatter=None,
        wait_for_workers_timeout=10,
        reuse_nbytes=REUSE_NBYTES,
        retries=0,
        **submit_options,
    ):
        super().__init__()
        given = [
            name
            for name, value in (
                ("client", client),
                ("scheduler_host", scheduler_host),
                ("scheduler_file", scheduler_file),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"backend='dask' takes one of client, scheduler_host and scheduler_file; got {' and '.join(given)}"
            )
        if client is not None and not isinstance(client, distributed.Client):
            raise TypeError(f"client={client!r} must be a distributed.Client")
        if scheduler_host is not None and (not isinstance(scheduler_host, str) or not scheduler_host):
            raise ValueError(f"scheduler_host={scheduler_host!r} must be an address like 'tcp://host:8786'")
        if scheduler_file is not None:
            scheduler_file = os.path.abspath(os.fspath(scheduler_file))
        if scatter is not None and not isinstance(scatter, (list, tuple)):
            raise TypeError(f"scatter must be a list or tuple, got {type(scatter).__name__}")
        timeout = wait_for_workers_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise ValueError(f"wait_for_workers_timeout={timeout!r} must be a number of seconds >= 0")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r} must be an int >= 0")
        unknown = sorted(set(submit_options) - set(_SUBMIT_OPTIONS))
        if unknown:
            raise ValueError(
                f"backend='dask' got unknown option(s) {', '.join(unknown)}; the options "
                f"passed to client.submit are {', '.join(_SUBMIT_OPTIONS)}"
            )
        self._given = client
        self._found = None
        self.scheduler_host = scheduler_host
        self.scheduler_file = scheduler_file
        self.scatter = list(scatter or ())
        self.wait_for_workers_timeout = float(timeout)
        self.reuse_nbytes = _validate.parse_size(reuse_nbytes, "reuse_nbytes") or 0
        self.retries = retries
        self.submit_options = submit_options
        self._call = None
        self._limit = None
        self._max_nbytes = None
        self._inner = None
        self._seceded = None  # the thread this backend took out of its worker's pool
        self._counted = None  # (time.monotonic(), threads of the cluster's workers)

    @property
    def client(self):
        """The ``distributed.Client`` used: the one given, else found on first use.

        Raises
        ------
        ValueError
            If the client given is closed, or none can be found (saying how
            to make one).
        ConnectionError, FileNotFoundError
            If `scheduler_host` or `scheduler_file` leads nowhere.
        """
        if self._given is not None:
            if self._given.status in ("closing", "closed"):
                raise ValueError(f"client={self._given!r} is closed")
            return self._given
        if self._found is None or self._found.status in ("closing", "closed"):
            self._found = find_client(self.scheduler_host, self.scheduler_file, self.wait_for_workers_timeout)
        return self._found

    def effective_n_jobs(self, n_jobs):
        """`n_jobs` if positive, else the threads of the cluster's workers (-1 all, -2 all but one...).

        Raises
        ------
        ValueError
            For a bad `n_jobs`, or when no client can be found.
        TimeoutError
            If the cluster has no worker after `wait_for_workers_timeout` seconds.
        """
        n_jobs = check_n_jobs(n_jobs)
        if n_jobs > 0:
            return n_jobs
        return max(1, self._threads() + 1 + n_jobs)

    def configure(self, n_jobs, parallel):
        n_workers = self.effective_n_jobs(n_jobs)
        if n_jobs > 0:
            self._threads()  # a worker must be there (or come): else the call would wait forever
        self._limit = n_jobs if n_jobs > 0 else None
        self._max_nbytes = parse_max_nbytes(parallel.max_nbytes)
        self._inner = parallel.inner_max_num_threads
        if self._seceded is None and in_dask_task() and getattr(_POOL_THREAD, "proceed", False):
            # This task waits for the nested call's tasks: its thread leaves the worker's
            # pool meanwhile, so that they can run even with one thread per worker.
            distributed.secede()
            self._seceded = threading.get_ident()
        return n_workers

    def submit(self, batch):
        if self._call is None:
            reuse = 0 if in_dask_task() else self.reuse_nbytes
            self._call = Call(self.client, self._max_nbytes, reuse, self.submit_options)
            for obj in self.scatter:
                self._call.pin(obj)
        return self._call.submit(batch, self._inner, self.retries, self._limit)

    def end_call(self, completed):
        """Cancel the call's dask tasks still pending; keep (`completed`) or release the data it sent."""
        call, self._call = self._call, None
        if call is not None:
            call.end(completed)
        self._rejoin()

    def stop(self):
        self._rejoin()

    def translate(self, exc):
        """A :class:`~joblite.backends.processes.WorkerDiedError` for dask's ``KilledWorker``; others as they are."""
        if isinstance(exc, distributed.KilledWorker):
            worker = getattr(exc.last_worker, "address", exc.last_worker)
            return WorkerDiedError(
                f"dask gave up on task {exc.task!r}: workers died while running it "
                f"{exc.allowed_failures + 1} times, the last {worker} (distributed.KilledWorker). "
                "It likely exhausts the workers' memory or crashes their process."
            )
        return exc

    def _threads(self):
        """Threads of the cluster's workers, after waiting for a first worker if there is none.

        A count is reused for a second: ``Parallel()`` asks for it, and its
        call right after (a round trip to the scheduler each).
        """
        if self._counted is not None and time.monotonic() - self._counted[0] < 1.0:
            return self._counted[1]
        client = self.client
        threads = sum(client.nthreads().values())
        if threads:
            self._counted = (time.monotonic(), threads)
            return threads
        # A task, not wait_for_workers: an adaptive cluster starts workers for pending tasks.
        probe = client.submit(int, key=f"joblite-probe-{uuid.uuid4().hex}", pure=False)
        try:
            probe.result(timeout=self.wait_for_workers_timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the dask cluster at {client.scheduler.address} has no worker after "
                f"wait_for_workers_timeout={self.wait_for_workers_timeout:g} s: start workers (or check "
                "that they can reach the scheduler), or wait longer with e.g. "
                f"parallel_config(backend='dask', wait_for_workers_timeout="
                f"{max(60, 2 * self.wait_for_workers_timeout):g})"
            ) from None
        finally:
            probe.cancel()
        threads = max(1, sum(client.nthreads().values()))
        self._counted = (time.monotonic(), threads)
        return threads

    def _rejoin(self):
        if self._seceded == threading.get_ident():
            self._seceded = None
            distributed.rejoin()
