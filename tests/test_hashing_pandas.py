"""pandas objects hash by value from their compact parts (issue 13, item 3).

Extension arrays (categoricals, masked arrays, tz-aware datetimes, periods,
intervals, sparse and Arrow-backed arrays) are hashed from their codes, masks,
ordinals and buffers, never one Python object per element.  The rule is value
semantics: objects pandas finds equal (``Series.equals``) hash equal, and a
change of value, mask, category, time zone, frequency or closed side changes
the digest.  Both twins give the same digests.
"""

import hashlib

import numpy as np
import pytest

from joblite import _hash_policy, _impl
from joblite.hashing import hash, hash_with_twin

pd = pytest.importorskip("pandas")


def _same(a, b):
    assert a.equals(b), "the test's premise: pandas finds them equal"
    assert hash(a) == hash(b)


def _all_differ(reference, *others):
    digests = [hash(reference)] + [hash(other) for other in others]
    assert len(set(digests)) == len(digests)


# -- categoricals ----------------------------------------------------------------------
def test_categorical_by_codes_and_categories():
    s = pd.Series(pd.Categorical(["b", "a", None, "b"], categories=["a", "b"]))
    _same(s, s.copy())
    _same(s, pd.Series(pd.Categorical.from_codes([1, 0, -1, 1], categories=["a", "b"])))
    _all_differ(
        s,
        pd.Series(pd.Categorical(["b", "a", "a", "b"], categories=["a", "b"])),  # missing → value
        pd.Series(pd.Categorical(["b", "a", None, "a"], categories=["a", "b"])),  # one code
        pd.Series(pd.Categorical(["b", "a", None, "b"], categories=["a", "b", "c"])),  # unused category
        pd.Series(pd.Categorical(["b", "a", None, "b"], categories=["a", "b"], ordered=True)),
        pd.Series(["b", "a", None, "b"], dtype=object),  # not a categorical
        s.cat.rename_categories(["a", "B"]),
    )


def test_unordered_categories_in_another_order_are_the_same_value():
    # pandas finds them equal: the categories of an unordered categorical are a set
    s = pd.Series(pd.Categorical(["b", "a", None, "b", "c"], categories=["a", "b", "c"]))
    permuted = pd.Series(pd.Categorical(["b", "a", None, "b", "c"], categories=["c", "a", "b"]))
    assert not (s.cat.codes == permuted.cat.codes).all()
    _same(s, permuted)
    # ordered ones are not equal: the order is part of the dtype
    ordered = pd.Series(pd.Categorical(["b", "a"], categories=["a", "b"], ordered=True))
    reordered = pd.Series(pd.Categorical(["b", "a"], categories=["b", "a"], ordered=True))
    assert not ordered.equals(reordered)
    assert hash(ordered) != hash(reordered)


def test_categories_that_do_not_sort_are_hashed_by_value():
    # an unordered categorical whose categories do not sort falls back to its values as objects
    s = pd.Series(pd.Categorical([1, "a", 1], categories=pd.Index(["a", 1], dtype=object)))
    _same(s, s.copy())
    _all_differ(
        s,
        pd.Series(pd.Categorical([1, "a", "a"], categories=pd.Index(["a", 1], dtype=object))),
        pd.Series(pd.Categorical([1, "a", 1], categories=pd.Index(["a", 1, 2.5], dtype=object))),
    )


def test_large_categorical_index_and_frame():
    codes = np.random.default_rng(0).integers(-1, 300, 100_000)
    cats = [f"c{i:03d}" for i in range(300)]
    s = pd.Series(pd.Categorical.from_codes(codes, categories=cats))
    _same(s, pd.Series(pd.Categorical.from_codes(codes.copy(), categories=list(cats))))
    changed = codes.copy()
    changed[-1] = (changed[-1] + 1) % 300
    assert hash(s) != hash(pd.Series(pd.Categorical.from_codes(changed, categories=cats)))
    idx = pd.CategoricalIndex(s)
    assert hash(idx) == hash(pd.CategoricalIndex(s.copy()))
    assert hash(idx) != hash(idx.rename("x"))
    assert hash(s.to_frame("c")) == hash(s.copy().to_frame("c"))


