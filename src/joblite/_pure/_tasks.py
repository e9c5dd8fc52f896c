"""Building and running tasks, the hot loops of ``Parallel`` (pure-Python twin of ``_ext/_tasks.pyx``).

A task is the tuple ``(function, args, kwargs)`` that ``delayed(function)(*args,
**kwargs)`` returns, as in joblib.
"""


class Delayed:
    """``delayed(function)``: calling it returns the task ``(function, args, kwargs)``.

    Parameters
    ----------
    function : callable
    """

    __slots__ = ("function",)

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


def run_calls(function, arguments):
    """``[function(*args) for args in arguments]``: a batch of calls of one function without keywords."""
    return [function(*args) for args in arguments]


def run_tasks(tasks):
    """``[f(*args, **kwargs) for f, args, kwargs in tasks]``: a batch of any tasks."""
    return [function(*args, **kwargs) for function, args, kwargs in tasks]


def split_batch(tasks, start):
    """``(function, [args, ...])`` when every task calls one function without keywords, else ``(None, tasks)``.

    Raises
    ------
    TypeError
        Naming the first item (by its index in the call, from `start`) that
        is not a task ``(function, args tuple, kwargs dict)``.
    """
    function = None
    same = True
    items = []
    for i, task in enumerate(tasks):
        if type(task) is not tuple or len(task) != 3 or type(task[1]) is not tuple \
                or not isinstance(task[2], dict) or not callable(task[0]):
            _not_a_task(task, start + i)
        if i == 0:
            function = task[0]
        if same:
            if task[0] is function and not task[2]:
                items.append(task[1])
            else:
                same = False
    if same:
        return function, items
    return None, tasks


def _not_a_task(task, index):
    import reprlib

    raise TypeError(f"Parallel expects tasks made with delayed(function)(*args, **kwargs); item "
                    f"{index} is {reprlib.repr(task)} (type {type(task).__name__})")
