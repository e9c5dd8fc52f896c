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

The functions below do the work without argparse: :func:`store_info`,
:func:`list_entries`, :func:`prune_store`, :func:`clear_store`,
:func:`verify_store`.  They work on the ``'local'`` store backend
(:class:`joblite.store.FileSystemStoreBackend`).  Only :func:`verify_store`
unpickles results, in a child process, so that an entry that crashes the
loader is reported instead of ending the command.
"""
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

__all__ = ["StoreNotFoundError", "UnknownFunctionError", "find_store", "open_store", "resolve_function",
           "store_info", "list_entries", "prune_store", "clear_store", "verify_store", "parse_duration",
           "EXIT_STATUSES", "ENTRY_TIMEOUT",
           "format_size", "add_cache_parser"]

#: The exit statuses of ``python -m joblite cache`` (see the module docstring).
EXIT_OK, EXIT_CORRUPT, EXIT_USAGE, EXIT_IO = 0, 1, 2, 3
EXIT_STATUSES = {
    EXIT_OK: "success (verify: no corrupt entry)",
    EXIT_CORRUPT: "verify found corrupt entries (or entries that crash or hang the loader)",
    EXIT_USAGE: "nothing done: no store at PATH, bad --function or arguments, clear not confirmed",
    EXIT_IO: "the store could not be read or written (an entry could not be read or removed)",
}
_TOP = 5               # entries shown as the largest and the oldest by ``info``
_SHOWN_CANDIDATES = 20  # function names listed in an error message
_SORTS = ("name", "size", "age")


class StoreNotFoundError(ValueError):
    """A path does not exist or holds no joblite cache store."""


class UnknownFunctionError(LookupError):
    """A function name matches no function of the store, or several.

    Attributes
    ----------
    name : str
        The name asked for.
    candidates : list of str
        The func_ids it matches (ambiguous), or all func_ids of the store (unknown).
    """

    def __init__(self, message, name, candidates):
        super().__init__(message)
        self.name = name
        self.candidates = candidates

    def __str__(self):
        return self.args[0]


# -- finding the store -----------------------------------------------------------------
def _not_a_store(root):
    """Why the folder `root` is not the root of a local store, or None if it is one."""
    from .store import STORE_TAG, is_store_root

    return None if is_store_root(root) else f"it has no {STORE_TAG} file"


def find_store(path):
    """Return the ``Memory`` location whose store `path` names.

    Parameters
    ----------
    path : str or pathlib.Path
        The folder given to ``Memory(location)`` (which holds the store in
        its ``joblite`` sub-folder), or that ``joblite`` sub-folder itself.

    Returns
    -------
    str
        The location, as given to ``Memory``.

    Raises
    ------
    StoreNotFoundError
        If `path` does not exist, is not a folder or holds no joblite store;
        the message names it.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise StoreNotFoundError(f"{path}: no such folder")
    if not os.path.isdir(path):
        raise StoreNotFoundError(f"{path}: not a folder")
    candidates = [(path, os.path.join(path, "joblite"))]
    if os.path.basename(os.path.normpath(os.path.abspath(path))) == "joblite":
        candidates.append((os.path.dirname(os.path.normpath(os.path.abspath(path))), path))
    problems = []
    for location, root in candidates:
        if not os.path.isdir(root):
            continue
        problem = _not_a_store(root)
        if problem is None:
            return location
        problems.append(f"{root} is not a joblite store: {problem}")
    detail = "; ".join(problems) if problems else f"there is no folder {os.path.join(path, 'joblite')}"
    raise StoreNotFoundError(f"{path}: no joblite cache store here ({detail}); give the folder passed "
                             "to Memory(location) or its 'joblite' sub-folder")