# -- masked arrays ------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtype, values",
    [
        ("Int64", [1, 2, 3]),
        ("Int8", [1, 2, 3]),
        ("UInt32", [1, 2, 3]),
        ("Float64", [0.5, 1.5, -2.0]),
        ("Float32", [0.5, 1.5, -2.0]),
        ("boolean", [True, False, True]),
    ],
)
def test_masked_arrays_by_data_and_mask(dtype, values):
    s = pd.Series(pd.array(values, dtype=dtype))
    masked = pd.Series(pd.array([values[0], None, values[2]], dtype=dtype))
    _same(s, s.copy())
    _same(masked, masked.copy())
    changed = list(values)
    changed[2] = values[0] if values[0] != values[2] else values[1]
    _all_differ(
        s,
        masked,
        pd.Series(pd.array(changed, dtype=dtype)),
        pd.Series(pd.array([values[0], values[1], None], dtype=dtype)),
        pd.Series(np.array(values, dtype=s.dtype.numpy_dtype)),
    )


def test_values_under_the_mask_are_not_part_of_the_value():
    for cls, data in (
        (pd.arrays.IntegerArray, np.array([1, 5, 3])),
        (pd.arrays.FloatingArray, np.array([1.0, np.nan, 3.0])),
        (pd.arrays.BooleanArray, np.array([True, True, False])),
    ):
        mask = np.array([False, True, False])
        other = data.copy()
        other[1] = data[0]
        a, b = pd.Series(cls(data, mask)), pd.Series(cls(other, mask))
        _same(a, b)
        assert hash(a) != hash(pd.Series(cls(data, np.zeros(3, dtype=bool))))


def test_nullable_and_numpy_dtypes_differ():
    _all_differ(
        pd.Series([1, 2], dtype="Int64"),
        pd.Series([1, 2], dtype="int64"),
        pd.Series([1, 2], dtype="Int32"),
        pd.Series([1.0, 2.0], dtype="Float64"),
    )


# The kernel that zeroes the values under a mask, in each twin: its bytes are np.where's.
_ITEM_DTYPES = ["u1", "?", "<i2", "<f4", ">i4", "<f8", "<M8[ns]", "<c8", "<c16", "V16"]


def _masks(n, rng):
    return {"none": np.zeros(n, dtype=bool), "all": np.ones(n, dtype=bool), "random": rng.random(n) < 0.3}


@pytest.mark.parametrize("dtype", _ITEM_DTYPES)
@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 33, 1000])
def test_zero_masked_is_np_where_on_the_bytes(twin, dtype, n):
    rng = np.random.default_rng(n)
    dtype = np.dtype(dtype)
    raw = rng.integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)
    values = raw.view(dtype)
    rows = raw.reshape(n, dtype.itemsize)
    for name, mask in _masks(n, rng).items():
        out = twin.hasher.zero_masked(values, mask)
        assert out.dtype == dtype and out.shape == (n,) and out.flags.c_contiguous
        assert not np.shares_memory(out, values)
        expected = np.where(mask[:, None], np.uint8(0), rows)
        assert out.view(np.uint8).reshape(n, dtype.itemsize).tobytes() == expected.tobytes(), name
    assert values.view(np.uint8).tobytes() == raw.tobytes(), "the input is left unchanged"


def test_zero_masked_gives_np_where_floats_and_bools(twin):
    values = np.array([-0.0, np.nan, -1.5, 2.0, -np.inf])
    mask = np.array([True, True, False, True, False])
    out = twin.hasher.zero_masked(values, mask)
    assert out.tobytes() == np.where(mask, np.zeros((), dtype=values.dtype), values).tobytes()
    flags = np.array([True, False, True])
    assert twin.hasher.zero_masked(flags, np.array([True, True, False])).tolist() == [False, False, True]


