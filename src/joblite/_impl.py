"""The one switch between the compiled twin (``joblite._ext``) and the pure one.

Nothing else in joblite imports ``joblite._ext`` or ``joblite._pure``: modules
take the kernels from here.  The pure-Python twin is used when the environment
variable ``JOBLITE_PUREPYTHON`` is set to a non-empty value other than ``0``,
or when the compiled modules cannot be imported (then a ``RuntimeWarning`` is
issued once).
"""

import importlib
import os
import warnings

__all__ = ["with_ext", "hasher", "codec", "fileio", "tasks", "get_twin", "available_twins"]

# One entry per kernel module; both twins define the same names in each.
_KERNELS = ("_hasher", "_codec", "_fileio", "_tasks")


def _load(twin):
    return {name: importlib.import_module(f"joblite.{twin}.{name}") for name in _KERNELS}


def _choose():
    if os.environ.get("JOBLITE_PUREPYTHON", "") not in ("", "0"):
        return False, _load("_pure")
    try:
        return True, _load("_ext")
    except ImportError as exc:
        warnings.warn(
            f"joblite: the compiled modules could not be imported ({exc}); "
            "using the pure-Python twin, which is slower. Set JOBLITE_PUREPYTHON=1 "
            "to choose it explicitly and silence this warning.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False, _load("_pure")


with_ext, _modules = _choose()
hasher = _modules["_hasher"]
codec = _modules["_codec"]
fileio = _modules["_fileio"]
tasks = _modules["_tasks"]


def get_twin(name):
    """Return the kernel modules of one twin as a dict, for tests and benchmarks.

    Parameters
    ----------
    name : {'ext', 'pure'}
        Which twin to load.

    Returns
    -------
    dict of str to module
        Kernel module name (e.g. ``'_hasher'``) to module.

    Raises
    ------
    ValueError
        If `name` is not ``'ext'`` or ``'pure'``.
    ImportError
        If the compiled twin is asked for and is not built.
    """
    if name not in ("ext", "pure"):
        raise ValueError(f"twin must be 'ext' or 'pure', got {name!r}")
    return _load("_" + name)


def available_twins():
    """Names of the twins that can be loaded here: ``['ext', 'pure']`` or ``['pure']``."""
    try:
        _load("_ext")
    except ImportError:
        return ["pure"]
    return ["ext", "pure"]
