"""``joblite.hash`` and ``joblite.Hasher``: the behaviour users rely on.

CI runs this file twice, with the compiled twin and with ``JOBLITE_PUREPYTHON=1``;
every test here goes through the public API and so exercises whichever twin is
active.  Byte-for-byte agreement of the two twins is tested in ``test_twins.py``,
the pinned format in ``test_hashing_golden.py``.
"""

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import itertools
import json
import math
import os
import pathlib
import random
import re
import subprocess
import sys
import threading
import tracemalloc
import uuid

import numpy as np
import pytest

import joblite
from joblite import Hasher, hash
from joblite.hashing import FORMAT_VERSION, HASH_NAMES, HashLimitError, closure_digest, key_digest

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))

DIGEST_LENGTHS = {
    "xxh3_128": 32,
    "xxh3_64": 16,
    "md5": 32,
    "sha1": 40,
    "sha256": 64,
    "blake2b": 128,
}


def _run_python(code, timeout=120, **env_changes):
    """Run ``python -c code`` with the joblite under test first on the path; return stdout."""
    env = dict(os.environ)
    env.update(env_changes)
    env["PYTHONPATH"] = os.pathsep.join(
        [PACKAGE_PARENT] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# -- importable helpers (module level on purpose: hashed by module and qualified name) --
class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Item:
    name: str
    values: list


@dataclasses.dataclass(frozen=True)
class FrozenItem:
    name: str
    weight: float


Point = collections.namedtuple("Point", ["x", "y"])
Other = collections.namedtuple("Other", ["x", "y"])


class Plain:
    """An ordinary class: hashed through ``__reduce_ex__`` (its ``__dict__``)."""

    def __init__(self, *args, **kwargs):
        for index, value in enumerate(args):
            setattr(self, f"a{index}", value)
        self.__dict__.update(kwargs)

    def total(self, extra=0):
        return extra

    def other(self):
        return None


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y


class WithGetstate:
    def __init__(self, value, cache):
        self.value = value
        self.cache = cache

    def __getstate__(self):
        return {"value": self.value}


class BadReduce:
    """Cannot be hashed: its ``__reduce_ex__`` raises."""

    def __reduce_ex__(self, protocol):
        raise RuntimeError("BadReduce refuses to be reduced")


class InterruptingReduce:
    def __reduce_ex__(self, protocol):
        raise KeyboardInterrupt


def importable_function(x, y=1):
    return x + y


def other_importable_function(x, y=1):
    return x + y


def make_adder(k):
    def add(x):
        return x + k

    return add


def make_lambda_with_default(k):
    return lambda x, y=k: x + y


def make_multiplier(k):
    def mul(x):
        return x * k

    return mul


def _generator():
    yield 1


# -- digest format -----------------------------------------------------------------
def test_default_digest_is_32_lowercase_hex_chars():
    digest = hash({"a": [1, 2.5, "x"]})
    assert re.fullmatch(r"[0-9a-f]{32}", digest)
    assert digest == hash({"a": [1, 2.5, "x"]}, hash_name="xxh3_128")


def test_hash_names_are_the_documented_ones():
    assert HASH_NAMES[0] == "xxh3_128"
    assert set(HASH_NAMES) == set(DIGEST_LENGTHS)
    assert FORMAT_VERSION == 1


@pytest.mark.parametrize("hash_name", sorted(DIGEST_LENGTHS))
def test_digest_length_per_hash_name(hash_name):
    obj = (1, "a", np.arange(3))
    digest = hash(obj, hash_name=hash_name)
    assert re.fullmatch(f"[0-9a-f]{{{DIGEST_LENGTHS[hash_name]}}}", digest)
    assert digest == hash(obj, hash_name=hash_name)
    hasher = Hasher(hash_name=hash_name).update(obj)
    assert hasher.hexdigest() == digest
    assert hasher.digest() == bytes.fromhex(digest)


def test_hash_names_give_different_digests():
    digests = {hash([1, 2, 3], hash_name=name) for name in HASH_NAMES}
    assert len(digests) == len(HASH_NAMES)


@pytest.mark.parametrize("bad", ["md4", "XXH3_128", "sha-256", "", None, 128])
def test_bad_hash_name_raises_value_error_listing_the_choices(bad):
    for call in (lambda: hash(1, hash_name=bad), lambda: Hasher(hash_name=bad)):
        with pytest.raises(ValueError) as excinfo:
            call()
        message = str(excinfo.value)
        assert repr(bad) in message
        for name in HASH_NAMES:
            assert name in message


def test_coerce_mmap_is_accepted_and_has_no_effect(tmp_path):
    array = np.arange(100, dtype=np.float64)
    mm = np.memmap(tmp_path / "a.dat", dtype=np.float64, mode="w+", shape=(100,))
    mm[:] = array
    mm.flush()
    obj = {"mm": mm, "x": [1, 2]}
    for coerce in (True, False):
        assert hash(mm, coerce_mmap=coerce) == hash(array)
        assert hash(obj, coerce_mmap=coerce) == hash(obj)
        assert hash(obj, "sha256", coerce) == hash(obj, hash_name="sha256")


# -- determinism across processes and PYTHONHASHSEED ---------------------------------
NESTED_SOURCE = """
import collections, datetime, decimal, uuid
import numpy as np
OBJ = {
    "strings": {"alpha", "beta", "gamma", "delta", "epsilon"} | {f"s{i}" for i in range(200)},
    "frozen": frozenset({"x", "y", frozenset({"p", "q"}), ("t", 1)}),
    "mixed_keys": {1: "a", "b": 2, (1,): 3, None: 4, 2.5: 5, b"k": 6, frozenset({"z"}): 7},
    "mixed_set": {1, "a", (2, 3), 4.5, None, b"x", frozenset({1, "b"})},
    "str_keys": {f"key{i}": i * 1.5 for i in range(300)},
    "int_keys": {i * 7919 % 1000: str(i) for i in range(300)},
    "nested": [{"deep": {"er": {"set": {"u", "v"}}}}, ({"w"}, frozenset())],
    "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
    "default": collections.defaultdict(list, {"k": [1, {"m", "n"}]}),
    "when": datetime.datetime(2024, 2, 29, 12, 0, tzinfo=datetime.timezone.utc),
    "money": decimal.Decimal("12.50"),
    "id": uuid.UUID(int=12345),
    "array": np.arange(12, dtype=">i4").reshape(3, 4).T,
    "objects": np.array([{"a", "b"}, {"c": 1, 2: "d"}], dtype=object),
}
"""

CHILD_CODE = (
    NESTED_SOURCE
    + """
import json, joblite
print(json.dumps([joblite.__with_ext__] + [joblite.hash(OBJ, hash_name=n) for n in ("xxh3_128", "sha256")]))
"""
)


def test_digest_is_deterministic_across_processes_and_hash_seeds():
    namespace = {}
    exec(NESTED_SOURCE, namespace)
    expected = [joblite.__with_ext__, hash(namespace["OBJ"]), hash(namespace["OBJ"], "sha256")]
    for seed in ("0", "4242"):
        assert json.loads(_run_python(CHILD_CODE, PYTHONHASHSEED=seed)) == expected


def test_str_sets_hash_the_same_whatever_their_iteration_order():
    words = [f"w{i}" for i in range(500)]
    shuffled = list(words)
    random.Random(1).shuffle(shuffled)
    a, b = set(words), set()
    for word in shuffled:
        b.add(word)
    assert hash(a) == hash(b)
    assert hash(frozenset(a)) == hash(frozenset(shuffled))


# -- value semantics for arrays ------------------------------------------------------
NUMERIC_DTYPES = [
    "?",
    "i1",
    "u1",
    "i2",
    "u2",
    "i4",
    "u4",
    "i8",
    "u8",
    "f2",
    "f4",
    "f8",
    "g",
    "c8",
    "c16",
    "G",
    "M8[us]",
    "m8[ns]",
]
MULTIBYTE_DTYPES = [d for d in NUMERIC_DTYPES if np.dtype(d).itemsize > 1] + ["U3"]


def _sample(dtype, shape=(6, 6, 10)):
    size = int(np.prod(shape))
    if np.dtype(dtype).kind == "U":
        return np.array([str(i) for i in range(size)], dtype=dtype).reshape(shape)
    return np.arange(size).astype(dtype).reshape(shape)


def test_view_and_copy_hash_equal():
    base = np.arange(1000, dtype=np.float64).reshape(10, 100)
    view = base[2:7, 10:60]
    assert not view.flags.c_contiguous
    assert hash(view) == hash(view.copy()) == hash(np.array(view.tolist()))
    assert hash(base[3]) == hash(base[3].copy())


def test_c_and_f_order_hash_equal():
    c = np.arange(24, dtype=np.int64).reshape(4, 6)
    f = np.asfortranarray(c)
    assert f.flags.f_contiguous and not f.flags.c_contiguous
    assert hash(c) == hash(f)
    assert hash(c.T) == hash(np.ascontiguousarray(c.T)) == hash(f.T)
    assert hash(c) != hash(c.T)


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_non_contiguous_slices_of_every_numeric_dtype(dtype):
    a = _sample(dtype)
    view = a[::-2, 1::2, ::3]
    assert not view.flags.c_contiguous
    assert hash(view) == hash(view.copy()) == hash(np.ascontiguousarray(view))
    assert hash(view) != hash(a)
    assert hash(a.transpose(2, 0, 1)) == hash(a.transpose(2, 0, 1).copy())
    assert hash(a.transpose(2, 0, 1)) != hash(a)


@pytest.mark.parametrize("dtype", MULTIBYTE_DTYPES)
def test_big_and_little_endian_hash_equal(dtype):
    little = _sample(dtype).astype(np.dtype(dtype).newbyteorder("<"))
    big = little.astype(little.dtype.newbyteorder(">"))
    assert big.dtype.byteorder == ">" and (big == little).all()
    assert hash(big) == hash(little)
    assert hash(big[::-2, 1::2, ::3]) == hash(little[::-2, 1::2, ::3].copy())
    assert hash(big.T) == hash(little.T)
    # the same bytes reinterpreted with the other byte order are other values
    assert hash(little.view(little.dtype.newbyteorder(">"))) != hash(little)


def test_native_byte_order_spellings_hash_equal():
    a = np.arange(5, dtype="=i4")
    assert hash(a) == hash(a.astype("<i4")) == hash(a.astype(">i4"))
    assert hash(np.dtype("<f8")) == hash(np.dtype(">f8")) == hash(np.dtype("f8"))
    assert hash(np.dtype("f8")) != hash(np.dtype("f4"))


def test_negative_strides_and_3d_transposes():
    a = np.arange(2 * 3 * 4 * 5, dtype=np.int32).reshape(2, 3, 4, 5)
    for view in (a[::-1], a[:, ::-1, :, ::-2], a.transpose(3, 1, 0, 2), a.T, a.swapaxes(1, 2)[..., ::2]):
        assert hash(view) == hash(view.copy()) == hash(np.asfortranarray(view))
    assert hash(a[::-1]) != hash(a)
    f3 = np.asfortranarray(np.arange(60, dtype=np.float32).reshape(3, 4, 5))
    assert hash(f3) == hash(np.ascontiguousarray(f3))


def test_broadcast_zero_stride_view_hashes_like_its_copy():
    b = np.broadcast_to(np.arange(7, dtype=np.int16), (5, 7))
    assert b.strides[0] == 0
    assert hash(b) == hash(b.copy())


def test_memmap_hashes_like_ndarray(tmp_path):
    data = np.arange(600, dtype=np.float32).reshape(20, 30)
    path = tmp_path / "data.bin"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(20, 30))
    mm[:] = data
    mm.flush()
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=(20, 30))
    fo = np.memmap(path, dtype=np.float32, mode="r", shape=(30, 20), order="F")
    offset = np.memmap(path, dtype=np.float32, mode="r", offset=4 * 30, shape=(19, 30))
    assert isinstance(ro, np.memmap)
    assert hash(mm) == hash(ro) == hash(data)
    assert hash(ro[::3, ::-2]) == hash(data[::3, ::-2].copy())
    assert hash(fo) == hash(data.reshape(-1).reshape((30, 20), order="F"))
    assert hash(offset) == hash(data[1:])
    assert hash({"x": ro}) == hash({"x": data})


