"""The persistence section's comparison with Blosc (joblite.bench.sections.persistence_peers)."""

import statistics

import numpy as np
import pytest

from joblite.bench.sections import persistence_peers
from joblite.bench.sections.persistence_peers import PEER_DATA, PEER_VARIANTS, blosc_impls, peer_rows, records
from joblite.bench.timing import best_times_in_turns

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent

SIZES = {"peer_rounds": 1, "peer_budget": 0.1}
IMPLS = ("joblite", "blosc file", "blosc2 file", "blosc memory")


def test_records_are_seeded_mixed_dtype_items_of_23_bytes():
    first, second = records(1 << 16), records(1 << 16)
    assert first.dtype.itemsize == 23
    assert first.dtype.names == ("id", "x", "flag", "code", "v")
    assert len(first) == (1 << 16) // 23
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("kind", [key for key, _, _ in PEER_DATA])
@pytest.mark.parametrize("codec", ["blosc-lz4", *PEER_VARIANTS])
def test_each_peer_gives_back_the_array_it_wrote(tmp_path, kind, codec):
    pytest.importorskip("blosc2")
    value = dict((key, build) for key, _, build in PEER_DATA)[kind](1 << 18)
    for impl, entry in blosc_impls(value, codec).items():
        path = str(tmp_path / (impl.replace(" ", "_") + entry.suffix))
        entry.dump(value, path)
        loaded = entry.load(path)
        assert loaded.dtype == value.dtype and loaded.shape == value.shape, impl
        assert loaded.tobytes() == value.tobytes(), impl


def test_rows_compare_joblite_with_blosc_at_the_same_codec(tmp_path, monkeypatch):
    pytest.importorskip("blosc2")
    turns = []  # the calls of each turn, and their times

    def recorded(calls, *args, **kwargs):
        times = best_times_in_turns(calls, *args, **kwargs)
        turns.append(times)
        return times

    monkeypatch.setattr(persistence_peers, "best_times_in_turns", recorded)
    sizes = {"peer_rounds": 3, "peer_budget": 10.0}
    rows = peer_rows("small ints", PEER_DATA[0][2](1 << 20), str(tmp_path), sizes)
    dumps = {row.impl: row for row in rows if "dump" in row.name}
    loads = {row.impl: row for row in rows if "load" in row.name}
    assert tuple(dumps) == IMPLS and tuple(loads) == IMPLS
    assert [row.impl for row in rows] == [*IMPLS, *IMPLS]
    assert all(row.seconds > 0 and row.gib_per_s > 0 for row in rows)
    mine, peer = dumps["joblite"], dumps["blosc file"]
    # the same codec and shuffle: about the same compression ratio, in memory too
    assert 0.9 < mine.ratios["compression_ratio"] / peer.ratios["compression_ratio"] < 1.1
    assert 0.9 < dumps["blosc memory"].ratios["compression_ratio"] / peer.ratios["compression_ratio"] < 1.1
    assert mine.ratios["size_vs_blosc"] == pytest.approx(
        mine.ratios["compression_ratio"] / peer.ratios["compression_ratio"]
    )
    # joblite and blosc file take turns, then the others: the writers, then the readers
    assert [tuple(times) for times in turns] == [IMPLS[:2], IMPLS[2:]] * 2
    for rows_, times in zip((dumps, loads), ({**turns[0], **turns[1]}, {**turns[2], **turns[3]})):
        for impl, row in rows_.items():
            assert len(times[impl].samples) == 3, impl
            assert row.seconds == min(times[impl].samples) and row.spread == times[impl].spread, impl
        # vs_blosc: the median of the rounds' Blosc time over joblite time, bracketed by the lowest and highest
        per_round = [base / own for base, own in zip(times["blosc file"].samples, times["joblite"].samples)]
        ratios = rows_["joblite"].ratios
        assert ratios["vs_blosc"] == pytest.approx(statistics.median(per_round))
        assert ratios["vs_blosc_low"] == pytest.approx(min(per_round))
        assert ratios["vs_blosc_high"] == pytest.approx(max(per_round))
        assert ratios["vs_blosc_low"] <= ratios["vs_blosc"] <= ratios["vs_blosc_high"]
        assert all("vs_blosc" not in row.ratios for impl, row in rows_.items() if impl != "joblite")
    assert mine.targets == {"vs_blosc": 1.0, "size_vs_blosc": 0.98}
    assert loads["joblite"].targets == {"vs_blosc": 1.0}
    assert not list(tmp_path.iterdir())  # every file removed once measured


