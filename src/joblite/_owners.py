"""Names of the process that owns a temporary file, folder or lock: ``'<pid>@<host>'``.

The cache store and the memmap folders of ``Parallel`` name what a process
writes after it, so that what a killed process left can be told apart from
what a live one is still using, also on a folder that many hosts share.
"""

import os
import socket

__all__ = ["HOST", "owner", "pid_alive", "dead_on_this_host"]

HOST = socket.gethostname()


def owner():
    """``'<pid>@<host>'`` of this process (read each time: the pid changes after a fork)."""
    return f"{os.getpid()}@{HOST}"


def pid_alive(pid):
    """Whether a process `pid` exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def dead_on_this_host(name):
    """Whether `name` (``'<pid>@<host>'``) is another process of this host that no longer exists."""
    pid, _, host = name.partition("@")
    return host == HOST and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))
