"""Checks of option values shared by several modules: one rule and one message each.

A bad value raises ``ValueError`` naming the option and the value, as it
was given, so the message points at the caller's mistake.
"""
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


_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)i?B?\s*", re.IGNORECASE)


def parse_size(value, name):
    """Bytes from an int or a string with a K/M/G/T suffix (powers of 1024), as joblib reads them.

    Parameters
    ----------
    value : int, str or None
        ``1048576``, ``'1M'``, ``'1.5 GiB'``...; None stays None.
    name : str
        The option's name in the error message.

    Returns
    -------
    int or None
        Bytes.

    Raises
    ------
    ValueError
        Naming `name` and the value, if it is neither, or negative.
    """
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{name}={value!r} must not be negative")
        return int(value)
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match:
            power = " KMGT".index(match.group(2).upper() or " ")
            return int(float(match.group(1)) * 1024 ** power)
    raise ValueError(f"{name}={value!r} must be a number of bytes or a string like '10G'")


_AGE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", re.IGNORECASE)
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(value, name):
    """Seconds from a number, a ``datetime.timedelta``, or ``'90'``, ``'90s'``, ``'15m'``, ``'12h'``, ``'7d'``, ``'2w'``.

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
    raise ValueError(f"{name}={value!r} must be a datetime.timedelta, a number of seconds >= 0 or a "
                     "string like '90s', '15m', '12h', '7d' or '2w'")
