"""Fuzzing both readers with what checksums cannot catch, each load in a child process; forged sizes.

Targets (the inputs are made by ``tests/_fuzz_mutators.py``, loaded by ``tests/_fuzz_worker.py``):

* ``container-stream``: joblite containers whose pickle stream is mutated as
  opcodes (shapes, dtype codes, sizes and flags in numpy states, object-array
  item lists, opcodes, globals, lengths), then rebuilt with valid checksums;
* ``joblib-stream``: ``joblib.dump`` files whose pickle pieces are mutated the
  same way, compressed again as their seed was;
* ``raw``: byte-level damage of containers (resealed, mostly; header, table,
  footer and frame fields set to huge claims) and of joblib files.

Each input is loaded with ``joblite.load`` under ``allowed=None`` and
``allowed='numpy'``, ``mmap_mode=None`` and ``'r'`` (inputs that name a
global a restricted load must refuse: under ``'numpy'`` only), by worker
processes that load input after input: a worker that dies is a crash
(counted, its input saved, a new worker started), not the end of pytest.  The
test fails on any crash or hang, any ``MemoryError`` (also as the cause of
another error), any exception that ``load`` does not document
(``CorruptFileError`` -- joblib-file errors are ones -- and ``UnsafeLoadError``),
and any code execution under ``allowed='numpy'`` (a module imported that the
safe set does not need, an audited event, a change to ``sys.path``).

Counts go to the terminal summary (``fuzz_inputs``/``fuzz_outcomes``, see
``tests/conftest.py``).  Run under both twins (``JOBLITE_PUREPYTHON=1``).
Environment:

* ``JOBLITE_FUZZ_SECONDS``: wall time of the three targets in all
  (default 36, about a minute for the file with the workers' start; split
  45/30/25 %);
* ``JOBLITE_FUZZ_EXAMPLES``: inputs per target instead (no time limit), and
  examples of the round trip;
* ``JOBLITE_FUZZ_SEED``: the seed (default 9).  Input *i* of a target is the
  same for a seed whatever the run: a failure names it, and the file that
  failed is kept in the failure folder the message gives.
"""

import collections
import json
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as npst  # noqa: E402

import _fuzz_mutators as M  # noqa: E402
import _persistence_helpers as H  # noqa: E402
import joblite  # noqa: E402
from joblite import _blocks, compressors  # noqa: E402
from joblite.persistence import dumps, loads  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))
JOBLITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
EXAMPLES = int(os.environ.get("JOBLITE_FUZZ_EXAMPLES", "0") or 0)
SECONDS = float(os.environ.get("JOBLITE_FUZZ_SECONDS", "36") or 36)
SEED = os.environ.get("JOBLITE_FUZZ_SEED", "9")
SHARE = {"container-stream": 0.45, "joblib-stream": 0.30, "raw": 0.25}
HANG = 60.0  # seconds for one input: longer is a hang
FAILURES = ("crash", "hang", "MemoryError", "undocumented", "code execution")
SETTINGS = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

pytestmark = [pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX processes")]


def examples(default):
    return EXAMPLES or default


@pytest.fixture(scope="module")
def seeds():
    pytest.importorskip("joblib")
    return M.Seeds()


# -- the workers --------------------------------------------------------------------------------
class Worker:
    """One loading process (``_fuzz_worker.py``) in a folder of its own."""

    def __init__(self, folder):
        os.makedirs(folder)
        self.folder = folder
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
        paths = [JOBLITE_ROOT, TESTS] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        self.stderr = open(os.path.join(folder, "stderr"), "wb")
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(TESTS, "_fuzz_worker.py")],
            cwd=folder,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.buffer = b""
        self.case = None  # (index, seed name, data, combos, results) being loaded
        self.started = None
        line = self.process.stdout.readline()
        if line != b"ready\n":
            self.close()
            raise RuntimeError(f"fuzz worker did not start: {self.stderr_tail()}")

    def send(self, case):
        index, name, data, combos = case
        self.case = (index, name, data, combos, [])
        self.started = time.monotonic()
        request = pickle.dumps((data, combos), protocol=5)
        self.process.stdin.write(struct.pack("<I", len(request)) + request)
        self.process.stdin.flush()

    def read(self):
        """The JSON results that arrived; None at end of file (the worker is gone)."""
        chunk = os.read(self.process.stdout.fileno(), 1 << 16)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines]

    def stderr_tail(self):
        self.stderr.flush()
        with open(os.path.join(self.folder, "stderr"), "rb") as handle:
            return handle.read()[-1500:].decode("utf-8", "replace")

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:  # a dead worker's pipe
                pass
        self.stderr.close()


