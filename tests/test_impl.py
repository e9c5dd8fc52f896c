"""The one switch between the twins (``joblite._impl``), and the compiled twin the build makes."""

import importlib.machinery
import json
import os
import shutil
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


def _copy_package(tmp_path, keep_ext):
    """A copy of the joblite under test, without its compiled modules; its parent folder.

    Without ``_ext`` at all it is laid out as a pure install (``JOBLITE_PUREPYTHON=1`` at
    install time); with ``_ext`` but none of its shared libraries, as an unbuilt checkout.
    """
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)

    def ignore(folder, names):
        if os.path.basename(folder) == "_ext" and os.path.dirname(folder) == PACKAGE_DIR and not keep_ext:
            return names
        return [name for name in names if name.endswith(suffixes) or name == "__pycache__"]

    shutil.copytree(PACKAGE_DIR, tmp_path / "joblite", ignore=ignore)
    if not keep_ext and os.path.isdir(tmp_path / "joblite" / "_ext"):
        os.rmdir(tmp_path / "joblite" / "_ext")
    return str(tmp_path)


def _import_copy(parent):
    """Import the copy in `parent` with warnings as errors; its (__with_ext__, stderr)."""
    env = {key: value for key, value in os.environ.items() if key not in ("JOBLITE_PUREPYTHON", "PYTHONPATH")}
    env["PYTHONPATH"] = parent
    proc = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", "import joblite; print(joblite.__with_ext__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=parent,
        timeout=120,
    )
    return proc.stdout.strip(), proc.stderr


def test_a_pure_install_uses_the_pure_twin_without_a_warning(tmp_path):
    with_ext, stderr = _import_copy(_copy_package(tmp_path, keep_ext=False))
    assert with_ext == "False", stderr


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(PACKAGE_DIR, "_ext")), reason="a pure install has no joblite._ext to copy"
)
def test_compiled_modules_missing_from_their_package_give_a_warning(tmp_path):
    with_ext, stderr = _import_copy(_copy_package(tmp_path, keep_ext=True))
    assert with_ext == ""
    assert "RuntimeWarning: joblite: the compiled modules could not be imported" in stderr
    assert "JOBLITE_PUREPYTHON=1" in stderr
