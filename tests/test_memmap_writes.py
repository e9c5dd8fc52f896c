"""Memmaps of the caller's files reach process workers as memmaps of the same file (issue 12, items 1 and 2).

joblib's ``parallel_memmap`` example: workers fill slices of a shared
``np.memmap(..., mode='w+')`` output, and the caller then reads what they
wrote.  Here on real worker processes (loky and multiprocessing), for small
and large outputs, whatever ``max_nbytes``, with views of the memmap, and
for every mode a memmap can be opened with; plus the ``max_nbytes`` values
joblib accepts.
"""

import mmap
import os

import numpy as np
import pytest

import joblite
from joblite import Parallel, delayed

BACKENDS = ["loky", "multiprocessing"]
SMALL = 1024 // 8  # float64: a 1 KiB output
LARGE = 4 * 1024 * 1024 // 8  # float64: a 4 MiB output, above the default max_nbytes ('1M')
SIZES = {"1KiB": SMALL, "4MiB": LARGE}
DEFAULT = object()  # max_nbytes not given: joblite's default, '1M'


def processes(backend, temp, max_nbytes=DEFAULT, **kwargs):
    """``Parallel(n_jobs=2)`` on `backend`, large arrays written into `temp`, one task per batch."""
    if max_nbytes is not DEFAULT:
        kwargs["max_nbytes"] = max_nbytes
    return Parallel(n_jobs=2, backend=backend, temp_folder=str(temp), batch_size=1, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def workers():
    """The tests share loky's reusable workers (fast); they are stopped once the module is done."""
    import loky

    yield
    loky.get_reusable_executor().shutdown(wait=True)


@pytest.fixture
def temp(tmp_path):
    """The call's temp folder: it must be empty after each call (nothing was written, or it is removed)."""
    folder = tmp_path / "temp"
    folder.mkdir()
    yield folder
    assert os.listdir(folder) == []


def same_file(a, b):
    return a is not None and b is not None and os.path.samefile(a, b)


# -- tasks (run in the workers) ----------------------------------------------------------
def describe(array):
    """What a worker received."""
    return {
        "memmap": isinstance(array, np.memmap),
        "filename": getattr(array, "filename", None),
        "mode": getattr(array, "mode", None),
        "writeable": bool(array.flags.writeable),
        "shape": array.shape,
        "strides": array.strides,
        "sum": float(np.sum(array)),
        "pid": os.getpid(),
    }


def fill(output, start, stop, value):
    """joblib's example: a worker writes its slice of the shared output."""
    output[start:stop] = value
    return describe(output)


def fill_all(view, value):
    """Write every element of `view` (a column, a block...) and report what it was."""
    view[...] = value
    return describe(view)


def write_first(array, value):
    """Write `value` into the first element, if the worker may; report what it saw before."""
    seen = describe(array)
    if array.flags.writeable:
        array.flat[0] = value
    return seen


def mean_of(data, start, stop):
    return float(data[start:stop].mean())


# -- the parallel_memmap pattern ---------------------------------------------------------
@pytest.mark.parametrize("max_nbytes", [DEFAULT, None], ids=["max_nbytes-default", "max_nbytes-None"])
@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["w+", "r+"])
def test_workers_fill_slices_of_a_shared_output_and_the_caller_reads_them(
    tmp_path, temp, mode, backend, size, max_nbytes
):
    n = SIZES[size]
    path = tmp_path / "output.bin"
    if mode == "r+":
        np.full(n, -7.0).tofile(path)  # an existing file: its data is overwritten in place
    output = np.memmap(path, dtype=np.float64, mode=mode, shape=(n,))
    chunks = 8
    bounds = [(k * n // chunks, (k + 1) * n // chunks) for k in range(chunks)]
    seen = processes(backend, temp, max_nbytes)(
        delayed(fill)(output, start, stop, float(k + 1)) for k, (start, stop) in enumerate(bounds)
    )

    expected = np.repeat(np.arange(1.0, chunks + 1), n // chunks)
    assert np.array_equal(output, expected), "the caller's memmap must show what the workers wrote"
    assert np.array_equal(np.fromfile(path), expected), "and so must its file"
    for info in seen:
        # the worker had the caller's file mapped, writable ('w+' maps 'r+': no truncation)
        assert info["memmap"] and same_file(info["filename"], path), info
        assert info["mode"] == "r+" and info["writeable"], info
    del output


def test_the_example_with_a_joblite_dump_loaded_read_only_as_input(tmp_path, temp):
    """joblib's example end to end: input ``load(..., mmap_mode='r')``, output a ``'w+'`` memmap."""
    data = np.random.default_rng(0).random(200_000)
    joblite.dump(data, tmp_path / "data_memmap")
    data = joblite.load(tmp_path / "data_memmap", mmap_mode="r")
    window, step = 50_000, 10_000
    starts = range(0, data.size - window, step)
    output = np.memmap(tmp_path / "output_memmap", dtype=data.dtype, shape=len(starts), mode="w+")

    def write_mean(data, start, output, index):
        output[index] = data[start : start + window].mean()
        return describe(data)

    seen = processes("loky", temp, 1000)(
        delayed(write_mean)(data, start, output, index) for index, start in enumerate(starts)
    )
    assert np.allclose(output, [data[start : start + window].mean() for start in starts])
    # the input was mapped from the dump itself, read-only, not written again to the temp folder
    assert all(same_file(info["filename"], tmp_path / "data_memmap") and not info["writeable"] for info in seen), seen
    del data, output


# -- views of a memmap -------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_views_of_a_memmap_are_written_in_place(tmp_path, temp, backend, size):
    cols = 8
    rows = SIZES[size] // cols
    path = tmp_path / "matrix.bin"
    matrix = np.memmap(path, dtype=np.float64, mode="w+", shape=(rows, cols))
    half = rows // 2
    views = {  # disjoint: the tasks run at the same time
        "column 2": matrix[:half, 2],  # strided: every 8th float64
        "column 5": matrix[:half, 5],
        "block": matrix[1:half, 6:8],  # a 2-D block: strided rows
        "rows": matrix[half:],  # contiguous, at an offset
        "reversed rows of column 0": matrix[half - 1 :: -1, 0],  # negative strides
    }
    values = {name: float(i + 1) for i, name in enumerate(views)}
    seen = processes(backend, temp)(delayed(fill_all)(view, values[name]) for name, view in views.items())

    expected = np.zeros((rows, cols))
    expected[:half, 2] = values["column 2"]
    expected[:half, 5] = values["column 5"]
    expected[1:half, 6:8] = values["block"]
    expected[half:] = values["rows"]
    expected[half - 1 :: -1, 0] = values["reversed rows of column 0"]
    assert np.array_equal(matrix, expected), "every view's writes must land in the caller's memmap"
    assert np.array_equal(np.fromfile(path).reshape(rows, cols), expected)
    for (name, view), info in zip(views.items(), seen):
        assert info["memmap"] and same_file(info["filename"], path), (name, info)
        assert info["shape"] == view.shape and info["strides"] == view.strides, (name, info)
        assert info["writeable"] and info["mode"] == "r+", (name, info)
    del matrix, views


# -- each mode ---------------------------------------------------------------------------
@pytest.mark.parametrize("max_nbytes", [DEFAULT, None], ids=["max_nbytes-default", "max_nbytes-None"])
def test_read_only_memmap_is_mapped_read_only_without_a_copy(tmp_path, temp, max_nbytes):
    path = tmp_path / "input.bin"
    np.arange(LARGE, dtype=np.float64).tofile(path)
    small = np.memmap(path, dtype=np.float64, mode="r", shape=(SMALL,))
    large = np.memmap(path, dtype=np.float64, mode="r", shape=(LARGE,))
    seen = processes("loky", temp, max_nbytes, mmap_mode="r+")(
        [delayed(write_first)(small, -1.0), delayed(write_first)(large[::3], -1.0)]
    )
    for array, info in zip([small, large[::3]], seen):
        assert info["memmap"] and same_file(info["filename"], path), info
        # the memmap's mode, not the call's mmap_mode (which is for joblite's own files)
        assert info["mode"] == "r" and not info["writeable"], info
        assert info["sum"] == float(array.sum())
    assert np.fromfile(path)[0] == 0.0
    del small, large


def test_copy_on_write_memmap_stays_private_in_the_worker(tmp_path, temp):
    path = tmp_path / "input.bin"
    np.arange(SMALL, dtype=np.float64).tofile(path)
    private = np.memmap(path, dtype=np.float64, mode="c", shape=(SMALL,))
    seen = processes("loky", temp)(delayed(fill_all)(private[i::4], -1.0) for i in range(4))
    for i, info in enumerate(seen):
        # mapped 'c' from the same file: the worker may write, and sees its own writes...
        assert info["memmap"] and same_file(info["filename"], path) and info["mode"] == "c", info
        assert info["writeable"] and info["sum"] == -float(private[i::4].size)
    # ...which reach neither the file nor the caller's own copy-on-write map
    assert np.array_equal(np.fromfile(path), np.arange(SMALL, dtype=np.float64))
    assert np.array_equal(private, np.arange(SMALL, dtype=np.float64))
    del private


def test_each_mode_travels_as_joblib_sends_it(tmp_path, temp):
    """What a worker sees of a memmap opened 'r', 'r+', 'w+' or 'c', and where its writes go: as with joblib."""
    joblib = pytest.importorskip("joblib")

    def run(library, parallel):
        outcome = {}
        for mode in ["r", "r+", "w+", "c"]:
            path = tmp_path / f"{library}-{mode}.bin"
            np.arange(SMALL, dtype=np.float64).tofile(path)
            array = np.memmap(path, dtype=np.float64, mode=mode, shape=(SMALL,))
            if mode == "w+":  # it emptied the file
                array[:] = np.arange(SMALL)
                array.flush()
            (info,) = parallel([library_delayed[library](write_first)(array[4:], -1.0)])
            outcome[mode] = (info["memmap"], info["mode"], info["writeable"], np.fromfile(path)[4])
            del array
        return outcome

    library_delayed = {"joblib": joblib.delayed, "joblite": delayed}
    try:
        with joblib.Parallel(n_jobs=2, backend="loky", max_nbytes=None) as theirs:
            expected = run("joblib", theirs)
    finally:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)  # joblib's own workers: started by this test
    assert run("joblite", processes("loky", temp, None)) == expected
    assert expected == {
        "r": (True, "r", False, 4.0),
        "r+": (True, "r+", True, -1.0),
        "w+": (True, "r+", True, -1.0),
        "c": (True, "c", True, 4.0),
    }


def test_arrays_written_to_the_temp_folder_stay_read_only_in_workers(tmp_path, temp):
    path = tmp_path / "output.bin"
    output = np.memmap(path, dtype=np.float64, mode="w+", shape=(SMALL,))
    plain = np.arange(LARGE, dtype=np.float64)
    plain_seen, output_seen = processes("loky", temp, "1M")(
        [delayed(write_first)(plain, -1.0), delayed(write_first)(output, -1.0)]
    )
    assert plain_seen["memmap"] and not plain_seen["writeable"] and plain_seen["mode"] == "r"
    assert os.path.dirname(os.path.dirname(plain_seen["filename"])) == str(temp)
    assert plain[0] == 0.0
    assert output_seen["writeable"] and same_file(output_seen["filename"], path)
    assert output[0] == -1.0
    del output


# -- what cannot be mapped again: sent as data, as before ---------------------------------
@pytest.mark.parametrize("max_nbytes", [DEFAULT, None], ids=["max_nbytes-default", "max_nbytes-None"])
def test_memmaps_without_a_file_to_map_are_sent_as_data(tmp_path, temp, max_nbytes):
    path = tmp_path / "gone.bin"
    removed = np.memmap(path, dtype=np.float64, mode="w+", shape=(LARGE,))
    removed[:] = 2.0
    os.unlink(path)  # the caller's map still holds the data; the workers cannot open the file
    anonymous = np.frombuffer(mmap.mmap(-1, SMALL * 8), dtype=np.float64)
    seen = processes("loky", temp, max_nbytes)(
        [delayed(describe)(removed), delayed(describe)(removed[10:20]), delayed(describe)(anonymous)]
    )
    assert [info["sum"] for info in seen] == [2.0 * LARGE, 20.0, 0.0]
    for info in seen:
        assert info["filename"] is None or os.path.dirname(os.path.dirname(info["filename"])) == str(temp)
    del removed, anonymous


# -- max_nbytes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "max_nbytes, memmapped", [(1e6, True), ("1M", True), (1_000_000, True), (np.float64(1e6), True), (None, False)]
)
def test_max_nbytes_takes_joblibs_values(temp, max_nbytes, memmapped):
    array = np.arange(200_000, dtype=np.float64)  # 1.6 MB: above each of these sizes
    (info,) = processes("loky", temp, max_nbytes)([delayed(describe)(array)])
    assert info["memmap"] is memmapped and info["sum"] == float(array.sum())


@pytest.mark.parametrize("max_nbytes", [1.5, float("nan"), float("inf"), -1, -1e6, "1X", "lots", True, [1]])
def test_bad_max_nbytes_is_refused_naming_it(temp, max_nbytes):
    with pytest.raises(ValueError, match=r"max_nbytes="):
        processes("loky", temp, max_nbytes)(delayed(abs)(-i) for i in range(2))
