"""The one unpickler of both readers: what a stream may name, and numpy's unpickling made memory-safe.

Both readers use it: joblite containers (:mod:`joblite.persistence`)
and files written by ``joblib.dump`` (:mod:`joblite._joblib_format`, whose
unpickler subclasses :class:`SafeUnpickler` to expand joblib's array wrappers).
``docs/security.rst`` is the user-facing account of the same rules.

**What a stream may name** (``allowed=``).  ``allowed=None`` is full pickle:
loading a file can run any code that the file names.  ``allowed='numpy'``
(alias ``'safe'``) admits the exact dotted names of :data:`SAFE_NAMES`, numpy's
scalar types and DType classes (:func:`numpy_names`); a list of dotted names
admits those names in addition, and ``'pkg.mod.*'`` admits the classes and
functions *defined* in ``pkg.mod``.  A name is checked as a string before
anything is imported; a resolved global that is a module, or a
``numpy.memmap`` class (which opens files), is refused.

**Memory safety**.  numpy's own unpickling trusts the state a stream gives it
(a dtype's flags and sizes, the length of an object array's item list) and can
crash the process on a forged one, whatever ``allowed=`` says.
:class:`SafeUnpickler`, the pure-Python unpickler with checks, rebuilds dtypes
through numpy's constructors and checks array states before numpy sees them;
it gives a state (``BUILD``) only to objects the stream creates, never to a
module, a class or a function.  :func:`load_stream` uses the C unpickler only
when the load is unrestricted and the stream names none of numpy's in-band
reconstruction functions.

One module, because the policy and the unpickler that enforces it must change
together; it is long because numpy's pickled forms need one check each.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import io
import itertools
import math
import pickle
import reprlib
import struct
import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar

__all__ = [
    "CorruptFileError",
    "UnsafeLoadError",
    "SAFE_NAMES",
    "numpy_names",
    "resolve_allowed",
    "check_name",
    "find_global",
    "SafeUnpickler",
    "load_stream",
]


class CorruptFileError(ValueError):
    """A file is truncated, corrupted, or not a joblite/joblib file.

    The message names the file, the part (header, pickle stream, block N,
    block table) and what is wrong.
    """


class UnsafeLoadError(Exception):
    """A pickle stream names a global that ``allowed=`` does not admit, or misuses one.

    Nothing the refused global names has been imported or run.

    Parameters
    ----------
    module, name : str
        The refused global (`name` is empty for a module itself).
    where : str, optional
        The file being loaded.
    reason : str, optional
        Why it is refused, when it is not simply missing from ``allowed=``.

    Attributes
    ----------
    module, name : str
        The refused global.
    """

    def __init__(self, module: str, name: str, where: str | None = None, reason: str | None = None) -> None:
        self.module = module
        self.name = name
        self.where = where
        self.reason = reason
        full = f"{module}.{name}" if name else module
        place = f" in {where}" if where else ""
        if reason is None:
            reason = f"it is not admitted by allowed=; pass allowed=[..., '{full}'] if you trust it"
        super().__init__(f"refused to load global {full}{place}: {reason}")

    def __reduce__(self):
        return type(self), (self.module, self.name, self.where, self.reason)


# -- the admitted names ---------------------------------------------------------------------
_BUILTINS = (
    "bool",
    "int",
    "float",
    "complex",
    "str",
    "bytes",
    "bytearray",
    "list",
    "tuple",
    "dict",
    "set",
    "frozenset",
    "slice",
    "range",
    "Ellipsis",
    "NotImplemented",
    "object",
)

#: The exact dotted names ``allowed='numpy'`` admits besides :func:`numpy_names`
#: (listed in ``docs/security.rst``; a test keeps the two equal).
SAFE_NAMES = frozenset(
    {f"builtins.{name}" for name in _BUILTINS}
    | {
        "copyreg._reconstructor",
        "datetime.date",
        "datetime.time",
        "datetime.datetime",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        "collections.Counter",
        "collections.ChainMap",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "pathlib._local.Path",
        "pathlib._local.PosixPath",
        "pathlib._local.WindowsPath",
        "pathlib._local.PurePath",
        "pathlib._local.PurePosixPath",
        "pathlib._local.PureWindowsPath",
        "zoneinfo.ZoneInfo",
        "zoneinfo._zoneinfo.ZoneInfo",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.matrix",
        "numpy.matrixlib.defmatrix.matrix",
        "numpy.recarray",
        "numpy.rec.recarray",
        "numpy.record",
        "numpy.rec.record",
        "numpy.ma.MaskedArray",
        "numpy.ma.core.MaskedArray",
        "numpy.ma.core.MaskedConstant",
        "numpy.ma.core.mvoid",
        "numpy.ma.core._mareconstruct",
        "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
        "joblite.persistence._rebuild_array",
        "joblite.persistence._rebuild_subclass",
        "joblite.persistence._rebuild_descr",
        "joblite.persistence._rebuild_object_array",
    }
)

_NUMPY_NAMES = None


def numpy_names():
    """The names of numpy's scalar types and DType classes, admitted by ``allowed='numpy'``.

    ``numpy.X`` for every public class in numpy's namespace that subclasses
    ``numpy.generic`` (``numpy.float64``, ``numpy.bool_``, ``numpy.str_``...)
    and ``numpy.dtypes.X`` for every public ``numpy.dtype`` subclass there.
    They are read from the modules' dictionaries, never through ``getattr``,
    which in numpy imports submodules (``numpy.f2py``, ``numpy.testing``) on
    demand.

    Returns
    -------
    frozenset of str
    """
    global _NUMPY_NAMES
    if _NUMPY_NAMES is None:
        import numpy
        import numpy.dtypes

        names = {
            f"numpy.{key}"
            for key, value in vars(numpy).items()
            if isinstance(value, type) and issubclass(value, numpy.generic) and not key.startswith("_")
        }
        names |= {
            f"numpy.dtypes.{key}"
            for key, value in vars(numpy.dtypes).items()
            if isinstance(value, type) and issubclass(value, numpy.dtype) and not key.startswith("_")
        }
        _NUMPY_NAMES = frozenset(names)
    return _NUMPY_NAMES


def resolve_allowed(allowed):
    """Turn the ``allowed=`` argument into the set of admitted names, or None.

    Parameters
    ----------
    allowed : None, {'numpy', 'safe'}, or iterable of str
        None admits everything (full pickle).  ``'numpy'`` and ``'safe'``
        admit :data:`SAFE_NAMES` and :func:`numpy_names`.  An iterable of
        dotted names admits those exact names on top of them; a name
        ``'package.module.*'`` admits the classes and functions defined in
        ``package.module`` (their ``__module__``), not what it imported.

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


