"""The report of the benchmark: its rows, the machine's facts, the table and the JSON document.

A section returns one :class:`Row` per (case, implementation), with the
ratios against the baselines of the same run already computed (the helpers
here compute them alike for every section).  :func:`format_table` and
:func:`to_json` render the rows of all sections; progress lines go to stderr
(:func:`progress`) so that the report alone is on stdout.
"""

import dataclasses
import json
import os
import platform
import re
import sys
import textwrap
from typing import Optional

__all__ = [
    "GIB",
    "MIB",
    "PURE_TARGETS",
    "Row",
    "add_speedups",
    "SCHEMA",
    "WIDTH",
    "format_markdown",
    "format_table",
    "gib_per_s",
    "format_rst",
    "layout_table",
    "machine_facts",
    "progress",
    "pure_twin_targets",
    "ratio",
    "rows_from_json",
    "section_tables",
    "size_label",
    "to_json",
    "with_ext",
]

GIB = float(1 << 30)
MIB = 1 << 20

#: The JSON document's layout and its version (:func:`to_json`); a change of its keys or of
#: their meaning gets a new version.
SCHEMA = "joblite.bench/1"

#: Columns of the terminal the text report fits (:func:`format_table`).
WIDTH = 100

#: The goal of the pure-Python twin when it is the active one (the issues' goals are for the
#: compiled twin): not slower than joblib.
PURE_TARGETS = {"vs_joblib": 1.0}


@dataclasses.dataclass
class Row:
    """One measurement: a case timed with one implementation.

    Attributes
    ----------
    section : str
        Name of the section that produced the row, e.g. ``'hashing'``.
    name : str
        The case, e.g. ``'array 512 MiB, C order'``.
    impl : str
        The implementation timed, e.g. ``'joblite'``, ``'joblib'``.
    seconds : float or None
        Best time of one call, in seconds; ``None`` when the implementation is
        not available (the table prints ``-``).
    nbytes : int or None
        Bytes of array data processed by one call, for throughput figures.
    gib_per_s : float or None
        ``nbytes / seconds`` in GiB/s (GiB = 2**30 bytes), when `nbytes` is set.
    ratios : dict of str to float
        Figures relative to baselines of the same run, e.g. ``'vs_joblib'``:
        how many times faster than ``joblib.hash``.
    targets : dict of str to float
        Goals from the issue for some ratios: a positive value is a minimum
        (the ratio must be at least that), a negative value ``-x`` a maximum
        (the ratio or time must be at most ``x``).
    note : str
        Free text, e.g. why an implementation is missing.
    spread : list of float or None
        ``[min, median, max]`` seconds of the measures whose best is
        `seconds`; taken from `seconds` when it is a
        :class:`~joblite.bench.timing.Timing` (then stored as a plain float).
        ``None`` for a single measure.
    """

    section: str
    name: str
    impl: str
    seconds: Optional[float] = None
    nbytes: Optional[int] = None
    gib_per_s: Optional[float] = None
    ratios: dict = dataclasses.field(default_factory=dict)
    targets: dict = dataclasses.field(default_factory=dict)
    note: str = ""
    spread: Optional[list] = None

    def __post_init__(self):
        samples = getattr(self.seconds, "samples", None)
        if samples is not None:
            if self.spread is None and len(samples) > 1:
                self.spread = self.seconds.spread
            self.seconds = float(self.seconds)

    def meets_targets(self):
        """Whether every ratio with a target reaches it.

        Returns
        -------
        bool or None
            ``None`` when the row has no target or a targeted ratio is missing.
        """
        if not self.targets:
            return None
        outcomes = [_figure_met(self.ratios.get(key), goal) for key, goal in self.targets.items()]
        return None if None in outcomes else all(outcomes)


# -- figures --------------------------------------------------------------------------------


def gib_per_s(nbytes, seconds):
    """`nbytes` per `seconds` in GiB/s; ``None`` when either is missing (or `seconds` is 0)."""
    if nbytes is None or not seconds:
        return None
    return nbytes / GIB / seconds


