"""Regenerate ``tests/data/hash_vectors.json``, the golden vectors of ``joblite.hash``.

The vectors pin the canonical hash format (docs: the hash format page, and
``joblite.hashing.FORMAT_VERSION``): ``tests/test_hashing_golden.py`` checks that every
expression listed in ``VECTORS`` below still hashes to the digest recorded in the
JSON file, so that the format cannot change by accident.

Only run this script when the format changes ON PURPOSE, together with a bump of
``FORMAT_VERSION`` and an update of the format page::

    python tests/data/make_hash_vectors.py           # after bumping FORMAT_VERSION
    python tests/data/make_hash_vectors.py --check   # compare only, write nothing

Adding new vectors under the current format version is allowed: the script
refuses to change or drop a digest already recorded for the current
``FORMAT_VERSION`` (that would be an accidental format change) unless
``--force`` is given.  When both twins are available, every digest is computed
by both and they must agree.

``PANDAS_VECTORS`` pin the pandas records the same way, for one pandas major
version (``PANDAS_MAJOR``: their dtype text is pandas' ``repr``); generating them
needs that pandas and pyarrow, and the test skips them under another pandas, and
skips those that need pyarrow when it is not installed.

Each vector is a Python expression evaluated with ``eval`` in a fresh
``namespace()``; keep the expressions deterministic and free of anything whose
hash depends on the platform (no long doubles, no ``os.path`` functions, no
classes defined in this file: their module name would differ between the script
and the test).
"""

import argparse
import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "hash_vectors.json")

# (expression, hash names)
X = ("xxh3_128",)
XS = ("xxh3_128", "sha256")
VECTORS = [
    # scalars
    ("None", XS),
    ("True", X),
    ("False", X),
    ("0", X),
    ("1", X),
    ("-1", X),
    ("2**63 - 1", X),
    ("2**63", X),
    ("-(2**63) - 1", X),
    ("2**200", X),
    ("-(2**200)", X),
    ("1.0", X),
    ("-0.0", X),
    ("math.nan", X),
    ("math.inf", X),
    ("1 + 2j", X),
    ("''", X),
    ("'abc'", XS),
    ("'é€\\U0001f600'", X),
    ("'a\\ud800b'", X),
    ("b''", X),
    ("b'\\x00\\xff'", X),
    ("bytearray(b'ab')", X),
    ("memoryview(b'ab')", X),
    ("'x' * 70_000", X),
    # containers
    ("[]", X),
    ("[1, 'a', None]", X),
    ("()", X),
    ("(1, (2.5, 'x'))", X),
    ("{}", X),
    ("{'b': 1, 'a': [2]}", X),
    ("{'a': [1, 2.5]}", ("xxh3_128", "xxh3_64", "md5", "sha1", "sha256", "blake2b")),
    ("{1: 'a', 2: 'b'}", X),
    ("{1: 'a', 'b': 2, (1,): 3}", XS),
    ("{'x', 'y'}", XS),
    ("frozenset({1, 'a', 2.5})", X),
    ("set()", X),
    ("OrderedDict([('b', 1), ('a', 2)])", X),
    ("defaultdict(list, {'a': [1]})", X),
    ("list(range(10_000))", X),
    ("[float(i) for i in range(1_000)]", X),
    ("(lst := [1, 'a'], lst.append(lst), lst)[2]", X),
    ("(d := {'k': 1}, d.__setitem__('self', d), d)[2]", X),
    # other standard types
    ("range(0, 10, 2)", X),
    ("slice(1, None, 2)", X),
    ("...", X),
    ("datetime.datetime(2024, 2, 29, 12, 30, 15, 123456)", X),
    ("datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.timezone.utc)", X),
    ("datetime.date(2024, 2, 29)", X),
    ("datetime.time(12, 30, 15)", X),
    ("datetime.timedelta(days=-1, seconds=5)", X),
    ("decimal.Decimal('3.14')", X),
    ("fractions.Fraction(1, 3)", X),
    ("uuid.UUID('12345678-1234-5678-1234-567812345678')", X),
    ("pathlib.PurePosixPath('/tmp/data.csv')", X),
    ("http.HTTPStatus.NOT_FOUND", X),
    ("math.sqrt", X),
    ("int", X),
    ("functools.partial(math.pow, 2)", X),
    ("collections.Counter('abracadabra')", X),
    ("types.SimpleNamespace(a=1, b=[2])", X),
    # numpy: byte order, layout and dtype normalisation
    ("np.arange(6, dtype='<i4').reshape(2, 3)", XS),
    ("np.arange(6, dtype='>i4').reshape(2, 3)", XS),
    ("np.arange(6, dtype='<i4').reshape(3, 2)", X),
    ("np.arange(6, dtype='<i8').reshape(2, 3)", X),
    ("np.arange(12.0).reshape(3, 4).T", X),
    ("np.arange(12.0).reshape(3, 4)[::-1, ::2]", X),
    ("np.float64(1.5)", X),
    ("np.array(1.5)", X),
    ("np.array([True, False])", X),
    ("np.array([1 + 2j, -0.0j], dtype='<c8')", X),
    ("np.array([0.5, -2.0], dtype='<f2')", X),
    ("np.array(['ab', 'é'], dtype='<U2')", X),
    ("np.array(['ab', 'é'], dtype='>U2')", X),
    ("np.array([b'ab', b'c'], dtype='S2')", X),
    ("np.array(['2024-01-01', 'NaT'], dtype='M8[D]')", X),
    ("np.array([1, -1], dtype='m8[s]')", X),
    ("np.array([(1, 2.5), (-3, 0.0)], dtype=[('x', '>i2'), ('y', '<f8')])", X),
    (
        "np.array([(1, 2.5), (-3, 0.0)], dtype={'names': ['x', 'y'], 'formats': ['<i2', '>f8'],"
        " 'offsets': [0, 8], 'itemsize': 24})",
        X,
    ),
    ("np.array([1, 'a', None, [2.5]], dtype=object)", X),
    ("np.zeros((0, 3))", X),
    ("np.dtype('>f8')", X),
    ("np.arange(200_000, dtype='<f8')", X),
    ("np.arange(300_000, dtype='>u4')[::3]", X),
    ("np.ma.masked_array([1, 2], mask=[0, 1])", X),
]