def test_structured_arrays_hash_by_field_values_not_layout():
    values = [(1, 2.5, b"ab"), (-3, 1e300, b"xyz")]
    packed = np.dtype([("x", "<i4"), ("y", "<f8"), ("s", "S3")])
    aligned = np.dtype([("x", "<i4"), ("y", "<f8"), ("s", "S3")], align=True)
    padded = np.dtype(
        {"names": ["x", "y", "s"], "formats": ["<i4", "<f8", "S3"], "offsets": [0, 8, 16], "itemsize": 24}
    )
    swapped = np.dtype([("x", ">i4"), ("y", ">f8"), ("s", "S3")])
    reference = hash(np.array(values, dtype=packed))
    for dtype in (aligned, padded, swapped):
        assert dtype != packed
        assert hash(np.array(values, dtype=dtype)) == reference
    # padding bytes do not count, whatever garbage they hold
    garbage = np.frombuffer(bytes(range(48)), dtype=padded).copy()
    garbage[:] = values
    assert hash(garbage) == reference
    # a strided view of a padded array
    assert hash(np.array(values * 3, dtype=padded)[::3]) == hash(np.array(values * 3, dtype=packed)[::3])
    # names, order and formats of the fields count
    renamed = np.dtype([("x", "<i4"), ("z", "<f8"), ("s", "S3")])
    reordered = np.dtype([("y", "<f8"), ("x", "<i4"), ("s", "S3")])
    wider = np.dtype([("x", "<i8"), ("y", "<f8"), ("s", "S3")])
    assert hash(np.array(values, dtype=renamed)) != reference
    assert hash(np.array([(v[1], v[0], v[2]) for v in values], dtype=reordered)) != reference
    assert hash(np.array(values, dtype=wider)) != reference
    assert hash(np.array(values[::-1], dtype=packed)) != reference


def test_nested_structured_with_subarrays_and_byte_swapped_fields():
    little = np.dtype([("a", "<i2", (2,)), ("b", [("c", "<f4"), ("d", "<u8")])])
    big = np.dtype([("a", ">i2", (2,)), ("b", [("c", ">f4"), ("d", ">u8")])])
    values = [([1, -2], (0.5, 7)), ([3, 4], (-1.5, 2**40))]
    assert hash(np.array(values, dtype=big)) == hash(np.array(values, dtype=little))
    assert hash(np.array(values, dtype=big)[::-1]) == hash(np.array(values[::-1], dtype=little))


def test_datetime64_arrays():
    days = np.array(["2024-01-01", "2024-02-29", "NaT"], dtype="M8[D]")
    assert hash(days) == hash(days.astype(">M8[D]"))
    assert hash(days) != hash(days.astype("M8[s]"))  # same instants, other unit
    assert hash(days[:2]) != hash(days[1:])
    deltas = np.array([1, 2, 3], dtype="m8[s]")
    assert hash(deltas) != hash(np.array([1, 2, 3], dtype="i8"))


def test_string_dtypes():
    u = np.array(["a", "bc", "déf", "\U0001f600"], dtype="<U4")
    assert hash(u) == hash(u.astype(">U4"))
    assert hash(u[::-2]) == hash(u[::-2].copy())
    assert hash(u) != hash(u.astype("U5"))  # other itemsize
    s = np.array([b"a", b"bc", b"\x00\xff"], dtype="S3")
    assert hash(s[::2]) == hash(s[::2].copy())
    assert hash(s) != hash(s.astype("S4"))
    assert hash(np.array(["ab"])) != hash(np.array([b"ab"]))


def test_object_arrays_hash_element_by_element():
    def build():
        arr = np.empty(6, dtype=object)
        arr[:] = [1, "a", None, [1, 2], {"k": {3, 4}}, np.arange(3)]
        return arr

    a, b = build(), build()
    assert a[3] is not b[3]
    assert hash(a) == hash(b)
    assert hash(a.reshape(2, 3)) == hash(np.asfortranarray(b.reshape(2, 3)))
    assert hash(a[::-1]) == hash(a[::-1].copy())
    assert hash(a.reshape(2, 3)) != hash(a.reshape(3, 2))
    b[3] = [1, 3]
    assert hash(a) != hash(b)
    assert hash(a) != hash(list(build()))


