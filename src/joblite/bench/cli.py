"""The command ``python -m joblite bench``: its options, the registry of sections, the run.

:func:`add_bench_parser` declares the command for ``python -m joblite``;
:func:`main` runs it: the sections chosen (:data:`SECTIONS`, each given the
same :class:`~joblite.bench.sections.Context`), then the report on stdout,
a table or one JSON document (:mod:`joblite.bench.report`).

Figures are ratios against baselines measured in the same process and run
(see ``DESIGN.md``): absolute times depend on the machine, ratios much less.
The report and the sections are imported when the command runs, so that
building the parser of ``python -m joblite`` stays cheap.
"""

import importlib
import importlib.util
import os
import sys

__all__ = ["DEFAULT_SECTIONS", "SECTIONS", "add_bench_parser", "main", "run"]

#: Section name -> (module of :mod:`joblite.bench.sections`, name of its function
#: ``section(context) -> list of Row``); run in this order.
SECTIONS = {
    "hashing": ("hashing", "hashing_section"),
    "persistence": ("persistence", "persistence_section"),
    "memory": ("memory", "memory_section"),
    "parallel": ("parallel", "parallel_section"),
    "import": ("import_time", "import_section"),
}
if importlib.util.find_spec("distributed") is not None:
    SECTIONS["distributed"] = ("distributed", "distributed_section")

#: The sections run when none is named: all but ``distributed``, which starts a
#: cluster of worker processes and takes up to a minute (``--section distributed``).
DEFAULT_SECTIONS = [name for name in SECTIONS if name != "distributed"]


def add_bench_parser(subparsers):
    """Declare ``python -m joblite bench`` and its options; its ``func`` is :func:`main`.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``ArgumentParser.add_subparsers``.
    """
    from . import codecs, function

    parser = subparsers.add_parser(
        "bench",
        help="benchmark joblite against joblib and dask on real workloads",
        description="Time joblite against its baselines (joblib, dask tokenize, numpy, pickle) "
        "on seeded workloads measured in the same run, and print a "
        "table of times, GiB/s and ratios. Progress goes to stderr.",
    )
    parser.add_argument("--quick", action="store_true", help="small workloads and few repeats (a few seconds)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        help="print one JSON document instead of the tables",
    )
    output.add_argument(
        "--markdown", dest="output", action="store_const", const="markdown", help="print the tables as Markdown"
    )
    parser.add_argument(
        "--section",
        action="append",
        choices=list(SECTIONS),
        metavar="NAME",
        help=f"run only this section (repeatable); one of {', '.join(SECTIONS)}; default: all but distributed",
    )
    parser.add_argument(
        "--tmpdir", metavar="DIR", help="where benchmark files are written (default: the system temp folder)"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="JSON",
        help="OLD.json [NEW.json]: compare two runs recorded with --json (or OLD with a run made now, "
        "of the sections asked); flags figures that changed beyond the runs' spread; exit status 1 "
        "on a regression",
    )
    parser.add_argument(
        "--plot",
        metavar="DIR",
        help="also draw the run (one PNG per section), or with --compare the changes (compare.png), "
        "into DIR; needs matplotlib: pip install 'joblite[plot]'",
    )
    parser.set_defaults(func=main)
    # Tools that measure the user's own data and function: `bench TOOL ...`.
    tools = parser.add_subparsers(dest="tool", metavar="TOOL", required=False)
    codecs.add_parser(tools)
    function.add_parser(tools)


def refuse_bench_only_options(args, tool):
    """Print an error and return True when `args` carries ``bench`` options that `tool` does not use.

    ``python -m joblite bench --compare OLD codecs PATH`` parses, since the
    options of ``bench`` come before its tool: this says that they do not
    apply, rather than ignoring them.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``python -m joblite bench TOOL``.
    tool : str
        The tool's name, for the message.

    Returns
    -------
    bool
    """
    given = [f"--{name}" for name in ("compare", "plot", "section") if getattr(args, name, None)]
    given += ["--quick"] if getattr(args, "quick", False) else []
    if not given:
        return False
    print(
        f"python -m joblite bench {tool}: {', '.join(given)} apply to the bench's sections, not here", file=sys.stderr
    )
    return True


