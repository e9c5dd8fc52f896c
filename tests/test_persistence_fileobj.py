"""dump/load through file objects, as joblib users call them: compressed file objects, handles, pipes.

joblib's ``dump(value, fileobj)`` and ``load(fileobj)`` take any binary file
object; its users dump into their own ``gzip.GzipFile`` and load files that
``joblib.dump(..., compress=...)`` compressed as a whole from a plain handle.
Error messages start with joblib's words, checked against the text joblib
itself produces.
"""

import bz2
import gzip
import io
import lzma
import os
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest

import joblite
from joblite import CorruptFileError, UnsafeLoadError, dump, load
from joblite.compressors import CompressorBase, register_compressor

OPENERS = {"gzip": gzip.GzipFile, "bz2": bz2.BZ2File, "lzma": lzma.LZMAFile}

try:
    import lz4.frame  # noqa: F401 - joblib's 'lz4' needs it

    HAVE_LZ4 = True
except ImportError:
    HAVE_LZ4 = False

# joblib's whole-file compressions and the extension its dump would pick for each
JOBLIB_COMPRESSIONS = ["gzip", "bz2", "xz", "lzma", "zlib"] + (["lz4"] if HAVE_LZ4 else [])


def _value():
    return {
        "ints": np.arange(1000, dtype=np.int64).reshape(10, 100),
        "fortran": np.asfortranarray(np.linspace(0, 1, 600).reshape(20, 30)),
        "strided": np.arange(400.0)[::3],
        "objects": np.array([1, "two", None, 3.5, b"five"], dtype=object),
        "nested": [{"x": np.float32(2.5)}, ("tuple", np.zeros(0))],
    }


def _check_value(got):
    expected = _value()
    assert set(got) == set(expected)
    for key in ("ints", "fortran", "strided"):
        np.testing.assert_array_equal(got[key], expected[key])
        assert got[key].dtype == expected[key].dtype
        assert type(got[key]) is np.ndarray
    assert got["fortran"].flags.f_contiguous
    assert got["objects"].dtype == object and got["objects"].tolist() == expected["objects"].tolist()
    assert got["nested"][0]["x"] == np.float32(2.5) and got["nested"][1][0] == "tuple"
    assert got["nested"][1][1].shape == (0,)


# -- round trips through the user's own file objects -------------------------------------
@pytest.mark.parametrize("compress", [0, 3, ("zlib", 1)], ids=["none", "lz4", "zlib"])
@pytest.mark.parametrize("kind", sorted(OPENERS))
def test_round_trip_through_a_compressed_file_object(tmp_path, kind, compress):
    path = tmp_path / f"value.{kind}"
    with OPENERS[kind](path, "wb") as fileobj:
        assert dump(_value(), fileobj, compress=compress) is None
    with OPENERS[kind](path, "rb") as fileobj:
        _check_value(load(fileobj))
    # the file is compressed as a whole: a plain handle and the path load it too
    with open(path, "rb") as handle:
        _check_value(load(handle))
    _check_value(load(path))


def test_large_array_through_gzip_file(tmp_path):
    """Blocks large enough for the threaded read and write paths (which use the descriptor of an OS file).

    A GzipFile has a ``fileno()`` too, the one of its compressed file: reading
    the array through it must not read the compressed bytes.
    """
    array = np.arange(3_000_000, dtype=np.float64)  # 24 MB
    path = tmp_path / "large.gz"
    with gzip.GzipFile(path, "wb", compresslevel=1) as fileobj:
        dump({"a": array}, fileobj)
    with gzip.GzipFile(path, "rb") as fileobj:
        got = load(fileobj)
    np.testing.assert_array_equal(got["a"], array)
    assert got["a"].flags.writeable


@pytest.mark.parametrize("where", ["bytesio", "open file", "unbuffered file"])
def test_round_trip_through_plain_file_objects(tmp_path, where):
    path = tmp_path / "value.jl"
    if where == "bytesio":
        stream = io.BytesIO()
        dump(_value(), stream)
        stream.seek(0)
        _check_value(load(stream))
        return
    buffering = -1 if where == "open file" else 0
    with open(path, "wb", buffering=buffering) as handle:
        dump(_value(), handle)
    with open(path, "rb", buffering=buffering) as handle:
        _check_value(load(handle))


