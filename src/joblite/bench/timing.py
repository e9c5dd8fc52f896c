"""Timing of the benchmark: best wall times of calls, alone or taking turns.

Every figure is the best of several calls or loops (``time.perf_counter``):
the least disturbed measure of a noisy machine.  It is a :class:`Timing`,
which keeps every measure, so that the report can give the spread
(min, median, max) that ``bench --compare`` weighs changes against.
Implementations compared in one case take turns, in an order rotated each
round, so that a slow period of the machine (or the write-back of files the
previous one wrote) weighs on all alike.
"""

import statistics
import time

from .._files import remove_if_exists

__all__ = [
    "Timing",
    "best_time",
    "best_times_in_turns",
    "fill_in_turns",
    "paired_ratios",
    "per_call_in_turns",
    "per_call_time",
    "rotated",
    "time_fresh_write",
    "time_loop",
]


class Timing(float):
    """The best of several measures, in seconds, that keeps them all.

    A float (the shortest measure), so that it is used as the time it is;
    arithmetic on it gives plain floats.

    Parameters
    ----------
    samples : iterable of float
        The measures, in seconds, in the order taken; at least one.

    Attributes
    ----------
    samples : tuple of float
        The measures.
    """

    samples: tuple

    def __new__(cls, samples):
        samples = tuple(float(sample) for sample in samples)
        if not samples:
            raise ValueError("a Timing needs at least one measure")
        timing = super().__new__(cls, min(samples))
        timing.samples = samples
        return timing

    @property
    def spread(self):
        """``[min, median, max]`` of the measures, in seconds."""
        return [min(self.samples), statistics.median(self.samples), max(self.samples)]


def rotated(order, round_):
    """`order` (a list) rotated left by `round_`: who goes first changes every round."""
    shift = round_ % len(order)
    return order[shift:] + order[:shift]


def time_loop(func, number):
    """Wall time of `number` calls of ``func()`` in a loop, in seconds."""
    start = time.perf_counter()
    for _ in range(number):
        func()
    return time.perf_counter() - start


def best_time(func, repeat=3, budget=None, setup=None):
    """Best wall time of ``func()`` over up to `repeat` calls.

    Parameters
    ----------
    func : callable
        Called with no arguments.
    repeat : int, default 3
        Maximum number of calls.
    budget : float, optional
        Time budget in seconds: no further call is started once the calls so
        far took longer than this.  At least one call is always made.
    setup : callable, optional
        Called with no arguments before each call, not timed.

    Returns
    -------
    Timing
        The shortest call, in seconds (``time.perf_counter``), with every call's.
    """
    samples = []
    for _ in range(max(1, repeat)):
        if setup is not None:
            setup()
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
        if budget is not None and sum(samples) > budget:
            break
    return Timing(samples)


def per_call_time(func, repeat=5, target=0.1):
    """Best time per call of a fast ``func()``, measured over many calls.

    Parameters
    ----------
    func : callable
        Called with no arguments.
    repeat : int, default 5
        Number of timed loops; the best loop counts.
    target : float, default 0.1
        Wanted duration of one loop in seconds; the number of calls per loop
        is calibrated to reach it.

    Returns
    -------
    Timing
        Seconds per call, the best loop's, with every loop's.
    """
    number = _calls_per_loop(func, target)
    return Timing(time_loop(func, number) / number for _ in range(max(1, repeat)))


def _calls_per_loop(func, target):
    """How many calls of ``func()`` take about `target` seconds."""
    number = 1
    while True:
        elapsed = time_loop(func, number)
        if elapsed >= target / 10 or number >= 10**7:
            break
        number *= 10
    return max(1, int(number * target / max(elapsed, 1e-9)))


def per_call_in_turns(funcs, repeat=5, target=0.1):
    """Best time per call of several fast functions, their timed loops taking turns.

    As :func:`per_call_time` for each function, except that loop ``i`` of
    every function runs before loop ``i + 1`` of any, in a rotating order.

    Parameters
    ----------
    funcs : dict of str to callable
        Called with no arguments.
    repeat : int, default 5
        Number of timed loops of each function; the best loop counts.
    target : float, default 0.1
        Wanted duration of one loop in seconds.

    Returns
    -------
    dict of str to Timing
        Seconds per call (the best loop's, with every loop's), by the keys of `funcs`.
    """
    numbers = {key: _calls_per_loop(func, target) for key, func in funcs.items()}
    samples = {key: [] for key in funcs}
    for round_ in range(max(1, repeat)):
        for key in rotated(list(funcs), round_):
            samples[key].append(time_loop(funcs[key], numbers[key]) / numbers[key])
    return {key: Timing(samples[key]) for key in funcs}


