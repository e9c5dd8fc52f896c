"""Reading files written by ``joblib.dump``: ``joblite._joblib_format``.

Every file here is written by joblib during the test run (joblib is in the
``test`` extra); no binary file from elsewhere is committed.  The results are
compared with what ``joblib.load`` gives for the same file.
"""

import contextlib
import datetime
import decimal
import errno
import io
import os
import pickle
import signal
import sys
import threading
import warnings
import zlib

import numpy as np
import pytest

joblib = pytest.importorskip("joblib")

from joblite import _joblib_format  # noqa: E402
from joblite._joblib_format import (  # noqa: E402
    DETECT_BYTES,
    JoblibFormatError,
    JoblibLegacyFormatError,
    detect,
    load_joblib,
)
from joblite._safe_unpickle import UnsafeLoadError, resolve_allowed  # noqa: E402

try:
    import lz4.frame  # noqa: F401

    HAVE_LZ4 = True
except ImportError:  # pragma: no cover
    HAVE_LZ4 = False

# (compress argument of joblib.dump, what detect() must say)
COMPRESSIONS = [
    (0, "pickle"),
    (("zlib", 3), "zlib"),
    (("gzip", 3), "gzip"),
    (("bz2", 3), "bz2"),
    (("lzma", 3), "lzma"),
    (("xz", 3), "xz"),
    pytest.param(("lz4", 3), "lz4", marks=pytest.mark.skipif(not HAVE_LZ4, reason="no lz4")),
    (3, "zlib"),
    (True, "zlib"),
]
COMPRESSED = [c for c in COMPRESSIONS if not (isinstance(c, tuple) and c[0] == 0)]
SAFE = resolve_allowed("numpy")

SIDE_EFFECTS = []


def _record(*args):
    SIDE_EFFECTS.append(args)
    return args


class RunsOnReduce:
    """Unpickling it calls ``_record``: a stand-in for code a file should not run."""

    def __reduce__(self):
        return (_record, ("reduce ran",))


class RunsOnSetstate:
    """Unpickling it calls ``__setstate__``, which records that it ran."""

    def __init__(self):
        self.payload = np.arange(3)

    def __setstate__(self, state):
        SIDE_EFFECTS.append("setstate ran")
        self.__dict__.update(state)


class _Hang(BaseException):
    """Raised by :func:`deadline`; a BaseException so that no ``except Exception`` hides it."""


@contextlib.contextmanager
def deadline(seconds):
    """Fail instead of hanging (Unix main thread; elsewhere no guard)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise _Hang(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_path(path, **kwargs):
    # arrays are mapped from the file object itself: writable for 'r+'
    with open(path, "r+b" if kwargs.get("mmap_mode") in ("r+", "w+") else "rb") as f:
        return load_joblib(f, str(path), **kwargs)


def load_bytes(data, **kwargs):
    return load_joblib(io.BytesIO(data), None, **kwargs)


def joblib_load(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return joblib.load(str(path), **kwargs)


def dump(value, path, compress=0, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # np.matrix PendingDeprecationWarning
        joblib.dump(value, str(path), compress=compress, **kwargs)
    return path


def assert_same(mine, ref, memmap=None):
    """`mine` equals joblib's `ref`: same types, dtypes, shapes, memory order and values."""
    if isinstance(ref, dict):
        assert type(mine) is type(ref) and list(mine) == list(ref)
        for key in ref:
            assert_same(mine[key], ref[key], memmap)
    elif isinstance(ref, (list, tuple)):
        assert type(mine) is type(ref) and len(mine) == len(ref)
        for a, b in zip(mine, ref):
            assert_same(a, b, memmap)
    elif isinstance(ref, np.ndarray):
        assert isinstance(mine, np.ndarray)
        if isinstance(ref, np.matrix):
            assert isinstance(mine, np.matrix)
        if memmap is not None and not ref.dtype.hasobject:
            assert isinstance(mine, np.memmap) is memmap
        assert mine.dtype == ref.dtype and mine.dtype.byteorder == ref.dtype.byteorder
        assert mine.shape == ref.shape
        assert mine.flags.c_contiguous == ref.flags.c_contiguous
        assert mine.flags.f_contiguous == ref.flags.f_contiguous
        if ref.dtype.names:
            # field by field: joblib leaves the padding bytes of structured arrays unset
            for name in ref.dtype.names:
                assert_same(np.asarray(mine[name]), np.asarray(ref[name]))
        elif ref.dtype.hasobject:
            assert mine.ravel().tolist() == ref.ravel().tolist()
        else:
            assert mine.tobytes() == ref.tobytes()
    elif "pandas" in sys.modules and isinstance(ref, sys.modules["pandas"].DataFrame):
        sys.modules["pandas"].testing.assert_frame_equal(mine, ref)
    else:
        assert type(mine) is type(ref) and mine == ref


