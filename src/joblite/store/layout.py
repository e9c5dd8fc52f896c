"""The layout of the ``'local'`` store: every folder and file it uses, named here and nowhere else.

Under ``<location>/joblite/`` (see the caching guide)::

    CACHEDIR.TAG                           marks the folder as a store (cachedir spec)
    <module>/<function>/func_code.json     code digest and source of the function
    <module>/<function>/<kk>/<key>.out     (metadata, result), in the persistence container format
    <module>/<function>/<kk>/.<key>.<pid>@<host>.<n>.tmp   an entry being written
    .tmp/<pid>@<host>/                     other temporaries of one process, and notes of
                                           the function folders it writes entries into
    .locks/<function token>-<key>.lock     "being computed" locks (backend_options={'lock': True})
    .usage.json                            size of the store at the last scan (bytes_limit)

``<key>`` is the hex digest of the call arguments and ``<kk>`` its first two
characters: 256 shard folders per function, so that millions of entries do
not land in one folder.  An entry is one file, written whole under a
temporary name and renamed: it holds the pair ``(metadata, result)``
(:func:`read_entry`, :func:`check_entry`), so that a miss creates one file
(creating files is the slow part of a write on shared filesystems) and a
validation callback reads the entry once.  The file's modification time is
the entry's last access.

The root holds :data:`STORE_TAG`: joblite writes into, or clears, only a
folder that has it (:func:`claim_root`, :func:`make_folder`).
"""

import errno
import json
import os
import re

from .. import _container, persistence
from .._owners import owner

__all__ = [
    "STORE_FOLDER",
    "STORE_TAG",
    "CODE_RECORD",
    "ENTRY_SUFFIX",
    "TMP_FOLDER",
    "LOCKS_FOLDER",
    "USAGE_RECORD",
    "store_root",
    "function_folder",
    "is_module_folder",
    "is_shard",
    "entry_path",
    "args_id_of",
    "entry_temporary",
    "is_temporary_of",
    "process_folder",
    "process_temporary",
    "note_name",
    "is_note",
    "lock_path",
    "scan_lock_path",
    "is_scan_lock",
    "lock_temporary",
    "is_lock",
    "is_lock_temporary",
    "is_store_root",
    "claim_root",
    "make_folder",
    "read_json_record",
    "read_entry",
    "check_entry",
]

#: The store's folder in a ``Memory`` location (joblib's is ``joblib``: both can share one).
STORE_FOLDER = "joblite"
#: Marks the root of a store (the Cache Directory Tagging specification, which
#: backup tools honour): joblite only writes into, or clears, a folder that has it.
STORE_TAG = "CACHEDIR.TAG"
_TAG_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by joblite (Memory).\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)
#: A function's code record, in its folder.
CODE_RECORD = "func_code.json"
#: The ending of an entry's file name, after its key.
ENTRY_SUFFIX = ".out"
#: The folder of the processes' temporary folders, in the root.
TMP_FOLDER = ".tmp"
#: The folder of the locks, in the root.
LOCKS_FOLDER = ".locks"
#: The size of the store at the last scan, in the root.
USAGE_RECORD = ".usage.json"
_SCAN_LOCK = "size-scan.lock"  # one process at a time scans for bytes_limit
_NOTE_PREFIX = "writes-"
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]")


# -- names and paths --------------------------------------------------------------------
def store_root(location):
    """The root folder of the store of the ``Memory`` location `location`."""
    return os.path.join(location, STORE_FOLDER)


def function_folder(root, func_id):
    """The folder of the entries of `func_id` (``'module/qualified name'``)."""
    module, _, name = func_id.partition("/")
    return os.path.join(root, _NAME_UNSAFE.sub("_", module), _NAME_UNSAFE.sub("_", name))


def is_module_folder(entry):
    """Whether the ``os.DirEntry`` `entry`, in the root, is the folder of a module's functions (not hidden)."""
    return not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)


def is_shard(entry):
    """Whether the ``os.DirEntry`` `entry`, in a function folder, is a shard folder of entries."""
    return len(entry.name) == 2 and entry.is_dir(follow_symlinks=False)


def entry_path(folder, args_id):
    """The file of the entry `args_id` of the function whose folder is `folder`."""
    return f"{folder}/{args_id[:2]}/{args_id}{ENTRY_SUFFIX}"


def args_id_of(name):
    """The key of the entry whose file is named `name`, or None if `name` is not an entry's."""
    return name[: -len(ENTRY_SUFFIX)] if name.endswith(ENTRY_SUFFIX) else None


def entry_temporary(path, args_id, writer, number):
    """The hidden temporary name, next to the entry file `path`, that `writer` (``pid@host``) writes it under.

    Next to the entry: a rename within one folder costs a third of one
    across folders (ext4), and the name is unique to the writer.
    """
    return f"{os.path.dirname(path)}/.{args_id}.{writer}.{number}.tmp"


def is_temporary_of(name, writer):
    """Whether `name`, in a shard folder, is a temporary entry of `writer` (``pid@host``)."""
    return name.startswith(".") and f".{writer}." in name and name.endswith(".tmp")


def process_folder(root):
    """This process's temporary folder in the store whose root folder is `root`."""
    return os.path.join(root, TMP_FOLDER, owner())


def process_temporary(folder, number, suffix):
    """The temporary number `number` of a process, in its folder `folder` (see :func:`process_folder`)."""
    return os.path.join(folder, f"{number}{suffix}")


def note_name(relative):
    """The name of the note that a process writes into the function folder `relative` (to the root)."""
    return f"{_NOTE_PREFIX}{_container.checksum(relative.encode()):016x}"


