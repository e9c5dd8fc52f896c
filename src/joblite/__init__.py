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


def __getattr__(name):
    if name == "__with_ext__":
        from . import _impl

        return _impl.with_ext
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'joblite' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
