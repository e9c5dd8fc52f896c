"""The cache store's maintenance (:mod:`joblite.store.maintenance`): ``verify`` loads every entry in a
child process (:mod:`joblite.store.loader`) and removes exactly the corrupt ones."""

import json
import os
import signal
import sys
import time

import numpy as np

import _memory_workers as W
import joblite
from _persistence_helpers import build, parse
from _store_helpers import make_cache, ramp, run_cli, run_json, write_module
from joblite.__main__ import main
from joblite.store.maintenance import list_entries, open_store, verify_store


def corrupt_entries(location, ramp_id, square_id):
    """Damage four entries four ways; return ``{path: what verify reports}``."""
    ramps = [item.path for item in list_entries(location, ramp_id, sort="size")]
    squares = [item.path for item in list_entries(location, square_id)]
    truncated, flipped, bad_magic, not_an_entry = ramps[0], ramps[1], squares[0], squares[1]
    with open(truncated, "r+b") as fileobj:
        fileobj.truncate(os.path.getsize(truncated) // 2)
    with open(flipped, "r+b") as fileobj:  # in the middle of the array block
        offset, length = parse(fileobj.read())["blocks"][0]["range"]
        fileobj.seek((offset + length) // 2)
        byte = fileobj.read(1)
        fileobj.seek(-1, os.SEEK_CUR)
        fileobj.write(bytes([byte[0] ^ 0x10]))
    with open(bad_magic, "r+b") as fileobj:
        fileobj.write(b"\x00")
    # a sound container, but not the (metadata, result) pair the store writes
    joblite.dump(np.arange(3), not_an_entry)
    return {
        truncated: "footer",
        flipped: "block 0: checksum mismatch",
        bad_magic: "header: bad magic",
        not_an_entry: "not a joblite cache entry",
    }


def test_verify_removes_exactly_the_corrupt_entries(tmp_path, capsys):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location)
    damaged = corrupt_entries(location, ramp_id, square_id)
    sound = {item.path for item in list_entries(location)} - set(damaged)

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
    assert {item.path for item in list_entries(location)} == sound

    result = run_cli("verify", location, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 valid, 0 corrupt" in result.stdout
    cached_ramp = joblite.Memory(location, verbose=0).cache(ramp)
    assert cached_ramp.check_call_in_cache(1000) and not cached_ramp.check_call_in_cache(20000)
    np.testing.assert_array_equal(cached_ramp(1000), np.arange(1000.0))


def test_verify_checks_compressed_entries_and_one_function(tmp_path, capsys):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location, compress=True)
    ramp_paths = {item.path for item in list_entries(location, ramp_id)}
    damaged = corrupt_entries(location, ramp_id, square_id)
    status, report = run_json(capsys, "verify", location, "--function", ramp_id)
    assert status == 1 and report["checked"] == 3
    assert {entry["path"] for entry in report["corrupt"]} == set(damaged) & ramp_paths
    assert len(list_entries(location, ramp_id)) == 1
    assert len(list_entries(location, square_id)) == 4  # not checked, not touched
    report = verify_store(location, remove=False)
    assert report["valid"] == 3 and len(report["corrupt"]) == 2


def test_verify_reports_entries_whose_module_is_missing_as_not_checkable(tmp_path, monkeypatch, capsys):
    modules = tmp_path / "modules"
    modules.mkdir()
    write_module(
        modules,
        "cli_user_types",
        """
        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        def make_point(x):
            return Point(x, -x)
    """,
    )
    location = tmp_path / "cache"
    monkeypatch.syspath_prepend(str(modules))
    try:
        import cli_user_types

        assert joblite.Memory(location, verbose=0).cache(cli_user_types.make_point)(3).y == -3
    finally:
        sys.modules.pop("cli_user_types", None)
    [item] = list_entries(location)
    # Where the module can be imported, the entry is loaded and valid.
    status, report = run_json(capsys, "verify", location)
    assert status == 0 and report["valid"] == report["checked"] == 1 and report["unchecked"] == []
    assert "cli_user_types" not in sys.modules  # loaded in the child process only
    # Where it cannot, the entry is reported as not checkable here, not as corrupt, and kept.
    result = run_cli("verify", location, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["checked"] == 1 and report["valid"] == 0 and report["corrupt"] == []
    [entry] = report["unchecked"]
    assert entry["path"] == item.path and entry["error"] == "cannot check: needs module cli_user_types"
    assert os.path.exists(item.path)
    result = run_cli("verify", location, cwd=tmp_path)
    assert f"not checked: {item.func_id} {item.args_id}: cannot check: needs module cli_user_types" in result.stdout
    assert "0 valid, 0 corrupt, 1 not checkable here" in result.stdout
    # A class that the module no longer has is reported the same way.
    write_module(modules, "cli_user_types", "def make_point(x):\n    return None\n")
    report = verify_store(location, remove=False)
    assert [entry["error"] for entry in report["unchecked"]] == [
        "cannot check: needs cli_user_types.Point, which this environment's cli_user_types lacks"
    ]


def twice(x):  # named to sort after bomb and slowpoke: the loader meets their entries first
    return 2 * x


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
    array = (
        global_(reconstruct.__module__, reconstruct.__name__)
        + global_("numpy", "ndarray")
        + b"K\x00\x85C\x01b\x87R"  # _reconstruct(ndarray, (0,), b'b')
        + b"(K\x01J\x00\x00\x10\x00\x85"  # state: version 1, shape (2**20,)
        + global_("numpy", "dtype")
        + b"X\x02\x00\x00\x00O8K\x00K\x01\x87R"
        + b"(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb"  # dtype('O')
        + b"\x89](K\x01K\x02etb"
    )  # not Fortran, items [1, 2]; BUILD
    return build(b"\x80\x05}" + array + b"\x86\x94.")


def huge_claim_entry():
    """A 10 KB compressed entry whose pickle stream claims 31 GiB (16 MiB chunks)."""
    return build(
        np.random.default_rng(0).bytes(10_000),
        codecs=("none", "lz4"),
        pickle_codec=1,
        pickle_raw_length=31 << 30,
        chunk_size=1 << 24,
    )


def test_verify_survives_entries_that_crash_the_loader(tmp_path, capsys):
    # One child process loads the entries in turn; an entry that kills it is reported
    # (with the signal) and the next entries go to a new one.
    location = tmp_path / "cache"
    memory = joblite.Memory(location, verbose=0)
    bombs = [memory.cache(bomb).call_and_shelve(key) for key in (1, 2)]
    cached_twice = memory.cache(twice)
    for x in range(200):
        cached_twice(x)
    folder = memory.store_backend.func_dir(cached_twice.func_id)
    forged = {}
    for args_id, data in (("00" * 16, huge_claim_entry()), ("80" * 16, forged_array_entry())):
        os.makedirs(os.path.join(folder, args_id[:2]), exist_ok=True)
        forged[args_id] = os.path.join(folder, args_id[:2], args_id + ".out")
        with open(forged[args_id], "wb") as fileobj:
            fileobj.write(data)
    bomb_paths = {item.path for item in list_entries(location, bombs[0].func_id)}

    report = verify_store(location, remove=False)
    assert report["checked"] == 204 and report["valid"] == 200, report["corrupt"]
    errors = {entry["path"]: entry["error"] for entry in report["corrupt"]}
    assert set(errors) == bomb_paths | set(forged.values())
    for path in bomb_paths:
        assert errors[path] == f"{path}: crashed the loader (signal {int(signal.SIGSEGV)}: SIGSEGV)"
    assert forged["00" * 16] in errors[forged["00" * 16]]  # refused, or it crashed the loader
    crashes = sum("crashed the loader" in error for error in errors.values())
    assert report["loader_starts"] == 1 + crashes  # one process for all, a new one after each crash
    assert not any(entry["removed"] for entry in report["corrupt"])

    status, report = run_json(capsys, "verify", location)
    assert status == 1 and all(entry["removed"] for entry in report["corrupt"]) and len(report["corrupt"]) == 4
    assert not any(os.path.exists(path) for path in errors)
    assert main(["cache", "verify", str(location)]) == 0
    assert "checked 200 entries" in capsys.readouterr().out
    assert cached_twice(7) == 14


def test_verify_reports_an_entry_that_hangs_the_loader(tmp_path):
    location = tmp_path / "cache"
    memory = joblite.Memory(location, verbose=0)
    stuck = memory.cache(slowpoke).call_and_shelve(1)
    memory.cache(twice)(3)
    started = time.monotonic()
    report = verify_store(location, remove=False, timeout=1.0)
    assert time.monotonic() - started < 50  # not the 60 s that loading the entry takes
    [entry] = report["corrupt"]
    assert entry["args_id"] == stuck.args_id and "did not finish loading it within 1 s" in entry["error"]
    assert report["valid"] == 1 and report["loader_starts"] == 2


def test_verify_removes_a_function_whose_code_record_is_corrupt(tmp_path, capsys):
    location = tmp_path / "cache"
    square_id, ramp_id = make_cache(location)
    [record] = [
        os.path.join(folder, "func_code.json")
        for func_id, folder in open_store(location).function_dirs()
        if func_id == square_id
    ]
    with open(record, "w") as fileobj:
        fileobj.write('{"format": 1, "func_id": "')
    report = verify_store(location, remove=False)
    [entry] = report["corrupt"]
    assert entry["path"] == record and entry["args_id"] is None and not entry["removed"]
    assert report["valid"] == report["checked"] == 7

    assert main(["cache", "verify", str(location)]) == 1
    assert "whole function" in capsys.readouterr().out
    assert {item.func_id for item in list_entries(location)} == {ramp_id}
    assert main(["cache", "verify", str(location)]) == 0