@pytest.mark.parametrize("codec", list(PEER_VARIANTS))
def test_the_other_codecs_are_compared_with_blosc_at_the_same_settings(tmp_path, codec):
    value = np.cumsum(np.random.default_rng(0).normal(0, 1e-3, 1 << 17))
    rows = peer_rows("smooth", value, str(tmp_path), SIZES, codec)
    assert [(row.name, row.impl) for row in rows] == [
        (f"smooth, {codec}: dump vs Blosc", "joblite"),
        (f"smooth, {codec}: dump vs Blosc", "blosc file"),
        (f"smooth, {codec}: load vs Blosc", "joblite"),
        (f"smooth, {codec}: load vs Blosc", "blosc file"),
    ]
    # the same c-blosc settings, chunk by chunk: within a few header bytes of Blosc's size
    assert rows[0].ratios["size_vs_blosc"] == pytest.approx(1.0, abs=0.01)


def test_blosc2_not_installed_gives_rows_with_a_note(tmp_path, monkeypatch):
    real = persistence_peers.optional_module
    monkeypatch.setattr(persistence_peers, "optional_module", lambda name: None if name == "blosc2" else real(name))
    rows = peer_rows("small ints", np.arange(1 << 14), str(tmp_path), SIZES)
    missing = [row for row in rows if row.impl == "blosc2 file"]
    assert len(missing) == 2
    assert all(row.seconds is None and row.note == "not installed" for row in missing)
    assert all(row.seconds is not None for row in rows if row.impl != "blosc2 file")


def test_each_implementation_is_timed_in_a_process_of_its_own(tmp_path, monkeypatch):
    from joblite.bench import children

    started = []  # the arguments of each process's factory

    class Recorded(children.ChildServer):
        def __init__(self, factory, *args):
            started.append((factory, args))
            super().__init__(factory, *args)

    monkeypatch.setattr(children, "ChildServer", Recorded)
    sizes = {"peer_rounds": 2, "peer_budget": 10.0, "peer_processes": 2}
    rows = peer_rows("small ints", np.arange(1 << 16), str(tmp_path), sizes, "blosc-zstd")
    # two sets of processes, one process per implementation in each: joblite and blosc file
    expected = [(persistence_peers.peer_server, impl) for impl in ("joblite", "blosc file")]
    assert [(factory, args[3]) for factory, args in started] == expected * 2
    assert all(args[2] == "blosc-zstd" and args[4] == "small ints, blosc-zstd: load vs Blosc" for _, args in started)
    assert all(row.seconds > 0 for row in rows)
    assert not list(tmp_path.iterdir())


def test_the_sets_of_processes_share_the_rounds_and_their_figures_are_pooled(tmp_path, monkeypatch):
    pytest.importorskip("blosc2")
    parts = []  # what each set of processes measured
    real = persistence_peers._peer_samples

    def recorded(*args):
        parts.append(real(*args))
        return parts[-1]

    monkeypatch.setattr(persistence_peers, "_peer_samples", recorded)
    value = PEER_DATA[0][2](1 << 20)
    sizes = {"peer_rounds": 3, "peer_budget": 10.0, "peer_processes": 2}
    pooled = peer_rows("small ints", value, str(tmp_path), sizes)
    alone = peer_rows("small ints", value, str(tmp_path), dict(sizes, peer_processes=1))
    assert [(row.name, row.impl) for row in pooled] == [(row.name, row.impl) for row in alone]
    assert len(parts) == 3  # two sets, then one
    assert all(len(times) == 2 for part in parts[:2] for what in ("dump", "load") for times in part[what].values())
    assert all(len(times) == 3 for what in ("dump", "load") for times in parts[2][what].values())
    for what, rows in (("dump", pooled[: len(IMPLS)]), ("load", pooled[len(IMPLS) :])):
        for row in rows:
            assert row.seconds == min(sample for part in parts[:2] for sample in part[what][row.impl]), row.impl
        per_round = [b / j for part in parts[:2] for b, j in zip(part[what]["blosc file"], part[what]["joblite"])]
        assert rows[0].impl == "joblite"
        assert rows[0].ratios["vs_blosc"] == pytest.approx(statistics.median(per_round))
        assert rows[0].ratios["vs_blosc_low"] == pytest.approx(min(per_round))
        assert rows[0].ratios["vs_blosc_high"] == pytest.approx(max(per_round))
        medians = [
            statistics.median(b / j for b, j in zip(p[what]["blosc file"], p[what]["joblite"])) for p in parts[:2]
        ]
        assert rows[0].ratios["vs_blosc_process_low"] == pytest.approx(min(medians))
    assert all("vs_blosc_process_low" not in row.ratios for row in alone)
    # the processes read the same array and wrote the same files in both
    assert pooled[0].ratios["compression_ratio"] == alone[0].ratios["compression_ratio"]
    assert not list(tmp_path.iterdir())


def test_a_process_whose_joblite_file_is_wrong_names_the_case(tmp_path, monkeypatch):
    import joblite

    np.save(tmp_path / "value.npy", np.arange(100))
    monkeypatch.setattr(joblite, "load", lambda path: np.arange(99))  # in this process: peer_server runs here
    with pytest.raises(RuntimeError, match="the case"):
        persistence_peers.peer_server(tmp_path / "value.npy", tmp_path / "a", "blosc-lz4", "joblite", "the case")