def test_zero_dim_arrays_and_numpy_scalars():
    assert hash(np.float64(1.5)) == hash(np.array(1.5))
    assert hash(np.float64(1.5)) != hash(1.5)
    assert hash(np.array(1.5)) != hash(np.array([1.5]))
    assert hash(np.int32(7)) == hash(np.array(7, dtype=np.int32))
    assert hash(np.int32(7)) != hash(np.int64(7))
    assert hash(np.int64(7)) != hash(7)
    assert hash(np.bool_(True)) != hash(True)
    assert hash(np.str_("ab")) == hash(np.array("ab"))
    assert hash(np.str_("ab")) != hash("ab")
    assert hash(np.datetime64("2024-01-01")) == hash(np.array(np.datetime64("2024-01-01")))
    assert hash(np.complex128(1 + 2j)) != hash(np.complex128(1 - 2j))
    assert hash(np.float32(0.0)) != hash(np.float32(-0.0))


def test_different_dtype_or_shape_gives_different_digest():
    a = np.arange(12, dtype=np.int64)
    digests = {
        hash(a),
        hash(a.reshape(3, 4)),
        hash(a.reshape(4, 3)),
        hash(a.reshape(2, 2, 3)),
        hash(a.astype(np.int32)),
        hash(a.astype(np.uint64)),
        hash(a.astype(np.float64)),
        hash(a.view(np.float64)),
        hash(a.view(np.uint8)),
        hash(np.zeros((0, 3))),
        hash(np.zeros((3, 0))),
        hash(np.zeros(0, dtype=np.int64)),
        hash(np.zeros(0, dtype=np.float64)),
    }
    assert len(digests) == 13


LONGDOUBLE_IS_PADDED = np.finfo(np.longdouble).nmant == 63 and np.dtype(np.longdouble).itemsize > 10


@pytest.mark.skipif(not LONGDOUBLE_IS_PADDED, reason="long double has no padding bytes here")
@pytest.mark.parametrize("dtype", ["g", "G"])
def test_long_double_arrays_with_equal_values_hash_equal(dtype):
    a = np.arange(100).astype(dtype)
    raw = bytearray(a.tobytes())
    size = np.dtype("g").itemsize
    for start in range(10, len(raw), size):
        raw[start : start + size - 10] = b"\xab" * (size - 10)  # other padding, same values
    b = np.frombuffer(bytes(raw), dtype=dtype)
    assert (a == b).all()
    assert hash(a) == hash(b)


def test_structured_arrays_with_an_object_field_normalise_byte_order_and_padding():
    values = [(1, "a"), (2, ("b", 3))]
    packed = np.dtype([("x", "<i4"), ("o", "O")])
    swapped = np.dtype([("x", ">i4"), ("o", "O")])
    padded = np.dtype({"names": ["x", "o"], "formats": ["<i4", "O"], "offsets": [0, 16], "itemsize": 32})
    reference = hash(np.array(values, dtype=packed))
    assert hash(np.array(values, dtype=swapped)) == reference
    assert hash(np.array(values, dtype=padded)) == reference


def test_non_contiguous_views_with_many_dimensions():
    a = np.arange(6.0).reshape((1,) * 38 + (2, 3))
    view = a.swapaxes(-1, -2)
    assert view.ndim == 40 and not view.flags.c_contiguous
    assert hash(view) == hash(np.ascontiguousarray(view))


# -- containers, ordering, and equal-looking values that must differ --------------
def test_dict_order_does_not_matter():
    items = [(f"k{i}", i) for i in range(100)]
    shuffled = list(items)
    random.Random(2).shuffle(shuffled)
    assert hash(dict(items)) == hash(dict(shuffled))
    assert hash({i: str(i) for i in range(50)}) == hash({i: str(i) for i in reversed(range(50))})


def test_dict_and_set_order_does_not_matter_with_unorderable_mixed_keys():
    assert hash({1: "a", "b": 2, (1,): 3}) == hash({(1,): 3, "b": 2, 1: "a"})
    assert hash({1: "a", "b": 2, (1,): 3}) != hash({1: "a", "b": 2, (1,): 4})
    assert hash({1: "a", "b": 2, (1,): 3}) != hash({1: "a", "b": 2, (2,): 3})
    elements = [1, "a", (2, 3), 4.5, None, b"x", frozenset({1, "b"})]
    for seed in range(3):
        shuffled = list(elements)
        random.Random(seed).shuffle(shuffled)
        assert hash(set(shuffled)) == hash(set(elements))
        assert hash(frozenset(shuffled)) == hash(frozenset(elements))
    assert hash(set(elements)) != hash(frozenset(elements))
    assert hash(set(elements)) != hash(set(elements[1:]))


def test_ordered_dict_is_order_sensitive():
    a = collections.OrderedDict([("x", 1), ("y", 2)])
    b = collections.OrderedDict([("y", 2), ("x", 1)])
    assert hash(a) != hash(b)
    assert hash(a) == hash(collections.OrderedDict([("x", 1), ("y", 2)]))
    assert hash(a) != hash({"x": 1, "y": 2})


def test_defaultdict_differs_from_dict():
    d = collections.defaultdict(list, {"a": [1]})
    assert hash(d) != hash({"a": [1]})
    assert hash(d) != hash(collections.defaultdict(set, {"a": [1]}))
    assert hash(d) == hash(collections.defaultdict(list, {"a": [1]}))


def test_equal_looking_scalars_differ_pairwise():
    values = [1, 1.0, True, "1", b"1", bytearray(b"1"), 1 + 0j, np.int64(1), [1], (1,), {1}]
    digests = [hash(v) for v in values]
    assert len(set(digests)) == len(values)
    falsy = [None, 0, False, 0.0, -0.0, "", b"", bytearray(), (), [], {}, set(), frozenset()]
    assert len({hash(v) for v in falsy}) == len(falsy)


def test_negative_zero_differs_from_zero():
    assert hash(-0.0) != hash(0.0)
    assert hash(complex(-0.0, 0.0)) != hash(0j)
    assert hash(np.array([-0.0])) != hash(np.array([0.0]))


def test_list_and_tuple_differ():
    assert hash([1, 2]) != hash((1, 2))
    assert hash([]) != hash(())
    assert hash([[1], (2,)]) != hash([(1,), [2]])


def test_bytes_and_bytearray_differ():
    assert hash(b"abc") != hash(bytearray(b"abc"))
    assert hash(bytearray(b"abc")) == hash(bytearray(b"abc"))


def test_container_boundaries_are_unambiguous():
    assert hash(["ab", "c"]) != hash(["a", "bc"])
    assert hash([[1, 2], [3]]) != hash([[1], [2, 3]])
    assert hash({"a": "bc"}) != hash({"ab": "c"})
    assert hash(("a", ("b",))) != hash((("a",), "b"))


# -- coverage of every supported type ------------------------------------------------
def _zone(name):
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        return zoneinfo.ZoneInfo(name)
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip(f"time zone {name} not available")


UTC = datetime.timezone.utc
PLUS_ONE = datetime.timezone(datetime.timedelta(hours=1))