class Campaign:
    """Runs the inputs of one target over a few workers; counts outcomes; keeps the inputs that fail."""

    def __init__(self, seeds, target, folder, workers=2):
        self.seeds = seeds
        self.target = target
        self.folder = folder
        self.failed_folder = os.path.join(folder, "failures")
        self.generation = 0
        self.counts = collections.Counter()
        self.failures = []
        self.workers = [self._start() for _ in range(workers)]

    def _start(self):
        self.generation += 1
        return Worker(os.path.join(self.folder, f"worker-{self.generation}"))

    def _replace(self, worker):
        worker.close()
        shutil.rmtree(worker.folder, ignore_errors=True)
        index = self.workers.index(worker)
        self.workers[index] = self._start()
        return self.workers[index]

    def _fail(self, kind, case, combo, detail):
        index, name, data, _, _ = case
        os.makedirs(self.failed_folder, exist_ok=True)
        allowed, mmap_mode = combo
        path = os.path.join(self.failed_folder, f"{self.target}-{index}-allowed={allowed}-mmap={mmap_mode}.bin")
        with open(path, "wb") as handle:
            handle.write(data)
        self.counts[kind] += 1
        self.failures.append(
            f"{kind}: input {index} (seed {SEED}, from {name!r}) under allowed={allowed!r}, "
            f"mmap_mode={mmap_mode!r}, kept as {path}: {detail}"
        )

    def _result(self, worker, result):
        case = worker.case
        index, name, data, combos, results = case
        combo = combos[result["i"]]
        results.append(result)
        self.counts["loads"] += 1
        outcome = result["outcome"]
        if outcome in ("MemoryError", "undocumented"):
            self._fail(outcome, case, combo, result["detail"])
        else:
            self.counts[outcome] += 1
        if result["violations"]:
            self._fail("code execution", case, combo, "; ".join(result["violations"]))
        if len(results) == len(combos):
            worker.case = None

    def _restart(self, worker, crashed):
        """Start a new worker in place of `worker`, which exited; it loads what its input had left.

        A worker exits after a full-pickle load changed a module (it would
        mislead the loads after it), and when it crashes.
        """
        case = worker.case
        worker.process.wait(timeout=HANG)
        rest = ()
        if case:
            index, name, data, combos, results = case
            rest = combos[len(results) :]
            if crashed:
                returncode = worker.process.returncode
                signal_name = signal.Signals(-returncode).name if returncode < 0 else f"exit {returncode}"
                self._fail("crash", case, rest[0], f"{signal_name}; {worker.stderr_tail()}")
                rest = rest[1:]
        if not crashed:
            self.counts["restarts"] += 1
        worker = self._replace(worker)
        if rest:
            worker.send((index, name, data, rest))

    def run(self, deadline, count):
        index = 0
        try:
            while True:
                for worker in self.workers:
                    if worker.case is None and index < count and time.monotonic() < deadline:
                        worker.send((index,) + M.make_case(self.seeds, self.target, SEED, index))
                        self.counts["inputs"] += 1
                        index += 1
                busy = {worker.process.stdout.fileno(): worker for worker in self.workers if worker.case}
                if not busy:
                    return
                ready, _, _ = select.select(list(busy), [], [], 1.0)
                for fd in ready:
                    worker = busy[fd]
                    results = worker.read()
                    if results is None:
                        self._restart(worker, crashed=True)
                        continue
                    for result in results:
                        self._result(worker, result)
                    if any(result["polluted"] for result in results):
                        self._restart(worker, crashed=False)
                for worker in list(busy.values()):
                    if worker.case and worker in self.workers and time.monotonic() - worker.started > HANG:
                        _, _, _, combos, results = worker.case
                        self._fail("hang", worker.case, combos[len(results)], f"no result in {HANG:.0f} s")
                        worker.case = None
                        self._replace(worker)
        finally:
            for worker in self.workers:
                worker.close()
                shutil.rmtree(worker.folder, ignore_errors=True)