def check_name(module, name, admitted, where=None):
    """Raise :class:`UnsafeLoadError` unless ``module.name`` is admitted; nothing is imported.

    Parameters
    ----------
    module, name : str
        The global named by the pickle stream (``find_class`` arguments).
    admitted : frozenset of str or None
        The result of :func:`resolve_allowed`; None admits everything.
    where : str, optional
        The file being loaded, for the message.

    Returns
    -------
    bool
        True when the name is admitted only through ``'module.*'``: the
        object found must then be defined in `module` (see :func:`find_global`).
    """
    if admitted is None:
        return False
    full = f"{module}.{name}"
    if full in admitted:
        return False
    if "." not in name:  # a dotted name walks attributes: only names listed in full may
        if full in SAFE_NAMES or module in ("numpy", "numpy.dtypes") and full in numpy_names():
            return False
        if name.isidentifier() and not name.startswith("_") and f"{module}.*" in admitted:
            return True
    raise UnsafeLoadError(module, name, where)


_MISSING = object()


def find_global(module, name, admitted, where=None, proto=pickle.HIGHEST_PROTOCOL, fix_imports=True):
    """The object a stream's global ``module.name`` stands for, as ``find_class`` returns it.

    The name is checked (:func:`check_name`) before anything is imported.
    Under a restricted load, a module and a ``numpy.memmap`` class are
    refused, and a name admitted through ``'module.*'`` must be found in the
    module's dictionary and be defined there.

    Raises
    ------
    UnsafeLoadError
        If the name or what it resolves to is refused.
    ImportError, AttributeError
        If it does not exist.
    """
    sys.audit("pickle.find_class", module, name)
    if proto < 3 and fix_imports:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    defined_only = check_name(module, name, admitted, where)
    __import__(module, level=0)
    target = sys.modules[module]
    if defined_only:
        # The dictionary, not getattr: a module's __getattr__ may import or compute.
        target = vars(target).get(name, _MISSING)
        if target is _MISSING or getattr(target, "__module__", None) != module:
            raise UnsafeLoadError(module, name, where, f"'{module}.*' admits only what {module} defines")
    else:
        for part in name.split(".") if proto >= 4 else (name,):
            if part == "<locals>":
                raise AttributeError(f"cannot get local attribute {name!r} of module {module!r}")
            target = getattr(target, part)
    if admitted is not None:
        if isinstance(target, types.ModuleType):
            raise UnsafeLoadError(module, name, where, "it is a module, which a pickle never names")
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(target, type) and issubclass(target, numpy.memmap):
            raise UnsafeLoadError(module, name, where, "it opens files, which a load with allowed= never does")
    return target