def arrays_of_many_kinds():
    rng = np.random.default_rng(0)
    return {
        "float64": rng.random(1000),
        "int8": np.arange(-100, 100, dtype=np.int8),
        "big_endian": np.arange(50, dtype=">i4"),
        "big_endian_float": rng.random((4, 5)).astype(">f8"),
        "float16": np.linspace(0, 1, 7, dtype=np.float16),
        "complex": (rng.random(5) + 1j * rng.random(5)),
        "bool": rng.random(9) > 0.5,
        "structured": np.array([(1, 2.5, b"ab"), (3, 4.5, b"cd")], dtype=[("i", "<i4"), ("f", "<f8"), ("s", "S2")]),
        "structured_big": np.array([(1, 2.0), (3, 4.5)], dtype=[("x", ">i4"), ("y", ">f8")]),
        "structured_mixed": np.ones(3, dtype=[("x", "<i4"), ("y", ">f8")]),
        "datetime64": np.arange("2020-01-01", "2020-01-20", dtype="M8[D]"),
        "timedelta64": np.arange(6, dtype="m8[ms]"),
        "unicode": np.array(["a", "bcd", "é€"]),
        "object": np.array([1, "two", None, 3.5, (4,)], dtype=object),
        "object_2d": np.array([[1, "a"], [None, {"k": 2}]], dtype=object),
        "fortran": np.asfortranarray(rng.random((6, 4))),
        "fortran_3d": np.asfortranarray(np.arange(60, dtype=np.int16).reshape(3, 4, 5)),
        "zero_d": np.array(2.5),
        "zero_d_int": np.array(7, dtype=np.int64),
        "empty": np.zeros(0),
        "empty_2d": np.zeros((0, 3), dtype=np.float32),
        "empty_2d_b": np.zeros((3, 0), dtype=">i2"),
        "non_contiguous": np.arange(100.0).reshape(10, 10)[::2, 1::3],
        "void": np.array([b"\x00\x01\x02", b"abc"], dtype="V3"),
    }


def nested_object():
    return {
        "name": "experiment",
        "arrays": [np.arange(10), np.ones((3, 3)), {"deep": [np.zeros(4, dtype=np.uint16), "x"]}],
        "tuple": (1, 2.0, np.float64(3.5), np.int32(4)),
        "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
        "decimal": decimal.Decimal("1.25"),
        "none": None,
        "bytes": b"\x00\x01",
        "set": {1, 2, 3},
    }


# --------------------------------------------------------------------------------------------
# detect


@pytest.mark.parametrize("compress, kind", COMPRESSIONS)
def test_detect_files_written_by_joblib(tmp_path, compress, kind):
    path = dump({"a": np.arange(10)}, tmp_path / "x.pkl", compress)
    head = path.read_bytes()[:DETECT_BYTES]
    assert detect(head) == kind
    assert detect(path.read_bytes()[:64]) == kind  # longer heads are fine


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_detect_pickle_protocols(tmp_path, protocol):
    path = dump(np.arange(3), tmp_path / "x.pkl", protocol=protocol)
    assert detect(path.read_bytes()[:8]) == "pickle"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x80",
        b"\x80\x09",
        b"\x80\x00",
        b"\x89JOBLITE",
        b"\x93NUMPY\x01\x00",
        b"xyz",
        b"x",
        b"\x78\x00",
        b"hello world",
        b"BZ",
        b"BZx9",
        b"PK\x03\x04",
        b"\x1f\x8b\x07",
        b"\xfd7zXZ\x01",
        b"\x00" * 8,
    ],
)
def test_detect_other_bytes(head):
    assert detect(head) is None


def test_detect_legacy_prefix_and_refusal():
    head = b"ZF0x1a3" + b" " * 12 + zlib.compress(b"whatever")
    assert detect(head) == "compat"
    with pytest.raises(JoblibLegacyFormatError, match="joblib < 0.10"):
        load_bytes(head)


def test_legacy_array_wrapper_refused():
    from joblib.numpy_pickle import NDArrayWrapper

    data = pickle.dumps({"a": NDArrayWrapper("x.pkl_01.npy", np.ndarray)}, protocol=2)
    with pytest.raises(JoblibLegacyFormatError, match="not supported"):
        load_bytes(data)
    with pytest.raises(ValueError):
        load_bytes(data, admitted=SAFE)


def test_not_a_joblib_file(tmp_path):
    with pytest.raises(JoblibFormatError, match="not a joblib file"):
        load_bytes(b"hello world, this is text")
    with pytest.raises(JoblibFormatError, match="not a joblib file"):
        load_bytes(b"")
    # a valid gzip stream of something that is not a pickle
    import gzip

    with pytest.raises(JoblibFormatError):
        load_bytes(gzip.compress(b"\x01\x02 no pickle here" * 10))
    with pytest.raises(JoblibFormatError):
        load_bytes(b"\x80\x04" + os.urandom(64))


# --------------------------------------------------------------------------------------------
# reading: every compression, many dtypes, compared with joblib.load


