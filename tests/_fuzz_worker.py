"""The process that loads fuzz inputs, so that a crash kills it and not pytest.

`worker_main` reads inputs from stdin (4-byte length, then the pickled
``(file bytes, [(allowed, mmap_mode), ...])``), writes each to a file of its
folder, loads it with ``joblite.load`` under each ``(allowed, mmap_mode)``,
uses what it got (reprs, copies, zeros of each dtype: a corrupt object often
crashes only when used), and writes one JSON line per load.  Under
``allowed='numpy'`` it also reports code execution: a module imported that the
safe set does not need, an audited event (``os.system``, ``exec``, ``open`` of
another file, ``object.__setattr__`` on a class...), or a change to
``sys.path``.  After a full-pickle load that changed a module (a ``BUILD`` on
it), it exits, so that no later load is misjudged; ``tests/test_persistence_fuzz.py``
starts another.
"""

import json
import os
import pickle
import struct
import sys

import numpy as np

from _fuzz_mutators import COMBOS, Seeds

# Modules the safe set may need: imported before any input, so a new one is code execution.
_SAFE_MODULES = [
    "builtins",
    "copyreg",
    "collections",
    "datetime",
    "decimal",
    "fractions",
    "uuid",
    "pathlib",
    "zoneinfo",
    "numpy",
    "numpy.ma",
    "numpy.ma.core",
    "numpy.rec",
    "numpy.matrixlib.defmatrix",
    "numpy.dtypes",
    "numpy._core.multiarray",
    "numpy._core.numeric",
    "numpy.core.multiarray",
    "numpy.core.numeric",
    "joblite",
    "joblite.persistence",
    "joblite._joblib_format",
    "joblite.compressors",
    "zlib",
    "bz2",
    "lzma",
    "lz4.block",
    "lz4.frame",
    "zstandard",
    "pickletools",
    "_compat_pickle",
    "reprlib",
    "encodings.raw_unicode_escape",
    "encodings.unicode_escape",
    "encodings.latin_1",
    "encodings.ascii",
    "encodings.utf_8",
]
_AUDITED = (
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.remove",
    "os.rmdir",
    "os.rename",
    "os.chdir",
    "os.putenv",
    "os.unsetenv",
    "subprocess.Popen",
    "shutil.",
    "socket.",
    "ctypes.",
    "exec",
    "compile",
    "import",
    "object.__setattr__",
    "object.__delattr__",
    "builtins.input",
    "webbrowser.open",
    "sys.addaudithook",
    "code.__new__",
    "marshal.loads",
    "pickle.find_class",
)


class _Watch:
    """Audit events and imports during restricted loads: anything but reading the input is reported."""

    def __init__(self, allowed_path):
        self.path = allowed_path
        self.active = False
        self.events = []
        sys.addaudithook(self._hook)

    def _hook(self, event, args):
        if not self.active:
            return
        if event == "open":
            path = args[0]
            if isinstance(path, int) or os.fspath(path) == self.path or "zoneinfo" in str(path):
                return
            self.events.append(f"open {path!r}")
        elif event == "pickle.find_class":
            return  # what is looked up is checked by its outcome: imports, events
        elif event == "compile" and _caller_is(sys._getframe(1), "ast", "parse"):
            return  # ast.literal_eval (numpy parses "(2,3)f8" dtype strings so): a parse, no code
        elif event.startswith(_AUDITED):
            if event == "import" and args and args[0] in sys.modules:
                return
            if _under(sys._getframe(1), "zoneinfo._common", "load_tzdata"):
                return  # ZoneInfo's fallback for a key not on disk: imports tzdata.zoneinfo.* (data) only
            self.events.append(f"{event} {str(args)[:200]}")


def _caller_is(frame, module, function):
    return frame.f_code.co_name == function and frame.f_globals.get("__name__") == module


def _under(frame, module, function):
    """Whether `function` of `module` is on the stack from `frame` up."""
    while frame is not None:
        if _caller_is(frame, module, function):
            return True
        frame = frame.f_back
    return False


def _touch(value, budget):
    """Use what was loaded as a program would (reprs, copies, new arrays of its dtypes): crashes show."""
    import reprlib

    if budget[0] <= 0:
        return
    budget[0] -= 1
    if isinstance(value, np.dtype):
        repr(value)
        value.descr  # noqa: B018
        if 0 <= value.itemsize < 1 << 20:
            np.zeros(2, value).copy()
    elif isinstance(value, np.ndarray):
        repr(value.dtype)
        if value.dtype.hasobject:
            for item in value.flat[:50]:
                _touch(item, budget)
        elif value.nbytes < 1 << 26:
            value.tobytes()
            value.copy()
        reprlib.repr(value)
    elif isinstance(value, np.generic):
        repr(value)
        value.item()
    elif isinstance(value, dict):
        for key, item in list(value.items())[:50]:
            _touch(key, budget)
            _touch(item, budget)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in list(value)[:50]:
            _touch(item, budget)
    else:
        reprlib.repr(value)