# -- the checked unpickler ------------------------------------------------------------------
class _Pending:
    """A numpy dtype whose creation waits for its BUILD opcode.

    numpy pickles a dtype as ``REDUCE(numpy.dtype, args)`` then ``BUILD(state)``;
    ``dtype.__setstate__`` trusts that state (flags, sizes) and can crash the
    process on a forged one.  :class:`SafeUnpickler` therefore makes the dtype
    only at its BUILD, from the state, with numpy's public constructors
    (:func:`_dtype_from_state`).
    """

    __slots__ = ("func", "args", "real")

    def __init__(self, func, args):
        self.func = func
        self.args = args
        self.real = None

    def __repr__(self):
        return "<numpy dtype waiting for its state>"


# What BUILD never gives a state to: BUILD on them would rewrite code or module
# state (sys.path, a class's methods), which no pickler writes.
_NOT_INSTANCES = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    types.CodeType,
    types.CellType,
    property,
    classmethod,
    staticmethod,
)


def _name_of(obj):
    """(module, name) to name `obj` in an :class:`UnsafeLoadError`."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__, ""
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(name, str):
        module, name = type(obj).__module__, f"<{type(obj).__qualname__} object>"
    return module, name


class SafeUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with the loading policy and numpy's unpickling made memory-safe.

    * Globals go through :func:`find_global` (the ``admitted`` policy).
    * BUILD gives a state only to objects the stream creates: never to a
      global (a module, a class, a function...) nor to any module, class,
      function or descriptor a call returned, nor to an existing numpy
      array, dtype or scalar.
    * Under a restricted load, a call (REDUCE, NEWOBJ, the protocol-0
      instance opcodes) calls only what the stream named as an admitted
      global, or a method bound to one (``ZoneInfo._unpickle``): admitting a
      function does not admit what it returns.  A class passed to a call
      (``copyreg._reconstructor``, numpy's reconstructors) must be named so
      too.  No call gets a ``range`` (a small stream could expand it to any
      size), and ``bytes``/``bytearray`` are not called with a size.
    * numpy's array, dtype and void classes are never called (numpy pickles
      them through ``_reconstruct``, ``dtype`` and ``scalar``; a direct call
      can allocate any size or read memory through ``strides``).
    * numpy's states are checked before numpy sees them: a dtype is made
      at its BUILD from its pickled state by numpy's public constructors
      (:func:`_dtype_from_state`, see :class:`_Pending`), never by
      ``dtype.__setstate__``; an array is numpy's empty placeholder until its
      one BUILD, whose state must give one item per element (object dtypes)
      or exactly its bytes (others).
    * a structured scalar with object fields must come with its data;
    * sizes in the stream are never allocated before the data is read.

    Parameters
    ----------
    file : binary file object
        The stream, positioned at its start.
    admitted : frozenset of str or None
        The result of :func:`resolve_allowed`.
    where : str
        The file being loaded, for messages.
    buffers : iterable, optional
        The out-of-band buffers (``NEXT_BUFFER``), as for ``pickle.Unpickler``.
    """

    # The opcode table with this class's handlers, which take a SafeUnpickler: typeshed's
    # type for it (handlers of any pickle.Unpickler) would refuse them.
    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = pickle._Unpickler.dispatch.copy()

    def __init__(self, file, *, admitted, where, buffers=None):
        super().__init__(file, buffers=buffers)
        import numpy

        self._file = file
        self.np = numpy
        self.where = where
        self.admitted = admitted
        self._pending = 0  # dtypes waiting for their BUILD
        self._unbuilt = {}  # id -> array placeholder waiting for its one BUILD
        self._globals = {}  # id -> every object find_class returned (kept alive: ids stay unique)
        core = sys.modules.get("numpy._core.multiarray") or sys.modules.get("numpy.core.multiarray")
        if core is None:  # pragma: no cover - numpy always imports one of them
            from numpy.core import multiarray as core
        self._deferred = {numpy.dtype: "dtype", core._reconstruct: "array"}
        self._scalar = core.scalar

    # -- globals ------------------------------------------------------------------------------

    def find_class(self, module, name):
        target = self.resolve(module, name)
        self._globals[id(target)] = target
        return target

    def resolve(self, module, name):
        """The object of the global ``module.name`` (subclasses map names of their own first)."""
        return find_global(module, name, self.admitted, self.where, self.proto, self.fix_imports)

    def _deferred_kind(self, func):
        try:
            kind = self._deferred.get(func)
        except TypeError:  # unhashable callable
            return None
        if kind is None and getattr(func, "__name__", None) == "_mareconstruct":
            ma = sys.modules.get("numpy.ma.core")
            if ma is not None and func is ma._mareconstruct:
                self._deferred[func] = kind = "masked"
        return kind

    # -- calls --------------------------------------------------------------------------------

    def _refuse(self, target, reason):
        module, name = _name_of(target)
        raise UnsafeLoadError(module, name, self.where, reason)

    def _is_numpy_class(self, target):
        """numpy's own array, dtype and void classes (and DType classes), which numpy never calls."""
        np = self.np
        return (
            isinstance(target, type)
            and issubclass(target, (np.ndarray, np.dtype, np.void))
            and str(getattr(target, "__module__", "")).partition(".")[0] == "numpy"
        )

    def _named(self, target):
        """True if the stream named `target` as a global, or `target` is a method bound to one."""
        if self._globals.get(id(target)) is target:
            return True
        # (a module's builtin functions are bound to their module, which is never a named global)
        bound = isinstance(target, (types.MethodType, types.BuiltinMethodType))
        owner = getattr(target, "__self__", None) if bound else None
        return owner is not None and self._globals.get(id(owner)) is owner

    def _check_call(self, func, args, instance=False):
        """Refuse a call the rules above forbid; `instance`: NEWOBJ or INST/OBJ, func must be a class."""
        np = self.np
        if func is self._scalar and len(args) == 2 and isinstance(args[0], np.dtype):
            dtype, obj = args
            if dtype.hasobject and dtype.kind != "O" and not (type(obj) is np.ndarray and obj.nbytes >= dtype.itemsize):
                raise pickle.UnpicklingError("a structured numpy scalar without its data")
        targets = [func]
        if func is copyreg._reconstructor:
            targets.extend(args[:2])
        for target in targets:
            if self._is_numpy_class(target) and not (
                target is getattr(sys.modules.get("numpy.ma.core"), "MaskedConstant", None) and not args
            ):
                self._refuse(target, "numpy never pickles its arrays, dtypes or void scalars as a call of their class")
        if self.admitted is not None:
            self._check_policy(func, args, instance)

    def _check_policy(self, func, args, instance=False):
        """The rules of a restricted load for a call of `func` with `args`."""
        if not self._named(func) or instance and not isinstance(func, type):
            self._refuse(func, "what a stream calls must be something it names as an admitted global")
        for arg in args:
            if type(arg) is range:
                self._refuse(func, "a range is passed to it: a small stream would expand it to any size")
            if isinstance(arg, type) and not self._named(arg):
                self._refuse(arg, "a class passed to a call must be one the stream names as an admitted global")
        if (
            isinstance(func, type)
            and issubclass(func, (bytes, bytearray))
            or (
                func is copyreg._reconstructor
                and len(args) == 3
                and isinstance(args[1], type)
                and issubclass(args[1], (bytes, bytearray))
            )
        ):
            if any(isinstance(arg, int) for arg in args):
                self._refuse(func, "a size is passed to it: pickle gives bytes as data")

    def load_reduce(self):
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if type(args) is not tuple:
            raise pickle.UnpicklingError("REDUCE arguments are not a tuple")
        kind = self._deferred_kind(func)
        if kind is not None:
            if self.admitted is not None:
                self._check_policy(func, args)
            if kind == "dtype":
                stack[-1] = _Pending(func, args)
                self._pending += 1
            else:
                stack[-1] = self._placeholder(kind, func, args)
            return
        self._check_call(func, args)
        stack[-1] = func(*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        args = self.stack[-1]
        cls = self.stack[-2]
        if type(args) is not tuple:
            raise pickle.UnpicklingError("NEWOBJ arguments are not a tuple")
        self._check_call(cls, args, instance=True)
        pickle._Unpickler.load_newobj(self)

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        kwargs = self.stack[-1]
        args = self.stack[-2]
        cls = self.stack[-3]
        if type(args) is not tuple or type(kwargs) is not dict:
            raise pickle.UnpicklingError("NEWOBJ_EX arguments are not a tuple and a dict")
        self._check_call(cls, args + tuple(kwargs.values()), instance=True)
        pickle._Unpickler.load_newobj_ex(self)

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass, args):
        self._check_call(klass, tuple(args), instance=True)
        pickle._Unpickler._instantiate(self, klass, args)

    def load_bytearray8(self):
        # pickle.py allocates the announced size before reading: read first, bounded by the data.
        (size,) = struct.unpack("<Q", self.read(8))
        data = self.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(bytearray(data))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    # -- memo reads see created objects, not their placeholders -------------------------------

    def _push_memo(self, index):
        try:
            value = self.memo[index]
        except KeyError:
            raise pickle.UnpicklingError(f"Memo value not found at index {index}") from None
        if type(value) is _Pending and value.real is not None:
            value = value.real
        self.stack.append(value)

    def load_get(self):
        self._push_memo(int(self.readline()[:-1]))

    def load_binget(self):
        self._push_memo(self.read(1)[0])

    def load_long_binget(self):
        self._push_memo(int.from_bytes(self.read(4), "little"))

    dispatch[pickle.GET[0]] = load_get
    dispatch[pickle.BINGET[0]] = load_binget
    dispatch[pickle.LONG_BINGET[0]] = load_long_binget

    # -- BUILD --------------------------------------------------------------------------------

    def load_build(self):
        stack = self.stack
        if len(stack) < 2:
            raise pickle.UnpicklingError("BUILD without an object")
        inst = stack[-2]
        if type(inst) is _Pending:
            state = stack.pop()
            if inst.real is not None:
                raise pickle.UnpicklingError("a numpy dtype is given its state twice")
            inst.real = _dtype_from_state(self.np, inst.args, state)
            stack[-1] = inst.real
            self._pending -= 1
            return
        if self._unbuilt.get(id(inst)) is inst:
            del self._unbuilt[id(inst)]
            self._set_array_state(inst, stack.pop())
            return
        if isinstance(inst, _NOT_INSTANCES) or self._globals.get(id(inst)) is inst:
            self._refuse(inst, "BUILD would set its state, and a pickle gives a state only to the objects it creates")
        np = self.np
        if isinstance(inst, (np.dtype, np.ndarray, np.generic)):
            raise pickle.UnpicklingError(
                f"BUILD on an existing numpy {type(inst).__name__}: only the ones the pickle "
                "creates may be given a state"
            )
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build

    def _placeholder(self, kind, func, args):
        """numpy's empty array that its BUILD then fills: ``_reconstruct``/``_mareconstruct(*args)``.

        It is made now, as numpy does, so that the array's own items can
        refer to it; until its BUILD it has no element, so nothing that holds
        it can read its memory.
        """
        np = self.np
        classes = args[:2] if kind == "masked" else args[:1]
        if len(args) != (4 if kind == "masked" else 3) or not all(
            isinstance(cls, type) and issubclass(cls, np.ndarray) for cls in classes
        ):
            raise pickle.UnpicklingError("an array reconstructor without its ndarray class")
        if kind == "masked" and not issubclass(args[0], np.ma.MaskedArray):
            raise pickle.UnpicklingError("a masked-array reconstructor without a MaskedArray class")
        shape, code = args[-2:]
        # numpy writes (0,) and b'b': an empty placeholder that the state then fills.
        if _elements(np, shape) != 0 or not isinstance(code, (str, bytes)) or not 0 < len(code) <= 32:
            raise pickle.UnpicklingError("a numpy array placeholder that is not empty")
        array = func(*args)
        if getattr(array, "__setstate__", None) is None:
            raise pickle.UnpicklingError("an array class without __setstate__")
        self._unbuilt[id(array)] = array
        return array

    def _set_array_state(self, array, state):
        np = self.np
        # numpy's own classes take exactly their state; a subclass's __setstate__
        # receives its own form, in which the ndarray states are found and checked.
        own = type(array).__setstate__
        ma = sys.modules.get("numpy.ma")
        budget = self._object_budget()
        if own is np.ndarray.__setstate__:
            _check_ndarray_state(np, state, budget)
        elif ma is not None and own is ma.MaskedArray.__setstate__:
            _check_masked_state(np, state, budget)
        else:
            for found in _array_states(np, state):
                _check_ndarray_state(np, found, budget)
        array.__setstate__(state)

    def _object_budget(self):
        """The most bytes an array of Python objects may take here; None if the stream cannot tell.

        Its items are in the stream, at least one byte for each 8-byte
        pointer (a non-object field's bytes are there whole), so a stream of
        *n* bytes read so far holds an honest array of at most ``8 * n``
        bytes, give or take a struct's padding (1 MiB allowed): a forged
        dtype whose item size is gigabytes cannot make numpy allocate them.
        """
        try:
            read = self._file.tell()
        except (AttributeError, OSError, ValueError):  # a stream without tell()
            return None
        return 8 * read + (1 << 20)

    def load(self):
        value = pickle._Unpickler.load(self)
        if self._pending or self._unbuilt:
            raise pickle.UnpicklingError(
                f"{self._pending + len(self._unbuilt)} numpy dtype(s) or array(s) never received their state"
            )
        return value


