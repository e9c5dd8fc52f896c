"""``python -m joblite bench codecs PATH``: which ``compress=`` suits the user's own data.

The command loads the object in PATH, then dumps and loads it with every
available codec at the levels of :data:`LEVELS`, uncompressed
(``compress=0``, the reference) and, for comparison only, through
``joblib.dump``/``joblib.load`` with joblib's ``compress=True`` (zlib 3)
and ``('lz4', 3)``.  It prints one line per setting, marks the
Pareto-optimal ones and recommends a ``compress=`` argument for speed, for
size and for a balance (see :func:`recommend`).

Definitions (the same in the table, the JSON document and the docs):

raw bytes
    The size of the file ``joblite.dump(value, path, compress=0)`` writes:
    the arrays' bytes plus the pickle stream and the container's framing.
ratio
    Raw bytes over the setting's file bytes (``compress=0`` is 1).
write and read throughput
    Raw bytes over the best (least) wall time of the setting's
    ``dump`` and ``load`` calls, in MB/s (10**6 bytes per second); the
    median is kept too.  Each repeat dumps the object to a file in a
    temporary folder, then loads it back while the file is still in the
    page cache: the figures are those of the codecs and the CPU, not of the
    disk.
Pareto-optimal
    A joblite setting is Pareto-optimal when no other joblite setting has a
    file at most as large, a best write time at most as long and a best read
    time at most as long, with at least one of the three strictly better.
    Only joblite's settings are compared (they are the ones ``compress=``
    can choose); joblib's rows are never marked nor recommended.

The JSON document (``--json``), schema :data:`SCHEMA`::

    {"schema": "joblite.bench.codecs/1",
     "path": absolute path of the file measured,
     "object": what it holds (e.g. "numpy.ndarray uint8 (480, 640, 3)"),
     "raw_bytes": int, "repeat": int, "balance_factor": float,
     "machine": the facts of joblite.bench.report.machine_facts(),
     "settings": [{"impl": "joblite" or "joblib",
                   "codec": codec name or null (compress=0), "level": int,
                   "compress": the Python compress= argument, as text,
                   "file_bytes": int, "ratio": float,
                   "write_seconds": [float, ...], "read_seconds": [float, ...],
                   "write_mb_per_s": best, "write_mb_per_s_median": float,
                   "read_mb_per_s": best, "read_mb_per_s_median": float,
                   "round_trip": bool (every load gave back an equal object),
                   "pareto": bool}, ...],
     "recommendations": {"speed" | "size" | "balance":
                         {"compress": text, "index": index in "settings",
                          "rule": the definition applied}},
     "notes": [str, ...]}

The module imports numpy and joblib only when the command runs, so that
building the parser of ``python -m joblite`` stays cheap.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable
    from typing import Any, TextIO

__all__ = [
    "BALANCE_FACTOR",
    "JOBLIB_SETTINGS",
    "LEVELS",
    "SCHEMA",
    "WIDTH",
    "CodecReport",
    "Setting",
    "add_parser",
    "describe",
    "format_markdown",
    "format_table",
    "load_user_file",
    "main",
    "measure",
    "pareto_optimal",
    "recommend",
    "same_object",
    "to_json",
]

#: Version of the JSON document's layout.
SCHEMA = "joblite.bench.codecs/1"

#: The levels measured for each of joblite's codecs.  The ``blosc-*`` codecs:
#: Blosc's clevel 1, 5 (the default) and 9; bit shuffle and zstd at 5 and 9.
#: lz4: 1 is its fast mode (1 to 3 write the same bytes), 4 and 9 lz4-HC.
#: zlib and gzip (the same deflate, two wrappers): 1, 3, 6, 9.  bz2: its level
#: is the block size, 1 and 9 are the extremes.  lzma and xz: 1 and 3 (fast mode), 6 (normal
#: mode, xz's default); 7 to 9 only grow the dictionary beyond the 1 MiB
#: chunks joblite compresses.  zstd: 1, 3 (its default), 9, 19.
LEVELS = {
    "blosc-lz4": (1, 5, 9),
    "blosc-lz4-bitshuffle": (5, 9),
    "blosc-zstd": (5, 9),
    "blosc-zstd-bitshuffle": (5, 9),
    "lz4": (1, 4, 9),
    "zlib": (1, 3, 6, 9),
    "gzip": (1, 3, 6, 9),
    "bz2": (1, 9),
    "lzma": (1, 3, 6),
    "xz": (1, 3, 6),
    "zstd": (1, 3, 9, 19),
}

#: joblib's settings measured for comparison: its ``compress=True`` (zlib 3)
#: and ``('lz4', 3)`` (when lz4 is installed).
JOBLIB_SETTINGS = (("zlib", 3), ("lz4", 3))

#: The balance pick: the highest ratio among the settings whose write + read
#: time is at most this many times that of the speed pick.
BALANCE_FACTOR = 2.0

#: Columns of a terminal the table fits.
WIDTH = 100

MB = 1e6

_RULES = {
    "speed": "the least write + read time of the settings that shrink the file",
    "size": "the highest ratio",
    "balance": "the highest ratio within {factor:g}x the speed pick's write + read time",
    "none": "nothing shrinks this data: every codec's file is at least as large as compress=0's",
}


class Setting:
    """One setting measured: who wrote and read the file, the codec, the level, the figures.

    Parameters
    ----------
    impl : {'joblite', 'joblib'}
        Whose ``dump`` and ``load`` were timed.
    codec : str or None
        Codec name; None for no compression (``compress=0``).
    level : int
        Codec level; 0 without a codec.

    Attributes
    ----------
    file_bytes : int
        Size of the file written (bytes).
    write_seconds, read_seconds : list of float
        Wall time of each ``dump`` and each ``load`` (seconds).
    round_trip : bool
        Whether every load gave back an object equal to the original
        (:func:`same_object`).
    pareto : bool
        Whether the setting is Pareto-optimal (:func:`pareto_optimal`).
    """

    __slots__ = ("impl", "codec", "level", "file_bytes", "write_seconds", "read_seconds", "round_trip", "pareto")

    def __init__(self, impl: str, codec: str | None, level: int) -> None:
        self.impl = impl
        self.codec = codec
        self.level = level
        self.file_bytes = 0
        self.write_seconds: list[float] = []
        self.read_seconds: list[float] = []
        self.round_trip = False
        self.pareto = False

    @property
    def compress(self) -> str:
        """The ``compress=`` argument of this setting, as Python source: ``0`` or ``('zlib', 3)``."""
        return "0" if self.codec is None else repr((self.codec, self.level))

    @property
    def argument(self) -> object:
        """The ``compress=`` argument itself: ``0`` or a ``(name, level)`` tuple."""
        return 0 if self.codec is None else (self.codec, self.level)

    @property
    def best_write(self) -> float:
        """Least write time (seconds)."""
        return min(self.write_seconds)

    @property
    def best_read(self) -> float:
        """Least read time (seconds)."""
        return min(self.read_seconds)

    @property
    def combined(self) -> float:
        """Least write time plus least read time (seconds): what "speed" minimizes."""
        return self.best_write + self.best_read

    def __repr__(self) -> str:
        return f"Setting({self.impl!r}, compress={self.compress})"


class CodecReport:
    """What :func:`measure` found: the object, its settings, the recommendations.

    Attributes
    ----------
    path : str
        The file measured (absolute path).
    description : str
        What it holds (:func:`describe`).
    raw_bytes : int
        Size of its uncompressed joblite file (bytes): the base of ratios
        and throughputs.
    repeat : int
        Dumps and loads timed per setting.
    settings : list of Setting
        In the order measured: ``compress=0`` first, then joblite's codecs,
        then joblib's.
    recommendations : dict of str to Setting
        ``'speed'``, ``'size'`` and ``'balance'`` (:func:`recommend`).
    notes : list of str
        What was left out and why (a codec or joblib not installed).
    """

    def __init__(self, path: str, description: str, repeat: int) -> None:
        self.path = path
        self.description = description
        self.raw_bytes = 0
        self.repeat = repeat
        self.settings: list[Setting] = []
        self.recommendations: dict[str, Setting] = {}
        self.notes: list[str] = []

    def ratio(self, setting: Setting) -> float:
        """Raw bytes over the file bytes of `setting`."""
        return self.raw_bytes / setting.file_bytes

    def mb_per_s(self, seconds: float) -> float:
        """Raw megabytes (10**6 bytes) per second for a call of `seconds`."""
        return self.raw_bytes / seconds / MB if seconds > 0 else float("inf")


# -- the user's file ---------------------------------------------------------------------


def load_user_file(path: str) -> Any:
    """Load the object in `path`: a ``.npy`` file, or any file ``joblite.load`` reads.

    A file starting with numpy's magic string is read by ``numpy.load``; any
    other by ``joblite.load`` (joblite and joblib files, whole-file
    compressed ones too).  As with ``load``, a pickle runs the code it
    names: benchmark only files you trust.

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    object
        What it holds.

    Raises
    ------
    ValueError
        If `path` cannot be read or is neither kind of file; the message
        names the path and says why.
    """
    try:
        with open(path, "rb") as fileobj:
            head = fileobj.read(6)
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if head == b"\x93NUMPY":
        import numpy as np

        try:
            return np.load(path, allow_pickle=True)
        except Exception as exc:  # whatever numpy raises on a bad .npy: reported, not a traceback
            raise ValueError(f"{path}: a .npy file numpy cannot read: {exc}") from exc
    import joblite

    try:
        return joblite.load(path)
    except Exception as exc:  # any error of the file or of the code it unpickles: reported
        raise ValueError(
            f"{path}: neither a .npy file nor a file joblite.load reads ({type(exc).__name__}: {exc})"
        ) from exc


def describe(value: object) -> str:
    """A short description of `value`: its type, and dtype and shape for an array."""
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return f"{name} {value.dtype} {tuple(value.shape)}"
    if isinstance(value, (dict, list, tuple)):
        return f"{name} of {len(value)} items"
    return name


def same_object(original: object, loaded: object) -> bool:
    """Whether `loaded` equals `original`, as a lossless round trip must give it back.

    Both must be of the same type.  Numpy arrays: the same dtype and shape,
    and the same bytes (so NaNs and signed zeros count); object arrays item
    by item.  Dicts (keys in the same order), lists and tuples: item by
    item.  Anything else: ``==`` when it gives True, otherwise equal
    pickles (protocol 5).

    Parameters
    ----------
    original, loaded : object
        The object dumped and the object loaded.

    Returns
    -------
    bool
    """
    import numpy as np

    if type(loaded) is not type(original):
        return False
    if isinstance(original, np.ndarray) and isinstance(loaded, np.ndarray):
        if loaded.dtype != original.dtype or loaded.shape != original.shape:
            return False
        if original.dtype.hasobject:
            return all(same_object(a, b) for a, b in zip(original.flat, loaded.flat))
        mine, theirs = _bytes_of(original), _bytes_of(loaded)
        # in slices: the comparison's temporary stays small next to a large array
        step = 1 << 24
        return all(np.array_equal(mine[i : i + step], theirs[i : i + step]) for i in range(0, mine.size, step))
    if isinstance(original, dict) and isinstance(loaded, dict):
        return list(original) == list(loaded) and all(same_object(original[key], loaded[key]) for key in original)
    if isinstance(original, (list, tuple)) and isinstance(loaded, (list, tuple)):
        return len(loaded) == len(original) and all(same_object(a, b) for a, b in zip(original, loaded))
    try:
        if (original == loaded) is True:
            return True
    except Exception:  # an == that refuses to compare: the pickles decide
        pass
    import pickle

    try:
        return pickle.dumps(original, protocol=5) == pickle.dumps(loaded, protocol=5)
    except Exception:  # not picklable by pickle itself: no way left to tell them equal
        return False


def _bytes_of(array):
    import numpy as np

    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


# -- measuring ------------------------------------------------------------------------------


def _joblite_io():
    import joblite

    return (lambda value, path, compress: joblite.dump(value, path, compress=compress)), joblite.load


def _joblib_io():
    import joblib

    return (lambda value, path, compress: joblib.dump(value, path, compress=compress)), joblib.load


def _time_setting(setting, value, path, repeat, dump, load):
    """Dump `value` to `path` and load it back `repeat` times; fill in `setting`'s figures."""
    checks = []
    for _ in range(repeat):
        start = time.perf_counter()
        dump(value, path, setting.argument)
        setting.write_seconds.append(time.perf_counter() - start)
        setting.file_bytes = os.path.getsize(path)
        start = time.perf_counter()
        loaded = load(path)
        setting.read_seconds.append(time.perf_counter() - start)
        checks.append(same_object(value, loaded))  # untimed
        del loaded
    os.unlink(path)
    setting.round_trip = all(checks)