def fill_in_turns(funcs, count, block):
    """Seconds per call of `count` calls of each function, made in blocks of `block` calls taking turns.

    One pass, no best of: for calls that change what the next one meets
    (each call of a cache miss adds an entry).

    Parameters
    ----------
    funcs : dict of str to callable
        Called with no arguments.
    count : int
        Calls of each function.
    block : int
        Calls of one function in a row before the next one's turn.

    Returns
    -------
    dict of str to float
        Mean seconds per call, by the keys of `funcs`.
    """
    total = dict.fromkeys(funcs, 0.0)
    for round_, start in enumerate(range(0, count, block)):
        number = min(block, count - start)
        for key in rotated(list(funcs), round_):
            total[key] += time_loop(funcs[key], number)
    return {key: total[key] / count for key in funcs}


def best_times_in_turns(calls, repeat=3, budget=None, check=None, setup=None, reported=False):
    """Best wall time of each of several calls, the calls taking turns.

    Round ``i`` calls every function once, in an order rotated by ``i``.

    Parameters
    ----------
    calls : dict of str to callable
        Called with no arguments.
    repeat : int, default 3
        Rounds.
    budget : float, optional
        Seconds: a function whose calls so far took longer is not called in
        the next rounds (it is always called once).
    check : callable, optional
        ``check(key, result)`` after the first call of each function; raises
        if the result is wrong.
    setup : callable, optional
        ``setup(key)`` before each call of the function `key`, not timed (e.g.
        removing the file the previous call wrote).
    reported : bool, default False
        Each call returns its own duration (seconds), measured where it ran
        (e.g. in another process, without the time of asking it), which is
        taken instead of the wall time of the call here.

    Returns
    -------
    dict of str to Timing
        The shortest call of each function, in seconds, with every call's.
    """
    samples = {key: [] for key in calls}
    for round_ in range(max(1, repeat)):
        for key in rotated(list(calls), round_):
            if round_ and budget is not None and sum(samples[key]) > budget:
                continue
            if setup is not None:
                setup(key)
            start = time.perf_counter()
            result = calls[key]()
            elapsed = result if reported else time.perf_counter() - start
            if check is not None and round_ == 0:
                check(key, result)
            del result
            samples[key].append(elapsed)
    return {key: Timing(samples[key]) for key in calls}


def paired_ratios(base, mine):
    """Per round of one :func:`best_times_in_turns`, the time of `base` over that of `mine`.

    Two calls of one round are close in time, so a slow spell of the machine
    weighs on both and mostly cancels out of their ratio, which the best time of
    each, taken in different rounds, does not.

    Parameters
    ----------
    base, mine : Timing
        Two timings of the same :func:`best_times_in_turns` call; their samples
        are in round order, and a call over its budget misses every later round,
        so the rounds both ran are the common prefix of their samples.

    Returns
    -------
    list of float
        ``base.samples[i] / mine.samples[i]`` for each round ``i`` both ran (at
        least the first).
    """
    return [first / second for first, second in zip(base.samples, mine.samples)]


def time_fresh_write(write, value, path, repeat=3, budget=None):
    """Best time of ``write(value, path)``, each call to a path that does not exist.

    The file left by the previous call is deleted before each call (not
    timed), so that no writer overwrites the page cache of an existing file;
    the file of the last call is kept.

    Parameters
    ----------
    write : callable
        ``write(value, path)``.
    value : object
        What is written.
    path : str
        The file name.
    repeat : int, default 3
        Maximum number of calls.
    budget : float, optional
        No further call once the calls so far took longer (seconds).

    Returns
    -------
    Timing
        The shortest call, in seconds, with every call's.
    """
    return best_time(lambda: write(value, path), repeat, budget, setup=lambda: remove_if_exists(path))
