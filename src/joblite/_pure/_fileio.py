"""Pure-Python twin of ``joblite._ext._fileio``: file-system hints for large writes.

Python has no portable call that reserves blocks without changing the file
size (``os.posix_fallocate`` may write zeros on file systems that lack
``fallocate``), so the pure twin leaves allocation to the file system.  The
bytes written are the same either way.
"""


def preallocate(fd, length):
    """Reserve disk for `length` bytes of `fd`; the pure twin never does, and returns False.

    Parameters
    ----------
    fd : int
        An open, writable file descriptor.
    length : int
        Bytes to reserve from offset 0.

    Returns
    -------
    bool
        Always False here.
    """
    return False
