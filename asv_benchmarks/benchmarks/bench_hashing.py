"""Hashing benchmarks for asv: joblite's two twins against ``joblib.hash``.

Data are the seeded workloads of ``python -m joblite bench``
(:mod:`joblite.bench.workloads`), smaller so that the suite stays fast: a
64 MiB float64 array, 10,000 small dicts, 100,000 floats, a dict of 10,000
str to int, and the bench's array layouts over a 16 MiB array.
Each class builds only the data its benchmarks hash, so that the
``peakmem_`` figures show the extra memory an implementation needs on top of
the data (e.g. joblib copies a strided view, joblite should not).
"""

import importlib.util

from joblite.bench.sections.hashing import make_layouts
from joblite.bench.sections.hashing_frames import FRAME_KINDS, make_frame
from joblite.bench.workloads import SMALL_ARGS, hash_function, random_array, random_floats, small_dicts, str_int_dict

from . import available, scaled

IMPLS = ["ext", "pure", "joblib"]

#: Shape of the benchmark array: 2048 x 4096 float64 = 64 MiB (the rows scaled in the smoke run).
ARRAY_SHAPE = (scaled(2048), 4096)


def get_hash_function(impl):
    """Return ``func(obj) -> str`` hashing with `impl`.

    Parameters
    ----------
    impl : {'ext', 'pure', 'joblib'}
        A joblite twin, or ``joblib.hash`` (md5, its default).

    Returns
    -------
    callable
        ``func(obj) -> str``, the hex digest.

    Raises
    ------
    NotImplementedError
        If `impl` is not available here (twin not built, joblib not
        installed): asv then skips the benchmark.
    """
    return available(hash_function(impl), impl)


class _HashCase:
    """Common frame: ``self.hash`` and ``self.obj`` set up per impl."""

    params = [IMPLS]
    param_names = ["impl"]
    timeout = 120

    def make_object(self):
        raise NotImplementedError

    def setup(self, impl):
        self.hash = get_hash_function(impl)
        self.obj = self.make_object()

    def time_hash(self, impl):
        self.hash(self.obj)


class _ArrayCase(_HashCase):
    """Array cases also measure peak memory (data + hashing overhead)."""

    def peakmem_hash(self, impl):
        self.hash(self.obj)


class HashArrayContiguous(_ArrayCase):
    """C-ordered float64 array, 64 MiB."""

    def make_object(self):
        return random_array(ARRAY_SHAPE)


class HashArrayFortran(_ArrayCase):
    """F-ordered float64 array, 64 MiB, made in F order (no C copy held)."""

    def make_object(self):
        return random_array(ARRAY_SHAPE[::-1]).T


class HashArrayStrided(_ArrayCase):
    """Strided view ``a[::2]`` of the 64 MiB array: 32 MiB of elements."""

    def make_object(self):
        return random_array(ARRAY_SHAPE)[::2]


#: Source array of the layout benchmarks: 16 MiB, so that each case runs in
#: milliseconds under CI's smoke run; ``python -m joblite bench`` uses 128 MiB.
LAYOUT_MIB = scaled(16)
#: The layouts of :func:`joblite.bench.sections.hashing.make_layouts`, by name.
LAYOUT_NAMES = [name for name, _ in make_layouts(1 << 20)]


def _layout(name):
    """The view `name` of :func:`make_layouts`, built afresh (asv would pickle a cached one into a copy)."""
    return dict(make_layouts(LAYOUT_MIB << 20))[name]


class HashArrayLayouts:
    """Every non-contiguous layout of the bench: strided, F-ordered, 3-D, each item size."""

    params = [IMPLS, LAYOUT_NAMES]
    param_names = ["impl", "layout"]
    timeout = 120

    def setup(self, impl, layout):
        self.hash = get_hash_function(impl)
        self.view = _layout(layout)

    def time_hash(self, impl, layout):
        self.hash(self.view)


class ReadArrayLayouts:
    """``a.sum()`` of each layout's view: the memory-read reference of the issue's goals."""

    params = [LAYOUT_NAMES]
    param_names = ["layout"]

    def setup(self, layout):
        self.view = _layout(layout)

    def time_sum(self, layout):
        self.view.sum()


class HashListOfDicts(_HashCase):
    """10,000 small dicts ``{'id', 'name', 'score', 'tags'}``."""

    def make_object(self):
        return small_dicts(scaled(10_000))


class HashListOfFloats(_HashCase):
    """100,000 Python floats."""

    def make_object(self):
        return random_floats(scaled(100_000))


class HashDictStrInt(_HashCase):
    """Dict of 10,000 str keys to int values."""

    def make_object(self):
        return str_int_dict(scaled(10_000))


class HashSmallArgs(_HashCase):
    """The argument tuple of a typical cached call, ``((1, 2.0, 'abc'), {'x': 3})``."""

    def make_object(self):
        return SMALL_ARGS


def timeraw_import_joblite():
    """Time ``import joblite`` in a fresh interpreter (numpy stays unimported).

    Returns
    -------
    str
        The code asv times in a fresh interpreter.
    """
    return "import joblite"


def timeraw_import_joblib():
    """Time ``import joblib`` in a fresh interpreter: the baseline.

    Returns
    -------
    str
        The code asv times in a fresh interpreter.
    """
    return "import joblib"


class HashPandasFrame:
    """A pandas frame of 20,000 rows per column kind (``FRAME_KINDS`` of the bench's frames)."""

    params = [IMPLS, list(FRAME_KINDS)]
    param_names = ["impl", "kind"]
    timeout = 120

    def setup(self, impl, kind):
        self.hash = get_hash_function(impl)
        available(importlib.util.find_spec("pandas"), "pandas")
        self.frame = available(make_frame(kind, scaled(20_000)), "pyarrow")

    def time_hash(self, impl, kind):
        self.hash(self.frame)
