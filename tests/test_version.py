"""One version: ``joblite.__version__`` is what the build, the docs and the bench report."""

import ast
import importlib.metadata
import pathlib
import re

import joblite
from joblite.bench import report

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_version_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?", joblite.__version__), joblite.__version__


def test_the_build_reads_the_version_from_joblite():
    text = (ROOT / "pyproject.toml").read_text()
    tables = dict(re.findall(r"^\[([\w.-]+)\]\n(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL))
    assert re.search(r'^dynamic = \["version"\]', tables["project"], re.MULTILINE)
    assert not re.search(r"^version = ", tables["project"], re.MULTILINE)  # no second copy
    assert 'version = {attr = "joblite._version.__version__"}' in tables["tool.setuptools.dynamic"]
    # setuptools reads the assignment without importing: it must stay a literal
    tree = ast.parse((ROOT / "src" / "joblite" / "_version.py").read_text())
    (assign,) = [node for node in tree.body if isinstance(node, ast.Assign)]
    assert assign.value.value == joblite.__version__


def test_the_installed_metadata_has_the_same_version():
    """Under CI (an installed joblite), the distribution's metadata says the same version."""
    try:
        installed = importlib.metadata.version("joblite")
    except importlib.metadata.PackageNotFoundError:
        return  # a checkout on PYTHONPATH: nothing installed to compare
    assert installed == joblite.__version__


def test_the_docs_and_the_bench_report_the_version():
    assert "release = joblite.__version__" in (ROOT / "docs" / "conf.py").read_text()
    assert report.machine_facts()["joblite"] == joblite.__version__
