"""``python -m joblite bench parallel MODULE:FUNCTION --args ARGS``: tune ``Parallel`` for your function.

The command times ``Parallel(n_jobs=..., backend=..., batch_size=...)(delayed(f)(x) for x in args)``
for a small grid of settings against the plain loop ``[f(x) for x in args]``
in the same process and run, checks that every setting returns the loop's
results, and recommends a setting.

The function
    ``MODULE:FUNCTION``: a module importable from the current directory (it
    is put on ``sys.path``, as ``python -m`` does) and a function in it, or a
    dotted attribute path in it (``pkg.mod:Class.method``).
The arguments (``--args``)
    ``N`` (``range(N)``), ``START:STOP[:STEP]`` (``range(START, STOP, STEP)``),
    or a file: a ``.npy`` file (its rows, along the first axis; object arrays
    are refused), a ``.json`` file holding a list, or any other file
    :func:`joblite.load` reads (joblite or joblib) holding a list, a tuple or
    an array.  Each item is one call, ``FUNCTION(item)``; with ``--unpack``
    each item is a sequence of positional arguments, ``FUNCTION(*item)``.
    Like the module, a file loaded with :func:`joblite.load` may run code it
    names: use your own files.
The grid
    n_jobs 1 (run in the caller whatever the backend: one row,
    ``sequential``), then powers of two below the usable CPUs
    (:func:`joblite.cpu_count`) and -1 (all of them), each with the
    ``threading`` and ``loky`` backends and ``batch_size`` ``'auto'``, 1 and
    the size giving about four batches per worker.  ``--backend``,
    ``--n-jobs`` and ``--batch-size`` choose others.
The timing
    Settings sharing a backend and a number of workers are timed together,
    taking turns with the loop in an order rotated each round, `--repeat`
    rounds; their workers are started by an untimed call first (loky keeps
    them between calls, as in a program that calls ``Parallel`` often).
    Each setting gets the minimum, median and maximum of its times (the
    spread); its speed-up is the loop's median over its median, its range
    the loop's fastest over its slowest run to the loop's slowest over its
    fastest.
The recommendation
    Among the settings whose results equal the loop's, and the loop itself,
    take the fastest median; recommend the *simplest* setting whose median
    lies within the fastest one's min-max range.  Simpler means: the loop,
    then n_jobs=1, then threads before processes, fewer workers before more,
    ``batch_size='auto'`` before fixed sizes, smaller sizes first.  A setting
    whose results differ from the loop's, or that failed, is never
    recommended.

The ``--json`` document (schema ``joblite.bench.parallel/1``) has the keys:
``schema``; ``function`` (the spec); ``args`` (``source``: the ``--args``
value, ``count``: the number of calls, ``unpack``); ``repeat``; ``cpu_count``;
``joblite`` (``version``, ``compiled``); ``loop`` (``times``: seconds of
every run, ``seconds``: ``min``/``median``/``max``, ``consistent``: whether
the loop's own runs returned equal results); ``settings``, a list of
(``backend``, ``n_jobs``, ``workers``, ``batch_size``, ``times``,
``seconds``, ``speedup``: ``median``/``min``/``max`` or null, ``results``:
``'equal'``, ``'differ'`` or ``'error'``, ``error``: the message or null);
``recommendation`` (``kind``: ``'loop'`` or ``'parallel'``, ``call``: the
code to write, ``backend``, ``n_jobs``, ``batch_size`` (null for the loop),
``seconds``, ``speedup``, ``rule``: the rule in words).
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = ["SCHEMA", "add_parser", "main"]

#: Version of the ``--json`` document.
SCHEMA = "joblite.bench.parallel/1"

#: Width of the terminal every report fits.
WIDTH = 100

RULE = (
    "the simplest setting whose median lies within the fastest one's min-max range; simpler means "
    "the loop, then n_jobs=1, then threads before processes, fewer workers, batch_size='auto' "
    "before fixed sizes, smaller sizes first"
)

_BACKEND_ORDER = {"sequential": 0, "threading": 1, "loky": 2}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class BenchInputError(ValueError):
    """A bad function spec, ``--args`` value or option: reported as one line, exit status 2."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``bench parallel``; its ``func`` is :func:`main`.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The tools of ``python -m joblite bench``.
    """
    parser = subparsers.add_parser(
        "parallel",
        help="time your function through Parallel against a plain loop and recommend a setting",
        description="Time MODULE:FUNCTION through joblite.Parallel with several backends, n_jobs and "
        "batch sizes against the plain loop [f(x) for x in args], check that every setting returns "
        "the loop's results, and recommend a setting. Progress goes to stderr.",
    )
    parser.add_argument("function", metavar="MODULE:FUNCTION", help="e.g. mymodule:work (from the current folder)")
    parser.add_argument(
        "--args",
        required=True,
        metavar="ARGS",
        dest="arguments",
        help="N, START:STOP[:STEP], or a .npy, .json or joblite/joblib file holding the arguments",
    )
    parser.add_argument("--unpack", action="store_true", help="each item is a sequence of arguments: f(*item)")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="timed runs of each setting (default 3)")
    parser.add_argument(
        "--backend",
        action="append",
        choices=["loky", "threading"],
        help="a backend to time (repeatable; default both)",
    )
    parser.add_argument("--n-jobs", metavar="LIST", help="comma-separated n_jobs (default 1, 2, 4, ... and -1)")
    parser.add_argument(
        "--batch-size", metavar="LIST", help="comma-separated batch sizes or auto (default auto, 1, ~4 per worker)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``bench parallel`` with its parsed arguments and print the report on stdout.

    Parameters
    ----------
    args : argparse.Namespace
        With ``function``, ``arguments`` (the ``--args`` value), ``unpack``,
        ``repeat``, ``backend``, ``n_jobs``, ``batch_size`` and ``json``.

    Returns
    -------
    int
        0; 2 for a bad spec, file or option, or ``bench`` options that do
        not apply here (``--compare``, ``--plot``; the message on stderr
        names it); 1 when the plain loop itself fails.
    """
    from .cli import refuse_bench_only_options

    if refuse_bench_only_options(args, "parallel"):
        return 2
    try:
        if args.repeat < 1:
            raise BenchInputError(f"--repeat {args.repeat}: must be at least 1")
        func = resolve_function(args.function)
        items = load_arguments(args.arguments, unpack=args.unpack)
        grid = settings_grid(
            len(items), backends=args.backend, n_jobs=_int_list(args.n_jobs), batch_sizes=_batch_list(args.batch_size)
        )
    except BenchInputError as exc:
        print(f"python -m joblite bench parallel: error: {exc}", file=sys.stderr)
        return 2
    call = (lambda item: func(*item)) if args.unpack else func
    try:
        reference = [call(item) for item in items]
    except Exception as exc:
        message = f"the plain loop of {args.function} failed: {_describe(exc)}"
        print(f"python -m joblite bench parallel: error: {message}", file=sys.stderr)
        return 1
    report = {
        "schema": SCHEMA,
        "function": args.function,
        "args": {"source": args.arguments, "count": len(items), "unpack": bool(args.unpack)},
        **measure(func, items, grid, args.repeat, reference, unpack=args.unpack),
    }
    if args.json:
        import json

        print(json.dumps(report, indent=1))
    else:
        print(format_report(report))
    return 0


