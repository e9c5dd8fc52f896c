"""The loader of ``cache verify``: a child process that loads entries as a cache hit would.

An entry that crashes or hangs the loader ends the child, not the command:
:class:`Loader` reports it and starts a new child for the next entries.
"""

import json
import os
import re
import select
import signal
import subprocess
import sys

from .. import _container
from ..persistence import CorruptFileError
from . import layout
from .base import describe_os_error

__all__ = ["Loader", "check_loading", "loader_main"]

_LOADER_CODE = "from joblite.store.loader import loader_main; loader_main()"
_MISSING_ATTRIBUTE = re.compile(r"Can't get attribute '([^']+)' on <module '([^']+)'")


def _missing_global(exc):
    """What the environment lacks, if `exc` (or its cause) is a global the unpickler could not import."""
    for error in (exc, exc.__cause__):
        if isinstance(error, ImportError):
            return f"module {error.name}" if error.name else f"an import that fails here ({error})"
        if isinstance(error, AttributeError):
            match = _MISSING_ATTRIBUTE.search(str(error))
            if match:
                return f"{match.group(2)}.{match.group(1)}, which this environment's {match.group(2)} lacks"
    return None


def check_loading(path):
    """Check the entry at `path` as a cache hit would load it; a JSON-able verdict.

    The container structure and the checksums of the pickle stream and of
    every block (:func:`joblite._container.verify_file`), the ``(metadata,
    result)`` pair (:func:`~joblite.store.layout.check_entry`), then a real
    load with joblite's loader, arrays mapped (``mmap_mode='r'``), not read.

    Returns
    -------
    dict
        ``status``: ``'valid'`` (with ``size``, bytes), ``'gone'``,
        ``'unreadable'``, ``'unchecked'`` (a module or class is missing here)
        or ``'corrupt'``, the last three with ``error``.
    """
    try:
        size = _container.verify_file(path)
        layout.check_entry(path)
        layout.read_entry(path, "r")
    except FileNotFoundError:
        return {"status": "gone"}
    except OSError as exc:
        return {"status": "unreadable", "error": f"cannot be read: {describe_os_error(exc)}"}
    except BaseException as exc:  # whatever unpickling the entry raises: the entry's verdict
        missing = _missing_global(exc)
        if missing is not None:
            return {"status": "unchecked", "error": f"cannot check: needs {missing}"}
        message = str(exc) if isinstance(exc, CorruptFileError) else f"{path}: {type(exc).__name__}: {exc}"
        return {"status": "corrupt", "error": message}
    return {"status": "valid", "size": size}


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def loader_main():
    """The loader process: reads JSON requests, one a line, answers each with a JSON verdict line.

    ``python -c _LOADER_CODE <request fd> <reply fd>``; the first request
    sets ``sys.path`` to the parent's, each later one names an entry.  The
    entry's own code may print or read standard input: the requests and
    verdicts have pipes of their own.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops the loader
    requests = os.fdopen(int(sys.argv[1]), "rb")
    replies = int(sys.argv[2])
    for line in requests:
        request = json.loads(line)
        if "sys_path" in request:
            sys.path[:] = request["sys_path"]
            continue
        _write_all(replies, json.dumps(check_loading(request["path"])).encode() + b"\n")


def _exit_reason(returncode):
    if returncode < 0:
        try:
            return f"signal {-returncode}: {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class Loader:
    """The child process that checks entries for ``verify_store``, one after the other.

    One process checks every entry in turn; when loading an entry kills it
    (or it takes longer than `timeout` seconds and is killed), that entry is
    reported and the next one goes to a new process.

    Attributes
    ----------
    starts : int
        How many processes were started.
    """

    def __init__(self, timeout):
        self.timeout = timeout
        self.starts = 0
        self._proc = None

    def _start(self):
        import joblite

        to_child, requests = os.pipe()
        replies, from_child = os.pipe()
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
        env["PYTHONPATH"] = os.pathsep.join([package_parent] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _LOADER_CODE, str(to_child), str(from_child)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(to_child, from_child),
                env=env,
            )
        except BaseException:
            for fd in (requests, replies):
                os.close(fd)
            raise
        finally:
            os.close(to_child)
            os.close(from_child)
        self._requests = requests
        self._replies = os.fdopen(replies, "rb")
        self.starts += 1
        self._send({"sys_path": [entry for entry in sys.path if isinstance(entry, str)]})

    def _send(self, request):
        _write_all(self._requests, json.dumps(request).encode() + b"\n")

    def check(self, path):
        """Return the verdict on the entry at `path` (a dict, see :func:`check_loading`)."""
        if self._proc is None:
            self._start()
        try:
            self._send({"path": path})
            ready, _, _ = select.select([self._replies], [], [], self.timeout)
            line = self._replies.readline() if ready else None
        except BrokenPipeError:
            line = b""
        if line:
            return json.loads(line)
        self.close(kill=True)
        if line is None:
            return {
                "status": "corrupt",
                "error": f"{path}: the loader did not finish loading it within {self.timeout:g} s",
            }
        return {"status": "corrupt", "error": f"{path}: crashed the loader ({_exit_reason(self._returncode)})"}

    def close(self, kill=False):
        """Stop the process: at the end of the requests, or killed at once with `kill`."""
        if self._proc is None:
            return
        os.close(self._requests)  # end of requests: an idle loader exits
        self._replies.close()
        if kill and self._proc.poll() is None:
            self._proc.kill()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # busy with an entry when the command was interrupted
            self._proc.kill()
            self._proc.wait()
        self._returncode = self._proc.returncode
        self._proc = None