def _unknown_opcode(code):
    def load_unknown(self):
        raise pickle.UnpicklingError(f"unknown pickle opcode 0x{code:02x}")

    return load_unknown


for _code in range(256):
    if _code not in SafeUnpickler.dispatch:
        SafeUnpickler.dispatch[_code] = _unknown_opcode(_code)
del _code


# -- numpy's pickled states -----------------------------------------------------------------
_ALIGNED_STRUCT = 0x80  # NPY_ALIGNED_STRUCT in a dtype's flags
NON_NATIVE = ">" if sys.byteorder == "little" else "<"


def _check_dtype_state(np, state):
    """The tuple numpy's ``dtype.__reduce__`` gives: version 3 or 4, well-typed fields."""
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] != len(state) - 5:
        raise pickle.UnpicklingError("a numpy dtype state that is not a version 3/4 tuple")
    _, endian, subarray, names, fields, elsize, alignment, flags = state[:8]
    if endian not in ("<", ">", "|", "="):
        raise pickle.UnpicklingError(f"a numpy dtype with byte order {reprlib.repr(endian)}")
    for number in (elsize, alignment, flags):
        if type(number) is not int:
            raise pickle.UnpicklingError("a numpy dtype with a non-integer size or flags")
    if subarray is not None:
        if (
            type(subarray) is not tuple
            or len(subarray) != 2
            or not isinstance(subarray[0], np.dtype)
            or type(subarray[1]) is not tuple
            or not all(type(n) is int and n >= 0 for n in subarray[1])
        ):
            raise pickle.UnpicklingError("a numpy dtype with a malformed sub-array")
    if (names is None) != (fields is None):
        raise pickle.UnpicklingError("a numpy dtype with names but no fields, or fields but no names")
    if names is not None:
        if type(names) is not tuple or type(fields) is not dict:
            raise pickle.UnpicklingError("a numpy dtype with malformed fields")
        for name in names:
            entry = fields.get(name) if type(name) is str else None
            if (
                type(entry) is not tuple
                or len(entry) not in (2, 3)
                or not isinstance(entry[0], np.dtype)
                or type(entry[1]) is not int
                or entry[1] < 0
            ):
                raise pickle.UnpicklingError(f"a numpy dtype with a malformed field {reprlib.repr(name)}")


