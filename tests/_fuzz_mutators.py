"""Fuzzing the two readers: inputs that forge what checksums cannot catch, and the process that loads them.

Inputs (each made from a seed file and ``random.Random(f"{seed}:{target}:{index}")``,
so that any one of them can be made again alone):

* ``container_stream_case``: a joblite container whose pickle stream is
  mutated as pickle opcodes (`mutate_stream`), then rebuilt with every
  checksum valid (compressed again when the seed's stream was), so that the
  mutation reaches the unpickler;
* ``joblib_stream_case``: a ``joblib.dump`` file whose pickle pieces (the
  stream around the array data, and the nested stream of each object array)
  are mutated the same way, or the padding before an array changed, then
  compressed again as the seed was: joblib's compressions carry their own
  checks, and this is resealing them;
* ``raw_case``: byte-level damage of containers (resealed or not: the
  header, block table, footer and compressed frames, with lengths claiming
  huge sizes) and of joblib files.

The stream mutations work on opcodes: integers (shapes, dtype sizes and
flags, memo indices) replaced by interesting values, dtype type codes
swapped, items removed from lists, opcodes deleted, duplicated, swapped or
inserted, globals renamed, byte strings cut or grown, length prefixes forged,
and spans spliced from other seeds.

``tests/_fuzz_worker.py`` loads them.  One module makes the inputs: the
opcode mutator, the seeds and the three kinds of cases are written for each
other, hence its length.
"""

import io
import os
import pickle
import pickletools
import re
import struct

import numpy as np

import _persistence_helpers as H

INTS = [
    0,
    1,
    2,
    3,
    -1,
    -2,
    7,
    8,
    15,
    16,
    31,
    32,
    63,
    64,
    127,
    128,
    255,
    256,
    1000,
    4096,
    65535,
    65536,
    2**31 - 1,
    2**31,
    -(2**31),
    2**32 - 1,
    2**32,
    2**40,
    10**12,
    2**62,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64 - 1,
]
DTYPE_CODES = [
    "O",
    "O8",
    "|O",
    "V8",
    "V0",
    "V16",
    "S0",
    "S1",
    "S8",
    "U0",
    "U1",
    "U4",
    "M8",
    "m8",
    "M8[ns]",
    "m8[D]",
    "M8[Y]",
    "M8[as]",
    "b1",
    "?",
    "i1",
    "u1",
    "i2",
    "<i4",
    ">i4",
    "i8",
    "u8",
    "f2",
    "f4",
    "<f8",
    ">f8",
    "f16",
    "c8",
    "c16",
    "c32",
    "g",
    "e",
    "a",
    "a0",
    "T",
    "x",
    "",
    "V",
    "|V8",
    "<U2",
    ">U2",
    "|S4",
]
DTYPE_CODE = re.compile(r"\A[<>|=]?[a-zA-Z?]\d*(\[\w+\])?\Z")
# Globals a mutation may name: admitted ones (any load), and ones a restricted load must refuse
# without running them (inputs naming these are loaded under allowed='numpy' only).
SAFE_GLOBALS = [
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.ma.core", "_mareconstruct"),
    ("numpy.ma.core", "MaskedArray"),
    ("numpy", "matrix"),
    ("numpy", "recarray"),
    ("numpy", "record"),
    ("numpy", "void"),
    ("numpy", "float64"),
    ("numpy", "str_"),
    ("numpy", "datetime64"),
    ("numpy._core.numeric", "_frombuffer"),
    ("copyreg", "_reconstructor"),
    ("builtins", "bytearray"),
    ("builtins", "bytes"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "tuple"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("builtins", "complex"),
    ("builtins", "object"),
    ("collections", "OrderedDict"),
    ("collections", "deque"),
    ("collections", "defaultdict"),
    ("decimal", "Decimal"),
    ("fractions", "Fraction"),
    ("datetime", "datetime"),
    ("datetime", "timedelta"),
    ("uuid", "UUID"),
    ("pathlib", "PosixPath"),
    ("joblite.persistence", "_rebuild_array"),
    ("joblite.persistence", "_rebuild_subclass"),
]
ATTACK_GLOBALS = [
    ("os", "system"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("subprocess", "Popen"),
    ("sys", "modules"),
    ("datetime", "sys"),
    ("datetime", "sys.path"),
    ("numpy", "testing"),
    ("numpy", "f2py"),
    ("numpy", "load"),
    ("numpy", "memmap"),
    ("numpy.lib.format", "open_memmap"),
    ("joblite", "load"),
    ("joblite.persistence", "load"),
    ("pickle", "loads"),
    ("io", "open"),
    ("shutil", "rmtree"),
    ("zoneinfo", "ZoneInfo"),
    ("importlib", "import_module"),
    ("ctypes", "CDLL"),
    ("numpy", "ctypeslib"),
]
_INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}
_MEMO_OPS = {"BINGET": "<B", "LONG_BINGET": "<I", "BINPUT": "<B", "LONG_BINPUT": "<I"}
_STR_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}
_BYTES_OPS = {
    "SHORT_BINBYTES": "<B",
    "BINBYTES": "<I",
    "BINBYTES8": "<Q",
    "BYTEARRAY8": "<Q",
    "SHORT_BINSTRING": "<B",
    "BINSTRING": "<i",
    "SHORT_BINUNICODE": "<B",
    "BINUNICODE": "<I",
    "BINUNICODE8": "<Q",
}
# Opcodes that take the items down to the last MARK.
_MARK_USERS = {"TUPLE", "LIST", "DICT", "APPENDS", "SETITEMS", "ADDITEMS", "FROZENSET", "POP_MARK", "OBJ", "INST"}
_SIMPLE_PUSHES = (
    _INT_OPS
    | _STR_OPS
    | {
        "NONE",
        "NEWTRUE",
        "NEWFALSE",
        "BINFLOAT",
        "BINGET",
        "LONG_BINGET",
        "SHORT_BINBYTES",
        "BINBYTES",
        "EMPTY_TUPLE",
        "EMPTY_LIST",
        "EMPTY_DICT",
    }
)
_NO_ARG_OPS = [
    pickle.BUILD,
    pickle.REDUCE,
    pickle.POP,
    pickle.DUP,
    pickle.MARK,
    pickle.TUPLE,
    pickle.TUPLE1,
    pickle.TUPLE2,
    pickle.TUPLE3,
    pickle.EMPTY_TUPLE,
    pickle.EMPTY_LIST,
    pickle.EMPTY_DICT,
    pickle.APPEND,
    pickle.APPENDS,
    pickle.SETITEM,
    pickle.SETITEMS,
    pickle.NEWOBJ,
    pickle.NEWOBJ_EX,
    pickle.STACK_GLOBAL,
    pickle.MEMOIZE,
    pickle.NONE,
    pickle.NEWTRUE,
    pickle.NEXT_BUFFER,
    pickle.READONLY_BUFFER,
    pickle.FROZENSET,
    pickle.EMPTY_SET,
    pickle.ADDITEMS,
    pickle.POP_MARK,
    pickle.OBJ,
    pickle.LIST,
    pickle.DICT,
    pickle.STOP,
]


