"""The one switch between the twins (``joblite._impl``), and the compiled twin the build makes."""

import importlib.machinery
import json
import os
import subprocess
import sys

import pytest

import joblite
from joblite import _impl

PACKAGE_DIR = os.path.dirname(os.path.abspath(joblite.__file__))
# src layout: a checkout's package is <root>/src/joblite, next to <root>/setup.py
FROM_CHECKOUT = os.path.exists(os.path.join(os.path.dirname(os.path.dirname(PACKAGE_DIR)), "setup.py"))


def _pure_requested(environ=os.environ):
    return environ.get("JOBLITE_PUREPYTHON", "") not in ("", "0")


def _run(code, **env_changes):
    """Run ``python -c code`` in a fresh process; return its stdout.

    The child imports the same joblite as this process: its package's parent
    directory goes first on the path.
    """
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(PACKAGE_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_with_ext_is_a_bool_matching_the_switch():
    assert isinstance(joblite.__with_ext__, bool)
    assert joblite.__with_ext__ is _impl.with_ext
    if _pure_requested():
        assert joblite.__with_ext__ is False
    else:
        assert joblite.__with_ext__ is ("ext" in _impl.available_twins())


def test_purepython_variable_selects_the_pure_twin_at_run_time():
    code = "import joblite; print(joblite.__with_ext__)"
    assert _run(code, JOBLITE_PUREPYTHON="1").strip() == "False"


@pytest.mark.usefixtures("twins")  # skipped when the compiled twin is not built
@pytest.mark.parametrize("value", [None, "", "0"])
def test_compiled_twin_is_the_default(value):
    code = "import joblite; print(joblite.__with_ext__)"
    assert _run(code, JOBLITE_PUREPYTHON=value).strip() == "True"


@pytest.mark.parametrize("pure", [None, "1"])
def test_import_is_lazy(pure):
    code = (
        "import json, sys, joblite; "
        "print(json.dumps(sorted(m for m in "
        "('numpy', 'loky', 'dask', 'multiprocessing', 'pandas', 'joblib', 'tqdm') "
        "if m in sys.modules)))"
    )
    assert json.loads(_run(code, JOBLITE_PUREPYTHON=pure)) == []


@pytest.mark.skipif(FROM_CHECKOUT, reason="running from a source checkout")
def test_installed_package_holds_no_cython_or_c_sources():
    bad = []
    for dirpath, _, filenames in os.walk(PACKAGE_DIR):
        bad += [os.path.join(dirpath, name) for name in filenames if name.endswith((".pyx", ".pxd", ".c", ".cpp"))]
    assert bad == []


@pytest.mark.skipif(not joblite.__with_ext__, reason="pure-Python twin active")
def test_compiled_twin_is_a_shared_library():
    path = _impl.hasher.__file__
    assert path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), path


@pytest.mark.usefixtures("twins")
def test_every_compiled_module_has_a_pure_twin():
    ext, pure = _impl.get_twin("ext"), _impl.get_twin("pure")
    assert sorted(ext) == sorted(pure)
    for name in ext:
        assert ext[name].__name__ == f"joblite._ext.{name}"
        assert pure[name].__name__ == f"joblite._pure.{name}"
        if hasattr(ext[name], "__all__") and hasattr(pure[name], "__all__"):
            assert sorted(ext[name].__all__) == sorted(pure[name].__all__)