# -- the function and its arguments ------------------------------------------------------------
def resolve_function(spec: str) -> Callable[..., Any]:
    """The callable a ``MODULE:FUNCTION`` spec names, imported from the current directory.

    Parameters
    ----------
    spec : str
        ``module:name`` or ``package.module:Class.attribute``.

    Returns
    -------
    callable

    Raises
    ------
    BenchInputError
        If the spec is malformed, the module cannot be imported, the
        attribute is missing or not callable; the message names it.
    """
    import importlib

    module_name, _, path = spec.partition(":")
    if not _NAME.match(module_name) or not _NAME.match(path):
        raise BenchInputError(f"{spec!r} is not MODULE:FUNCTION (e.g. mymodule:work or pkg.mod:Class.method)")
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does: the user's module is in the current folder
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise BenchInputError(f"no module named {module_name!r} (in {spec!r}; searched from {cwd})") from None
        raise BenchInputError(f"importing {module_name!r} (in {spec!r}) failed: {_describe(exc)}") from None
    except Exception as exc:
        raise BenchInputError(f"importing {module_name!r} (in {spec!r}) failed: {_describe(exc)}") from None
    target: Any = module
    parts = path.split(".")
    for index, part in enumerate(parts):
        try:
            target = getattr(target, part)
        except AttributeError:
            owner = ":".join([module_name, ".".join(parts[:index])]).rstrip(":")
            raise BenchInputError(f"{owner!r} has no attribute {part!r} (in {spec!r})") from None
    if not callable(target):
        raise BenchInputError(f"{spec!r} is not callable: it is a {type(target).__name__}")
    return target