def test_zero_masked_keeps_the_shape_of_contiguous_blocks(twin):
    values = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    mask = values % 5 == 0
    assert np.array_equal(twin.hasher.zero_masked(values, mask), np.where(mask, 0, values))


@pytest.mark.parametrize(
    "values, mask, error, text",
    [
        (np.arange(10)[::2], np.zeros(5, dtype=bool), ValueError, "values must be C-contiguous, got strides (16,)"),
        (np.arange(5), np.zeros(10, dtype=bool)[::2], ValueError, "mask must be C-contiguous, got strides (2,)"),
        (np.arange(4), np.zeros(5, dtype=bool), ValueError, "values of shape (4,) and mask of shape (5,) differ"),
        (
            np.arange(4),
            np.zeros((4, 1), dtype=bool),
            ValueError,
            "values of shape (4,) and mask of shape (4, 1) differ",
        ),
        (np.arange(4), np.zeros(4, dtype=np.uint8), ValueError, "mask must be boolean, got dtype uint8"),
        (np.zeros(4, dtype="V3"), np.zeros(4, dtype=bool), ValueError, "dtype |V3 (3 bytes)"),
        (np.zeros(4, dtype=object), np.zeros(4, dtype=bool), ValueError, "dtype object (8 bytes)"),
        ([1, 2], np.zeros(2, dtype=bool), TypeError, "values must be a numpy array, not list"),
        (np.arange(2), [False, True], TypeError, "mask must be a numpy array, not list"),
    ],
)
def test_zero_masked_rejects_what_it_cannot_zero(twin, values, mask, error, text):
    with pytest.raises(error) as info:
        twin.hasher.zero_masked(values, mask)
    assert text in str(info.value)


def test_zero_masked_twins_agree(twins):
    ext, pure = twins
    rng = np.random.default_rng(13)
    for dtype in _ITEM_DTYPES:
        values = rng.integers(0, 256, size=257 * np.dtype(dtype).itemsize, dtype=np.uint8).view(dtype)
        mask = rng.random(257) < 0.5
        assert ext.hasher.zero_masked(values, mask).tobytes() == pure.hasher.zero_masked(values, mask).tobytes()
    for args in ((np.arange(3), np.zeros(4, dtype=bool)), (np.arange(6)[::2], np.zeros(3, dtype=bool))):
        with pytest.raises(ValueError) as from_ext:
            ext.hasher.zero_masked(*args)
        with pytest.raises(ValueError) as from_pure:
            pure.hasher.zero_masked(*args)
        assert str(from_ext.value) == str(from_pure.value)