# -- pickle streams as opcodes ------------------------------------------------------------------
def pickle_ops(stream):
    """``([(start, stop, name, arg)], tail)``: each opcode of `stream` up to its STOP, and what follows.

    A piece of a stream that does not end with STOP (joblib's stream is cut by
    array data) gives the opcodes it holds whole; `tail` is the rest.
    """
    stream = bytes(stream)
    fileobj = io.BytesIO(stream)
    ops = []
    try:
        for opcode, arg, start in pickletools.genops(fileobj):
            ops.append((start, fileobj.tell(), opcode.name, arg))
            if opcode.name == "STOP":
                break
    except Exception:  # the end of a piece, or bytes that are not opcodes
        pass
    stop = ops[-1][1] if ops else 0
    return ops, stream[stop:]


def unframe(stream):
    """`stream` without its FRAME opcodes (framing is optional): mutations then need not keep frame lengths."""
    ops, tail = pickle_ops(stream)
    return b"".join(stream[start:stop] for start, stop, name, _ in ops if name != "FRAME") + tail


def op_int(value):
    if 0 <= value < 256:
        return pickle.BININT1 + bytes([value])
    if 0 <= value < 65536:
        return pickle.BININT2 + struct.pack("<H", value)
    if -(2**31) <= value < 2**31:
        return pickle.BININT + struct.pack("<i", value)
    data = pickle.encode_long(value)
    return pickle.LONG1 + bytes([len(data)]) + data


