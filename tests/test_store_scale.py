"""What large cache stores rely on, at small sizes: ``cache info`` summarises the store as it streams it (the
same figures and top lists as a sort of every entry), ``ls`` and ``prune`` act on exactly the entries on disk,
and the size accounting of ``bytes_limit`` agrees with the files after concurrent writers and evictions.
The times on a store of a million entries are the benchmark's (``python -m joblite bench``, section memory)."""

import json
import os
import subprocess
import sys
import time

import pytest

import joblite
from _store_helpers import PACKAGE_PARENT, entry_files, square
from joblite.store import layout
from joblite.store.maintenance import list_entries, open_store, prune_store, store_info

TESTS = os.path.dirname(os.path.abspath(__file__))
ENTRIES = 1500


def padded(x, n):
    return (x, "p" * n)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of two functions, ENTRIES entries in all, with spread (and some equal) access times and sizes."""
    location = tmp_path_factory.mktemp("scale") / "cache"
    memory = joblite.Memory(location, verbose=0)
    cached_square, cached_padded = memory.cache(square), memory.cache(padded)
    for x in range(ENTRIES - 300):
        cached_square(x)
    for x in range(300):
        cached_padded(x, (x * 37) % 400)  # results of many sizes
    base = time.time() - 10**6
    for number, item in enumerate(sorted(memory.store_backend.get_items(), key=lambda item: item.path)):
        stamp = base + (number * 7919) % 997  # many entries share an access time
        os.utime(item.path, (stamp, stamp))
    return location


def disk_entries(location):
    """``{path: (size, mtime)}`` of every entry file, from a walk of the folder."""
    found = {}
    for path in entry_files(location).values():
        stat = os.stat(path)
        found[path] = (stat.st_size, stat.st_mtime)
    return found


def test_info_streamed_matches_a_sort_of_every_entry(store):
    disk = disk_entries(store)
    items = open_store(store).get_items()
    assert {item.path: (item.size, item.last_access) for item in items} == disk
    for top in (0, 1, 5, 40, ENTRIES + 10):
        report = store_info(store, top=top)
        total = report["total"]
        assert (total["functions"], total["entries"]) == (2, ENTRIES)
        assert total["size"] == sum(size for size, _ in disk.values())
        assert total["oldest_access"] == min(mtime for _, mtime in disk.values())
        assert total["newest_access"] == max(mtime for _, mtime in disk.values())
        by_size = sorted(items, key=lambda item: (-item.size, item.func_id, item.args_id))[:top]
        by_age = sorted(items, key=lambda item: (item.last_access, item.func_id, item.args_id))[:top]
        assert report["largest"] == [item._asdict() for item in by_size]
        assert report["oldest"] == [item._asdict() for item in by_age]
        counts = {row["func_id"].rpartition("/")[2]: row["entries"] for row in report["functions"]}
        assert counts == {"square": ENTRIES - 300, "padded": 300}
        assert sum(row["size"] for row in report["functions"]) == total["size"]


def test_ls_lists_every_entry_on_disk(store):
    disk = disk_entries(store)
    listed = list_entries(store, sort="age")
    assert len(listed) == ENTRIES and {item.path for item in listed} == set(disk)
    assert [item.last_access for item in listed] == sorted(mtime for _, mtime in disk.values())
    assert [item.path for item in list_entries(store, sort="size", limit=10)] == [
        item.path for item in sorted(listed, key=lambda item: (-item.size, item.func_id, item.args_id))[:10]
    ]


def test_prune_removes_exactly_the_least_recently_used(tmp_path):
    location = tmp_path / "cache"
    cached = joblite.Memory(location, verbose=0).cache(square)
    for x in range(600):
        cached(x)
    items = open_store(location).get_items()
    base = time.time() - 1000
    for number, item in enumerate(items):
        os.utime(item.path, (base + number, base + number))  # items[0] least recently used
    report = prune_store(location, items_limit=450)
    assert [entry["path"] for entry in report["removed"]] == [item.path for item in items[:150]]
    assert set(disk_entries(location)) == {item.path for item in items[150:]}
    assert report["remaining_size"] == sum(item.size for item in items[150:]) == store_info(location)["total"]["size"]


def _usage(location):
    with open(os.path.join(location, "joblite", layout.USAGE_RECORD)) as fileobj:
        return json.load(fileobj)


WRITER = """
import sys, joblite
from _store_helpers import square
location, first, count, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
memory = joblite.Memory(location, verbose=0, bytes_limit=limit, backend_options={"size_check_interval": 0})
cached = memory.cache(square)
for x in range(first, first + count):
    cached(x)
"""


def test_size_accounting_agrees_with_the_files_after_concurrent_writers(tmp_path):
    location = tmp_path / "cache"
    probe = joblite.Memory(tmp_path / "probe", verbose=0)
    probe.cache(square)(0)
    [item] = probe.store_backend.get_items()
    limit = 200 * item.size
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_PARENT, TESTS]))
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(location), str(first), "400", str(limit)],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        for first in (0, 10_000)
    ]
    try:
        assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    on_disk = sum(size for size, _ in disk_entries(location).values())
    # each write was followed by a scan (unless the other writer was scanning): the store is near the
    # limit, not at the 800 entries written
    assert 0 < on_disk <= limit + 50 * item.size
    memory = joblite.Memory(location, verbose=0, bytes_limit=limit, backend_options={"size_check_interval": 0})
    memory.cache(square)(-1)  # a write, and the scan it starts
    usage, on_disk = _usage(location), sum(size for size, _ in disk_entries(location).values())
    assert usage["bytes"] == on_disk == store_info(location)["total"]["size"]
    assert on_disk <= limit and usage["scan_seconds"] >= 0


def test_a_slow_scan_spaces_out_the_next(tmp_path):
    # A store whose last scan took 10 s is scanned again after 500 s, not after size_check_interval (60 s).
    location = tmp_path / "cache"
    memory = joblite.Memory(location, verbose=0, bytes_limit="1G")
    cached = memory.cache(square)
    cached(1)
    record = os.path.join(location, "joblite", layout.USAGE_RECORD)
    for age, scanned in ((300, False), (700, True)):
        with open(record, "w") as fileobj:
            json.dump({"bytes": 12345, "time": time.time() - age, "scan_seconds": 10.0}, fileobj)
        store = joblite.Memory(location, verbose=0, bytes_limit="1G").cache(square)
        store(age)  # a miss: a write, then the size check
        usage = _usage(location)
        assert (usage["bytes"] != 12345) == scanned, (age, usage)
        if scanned:
            assert usage["bytes"] == sum(size for size, _ in disk_entries(location).values())
            assert usage["scan_seconds"] < 10.0
