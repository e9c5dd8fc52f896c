"""Timing of the benchmark (joblite.bench.timing): what is called, how often, in which order.

No figure is asserted (performance is measured in benchmarks, not tests):
these check the calls that the figures are made of.
"""

import os
import time

import pytest

from joblite.bench.timing import (
    Timing,
    best_time,
    best_times_in_turns,
    fill_in_turns,
    paired_ratios,
    per_call_in_turns,
    rotated,
    time_fresh_write,
)

# The bench's policy and reports, the same on either twin: the kernels it times are checked by the
# twin tests, and .ci/artifacts runs the bench itself on the pure wheel.
pytestmark = pytest.mark.twin_independent


def test_best_time_stops_once_the_budget_is_spent_but_calls_at_least_once():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.02)

    assert best_time(slow, repeat=5, budget=0.001) >= 0.02
    assert len(calls) == 1
    assert best_time(lambda: calls.append(1), repeat=3) >= 0 and len(calls) == 4


def test_the_order_rotates_each_round():
    assert [rotated(["a", "b", "c"], round_) for round_ in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_calls_in_turns_rotate_and_are_checked_once_each():
    order, checked = [], []
    calls = {key: (lambda key=key: order.append(key) or key) for key in ("a", "b")}
    seconds = best_times_in_turns(calls, repeat=3, check=lambda key, result: checked.append((key, result)))
    assert list(seconds) == ["a", "b"] and all(value >= 0 for value in seconds.values())
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert checked == [("a", "a"), ("b", "b")]


def test_a_call_over_its_budget_is_not_repeated():
    counts = {"slow": 0, "fast": 0}

    def slow():
        counts["slow"] += 1
        time.sleep(0.02)

    best_times_in_turns(
        {"slow": slow, "fast": lambda: counts.__setitem__("fast", counts["fast"] + 1)}, repeat=4, budget=0.01
    )
    assert counts == {"slow": 1, "fast": 4}


def test_paired_ratios_divide_base_by_mine_round_by_round_over_the_rounds_both_ran():
    base = Timing([2.0, 3.0, 8.0])
    mine = Timing([1.0, 6.0])  # over its budget after the second round
    assert paired_ratios(base, mine) == pytest.approx([2.0, 0.5])
    # round by round, not the samples in sorted order (that would be 2 / 1 and 3 / 6)
    assert paired_ratios(Timing([2.0, 3.0]), Timing([6.0, 1.0])) == pytest.approx([1 / 3, 3.0])


def test_paired_ratios_say_how_many_times_faster_mine_is():
    # mine takes half of base's time in every round, whatever the round's slow spell
    base, mine = Timing([4.0, 10.0, 6.0]), Timing([2.0, 5.0, 3.0])
    assert paired_ratios(base, mine) == pytest.approx([2.0, 2.0, 2.0])
    assert paired_ratios(mine, base) == pytest.approx([0.5, 0.5, 0.5])


def test_paired_ratios_of_turns_cover_the_rounds_both_calls_ran():
    def slow():
        time.sleep(0.05)

    times = best_times_in_turns({"slow": slow, "fast": lambda: time.sleep(0.001)}, repeat=3, budget=0.04)
    assert len(times["slow"].samples) == 1 and len(times["fast"].samples) == 3
    ratios = paired_ratios(times["slow"], times["fast"])
    assert ratios == [times["slow"].samples[0] / times["fast"].samples[0]]


def test_reported_times_are_the_calls_own_not_the_wall_time_here():
    reported = {"a": iter([0.5, 0.25, 0.75]), "b": iter([2.0, 1.0, 3.0])}
    calls = {key: (lambda key=key: next(reported[key])) for key in reported}
    times = best_times_in_turns(calls, repeat=3, budget=1.5, reported=True)
    assert times["a"].samples == (0.5, 0.25, 0.75)
    assert times["b"].samples == (2.0,)  # its reported 2 s are over the budget: it misses the next rounds


def test_per_call_times_cover_every_function():
    counts = {"a": 0, "b": 0}
    seconds = per_call_in_turns(
        {key: (lambda key=key: counts.__setitem__(key, counts[key] + 1)) for key in counts}, repeat=2, target=0.001
    )
    assert list(seconds) == ["a", "b"] and all(value > 0 for value in seconds.values())
    assert all(count > 2 for count in counts.values())


def test_fill_makes_exactly_count_calls_of_each_in_blocks():
    order = []
    seconds = fill_in_turns({key: (lambda key=key: order.append(key)) for key in ("a", "b")}, count=5, block=2)
    assert list(seconds) == ["a", "b"]
    assert order == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "b"]


def test_every_timed_write_goes_to_a_path_that_does_not_exist(tmp_path):
    path = str(tmp_path / "file")
    existed = []

    def write(value, target):
        existed.append(os.path.exists(target))
        with open(target, "w") as file:
            file.write(value)

    time_fresh_write(write, "data", path, repeat=3)
    assert existed == [False, False, False]
    with open(path) as file:
        assert file.read() == "data"  # the last file is kept
