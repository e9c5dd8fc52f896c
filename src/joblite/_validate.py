"""Checks of option values shared by several modules: one rule and one message each.

A bad value raises ``ValueError`` naming the option and the value, as it
was given, so the message points at the caller's mistake.
"""

import math
import numbers
import operator
import re

__all__ = ["MMAP_MODES", "as_int", "check_mmap_mode", "parse_age", "parse_size"]

#: The ``mmap_mode`` values joblib accepts, None (no memory map) first.
MMAP_MODES = (None, "r", "r+", "w+", "c")


def check_mmap_mode(mmap_mode, name="mmap_mode", none_allowed=True):
    """The mode to map an existing file with: `mmap_mode` itself, with ``'w+'`` read as ``'r+'``.

    ``'w+'`` would create or truncate the file; joblib maps an existing file
    ``'r+'`` when asked for ``'w+'``, and so does joblite, everywhere.

    Parameters
    ----------
    mmap_mode : {None, 'r', 'r+', 'w+', 'c'}
        As given by the user.
    name : str, optional
        The option's name in the error message.
    none_allowed : bool, optional
        Whether None (no memory map) is accepted.

    Returns
    -------
    {None, 'r', 'r+', 'c'}

    Raises
    ------
    ValueError
        Naming `name` and the value, when it is not one of the accepted modes.
    """
    accepted = MMAP_MODES if none_allowed else MMAP_MODES[1:]
    if not (mmap_mode is None or isinstance(mmap_mode, str)) or mmap_mode not in accepted:
        raise ValueError(f"{name}={mmap_mode!r} is not one of {', '.join(map(repr, accepted))}")
    return "r+" if mmap_mode == "w+" else mmap_mode


def as_int(value):
    """`value` as an int if it is an integer (numpy integers too), else None.

    Parameters
    ----------
    value : object
        Anything; bools are not integers here.

    Returns
    -------
    int or None
    """
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


_SIZE = re.compile(r"\s*((?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*([KMGT]?)i?B?\s*", re.IGNORECASE)


def parse_size(value, name):
    """Bytes from a number or a string with a K/M/G/T suffix (powers of 1024), as joblib reads them.

    Parameters
    ----------
    value : int, float, str or None
        ``1048576``, ``1e6`` (a float that is a whole number of bytes),
        ``'1M'``, ``'1.5 GiB'``, ``'1e6'``...; a suffix multiplies, and the
        product is rounded down to whole bytes, as joblib does.  None stays
        None.
    name : str
        The option's name in the error message.

    Returns
    -------
    int or None
        Bytes.

    Raises
    ------
    ValueError
        Naming `name` and the value, if it is none of these, negative, not
        finite, or a fraction of a byte without a suffix (``1.5``).
    """
    if value is None:
        return None
    size = _bytes(value)
    if size is None:
        raise ValueError(
            f"{name}={value!r} must be a whole number of bytes (an int, or a float such as "
            "1e6) or a string like '500M' or '10G'"
        )
    if size < 0:
        raise ValueError(f"{name}={value!r} must not be negative")
    return size


def _bytes(value):
    """`value` as a whole number of bytes (negative too), or None if it is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return int(value) if math.isfinite(value) and value.is_integer() else None
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    number, unit = match.group(1), 1024 ** " KMGT".index(match.group(2).upper() or " ")
    if number.isdigit():
        return int(number) * unit
    size = float(number) * unit
    if not math.isfinite(size) or (unit == 1 and not size.is_integer()):
        return None
    return int(size)  # '0.3K': joblib rounds a fraction of a byte down


_AGE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", re.IGNORECASE)
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(value, name):
    """Seconds from a number, a ``datetime.timedelta``, or a text such as ``'90'``, ``'90s'``, ``'15m'``, ``'2w'``.

    Parameters
    ----------
    value : float, datetime.timedelta, str or None
        None stays None.
    name : str
        The option's name in the error message.

    Returns
    -------
    float or None
        Seconds.

    Raises
    ------
    ValueError
        Naming `name` and the value, if it is none of these, or negative.
    """
    if value is None:
        return None
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else value
    if isinstance(seconds, str):
        match = _AGE.fullmatch(seconds)
        if match is not None:
            return float(match.group(1)) * _AGE_UNITS[match.group(2).lower()]
    elif not isinstance(seconds, bool) and isinstance(seconds, (int, float)) and seconds >= 0:
        return float(seconds)
    raise ValueError(
        f"{name}={value!r} must be a datetime.timedelta, a number of seconds >= 0 or a "
        "string like '90s', '15m', '12h', '7d' or '2w'"
    )
