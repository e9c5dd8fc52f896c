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

Each vector is a Python expression evaluated with ``eval`` in a fresh
``namespace()``; keep the expressions deterministic and free of anything whose
hash depends on the platform (no long doubles, no ``os.path`` functions, no
classes defined in this file: their module name would differ between the script
and the test).
"""
import argparse
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
    ("np.array([(1, 2.5), (-3, 0.0)], dtype={'names': ['x', 'y'], 'formats': ['<i2', '>f8'],"
     " 'offsets': [0, 8], 'itemsize': 24})", X),
    ("np.array([1, 'a', None, [2.5]], dtype=object)", X),
    ("np.zeros((0, 3))", X),
    ("np.dtype('>f8')", X),
    ("np.arange(200_000, dtype='<f8')", X),
    ("np.arange(300_000, dtype='>u4')[::3]", X),
    ("np.ma.masked_array([1, 2], mask=[0, 1])", X),
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
        "np": np, "datetime": datetime, "decimal": decimal, "fractions": fractions,
        "functools": functools, "http": http, "math": math, "pathlib": pathlib, "types": types,
        "uuid": uuid, "collections": collections, "OrderedDict": collections.OrderedDict,
        "defaultdict": collections.defaultdict,
    }


def compute():
    """The vectors as a list of dicts, each digest checked against every available twin."""
    from joblite import _impl
    from joblite.hashing import hash, hash_with_twin

    twins = _impl.available_twins()
    vectors = []
    for expr, hash_names in VECTORS:
        for hash_name in hash_names:
            digest = hash(eval(expr, namespace()), hash_name=hash_name)
            for twin in twins:
                other = hash_with_twin(twin, eval(expr, namespace()), hash_name)
                if other != digest:
                    raise SystemExit(f"twins disagree on {expr!r} ({hash_name}): {digest} vs {other} ({twin})")
            vectors.append({"expr": expr, "hash_name": hash_name, "digest": digest})
    return vectors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true",
                        help="rewrite digests already recorded for the current format version")
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)

    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the checkout's joblite
    from joblite.hashing import FORMAT_VERSION

    vectors = compute()
    changed = []
    if os.path.exists(OUTPUT):
        with open(OUTPUT, encoding="utf-8") as handle:
            old = json.load(handle)
        if old["format_version"] == FORMAT_VERSION:
            new = {(v["expr"], v["hash_name"]): v["digest"] for v in vectors}
            for vector in old["vectors"]:
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
        print(f"{len(vectors)} vectors agree with {OUTPUT}")
        return 0
    document = {
        "format_version": FORMAT_VERSION,
        "generated_by": "tests/data/make_hash_vectors.py",
        "note": "Golden vectors of joblite.hash: expr is evaluated in make_hash_vectors.namespace(). "
                "Regenerate only when the format changes on purpose.",
        "vectors": vectors,
    }
    with open(OUTPUT, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    print(f"wrote {len(vectors)} vectors to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
