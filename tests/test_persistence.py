"""dump/load, dumps/loads: the behaviour users rely on.

Round trips of many dtypes, orders and array subclasses; ``mmap_mode``;
argument validation; atomic writes; compression with every codec; safe
loading (``allowed=``).  Corrupted files
are in ``test_persistence_integrity.py``, the fuzz test in
``test_persistence_fuzz.py``, pinned files in ``test_persistence_golden.py``.
Uncompressed dumps do not touch the kernels; the compressed ones run on the
active twin (run the suite again with ``JOBLITE_PUREPYTHON=1``).
"""

import builtins
import collections
import contextlib
import datetime
import decimal
import fractions
import io
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

import _persistence_helpers as H
import joblite
from joblite import _blocks, _container, compressors, persistence
from joblite.persistence import CorruptFileError, dump, dumps, load, loads

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))  # the joblite tested
CODECS = ["lz4", "zlib", "gzip", "bz2", "lzma", "xz"] + (["zstd"] if "zstd" in compressors.compressor_names() else [])


assert_same = H.assert_same


def structured_with_offsets():
    dtype = np.dtype({"names": ["a", "b", "c"], "formats": ["<i4", ">f8", "S3"], "offsets": [0, 8, 17], "itemsize": 24})
    array = np.zeros(5, dtype=dtype)
    array["a"] = np.arange(5)
    array["b"] = np.linspace(0, 1, 5)
    array["c"] = [b"ab", b"cde", b"", b"x", b"yz"]
    return array


def array_cases():
    rng = np.random.default_rng(0)
    return {
        "float64": rng.standard_normal(100),
        "float32-nan-inf": np.array([np.nan, np.inf, -np.inf, -0.0, 1.5], dtype=np.float32),
        "float16": np.arange(7, dtype=np.float16),
        "longdouble": np.arange(5, dtype=np.longdouble) / 3,
        "int8": np.arange(-128, 128, dtype=np.int8),
        "uint64": np.array([0, 2**64 - 1, 12345], dtype=np.uint64),
        "bool": rng.random(33) > 0.5,
        "complex64": (rng.standard_normal(6) + 1j * rng.standard_normal(6)).astype(np.complex64),
        "complex128": np.array([1 + 2j, -3.5j, np.nan + 1j]),
        "datetime64[ns]": np.array(["2020-01-01T12:00", "NaT", "1970-01-01"], dtype="M8[ns]"),
        "datetime64[D]": np.arange("2000-01-01", "2000-02-01", dtype="M8[D]"),
        "timedelta64[s]": np.array([1, -2, 3600], dtype="m8[s]"),
        "unicode": np.array(["", "abc", "é€😀", "x" * 40]),
        "bytes": np.array([b"", b"ab\x00c", b"\xff" * 9]),
        "void": np.array([b"\x01\x02\x03", b"\xff\x00\x7f"], dtype="V3"),
        "structured-offsets": structured_with_offsets(),
        "structured-nested": np.zeros(3, dtype=[("x", "<f4", (2, 2)), ("y", [("p", "u1"), ("q", ">i8")])]),
        "big-endian-float": np.arange(10, dtype=">f8"),
        "big-endian-int": np.arange(-5, 5, dtype=">i4").reshape(2, 5),
        "big-endian-datetime": np.array(["2021-06-01"], dtype=">M8[s]"),
        "0-d": np.array(3.25),
        "0-d-structured": np.array((1, 2.0), dtype=[("a", "i2"), ("b", "f4")]),
        "0-d-unicode": np.array("hello"),
        "empty": np.empty(0),
        "empty-2d": np.empty((0, 3), dtype=np.int16),
        "empty-2d-F": np.empty((4, 0), dtype=np.int16, order="F"),
        "empty-structured": np.empty(0, dtype=structured_with_offsets().dtype),
        "3-d": np.arange(60, dtype=np.int32).reshape(3, 4, 5),
        "odd-itemsize": np.array([b"abcdefg"] * 1000, dtype="S7"),
        "itemsize-above-255": np.array([b"x" * 300, b"y"], dtype="S300"),
        "zero-itemsize": np.zeros(3, dtype="V0"),
        "empty-structured-dtype": np.zeros(4, dtype=np.dtype([])),
        "unaligned": np.frombuffer(b"\x00" + bytes(range(16)), dtype="<i8", offset=1, count=2),
        "datetime-generic-empty": np.array([], dtype="M8"),
    }


def view_cases():
    base = np.arange(600, dtype=np.float64).reshape(20, 30)
    structured = structured_with_offsets()
    return {
        "strided-2d": base[::3, 1::4],
        "transposed-slice": base[2:, ::2].T,
        "negative-strides": base[::-1, ::-2],
        "column": base[:, 7],
        "broadcast": np.broadcast_to(np.arange(5.0), (4, 5)),
        "structured-field": structured["b"],
        "unaligned-bytes": np.frombuffer(b"\x00" + bytes(range(80)), dtype=np.uint8)[1:].view("<i8")[::2],
        "3-d-strided": np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)[:, ::2, 1::2],
    }


# -- round trips --------------------------------------------------------------------------
def via_path(tmp_path, value, **kwargs):
    filename = str(tmp_path / "value.jl")
    assert dump(value, filename, **kwargs) == [filename]
    return load(filename)


def via_pathlib(tmp_path, value, **kwargs):
    filename = tmp_path / "value.jl"
    assert dump(value, filename, **kwargs) == [str(filename)]
    return load(filename)


def via_bytesio(tmp_path, value, **kwargs):
    stream = io.BytesIO()
    assert dump(value, stream, **kwargs) is None
    stream.seek(0)
    return load(stream)


def via_open_file(tmp_path, value, **kwargs):
    filename = tmp_path / "value.jl"
    with open(filename, "wb") as handle:
        assert dump(value, handle, **kwargs) is None
    with open(filename, "rb") as handle:
        return load(handle)


