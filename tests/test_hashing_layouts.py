"""Hashing arrays of every memory layout: the digest is that of the C-ordered copy.

A non-contiguous array is gathered into C order before it is digested (the
compiled twin by tiled, item-size-specialised kernels, the pure twin through
numpy's copies); the digest must not depend on the layout.  Each case hashes a
view with each twin and compares it with the hash of
``np.ascontiguousarray(view)``, and the compiled twin with the pure one.  The
shapes cover the kernels' edges: 0-size, one row, one column, negative
strides, sizes that are not multiples of a tile (16 bytes of a vector block,
a 64-byte tile row, 128 tile rows), and rows at the gather chunk's size.
"""

import numpy as np
import pytest

from joblite import hash
from joblite.hashing import hash_with_twin

DTYPES = ["u1", "i2", "f4", "f8", "c16", "S3"]  # item sizes 1, 2, 4, 8, 16, and 3 (generic copy)


def _base(dtype, n):
    """`n` items of `dtype` whose bytes all differ from their neighbours'."""
    dtype = np.dtype(dtype)
    raw = np.random.default_rng(n).integers(0, 256, n * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype)


def _layouts(dtype):
    """(name, view) pairs of the layouts hashed by the bench, in small sizes and odd shapes."""
    a = _base(dtype, 30_011)  # a prime: nothing divides evenly
    m = _base(dtype, 131 * 67).reshape(131, 67)
    f = np.asfortranarray(m)
    cube = _base(dtype, 9 * 38 * 21).reshape(9, 38, 21)
    yield "1-D [::2]", a[::2]
    yield "1-D [::3]", a[::3]
    yield "1-D [::-1]", a[::-1]
    yield "1-D [::-5]", a[::-5]
    yield "C column X[:, j]", m[:, 7]
    yield "C columns X[:, ::2]", m[:, ::2]
    yield "C rows X[::2]", m[::2]
    yield "C rows and columns X[1::3, 2::2]", m[1::3, 2::2]
    yield "C column block X[:, 3:40]", m[:, 3:40]
    yield "C transposed X.T", m.T
    yield "F order", f
    yield "F row X[j]", f[5]
    yield "F rows X[::2]", f[::2]
    yield "F columns X[:, ::3]", f[:, ::3]
    yield "F reversed X[::-1, ::-1]", f[::-1, ::-1]
    yield "F rows reversed X[::-1]", f[::-1]
    yield "F wide (3 rows)", np.asfortranarray(_base(dtype, 3 * 1001).reshape(3, 1001))
    yield "F tall (2 columns)", np.asfortranarray(_base(dtype, 1001 * 2).reshape(1001, 2))
    yield "F (17, 129): not a multiple of a tile", np.asfortranarray(_base(dtype, 17 * 129).reshape(17, 129))
    yield "F (129, 17)", np.asfortranarray(_base(dtype, 129 * 17).reshape(129, 17))
    yield "F (257, 33)", np.asfortranarray(_base(dtype, 257 * 33).reshape(257, 33))
    yield "3-D A[:, ::2, 1:]", cube[:, ::2, 1:]
    yield "3-D A[::-2, 5:, ::3]", cube[::-2, 5:, ::3]
    yield "3-D F order", np.asfortranarray(cube)
    yield "3-D transposed axes (1, 2, 0)", cube.transpose(1, 2, 0)
    yield "3-D F slice [:, ::2, 1:]", np.asfortranarray(cube)[:, ::2, 1:]
    yield "one row (1, n) strided", m[:1, ::2]
    yield "one column (n, 1)", m[:, 3:4]
    yield "one item", m[4:5, 6:7]
    yield "size-1 axes kept (n, 1, k)", m[:, None, ::2]
    yield "0-size rows", m[:0, ::2]
    yield "0-size columns", f[:, :0]
    yield "0-size 3-D", cube[:, :0, ::2]
    yield "zero stride (broadcast)", np.broadcast_to(a[:50], (40, 50))
    yield "zero stride rows (broadcast column)", np.broadcast_to(a[:40, None], (40, 50))


