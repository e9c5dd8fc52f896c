"""Golden vectors: the canonical hash format cannot change by accident.

``data/hash_vectors.json`` lists expressions and the digests ``joblite.hash``
gave them when the format was fixed; it is written by
``data/make_hash_vectors.py``, which is run only when the format changes on
purpose (together with a bump of ``FORMAT_VERSION``).  A failure here means the
byte stream changed: either a bug, or a format change that needs a new version.
"""

import hashlib
import importlib.util
import json
import os
import struct

import numpy as np
import pytest
import xxhash

from joblite import hash
from joblite.hashing import FORMAT_VERSION, HASH_NAMES

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_hash_vectors", os.path.join(DATA, "make_hash_vectors.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _load_generator()
with open(os.path.join(DATA, "hash_vectors.json"), encoding="utf-8") as _handle:
    GOLDEN = json.load(_handle)
VECTORS = GOLDEN["vectors"]


def _id(vector):
    expr = vector["expr"] if len(vector["expr"]) <= 50 else vector["expr"][:47] + "..."
    return f"{expr} [{vector['hash_name']}]"


def test_format_version_is_1():
    assert FORMAT_VERSION == 1
    assert GOLDEN["format_version"] == FORMAT_VERSION


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v) for v in VECTORS])
def test_golden_vector(vector):
    obj = eval(vector["expr"], GENERATOR.namespace())
    assert hash(obj, hash_name=vector["hash_name"]) == vector["digest"]


def test_the_data_file_holds_the_generator_s_vectors():
    listed = [(expr, name) for expr, names in GENERATOR.VECTORS for name in names]
    assert [(v["expr"], v["hash_name"]) for v in VECTORS] == listed
    assert len({v["expr"] for v in VECTORS}) >= 40
    assert {v["hash_name"] for v in VECTORS} == set(HASH_NAMES)


PANDAS_VECTORS = GOLDEN["pandas_vectors"]


@pytest.mark.parametrize("vector", PANDAS_VECTORS, ids=[_id(v) for v in PANDAS_VECTORS])
def test_golden_pandas_vector(vector):
    pd = pytest.importorskip("pandas")
    if int(pd.__version__.split(".")[0]) != GOLDEN["pandas_major"]:
        pytest.skip(f"pandas digests are pinned for pandas {GOLDEN['pandas_major']} (dtype text is pandas' repr)")
    if "requires" in vector:
        pytest.importorskip(vector["requires"])
    obj = eval(vector["expr"], GENERATOR.namespace())
    assert hash(obj, hash_name=vector["hash_name"]) == vector["digest"]


def test_the_data_file_holds_the_generator_s_pandas_vectors():
    listed = [(expr, name, requires) for expr, names, requires in GENERATOR.PANDAS_VECTORS for name in names]
    assert [(v["expr"], v["hash_name"], v.get("requires")) for v in PANDAS_VECTORS] == listed
    assert GOLDEN["pandas_major"] == GENERATOR.PANDAS_MAJOR


def test_pandas_vectors_pin_value_semantics():
    digests = {v["expr"]: v["digest"] for v in PANDAS_VECTORS if v["hash_name"] == "xxh3_128"}
    # a RangeIndex is the int64 Index of its values; unordered categories are a set
    assert digests["pd.RangeIndex(3)"] == digests["pd.Index([0, 1, 2])"]
    unordered = [digest for expr, digest in digests.items() if expr.startswith("pd.Series(pd.Categorical(['b'")]
    assert len(unordered) == 2 and unordered[0] == unordered[1]
    # a MultiIndex is the values its codes select: level order and unused level values do not count
    multi = [digest for expr, digest in digests.items() if expr.startswith("pd.MultiIndex")]
    assert len(multi) == 2 and multi[0] == multi[1]
    assert len(set(digests.values())) == len(digests) - 3


def _digest_of(expr, hash_name="xxh3_128"):
    (digest,) = [v["digest"] for v in VECTORS if v["expr"] == expr and v["hash_name"] == hash_name]
    return digest


def test_vectors_pin_the_normalisations():
    # byte order, layout and scalar/0-d normalisation are part of the format
    assert _digest_of("np.arange(6, dtype='<i4').reshape(2, 3)") == _digest_of(
        "np.arange(6, dtype='>i4').reshape(2, 3)"
    )
    assert _digest_of("np.arange(6, dtype='<i4').reshape(2, 3)", "sha256") == _digest_of(
        "np.arange(6, dtype='>i4').reshape(2, 3)", "sha256"
    )
    assert _digest_of("np.array(['ab', 'é'], dtype='<U2')") == _digest_of("np.array(['ab', 'é'], dtype='>U2')")
    assert _digest_of("np.float64(1.5)") == _digest_of("np.array(1.5)")
    assert _digest_of("np.arange(6, dtype='<i4').reshape(2, 3)") != _digest_of(
        "np.arange(6, dtype='<i4').reshape(3, 2)"
    )
    assert _digest_of("np.arange(6, dtype='<i4').reshape(2, 3)") != _digest_of(
        "np.arange(6, dtype='<i8').reshape(2, 3)"
    )
    packed = "np.array([(1, 2.5), (-3, 0.0)], dtype=[('x', '>i2'), ('y', '<f8')])"
    padded = next(v["expr"] for v in VECTORS if v["expr"].startswith("np.array([(1, 2.5), (-3, 0.0)], dtype={"))
    assert _digest_of(packed) == _digest_of(padded)
    digests = [v["digest"] for v in VECTORS if v["hash_name"] == "xxh3_128"]
    assert len(set(digests)) == len(digests) - 4  # only the four pairs above coincide


# The stream from first principles: a few digests recomputed from the byte layout
# of format version 1 (header b"JLH\x01", one-byte tags, little-endian u64 lengths).
def _u64(n):
    return struct.pack("<Q", n)


HEADER = b"JLH\x01"
BY_HAND = [
    (None, "sha256", HEADER + b"N"),
    ("abc", "xxh3_128", HEADER + b"s" + _u64(3) + b"abc"),
    ([-1, 2.5], "xxh3_128", HEADER + b"l" + _u64(2) + b"i" + struct.pack("<q", -1) + b"f" + struct.pack("<d", 2.5)),
    (
        {"b": None, "a": True},
        "md5",
        HEADER + b"D" + _u64(2) + b"s" + _u64(1) + b"a" + b"T" + b"s" + _u64(1) + b"b" + b"N",
    ),
    (
        np.arange(6, dtype=">i4").reshape(2, 3),
        "xxh3_128",
        HEADER + b"A" + _u64(3) + b"<i4" + _u64(2) + _u64(2) + _u64(3) + _u64(24) + np.arange(6, dtype="<i4").tobytes(),
    ),
]


@pytest.mark.parametrize("obj, hash_name, stream", BY_HAND, ids=["None", "str", "list", "dict", "array"])
def test_stream_layout_from_first_principles(obj, hash_name, stream):
    digest = xxhash.xxh3_128(stream) if hash_name == "xxh3_128" else hashlib.new(hash_name, stream)
    assert hash(obj, hash_name=hash_name) == digest.hexdigest()