def op_str(text):
    data = text.encode("utf-8", "surrogatepass")
    if len(data) < 256:
        return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def op_bytes(data):
    if len(data) < 256:
        return pickle.SHORT_BINBYTES + bytes([len(data)]) + data
    return pickle.BINBYTES + struct.pack("<I", len(data)) + data


class StreamMutator:
    """Mutates a pickle stream as opcodes, with `rng` (a ``random.Random``).

    `spans` are other streams' opcodes to splice in; `attack` lets renamed
    globals be ones a restricted load must refuse.
    """

    KINDS = {
        "int": 24,
        "dtype": 14,
        "items": 10,
        "opcode": 16,
        "name": 8,
        "bytes": 8,
        "memo": 5,
        "length": 5,
        "splice": 6,
        "proto": 1,
    }

    def __init__(self, rng, spans=(), attack=False):
        self.rng = rng
        self.spans = spans
        self.attack = attack
        self.named_attack = False  # set once a mutation names an ATTACK_GLOBALS name

    def mutate(self, stream, count=None):
        rng = self.rng
        stream = bytes(stream)
        ops, tail = pickle_ops(stream)
        if not ops:
            return stream
        pieces = [stream[start:stop] for start, stop, _, _ in ops]
        names = [name for _, _, name, _ in ops]
        args = [arg for _, _, _, arg in ops]
        count = count or rng.choice([1, 1, 1, 1, 2, 2, 3])
        kinds, weights = zip(*self.KINDS.items())
        for _ in range(count):
            kind = rng.choices(kinds, weights)[0]
            getattr(self, "_" + kind)(pieces, names, args)
        return b"".join(pieces) + tail

    # Each mutation edits `pieces` (and keeps `names`/`args` in step where later ones need them).
    def _pick(self, names, wanted):
        where = [index for index, name in enumerate(names) if name in wanted]
        return self.rng.choice(where) if where else None

    def _new_int(self, old):
        rng = self.rng
        if isinstance(old, int) and rng.random() < 0.3:
            return rng.choice([old + 1, old - 1, old * 2, old * 1000 + 7, -old, old + 2**32])
        return rng.choice(INTS)

    def _int(self, pieces, names, args):
        index = self._pick(names, _INT_OPS)
        if index is None:
            return self._opcode(pieces, names, args)
        value = self._new_int(args[index])
        pieces[index], names[index], args[index] = op_int(value), "LONG1", value

    def _memo(self, pieces, names, args):
        index = self._pick(names, _MEMO_OPS)
        if index is None:
            return self._int(pieces, names, args)
        fmt = _MEMO_OPS[names[index]]
        value = self._new_int(args[index]) % (1 << (8 * struct.calcsize(fmt)))
        pieces[index] = pieces[index][:1] + struct.pack(fmt, value)

    def _dtype(self, pieces, names, args):
        where = [
            index
            for index, name in enumerate(names)
            if name in _STR_OPS and isinstance(args[index], str) and DTYPE_CODE.match(args[index])
        ]
        if not where:
            return self._int(pieces, names, args)
        index = self.rng.choice(where)
        pieces[index] = op_str(self.rng.choice(DTYPE_CODES))

    def _items(self, pieces, names, args):
        """Remove items from a list, dict or set (the short item lists of object arrays)."""
        index = self._pick(names, {"APPENDS", "SETITEMS", "ADDITEMS", "APPEND"})
        if index is None:
            return self._opcode(pieces, names, args)
        if names[index] == "APPEND" or self.rng.random() < 0.5:
            # drop the simple push right before it (one item, or half of a dict entry)
            if index and names[index - 1] in _SIMPLE_PUSHES:
                pieces[index - 1] = b""
            return
        depth = 0
        for back in range(index - 1, -1, -1):  # the MARK that this opcode takes its items from
            if names[back] in _MARK_USERS:
                depth += 1
            elif names[back] == "MARK":
                if depth == 0:
                    for gone in range(back, index + 1):
                        pieces[gone] = b""
                    return
                depth -= 1

    def _opcode(self, pieces, names, args):
        rng = self.rng
        index = rng.randrange(len(pieces))
        kind = rng.choice(["delete", "duplicate", "swap", "insert", "insert", "replace"])
        if kind == "delete":
            pieces[index] = b""
        elif kind == "duplicate":
            pieces[index] = pieces[index] * 2
        elif kind == "swap" and index + 1 < len(pieces):
            pieces[index], pieces[index + 1] = pieces[index + 1], pieces[index]
        elif kind == "insert":
            pieces[index] = rng.choice(_NO_ARG_OPS) + pieces[index]
        elif pieces[index]:  # another opcode byte before the same argument bytes
            pieces[index] = rng.choice(_NO_ARG_OPS) + pieces[index][1:]

    def _name(self, pieces, names, args):
        rng = self.rng
        pool = SAFE_GLOBALS + (ATTACK_GLOBALS if self.attack else [])
        module, name = rng.choice(pool)
        self.named_attack |= (module, name) in ATTACK_GLOBALS
        index = self._pick(names, {"STACK_GLOBAL", "GLOBAL"})
        if index is None:
            return self._opcode(pieces, names, args)
        if names[index] == "GLOBAL":
            pieces[index] = pickle.GLOBAL + f"{module}\n{name}\n".encode()
            return
        # the two strings STACK_GLOBAL takes (MEMOIZE between them keeps the memo in step)
        strings = [back for back in range(index - 1, max(index - 5, -1), -1) if names[back] != "MEMOIZE"][:2]
        if len(strings) == 2:
            pieces[strings[1]], pieces[strings[0]] = op_str(module), op_str(name)
        else:
            pieces[index] = op_str(module) + op_str(name) + pieces[index]

    def _bytes(self, pieces, names, args):
        rng = self.rng
        index = self._pick(names, {"SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8"})
        if index is None:
            return self._length(pieces, names, args)
        data = bytes(args[index])
        kind = rng.choice(["cut", "grow", "double", "empty", "flip"])
        if kind == "cut":
            data = data[: rng.randrange(len(data) + 1)]
        elif kind == "grow":
            data += bytes(rng.randrange(256) for _ in range(rng.choice([1, 7, 8, 64])))
        elif kind == "double":
            data *= 2
        elif kind == "empty":
            data = b""
        elif data:
            position = rng.randrange(len(data))
            data = data[:position] + bytes([data[position] ^ rng.randrange(1, 256)]) + data[position + 1 :]
        pieces[index] = op_bytes(data)

    def _length(self, pieces, names, args):
        """A length prefix that disagrees with the data after it (a huge one, often)."""
        index = self._pick(names, _BYTES_OPS)
        if index is None:
            return self._int(pieces, names, args)
        fmt = _BYTES_OPS[names[index]]
        bits = 8 * struct.calcsize(fmt)
        value = self._new_int(args[index] if isinstance(args[index], int) else len(args[index]))
        value = value % (1 << bits) if fmt[1].isupper() else (value + (1 << bits - 1)) % (1 << bits) - (1 << bits - 1)
        pieces[index] = pieces[index][:1] + struct.pack(fmt, value) + pieces[index][1 + struct.calcsize(fmt) :]

    def _splice(self, pieces, names, args):
        if not self.spans:
            return self._opcode(pieces, names, args)
        rng = self.rng
        other = rng.choice(self.spans)
        start = rng.randrange(len(other))
        pieces[rng.randrange(len(pieces))] += b"".join(other[start : start + rng.randint(1, 8)])

    def _proto(self, pieces, names, args):
        index = self._pick(names, {"PROTO"})
        if index is not None:
            pieces[index] = pickle.PROTO + bytes([self.rng.choice([0, 1, 2, 3, 4, 5, 6, 255])])