def ratio(numerator, denominator):
    """``numerator / denominator``; ``None`` when either is missing or `denominator` is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def add_speedups(rows, baselines, targets):
    """Set joblite's ratios ``key: baseline seconds / joblite seconds`` and its targets.

    Parameters
    ----------
    rows : list of Row
        The rows of one case, one per implementation.
    baselines : dict of str to str
        Ratio key -> implementation of the baseline, e.g. ``{'vs_joblib': 'joblib'}``;
        a baseline without a row is left out.
    targets : dict of str to float
        Given to joblite's row (see :attr:`Row.targets`).
    """
    by_impl = {row.impl: row for row in rows}
    row = by_impl.get("joblite")
    if row is None or row.seconds is None:
        return
    for key, base in baselines.items():
        if base in by_impl:
            row.ratios[key] = ratio(by_impl[base].seconds, row.seconds)
    row.targets = dict(targets)


def size_label(nbytes):
    """``'1 GiB'`` for whole GiB, else ``'<n> MiB'``."""
    return f"{nbytes // (1 << 30)} GiB" if nbytes >= GIB and not nbytes % (1 << 30) else f"{nbytes // MIB} MiB"


def progress(message):
    """Print a progress line to stderr (the report goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def with_ext():
    """Whether joblite's compiled twin is the active one (the issues' goals are for it)."""
    import joblite

    return bool(joblite.__with_ext__)


def pure_twin_targets(rows, kept=()):
    """When the pure-Python twin is the active one, aim joblite's targeted rows at :data:`PURE_TARGETS`.

    The issues' goals are for the compiled twin; the pure twin's is not to be
    slower than joblib.  Nothing changes when the compiled twin is active.

    Parameters
    ----------
    rows : list of Row
        Changed in place.
    kept : iterable of str
        Ratio keys whose targets stay (goals that are not about speed, e.g.
        memory or bytes sent).
    """
    if with_ext():
        return
    kept = set(kept)
    for row in rows:
        if row.impl == "joblite" and row.targets:
            targets = {key: value for key, value in row.targets.items() if key in kept}
            targets.update(PURE_TARGETS)
            row.targets = targets


# -- machine facts --------------------------------------------------------------------------


def machine_facts():
    """Collect facts about the machine and the software measured.

    Returns
    -------
    dict
        CPU counts, platform, Python, numpy, joblite (version, twin in use,
        twins available), joblib, dask and xxhash versions (``None`` when not
        installed).
    """
    import joblite
    from joblite._impl import available_twins

    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cpus = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": _version("numpy"),
        "joblite": joblite.__version__,
        "joblite_with_ext": bool(joblite.__with_ext__),
        "joblite_twins": available_twins(),
        "joblib": _version("joblib"),
        "dask": _version("dask"),
        "xxhash": _version("xxhash"),
    }