def load_arguments(source: str, unpack: bool = False) -> list[Any]:
    """The list of arguments an ``--args`` value gives: a range or a file's items.

    Parameters
    ----------
    source : str
        ``N``, ``START:STOP[:STEP]``, or the path of a ``.npy`` file (its rows),
        a ``.json`` file (a list) or a file :func:`joblite.load` reads (a list,
        tuple or array).
    unpack : bool, default False
        Each item must be a list, tuple or array of positional arguments.

    Returns
    -------
    list
        One item per call, at least one.

    Raises
    ------
    BenchInputError
        If `source` is neither a range nor a readable file of a supported
        kind, holds no items, or (with `unpack`) an item is not a sequence;
        the message names `source`.
    """
    match = re.fullmatch(r"(-?\d+)(?::(-?\d+)(?::(-?\d+))?)?", source)
    if match:
        start, stop, step = match.groups()
        if stop is None:
            start, stop = "0", start
        if step is not None and int(step) == 0:
            raise BenchInputError(f"--args {source!r}: the step of a range cannot be 0")
        items: list[Any] = list(range(int(start), int(stop), int(step or 1)))
    elif not os.path.exists(source):
        raise BenchInputError(f"--args {source!r}: no such file, and not a range N or START:STOP[:STEP]")
    elif os.path.isdir(source):
        raise BenchInputError(f"--args {source!r} is a folder, not a file of arguments")
    else:
        items = _read_items(source)
    if not items:
        raise BenchInputError(f"--args {source!r} gives no arguments")
    if unpack:
        for index, item in enumerate(items):
            if isinstance(item, (str, bytes)) or not hasattr(item, "__iter__"):
                raise BenchInputError(
                    f"--args {source!r}: item {index} is a {type(item).__name__}, not a sequence of arguments "
                    "(--unpack calls FUNCTION(*item))"
                )
        items = [tuple(item) for item in items]
    return items


