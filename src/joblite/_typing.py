"""Types shared by joblite's public signatures, for type checkers only.

Modules import this under ``if TYPE_CHECKING:`` (with ``from __future__ import
annotations``), so that importing joblite never imports :mod:`typing`.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any, Literal, Protocol, Union

from typing_extensions import Buffer

__all__ = [
    "AgeLimit",
    "Allowed",
    "BackendSpec",
    "BytesLimit",
    "CallId",
    "Compress",
    "EntryLock",
    "HashName",
    "MmapMode",
    "PathType",
    "ReadableFile",
    "Task",
    "ValidationCallback",
    "WorkerMmapMode",
    "WritableFile",
]

#: ``hash_name=`` of hash and Hasher: one of ``joblite.hashing.HASH_NAMES``.
HashName = Literal["xxh3_128", "xxh3_64", "md5", "sha1", "sha256", "blake2b"]

#: ``compress=`` of dump, dumps and Memory: False/True, a level 0-9, a codec name, or (name, level).
Compress = Union[bool, int, str, tuple[str, int]]

#: ``mmap_mode=`` of load, Memory and Parallel (None, where allowed, is spelled out).
MmapMode = Literal["r+", "r", "w+", "c"]

#: A file or folder name.
PathType = Union[str, "os.PathLike[str]"]

#: ``allowed=`` of load and loads.
Allowed = Union[Literal["numpy", "safe"], list[str], None]

#: ``bytes_limit=``: bytes, or a size such as ``'10G'``.
BytesLimit = Union[int, str]

#: ``age_limit=``: a timedelta, seconds, or a duration such as ``'7d'``.
AgeLimit = Union[datetime.timedelta, float, str]

#: ``cache_validation_callback=``: given an entry's metadata, whether it is still valid.
ValidationCallback = Callable[[dict[str, Any]], bool]


class WritableFile(Protocol):
    """A binary file object :func:`joblite.dump` can write to."""

    def write(self, data: Buffer, /) -> object: ...


class ReadableFile(Protocol):
    """A binary file object :func:`joblite.load` can read from."""

    def read(self, size: int = ..., /) -> bytes: ...


#: A cache entry's identity in a store: ``(func_id, args_id)``.
CallId = tuple[str, str]


class EntryLock(Protocol):
    """What :meth:`joblite.StoreBackendBase.entry_lock` returns: a lock on computing one entry."""

    def acquire_or_wait(self, is_done: Callable[[], bool], /) -> bool: ...
    def release(self) -> None: ...


#: A task, as ``delayed(function)(*args, **kwargs)`` makes it.
Task = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

#: ``backend=`` of Parallel and parallel_config: a registered name, a ParallelBackendBase, an
#: object following joblib's backend protocol or a multiprocessing context; checked at run time.
BackendSpec = object

#: ``mmap_mode=`` of Parallel and parallel_config (no None: arguments are always mapped).
WorkerMmapMode = Literal["r", "r+", "w+", "c"]