CASES = [(dtype, name) for dtype in DTYPES for name, _ in _layouts(dtype)]


def _view(dtype, name):
    return dict(_layouts(dtype))[name]


@pytest.mark.parametrize("dtype, name", CASES, ids=[f"{d}-{n}" for d, n in CASES])
def test_a_view_hashes_as_its_c_ordered_copy_with_either_twin(twins, dtype, name):
    view = _view(dtype, name)
    copy = np.ascontiguousarray(view)
    expected = hash_with_twin("pure", copy)
    assert hash_with_twin("pure", view) == expected
    assert hash_with_twin("ext", view) == expected
    assert hash_with_twin("ext", copy) == expected


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_active_twin_hashes_every_layout_as_its_copy(dtype):
    # the public API, on whichever twin is active (CI runs this file on each)
    for name, view in _layouts(dtype):
        assert hash(view) == hash(np.ascontiguousarray(view)), name
    assert len({hash(view) for _, view in _layouts(dtype) if view.size}) > 20  # the cases differ


def test_a_view_differs_from_another_layout_of_the_same_bytes():
    m = _base("f8", 64 * 64).reshape(64, 64)
    assert hash(m.T) != hash(m)
    assert hash(m[:, ::2]) != hash(m[:, 1::2])
    assert hash(m[::-1]) != hash(m)


# Large enough for the chunked paths: rows wider than a chunk, many chunks,
# the 128-row tiles, and the compiled twin's larger scratch for wide F arrays.
BIG_CASES = {
    "1-D u1 [::3], 3 MiB": lambda: _base("u1", 3 << 20)[::3],
    "1-D f8 [::2], 6 MiB": lambda: _base("f8", 3 << 17)[::-2],
    "F u1 (2048, 3001)": lambda: np.asfortranarray(_base("u1", 2048 * 3001).reshape(2048, 3001)),
    "F i2 (1031, 2053)": lambda: _base("i2", 1031 * 2053).reshape(2053, 1031).T,
    # wide: rows long enough for the padded, banded scratch; 32-byte blocks and their tails
    "F u1 wide (2048, 5003)": lambda: _base("u1", 2048 * 5003).reshape(5003, 2048).T,
    "F i2 wide (1040, 4099)": lambda: _base("i2", 1040 * 4099).reshape(4099, 1040).T,
    "F f4 (300, 9001)": lambda: _base("f4", 300 * 9001).reshape(9001, 300).T,
    "F f8 (2048, 520) rows reversed": lambda: _base("f8", 2048 * 520).reshape(520, 2048).T[::-1],
    "F c16 (1500, 700)": lambda: _base("c16", 1500 * 700).reshape(700, 1500).T,
    "F f8 tall (200003, 3)": lambda: _base("f8", 200_003 * 3).reshape(3, 200_003).T,
    "C f8 column of (300000, 7)": lambda: _base("f8", 300_000 * 7).reshape(300_000, 7)[:, 2],
    "3-D f8 [:, ::2, 1:] (16, 130, 257)": lambda: _base("f8", 16 * 130 * 257).reshape(16, 130, 257)[:, ::2, 1:],
    "F f8 one row longer than a chunk (3, 300000)": lambda: _base("f8", 900_000).reshape(300_000, 3).T,
    "F u1 rows [::2] of (4097, 700)": lambda: _base("u1", 4097 * 700).reshape(700, 4097).T[::2],
    "F i2 rows [1::2] of (3001, 400)": lambda: _base("i2", 3001 * 400).reshape(400, 3001).T[1::2],
    "F f4 rows [::2] of (2049, 333)": lambda: _base("f4", 2049 * 333).reshape(333, 2049).T[::2],
    "F f8 rows [::2] of (2047, 520)": lambda: _base("f8", 2047 * 520).reshape(520, 2047).T[::2],
    # rows at, just under and just over the compiled twin's 1 MiB chunk
    "1-D u1 [::2], 1 MiB": lambda: _base("u1", 1 << 21)[::2],
    "1-D u1 [::-2], 1 MiB - 32": lambda: _base("u1", (1 << 21) - 64)[::-2],
    "1-D u1 [::2], 1 MiB + 1": lambda: _base("u1", (1 << 21) + 2)[::2],
    "C f8 (3, 1 MiB) [:, ::2]": lambda: _base("f8", 3 << 18).reshape(3, 1 << 18)[:, ::2],
    "F f8 (5, 1 MiB)": lambda: _base("f8", 5 << 17).reshape(1 << 17, 5).T,
}