def test_pandas_frame_through_gzip_file(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {"a": np.arange(50), "b": np.linspace(0, 1, 50), "c": ["x", "y"] * 25}, index=pd.RangeIndex(10, 60, name="idx")
    )
    path = tmp_path / "frame.gz"
    with gzip.GzipFile(path, "wb") as fileobj:
        dump(frame, fileobj)
    with gzip.GzipFile(path, "rb") as fileobj:
        pd.testing.assert_frame_equal(load(fileobj), frame)
    stream = io.BytesIO()
    dump(frame, stream)
    pd.testing.assert_frame_equal(load(stream), frame)


# -- joblib's files, compressed as a whole ------------------------------------------------
@pytest.mark.parametrize("method", JOBLIB_COMPRESSIONS)
def test_joblib_whole_file_compression_from_a_handle_and_the_path(tmp_path, method):
    path = tmp_path / "joblib.pkl"
    joblib.dump(_value(), path, compress=(method, 3))
    with open(path, "rb") as handle:
        _check_value(load(handle))
    _check_value(load(path))
    with open(path, "rb") as handle:  # the bytes in memory, with their compression
        _check_value(load(io.BytesIO(handle.read())))


def test_joblib_dump_into_a_gzip_file_with_a_large_array(tmp_path):
    """The size of the compressed file does not bound what the decompressed stream holds."""
    array = np.arange(500_000, dtype=np.int64)  # 4 MB, far more than the compressed file
    path = tmp_path / "joblib.gz"
    with gzip.GzipFile(path, "wb") as fileobj:
        joblib.dump({"a": array}, fileobj)
    assert os.path.getsize(path) < array.nbytes // 4
    with gzip.GzipFile(path, "rb") as fileobj:
        np.testing.assert_array_equal(load(fileobj)["a"], array)
    np.testing.assert_array_equal(load(path)["a"], array)


def test_files_through_a_pipe(tmp_path):
    """A non-seekable stream (a child's stdout): a container, and a joblib file with an array."""
    array = np.arange(100_000, dtype=np.float64)
    paths = [tmp_path / "value.jl", tmp_path / "joblib.pkl", tmp_path / "joblib.gz"]
    dump({"a": array}, paths[0])
    joblib.dump({"a": array}, paths[1])
    joblib.dump({"a": array}, paths[2], compress=("gzip", 3))
    for path in paths:
        with subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), sys.stdout.buffer)",
                str(path),
            ],
            stdout=subprocess.PIPE,
        ) as child:
            assert not child.stdout.seekable()
            got = load(child.stdout)
        assert child.returncode == 0
        np.testing.assert_array_equal(got["a"], array)


# -- where in a file object the dump is read from -----------------------------------------
def test_bytesio_right_after_dump_is_read_from_its_start():
    """joblib's ``dump(x, buffer); load(buffer)``, without ``buffer.seek(0)``."""
    for module in (joblib, joblite):
        stream = io.BytesIO()
        module.dump(_value(), stream)
        _check_value(load(stream))


def test_handle_positioned_elsewhere_is_read_from_its_start(tmp_path):
    path = tmp_path / "value.jl"
    dump(_value(), path)
    with open(path, "rb") as handle:
        handle.read(100)  # inside the header: no dump starts here
        _check_value(load(handle))
    with open(path, "rb") as handle:
        handle.seek(0, io.SEEK_END)
        _check_value(load(handle))
    with gzip.GzipFile(tmp_path / "value.gz", "wb") as fileobj:
        dump(_value(), fileobj)
    with gzip.GzipFile(tmp_path / "value.gz", "rb") as fileobj:
        fileobj.read(10)
        _check_value(load(fileobj))


def test_dump_that_starts_at_the_current_position_is_read_from_there(tmp_path):
    """A file that holds something else first: read from where the dump starts, as joblib peeks."""
    for module in (joblib, joblite):
        path = tmp_path / f"{module.__name__}.bin"
        with open(path, "wb") as handle:
            handle.write(b"a header of 37 bytes, not a dump....")
            module.dump(_value(), handle)
        with open(path, "rb") as handle:
            handle.read(36)
            _check_value(load(handle))


def test_joblib_dumps_one_after_the_other_load_one_after_the_other(tmp_path):
    path = tmp_path / "two.pkl"
    with open(path, "wb") as handle:
        joblib.dump(np.arange(3), handle)
        joblib.dump({"b": 2}, handle)
    for opener in (lambda: open(path, "rb"), lambda: io.BytesIO(path.read_bytes())):
        with opener() as stream:
            np.testing.assert_array_equal(load(stream), np.arange(3))
            assert load(stream) == {"b": 2}