def _version(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


# -- the table ------------------------------------------------------------------------------

_IMPL_LABELS = {
    "pure": "joblite pure twin",
    "tokenize": "dask tokenize",
    "pickle": "pickle p5",
    "executor": "ProcessPoolExecutor.map",
    "loop": "plain loop",
}

# (ratio key, column title, meaning); the table shows the columns its rows use.
_RATIO_COLUMNS = [
    ("vs_joblib", "x joblib", "times faster than joblib (compressed cases: than joblib zlib-3)"),
    ("vs_tokenize", "x tokenize", "times faster than dask tokenize"),
    ("vs_numpy", "x numpy", "times faster than np.save / np.load"),
    ("vs_memory_read", "/ a.sum()", "GiB/s over the a.sum() memory-read GiB/s"),
    ("time_vs_joblib", "t / joblib", "import time over joblib's, interpreter start-up subtracted (lower is better)"),
    ("time_vs_pickle", "t / pickle", "time over pickle protocol 5's (lower is better)"),
    ("ms", "ms", "milliseconds per call (memory-mapped loads)"),
    ("us_per_call", "µs/call", "microseconds per call"),
    (
        "vs_small_store",
        "t / 1k store",
        "time over the same operation's on a 1,000-entry store of the same function (lower is better)",
    ),
    ("s", "s", "seconds for the whole command or operation, once"),
    ("us_per_entry", "µs/entry", "microseconds per entry (building a store: wall time over entries)"),
    ("compression_ratio", "raw/file", "compression ratio: array bytes over file bytes"),
    ("size_vs_joblib", "raw/file / joblib", "compression ratio over joblib zlib-3's on the same data"),
    (
        "vs_blosc",
        "x blosc",
        "times faster than Blosc (lz4, shuffle, 2 threads) end to end with a file: compress and write, "
        "or read and decompress; the median over the rounds of Blosc's time over joblite's in the same round",
    ),
    ("vs_blosc_low", "min", "the lowest of the rounds' ratios that x blosc is the median of"),
    ("vs_blosc_high", "max", "the highest of the rounds' ratios that x blosc is the median of"),
    (
        "vs_blosc_process_low",
        "worst set",
        "the lowest of the sets of processes' own medians, when several share the rounds "
        "(each set: one fresh process per implementation)",
    ),
    ("size_vs_blosc", "raw/file / blosc", "compression ratio over Blosc's (lz4 level 5, shuffle) on the same data"),
    ("peak_over_result", "peak / result", "peak memory of the load in a fresh process, over the size of its result"),
    (
        "time_vs_executor",
        "t / executor",
        "time over the stdlib ProcessPoolExecutor.map's, chunksize=1000 on the tiny tasks, "
        "ceil(tasks / 8) (multiprocessing's heuristic, 4 chunks a worker) on the trivial and light ones "
        "(lower is better)",
    ),
    ("time_vs_loop", "t / loop", "time over the plain loop's [f(x) for x in xs] in the caller (lower is better)"),
    (
        "mem_over_array",
        "mem / array",
        "peak memory of a call in a fresh process (the array plus what the call adds to the caller, "
        "the workers and the memmap folder) over the array's size",
    ),
    (
        "total_mem_over_array",
        "all mem / array",
        "the same with the interpreters' own memory (caller and workers before the call) counted",
    ),
    ("time_vs_map", "t / map", "time over the chunked dask client.map's (lower is better)"),
    (
        "arrived_mib",
        "MiB in",
        "MiB of data that arrived in the dask workers' memory during the call (scattered by the "
        "caller, or copied from another worker)",
    ),
    ("copies_per_worker", "copies/worker", "those bytes over the array's size times the number of workers"),
]


def section_tables(rows, facts):
    """Lay rows out as one table per section, each with only the columns its rows use.

    Parameters
    ----------
    rows : list of Row
        The measurements, in print order.
    facts : dict
        From :func:`machine_facts` (names the twin measured).

    Returns
    -------
    list of (str, list of str, list of list of str)
        Per section, in order of first appearance: its name, the column titles
        and the rows' cells (strings; ``'-'`` for a missing figure).
    """
    tables = []
    for section, members in _sections(rows):
        columns, with_rate, with_target = _used_columns(members)
        header = ["case", "impl", "time"] + (["GiB/s"] if with_rate else [])
        header += [title for _, title, _ in columns] + (["target"] if with_target else [])
        cells = []
        for row in members:
            line = [row.name, _impl_label(row.impl, facts), _format_seconds(row.seconds)]
            if with_rate:
                line.append(_format_number(row.gib_per_s) if row.nbytes is not None else "")
            line += [_format_number(row.ratios.get(key), "") if key in row.ratios else "" for key, _, _ in columns]
            if with_target:
                line.append(_format_target(row))
            cells.append(line)
        tables.append((section, header, cells))
    return tables


def _legend(rows):
    """The meaning of every ratio column the rows use, and of the target column."""
    lines = [f"{title}: {meaning};" for key, title, meaning in _RATIO_COLUMNS if any(key in row.ratios for row in rows)]
    lines.append("target: the issues' goal for the row's figures and whether it is met (>= a minimum, <= a maximum).")
    return lines


def format_table(rows, facts, width=WIDTH):
    """Render rows and machine facts as plain text that fits `width` columns.

    Parameters
    ----------
    rows : list of Row
        The measurements, in print order.
    facts : dict
        From :func:`machine_facts`.
    width : int, default :data:`WIDTH`
        Columns of the terminal; long case names, the key and the notes wrap.

    Returns
    -------
    str
        Machine facts; then per section a title line with its verdict (how
        many targeted figures are met) and a table: per implementation of a
        case its time (and GiB/s), then one line per figure (a ratio against
        a baseline of the same run), its value and target; then a key to the
        figures and the notes.
    """
    lines = _wrapped(_format_facts(facts).splitlines(), width)
    for section, members in _sections(rows):
        lines += ["", _fit(f"[{section}] {_verdict(members)}", width)]
        lines += _compact_table(members, facts, width)
    lines.append("")
    lines += _wrapped(_legend(rows), width)
    notes = _notes(rows, facts)
    if notes:
        lines += ["", "notes:"] + _wrapped([f"  {note}" for note in notes], width)
    return "\n".join(lines)


def format_markdown(rows, facts):
    """Render rows and machine facts as Markdown, for an issue or a lab notebook.

    Parameters
    ----------
    rows : list of Row
        The measurements, in print order.
    facts : dict
        From :func:`machine_facts`.

    Returns
    -------
    str
        The machine facts as a list; per section a heading, its verdict and a
        table with only the columns the section uses (those of
        :func:`section_tables`); then the key to the columns and the notes.
    """
    lines = [f"- {line}" for line in _format_facts(facts).splitlines()]
    tables = dict((section, (header, cells)) for section, header, cells in section_tables(rows, facts))
    for section, members in _sections(rows):
        header, cells = tables[section]
        lines += ["", f"### {section}", "", _verdict(members), ""]
        lines.append("| " + " | ".join(_markdown_text(title) for title in header) + " |")
        lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
        lines += ["| " + " | ".join(_markdown_text(cell) for cell in line) + " |" for line in cells]
    lines += ["", "Columns:", ""] + [f"- {_markdown_text(text)}" for text in _legend(rows)]
    notes = _notes(rows, facts)
    if notes:
        lines += ["", "Notes:", ""] + [f"- {_markdown_text(note)}" for note in notes]
    return "\n".join(lines) + "\n"


def _notes(rows, facts):
    """``'<case>, <implementation>: <note>'`` for each row with a note."""
    return [f"{row.name}, {_impl_label(row.impl, facts)}: {row.note}" for row in rows if row.note]


def _markdown_text(text):
    # Escape what Markdown would take for markup inside a table cell.
    return re.sub(r"([\\`*_|<>\[\]#])", r"\\\1", text)


def _sections(rows):
    """(section, its rows) in order of first appearance."""
    sections = {}
    for row in rows:
        sections.setdefault(row.section, []).append(row)
    return list(sections.items())


def _figure_met(value, goal):
    """Whether `value` reaches `goal` (see :attr:`Row.targets`); None when it is missing."""
    if value is None:
        return None
    return value >= goal if goal >= 0 else value <= -goal


def _verdict(rows):
    """One line: how many targeted figures of `rows` are met, missed, not measured."""
    outcomes = [_figure_met(row.ratios.get(key), goal) for row in rows for key, goal in row.targets.items()]
    if not outcomes:
        return "no targets"
    met, missed = outcomes.count(True), outcomes.count(False)
    unknown = len(outcomes) - met - missed
    text = f"{met} of {len(outcomes)} targets met"
    if missed:
        text += f", {missed} MISSED"
    if unknown:
        text += f", {unknown} not measured"
    return text


def _compact_table(rows, facts, width):
    """Lines of one section's table: a line per implementation, then one per further figure."""
    columns, with_rate, with_target = _used_columns(rows)
    header = ["case", "impl", "time"] + (["GiB/s"] if with_rate else [])
    header += (["figure", "value"] if columns else []) + (["target"] if with_target else [])
    cells = []
    previous = None
    for row in rows:
        lead = [row.name if row.name != previous else "", _impl_label(row.impl, facts), _format_seconds(row.seconds)]
        if with_rate:
            lead.append(_format_number(row.gib_per_s) if row.nbytes is not None else "")
        previous = row.name
        figures = [(key, title) for key, title, _ in columns if key in row.ratios] or [(None, "")]
        for index, (key, title) in enumerate(figures):
            line = list(lead) if index == 0 else [""] * len(lead)
            if columns:
                line += [title, _format_number(row.ratios.get(key)) if key else ""]
            if with_target:
                line.append(_format_goal(key, row.targets[key], row.ratios.get(key)) if key in row.targets else "")
            cells.append(line)
    left = {1, header.index("figure")} if columns else {1}  # impl and figure read left to right
    if with_target:
        left.add(len(header) - 1)
    return layout_table(header, cells, width, left)


def layout_table(header, cells, width, left=frozenset({1})):
    """Lines of a text table whose first column (the case) wraps to fit `width` columns.

    Parameters
    ----------
    header : list of str
        Column titles.
    cells : list of list of str
        The rows; an empty first cell continues the case above (its wrapped
        name goes on there).
    width : int
        Columns of the terminal.
    left : set of int
        Columns aligned left besides the first; the others align right.

    Returns
    -------
    list of str
    """
    widths = [max(len(line[i]) for line in [header] + cells) for i in range(1, len(header))]
    longest = max(len(line[0]) for line in [header] + cells)
    case_width = min(longest, max(16, width - sum(widths) - 2 * len(widths)))
    lines = []
    pending = []  # the rest of a wrapped case name, shown on the case's next lines
    for line in [header] + cells:
        if line[0]:
            lines += pending
            pending = textwrap.wrap(line[0], case_width, subsequent_indent="  ")
        name = pending.pop(0) if pending else ""
        rest = [cell.ljust(w) if i + 1 in left else cell.rjust(w) for i, (cell, w) in enumerate(zip(line[1:], widths))]
        lines.append("  ".join([name.ljust(case_width)] + rest).rstrip())
    return lines + pending


def _used_columns(rows):
    """The ratio columns `rows` use, and whether any has a throughput, and any a target."""
    columns = [column for column in _RATIO_COLUMNS if any(column[0] in row.ratios for row in rows)]
    return columns, any(row.nbytes is not None for row in rows), any(row.targets for row in rows)


def _goal_text(key, goal):
    if key in ("us_per_call", "s"):
        return f"<={-goal:g} {'µs' if key == 'us_per_call' else 's'}"
    return f"<={-goal:g}" if goal < 0 else f">={goal:g}"


def _met_word(met):
    return "?" if met is None else ("ok" if met else "MISSED")


def _format_goal(key, goal, value):
    return f"{_goal_text(key, goal)} {_met_word(_figure_met(value, goal))}"


def _wrapped(lines, width):
    """Each line wrapped to `width`; continuations indented by two spaces more than the line."""
    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()))
        out += textwrap.wrap(line, width, initial_indent="", subsequent_indent=indent + "  ") or [""]
    return out