def open_store(path):
    """Return the local store backend of the ``Memory`` location `path` names.

    Parameters
    ----------
    path : str or pathlib.Path
        As for :func:`find_store`.

    Returns
    -------
    joblite.store.FileSystemStoreBackend

    Raises
    ------
    StoreNotFoundError
        As :func:`find_store`; nothing is created at a wrong path.
    """
    from .store import store_backend

    return store_backend("local", find_store(path), verbose=0)


def resolve_function(store, name):
    """Return the func_id of the store's function `name` names.

    Parameters
    ----------
    store : joblite.store.FileSystemStoreBackend
    name : str
        A func_id (``'module/qualified name'``) exactly, or its qualified
        name part (after the ``'/'``).

    Returns
    -------
    str

    Raises
    ------
    UnknownFunctionError
        If `name` matches no function, or the qualified name of several (the
        message lists the candidates).
    """
    func_ids = sorted({func_id for func_id, _ in store.function_dirs()})
    if name in func_ids:
        return name
    matches = [func_id for func_id in func_ids if func_id.partition("/")[2] == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UnknownFunctionError(f"function {name!r} is ambiguous in the cache at {store.location}: it "
                                   f"matches {_listing(matches)}; give one of these in full", name, matches)
    known = f"its functions are {_listing(func_ids)}" if func_ids else "it holds no function"
    raise UnknownFunctionError(f"no function {name!r} in the cache at {store.location}; {known}",
                               name, func_ids)


def _listing(names):
    shown = ", ".join(names[:_SHOWN_CANDIDATES])
    if len(names) > _SHOWN_CANDIDATES:
        shown += f" (and {len(names) - _SHOWN_CANDIDATES} more)"
    return shown


def _items(store, function):
    """The entries of the function `function` names (all when None), and its func_id."""
    func_id = None if function is None else resolve_function(store, function)
    return store.get_items(func_id), func_id


def _entry(item):
    return item._asdict()


# -- the commands as functions ---------------------------------------------------------
def store_info(path, top=_TOP):
    """Summarize a store: entries, size and access times per function, and in all.

    Parameters
    ----------
    path : str or pathlib.Path
        As for :func:`find_store`.
    top : int, optional
        How many of the largest and of the least recently used entries to list.

    Returns
    -------
    dict
        ``location``, ``root``; ``functions``: a list (largest first) of dicts
        with ``func_id``, ``entries``, ``size`` (bytes), ``oldest_access`` and
        ``newest_access`` (seconds since the epoch, None without entries);
        ``total``: ``functions``, ``entries``, ``size``, ``oldest_access``,
        ``newest_access``; ``largest`` and ``oldest``: lists of entries as
        dicts of :data:`joblite.store.CacheItemInfo` fields.

    Raises
    ------
    StoreNotFoundError
        As :func:`find_store`.
    """
    store = open_store(path)
    items = store.get_items()
    groups = {func_id: [] for func_id, _ in store.function_dirs()}
    for item in items:
        groups.setdefault(item.func_id, []).append(item)
    functions = [_summary(entries, func_id=func_id) for func_id, entries in groups.items()]
    functions.sort(key=lambda row: (-row["size"], row["func_id"]))
    total = _summary(items, functions=len(groups))
    return {
        "location": store.location,
        "root": store.root,
        "functions": functions,
        "total": total,
        "largest": [_entry(item) for item in _sorted(items, "size")[:top]],
        "oldest": [_entry(item) for item in _sorted(items, "age")[:top]],
    }


def _summary(items, **fields):
    accesses = [item.last_access for item in items]
    fields.update(entries=len(items), size=sum(item.size for item in items),
                  oldest_access=min(accesses, default=None), newest_access=max(accesses, default=None))
    return fields


def _sorted(items, sort):
    if sort == "size":
        return sorted(items, key=lambda item: (-item.size, item.func_id, item.args_id))
    if sort == "age":
        return sorted(items, key=lambda item: (item.last_access, item.func_id, item.args_id))
    return sorted(items, key=lambda item: (item.func_id, item.args_id))


def list_entries(path, function=None, sort="name", limit=None):
    """List the entries of a store.

    Parameters
    ----------
    path : str or pathlib.Path
        As for :func:`find_store`.
    function : str, optional
        Only this function's entries (see :func:`resolve_function`).
    sort : {'name', 'size', 'age'}, optional
        By func_id and args_id; largest first; least recently used first.
    limit : int, optional
        At most this many (the first after sorting).

    Returns
    -------
    list of joblite.store.CacheItemInfo

    Raises
    ------
    StoreNotFoundError
        As :func:`find_store`.
    UnknownFunctionError
        As :func:`resolve_function`.
    ValueError
        If `sort` or `limit` is not valid.
    """
    if sort not in _SORTS:
        raise ValueError(f"sort={sort!r} is not one of {_SORTS}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit={limit!r} must be an int >= 0")
    items, _ = _items(open_store(path), function)
    items = _sorted(items, sort)
    return items if limit is None else items[:limit]


def prune_store(path, bytes_limit=None, items_limit=None, age_limit=None):
    """Remove least-recently-used entries until the limits hold, and what dead processes left.

    Entries go through :meth:`joblite.store.StoreBackendBase.reduce_size`;
    stale temporaries and locks are swept first (``sweep``).

    Parameters
    ----------
    path : str or pathlib.Path
        As for :func:`find_store`.
    bytes_limit : int or str, optional
        Most bytes the entries may take (``'10G'`` style accepted).
    items_limit : int, optional
        Most entries.
    age_limit : float, str or datetime.timedelta, optional
        Entries not used for longer are removed: seconds, a string like
        ``'7d'`` (see :func:`parse_duration`) or a timedelta.

    Returns
    -------
    dict
        ``location``; ``removed``: the entries removed, as dicts of
        :data:`joblite.store.CacheItemInfo` fields (least recently used
        first); ``removed_size`` (bytes); ``remaining_size`` (bytes, None if
        unknown); ``errors``: the entries due for removal that could not be
        removed (skipped: later ones were removed instead), as the same dicts
        with ``error`` (path, reason and errno); ``swept``:
        ``{'temporaries_and_locks': count}``.

    Raises
    ------
    ValueError
        If no limit is given or one is not valid.
    StoreNotFoundError
        As :func:`find_store`.
    OSError
        If the store cannot be listed.
    """
    from .store import describe_os_error

    if bytes_limit is None and items_limit is None and age_limit is None:
        raise ValueError("give at least one of bytes_limit, items_limit and age_limit")
    if isinstance(age_limit, str):
        age_limit = parse_duration(age_limit)
    store = open_store(path)
    swept = _sweep(store)  # first: the store sweeps by itself once it writes a temporary
    removed, failed = store.evict(bytes_limit=bytes_limit, items_limit=items_limit, age_limit=age_limit)
    usage = store.read_usage()
    return {
        "location": store.location,
        "removed": [_entry(item) for item in removed],
        "removed_size": sum(item.size for item in removed),
        "remaining_size": None if usage is None else usage[0],
        "errors": [dict(_entry(item), error=describe_os_error(exc)) for item, exc in failed],
        "swept": swept,
    }


def _sweep(store):
    return {"temporaries_and_locks": store.sweep()}


def clear_store(path, function=None):
    """Remove every entry of one function, or everything in the store.

    Parameters
    ----------
    path : str or pathlib.Path
        As for :func:`find_store`.
    function : str, optional
        The function (see :func:`resolve_function`); its code record goes too.

    Returns
    -------
    dict
        ``location``, ``function`` (its func_id, None for all),
        ``removed_entries`` and ``removed_size`` (bytes), as counted just before.

    Raises
    ------
    StoreNotFoundError
        As :func:`find_store`.
    UnknownFunctionError
        As :func:`resolve_function`.
    """
    store = open_store(path)
    items, func_id = _items(store, function)
    if func_id is None:
        store.clear()
    else:
        store.clear_path(func_id)
    return {"location": store.location, "function": func_id, "removed_entries": len(items),
            "removed_size": sum(item.size for item in items)}


def _check_entry(path):
    """Raise CorruptFileError unless the pickle stream of the container at `path` is a pair ``(dict, ...)``.

    What the store writes, ``(metadata, result)``, is pickled (protocol 5) as
    ``PROTO 5 [FRAME n] EMPTY_DICT ... TUPLE2 MEMOIZE STOP``: both ends of the
    stream tell, without unpickling it (and without reading an uncompressed
    stream whole).
    """
    from .persistence import ALIGNMENT, CorruptFileError, _Container

    with open(path, "rb") as fileobj:
        container = _Container(fileobj, path)
        length = container.pickle_raw_length
        if container.pickle_codec:
            stream = container.pickle_stream()
            head, tail = bytes(stream[:16]), bytes(stream[-3:])
        else:
            head = container._read(ALIGNMENT, min(16, length), "pickle stream")
            tail = container._read(ALIGNMENT + max(length - 3, 0), min(3, length), "pickle stream")
    start = 11 if head[2:3] == b"\x95" else 2   # after PROTO 5 and an optional FRAME
    if head[:2] != b"\x80\x05" or head[start:start + 1] != b"}" or tail != b"\x86\x94.":
        raise CorruptFileError(f"{path}: not a joblite cache entry: its pickle stream is not a "
                               "(metadata dict, result) pair")


def _check_json(path):
    """Raise ValueError if the JSON file at `path`, when there is one, does not hold an object."""
    try:
        with open(path, "rb") as fileobj:
            record = json.loads(fileobj.read())
    except FileNotFoundError:
        return
    except ValueError as exc:  # also UnicodeDecodeError
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: holds a {type(record).__name__}, not a JSON object")


def _same_file(before, path):
    try:
        after = os.stat(path)
    except FileNotFoundError:
        return False
    return (after.st_ino, after.st_dev, after.st_mtime_ns) == (before.st_ino, before.st_dev, before.st_mtime_ns)


# -- verify's loader: a child process that loads entries as a cache hit would ---------------
#: Seconds the loader may spend on one entry before it is killed and the entry reported.
ENTRY_TIMEOUT = 600.0
_LOADER_CODE = "from joblite.cache_cli import _loader_main; _loader_main()"
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


def _check_loading(path):
    """Check the entry at `path` as a cache hit would load it; a JSON-able verdict.

    The container structure and the checksums of the pickle stream and of
    every block (:func:`joblite.persistence.verify_file`), the ``(metadata,
    result)`` pair, then a real load with joblite's loader, arrays mapped
    (``mmap_mode='r'``), not read.
    """
    from .persistence import CorruptFileError, load_path, verify_file
    from .store import describe_os_error

    try:
        size = verify_file(path)
        _check_entry(path)
        pair = load_path(path, "r", None)
        if not (type(pair) is tuple and len(pair) == 2 and type(pair[0]) is dict):
            raise CorruptFileError(f"{path}: not a joblite cache entry (metadata, result)")
        del pair
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
        view = view[os.write(fd, view):]


def _loader_main():
    """The loader process: reads JSON requests, one a line, answers each with a JSON verdict line.

    ``python -c _LOADER_CODE <request fd> <reply fd>``; the first request
    sets ``sys.path`` to the parent's, each later one names an entry.  The
    entry's own code may print or read standard input: the requests and
    verdicts have pipes of their own.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C stops the parent, which stops the loader
    requests = os.fdopen(int(sys.argv[1]), "rb")
    replies = int(sys.argv[2])
    for line in requests:
        request = json.loads(line)
        if "sys_path" in request:
            sys.path[:] = request["sys_path"]
            continue
        _write_all(replies, json.dumps(_check_loading(request["path"])).encode() + b"\n")


def _exit_reason(returncode):
    if returncode < 0:
        try:
            return f"signal {-returncode}: {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class _Loader:
    """The child process that checks entries for :func:`verify_store`, one after the other.

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
        env["PYTHONPATH"] = os.pathsep.join([package_parent] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                                else []))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _LOADER_CODE, str(to_child), str(from_child)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(to_child, from_child), env=env)
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
        """Return the verdict on the entry at `path` (a dict, see :func:`_check_loading`)."""
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
            return {"status": "corrupt",
                    "error": f"{path}: the loader did not finish loading it within {self.timeout:g} s"}
        return {"status": "corrupt",
                "error": f"{path}: crashed the loader ({_exit_reason(self._returncode)})"}

    def close(self, kill=False):
        """Stop the process: at the end of the requests, or killed at once with `kill`."""
        if self._proc is None:
            return
        os.close(self._requests)   # end of requests: an idle loader exits
        self._replies.close()
        if kill and self._proc.poll() is None:
            self._proc.kill()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:   # busy with an entry when the command was interrupted
            self._proc.kill()
            self._proc.wait()
        self._returncode = self._proc.returncode
        self._proc = None


