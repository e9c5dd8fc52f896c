"""``python -m joblite cache`` (:mod:`joblite.store.cli`): info, ls, prune and clear on real ``Memory`` caches,
exit statuses, JSON output, and paths that hold no store."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

import joblite
from _store_helpers import PACKAGE_PARENT, entry_files, make_cache, run_cli, run_json, square, write_module
from joblite.__main__ import build_parser, main
from joblite.store import cli
from joblite.store.maintenance import list_entries


def set_access_times(location, func_id=None):
    """Give the entries distinct last accesses, 1 h apart, in ls order; return the paths oldest first."""
    items = list_entries(location, func_id, sort="name")
    now = time.time()
    for position, item in enumerate(items):
        stamp = now - 3600 * (len(items) - position)
        os.utime(item.path, (stamp, stamp))
    return [item.path for item in items]


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
    assert cli.format_size(report["total"]["size"]) in result.stdout
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
    sizes = {item.path: item.size for item in list_entries(location)}
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
    assert sorted(item.path for item in list_entries(location)) == sorted(set(oldest_first) - set(expected))
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
    assert len(list_entries(location)) == 7


def test_clear_one_function_or_all(tmp_path, capsys):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location)

    result = run_cli("clear", location, "--function", "ramp", cwd=tmp_path)  # stdin is not a terminal
    assert result.returncode == 2 and "--yes" in result.stderr
    assert len(list_entries(location)) == 7

    status, report = run_json(capsys, "clear", location, "--function", "ramp", "--yes")
    assert status == 0 and report["function"] == ramp_id and report["removed_entries"] == 3
    remaining = list_entries(location)
    assert len(remaining) == 4 and {item.func_id for item in remaining} == {square_id}
    assert joblite.Memory(location, verbose=0).cache(square).check_call_in_cache(3)

    assert main(["cache", "clear", str(location), "--yes"]) == 0
    assert "removed 4 entries" in capsys.readouterr().out
    assert list_entries(location) == [] and entry_files(location) == {}


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
    assert "Traceback" not in result.stderr and len(list_entries(location)) == 2

    result = run_cli("clear", location, "--function", "cli_module_b/compute", "--yes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [item.func_id for item in list_entries(location)] == ["cli_module_a/compute"]


def test_exit_statuses_are_distinct_and_documented(tmp_path):
    location = tmp_path / "cache"
    make_cache(location)
    assert run_cli("verify", location, cwd=tmp_path).returncode == 0
    assert run_cli("prune", location, "--age-limit", "30d", cwd=tmp_path).returncode == 0
    # 2: nothing done
    result = run_cli("clear", location, cwd=tmp_path)  # no --yes, standard input not a terminal
    assert result.returncode == 2 and "pass --yes" in result.stderr
    assert run_cli("ls", location, "--limit", "x", cwd=tmp_path).returncode == 2
    assert run_cli("verify", location, "--timeout", "0", cwd=tmp_path).returncode == 2
    # 1: a corrupt entry
    [item, *others] = list_entries(location)
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
    assert [entry.path for entry in list_entries(location)] == [unreadable.path]
    # documented in --help
    for command in ("info", "ls", "prune", "clear", "verify"):
        result = subprocess.run(
            [sys.executable, "-m", "joblite", "cache", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=PACKAGE_PARENT,
        )
        assert result.returncode == 0
        help_text = " ".join(result.stdout.split())
        for code, meaning in cli.EXIT_STATUSES.items():
            assert f"{code} {meaning}" in help_text


@pytest.mark.parametrize(
    "args",
    [
        ["info"],
        ["ls", "--sort", "age"],
        ["prune", "--age-limit", "30d"],
        ["verify"],
        ["clear", "--function", "square", "--yes"],
    ],
)
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


def test_age_and_size_options_and_format_size(capsys):
    parser = build_parser()
    for text, seconds in (
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1.5h", 5400.0),
        ("7d", 7 * 86400.0),
        ("2W", 14 * 86400.0),
    ):
        assert parser.parse_args(["cache", "prune", "PATH", "--age-limit", text]).age_limit == seconds
    assert parser.parse_args(["cache", "prune", "PATH", "--bytes-limit", "1.5K"]).bytes_limit == 1536
    for option, bad in (
        ("--age-limit", "7 days"),
        ("--age-limit", "-1"),
        ("--age-limit", ""),
        ("--age-limit", "h"),
        ("--bytes-limit", "ten"),
        ("--bytes-limit", "-5"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["cache", "prune", "PATH", option, bad])
        assert exit_info.value.code == 2 and f"{option}={bad!r}" in capsys.readouterr().err
    assert cli.format_size(0) == "0 B"
    assert cli.format_size(1023) == "1023 B"
    assert cli.format_size(1536) == "1.5 KiB"
    assert cli.format_size(10 * 1024**3) == "10.0 GiB"
    assert cli.format_size(3 * 1024**5) == "3072.0 TiB"


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
    assert "7 entries" in answers[0] and len(list_entries(location)) == 7
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["cache", "clear", str(location)]) == 0
    assert list_entries(location) == []