@pytest.mark.parametrize("compress, kind", COMPRESSIONS)
def test_arrays_of_many_dtypes(tmp_path, compress, kind):
    value = arrays_of_many_kinds()
    path = dump(value, tmp_path / "x.pkl", compress)
    mine = load_path(path)
    assert_same(mine, joblib_load(path), memmap=False)
    # joblib converts arrays read into memory to the native byte order
    assert mine["big_endian"].dtype == np.dtype("=i4")
    assert mine["structured_big"].dtype == np.dtype([("x", "=i4"), ("y", "=f8")])
    assert mine["structured_mixed"].dtype == value["structured_mixed"].dtype  # kept, as joblib
    for key, array in value.items():
        if array.dtype.hasobject:
            assert mine[key].ravel().tolist() == array.ravel().tolist()
        else:
            np.testing.assert_array_equal(mine[key], array)


@pytest.mark.parametrize("compress, kind", COMPRESSIONS)
def test_nested_containers_and_bytesio(tmp_path, compress, kind):
    value = nested_object()
    path = dump(value, tmp_path / "x.pkl", compress)
    assert_same(load_path(path), joblib_load(path))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joblib.dump(value, buffer, compress=compress)
    buffer.seek(0)
    assert detect(buffer.getvalue()[:DETECT_BYTES]) == kind
    assert_same(load_joblib(buffer, None), joblib_load(path))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_pickle_protocols(tmp_path, protocol):
    value = {
        "a": np.arange(20, dtype=">f4"),
        "o": np.array([None, "x"], dtype=object),
        "f": np.asfortranarray(np.ones((3, 2))),
        "s": {"set"},
        "t": (1, 2),
    }
    path = dump(value, tmp_path / "x.pkl", protocol=protocol)
    assert_same(load_path(path), joblib_load(path))
    mapped = load_path(path, mmap_mode="r")
    assert isinstance(mapped["a"], np.memmap) and mapped["a"].dtype == np.dtype(">f4")
    assert_same(mapped, joblib_load(path, mmap_mode="r"), memmap=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joblib.dump(value, str(tmp_path / "y.pkl"), compress=("zlib", 1), protocol=protocol)
    assert_same(load_path(tmp_path / "y.pkl"), joblib_load(tmp_path / "y.pkl"))


@pytest.mark.parametrize("compress, kind", [(0, "pickle"), (("zlib", 3), "zlib")])
def test_matrix_keeps_its_type(tmp_path, compress, kind):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        value = {"m": np.matrix([[1.0, 2.0], [3.0, 4.0]]), "a": np.arange(3)}
    path = dump(value, tmp_path / "x.pkl", compress)
    mine = load_path(path)
    # joblib 1.6 under numpy 2 returns a plain ndarray here (it rebuilds the subclass
    # through __array_prepare__, which numpy 2 removed); we keep the matrix.
    assert type(mine["m"]) is np.matrix
    np.testing.assert_array_equal(mine["m"], value["m"])
    if compress == 0:
        mapped = load_path(path, mmap_mode="r")
        assert isinstance(mapped["m"], np.matrix)
        assert isinstance(mapped["m"].base, np.memmap)
        np.testing.assert_array_equal(mapped["m"], value["m"])
        mine = load_path(path, admitted=SAFE)
        assert type(mine["m"]) is np.matrix


@pytest.mark.parametrize("compress, kind", [(0, "pickle"), (("lzma", 3), "lzma")])
def test_memmap_source(tmp_path, compress, kind):
    source = np.memmap(tmp_path / "src.dat", dtype=np.float32, mode="w+", shape=(5, 7))
    source[:] = np.arange(35).reshape(5, 7)
    source.flush()
    path = dump({"mm": source, "view": source[1:3]}, tmp_path / "x.pkl", compress)
    mine = load_path(path)
    assert type(mine["mm"]) is np.ndarray  # as joblib: a plain array unless memmapped
    assert_same(mine, joblib_load(path), memmap=False)
    np.testing.assert_array_equal(mine["mm"], source)
    if compress == 0:
        mapped = load_path(path, mmap_mode="r")
        assert isinstance(mapped["mm"], np.memmap)
        np.testing.assert_array_equal(mapped["view"], source[1:3])


def test_pandas_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "x": np.arange(50, dtype=np.float64),
            "i": np.arange(50, dtype=np.int32),
            "s": [f"row{i}" for i in range(50)],
            "c": pd.Categorical(["a", "b"] * 25),
            "t": pd.date_range("2024-01-01", periods=50, freq="h"),
        }
    )
    for compress in (0, ("zlib", 3)):
        path = dump({"frame": frame}, tmp_path / f"x{compress!r}.pkl", compress)
        mine = load_path(path)
        pd.testing.assert_frame_equal(mine["frame"], frame)
        pd.testing.assert_frame_equal(mine["frame"], joblib_load(path)["frame"])
    mapped = load_path(tmp_path / "x0.pkl", mmap_mode="r")["frame"]
    pd.testing.assert_frame_equal(mapped, joblib_load(tmp_path / "x0.pkl", mmap_mode="r")["frame"])
    assert any(isinstance(block.values, np.memmap) for block in mapped._mgr.blocks)
    for column in frame:
        np.testing.assert_array_equal(np.asarray(mapped[column]), np.asarray(frame[column]))
    with pytest.raises(UnsafeLoadError, match="pandas"):
        load_path(tmp_path / "x0.pkl", admitted=SAFE)


