"""Tasks and subprocess scripts for tests/test_parallel_failures.py.

The tasks live in this importable module (not in the test file) so that loky
workers unpickle them by reference, the way a user's module function travels.

Run as ``python tests/_parallel_workers.py '<json config>'`` to be a caller
process that a test interrupts or kills (see :func:`main`).  Reports are
small JSON files written to a temporary name and renamed, so a reader never
sees half a report.
"""

import json
import os
import signal
import sys
import threading
import time

import numpy as np


class TaskError(Exception):
    """The error the failing tasks raise (a type of our own: re-raised with its type)."""


# -- reports ---------------------------------------------------------------------------
def write_report(path, data):
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"  # threads write reports too
    with open(temporary, "w") as fileobj:
        json.dump(data, fileobj)
    os.replace(temporary, path)


def read_reports(folder, suffix=".pid"):
    """The reports ``<name><suffix>`` in `folder`, as a list of dicts."""
    reports = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(suffix):
            with open(os.path.join(folder, name)) as fileobj:
                reports.append(json.load(fileobj))
    return reports


def _report_running(report, array):
    if report is not None:
        folder = os.path.dirname(array.filename) if getattr(array, "filename", None) else None
        write_report(os.path.join(report, f"{os.getpid()}.pid"), {"pid": os.getpid(), "folder": folder})


# -- tasks -----------------------------------------------------------------------------
def describe(array):
    """What a worker received for `array`."""
    filename = getattr(array, "filename", None)
    return {
        "type": type(array).__name__,
        "memmap": isinstance(array, np.memmap),
        "writeable": bool(array.flags.writeable),
        "filename": filename,
        "offset": getattr(array, "offset", None),
        "shape": list(array.shape),
        "values": array.tolist(),
        "pid": os.getpid(),
        "folder_files": sorted(os.listdir(os.path.dirname(filename))) if filename else None,
    }


def listdir(path):
    """The names in `path` (None if it does not exist), seen from a worker."""
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return None


def write_into(array, index, value):
    """Write into a memmap argument (mmap_mode='r+') and flush it."""
    array[index] = value
    array.flush()
    return array.mode


def make_array(n, fill=1.0):
    """A fresh array of `n` float64 (the worker's own memory)."""
    return np.full(n, fill)


def echo(value, array=None):
    return value


def pid():
    return os.getpid()


def fail(i, message="task failed on purpose"):
    raise TaskError(f"{message} (task {i})")


def fail_at(i, bad, array=None):
    """`i`, except for task `bad`, which raises TaskError."""
    if i == bad:
        raise TaskError(f"task {i} failed on purpose")
    return i


def nap_or_fail(i, bad, seconds, array=None):
    """Sleep `seconds`, then return `i`, except for task `bad`, which raises TaskError."""
    time.sleep(seconds)
    return fail_at(i, bad, array)


def record(i, report, array, seconds):
    """Sleep `seconds`, then report what this task sees of `array` in ``<report>/<i>.task``."""
    time.sleep(seconds)
    folder = os.path.dirname(array.filename) if getattr(array, "filename", None) else None
    write_report(
        os.path.join(report, f"{i}.task"),
        {
            "i": i,
            "memmap": isinstance(array, np.memmap),
            "sum": float(array.sum()),
            "folder": folder,
            "folder_exists": folder is not None and os.path.isdir(folder),
        },
    )
    return i


def exit_with(code, array=None):
    os._exit(code)


def segfault(array=None):
    import ctypes
    import faulthandler

    faulthandler.disable()  # no traceback dump on stderr: the segfault is the point
    ctypes.string_at(0)


def kill_self(array=None):
    os.kill(os.getpid(), signal.SIGKILL)


def nap(seconds, report=None, array=None):
    """Report this worker's pid (and the folder of `array`'s file) in `report`, then sleep."""
    _report_running(report, array)
    time.sleep(seconds)
    return os.getpid()


def wait_event(event, seconds):
    """For the threading backend: block until `event` is set (at most `seconds`)."""
    return event.wait(seconds)


def _refuse_to_rebuild(pid):
    if os.getpid() != pid:
        raise TaskError(f"this argument cannot be rebuilt outside process {pid}")
    return Unbuildable()


class Unbuildable:
    """An argument that pickles in the caller and fails to unpickle in any other process."""

    def __reduce__(self):
        return _refuse_to_rebuild, (os.getpid(),)


