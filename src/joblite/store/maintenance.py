"""Maintenance of a ``'local'`` store as functions: find it, and info, ls, prune, clear, verify.

``python -m joblite cache`` (:mod:`joblite.store.cli`) prints what these
return.  ``PATH`` is the folder given to ``Memory(location)``, or its
``joblite`` sub-folder.  Only :func:`verify_store` unpickles results, in a
child process (:mod:`joblite.store.loader`), so that an entry that crashes
the loader is reported instead of ending the command.
"""

import os

from . import layout
from .base import describe_os_error, store_backend
from .loader import Loader
from .local import remove_process_folder
from .options import ENTRY_TIMEOUT, SORTS, TOP

__all__ = [
    "StoreNotFoundError",
    "UnknownFunctionError",
    "find_store",
    "open_store",
    "resolve_function",
    "select_items",
    "store_info",
    "list_entries",
    "prune_store",
    "clear_store",
    "verify_store",
    "remove_own_temporaries",
]

_SHOWN_CANDIDATES = 20  # function names listed in an error message


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
    return None if layout.is_store_root(root) else f"it has no {layout.STORE_TAG} file"


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
    candidates = [(path, layout.store_root(path))]
    if os.path.basename(os.path.normpath(os.path.abspath(path))) == layout.STORE_FOLDER:
        candidates.append((os.path.dirname(os.path.normpath(os.path.abspath(path))), path))
    problems = []
    for location, root in candidates:
        if not os.path.isdir(root):
            continue
        problem = _not_a_store(root)
        if problem is None:
            return location
        problems.append(f"{root} is not a joblite store: {problem}")
    detail = "; ".join(problems) if problems else f"there is no folder {layout.store_root(path)}"
    raise StoreNotFoundError(
        f"{path}: no joblite cache store here ({detail}); give the folder passed "
        f"to Memory(location) or its {layout.STORE_FOLDER!r} sub-folder"
    )


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
        raise UnknownFunctionError(
            f"function {name!r} is ambiguous in the cache at {store.location}: it "
            f"matches {_listing(matches)}; give one of these in full",
            name,
            matches,
        )
    known = f"its functions are {_listing(func_ids)}" if func_ids else "it holds no function"
    raise UnknownFunctionError(f"no function {name!r} in the cache at {store.location}; {known}", name, func_ids)


def _listing(names):
    shown = ", ".join(names[:_SHOWN_CANDIDATES])
    if len(names) > _SHOWN_CANDIDATES:
        shown += f" (and {len(names) - _SHOWN_CANDIDATES} more)"
    return shown


def select_items(store, function):
    """The entries of the function `function` names, and its func_id; all entries and None when it is None.

    Raises
    ------
    UnknownFunctionError
        As :func:`resolve_function`.
    """
    func_id = None if function is None else resolve_function(store, function)
    return store.get_items(func_id), func_id


# -- the commands as functions ---------------------------------------------------------
def store_info(path, top=TOP):
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
    groups = {func_id: _Summary() for func_id, _ in store.function_dirs()}
    total = _Summary()
    # Streamed, one entry at a time: a store of millions of entries is never held whole.
    largest, oldest = [], []
    for item in store.iter_items():
        group = groups.get(item.func_id)
        if group is None:
            group = groups[item.func_id] = _Summary()
        group.add(item)
        total.add(item)
        _keep(largest, top, item, "size")
        _keep(oldest, top, item, "age")
    functions = [group.fields(func_id=func_id) for func_id, group in groups.items()]
    functions.sort(key=lambda row: (-row["size"], row["func_id"]))
    return {
        "location": store.location,
        "root": store.root,
        "functions": functions,
        "total": total.fields(functions=len(groups)),
        "largest": [item._asdict() for item in _sorted(largest, "size")[:top]],
        "oldest": [item._asdict() for item in _sorted(oldest, "age")[:top]],
    }


class _Summary:
    """Entries, bytes and the access-time range of the entries added so far."""

    def __init__(self):
        self.entries = self.size = 0
        self.oldest = self.newest = None

    def add(self, item):
        self.entries += 1
        self.size += item.size
        if self.oldest is None or item.last_access < self.oldest:
            self.oldest = item.last_access
        if self.newest is None or item.last_access > self.newest:
            self.newest = item.last_access

    def fields(self, **fields):
        fields.update(entries=self.entries, size=self.size, oldest_access=self.oldest, newest_access=self.newest)
        return fields


def _keep(kept, top, item, sort):
    """Add `item` to `kept`, cut back to its first `top` in :func:`_sorted`'s `sort` order when it gets long."""
    kept.append(item)
    if len(kept) >= 2 * top + 64:
        kept[:] = _sorted(kept, sort)[:top]


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
    if sort not in SORTS:
        raise ValueError(f"sort={sort!r} is not one of {SORTS}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit={limit!r} must be an int >= 0")
    items, _ = select_items(open_store(path), function)
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
        ``'7d'`` (units s, m, h, d, w) or a timedelta.

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
    if bytes_limit is None and items_limit is None and age_limit is None:
        raise ValueError("give at least one of bytes_limit, items_limit and age_limit")
    store = open_store(path)
    swept = _sweep(store)  # first: the store sweeps by itself once it writes a temporary
    removed, failed = store.evict(bytes_limit=bytes_limit, items_limit=items_limit, age_limit=age_limit)
    usage = store.read_usage()
    return {
        "location": store.location,
        "removed": [item._asdict() for item in removed],
        "removed_size": sum(item.size for item in removed),
        "remaining_size": None if usage is None else usage[0],
        "errors": [dict(item._asdict(), error=describe_os_error(exc)) for item, exc in failed],
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
    items, func_id = select_items(store, function)
    if func_id is None:
        store.clear()
    else:
        store.clear_path(func_id)
    return {
        "location": store.location,
        "function": func_id,
        "removed_entries": len(items),
        "removed_size": sum(item.size for item in items),
    }


def _same_file(before, path):
    try:
        after = os.stat(path)
    except FileNotFoundError:
        return False
    return (after.st_ino, after.st_dev, after.st_mtime_ns) == (before.st_ino, before.st_dev, before.st_mtime_ns)


def verify_store(path, function=None, remove=True, timeout=ENTRY_TIMEOUT):
    """Check every entry of a store by loading it as a cache hit would; remove the corrupt ones.

    Each result file is checked in a child process: its container structure
    and every checksum (:func:`joblite._container.verify_file`), the
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
        record = os.path.join(folder, layout.CODE_RECORD)
        entry = {"func_id": owner, "args_id": None, "path": record, "removed": False}
        try:
            layout.read_json_record(record)
        except OSError as exc:
            errors.append(dict(entry, error=f"cannot be read: {describe_os_error(exc)}"))
        except ValueError as exc:
            entry["error"] = f"code record: {exc}"
            if remove:
                remove_corrupt(entry, store.clear_path, owner)
                cleared.add(owner)
            corrupt.append(entry)
    checked, valid, checked_size = 0, 0, 0
    loader = Loader(timeout)
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


def remove_own_temporaries(path):
    """Remove this process's (empty) temporary folder from the store `path` names, if a command made one.

    Parameters
    ----------
    path : str or pathlib.Path
        As for :func:`find_store`; a path without a store is left alone.
    """
    try:
        location = find_store(path)
    except StoreNotFoundError:
        return
    remove_process_folder(layout.process_folder(layout.store_root(location)))