def test_large_arrays_cross_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(_joblib_format.streams, "_CHUNK", 4096)
    rng = np.random.default_rng(1)
    value = {
        "a": rng.random(30001),
        "f": np.asfortranarray(rng.random((301, 77))),
        "b": rng.integers(0, 100, 50000).astype(">i8"),
        "s": "x" * 20000,
        "bytes": os.urandom(10000),
    }
    for compress in (0, ("zlib", 1), ("bz2", 1), ("xz", 1)) + ((("lz4", 1),) if HAVE_LZ4 else ()):
        path = dump(value, tmp_path / "x.pkl", compress)
        assert_same(load_path(path), joblib_load(path))
        assert_same(load_bytes(path.read_bytes()), joblib_load(path))


def test_byte_order_options(tmp_path):
    value = {"b": np.arange(10, dtype=">i8")}
    path = dump(value, tmp_path / "x.pkl")
    assert load_path(path)["b"].dtype == np.dtype("=i8")
    kept = load_path(path, ensure_native_byte_order=False)["b"]
    assert kept.dtype == np.dtype(">i8")
    np.testing.assert_array_equal(kept, value["b"])
    with pytest.raises(ValueError, match="ensure_native_byte_order"):
        load_path(path, mmap_mode="r", ensure_native_byte_order=True)