def _fit(text, width):
    return text if len(text) <= width else text[: width - 1] + "…"


def format_rst(rows, facts, underline="-"):
    """Render rows and machine facts as reStructuredText: the facts, then a titled table per section.

    Used by the documentation's performance page, which renders the JSON
    document of a run (``python -m joblite bench --json``) with it.

    Parameters
    ----------
    rows : list of Row
        The measurements, in print order.
    facts : dict
        From :func:`machine_facts`.
    underline : str, default '-'
        The character that underlines each section's title.

    Returns
    -------
    str
        reStructuredText: the machine facts as a literal block, then per
        section a title and a ``list-table``, then the key to the columns and
        the notes.
    """
    lines = ["::", ""] + ["    " + line for line in _format_facts(facts).splitlines()] + [""]
    for section, header, cells in section_tables(rows, facts):
        title = section.capitalize()
        lines += [title, underline * len(title), "", ".. list-table::", "   :header-rows: 1", ""]
        for line in [header] + cells:
            lines.append(f"   * - {_rst_text(line[0])}")
            lines += [f"     - {_rst_text(cell)}".rstrip() for cell in line[1:]]
        lines.append("")
    lines += ["Columns", underline * len("Columns"), ""]
    lines += [f"- {_rst_text(text)}" for text in _legend(rows)]
    notes = _notes(rows, facts)
    if notes:
        lines += ["", "Notes:", ""] + [f"- {_rst_text(note)}" for note in notes]
    return "\n".join(lines) + "\n"