def _planned(codecs, notes):
    """The settings to measure, in order: compress=0, joblite's codecs, joblib's."""
    import importlib.util

    from joblite import compressors

    names = list(LEVELS) if codecs is None else [name for name in LEVELS if name in codecs]
    registered = set(compressors.compressor_names())
    plan = [Setting("joblite", None, 0)]
    for name in names:
        if name not in registered:
            install = " (pip install zstandard)" if name == "zstd" else ""
            notes.append(f"codec {name!r} is not available{install}: no {name} rows")
            continue
        levels = [level for level in LEVELS[name] if level in compressors.get_compressor(name).levels]
        plan += [Setting("joblite", name, level) for level in levels]
    if importlib.util.find_spec("joblib") is None:
        notes.append("joblib is not installed: no joblib rows to compare with")
        return plan
    for name, level in JOBLIB_SETTINGS:
        if codecs is not None and name not in codecs:
            continue
        if name == "lz4" and importlib.util.find_spec("lz4") is None:
            notes.append("lz4 is not installed: no joblib ('lz4', 3) row")
            continue
        plan.append(Setting("joblib", name, level))
    return plan


def measure(
    value: object,
    path: str = "",
    repeat: int = 3,
    tmpdir: str | None = None,
    codecs: Iterable[str] | None = None,
    progress: Callable[[str], object] | None = None,
) -> CodecReport:
    """Dump and load `value` with every setting; mark the Pareto-optimal ones and recommend.

    Parameters
    ----------
    value : object
        The object to measure (what :func:`load_user_file` returned).
    path : str, optional
        The file it came from, for the report.
    repeat : int, default 3
        Dumps and loads timed per setting (>= 1); the best and the median
        are reported.
    tmpdir : str, optional
        Folder in which a temporary folder for the files is made (removed
        afterwards); the system's temporary folder by default.  Put it on
        the disk whose figures matter.
    codecs : iterable of str, optional
        Measure only these codecs of :data:`LEVELS` (and joblib's settings
        with these codecs); all by default.  ``compress=0`` is always
        measured: it is the reference.
    progress : callable, optional
        Called with a line of text before each setting (e.g. a printer to
        stderr).

    Returns
    -------
    CodecReport

    Raises
    ------
    ValueError
        If `repeat` is less than 1, or `codecs` names a codec not in
        :data:`LEVELS`.
    """
    import tempfile

    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be an int >= 1, got {repeat!r}")
    if codecs is not None:
        codecs = list(codecs)
        unknown = [name for name in codecs if name not in LEVELS]
        if unknown:
            raise ValueError(f"unknown codec(s) {unknown}; choose from {list(LEVELS)}")
    report = CodecReport(os.path.abspath(path) if path else "", describe(value), repeat)
    plan = _planned(codecs, report.notes)
    calls = {"joblite": _joblite_io()}
    if any(setting.impl == "joblib" for setting in plan):
        calls["joblib"] = _joblib_io()
    with tempfile.TemporaryDirectory(prefix="joblite-bench-codecs-", dir=tmpdir) as folder:
        target = os.path.join(folder, "data.bin")
        for number, setting in enumerate(plan, 1):
            if progress is not None:
                progress(f"bench codecs: [{number}/{len(plan)}] {setting.impl} compress={setting.compress}")
            _time_setting(setting, value, target, repeat, *calls[setting.impl])
            report.settings.append(setting)
    report.raw_bytes = report.settings[0].file_bytes
    pareto_optimal(report.settings)
    report.recommendations = recommend(report.settings)
    for setting in report.settings:
        if not setting.round_trip:
            report.notes.append(f"{setting.impl} compress={setting.compress}: the object loaded differs")
    return report


