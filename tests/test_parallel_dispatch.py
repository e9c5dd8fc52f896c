"""How ``Parallel`` hands out tasks: compact batches, tasks run straight from the iterable, and the twins.

Batches of one function called without keywords travel as the function and
its arguments (each task's only argument when it has one); batches mixing
functions or keywords as tasks.  With one worker (``n_jobs=1``, the
sequential backend) the tasks run straight from the iterable in the
compiled loop: consumed lazily as ``pre_dispatch`` allows, stopped at the
first error, which is the failing task's own.  The task kernels of both
twins (``take_batch``, ``run_next``, ``run_values``)
agree.  Nothing here asserts a duration.
"""

import itertools
import pickle
import traceback

import pytest

import _parallel_funcs as funcs
from joblite import Parallel, delayed
from joblite.backends import Batch, in_worker


@pytest.fixture(scope="module", autouse=True)
def stop_worker_processes():
    """The loky workers the module started end with it (they are otherwise kept for reuse)."""
    yield
    import loky

    loky.get_reusable_executor().shutdown(wait=True, kill_workers=True)


def outcome(function, *args):
    """The result, or the type and text of the exception, of ``function(*args)``."""
    try:
        return "ok", function(*args)
    except Exception as exc:  # compared between the twins
        return type(exc).__name__, str(exc)


class Counted:
    """An iterator over `tasks` that counts the items taken from it."""

    def __init__(self, tasks):
        self.tasks = iter(tasks)
        self.taken = 0

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.tasks)
        self.taken += 1
        return item


def fail_at_13(x, ran):
    ran.append(x)
    if x == 13:
        raise ValueError(f"task {x} refuses")
    return x


def mixed_tasks(count):
    """Tasks of several functions and shapes: one argument, a tuple argument, two, none, keywords."""
    tasks = []
    for i in range(count):
        kind = i % 7
        if kind == 0:
            tasks.append(delayed(funcs.add)(i, z=1))
        elif kind == 1:
            tasks.append(delayed(funcs.add)(i, i))
        elif kind == 2:
            tasks.append(delayed(len)((i, i)))  # the only argument is a tuple
        elif kind == 3:
            tasks.append(delayed(funcs.negate)(i))
        else:
            tasks.append(delayed(funcs.square)(i))
    return tasks


def expected_of(tasks):
    return [function(*args, **kwargs) for function, args, kwargs in tasks]


# -- the twins ----------------------------------------------------------------------------------
TASK_CASES = [
    [],
    [(funcs.square, (1,), {}), (funcs.square, (2,), {})],  # one function, one argument
    [(funcs.add, (1, 2), {}), (funcs.add, (3, 4), {})],  # two arguments
    [(funcs.square, (1,), {}), (funcs.negate, (2,), {}), (funcs.square, (3,), {})],  # two functions
    [(funcs.add, (1,), {"z": 1}), (funcs.add, (2,), {})],  # keywords first
    [(funcs.add, (1,), {}), (funcs.add, (2,), {"z": 3}), (funcs.add, (4,), {})],  # keywords later
    [(funcs.square, (1,), {}), 3],  # not a task
    [(funcs.square, (1,), {}), (funcs.square, [2], {})],  # args not a tuple
    [(funcs.square, (1,), {}), (funcs.square, (2,), None)],  # kwargs not a dict
    [(funcs.square, (1,), {}), ("f", (2,), {})],  # not callable
    [(funcs.fail_on, (1, 2), {}), (funcs.fail_on, (2, 2), {}), (funcs.fail_on, (3, 2), {})],
    [(funcs.square, (x,), {}) for x in range(50)],
]


