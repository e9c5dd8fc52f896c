"""Memory as joblib's users meet it: the ``[Memory]`` lines, and the classes built directly.

The lines that joblite prints for a call are compared with joblib's for the
same calls, at each verbose level where joblib prints them, in two child
processes running one script (one with ``import joblib``, one with
``import joblite as joblib``); what must differ (timings, paths, hashes,
object addresses) is masked.
"""

import logging
import os
import pathlib
import pickle
import re
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import joblite
from joblite import Logger, MemorizedFunc, MemorizedResult, Memory, NotMemorizedFunc, PrintTime, func_inspect
from joblite.store import FileSystemStoreBackend

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))  # the joblite tested

FUNCS = """
def f(x, y=2, *args, z=3, **kw):
    return x

class C:
    def m(self, a, b=1):
        return a

def outer():
    def inner(q):
        return q
    return inner
"""

CALLS = """
import importlib, shutil, sys, tempfile
import numpy as np
import dropin_funcs as mod

joblib = importlib.import_module(sys.argv[1])   # joblib, or joblite as joblib


def in_main(a, b=0):
    return a

for verbose in (1, 2, 5, 11):
    print("=== verbose", verbose, flush=True)
    print("=== verbose", verbose, file=sys.stderr, flush=True)
    folder = tempfile.mkdtemp()
    f = joblib.Memory(folder, verbose=verbose).cache(mod.f)
    f(1)                                  # positional
    f(1)                                  # a hit
    f(1, y=5, z=7, w=9)                   # keywords, defaults omitted, extra keywords
    f(1, 2, 3, 4)                         # extra positional arguments
    f(np.arange(100.0))                   # a numpy array
    f("x" * 2000)                         # a long repr, cut
    f([list(range(30))] * 3, {"k": {"a": {"b": {"c": 1}}}})   # one argument per line; depth
    f.call_and_shelve(1).get()            # a shelved hit, loaded
    f.call_and_shelve(8).get()            # a shelved miss, loaded
    joblib.Memory(folder, verbose=verbose).cache(mod.C().m)(2, b=3)   # a method
    joblib.Memory(folder, verbose=verbose).cache(mod.outer())(4)      # a local function
    joblib.Memory(folder, verbose=verbose).cache(in_main)(5)         # a function of the script run
    mapped = joblib.Memory(folder, verbose=verbose, mmap_mode="r").cache(mod.f)
    mapped(np.zeros(3))                   # loaded as a memmap at once
    mapped(np.zeros(3))
    sys.stdout.flush()
    shutil.rmtree(folder)
"""

MASKS = [
    (re.compile(r"location=[^\s)]*\)"), "location=PATH)"),  # in the repr of a MemorizedFunc
    (re.compile(r"_*(\S+ (cache loaded )?- )\d+\.\ds, \d+\.\dmin"), r"___\1T"),  # f - 0.0s, 0.0min
    (re.compile(r"\[Memory\]\d+\.\ds, \d+\.\dmin *:"), "[Memory]T:"),
    (re.compile(r"/\S*/(joblib|joblite)\b\S*"), "PATH"),  # entries, stores
    (re.compile(r"0x[0-9a-f]+"), "ADDR"),
    (re.compile(r"argument hash [0-9a-f]+"), "argument hash H"),
    (re.compile(r"WARNING:(joblib|joblite):"), "WARNING:"),
]


def masked(text):
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def run_calls(tmp_path, library):
    (tmp_path / "dropin_funcs.py").write_text(FUNCS)
    script = tmp_path / "calls.py"  # one script for both: functions of __main__ are shown with its path
    script.write_text(CALLS)
    process = subprocess.run(
        [sys.executable, str(script), library],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{PACKAGE_PARENT}{os.pathsep}{tmp_path}"},
        cwd=tmp_path,
    )
    assert process.returncode == 0, process.stderr
    return masked(process.stdout), masked(process.stderr)


