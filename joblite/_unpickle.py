"""Loading policy shared by every reader: the errors, and which globals may be imported.

``allowed=None`` is full pickle, as joblib does: loading a file can run any
code that the file names.  ``allowed='numpy'`` (alias ``'safe'``) admits only
the names below; a list or set of dotted names admits those names in addition
(a name ending in ``.*`` admits a whole module).  A refused name raises
:class:`UnsafeLoadError` from ``find_class``, before anything it names is
imported or called.
"""

__all__ = ["UnsafeLoadError", "CorruptFileError", "resolve_allowed", "check_global", "admit"]


class CorruptFileError(ValueError):
    """A file is truncated, corrupted, or not a joblite/joblib file.

    The message names the file, the part (header, pickle stream, block N,
    block table) and what is wrong.
    """


class UnsafeLoadError(Exception):
    """A pickle stream names a global that ``allowed=`` does not admit.

    Attributes
    ----------
    module, name : str
        The refused global.
    """

    def __init__(self, module, name, where=None):
        self.module = module
        self.name = name
        place = f" in {where}" if where else ""
        super().__init__(
            f"refused to load global {module}.{name}{place}: it is not admitted by allowed=; "
            f"pass allowed=[..., '{module}.{name}'] if you trust it"
        )


_BUILTINS = {
    "bool", "int", "float", "complex", "str", "bytes", "bytearray", "list", "tuple",
    "dict", "set", "frozenset", "slice", "range", "Ellipsis", "NotImplemented", "object",
}

# Exact names admitted by allowed='numpy' / 'safe', and modules admitted whole.
_SAFE_NAMES = {f"builtins.{name}" for name in _BUILTINS} | {
    "copyreg._reconstructor",
    "numpy.ndarray", "numpy.dtype", "numpy.ma.core._mareconstruct", "numpy.ma.core.MaskedArray",
    "numpy.ma.MaskedArray", "numpy.ma.core.MaskedConstant",
    "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
    "numpy._core.multiarray._reconstruct", "numpy._core.multiarray.scalar",
    "numpy.matrix", "numpy.matrixlib.defmatrix.matrix", "numpy.recarray", "numpy.record",
    "numpy.rec.recarray", "numpy.rec.record",
    "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer",
    "decimal.Decimal", "fractions.Fraction", "uuid.UUID",
    "collections.OrderedDict", "collections.defaultdict", "collections.deque",
    "collections.Counter", "collections.ChainMap",
    "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath",
    "pathlib.PurePosixPath", "pathlib.PureWindowsPath",
    "pathlib._local.Path", "pathlib._local.PosixPath", "pathlib._local.WindowsPath",
    "pathlib._local.PurePath", "pathlib._local.PurePosixPath", "pathlib._local.PureWindowsPath",
    "zoneinfo.ZoneInfo", "zoneinfo._zoneinfo.ZoneInfo",
}
_SAFE_MODULES = {"datetime", "numpy.dtypes"}


def admit(*names):
    """Add joblite's own rebuild functions and types to the safe set (called by their modules).

    Only names that cannot run arbitrary code belong here: not ``load``, which
    would open another file with full pickle.
    """
    _SAFE_NAMES.update(names)


def _numpy_scalar_type(module, name):
    """True for numpy's scalar types (``numpy.float64`` ...), which carry no code."""
    if module != "numpy" or not name.isidentifier():
        return False
    import numpy as np

    candidate = getattr(np, name, None)
    return isinstance(candidate, type) and issubclass(candidate, np.generic)


def resolve_allowed(allowed):
    """Turn the ``allowed=`` argument into the set of admitted names, or None.

    Parameters
    ----------
    allowed : None, {'numpy', 'safe'}, or iterable of str
        None admits everything (full pickle).  ``'numpy'`` and ``'safe'`` admit
        builtin containers and scalars, numpy arrays, dtypes and scalars,
        datetime, Decimal, Fraction, UUID, pathlib, collections types and
        joblite's own types.  An iterable of dotted names admits those names
        on top of the safe set; ``'package.module.*'`` admits a whole module.

    Returns
    -------
    frozenset of str or None

    Raises
    ------
    ValueError
        If `allowed` is another string, or holds something that is not a
        dotted name.
    """
    if allowed is None:
        return None
    if isinstance(allowed, str):
        if allowed in ("numpy", "safe"):
            return frozenset()
        raise ValueError(
            f"allowed={allowed!r} is not understood: use None (full pickle), 'numpy' or "
            "'safe', or a list of dotted names such as ['sklearn.linear_model.LinearRegression']"
        )
    names = []
    for name in allowed:
        if not isinstance(name, str) or "." not in name.strip(".") or " " in name:
            raise ValueError(f"allowed= holds {name!r}, which is not a dotted name like 'module.Name'")
        names.append(name)
    return frozenset(names)


def check_global(module, name, admitted, where=None):
    """Raise :class:`UnsafeLoadError` unless ``module.name`` is admitted.

    Parameters
    ----------
    module, name : str
        The global named by the pickle stream (``find_class`` arguments).
    admitted : frozenset of str or None
        The result of :func:`resolve_allowed`; None admits everything.
    where : str, optional
        The file being loaded, for the message.
    """
    if admitted is None:
        return
    full = f"{module}.{name}"
    if full in _SAFE_NAMES or full in admitted:
        return
    # A whole module admits its own public names only: a dotted or private name
    # (``sys.modules.__setitem__``) would reach anything through the module.
    plain = name.isidentifier() and not name.startswith("_")
    if plain and (module in _SAFE_MODULES or f"{module}.*" in admitted or _numpy_scalar_type(module, name)):
        return
    raise UnsafeLoadError(module, name, where)
