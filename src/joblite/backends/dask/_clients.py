"""The clients joblite uses, and what it keeps per client: data for reuse, the calls running.

A client given (``client=``) or the current one is used as is; for
``scheduler_host`` and ``scheduler_file`` one client per scheduler address is
made and kept for the process (closed at exit).
"""

from __future__ import annotations

import atexit
import collections
import json
import threading
import time
import weakref

import distributed
from dask.sizeof import sizeof

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ClientState", "client_state", "release_scattered", "find_client", "close_own_clients"]


class ClientState:
    """What joblite keeps for one client: data scattered by finished calls, and its calls running."""

    def __init__(self, client):
        self.client = weakref.ref(client)
        self.lock = threading.Lock()
        self.kept = collections.OrderedDict()  # digest -> (future, nbytes), least recent first
        self.kept_nbytes = 0
        self.calls = set()
        self._previous = None  # the handler of topic "all" found when subscribing (chained)

    def add(self, call):
        """`call` starts: the scheduler's events reach it (workers that die) until it ends."""
        with self.lock:
            self.calls.add(call)
            if len(self.calls) == 1:
                client = self.client()
                previous = getattr(client, "_event_handlers", {}).get("all")
                self._previous = None if previous == self._on_event else previous
                client.subscribe_topic("all", self._on_event)

    def discard(self, call):
        with self.lock:
            self.calls.discard(call)
            if self.calls:
                return
            client = self.client()
            # Subscribed only while calls run: the scheduler logs a client's removal to
            # "all", and writing it to that client, closed, logs a CRITICAL error.
            if client is not None and client.status == "running":
                if self._previous is not None:
                    client.subscribe_topic("all", self._previous)
                else:
                    client.unsubscribe_topic("all")

    def reuse(self, digest):
        """The future of data with `digest` kept on the cluster, or None."""
        with self.lock:
            entry = self.kept.get(digest)
            if entry is None:
                return None
            if entry[0].status != "finished":  # lost with its worker
                self._drop(digest)
                return None
            self.kept.move_to_end(digest)
            return entry[0]

    def keep(self, entries, budget):
        """Keep `entries` ``(future, digest, obj)`` within `budget` bytes; return the futures to release."""
        release = []
        with self.lock:
            for future, digest, obj in entries:
                nbytes = sizeof(obj)
                if digest in self.kept or nbytes > budget:
                    release.append(future)
                    continue
                self.kept[digest] = (future, nbytes)
                self.kept_nbytes += nbytes
            while self.kept_nbytes > budget:
                # Only let go: a call running in another thread may use it.
                self._drop(next(iter(self.kept)))
        return release

    def clear(self):
        with self.lock:
            self.kept.clear()
            self.kept_nbytes = 0

    def _drop(self, digest):
        self.kept_nbytes -= self.kept.pop(digest)[1]

    async def _on_event(self, event):
        if self._previous is not None:
            result = self._previous(event)
            if hasattr(result, "__await__"):
                await result
        msg = event[1] if isinstance(event, tuple) and len(event) == 2 else None
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker" or msg.get("expected"):
            return  # an expected removal (scaling down): dask moves its tasks elsewhere
        lost = set(msg.get("lost-scattered-tasks") or ())
        with self.lock:
            for digest in [digest for digest, (future, _) in self.kept.items() if future.key in lost]:
                self._drop(digest)
            calls = list(self.calls)
        for call in calls:
            call.worker_removed(msg)


_STATE_LOCK = threading.Lock()
_CLIENTS: weakref.WeakSet[Any] = weakref.WeakSet()  # clients with a state, for release_scattered()


def client_state(client):
    """The :class:`ClientState` of `client` (made on first use)."""
    with _STATE_LOCK:
        # On the client itself: it lives as long as the client (and references its futures).
        state = getattr(client, "_joblite_state", None)
        if state is None:
            state = client._joblite_state = ClientState(client)
            _CLIENTS.add(client)
        return state


def release_scattered(client=None):
    """Let go of the arguments kept on the cluster for reuse by later ``backend='dask'`` calls.

    Data a call still running uses stays until that call ends.

    Parameters
    ----------
    client : distributed.Client, optional
        Only this client's; default: every client's.

    Returns
    -------
    int
        The bytes let go (dask's ``sizeof`` of the objects).
    """
    clients = [client] if client is not None else list(_CLIENTS)
    released = 0
    for each in clients:
        state = getattr(each, "_joblite_state", None)
        if state is not None:
            released += state.kept_nbytes
            state.clear()
    return released


# -- finding the cluster ---------------------------------------------------------------------------
_OWN_CLIENTS: dict[str, Any] = {}  # address -> Client made for scheduler_host / scheduler_file, kept for the process
_OWN_LOCK = threading.Lock()


def find_client(scheduler_host, scheduler_file, wait_seconds):
    """The client of `scheduler_file`, else of `scheduler_host`, else the current one.

    Raises
    ------
    ValueError
        If there is none, saying how to make one; or if `scheduler_file` is
        not a scheduler file.
    FileNotFoundError
        If `scheduler_file` does not appear within `wait_seconds`.
    ConnectionError
        If the scheduler cannot be reached, naming its address.
    """
    if scheduler_file is not None:
        return _own_client(_read_scheduler_file(scheduler_file, wait_seconds), f"scheduler_file={scheduler_file!r}")
    if scheduler_host is not None:
        return _own_client(scheduler_host, f"scheduler_host={scheduler_host!r}")
    try:
        return distributed.get_client()
    except ValueError:
        raise ValueError(
            "backend='dask' found no dask client: create one first, e.g.\n\n"
            "    from distributed import Client, LocalCluster\n"
            "    client = Client(LocalCluster())          # this machine\n"
            "    client = Client('tcp://scheduler:8786')  # a running scheduler\n\n"
            "or pass client=..., scheduler_host='tcp://host:8786' or scheduler_file='scheduler.json' "
            "to Parallel or parallel_config"
        ) from None


def _read_scheduler_file(path, wait_seconds):
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with open(path) as file:
                address = json.load(file)["address"]
            if not isinstance(address, str):
                raise TypeError(f"its address is {address!r}")
            return address
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError, OSError) as exc:
            if time.monotonic() >= deadline:  # else it may be being written
                raise ValueError(
                    f"scheduler_file={path!r} is not a dask scheduler file (JSON with an 'address'): {exc!r}"
                ) from None
        if time.monotonic() >= deadline:
            raise FileNotFoundError(
                f"scheduler_file={path!r} does not exist after waiting wait_for_workers_timeout="
                f"{wait_seconds:g} s: the scheduler writes it when it starts "
                "(dask scheduler --scheduler-file PATH); is it started, with the same path?"
            )
        time.sleep(0.1)


def _own_client(address, source):
    with _OWN_LOCK:
        client = _OWN_CLIENTS.get(address)
        if client is not None:
            if client.status == "running":
                return client
            client.close()
        try:
            client = distributed.Client(address, set_as_default=False)
        except OSError as exc:
            raise ConnectionError(
                f"could not connect to the dask scheduler at {address!r} ({source}): {exc}. Is the "
                "scheduler running and reachable from this host? (dask's connection timeout is the "
                "config distributed.comm.timeouts.connect)"
            ) from exc
        _OWN_CLIENTS[address] = client
        return client


@atexit.register
def close_own_clients():
    """Close the clients made for ``scheduler_host`` and ``scheduler_file`` (at exit)."""
    with _OWN_LOCK:
        clients = list(_OWN_CLIENTS.values())
        _OWN_CLIENTS.clear()
    for client in clients:
        try:
            client.close(timeout=5)
        except Exception:
            pass
