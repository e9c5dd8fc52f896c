"""Fresh processes of the benchmark (joblite.bench.children): a module function run in a new interpreter."""

import os

import numpy as np
import pytest

import joblite
from joblite.bench.children import ChildFailed, ChildServer, child_environment, run_child
from joblite.bench.sections.persistence import load_peak_memory
from joblite.bench.sections.persistence_peers import peer_server

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent


def test_the_child_imports_the_joblite_in_use():
    root = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
    assert child_environment()["PYTHONPATH"].split(os.pathsep)[0] == root


def test_a_body_runs_in_a_fresh_interpreter_and_its_result_comes_back(tmp_path):
    warm, path = tmp_path / "warm.npy", tmp_path / "array.npy"
    np.save(warm, np.arange(10.0))
    np.save(path, np.ones(1 << 20))  # 8 MiB
    figures = run_child(load_peak_memory, "numpy", warm, path)
    assert set(figures) == {"before", "peak", "nbytes", "method"}
    assert figures["nbytes"] == 8 << 20
    assert figures["peak"] - figures["before"] >= 8 << 20  # the loaded array, in the child only
    assert figures["method"] in ("VmHWM reset", "ru_maxrss")


def test_a_failing_body_raises_with_the_last_line_of_its_stderr(tmp_path):
    missing = tmp_path / "missing.npy"
    np.save(tmp_path / "warm.npy", np.arange(10.0))
    with pytest.raises(ChildFailed, match=r"^subprocess failed: FileNotFoundError: .*missing\.npy"):
        run_child(load_peak_memory, "numpy", tmp_path / "warm.npy", missing)


def test_a_server_answers_calls_in_its_own_process_until_closed(tmp_path):
    value = np.arange(1 << 16)
    np.save(tmp_path / "value.npy", value)
    path = tmp_path / "a.joblite"
    with ChildServer(peer_server, tmp_path / "value.npy", path, "blosc-lz4", "joblite", "case") as server:
        stored = server.call("stored")  # the untimed dump made in the child
        assert stored == os.path.getsize(path)
        assert all(server.call(what) > 0 for what in ("dump", "load", "dump"))
        assert np.array_equal(joblite.load(path), value)  # the child's file
    server.close()  # closed: a second close does nothing


def test_a_server_that_fails_raises_with_the_last_line_of_its_stderr(tmp_path):
    server = ChildServer(peer_server, tmp_path / "missing.npy", tmp_path / "a", "blosc-lz4", "joblite", "case")
    with server, pytest.raises(ChildFailed, match=r"^subprocess failed: FileNotFoundError: .*missing\.npy"):
        server.call("stored")