def via_bytes(tmp_path, value, **kwargs):
    data = dumps(value, **kwargs)
    assert isinstance(data, bytes)
    return loads(data)


VIAS = [via_path, via_pathlib, via_bytesio, via_open_file, via_bytes]


def nested_value():
    cases = array_cases()
    return {
        "arrays": cases,
        "views": view_cases(),
        "list": [1, 2.5, "three", None, True, b"bytes", (np.arange(3), {"deep": [np.ones((2, 2))]})],
        "scalars": [np.float32(1.5), np.int64(-3), np.datetime64("2020-01-01"), np.bool_(False)],
        "empty": {},
    }


@pytest.mark.parametrize("via", VIAS, ids=lambda via: via.__name__)
def test_round_trip_nested(tmp_path, via):
    value = nested_value()
    got = via(tmp_path, value)
    expected = dict(value, views={k: np.ascontiguousarray(v) for k, v in value["views"].items()})
    assert_same(got, expected)


@pytest.mark.parametrize("name", sorted(array_cases()))
def test_round_trip_dtype(name):
    array = array_cases()[name]
    got = loads(dumps(array))
    assert_same(got, array)
    assert type(got) is np.ndarray
    if array.ndim >= 2 and array.flags.f_contiguous and not array.flags.c_contiguous:
        assert got.flags.f_contiguous
    else:
        assert got.flags.c_contiguous
    assert got.flags.writeable  # a fresh array, not a view into a read-only buffer


def test_nan_and_nat_payloads_survive_bit_for_bit():
    array = np.array([np.nan, -np.nan], dtype=np.float64)
    array.view(np.uint64)[0] |= 0x1234  # a NaN with a payload
    got = loads(dumps(array))
    assert got.view(np.uint64).tolist() == array.view(np.uint64).tolist()


@pytest.mark.parametrize("order", ["C", "F"])
def test_order_is_kept(order):
    array = np.asarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4), order=order)
    got = loads(dumps(array))
    assert_same(got, array)
    assert got.flags.f_contiguous == (order == "F")
    assert got.flags.c_contiguous == (order == "C")


@pytest.mark.parametrize("name", sorted(view_cases()))
def test_non_contiguous_views_come_back_equal_and_c_contiguous(name):
    view = view_cases()[name]
    got = loads(dumps(view))
    assert_same(got, np.ascontiguousarray(view))
    assert got.flags.c_contiguous
    assert not np.shares_memory(got, view)


def test_non_contiguous_larger_than_a_chunk():
    base = np.arange(3 * (1 << 18), dtype=np.float64).reshape(-1, 3)  # 6 MiB
    view = base[::2, ::2]  # several 1 MiB pieces when streamed
    assert_same(loads(dumps(view)), np.ascontiguousarray(view))


def test_huge_ish_array_round_trip(tmp_path):
    array = np.arange(8 << 20, dtype=np.float64)  # 64 MiB
    array[12345] = np.nan
    filename = tmp_path / "big.jl"
    dump({"big": array, "small": array[:10].copy()}, filename)
    assert filename.stat().st_size < array.nbytes + 4096
    got = load(filename)
    assert_same(got["big"], array)
    mapped = load(filename, mmap_mode="r")
    assert isinstance(mapped["big"], np.memmap)
    assert mapped["big"][12345] != mapped["big"][12345]
    assert mapped["big"][-1] == array[-1]


def test_memmap_input(tmp_path):
    mm = np.memmap(tmp_path / "data.bin", dtype="<i4", mode="w+", shape=(6, 7))
    mm[:] = np.arange(42).reshape(6, 7)
    mm.flush()
    got = loads(dumps({"mm": mm, "view": mm[::2, 1:]}))
    assert type(got["mm"]) is np.ndarray  # not a memmap pointing at nothing
    assert_same(got["mm"], np.asarray(mm))
    assert_same(got["view"], np.ascontiguousarray(mm[::2, 1:]))


def test_matrix_comes_back_a_matrix():
    matrix = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    got = loads(dumps([matrix, matrix.T]))
    assert type(got[0]) is np.matrix and type(got[1]) is np.matrix
    np.testing.assert_array_equal(got[0], matrix)
    np.testing.assert_array_equal(got[1], matrix.T)


class MyArray(np.ndarray):
    """An ndarray subclass that pickles like ndarray."""


def test_ndarray_subclass_comes_back_its_class():
    array = np.arange(6.0).reshape(2, 3).view(MyArray)
    got = loads(dumps(array))
    assert type(got) is MyArray
    np.testing.assert_array_equal(got, array)


class InfoArray(np.ndarray):
    """An ndarray subclass carrying an attribute in its __dict__."""

    def __array_finalize__(self, obj):
        self.info = getattr(obj, "info", None)


@pytest.mark.parametrize("compress", [0, "lz4"])
def test_ndarray_subclass_keeps_its_attributes(compress):
    array = np.arange(4.0).view(InfoArray)
    array.info = {"units": "m"}
    got = loads(dumps(array, compress=compress))
    assert type(got) is InfoArray and got.info == {"units": "m"}
    np.testing.assert_array_equal(got, array)


def test_masked_and_record_arrays():
    masked = np.ma.array([1.0, 2.0, 3.0], mask=[False, True, False], fill_value=-1.0)
    record = np.rec.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")])
    got_masked, got_record = loads(dumps([masked, record]))
    assert type(got_masked) is np.ma.MaskedArray
    np.testing.assert_array_equal(got_masked.mask, masked.mask)
    np.testing.assert_array_equal(got_masked.data, masked.data)
    assert got_masked.fill_value == -1.0
    assert type(got_record) is np.recarray
    assert got_record.b.tolist() == [2.0, 4.0]


def test_object_arrays():
    array = np.empty(5, dtype=object)
    array[:] = [1, "two", None, [3, 4], np.arange(3)]
    structured = np.array([(1, "a"), (2, [1])], dtype=[("i", "i4"), ("o", "O")])
    got, got_structured = loads(dumps([array, structured]))
    assert got.dtype == object
    assert got[:4].tolist() == [1, "two", None, [3, 4]]
    np.testing.assert_array_equal(got[4], np.arange(3))
    assert got_structured["o"].tolist() == ["a", [1]]


