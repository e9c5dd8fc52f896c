"""Deliberately broken kernels, built only by a debug build (``JOBLITE_DEBUG=1``, see setup.py).

``tests/test_sanitizer.py`` calls each in a subprocess to show that the
sanitizers stop the process at the errors the real kernels' checks exist to
prevent: a read past the end of a buffer, a read of a freed object's bytes
(a borrowed reference held while Python code runs, the hasher's old bug),
and undefined behaviour.  Whether this module can be imported is how the
tests tell a debug build; the normal build skips this file.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t

# What the debug build turns on (setup.py's compiler flags).
SANITIZERS = ("address", "undefined")


cdef uint64_t checksum(const unsigned char *data, Py_ssize_t n) noexcept nogil:
    """Sum of the `n` bytes at `data`: a kernel that trusts its caller's length."""
    cdef uint64_t total = 0
    cdef Py_ssize_t i
    for i in range(n):
        total += data[i]
    return total


def sum_bytes(bytes data, Py_ssize_t n):
    """Sum of the first `n` bytes of `data`, `n` unchecked: beyond ``len(data)`` it reads past the end."""
    cdef const unsigned char *start = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef uint64_t total
    with nogil:
        total = checksum(start, n)
    return total


def sum_after_call(list items, callback):
    """Sum of the bytes of ``items[0]``, read after ``callback()`` through a borrowed pointer.

    Broken on purpose: nothing holds a reference to ``items[0]`` while
    `callback` runs, so if it drops the list's, the sum reads freed memory.
    """
    cdef PyObject *borrowed = PyList_GET_ITEM(items, 0)
    cdef const unsigned char *data = <const unsigned char *>PyBytes_AS_STRING(<object>borrowed)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(<object>borrowed)
    callback()
    return checksum(data, n)


def shift_left(int value, int bits):
    """``value << bits`` in C ints, `bits` unchecked: 32 or more is undefined behaviour."""
    return value << bits