def _dominates(a, b):
    """Whether `a` is at least as good as `b` in size, write and read time, and better in one."""
    at_least = a.file_bytes <= b.file_bytes and a.best_write <= b.best_write and a.best_read <= b.best_read
    better = a.file_bytes < b.file_bytes or a.best_write < b.best_write or a.best_read < b.best_read
    return at_least and better


def _candidates(settings):
    return [setting for setting in settings if setting.impl == "joblite" and setting.round_trip]


def pareto_optimal(settings: list[Setting]) -> list[Setting]:
    """Mark (``.pareto``) and return the Pareto-optimal joblite settings of `settings`.

    A joblite setting whose round trip succeeded is Pareto-optimal when no
    other such setting dominates it: a file at most as large, a best write
    time and a best read time at most as long, and at least one of the
    three strictly better.  joblib's settings are neither compared nor
    marked.

    Parameters
    ----------
    settings : list of Setting
        Measured settings; their ``pareto`` attribute is set.

    Returns
    -------
    list of Setting
        The Pareto-optimal ones, in the order of `settings`.
    """
    candidates = _candidates(settings)
    for setting in settings:
        setting.pareto = setting in candidates and not any(_dominates(other, setting) for other in candidates)
    return [setting for setting in settings if setting.pareto]


def recommend(settings: list[Setting], factor: float = BALANCE_FACTOR) -> dict[str, Setting]:
    """The ``compress=`` settings to use for speed, for size and for a balance.

    Only joblite's settings whose round trip succeeded are chosen from.
    Those that *shrink the file* write a file smaller than ``compress=0``'s.

    * ``'speed'``: of the settings that shrink the file, the least write +
      read time (:attr:`Setting.combined`, best times); ties go to the
      smaller file.
    * ``'size'``: the smallest file (the highest ratio); ties go to the
      least write + read time.
    * ``'balance'``: of the settings that shrink the file within `factor`
      times the speed pick's write + read time, the smallest file; ties go
      to the least write + read time.

    Each pick is Pareto-optimal (:func:`pareto_optimal`).  When no setting
    shrinks the file, all three are ``compress=0``.

    Parameters
    ----------
    settings : list of Setting
        Measured settings, ``compress=0`` among them.
    factor : float, default :data:`BALANCE_FACTOR`
        The time allowance of the balance pick (>= 1).

    Returns
    -------
    dict of str to Setting
        Keys ``'speed'``, ``'size'``, ``'balance'``.

    Raises
    ------
    ValueError
        If `settings` holds no joblite ``compress=0`` setting whose round
        trip succeeded.
    """
    candidates = _candidates(settings)
    reference = [setting for setting in candidates if setting.codec is None]
    if not reference:
        raise ValueError("no joblite compress=0 setting whose load gave back an equal object: nothing to compare with")
    shrinking = [s for s in candidates if s.codec is not None and s.file_bytes < reference[0].file_bytes]
    if not shrinking:
        return dict.fromkeys(("speed", "size", "balance"), reference[0])
    speed = min(shrinking, key=lambda s: (s.combined, s.file_bytes))
    size = min(shrinking, key=lambda s: (s.file_bytes, s.combined))
    within = [s for s in shrinking if s.combined <= factor * speed.combined]
    balance = min(within, key=lambda s: (s.file_bytes, s.combined))
    return {"speed": speed, "size": size, "balance": balance}