# -- mmap_mode on file objects: ignored, as joblib ignores it ----------------------------------
def _warnings_of(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = call()
    return value, [str(warning.message) for warning in caught if warning.category is UserWarning]


def _load_handle(load_function, path):
    with open(path, "rb") as handle:
        return load_function(handle, mmap_mode="r")


def test_mmap_mode_on_a_file_object_is_ignored_with_joblibs_warnings(tmp_path):
    gz_path = tmp_path / "joblib.gz"
    joblib.dump(_value(), gz_path, compress=("gzip", 3))
    stream = io.BytesIO()
    joblib.dump(_value(), stream)

    def joblib_bytesio():
        stream.seek(0)
        return joblib.load(stream, mmap_mode="r")

    def joblite_bytesio():
        stream.seek(0)
        return load(stream, mmap_mode="r")

    for joblib_call, joblite_call in [
        (joblib_bytesio, joblite_bytesio),
        (lambda: _load_handle(joblib.load, gz_path), lambda: _load_handle(load, gz_path)),
    ]:
        _, expected = _warnings_of(joblib_call)
        got, messages = _warnings_of(joblite_call)
        assert messages == expected
        _check_value(got)

    # joblib's words for an object that is not a raw file (its repr differs from joblib's own wrapper)
    with gzip.GzipFile(tmp_path / "value.gz", "wb") as fileobj:
        dump(_value(), fileobj)
    with gzip.GzipFile(tmp_path / "value.gz", "rb") as fileobj:
        got, messages = _warnings_of(lambda: load(fileobj, mmap_mode="r"))
        assert messages == [f'"{fileobj!r}" is not a raw file, mmap_mode "r" flag will be ignored.']
    _check_value(got)

    # an OS file handle: joblib ignores mmap_mode silently; joblite says so
    dump(_value(), tmp_path / "value.jl")
    with open(tmp_path / "value.jl", "rb") as handle:
        got, messages = _warnings_of(lambda: load(handle, mmap_mode="r"))
    assert len(messages) == 1 and "pass the path of the file to memory-map its arrays" in messages[0]
    assert type(got["ints"]) is np.ndarray


def test_mmap_mode_on_a_path_compressed_as_a_whole_warns_and_loads_in_memory(tmp_path):
    path = tmp_path / "value.gz"
    with gzip.GzipFile(path, "wb") as fileobj:
        dump(_value(), fileobj)
    got, messages = _warnings_of(lambda: load(path, mmap_mode="r"))
    assert messages == [f'mmap_mode "r" is not compatible with compressed file {path}. "r" flag will be ignored.']
    _check_value(got)


# -- the readers' checks apply to file objects --------------------------------------------
def test_allowed_applies_to_file_objects(tmp_path):
    value = {"a": np.arange(3), "call": os.getcwd}
    stream = io.BytesIO()
    dump(value, stream)
    with pytest.raises(UnsafeLoadError, match="posix.getcwd"):
        load(stream, allowed="numpy")
    path = tmp_path / "value.gz"
    with gzip.GzipFile(path, "wb") as fileobj:
        dump(value, fileobj)
    for opener in (lambda: gzip.GzipFile(path, "rb"), lambda: open(path, "rb")):
        with opener() as fileobj, pytest.raises(UnsafeLoadError, match="posix.getcwd"):
            load(fileobj, allowed="numpy")
    joblib.dump(value, tmp_path / "joblib.gz", compress=("gzip", 3))
    with open(tmp_path / "joblib.gz", "rb") as handle, pytest.raises(UnsafeLoadError, match="posix.getcwd"):
        load(handle, allowed="numpy")
    assert load(tmp_path / "joblib.gz", allowed=["posix.getcwd"])["call"] is os.getcwd


def test_corrupt_and_truncated_compressed_containers_raise(tmp_path):
    path = tmp_path / "value.gz"
    with gzip.GzipFile(path, "wb", mtime=0) as fileobj:
        dump(_value(), fileobj)
    raw = gzip.decompress(path.read_bytes())
    damaged = bytearray(raw)
    damaged[70] ^= 0xFF  # in the pickle stream, after the 64-byte header
    path.write_bytes(gzip.compress(bytes(damaged), mtime=0))
    with pytest.raises(CorruptFileError, match="checksum mismatch|corrupt"):
        load(path)
    path.write_bytes(gzip.compress(raw[:-100], mtime=0))
    with open(path, "rb") as handle, pytest.raises(CorruptFileError, match=str(path)):
        load(handle)
    compressed = gzip.compress(raw, mtime=0)
    path.write_bytes(compressed[: len(compressed) // 2])  # the gzip stream itself is cut
    with pytest.raises((CorruptFileError, EOFError)):
        load(path)


# -- error messages start with joblib's words ---------------------------------------------
def _error(call):
    with pytest.raises(Exception) as info:
        call()
    return info.value


def _assert_starts_with_joblibs_words(joblib_call, joblite_call, first_words):
    """joblite raises an instance of joblib's exception type, its message starting with joblib's words."""
    expected = _error(joblib_call)
    got = _error(joblite_call)
    words = first_words(str(expected))
    assert str(expected).startswith(words) and len(words) > 20
    assert isinstance(got, type(expected)), (type(got), type(expected))
    assert str(got).startswith(words), (str(got), words)


@pytest.mark.parametrize("compress", [10, -1, 2.5, ("zlib", 10), ("zlib", -2), ("nope", 30), [1, 2]], ids=repr)
def test_bad_compress_level_message(compress, tmp_path):
    _assert_starts_with_joblibs_words(
        lambda: joblib.dump(1, tmp_path / "joblib.pkl", compress=compress),
        lambda: dump(1, tmp_path / "joblite.jl", compress=compress),
        lambda message: message.split(" Possible values are")[0],
    )
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("compress", ["snappy", "ZLIB", ("nope", 3), ("brotli", None)], ids=repr)
def test_bad_compression_method_message(compress, tmp_path):
    _assert_starts_with_joblibs_words(
        lambda: joblib.dump(1, tmp_path / "joblib.pkl", compress=compress),
        lambda: dump(1, tmp_path / "joblite.jl", compress=compress),
        lambda message: message.split(" Possible values are")[0],
    )


@pytest.mark.parametrize("compress", [("zlib",), ("zlib", 3, 1), ()], ids=repr)
def test_compress_tuple_length_message(compress, tmp_path):
    _assert_starts_with_joblibs_words(
        lambda: joblib.dump(1, tmp_path / "joblib.pkl", compress=compress),
        lambda: dump(1, tmp_path / "joblite.jl", compress=compress),
        lambda message: message,
    )


@pytest.mark.parametrize("filename", [3, None, 2.5, ["a.jl"]], ids=repr)
def test_bad_filename_messages(filename):
    _assert_starts_with_joblibs_words(
        lambda: joblib.dump([1], filename), lambda: dump([1], filename), lambda message: message.rstrip(".")
    )
    if filename is not None and not isinstance(filename, float):
        return  # joblib's open() takes an int as a descriptor, and its load fails elsewhere for a list
    _assert_starts_with_joblibs_words(lambda: joblib.load(filename), lambda: load(filename), lambda message: message)
    assert isinstance(_error(lambda: load(filename)), ValueError)  # as joblite raised before


def test_swapped_dump_arguments_message(tmp_path):
    _assert_starts_with_joblibs_words(
        lambda: joblib.dump(str(tmp_path / "a.pkl"), {"some": "object"}),
        lambda: dump(str(tmp_path / "a.jl"), {"some": "object"}),
        lambda message: message.split(" (type")[0],
    )
    assert not os.listdir(tmp_path)


def test_bad_hash_name_message():
    _assert_starts_with_joblibs_words(
        lambda: joblib.hash(1, hash_name="x"),
        lambda: joblite.hash(1, hash_name="x"),
        lambda message: message.split(" are ")[0] + " are ",
    )
    message = str(_error(lambda: joblite.hash(1, hash_name="x")))
    assert message.endswith("Got hash_name='x' instead.") and "'xxh3_128'" in message


class _Identity(CompressorBase):
    name = "zlib"
    default_level = 1

    def compress(self, data, level):
        return bytes(data)

    def decompress(self, data, raw_length):
        return bytes(data)


def test_register_compressor_messages():
    from joblib.compressor import ZlibCompressorWrapper

    _assert_starts_with_joblibs_words(
        lambda: joblib.register_compressor(3, _Identity()),
        lambda: register_compressor(3, _Identity()),
        lambda message: message.rstrip("."),
    )
    _assert_starts_with_joblibs_words(
        lambda: joblib.register_compressor("zlib", ZlibCompressorWrapper()),
        lambda: register_compressor("zlib", _Identity()),
        lambda message: message.rstrip("."),
    )