# name -> (factory of the object, factory of a changed object).  Factories build a
# new object every call: equal values with different identities must hash equal.
TYPE_CASES = {
    "None": (lambda: None, lambda: 0),
    "bool": (lambda: True, lambda: False),
    "int": (lambda: 123, lambda: 124),
    "int64-max": (lambda: 2**63 - 1, lambda: 2**63 - 2),
    "int64-min": (lambda: -(2**63), lambda: -(2**63) + 1),
    "int-past-int64": (lambda: 2**63, lambda: -(2**63) - 1),
    "bigint+": (lambda: 2**200, lambda: 2**200 + 1),
    "bigint-": (lambda: -(2**200), lambda: -(2**200) - 1),
    "float": (lambda: 1.5, lambda: math.nextafter(1.5, 2.0)),
    "float-nan": (lambda: math.nan, lambda: math.inf),
    "float-inf": (lambda: math.inf, lambda: -math.inf),
    "complex": (lambda: 1 + 2j, lambda: 1 - 2j),
    "str": (lambda: "héllo wörld", lambda: "héllo world"),
    "str-lone-surrogate": (lambda: "a\ud800b", lambda: "a\udc00b"),
    "str-surrogate-pair-vs-char": (lambda: "\ud83d\ude00", lambda: "\U0001f600"),
    "str-long": (lambda: "x" * 70_000, lambda: "x" * 69_999 + "y"),
    "bytes": (lambda: b"\x00\x01\xff", lambda: b"\x00\x01\xfe"),
    "bytearray": (lambda: bytearray(b"abc"), lambda: bytearray(b"abd")),
    "memoryview": (lambda: memoryview(b"abc"), lambda: memoryview(b"abd")),
    "memoryview-format": (lambda: memoryview(b"abcd").cast("i"), lambda: memoryview(b"abcd")),
    "memoryview-strided": (
        lambda: memoryview(np.arange(10, dtype=np.uint8))[::2],
        lambda: memoryview(np.arange(10, dtype=np.uint8))[1::2],
    ),
    "list": (lambda: [1, "a", None], lambda: [1, "a"]),
    "tuple": (lambda: (1, "a", None), lambda: (1, "a", False)),
    "dict": (lambda: {"a": 1, "b": [2]}, lambda: {"a": 1, "b": [3]}),
    "dict-int-keys": (lambda: {1: "a", 2: "b"}, lambda: {1: "a", 3: "b"}),
    "set": (lambda: {"a", "b"}, lambda: {"a", "c"}),
    "frozenset": (lambda: frozenset({1, 2}), lambda: frozenset({1, 3})),
    "OrderedDict": (lambda: collections.OrderedDict(a=1, b=2), lambda: collections.OrderedDict(b=2, a=1)),
    "defaultdict": (lambda: collections.defaultdict(int, a=1), lambda: collections.defaultdict(int, a=2)),
    "range": (lambda: range(0, 10, 2), lambda: range(0, 10, 3)),
    "slice": (lambda: slice(1, None, 2), lambda: slice(1, None, 3)),
    "Ellipsis": (lambda: Ellipsis, lambda: None),
    "datetime": (
        lambda: datetime.datetime(2024, 2, 29, 12, 30, 15, 123456),
        lambda: datetime.datetime(2024, 2, 29, 12, 30, 15, 123457),
    ),
    "datetime-tz": (
        lambda: datetime.datetime(2024, 3, 1, 9, tzinfo=UTC),
        lambda: datetime.datetime(2024, 3, 1, 9, tzinfo=PLUS_ONE),
    ),
    "datetime-naive-vs-utc": (
        lambda: datetime.datetime(2024, 3, 1, 9),
        lambda: datetime.datetime(2024, 3, 1, 9, tzinfo=UTC),
    ),
    "datetime-zoneinfo": (
        lambda: datetime.datetime(2024, 7, 1, 9, tzinfo=_zone("Europe/Paris")),
        lambda: datetime.datetime(2024, 7, 1, 9, tzinfo=_zone("Europe/London")),
    ),
    "datetime-fold": (
        lambda: datetime.datetime(2024, 10, 27, 2, 30, tzinfo=_zone("Europe/Paris")),
        lambda: datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=_zone("Europe/Paris")),
    ),
    "date": (lambda: datetime.date(2024, 2, 29), lambda: datetime.date(2024, 3, 1)),
    "time": (lambda: datetime.time(12, 30, tzinfo=UTC), lambda: datetime.time(12, 30, tzinfo=PLUS_ONE)),
    "timedelta": (lambda: datetime.timedelta(days=1, seconds=2), lambda: datetime.timedelta(days=1, seconds=3)),
    "Decimal": (lambda: decimal.Decimal("3.14159"), lambda: decimal.Decimal("3.14158")),
    "Decimal-nan": (lambda: decimal.Decimal("NaN"), lambda: decimal.Decimal("Infinity")),
    "Fraction": (lambda: fractions.Fraction(1, 3), lambda: fractions.Fraction(1, 4)),
    "UUID": (
        lambda: uuid.UUID("12345678-1234-5678-1234-567812345678"),
        lambda: uuid.UUID("12345678-1234-5678-1234-567812345679"),
    ),
    "Path": (lambda: pathlib.Path("data/input.csv"), lambda: pathlib.Path("data/input.tsv")),
    "PurePosixPath": (lambda: pathlib.PurePosixPath("/a/b"), lambda: pathlib.PureWindowsPath("/a/b")),
    "Enum": (lambda: Color.RED, lambda: Color.GREEN),
    "IntEnum": (lambda: Level.LOW, lambda: 1),
    "dataclass": (lambda: Item("a", [1, 2]), lambda: Item("a", [1, 3])),
    "frozen-dataclass": (lambda: FrozenItem("a", 1.0), lambda: FrozenItem("b", 1.0)),
    "namedtuple": (lambda: Point(1, 2), lambda: Point(1, 3)),
    "namedtuple-vs-other-class": (lambda: Point(1, 2), lambda: Other(1, 2)),
    "namedtuple-vs-tuple": (lambda: Point(1, 2), lambda: (1, 2)),
    "function": (lambda: importable_function, lambda: other_importable_function),
    "builtin-function": (lambda: len, lambda: abs),
    "stdlib-function": (lambda: os.path.join, lambda: os.path.split),
    "method-descriptor": (lambda: str.upper, lambda: str.lower),
    "class": (lambda: Plain, lambda: Slotted),
    "builtin-class": (lambda: int, lambda: float),
    "numpy-class": (lambda: np.ndarray, lambda: np.memmap),
    "closure": (lambda: make_adder(1), lambda: make_adder(2)),
    "closure-other-code": (lambda: make_adder(1), lambda: make_multiplier(1)),
    "lambda-default": (lambda: make_lambda_with_default(1), lambda: make_lambda_with_default(2)),
    "bound-method": (lambda: Plain(1).total, lambda: Plain(2).total),
    "bound-method-other-name": (lambda: Plain(1).total, lambda: Plain(1).other),
    "builtin-bound-method": (lambda: [1, 2].append, lambda: [1, 3].append),
    "partial": (
        lambda: functools.partial(importable_function, 1, y=2),
        lambda: functools.partial(importable_function, 1, y=3),
    ),
    "partial-args": (
        lambda: functools.partial(importable_function, 1),
        lambda: functools.partial(importable_function, 2),
    ),
    "object-dict": (lambda: Plain(1, name="a"), lambda: Plain(1, name="b")),
    "object-slots": (lambda: Slotted(1, [2]), lambda: Slotted(1, [3])),
    "object-getstate": (lambda: WithGetstate(1, cache=[1]), lambda: WithGetstate(2, cache=[1])),
    "object-class-matters": (lambda: Plain(x=1), lambda: WithGetstate(1, None)),
    "numpy-array": (lambda: np.arange(10.0), lambda: np.arange(10.0) + 1e-12),
    "numpy-scalar": (lambda: np.float32(1.5), lambda: np.float32(2.5)),
    "numpy-dtype": (lambda: np.dtype("i4"), lambda: np.dtype("u4")),
    "numpy-structured-dtype": (lambda: np.dtype([("a", "i4")]), lambda: np.dtype([("b", "i4")])),
    "masked-array": (
        lambda: np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]),
        lambda: np.ma.masked_array([1, 2, 3], mask=[0, 0, 1]),
    ),
}


@pytest.mark.parametrize("name", sorted(TYPE_CASES))
def test_every_supported_type_is_stable_and_sensitive(name):
    make, make_changed = TYPE_CASES[name]
    first, second, changed = make(), make(), make_changed()
    digest = hash(first)
    assert hash(first) == digest  # same object twice
    assert hash(second) == digest  # an equal, separately built object
    assert hash(changed) != digest
    assert hash([first, changed]) != hash([changed, first])


@pytest.mark.parametrize(
    "make, make_changed",
    [
        (lambda: np.add, lambda: np.subtract),
        (lambda: re.compile("a+"), lambda: re.compile("b+")),
        (lambda: int | str, lambda: int | bytes),
    ],
    ids=["numpy-ufunc", "re.Pattern", "UnionType"],
)
def test_objects_pickled_through_copyreg(make, make_changed):
    assert hash(make()) == hash(make())
    assert hash(make()) != hash(make_changed())


