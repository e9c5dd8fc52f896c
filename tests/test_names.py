"""joblib's public names in joblite: every one is there, and ``wrap_non_picklable_objects`` is loky's and works."""

import os
import pickle
import subprocess
import sys

import cloudpickle
import loky
import pytest

import joblite
from joblite import Parallel, delayed, wrap_non_picklable_objects

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))  # the joblite tested
BACKENDS = ["loky", "multiprocessing", "threading"]


def test_every_name_of_joblibs_all_is_in_joblites():
    joblib = pytest.importorskip("joblib")
    assert sorted(set(joblib.__all__) - set(joblite.__all__)) == []
    for name in joblite.__all__:
        assert getattr(joblite, name) is not None, name


def test_names_are_imported_when_first_used():
    code = (
        "import sys, joblite\n"
        "assert 'loky' not in sys.modules and 'numpy' not in sys.modules\n"
        "assert joblite.wrap_non_picklable_objects is sys.modules['loky'].wrap_non_picklable_objects\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": PACKAGE_PARENT})


def test_wrap_non_picklable_objects_is_lokys():
    assert wrap_non_picklable_objects is loky.wrap_non_picklable_objects


def make_local_objects():
    """A lambda, a function closing over a local value, and a local class: none pickles by reference."""
    offset = 3

    def add_offset(x):
        return x + offset

    class Scaled:
        def __init__(self, factor):
            self.factor = factor

        def times(self, x):
            return x * self.factor

    return (lambda x: x * x), add_offset, Scaled


def scale(obj, x):
    return obj.times(x)


def test_wrapped_objects_pickle_with_the_standard_pickle_and_cloudpickle():
    square, add_offset, Scaled = make_local_objects()
    for plain in (square, add_offset, Scaled(2)):
        with pytest.raises((pickle.PicklingError, AttributeError)):
            pickle.dumps(plain)  # why the wrapper exists
    for dumps in (pickle.dumps, cloudpickle.dumps):
        assert pickle.loads(dumps(wrap_non_picklable_objects(square)))(4) == 16
        assert pickle.loads(dumps(wrap_non_picklable_objects(add_offset)))(4) == 7
        assert pickle.loads(dumps(wrap_non_picklable_objects(Scaled(2)))).times(4) == 8
        assert pickle.loads(dumps(wrap_non_picklable_objects(Scaled)(5))).times(2) == 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrapped_objects_run_in_parallel(backend):
    square, add_offset, Scaled = make_local_objects()
    wrapped_square = wrap_non_picklable_objects(square)
    wrapped_add = wrap_non_picklable_objects(add_offset)
    instance = wrap_non_picklable_objects(Scaled(3))
    WrappedScaled = wrap_non_picklable_objects(Scaled)
    with Parallel(n_jobs=2, backend=backend) as parallel:
        assert parallel(delayed(wrapped_square)(i) for i in range(6)) == [i * i for i in range(6)]
        assert parallel(delayed(wrapped_add)(i) for i in range(6)) == [i + 3 for i in range(6)]
        assert parallel(delayed(scale)(instance, i) for i in range(6)) == [i * 3 for i in range(6)]
        made = parallel(delayed(WrappedScaled)(i) for i in range(3))
        assert [obj.times(2) for obj in made] == [0, 2, 4]
    if backend != "threading":  # they ran in other processes
        pids = Parallel(n_jobs=2, backend=backend)(
            delayed(wrap_non_picklable_objects(lambda _: os.getpid()))(i) for i in range(4)
        )
        assert os.getpid() not in pids
