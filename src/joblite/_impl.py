"""The one switch between the compiled twin (``joblite._ext``) and the pure one.

Nothing else in joblite imports ``joblite._ext`` or ``joblite._pure``: modules
take the kernels from here.  The pure-Python twin is used when the environment
variable ``JOBLITE_PUREPYTHON`` is set to a non-empty value other than ``0``,
when the package was installed pure (``JOBLITE_PUREPYTHON=1`` at install time,
which leaves out ``joblite._ext`` altogether), or when the compiled modules cannot
be imported: a source checkout that was not built, or a broken install (then a
``RuntimeWarning`` is issued once).
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

__all__ = ["with_ext", "hasher", "codec", "fileio", "tasks", "get_twin", "available_twins"]

# One entry per kernel module; both twins define the same names in each.
_KERNELS = ("_hasher", "_codec", "_fileio", "_tasks")


def _load(twin: str) -> dict[str, ModuleType]:
    return {name: importlib.import_module(f"joblite.{twin}.{name}") for name in _KERNELS}


def _choose() -> tuple[bool, dict[str, ModuleType]]:
    if os.environ.get("JOBLITE_PUREPYTHON", "") not in ("", "0"):
        return False, _load("_pure")
    try:
        return True, _load("_ext")
    except ImportError as exc:
        if getattr(exc, "name", None) == "joblite._ext":  # a pure install, by choice
            return False, _load("_pure")
        warnings.warn(
            f"joblite: the compiled modules could not be imported ({exc}); "
            "using the pure-Python twin, which is slower. Set JOBLITE_PUREPYTHON=1 "
            "to choose it explicitly and silence this warning.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False, _load("_pure")


with_ext, _modules = _choose()
TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    # Type checkers see the compiled modules' stubs (_ext/*.pyi), which both twins match.
    from ._ext import _codec as codec
    from ._ext import _fileio as fileio
    from ._ext import _hasher as hasher
    from ._ext import _tasks as tasks
else:
    hasher = _modules["_hasher"]
    codec = _modules["_codec"]
    fileio = _modules["_fileio"]
    tasks = _modules["_tasks"]


def get_twin(name: str) -> dict[str, ModuleType]:
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


def available_twins() -> list[str]:
    """Names of the twins that can be loaded here: ``['ext', 'pure']`` or ``['pure']``."""
    try:
        _load("_ext")
    except ImportError:
        return ["pure"]
    return ["ext", "pure"]