def test_getstate_hashes_the_pickled_state_only():
    assert hash(WithGetstate(1, cache=[1])) == hash(WithGetstate(1, cache=[2]))


def test_local_functions_hash_by_code_and_closure_values():
    assert hash(make_adder(5)) == hash(make_adder(5))
    assert make_adder(5) is not make_adder(5)
    assert hash(make_adder(5)) != hash(make_adder(6))
    assert hash(make_adder([1, 2])) == hash(make_adder([1, 2]))
    assert hash(make_lambda_with_default(3)) == hash(make_lambda_with_default(3))
    assert hash(make_lambda_with_default(3)) != hash(make_lambda_with_default(4))
    assert hash(lambda x: x + 1) != hash(lambda x: x + 2)

    def kwonly(*, a=1):
        return a

    first = hash(kwonly)
    kwonly.__kwdefaults__ = {"a": 2}
    assert hash(kwonly) != first


def test_importable_function_hashes_by_name_not_code():
    assert hash(importable_function) == hash(importable_function)
    assert hash(importable_function) != hash(other_importable_function)
    assert hash(importable_function) != hash(make_adder(1))


def test_recursive_local_function():
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    digest = hash(fact)
    assert hash(fact) == digest


# -- pandas by value -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pd():
    return pytest.importorskip("pandas")


def _frame(pd, **changes):
    columns = {"a": np.arange(4, dtype=np.float64), "b": np.arange(4, dtype=np.float64) * 10}
    columns.update(changes)
    return pd.DataFrame(columns)


def test_dataframe_by_value_whatever_its_internal_layout(pd):
    df = _frame(pd)
    reference = hash(df)
    assert hash(df) == reference
    assert hash(df.copy()) == reference
    assert hash(df.copy(deep=False)) == reference
    from_2d = pd.DataFrame(np.column_stack([np.arange(4.0), np.arange(4.0) * 10]), columns=["a", "b"])
    assert hash(from_2d) == reference
    column_by_column = pd.DataFrame(index=range(4))
    column_by_column["a"] = np.arange(4.0)
    column_by_column["b"] = np.arange(4.0) * 10
    assert hash(column_by_column) == reference
    fortran = pd.DataFrame(
        np.asfortranarray(np.column_stack([np.arange(4.0), np.arange(4.0) * 10])), columns=["a", "b"]
    )
    assert hash(fortran) == reference
    explicit_index = df.set_axis(pd.Index(np.arange(4, dtype=np.int64)), axis=0)
    assert isinstance(df.index, pd.RangeIndex) and not isinstance(explicit_index.index, pd.RangeIndex)
    assert hash(explicit_index) == reference
    assert hash(df.iloc[::-1].iloc[::-1]) == reference


def test_dataframe_differences_are_seen(pd):
    df = _frame(pd)
    reference = hash(df)
    changed = [
        df.rename(columns={"a": "A"}),
        df.rename_axis("idx"),
        df.rename_axis("cols", axis=1),
        df.astype({"a": np.float32}),
        df.astype({"a": np.int64}),
        _frame(pd, b=np.array([0.0, 10.0, 20.0, 31.0])),
        df.set_axis(pd.Index(np.arange(1, 5)), axis=0),
        df[["b", "a"]],
        df.iloc[:3],
        df.T,
    ]
    digests = [hash(frame) for frame in changed]
    assert reference not in digests
    assert len(set(digests)) == len(changed)


def test_series_and_index_by_value(pd):
    s = pd.Series([1.0, 2.0, 3.0], name="x")
    assert hash(s) == hash(s.copy()) == hash(pd.Series(np.array([1.0, 2.0, 3.0]), name="x"))
    assert hash(s) != hash(s.rename("y"))
    assert hash(s) != hash(s.astype(np.float32))
    assert hash(s) != hash(pd.Series([1.0, 2.0, 4.0], name="x"))
    assert hash(s) != hash(s.set_axis(["a", "b", "c"]))
    assert hash(s) != hash(s.to_frame())
    assert hash(pd.RangeIndex(5)) == hash(pd.Index(np.arange(5, dtype=np.int64)))
    assert hash(pd.Index([1, 2], name="n")) != hash(pd.Index([1, 2], name="m"))
    assert hash(pd.Index([1, 2])) != hash(pd.Index([1.0, 2.0]))
    assert hash(pd.Index(["a", "b"])) == hash(pd.Index(["a", "b"]))
    assert hash(pd.Index(["a", "b"])) != hash(pd.Index(["a", "c"]))


def test_pandas_object_columns_and_datetimes(pd):
    df = pd.DataFrame(
        {"s": ["x", "y"], "t": pd.to_datetime(["2024-01-01", "2024-01-02"]), "c": pd.Categorical(["u", "v"])}
    )
    assert hash(df) == hash(df.copy())
    assert hash(df) != hash(df.assign(s=["x", "z"]))
    assert hash(df) != hash(df.assign(t=df["t"].dt.tz_localize("UTC")))


# -- self references and deep nesting ----------------------------------------------
def test_self_referencing_containers():
    def build_list():
        lst = [1, "a"]
        lst.append(lst)
        return lst

    def build_dict():
        d = {"x": 1}
        d["self"] = d
        d["nested"] = [d, {"back": d}]
        return d

    def build_mixed_dict():
        d = {1: "a", "b": None}
        d["b"] = d
        return d

    for build in (build_list, build_dict, build_mixed_dict):
        digest = hash(build())
        assert hash(build()) == digest
        assert hash([build()]) == hash([build()])
    assert hash(build_list()) != hash([1, "a", [1, "a"]])
    assert hash(build_list()) != hash(build_dict())


def test_object_whose_dict_refers_to_itself():
    def build(value):
        obj = Plain(value=value)
        obj.me = obj
        obj.others = [obj, {"again": obj}]
        return obj

    digest = hash(build(1))
    assert hash(build(1)) == digest
    assert hash(build(2)) != digest


def test_two_references_to_one_object_hash_like_two_equal_objects():
    shared = [1, 2]
    assert hash([shared, shared]) == hash([[1, 2], [1, 2]])
    inner = {"k": "v"}
    assert hash({"a": inner, "b": inner}) == hash({"a": {"k": "v"}, "b": {"k": "v"}})


def _deep(wrap, depth=10_000, leaf=0):
    obj = leaf
    for _ in range(depth):
        obj = wrap(obj)
    return obj


DEEP_WRAPPERS = {
    "list": lambda x: [x],
    "tuple": lambda x: (x, 1),
    "dict": lambda x: {"k": x},
    "mixed-key-dict": lambda x: {1: x, "k": 2},
    "unorderable-frozenset": lambda x: frozenset({(x,), 1.5}),
    "OrderedDict": lambda x: collections.OrderedDict(k=x),
    "object": lambda x: Plain(x),
    "dataclass": lambda x: Item("i", [x]),
}


@pytest.mark.parametrize("kind", sorted(DEEP_WRAPPERS))
def test_depth_10000_does_not_crash(kind):
    wrap = DEEP_WRAPPERS[kind]
    digest = hash(_deep(wrap))
    assert re.fullmatch(r"[0-9a-f]{32}", digest)
    assert hash(_deep(wrap)) == digest
    assert hash(_deep(wrap, leaf=1)) != digest
    assert hash(_deep(wrap, depth=9_999)) != digest


def test_deep_nesting_error_reports_the_full_path():
    deep = _deep(lambda x: [x], depth=10_000, leaf=_generator())
    with pytest.raises(TypeError) as excinfo:
        hash(deep)
    assert "obj" + "[0]" * 10_000 in str(excinfo.value)
    assert hash(_deep(lambda x: [x])) == hash(_deep(lambda x: [x]))


# -- containers changed while they are hashed ------------------------------------------
class Meddler:
    """Runs `action` when hashing reduces it; reduces to a record that does not depend on it."""

    def __init__(self, action):
        self.action = action

    def __reduce__(self):
        self.action()
        return (Meddler, (None,))


def _dict_emptied():
    d = {"a": None, "b": 2, "c": 3}
    d["a"] = Meddler(d.clear)
    return {"key": [0, 1, 2, d]}, "dict at obj['key'][3] changed during hashing (3 items when entered, 0 now)"


