"""Compiled twin of :mod:`joblite._pure._tasks`: building and running tasks, the hot loops of ``Parallel``.

A task is the tuple ``(function, args, kwargs)`` that ``delayed(function)(*args,
**kwargs)`` returns, as in joblib.
"""
cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF

cdef extern from "Python.h":
    PyObject *PyIter_Next(object iterator) except? NULL


@cython.freelist(8)
cdef class Delayed:
    """``delayed(function)``: calling it returns the task ``(function, args, kwargs)``.

    Parameters
    ----------
    function : callable
    """

    cdef readonly object function

    # (__cinit__, run by the type's tp_new, rather than __init__: calling the class then
    # parses its argument once, a quarter of the cost of delayed(f))
    def __cinit__(self, function):
        if not callable(function):
            raise TypeError(f"delayed() takes a callable, got {function!r} "
                            f"(type {type(function).__name__})")
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


def run_calls(function, list arguments):
    """``[function(*args) for args in arguments]``: a batch of calls of one function without keywords."""
    cdef list results = []
    cdef tuple args
    for args in arguments:
        results.append(function(*args))
    return results


# Bounds checks off outside the debug build (JOBLITE_DEBUG: see setup.py): the three items of
# each task are then borrowed, not new references; 3-5% of this loop measured (tasks with
# keywords, 250 ns each).  take_batch made the batch: every task is a 3-tuple.
@cython.boundscheck(JOBLITE_DEBUG)
def run_tasks(list tasks):
    """``[f(*args, **kwargs) for f, args, kwargs in tasks]``: a batch of any tasks."""
    cdef list results = []
    cdef tuple task
    for task in tasks:
        results.append(task[0](*task[1], **task[2]))
    return results


def run_values(function, list values):
    """``[function(value) for value in values]``: a batch of calls of one function with one argument each."""
    cdef list results = []
    cdef object value
    for value in values:
        results.append(function(value))
    return results


# Bounds checks off outside the debug build, as in run_tasks (2-4% of this loop measured, 75 ns
# a task): _is_task has checked that the task is a 3-tuple.
@cython.boundscheck(JOBLITE_DEBUG)
def run_next(iterator, Py_ssize_t count, Py_ssize_t start):
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
    cdef list results = []
    cdef Py_ssize_t i
    cdef PyObject *item
    cdef object task
    for i in range(count):
        item = PyIter_Next(iterator)
        if item == NULL:
            break
        task = <object>item
        Py_DECREF(task)   # PyIter_Next's reference; `task` holds its own
        if not _is_task(task):
            _not_a_task(task, start + i)
        if (<tuple>task)[2]:
            results.append((<tuple>task)[0](*(<tuple>task)[1], **(<tuple>task)[2]))
        else:
            results.append((<tuple>task)[0](*(<tuple>task)[1]))
    return results


def take_batch(iterator, Py_ssize_t count, Py_ssize_t start):
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
    cdef list items = []
    cdef Py_ssize_t i
    cdef PyObject *item
    cdef object task, function = None
    cdef tuple arguments
    cdef bint same = True, single = True
    for i in range(count):
        item = PyIter_Next(iterator)
        if item == NULL:
            break
        task = <object>item
        Py_DECREF(task)
        if not _is_task(task):
            _not_a_task(task, start + i)
        if same:
            if i == 0:
                function = (<tuple>task)[0]
            if (<tuple>task)[0] is function and not (<tuple>task)[2]:
                arguments = <tuple>(<tuple>task)[1]
                if single:
                    if len(arguments) == 1:
                        items.append(arguments[0])
                        continue
                    # a task of another number of arguments: the batch holds argument tuples from here
                    single = False
                    items = [(value,) for value in items]
                items.append(arguments)
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


cdef inline bint _is_task(object task):
    return (type(task) is tuple and len(<tuple>task) == 3 and type((<tuple>task)[1]) is tuple
            and isinstance((<tuple>task)[2], dict) and callable((<tuple>task)[0]))


def _not_a_task(task, index):
    import reprlib

    raise TypeError(f"Parallel expects tasks made with delayed(function)(*args, **kwargs); item "
                    f"{index} is {reprlib.repr(task)} (type {type(task).__name__})")
