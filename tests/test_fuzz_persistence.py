"""Fuzz test of the loader: hypothesis over mutated golden files, in bounded time.

Inputs are the golden files of ``data/persistence/`` (and a few containers
built here: multi-chunk compressed blocks, zstd when installed) damaged by
random byte flips, insertions, deletions, overwrites with interesting
integers, truncations and splices of two files.  Two targets:

* ``test_fuzz_mutated``: the damaged bytes as they are.  Every damage the
  checksums see must raise ``CorruptFileError``; ``loads`` may also return
  (damage in the zero padding) or, in theory, raise ``UnsafeLoadError``.
* ``test_fuzz_mutated_resealed``: the same, then every checksum recomputed,
  so that the damage reaches the structural checks, the decompressors of the
  active kernel twin and the unpickler.  Outside the pickle stream the only
  error allowed is ``CorruptFileError``; a damaged pickle stream with valid
  checksums may raise any ``Exception`` (the unpickler's own TypeError,
  UnicodeDecodeError...), but with ``allowed='numpy'`` it can never run code.

Run it under both twins (``JOBLITE_PUREPYTHON=1``).  The number of examples
is sized for about a minute in CI in all; set ``JOBLITE_FUZZ_EXAMPLES`` to
run more (per target).  The count of inputs tried is printed in the terminal
summary (``tests/conftest.py``), from the ``fuzz_inputs`` user property.
"""
import collections
import os
import struct

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as npst  # noqa: E402

import joblite  # noqa: E402
from joblite import compressors  # noqa: E402
from joblite.persistence import CorruptFileError, dumps, loads  # noqa: E402

import _persistence_helpers as H  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "persistence")
EXAMPLES = int(os.environ.get("JOBLITE_FUZZ_EXAMPLES", "0") or 0)
SETTINGS = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def examples(default):
    return EXAMPLES or default


def multi_chunk_container(codec):
    """A container whose blocks span several chunks (small chunk size: the file stays small)."""
    array = (np.arange(3000, dtype=np.int64) % 97).astype(np.int32)
    data = dumps(array)
    stream = data[slice(*H.parse(data)["pickle"])]
    chunk = 1000
    frame = compressors.compress_block(memoryview(array).cast("B"), 4, codec, 3, chunk_size=chunk)
    return H.build(stream, [(frame, array.nbytes, 1, 4)], codecs=("none", codec), chunk_size=chunk)


def seeds():
    files = {}
    for name in sorted(os.listdir(DATA)):
        if name.endswith(".jl"):
            with open(os.path.join(DATA, name), "rb") as handle:
                files[name] = handle.read()
    small = {"a": np.arange(20, dtype=">i2"), "v": np.arange(60.0)[::6], "s": "x", "e": np.empty(0)}
    files["small"] = dumps(small)
    files["small-lz4"] = dumps(small, compress="lz4")
    files["multi-chunk-lz4"] = multi_chunk_container("lz4")
    files["multi-chunk-zlib"] = multi_chunk_container("zlib")
    if "zstd" in compressors.compressor_names():
        try:
            files["small-zstd"] = dumps(small, compress="zstd")
        except ImportError:
            pass
    for name, data in files.items():
        loads(data)  # every seed is valid
    return files


SEEDS = seeds()
SEED_NAMES = sorted(SEEDS)
INTERESTING = [0, 1, 7, 63, 64, 65, 255, 256, 4096, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1,
               2**63, 2**64 - 1]


@st.composite
def mutated(draw):
    """``(seed name, damaged bytes)``: 1 to 4 damages of a seed file."""
    name = draw(st.sampled_from(SEED_NAMES))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "flip", "bit", "insert", "delete", "overwrite", "integer",
                                     "truncate", "splice", "duplicate"]))
        size = len(data)
        position = draw(st.integers(0, max(size - 1, 0)))
        if kind == "flip" and size:
            data[position] ^= draw(st.integers(1, 255))
        elif kind == "bit" and size:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=80))
        elif kind == "delete":
            del data[position:position + draw(st.integers(1, 80))]
        elif kind == "overwrite":
            blob = draw(st.binary(min_size=1, max_size=64))
            data[position:position + len(blob)] = blob
        elif kind == "integer":
            width, fmt = draw(st.sampled_from([(1, "<B"), (2, "<H"), (4, "<I"), (8, "<Q")]))
            value = draw(st.sampled_from(INTERESTING + [size, size - 64, position]))
            value %= 1 << (8 * width)
            aligned = position - position % width
            if aligned + width <= size:
                struct.pack_into(fmt, data, aligned, value)
        elif kind == "truncate":
            del data[position:]
        elif kind == "splice":
            other = SEEDS[draw(st.sampled_from(SEED_NAMES))]
            data = data[:position] + other[draw(st.integers(0, len(other))):]
        elif kind == "duplicate":
            length = draw(st.integers(1, 256))
            data[position:position] = data[position:position + length]
    return name, bytes(data)


def run(target, count, record_property, resealed):
    outcomes = collections.Counter()

    @settings(max_examples=count, **SETTINGS)
    @given(mutated())
    def fuzz(case):
        name, data = case
        if resealed:
            data = H.reseal(data)
        outcomes["inputs"] += 1
        try:
            loads(data, allowed="numpy")
        except CorruptFileError:
            outcomes["CorruptFileError"] += 1
            return
        except joblite.UnsafeLoadError:
            outcomes["UnsafeLoadError"] += 1
            return
        except Exception as exc:
            raise AssertionError(f"{target}: damaged {name!r} raised {type(exc).__name__}: {exc}; "
                                 f"input of {len(data)} bytes: {data[:256]!r}...") from None
        outcomes["loaded"] += 1

    fuzz()
    record_property("fuzz_inputs", outcomes["inputs"])
    record_property("fuzz_outcomes", dict(outcomes))
    assert outcomes["inputs"] > 0


def test_fuzz_mutated(record_property):
    run("mutated", examples(3000), record_property, resealed=False)


def test_fuzz_mutated_resealed(record_property):
    run("mutated+resealed", examples(3000), record_property, resealed=True)


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

    @settings(max_examples=examples(400), **SETTINGS)
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