def _list_grown():
    lst = [1, None]
    lst[1] = Meddler(lambda: lst.append(3))
    return (lst,), "list at obj[0] changed during hashing (2 items when entered, 3 now)"


def _list_shrunk():
    lst = [None, 2, 3]
    lst[0] = Meddler(lst.pop)
    return lst, "list at obj changed during hashing (3 items when entered, 2 now)"


def _list_item_replaced():
    lst = [None, "b"]
    lst[0] = Meddler(lambda: lst.__setitem__(0, "a"))  # drops the list's reference to the meddler
    return [lst], "list at obj[0] changed during hashing (items replaced or reordered)"


def _later_list_item_replaced():
    lst = [None, "b", "c"]
    lst[0] = Meddler(lambda: lst.__setitem__(2, "z"))
    return lst, "list at obj changed during hashing (items replaced or reordered)"


def _dict_value_replaced():
    d = {"x": None, "y": "old"}
    d["x"] = [Meddler(lambda: d.__setitem__("y", "new"))]
    return d, "dict at obj changed during hashing (items replaced or reordered)"


def _mixed_key_dict_key_removed():
    d = {1: None, "k": 2}
    d[1] = Meddler(lambda: d.pop("k"))
    return [d], "dict at obj[0] changed during hashing (2 items when entered, 1 now)"


def _dict_reordered():
    d = {"a": None, "b": 1}
    d["a"] = Meddler(lambda: d.__setitem__("a", d.pop("a")))  # same items, another order
    return d, "dict at obj changed during hashing (items replaced or reordered)"


def _set_changed_same_size():
    s = {1, "a"}
    s.add(Meddler(lambda: (s.discard(1), s.add(2))))
    return {"s": s}, "set at obj['s'] changed during hashing (items replaced or reordered)"


def _set_cleared():
    s = {1, "a"}
    s.add(Meddler(s.clear))
    return [s], "set at obj[0] changed during hashing (3 items when entered, 0 now)"


def _attribute_dict_changed():
    obj = Plain()
    obj.first = Meddler(lambda: setattr(obj, "second", 2))
    obj.second = 1
    return obj, "dict at obj.__reduce_ex__(4)[2] changed during hashing (items replaced or reordered)"


def _outer_list_changed_deep_inside():
    outer = [1, None, 3]
    outer[1] = {"k": (Item("i", [Meddler(outer.clear)]),)}
    return outer, "list at obj changed during hashing (3 items when entered, 0 now)"


CHANGES = [
    _dict_emptied,
    _list_grown,
    _list_shrunk,
    _list_item_replaced,
    _later_list_item_replaced,
    _dict_value_replaced,
    _mixed_key_dict_key_removed,
    _dict_reordered,
    _set_changed_same_size,
    _set_cleared,
    _attribute_dict_changed,
    _outer_list_changed_deep_inside,
]


@pytest.mark.parametrize("change", CHANGES, ids=[change.__name__.strip("_") for change in CHANGES])
def test_container_changed_during_hashing_raises_runtime_error_naming_its_path(change):
    obj, message = change()
    hasher = Hasher().update("before")
    with pytest.raises(RuntimeError) as excinfo:
        hasher.update(obj)
    assert str(excinfo.value) == message
    # the hasher is as it was: the failed update left nothing in it
    assert hasher.update("after").hexdigest() == Hasher().update("before").update("after").hexdigest()


SELF_REPLACING = r'''
import gc, json, joblite

class Replacer:
    """Replaces itself where it is held: then only the hasher refers to it."""
    def __init__(self, home, key, remove=False):
        self.home, self.key, self.remove = home, key, remove
    def __reduce__(self):
        if self.remove:
            del self.home[self.key]
        else:
            self.home[self.key] = [object() for _ in range(50)]
        gc.collect()
        return (Replacer, (None, None))

def in_list(remove):
    lst = [None, "x", 2.5]
    lst[0] = Replacer(lst, 0, remove)
    return lst

def in_dict(remove):
    d = {"a": None, "b": [1]}
    d["a"] = Replacer(d, "a", remove)
    return {"outer": d}

class Holder:
    """Reduced through object.__reduce_ex__: its state is its __dict__ itself."""

def in_state(remove):
    holder = Holder()
    holder.child = Replacer(holder.__dict__, "child", remove)
    holder.other = 1
    return [holder]

results = []
for build in (in_list, in_dict, in_state):
    for remove in (False, True):
        obj = build(remove)
        try:
            joblite.hash(obj)
            results.append("no error")
        except RuntimeError as exc:
            results.append(str(exc))
        del obj
        gc.collect()
print(json.dumps(results))
'''


def test_object_replacing_itself_while_reduced_does_not_crash():
    # Run in a child: a use-after-free would kill the test runner.
    results = json.loads(_run_python(SELF_REPLACING))
    state = "obj[0].__reduce_ex__(4)[2]"
    assert results == [
        "list at obj changed during hashing (items replaced or reordered)",
        "list at obj changed during hashing (3 items when entered, 2 now)",
        "dict at obj['outer'] changed during hashing (items replaced or reordered)",
        "dict at obj['outer'] changed during hashing (2 items when entered, 1 now)",
        f"dict at {state} changed during hashing (items replaced or reordered)",
        f"dict at {state} changed during hashing (2 items when entered, 1 now)",
    ]


THREAD_CHANGING = r"""
import json, threading, joblite

def fill():  # items big enough that a sha256 update releases the GIL
    return [bytes(20_000), bytearray(30_000), "s" * 20_000, {"k": [b"x" * 20_000]}, 1.5, 7]

shared = fill()
stop = threading.Event()

def change():
    while not stop.is_set():
        shared[:] = fill()  # the old items are freed
        shared.append(bytearray(40_000))
        try:
            shared[-1].extend(bytes(10_000))  # moves its buffer, unless it is being hashed
        except BufferError:
            pass
        del shared[:2]

outcomes = {"digest": 0, "RuntimeError": 0}
thread = threading.Thread(target=change)
thread.start()
try:
    for _ in range(2000):
        try:
            joblite.hash([shared, shared], hash_name="sha256")
            outcomes["digest"] += 1
        except RuntimeError:
            outcomes["RuntimeError"] += 1
finally:
    stop.set()
    thread.join()
print(json.dumps(outcomes))
"""


def test_hashing_an_object_that_another_thread_changes_never_crashes():
    # In a child: a use-after-free would kill the test runner.
    outcomes = json.loads(_run_python(THREAD_CHANGING))
    assert sum(outcomes.values()) == 2000


def test_containers_changed_before_being_entered_or_after_being_left_hash_as_seen():
    later = [1]
    seen_later = hash([Meddler(lambda: None), [1, 2]])
    assert hash([Meddler(lambda: later.append(2)), later]) == seen_later
    earlier = {"k": 1}
    seen_earlier = hash([{"k": 1}, Meddler(lambda: None)])
    assert hash([earlier, Meddler(lambda: earlier.clear())]) == seen_earlier
    assert earlier == {}


def test_update_called_by_code_that_hashing_runs_is_refused():
    hasher = Hasher()
    with pytest.raises(TypeError, match=r"at obj\[0\]: update\(\) was called while this hasher is already hashing"):
        hasher.update([Meddler(lambda: hasher.update(1))])
    assert hasher.update(2).hexdigest() == Hasher().update(2).hexdigest()


# -- bounds on the object graph --------------------------------------------------------
class Unfolding:
    """Reduces to a new object of its kind, without end (each one nested in the last)."""

    def __reduce__(self):
        return (Unfolding, (), {"next": Unfolding()})


class Branching:
    """Reduces to two new objects of its kind until `depth` is 0: 2**depth objects in all."""

    def __init__(self, depth):
        self.depth = depth

    def __reduce__(self):
        children = [Branching(self.depth - 1), Branching(self.depth - 1)] if self.depth else []
        return (Branching, (0,), {"children": children})


class EndlessItems(list):
    """A list subclass whose reduction yields items without end."""

    def __reduce_ex__(self, protocol):
        return (EndlessItems, (), None, itertools.count())


class ManyItems(list):
    def __reduce_ex__(self, protocol):
        return (ManyItems, (), None, iter(range(1000)))


