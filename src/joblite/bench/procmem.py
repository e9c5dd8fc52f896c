"""Memory of processes and of memmap folders, read from Linux's /proc.

Two measures of the benchmark's fresh processes (see :mod:`joblite.bench.children`):

* the peak of one process's own memory across a call: :func:`start_peak`
  resets the kernel's high-water mark (``VmHWM``) and :func:`Peak.read` reads it;
* the memory of a process, of its children (the workers of ``Parallel``) and
  of the memmap folders it made, sampled in a background thread across a
  call: :class:`MemorySampler`.
"""

import os
import sys
import threading

__all__ = [
    "MEMMAP_FOLDER_PREFIXES",
    "MEMORY_SAMPLE_INTERVAL",
    "MemorySampler",
    "Peak",
    "allocated_bytes",
    "descendants",
    "memmap_folder_parents",
    "memmap_folders",
    "pss_anon",
    "start_peak",
]

#: Seconds between two samples of :class:`MemorySampler`.
MEMORY_SAMPLE_INTERVAL = 0.005

#: Prefixes of the memmap folders of joblite and joblib, followed by the pid of the process that made them.
MEMMAP_FOLDER_PREFIXES = {"joblite": "joblite_memmapping_{pid}@", "joblib": "joblib_memmapping_folder_{pid}_"}


# -- peak of this process -------------------------------------------------------------------


class Peak:
    """The memory of this process before a call, and how to read its peak after.

    Attributes
    ----------
    before : int
        Bytes resident when :func:`start_peak` was called.
    method : str
        ``'VmHWM reset'`` (Linux: the kernel's high-water mark, reset to the
        resident size) or ``'ru_maxrss'`` (elsewhere: the growth of the
        process's maximum resident size, which can understate a peak below an
        earlier one).
    """

    def __init__(self, before, method):
        self.before = before
        self.method = method

    def read(self):
        """Bytes of the peak resident size since :func:`start_peak`."""
        return _status("VmHWM") if self.method == "VmHWM reset" else _maxrss()


def start_peak():
    """Start measuring this process's peak resident memory (reset the high-water mark where possible).

    Returns
    -------
    Peak
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return Peak(_status("VmRSS"), "VmHWM reset")
    except OSError:
        return Peak(_maxrss(), "ru_maxrss")


def _status(key):
    """Bytes of the line `key` (``VmRSS``, ``VmHWM``) of /proc/self/status."""
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {key} line")


def _maxrss():
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


# -- a process, its children and its memmap folders -----------------------------------------


def pss_anon(pid):
    """Bytes of anonymous memory of `pid`, proportional share (``Pss_Anon``); 0 if it ended.

    Raises
    ------
    OSError
        When the kernel has no ``Pss_Anon`` (before Linux 5.x).
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as file:
            for line in file:
                if line.startswith(b"Pss_Anon:"):
                    return int(line.split()[1]) * 1024
    except (ProcessLookupError, FileNotFoundError):
        return 0
    raise OSError(f"/proc/{pid}/smaps_rollup has no Pss_Anon line (Linux 5.x or later needed)")


def _children(pid):
    """Process ids of the children of `pid` (all its threads'), from /proc."""
    found = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as file:
                found += [int(child) for child in file.read().split()]
        except OSError:
            pass
    return found


def descendants(pid):
    """Process ids of the children of `pid`, their children, and so on."""
    found, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


def memmap_folder_parents(temp_folder=None):
    """The folders where joblite and joblib may make their memmap folders.

    `temp_folder` when given; else ``/dev/shm``, the system's temporary
    folder and the folders named by ``JOBLITE_TEMP_FOLDER`` and
    ``JOBLIB_TEMP_FOLDER``.
    """
    import tempfile

    if temp_folder is not None:
        return [os.fspath(temp_folder)]
    parents = ["/dev/shm", tempfile.gettempdir()]
    parents += [os.environ[name] for name in ("JOBLITE_TEMP_FOLDER", "JOBLIB_TEMP_FOLDER") if os.environ.get(name)]
    return [parent for i, parent in enumerate(parents) if parent not in parents[:i]]


def memmap_folders(parents, pid):
    """Paths of the memmap folders that process `pid` made (joblite's and joblib's) in `parents`."""
    prefixes = tuple(prefix.format(pid=pid) for prefix in MEMMAP_FOLDER_PREFIXES.values())
    found = []
    for parent in parents:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        found += [os.path.join(parent, name) for name in names if name.startswith(prefixes)]
    return found


def allocated_bytes(folder):
    """Bytes allocated to the files under `folder` (``st_blocks``); 0 for what vanishes meanwhile."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


class MemorySampler:
    """Samples, in a background thread, the memory of this process, its children and memmap folders.

    One sample is ``(caller, workers, folder)`` in bytes: the ``Pss_Anon`` of
    this process, the sum of the ``Pss_Anon`` of its descendants, and the
    bytes allocated to the memmap folders this process made in `parents`.
    Used as a context manager around the call measured: :attr:`peak` is then
    the sample of the largest sum, :attr:`samples` their number.

    Parameters
    ----------
    parents : list of str
        Where the memmap folders are made (:func:`memmap_folder_parents`).
    interval : float, default MEMORY_SAMPLE_INTERVAL
        Seconds between two samples.
    """

    def __init__(self, parents, interval=MEMORY_SAMPLE_INTERVAL):
        self.parents = parents
        self.interval = interval
        self.pid = os.getpid()
        self.peak = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="joblite-bench-memory", daemon=True)
        self._error = None

    def sample(self):
        """One sample ``(caller, workers, folder)``, in bytes."""
        caller = pss_anon(self.pid)
        workers = sum(pss_anon(pid) for pid in descendants(self.pid))
        folder = sum(allocated_bytes(path) for path in memmap_folders(self.parents, self.pid))
        return caller, workers, folder

    def _record(self):
        sample = self.sample()
        self.samples += 1
        if self.peak is None or sum(sample) > sum(self.peak):
            self.peak = sample

    def _run(self):
        try:
            while not self._stop.wait(self.interval):
                self._record()
        except BaseException as exc:  # reported by __exit__
            self._error = exc

    def __enter__(self):
        self._record()
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._record()