def verify_store(path, function=None, remove=True, timeout=ENTRY_TIMEOUT):
    """Check every entry of a store by loading it as a cache hit would; remove the corrupt ones.

    Each result file is checked in a child process: its container structure
    and every checksum (:func:`joblite.persistence.verify_file`), the
    ``(metadata, result)`` pair the store writes, then a real load with
    joblite's loader, arrays memory-mapped rather than read.  An entry is
    corrupt when a check fails, when loading it kills the child (it is
    reported as having crashed the loader, with the signal), or when loading
    takes longer than `timeout` seconds (the child is killed); the next
    entries go to a new child.  An entry naming a module or class that this
    environment cannot import is reported as not checkable here, not as
    corrupt, and kept.  Loading runs the entries' pickled code, as a cache hit
    would: verify only stores you would load from.  A function whose code
    record (``func_code.json``) is corrupt is removed whole, as ``Memory``
    would do on its next call.  With `remove`, stale temporaries and locks are
    swept too.

    Parameters
    ----------
    path : str or pathlib.Path
        As for :func:`find_store`.
    function : str, optional
        Check only this function (see :func:`resolve_function`).
    remove : bool, optional
        Remove what is corrupt (default); False only reports it.  An entry
        rewritten by another process while it was checked is left alone.
    timeout : float, optional
        Seconds the loader may spend on one entry.

    Returns
    -------
    dict
        ``location``; ``checked`` (entries), ``valid`` (entries),
        ``checked_size`` (bytes of valid result files); ``corrupt``: the
        corrupt entries (those that crash or hang the loader too), as
        dicts with ``func_id``, ``args_id`` (None for a code record),
        ``path``, ``error`` and ``removed`` (bool);
        ``unchecked``: the entries that need a module this environment lacks,
        as the same dicts; ``errors``: what could not be read or removed, as
        the same dicts; ``swept`` (counts as in :func:`prune_store`, None
        without `remove`); ``loader_starts``: how many child processes were
        started.

    Raises
    ------
    StoreNotFoundError
        As :func:`find_store`.
    UnknownFunctionError
        As :func:`resolve_function`.
    OSError
        If the store cannot be listed.
    """
    from .store import describe_os_error

    store = open_store(path)
    func_id = None if function is None else resolve_function(store, function)
    swept = _sweep(store) if remove else None  # first: the store sweeps by itself once it writes a temporary
    corrupt, unchecked, errors, cleared = [], [], [], set()

    def remove_corrupt(entry, clear, *args):
        try:
            clear(*args)
        except OSError as exc:
            entry["error"] += f" (not removed: {describe_os_error(exc)})"
            errors.append(dict(entry, error=f"cannot be removed: {describe_os_error(exc)}"))
        else:
            entry["removed"] = True

    for owner, folder in store.function_dirs():
        if func_id is not None and owner != func_id:
            continue
        record = os.path.join(folder, "func_code.json")
        entry = {"func_id": owner, "args_id": None, "path": record, "removed": False}
        try:
            _check_json(record)
        except OSError as exc:
            errors.append(dict(entry, error=f"cannot be read: {describe_os_error(exc)}"))
        except ValueError as exc:
            entry["error"] = f"code record: {exc}"
            if remove:
                remove_corrupt(entry, store.clear_path, owner)
                cleared.add(owner)
            corrupt.append(entry)
    checked, valid, checked_size = 0, 0, 0
    loader = _Loader(timeout)
    try:
        for item in _sorted(store.get_items(func_id), "name"):
            if item.func_id in cleared:
                continue
            entry = {"func_id": item.func_id, "args_id": item.args_id, "path": item.path, "removed": False}
            try:
                before = os.stat(item.path)
            except FileNotFoundError:
                continue  # removed meanwhile, by another process
            except OSError as exc:
                verdict = {"status": "unreadable", "error": f"cannot be read: {describe_os_error(exc)}"}
            else:
                verdict = loader.check(item.path)
            if verdict["status"] == "gone":
                continue
            checked += 1
            if verdict["status"] == "valid":
                valid += 1
                checked_size += verdict["size"]
                continue
            entry["error"] = verdict["error"]
            if verdict["status"] == "unchecked":
                unchecked.append(entry)
            elif verdict["status"] == "unreadable":
                errors.append(entry)
            else:
                if remove and _same_file(before, item.path):
                    remove_corrupt(entry, store.clear_item, (item.func_id, item.args_id))
                corrupt.append(entry)
    finally:
        loader.close()
    return {
        "location": store.location,
        "checked": checked,
        "valid": valid,
        "checked_size": checked_size,
        "corrupt": corrupt,
        "unchecked": unchecked,
        "errors": errors,
        "swept": swept,
        "loader_starts": loader.starts,
    }