def test_default_limits():
    assert joblite.hashing.MAX_DEPTH == 100_000
    assert joblite.hashing.MAX_REDUCTIONS == 10_000_000
    hasher = Hasher()
    assert (hasher.max_depth, hasher.max_reductions) == (100_000, 10_000_000)
    assert issubclass(HashLimitError, RecursionError)


def test_object_unfolding_without_end_raises_hash_limit_error():
    with pytest.raises(HashLimitError) as excinfo:
        hash(Unfolding())
    exc = excinfo.value
    step = ".__reduce_ex__(4)[2]['next']"
    # a record and its state dict per object: MAX_DEPTH open containers and records
    assert exc.path == "obj" + step * (joblite.hashing.MAX_DEPTH // 2)
    assert (exc.limit, exc.value) == ("max_depth", joblite.hashing.MAX_DEPTH)
    message = str(exc)
    assert message.startswith("cannot hash object of type 'Unfolding' at obj.__reduce_ex__(4)[2]['next']")
    assert "<...99977 steps...>" in message and len(message) < 1000
    assert message.endswith(
        "nested deeper than max_depth=100000 containers and objects; pass a larger max_depth to hash it"
    )
    assert isinstance(exc, RecursionError)


def test_max_depth_counts_containers_and_records():
    nested = _deep(lambda x: [x], depth=50)
    assert hash(nested, max_depth=50) == hash(nested)
    with pytest.raises(HashLimitError) as excinfo:
        hash(nested, max_depth=49)
    assert excinfo.value.path == "obj" + "[0]" * 49
    assert str(excinfo.value) == (
        "cannot hash object of type 'list' at obj"
        + "[0]" * 11
        + "<...26 steps...>"
        + "[0]" * 12
        + ": nested deeper than max_depth=49 containers and objects; pass a larger max_depth to hash it"
    )
    # an ordinary object opens its record and its state dict: 2 per object; the
    # deepest point is the class in the innermost one's argument tuple (1 more)
    chain = _deep(lambda x: Plain(x), depth=10)
    assert hash(chain, max_depth=2 * 10 + 1) == hash(chain)
    with pytest.raises(HashLimitError) as excinfo:
        hash(chain, max_depth=2 * 10)
    assert excinfo.value.path == "obj" + ".__reduce_ex__(4)[2]['a0']" * 9 + ".__reduce_ex__(4)[1][0]"


def test_max_reductions_counts_every_reduced_object():
    day = datetime.date(2024, 1, 1)
    days = [day] * 100  # each occurrence is reduced
    assert hash(days, max_reductions=100) == hash(days)
    with pytest.raises(HashLimitError) as excinfo:
        hash(days, max_reductions=99)
    assert str(excinfo.value) == (
        "cannot hash object of type 'date' at obj[99]: more than max_reductions=99 objects to reduce "
        "(an object graph that unfolds without end?); pass a larger max_reductions to hash it"
    )
    assert (excinfo.value.path, excinfo.value.limit, excinfo.value.value) == ("obj[99]", "max_reductions", 99)
    # 2**20 objects, 21 deep: the count stops it long before the end
    with pytest.raises(HashLimitError, match="max_reductions=10000"):
        hash(Branching(20), max_reductions=10_000)


def test_reduce_iterators_are_bounded_by_max_reductions():
    with pytest.raises(
        TypeError,
        match=r"at obj\[0\]: its listitems iterator yields more than "
        r"max_reductions=10000000 items",
    ):
        hash([EndlessItems()])
    with pytest.raises(TypeError, match="yields more than max_reductions=999 items"):
        hash(ManyItems(), max_reductions=999)
    assert hash(ManyItems(), max_reductions=1000) == hash(ManyItems())


def test_limits_apply_to_each_update():
    day = datetime.date(2024, 1, 1)
    hasher = Hasher(max_depth=3, max_reductions=2)
    hasher.update([[1]]).update([[[2]]]).update([day, day])
    expected = Hasher().update([[1]]).update([[[2]]]).update([day, day]).hexdigest()
    assert hasher.hexdigest() == expected
    with pytest.raises(HashLimitError):
        hasher.update([[[[3]]]])
    with pytest.raises(HashLimitError):
        hasher.update([day] * 3)
    assert hasher.hexdigest() == expected


def test_limits_do_not_change_digests_and_joblib_signature_still_works():
    obj = {"a": [1, (2.5, "x")], "b": np.arange(4), "c": datetime.date(2024, 1, 1)}
    digest = hash(obj)
    assert hash(obj, max_depth=3, max_reductions=2) == digest
    assert hash(obj, "md5", False) == hash(obj, hash_name="md5", coerce_mmap=True)
    assert Hasher("sha1", max_depth=10).update(obj).hexdigest() == hash(obj, "sha1")
    with pytest.raises(TypeError):
        hash(obj, "md5", False, 10)  # the limits are keyword-only
    with pytest.raises(TypeError):
        Hasher("md5", 10)


@pytest.mark.parametrize("name", ["max_depth", "max_reductions"])
@pytest.mark.parametrize(
    "bad, error",
    [(0, ValueError), (-5, ValueError), (1.5, TypeError), ("10", TypeError), (True, TypeError), (None, TypeError)],
)
def test_bad_limits_raise_naming_the_option(name, bad, error):
    message = f"{name} must be a positive integer, got {bad!r}"
    with pytest.raises(error, match=re.escape(message)):
        hash(1, **{name: bad})
    with pytest.raises(error, match=re.escape(message)):
        Hasher(**{name: bad})


def test_numpy_integers_are_accepted_as_limits():
    assert hash([1], max_depth=np.int64(1), max_reductions=np.uint8(1)) == hash([1])


def test_hash_limit_error_pickles_with_its_attributes():
    import pickle

    with pytest.raises(HashLimitError) as excinfo:
        hash([[1]], max_depth=1)
    copy = pickle.loads(pickle.dumps(excinfo.value))
    assert type(copy) is HashLimitError
    assert (str(copy), copy.path, copy.limit, copy.value) == (str(excinfo.value), "obj[0]", "max_depth", 1)


def test_default_limits_admit_deep_and_large_real_data(pd):
    # joblib.hash fails at a few hundred nested lists; the default admits 100,000
    assert re.fullmatch(r"[0-9a-f]{32}", hash(_deep(lambda x: [x], depth=joblite.hashing.MAX_DEPTH)))
    with pytest.raises(HashLimitError):
        hash(_deep(lambda x: [x], depth=joblite.hashing.MAX_DEPTH + 1))
    frame = pd.DataFrame(
        {
            "x": np.arange(1000.0),
            "when": [datetime.date(2024, 1, 1 + i % 28) for i in range(1000)],
            "tag": pd.Categorical(["a", "b"] * 500),
        }
    )
    assert hash(frame) == hash(frame.copy())


# -- bad input --------------------------------------------------------------------
@pytest.fixture(params=["generator", "open-file", "lock", "bad-reduce"])
def unhashable(request, tmp_path):
    if request.param == "generator":
        yield _generator(), "generator"
    elif request.param == "open-file":
        path = tmp_path / "f.txt"
        path.write_text("x")
        with open(path) as handle:
            yield handle, type(handle).__qualname__
    elif request.param == "lock":
        lock = threading.Lock()
        yield lock, type(lock).__qualname__
    else:
        yield BadReduce(), "BadReduce"


@pytest.mark.parametrize(
    "build, path",
    [
        (lambda bad: bad, "obj"),
        (lambda bad: (1, {"gen": bad}), "obj[1]['gen']"),
        (lambda bad: [0, [1, 2, bad]], "obj[1][2]"),
        (lambda bad: {"a": {"b": [bad]}}, "obj['a']['b'][0]"),
        (lambda bad: {1: "a", "b": bad}, "obj['b']"),
        (lambda bad: {7: bad}, "obj[7]"),
        (lambda bad: Item("n", [bad]), "obj.values[0]"),
        (lambda bad: Point(1, bad), "obj.y"),
        (lambda bad: functools.partial(importable_function, bad), "obj.args[0]"),
    ],
    ids=["top", "tuple-dict", "list-list", "dicts", "mixed-key-dict", "int-key", "dataclass", "namedtuple", "partial"],
)
def test_unhashable_object_raises_type_error_naming_type_and_path(unhashable, build, path):
    bad, type_name = unhashable
    good = {"x": [1, 2.5, "three"], "y": np.arange(5)}
    expected = hash(good)
    with pytest.raises(TypeError) as excinfo:
        hash(build(bad))
    message = str(excinfo.value)
    assert type_name in message
    assert f"{path}:" in message or message.endswith(path)
    # no partial state: the next call works and gives the right digest
    assert hash(good) == expected


def test_unhashable_set_element_and_dict_key_are_located():
    gen = _generator()
    with pytest.raises(TypeError, match=r"obj\['s'\]\{<generator object"):
        hash({"s": {1, "x", gen}})
    with pytest.raises(TypeError, match=r"obj<key <generator object"):
        hash({gen: 1, "a": 2})


def test_original_error_is_chained():
    with pytest.raises(TypeError) as excinfo:
        hash([BadReduce()])
    assert isinstance(excinfo.value.__cause__, RuntimeError)
    assert "BadReduce refuses" in str(excinfo.value)


BIG = np.arange(2**18, dtype=np.float64)  # 2 MiB: the kernel flushes its buffer


@pytest.mark.parametrize(
    "failing",
    [
        lambda bad: bad,
        lambda bad: [1, "a", bad],
        lambda bad: [BIG, BIG[::2], bad],
        lambda bad: {1: BIG, "x": ["y" * 100_000, bad]},
        lambda bad: {frozenset({1, "a"}): [bad], 2: 3},
        lambda bad: ("s" * 70_000, np.asfortranarray(BIG.reshape(512, 512)), bad),
    ],
    ids=["alone", "small-list", "after-big-arrays", "in-mixed-dict", "in-set-key", "after-strided"],
)
@pytest.mark.parametrize("first", [BIG, "small"], ids=["big-first", "small-first"])
def test_hasher_that_raised_equals_fresh_hasher_fed_the_successful_objects(first, failing):
    hasher = Hasher().update(first)
    with pytest.raises(TypeError):
        hasher.update(failing(_generator()))
    hasher.update([1, 2]).update(BIG[::3])
    assert hasher.hexdigest() == Hasher().update(first).update([1, 2]).update(BIG[::3]).hexdigest()


def test_hasher_survives_base_exceptions_raised_while_reducing():
    hasher = Hasher().update(BIG)
    with pytest.raises(KeyboardInterrupt):
        hasher.update([BIG, InterruptingReduce()])
    hasher.update("after")
    assert hasher.hexdigest() == Hasher().update(BIG).update("after").hexdigest()
    with pytest.raises(KeyboardInterrupt):
        hash({1: InterruptingReduce(), "a": 2})
    assert hash("after") == Hasher().update("after").hexdigest()


# -- streaming -----------------------------------------------------------------------
def test_hash_equals_one_hasher_update():
    for obj in (None, 1, [1, "a"], {"k": np.arange(3)}, BIG[::7]):
        assert hash(obj) == Hasher().update(obj).hexdigest()
        assert hash(obj, "sha256") == Hasher("sha256").update(obj).hexdigest()


def test_hasher_streaming_is_deterministic_and_order_sensitive():
    a, b = {"x": [1, 2]}, np.arange(10)
    ab = Hasher().update(a).update(b).hexdigest()
    assert ab == Hasher().update(a).update(b).hexdigest()
    assert ab != Hasher().update(b).update(a).hexdigest()
    assert ab != Hasher().update(a).hexdigest()
    assert ab != hash(a)


def test_hasher_update_returns_self_and_hexdigest_does_not_finalize():
    hasher = Hasher()
    assert hasher.update(1) is hasher
    first = hasher.hexdigest()
    assert hasher.hexdigest() == first
    hasher.update(BIG)
    assert hasher.hexdigest() != first
    assert hasher.hexdigest() == Hasher().update(1).update(BIG).hexdigest()
    assert hasher.digest() == bytes.fromhex(hasher.hexdigest())


# -- the digests Memory keys entries with ------------------------------------------------
def test_key_digest_is_the_hash_of_the_key_and_its_errors_name_the_root():
    for key in ((1, 2.0, "abc", 3), ("closure", ((np.arange(5), None),)), {"x": [1, {2}]}):
        assert key_digest(key) == hash(key)
    with pytest.raises(TypeError, match=r"args\['data'\]"):
        key_digest({"data": (i for i in range(3))})
    with pytest.raises(TypeError, match=r"call\[1\]"):
        key_digest((1, threading.Lock()), root="call")


def test_closure_digest_hashes_the_values_a_function_closes_over():
    def make(offset, scale):
        def shifted(x):
            return x * scale + offset

        return shifted

    assert closure_digest(make(1, 2)) == hash((1, 2)) != closure_digest(make(1, 3))
    assert closure_digest(make(np.arange(3), 2)) == closure_digest(make(np.arange(3), 2))
    assert closure_digest(lambda x: x) is None and closure_digest(len) is None

    def later():
        def reads():
            return value

        before = closure_digest(reads)  # the cell is not filled yet
        value = 5
        return before, closure_digest(reads)

    empty, filled = later()
    assert filled == hash((5,)) != empty
    with pytest.raises(TypeError, match="lock"):
        closure_digest(make(threading.Lock(), 1))


def test_empty_hasher_is_deterministic():
    assert Hasher().hexdigest() == Hasher().hexdigest()
    assert Hasher().hexdigest() != hash(None)


# -- bounded memory --------------------------------------------------------------------
MiB = 1 << 20


def test_hashing_a_4_gib_array_and_its_views_allocates_less_than_16_mib():
    try:
        a = np.zeros(2**29, dtype=np.float64)  # 4 GiB, lazily zero-mapped by the OS
    except MemoryError:
        pytest.skip("no 4 GiB of address space (memory overcommit disabled?)")
    views = {"contiguous": a, "strided": a[::2], "f-ordered": a.reshape(2**14, 2**15).T}
    tracemalloc.start()
    try:
        # tracemalloc does see numpy's data allocations, so the bound below means something
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        probe = np.ones(2 * MiB)
        assert tracemalloc.get_traced_memory()[1] - before >= 16 * MiB
        del probe
        peaks = {}
        for name, view in views.items():
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            hash(view)
            peaks[name] = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert all(peak < 16 * MiB for peak in peaks.values()), peaks


GATHER_EDGE_CASES = [
    # non-contiguous rows whose length in bytes is at or just below the compiled
    # twin's 2 MiB gather chunk, and items larger than the chunk
    "np.zeros(2**22, np.uint8)[::2]",
    "np.zeros(2**22 - 64, np.uint8)[::-2]",
    "np.zeros((3, 2**19), np.float64)[:, ::2]",
    "np.zeros(4, dtype='S3000000')[::2]",
    # controls around the edges
    "np.zeros(2**22 - 130, np.uint8)[::2]",
    "np.zeros(2**22 + 2, np.uint8)[::2]",
    "np.zeros((5, 2**18), np.float64).T",
]


def test_strided_rows_near_the_gather_chunk_size_do_not_hang():
    code = (
        "import numpy as np, joblite\n"
        + "".join(
            f"v = {case}\nassert joblite.hash(v) == joblite.hash(v.copy()), {case!r}\n" for case in GATHER_EDGE_CASES
        )
        + "print('done')\n"
    )
    try:
        out = _run_python(code, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("hashing hung (killed after 20 s)")
    assert out.strip() == "done"


# -- import cost -------------------------------------------------------------------
def test_hashing_plain_objects_imports_neither_numpy_nor_pandas():
    # (``import joblite`` alone is checked in test_impl.py)
    code = (
        "import json, sys, datetime, decimal, joblite\n"
        "joblite.hash(({'a': [1, 2.5, 'x']}, {1, 'b'}, datetime.date(2024, 1, 1), decimal.Decimal(1)))\n"
        "joblite.Hasher('sha256').update(range(3)).hexdigest()\n"
        "print(json.dumps(sorted(m for m in ('numpy', 'pandas') if m in sys.modules)))\n"
    )
    assert json.loads(_run_python(code)) == []


def test_modules_hash_by_name():
    import json as json_again

    assert hash(json) == hash(json_again) == hash(json, hash_name="xxh3_128")
    assert hash(json) != hash(os) and hash(json) != hash("json")
