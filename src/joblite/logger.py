"""joblib's logging helpers, ``Logger`` and ``PrintTime``, and the text of ``[Memory]`` lines.

:func:`pformat` and :func:`format_time` render values and durations as
joblib's messages do, so that joblite's ``[Memory]`` lines read the same as
joblib's for the same call.
"""

from __future__ import annotations

import logging
import os
import pprint
import shutil
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at run time
if TYPE_CHECKING:
    from ._typing import PathType

__all__ = ["Logger", "PrintTime", "format_time", "pformat"]


def format_time(seconds):
    """A duration as joblib prints it: ``'12.3s, 0.2min'``.

    Parameters
    ----------
    seconds : float

    Returns
    -------
    str
    """
    return f"{seconds:.1f}s, {seconds / 60:.1f}min"


class _Enough(Exception):
    """The printer has written as much as was asked for."""


class _Text:
    """A stream for the printer that stops it once it holds more than `limit` characters."""

    def __init__(self, limit):
        self.parts = []
        self.size = 0
        self.limit = limit

    def write(self, text):
        self.parts.append(text)
        self.size += len(text)
        if self.limit is not None and self.size > self.limit:
            raise _Enough


# Containers whose repr pprint builds item by item (through ``format``), then discards when it is
# longer than a line: with this many items it is, whatever they are.
_LAID_OUT = (list, tuple, dict, set, frozenset)
_MANY = 100
_LONGER_THAN_A_LINE = "." * 200


class _Printer(pprint.PrettyPrinter):
    """``pprint.PrettyPrinter``, its output unchanged, without the repr of a large container that it discards.

    pprint first builds the one-line repr of a container, and lays the
    container out item by item when that repr is longer than the line: for a
    list of a million numbers, a repr of megabytes thrown away.
    """

    def format(self, object, context, maxlevels, level):
        if type(object) in _LAID_OUT and len(object) > _MANY and not (maxlevels and level >= maxlevels):
            return _LONGER_THAN_A_LINE, True, False
        return super().format(object, context, maxlevels, level)


def pformat(obj, indent=0, depth=3, limit=None):
    """``pprint.pformat(obj, indent=indent, depth=depth)``, numpy arrays summarised as joblib shows them.

    Parameters
    ----------
    obj : object
    indent : int, optional
        Spaces added per nesting level.
    depth : int, optional
        Levels shown; deeper containers print as ``[...]``.
    limit : int, optional
        Stop once the text is longer than this many characters: the text
        returned is then the start of the full one, longer than `limit`
        (printing a large container costs what is printed, not its size).

    Returns
    -------
    str
    """
    text = _Text(limit)
    printer = _Printer(indent=indent, depth=depth, stream=text)
    numpy = sys.modules.get("numpy")  # an array argument means numpy is imported; never import it here
    try:
        if numpy is None:
            printer.pprint(obj)
        else:
            with numpy.printoptions(precision=6, threshold=64, edgeitems=1):
                printer.pprint(obj)
    except _Enough:
        return "".join(text.parts)
    return "".join(text.parts)[:-1]  # pprint's newline


class Logger:
    """joblib's base class for objects that log messages (``joblib.Logger``).

    Parameters
    ----------
    depth : int, optional
        Nesting levels shown by :meth:`format`.
    name : str, optional
        The :mod:`logging` logger to write to; default ``'joblite'``.
    """

    def __init__(self, depth: int = 3, name: str | None = None) -> None:
        self.depth = depth
        self._name = name if name else "joblite"

    def warn(self, msg: str) -> None:
        """Log `msg` as a warning, prefixed with ``[repr(self)]``."""
        logging.getLogger(self._name).warning("[%s]: %s", self, msg)

    def info(self, msg: str) -> None:
        """Log `msg` at level INFO on the root logger, as joblib does."""
        logging.info("[%s]: %s", self, msg)

    def debug(self, msg: str) -> None:
        """Log `msg` at level DEBUG."""
        logging.getLogger(self._name).debug("[%s]: %s", self, msg)

    def format(self, obj: object, indent: int = 0) -> str:
        """Return the formatted representation of `obj` (:func:`pformat` to ``depth`` levels)."""
        return pformat(obj, indent=indent, depth=self.depth)


class PrintTime:
    """Print (to stderr) and log the time elapsed between calls, as ``joblib.PrintTime`` does.

    Parameters
    ----------
    logfile : str or path, optional
        Also append each message to this file.  An existing file is kept as
        ``logfile.1`` (older ones shift up to ``logfile.9``) and a new one
        started with a header.
    logdir : str or path, optional
        Log to ``logdir/joblib.log``; not with `logfile`.

    Raises
    ------
    ValueError
        If both `logfile` and `logdir` are given.

    Notes
    -----
    Writing the log file never makes a computation fail: an ``OSError``
    (another process rotating the same file, a full disk) only loses the
    line in the file; it is still printed.
    """

    def __init__(self, logfile: PathType | None = None, logdir: PathType | None = None) -> None:
        if logfile is not None and logdir is not None:
            raise ValueError(f"PrintTime: give logfile={logfile!r} or logdir={logdir!r}, not both")
        self.last_time = self.start_time = time.time()
        if logdir is not None:
            logfile = os.path.join(logdir, "joblib.log")
        self.logfile = None if logfile is None else os.fspath(logfile)
        if self.logfile is not None:
            self._start_log()

    def _start_log(self):
        logfile = self.logfile
        try:
            os.makedirs(os.path.dirname(logfile) or ".", exist_ok=True)
            if os.path.exists(logfile):
                for i in range(8, 0, -1):  # oldest first, so that none is overwritten
                    if os.path.exists(f"{logfile}.{i}"):
                        os.replace(f"{logfile}.{i}", f"{logfile}.{i + 1}")
                # A copy, not a move: a process following the file keeps its place.
                shutil.copy(logfile, logfile + ".1")
            with open(logfile, "w") as stream:
                stream.write(f"\nLogging joblib python script\n\n---{time.ctime(self.last_time)}---\n")
        except OSError:
            pass  # see the class notes: logging must not fail the computation

    def __call__(self, msg: str = "", total: bool = False) -> None:
        """Print `msg` with the time since the last call (or, with `total`, since creation).

        Parameters
        ----------
        msg : str, optional
        total : bool, optional
        """
        now = time.time()
        if total:
            lapse = now - self.start_time
            full_msg = f"{msg}: {lapse:.2f}s, {lapse / 60:.1f} min"
        else:
            full_msg = f"{msg}: {format_time(now - self.last_time)}"
        print(full_msg, file=sys.stderr)
        if self.logfile is not None:
            try:
                with open(self.logfile, "a") as stream:
                    print(full_msg, file=stream)
            except OSError:
                pass  # see the class notes
        self.last_time = time.time()