# -- formatting ------------------------------------------------------------------------
def parse_duration(value, name="age_limit"):
    """Seconds from ``'90'``, ``'90s'``, ``'15m'``, ``'12h'``, ``'7d'``, ``'2w'`` or a number.

    :func:`joblite.store.parse_age`, imported when a command runs (see there
    for parameters, returns and errors), except that an age is required:
    None raises ``ValueError`` too.
    """
    from .store import parse_age

    seconds = parse_age(value, name)
    if seconds is None:
        raise ValueError(f"{name}=None: an age is required, e.g. '7d'")
    return seconds


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
        return "  ".join(cell.rjust(width) if column in right else cell.ljust(width)
                         for column, (cell, width) in enumerate(zip(cells, widths))).rstrip()

    print(line(headers))
    for row in rows:
        print(line(row))


def _entry_table(entries):
    _table(["FUNCTION", "ARGS_ID", "SIZE", "LAST ACCESS"],
           [[entry["func_id"], entry["args_id"], format_size(entry["size"]), _format_time(entry["last_access"])]
            for entry in entries], right=(2,))


def _print_info(report):
    print(f"cache at {report['location']} (store {report['root']})")
    total = report["total"]
    if report["functions"]:
        print()
        _table(["FUNCTION", "ENTRIES", "SIZE", "OLDEST ACCESS", "NEWEST ACCESS"],
               [[row["func_id"], str(row["entries"]), format_size(row["size"]),
                 _format_time(row["oldest_access"]), _format_time(row["newest_access"])]
                for row in report["functions"]], right=(1, 2))
    print()
    print(f"total: {_count(total['functions'], 'function')}, {_count(total['entries'], 'entry')}, "
          f"{format_size(total['size'])}"
          + (f", last accesses from {_format_time(total['oldest_access'])} to "
             f"{_format_time(total['newest_access'])}" if total["entries"] else ""))
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
        _table(["FUNCTION", "REMOVED", "SIZE"],
               [[func_id, str(count), format_size(size)] for func_id, (count, size) in sorted(groups.items())],
               right=(1, 2))
        print()
    remaining = report["remaining_size"]
    for entry in report["errors"]:
        print(f"not removed: {entry['func_id']} {entry['args_id']}: {entry['error']}")
    print(f"removed {_count(len(removed), 'entry')} ({format_size(report['removed_size'])}) from "
          f"{report['location']}"
          + ("" if remaining is None else f"; {format_size(remaining)} remain")
          + (f"; {_count(len(report['errors']), 'entry')} could not be removed" if report["errors"] else ""))
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
    summary = (f"checked {_count(report['checked'], 'entry')} ({format_size(report['checked_size'])} valid) in "
               f"{report['location']}: {report['valid']} valid, {len(entries)} corrupt")
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
    import argparse

    def convert(value):
        try:
            return parse(value, option)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _parse_size(value, option):
    from .store import parse_size

    return parse_size(value, option)