@pytest.mark.parametrize("dtype", ["<i8", "<i2", "u1", "<f4", "<f8", "?", "<c16", ">i4"])
@pytest.mark.parametrize("n", [1, 17, 300_001])  # 300,001 of 8 bytes: three pieces of 1 MiB and a tail
def test_values_zeroed_under_a_mask_hash_as_their_zeroed_copy(dtype, n):
    # Native raw items are zeroed piece by piece while the compiled twin streams
    # them; others (">i4") in a copy: the digest is the zeroed copy's, in both twins.
    rng = np.random.default_rng(n)
    dtype = np.dtype(dtype)
    values = rng.integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8).view(dtype)
    mask = rng.random(n) < 0.1
    mask[n // 2] = True
    zeroed = np.where(mask[:, None], np.uint8(0), values.view(np.uint8).reshape(n, -1)).view(dtype).reshape(n)
    for twin in _impl.available_twins():
        expected = hash_with_twin(twin, zeroed)
        assert hash_with_twin(twin, _hash_policy._zeroed(values, mask)) == expected, twin
        strided = np.stack([values, values], axis=1)[:, 0]
        assert hash_with_twin(twin, _hash_policy._zeroed(strided, mask)) == expected, twin
    assert values.view(np.uint8).reshape(n, -1)[mask].any(), "the test's premise: bytes under the mask"


def test_masked_values_described_with_another_length_are_refused(twin):
    values, mask = np.arange(4), np.zeros(4, dtype=bool)

    def policy(obj, max_items=None):
        return (1, "<i8", (5,), 40, 3, (values, mask), values.dtype)

    hasher = twin.hasher.StreamHasher(hashlib.sha256, policy)
    with pytest.raises(ValueError, match=r"masked values of 32 bytes \(4 items, mask of 4 bytes\) described as 40"):
        hasher.update(object())


def test_strided_masked_arrays_hash_as_their_copies():
    s = pd.Series(pd.array([1, None, 3, 4, None, 6, 7, 8], dtype="Int64"))
    view = s.array[1::2]
    assert not view._data.flags.c_contiguous, "the test's premise: a strided view of the data"
    assert hash(pd.Series(view)) == hash(pd.Series(view.copy()))


# -- datetimes, periods, intervals, sparse ----------------------------------------------
def test_tz_aware_datetimes_by_instant_unit_and_zone():
    naive = pd.DatetimeIndex(["2024-01-01 12:00", None, "2024-03-30 02:30"])
    utc = pd.Series(naive.tz_localize("UTC"))
    _same(utc, pd.Series(naive.tz_localize("UTC")).copy())
    _all_differ(
        utc,
        pd.Series(naive),  # naive
        utc.dt.tz_convert("Europe/Paris"),  # same instants, another zone
        pd.Series(naive.tz_localize("Europe/Paris")),  # other instants
        utc.dt.as_unit("ns"),  # same instants, another unit
        pd.Series(pd.DatetimeIndex(["2024-01-01 12:00", "2024-01-01", "2024-03-30 02:30"]).tz_localize("UTC")),
    )
    index = pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC")
    assert hash(index) == hash(index.copy()) != hash(index.tz_convert("Asia/Tokyo"))


def test_periods_by_ordinals_and_frequency():
    s = pd.Series(pd.period_range("2024-01", periods=4, freq="M"))
    _same(s, s.copy())
    _all_differ(
        s,
        pd.Series(pd.period_range("2024-02", periods=4, freq="M")),
        pd.Series(pd.period_range("2024-01", periods=4, freq="D")),
        pd.Series(pd.PeriodIndex(["2024-01", None, "2024-03", "2024-04"], freq="M")),
    )


def test_intervals_by_sides_and_closed():
    s = pd.Series(pd.arrays.IntervalArray.from_breaks([0, 1, 3, 7]))
    _same(s, pd.Series(pd.arrays.IntervalArray.from_arrays([0, 1, 3], [1, 3, 7])))
    _all_differ(
        s,
        pd.Series(pd.arrays.IntervalArray.from_breaks([0, 1, 3, 7], closed="left")),
        pd.Series(pd.arrays.IntervalArray.from_breaks([0, 1, 3, 8])),
        pd.Series(pd.arrays.IntervalArray.from_breaks([0.0, 1.0, 3.0, 7.0])),
        pd.Series(pd.arrays.IntervalArray([pd.Interval(0, 1), None, pd.Interval(3, 7)])),
    )
    index = pd.IntervalIndex.from_breaks(pd.date_range("2024", periods=3, tz="UTC"))
    assert hash(index) == hash(index.copy()) != hash(index.set_closed("both"))


def test_sparse_by_stored_values_positions_and_fill():
    s = pd.Series(pd.arrays.SparseArray([0.0, 1.5, 0.0, 2.0], fill_value=0.0))
    # the same dense values, with a fill value stored explicitly
    explicit = pd.Series(
        pd.arrays.SparseArray.from_indices(
            np.array([1.5, 0.0, 2.0]), np.array([1, 2, 3], dtype=np.int32), length=4, fill_value=0.0
        )
    )
    assert explicit.array.sp_values.size == 3
    _same(s, explicit)
    _all_differ(
        s,
        pd.Series(pd.arrays.SparseArray([0.0, 1.5, 0.0, 2.5], fill_value=0.0)),
        pd.Series(pd.arrays.SparseArray([0.0, 0.0, 1.5, 2.0], fill_value=0.0)),
        pd.Series(pd.arrays.SparseArray([0.0, 1.5, 0.0, 2.0], fill_value=np.nan)),
        pd.Series(pd.arrays.SparseArray([0.0, 1.5, 0.0, 2.0, 0.0], fill_value=0.0)),
        pd.Series([0.0, 1.5, 0.0, 2.0]),
    )
    nan_filled = pd.Series(pd.arrays.SparseArray([np.nan, 1.0, np.nan]))
    assert hash(nan_filled) == hash(nan_filled.copy())


# -- indexes: a RangeIndex is the int64 Index of its values ---------------------------
@pytest.mark.parametrize(
    "rng",
    [range(0), range(1), range(5, 6), range(0, 10), range(10, 0, -3), range(-5, 50, 7), range(2**62, 2**63 - 1, 2**61)],
)
def test_range_index_is_the_int64_index_of_its_values(rng):
    range_index = pd.RangeIndex(rng.start, rng.stop, rng.step)
    values = pd.Index(np.array(list(rng), dtype=np.int64))
    assert range_index.equals(values)
    assert hash(range_index) == hash(values)
    frame = pd.DataFrame({"x": np.arange(len(rng), dtype=np.float64)}, index=range_index)
    assert hash(frame) == hash(frame.set_axis(values, axis=0))


def test_int64_indexes_that_are_not_progressions():
    base = np.arange(0, 300_000, 3, dtype=np.int64)
    reference = hash(pd.Index(base))
    assert reference == hash(pd.RangeIndex(0, 300_000, 3))
    for position in (2, 1500, 70_000, len(base) - 1):  # past the first block and chunks
        changed = base.copy()
        changed[position] += 1
        assert hash(pd.Index(changed)) != reference
    assert hash(pd.Index([0, 0, 0])) != hash(pd.Index([0, 0, 1]))
    assert hash(pd.Index([1, 2], name="n")) != hash(pd.RangeIndex(1, 3))
    # values whose difference wraps around int64 are not a RangeIndex, and hash apart
    extremes = pd.Index(np.array([2**63 - 1, -(2**63)], dtype=np.int64))
    assert hash(extremes) != hash(pd.Index(np.array([2**63 - 1, 2**63 - 2], dtype=np.int64)))
    assert hash(pd.Index([0, 1, 2], dtype="int32")) != hash(pd.RangeIndex(3))


def test_multiindex_by_the_values_its_codes_select():
    m = pd.MultiIndex.from_tuples([("a", 1), ("b", 2), ("c", 3), ("a", 3)], names=["s", "n"])
    _same(m, m.copy())
    sliced = m[1:]
    assert len(sliced.levels[0]) == 3  # "a" is still a level value, used by one row
    _same(sliced, pd.MultiIndex.from_tuples([("b", 2), ("c", 3), ("a", 3)], names=["s", "n"]))
    unused = m[1:3]
    assert "a" in unused.levels[0]  # unused level values are left by slicing
    _same(unused, pd.MultiIndex.from_tuples([("b", 2), ("c", 3)], names=["s", "n"]))
    permuted = pd.MultiIndex(levels=[["c", "b", "a"], [3, 2, 1]], codes=[[2, 1, 0, 2], [2, 1, 0, 0]], names=["s", "n"])
    _same(m, permuted)
    missing = pd.MultiIndex.from_arrays([["a", None, "b"], [1.0, 2.0, np.nan]])
    _same(missing, missing.copy())
    _all_differ(
        m,
        m.set_names(["s", "x"]),
        pd.MultiIndex.from_tuples([("a", 1), ("b", 2), ("c", 3), ("a", 2)], names=["s", "n"]),
        m.swaplevel(),
        pd.Index(list(m), tupleize_cols=False, name=None),
    )
    mixed = pd.MultiIndex.from_arrays([pd.Index([1, "a"], dtype=object), [1, 2]])
    _same(mixed, mixed.copy())  # a level that does not sort: hashed by its tuples


def test_frame_with_a_large_multiindex():
    outer, inner = np.repeat(np.arange(300), 300), np.tile(np.arange(300), 300)
    df = pd.DataFrame({"x": np.arange(90_000.0)}, index=pd.MultiIndex.from_arrays([outer, inner], names=["a", "b"]))
    _same(df, df.copy())
    _same(
        df.iloc[100:],
        pd.DataFrame(
            {"x": np.arange(100.0, 90_000.0)},
            index=pd.MultiIndex.from_arrays([outer[100:], inner[100:]], names=["a", "b"]),
        ),
    )
    changed = inner.copy()
    changed[-1] = 0
    assert hash(df) != hash(df.set_axis(pd.MultiIndex.from_arrays([outer, changed], names=["a", "b"]), axis=0))


# -- strings ---------------------------------------------------------------------------
def test_python_strings_keep_their_digests_and_semantics():
    s = pd.Series(["a", None, "bc"], dtype="string[python]")
    _same(s, s.copy())
    _all_differ(
        s,
        pd.Series(["a", "", "bc"], dtype="string[python]"),
        pd.Series(["a", None, "bc"], dtype=object),
        pd.Series(["a", None, "bd"], dtype="string[python]"),
    )


def test_arrow_strings_by_offsets_bytes_and_mask():
    pa = pytest.importorskip("pyarrow")
    s = pd.Series(["a", None, "bc", "é"], dtype="string[pyarrow]")
    _same(s, s.copy())
    sliced = pd.Series(["zz", "a", None, "bc", "é"], dtype="string[pyarrow]").iloc[1:].reset_index(drop=True)
    _same(s, sliced)
    chunked = pd.Series(
        pd.arrays.ArrowStringArray(
            pa.chunked_array([pa.array(["a", None], pa.large_string()), pa.array(["bc", "é"], pa.large_string())])
        )
    )
    _same(s, chunked)
    # a null whose slot holds bytes: Arrow allows it, and the bytes are not part of the value
    dirty = pa.Array.from_buffers(
        pa.large_string(),
        4,
        [
            pa.py_buffer(np.packbits([1, 0, 1, 1], bitorder="little").tobytes()),
            pa.py_buffer(np.array([0, 1, 4, 6, 8], dtype=np.int64).tobytes()),
            pa.py_buffer(b"axyzbc\xc3\xa9"),
        ],
    )
    _same(s, pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([dirty]))))
    _all_differ(
        s,
        pd.Series(["a", "", "bc", "é"], dtype="string[pyarrow]"),
        pd.Series(["a", None, "bc", "e"], dtype="string[pyarrow]"),
        pd.Series(["a", None, "b", "cé"], dtype="string[pyarrow]"),
        pd.Series(["a", None, "bc", "é"], dtype="string[python]"),
    )
    assert hash(pd.Series([], dtype="string[pyarrow]")) != hash(pd.Series([""], dtype="string[pyarrow]"))