def _rst_text(text):
    # Backslash-escape reStructuredText's markup characters.
    return re.sub(r"([\\`*_|<>\[\]:#+=-])", r"\\\1", text)


def rows_from_json(text):
    """Read back a JSON document of :func:`to_json`.

    Parameters
    ----------
    text : str
        The document.

    Returns
    -------
    (list of Row, dict)
        The rows and the machine facts.

    Raises
    ------
    ValueError
        If `text` is not such a document (names the missing or unknown key).
    """
    document = json.loads(text)
    # Runs recorded before the schema field had this same layout.
    if not isinstance(document, dict) or set(document) - {"schema"} != {"machine", "rows"}:
        raise ValueError("a benchmark JSON document is an object with the keys 'schema', 'machine' and 'rows'")
    if document.get("schema", SCHEMA) != SCHEMA:
        raise ValueError(
            f"this joblite reads benchmark JSON documents of schema {SCHEMA!r}, not {document['schema']!r}"
        )
    names = {field.name for field in dataclasses.fields(Row)}
    rows = []
    for index, item in enumerate(document["rows"]):
        item = {key: value for key, value in item.items() if key != "meets_targets"}
        if "schema" not in document:
            item.setdefault("spread", None)  # runs recorded before the schema field kept no spread
        if set(item) != names:
            raise ValueError(
                f"row {index} of the benchmark JSON document has the keys {sorted(item)}; expected {sorted(names)}"
            )
        rows.append(Row(**item))
    return rows, document["machine"]


