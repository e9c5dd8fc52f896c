"""Building and running tasks, the hot loops of ``Parallel`` (pure-Python twin of ``_ext/_tasks.pyx``).

A task is the tuple ``(function, args, kwargs)`` that ``delayed(function)(*args,
**kwargs)`` returns, as in joblib.
"""

import itertools


class Delayed:
    """``delayed(function)``: calling it returns the task ``(function, args, kwargs)``.

    Parameters
    ----------
    function : callable
    """

    __slots__ = ("function",)

    def __init__(self, function):
        if not callable(function):
            raise TypeError(f"delayed() takes a callable, got {function!r} (type {type(function).__name__})")
        self.function = function

    def __call__(self, *args, **kwargs):
        return (self.function, args, kwargs)

    def __getattr__(self, name):
        # What joblib's delayed copies from the function with functools.wraps, read from it
        # when asked, so that making a task costs nothing more.
        if name == "__wrapped__":
            return self.function
        if name in ("__name__", "__qualname__"):
            return getattr(self.function, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self):
        return f"delayed({self.function!r})"

    def __reduce__(self):
        return Delayed, (self.function,)


def run_calls(function, arguments):
    """``[function(*args) for args in arguments]``: a batch of calls of one function without keywords."""
    return [function(*args) for args in arguments]


def run_tasks(tasks):
    """``[f(*args, **kwargs) for f, args, kwargs in tasks]``: a batch of any tasks."""
    return [function(*args, **kwargs) for function, args, kwargs in tasks]


def run_values(function, values):
    """``[function(value) for value in values]``: a batch of calls of one function with one argument each."""
    return [function(value) for value in values]


def run_next(iterator, count, start):
    """Run the next `count` tasks of `iterator` (fewer at its end) as they come; return their results.

    Nothing but the call of each task's function is done per task: no batch
    is built.  A task's exception propagates at once, and no later task is
    taken from `iterator`.

    Raises
    ------
    TypeError
        Naming the first item (by its index in the call, from `start`) that
        is not a task ``(function, args tuple, kwargs dict)``.
    """
    results = []
    for i, task in enumerate(itertools.islice(iterator, count)):
        if not _is_task(task):
            _not_a_task(task, start + i)
        results.append(task[0](*task[1], **task[2]))
    return results


def take_batch(iterator, count, start):
    """The next `count` tasks of `iterator` (fewer at its end), split into ``(function, items, single)``.

    Tasks of one function called without keywords keep only their
    arguments, and, when each has exactly one, only that argument: the
    argument tuples are not kept (alive until the batch is done, they would
    be gone through by each run of the garbage collector in the meantime).

    Returns
    -------
    function : callable or None
        The function of every task, when they all call the same one without
        keywords; else None.
    items : list
        Each task's only argument when `single`; else the argument tuples
        when `function` is set; else the tasks.  Empty when `iterator` is
        exhausted.
    single : bool
        Whether `items` holds each task's only argument.

    Raises
    ------
    TypeError
        Naming the first item (by its index in the call, from `start`) that
        is not a task.
    """
    items = []
    function = None
    same = single = True
    for i, task in enumerate(itertools.islice(iterator, count)):
        if not _is_task(task):
            _not_a_task(task, start + i)
        if same:
            if i == 0:
                function = task[0]
            if task[0] is function and not task[2]:
                if single:
                    if len(task[1]) == 1:
                        items.append(task[1][0])
                        continue
                    # a task of another number of arguments: the batch holds argument tuples from here
                    single = False
                    items = [(value,) for value in items]
                items.append(task[1])
                continue
            # a task of another function, or with keywords: the batch holds tasks from here
            same = False
            if single:
                items = [(function, (value,), {}) for value in items]
            else:
                items = [(function, args, {}) for args in items]
        items.append(task)
    if not same:
        return None, items, False
    return function, items, single and function is not None


def _is_task(task):
    return (
        type(task) is tuple
        and len(task) == 3
        and type(task[1]) is tuple
        and isinstance(task[2], dict)
        and callable(task[0])
    )


def _not_a_task(task, index):
    import reprlib

    raise TypeError(
        f"Parallel expects tasks made with delayed(function)(*args, **kwargs); item "
        f"{index} is {reprlib.repr(task)} (type {type(task).__name__})"
    )