def run(sections=None, quick=False, output="table", file=None, tmpdir=None):
    """Run benchmark sections and print the results.

    Parameters
    ----------
    sections : list of str, optional
        Names from :data:`SECTIONS`, run in the given order; those of
        :data:`DEFAULT_SECTIONS` by default.
    quick : bool, default False
        Small workloads and few repeats.
    output : {'table', 'json', 'markdown'}, default 'table'
        What to print: tables that fit a terminal of
        :data:`~joblite.bench.report.WIDTH` columns, one JSON document
        (:func:`~joblite.bench.report.to_json`), or Markdown tables.
    file : file-like, optional
        Where to print; ``sys.stdout`` by default.  Progress goes to stderr.
    tmpdir : str, optional
        Where sections that write files (persistence, memory) make their temporary
        folder; the system's temporary directory by default.  The parallel
        section puts its memmap folders there when it is given.

    Returns
    -------
    list of Row
        The measurements printed.

    Raises
    ------
    ValueError
        If a section name or `output` is unknown.
    """
    if output not in ("table", "json", "markdown"):
        raise ValueError(f"unknown output {output!r}; choose from 'table', 'json', 'markdown'")
    names = list(sections) if sections else list(DEFAULT_SECTIONS)
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown benchmark section(s) {unknown}; choose from {list(SECTIONS)}")
    from .report import format_markdown, format_table, machine_facts, to_json
    from .sections import Context

    facts = machine_facts()
    context = Context(quick=quick, tmpdir=tmpdir)
    rows = []
    for name in names:
        module, function = SECTIONS[name]
        rows += getattr(importlib.import_module(f"{__package__}.sections.{module}"), function)(context)
    render = {"table": format_table, "json": to_json, "markdown": format_markdown}[output]
    text = render(rows, facts)
    print(text, file=file or sys.stdout)
    return rows


def main(args):
    """Run ``python -m joblite bench`` with its parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        With ``quick``, ``output`` (None for the table, ``'json'`` or
        ``'markdown'``), ``section`` (list of str or None) and
        optionally ``tmpdir`` (str or None; when absent or None, the
        ``JOBLITE_BENCH_TMPDIR`` environment variable, then the system's
        temporary directory).

    Returns
    -------
    int
        Exit status: 0, or with ``compare`` (a list of paths) that of :func:`compare`.
    """
    tmpdir = getattr(args, "tmpdir", None) or os.environ.get("JOBLITE_BENCH_TMPDIR") or None
    plot = getattr(args, "plot", None)
    if plot is not None:
        from .plot import require_matplotlib

        try:
            require_matplotlib()  # before a run of minutes, not after
        except RuntimeError as exc:
            print(f"python -m joblite bench --plot: {exc}", file=sys.stderr)
            return 2
    if getattr(args, "compare", None):
        return compare(
            args.compare, sections=args.section, quick=args.quick, tmpdir=tmpdir, output=args.output, plot=plot
        )
    rows = run(sections=args.section, quick=args.quick, output=args.output or "table", tmpdir=tmpdir)
    if plot is not None:
        from .plot import plot_sections

        for path in plot_sections(rows, plot):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def compare(paths, sections=None, quick=False, tmpdir=None, output=None, file=None, plot=None):
    """Compare two recorded runs, or one recorded run with a run made now, and print the changes.

    Parameters
    ----------
    paths : list of str
        ``[OLD]`` or ``[OLD, NEW]``: JSON documents of ``python -m joblite
        bench --json``.  With OLD alone, the sections asked are run now
        (as :func:`run`, its report going to stderr) and compared with it.
    sections, quick, tmpdir
        As for :func:`run`, for the run made now.
    output : None
        Only the comparison's table is printed (``--json`` and
        ``--markdown`` do not apply).
    file : file-like, optional
        Where to print; ``sys.stdout`` by default.
    plot : str, optional
        A folder where ``compare.png`` is drawn (:func:`~joblite.bench.plot.plot_comparison`).

    Returns
    -------
    int
        Exit status: 1 when a figure regressed beyond the runs' spread
        (:func:`~joblite.bench.compare.compare_runs`), else 0; 2 for a bad
        argument or file (a message on stderr names it).
    """
    from .compare import compare_runs, format_changes
    from .report import machine_facts, rows_from_json

    if output is not None:
        print(f"python -m joblite bench: --compare prints a table; --{output} does not apply", file=sys.stderr)
        return 2
    if len(paths) > 2:
        print(f"python -m joblite bench: --compare takes OLD.json [NEW.json], got {len(paths)} files", file=sys.stderr)
        return 2
    runs = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as stream:
                runs.append(rows_from_json(stream.read()))
        except (OSError, ValueError) as exc:
            print(f"python -m joblite bench: cannot read the run {path!r}: {exc}", file=sys.stderr)
            return 2
    if len(runs) == 1:
        runs.append((run(sections, quick, file=sys.stderr, tmpdir=tmpdir), machine_facts()))
    (old_rows, _), (new_rows, new_facts) = runs
    changes = compare_runs(old_rows, new_rows)
    print(format_changes(changes, new_facts), file=file or sys.stdout)
    if plot is not None:
        from .plot import plot_comparison

        print(f"wrote {plot_comparison(changes, plot)}", file=sys.stderr)
    return 1 if any(change.verdict == "regressed" for change in changes) else 0