def _rule(report, name):
    if report.recommendations[name].codec is None:
        return _RULES["none"]
    return _RULES[name].format(factor=BALANCE_FACTOR)


# -- output ----------------------------------------------------------------------------------


def _speed(value):
    """A throughput in MB/s with 3 significant digits at least, no more than needed."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


# the widest compress= is ('blosc-zstd-bitshuffle', 5): 28 characters
_HEADER = (
    f"  {'compress=':<28} {'by':<7} {'file bytes':>12} {'ratio':>6} "
    f"{'write MB/s':>10} {'median':>6} {'read MB/s':>9} {'median':>6}"
)


def _fit(line):
    """`line`, its middle elided if it is longer than :data:`WIDTH` (a long path, a long dtype)."""
    if len(line) <= WIDTH:
        return line
    keep = WIDTH - 3
    return line[: keep // 2] + "..." + line[len(line) - (keep - keep // 2) :]


def _mark(setting):
    if not setting.round_trip:
        return "!"
    return "*" if setting.pareto else " "


def format_table(report: CodecReport) -> str:
    """The report as text that fits :data:`WIDTH` columns.

    Parameters
    ----------
    report : CodecReport

    Returns
    -------
    str
        A heading, one line per setting (``*`` marks the Pareto-optimal
        ones, ``!`` a failed round trip), the notes, then the three
        recommendations as ``compress=`` arguments with their figures.
    """
    lines = [
        _fit(f"bench codecs: {report.path}"),
        _fit(f"object: {report.description}, {report.raw_bytes:,} raw bytes (its compress=0 file)"),
        f"best of {report.repeat} dumps and loads; MB/s = 10^6 raw bytes per second; ratio = raw / file bytes",
        "",
        _HEADER,
    ]
    for setting in report.settings:
        median_write = _median(setting.write_seconds)
        median_read = _median(setting.read_seconds)
        lines.append(
            f"{_mark(setting)} {setting.compress:<28} {setting.impl:<7} {setting.file_bytes:>12,} "
            f"{report.ratio(setting):>6.2f} {_speed(report.mb_per_s(setting.best_write)):>10} "
            f"{_speed(report.mb_per_s(median_write)):>6} {_speed(report.mb_per_s(setting.best_read)):>9} "
            f"{_speed(report.mb_per_s(median_read)):>6}"
        )
    lines.append("")
    lines.append("* Pareto-optimal: no other joblite setting is as small, as fast to write and to read,")
    lines.append("  and better in one.  joblib's rows (joblib.dump/load) are for comparison, never recommended.")
    if any(not setting.round_trip for setting in report.settings):
        lines.append("! the object loaded differs from the one dumped: not recommended")
    lines += [_fit(f"note: {note}") for note in report.notes]
    lines.append("")
    lines.append("recommended:")
    for name in ("speed", "size", "balance"):
        setting = report.recommendations[name]
        lines.append(
            f"  {name:<8} compress={setting.compress}  ratio {report.ratio(setting):.2f}, "
            f"write {_speed(report.mb_per_s(setting.best_write))} MB/s, "
            f"read {_speed(report.mb_per_s(setting.best_read))} MB/s"
        )
        lines.append(f"  {'':<8} {_rule(report, name)}")
    return "\n".join(lines)


def format_markdown(report: CodecReport) -> str:
    """The report as a Markdown table and list, for an issue or a lab notebook.

    Parameters
    ----------
    report : CodecReport

    Returns
    -------
    str
    """
    lines = [
        f"**bench codecs** `{report.path}`: {report.description}, {report.raw_bytes:,} raw bytes; "
        f"best of {report.repeat}; MB/s = 10^6 raw bytes per second",
        "",
        "| Pareto | compress= | by | file bytes | ratio | write MB/s | median | read MB/s | median |",
        "|:-:|:--|:--|--:|--:|--:|--:|--:|--:|",
    ]
    for setting in report.settings:
        lines.append(
            f"| {_mark(setting).strip()} | `{setting.compress}` | {setting.impl} | {setting.file_bytes:,} | "
            f"{report.ratio(setting):.2f} | {_speed(report.mb_per_s(setting.best_write))} | "
            f"{_speed(report.mb_per_s(_median(setting.write_seconds)))} | "
            f"{_speed(report.mb_per_s(setting.best_read))} | "
            f"{_speed(report.mb_per_s(_median(setting.read_seconds)))} |"
        )
    lines.append("")
    lines += [f"- note: {note}" for note in report.notes]
    for name in ("speed", "size", "balance"):
        setting = report.recommendations[name]
        lines.append(f"- **{name}**: `compress={setting.compress}` ({_rule(report, name)})")
    return "\n".join(lines)


def to_json(report: CodecReport, machine: dict[str, Any] | None = None) -> str:
    """The report as one JSON document, schema :data:`SCHEMA` (see the module's docstring).

    Parameters
    ----------
    report : CodecReport
    machine : dict, optional
        The machine's facts (``joblite.bench.report.machine_facts()``);
        null when not given.

    Returns
    -------
    str
    """
    import json

    index = {id(setting): number for number, setting in enumerate(report.settings)}
    settings = []
    for setting in report.settings:
        settings.append(
            {
                "impl": setting.impl,
                "codec": setting.codec,
                "level": setting.level,
                "compress": setting.compress,
                "file_bytes": setting.file_bytes,
                "ratio": report.ratio(setting),
                "write_seconds": setting.write_seconds,
                "read_seconds": setting.read_seconds,
                "write_mb_per_s": report.mb_per_s(setting.best_write),
                "write_mb_per_s_median": report.mb_per_s(_median(setting.write_seconds)),
                "read_mb_per_s": report.mb_per_s(setting.best_read),
                "read_mb_per_s_median": report.mb_per_s(_median(setting.read_seconds)),
                "round_trip": setting.round_trip,
                "pareto": setting.pareto,
            }
        )
    document = {
        "schema": SCHEMA,
        "path": report.path,
        "object": report.description,
        "raw_bytes": report.raw_bytes,
        "repeat": report.repeat,
        "balance_factor": BALANCE_FACTOR,
        "machine": machine,
        "settings": settings,
        "recommendations": {
            name: {"compress": setting.compress, "index": index[id(setting)], "rule": _rule(report, name)}
            for name, setting in report.recommendations.items()
        },
        "notes": report.notes,
    }
    return json.dumps(document, indent=1)


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# -- the command -------------------------------------------------------------------------------


def _positive_int(text):
    import argparse

    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``python -m joblite bench codecs``; its ``func`` is :func:`main`.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The tools of ``bench`` (``add_subparsers`` of its parser).
    """
    import argparse

    parser = subparsers.add_parser(
        "codecs",
        help="which compress= for your data: every codec and level on the object in PATH",
        description="Load the object in PATH (a .npy file, or a joblite or joblib file), dump and "
        "load it with every available codec and level (and joblib's defaults for comparison), "
        "print size ratio, write and read throughput, mark the Pareto-optimal settings and "
        "recommend a compress= for speed, for size and for a balance. Progress goes to stderr.",
    )
    parser.add_argument("path", metavar="PATH", help="a .npy file, or any file joblite.load reads")
    parser.add_argument(
        "--repeat", type=_positive_int, default=3, metavar="N", help="dumps and loads timed per setting (default: 3)"
    )
    parser.add_argument(
        "--codec",
        action="append",
        choices=list(LEVELS),
        metavar="NAME",
        help=f"measure only this codec (repeatable); one of {', '.join(LEVELS)}; default: all",
    )
    # SUPPRESS: the same options given to `bench` before `codecs` are kept
    parser.add_argument(
        "--tmpdir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="where the files are written (default: the system temp folder)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default=argparse.SUPPRESS,
        help=f"print one JSON document ({SCHEMA}) instead of the table",
    )
    output.add_argument(
        "--markdown",
        dest="output",
        action="store_const",
        const="markdown",
        default=argparse.SUPPRESS,
        help="print the table as Markdown",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace, file: TextIO | None = None) -> int:
    """Run ``python -m joblite bench codecs`` with its parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        With ``path``, ``repeat``, ``codec`` (list of str or None), and
        optionally ``tmpdir`` (str or None; else ``JOBLITE_BENCH_TMPDIR``,
        then the system's temporary folder) and ``output`` (``'json'``,
        ``'markdown'`` or None for the table).
    file : file-like, optional
        Where to print the report; ``sys.stdout`` by default.  Progress and
        errors go to stderr.

    Returns
    -------
    int
        Exit status: 0; 2 for a bad argument: a file that cannot be loaded,
        a `tmpdir` that is not a folder, or ``bench`` options that do not
        apply here (``--compare``, ``--plot``; the message, on stderr, names
        it); 1 when the uncompressed round trip does not give the object back
        (the message names the path and why), or when any round trip gave back
        a different object (the report is printed).
    """
    from .cli import refuse_bench_only_options

    if refuse_bench_only_options(args, "codecs"):
        return 2
    tmpdir = getattr(args, "tmpdir", None) or os.environ.get("JOBLITE_BENCH_TMPDIR") or None
    if tmpdir is not None and not os.path.isdir(tmpdir):
        print(f"python -m joblite bench codecs: error: --tmpdir {tmpdir}: not a folder", file=sys.stderr)
        return 2
    try:
        value = load_user_file(args.path)
    except ValueError as exc:
        print(f"python -m joblite bench codecs: error: {exc}", file=sys.stderr)
        return 2

    def progress(line):
        print(line, file=sys.stderr, flush=True)

    try:
        report = measure(value, args.path, repeat=args.repeat, tmpdir=tmpdir, codecs=args.codec, progress=progress)
    except ValueError as exc:  # e.g. not even the uncompressed round trip gave the object back
        print(f"python -m joblite bench codecs: error: {args.path}: {exc}", file=sys.stderr)
        return 1
    output = getattr(args, "output", None)
    if output == "json":
        from .report import machine_facts

        text = to_json(report, machine_facts())
    elif output == "markdown":
        text = format_markdown(report)
    else:
        text = format_table(report)
    print(text, file=file or sys.stdout)
    return 0 if all(setting.round_trip for setting in report.settings) else 1