def is_note(name):
    """Whether `name`, in a process's temporary folder, is a note (see :func:`note_name`)."""
    return name.startswith(_NOTE_PREFIX)


def lock_path(root, func_id, args_id):
    """The lock on computing the entry `args_id` of `func_id`."""
    token = _container.checksum(func_id.encode())
    return os.path.join(root, LOCKS_FOLDER, f"{token:016x}-{args_id}.lock")


def scan_lock_path(root):
    """The lock that one process at a time holds while it scans the store for ``bytes_limit``."""
    return os.path.join(root, LOCKS_FOLDER, _SCAN_LOCK)


def is_scan_lock(name):
    """Whether `name`, in the locks folder, is the scan lock."""
    return name == _SCAN_LOCK


def is_lock(name):
    """Whether `name`, in the locks folder, is a lock."""
    return name.endswith(".lock")


def lock_temporary(path, writer, number, broken=False):
    """A name next to the lock `path` that `writer` (``pid@host``) takes it through, or breaks it through."""
    return f"{path}.{writer}.{number}.{'stale' if broken else 'new'}"


def is_lock_temporary(name):
    """Whether `name`, in the locks folder, is a temporary of :func:`lock_temporary`."""
    return name.endswith((".stale", ".new"))


# -- the root ---------------------------------------------------------------------------
def is_store_root(root):
    """Whether `root` is the root folder of a local store (it holds :data:`STORE_TAG`)."""
    return os.path.isfile(os.path.join(root, STORE_TAG))


def claim_root(root):
    """Create the store root `root`, or check that an existing folder is one.

    Raises
    ------
    ValueError
        If `root` exists, is not empty and is not a store: a folder that
        happens to be named ``joblite`` (a package's source, say) is never
        written into or cleared; or if it is not a folder.
    """
    if is_store_root(root):
        return
    if os.path.lexists(root) and not os.path.isdir(root):
        raise ValueError(
            f"{root} exists and is not a folder, so it cannot hold a joblite cache store; "
            "choose another location for Memory"
        )
    os.makedirs(root, exist_ok=True)
    with os.scandir(root) as entries:
        foreign = sorted(
            entry.name for entry in entries if entry.name != STORE_TAG and not entry.name.startswith(f".{STORE_TAG}.")
        )
    if foreign and not is_store_root(root):  # another process may have just made it a store
        raise ValueError(
            f"{root} exists and is not a joblite cache store (it has no {STORE_TAG} and "
            f"holds {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
            "choose another location for Memory"
        )
    temporary = f"{root}/.{STORE_TAG}.{owner()}"
    with open(temporary, "w", encoding="ascii") as fileobj:
        fileobj.write(_TAG_TEXT)
    os.replace(temporary, os.path.join(root, STORE_TAG))


def make_folder(root, folder):
    """Create `folder` (and its parents) in the store whose root folder is `root`.

    A store removed or replaced while a process uses it is not made again
    piecemeal (a folder of entries without its tag or code records): the
    ``FileNotFoundError`` names the root; a new ``Memory`` on its location
    creates it again.  With `root` None, `folder` is created as it is.
    """
    if root is not None and not is_store_root(root):
        raise FileNotFoundError(
            errno.ENOENT,
            "the cache store was removed or replaced while in use (a new Memory on its location creates it again)",
            root,
        )
    os.makedirs(folder, exist_ok=True)


# -- what the files hold ----------------------------------------------------------------
def read_json_record(path):
    """The JSON object in the file `path` (a code record, the usage record), or None if there is no file.

    Raises
    ------
    ValueError
        Naming `path`, if the file is not valid JSON or holds no JSON object.
    OSError
        If it cannot be read.
    """
    try:
        with open(path, "rb") as fileobj:
            record = json.loads(fileobj.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError as exc:  # also UnicodeDecodeError
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: holds a {type(record).__name__}, not a JSON object")
    return record


def read_entry(path, mmap_mode, keep=None):
    """Load the entry file `path`: return its ``(metadata, result)`` pair.

    Parameters
    ----------
    path : str
    mmap_mode : {None, 'r', 'r+', 'c'}
        Already checked.
    keep : list, optional
        As for :func:`joblite.persistence.load_path`.

    Raises
    ------
    CorruptFileError
        If the file is not a container holding such a pair.
    """
    pair = persistence.load_path(path, mmap_mode, None, keep)
    if not (type(pair) is tuple and len(pair) == 2 and type(pair[0]) is dict):
        raise persistence.CorruptFileError(f"{path}: not a joblite cache entry (metadata, result)")
    return pair


def check_entry(path):
    """Raise CorruptFileError unless the pickle stream of the container at `path` is a pair ``(dict, ...)``.

    What the store writes, ``(metadata, result)``, is pickled (protocol 5) as
    ``PROTO 5 [FRAME n] EMPTY_DICT ... TUPLE2 MEMOIZE STOP``: both ends of the
    stream tell, without unpickling it (and without reading an uncompressed
    stream whole).
    """
    with open(path, "rb") as fileobj:
        head, tail = _container.Container(fileobj, path).pickle_ends(16, 3)
    start = 11 if head[2:3] == b"\x95" else 2  # after PROTO 5 and an optional FRAME
    if head[:2] != b"\x80\x05" or head[start : start + 1] != b"}" or tail != b"\x86\x94.":
        raise persistence.CorruptFileError(
            f"{path}: not a joblite cache entry: its pickle stream is not a (metadata dict, result) pair"
        )