def test_same_array_twice_comes_back_as_one_object():
    array = np.arange(10.0)
    matrix = np.matrix([[1, 2]])
    value = {"a": array, "b": [array, (array,)], "m": [matrix, matrix]}
    for got in (loads(dumps(value)), pickle.loads(pickle.dumps(value))):
        assert got["a"] is got["b"][0] is got["b"][1][0]
        assert got["m"][0] is got["m"][1]
    # and it is stored once
    assert len(dumps([array] * 50)) < 2 * len(dumps(array))


def test_plain_objects_round_trip():
    value = {
        "builtins": [
            1,
            -(2**100),
            2.5,
            1 + 2j,
            "s",
            b"b",
            bytearray(b"ba"),
            None,
            True,
            Ellipsis,
            (1,),
            [2],
            {3},
            frozenset({4}),
            range(1, 9, 2),
            slice(1, None, 3),
        ],
        "datetime": [
            datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.timezone.utc),
            datetime.date(1999, 12, 31),
            datetime.timedelta(days=-1, seconds=5),
        ],
        "numbers": [decimal.Decimal("3.14159"), fractions.Fraction(22, 7), uuid.UUID(int=42)],
        "collections": [
            collections.OrderedDict([("b", 1), ("a", 2)]),
            collections.Counter("hello"),
            collections.deque([1, 2], maxlen=5),
            collections.defaultdict(list, a=[1]),
        ],
        "path": pathlib.Path("/tmp/x/y.txt"),
        "dtypes": [np.dtype("f8"), np.dtype(">M8[ms]"), structured_with_offsets().dtype, np.float64],
    }
    got = loads(dumps(value))
    assert got == value
    assert got["collections"][2].maxlen == 5


def test_no_numpy_objects_at_all():
    value = {"k": [1, 2, 3], "s": "x" * 1000}
    assert loads(dumps(value)) == value
    assert loads(dumps(None)) is None


def test_pandas_dataframe():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "f": np.linspace(0, 1, 50),
            "i": np.arange(50, dtype=np.int16),
            "s": [f"row{i}" for i in range(50)],
            "c": pd.Categorical(["a", "b"] * 25),
            "t": pd.date_range("2020-01-01", periods=50, freq="h", tz="Europe/Paris"),
            "b": np.arange(50) % 3 == 0,
        },
        index=pd.RangeIndex(100, 150, name="idx"),
    )
    series = pd.Series(np.arange(5.0), index=list("abcde"), name="s")
    got_frame, got_series = loads(dumps([frame, series]))
    pd.testing.assert_frame_equal(got_frame, frame)
    pd.testing.assert_series_equal(got_series, series)


def test_load_from_file_object_at_its_current_position(tmp_path):
    stream = io.BytesIO()
    stream.write(b"some prefix of 37 bytes, not aligned")
    start = stream.tell()
    dump({"a": np.arange(5)}, stream)
    stream.seek(start)
    got = load(stream)
    np.testing.assert_array_equal(got["a"], np.arange(5))


def test_non_seekable_file_object(tmp_path):
    data = dumps({"a": np.arange(5.0)})

    class Pipe(io.RawIOBase):
        def __init__(self, payload):
            self._inner = io.BytesIO(payload)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, buffer):
            return self._inner.readinto(buffer)

    got = load(io.BufferedReader(Pipe(data)))
    np.testing.assert_array_equal(got["a"], np.arange(5.0))


