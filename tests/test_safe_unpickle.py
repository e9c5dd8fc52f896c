"""The one unpickler of both readers (``joblite._safe_unpickle``): attacks and forged files.

Every attack is a pickle stream written by hand (or numpy's own pickle with a
few bytes changed) and loaded in both formats: inside a joblite container whose
checksums are valid (written by the container writer of the spec,
``_persistence_helpers.build``) and as a joblib-format file (a bare pickle
stream, which ``joblite.load`` reads with the joblib reader).  Loads that
could crash or change the interpreter run in a child process, so that a
failure is a failed test and not a dead test runner.
"""

import collections
import datetime
import json.decoder
import os
import pickle
import pickletools
import re
import resource
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import _persistence_helpers as H
import joblite
from joblite import _safe_unpickle
from joblite._safe_unpickle import CorruptFileError, UnsafeLoadError
from joblite.persistence import dumps, load, loads

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(os.path.dirname(HERE), "docs", "security.rst")
# The folder the joblite under test comes from, for the children.
JOBLITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
FORMATS = ["container", "joblib"]


# -- hand-written streams -------------------------------------------------------------------
def lit(value):
    """The opcodes that push `value` (None, bool, int, str, bytes, and lists, tuples, dicts of them)."""
    return pickletools.optimize(pickle.dumps(value, protocol=3))[2:-1]


def build(target, state):
    """`target` (opcodes that push an object), then BUILD with `state`."""
    return target + lit(state) + pickle.BUILD


def write(tmp_path, stream, fmt, name="evil"):
    """Write the protocol-5 `stream` as a container or as a joblib file; return the path."""
    path = tmp_path / f"{name}.{'jl' if fmt == 'container' else 'pkl'}"
    path.write_bytes(H.with_stream(stream) if fmt == "container" else stream)
    return path