def op_spans(stream):
    """The opcodes of `stream` as byte strings: material for `StreamMutator`'s splices."""
    stream = bytes(stream)
    ops, _ = pickle_ops(stream)
    return [stream[start:stop] for start, stop, name, _ in ops if name not in ("PROTO", "FRAME", "STOP")]


# -- seeds --------------------------------------------------------------------------------------
def seed_values():
    """Values whose pickles hold what numpy unpickles unchecked: dtypes, object arrays, numpy states."""
    import collections
    import datetime
    import decimal
    import fractions
    import pathlib
    import uuid

    objects = np.array([1, "two", None, 3.5, (4,), [5]], dtype=object)
    structured = np.zeros(3, dtype=[("x", "<i4"), ("y", ">f8", (2,)), ("s", "S3")])
    with_object_field = np.array([(1, "a"), (2, None)], dtype=[("n", "i8"), ("o", "O")])
    masked = np.ma.masked_array(np.arange(6.0), mask=[0, 1, 0, 0, 1, 0])
    return {
        "dtype O": np.dtype("O"),
        "dtypes": [
            np.dtype("<f8"),
            np.dtype(">i4"),
            np.dtype("U5"),
            np.dtype("M8[ns]"),
            np.dtype("m8[D]"),
            structured.dtype,
            with_object_field.dtype,
            np.dtype(("f4", (2, 3))),
            np.dtype("V7"),
        ],
        "object array": objects,
        "object array 2d": np.array([[None, 1], [2.5, "x"]], dtype=object),
        "structured with object": with_object_field,
        "masked": masked,
        "record": np.rec.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")]),
        "matrix": np.asarray([[1, 2], [3, 4]]).view(np.matrix),  # not np.matrix(): no deprecation warning
        "scalars": [
            np.float64(1.5),
            np.int8(-3),
            np.datetime64("2024-01-02T03:04"),
            np.str_("s"),
            np.void(b"\x01\x02"),
            structured[0],
            with_object_field[1],
        ],
        "arrays": {
            "f": np.arange(12.0).reshape(3, 4),
            "F": np.asfortranarray(np.arange(6).reshape(2, 3)),
            "view": np.arange(30, dtype=">i2")[::3],
            "empty": np.empty((0, 3)),
            "S": structured,
            "M": np.array(["2020-01-01", "NaT"], dtype="M8[s]"),
            "b": np.array([True, False]),
        },
        "builtins": {
            "l": [1, 2.5, "x", b"y", None, True],
            "t": (1, (2, 3)),
            "s": {1, 2},
            "fs": frozenset([3]),
            "ba": bytearray(b"ab"),
            "c": 1 + 2j,
            "big": 2**100,
            "r": range(3),
            "sl": slice(1, 5, 2),
        },
        "stdlib": [
            collections.OrderedDict(a=1),
            collections.deque([1, 2]),
            collections.Counter("aab"),
            collections.defaultdict(list, {"k": [1]}),
            decimal.Decimal("1.5"),
            fractions.Fraction(1, 3),
            datetime.datetime(2024, 1, 2, 3, 4, 5),
            datetime.timedelta(days=2),
            uuid.UUID(int=5),
            pathlib.PurePosixPath("/a/b"),
        ],
    }


