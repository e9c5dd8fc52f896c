"""The hashing policy: the canonical record or array of every type the kernel does not encode.

The kernel (``joblite._impl.hasher``, compiled or pure) encodes the common
types itself and calls :func:`reduce_object` for all the others, which maps
each object to a canonical *record* (a name and a tuple of components) or to
an *array* description that the kernel then encodes.  The rules are
specified on the hash format page (``docs/format_hashing.rst``, "Policy");
:mod:`joblite.hashing` holds the public API built on them.
"""

from __future__ import annotations

import copyreg
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import itertools
import pathlib
import sys
import types
import uuid
from collections import OrderedDict, defaultdict

from . import _impl

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["cell_value", "reduce_object"]

_MISSING = object()
_handler_cache: dict[type, Any] = {}
_HANDLER_CACHE_MAX = 4096


# -- records ----------------------------------------------------------------------
# Record and array descriptions are plain tuples, understood by both twins:
#   (RECORD, name, components, labels)   labels: path suffix of each component, or None
#   (ARRAY, dtype_str, shape, nbytes, mode, data, canonical_dtype)
# data by mode: BUFFER a uint8 view, STRIDED and CAST an ndarray, MASKED a
# (values, mask) pair streamed as values with zero bits under the mask.
_RECORD = 0
_ARRAY = 1
_DATA_BUFFER = 0
_DATA_STRIDED = 1
_DATA_CAST = 2
_DATA_MASKED = 3


def _record(name, components, labels=None):
    return (_RECORD, name, tuple(components), labels)


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _lookup(module, qualname):
    """The object named `module`:`qualname` if that module is imported, else _MISSING."""
    if not module or not qualname or "<locals>" in qualname:
        return _MISSING
    found = sys.modules.get(module, _MISSING)
    for part in qualname.split("."):
        if found is _MISSING:
            break
        found = getattr(found, part, _MISSING)
    return found


def _global_record(module, qualname):
    return _record("global", (module, qualname))


def _is_found(found, obj):
    return found is obj or getattr(found, "__func__", _MISSING) is obj


def _reduce_function(func):
    module = func.__module__
    if _is_found(_lookup(module, func.__qualname__), func):
        return _global_record(module, func.__qualname__)
    closure = tuple(cell_value(cell) for cell in func.__closure__ or ())
    return _record(
        "function",
        (func.__code__, func.__defaults__, func.__kwdefaults__, closure),
        (".__code__", ".__defaults__", ".__kwdefaults__", ".__closure__"),
    )


class _EmptyCell:
    """Stands for a closure cell that holds no value yet."""


_EMPTY_CELL = _EmptyCell()


def cell_value(cell):
    """The value a closure cell holds, or a stand-in for an empty cell (hashed as ``empty_cell``)."""
    try:
        return cell.cell_contents
    except ValueError:
        return _EMPTY_CELL


_CODE_FIELDS = (
    "co_name",
    "co_argcount",
    "co_posonlyargcount",
    "co_kwonlyargcount",
    "co_flags",
    "co_code",
    "co_consts",
    "co_names",
    "co_varnames",
    "co_freevars",
    "co_cellvars",
)


def _reduce_code(code):
    # Names, flags, bytecode and constants; not the file name or line numbers,
    # so that moving code around does not change its digest.
    return _record(
        "code", [getattr(code, field) for field in _CODE_FIELDS], tuple("." + field for field in _CODE_FIELDS)
    )