def _dtype_from_state(np, args, state):
    """The dtype that ``numpy.dtype(*args)`` + ``__setstate__(state)`` stands for, made anew.

    numpy's ``dtype.__setstate__`` trusts its input (flags, sizes, datetime
    metadata) and can crash the process on a corrupt one, so the state is read
    here and the dtype is made by numpy's public constructors, which check
    everything and derive flags and sizes themselves.
    """
    if not 1 <= len(args) <= 3 or not (
        type(args[0]) is str or isinstance(args[0], type) and issubclass(args[0], np.generic)
    ):
        raise pickle.UnpicklingError("numpy.dtype arguments without a type string or scalar type")
    _check_dtype_state(np, state)
    base = np.dtype(args[0])
    version, endian, subarray, names, fields, elsize, _alignment, flags = state[:8]
    metadata = state[8] if version == 4 else None
    user_metadata = metadata
    if base.kind in "Mm":
        if (
            type(metadata) is not tuple
            or len(metadata) != 2
            or type(metadata[1]) is not tuple
            or len(metadata[1]) != 4
            or not isinstance(metadata[1][0], (bytes, str))
            or not all(type(n) is int for n in metadata[1][1:])
        ):
            raise pickle.UnpicklingError("a numpy datetime dtype without its unit")
        user_metadata, (unit, count, _, _) = metadata
        if isinstance(unit, bytes):
            unit = unit.decode("ascii")
    if names is not None:
        if base.kind != "V":
            raise pickle.UnpicklingError(f"numpy dtype {reprlib.repr(args[0])} with fields")
        formats, offsets, titles = [], [], []
        for name in names:
            entry = fields[name]
            # numpy's own check of this overflows near 2**31 and lets a field (an object
            # pointer) lie outside the item: check it here, in Python's integers.
            if entry[1] + entry[0].itemsize > elsize:
                raise pickle.UnpicklingError(
                    f"a numpy dtype field {reprlib.repr(name)} at offset {entry[1]} runs past the item's {elsize} bytes"
                )
            formats.append(entry[0])
            offsets.append(entry[1])
            titles.append(entry[2] if len(entry) > 2 else None)
        spec = {"names": list(names), "formats": formats, "offsets": offsets, "itemsize": elsize}
        if any(title is not None for title in titles):
            spec["titles"] = titles
        dtype = np.dtype(spec, align=bool(flags & _ALIGNED_STRUCT))
        if base.type is not np.void:  # numpy.record, or another np.void subclass
            dtype = np.dtype((base.type, dtype))
    elif subarray is not None:
        if base.kind != "V":
            raise pickle.UnpicklingError(f"numpy dtype {reprlib.repr(args[0])} with a sub-array")
        dtype = np.dtype(subarray)
        if dtype.itemsize != elsize:
            raise pickle.UnpicklingError(
                f"a numpy sub-array dtype {dtype} of {elsize} bytes, where numpy makes {dtype.itemsize}"
            )
    else:
        dtype = base
        if base.kind in "SUV" and elsize != base.itemsize:
            raise pickle.UnpicklingError(
                f"numpy dtype {reprlib.repr(args[0])} of {elsize} bytes, where numpy makes {base.itemsize}"
            )
        if base.kind in "Mm":
            spelled = f"{base.char}8" if unit == "generic" else f"{base.char}8[{count}{unit}]"
            dtype = np.dtype(spelled)
        if endian == NON_NATIVE and dtype.byteorder != "|":
            dtype = dtype.newbyteorder(endian)  # native stays '=', as numpy's own unpickling
    if user_metadata is not None:
        if type(user_metadata) is not dict:
            raise pickle.UnpicklingError("numpy dtype metadata that is not a dict")
        dtype = np.dtype(dtype, metadata=user_metadata)
    return dtype