def campaign(seeds, target, tmp_path, record_property):
    run = Campaign(seeds, target, str(tmp_path))
    started = time.monotonic()
    # The time counts from when the workers are ready: their start-up (numpy and joblite imports)
    # takes seconds under the sanitizers, more than a short run's share.
    if EXAMPLES:
        deadline, count = float("inf"), EXAMPLES
    else:
        deadline, count = started + SECONDS * SHARE[target], float("inf")
    run.run(deadline, count)
    counts = run.counts
    outcomes = {
        key: counts[key]
        for key in (
            "loads",
            "loaded",
            "CorruptFileError",
            "JoblibFormatError",
            "JoblibLegacyFormatError",
            "UnsafeLoadError",
        )
        + FAILURES
    }
    outcomes["seconds"] = round(time.monotonic() - started, 1)
    record_property("fuzz_inputs", counts["inputs"])
    record_property("fuzz_outcomes", outcomes)
    assert counts["inputs"] > 0
    shown = [
        failure
        for kind in FAILURES
        for failure in [failure for failure in run.failures if failure.startswith(kind + ":")][:5]
    ]
    assert not run.failures, (
        f"{len(run.failures)} failures in {counts['inputs']} inputs ({outcomes}); "
        f"the first of each kind:\n" + "\n".join(shown)
    )


def test_fuzz_container_streams(seeds, tmp_path, record_property):
    campaign(seeds, "container-stream", tmp_path, record_property)


def test_fuzz_joblib_streams(seeds, tmp_path, record_property):
    campaign(seeds, "joblib-stream", tmp_path, record_property)


def test_fuzz_raw_bytes(seeds, tmp_path, record_property):
    campaign(seeds, "raw", tmp_path, record_property)


def test_mutations_are_made_again_alike(seeds):
    """Input *i* depends on the seed and *i* only, and mutations change the seed."""
    for target in M.CASES:
        first = [M.make_case(seeds, target, SEED, index) for index in range(40)]
        assert first == [M.make_case(seeds, target, SEED, index) for index in range(40)]
        assert first != [M.make_case(seeds, target, "other", index) for index in range(40)]
    case = M.make_case(seeds, "container-stream", SEED, len(M.KNOWN))
    assert case[1] != seeds.containers[case[0]]


def test_rebuilt_containers_and_joblib_pieces_are_valid(seeds):
    """Unmutated, what the mutators rebuild loads as its seed: the mutations start from valid files."""
    for name in seeds.container_names:
        H.assert_same(loads(seeds.rebuild_container(name, seeds.streams[name])), loads(seeds.containers[name]))
    for pieces, compression in seeds.joblib.values():
        whole = M.compress_joblib(b"".join(piece for _, piece in pieces), compression)
        assert repr(loads(whole)) == repr(loads(b"".join(piece for _, piece in pieces)))