def _format_seconds(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _format_number(value, suffix=""):
    return "-" if value is None else f"{value:.3g}{suffix}"


def _impl_label(impl, facts):
    if impl == "joblite":
        return "joblite (ext)" if facts.get("joblite_with_ext") else "joblite (pure)"
    return _IMPL_LABELS.get(impl, impl)


def _format_target(row):
    if not row.targets:
        return ""
    goals = " ".join(_goal_text(key, goal) for key, goal in row.targets.items())
    return f"{goals} {_met_word(row.meets_targets())}"


def _format_facts(facts):
    twin = "compiled (ext)" if facts["joblite_with_ext"] else "pure-Python"
    return "\n".join(
        [
            f"machine: {facts['cpu_count']} CPUs ({facts['usable_cpus']} usable), {facts['platform']}",
            f"python {facts['python']} ({facts['python_implementation']}), "
            f"numpy {facts['numpy']}, joblib {facts['joblib'] or '-'}, "
            f"dask {facts['dask'] or '-'}, xxhash {facts['xxhash'] or '-'}",
            f"joblite {facts['joblite']}: {twin} twin in use "
            f"(__with_ext__={facts['joblite_with_ext']}), "
            f"twins available: {', '.join(facts['joblite_twins'])}",
        ]
    )


# -- the JSON document ----------------------------------------------------------------------


def to_json(rows, facts):
    """Render rows and machine facts as one JSON document.

    Parameters
    ----------
    rows : list of Row
        The measurements.
    facts : dict
        From :func:`machine_facts`.

    Returns
    -------
    str
        An object ``{"schema": SCHEMA, "machine": {...}, "rows": [...]}``; each
        row has ``section``, ``name``, ``impl``, ``seconds``, ``nbytes``,
        ``gib_per_s``, ``ratios``, ``targets``, ``note``, ``spread`` and
        ``meets_targets``; missing values are ``null``.  The docs' Tuning guide
        describes every field.
    """
    out = []
    for row in rows:
        item = dataclasses.asdict(row)
        item["meets_targets"] = row.meets_targets()
        out.append(item)
    return json.dumps({"schema": SCHEMA, "machine": facts, "rows": out}, indent=2)