def test_memory_lines_read_as_joblibs(tmp_path):
    pytest.importorskip("joblib")
    joblib_out, joblib_err = run_calls(tmp_path, "joblib")
    joblite_out, joblite_err = run_calls(tmp_path, "joblite")
    assert joblite_out.splitlines() == joblib_out.splitlines()
    # What joblib logs (verbose > 10: "Computing func ...") joblite logs too, on its own logger.
    assert joblite_err.splitlines() == joblib_err.splitlines()
    # The comparison is not vacuous: the calls printed what item 8 is about.
    for expected in [
        "f(1)",
        "f(1, y=5, z=7, w=9)",
        "f(1, 2, 3, 4)",
        "f(array([ 0., ..., 99.], shape=(100,)))",
        "m(2, b=3)",
        "[Memory] Calling dropin_funcs.outer.<locals>.inner...",
        f"[Memory] Calling __main__-{str(tmp_path / 'calls').replace(os.sep, '-')}.in_main...",
        "[Memory]T: Loading f...",
        "[Memory]T: Loading f(y=2, z=3, x=8, *=[], **={})...",
        "Persisting in PATH",
        "___f cache loaded - T",
    ]:
        assert expected in joblite_out.splitlines(), expected
    assert "f('" + "x" * 699 + "...)" in joblite_out.splitlines()  # repr cut after 700 characters


def lines(capsys):
    return capsys.readouterr().out.splitlines()


def mod_f(x, y=2, *, z=3):
    return x + y + z


def pair(a, b=0):
    return a, b


def test_a_call_is_shown_as_passed(tmp_path, capsys):
    cached = Memory(tmp_path, verbose=1).cache(mod_f)
    assert cached(1, z=4) == 7
    printed = lines(capsys)
    assert printed[:3] == ["_" * 80, f"[Memory] Calling {__name__}.mod_f...", "mod_f(1, z=4)"]
    assert re.fullmatch(r"_+mod_f - \d+\.\ds, \d+\.\dmin", printed[3]) and len(printed[3]) == 80
    assert cached(1, z=4) == 7 and lines(capsys) == []  # hits are silent at verbose 1
    # A long positional argument puts the next one on a line of its own, as joblib does.
    Memory(tmp_path, verbose=1).cache(pair)([0] * 40, 5)
    printed = lines(capsys)
    assert printed[2:4] == ["pair([ 0,", "  0,"] and printed[-3:-1] == ["  0], ", "5)"]


def test_loading_lines_by_verbose_level(tmp_path, capsys):
    Memory(tmp_path, verbose=0).cache(mod_f)(1)
    for verbose in (1, 2, 5):
        assert MemorizedFunc(mod_f, tmp_path, verbose=verbose)(1) == 6
        printed = [re.sub(r"^\[Memory\]\d+\.\ds, \d+\.\dmin *:", "[Memory]T:", line) for line in lines(capsys)]
        assert [line for line in printed if "cache loaded" not in line] == (
            ["[Memory]T: Loading mod_f..."] if verbose > 1 else []
        )
        assert any("mod_f cache loaded - " in line for line in printed) == (verbose > 4)
    # At 10 and more the line says where the entry is.
    MemorizedFunc(mod_f, tmp_path, verbose=10)(1)
    assert re.fullmatch(
        rf"\[Memory\].*: Loading mod_f from {re.escape(str(tmp_path))}/joblite/\S+\.out", lines(capsys)[0]
    )
    # A shelved result loads one level lower, with the call's arguments from its metadata.
    result = MemorizedFunc(mod_f, tmp_path, verbose=3).call_and_shelve(7, z=0)
    capsys.readouterr()
    assert result.get() == 9
    assert re.fullmatch(r"\[Memory\].*: Loading mod_f\(y=2, z=0, x=7\)\.\.\.", lines(capsys)[0])


def test_loading_line_counts_from_the_timestamp():
    assert func_inspect.format_loading("f", time.time() - 90) == "[Memory]90.0s, 1.5min   : Loading f..."
    assert (
        func_inspect.format_loading("f", None, {"input_args": {"x": "1"}}, "/c/e.out")
        == "[Memory]: Loading f(x=1) from /c/e.out"
    )


def test_verbose_above_10_logs_each_computation(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="joblite"):
        MemorizedFunc(mod_f, tmp_path, verbose=11)(1)
    assert [record.name for record in caplog.records] == ["joblite"]
    assert re.fullmatch(
        r"\[MemorizedFunc\(func=<function mod_f at 0x[0-9a-f]+>, location=\S+\)\]: "
        r"Computing func mod_f, argument hash [0-9a-f]{32} in location \S+",
        caplog.messages[0],
    )