# pandas objects, pinned for one pandas major version (their dtype text is pandas' repr).
# No default string dtypes: their storage depends on whether pyarrow is installed.
# (expression, hash names, module needed besides pandas or None)
PANDAS_MAJOR = 3
PANDAS_VECTORS = [
    # numpy-backed values, indexes that are not progressions: encoded as before the records of
    # extension arrays existed (these digests predate them)
    ("pd.Index([1.5, 2.5], name='x')", X, None),
    ("pd.Index([3, 1, 2])", X, None),
    ("pd.Series([1.0, 2.0, 3.0], index=[10, 30, 20], name=0)", X, None),
    (
        "pd.DataFrame([[1, 0.5], [2, 1.5], [3, 0.0]], index=[5, 3, 4], columns=pd.Index(['x', 'y'], dtype=object))",
        X,
        None,
    ),
    ("pd.DatetimeIndex(['2024-01-01', '2024-01-03', '2024-01-02'])", X, None),
    ("pd.Series(np.array(['a', None, 'b'], dtype=object), index=[7, 3, 4], dtype=object)", X, None),
    ("pd.Series(pd.to_timedelta([1, 2, 3], unit='s'), index=[2, 9, 1], name='t')", X, None),
    ("pd.Series(pd.array(['a', None, 'b'], dtype='string[python]'), index=[7, 3, 4])", X, None),
    # int64 progressions, RangeIndex or not: record pandas.range
    ("pd.RangeIndex(3)", X, None),
    ("pd.Index([0, 1, 2])", X, None),
    ("pd.RangeIndex(10, 0, -3)", X, None),
    ("pd.RangeIndex(0)", X, None),
    ("pd.Series([1.0, 2.0, 4.0])", XS, None),
    ("pd.DataFrame({1: [1, 2, 4], 2: [0.5, 1.5, -1.0]})", X, None),
    # extension arrays from their parts
    ("pd.Series(pd.Categorical(['b', 'a', None, 'b'], categories=pd.Index(['a', 'b'], dtype=object)))", XS, None),
    ("pd.Series(pd.Categorical(['b', 'a', None, 'b'], categories=pd.Index(['b', 'a'], dtype=object)))", X, None),
    ("pd.Series(pd.Categorical([2, 1, 2], categories=[2, 1], ordered=True))", X, None),
    ("pd.Series(pd.array([1, None, 3], dtype='Int64'))", XS, None),
    ("pd.Series(pd.array([1, None, 3], dtype='UInt8'))", X, None),
    ("pd.Series(pd.array([0.5, None, -1.0], dtype='Float64'))", X, None),
    ("pd.Series(pd.array([True, None, False], dtype='boolean'))", X, None),
    ("pd.Series(pd.DatetimeIndex(['2024-01-01', None, '2024-03-01']).tz_localize('UTC'))", X, None),
    ("pd.Series(pd.DatetimeIndex(['2024-01-01', '2024-03-01']).tz_localize('Europe/Paris'))", X, None),
    ("pd.Series(pd.period_range('2024-01', periods=3, freq='M'))", X, None),
    ("pd.Series(pd.arrays.IntervalArray.from_breaks([0, 1, 3, 7], closed='left'))", X, None),
    ("pd.Series(pd.arrays.SparseArray([0.0, 1.5, 0.0, 2.0], fill_value=0.0))", X, None),
    ("pd.Series(pd.arrays.SparseArray([1, 0, 0, 3]))", X, None),
    ("pd.DatetimeIndex(['2024-01-01', '2024-01-03']).tz_localize('UTC')", X, None),
    ("pd.CategoricalIndex([1, 2, 1])", X, None),
    ("pd.MultiIndex.from_arrays([[1, 2, 2], [0.5, 1.5, np.nan]], names=['k', None])", X, None),
    ("pd.MultiIndex(levels=[[2, 1, 3], [0.5, 1.5]], codes=[[1, 0, 0], [0, 1, -1]], names=['k', None])", X, None),
    (
        "pd.DataFrame({1: pd.Categorical([0.5, 1.5]), 2: pd.array([1, None], dtype='Int64'),"
        " 3: pd.period_range('2024', periods=2, freq='D')})",
        X,
        None,
    ),
    ("pd.Series(['a', None, 'bc'], dtype='string[pyarrow]')", X, "pyarrow"),
    ("pd.Series([b'a', b'', None], dtype=pd.ArrowDtype(pa.binary()))", X, "pyarrow"),
    ("pd.Series([1, None, -3], dtype='int64[pyarrow]')", X, "pyarrow"),
    ("pd.Series([True, None, False], dtype='bool[pyarrow]')", X, "pyarrow"),
]