def container_seeds():
    """``{name: container bytes}``: each seed value dumped plain, and some compressed."""
    from joblite import dumps

    seeds = {}
    for name, value in seed_values().items():
        seeds[name] = dumps(value)
        if name in ("object array", "dtypes", "arrays", "masked"):
            seeds[name + " (lz4)"] = dumps(value, compress="lz4")
            seeds[name + " (zlib)"] = dumps(value, compress="zlib")
            seeds[name + " (blosc-lz4)"] = dumps(value, compress="blosc-lz4")
            seeds[name + " (blosc-zstd-bitshuffle)"] = dumps(value, compress="blosc-zstd-bitshuffle")
        if name == "arrays":  # a pickle stream of 4 KiB or more is compressed too
            long_stream = {"arrays": value, "text": "joblite " * 600}
            seeds[name + ", long stream (lz4)"] = dumps(long_stream, compress="lz4")
            seeds[name + ", long stream (blosc-lz4)"] = dumps(long_stream, compress="blosc-lz4")
    return seeds


def joblib_seeds():
    """``{name: (uncompressed joblib file, compression)}``: each seed value by ``joblib.dump``."""
    import warnings

    import joblib

    seeds = {}
    for name, value in seed_values().items():
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # np.matrix, numpy.core
            joblib.dump(value, buffer)
        compression = {
            "object array": "zlib",
            "arrays": "gzip",
            "masked": "bz2",
            "dtypes": "xz",
            "matrix": "lzma",
            "structured with object": "lz4",
        }.get(name)
        seeds[name] = (buffer.getvalue(), compression)
    return seeds


def compress_joblib(data, compression):
    """`data` compressed as a whole in the format ``joblib.dump(compress=...)`` writes."""
    import bz2
    import gzip
    import lzma
    import zlib

    if compression is None:
        return data
    if compression == "zlib":
        return zlib.compress(data, 3)
    if compression == "gzip":
        return gzip.compress(data, 3, mtime=0)
    if compression == "bz2":
        return bz2.compress(data, 3)
    if compression in ("lzma", "xz"):
        return lzma.compress(data, format=lzma.FORMAT_ALONE if compression == "lzma" else lzma.FORMAT_XZ, preset=3)
    import lz4.frame

    return lz4.frame.compress(data)


