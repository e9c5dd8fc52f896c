"""joblite: joblib's job, faster.

Transparent disk caching of function results, readable parallel loops, fast
persistence of objects holding large numpy arrays, and fast hashing of such
objects, with joblib's public names.  Attributes are imported lazily so that
``import joblite`` stays cheap: numpy is only imported when it is needed.
"""

import importlib

from ._version import __version__

# public name -> module that defines it (relative: a joblite module)
_LAZY = {
    "hash": ".hashing",
    "Hasher": ".hashing",
    "dump": ".persistence",
    "load": ".persistence",
    "dumps": ".persistence",
    "loads": ".persistence",
    "CorruptFileError": ".persistence",
    "UnsafeLoadError": "._safe_unpickle",
    "register_compressor": ".compressors",
    "CompressorBase": ".compressors",
    "Memory": ".memory",
    "MemorizedFunc": ".memory",
    "AsyncMemorizedFunc": ".memory",
    "NotMemorizedFunc": ".memory",
    "MemorizedResult": ".memory",
    "NotMemorizedResult": ".memory",
    "expires_after": ".memory",
    "CacheWarning": ".store",
    "register_store_backend": ".store",
    "StoreBackendBase": ".store",
    "CacheItemInfo": ".store",
    "Parallel": ".parallel",
    "delayed": ".parallel",
    "parallel_config": ".parallel",
    "parallel_backend": ".parallel",
    "register_parallel_backend": ".parallel",
    "ParallelBackendBase": ".parallel",
    "cpu_count": ".parallel",
    "effective_n_jobs": ".parallel",
    "Logger": ".logger",
    "PrintTime": ".logger",
    # loky's, as joblib re-exports it: wrapped objects travel by cloudpickle to any worker
    "wrap_non_picklable_objects": "loky",
}

__all__ = sorted(_LAZY) + ["__with_ext__", "__version__"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    # What type checkers see of the lazy attributes (the same names as _LAZY's).
    from loky import wrap_non_picklable_objects as wrap_non_picklable_objects

    from ._safe_unpickle import UnsafeLoadError as UnsafeLoadError
    from .compressors import CompressorBase as CompressorBase
    from .compressors import register_compressor as register_compressor
    from .hashing import Hasher as Hasher
    from .hashing import hash as hash
    from .logger import Logger as Logger
    from .logger import PrintTime as PrintTime
    from .memory import AsyncMemorizedFunc as AsyncMemorizedFunc
    from .memory import MemorizedFunc as MemorizedFunc
    from .memory import MemorizedResult as MemorizedResult
    from .memory import Memory as Memory
    from .memory import NotMemorizedFunc as NotMemorizedFunc
    from .memory import NotMemorizedResult as NotMemorizedResult
    from .memory import expires_after as expires_after
    from .parallel import Parallel as Parallel
    from .parallel import ParallelBackendBase as ParallelBackendBase
    from .parallel import cpu_count as cpu_count
    from .parallel import delayed as delayed
    from .parallel import effective_n_jobs as effective_n_jobs
    from .parallel import parallel_backend as parallel_backend
    from .parallel import parallel_config as parallel_config
    from .parallel import register_parallel_backend as register_parallel_backend
    from .persistence import CorruptFileError as CorruptFileError
    from .persistence import dump as dump
    from .persistence import dumps as dumps
    from .persistence import load as load
    from .persistence import loads as loads
    from .store import CacheItemInfo as CacheItemInfo
    from .store import CacheWarning as CacheWarning
    from .store import StoreBackendBase as StoreBackendBase
    from .store import register_store_backend as register_store_backend

    __with_ext__: bool
del TYPE_CHECKING  # not one of joblite's names


def __getattr__(name: str) -> object:
    if name == "__with_ext__":
        from . import _impl

        return _impl.with_ext
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'joblite' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
