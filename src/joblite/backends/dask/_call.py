"""One ``Parallel`` call on a dask client: its batches as tasks, and the large arguments it sends.

A batch is pickled in the caller with cloudpickle.  Large arguments are taken
out of it: numpy arrays and pandas objects of at least ``max_nbytes`` at any
depth (the pickler's dispatch table meets them), and top-level arguments of
any other type that dask's ``sizeof`` finds that large (looked for only when
the batch's pickle is that large).  Each is scattered once per call, under a
key ``joblite_<type>-<uuid>``, and the task gets its future as an argument:
dask gives the worker the object (one copy per worker) and the batch's
pickle refers to it by position.
"""

import asyncio
import collections
import io
import pickle
import re
import sys
import threading
import time
import uuid
from concurrent.futures import CancelledError, Future

import cloudpickle
from dask.sizeof import sizeof

from ..._memmapping import _DISPATCH_TABLE_SLOT
from ..processes import WorkerDiedError
from ._clients import client_state
from ._worker import run_batch, scattered_argument

__all__ = ["Call"]

_SCALARS = frozenset({int, float, bool, complex, type(None)})
_BUFFERS = frozenset({str, bytes, bytearray})
_INLINE_NBYTES = 1 << 20  # outcomes larger than this are unpickled in a thread, not the event loop


class _Task:
    """A batch on its way: its dask key, the future handed to ``Parallel`` and the arguments of its task."""

    __slots__ = ("key", "future", "start", "size", "args", "dask_future")

    def __init__(self, key, future, start, size, args):
        self.key = key
        self.future = future
        self.start = start
        self.size = size
        self.args = args
        self.dask_future = None

    def describe(self):
        return f"task {self.key!r} (tasks {self.start} to {self.start + self.size - 1} of the call)"