def run_child(code, *args):
    """Run `code` in a fresh interpreter with the joblite under test; no core file if it crashes."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([JOBLITE_ROOT, HERE]))

    def no_core():
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=no_core,
    )


# -- modules reached through admitted names -------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("allowed", ["numpy", ["datetime.*"], ["datetime.sys"], ["pathlib.*"]])
@pytest.mark.parametrize(
    "module, name",
    [
        ("datetime", "sys"),
        ("pathlib", "os"),
        ("pathlib", "sys"),
        ("collections", "abc"),
        ("numpy", "ma"),
        ("numpy", "lib"),
    ],
)
def test_a_module_reached_through_an_admitted_one_is_refused(tmp_path, fmt, allowed, module, name):
    path = write(tmp_path, H.program(H.stack_global(module, name)), fmt)
    with pytest.raises(UnsafeLoadError) as info:
        load(path, allowed=allowed)
    assert (info.value.module, info.value.name) == (module, name)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_exactly_listed_module_is_refused_too(tmp_path, fmt):
    for module, name in [("datetime", "sys"), ("os", "path"), ("numpy", "ma")]:
        path = write(tmp_path, H.program(H.stack_global(module, name)), fmt)
        with pytest.raises(UnsafeLoadError, match="is a module"):
            load(path, allowed=[f"{module}.{name}"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("allowed", ["numpy", ["pathlib.PurePath", "pathlib.Path"]])
def test_build_on_a_class_is_refused(tmp_path, fmt, allowed):
    """setattr on pathlib.PurePath (BUILD's slot state) would change every path of the process."""
    import pathlib

    original = pathlib.PurePath.__str__
    for state in [(None, {"__str__": "pwned"}), {"__str__": "pwned"}]:
        path = write(tmp_path, H.program(build(H.stack_global("pathlib", "PurePath"), state)), fmt)
        with pytest.raises(UnsafeLoadError, match="pathlib.PurePath.*gives a state only"):
            load(path, allowed=allowed)
    assert pathlib.PurePath.__str__ is original


@pytest.mark.parametrize("fmt", FORMATS)
def test_build_on_a_global_object_is_refused(tmp_path, fmt):
    for module, name in [("builtins", "Ellipsis"), ("builtins", "object"), ("datetime", "timezone")]:
        path = write(tmp_path, H.program(build(H.stack_global(module, name), (None, {"x": 1}))), fmt)
        with pytest.raises(UnsafeLoadError, match="gives a state only"):
            load(path, allowed="numpy")


# -- sys.path rewritten, then a zip in the loaded file itself imported ----------------------
ATTACK = r"""
    import ast, io, pickle, pickletools, sys, zipfile
    import _persistence_helpers as H
    import joblite

    path, fmt, marker, allowed = sys.argv[1:5]
    allowed = ast.literal_eval(allowed)

    def lit(value):
        return pickletools.optimize(pickle.dumps(value, protocol=3))[2:-1]

    # tzdata/__init__.py, found by zoneinfo.ZoneInfo for a key not on the system
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("tzdata/__init__.py", f"open({marker!r}, 'w').write('ran')\n")
    stream = H.program(
        lit(archive.getvalue()),
        H.stack_global("zoneinfo", "ZoneInfo") + pickle.BINPUT + b"\x00",   # imported while sys.path holds
        H.stack_global("datetime", "sys") + lit((None, {"path": [path] + sys.path})) + pickle.BUILD,
        pickle.BINGET + b"\x00" + lit(("Nowhere/Pwned",)) + pickle.REDUCE,
    )
    data = H.with_stream(stream) if fmt == "container" else stream
    with open(path, "wb") as handle:
        handle.write(data)
    try:
        joblite.load(path, allowed=allowed)
        print("loaded")
    except Exception as exc:
        print(type(exc).__name__, exc)
    print("path", sys.path[0] == path)
"""


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "allowed", ["'numpy'", "['datetime.*', 'zoneinfo.ZoneInfo']", "['datetime.sys', 'zoneinfo.ZoneInfo']", "None"]
)
def test_sys_path_rewrite_and_zip_import_from_the_file_itself(tmp_path, fmt, allowed):
    path = tmp_path / ("evil.jl" if fmt == "container" else "evil.pkl")
    marker = tmp_path / "pwned"
    result = run_child(ATTACK, path, fmt, marker, allowed)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    if allowed == "None" and fmt == "container":
        # Full pickle runs what the file names (the C unpickler): the attack is real.
        assert marker.exists() and "path True" in out, out
        return
    # allowed=: refused at datetime.sys; None on a joblib file: the checked unpickler
    # refuses BUILD on a module.
    refusal = "global sys in" if allowed == "None" else "global datetime.sys in"
    assert "UnsafeLoadError" in out and refusal in out, out
    assert "path False" in out, out
    assert not marker.exists(), out


# -- refused names are never imported ------------------------------------------------------
NOT_IMPORTED = r"""
    import sys
    import _persistence_helpers as H
    import joblite

    folder, fmt = sys.argv[1:3]
    assert "numpy.f2py" not in sys.modules and "numpy.testing" not in sys.modules
    refused = 0
    for allowed in ("numpy", ["numpy.*"], ["numpy.ndarray"]):
        for module, name in [("numpy.f2py", "x"), ("numpy", "f2py"), ("numpy.testing", "x"),
                             ("numpy", "testing"), ("numpy", "f2py.x"), ("numpy", "testing.assert_equal")]:
            stream = H.program(H.stack_global(module, name))
            path = f"{folder}/x.{fmt}"
            with open(path, "wb") as handle:
                handle.write(H.with_stream(stream) if fmt == "container" else stream)
            try:
                joblite.load(path, allowed=allowed)
            except joblite.UnsafeLoadError:
                refused += 1
    print("refused", refused, "imported", sorted(m for m in ("numpy.f2py", "numpy.testing") if m in sys.modules))
"""


@pytest.mark.parametrize("fmt", FORMATS)
def test_refused_numpy_names_are_not_imported(tmp_path, fmt):
    result = run_child(NOT_IMPORTED, tmp_path, fmt)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["refused", "18", "imported", "[]"], result.stdout + result.stderr