def _parse_seconds(value, option):
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{option}: {value!r} is not a number of seconds > 0")
    return seconds


def _parse_count(value, option):
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise ValueError(f"{option}: {value!r} is not an integer >= 0")
    return count


_EXIT_HELP = "exit status:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_STATUSES.items())


def _help_formatter():
    """argparse's formatter, except that the exit-status table (the epilog) keeps its lines."""
    import argparse

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
        epilog=_EXIT_HELP, formatter_class=_help_formatter(),
    )
    commands = parser.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)

    def command(name, help, description):
        sub = commands.add_parser(name, help=help, description=description, epilog=_EXIT_HELP,
                                  formatter_class=_help_formatter())
        sub.add_argument("path", metavar="PATH", help="the Memory location, or its 'joblite' sub-folder")
        sub.add_argument("--json", action="store_true",
                         help="print one JSON document (bytes, seconds since the epoch) instead of tables")
        sub.set_defaults(func=_run)
        return sub

    def function_option(sub, help):
        sub.add_argument("--function", metavar="F",
                         help=f"{help}: a func_id ('module/qualified name') or its qualified name part")

    command("info", "size and entries per function, the largest and oldest entries",
            "Show the entries, size and oldest/newest last access of each function and in all, "
            f"and the {_TOP} largest and least recently used entries.")

    sub = command("ls", "list entries", "List the entries: function, args_id, size, last access.")
    function_option(sub, "only this function")
    sub.add_argument("--sort", choices=_SORTS, default="name",
                     help="name (func_id, args_id; default), size (largest first) or age "
                          "(least recently used first)")
    sub.add_argument("--limit", type=_argument_type(_parse_count, "--limit"), metavar="N",
                     help="show at most N entries")

    sub = command("prune", "remove least-recently-used entries down to limits",
                  "Remove least-recently-used entries until every limit given holds, and what "
                  "killed processes left behind (stale temporaries and locks).")
    sub.add_argument("--bytes-limit", type=_argument_type(_parse_size, "--bytes-limit"), metavar="SIZE",
                     help="most bytes the entries may take: a number of bytes or e.g. 500M, 10G "
                          "(powers of 1024)")
    sub.add_argument("--items-limit", type=_argument_type(_parse_count, "--items-limit"), metavar="N",
                     help="most entries")
    sub.add_argument("--age-limit", type=_argument_type(parse_duration, "--age-limit"), metavar="AGE",
                     help="remove entries not used for longer: seconds, or e.g. 90s, 15m, 12h, 7d, 2w")

    sub = command("clear", "remove the entries of one function, or everything",
                  "Remove every entry of one function (and its code record), or everything in the "
                  "store. Asks for confirmation unless --yes is given.")
    function_option(sub, "clear only this function")
    sub.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    sub = command("verify", "check every entry by loading it; remove corrupt ones",
                  "Check every entry as a cache hit would load it, in a child process: container "
                  "structure, checksums of the pickle stream and of every block, the (metadata, result) "
                  "pair, then a real load with arrays memory-mapped. Loading runs the entries' pickled "
                  "code, as a cache hit does. Corrupt entries (and those that crash or hang the "
                  "loader) are reported and removed, and stale temporaries and locks swept; entries "
                  "that need a module this environment lacks are reported as not checkable and kept.")
    function_option(sub, "check only this function")
    sub.add_argument("--dry-run", action="store_true", help="report corrupt entries, remove nothing")
    sub.add_argument("--timeout", type=_argument_type(_parse_seconds, "--timeout"), metavar="S",
                     default=ENTRY_TIMEOUT,
                     help=f"seconds the loader may spend on one entry (default {ENTRY_TIMEOUT:g})")
    parser.set_defaults(func=_run)
    return parser


