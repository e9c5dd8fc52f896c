"""Write the golden persistence files of the current format version: run only when the format changes on purpose.

    python tests/data/persistence/make_golden.py

writes, into ``v<N>/`` next to this script, where ``N`` is today's
``persistence.FORMAT_VERSION`` (``v2/`` for version 2):

* ``uncompressed.jl``: ``dump(golden_value(), ...)``, no compression; the
  test also checks that dumping the same value today gives these exact bytes;
* ``compressed-<codec>.jl``: the same value with every codec that is always
  available (the four blosc-* codecs, lz4, zlib, gzip, bz2, lzma, xz); their bytes depend on the codec
  libraries' versions, so only their content is checked;
* ``large-blosc-lz4.jl`` (from version 2 on): ``large_value()`` with
  ``compress=True``, for what the small value's files cannot hold: a block
  of two chunks (so the header's hint for the kernels' threads), in c-blosc
  blocks of 512 KiB (capped: c-blosc itself takes 1 MiB for int64 at level
  5), and a pickle stream long enough to be stored compressed;
* ``manifest.json``: the format version, the versions that wrote the files,
  each file's size and sha256 (names relative to ``v<N>/``; the large file's
  entry also names its value), and a digest of every array of each value.

Layout: one folder per format version, each with its own manifest.  The
folders of older versions (``v1/``, ...) are kept as they are, byte for byte,
manifest included: they prove that files written before still load.  This
script never reads, writes or deletes them; it only (re)writes ``v<N>/``.

``golden_value()`` is the expected content of every version's files;
``test_persistence_golden.py`` imports it from here.  It avoids globals whose
pickled name depends on the Python or numpy version (numpy scalars, object
arrays, ``np.matrix``, ``pathlib``), so that the uncompressed file is
reproduced bit for bit wherever the tests run.
"""

import collections
import datetime
import decimal
import hashlib
import json
import os
import platform
import sys

import blosc
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CODECS = [
    "blosc-lz4",
    "blosc-lz4-bitshuffle",
    "blosc-zstd",
    "blosc-zstd-bitshuffle",
    "lz4",
    "zlib",
    "gzip",
    "bz2",
    "lzma",
    "xz",
]


def version_folder(version):
    """The folder of format version `version`'s golden files: ``v<version>/`` next to this script."""
    return os.path.join(HERE, f"v{version}")


def golden_value():
    """The value stored in every golden file; built without randomness."""
    structured = np.zeros(
        4,
        dtype=np.dtype(
            {"names": ["id", "x", "tag"], "formats": ["<i4", ">f8", "S3"], "offsets": [0, 8, 17], "itemsize": 24}
        ),
    )
    structured["id"] = [1, -2, 3, -4]
    structured["x"] = [0.5, -1.25, 1e300, -0.0]
    structured["tag"] = [b"a", b"bc", b"def", b""]
    base = np.arange(240, dtype=np.float64).reshape(12, 20) / 7.0
    return {
        "float64": np.linspace(-1.0, 1.0, 101) ** 3,
        "float32-special": np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4e38], dtype=np.float32),
        "int8": np.arange(-128, 128, dtype=np.int8),
        "uint64": np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64),
        "bool": np.arange(37) % 3 == 1,
        "complex128": np.array([1 + 2j, -3.5j, np.inf - 1j]),
        "datetime64": np.array(["2024-02-29T12:34:56.789", "NaT", "1969-12-31T23:59:59"], dtype="M8[ms]"),
        "timedelta64": np.array([0, -1, 86400], dtype="m8[s]"),
        "unicode": np.array(["", "abc", "é€😀"]),
        "bytes": np.array([b"", b"\x00\x01", b"xyz"]),
        "structured": structured,
        "big-endian": np.arange(12, dtype=">i4").reshape(3, 4),
        "fortran": np.asfortranarray(base[:6, :5]),
        "strided-view": base[::3, 1::4],  # non-contiguous: written in C order
        "zero-d": np.array(2.5),
        "empty": np.empty((0, 3), dtype=np.int16),
        "3-d": np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4),
        "plain": {
            "int": 42,
            "big": 2**100,
            "float": 1.5,
            "complex": 1 - 1j,
            "str": "golden ✓",
            "bytes": b"\x00\xff",
            "none": None,
            "bool": True,
            "tuple": (1, (2, 3)),
            "list": [1, "two", 3.0],
            "set": {1, 2, 3},
            "frozenset": frozenset({"a"}),
            "bytearray": bytearray(b"ba"),
            "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
            "date": datetime.date(2000, 2, 29),
            "timedelta": datetime.timedelta(days=1, microseconds=1),
            "decimal": decimal.Decimal("3.14159265358979323846"),
            "ordered": collections.OrderedDict([("z", 1), ("a", 2)]),
        },
    }


def large_value():
    """The value of ``large-blosc-lz4.jl``: 2 MiB of int64 that compress to a few KiB, and 1000 strings."""
    return {"ints": np.arange(1 << 18, dtype=np.int64) % 7, "names": [f"item {i}" for i in range(1000)]}


def expected_value():
    """What loading gives back: non-contiguous arrays come back C-contiguous."""
    value = golden_value()
    value["strided-view"] = np.ascontiguousarray(value["strided-view"])
    return value


def array_digests(value, prefix=""):
    """``key -> {dtype, shape, order, sha256}`` for every array of `value` (C-order bytes)."""
    out = {}
    for key, item in value.items():
        if isinstance(item, np.ndarray):
            out[prefix + key] = {
                "dtype": np.lib.format.dtype_to_descr(item.dtype)
                if not item.dtype.fields
                else str(np.lib.format.dtype_to_descr(item.dtype)),
                "shape": list(item.shape),
                "order": "F" if item.ndim > 1 and item.flags.f_contiguous and not item.flags.c_contiguous else "C",
                "sha256": hashlib.sha256(np.ascontiguousarray(item).tobytes()).hexdigest(),
            }
        elif isinstance(item, dict):
            out.update(array_digests(item, prefix + key + "/"))
    return out


def file_entry(path, codec):
    with open(path, "rb") as handle:
        data = handle.read()
    return {"codec": codec, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def main():
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
    import joblite
    from joblite import persistence

    version = persistence.FORMAT_VERSION
    folder = version_folder(version)
    os.makedirs(folder, exist_ok=True)
    value = golden_value()
    files = {}
    path = os.path.join(folder, "uncompressed.jl")
    persistence.dump(value, path)
    files["uncompressed.jl"] = file_entry(path, "none")
    for codec in CODECS:
        name = f"compressed-{codec}.jl"
        path = os.path.join(folder, name)
        persistence.dump(value, path, compress=codec)
        files[name] = file_entry(path, codec)
    path = os.path.join(folder, "large-blosc-lz4.jl")
    persistence.dump(large_value(), path, compress=True)
    files["large-blosc-lz4.jl"] = {**file_entry(path, "blosc-lz4"), "value": "make_golden.large_value()"}
    manifest = {
        "format_version": version,
        "written_by": {
            "joblite": joblite.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "c-blosc": blosc.blosclib_version,
        },
        "value": "make_golden.golden_value()",
        "files": files,
        "arrays": array_digests(expected_value()),
        "large_arrays": array_digests(large_value()),
    }
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True, ensure_ascii=False)
        handle.write("\n")
    total = sum(entry["size"] for entry in files.values())
    print(f"wrote {len(files)} files, {total} bytes, format version {version}, into {folder}")


if __name__ == "__main__":
    main()
