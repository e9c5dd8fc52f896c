"""``python -m joblite cache``: info, ls, prune, clear and verify on real ``Memory`` caches."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import joblite
from joblite import cache_cli
from joblite.__main__ import main
from joblite.persistence import _Container

import _memory_workers as W
from _persistence_helpers import build

# The subprocesses run the joblite under test (the checkout or the installed one), whatever their cwd.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))


def square(x):
    return x * x


def ramp(n):
    return np.arange(n, dtype=np.float64)


def make_cache(location, compress=False):
    """A cache of two functions: 4 small results and 3 array results."""
    memory = joblite.Memory(location, verbose=0, compress=compress)
    cached_square, cached_ramp = memory.cache(square), memory.cache(ramp)
    for x in range(4):
        cached_square(x)
    for n in (1000, 20000, 30000):
        cached_ramp(n)
    return cached_square.func_id, cached_ramp.func_id


def entry_files(location):
    """``{(function folder, args_id): path}`` of every entry file on disk."""
    root = os.path.join(location, "joblite")
    found = {}
    for dirpath, _, filenames in os.walk(root):
        if os.path.relpath(dirpath, root).startswith("."):
            continue
        for name in filenames:
            if name.endswith(".out"):
                found[(os.path.dirname(dirpath), name[:-len(".out")])] = os.path.join(dirpath, name)
    return found


def set_access_times(location, func_id=None):
    """Give the entries distinct last accesses, 1 h apart, in ls order; return the paths oldest first."""
    items = cache_cli.list_entries(location, func_id, sort="name")
    now = time.time()
    for position, item in enumerate(items):
        stamp = now - 3600 * (len(items) - position)
        os.utime(item.path, (stamp, stamp))
    return [item.path for item in items]


def run_cli(*args, cwd, env=None):
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join(
        [_PACKAGE_PARENT] + ([environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-m", "joblite", "cache", *map(str, args)], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env=environment, stdin=subprocess.DEVNULL)


def run_json(capsys, *args):
    status = main(["cache", *map(str, args), "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_info_counts_and_bytes_equal_what_is_on_disk(tmp_path):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location)
    result = run_cli("info", location, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    on_disk = {}
    for (folder, _), path in entry_files(location).items():
        count, size = on_disk.get(os.path.basename(folder), (0, 0))
        on_disk[os.path.basename(folder)] = (count + 1, size + os.path.getsize(path))
    functions = {row["func_id"]: row for row in report["functions"]}
    assert set(functions) == {square_id, ramp_id}
    for func_id, row in functions.items():
        assert (row["entries"], row["size"]) == on_disk[func_id.partition("/")[2]]
        assert row["oldest_access"] <= row["newest_access"] <= time.time()
    assert report["total"]["entries"] == 7 and report["total"]["functions"] == 2
    assert report["total"]["size"] == sum(size for _, size in on_disk.values())
    assert report["functions"][0]["func_id"] == ramp_id  # largest first
    assert report["largest"][0]["size"] == max(row["size"] for row in report["largest"])
    assert report["largest"][0]["func_id"] == ramp_id and len(report["largest"]) == 5

    # the table: human-readable sizes (powers of 1024) and times
    result = run_cli("info", location / "joblite", cwd=tmp_path)  # the joblite sub-folder is accepted
    assert result.returncode == 0, result.stderr
    assert square_id in result.stdout and ramp_id in result.stdout
    assert cache_cli.format_size(report["total"]["size"]) in result.stdout
    assert "KiB" in result.stdout and time.strftime("%Y-") in result.stdout
    assert "7 entries" in result.stdout


def test_ls_sorts_filters_and_limits(tmp_path, capsys):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location)
    oldest_first = set_access_times(location)
    status, report = run_json(capsys, "ls", location)
    entries = report["entries"]
    assert status == 0 and len(entries) == 7
    assert [(e["func_id"], e["args_id"]) for e in entries] == sorted((e["func_id"], e["args_id"]) for e in entries)

    _, report = run_json(capsys, "ls", location, "--sort", "age")
    assert [entry["path"] for entry in report["entries"]] == oldest_first

    _, report = run_json(capsys, "ls", location, "--sort", "size", "--limit", "3")
    sizes = [entry["size"] for entry in report["entries"]]
    assert len(sizes) == 3 and sizes == sorted(sizes, reverse=True)
    assert all(entry["func_id"] == ramp_id for entry in report["entries"])

    _, report = run_json(capsys, "ls", location, "--function", "square")  # the name part is enough
    assert len(report["entries"]) == 4 and {e["func_id"] for e in report["entries"]} == {square_id}

    assert main(["cache", "ls", str(location), "--sort", "size"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["FUNCTION", "ARGS_ID", "SIZE", "LAST", "ACCESS"] and len(lines) == 8
    assert "KiB" in lines[1] and lines[1].startswith(ramp_id)


@pytest.mark.parametrize("limit", [["--items-limit", "3"], ["--bytes-limit", "BYTES"], ["--age-limit", "2.5h"]])
def test_prune_removes_the_least_recently_used(tmp_path, capsys, limit):
    location = tmp_path / "cache"
    make_cache(location)
    oldest_first = set_access_times(location)  # 7 entries, the last accessed 1 h ago
    sizes = {item.path: item.size for item in cache_cli.list_entries(location)}
    if limit[1] == "BYTES":  # room for the 3 most recently used entries only
        limit = [limit[0], str(sum(sizes[path] for path in oldest_first[-3:]))]
    stale = tmp_path / "cache" / "joblite" / ".tmp" / "1@another-host"  # a temporary folder of a dead job
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    status, report = run_json(capsys, "prune", location, *limit)
    expected = oldest_first[:-2] if limit[0] == "--age-limit" else oldest_first[:-3]
    assert status == 0
    assert [entry["path"] for entry in report["removed"]] == expected
    assert report["removed_size"] == sum(sizes[path] for path in expected)
    assert sorted(item.path for item in cache_cli.list_entries(location)) == sorted(set(oldest_first) - set(expected))
    assert report["swept"]["temporaries_and_locks"] >= 1 and not stale.exists()

    assert main(["cache", "prune", str(location), *limit]) == 0  # nothing more to remove
    assert "removed 0 entries" in capsys.readouterr().out


def test_prune_needs_a_valid_limit(tmp_path):
    location = tmp_path / "cache"
    make_cache(location)
    result = run_cli("prune", location, cwd=tmp_path)
    assert result.returncode == 2 and "--bytes-limit" in result.stderr
    result = run_cli("prune", location, "--age-limit", "7 days", cwd=tmp_path)
    assert result.returncode == 2 and "7 days" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("prune", location, "--bytes-limit", "ten", cwd=tmp_path)
    assert result.returncode == 2 and "ten" in result.stderr
    assert len(cache_cli.list_entries(location)) == 7


def write_module(folder, name, source):
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def test_clear_one_function_or_all(tmp_path, capsys):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location)

    result = run_cli("clear", location, "--function", "ramp", cwd=tmp_path)  # stdin is not a terminal
    assert result.returncode == 2 and "--yes" in result.stderr
    assert len(cache_cli.list_entries(location)) == 7

    status, report = run_json(capsys, "clear", location, "--function", "ramp", "--yes")
    assert status == 0 and report["function"] == ramp_id and report["removed_entries"] == 3
    remaining = cache_cli.list_entries(location)
    assert len(remaining) == 4 and {item.func_id for item in remaining} == {square_id}
    assert joblite.Memory(location, verbose=0).cache(square).check_call_in_cache(3)

    assert main(["cache", "clear", str(location), "--yes"]) == 0
    assert "removed 4 entries" in capsys.readouterr().out
    assert cache_cli.list_entries(location) == [] and entry_files(location) == {}


def test_clear_refuses_an_unknown_or_ambiguous_function(tmp_path, monkeypatch):
    location = tmp_path / "cache"
    for name in ("cli_module_a", "cli_module_b"):
        write_module(tmp_path, name, "def compute(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    memory = joblite.Memory(location, verbose=0)
    try:
        import cli_module_a
        import cli_module_b

        memory.cache(cli_module_a.compute)(1)
        memory.cache(cli_module_b.compute)(1)
    finally:
        sys.modules.pop("cli_module_a", None)
        sys.modules.pop("cli_module_b", None)

    result = run_cli("clear", location, "--function", "compute", "--yes", cwd=tmp_path)
    assert result.returncode == 2 and "ambiguous" in result.stderr
    assert "cli_module_a/compute" in result.stderr and "cli_module_b/compute" in result.stderr
    result = run_cli("clear", location, "--function", "nope", "--yes", cwd=tmp_path)
    assert result.returncode == 2 and "'nope'" in result.stderr and "cli_module_a/compute" in result.stderr
    assert "Traceback" not in result.stderr and len(cache_cli.list_entries(location)) == 2

    result = run_cli("clear", location, "--function", "cli_module_b/compute", "--yes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [item.func_id for item in cache_cli.list_entries(location)] == ["cli_module_a/compute"]


def corrupt_entries(location, ramp_id, square_id):
    """Damage four entries four ways; return ``{path: what verify reports}``."""
    ramps = [item.path for item in cache_cli.list_entries(location, ramp_id, sort="size")]
    squares = [item.path for item in cache_cli.list_entries(location, square_id)]
    truncated, flipped, bad_magic, not_an_entry = ramps[0], ramps[1], squares[0], squares[1]
    with open(truncated, "r+b") as fileobj:
        fileobj.truncate(os.path.getsize(truncated) // 2)
    with open(flipped, "r+b") as fileobj:  # in the middle of the array block
        offset, length = _Container(fileobj, flipped).blocks[0][:2]
        fileobj.seek(offset + length // 2)
        byte = fileobj.read(1)
        fileobj.seek(-1, os.SEEK_CUR)
        fileobj.write(bytes([byte[0] ^ 0x10]))
    with open(bad_magic, "r+b") as fileobj:
        fileobj.write(b"\x00")
    # a sound container, but not the (metadata, result) pair the store writes
    joblite.dump(np.arange(3), not_an_entry)
    return {truncated: "footer", flipped: "block 0: checksum mismatch", bad_magic: "header: bad magic",
            not_an_entry: "not a joblite cache entry"}


def test_verify_removes_exactly_the_corrupt_entries(tmp_path, capsys):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location)
    damaged = corrupt_entries(location, ramp_id, square_id)
    sound = {item.path for item in cache_cli.list_entries(location)} - set(damaged)

    status, report = run_json(capsys, "verify", location, "--dry-run")
    assert status == 1 and {entry["path"] for entry in report["corrupt"]} == set(damaged)
    assert not any(entry["removed"] for entry in report["corrupt"])
    assert all(os.path.exists(path) for path in damaged)

    result = run_cli("verify", location, "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["checked"] == 7 and report["valid"] == 3
    for entry in report["corrupt"]:
        assert damaged[entry["path"]] in entry["error"] and entry["path"] in entry["error"]
        assert entry["removed"]
    assert {entry["path"] for entry in report["corrupt"]} == set(damaged)
    assert not any(os.path.exists(path) for path in damaged)
    assert {item.path for item in cache_cli.list_entries(location)} == sound

    result = run_cli("verify", location, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 valid, 0 corrupt" in result.stdout
    cached_ramp = joblite.Memory(location, verbose=0).cache(ramp)
    assert cached_ramp.check_call_in_cache(1000) and not cached_ramp.check_call_in_cache(20000)
    np.testing.assert_array_equal(cached_ramp(1000), np.arange(1000.0))


def test_verify_checks_compressed_entries_and_one_function(tmp_path, capsys):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location, compress=True)
    ramp_paths = {item.path for item in cache_cli.list_entries(location, ramp_id)}
    damaged = corrupt_entries(location, ramp_id, square_id)
    status, report = run_json(capsys, "verify", location, "--function", ramp_id)
    assert status == 1 and report["checked"] == 3
    assert {entry["path"] for entry in report["corrupt"]} == set(damaged) & ramp_paths
    assert len(cache_cli.list_entries(location, ramp_id)) == 1
    assert len(cache_cli.list_entries(location, square_id)) == 4  # not checked, not touched
    report = cache_cli.verify_store(location, remove=False)
    assert report["valid"] == 3 and len(report["corrupt"]) == 2


def test_verify_reports_entries_whose_module_is_missing_as_not_checkable(tmp_path, monkeypatch, capsys):
    modules = tmp_path / "modules"
    modules.mkdir()
    write_module(modules, "cli_user_types", """
        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        def make_point(x):
            return Point(x, -x)
    """)
    location = tmp_path / "cache"
    monkeypatch.syspath_prepend(str(modules))
    try:
        import cli_user_types

        assert joblite.Memory(location, verbose=0).cache(cli_user_types.make_point)(3).y == -3
    finally:
        sys.modules.pop("cli_user_types", None)
    [item] = cache_cli.list_entries(location)
    # Where the module can be imported, the entry is loaded and valid.
    status, report = run_json(capsys, "verify", location)
    assert status == 0 and report["valid"] == report["checked"] == 1 and report["unchecked"] == []
    assert "cli_user_types" not in sys.modules   # loaded in the child process only
    # Where it cannot, the entry is reported as not checkable here, not as corrupt, and kept.
    result = run_cli("verify", location, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["checked"] == 1 and report["valid"] == 0 and report["corrupt"] == []
    [entry] = report["unchecked"]
    assert entry["path"] == item.path and entry["error"] == "cannot check: needs module cli_user_types"
    assert os.path.exists(item.path)
    result = run_cli("verify", location, cwd=tmp_path)
    assert f"not checked: {item.func_id} {item.args_id}: cannot check: needs module cli_user_types" \
        in result.stdout
    assert "0 valid, 0 corrupt, 1 not checkable here" in result.stdout
    # A class that the module no longer has is reported the same way.
    write_module(modules, "cli_user_types", "def make_point(x):\n    return None\n")
    report = cache_cli.verify_store(location, remove=False)
    assert [entry["error"] for entry in report["unchecked"]] == \
        ["cannot check: needs cli_user_types.Point, which this environment's cli_user_types lacks"]


def bomb(key):
    return W.Crash()


def slowpoke(key):
    return W.Hang(60)


def forged_array_entry():
    """An entry whose result is numpy's _reconstruct + BUILD of an object array of 2**20 items
    with a list of 2: recent numpys read past the list (a segfault), a checked loader refuses it."""
    def global_(module, name):
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    reconstruct = np.ndarray.__reduce__(np.arange(1))[0]
    array = (global_(reconstruct.__module__, reconstruct.__name__) + global_("numpy", "ndarray")
             + b"K\x00\x85C\x01b\x87R"                          # _reconstruct(ndarray, (0,), b'b')
             + b"(K\x01J\x00\x00\x10\x00\x85"                    # state: version 1, shape (2**20,)
             + global_("numpy", "dtype") + b"X\x02\x00\x00\x00O8K\x00K\x01\x87R"
             + b"(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb"   # dtype('O')
             + b"\x89](K\x01K\x02etb")                            # not Fortran, items [1, 2]; BUILD
    return build(b"\x80\x05}" + array + b"\x86\x94.")


def huge_claim_entry():
    """A 10 KB compressed entry whose pickle stream claims 31 GiB (16 MiB chunks)."""
    return build(np.random.default_rng(0).bytes(10_000), codecs=("none", "lz4"), pickle_codec=1,
                 pickle_raw_length=31 << 30, chunk_size=1 << 24)


def test_verify_survives_entries_that_crash_the_loader(tmp_path, capsys):
    # One child process loads the entries in turn; an entry that kills it is reported
    # (with the signal) and the next entries go to a new one.
    location = tmp_path / "cache"
    memory = joblite.Memory(location, verbose=0)
    bombs = [memory.cache(bomb).call_and_shelve(key) for key in (1, 2)]
    cached_square = memory.cache(square)
    for x in range(200):
        cached_square(x)
    folder = memory.store_backend.func_dir(cached_square.func_id)
    forged = {}
    for args_id, data in (("00" * 16, huge_claim_entry()), ("80" * 16, forged_array_entry())):
        os.makedirs(os.path.join(folder, args_id[:2]), exist_ok=True)
        forged[args_id] = os.path.join(folder, args_id[:2], args_id + ".out")
        with open(forged[args_id], "wb") as fileobj:
            fileobj.write(data)
    bomb_paths = {item.path for item in cache_cli.list_entries(location, bombs[0].func_id)}

    report = cache_cli.verify_store(location, remove=False)
    assert report["checked"] == 204 and report["valid"] == 200, report["corrupt"]
    errors = {entry["path"]: entry["error"] for entry in report["corrupt"]}
    assert set(errors) == bomb_paths | set(forged.values())
    for path in bomb_paths:
        assert errors[path] == f"{path}: crashed the loader (signal {int(signal.SIGSEGV)}: SIGSEGV)"
    assert forged["00" * 16] in errors[forged["00" * 16]]   # refused, or it crashed the loader
    crashes = sum("crashed the loader" in error for error in errors.values())
    assert report["loader_starts"] == 1 + crashes   # one process for all, a new one after each crash
    assert not any(entry["removed"] for entry in report["corrupt"])

    status, report = run_json(capsys, "verify", location)
    assert status == 1 and all(entry["removed"] for entry in report["corrupt"]) and len(report["corrupt"]) == 4
    assert not any(os.path.exists(path) for path in errors)
    assert main(["cache", "verify", str(location)]) == 0
    assert "checked 200 entries" in capsys.readouterr().out
    assert cached_square(7) == 49


def test_verify_reports_an_entry_that_hangs_the_loader(tmp_path):
    location = tmp_path / "cache"
    memory = joblite.Memory(location, verbose=0)
    stuck = memory.cache(slowpoke).call_and_shelve(1)
    memory.cache(square)(3)
    started = time.monotonic()
    report = cache_cli.verify_store(location, remove=False, timeout=1.0)
    assert time.monotonic() - started < 50   # not the 60 s that loading the entry takes
    [entry] = report["corrupt"]
    assert entry["args_id"] == stuck.args_id and "did not finish loading it within 1 s" in entry["error"]
    assert report["valid"] == 1 and report["loader_starts"] == 2


def test_exit_statuses_are_distinct_and_documented(tmp_path):
    location = tmp_path / "cache"
    make_cache(location)
    assert run_cli("verify", location, cwd=tmp_path).returncode == 0
    assert run_cli("prune", location, "--age-limit", "30d", cwd=tmp_path).returncode == 0
    # 2: nothing done
    result = run_cli("clear", location, cwd=tmp_path)   # no --yes, standard input not a terminal
    assert result.returncode == 2 and "pass --yes" in result.stderr
    assert run_cli("ls", location, "--limit", "x", cwd=tmp_path).returncode == 2
    assert run_cli("verify", location, "--timeout", "0", cwd=tmp_path).returncode == 2
    # 1: a corrupt entry
    [item, *others] = cache_cli.list_entries(location)
    with open(item.path, "r+b") as fileobj:
        fileobj.truncate(100)
    result = run_cli("verify", location, "--dry-run", cwd=tmp_path)
    assert result.returncode == 1 and f"corrupt (not removed): {item.func_id} {item.args_id}" in result.stdout
    # 3: an entry that cannot be read or removed (a folder where its file should be), with
    # or without a corrupt one
    unreadable = others[0]
    os.remove(unreadable.path)
    os.makedirs(os.path.join(unreadable.path, "x"))
    for args in (["verify", "--dry-run"], ["verify"]):
        result = run_cli(*args[:1], location, *args[1:], "--json", cwd=tmp_path)
        assert result.returncode == 3, result.stderr
        [error] = json.loads(result.stdout)["errors"]
        assert error["path"] == unreadable.path and "EISDIR" in error["error"]
    result = run_cli("prune", location, "--items-limit", "0", cwd=tmp_path)
    assert result.returncode == 3 and f"not removed: {unreadable.func_id} {unreadable.args_id}" in result.stdout
    assert "EISDIR" in result.stdout
    assert [entry.path for entry in cache_cli.list_entries(location)] == [unreadable.path]
    # documented in --help
    for command in ("info", "ls", "prune", "clear", "verify"):
        result = subprocess.run([sys.executable, "-m", "joblite", "cache", command, "--help"],
                                capture_output=True, text=True, timeout=60, cwd=_PACKAGE_PARENT)
        assert result.returncode == 0
        help_text = " ".join(result.stdout.split())
        for code, meaning in cache_cli.EXIT_STATUSES.items():
            assert f"{code} {meaning}" in help_text


@pytest.mark.parametrize("args", [["info"], ["ls", "--sort", "age"], ["prune", "--age-limit", "30d"],
                                  ["verify"], ["clear", "--function", "square", "--yes"]])
def test_every_subcommand_prints_one_json_document(tmp_path, capsys, args):
    location = tmp_path / "cache"
    make_cache(location)
    status, report = run_json(capsys, args[0], location, *args[1:])
    assert status == 0 and isinstance(report, dict) and report["location"] == str(location)
    # this process's temporary folder is not left behind
    assert not (location / "joblite" / ".tmp" / f"{os.getpid()}@{socket.gethostname()}").exists()


def test_a_path_without_a_store_exits_2_naming_it(tmp_path):
    missing = tmp_path / "missing"
    result = run_cli("info", missing, cwd=tmp_path)
    assert result.returncode == 2 and str(missing) in result.stderr and "Traceback" not in result.stderr
    assert not missing.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("verify", empty, cwd=tmp_path)
    assert result.returncode == 2 and str(empty) in result.stderr and "no joblite cache store" in result.stderr
    assert list(empty.iterdir()) == []

    # a folder named joblite that is not a store (e.g. the package's own source) is left alone
    package = tmp_path / "project" / "joblite"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for path in (package, package.parent):
        result = run_cli("clear", path, "--yes", cwd=tmp_path)
        assert result.returncode == 2 and "CACHEDIR.TAG" in result.stderr, result.stderr
    assert (package / "__init__.py").exists()
    with pytest.raises(ValueError, match="is not a joblite cache store"):
        joblite.Memory(package.parent)

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    result = run_cli("ls", a_file, cwd=tmp_path)
    assert result.returncode == 2 and "not a folder" in result.stderr


def test_parse_duration_and_format_size():
    assert cache_cli.parse_duration("90") == 90.0
    assert cache_cli.parse_duration("90s") == 90.0
    assert cache_cli.parse_duration("15m") == 900.0
    assert cache_cli.parse_duration("1.5h") == 5400.0
    assert cache_cli.parse_duration("7d") == 7 * 86400.0
    assert cache_cli.parse_duration("2W") == 14 * 86400.0
    assert cache_cli.parse_duration(12) == 12.0
    for bad in ("7 days", "-1", "", "h", None, -3):
        with pytest.raises(ValueError, match="age_limit"):
            cache_cli.parse_duration(bad)
    assert cache_cli.format_size(0) == "0 B"
    assert cache_cli.format_size(1023) == "1023 B"
    assert cache_cli.format_size(1536) == "1.5 KiB"
    assert cache_cli.format_size(10 * 1024 ** 3) == "10.0 GiB"
    assert cache_cli.format_size(3 * 1024 ** 5) == "3072.0 TiB"


def test_verify_removes_a_function_whose_code_record_is_corrupt(tmp_path, capsys):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location)
    [record] = [os.path.join(folder, "func_code.json")
                for func_id, folder in cache_cli.open_store(location).function_dirs() if func_id == square_id]
    with open(record, "w") as fileobj:
        fileobj.write('{"format": 1, "func_id": "')
    report = cache_cli.verify_store(location, remove=False)
    [entry] = report["corrupt"]
    assert entry["path"] == record and entry["args_id"] is None and not entry["removed"]
    assert report["valid"] == report["checked"] == 7

    assert main(["cache", "verify", str(location)]) == 1
    assert "whole function" in capsys.readouterr().out
    assert {item.func_id for item in cache_cli.list_entries(location)} == {ramp_id}
    assert main(["cache", "verify", str(location)]) == 0


def test_clear_asks_first_and_an_empty_store_is_reported(tmp_path, capsys, monkeypatch):
    location = tmp_path / "cache"
    joblite.Memory(location, verbose=0)  # a store with nothing in it yet
    assert main(["cache", "info", str(location)]) == 0
    assert "0 functions, 0 entries, 0 B" in capsys.readouterr().out
    assert main(["cache", "ls", str(location)]) == 0 and "no entries" in capsys.readouterr().out

    make_cache(location)

    class Terminal:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    answers = []
    monkeypatch.setattr("builtins.input", lambda prompt: answers.append(prompt) or "n")
    assert main(["cache", "clear", str(location)]) == 2
    assert "7 entries" in answers[0] and len(cache_cli.list_entries(location)) == 7
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["cache", "clear", str(location)]) == 0
    assert cache_cli.list_entries(location) == []
