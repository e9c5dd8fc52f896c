"""Compiled twin of :mod:`joblite._pure._tasks`: building and running tasks, the hot loops of ``Parallel``.

A task is the tuple ``(function, args, kwargs)`` that ``delayed(function)(*args,
**kwargs)`` returns, as in joblib.
"""


cdef class Delayed:
    """``delayed(function)``: calling it returns the task ``(function, args, kwargs)``.

    Parameters
    ----------
    function : callable
    """

    cdef readonly object function

    def __init__(self, function):
        if not callable(function):
            raise TypeError(f"delayed() takes a callable, got {function!r} "
                            f"(type {type(function).__name__})")
        self.function = function

    def __call__(self, *args, **kwargs):
        return (self.function, args, kwargs)

    def __repr__(self):
        return f"delayed({self.function!r})"

    def __reduce__(self):
        return Delayed, (self.function,)


def run_calls(function, list arguments):
    """``[function(*args) for args in arguments]``: a batch of calls of one function without keywords."""
    cdef list results = []
    cdef tuple args
    for args in arguments:
        results.append(function(*args))
    return results


def run_tasks(list tasks):
    """``[f(*args, **kwargs) for f, args, kwargs in tasks]``: a batch of any tasks."""
    cdef list results = []
    cdef tuple task
    for task in tasks:
        results.append(task[0](*task[1], **task[2]))
    return results


def split_batch(list tasks, Py_ssize_t start):
    """``(function, [args, ...])`` when every task calls one function without keywords, else ``(None, tasks)``.

    Raises
    ------
    TypeError
        Naming the first item (by its index in the call, from `start`) that
        is not a task ``(function, args tuple, kwargs dict)``.
    """
    cdef Py_ssize_t i, n = len(tasks)
    cdef object task, function = None
    cdef bint same = True
    cdef list items = []
    for i in range(n):
        task = tasks[i]
        if type(task) is not tuple or len(<tuple>task) != 3 or type((<tuple>task)[1]) is not tuple \
                or not isinstance((<tuple>task)[2], dict) or not callable((<tuple>task)[0]):
            _not_a_task(task, start + i)
        if i == 0:
            function = (<tuple>task)[0]
        if same:
            if (<tuple>task)[0] is function and not (<tuple>task)[2]:
                items.append((<tuple>task)[1])
            else:
                same = False
    if same:
        return function, items
    return None, tasks


def _not_a_task(task, index):
    import reprlib

    raise TypeError(f"Parallel expects tasks made with delayed(function)(*args, **kwargs); item "
                    f"{index} is {reprlib.repr(task)} (type {type(task).__name__})")
