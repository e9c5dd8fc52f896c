"""Command line of joblite: ``python -m joblite <command>``.

The commands:

``bench``
    The main job: time joblite against joblib (and dask) on real workloads
    and print a table of ratios.  See :mod:`joblite.bench.cli`.
``cache``
    Inspect and maintain the cache folder of a ``Memory``: ``info``, ``ls``,
    ``prune``, ``clear``, ``verify``.  See :mod:`joblite.store.cli`.

Each command is a function ``add_<command>_parser(subparsers)`` that declares
its arguments and sets ``func``, the function run with the parsed arguments.
Heavy modules (numpy, joblib, dask) are imported only when a command runs.
"""

import argparse
import sys

__all__ = ["build_parser", "main"]


def build_parser():
    """Build the argument parser of ``python -m joblite``.

    Returns
    -------
    argparse.ArgumentParser
        With one subcommand per command; each sets ``func``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m joblite",
        description="joblite: fast hashing, persistence, Memory and Parallel.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from joblite.bench.cli import add_bench_parser
    from joblite.store.cli import add_cache_parser

    add_bench_parser(subparsers)
    add_cache_parser(subparsers)
    return parser


def main(argv=None):
    """Run ``python -m joblite`` with `argv`.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status: the command's (0 on success), 2 when no command is given.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