def joblib_pieces(data):
    """An uncompressed joblib file as ``[(kind, bytes)]``: ``'pickle'`` pieces and ``'data'`` (padding + bytes).

    Found by joblib's own unpickler (the seeds are valid): the outer stream is
    cut where each array's data follow its wrapper; an object array's data is
    a nested pickle stream, itself a ``'pickle'`` piece.
    """
    import joblib.numpy_pickle as jp

    marks = []

    class Recorder(jp.NumpyUnpickler):
        dispatch = jp.NumpyUnpickler.dispatch.copy()

        def load_build(self):
            pickle._Unpickler.load_build(self)
            wrapper = self.stack[-1]
            if isinstance(wrapper, jp.NumpyArrayWrapper):
                start = self.file_handle.tell()
                self.stack[-1] = wrapper.read(self, False)
                marks.append((start, self.file_handle.tell(), wrapper.dtype.hasobject))

        dispatch[pickle.BUILD[0]] = load_build

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Recorder("seed", io.BytesIO(data), False).load()
    pieces, position = [], 0
    for start, stop, nested in marks:
        if nested and start < position:  # an object array inside another's nested stream: part of it
            continue
        pieces.append(("pickle", unframe(data[position:start])))
        pieces.append(("pickle" if nested else "data", unframe(data[start:stop]) if nested else data[start:stop]))
        position = stop
    pieces.append(("pickle", unframe(data[position:])))
    return pieces


# -- the inputs ---------------------------------------------------------------------------------
class Seeds:
    """Everything the cases are made from, built once per process."""

    def __init__(self):
        from joblite import _blocks

        self.blocks = _blocks
        self.containers = container_seeds()
        self.container_names = sorted(self.containers)
        self.parsed = {name: H.parse(data) for name, data in self.containers.items()}
        self.streams = {name: unframe(self._container_stream(name)) for name in self.container_names}
        self.joblib = {name: (joblib_pieces(data), compression) for name, (data, compression) in joblib_seeds().items()}
        self.joblib_names = sorted(self.joblib)
        self.spans = [op_spans(stream) for stream in self.streams.values()]
        self.raw = dict(self.containers)
        data_folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "persistence")
        for folder, _, names in sorted(os.walk(data_folder)):  # a folder per format version
            for name in sorted(names):
                if name.endswith(".jl"):
                    with open(os.path.join(folder, name), "rb") as handle:
                        self.raw["golden " + os.path.relpath(os.path.join(folder, name), data_folder)] = handle.read()
        for name, (pieces, compression) in self.joblib.items():
            whole = b"".join(piece for _, piece in pieces)
            self.raw["joblib " + name] = whole
            if compression:
                self.raw[f"joblib {name} ({compression})"] = compress_joblib(whole, compression)
        self.raw_names = sorted(self.raw)
        self.known = {}  # target -> its known_cases, made once

    def _container_stream(self, name):
        data, layout = self.containers[name], self.parsed[name]
        stored = data[slice(*layout["pickle"])]
        if not layout["pickle_codec"]:
            return stored
        if layout["version"] >= 2:  # the frame, without its chunk checksums
            stored = stored[: len(stored) - 8 * int.from_bytes(stored[:4], "little")]
        out = bytearray(layout["pickle_raw_length"])
        self.blocks.decompress_block(
            stored, len(out), 1, layout["codecs"][layout["pickle_codec"]], out, chunk_size=layout["chunk_size"]
        )
        return bytes(out)

    def rebuild_container(self, name, stream):
        """The container `name` with pickle stream `stream`, compressed as it was, every checksum valid."""
        data, layout = self.containers[name], self.parsed[name]
        blocks = [
            (data[slice(*block["range"])], block["raw_length"], block["codec"], block["itemsize"])
            for block in layout["blocks"]
        ]
        codec, version = layout["pickle_codec"], layout["version"]
        if codec:
            stored = self.blocks.compress_block(stream, 1, layout["codecs"][codec], 1, chunk_size=layout["chunk_size"])
            if version >= 2:
                stored = H.with_checksums(stored)
            return H.build(stored, blocks, layout["codecs"], codec, len(stream), layout["chunk_size"], version)
        return H.build(stream, blocks, layout["codecs"], 0, None, layout["chunk_size"], version)