def _outcome(exc):
    """How a load ended: a documented error's type name, ``'MemoryError'``, or ``'undocumented'``."""
    import joblite

    seen, link = set(), exc
    while link is not None and id(link) not in seen:  # a MemoryError handled on the way is fine
        if isinstance(link, MemoryError):
            return "MemoryError"
        seen.add(id(link))
        link = link.__cause__
    if isinstance(exc, (joblite.CorruptFileError, joblite.UnsafeLoadError)):
        return type(exc).__name__
    return "undocumented"


def _state_of_modules():
    """What a full-pickle load could change (a BUILD on a module or class): ids of module attributes."""
    import builtins
    import collections
    import copyreg

    import joblite.persistence

    state = []
    for module in (builtins, np, np.ndarray, np.dtype, joblite.persistence, pickle, copyreg, collections, sys, os):
        namespace = vars(module)
        if "__warningregistry__" in namespace:  # warnings, even ignored, note themselves there
            del module.__warningregistry__
        state.append((tuple(namespace), tuple(namespace.values())))
    return state


def _same_state(state):
    try:
        return _state_of_modules() == state  # identical objects compare equal without calling __eq__
    except Exception:  # a replaced value whose == does not give a bool
        return False


def _warm_zoneinfo_fallback():
    """Import what ``ZoneInfo`` reads a key not on disk with: ``importlib.resources`` and ``tzdata``.

    The safe set admits ``ZoneInfo``; for a key not in the system's time zone
    database it falls back to the ``tzdata`` package, importing
    ``tzdata.zoneinfo.<the key's folders>``: packages of data under one
    prefix, whatever the key (``ZoneInfo`` refuses absolute keys and ``..``).
    Those imports are not code execution of the input's choosing.
    """
    import zoneinfo

    try:
        zoneinfo.ZoneInfo.no_cache("joblite-not-a-zone")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass


def worker_main():
    """Load the inputs sent on stdin (4-byte length + pickled ``(data, combos)``); one JSON line per load."""
    import importlib
    import warnings

    import _persistence_helpers as H
    import joblite

    warnings.simplefilter("ignore")
    H.limit_address_space(4 << 30)  # a huge claim fails here, not the machine
    for module in _SAFE_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    folder = os.getcwd()
    path = os.path.join(folder, "input")
    # Warm up: whatever a valid load imports lazily is imported now.
    warm = Seeds()
    for data in list(warm.containers.values()) + [b"".join(p for _, p in pieces) for pieces, _ in warm.joblib.values()]:
        with open(path, "wb") as handle:
            handle.write(data)
        for allowed, mmap_mode in COMBOS:
            _touch(joblite.load(path, mmap_mode=mmap_mode, allowed=allowed), [200])
    del warm
    _warm_zoneinfo_fallback()
    watch = _Watch(path)
    modules = set(sys.modules)
    sys_path = (list(sys.path), list(sys.meta_path), list(sys.path_hooks))
    state = _state_of_modules()
    stdin, stdout = sys.stdin.buffer, sys.stdout
    stdout.write("ready\n")
    stdout.flush()
    counter = 0
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        data, combos = pickle.loads(stdin.read(struct.unpack("<I", head)[0]))
        counter += 1
        previous, path = path, os.path.join(folder, f"input-{counter}")
        with open(path, "wb") as handle:
            handle.write(data)
        if os.path.exists(previous):
            os.unlink(previous)  # its maps, if any live on, keep their pages
        watch.path = path
        for index, (allowed, mmap_mode) in enumerate(combos):
            restricted = allowed is not None
            watch.events.clear()
            watch.active = restricted
            detail = ""
            try:
                value = joblite.load(path, mmap_mode=mmap_mode, allowed=allowed)
            except BaseException as exc:  # noqa: B902 - every way out is counted
                watch.active = False
                outcome = _outcome(exc) if isinstance(exc, Exception) else "undocumented"
                detail = f"{type(exc).__name__}: {str(exc)[:300]}"
                value = None
            else:
                watch.active = False
                outcome = "loaded"
            violations = list(watch.events)
            if restricted:
                new = sorted(name for name in set(sys.modules) - modules if not name.startswith("tzdata."))
                if new:
                    violations.append(f"imported {new[:5]}")
                    modules.update(new)  # reported once, by the load that imported it
                if (sys.path, sys.meta_path, sys.path_hooks) != sys_path:
                    violations.append("sys.path, meta_path or path_hooks changed")
            try:
                _touch(value, [500])
            except Exception:  # a strange but valid object may not repr: only crashes count
                pass
            del value
            polluted = not restricted and not _same_state(state)
            stdout.write(
                json.dumps(
                    {"i": index, "outcome": outcome, "detail": detail, "violations": violations, "polluted": polluted}
                )
                + "\n"
            )
            stdout.flush()
            if polluted:  # a full-pickle load changed a module: start afresh
                return


if __name__ == "__main__":
    worker_main()
