"""``python -m joblite cache``: inspect and maintain the cache folder of a ``Memory``.

The subcommands (``PATH`` is the folder given to ``Memory(location)``, or its
``joblite`` sub-folder)::

    info   PATH                                  size and entries per function
    ls     PATH [--function F] [--sort size|age|name] [--limit N]
    prune  PATH [--bytes-limit 10G] [--items-limit N] [--age-limit 7d]
    clear  PATH [--function F] [--yes]
    verify PATH [--function F] [--dry-run] [--timeout S]

Each takes ``--json`` to print one JSON document (sizes in bytes, times in
seconds since the epoch) instead of tables.  Exit status (:data:`EXIT_STATUSES`):

0  success: for ``verify``, no entry is corrupt;
1  ``verify`` found corrupt entries (or entries that crash or hang the loader);
2  nothing was done: PATH holds no joblite store, ``--function`` names no
   function or several, an argument is not valid, or ``clear`` was not
   confirmed;
3  the store could not be read or written: an entry or folder that cannot be
   read, an entry ``prune`` or ``verify`` could not remove (3 wins over 1).

This module parses arguments and prints; the work is done by the functions
of :mod:`joblite.store.maintenance`, imported when a subcommand runs: building
the parser imports neither the store nor the persistence code.
"""

import argparse
import json
import sys
import time

from .._validate import parse_age, parse_size
from .base import describe_os_error
from .options import ENTRY_TIMEOUT, SORTS, TOP

__all__ = ["EXIT_STATUSES", "add_cache_parser", "format_size"]

#: The exit statuses of ``python -m joblite cache`` (see the module docstring).
EXIT_OK, EXIT_CORRUPT, EXIT_USAGE, EXIT_IO = 0, 1, 2, 3
EXIT_STATUSES = {
    EXIT_OK: "success (verify: no corrupt entry)",
    EXIT_CORRUPT: "verify found corrupt entries (or entries that crash or hang the loader)",
    EXIT_USAGE: "nothing done: no store at PATH, bad --function or arguments, clear not confirmed",
    EXIT_IO: "the store could not be read or written (an entry could not be read or removed)",
}


def format_size(size):
    """``size`` bytes as ``'512 B'``, ``'1.5 KiB'``, ``'3.0 MiB'`` ... (powers of 1024).

    Parameters
    ----------
    size : int
        Bytes.

    Returns
    -------
    str
    """
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"


def _count(number, noun):
    if number != 1:
        noun = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{number} {noun}"