@pytest.mark.parametrize("count", [0, 1, 2, 3, 100])
def test_twins_take_batch_agree(twins, count):
    ext, pure = (kernels.tasks for kernels in twins)
    for tasks, start in itertools.product(TASK_CASES, (0, 500)):
        taken = {}
        for name, twin in (("ext", ext), ("pure", pure)):
            iterator = iter(tasks)
            taken[name] = outcome(twin.take_batch, iterator, count, start), list(iterator)
        assert taken["ext"] == taken["pure"], (tasks, count, start)
    f, g = funcs.square, funcs.negate
    # one function, one argument each: the arguments alone
    assert ext.take_batch(iter([(f, (1,), {}), (f, (2,), {})]), 5, 0) == (f, [1, 2], True)
    assert ext.take_batch(iter([(f, ((1, 2),), {})]), 5, 0) == (f, [(1, 2)], True)
    # another number of arguments: argument tuples, the first ones rebuilt as they were
    assert ext.take_batch(iter([(f, (1,), {}), (f, (2,), {}), (f, (3, 4), {})]), 5, 0) == (
        f,
        [(1,), (2,), (3, 4)],
        False,
    )
    assert ext.take_batch(iter([(f, (), {}), (f, (2,), {})]), 5, 0) == (f, [(), (2,)], False)
    # a batch of two functions holds tasks, the first ones rebuilt as they were
    assert ext.take_batch(iter([(f, (1,), {}), (g, (2,), {})]), 5, 0) == (None, [(f, (1,), {}), (g, (2,), {})], False)
    assert ext.take_batch(iter([(f, (1, 2), {}), (f, (2,), {"z": 1})]), 5, 0) == (
        None,
        [(f, (1, 2), {}), (f, (2,), {"z": 1})],
        False,
    )
    assert ext.take_batch(iter([]), 5, 0) == (None, [], False)
    assert outcome(ext.take_batch, iter([(f, (1,), {}), 3]), 5, 40) == (
        "TypeError",
        "Parallel expects tasks made with delayed(function)(*args, **kwargs); item 41 is 3 (type int)",
    )


@pytest.mark.parametrize("count", [0, 1, 2, 3, 100])
def test_twins_run_next_agree(twins, count):
    ext, pure = (kernels.tasks for kernels in twins)
    for tasks, start in itertools.product(TASK_CASES, (0, 500)):
        ran = {}
        for name, twin in (("ext", ext), ("pure", pure)):
            iterator = iter(tasks)
            ran[name] = outcome(twin.run_next, iterator, count, start), list(iterator)
        assert ran["ext"] == ran["pure"], (tasks, count, start)
    # the failing task's error; the tasks after it stay in the iterator
    iterator = iter(TASK_CASES[10])
    assert outcome(ext.run_next, iterator, 10, 0) == ("ValueError", "fail_on refuses 2")
    assert list(iterator) == [(funcs.fail_on, (3, 2), {})]


def test_twins_run_values_agree(twins):
    ext, pure = (kernels.tasks for kernels in twins)
    for function, values in [
        (funcs.square, []),
        (funcs.square, list(range(30))),
        (len, [(1, 2), ()]),
        (funcs.fail_on, [1, 2]),
        (funcs.negate, ["a"]),
    ]:
        assert outcome(ext.run_values, function, list(values)) == outcome(pure.run_values, function, list(values))
    assert ext.run_values(len, [(1, 2), ()]) == [2, 0]


# -- compact batches ------------------------------------------------------------------------------
def test_a_batch_of_one_argument_calls_travels_as_the_arguments():
    tasks = [delayed(funcs.square)(x) for x in range(20)]
    batch = Batch.take(iter(tasks), 20, 100)
    # held as the arguments alone from the start: no tuple per task stays alive while it is pending
    assert batch.single and batch.items == list(range(20))
    copy = pickle.loads(pickle.dumps(batch))
    assert copy.single and copy.items == list(range(20))
    assert (copy.start, copy.size, copy.function) == (100, 20, funcs.square)
    assert copy()[0] == batch()[0] == expected_of(tasks)
    assert copy.task(105) == batch.task(105) == (funcs.square, (5,), {})
    assert Batch.take(iter([]), 20, 0) is None


@pytest.mark.parametrize(
    "tasks",
    [
        [delayed(funcs.add)(x, 1) for x in range(10)],
        [delayed(len)((x, x)) for x in range(10)],
        [delayed(funcs.square)(x) for x in range(5)] + [delayed(funcs.add)(1, z=2)],
        mixed_tasks(30),
    ],
    ids=["two arguments", "tuple argument", "keywords last", "mixed"],
)
def test_other_batches_round_trip_unchanged(tasks):
    batch = Batch.take(iter(tasks), len(tasks), 0)
    copy = pickle.loads(pickle.dumps(batch))
    assert copy()[0] == expected_of(tasks)
    assert [copy.task(i) for i in range(len(tasks))] == tasks


@pytest.mark.parametrize("batch_size", [1, 4, 50, "auto"])
def test_mixed_functions_and_keywords_on_processes(batch_size):
    tasks = mixed_tasks(300)
    assert Parallel(n_jobs=2, batch_size=batch_size)(iter(tasks)) == expected_of(tasks)


def test_a_failing_task_of_a_compact_batch_on_processes_raises_its_error():
    with pytest.raises(ValueError, match="fail_on refuses 57") as info:
        Parallel(n_jobs=2, batch_size=20)(delayed(funcs.fail_on)(x, 57) for x in range(200))
    assert "fail_on" in str(info.value.__cause__)  # the worker's traceback