def container_stream_case(seeds, rng):
    """``(seed name, file bytes, names an attack global)``: a container with a mutated pickle stream."""
    name = rng.choice(seeds.container_names)
    mutator = StreamMutator(rng, seeds.spans, attack=rng.random() < 0.25)
    stream = mutator.mutate(seeds.streams[name])
    return name, seeds.rebuild_container(name, stream), mutator.named_attack


def joblib_stream_case(seeds, rng):
    """``(seed name, file bytes, names an attack global)``: a joblib file with a mutated pickle piece."""
    name = rng.choice(seeds.joblib_names)
    pieces, compression = seeds.joblib[name]
    pieces = list(pieces)
    mutator = StreamMutator(rng, seeds.spans, attack=rng.random() < 0.25)
    for _ in range(rng.choice([1, 1, 1, 2])):
        index = rng.randrange(len(pieces))
        kind, piece = pieces[index]
        if kind == "pickle":
            pieces[index] = (kind, mutator.mutate(piece, count=1))
        elif piece:  # the padding length, or the length of the data
            change = rng.choice(["pad", "cut", "grow"])
            if change == "pad":
                piece = bytes([rng.choice([0, 1, 15, 16, 17, 255])]) + piece[1:]
            elif change == "cut":
                piece = piece[: rng.randrange(len(piece))]
            else:
                piece += bytes(rng.choice([1, 8, 4096]))
            pieces[index] = (kind, piece)
    data = b"".join(piece for _, piece in pieces)
    return name, compress_joblib(data, compression), mutator.named_attack


# Container fields a forged file sets to huge or inconsistent values: (where, struct format)
def _container_fields(data):
    try:
        layout = H.parse(data)
    except Exception:
        return []
    fields = [(16, "<Q"), (24, "<Q"), (40, "<B"), (48, "<Q")]
    footer = layout["footer"][0]
    fields += [(footer + 8, "<Q"), (footer + 16, "<Q"), (footer + 24, "<Q"), (footer + 40, "<Q")]
    table = layout["table"][0]
    for index, block in enumerate(layout["blocks"]):
        entry = table + index * H.ENTRY.size
        fields += [(entry, "<Q"), (entry + 8, "<Q"), (entry + 16, "<Q"), (entry + 24, "<B"), (entry + 25, "<B")]
        if block["codec"] and block["length"] >= 8:
            fields += [(block["offset"], "<I"), (block["offset"] + 4, "<I")]  # frame: n_chunks, first size
            first = block["offset"] + 4 + 4 * int.from_bytes(data[block["offset"] : block["offset"] + 4], "little")
            names = layout["codecs"]
            blosc = block["codec"] < len(names) and names[block["codec"]].startswith("blosc-")
            if blosc and first + 16 <= block["offset"] + block["length"]:
                # the first chunk's Blosc header: flags, typesize, nbytes, blocksize, cbytes
                fields += [
                    (first + 2, "<B"),
                    (first + 3, "<B"),
                    (first + 4, "<I"),
                    (first + 8, "<I"),
                    (first + 12, "<I"),
                ]
    if layout["pickle_codec"]:
        fields += [(64, "<I"), (68, "<I")]
    return fields


def raw_case(seeds, rng):
    """``(seed name, file bytes, False)``: a seed file damaged byte by byte (a container: resealed, mostly)."""
    name = rng.choice(seeds.raw_names)
    data = bytearray(seeds.raw[name])
    is_container = data[:8] == H.MAGIC
    for _ in range(rng.choice([1, 1, 2, 3, 4])):
        kinds = [
            "flip",
            "flip",
            "bit",
            "insert",
            "delete",
            "overwrite",
            "integer",
            "truncate",
            "splice",
            "duplicate",
        ] + ["field"] * (6 if is_container else 0)
        kind = rng.choice(kinds)
        size = len(data)
        position = rng.randrange(max(size, 1))
        if kind == "flip" and size:
            data[position] ^= rng.randrange(1, 256)
        elif kind == "bit" and size:
            data[position] ^= 1 << rng.randrange(8)
        elif kind == "insert":
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 80)))
        elif kind == "delete":
            del data[position : position + rng.randint(1, 80)]
        elif kind == "overwrite":
            data[position : position + 8] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == "integer":
            width, fmt = rng.choice([(1, "<B"), (2, "<H"), (4, "<I"), (8, "<Q")])
            value = rng.choice(INTS + [size, size - 64, position]) % (1 << (8 * width))
            aligned = position - position % width
            if aligned + width <= size:
                struct.pack_into(fmt, data, aligned, value)
        elif kind == "truncate":
            del data[position:]
        elif kind == "splice":
            other = seeds.raw[rng.choice(seeds.raw_names)]
            data = data[:position] + other[rng.randrange(len(other) + 1) :]
        elif kind == "duplicate":
            data[position:position] = data[position : position + rng.randint(1, 256)]
        elif kind == "field":
            fields = _container_fields(data)
            if fields:
                offset, fmt = rng.choice(fields)
                bits = 8 * struct.calcsize(fmt)
                if offset + bits // 8 > size:
                    continue
                claims = INTS + [31 << 30, 1 << 24, (1 << 24) + 1, size * 256, size * 1033, size * 32769]
                struct.pack_into(fmt, data, offset, rng.choice(claims) % (1 << bits))
    if is_container and rng.random() < 0.8:
        return name, H.reseal(bytes(data)), False
    return name, bytes(data), False