@pytest.mark.parametrize("name", list(BIG_CASES))
def test_large_views_hash_as_their_copies_with_both_twins(twins, name):
    view = BIG_CASES[name]()
    expected = hash_with_twin("ext", np.ascontiguousarray(view))
    assert hash_with_twin("ext", view) == expected
    assert hash_with_twin("pure", view) == expected


def test_an_unaligned_view_hashes_as_its_copy(twins):
    # numpy arrays need not be aligned: the kernels must not assume it
    raw = _base("u1", 8 * 4000 + 1)[1:]
    view = raw.view("f8").reshape(80, 50).T[::-1]
    assert not view.flags.aligned
    expected = hash_with_twin("pure", np.ascontiguousarray(view))
    assert hash_with_twin("ext", view) == expected == hash_with_twin("pure", view)


GUARD_PAGE_CODE = r"""
import ctypes, mmap, sys
import numpy as np
from joblite.hashing import hash_with_twin

page = mmap.PAGESIZE
buf = mmap.mmap(-1, 2 * page)
base = np.frombuffer(buf, np.uint8)
libc = ctypes.CDLL(None, use_errno=True)
if libc.mprotect(ctypes.c_void_p(base.ctypes.data + page), page, 0) != 0:  # PROT_NONE
    sys.exit("mprotect failed")
first = base[:page]  # its last byte is the last readable one
for dtype in ("u1", "i2", "f4", "f8", "c16"):
    size = np.dtype(dtype).itemsize
    for n in (33, 64, 65, 127):  # items of the 1-D view ending at the guard page
        items = first[page - (2 * n - 1) * size:].view(dtype)
        view = items[::2]
        assert hash_with_twin("ext", view) == hash_with_twin("ext", view.copy()), (dtype, n)
        tail = first[page - 3 * n * size:].view(dtype)[::3]
        assert hash_with_twin("ext", tail) == hash_with_twin("ext", tail.copy()), (dtype, n)
    f = first[page - 7 * 9 * size:].view(dtype).reshape(9, 7).T  # F order, ends at the guard
    assert hash_with_twin("ext", f) == hash_with_twin("ext", f.copy()), dtype
    rows = f.T[::2]  # every other row of F order (9, 7): its last item ends at the guard
    assert hash_with_twin("ext", rows) == hash_with_twin("ext", rows.copy()), dtype
    lanes = max(1, 16 // size)  # items of a 16-byte vector
    for shape in ((2 * lanes - 1, lanes), (4 * lanes - 1, 2 * lanes), (33, 7)):  # whole vectors after [::2]
        big = first[page - shape[0] * shape[1] * size:].view(dtype).reshape(shape[::-1]).T[::2]
        assert hash_with_twin("ext", big) == hash_with_twin("ext", big.copy()), (dtype, shape)
    for shape in ((64 // size, 64 // size), (32 // size + 3, 64 // size)):  # whole 32-byte blocks
        block = first[page - shape[0] * shape[1] * size:].view(dtype).reshape(shape[::-1]).T
        assert hash_with_twin("ext", block) == hash_with_twin("ext", block.copy()), (dtype, shape)
print("done")
"""


def test_the_compiled_kernels_read_nothing_past_the_last_item(twins):
    # The views end at the last byte before an inaccessible page: a read past
    # the last item (a vector load too wide) kills the child with SIGSEGV.
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", GUARD_PAGE_CODE], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.strip() == "done"