def test_unaligned_arrays_of_older_joblib(tmp_path):
    """A dump into a file object without tell() has no alignment padding (as joblib < 1.2)."""

    class NoTell(io.RawIOBase):
        def __init__(self):
            self.parts = []

        def writable(self):
            return True

        def write(self, data):
            self.parts.append(bytes(data))
            return len(data)

        def tell(self):
            raise io.UnsupportedOperation("no tell")

    sink = NoTell()
    value = {"k": "abc", "a": np.arange(13, dtype=np.float64), "b": np.arange(5, dtype=np.int8)}
    joblib.dump(value, sink)
    path = tmp_path / "old.pkl"
    path.write_bytes(b"".join(sink.parts))
    assert_same(load_path(path), joblib_load(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mapped = load_path(path, mmap_mode="r")
    assert isinstance(mapped["a"], np.memmap)
    np.testing.assert_array_equal(mapped["a"], value["a"])
    assert any("aligned" in str(w.message) for w in caught)


# --------------------------------------------------------------------------------------------
# memmapping


def test_mmap_r_gives_aligned_read_only_memmaps(tmp_path):
    value = arrays_of_many_kinds()
    path = dump(value, tmp_path / "x.pkl")
    mine = load_path(path, mmap_mode="r")
    assert_same(mine, joblib_load(path, mmap_mode="r"), memmap=True)
    for key, array in mine.items():
        if array.dtype.hasobject:
            assert not isinstance(array, np.memmap)  # joblib never maps object arrays
            continue
        assert isinstance(array, np.memmap) and array.mode == "r"
        assert not array.flags.writeable
        assert array.__array_interface__["data"][0] % 16 == 0
        assert array.dtype == value[key].dtype  # memmaps keep the file's byte order
        np.testing.assert_array_equal(array, value[key])
    assert mine["fortran"].flags.f_contiguous


def test_mmap_c_copy_on_write(tmp_path):
    path = dump({"a": np.arange(100.0)}, tmp_path / "x.pkl")
    before = path.read_bytes()
    mapped = load_path(path, mmap_mode="c")
    assert isinstance(mapped["a"], np.memmap)
    mapped["a"][:] = -1.0
    del mapped
    assert path.read_bytes() == before
    np.testing.assert_array_equal(load_path(path)["a"], np.arange(100.0))


@pytest.mark.parametrize("mode", ["r+", "w+"])
def test_mmap_r_plus_writes_through(tmp_path, mode):
    path = dump({"a": np.arange(100.0), "b": np.arange(7)}, tmp_path / "x.pkl")
    size = path.stat().st_size
    mapped = load_path(path, mmap_mode=mode)
    assert isinstance(mapped["a"], np.memmap) and mapped["a"].mode == "r+"  # w+ never truncates
    np.testing.assert_array_equal(mapped["a"], np.arange(100.0))
    mapped["a"][:3] = 42.0
    mapped["a"].flush()
    del mapped
    assert path.stat().st_size == size
    again = load_path(path)
    np.testing.assert_array_equal(again["a"][:4], [42.0, 42.0, 42.0, 3.0])
    np.testing.assert_array_equal(again["b"], np.arange(7))


@pytest.mark.parametrize("compress, kind", COMPRESSED)
def test_mmap_on_compressed_file_warns_and_reads(tmp_path, compress, kind):
    value = {"a": np.arange(20.0), "big": np.arange(6, dtype=">i4")}
    path = dump(value, tmp_path / "x.pkl", compress)
    with pytest.warns(UserWarning, match="compressed"):
        mine = load_path(path, mmap_mode="r")
    assert type(mine["a"]) is np.ndarray and type(mine["big"]) is np.ndarray
    assert_same(mine, joblib_load(path, mmap_mode="r"), memmap=False)
    assert mine["big"].dtype == np.dtype(">i4")  # as joblib: no byte-order change with a mmap_mode


def test_mmap_on_bytesio_warns(tmp_path):
    path = dump({"a": np.arange(5)}, tmp_path / "x.pkl")
    with pytest.warns(UserWarning, match="mmap_mode"):
        mine = load_bytes(path.read_bytes(), mmap_mode="r")
    assert type(mine["a"]) is np.ndarray
    np.testing.assert_array_equal(mine["a"], np.arange(5))


def test_bad_mmap_mode(tmp_path):
    path = dump({"a": np.arange(5)}, tmp_path / "x.pkl")
    with pytest.raises(ValueError, match="mmap_mode"):
        load_path(path, mmap_mode="rw")


# --------------------------------------------------------------------------------------------
# safe loading


def _dump_with(tmp_path, name, value, compress=0):
    return dump(value, tmp_path / name, compress)


@pytest.mark.parametrize("compress, kind", [(0, "pickle"), (("zlib", 3), "zlib"), (("xz", 3), "xz")])
def test_safe_loading_admits_arrays_and_containers(tmp_path, compress, kind):
    value = dict(arrays_of_many_kinds(), nested=nested_object())
    path = dump(value, tmp_path / "x.pkl", compress)
    assert_same(load_path(path, admitted=SAFE), joblib_load(path))
    if compress == 0:
        assert_same(load_path(path, admitted=SAFE, mmap_mode="r"), joblib_load(path, mmap_mode="r"))


@pytest.mark.parametrize("compress, kind", [(0, "pickle"), (("gzip", 3), "gzip")])
@pytest.mark.parametrize(
    "make",
    [
        lambda: {"a": np.arange(3), "evil": RunsOnReduce()},
        lambda: [np.ones(2), RunsOnSetstate()],
        lambda: {"obj": np.array([1, RunsOnReduce()], dtype=object)},  # inside a nested stream
        lambda: {"obj": np.array([RunsOnSetstate(), None], dtype=object)},
    ],
    ids=["reduce", "setstate", "object-array-reduce", "object-array-setstate"],
)
def test_safe_loading_refuses_other_globals_before_running_them(tmp_path, compress, kind, make):
    path = dump(make(), tmp_path / "x.pkl", compress)
    SIDE_EFFECTS.clear()
    with pytest.raises(UnsafeLoadError) as info:
        load_path(path, admitted=SAFE)
    assert SIDE_EFFECTS == []
    assert __name__.rsplit(".", 1)[-1] in info.value.module
    assert str(path) in str(info.value)
    # with the full pickle (the default) or the name admitted, the same file loads and runs
    load_path(path)
    assert SIDE_EFFECTS
    SIDE_EFFECTS.clear()
    names = [f"{info.value.module}.{info.value.name}"]
    load_path(path, admitted=resolve_allowed(names))
    assert SIDE_EFFECTS


def test_safe_loading_refuses_dotted_names_through_admitted_modules():
    """('datetime', 'sys.exit') would reach sys through a whole-module admission."""

    def global_ref(module, name):
        out = b""
        for text in (module, name):
            raw = text.encode()
            out += b"\x8c" + bytes([len(raw)]) + raw
        return out + b"\x93"

    stream = b"\x80\x04" + global_ref("datetime", "sys.exit") + b"K\x00\x85R."
    with pytest.raises(UnsafeLoadError, match="sys.exit"):
        load_bytes(stream, admitted=SAFE)
    stream = b"\x80\x04" + global_ref("numpy.dtypes", "np.lib.format.os.system") + b"\x8c\x00\x85R."
    with pytest.raises(UnsafeLoadError):
        load_bytes(stream, admitted=SAFE)


# --------------------------------------------------------------------------------------------
# truncated and corrupt files


def _small_value():
    return {
        "a": np.arange(40, dtype=np.float64),
        "b": np.arange(12, dtype=">i2").reshape(3, 4),
        "f": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "o": np.array(["x", 1, None], dtype=object),
        "s": "text",
        "l": [1, 2.5, (3, 4)],
    }


def _expect_clean_error(load, data):
    """`load(data)` raises JoblibFormatError/UnsafeLoadError or succeeds; nothing else, no hang."""
    with deadline(20):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load(data)
        except (JoblibFormatError, UnsafeLoadError):
            return "error"
        return "loaded"


@pytest.mark.parametrize("compress, kind", COMPRESSIONS)
def test_truncated_files(tmp_path, compress, kind):
    path = dump(_small_value(), tmp_path / "x.pkl", compress)
    data = path.read_bytes()
    cuts = sorted(
        {
            1,
            2,
            3,
            5,
            8,
            11,
            16,
            30,
            len(data) // 4,
            len(data) // 3,
            len(data) // 2,
            2 * len(data) // 3,
            len(data) - 20,
            len(data) - 2,
            len(data) - 1,
        }
    )
    for cut in cuts:
        if not 0 < cut < len(data):
            continue
        cut_path = tmp_path / f"cut{cut}.pkl"
        cut_path.write_bytes(data[:cut])
        for load in (load_bytes, lambda d: load_path(cut_path), lambda d: load_path(cut_path, mmap_mode="r+")):
            with deadline(20):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with pytest.raises(ValueError) as info:
                        load(data[:cut])
            assert isinstance(info.value, (JoblibFormatError, JoblibLegacyFormatError)) or cut < DETECT_BYTES, (
                cut,
                info.value,
            )
            assert (
                "truncated" in str(info.value) or "not a joblib file" in str(info.value) or "corrupt" in str(info.value)
            ), (cut, str(info.value))
        assert cut_path.stat().st_size == cut  # r+ did not extend the truncated file


def test_truncated_inside_array_data_names_the_file(tmp_path):
    path = dump({"a": np.arange(1000.0)}, tmp_path / "x.pkl")
    data = path.read_bytes()
    cut_path = tmp_path / "cut.pkl"
    cut_path.write_bytes(data[: len(data) // 2])
    for mode in (None, "r", "c", "r+"):
        with pytest.raises(JoblibFormatError, match="truncated") as info:
            load_path(cut_path, mmap_mode=mode)
        assert str(cut_path) in str(info.value)


def test_corrupt_shape_is_refused_before_allocating(tmp_path):
    """A shape of 10**12 elements: no terabyte allocation, a JoblibFormatError."""
    path = dump({"a": np.arange(7.0)}, tmp_path / "x.pkl", protocol=3)
    data = path.read_bytes()
    assert data.count(b"K\x07\x85") == 1  # shape (7,) as BININT1 7, TUPLE1
    huge = b"\x8a\x06" + (10**12).to_bytes(6, "little", signed=True) + b"\x85"  # LONG1, TUPLE1
    bad = data.replace(b"K\x07\x85", huge)
    with pytest.raises(JoblibFormatError, match="needs"):
        load_bytes(bad)
    for codec in (zlib.compress, __import__("bz2").compress):
        with deadline(30):
            with pytest.raises(JoblibFormatError):
                load_bytes(codec(bad))


@pytest.mark.parametrize("admitted", [None, SAFE], ids=["full", "safe"])
def test_every_flipped_byte_of_an_uncompressed_file(tmp_path, admitted):
    path = dump(_small_value(), tmp_path / "x.pkl")
    data = path.read_bytes()
    outcomes = {"error": 0, "loaded": 0}
    for position in range(len(data)):
        for mask in (0xFF, 0x01, 0x10):
            corrupt = bytearray(data)
            corrupt[position] ^= mask
            outcome = _expect_clean_error(lambda d: load_bytes(bytes(d), admitted=admitted), corrupt)
            outcomes[outcome] += 1
    assert outcomes["error"] > len(data)  # most flips outside array data are caught


@pytest.mark.parametrize("compress, kind", COMPRESSED[:6])
def test_flipped_bytes_of_compressed_files(tmp_path, compress, kind):
    path = dump(_small_value(), tmp_path / "x.pkl", compress)
    data = path.read_bytes()
    step = max(1, len(data) // 150)
    for position in range(0, len(data), step):
        for mask in (0xFF, 0x04):
            corrupt = bytearray(data)
            corrupt[position] ^= mask
            _expect_clean_error(lambda d: load_bytes(bytes(d), admitted=SAFE), corrupt)


def test_flipped_bytes_with_mmap(tmp_path):
    path = dump(_small_value(), tmp_path / "x.pkl")
    data = path.read_bytes()
    target = tmp_path / "flipped.pkl"
    for position in range(0, len(data), 3):
        corrupt = bytearray(data)
        corrupt[position] ^= 0xFF
        target.write_bytes(bytes(corrupt))
        _expect_clean_error(lambda d: load_path(target, mmap_mode="r", admitted=SAFE), None)
        assert target.stat().st_size == len(data)


def test_missing_lz4_is_a_clear_error(tmp_path, monkeypatch):
    if not HAVE_LZ4:
        pytest.skip("no lz4")
    path = dump({"a": np.arange(3)}, tmp_path / "x.pkl", ("lz4", 3))
    monkeypatch.setitem(sys.modules, "lz4", None)
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    with pytest.raises(ValueError, match="lz4"):
        load_path(path)


def test_joblib_is_not_imported_by_the_reader(tmp_path):
    """The module reads joblib files without importing joblib (checked in a fresh process)."""
    import subprocess

    path = dump({"a": np.arange(5), "m": np.arange(4.0)}, tmp_path / "x.pkl", ("zlib", 3))
    code = (
        "import sys\n"
        "from joblite._joblib_format import load_joblib\n"
        f"f = open({str(path)!r}, 'rb')\n"
        "value = load_joblib(f, f.name)\n"
        "assert list(value['a']) == [0, 1, 2, 3, 4]\n"
        "assert not any(m == 'joblib' or m.startswith('joblib.') for m in sys.modules), "
        "[m for m in sys.modules if 'joblib' in m]\n"
    )
    import joblite

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=str(tmp_path))


def test_through_joblite_load(tmp_path):
    """``joblite.load`` hands joblib files to this module (once persistence is importable)."""
    try:
        from joblite.persistence import load
    except ImportError as exc:  # pragma: no cover - persistence not there yet
        pytest.skip(f"joblite.persistence not importable: {exc}")
    value = nested_object()
    for compress in (0, ("zlib", 3)):
        path = dump(value, tmp_path / "x.pkl", compress)
        assert_same(load(str(path)), joblib_load(path))


DTYPES = [
    "f8",
    ">f8",
    "<f4",
    "f2",
    "i1",
    ">u2",
    "?",
    ">c16",
    "O",
    "S0",
    "S5",
    "U3",
    ">U3",
    "V0",
    "V7",
    "M8",
    "M8[D]",
    ">M8[5ms]",
    "m8[us]",
    "<m8[3h]",
    [("a", "<i4"), ("b", ">f8")],
    [("x", [("y", "O"), ("z", ">i2")]), ("w", "U2")],
    [("n", ("f4", (2, 3))), ("o", "O", (2,))],
    ("f8", (2, 3)),
    (">i4", (2,)),
]


def _special_dtypes():
    return [
        np.dtype([("a", "<i4"), ("b", ">f8"), ("c", "i1")], align=True),
        np.dtype(
            {"names": ["a", "b"], "formats": ["<i4", "<f8"], "offsets": [0, 8], "titles": ["TA", None], "itemsize": 24}
        ),
        np.dtype("f8", metadata={"unit": "m"}),
        np.dtype("M8[D]", metadata={"k": 2}),
        np.dtype([("a", np.dtype("f8", metadata={"m": 1}))]),
        np.rec.array([(1, 2.0)], dtype=[("i", "<i4"), ("f", "<f8")]).dtype,
        np.dtype((np.record, np.dtype([("a", "<i2"), ("b", "f8")], align=True))),
    ]


@pytest.mark.parametrize("dtype", [np.dtype(d) for d in DTYPES] + _special_dtypes(), ids=repr)
@pytest.mark.parametrize("where", ["array", "object-array", "dtype-itself"])
def test_dtypes_round_trip_as_numpy_does(tmp_path, dtype, where):
    """Dtypes are rebuilt through numpy's constructors; they must come back as numpy's own do."""
    if where != "dtype-itself" and dtype.itemsize == 0:
        pytest.skip("joblib.dump cannot write arrays of zero-sized items (ZeroDivisionError)")
    if where == "array":
        value = {"a": np.zeros(3, dtype=dtype)}
    elif where == "object-array":
        value = {"a": np.array([np.zeros(2, dtype=dtype), None], dtype=object)}
    else:
        value = {"a": dtype, "list": [dtype, dtype]}
    path = dump(value, tmp_path / "x.pkl")
    mine, ref = load_path(path, admitted=SAFE), joblib_load(path)
    mine, ref = mine["a"], ref["a"]
    if where == "object-array":
        mine, ref = mine[0], ref[0]
    if where != "dtype-itself":
        assert_same(mine, ref)
        mine, ref = mine.dtype, ref.dtype
    for attribute in (
        "str",
        "descr",
        "itemsize",
        "alignment",
        "flags",
        "byteorder",
        "isalignedstruct",
        "metadata",
        "names",
        "fields",
        "subdtype",
        "hasobject",
    ):
        assert getattr(mine, attribute) == getattr(ref, attribute), attribute
    assert mine == ref


# --------------------------------------------------------------------------------------------
# numpy's unpickling trusts its input: corrupt files that crash it must be refused instead


def _identity(value):
    return value


class RebuildsExisting:
    """Unpickles as BUILD(state) on an array that already exists (a crafted stream)."""

    def __init__(self, array, state):
        self.array, self.state = array, state

    def __reduce__(self):
        return (_identity, (self.array,), self.state)


class OpensMemmap:
    """Unpickles as a call of numpy.memmap, which creates files."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (np.memmap, (self.path, "uint8", "w+", 0, (4,)))


def test_object_list_shorter_than_the_array_is_refused(tmp_path):
    path = dump({"o": np.array(["x", 1, None], dtype=object)}, tmp_path / "x.pkl")
    data = path.read_bytes()
    assert data.count(b"K\x01K\x03\x85") == 1  # version 1, shape (3,) of the nested stream
    bad = data.replace(b"K\x01K\x03\x85", b"K\x01K\x63\x85")  # shape (99,), 3 items
    for admitted in (None, SAFE):
        with pytest.raises(JoblibFormatError, match="object array of 99 elements"):
            load_bytes(bad, admitted=admitted)


def test_datetime_dtype_without_its_unit_is_refused(tmp_path):
    path = dump({"o": np.array(["x", 1], dtype=object)}, tmp_path / "x.pkl")
    data = path.read_bytes()
    assert data.count(b"\x8c\x02O8") == 2  # the wrapper's dtype, the nested one
    bad = data.replace(b"\x8c\x02O8", b"\x8c\x02M8", 1)  # numpy's dtype.__setstate__ crashes
    for admitted in (None, SAFE):
        with pytest.raises(JoblibFormatError, match="datetime"):
            load_bytes(bad, admitted=admitted)


def test_dtype_flags_from_the_file_are_not_trusted(tmp_path):
    path = dump({"a": np.arange(4.0)}, tmp_path / "x.pkl")
    data = path.read_bytes()
    flags = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"  # elsize, alignment, flags=0
    assert data.count(flags) == 1
    bad = data.replace(flags, flags[:-3] + b"K?t")  # the object flags (63)
    value = load_bytes(bad)
    assert not value["a"].dtype.hasobject and value["a"].dtype.flags == 0
    np.testing.assert_array_equal(value["a"], np.arange(4.0))


def test_build_on_an_existing_array_is_refused(tmp_path):
    shared = np.arange(3.0)
    state = (1, (3,), np.dtype("O"), False, [1])  # numpy would read 3 items from a list of 1
    path = dump({"a": shared, "evil": RebuildsExisting(shared, state)}, tmp_path / "x.pkl")
    with pytest.raises(JoblibFormatError, match="existing numpy"):
        load_path(path)


def test_memmap_cannot_be_called_under_a_restricted_load(tmp_path):
    victim = tmp_path / "victim.dat"
    path = dump({"a": np.arange(3), "evil": OpensMemmap(str(victim))}, tmp_path / "x.pkl")
    for admitted in (SAFE, resolve_allowed([f"{__name__.rsplit('.', 1)[-1]}.OpensMemmap"])):
        with pytest.raises(UnsafeLoadError, match="numpy.memmap"):
            load_path(path, admitted=admitted)
    assert not victim.exists()


def test_masked_and_record_arrays(tmp_path):
    value = {
        "masked": np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False]),
        "masked_obj": np.ma.masked_array(np.array(["a", None, 3], dtype=object), mask=[1, 0, 0]),
        "record": np.rec.array([(1, 2.0)], dtype=[("i", "<i4"), ("f", "<f8")]),
    }
    path = dump(value, tmp_path / "x.pkl")
    # numpy 2 pickles MaskedArray under the name numpy.ma.MaskedArray
    for admitted in (None, resolve_allowed(["numpy.ma.*", "numpy.ma.core.*", "numpy.rec.*"])):
        mine = load_path(path, admitted=admitted)
        assert isinstance(mine["masked"], np.ma.MaskedArray)
        assert mine["masked"].mask.tolist() == [False, True, False]
        assert mine["masked"].compressed().tolist() == [1.0, 3.0]
        assert mine["masked_obj"].mask.tolist() == [True, False, False]
        assert mine["masked_obj"].data.tolist() == ["a", None, 3]
    mine = load_path(path)
    assert isinstance(mine["record"], np.recarray) and mine["record"].f.tolist() == [2.0]


def test_errors_name_the_file_and_pickle(tmp_path):
    path = dump({"a": np.arange(100.0)}, tmp_path / "x.pkl")
    data = path.read_bytes()[:-30]
    with pytest.raises(JoblibFormatError) as info:
        load_bytes(data, where="my-entry.pkl")
    assert str(info.value).startswith("my-entry.pkl: ")
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is JoblibFormatError and str(again) == str(info.value)
    legacy = pickle.loads(pickle.dumps(JoblibLegacyFormatError("old.pkl")))
    assert "old.pkl" in str(legacy)
    with pytest.raises(JoblibFormatError, match=r"^<BytesIO>: "):
        load_bytes(data)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write read-only files")
def test_r_plus_on_a_read_only_file_is_a_permission_error(tmp_path):
    path = dump({"a": np.arange(4.0)}, tmp_path / "x.pkl")
    path.chmod(0o444)
    with pytest.raises(PermissionError):
        load_path(path, mmap_mode="r+")
    assert isinstance(load_path(path, mmap_mode="r")["a"], np.memmap)


class _FailingDisk(io.FileIO):
    """A file whose reads fail past its first 100 bytes, as on a failing disk."""

    def readinto(self, buffer):
        if self.tell() > 100:
            raise OSError(errno.EIO, "Input/output error", self.name)
        return super().readinto(memoryview(buffer)[: max(1, 101 - self.tell())])


def test_system_errors_pass_through(tmp_path):
    """An OSError is about the system, not the file's content: it is not a JoblibFormatError."""
    path = dump({"a": np.arange(1000.0)}, tmp_path / "x.pkl")
    with _FailingDisk(path) as f:
        with pytest.raises(OSError) as info:
            load_joblib(f, str(path))
    assert info.value.errno == errno.EIO and not isinstance(info.value, JoblibFormatError)