def _known(stream, kind):
    """`stream` (unframed, of the seed that holds the part) forged as one of the crashes the issue reports."""
    ops, tail = pickle_ops(stream)
    pieces = [stream[start:stop] for start, stop, _, _ in ops]
    names = [name for _, _, name, _ in ops]
    args = [arg for _, _, _, arg in ops]
    if kind == "dtype('O') as 'M8'":  # the type code of an object dtype changed, its flags kept
        pieces[args.index("O8")] = op_str("M8")
    else:
        # the state of an object array: BUILD's tuple (version, shape, dtype, fortran, items)
        start = names.index("EMPTY_LIST")  # the items (the first list of the object-array seeds)
        stop = names.index("APPENDS", start)
        if kind == "object array, shape enlarged":
            # _reconstruct(...) REDUCE, MEMOIZE, then the state: MARK, version, the shape's ints, TUPLEn
            state = names.index("REDUCE") + 2
            shape = min(index for index in range(state, start) if names[index] in ("TUPLE1", "TUPLE2", "TUPLE3"))
            pieces[shape - 1] = op_int(100_000)  # the last dimension
        else:  # "short item list": all items gone
            for index in range(start + 2, stop + 1):  # MARK .. APPENDS, after EMPTY_LIST and MEMOIZE
                pieces[index] = b""
    return b"".join(pieces) + tail


KNOWN = ("dtype('O') as 'M8'", "object array, shape enlarged", "object array, short item list")


def known_cases(seeds, target):
    """The crashes the issue reports, forged from the seeds: ``[(name, bytes, combos)]``.

    In containers (and, for the object arrays, in the nested pickles of
    joblib files); they are the first inputs of every campaign.
    """
    cases = []
    for kind in KNOWN:
        seed = "dtype O" if kind.startswith("dtype") else "object array"
        if target == "container-stream":
            forged = _known(seeds.streams[seed], kind)
            cases.append((f"{seed}: {kind}", seeds.rebuild_container(seed, forged), COMBOS))
        elif target == "joblib-stream" and seed == "object array":
            pieces, compression = seeds.joblib[seed]
            nested = [
                index
                for index, (part, piece) in enumerate(pieces)
                if part == "pickle" and index and pieces[index - 1][0] == "pickle"
            ]
            pieces = list(pieces)
            pieces[nested[0]] = ("pickle", _known(pieces[nested[0]][1], kind))
            data = compress_joblib(b"".join(piece for _, piece in pieces), compression)
            cases.append((f"{seed}: {kind}", data, COMBOS))
    return cases


CASES = {"container-stream": container_stream_case, "joblib-stream": joblib_stream_case, "raw": raw_case}
COMBOS = [(None, None), (None, "r"), ("numpy", None), ("numpy", "r")]  # (allowed, mmap_mode)


def make_case(seeds, target, seed, index):
    """Input `index` of `target` under `seed`: ``(seed name, bytes, combos)``; the same every time.

    The first inputs are the `known_cases` of the target.
    """
    import random

    known = seeds.known.get(target)
    if known is None:
        known = seeds.known[target] = known_cases(seeds, target)
    if index < len(known):
        return known[index]
    rng = random.Random(f"{seed}:{target}:{index}")
    name, data, attack = CASES[target](seeds, rng)
    combos = [combo for combo in COMBOS if combo[0] == "numpy"] if attack else COMBOS
    return name, data, combos