# -- forged numpy states: crashes of numpy's own unpickling ---------------------------------
class _Reduced:
    """Pickles as the reduce tuple it is given."""

    def __init__(self, reduced):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


def forged_stream(kind):
    """numpy's own pickle (protocol 5) of a value, forged so that numpy's unpickling crashes."""
    if kind == "dtype-code":
        # np.dtype('O') with its type code changed: a datetime dtype without its unit
        stream = pickle.dumps(np.dtype("O"), protocol=5)
        assert stream.count(b"O8") == 1
        return stream.replace(b"O8", b"M8")
    if kind == "object-shape":
        # an object array with its shape enlarged: numpy reads 99 items from a list of 3
        stream = pickle.dumps(np.array(["x", 1, None], dtype=object), protocol=5)
        assert stream.count(b"K\x03\x85") == 1
        return stream.replace(b"K\x03\x85", b"K\x63\x85")
    if kind == "short-list":
        from numpy._core.multiarray import _reconstruct

        state = (1, (6,), np.dtype("O"), False, ["x"])
        return pickle.dumps(_Reduced((_reconstruct, (np.ndarray, (0,), b"b"), state)), protocol=5)
    if kind == "field-offset":
        # an object field far outside its 16-byte item (numpy's own bounds check overflows)
        fields = {"n": (np.dtype("<i8"), 0), "o": (np.dtype("O"), 2**31 - 1)}
        state = (3, "|", None, ("n", "o"), fields, 16, 8, 63)
        return pickle.dumps(_Reduced((np.dtype, ("V16", False, True), state)), protocol=5)
    if kind == "state-on-rebuilt-array":
        # a state given to an array joblite rebuilt: a million elements for its 8 bytes
        state = (
            pickle.MARK
            + lit(1)
            + lit((1 << 20,))
            + H.call("joblite.persistence", "_rebuild_descr", "<f8")
            + lit(False)
            + lit(b"")
            + pickle.TUPLE
        )
        return H.program(rebuilt_array(8) + state + pickle.BUILD)
    raise ValueError(kind)