def _read_items(path):
    """The items of the arguments file at `path` (see :func:`load_arguments`)."""
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension == ".npy":
            import numpy as np

            value = np.load(path, allow_pickle=False)
            if value.ndim == 0:
                raise BenchInputError(f"--args {path!r} holds a 0-d array: no first axis to iterate over")
            return list(value)
        if extension == ".json":
            import json

            with open(path, encoding="utf-8") as file:
                value = json.load(file)
            if not isinstance(value, list):
                raise BenchInputError(f"--args {path!r} holds a JSON {type(value).__name__}, not a list of arguments")
            return value
        import joblite

        value = joblite.load(path)
    except BenchInputError:
        raise
    except Exception as exc:  # a bad file, whatever the reader makes of it, is a message, not a traceback
        raise BenchInputError(f"--args {path!r} could not be read: {_describe(exc)}") from None
    if isinstance(value, (list, tuple)):
        return list(value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", 0) >= 1:
        return list(value)
    raise BenchInputError(f"--args {path!r} holds a {type(value).__name__}, not a list, tuple or array of arguments")


def _int_list(text):
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise BenchInputError(f"--n-jobs {text!r}: give comma-separated integers, e.g. 1,2,-1") from None
    if 0 in values:
        raise BenchInputError(f"--n-jobs {text!r}: n_jobs cannot be 0")
    return values


def _batch_list(text):
    if text is None:
        return None
    values = []
    for part in text.split(","):
        if part.strip() == "auto":
            values.append("auto")
        elif part.strip().isdigit() and int(part) >= 1:
            values.append(int(part))
        else:
            raise BenchInputError(f"--batch-size {text!r}: {part!r} is neither 'auto' nor an integer >= 1")
    return values


def _describe(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


# -- the settings and their timing -------------------------------------------------------------
class Setting:
    """One ``Parallel`` configuration timed, and what its runs gave."""

    def __init__(self, backend: str, n_jobs: int, workers: int, batch_size: int | str) -> None:
        self.backend = backend
        self.n_jobs = n_jobs
        self.workers = workers
        self.batch_size = batch_size
        self.times: list[float] = []
        self.results = "equal"  # or 'differ' or 'error'
        self.error: str | None = None

    def rank(self) -> tuple[Any, ...]:
        """Its place in the order of simplicity (see ``RULE``)."""
        batch = (0, 0) if self.batch_size == "auto" else (1, self.batch_size)
        return (_BACKEND_ORDER[self.backend], self.workers, batch)

    def call(self) -> str:
        """The code that makes this ``Parallel``."""
        return f"Parallel(n_jobs={self.n_jobs}, backend={self.backend!r}, batch_size={self.batch_size!r})"


def settings_grid(
    n_tasks: int,
    backends: Sequence[str] | None = None,
    n_jobs: Sequence[int] | None = None,
    batch_sizes: Sequence[int | str] | None = None,
) -> list[Setting]:
    """The settings timed, in order of simplicity, without two of the same effect.

    Parameters
    ----------
    n_tasks : int
        Number of calls (sizes the batch size giving about four batches per worker).
    backends : list of str, optional
        ``'loky'`` and ``'threading'`` by default.
    n_jobs : list of int, optional
        1, the powers of two below :func:`joblite.cpu_count` and -1 by default.
        Values giving the same number of workers are timed once (the first).
    batch_sizes : list of int or 'auto', optional
        ``'auto'``, 1 and ``ceil(n_tasks / (4 * workers))`` by default.

    Returns
    -------
    list of Setting
        n_jobs giving one worker make a single ``sequential`` row (the tasks
        run in the caller whatever the backend).
    """
    from ..backends import cpu_count, resolve_n_jobs

    cpus = cpu_count()
    if n_jobs is None:
        n_jobs = [1] + [2**k for k in range(1, cpus.bit_length()) if 2**k < cpus] + [-1]
    backends = list(backends or ["threading", "loky"])
    seen = set()
    grid = []
    for jobs in n_jobs:
        workers = resolve_n_jobs(jobs)
        for backend in ["sequential"] if workers == 1 else backends:
            sizes = batch_sizes or ["auto", 1, -(-n_tasks // (4 * workers))]
            for size in ["auto"] if workers == 1 else sizes:
                key = (backend, workers, size)
                if key not in seen:
                    seen.add(key)
                    grid.append(Setting(backend, jobs, workers, size))
    return sorted(grid, key=Setting.rank)


def measure(
    func: Callable[..., Any],
    items: list[Any],
    grid: list[Setting],
    repeat: int,
    reference: list[Any],
    unpack: bool = False,
) -> dict[str, Any]:
    """Time the loop and every setting, check their results, and choose the recommendation.

    Parameters
    ----------
    func : callable
    items : list
        The arguments, one item per call.
    grid : list of Setting
        From :func:`settings_grid`; their ``times``, ``results`` and
        ``error`` are filled in.
    repeat : int
        Timed runs of each setting; the loop runs `repeat` times with each
        group of settings sharing a backend and a number of workers.
    reference : list
        The loop's results, which every run must return.
    unpack : bool, default False
        Call ``func(*item)``.

    Returns
    -------
    dict
        The report (see the module's docstring), without ``function`` and ``args``.
    """
    import joblite
    from joblite import Parallel, delayed

    from .._progress import Progress
    from .timing import rotated

    call = (lambda item: func(*item)) if unpack else func
    task = (lambda item: delayed(func)(*item)) if unpack else delayed(func)
    groups: dict[tuple[str, int], list[Setting]] = {}
    for setting in grid:
        groups.setdefault((setting.backend, setting.workers), []).append(setting)
    total = sum((len(group) + 1) * repeat + (group[0].workers > 1) for group in groups.values())
    print(f"timing {len(grid)} settings and the loop on {len(items)} calls, {repeat} runs each", file=sys.stderr)
    progress = Progress(total, 0, True, None, 1)
    loop_times = []
    loop_consistent = True

    def run_loop():
        nonlocal loop_consistent
        start = time.perf_counter()
        results = [call(item) for item in items]
        loop_times.append(time.perf_counter() - start)
        loop_consistent = loop_consistent and _same(results, reference)

    def run(setting):
        start = time.perf_counter()
        results = Parallel(n_jobs=setting.n_jobs, backend=setting.backend, batch_size=setting.batch_size)(
            task(item) for item in items
        )
        setting.times.append(time.perf_counter() - start)
        if setting.results == "equal" and not _same(results, reference):
            setting.results = "differ"

    try:
        for group in groups.values():
            if group[0].workers > 1:  # start the workers, untimed: loky keeps them between calls
                warm = items[: 2 * group[0].workers]
                try:
                    Parallel(n_jobs=group[0].n_jobs, backend=group[0].backend, batch_size=1)(task(i) for i in warm)
                except Exception as exc:
                    for failed in group:
                        failed.results, failed.error = "error", _describe(exc)
                progress.finished(0, (None,))
            turns: list[Setting | None] = [None, *group]  # None: the loop
            for round_ in range(repeat):
                for turn in rotated(turns, round_):
                    if turn is None:
                        run_loop()
                    elif turn.error is None:
                        try:
                            run(turn)
                        except Exception as exc:
                            turn.results, turn.error = "error", _describe(exc)
                    progress.finished(0, (None,))
    finally:
        progress.close()
    loop = {"times": loop_times, "seconds": _spread(loop_times), "consistent": loop_consistent}
    settings = [_setting_report(setting, loop["seconds"]) for setting in grid]
    return {
        "schema": SCHEMA,
        "repeat": repeat,
        "cpu_count": joblite.cpu_count(),
        "joblite": {"version": joblite.__version__, "compiled": bool(joblite.__with_ext__)},
        "loop": loop,
        "settings": settings,
        "recommendation": recommend(loop["seconds"], settings),
    }


def _spread(times):
    from .timing import Timing

    return dict(zip(("min", "median", "max"), Timing(times).spread))


def _setting_report(setting, loop):
    seconds = _spread(setting.times) if setting.times else None
    speedup = None
    if seconds is not None:
        speedup = {
            "median": loop["median"] / seconds["median"],
            "min": loop["min"] / seconds["max"],
            "max": loop["max"] / seconds["min"],
        }
    return {
        "backend": setting.backend,
        "n_jobs": setting.n_jobs,
        "workers": setting.workers,
        "batch_size": setting.batch_size,
        "times": setting.times,
        "seconds": seconds,
        "speedup": speedup,
        "results": setting.results,
        "error": setting.error,
        "call": setting.call(),
    }


def recommend(loop: dict[str, float], settings: list[dict[str, Any]]) -> dict[str, Any]:
    """The recommended setting by :data:`RULE`, from the measured spreads.

    Parameters
    ----------
    loop : dict
        The loop's ``min``, ``median`` and ``max`` seconds.
    settings : list of dict
        Setting reports (``seconds``, ``results``, ...), in order of simplicity.

    Returns
    -------
    dict
        ``kind`` (``'loop'`` or ``'parallel'``), ``call``, ``backend``,
        ``n_jobs``, ``batch_size``, ``seconds``, ``speedup`` and ``rule``.
    """
    eligible = [s for s in settings if s["results"] == "equal" and s["seconds"] is not None]
    fastest = min([loop] + [s["seconds"] for s in eligible], key=lambda spread: spread["median"])
    for setting in [None, *eligible]:
        seconds = loop if setting is None else setting["seconds"]
        if seconds["median"] <= fastest["max"]:
            break
    if setting is None:
        return {
            "kind": "loop",
            "call": "[f(x) for x in args]",
            "backend": None,
            "n_jobs": None,
            "batch_size": None,
            "seconds": loop,
            "speedup": {"median": 1.0, "min": loop["min"] / loop["max"], "max": loop["max"] / loop["min"]},
            "rule": RULE,
        }
    return {
        "kind": "parallel",
        "call": setting["call"],
        "backend": setting["backend"],
        "n_jobs": setting["n_jobs"],
        "batch_size": setting["batch_size"],
        "seconds": setting["seconds"],
        "speedup": setting["speedup"],
        "rule": RULE,
    }


def _same(a, b):
    """Whether two results are equal: ``==``, element-wise for numpy arrays, NaN equal to NaN."""
    if type(a) is not type(b) and not (_is_array(a) or _is_array(b)):
        return False
    if _is_array(a) or _is_array(b):
        import numpy as np

        try:
            return bool(np.shape(a) == np.shape(b) and np.array_equal(a, b, equal_nan=True))
        except TypeError:  # equal_nan on a dtype without NaN
            return bool(np.shape(a) == np.shape(b) and np.array_equal(a, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    try:
        equal = a == b
        if _is_array(equal):  # a type whose == is element-wise (pandas...)
            return bool(equal.all())
        return bool(equal) or (a != a and b != b)  # NaN
    except Exception:
        return False


def _is_array(value):
    return type(value).__module__ == "numpy" and hasattr(value, "shape")


# -- the table ---------------------------------------------------------------------------------
def format_report(report: dict[str, Any]) -> str:
    """The report as a table and a recommendation, every line at most :data:`WIDTH` characters.

    Parameters
    ----------
    report : dict
        As :func:`measure` returns it, with ``function`` and ``args``.

    Returns
    -------
    str
    """
    loop = report["loop"]["seconds"]
    build = "compiled" if report["joblite"]["compiled"] else "pure Python"
    lines = textwrap.wrap(
        f"{report['function']}: {report['args']['count']} calls (--args {report['args']['source']}), "
        f"{report['repeat']} runs per setting, {report['cpu_count']} CPUs, joblite "
        f"{report['joblite']['version']} {build}",
        WIDTH,
    )
    header = f"{'backend':<10} {'n_jobs':>6} {'workers':>7} {'batch':>5} {'median s':>9} {'min-max s':>19} "
    header += f"{'speed-up':>8} {'range':>13}  results"
    lines += ["", header, "-" * len(header)]
    lines.append(f"{'loop':<10} {'':>6} {'':>7} {'':>5} {_row_times(loop)} {'1.00x':>8} {'':>13}  reference")
    notes = []
    for setting in report["settings"]:
        head = f"{setting['backend']:<10} {setting['n_jobs']:>6} {setting['workers']:>7} {setting['batch_size']:>5}"
        if setting["seconds"] is None:
            lines.append(f"{head} {'':>9} {'':>19} {'':>8} {'':>13}  {setting['results']}")
        else:
            speedup = setting["speedup"]
            spread = f"{speedup['min']:.2f}-{speedup['max']:.2f}x"
            results = setting["results"]
            lines.append(f"{head} {_row_times(setting['seconds'])} {speedup['median']:>7.2f}x {spread:>13}  {results}")
        if setting["error"]:
            notes.append(f"{setting['call']} failed: {setting['error']}")
        elif setting["results"] == "differ":
            notes.append(f"{setting['call']} returned results that differ from the loop's")
    if not report["loop"]["consistent"]:
        notes.append("the loop's own runs returned different results: is the function deterministic?")
    lines.append("")
    for note in notes:
        lines += textwrap.wrap("note: " + note, WIDTH, subsequent_indent="  ")
    choice = report["recommendation"]
    speedup = choice["speedup"]
    if choice["kind"] == "loop":
        lines += textwrap.wrap(
            f"recommended: the plain loop {choice['call']}: no setting is faster beyond the spread of the "
            f"runs (median {choice['seconds']['median']:.4g} s).",
            WIDTH,
            subsequent_indent="  ",
        )
    else:
        lines.append(f"recommended: {choice['call']}")
        lines += textwrap.wrap(
            f"{speedup['median']:.2f}x the loop's speed ({speedup['min']:.2f}-{speedup['max']:.2f}x over the "
            f"runs): median {choice['seconds']['median']:.4g} s against {loop['median']:.4g} s.",
            WIDTH,
            initial_indent="  ",
            subsequent_indent="  ",
        )
    lines += textwrap.wrap(f"rule: {choice['rule']}.", WIDTH, subsequent_indent="  ")
    return "\n".join(lines)


def _row_times(seconds):
    spread = f"{seconds['min']:.4g}-{seconds['max']:.4g}"
    return f"{seconds['median']:>9.4g} {spread:>19}"