class _Ref:
    """A large top-level argument taken out of a batch: its index among the call's scattered objects."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


class Call:
    """One ``Parallel`` call on `client`: its batches in flight and the data it scattered.

    Parameters
    ----------
    client : distributed.Client
    max_nbytes : int or None
        Arguments of at least this many bytes are scattered; None: only pinned ones.
    reuse_nbytes : int
        The client's budget for data kept after the call (0: none kept, and
        no content digest computed).
    options : dict
        Options of ``client.submit`` (``workers`` goes to ``client.scatter`` too).
    """

    def __init__(self, client, max_nbytes, reuse_nbytes, options):
        self.client = client
        self.state = client_state(client)
        self.max_nbytes = max_nbytes
        self.reuse_nbytes = reuse_nbytes
        self.options = options
        self.lock = threading.Lock()
        self.token = uuid.uuid4().hex[:24]  # with a count: the batches' keys (a uuid4 costs 0.2 ms)
        self.count = 0
        self.tasks = {}  # key -> _Task, until done (or the call ends)
        self.queued = collections.deque()  # held back by n_jobs
        self.running = 0
        self.closed = False
        self.objects = []  # the objects scattered or reused (kept alive: found by id)
        self.futures = []  # index -> its dask future
        self.digests = []  # index -> its content digest, or None
        self.new = []  # indices scattered by this call (not reused)
        self.by_id = {}
        self.by_digest = {}
        self.pinned = set()  # ids of scatter= objects: taken out whatever their size
        self._local = None  # while pickling a batch: index -> position among its task's arguments
        self._table = dict(cloudpickle.Pickler.dispatch_table)
        numpy = sys.modules.get("numpy")  # not imported if the caller did not: no array to meet
        if numpy is not None:
            self._table.update({numpy.ndarray: self._reduce_array, numpy.memmap: self._reduce_array})
        pandas = sys.modules.get("pandas")
        if pandas is not None:
            self._table.update({pandas.DataFrame: self._reduce_other, pandas.Series: self._reduce_other})
        self._table[_Ref] = self._reduce_ref
        self.state.add(self)

    def pin(self, obj):
        """Send `obj` now, and take it out of every batch that holds it (``scatter=``)."""
        self.ref(obj)
        self.pinned.add(id(obj))

    def submit(self, batch, inner_threads, retries, limit):
        """Send `batch` as a dask task (held back while `limit` batches run); return its future.

        The future's result is ``(results, seconds)``, as ``batch()`` returns it.
        """
        payload, futures = self._dumps(batch)
        function = batch.function if batch.function is not None else batch.items[0][0]
        name = re.sub(r"\W+", "_", getattr(function, "__name__", type(function).__name__)).strip("_")
        key = f"batch_of_{name or 'function'}_{batch.size}_calls-{self.token}{self.count:08x}"
        self.count += 1
        task = _Task(key, Future(), batch.start, batch.size, (payload, inner_threads, retries, *futures))
        with self.lock:
            self.tasks[key] = task
            if limit is not None and self.running >= limit:
                self.queued.append(task)
                return task.future
            self.running += 1
        self._send(task)
        return task.future

    # -- pickling batches -------------------------------------------------------------------
    def _dumps(self, batch):
        """The pickled batch and the dask futures of the large arguments it refers to, in order."""
        self._local = {}
        try:
            data = self._pickle(self._swap(batch, self.pinned) if self.pinned else batch)
            if self.max_nbytes is not None and len(data) >= self.max_nbytes:
                swapped = self._swap(batch, None)
                if swapped is not batch:
                    data = self._pickle(swapped)
            futures = [self.futures[index] for index in self._local]
        finally:
            self._local = None
        return data, futures

    def _pickle(self, obj):
        self._local.clear()
        stream = io.BytesIO()
        pickler = cloudpickle.Pickler(stream, protocol=5)
        _DISPATCH_TABLE_SLOT.__set__(pickler, self._table)
        pickler.dump(obj)
        return stream.getvalue()

    def _swap(self, batch, known):
        """`batch`, its large top-level arguments (`known`: those whose id it holds) replaced by references."""
        items = None
        for position, item in enumerate(batch.items):
            if batch.single:
                item = (item,)  # each task's only argument
            function, args, kwargs = (batch.function, item, None) if batch.function is not None else item
            new_args = self._swap_values(args, known)
            new_kwargs = kwargs and self._swap_values(kwargs, known)
            if new_args is not args or new_kwargs is not kwargs:
                if items is None:
                    items = [(value,) for value in batch.items] if batch.single else list(batch.items)
                items[position] = new_args if batch.function is not None else (function, new_args, new_kwargs)
        if items is None:
            return batch
        swapped = type(batch).__new__(type(batch))
        swapped.__setstate__((batch.function, items, batch.start, batch.size))
        return swapped

    def _swap_values(self, values, known):
        out = None
        for name, value in values.items() if isinstance(values, dict) else enumerate(values):
            kind = type(value)
            if kind in _SCALARS or kind in self._table:
                continue  # the pickler takes arrays and pandas objects out, at any depth
            if known is not None:
                large = id(value) in known
            else:
                large = (len(value) if kind in _BUFFERS else sizeof(value)) >= self.max_nbytes
            if large:
                if out is None:
                    out = dict(values) if isinstance(values, dict) else list(values)
                out[name] = _Ref(self.ref(value))
        if out is None:
            return values
        return out if isinstance(values, dict) else tuple(out)

    def _reduce_array(self, array):
        if id(array) not in self.pinned:
            size = sizeof(array) if array.dtype.hasobject else array.nbytes
            if self.max_nbytes is None or size < self.max_nbytes:
                return array.__reduce_ex__(5)
        return self._placeholder(self.ref(array))

    def _reduce_other(self, obj):
        if id(obj) not in self.pinned and (self.max_nbytes is None or sizeof(obj) < self.max_nbytes):
            return obj.__reduce_ex__(5)
        return self._placeholder(self.ref(obj))

    def _reduce_ref(self, ref):
        return self._placeholder(ref.index)

    def _placeholder(self, index):
        return scattered_argument, (self._local.setdefault(index, len(self._local)),)

    # -- scattering ------------------------------------------------------------------------------
    def ref(self, obj):
        """The index of `obj` among the call's scattered objects: sent now unless already on the cluster."""
        index = self.by_id.get(id(obj))
        if index is not None:
            return index
        digest = _digest(obj) if self.reuse_nbytes else None
        index = self.by_digest.get(digest) if digest is not None else None
        if index is None:
            future = self.state.reuse(digest) if digest is not None else None
            if future is None:
                key = f"joblite_{type(obj).__name__}-{uuid.uuid4().hex}"
                future = self.client.scatter({key: obj}, workers=self.options.get("workers"), hash=False)[key]
                self.new.append(len(self.futures))
            index = len(self.futures)
            self.futures.append(future)
            self.digests.append(digest)
            if digest is not None:
                self.by_digest[digest] = index
        self.objects.append(obj)
        self.by_id[id(obj)] = index
        return index

    # -- running ---------------------------------------------------------------------------------
    def _send(self, task):
        try:
            dask_future = self.client.submit(run_batch, *task.args, key=task.key, pure=False, **self.options)
        except BaseException as exc:  # a closed client...: the batch fails, the call raises it
            _settle(task.future, ("raised", exc, None))
            return
        task.args = None
        with self.lock:
            task.dask_future = dask_future
            late = self.closed
        if late:  # the call ended while this was sent (from the event loop)
            dask_future.cancel()
            return
        # Waited for in the client's event loop, where gathers of several batches overlap
        # (a future's done callback runs in one thread, which would fetch them one by one).
        self.client.loop.add_callback(self._collect, task, dask_future)

    async def _collect(self, task, dask_future):
        """Wait for `task`'s dask future, fetch its outcome and settle `task` (in the client's event loop)."""
        data = error = None
        try:
            data = await self.client.gather(dask_future, asynchronous=True)
        except BaseException as exc:  # the task's error (KilledWorker...), or it was cancelled
            error = exc
        with self.lock:
            if self.tasks.pop(task.key, None) is None:
                return  # the call ended
            self.running -= 1
            following = self.queued.popleft() if self.queued and not self.closed else None
            if following is not None:
                self.running += 1
        if following is not None:
            self._send(following)
        task.dask_future = None  # (its key is released once the outcome is here)
        if task.future.done():
            return  # failed already (its worker died)
        try:
            if error is None:
                if len(data) > _INLINE_NBYTES:  # unpickled off the event loop
                    outcome = await asyncio.get_running_loop().run_in_executor(None, _loads, data)
                else:
                    outcome = _loads(data)
            elif dask_future.status == "error":
                outcome = ("raised", error, None)
            else:
                outcome = (
                    "raised",
                    CancelledError(
                        f"dask {dask_future.status} {task.describe()}: another client cancelled it, or "
                        "the cluster restarted or lost it"
                    ),
                    None,
                )
        except BaseException as exc:
            outcome = ("raised", exc, None)
        _settle(task.future, outcome)

    def worker_removed(self, msg):
        """A worker left the cluster unexpectedly: fail the batches it had (in the client's event loop)."""
        worker = msg.get("worker")
        processing = set(msg.get("processing-tasks") or ())
        reported = (
            f"dask's scheduler reported: remove-worker, stimulus_id="
            f"{msg.get('stimulus_id')!r}, expected={msg.get('expected')}"
        )
        with self.lock:
            if self.closed:
                return
            lost = set(msg.get("lost-scattered-tasks") or ()) & {future.key for future in self.futures}
            dead = [task for key, task in self.tasks.items() if key in processing]
            if lost and not dead and self.tasks:
                dead = [next(iter(self.tasks.values()))]
        for task in dead:
            what = (
                f"had {task.describe()}"
                if task.key in processing
                else f"held data of the call that {task.describe()} needs ({', '.join(sorted(lost))})"
            )
            _settle(
                task.future,
                (
                    "raised",
                    WorkerDiedError(
                        f"the dask worker {worker} died: it {what} ({reported}). A worker is usually lost to "
                        "its memory limit (the nanny restarts it), a SIGKILL from the batch system or the "
                        "kernel's out-of-memory killer, or os._exit in a task: see the worker's log. The "
                        "call's other tasks were cancelled."
                    ),
                    None,
                ),
            )

    def end(self, completed):
        """The call is over: cancel what is left of it; keep (`completed`) or release its new data."""
        with self.lock:
            self.closed = True
            release = [task.dask_future for task in self.tasks.values() if task.dask_future is not None]
            self.tasks.clear()
            self.queued.clear()
        self.state.discard(self)
        new = [(self.futures[i], self.digests[i], self.objects[i]) for i in self.new]
        if completed:
            release += self.state.keep([entry for entry in new if entry[1] is not None], self.reuse_nbytes)
            release += [future for future, digest, _ in new if digest is None]
        else:
            release += [future for future, _, _ in new]
        self.objects = self.futures = self.digests = self.new = self.by_id = self.by_digest = None
        if release and self.client.status == "running":
            try:
                self.client.cancel(release)
            except Exception:  # (a lost scheduler) what the call raises matters more; dask
                pass  # releases a disconnected client's keys itself


def _loads(data):
    """A batch's outcome from `data`, its seconds counting the time this takes (moving results back)."""
    start = time.perf_counter()
    outcome = pickle.loads(data)
    if outcome[0] == "ok":
        outcome = ("ok", outcome[1], outcome[2] + time.perf_counter() - start)
    return outcome


def _settle(future, outcome):
    """Complete `future` with a batch's outcome, unless it is done already (cancelled, failed)."""
    kind, value, extra = outcome
    try:
        if kind == "ok":
            future.set_result((value, extra))
        else:
            if extra is not None:
                value.__cause__ = _RemoteTraceback(extra)
            future.set_exception(value)
    except Exception:  # InvalidStateError: settled or cancelled meanwhile
        pass


class _RemoteTraceback(Exception):
    """The traceback of a task's exception in the worker, as text (the ``__cause__`` of the exception)."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def __str__(self):
        return f'\n"""\n{self.text}"""'


def _digest(obj):
    """`obj`'s content digest (:func:`joblite.hash`), or None if it cannot be hashed."""
    from ...hashing import hash as content_hash

    try:
        return content_hash(obj)
    except Exception:
        return None
