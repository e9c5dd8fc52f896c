"""``python -m joblite cache``: info, ls, prune, clear and verify on real ``Memory`` caches."""
import json
import os
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


def test_verify_does_not_import_the_modules_of_results(tmp_path, monkeypatch):
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
    script = textwrap.dedent(f"""
        import json, sys
        import joblite
        from joblite.cache_cli import list_entries, verify_store
        report = verify_store({str(location)!r})
        assert "cli_user_types" not in sys.modules
        [item] = list_entries({str(location)!r})
        try:
            joblite.load(item.path)
        except Exception as exc:  # the entry needs the module to be loaded
            assert "cli_user_types" in str(exc), exc
        else:
            raise SystemExit("the module of the result is importable here")
        print(json.dumps(report))
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_PARENT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    assert report["checked"] == 1 and report["valid"] == 1 and report["corrupt"] == []


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
    assert main(["cache", "clear", str(location)]) == 1
    assert "7 entries" in answers[0] and len(cache_cli.list_entries(location)) == 7
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["cache", "clear", str(location)]) == 0
    assert cache_cli.list_entries(location) == []