def test_arrow_fixed_width_values_by_bits_and_mask():
    pa = pytest.importorskip("pyarrow")
    s = pd.Series([1, None, -3], dtype="int64[pyarrow]")
    dirty = pa.Array.from_buffers(
        pa.int64(),
        3,
        [
            pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes()),
            pa.py_buffer(np.array([1, 99, -3], dtype=np.int64).tobytes()),
        ],
    )
    _same(s, pd.Series(pd.arrays.ArrowExtensionArray(dirty)))
    _all_differ(
        s,
        pd.Series([1, 0, -3], dtype="int64[pyarrow]"),
        pd.Series([1, None, -3], dtype="int32[pyarrow]"),
        pd.Series([1, None, -3], dtype="Int64"),
    )
    flags = pd.Series([True, None, False], dtype="bool[pyarrow]")
    _same(flags, flags.copy())
    _all_differ(flags, pd.Series([True, False, False], dtype="bool[pyarrow]"))
    nested = pd.Series([[1], None], dtype=pd.ArrowDtype(pa.list_(pa.int64())))
    assert (
        hash(nested) == hash(nested.copy()) != hash(pd.Series([[2], None], dtype=pd.ArrowDtype(pa.list_(pa.int64()))))
    )


# -- frames and twins -------------------------------------------------------------------
def _frame_of_every_kind(n=1000):
    rng = np.random.default_rng(1)
    ints = rng.integers(0, 1 << 40, n)
    mask = rng.random(n) < 0.1
    return pd.DataFrame(
        {
            "float": rng.random(n),
            "int": ints,
            "category": pd.Categorical.from_codes(rng.integers(0, 20, n), categories=[f"k{i}" for i in range(20)]),
            "object": pd.Series([f"s{i % 7}" for i in range(n)], dtype=object),
            "string": pd.Series([f"s{i % 7}" for i in range(n)], dtype="string"),
            "datetime": pd.to_datetime(ints),
            "datetime_tz": pd.to_datetime(ints).tz_localize("Europe/Paris"),
            "Int64": pd.arrays.IntegerArray(ints, mask),
            "boolean": pd.arrays.BooleanArray(ints % 2 == 0, mask),
            "Float64": pd.arrays.FloatingArray(rng.random(n), mask),
            "interval": pd.arrays.IntervalArray.from_arrays(ints, ints + 5),
            "period": pd.period_range("2000-01-01", periods=n, freq="D"),
            "sparse": pd.arrays.SparseArray(np.where(mask, 1.0, 0.0), fill_value=0.0),
        }
    )