def rebuilt_array(nbytes, descr="<f8"):
    """Opcodes for ``_rebuild_array(bytearray(nbytes), descr, (n,), 'C')``: an array joblite rebuilds."""
    buffer = H.stack_global("builtins", "bytearray") + lit((b"\0" * nbytes,)) + pickle.REDUCE
    return (
        H.stack_global("joblite.persistence", "_rebuild_array")
        + pickle.MARK
        + buffer
        + lit(descr)
        + lit((nbytes // 8,))
        + lit("C")
        + pickle.TUPLE
        + pickle.REDUCE
    )


FORGED = ["dtype-code", "object-shape", "short-list", "field-offset", "state-on-rebuilt-array"]

LOAD_AND_USE = r"""
    import sys
    import numpy as np
    import joblite

    path, allowed = sys.argv[1], sys.argv[2]
    try:
        value = joblite.load(path, allowed=None if allowed == "None" else allowed)
    except Exception as exc:
        print("error", type(exc).__name__, isinstance(exc, joblite.CorruptFileError), exc)
    else:
        # use it, so that a corrupt object would crash here
        print("loaded", repr(value), np.zeros(2, value) if isinstance(value, np.dtype) else value.sum())
"""


@pytest.mark.parametrize("kind", FORGED[:4])
def test_the_forged_streams_do_crash_numpy(tmp_path, kind):
    """The control: numpy's own unpickling of these streams kills the process."""
    path = tmp_path / "forged.pkl"
    path.write_bytes(forged_stream(kind))
    result = run_child(
        "import pickle, sys, numpy as np\n"
        "value = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "print(repr(value), np.zeros(2, value) if isinstance(value, np.dtype) else value.sum())\n",
        path,
    )
    assert result.returncode < 0, result.stdout + result.stderr


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("allowed", ["None", "numpy"])
@pytest.mark.parametrize("kind", FORGED)
def test_forged_numpy_states_are_refused_without_a_crash(tmp_path, kind, fmt, allowed):
    path = write(tmp_path, forged_stream(kind), fmt)
    result = run_child(LOAD_AND_USE, path, allowed)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert out.startswith("error ") and out.split()[2] == "True", out
    assert str(path) in out, out


def test_forged_states_in_a_dumped_container(tmp_path):
    """The same forgeries inside what dump() wrote, checksums recomputed."""
    for value, old, new in [
        (np.dtype("O"), b"O8", b"M8"),
        (np.array(["x", 1, None], dtype=object), b"K\x03\x85", b"K\x63\x85"),
    ]:
        data = dumps({"v": value, "a": np.arange(4.0)})
        assert data.count(old) == 1
        path = tmp_path / "forged.jl"
        path.write_bytes(H.reseal(data.replace(old, new)))
        for allowed in ("None", "numpy"):
            result = run_child(LOAD_AND_USE.replace("value.sum()", "value['v']"), path, allowed)
            assert result.returncode == 0, result.stdout + result.stderr
            assert result.stdout.startswith("error CorruptFileError True"), result.stdout + result.stderr


# -- sizes the stream claims -----------------------------------------------------------------
SIZES = r"""
    import resource, struct, sys
    import _persistence_helpers as H
    import joblite

    # What the machine grants is bounded, so that a claim cannot be met by chance.
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    folder, fmt = sys.argv[1:3]
    streams = {
        "memo index": b"\x80\x05N" + b"r" + struct.pack("<I", 0xFFFFFFFF) + b".",
        "bytes length": b"\x80\x05\x8e" + struct.pack("<Q", 1 << 40) + b"abc.",
        "bytearray length": b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b"abc.",
    }
    for name, stream in streams.items():
        for allowed in (None, "numpy"):
            path = f"{folder}/x.{fmt}"
            with open(path, "wb") as handle:
                handle.write(H.with_stream(stream) if fmt == "container" else stream)
            try:
                print(name, allowed, "loaded", joblite.load(path, allowed=allowed))
            except Exception as exc:
                cause = exc.__cause__
                print(name, allowed, type(exc).__name__, type(cause).__name__ if cause else None)
"""


@pytest.mark.parametrize("fmt", FORMATS)
def test_memo_indices_and_lengths_in_the_stream_are_not_allocated(tmp_path, fmt):
    result = run_child(SIZES, tmp_path, fmt)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 6, result.stdout + result.stderr
    for line in lines:
        assert "MemoryError" not in line, line
        assert (
            line.endswith("loaded None")
            if line.startswith("memo index")
            else "CorruptFileError" in line or "JoblibFormatError" in line
        ), line


# -- the rules of the checked unpickler ------------------------------------------------------
CALLED = []


def _record(*args):
    CALLED.append(args)


class Recorder:
    def __new__(cls, *args):
        CALLED.append(args)
        return object.__new__(cls)


def factory(what):
    """A function a user admits: what it returns must not become callable by that."""
    return {"function": _record, "class": Recorder}[what]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("what, opcode", [("function", pickle.REDUCE), ("class", pickle.NEWOBJ)])
def test_only_named_globals_are_called(tmp_path, fmt, what, opcode):
    stream = H.program(H.call(__name__, "factory", what) + lit(("ran",)) + opcode)
    path = write(tmp_path, stream, fmt)
    CALLED.clear()
    returned = factory(what).__name__
    for allowed in ([f"{__name__}.factory"], [f"{__name__}.factory", f"{__name__}.{returned}"]):
        with pytest.raises(UnsafeLoadError, match=f"{returned}.*admitted global"):
            load(path, allowed=allowed)
    assert CALLED == []
    load(path)  # full pickle calls it
    assert CALLED == [("ran",)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_class_passed_to_a_call_must_be_named(tmp_path, fmt):
    stream = H.program(
        H.stack_global("copyreg", "_reconstructor")
        + pickle.MARK
        + H.call(__name__, "factory", "class")
        + H.stack_global("builtins", "object")
        + lit(None)
        + pickle.TUPLE
        + pickle.REDUCE
    )
    with pytest.raises(UnsafeLoadError, match="Recorder.*admitted global"):
        load(write(tmp_path, stream, fmt), allowed=[f"{__name__}.factory"])
    assert type(load(write(tmp_path, stream, fmt))) is Recorder


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "call, match",
    [
        (H.call("builtins", "bytearray", 1 << 40), "size"),
        (H.call("builtins", "bytes", 1 << 40), "size"),
        (
            H.stack_global("builtins", "list") + H.call("builtins", "range", 1 << 40) + pickle.TUPLE1 + pickle.REDUCE,
            "range",
        ),
        (
            H.stack_global("collections", "deque")
            + H.call("builtins", "range", 1 << 40)
            + pickle.TUPLE1
            + pickle.REDUCE,
            "range",
        ),
    ],
    ids=["bytearray", "bytes", "list-range", "deque-range"],
)
def test_small_streams_cannot_ask_for_huge_objects(tmp_path, fmt, call, match):
    path = write(tmp_path, H.program(call), fmt)
    with pytest.raises(UnsafeLoadError, match=match):
        load(path, allowed="numpy")


@pytest.mark.parametrize("fmt, allowed", [("container", "numpy"), ("joblib", "numpy"), ("joblib", None)])
def test_numpy_classes_are_never_called(tmp_path, fmt, allowed):
    """A call of numpy.ndarray can read any memory (strides) or allocate any size; numpy never writes one.

    (A container loaded with allowed=None and no numpy dtype in its stream is
    read by the C unpickler, which calls whatever the file names.)
    """
    for module, name, args in [
        ("numpy", "ndarray", (1 << 40,)),
        ("numpy", "void", (1 << 30,)),
        ("numpy.dtypes", "Float64DType", ()),
        ("numpy", "dtype", ("f8",)),
    ]:
        for opcode in (pickle.NEWOBJ, pickle.REDUCE):
            stream = H.program(H.stack_global(module, name) + lit(args) + opcode)
            if opcode == pickle.REDUCE and name == "dtype":
                continue  # numpy's own form: created at its BUILD (here missing)
            with pytest.raises(UnsafeLoadError, match="numpy never pickles"):
                load(write(tmp_path, stream, fmt), allowed=allowed)
    # np.ma.masked is the one numpy class numpy pickles as a call (with no arguments)
    assert load(write(tmp_path, pickle.dumps(np.ma.masked, protocol=5), fmt), allowed=allowed) is np.ma.masked


@pytest.mark.parametrize("fmt", FORMATS)
def test_memmap_is_refused_even_when_listed(tmp_path, fmt):
    victim = tmp_path / "victim.dat"
    stream = H.program(H.call("numpy", "memmap", str(victim), "uint8", "w+", 0, (4,)))
    for allowed in ("numpy", ["numpy.memmap"], ["numpy.*"]):
        with pytest.raises(UnsafeLoadError, match="numpy.memmap"):
            load(write(tmp_path, stream, fmt), allowed=allowed)
    assert not victim.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_module_wildcard_admits_only_what_the_module_defines(tmp_path, fmt):
    allowed = ["json.decoder.*"]
    got = load(write(tmp_path, H.program(H.call("json.decoder", "JSONDecoder")), fmt), allowed=allowed)
    assert type(got) is json.decoder.JSONDecoder
    # imported into json.decoder, not defined there: a module, a C function, a private name
    assert json.decoder.scanstring.__module__ != "json.decoder"
    for name in ["re", "scanstring", "_CONSTANTS", "JSONDecoder.decode"]:
        with pytest.raises(UnsafeLoadError, match=re.escape(f"json.decoder.{name}")):
            load(write(tmp_path, H.program(H.stack_global("json.decoder", name)), fmt), allowed=allowed)


@pytest.mark.parametrize("fmt", FORMATS)
def test_dotted_names_only_when_listed_in_full(tmp_path, fmt):
    unpickle = H.program(H.call("zoneinfo", "ZoneInfo._unpickle", "UTC", 1))
    with pytest.raises(UnsafeLoadError, match="ZoneInfo._unpickle"):
        load(write(tmp_path, unpickle, fmt), allowed="numpy")
    assert str(load(write(tmp_path, unpickle, fmt), allowed=["zoneinfo.ZoneInfo._unpickle"])) == "UTC"
    # an admitted name split differently walks attributes: refused
    for module, name in [
        ("numpy", "ma.core._mareconstruct"),
        ("numpy", "dtypes.Float64DType"),
        ("datetime", "datetime.sys"),
    ]:
        with pytest.raises(UnsafeLoadError):
            load(write(tmp_path, H.program(H.stack_global(module, name)), fmt), allowed="numpy")


def test_numpy_names_come_from_the_namespaces_without_imports():
    names = _safe_unpickle.numpy_names()
    assert {
        "numpy.float64",
        "numpy.bool_",
        "numpy.str_",
        "numpy.datetime64",
        "numpy.void",
        "numpy.dtypes.Float64DType",
        "numpy.dtypes.StrDType",
    } <= names
    expected = {
        f"numpy.{key}"
        for key, value in vars(np).items()
        if isinstance(value, type) and issubclass(value, np.generic) and not key.startswith("_")
    }
    expected |= {
        f"numpy.dtypes.{key}"
        for key, value in vars(np.dtypes).items()
        if isinstance(value, type) and issubclass(value, np.dtype) and not key.startswith("_")
    }
    assert names == expected
    assert not {"numpy.f2py", "numpy.testing", "numpy.ndarray", "numpy.load"} & names


@pytest.mark.filterwarnings("ignore:numpy.core:DeprecationWarning")
def test_every_default_name_loads_as_a_value():
    """The admitted names exist (on this Python and numpy), and none of them is a module."""
    missing = []
    for full in sorted(_safe_unpickle.SAFE_NAMES | _safe_unpickle.numpy_names()):
        module, name = full.rsplit(".", 1)
        try:
            target = _safe_unpickle.find_global(module, name, frozenset(), "test")
        except ImportError:
            missing.append(full)
            continue
        assert not isinstance(target, type(os)), full
    # names of other versions: pathlib._local (Python >= 3.13), numpy._core (numpy >= 2)
    assert all(name.startswith(("pathlib._local.", "numpy._core.", "numpy.core.")) for name in missing), missing


def test_the_documented_names_are_the_admitted_names():
    with open(DOCS, encoding="utf-8") as handle:
        text = handle.read()
    block = text.split(".. _safe-names:", 1)[1].split(".. code-block:: text", 1)[1]
    names = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("   "):
            break
        names.extend(line.split())
    assert sorted(names) == sorted(_safe_unpickle.SAFE_NAMES)


# -- joblite's own rebuild functions ---------------------------------------------------------
@pytest.mark.parametrize("allowed", [None, "numpy"])
def test_rebuild_array_checks_what_the_file_says(allowed):
    assert loads(H.with_stream(H.program(rebuilt_array(16))), allowed=allowed).tolist() == [0.0, 0.0]
    for forged, match in [
        (rebuilt_array(16, "|O"), "holds Python objects"),
        (rebuilt_array(16, [("a", "<i8"), ("b", "|O")]), "holds Python objects"),
        (rebuilt_array(16).replace(lit((2,)), lit((-2,))), "non-negative"),
        (rebuilt_array(16).replace(lit("C"), lit("K")), "order"),
        (rebuilt_array(16).replace(lit((2,)), lit((3,))), "need 24"),
    ]:
        with pytest.raises(CorruptFileError, match=match):
            loads(H.with_stream(H.program(forged)), allowed=allowed)


def rebuilt_subclass(cls, state):
    """Opcodes for ``_rebuild_subclass(cls, <an array of 2 floats>, state)``."""
    return (
        H.stack_global("joblite.persistence", "_rebuild_subclass")
        + pickle.MARK
        + cls
        + rebuilt_array(16)
        + lit(state)
        + pickle.TUPLE
        + pickle.REDUCE
    )


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("allowed", [None, "numpy"])
def test_rebuild_subclass_sets_instance_attributes_only(allowed):
    assert type(loads(dumps(np.matrix([[1.0, 2.0]])), allowed=allowed)) is np.matrix
    matrix = H.stack_global("numpy", "matrix")
    got = loads(H.with_stream(H.program(rebuilt_subclass(matrix, {"note": 1}))), allowed=allowed)
    assert type(got) is np.matrix and got.note == 1
    for forged, match in [
        (rebuilt_subclass(matrix, {3: "not a name"}), "not a dict of names"),
        (rebuilt_subclass(matrix, (None, {"x": 1})), "not a dict of names"),
        (rebuilt_subclass(H.stack_global("builtins", "dict"), None), "pickles like ndarray"),
        (rebuilt_subclass(H.stack_global("numpy.ma", "MaskedArray"), None), "pickles like ndarray"),
    ]:
        with pytest.raises(CorruptFileError, match=match):
            loads(H.with_stream(H.program(forged)), allowed=allowed)
    # numpy.memmap: its attributes name a file
    with pytest.raises(CorruptFileError if allowed is None else UnsafeLoadError, match="memmap"):
        loads(H.with_stream(H.program(rebuilt_subclass(H.stack_global("numpy", "memmap"), None))), allowed=allowed)


# -- speed: what dump writes keeps the C unpickler ------------------------------------------
def ordinary_value():
    return {
        "scalars": [
            np.float64(1.5),
            np.int32(-3),
            np.bool_(True),
            np.complex64(1 + 2j),
            np.float16(0.5),
            np.uint64(2**64 - 1),
            np.datetime64("2024-01-02T03:04", "m"),
            np.timedelta64(5, "s"),
            np.str_("text"),
            np.bytes_(b"raw"),
            np.longdouble(1) / 3,
        ],
        "big-endian": np.array([1.0], dtype=">f8")[0],
        "types": [np.dtype("f8"), np.dtype(">i4"), np.dtype("U7"), np.dtype("M8[ns]"), np.dtype("V3")],
        "array": np.arange(10.0),
        "strings": np.array(["a", None, 1.5, np.float32(2), b"raw", "z" * 100], dtype=object),
        "strings-f": np.asfortranarray(np.array([["a", "b", "c"], ["d", None, 3]], dtype=object)),
        "string-0d": np.array("x", dtype=object),
        "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "ordered": collections.OrderedDict(a=1),
    }


def test_ordinary_dumps_name_none_of_numpys_in_band_reconstruction():
    """numpy scalars and plain dtypes are written through _rebuild_descr: the C unpickler reads them."""
    data = dumps(ordinary_value())
    stream = data[64 : 64 + H.parse(data)["pickle_length"]]
    assert b"dtype" not in stream and b"reconstruct" not in stream
    assert b"_rebuild_descr" in stream and b"_rebuild_object_array" in stream
    for allowed in (None, "numpy"):
        got = loads(data, allowed=allowed)
        H.assert_same(got, ordinary_value())
        assert got["strings-f"].flags.f_contiguous


def test_object_arrays_that_may_hold_themselves_keep_numpys_form():
    """An object array whose items are containers may refer back to itself: numpy's form keeps that."""
    array = np.empty(2, dtype=object)
    array[0] = [array, "x"]
    array[1] = (1, 2)
    data = dumps({"a": array})
    assert b"reconstruct" in data
    for allowed in (None, "numpy"):
        got = loads(data, allowed=allowed)["a"]
        assert got[0][0] is got and got[0][1] == "x" and got[1] == (1, 2)


def test_an_object_dtype_of_gigabyte_items_is_refused_before_numpy_allocates_it():
    """A forged item size (found by the fuzz campaign): 2 items of 2 GiB from a stream of 1 KB."""
    value = {"a": np.array([(1, [1]), (2, [2])], dtype=[("n", "<i8"), ("o", "O")])}
    stream = pickle.dumps(value, protocol=3)  # numpy's own form, without frames to keep in step
    itemsize = b"K\x10K\x01K\x1bt"  # the dtype state's end: itemsize 16, alignment 1, flags 27
    assert stream.count(itemsize) == 1
    forged = stream.replace(itemsize, pickle.BININT + struct.pack("<i", (1 << 31) - 1) + itemsize[2:])
    for allowed in (None, "numpy"):
        with pytest.raises(CorruptFileError, match="needs 4294967294 bytes, more than its stream can hold"):
            loads(H.with_stream(forged), allowed=allowed)
        H.assert_same(loads(H.with_stream(stream), allowed=allowed), value)


def test_large_honest_object_arrays_still_load():
    """A million pointers to one object: 8 MB from a stream of about 2 bytes per item."""
    shared = ["shared"]
    array = np.empty(1_000_000, dtype=object)
    array[:] = [shared] * len(array)
    structured = np.zeros(100_000, dtype=np.dtype([("o", "O"), ("pad", "u1")], align=True))  # 16-byte items
    structured["o"] = [shared] * len(structured)
    for allowed in (None, "numpy"):
        got = loads(dumps({"a": array, "s": structured}), allowed=allowed)
        assert got["a"].shape == array.shape and got["a"][-1] == ["shared"] and got["a"][0] is got["a"][-1]
        assert got["s"].dtype == structured.dtype and got["s"]["o"][-1] == ["shared"]


@pytest.mark.parametrize(
    "items, shape, order, match",
    [
        (["a", "b"], (3,), "C", "with 2 items"),
        (("a", "b"), (2,), "C", "not a list"),
        (["a", "b"], (2, -1), "C", "non-negative"),
        (["a", "b"], (2,), "A", "order"),
    ],
)
def test_rebuild_object_array_checks_what_the_file_says(items, shape, order, match):
    call = H.stack_global("joblite.persistence", "_rebuild_object_array") + lit((items, shape, order)) + pickle.REDUCE
    for allowed in (None, "numpy"):
        with pytest.raises(CorruptFileError, match=match):
            loads(H.with_stream(H.program(call)), allowed=allowed)


def test_dumps_of_older_joblite_with_numpy_in_band_still_load():
    """Files written before plain dtypes had their own rebuild name numpy.dtype: the checked path."""
    value = {
        "scalars": [np.float64(2.5), np.int8(3)],
        "dtype": np.dtype([("a", "<i4"), ("b", "O")]),
        "object": np.array([1, None, "x"], dtype=object),
        "masked": np.ma.array([1.0, 2.0], mask=[0, 1]),
    }
    stream = pickle.dumps(value, protocol=5)
    assert b"dtype" in stream and b"reconstruct" in stream
    for allowed in (None, "numpy"):
        got = loads(H.with_stream(stream), allowed=allowed)
        assert [type(s) for s in got["scalars"]] == [np.float64, np.int8]
        assert got["scalars"] == [2.5, 3] and got["dtype"] == value["dtype"]
        assert got["object"].tolist() == [1, None, "x"]
        assert got["masked"].mask.tolist() == [False, True]


@pytest.mark.parametrize("descr", ["O", "|O", "i4,f8", "(2,)i4", "<f8" + "x" * 40, "V0,", "T"])
def test_rebuild_descr_refuses_what_is_not_a_plain_dtype(descr):
    stream = H.program(H.call("joblite.persistence", "_rebuild_descr", descr))
    for allowed in (None, "numpy"):
        with pytest.raises(CorruptFileError):
            loads(H.with_stream(stream), allowed=allowed)