def _run(args):
    """Run the ``cache`` subcommand `args` names; return the exit status."""
    name = f"python -m joblite cache {args.cache_command}"
    if args.cache_command == "prune" and \
            args.bytes_limit is None and args.items_limit is None and args.age_limit is None:
        print(f"{name}: error: give at least one of --bytes-limit, --items-limit, --age-limit",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        return _COMMANDS[args.cache_command](args, name)
    except (StoreNotFoundError, UnknownFunctionError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        from .store import describe_os_error

        print(f"{name}: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_IO
    finally:
        _remove_own_temporaries(args.path)


def _remove_own_temporaries(path):
    """Remove this process's (empty) temporary folder from the store, if the command made one."""
    try:
        location = find_store(path)
    except StoreNotFoundError:
        return
    from .store import process_folder, remove_process_folder

    remove_process_folder(process_folder(os.path.join(location, "joblite")))


def _emit(args, report, printer, *extra):
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        printer(report, *extra)


def _info(args, name):
    _emit(args, store_info(args.path), _print_info)
    return EXIT_OK


def _ls(args, name):
    items = list_entries(args.path, args.function, args.sort, args.limit)
    entries = [_entry(item) for item in items]
    if args.json:
        _emit(args, {"location": find_store(args.path), "entries": entries}, None)
    elif entries:
        _entry_table(entries)
    else:
        print("no entries")
    return EXIT_OK


def _prune(args, name):
    report = prune_store(args.path, args.bytes_limit, args.items_limit, args.age_limit)
    _emit(args, report, _print_prune)
    return EXIT_IO if report["errors"] else EXIT_OK


def _clear(args, name):
    if not args.yes:
        store = open_store(args.path)
        items, func_id = _items(store, args.function)
        what = f"{_count(len(items), 'entry')} ({format_size(sum(item.size for item in items))}) of " + \
            (func_id if func_id else "every function")
        if not sys.stdin.isatty():
            print(f"{name}: error: would remove {what} in {store.location}; pass --yes to confirm "
                  "(standard input is not a terminal)", file=sys.stderr)
            return EXIT_USAGE
        answer = input(f"remove {what} in {store.location}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return EXIT_USAGE
    report = clear_store(args.path, args.function)
    _emit(args, report, lambda report: print(
        f"removed {_count(report['removed_entries'], 'entry')} ({format_size(report['removed_size'])}) of "
        f"{report['function'] or 'every function'} from {report['location']}"))
    return EXIT_OK


def _verify(args, name):
    report = verify_store(args.path, args.function, remove=not args.dry_run, timeout=args.timeout)
    _emit(args, report, _print_verify, not args.dry_run)
    if report["errors"]:
        return EXIT_IO
    return EXIT_CORRUPT if report["corrupt"] else EXIT_OK


_COMMANDS = {"info": _info, "ls": _ls, "prune": _prune, "clear": _clear, "verify": _verify}