# -- n_jobs=1: tasks run straight from the iterable ---------------------------------------------
@pytest.mark.parametrize("return_as", ["list", "generator", "generator_unordered"])
def test_one_worker_gives_the_loop_results_in_order(return_as):
    tasks = mixed_tasks(1000)
    assert list(Parallel(n_jobs=1, return_as=return_as)(iter(tasks))) == expected_of(tasks)


def test_one_worker_consumes_the_input_lazily_as_pre_dispatch_allows():
    source = Counted(delayed(funcs.square)(x) for x in itertools.count())
    results = Parallel(n_jobs=1, batch_size=3, pre_dispatch=2, return_as="generator")(source)
    assert source.taken == 6  # two batches run when the call is made, as submitted ones would be
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    assert source.taken == 6
    assert next(results) == 9
    assert source.taken == 9
    results.close()
    assert source.taken == 9


def test_one_worker_stops_at_the_failing_task_and_raises_its_error():
    ran = []
    source = Counted(delayed(fail_at_13)(x, ran) for x in range(100))
    parallel = Parallel(n_jobs=1, batch_size=10)
    with pytest.raises(ValueError, match="task 13 refuses") as info:
        parallel(source)
    assert ran == list(range(14))
    assert source.taken == 14
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].name == "fail_at_13"
    assert parallel.n_completed_tasks == 10


def test_one_worker_yields_the_batches_before_a_failure_first():
    ran = []
    results = Parallel(n_jobs=1, batch_size=10, return_as="generator")(delayed(fail_at_13)(x, ran) for x in range(100))
    assert [next(results) for _ in range(10)] == list(range(10))
    with pytest.raises(ValueError, match="task 13 refuses"):
        next(results)


def test_one_worker_names_an_item_that_is_not_a_task():
    source = Counted([delayed(funcs.square)(1), delayed(funcs.square)(2), "oops", delayed(funcs.square)(3)])
    with pytest.raises(TypeError, match="item 2 is 'oops'"):
        Parallel(n_jobs=1)(source)
    assert source.taken == 3


class Recorder(Parallel):
    def print_progress(self):
        self.seen.append((self.n_dispatched_tasks, self.n_completed_tasks, self._is_completed()))


def test_one_worker_counts_dispatched_and_completed_tasks_and_calls_back():
    seen, called = [], []
    parallel = Recorder(n_jobs=1, callback=lambda index, result: called.append((index, result)))
    parallel.seen = seen
    assert parallel(delayed(funcs.negate)(x) for x in range(5000)) == [-x for x in range(5000)]
    assert parallel.n_dispatched_tasks == parallel.n_completed_tasks == 5000
    assert called == [(x, -x) for x in range(5000)]
    assert seen[-1] == (5000, 5000, True)
    assert all(completed <= dispatched for dispatched, completed, _ in seen)
    assert parallel.n_dispatched_batches >= 2  # the first batch holds one task, to measure it


def in_worker_flag(_):
    return in_worker()


def test_one_worker_tasks_run_as_in_a_worker():
    assert Parallel(n_jobs=1)(delayed(in_worker_flag)(x) for x in range(3)) == [True] * 3
    assert not in_worker()


# -- cpu_count ----------------------------------------------------------------------------------
def test_cpu_count_follows_affinity_and_loky_max_cpu_count_at_once(monkeypatch):
    """The count is kept for a second, but never across a change of affinity or LOKY_MAX_CPU_COUNT."""
    import os

    from joblite import cpu_count

    cpus = cpu_count()
    assert cpu_count() == cpus >= 1
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    assert cpu_count() == 1
    monkeypatch.delenv("LOKY_MAX_CPU_COUNT")
    assert cpu_count() == cpus
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return
    affinity = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(affinity)})
        assert cpu_count() == 1
    finally:
        os.sched_setaffinity(0, affinity)
    assert cpu_count() == cpus


# -- batch sizes --------------------------------------------------------------------------------
def test_a_small_batch_back_late_does_not_shrink_the_next_ones():
    """A slower measure moves the size in proportion to its batch's share of the current size."""
    from joblite.parallel import _AutoBatcher

    batcher = _AutoBatcher("auto", None, 2, target=0.02, largest=16384)
    batcher.record(16384, 0.005)  # tiny tasks: the largest batches
    assert batcher.size() == 16384
    batcher.record(31, 0.008)  # 31 tasks back after 8 ms: the wait, not their cost
    assert batcher.size() >= 16000
    batcher.record(16384, 0.1)  # full batches get slower: the size follows
    assert batcher.size() < 8192
    batcher.record(batcher.size(), 1.0)
    assert batcher.size() < 1000