def _format_time(seconds):
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _table(headers, rows, right=()):
    """Print `rows` (lists of str) under `headers`, the columns in `right` aligned right."""
    widths = [max([len(header)] + [len(row[column]) for row in rows]) for column, header in enumerate(headers)]

    def line(cells):
        return "  ".join(
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    print(line(headers))
    for row in rows:
        print(line(row))


def _entry_table(entries):
    _table(
        ["FUNCTION", "ARGS_ID", "SIZE", "LAST ACCESS"],
        [
            [entry["func_id"], entry["args_id"], format_size(entry["size"]), _format_time(entry["last_access"])]
            for entry in entries
        ],
        right=(2,),
    )


def _print_info(report):
    print(f"cache at {report['location']} (store {report['root']})")
    total = report["total"]
    if report["functions"]:
        print()
        _table(
            ["FUNCTION", "ENTRIES", "SIZE", "OLDEST ACCESS", "NEWEST ACCESS"],
            [
                [
                    row["func_id"],
                    str(row["entries"]),
                    format_size(row["size"]),
                    _format_time(row["oldest_access"]),
                    _format_time(row["newest_access"]),
                ]
                for row in report["functions"]
            ],
            right=(1, 2),
        )
    print()
    print(
        f"total: {_count(total['functions'], 'function')}, {_count(total['entries'], 'entry')}, "
        f"{format_size(total['size'])}"
        + (
            f", last accesses from {_format_time(total['oldest_access'])} to {_format_time(total['newest_access'])}"
            if total["entries"]
            else ""
        )
    )
    for title, key in (("largest entries", "largest"), ("least recently used entries", "oldest")):
        if report[key]:
            print()
            print(f"{title}:")
            _entry_table(report[key])


def _print_prune(report):
    removed = report["removed"]
    if removed:
        groups = {}
        for entry in removed:
            count, size = groups.get(entry["func_id"], (0, 0))
            groups[entry["func_id"]] = (count + 1, size + entry["size"])
        _table(
            ["FUNCTION", "REMOVED", "SIZE"],
            [[func_id, str(count), format_size(size)] for func_id, (count, size) in sorted(groups.items())],
            right=(1, 2),
        )
        print()
    remaining = report["remaining_size"]
    for entry in report["errors"]:
        print(f"not removed: {entry['func_id']} {entry['args_id']}: {entry['error']}")
    print(
        f"removed {_count(len(removed), 'entry')} ({format_size(report['removed_size'])}) from "
        f"{report['location']}"
        + ("" if remaining is None else f"; {format_size(remaining)} remain")
        + (f"; {_count(len(report['errors']), 'entry')} could not be removed" if report["errors"] else "")
    )
    _print_swept(report["swept"])


def _print_swept(swept):
    if swept is not None and any(swept.values()):
        print(f"swept {swept['temporaries_and_locks']} stale temporaries and locks")


def _print_verify(report, remove):
    def what(entry):
        return entry["func_id"] + (f" {entry['args_id']}" if entry["args_id"] else " (whole function)")

    for entry in report["corrupt"]:
        print(f"corrupt ({'removed' if entry['removed'] else 'not removed'}): {what(entry)}: {entry['error']}")
    for entry in report["unchecked"]:
        print(f"not checked: {what(entry)}: {entry['error']}")
    for entry in report["errors"]:
        print(f"error: {what(entry)}: {entry['error']}")
    entries = [entry for entry in report["corrupt"] if entry["args_id"] is not None]
    records = len(report["corrupt"]) - len(entries)
    removed = sum(entry["removed"] for entry in report["corrupt"])
    summary = (
        f"checked {_count(report['checked'], 'entry')} ({format_size(report['checked_size'])} valid) in "
        f"{report['location']}: {report['valid']} valid, {len(entries)} corrupt"
    )
    if records:
        summary += f", {_count(records, 'corrupt code record')}"
    if report["unchecked"]:
        summary += f", {len(report['unchecked'])} not checkable here"
    if report["errors"]:
        summary += f", {_count(len(report['errors']), 'read or remove error')}"
    if report["corrupt"]:
        summary += f"; {removed} removed" if remove else "; nothing removed (--dry-run)"
    print(summary)
    _print_swept(report["swept"])


# -- command line ----------------------------------------------------------------------
def _argument_type(parse, option):
    """An argparse ``type=`` that reports `parse`'s ValueError as a usage error."""

    def convert(value):
        try:
            return parse(value, option)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _number_parser(convert, accept, what):
    """A parser of option values: `convert` (float, int) reads them, `accept` checks them, `what` they must be."""

    def parse(value, option):
        try:
            number = convert(value)
        except ValueError:
            number = None
        if number is None or not accept(number):
            raise ValueError(f"{option}: {value!r} is not {what}")
        return number

    return parse


_parse_seconds = _number_parser(float, lambda seconds: 0 < seconds < float("inf"), "a number of seconds > 0")
_parse_count = _number_parser(int, lambda count: count >= 0, "an integer >= 0")


_EXIT_HELP = "exit status:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_STATUSES.items())


def _help_formatter():
    """argparse's formatter, except that the exit-status table (the epilog) keeps its lines."""

    class HelpFormatter(argparse.HelpFormatter):
        def _fill_text(self, text, width, indent):
            if text is _EXIT_HELP:
                return "".join(indent + line for line in text.splitlines(keepends=True))
            return super()._fill_text(text, width, indent)

    return HelpFormatter


def add_cache_parser(subparsers):
    """Declare ``python -m joblite cache`` and its subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``ArgumentParser.add_subparsers``.

    Returns
    -------
    argparse.ArgumentParser
        The parser of ``cache``; each subcommand sets ``func``.
    """
    parser = subparsers.add_parser(
        "cache",
        help="inspect and maintain a Memory cache folder (info, ls, prune, clear, verify)",
        description="Inspect and maintain the cache folder of a joblite.Memory. PATH is the folder "
        "given to Memory(location), or its 'joblite' sub-folder.",
        epilog=_EXIT_HELP,
        formatter_class=_help_formatter(),
    )
    commands = parser.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)

    def command(name, help, description):
        sub = commands.add_parser(
            name, help=help, description=description, epilog=_EXIT_HELP, formatter_class=_help_formatter()
        )
        sub.add_argument("path", metavar="PATH", help="the Memory location, or its 'joblite' sub-folder")
        sub.add_argument(
            "--json",
            action="store_true",
            help="print one JSON document (bytes, seconds since the epoch) instead of tables",
        )
        sub.set_defaults(func=_run)
        return sub

    def function_option(sub, help):
        sub.add_argument(
            "--function", metavar="F", help=f"{help}: a func_id ('module/qualified name') or its qualified name part"
        )

    command(
        "info",
        "size and entries per function, the largest and oldest entries",
        "Show the entries, size and oldest/newest last access of each function and in all, "
        f"and the {TOP} largest and least recently used entries.",
    )

    sub = command("ls", "list entries", "List the entries: function, args_id, size, last access.")
    function_option(sub, "only this function")
    sub.add_argument(
        "--sort",
        choices=SORTS,
        default="name",
        help="name (func_id, args_id; default), size (largest first) or age (least recently used first)",
    )
    sub.add_argument(
        "--limit", type=_argument_type(_parse_count, "--limit"), metavar="N", help="show at most N entries"
    )

    sub = command(
        "prune",
        "remove least-recently-used entries down to limits",
        "Remove least-recently-used entries until every limit given holds, and what "
        "killed processes left behind (stale temporaries and locks).",
    )
    sub.add_argument(
        "--bytes-limit",
        type=_argument_type(parse_size, "--bytes-limit"),
        metavar="SIZE",
        help="most bytes the entries may take: a number of bytes or e.g. 500M, 10G (powers of 1024)",
    )
    sub.add_argument(
        "--items-limit", type=_argument_type(_parse_count, "--items-limit"), metavar="N", help="most entries"
    )
    sub.add_argument(
        "--age-limit",
        type=_argument_type(parse_age, "--age-limit"),
        metavar="AGE",
        help="remove entries not used for longer: seconds, or e.g. 90s, 15m, 12h, 7d, 2w",
    )

    sub = command(
        "clear",
        "remove the entries of one function, or everything",
        "Remove every entry of one function (and its code record), or everything in the "
        "store. Asks for confirmation unless --yes is given.",
    )
    function_option(sub, "clear only this function")
    sub.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    sub = command(
        "verify",
        "check every entry by loading it; remove corrupt ones",
        "Check every entry as a cache hit would load it, in a child process: container "
        "structure, checksums of the pickle stream and of every block, the (metadata, result) "
        "pair, then a real load with arrays memory-mapped. Loading runs the entries' pickled "
        "code, as a cache hit does. Corrupt entries (and those that crash or hang the "
        "loader) are reported and removed, and stale temporaries and locks swept; entries "
        "that need a module this environment lacks are reported as not checkable and kept.",
    )
    function_option(sub, "check only this function")
    sub.add_argument("--dry-run", action="store_true", help="report corrupt entries, remove nothing")
    sub.add_argument(
        "--timeout",
        type=_argument_type(_parse_seconds, "--timeout"),
        metavar="S",
        default=ENTRY_TIMEOUT,
        help=f"seconds the loader may spend on one entry (default {ENTRY_TIMEOUT:g})",
    )
    parser.set_defaults(func=_run)
    return parser


