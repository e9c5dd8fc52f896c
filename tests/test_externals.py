"""``joblite.externals``: joblib's vendored names, as the installed loky and cloudpickle."""

import pickle

import cloudpickle
import loky


def test_joblib_style_imports_reach_the_installed_packages():
    import joblite.externals.cloudpickle as imported_cloudpickle
    from joblite.externals import cloudpickle as named_cloudpickle
    from joblite.externals.loky import get_reusable_executor, set_loky_pickler

    assert named_cloudpickle is cloudpickle and imported_cloudpickle is cloudpickle
    assert set_loky_pickler is loky.set_loky_pickler
    assert get_reusable_executor is loky.get_reusable_executor


def test_cloudpickle_from_externals_pickles_a_lambda_by_value():
    from joblite.externals.cloudpickle import dumps

    assert pickle.loads(dumps(lambda x: x + 1))(1) == 2