def _elements(np, shape):
    """The element count of `shape`, a tuple of non-negative integers; -1 if it is not one."""
    if type(shape) is not tuple or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        return -1
    return math.prod(int(n) for n in shape)


def _check_data(np, count, dtype, raw, what, budget):
    """`raw` must hold exactly `count` items of `dtype`: a list of them (within `budget` bytes), or their bytes."""
    if dtype.hasobject:
        if type(raw) is not list or len(raw) != count:
            raise pickle.UnpicklingError(
                f"an object {what} of {count} elements whose pickled items are not a list of {count}"
            )
        if budget is not None and count * dtype.itemsize > budget:
            raise pickle.UnpicklingError(
                f"an object {what} of {count} elements of {dtype.itemsize} bytes needs {count * dtype.itemsize} "
                f"bytes, more than its stream can hold ({budget})"
            )
        return
    nbytes = count * dtype.itemsize
    if not isinstance(raw, (bytes, bytearray, str)) or len(raw) != nbytes:
        raise pickle.UnpicklingError(f"a numpy {what} of {count} elements of {dtype} whose data are not {nbytes} bytes")


def _check_ndarray_state(np, state, budget):
    """``ndarray.__setstate__``'s argument: ``([version,] shape, dtype, is_fortran, data)``."""
    if type(state) is not tuple or len(state) not in (4, 5):
        raise pickle.UnpicklingError("a numpy array state that is not a 4- or 5-tuple")
    shape, dtype, fortran, raw = state[-4:]
    if len(state) == 5 and type(state[0]) is not int:
        raise pickle.UnpicklingError("a numpy array state with a version that is not an int")
    count = _elements(np, shape)
    if count < 0:
        raise pickle.UnpicklingError("a numpy array state with a malformed shape")
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("a numpy array state without a dtype")
    if type(fortran) not in (bool, int):
        raise pickle.UnpicklingError("a numpy array state whose order flag is not a bool")
    _check_data(np, count, dtype, raw, "array", budget)


