"""Option values shared by several modules (``joblite._validate``): what is accepted, and messages naming the option."""

import datetime
import re

import numpy as np
import pytest

from joblite._validate import MMAP_MODES, as_int, check_mmap_mode, parse_age, parse_size


def refused(name, value):
    """A ``pytest.raises`` for a ValueError whose message names the option and the value as given."""
    return pytest.raises(ValueError, match=re.escape(f"{name}={value!r}"))


@pytest.mark.parametrize("mmap_mode, expected", [(None, None), ("r", "r"), ("r+", "r+"), ("w+", "r+"), ("c", "c")])
def test_mmap_modes_are_joblibs_and_w_plus_maps_an_existing_file_r_plus(mmap_mode, expected):
    assert mmap_mode in MMAP_MODES
    assert check_mmap_mode(mmap_mode) == expected


@pytest.mark.parametrize("mmap_mode", ["w", "rw", "R", "r ", "", b"r", 1, ["r"], True])
def test_other_mmap_modes_are_refused_naming_the_option_and_every_accepted_mode(mmap_mode):
    with refused("mmap_mode", mmap_mode) as info:
        check_mmap_mode(mmap_mode)
    assert "None, 'r', 'r+', 'w+', 'c'" in str(info.value)
    with refused("Memory.mmap_mode", mmap_mode):
        check_mmap_mode(mmap_mode, name="Memory.mmap_mode")


def test_none_is_refused_where_a_map_is_required():
    with refused("mmap_mode", None) as info:
        check_mmap_mode(None, none_allowed=False)
    assert "'r', 'r+', 'w+', 'c'" in str(info.value) and "None," not in str(info.value)
    assert check_mmap_mode("w+", none_allowed=False) == "r+"


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        (0, 0),
        (1048576, 1 << 20),
        (np.int64(5), 5),
        ("512", 512),
        ("1K", 1024),
        ("2kb", 2048),
        ("1M", 1 << 20),
        ("1.5 GiB", 3 << 29),
        (" 10G ", 10 << 30),
        ("3T", 3 << 40),
        ("1mib", 1 << 20),
        (".5K", 512),
        ("1e6", 10**6),
        ("1e3K", 1024000),
        (2**70, 2**70),
        # floats that are whole numbers of bytes: joblib's max_nbytes=1e6 (its pool's default)
        (1e6, 10**6),
        (0.0, 0),
        (np.float64(2048.0), 2048),
        (2.0**60, 2**60),
        # a suffix can make a fraction of a byte: rounded down, as joblib's memstr_to_bytes does
        ("0.3K", 307),
    ],
)
def test_sizes_are_bytes_in_powers_of_1024(value, expected):
    size = parse_size(value, "bytes_limit")
    assert size == expected and (size is None or type(size) is int)


@pytest.mark.parametrize(
    "value",
    [
        -1,
        -1.0,
        -1e6,
        True,
        np.bool_(False),
        1.5,
        np.float32(0.5),
        float("nan"),
        float("inf"),
        float("-inf"),
        "",
        "M",
        "10X",
        "-1M",
        "1.5",
        "1e999",
        "1 2M",
        "1_000",
        [1],
        b"1M",
    ],
)
def test_other_sizes_are_refused_naming_the_option(value):
    with refused("--bytes-limit", value):
        parse_size(value, "--bytes-limit")


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        (0, 0.0),
        (90, 90.0),
        (2.5, 2.5),
        (datetime.timedelta(minutes=15), 900.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("12h", 43200.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        (".5h", 1800.0),
        (" 1.5 D ", 129600.0),
    ],
)
def test_ages_are_seconds(value, expected):
    age = parse_age(value, "--age-limit")
    assert age == expected and (age is None or type(age) is float)


@pytest.mark.parametrize(
    "value", [-1, -0.5, True, datetime.timedelta(seconds=-5), "", "h", "10y", "-3d", "1h30m", "abc", [1]]
)
def test_other_ages_are_refused_naming_the_option(value):
    with refused("--age-limit", value):
        parse_age(value, "--age-limit")


@pytest.mark.parametrize(
    "value, expected",
    [
        (0, 0),
        (-7, -7),
        (2**70, 2**70),
        (np.int64(5), 5),
        (np.uint8(255), 255),
        (True, None),
        (np.bool_(True), None),
        (2.0, None),
        ("3", None),
        (None, None),
    ],
)
def test_integers_are_ints_and_numpy_integers_but_not_bools(value, expected):
    got = as_int(value)
    assert got == expected and (got is None or type(got) is int)
