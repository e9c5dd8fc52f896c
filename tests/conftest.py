"""Fixtures shared by the tests, and the joblite they test.

Twins: a test that takes the fixture ``twin`` runs once on each twin (ids
``ext`` and ``pure``), ``twin.codec``, ``twin.hasher``, ``twin.fileio`` and
``twin.tasks`` being that twin's kernel modules; ``ext`` is skipped when the
compiled twin is not built.  A test that compares the two takes ``twins``,
``(ext, pure)``, and is skipped when the compiled twin is not built.  The rest
of the suite runs on the active twin: run it again with ``JOBLITE_PUREPYTHON=1``.

Make ``python -m pytest`` from the repository root test the *installed* joblite:
``python -m pytest`` puts the current directory first on ``sys.path``, so from the
repository root ``import joblite`` would find the source checkout, which has no
compiled modules unless they were built in place: the suite would silently run the
pure-Python twin only.  When a (non-editable) joblite is installed, the repository
root is therefore taken off ``sys.path`` before any test imports joblite.  Without
an installed joblite (or with an editable install) the checkout is tested.
"""
import importlib.machinery
import os
import sys
import types

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _is_root(entry):
    try:
        return os.path.samefile(entry or os.curdir, _ROOT)
    except OSError:
        return False


def _prefer_installed_joblite():
    if "joblite" in sys.modules:
        return
    others = [entry for entry in sys.path if not _is_root(entry)]
    if len(others) == len(sys.path):
        return
    spec = importlib.machinery.PathFinder.find_spec("joblite", others)
    if spec is None or spec.origin is None:
        return  # not installed (or installed in editable mode): test the checkout
    sys.path[:] = others


_prefer_installed_joblite()


def _load_twin(name):
    from joblite import _impl

    try:
        kernels = _impl.get_twin(name)
    except ImportError:
        pytest.skip("the compiled twin is not built")
    return types.SimpleNamespace(name=name, **{module.lstrip("_"): kernels[module] for module in kernels})


@pytest.fixture(params=["ext", "pure"])
def twin(request):
    """One twin's kernel modules (``.name``, ``.codec``, ``.hasher``, ``.fileio``, ``.tasks``); the test runs on each."""
    return _load_twin(request.param)


@pytest.fixture(scope="session")
def twins():
    """Both twins' kernel modules, ``(ext, pure)``, for a test that compares them."""
    return _load_twin("ext"), _load_twin("pure")


def pytest_report_header(config):
    import joblite

    return (
        f"joblite {getattr(joblite, '__version__', '?')} from "
        f"{os.path.dirname(joblite.__file__)}; "
        f"compiled twin active: {getattr(joblite, '__with_ext__', '?')}"
    )


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Report how many inputs the fuzz tests tried (their ``fuzz_inputs`` user property)."""
    lines = []
    total = 0
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            properties = dict(getattr(report, "user_properties", ()))
            if "fuzz_inputs" not in properties:
                continue
            total += properties["fuzz_inputs"]
            outcomes = properties.get("fuzz_outcomes")
            detail = ""
            if outcomes:
                detail = " (" + ", ".join(f"{key}: {value}" for key, value in sorted(outcomes.items())
                                          if key != "inputs") + ")"
            lines.append(f"{report.nodeid}: {properties['fuzz_inputs']} inputs{detail}")
    if lines:
        import joblite

        terminalreporter.section("fuzz")
        for line in lines:
            terminalreporter.write_line(line)
        twin = "compiled" if getattr(joblite, "__with_ext__", False) else "pure-Python"
        terminalreporter.write_line(f"fuzz: {total} inputs tried in all ({twin} twin)")