def _run(args):
    """Run the ``cache`` subcommand `args` names; return the exit status."""
    from .maintenance import StoreNotFoundError, UnknownFunctionError, remove_own_temporaries

    name = f"python -m joblite cache {args.cache_command}"
    if (
        args.cache_command == "prune"
        and args.bytes_limit is None
        and args.items_limit is None
        and args.age_limit is None
    ):
        print(f"{name}: error: give at least one of --bytes-limit, --items-limit, --age-limit", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _COMMANDS[args.cache_command](args, name)
    except (StoreNotFoundError, UnknownFunctionError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{name}: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_IO
    finally:
        remove_own_temporaries(args.path)


def _emit(args, report, printer, *extra):
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        printer(report, *extra)


def _info(args, name):
    from .maintenance import store_info

    _emit(args, store_info(args.path), _print_info)
    return EXIT_OK


def _ls(args, name):
    from .maintenance import find_store, list_entries

    items = list_entries(args.path, args.function, args.sort, args.limit)
    if args.json:
        _emit(args, {"location": find_store(args.path), "entries": [item._asdict() for item in items]}, None)
    elif items:
        _entry_table(item._asdict() for item in items)  # one dict at a time: a store may hold millions
    else:
        print("no entries")
    return EXIT_OK


def _prune(args, name):
    from .maintenance import prune_store

    report = prune_store(args.path, args.bytes_limit, args.items_limit, args.age_limit)
    _emit(args, report, _print_prune)
    return EXIT_IO if report["errors"] else EXIT_OK


def _clear(args, name):
    from .maintenance import clear_store, open_store, select_items

    if not args.yes:
        store = open_store(args.path)
        items, func_id = select_items(store, args.function)
        what = f"{_count(len(items), 'entry')} ({format_size(sum(item.size for item in items))}) of " + (
            func_id if func_id else "every function"
        )
        if not sys.stdin.isatty():
            print(
                f"{name}: error: would remove {what} in {store.location}; pass --yes to confirm "
                "(standard input is not a terminal)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        answer = input(f"remove {what} in {store.location}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return EXIT_USAGE
    report = clear_store(args.path, args.function)
    _emit(
        args,
        report,
        lambda report: print(
            f"removed {_count(report['removed_entries'], 'entry')} ({format_size(report['removed_size'])}) of "
            f"{report['function'] or 'every function'} from {report['location']}"
        ),
    )
    return EXIT_OK


def _verify(args, name):
    from .maintenance import verify_store

    report = verify_store(args.path, args.function, remove=not args.dry_run, timeout=args.timeout)
    _emit(args, report, _print_verify, not args.dry_run)
    if report["errors"]:
        return EXIT_IO
    return EXIT_CORRUPT if report["corrupt"] else EXIT_OK


_COMMANDS = {"info": _info, "ls": _ls, "prune": _prune, "clear": _clear, "verify": _verify}