def test_frame_of_every_kind_by_value():
    df = _frame_of_every_kind()
    reference = hash(df)
    assert hash(df.copy()) == reference
    assert hash(df[list(df.columns)]) == reference
    for column in df.columns:
        changed = df.copy()
        changed[column] = changed[column].iloc[::-1].to_numpy()
        assert hash(changed) != reference, column


def test_twins_agree_on_every_kind():
    twins = _impl.available_twins()
    df = _frame_of_every_kind()
    objects = (
        [df, df.index, df.columns]
        + [df[column] for column in df.columns]
        + [
            pd.CategoricalIndex(df["category"]),
            pd.Index(df["Int64"]),
            pd.Index(df["period"]),
            pd.RangeIndex(5, 50, 5),
            pd.Index(np.arange(7)),
        ]
    )
    try:
        objects.append(pd.Series(["a", None, "bc"], dtype="string[pyarrow]"))
    except ImportError:
        pass
    for obj in objects:
        digests = {twin: hash_with_twin(twin, obj) for twin in twins}
        assert len(set(digests.values())) == 1, (obj, digests)
        assert hash(obj) in digests.values()


def test_extension_arrays_are_not_materialised_as_objects(monkeypatch):
    # The point of the records: no column of these kinds becomes an array of Python objects.
    df = _frame_of_every_kind().drop(columns=["object", "string"])
    requested = []
    original = pd.Series.to_numpy

    def spy(self, dtype=None, *args, **kwargs):
        requested.append((self.name, dtype))
        return original(self, dtype, *args, **kwargs)

    monkeypatch.setattr(pd.Series, "to_numpy", spy)
    hash(df)
    assert {name for name, _ in requested} == {"float", "int", "datetime"}
    assert [dtype for _, dtype in requested] == [None] * 3
