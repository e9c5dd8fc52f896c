"""Task functions for tests/test_parallel.py.

They live in an importable module (``tests/`` is on ``sys.path`` under pytest,
and loky hands ``sys.path`` to its workers), so that worker processes unpickle
them by reference.  Functions that wait for a flag give up after
``WAIT_SECONDS`` and say so in their result: a broken implementation fails the
test instead of hanging it.
"""

import json
import os
import subprocess
import sys
import threading
import time

WAIT_SECONDS = 30.0


def square(x):
    return x * x


def negate(x):
    return -x


def add(x, y=0, *, z=0):
    return x + y + z


def getpid(_=None):
    return os.getpid()


def where(_=None):
    """The process and thread this task runs in."""
    return os.getpid(), threading.get_ident()


def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"fail_on refuses {x}")
    return x


def append_to(shared, x):
    """Mutate `shared` (a list of the caller, if memory is shared); return the pid."""
    shared.append(x)
    return os.getpid()


def wait_for_flag(flag, value):
    """Return ``(value, True)`` once `flag` exists (a path, or a threading.Event), ``(value, False)`` if it never did.

    `flag` None: return at once.
    """
    if flag is None:
        return value, True
    if isinstance(flag, threading.Event):
        return value, flag.wait(WAIT_SECONDS)
    deadline = time.monotonic() + WAIT_SECONDS
    while not os.path.exists(flag):
        if time.monotonic() > deadline:
            return value, False
        time.sleep(0.005)
    return value, True


def count_and_sleep(counter, x, seconds):
    """Append one line to the file `counter` when the task starts, then sleep."""
    with open(counter, "a") as stream:
        stream.write(f"{x}\n")
    time.sleep(seconds)
    return x


def set_event(event):
    event.set()
    return True


THREAD_LIMIT_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def thread_limits(_=None):
    """The BLAS/OpenMP environment variables, and the BLAS pools' sizes (threadpoolctl) in this worker."""
    env = {name: os.environ.get(name) for name in THREAD_LIMIT_VARIABLES}
    try:
        import numpy  # noqa: F401  (loads its BLAS)
        import threadpoolctl
    except ImportError:
        blas = None
    else:
        blas = sorted(
            {info["num_threads"] for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"}
        )
    return env, blas


def child_pids():
    """Pids of this process's children (psutil, else /proc), or None when that cannot be found out."""
    try:
        import psutil
    except ImportError:
        pass
    else:
        return sorted(child.pid for child in psutil.Process().children(recursive=True))
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    children = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stream:
                stat = stream.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == me:
            children.append(int(name))
    return sorted(children)


def nested(n_inner):
    """Run a nested Parallel(n_jobs=2) in this worker; report where its tasks ran and any child process."""
    from joblite import Parallel, delayed

    inner = Parallel(n_jobs=2)(delayed(where)() for _ in range(n_inner))
    return where(), inner, child_pids()


_SUBPROCESS_SCRIPT = """
import json, os, sys
import _parallel_funcs as funcs
from joblite import Parallel, delayed, effective_n_jobs
from joblite.backends import in_worker
ran = Parallel(n_jobs=2)(delayed(funcs.rendezvous)(sys.argv[1], 2) for _ in range(2))
print(json.dumps({"in_worker": in_worker(), "effective_n_jobs": effective_n_jobs(2),
                  "processes": len({pid for pid, _ in ran}), "ran_here": os.getpid() in {pid for pid, _ in ran},
                  "JOBLITE_IN_WORKER": os.environ.get("JOBLITE_IN_WORKER")}))
"""


def parallel_in_a_subprocess(folder):
    """Start a Python process (as a task may) that runs ``Parallel(n_jobs=2)``; return what it saw.

    Its two tasks meet in `folder` (:func:`rendezvous`), so two worker
    processes are needed for them to finish before ``WAIT_SECONDS``.
    """
    import joblite

    path = [
        os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__))),
        os.path.dirname(os.path.abspath(__file__)),
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path + [os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_SCRIPT, folder],
        env=env,
        capture_output=True,
        text=True,
        timeout=4 * WAIT_SECONDS,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the subprocess failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rendezvous(folder, parties):
    """Wait until `parties` tasks (in different workers) have reached this point; return where this one ran.

    Each task leaves a file ``<pid>-<thread>`` in `folder`; gives up after
    ``WAIT_SECONDS`` (the caller then sees fewer workers than it expected).
    """
    me = where()
    open(os.path.join(folder, f"{me[0]}-{me[1]}"), "w").close()
    deadline = time.monotonic() + WAIT_SECONDS
    while len(os.listdir(folder)) < parties and time.monotonic() < deadline:
        time.sleep(0.005)
    return me


class TwoArgumentError(Exception):
    """An exception that pickles but does not unpickle (its __init__ needs two arguments)."""

    def __init__(self, first, second):
        super().__init__(f"{first} and {second}")


def raise_two_argument_error(x):
    raise TwoArgumentError(x, "more")
