"""Fixtures shared by the tests, and the joblite they test.

Twins: a test that takes the fixture ``twin`` runs once on each twin (ids
``ext`` and ``pure``), ``twin.codec``, ``twin.hasher``, ``twin.fileio`` and
``twin.tasks`` being that twin's kernel modules; ``ext`` is skipped when the
compiled twin is not built.  A test that compares the two takes ``twins``,
``(ext, pure)``, and is skipped when the compiled twin is not built.  The rest
of the suite runs on the active twin: run it again with ``JOBLITE_PUREPYTHON=1``.
Since the tests that take ``twin`` or ``twins`` pick their kernels themselves,
and those marked ``twin_independent`` check policy that no kernel decides
(worker failures, cross-process locking of the store, the bench's reports),
such a second pass may
leave them out with ``--active-twin-only`` (``.ci/run`` does): they already
ran in the first.

The suite tests the joblite that ``import joblite`` finds: the installed one
(the src layout keeps the checkout's ``src/joblite`` off ``sys.path``), or the
checkout with ``PYTHONPATH=src`` after ``python setup.py build_ext --inplace``.
The report header says which, and whether its compiled twin is active.
"""

import os
import types

import pytest


def _load_twin(name):
    from joblite import _impl

    try:
        kernels = _impl.get_twin(name)
    except ImportError:
        pytest.skip("the compiled twin is not built")
    return types.SimpleNamespace(name=name, **{module.lstrip("_"): kernels[module] for module in kernels})


@pytest.fixture(params=["ext", "pure"])
def twin(request):
    """One twin's kernel modules (``.name``, ``.codec``, ``.hasher``, ``.fileio``, ``.tasks``); tests run on each."""
    return _load_twin(request.param)


@pytest.fixture(scope="session")
def twins():
    """Both twins' kernel modules, ``(ext, pure)``, for a test that compares them."""
    return _load_twin("ext"), _load_twin("pure")


def pytest_addoption(parser):
    parser.addoption(
        "--active-twin-only",
        action="store_true",
        help="deselect the tests that pick their twin themselves (fixtures twin, twins) and those marked "
        "twin_independent, for a second pass of the suite with the other twin active: they ran in the first",
    )


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--active-twin-only"):
        return
    picked = {"twin", "twins"}

    def ran_in_the_first_pass(item):
        return bool(picked & set(getattr(item, "fixturenames", ()))) or item.get_closest_marker("twin_independent")

    deselected = [item for item in items if ran_in_the_first_pass(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not ran_in_the_first_pass(item)]


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
                detail = (
                    " ("
                    + ", ".join(f"{key}: {value}" for key, value in sorted(outcomes.items()) if key != "inputs")
                    + ")"
                )
            lines.append(f"{report.nodeid}: {properties['fuzz_inputs']} inputs{detail}")
    if lines:
        import joblite

        terminalreporter.section("fuzz")
        for line in lines:
            terminalreporter.write_line(line)
        twin = "compiled" if getattr(joblite, "__with_ext__", False) else "pure-Python"
        terminalreporter.write_line(f"fuzz: {total} inputs tried in all ({twin} twin)")
