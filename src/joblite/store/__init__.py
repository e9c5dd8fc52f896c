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
  verify a store, as functions; :mod:`~joblite.store.loader`, the child
  process ``verify`` loads entries in;
- :mod:`~joblite.store.options`: the sort orders, counts and time limit
  that the command line and the maintenance functions share;
- :mod:`~joblite.store.cli`: ``python -m joblite cache``, which parses
  arguments and prints what :mod:`~joblite.store.maintenance` returns.

The names below are imported on first use, with the ``'local'`` backend
(which needs the persistence code): importing a module of the package, such
as :mod:`~joblite.store.cli` to build the command line's parser, stays cheap.
"""

import importlib

# public name -> module of the package that defines it; describe_os_error, warn_not_removed and
# EntryLock are taken from here by joblite.memory, joblite._memorized_func and the tests.
_LAZY = {
    "CacheItemInfo": "base",
    "CacheWarning": "base",
    "CodeRecordMissing": "base",
    "StoreBackendBase": "base",
    "describe_os_error": "base",
    "register_store_backend": "base",
    "store_backend": "base",
    "warn_not_removed": "base",
    "FileSystemStoreBackend": "local",
    "EntryLock": "locks",
}

__all__ = [
    "CacheWarning",
    "CacheItemInfo",
    "StoreBackendBase",
    "FileSystemStoreBackend",
    "CodeRecordMissing",
    "register_store_backend",
    "store_backend",
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'joblite.store' has no attribute {name!r}")
    importlib.import_module(".local", __name__)  # registers the 'local' backend before any name is used
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