def _reduce_builtin(func):
    """Builtin functions, method descriptors, method-wrappers and bound builtins."""
    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    if module is None:
        module = getattr(getattr(func, "__objclass__", None), "__module__", None)
    if _is_found(_lookup(module, qualname), func):
        return _global_record(module, qualname)
    owner = getattr(func, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        return _record("bound_builtin", (owner, func.__name__), (".__self__", ".__name__"))
    raise TypeError(f"{func!r} is not importable by its name")


def _reduce_class(cls):
    if _lookup(cls.__module__, cls.__qualname__) is cls:
        return _global_record(cls.__module__, cls.__qualname__)
    return _record("class", (cls.__module__, cls.__qualname__))


def _reduce_method(method):
    return _record("method", (method.__self__, method.__func__), (".__self__", ".__func__"))


def _reduce_partial(part):
    return _record("functools.partial", (part.func, part.args, part.keywords), (".func", ".args", ".keywords"))


def _reduce_enum(member):
    return _record("enum", (type(member), member.name), (".__class__", ".name"))


def _reduce_dataclass(obj):
    names = [field.name for field in dataclasses.fields(obj)]
    return _record(
        "dataclass",
        [type(obj)] + [getattr(obj, name) for name in names],
        (".__class__",) + tuple("." + name for name in names),
    )


def _reduce_namedtuple(obj):
    return _record(
        "namedtuple", (type(obj),) + tuple(obj), (".__class__",) + tuple("." + name for name in type(obj)._fields)
    )


def _reduce_ordered_dict(obj):
    return _record("collections.OrderedDict", (list(obj.items()),), (".items()",))


def _reduce_defaultdict(obj):
    return _record("collections.defaultdict", (obj.default_factory, dict(obj)), (".default_factory", ""))


def _simple(name, getter):
    return lambda obj: _record(name, getter(obj))


_EXACT_HANDLERS = {
    types.FunctionType: _reduce_function,
    types.CodeType: _reduce_code,
    types.BuiltinFunctionType: _reduce_builtin,
    types.MethodType: _reduce_method,
    functools.partial: _reduce_partial,
    OrderedDict: _reduce_ordered_dict,
    defaultdict: _reduce_defaultdict,
    _EmptyCell: lambda obj: _record("empty_cell", ()),
    range: _simple("builtins.range", lambda r: (r.start, r.stop, r.step)),
    slice: _simple("builtins.slice", lambda s: (s.start, s.stop, s.step)),
    type(Ellipsis): _simple("builtins.Ellipsis", lambda obj: ()),
    type(NotImplemented): _simple("builtins.NotImplemented", lambda obj: ()),
    memoryview: _simple("builtins.memoryview", lambda m: (m.format, m.shape, m.tobytes())),
    datetime.datetime: _simple(
        "datetime.datetime",
        lambda d: (d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, d.tzinfo, d.fold),
    ),
    datetime.date: _simple("datetime.date", lambda d: (d.year, d.month, d.day)),
    datetime.time: _simple("datetime.time", lambda t: (t.hour, t.minute, t.second, t.microsecond, t.tzinfo, t.fold)),
    datetime.timedelta: _simple("datetime.timedelta", lambda t: (t.days, t.seconds, t.microseconds)),
    decimal.Decimal: _simple("decimal.Decimal", lambda d: (str(d),)),
    fractions.Fraction: _simple("fractions.Fraction", lambda f: (f.numerator, f.denominator)),
    uuid.UUID: _simple("uuid.UUID", lambda u: (u.int,)),
    types.ModuleType: _simple("module", lambda m: (m.__name__,)),
}
for _wrapper in (
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
):
    _EXACT_HANDLERS[_wrapper] = _reduce_builtin


def _reduce_path(path):
    # By class name, not module: pathlib's module layout differs across Python versions.
    return _record("pathlib." + type(path).__name__, (str(path),))


def _take(iterator, max_items, what):
    """The items of `iterator`, a list; ValueError past `max_items` (an endless iterator)."""
    items = list(itertools.islice(iterator, max_items + 1))
    if len(items) > max_items:
        raise ValueError(f"its {what} iterator yields more than max_reductions={max_items} items")
    return items


def _reduce_generic(obj, max_items):
    """Any other object, reduced as pickle reduces it: ``copyreg.dispatch_table``, else ``__reduce_ex__(4)``."""
    reducer = copyreg.dispatch_table.get(type(obj))
    reduced = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
    if isinstance(reduced, str):
        module = getattr(obj, "__module__", None) or _qualified_name(type(obj))
        return _global_record(module, reduced)
    if not isinstance(reduced, tuple) or not 2 <= len(reduced) <= 6:
        raise TypeError(f"__reduce_ex__ returned {type(reduced).__qualname__}, not a tuple of 2 to 6 items")
    func, args, state, listitems, dictitems = (tuple(reduced) + (None,) * 4)[:5]
    listitems = None if listitems is None else _take(listitems, max_items, "listitems")
    dictitems = None if dictitems is None else dict(_take(dictitems, max_items, "dictitems"))
    return _record(
        _qualified_name(type(obj)),
        (func, args, state, listitems, dictitems),
        tuple(f".__reduce_ex__(4)[{index}]" for index in range(5)),
    )


# -- numpy -------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def _canonical_dtype(dtype):
    """Little-endian, packed (no padding, no titles) version of `dtype`."""
    import numpy as np

    if dtype.fields is not None:
        return np.dtype(
            {"names": list(dtype.names), "formats": [_canonical_dtype(dtype.fields[name][0]) for name in dtype.names]}
        )
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.dtype((_canonical_dtype(base), shape))
    return dtype.newbyteorder("<")


def _dtype_str(dtype):
    """The dtype's text in the stream: ``dtype.str`` of its canonical form, or its ``descr``."""
    canonical = _canonical_dtype(dtype)
    if canonical.subdtype is not None:
        # A sub-array dtype's own str and descr are just '|V<size>'.
        base, shape = canonical.subdtype
        return repr((_dtype_str(base), shape))
    return canonical.str if canonical.fields is None else repr(canonical.descr)


@functools.lru_cache(maxsize=256)
def _value_bytes_dtype(dtype):
    """`dtype` with each x87 80-bit long double seen as its 10 value bytes (a ``V10`` field).

    Such long doubles sit in 12 or 16 bytes whose padding is never initialised,
    so only their 10 value bytes may be hashed.  Returns None when `dtype`
    holds none of them.  Offsets and itemsize are those of `dtype`, so an
    array of any strides can be viewed with the result.
    """
    import numpy as np

    if dtype.fields is not None:
        names = list(dtype.names)
        subs = [_value_bytes_dtype(dtype.fields[name][0]) for name in names]
        if all(sub is None for sub in subs):
            return None
        return np.dtype(
            {
                "names": names,
                "formats": [dtype.fields[name][0] if sub is None else sub for name, sub in zip(names, subs)],
                "offsets": [dtype.fields[name][1] for name in names],
                "itemsize": dtype.itemsize,
            }
        )
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        sub = _value_bytes_dtype(base)
        return None if sub is None else np.dtype((sub, shape))
    if dtype.kind not in "fc" or np.finfo(dtype).nmant != 63:
        return None
    parts = 2 if dtype.kind == "c" else 1
    part = dtype.itemsize // parts
    if part <= 10:
        return None
    return np.dtype(
        {
            "names": ["real", "imag"][:parts],
            "formats": ["V10"] * parts,
            "offsets": [0, part][:parts],
            "itemsize": dtype.itemsize,
        }
    )


def _reduce_array(array):
    import numpy as np

    dtype = array.dtype
    if dtype.hasobject:
        # Object arrays hash element by element, in C order.
        return _record("numpy.ndarray", (_dtype_str(dtype), array.shape, array.reshape(-1).tolist()))
    canonical = _canonical_dtype(dtype)
    dtype_str = _dtype_str(dtype)
    value_dtype = _value_bytes_dtype(dtype)
    if value_dtype is not None:
        if not dtype.isnative:
            # x87 long doubles only exist on little-endian x86: swap them first (a full copy).
            array = array.astype(dtype.newbyteorder("="))
            value_dtype = _value_bytes_dtype(array.dtype)
        stream = _canonical_dtype(value_dtype)
        return (
            _ARRAY,
            dtype_str,
            array.shape,
            array.size * stream.itemsize,
            _DATA_CAST,
            array.view(value_dtype),
            stream,
        )
    nbytes = array.size * canonical.itemsize
    if dtype != canonical:
        return (_ARRAY, dtype_str, array.shape, nbytes, _DATA_CAST, array, canonical)
    if array.flags.c_contiguous:
        data = array.reshape(-1).view(np.uint8) if nbytes else None
        return (_ARRAY, dtype_str, array.shape, nbytes, _DATA_BUFFER, data, canonical)
    return (_ARRAY, dtype_str, array.shape, nbytes, _DATA_STRIDED, array, canonical)


def _numpy_handler(cls):
    np = sys.modules["numpy"]
    if cls is np.ndarray or cls is np.memmap:
        return _reduce_array
    if issubclass(cls, np.ma.MaskedArray):
        return lambda arr: _record(
            "numpy.ma.MaskedArray", (arr.data.view(np.ndarray), np.ma.getmaskarray(arr), arr.fill_value)
        )
    if issubclass(cls, np.ndarray):
        return lambda arr: _record(_qualified_name(type(arr)), (arr.view(np.ndarray), getattr(arr, "__dict__", None)))
    if issubclass(cls, np.generic):
        return lambda scalar: _reduce_array(np.asarray(scalar))
    if issubclass(cls, np.dtype):
        return lambda dtype: _record("numpy.dtype", (_dtype_str(dtype),))
    return None


# -- pandas ------------------------------------------------------------------------
# A column, Series or Index contributes a values pair (dtype text, values).  Numpy-backed
# values are their ndarray; extension arrays are records of their compact parts (codes,
# masks, ordinals, ...), never one Python object per element, except the types listed last.
_RANGE_CHECK_FIRST = 1024  # elements compared before the progression test widens
_RANGE_CHECK_CHUNK = 1 << 16  # then compared in chunks of this many (bounded scratch)
_I64_WRAP = 1 << 64


def _wrap_i64(n):
    """`n` as the int64 it wraps to (the difference of two int64 values, in numpy's arithmetic)."""
    return (n + (1 << 63)) % _I64_WRAP - (1 << 63)


def _range_record(first, step, length):
    # Normalised so that equal values give equal components, however the range was spelt.
    if length == 0:
        first = 0
    if length < 2:
        step = 1
    return _record("pandas.range", (first, step, length))


def _progression(values):
    """The ``pandas.range`` record of a 1-D int64 ndarray that is an arithmetic progression, else None.

    Compares a growing prefix first, so that an index that is not a progression
    is rejected after a few elements.
    """
    import numpy as np

    length = len(values)
    if length < 2:
        return _range_record(int(values[0]) if length else 0, 1, length)
    with np.errstate(over="ignore"):
        step = values[1] - values[0]
        if step == 0:
            return None
        start, stop = 0, min(_RANGE_CHECK_FIRST, length - 1)
        while start < length - 1:
            if not (values[start + 1 : stop + 1] - values[start:stop] == step).all():
                return None
            start, stop = stop, min(stop + _RANGE_CHECK_CHUNK, length - 1)
    return _range_record(int(values[0]), int(step), length)


def _index_values(idx):
    """The values pair of an Index; an int64 range, RangeIndex or not, is a ``pandas.range`` record."""
    pd = sys.modules["pandas"]
    if isinstance(idx, pd.RangeIndex):
        # Same components as the int64 Index of the same values (pandas finds them equal).
        return repr(idx.dtype), _range_record(idx.start, _wrap_i64(idx.step), len(idx))
    if idx.dtype == "int64" and type(idx) is pd.Index:
        found = _progression(idx.to_numpy())
    elif isinstance(idx, pd.MultiIndex):
        found = _multiindex_levels(idx)
    else:
        found = None
    return _pandas_values(idx) if found is None else (repr(idx.dtype), found)


def _sorted_codes(categories, codes):
    """`categories` (an Index) in sorted order and `codes` (-1: missing) mapped to it; None if they do not sort."""
    import numpy as np

    if categories.is_monotonic_increasing:
        return categories, codes
    try:
        order = categories.argsort()
    except TypeError:
        return None
    new_code = np.empty(len(order) + 1, dtype=codes.dtype)
    new_code[order] = np.arange(len(order), dtype=codes.dtype)
    new_code[-1] = -1  # code -1 (missing) indexes the last slot
    return categories.take(order), new_code[codes]


def _reduce_categorical(cat):
    categories, codes = cat.categories, cat.codes
    if not cat.ordered:
        # Unordered categoricals whose categories are a permutation of each other are equal
        # in pandas: hash them in sorted category order, the codes mapped to it.
        found = _sorted_codes(categories, codes)
        if found is None:
            return None  # categories that do not sort: hashed by value, as objects
        categories, codes = found
    return _record("pandas.Categorical", (categories, codes, bool(cat.ordered)))


def _multiindex_levels(index):
    """The ``pandas.MultiIndex`` record of a MultiIndex: per level, its used values sorted and the codes.

    pandas compares a MultiIndex by the values its codes select, so level
    values no code uses (left by slicing) and the order of a level are not
    part of the value.  None when a level does not sort.
    """
    import numpy as np

    levels = []
    for level, codes in zip(index.levels, index.codes):
        codes = np.asarray(codes)
        used = np.zeros(len(level) + 1, dtype=np.bool_)
        used[codes] = True  # code -1 (missing) marks the last slot
        used = used[:-1]
        if not used.all():
            new_code = np.full(len(level) + 1, -1, dtype=codes.dtype)
            new_code[:-1][used] = np.arange(np.count_nonzero(used), dtype=codes.dtype)
            level, codes = level[used], new_code[codes]
        found = _sorted_codes(level, codes)
        if found is None:
            return None
        levels.append(found)
    return _record("pandas.MultiIndex", (tuple(levels),))


class _Zeroed:
    """Values with zero bits under a mask, hashed as that array is, without a copy of it whole."""

    __slots__ = ("described", "mask")

    def __init__(self, described, mask):
        self.described = described  # the values' array description, data in one buffer
        self.mask = mask


def _reduce_zeroed(zeroed):
    values = zeroed.described[5]
    return zeroed.described[:4] + (_DATA_MASKED, (values, zeroed.mask), zeroed.described[6])


_EXACT_HANDLERS[_Zeroed] = _reduce_zeroed


def _zeroed(values, mask):
    """`values` with zero bits (0, +0.0, False) under `mask`, as they are hashed.

    Raw native items (the common case) are zeroed piece by piece as the kernel
    streams them; other arrays are zeroed in a copy.
    """
    import numpy as np

    values, mask = np.ascontiguousarray(values), np.ascontiguousarray(mask)
    described = _reduce_array(values)
    if described[0] == _ARRAY and described[4] == _DATA_BUFFER and values.itemsize in (1, 2, 4, 8, 16):
        return _Zeroed(described[:5] + (values,) + described[6:], mask)
    return _impl.hasher.zero_masked(values, mask)


def _reduce_masked(arr):
    data, mask = arr._data, arr._mask
    if mask.any():
        # pandas ignores the values under the mask: they are hashed as zero bits.
        data = _zeroed(data, mask)
    return _record("pandas.masked", (data, mask))


def _reduce_sparse(arr):
    pd = sys.modules["pandas"]
    values, indices, fill = arr.sp_values, arr.sp_index.indices, arr.fill_value
    # Stored values equal to the fill value are not part of the value: drop them.
    stored = ~(pd.isna(values) if pd.isna(fill) else values == fill)
    if not stored.all():
        values, indices = values[stored], indices[stored]
    return _record("pandas.SparseArray", (values, indices, fill, len(arr)))


def _reduce_interval(arr):
    return _record("pandas.IntervalArray", (_pandas_values(arr.left), _pandas_values(arr.right), arr.closed))


def _arrow_bits(buffer, offset, length):
    """Bits `offset` to `offset + length` of an Arrow bitmap, as a bool ndarray (a fresh copy)."""
    import numpy as np

    bits = np.unpackbits(_arrow_buffer(buffer, np.uint8), count=offset + length, bitorder="little")
    return bits[offset:].view(np.bool_)


def _reduce_arrow(arr):
    """Arrow-backed arrays: strings and binaries as (offsets, bytes, mask), fixed-width values as (values, mask)."""
    import numpy as np

    pa = sys.modules["pyarrow"]
    array = arr.__arrow_array__()
    if isinstance(array, pa.ChunkedArray):
        # One chunk is used in place; several are joined (a copy), as chunking is not part of the value.
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    kind, length, offset = array.type, len(array), array.offset
    buffers = array.buffers()
    if array.null_count:
        mask = ~_arrow_bits(buffers[0], offset, length)
    else:
        mask = np.zeros(length, dtype=np.bool_)
    if pa.types.is_boolean(kind):
        return _record("pandas.ArrowFixed", (_arrow_bits(buffers[1], offset, length) & ~mask, mask))
    if pa.types.is_primitive(kind) and kind.bit_width in (8, 16, 32, 64):
        # The values' bits, whatever their type (the dtype text names it); zeros under the mask.
        values = _arrow_buffer(buffers[1], f"=u{kind.bit_width // 8}")[offset : offset + length]
        if array.null_count:
            values = _zeroed(values, mask)
        return _record("pandas.ArrowFixed", (values, mask))
    large = pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)
    if not (large or pa.types.is_string(kind) or pa.types.is_binary(kind)):
        return None  # other Arrow types (nested, decimal, ...): hashed by value, as objects
    offsets = _arrow_offsets(array, large)
    if array.null_count:
        nulls = np.flatnonzero(mask)
        if (offsets[nulls + 1] != offsets[nulls]).any():
            # A null's slot holds bytes (Arrow allows it): empty every null slot (a copy).
            empty = "" if pa.types.is_string(kind) or pa.types.is_large_string(kind) else b""
            array = sys.modules["pyarrow.compute"].fill_null(array, empty)
            offsets = _arrow_offsets(array, large)
    data = _arrow_buffer(array.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    # Offsets from 0 in 64 bits, so that a slice and a (large_)string copy of it hash equal.
    offsets = offsets.astype(np.int64, copy=False)
    return _record("pandas.ArrowBinary", (offsets - offsets[0] if offsets[0] else offsets, data, mask))


def _arrow_offsets(array, large):
    """The ``len(array) + 1`` offsets of an Arrow (large_)string or binary array, as an ndarray."""
    import numpy as np

    if not len(array):
        return np.zeros(1, dtype=np.int64)
    offsets = _arrow_buffer(array.buffers()[1], np.int64 if large else np.int32)
    return offsets[array.offset : array.offset + len(array) + 1]


def _arrow_buffer(buffer, dtype):
    """An Arrow buffer viewed as an ndarray; Arrow may leave the buffers of empty data unallocated."""
    import numpy as np

    return np.zeros(0, dtype=dtype) if buffer is None else np.frombuffer(buffer, dtype=dtype)


def _extension_reducers(pd):
    """(class or classes, reducer) pairs of the extension arrays hashed from their parts, first match wins."""
    return (
        (pd.Categorical, _reduce_categorical),
        ((pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray), _reduce_masked),
        (pd.arrays.DatetimeArray, lambda arr: _record("pandas.DatetimeArray", (arr.asi8,))),
        (pd.arrays.PeriodArray, lambda arr: _record("pandas.PeriodArray", (arr.asi8,))),
        (pd.arrays.IntervalArray, _reduce_interval),
        (pd.arrays.SparseArray, _reduce_sparse),
        (pd.arrays.ArrowExtensionArray, _reduce_arrow),
    )


@functools.lru_cache(maxsize=256)
def _extension_reducer(cls):
    pd = sys.modules["pandas"]
    for base, reducer in _extension_reducers(pd):
        if issubclass(cls, base):
            return reducer
    return None


def _pandas_values(values):
    """The (dtype text, values) pair of a Series or Index, without copying numpy data."""
    import numpy as np

    if isinstance(values.dtype, np.dtype):
        return repr(values.dtype), values.to_numpy()
    array = values.array
    reducer = _extension_reducer(type(array))
    found = None if reducer is None else reducer(array)
    if found is None:
        return repr(values.dtype), values.to_numpy(dtype=object)
    # A categorical's repr lists its categories in their order: its text is "category".
    label = str(values.dtype) if isinstance(array, sys.modules["pandas"].Categorical) else repr(values.dtype)
    return label, found


def _pandas_handler(cls):
    pd = sys.modules["pandas"]
    if issubclass(cls, pd.DataFrame):
        return lambda df: _record(
            "pandas.DataFrame",
            (df.columns, df.index, tuple(_pandas_values(column) for _, column in df.items())),
            (".columns", ".index", ".values"),
        )
    if issubclass(cls, pd.Series):
        return lambda ser: _record(
            "pandas.Series", (ser.name, ser.index) + _pandas_values(ser), (".name", ".index", ".dtype", ".values")
        )
    if issubclass(cls, pd.Index):
        return lambda idx: _record(
            "pandas.Index", (tuple(idx.names),) + _index_values(idx), (".names", ".dtype", ".values")
        )
    return None


def _find_handler(cls):
    handler = _EXACT_HANDLERS.get(cls)
    if handler is not None:
        return handler
    module = getattr(cls, "__module__", "") or ""
    if module.startswith("numpy") and "numpy" in sys.modules:
        handler = _numpy_handler(cls)
    elif module.startswith("pandas") and "pandas" in sys.modules:
        handler = _pandas_handler(cls)
    if handler is None and "numpy" in sys.modules and issubclass(cls, sys.modules["numpy"].ndarray):
        handler = _numpy_handler(cls)
    if handler is not None:
        return handler
    if issubclass(cls, type):
        return _reduce_class
    if issubclass(cls, enum.Enum):
        return _reduce_enum
    if dataclasses.is_dataclass(cls):
        return _reduce_dataclass
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return _reduce_namedtuple
    if issubclass(cls, pathlib.PurePath):
        return _reduce_path
    return _reduce_generic


def reduce_object(obj, max_items=_impl.hasher.MAX_REDUCTIONS):
    """Policy callback of the kernel: the canonical record or array description of `obj`.

    Parameters
    ----------
    obj : object
        An object whose type the kernel does not encode itself.
    max_items : int, optional
        The most items taken from a ``listitems`` or ``dictitems`` iterator
        that ``__reduce_ex__`` returns: the hasher's ``max_reductions``.

    Returns
    -------
    tuple
        ``(0, name, components, labels)`` for a record, or
        ``(1, dtype_str, shape, nbytes, mode, data, canonical_dtype)`` for an
        array whose data the kernel streams.

    Raises
    ------
    Exception
        Whatever reducing the object raises; the kernel turns it into a
        ``TypeError`` naming the object's type and path.
    """
    cls = type(obj)
    handler = _handler_cache.get(cls)
    if handler is None:
        handler = _find_handler(cls)
        if len(_handler_cache) >= _HANDLER_CACHE_MAX:
            _handler_cache.clear()
        _handler_cache[cls] = handler
    if handler is _reduce_generic:
        return handler(obj, max_items)
    return handler(obj)