# -- sizes claimed by a file are checked before anything is allocated --------------------------
CLAIM_SCRIPT = r"""
import io, struct, sys
sys.path.insert(0, {tests!r})
import _persistence_helpers as H
H.limit_address_space(3 << 30)  # never let a claim eat this machine
import numpy as np
from joblite import _blocks
from joblite.persistence import CorruptFileError, loads

claim = 31 << 30
rng = np.random.default_rng(5)
for codec in {codecs!r}:
    data = rng.integers(0, 256, 10_000, dtype=np.uint8).tobytes()   # 10 KB that do not compress
    frame = _blocks.compress_block(data, 1, codec, 1, chunk_size=1 << 24)
    stored = _blocks.compress_block(data, 1, codec, 1, chunk_size=1 << 24)
    files = {{"block": (H.build(H.program(b"\x97"), [(frame, claim, 1, 1)], ("none", codec), chunk_size=1 << 24),
                       len(frame)),
             "pickle": (H.build(stored, [], ("none", codec), 1, claim, chunk_size=1 << 24), len(stored))}}
    for part, (forged, length) in files.items():
        assert len(forged) < 11_000
        try:
            loads(forged)
            print(codec, part, "loaded")
        except CorruptFileError as exc:
            print(codec, part, "CorruptFileError", length, str(exc).replace(" ", "_"))
        except BaseException as exc:
            print(codec, part, type(exc).__name__, str(exc)[:200].replace(" ", "_"))
"""


def _run_limited(script):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([JOBLITE_ROOT] + sys.path))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return [line.split(" ", 4) for line in result.stdout.splitlines()]


def test_small_compressed_container_claiming_31_gib_is_corrupt():
    """10 KB claiming 31 GiB (chunks of 16 MiB, the most a header may say): CorruptFileError, not MemoryError.

    With a ``max_ratio`` the message gives the claim and the most the stored
    bytes can hold; bz2 has none, and its chunk table, or its first chunk,
    is found wrong before the claim's memory is used.
    """
    codecs = [
        name
        for name in ("blosc-lz4", "blosc-zstd-bitshuffle", "lz4", "zlib", "gzip", "bz2", "lzma", "xz", "zstd")
        if name in compressors.compressor_names()
    ]
    lines = _run_limited(CLAIM_SCRIPT.format(tests=TESTS, codecs=codecs))
    assert len(lines) == 2 * len(codecs)
    for codec, part, outcome, size, message in lines:
        assert outcome == "CorruptFileError", (codec, part, outcome, size, message)
        where = {"block": "block 0:", "pickle": "pickle stream:"}[part]
        assert where in message.replace("_", " "), (codec, message)
        if compressors.get_compressor(codec).max_ratio is not None:
            possible = _blocks.max_raw_length(codec, int(size), 1, 1 << 24)
            assert f"claims_{31 << 30}_raw_bytes" in message and f"at_most_{possible}" in message, message
            assert possible < 400 << 20


JOBLIB_CLAIM_SCRIPT = r"""
import io, sys
sys.path.insert(0, {tests!r})
import _persistence_helpers as H
H.limit_address_space(3 << 30)
import joblib, numpy as np
import _fuzz_mutators as M
from joblite.persistence import CorruptFileError, loads

buffer = io.BytesIO()
joblib.dump({{"a": np.arange(1000, dtype=np.float64)}}, buffer, protocol=3)
data = buffer.getvalue()
assert data.count(b"M\xe8\x03\x85") == 1                  # shape (1000,): BININT2, TUPLE1
forged = data.replace(b"M\xe8\x03\x85", b"\x8a\x05" + (31 << 27).to_bytes(5, "little") + b"\x85")  # 31 GiB
for compression in {compressions!r}:
    try:
        loads(M.compress_joblib(forged, compression))
        print(compression, "loaded")
    except CorruptFileError as exc:
        print(compression, "CorruptFileError", str(exc).replace(" ", "_"))
    except BaseException as exc:
        print(compression, type(exc).__name__, str(exc)[:200].replace(" ", "_"))
"""