def test_input_args_are_keyed_as_joblib_keys_them(tmp_path):
    def g(a, b=1, *rest, c, d=4, **extra):
        return a

    _, metadata = MemorizedFunc(g, tmp_path, verbose=1).call(0, 5, 6, c=7, e=8)
    assert list(metadata["input_args"].items()) == [
        ("b", "5"),
        ("d", "4"),
        ("a", "0"),
        ("*", "[6]"),
        ("c", "7"),
        ("**", "{'e': 8}"),
    ]
    _, metadata = MemorizedFunc(g, tmp_path, ignore=["b", "e"], verbose=1).call(0, c=7, e=8)
    assert metadata["input_args"] == {"d": "4", "a": "0", "*": "[]", "c": "7", "**": "{}"}
    _, metadata = MemorizedFunc(g, tmp_path, verbose=1).call("y" * 2000, c=0)
    assert metadata["input_args"]["a"] == repr("y" * 2000)[:700] + "..."


# -- MemorizedFunc, NotMemorizedFunc and MemorizedResult built directly --------------------
CALLED = []


def counted(x, y=1):
    CALLED.append(x)
    return x * 10 + y


@pytest.mark.parametrize("as_path", [str, pathlib.Path])
def test_memorized_func_built_directly_shares_memorys_cache(tmp_path, as_path):
    CALLED.clear()
    by_memory = Memory(tmp_path, verbose=0).cache(counted)
    assert by_memory(1) == 11 and len(CALLED) == 1
    direct = MemorizedFunc(counted, as_path(tmp_path), verbose=0)
    assert isinstance(direct.store_backend, FileSystemStoreBackend)
    assert direct.func_id == by_memory.func_id and direct.check_call_in_cache(1)
    assert direct(1) == 11 and direct(1, y=1) == 11 and len(CALLED) == 1
    assert direct(2) == 21 and len(CALLED) == 2 and by_memory.check_call_in_cache(2)
    # joblib's positional order: func, location, backend, ignore, mmap_mode, compress, verbose, timestamp, callback
    ignoring = MemorizedFunc(counted, as_path(tmp_path), "local", ["y"], None, False, 0, 5.0, None)
    assert (ignoring.ignore, ignoring.timestamp, ignoring._verbose) == (["y"], 5.0, 0)
    assert ignoring(3, y=1) == 31 and ignoring(3, y=7) == 31 and len(CALLED) == 3
    clone = pickle.loads(pickle.dumps(direct))
    assert clone.check_call_in_cache(2) and clone(2) == 21


def test_memorized_func_refuses_a_bad_location_or_backend(tmp_path):
    with pytest.raises(TypeError, match=r"location=None must be a str, a pathlib.Path .*NotMemorizedFunc"):
        MemorizedFunc(mod_f, None)
    with pytest.raises(TypeError, match="location=3"):
        MemorizedFunc(mod_f, 3)
    with pytest.raises(ValueError, match="backend='nowhere' is not a registered store backend"):
        MemorizedFunc(mod_f, tmp_path, backend="nowhere")
    with pytest.raises(TypeError, match="is not callable"):
        MemorizedFunc(42, tmp_path)


def test_not_memorized_func_built_directly_always_calls():
    CALLED.clear()
    plain = NotMemorizedFunc(counted)
    assert plain(1) == plain(1) == 11 and len(CALLED) == 2
    assert plain.call(2) == (21, {}) and not plain.check_call_in_cache(2)
    shelved = plain.call_and_shelve(3)
    assert shelved.get() == 31
    shelved.clear()
    with pytest.raises(KeyError):
        shelved.get()
    assert pickle.loads(pickle.dumps(plain)).func is counted


def test_memorized_result_built_from_a_location(tmp_path):
    cached = Memory(tmp_path, verbose=0).cache(mod_f)
    shelved = cached.call_and_shelve(1, z=10)
    direct = MemorizedResult(str(tmp_path), (shelved.func_id, shelved.args_id))
    assert direct.get() == 13 and direct.metadata["duration"] == direct.duration >= 0
    MemorizedResult(tmp_path, (shelved.func_id, shelved.args_id)).clear()
    with pytest.raises(KeyError, match="no longer in the cache"):
        shelved.get()