def namespace():
    """A fresh namespace in which the expressions are evaluated."""
    import collections
    import datetime
    import decimal
    import fractions
    import functools
    import http
    import math
    import pathlib
    import types
    import uuid

    import numpy as np

    return {
        "np": np,
        "datetime": datetime,
        "decimal": decimal,
        "fractions": fractions,
        "functools": functools,
        "http": http,
        "math": math,
        "pathlib": pathlib,
        "types": types,
        "uuid": uuid,
        "collections": collections,
        "OrderedDict": collections.OrderedDict,
        "defaultdict": collections.defaultdict,
        "pd": _optional("pandas"),
        "pa": _optional("pyarrow"),
    }


def _optional(name):
    """Module `name`, or None when it is not installed (its vectors are then skipped)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def compute(listed=VECTORS):
    """The vectors of `listed` as a list of dicts, each digest checked against every available twin."""
    from joblite import _impl
    from joblite.hashing import hash, hash_with_twin

    twins = _impl.available_twins()
    vectors = []
    for expr, hash_names, *requires in listed:
        for hash_name in hash_names:
            digest = hash(eval(expr, namespace()), hash_name=hash_name)
            for twin in twins:
                other = hash_with_twin(twin, eval(expr, namespace()), hash_name)
                if other != digest:
                    raise SystemExit(f"twins disagree on {expr!r} ({hash_name}): {digest} vs {other} ({twin})")
            vector = {"expr": expr, "hash_name": hash_name, "digest": digest}
            if requires and requires[0]:
                vector["requires"] = requires[0]
            vectors.append(vector)
    return vectors


def compute_pandas():
    """The pandas vectors; pandas of major version PANDAS_MAJOR and pyarrow must be installed."""
    import pandas
    import pyarrow  # noqa: F401  (the vectors of Arrow-backed arrays are part of the file)

    if int(pandas.__version__.split(".")[0]) != PANDAS_MAJOR:
        raise SystemExit(f"the pandas vectors are pinned for pandas {PANDAS_MAJOR}, not {pandas.__version__}")
    return compute(PANDAS_VECTORS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--force", action="store_true", help="rewrite digests already recorded for the current format version"
    )
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "src"))  # the checkout's joblite
    from joblite.hashing import FORMAT_VERSION

    vectors, pandas_vectors = compute(), compute_pandas()
    changed = []
    if os.path.exists(OUTPUT):
        with open(OUTPUT, encoding="utf-8") as handle:
            old = json.load(handle)
        if old["format_version"] == FORMAT_VERSION:
            new = {(v["expr"], v["hash_name"]): v["digest"] for v in vectors + pandas_vectors}
            for vector in old["vectors"] + old.get("pandas_vectors", []):
                key = (vector["expr"], vector["hash_name"])
                if new.get(key) != vector["digest"]:
                    changed.append(f"{key[0]} ({key[1]}): {vector['digest']} -> {new.get(key)}")
    if changed:
        print(f"{len(changed)} digest(s) of format version {FORMAT_VERSION} would change or go:")
        print("\n".join("  " + line for line in changed))
        if args.check or not args.force:
            print("Refusing: bump FORMAT_VERSION for a new format, or pass --force.")
            return 1
    if args.check:
        print(f"{len(vectors) + len(pandas_vectors)} vectors agree with {OUTPUT}")
        return 0
    document = {
        "format_version": FORMAT_VERSION,
        "generated_by": "tests/data/make_hash_vectors.py",
        "note": "Golden vectors of joblite.hash: expr is evaluated in make_hash_vectors.namespace(). "
        "Regenerate only when the format changes on purpose.",
        "vectors": vectors,
        "pandas_major": PANDAS_MAJOR,
        "pandas_vectors": pandas_vectors,
    }
    with open(OUTPUT, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    print(f"wrote {len(vectors)} + {len(pandas_vectors)} pandas vectors to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