def test_small_compressed_joblib_file_claiming_31_gib_is_corrupt():
    """A joblib file whose array wrapper claims 31 GiB: JoblibFormatError (a CorruptFileError), not MemoryError."""
    pytest.importorskip("joblib")
    compressions = [None, "zlib", "gzip", "bz2", "lzma", "xz", "lz4"]
    lines = _run_limited(JOBLIB_CLAIM_SCRIPT.format(tests=TESTS, compressions=compressions))
    assert [line[0] for line in lines] == [str(c) for c in compressions]
    for compression, outcome, message in lines:
        assert outcome == "CorruptFileError", (compression, outcome, message)
        assert f"needs_{31 << 30}_bytes" in message or "truncated" in message, message
        if compression not in ("None", "bz2"):  # bz2: no ratio; its stream is read through, and ends
            assert "can_decompress_to_at_most" in message, message


@pytest.mark.parametrize("codec", ["lz4", "zlib", "gzip", "lzma", "xz", "zstd"])
def test_codec_ratio_bounds_hold_for_the_most_compressible_data(codec):
    """``max_ratio`` is above what each codec reaches on constant data at its strongest level."""
    if codec not in compressors.compressor_names():
        pytest.skip(f"{codec} is not installed")
    compressor = compressors.get_compressor(codec)
    for size in (1 << 20, 1 << 24):  # the chunk length dump writes, and the most a reader accepts
        stored = compressor.compress(bytes(size), compressor.levels[-1])
        assert size <= compressor.max_ratio * len(stored), (codec, size, len(stored))


def test_highly_compressed_valid_files_still_load():
    """Files at the bound (constant data, 1 MiB chunks) are read, by both readers."""
    value = {"zeros": np.zeros(1 << 19), "ones": np.ones((1 << 20, 3), dtype=np.uint8)}
    for codec in [
        name
        for name in ("blosc-lz4", "blosc-zstd-bitshuffle", "lz4", "zlib", "gzip", "bz2", "lzma", "xz", "zstd")
        if name in compressors.compressor_names()
    ]:
        H.assert_same(loads(dumps(value, compress=codec)), value)


def test_max_ratio_must_be_a_positive_int():
    class Lying(compressors.CompressorBase):
        name = "lying-ratio"
        default_level = 1
        max_ratio = 0.5

    with pytest.raises(ValueError, match="max_ratio"):
        compressors.register_compressor("lying-ratio", Lying())


# -- and the round trip, on arrays hypothesis makes up ---------------------------------------
dtypes = st.one_of(
    npst.scalar_dtypes(),
    npst.byte_string_dtypes(max_len=5),
    npst.unicode_string_dtypes(max_len=4),
    npst.nested_dtypes(max_itemsize=40),
    npst.scalar_dtypes().map(lambda d: d.newbyteorder(">") if d.itemsize > 1 else d),
)


@st.composite
def arrays(draw):
    array = draw(npst.arrays(dtypes, npst.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=7)))
    layout = draw(st.sampled_from(["C", "F", "view", "transpose"]))
    if layout == "F":
        array = np.asfortranarray(array)
    elif layout == "view" and array.ndim:
        array = array[tuple(slice(None, None, draw(st.sampled_from([1, 2, -1, -3]))) for _ in range(array.ndim))]
    elif layout == "transpose":
        array = array.T
    return array


def test_fuzz_round_trip(record_property):
    count = collections.Counter()
    codecs = [0] + [name for name in ("lz4", "zlib", "bz2", "lzma", "zstd") if name in compressors.compressor_names()]

    @settings(max_examples=examples(200), **SETTINGS)
    @given(arrays(), st.sampled_from(codecs))
    def fuzz(array, compress):
        count["inputs"] += 1
        got = loads(dumps({"x": array, "again": array}, compress=compress), allowed="numpy")
        assert got["x"] is got["again"]
        H.assert_same(got["x"], array)
        if array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous:
            assert got["x"].flags.f_contiguous
        else:
            assert got["x"].flags.c_contiguous

    fuzz()
    record_property("fuzz_inputs", count["inputs"])