def _check_masked_state(np, state, budget):
    """``MaskedArray.__setstate__``'s: ``(version, shape, dtype, is_fortran, data, mask, fill_value)``."""
    if type(state) is not tuple or len(state) != 7:
        raise pickle.UnpicklingError("a numpy masked array state that is not a 7-tuple")
    _check_ndarray_state(np, state[:5], budget)
    shape, dtype, mask = state[1], state[2], state[5]
    _check_data(np, _elements(np, shape), np.ma.make_mask_descr(dtype), mask, "array mask", budget)


def _array_states(np, state, depth=0):
    """Every ndarray state found in a subclass's `state` (tuples, two levels deep)."""
    if type(state) is not tuple:
        return
    if len(state) in (4, 5) and isinstance(state[-3], np.dtype):
        yield state
    elif len(state) == 7 and isinstance(state[2], np.dtype):
        yield state[:5]
    elif depth < 2:
        for item in state:
            yield from _array_states(np, item, depth + 1)


# -- the readers' entry point ---------------------------------------------------------------
# numpy's in-band reconstruction whose state numpy trusts: numpy.dtype and the DType
# classes of numpy.dtypes, _reconstruct, _mareconstruct, and copyreg._reconstructor (which
# could make an array).  A global's module and name are in the stream as written, so a
# stream without these bytes cannot name them (only code the stream calls could spell
# them, and allowed=None runs code).
def _may_name_numpy_state(stream):
    data = stream if type(stream) is bytes else bytes(stream)
    return b"dtype" in data or b"reconstruct" in data