def test_dump_to_a_non_seekable_stream():
    """The writer never seeks (a pipe or a socket can receive a dump)."""

    class Sink(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def seekable(self):
            return False

        def write(self, buffer):
            self.data += bytes(buffer)
            return len(buffer)

    sink = Sink()
    value = {"a": np.arange(5.0), "v": np.arange(20)[::3]}
    assert dump(value, sink) is None
    assert bytes(sink.data) == dumps(value)


def test_overwrite_existing_file(tmp_path):
    filename = tmp_path / "value.jl"
    dump(np.arange(1000), filename)
    dump("small", filename)
    assert load(filename) == "small"


def test_dumps_is_deterministic():
    value = nested_value()
    assert dumps(value) == dumps(value)


def test_file_layout_matches_the_documented_format():
    """Rebuilding a dump from its parts with the spec alone gives the same bytes."""
    value = {
        "a": np.arange(10, dtype=">i2"),
        "b": np.ones((3, 4), order="F"),
        "c": np.arange(30)[::4],
        "e": np.empty(0),
        "s": "text",
    }
    data = dumps(value)
    layout = H.parse(data)
    assert data[:8] == b"\x89JOBLITE" and data[-64:-56] == b"JLBLOCKS"
    assert layout["version"] == persistence.FORMAT_VERSION == 2
    assert layout["flags"] == 0 and layout["hints"] == 0 and layout["codecs"] == ["none"]
    assert len(layout["blocks"]) == 4
    for block in layout["blocks"]:
        assert block["offset"] % 64 == 0
        assert block["codec"] == 0 and block["length"] == block["raw_length"]
    sizes = [block["raw_length"] for block in layout["blocks"]]
    assert sorted(sizes) == sorted([20, 96, 8 * 8, 0])
    assert layout["table"][0] % 64 == 0
    assert all(data[start:stop] == bytes(stop - start) for start, stop in layout["padding"])
    stream = data[slice(*layout["pickle"])]
    rebuilt = H.build(
        stream,
        [(data[slice(*b["range"])], b["raw_length"], b["codec"], b["itemsize"]) for b in layout["blocks"]],
        version=2,
    )
    assert rebuilt == data


@pytest.mark.parametrize("codec", ["blosc-lz4", "lz4", "zlib"])
def test_compressed_parts_carry_their_chunk_checksums_as_documented(codec):
    """Each compressed part is its frame, then its chunks' checksums; its own checksum covers header and list."""
    value = {"a": np.arange(300_000) % 1000, "b": np.linspace(0, 1, 5000)[::3], "s": list(range(2000))}
    data = dumps(value, compress=codec)
    layout = H.parse(data)
    assert layout["pickle_codec"] == 1 and layout["codecs"] == ["none", codec]
    # "a" is three chunks: the kernels' threads decode it, for the 'blosc-*' codecs only
    assert layout["hints"] == (_container.HINT_KERNEL_THREADS if codec.startswith("blosc-") else 0)
    stream = data[slice(*layout["pickle"])]
    parts = [data[slice(*b["range"])] for b in layout["blocks"]]
    for part in [stream, *parts]:
        count = int.from_bytes(part[:4], "little")
        frame = part[: len(part) - 8 * count]
        assert H.with_checksums(frame) == part  # each chunk's xxh3_64, after the frame
    rebuilt = H.build(
        stream,
        [(part, b["raw_length"], b["codec"], b["itemsize"]) for part, b in zip(parts, layout["blocks"])],
        codecs=("none", codec),
        pickle_codec=1,
        pickle_raw_length=layout["pickle_raw_length"],
        chunk_size=layout["chunk_size"],
        version=2,
        hints=layout["hints"],
    )
    assert rebuilt == data


def test_arrays_are_out_of_band():
    """The pickle stream holds the structure only, not the array bytes."""
    array = np.arange(1 << 16, dtype=np.int64)
    layout = H.parse(dumps({"a": array, "b": array[::2]}))
    assert layout["pickle_length"] < 1024
    assert {b["raw_length"] for b in layout["blocks"]} == {array.nbytes, array.nbytes // 2}


@pytest.mark.parametrize("codec", ["blosc-lz4", "lz4", "zlib"])
def test_a_short_pickle_stream_is_stored_as_it_is_in_a_compressed_file(codec):
    """Under 4 KiB the stream is not compressed (cheaper both ways); from 4 KiB on it is; both load."""
    short = {"a": np.arange(1000) % 7, "s": "x" * 100}
    long = dict(short, s="x" * 5000)
    for value, stream_codec in ((short, 0), (long, 1)):
        data = dumps(value, compress=codec)
        layout = H.parse(data)
        assert layout["codecs"] == ["none", codec] and layout["pickle_codec"] == stream_codec
        assert all(block["codec"] == 1 for block in layout["blocks"])
        assert (layout["pickle_length"] == layout["pickle_raw_length"]) == (stream_codec == 0)
        got = loads(data)
        assert got["s"] == value["s"] and np.array_equal(got["a"], value["a"])


# -- mmap_mode ----------------------------------------------------------------------------
@pytest.fixture
def dumped(tmp_path):
    value = {
        "c": np.arange(1000, dtype=np.float64),
        "f": np.asfortranarray(np.arange(12, dtype=">i4").reshape(3, 4)),
        "view": np.arange(100)[::7],
        "s": structured_with_offsets(),
        "t": np.array(["2020-01-01", "NaT"], dtype="M8[us]"),
        "0d": np.array(7, dtype=np.int16),
        "empty": np.empty((0, 2)),
        "text": "not an array",
    }
    filename = tmp_path / "mapped.jl"
    dump(value, filename)
    return filename, value


@pytest.mark.parametrize("mode", [None, "r", "r+", "w+", "c"])
def test_mmap_modes_round_trip(dumped, mode):
    filename, value = dumped
    got = load(filename, mmap_mode=mode)
    assert got["text"] == "not an array"
    for key in ["c", "f", "view", "s", "t", "0d", "empty"]:
        expected = value[key] if key != "view" else np.ascontiguousarray(value[key])
        assert_same(got[key], expected, key)
        if mode is not None and expected.size:
            assert isinstance(got[key], np.memmap), key
            assert got[key].flags.writeable == (mode != "r"), key
        elif mode is None:
            assert type(got[key]) is np.ndarray, key
    assert got["f"].flags.f_contiguous


@pytest.mark.parametrize("compress", [0, "lz4"])
def test_read_only_arrays_come_back_as_the_mode_says(tmp_path, compress):
    """A read-only array (np.frombuffer, a memmap loaded with 'r' and dumped again) is not stuck read-only."""
    read_only = np.arange(6.0)
    read_only.flags.writeable = False
    filename = tmp_path / "ro.jl"
    dump({"a": np.arange(4)}, filename)
    mapped = load(filename, mmap_mode="r")["a"]
    value = {"ro": read_only, "frombuffer": np.frombuffer(bytes(range(16)), dtype="<u4"), "mapped": mapped}
    again = tmp_path / "again.jl"
    dump(value, again, compress=compress)
    for mode in [None, "r", "r+", "c"]:
        with (
            pytest.warns(UserWarning, match="compressed arrays cannot be memory-mapped")
            if compress and mode
            else contextlib.nullcontext()
        ):
            got = load(again, mmap_mode=mode)
        for key, array in got.items():
            np.testing.assert_array_equal(array, value[key])
            assert array.flags.writeable == (mode != "r" or bool(compress)), (mode, key)  # compressed: in memory
            if mode is not None and not compress:
                assert isinstance(array, np.memmap), (mode, key)
    assert loads(dumps(value, compress=compress))["ro"].flags.writeable


def test_mmap_r_is_read_only(dumped):
    filename, _ = dumped
    got = load(filename, mmap_mode="r")
    with pytest.raises(ValueError):
        got["c"][0] = 1.0


def test_mmap_r_plus_writes_persist(dumped):
    filename, value = dumped
    got = load(filename, mmap_mode="r+")
    got["c"][:3] = [-1.0, -2.0, -3.0]
    got["f"][0, 0] = 99
    got["c"].flush()
    del got
    again = load(filename, mmap_mode="r")
    assert again["c"][:4].tolist() == [-1.0, -2.0, -3.0, 3.0]
    assert again["f"][0, 0] == 99


def test_mmap_r_plus_writes_are_seen_by_a_plain_load(dumped):
    filename, _ = dumped
    got = load(filename, mmap_mode="r+")
    got["c"][0] = -1.0
    got["c"].flush()
    del got
    assert load(filename)["c"][0] == -1.0


def test_mmap_w_plus_behaves_like_r_plus_and_does_not_truncate(dumped):
    filename, value = dumped
    size = filename.stat().st_size
    got = load(filename, mmap_mode="w+")
    assert_same(got["c"], value["c"])  # not zeroed
    assert got["c"].mode == "r+"
    got["c"][5] = 123.0
    got["c"].flush()
    del got
    assert filename.stat().st_size == size
    assert load(filename, mmap_mode="r")["c"][5] == 123.0


def test_mmap_c_writes_do_not_persist(dumped):
    filename, value = dumped
    before = filename.read_bytes()
    got = load(filename, mmap_mode="c")
    got["c"][:] = 0.0
    assert got["c"].sum() == 0.0
    del got
    assert filename.read_bytes() == before
    assert_same(load(filename)["c"], value["c"])


def test_mmap_does_not_read_the_data(tmp_path):
    """mmap loads are O(1): the blocks are not read nor checksummed (a changed byte shows through)."""
    array = np.zeros(1 << 20, dtype=np.uint8)
    filename = tmp_path / "value.jl"
    dump({"head": np.arange(3), "a": array}, filename)
    block = H.parse(filename.read_bytes())["blocks"][1]
    assert block["raw_length"] == array.nbytes
    middle = block["offset"] + block["length"] // 2
    with open(filename, "r+b") as handle:
        handle.seek(middle)
        handle.write(b"\x01")
    got = load(filename, mmap_mode="r")
    assert got["a"][array.size // 2] == 1
    assert got["a"].sum() == 1
    with pytest.raises(CorruptFileError, match="block 1"):
        load(filename)


def test_mmap_from_a_file_object_warns_and_loads_in_memory(dumped):
    filename, value = dumped
    with open(filename, "rb") as handle:
        with pytest.warns(UserWarning, match="mmap_mode"):
            got = load(handle, mmap_mode="r")
    assert type(got["c"]) is np.ndarray
    assert_same(got["c"], value["c"])


def test_mmap_arrays_outlive_the_file_handle(dumped):
    filename, value = dumped
    got = load(filename, mmap_mode="r")
    os.replace(filename, str(filename) + ".moved")
    assert_same(got["c"], value["c"])


def test_mmap_many_arrays(tmp_path):
    value = [np.full(17, i, dtype=np.int32) for i in range(300)]
    filename = tmp_path / "many.jl"
    dump(value, filename)
    got = load(filename, mmap_mode="r")
    assert [int(a[0]) for a in got] == list(range(300))


# -- argument validation ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["x", "rw", "w", "R", 1, b"r"])
def test_bad_mmap_mode(dumped, mode):
    filename, _ = dumped
    with pytest.raises(ValueError, match="mmap_mode") as info:
        load(filename, mmap_mode=mode)
    assert repr(mode) in str(info.value)


@pytest.mark.parametrize(
    "compress",
    [
        -1,
        10,
        "nope",
        ("zlib", "x"),
        3.5,
        ("zlib", 3, 4),
        ("nope", 3),
        ("zlib", -1),
        ("zlib", 10),
        [("zlib", 3)],
        ("zlib", True),
        b"zlib",
    ],
)
def test_bad_compress(tmp_path, compress):
    filename = tmp_path / "value.jl"
    for call in (lambda: dump([1], filename, compress=compress), lambda: dumps([1], compress=compress)):
        with pytest.raises(ValueError) as info:
            call()
        assert repr(compress) in str(info.value)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("protocol", [0, 2, 4, 6, "5"])
def test_bad_protocol(tmp_path, protocol):
    with pytest.raises(ValueError, match="protocol") as info:
        dump([1], tmp_path / "value.jl", protocol=protocol)
    assert repr(protocol) in str(info.value)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("protocol", [None, 5, -1, pickle.HIGHEST_PROTOCOL])
def test_good_protocol(tmp_path, protocol):
    dump(np.arange(3), tmp_path / "value.jl", protocol=protocol)
    np.testing.assert_array_equal(load(tmp_path / "value.jl"), np.arange(3))


@pytest.mark.parametrize("filename", [3, None, 2.5, ["a.jl"]])
def test_bad_filename(filename):
    with pytest.raises(ValueError, match="filename") as info:
        dump([1], filename)
    assert repr(filename) in str(info.value)
    with pytest.raises(ValueError, match="filename"):
        load(filename)


def test_swapped_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="filename"):
        dump("value.jl", {"some": "object"})
    with pytest.raises(ValueError, match="filename"):
        dump("value.jl", np.arange(3))
    assert not os.listdir(tmp_path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.jl")


def test_loads_accepts_bytes_like():
    data = dumps({"a": np.arange(3)})
    for form in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(loads(form)["a"], np.arange(3))


# -- atomic writes ------------------------------------------------------------------------
class Unpicklable:
    """Fails when pickled, after the arrays before it were already handed over."""

    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


@pytest.mark.parametrize("compress", [0, 3])
def test_failed_dump_leaves_nothing(tmp_path, compress):
    value = [np.arange(1000), np.ones((50, 50))[::2], Unpicklable()]
    with pytest.raises(RuntimeError, match="cannot pickle"):
        dump(value, tmp_path / "value.jl", compress=compress)
    assert os.listdir(tmp_path) == []


def test_failed_dump_keeps_the_existing_file(tmp_path):
    filename = tmp_path / "value.jl"
    dump({"old": np.arange(5)}, filename)
    before = filename.read_bytes()
    with pytest.raises(RuntimeError):
        dump([np.arange(10**5), Unpicklable()], filename)
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a local lambda
        dump([np.arange(10), lambda x: x], filename)
    assert filename.read_bytes() == before
    assert os.listdir(tmp_path) == ["value.jl"]


def test_failed_dump_to_a_file_object_writes_nothing():
    stream = io.BytesIO()
    with pytest.raises(RuntimeError):
        dump([np.arange(10), Unpicklable()], stream)
    assert stream.getvalue() == b""


def test_interrupted_write_leaves_no_temporary(tmp_path, monkeypatch):
    """A failure while writing the blocks (disk full...) removes the temporary file."""
    real = _container._write_array
    calls = []

    def failing(write, array, checksum):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(write, array, checksum)

    monkeypatch.setattr(_container, "_write_array", failing)
    filename = tmp_path / "value.jl"
    with pytest.raises(OSError, match="No space"):
        dump([np.arange(10), np.arange(20), np.arange(30)], filename)
    assert os.listdir(tmp_path) == []


# -- compression --------------------------------------------------------------------------
def compressible_value():
    return {
        "ints": np.arange(200_000, dtype=np.int64) % 100,
        "smooth": np.sin(np.linspace(0, 20, 100_000)).astype(np.float32),
        "F": np.asfortranarray(np.arange(600, dtype=np.int16).reshape(20, 30)),
        "view": (np.arange(30_000, dtype=np.float64).reshape(100, 300))[::3, 1::2],
        "odd": np.array([b"abcdefg"] * 5000, dtype="S7"),
        "wide": np.array([b"w" * 300] * 50, dtype="S300"),  # itemsize above 255: no shuffle
        "structured": structured_with_offsets(),
        "big-endian": np.arange(1000, dtype=">f8"),
        "bool": np.arange(1001) % 3 == 0,
        "empty": np.empty((0, 5)),
        "0-d": np.array(2.5),
        "dt": np.arange("2000-01", "2010-01", dtype="M8[M]"),
        "text": "x" * 5000,
        "list": list(range(1000)),
    }


def expected_of(value):
    return {k: np.ascontiguousarray(v) if k == "view" else v for k, v in value.items()}


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_round_trips(tmp_path, codec):
    value = compressible_value()
    filename = tmp_path / "value.jl"
    dump(value, filename, compress=codec)
    assert H.parse(filename.read_bytes())["codecs"] == ["none", codec]
    assert_same(load(filename), expected_of(value))
    assert filename.stat().st_size < len(dumps(value)) / 2
    assert_same(loads(dumps(value, compress=codec)), expected_of(value))


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_and_level_round_trips(codec):
    value = {"a": np.arange(5000, dtype=np.int32) % 7, "b": np.linspace(0, 1, 3000)}
    levels = compressors.get_compressor(codec).levels
    for level in sorted({levels.start, levels.stop - 1, 3 if 3 in levels else levels.start}):
        data = dumps(value, compress=(codec, level))
        assert H.parse(data)["codecs"] == ["none", codec]
        assert_same(loads(data), value)
    assert_same(loads(dumps(value, compress=(codec, None))), value)


@pytest.mark.parametrize("compress", [True, 1, 3, 9, np.int64(5)])
def test_compress_true_and_levels(compress):
    value = compressible_value()
    data = dumps(value, compress=compress)
    assert H.parse(data)["codecs"] == ["none", "blosc-lz4"]
    assert len(data) < len(dumps(value)) / 2
    assert_same(loads(data), expected_of(value))


@pytest.mark.parametrize("compress", [False, 0, ("zlib", 0)])
def test_compress_off(compress):
    assert H.parse(dumps([np.arange(10)], compress=compress))["codecs"] == ["none"]


@pytest.mark.parametrize(
    "extension, codec",
    [
        (".z", "zlib"),
        (".gz", "gzip"),
        (".bz2", "bz2"),
        (".lzma", "lzma"),
        (".xz", "xz"),
        (".lz4", "lz4"),
        (".pkl", None),
        (".GZ", "gzip"),
    ],
)
def test_file_extension_selects_the_codec_as_joblib(tmp_path, extension, codec):
    filename = tmp_path / f"value{extension}"
    dump(np.arange(1000) % 5, filename)
    assert H.parse(filename.read_bytes())["codecs"] == (["none", codec] if codec else ["none"])
    np.testing.assert_array_equal(load(filename), np.arange(1000) % 5)
    dump(np.arange(10), filename, compress=False)  # an explicit False wins over the extension
    assert H.parse(filename.read_bytes())["codecs"] == ["none"]


def test_multi_chunk_blocks():
    """Blocks larger than a chunk, with item sizes that do not divide the chunk size."""
    rng = np.random.default_rng(1)
    value = {
        "f8": np.cumsum(rng.standard_normal(400_000)),  # 3.2 MB
        "s3": np.frombuffer(rng.integers(0, 4, 3_000_000, dtype=np.uint8).tobytes(), dtype="S3"),
        "s24": np.zeros(200_000, dtype=structured_with_offsets().dtype),
    }
    for compress in ("lz4", ("zlib", 1)):
        data = dumps(value, compress=compress)
        assert_same(loads(data), value)


def test_compressed_dump_is_deterministic():
    value = compressible_value()
    for codec in CODECS:
        assert dumps(value, compress=codec) == dumps(value, compress=codec), codec


def test_compressed_and_mmap_mode_warns_and_loads_in_memory(tmp_path):
    value = compressible_value()
    filename = tmp_path / "value.jl"
    dump(value, filename, compress=3)
    for mode in ["r", "r+", "c"]:
        with pytest.warns(UserWarning, match="compressed"):
            got = load(filename, mmap_mode=mode)
        for key, array in got.items():
            if isinstance(array, np.ndarray):
                assert type(array) is np.ndarray, key
        assert_same(got, expected_of(value))


class XorCompressor(joblite.CompressorBase):
    """A trivial reversible codec: a tag byte, then every byte XOR the level."""

    name = "xor-test"
    default_level = 5
    levels = range(1, 10)

    def compress(self, data, level):
        array = np.frombuffer(data, dtype=np.uint8) ^ np.uint8(level * 17)
        return bytes([level]) + array.tobytes()

    def decompress(self, data, raw_length):
        data = bytes(data)
        if not data:
            raise ValueError("empty chunk")
        return (np.frombuffer(data[1:], dtype=np.uint8) ^ np.uint8(data[0] * 17)).tobytes()


@pytest.fixture
def xor_codec():
    joblite.register_compressor("xor-test", XorCompressor(), force=True)
    yield "xor-test"
    compressors._COMPRESSORS.pop("xor-test", None)


def test_register_compressor(tmp_path, xor_codec):
    value = compressible_value()
    for compress in (xor_codec, (xor_codec, 2)):
        filename = tmp_path / "value.jl"
        dump(value, filename, compress=compress)
        data = filename.read_bytes()
        assert H.parse(data)["codecs"] == ["none", "xor-test"]
        assert_same(load(filename), expected_of(value))
        # the codec is really used: the raw bytes of the int array are not in the file
        assert (np.arange(200_000, dtype=np.int64) % 100)[:64].tobytes() not in data
    with pytest.raises(ValueError, match="already registered"):
        joblite.register_compressor("xor-test", XorCompressor())


def test_unregistered_codec_on_load(xor_codec):
    data = dumps({"a": np.arange(100)}, compress=xor_codec)
    compressors._COMPRESSORS.pop(xor_codec)
    with pytest.raises(CorruptFileError, match="xor-test"):
        loads(data)


def test_register_compressor_validates():
    with pytest.raises(TypeError):
        joblite.register_compressor("thing", object())
    with pytest.raises(ValueError):
        joblite.register_compressor("other-name", XorCompressor())


def test_chunk_size_is_read_from_the_header():
    """The header records the chunk size; a reader uses it rather than its own default."""
    raw = np.arange(100_000, dtype=np.int64) % 11
    chunk = 4096
    frame = _blocks.compress_block(memoryview(raw).cast("B"), 8, "zlib", 3, chunk_size=chunk)
    stream = dumps_stream_for_one_array(raw)
    data = H.build(stream, [(frame, raw.nbytes, 1, 8)], codecs=("none", "zlib"), chunk_size=chunk)
    np.testing.assert_array_equal(loads(data), raw)


def dumps_stream_for_one_array(array):
    """The pickle stream joblite writes for `array` alone (its block is the first)."""
    data = dumps(array)
    return data[slice(*H.parse(data)["pickle"])]


# -- safe loading -------------------------------------------------------------------------
class Thing:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return type(other) is Thing and other.x == self.x


THING = f"{Thing.__module__}.{Thing.__qualname__}"


class SystemCall:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


class EvalCall:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return builtins.eval, (f"open({str(self.path)!r}, 'w').close()",)


def safe_value():
    return {
        "list": [1, 2.5, "x", b"y", None, True, (1, 2), {3}, frozenset({4}), 1 + 1j, bytearray(b"z")],
        "arrays": [
            np.arange(5),
            np.asfortranarray(np.ones((2, 3))),
            np.arange(10)[::2],
            structured_with_offsets(),
            np.array(["a", "b"]),
            np.array([1, "a"], dtype=object),
            np.matrix([[1, 2]]),
            np.array(1.5),
        ],
        "scalars": [
            np.float64(2.5),
            np.int8(-1),
            np.datetime64("2020-01-01"),
            np.str_("s"),
            np.bool_(True),
            np.timedelta64(5, "s"),
            np.complex64(1j),
        ],
        "dtypes": [np.dtype("<f4"), np.dtype([("a", ">i8", (2,))]), np.float32],
        "datetime": [
            datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
            datetime.date(2020, 1, 1),
            datetime.time(1, 2, 3),
            datetime.timedelta(1.5),
        ],
        "decimal": [decimal.Decimal("1.10"), decimal.Decimal("-Infinity"), fractions.Fraction(1, 3), uuid.UUID(int=7)],
        "path": [pathlib.Path("/a/b"), pathlib.PurePosixPath("c/d"), pathlib.PureWindowsPath("C:/x")],
        "collections": [
            collections.OrderedDict([("z", 1), ("a", 2)]),
            collections.defaultdict(list, k=[1]),
            collections.Counter("abca"),
            collections.deque([1, 2]),
            collections.ChainMap({1: 2}, {3: 4}),
        ],
        "range": [range(5), slice(1, 2)],
    }


@pytest.mark.parametrize("allowed", ["numpy", "safe", [], [THING]])
def test_safe_loading_admits_plain_data(tmp_path, allowed):
    value = safe_value()
    filename = tmp_path / "value.jl"
    dump(value, filename)
    for got in (
        load(filename, allowed=allowed),
        loads(dumps(value), allowed=allowed),
        load(filename, mmap_mode="r", allowed=allowed),
    ):
        assert got["list"] == value["list"]
        for a, b in zip(got["arrays"], value["arrays"]):
            assert type(a) in (type(b), np.memmap)
            np.testing.assert_array_equal(a, b)
        assert got["scalars"] == value["scalars"]
        assert [type(s) for s in got["scalars"]] == [type(s) for s in value["scalars"]]
        for key in ["dtypes", "datetime", "decimal", "path", "collections", "range"]:
            assert got[key] == value[key], key
        assert type(got["collections"][0]) is collections.OrderedDict


@pytest.mark.parametrize(
    "array", [np.ma.array([1, 2], mask=[0, 1]), np.rec.array([(1, 2.0)], dtype="i4,f8")], ids=["masked", "recarray"]
)
def test_safe_loading_admits_numpy_array_subclasses(array):
    got = loads(dumps(array), allowed="numpy")
    assert type(got) is type(array)


@pytest.mark.parametrize("allowed", ["numpy", "safe", ["collections.OrderedDict"]])
def test_safe_loading_refuses_a_user_class(allowed):
    data = dumps({"a": np.arange(3), "thing": Thing(1)})
    with pytest.raises(joblite.UnsafeLoadError) as info:
        loads(data, allowed=allowed)
    assert THING in str(info.value)
    assert (info.value.module, info.value.name) == (Thing.__module__, "Thing")
    assert not isinstance(info.value, CorruptFileError)


def test_safe_loading_refuses_an_ndarray_subclass():
    data = dumps(np.arange(3).view(MyArray))
    with pytest.raises(joblite.UnsafeLoadError, match="MyArray"):
        loads(data, allowed="numpy")
    assert type(loads(data, allowed=[f"{MyArray.__module__}.MyArray"])) is MyArray


@pytest.mark.parametrize("attack", [SystemCall, EvalCall])
def test_safe_loading_runs_nothing(tmp_path, attack):
    marker = tmp_path / "pwned"
    filename = tmp_path / "evil.jl"
    dump({"a": np.arange(3), "payload": [attack(marker)]}, filename)
    assert not marker.exists()
    for allowed in ("numpy", "safe", [THING]):
        with pytest.raises(joblite.UnsafeLoadError) as info:
            load(filename, allowed=allowed)
        refused = f"{info.value.module}.{info.value.name}"
        assert refused in ("posix.system", "nt.system", "os.system", "builtins.eval")
        assert refused in str(info.value)
        assert not marker.exists()
    # and the full-pickle default does run it: what allowed= protects against
    load(filename)
    assert marker.exists()


def test_safe_loading_admits_listed_names():
    value = [Thing(1), {"t": Thing(2)}, np.arange(2)]
    data = dumps(value)
    for allowed in ([THING], (THING,), {THING}, [f"{Thing.__module__}.*"]):
        got = loads(data, allowed=allowed)
        assert got[:2] == value[:2]
    assert loads(data)[:2] == value[:2]  # None: full pickle


@pytest.mark.parametrize("allowed", ["bad", "", "full", [3], ["nodots"], [None], [b"a.b"], ["a b.c"], 3])
def test_bad_allowed(dumped, allowed):
    filename, _ = dumped
    with pytest.raises((ValueError, TypeError)) as info:
        load(filename, allowed=allowed)
    if isinstance(allowed, str):
        assert type(info.value) is ValueError and repr(allowed) in str(info.value)
    if isinstance(allowed, list):
        assert type(info.value) is ValueError and repr(allowed[0]) in str(info.value)
    with pytest.raises((ValueError, TypeError)):
        loads(dumps(1), allowed=allowed)


@pytest.mark.parametrize(
    "module, name",
    [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("subprocess", "Popen"),
        ("numpy", "load"),
        ("numpy", "save"),
        ("numpy", "fromfile"),
        ("joblite.persistence", "load"),
        ("joblite", "load"),
        ("pickle", "loads"),
        ("shutil", "rmtree"),
        ("io", "open"),
        ("numpy.lib.format", "read_array"),
    ],
)
def test_crafted_globals_are_refused(module, name):
    """Hand-written pickle streams (valid checksums) naming dangerous globals."""
    data = H.with_stream(H.program(H.call(module, name, "x")))
    with pytest.raises(joblite.UnsafeLoadError) as info:
        loads(data, allowed="numpy")
    assert f"{module}.{name}" in str(info.value)


def _run_isolated(code):
    """Run `code` in a fresh interpreter (an attack that works could damage this one)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_PARENT] + sys.path))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_dotted_names_cannot_escape_an_admitted_module(tmp_path):
    marker = tmp_path / "pwned"
    stream = H.program(
        # sys.modules['datetime'] = sys.modules.get('builtins'), then 'datetime'.eval(...)
        H.stack_global("datetime", "sys.modules.__setitem__")
        + H.unicode("datetime")
        + H.call("datetime", "sys.modules.get", "builtins")
        + pickle.TUPLE2
        + pickle.REDUCE,
        H.call("datetime", "eval", f"open({str(marker)!r}, 'w').close()"),
    )
    filename = tmp_path / "evil.jl"
    filename.write_bytes(H.with_stream(stream))
    result = _run_isolated(
        textwrap.dedent(f"""
        import joblite
        try:
            joblite.load({str(filename)!r}, allowed="numpy")
        except joblite.UnsafeLoadError as exc:
            print("refused", exc)
    """)
    )
    assert not marker.exists(), result.stdout + result.stderr
    assert "refused" in result.stdout, result.stdout + result.stderr


def test_safe_loading_cannot_write_files(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    created = tmp_path / "created.bin"
    for path in (victim, created):
        data = H.with_stream(H.program(H.call("numpy", "memmap", str(path), "uint8", "w+", 0, (4,))))
        try:
            loads(data, allowed="numpy")
        except joblite.UnsafeLoadError:
            pass
    assert victim.read_text() == "precious\n"
    assert not created.exists()


def test_safe_loading_refuses_before_anything_runs(tmp_path):
    """Globals admitted earlier in the stream have run, but nothing after the refused one."""
    marker = tmp_path / "pwned"
    stream = H.program(H.call("posix", "system", f"touch {marker}"))
    with pytest.raises(joblite.UnsafeLoadError):
        loads(H.with_stream(stream), allowed="safe")
    assert not marker.exists()


@pytest.mark.parametrize("compress", [True, ("zlib", 1), "bz2"])
def test_compressed_views_are_written_without_a_full_copy(compress):
    """A non-contiguous view is compressed a chunk at a time: same bytes as its copy, no full copy."""
    import tracemalloc

    base = np.random.default_rng(0).integers(0, 300, (4096, 2048)).astype(">i4")  # 32 MiB
    view = base[:, ::2]  # 16 MiB, not contiguous: 8 chunks of the 'blosc-*' codecs
    copy = np.ascontiguousarray(view)

    def peak_of(array):
        tracemalloc.start()
        try:
            data = dumps(array, compress=compress)
            return data, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    expected, copy_peak = peak_of(copy)
    data, view_peak = peak_of(view)
    assert data == expected
    assert view_peak < copy_peak + view.nbytes // 2  # a full copy would add view.nbytes
    assert np.array_equal(loads(data), view)