def test_memory_takes_backend_options_in_joblibs_position(tmp_path):
    memory = Memory(tmp_path, "local", None, False, 0, {"lock": True, "lock_timeout": 5})
    assert memory.store_backend.lock and memory.store_backend.lock_timeout == 5
    with pytest.raises(TypeError):
        Memory(tmp_path, "local", None, False, 0, None, "1G")  # bytes_limit is keyword-only
    copy = pickle.loads(pickle.dumps(Memory(tmp_path, verbose=0, bytes_limit="1G")))
    assert copy.bytes_limit == 1 << 30


# -- joblib's logging helpers ----------------------------------------------------------------
def test_print_time_prints_and_logs_with_rotation(tmp_path, capsys):
    logfile = tmp_path / "logs" / "run.log"
    timer = PrintTime(logfile=logfile)
    timer("step one")
    assert re.fullmatch(r"step one: \d+\.\ds, \d+\.\dmin\n", capsys.readouterr().err)
    timer("all", total=True)
    assert re.fullmatch(r"all: \d+\.\d\ds, \d+\.\d min\n", capsys.readouterr().err)
    first = logfile.read_text()
    assert first.startswith("\nLogging joblib python script\n") and "step one: " in first and "all: " in first
    PrintTime(logfile=logfile)  # a second run keeps the first one's log as run.log.1
    assert (tmp_path / "logs" / "run.log.1").read_text() == first and "step one" not in logfile.read_text()
    PrintTime(logdir=tmp_path)("in a folder")
    assert "in a folder" in (tmp_path / "joblib.log").read_text()
    with pytest.raises(ValueError, match="logfile=.* or logdir=.*, not both"):
        PrintTime(logfile=logfile, logdir=tmp_path)


def test_logger_logs_and_formats(caplog):
    logger = Logger(depth=1)
    with caplog.at_level(logging.DEBUG, logger="joblite"):
        logger.warn("careful")
        logger.debug("details")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"[{logger}]: careful"),
        ("DEBUG", f"[{logger}]: details"),
    ]
    assert logger.format([[1, [2]]]) == "[[...]]"
    assert Logger().format(np.arange(100)).startswith("array([ 0, ..., 99]")  # summarised as joblib does


def test_formatting_does_not_import_numpy():
    code = textwrap.dedent("""
        import sys, joblite
        joblite.Logger().format([1, 2])
        assert "numpy" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": PACKAGE_PARENT})


class Shown:
    def __repr__(self):
        return "Shown()"


def argument_values():
    looped = [1, 2]
    looped.append(looped)
    return [
        1,
        "a",
        "x" * 2000,
        "word " * 400,
        list(range(30)),
        list(range(101)),
        tuple(range(500)),
        {str(i): i for i in range(300)},
        set(range(300)),
        frozenset(range(200)),
        [list(range(200))] * 3,
        [[[[1]]]],
        {"k": {"a": {"b": {"c": 1}}}},
        [{"a": list(range(150))}],
        np.arange(100.0),
        [np.arange(10)] * 200,
        [Shown()] * 300,
        (1,),
        [],
        {},
        [[i] * 3 for i in range(200)],
        {i: list(range(120)) for i in range(3)},
        [(1, 2)] * 150,
        b"x" * 3000,
        [None] * 120,
        looped,
        list(range(10**4)),
    ]


def test_arguments_are_formatted_as_joblib_formats_them():
    joblib_func_inspect = pytest.importorskip("joblib.func_inspect")
    values = argument_values()
    for value in values:
        expected = joblib_func_inspect.format_signature(mod_f, value, value, key=value)[1]
        assert func_inspect.format_signature("mod_f", (value, value), {"key": value}) == expected, repr(value)[:80]
    assert joblib_func_inspect.format_call(mod_f, (1, [2] * 90), {"z": values[2]}) == func_inspect.format_call(
        mod_f, (1, [2] * 90), {"z": values[2]}
    )