class _Divert(Exception):
    """The stream names numpy's in-band reconstruction: read it again with SafeUnpickler."""


def _trusts_state(target):
    """True for the globals whose pickled state numpy's unpickling trusts (see above)."""
    if target is copyreg._reconstructor:
        return True
    np = sys.modules.get("numpy")
    if np is None:
        return False
    if isinstance(target, type):
        return issubclass(target, np.dtype)
    return (
        getattr(target, "__name__", None) in ("_reconstruct", "_mareconstruct")
        and getattr(target, "__module__", "").partition(".")[0] == "numpy"
    )


class _FastUnpickler(pickle.Unpickler):
    """The C unpickler, stopped as soon as the stream names something :func:`_trusts_state`."""

    def find_class(self, module, name):
        target = super().find_class(module, name)
        if _trusts_state(target):
            raise _Divert
        return target


class _Kept:
    """An iterator over `buffers` that keeps what it gave, to give it again after a restart."""

    def __init__(self, buffers):
        self._rest = iter(buffers)
        self.given = []
        self.short_of_memory = False  # a buffer could not be made: no restart would help

    def __iter__(self):
        return self

    def __next__(self):
        try:
            buffer = next(self._rest)
        except MemoryError:
            self.short_of_memory = True
            raise
        self.given.append(buffer)
        return buffer

    def again(self):
        return itertools.chain(self.given, self._rest)


def load_stream(stream, buffers, admitted, where):
    """Unpickle a verified pickle stream of a joblite container.

    A restricted load (`admitted` not None) is read by :class:`SafeUnpickler`.
    An unrestricted one is read by the C unpickler (the speed of
    ``pickle.loads``); when the stream holds the bytes of a name of numpy's
    in-band reconstruction (``dtype``, ``reconstruct``), its
    ``find_class`` watches for those objects and, when the stream really names
    one, the load starts again with :class:`SafeUnpickler`: the objects made
    before that point are made a second time.  So does a ``MemoryError`` of
    the C unpickler, which allocates what a stream's memo indices and lengths
    claim before it reads them.

    Parameters
    ----------
    stream : bytes-like
        The pickle stream.
    buffers : iterable
        Its out-of-band buffers, in order.
    admitted : frozenset of str or None
        The result of :func:`resolve_allowed`.
    where : str
        The file, for messages.

    Raises
    ------
    UnsafeLoadError
        If the stream names or misuses a global the policy refuses.
    CorruptFileError
        If it cannot be unpickled (the original exception is chained).
    MemoryError
        If a buffer (an array block) or an object of the stream needs more
        memory than there is.
    """
    try:
        if admitted is None:
            if type(buffers) is not tuple:
                buffers = _Kept(buffers)
            try:
                if not _may_name_numpy_state(stream):
                    return pickle.loads(stream, buffers=buffers)
                return _FastUnpickler(io.BytesIO(stream), buffers=buffers).load()
            except (_Divert, MemoryError):
                # MemoryError: the C unpickler sizes its memo by the largest index the
                # stream gives, and allocates lengths before reading them; the checked
                # unpickler reads only what is there.  Not a block's memory, though.
                if type(buffers) is _Kept:
                    if buffers.short_of_memory:
                        raise
                    buffers = buffers.again()
        return SafeUnpickler(io.BytesIO(stream), admitted=admitted, where=where, buffers=buffers).load()
    except (UnsafeLoadError, CorruptFileError, MemoryError):
        raise  # MemoryError: a real one (a block's memory, or the checked unpickler's)
    except Exception as exc:  # a mangled stream fails in many ways inside the unpickler
        raise CorruptFileError(f"{where}: pickle stream: cannot be unpickled ({type(exc).__name__}: {exc})") from exc
