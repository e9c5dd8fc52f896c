"""The cache store: where ``Memory`` keeps function results, on a folder many processes and hosts share.

One job a module:

- :mod:`~joblite.store.base`: what a backend implements
  (:class:`StoreBackendBase`, with the size policy), the registry of
  backends, and how store faults are reported;
- :mod:`~joblite.store.layout`: where the ``'local'`` store keeps every
  file, and what each holds: the one place that names them;
- :mod:`~joblite.store.local`: the ``'local'`` backend
  (:class:`FileSystemStoreBackend`);
- :mod:`~joblite.store.locks`: lock files on ``pid@host`` names;
- :mod:`~joblite.store.maintenance`: find, info, ls, prune, clear and
  verify a store, as functions;
- :mod:`~joblite.store.cli`: ``python -m joblite cache``, which parses
  arguments and prints what :mod:`~joblite.store.maintenance` returns.
"""
# describe_os_error, warn_not_removed, parse_size and EntryLock are imported from here by
# joblite.memory, joblite._memmapping and the tests, besides the public names of __all__.
from .._validate import parse_size
from .base import (CacheItemInfo, CacheWarning, CodeRecordMissing, StoreBackendBase, describe_os_error,
                   register_store_backend, store_backend, warn_not_removed)
from .local import FileSystemStoreBackend
from .locks import EntryLock

__all__ = ["CacheWarning", "CacheItemInfo", "StoreBackendBase", "FileSystemStoreBackend",
           "CodeRecordMissing", "register_store_backend", "store_backend"]