# -- caller processes that a test interrupts or kills ----------------------------------
def _children_pids():
    """Pids of this process's children (psutil, else /proc)."""
    try:
        import psutil
    except ImportError:
        found = []
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/stat") as fileobj:
                    stat = fileobj.read()
            except (OSError, ValueError):
                continue
            if name.isdigit() and int(stat[stat.rindex(")") + 2 :].split()[1]) == os.getpid():
                found.append(int(name))
        return found
    return [child.pid for child in psutil.Process().children(recursive=True)]


def main(cfg):
    """A caller running one long ``Parallel(n_jobs=2)`` call on a large array.

    ``cfg``: ``mode`` ('interrupt', 'suicide', 'open-generator' or 'interrupt-rounds'),
    ``report`` (a folder), ``seconds`` (task length), ``temp_folder``,
    ``rounds``.  The workers write
    ``<pid>.pid`` reports as they start their task.

    * 'interrupt': waits for the SIGINT the test sends; on KeyboardInterrupt
      writes ``interrupted.json`` and exits with 130.
    * 'suicide': once a first task has finished (the memmap folder exists),
      writes ``children.json`` (its child processes) and SIGKILLs itself.
    * 'open-generator': a daemon thread takes one result of a
      ``return_as='generator'`` call and blocks; the caller writes
      ``exiting.json`` (the temp folder's content) and exits, the generator
      never closed.
    * 'interrupt-rounds': ``rounds`` times, runs such a call into
      ``round<r>/``, waits for the SIGINT, then runs a new call on another
      large array and writes ``round<r>.json`` (what it saw, or its error).
    """
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _parallel_workers as this  # tasks pickled by reference to the module, not __main__
    from joblite import Parallel, delayed

    # A caller at a terminal: SIGINT raises KeyboardInterrupt even when this
    # process was started with SIGINT ignored (a background job of a shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    report = cfg["report"]
    array = np.arange(4096, dtype=np.float64)  # 32 KiB: memory-mapped with max_nbytes=1000
    seconds = cfg["seconds"]
    if cfg["mode"] == "interrupt":
        started = time.monotonic()
        try:
            Parallel(n_jobs=2, max_nbytes=1000, temp_folder=cfg["temp_folder"])(
                delayed(this.nap)(seconds, report, array) for _ in range(4)
            )
        except KeyboardInterrupt:
            write_report(
                os.path.join(report, "interrupted.json"),
                {"after": time.monotonic() - started, "children": _children_pids()},
            )
            sys.exit(130)
        write_report(os.path.join(report, "finished.json"), {})
        return 0
    if cfg["mode"] == "suicide":

        def callback(index, result):
            write_report(os.path.join(report, "children.json"), {"children": _children_pids()})
            os.kill(os.getpid(), signal.SIGKILL)

        tasks = [delayed(this.nap)(0, report, array)] + [delayed(this.nap)(seconds, report, array) for _ in range(3)]
        Parallel(n_jobs=2, max_nbytes=1000, temp_folder=cfg["temp_folder"], callback=callback)(tasks)
        return 1  # not reached
    if cfg["mode"] == "interrupt-rounds":
        for r in range(cfg["rounds"]):
            folder = os.path.join(report, f"round{r}")
            os.mkdir(folder)
            outcome = {"interrupted": False}
            try:
                Parallel(n_jobs=2, max_nbytes=1000, temp_folder=cfg["temp_folder"])(
                    delayed(this.nap)(seconds, folder, array) for _ in range(4)
                )
            except KeyboardInterrupt:
                outcome["interrupted"] = True
            fresh = array + r
            try:
                seen = Parallel(n_jobs=2, max_nbytes=1000, temp_folder=cfg["temp_folder"])(
                    delayed(this.describe)(fresh) for _ in range(3)
                )
            except Exception as exc:  # reported to the test
                outcome["error"] = repr(exc)
            else:
                outcome["memmap"] = [info["memmap"] for info in seen]
                outcome["values_ok"] = [info["values"] == fresh.tolist() for info in seen]
            write_report(os.path.join(report, f"round{r}.json"), outcome)
        return 0
    if cfg["mode"] == "open-generator":
        first = threading.Event()

        def consume():  # a background consumer, still in the call when the program ends
            results = Parallel(n_jobs=2, max_nbytes=1000, temp_folder=cfg["temp_folder"], return_as="generator")(
                delayed(this.nap)(seconds, report, array) for _ in range(20)
            )
            next(results)
            first.set()
            threading.Event().wait()  # never closes the generator

        threading.Thread(target=consume, daemon=True).start()
        if not first.wait(60):
            return 1
        write_report(os.path.join(report, "exiting.json"), {"folders": os.listdir(cfg["temp_folder"])})
        return 0
    raise ValueError(f"unknown mode {cfg['mode']!r}")


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
