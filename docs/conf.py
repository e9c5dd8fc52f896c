"""Sphinx configuration for joblite (Sphinx + numpydoc)."""

import glob
import importlib.machinery
import os
import sys

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

# Document this checkout.  If its compiled modules are not built in place, the
# pure-Python twin (same names and docstrings) is used, explicitly, so that the
# import does not warn about the missing compiled modules.
sys.path.insert(0, SRC)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))
if not any(
    glob.glob(os.path.join(SRC, "joblite", "_ext", "*" + suffix)) for suffix in importlib.machinery.EXTENSION_SUFFIXES
):
    os.environ.setdefault("JOBLITE_PUREPYTHON", "1")

import joblite  # noqa: E402

# -- Project information ------------------------------------------------------
project = "joblite"
author = "the joblite developers"
copyright = "the joblite developers"
release = joblite.__version__
version = ".".join(release.split(".")[:2])

# -- General configuration ----------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",  # CHANGELOG.md, included by changelog.rst
    "benchreport",  # _ext/benchreport.py: the performance page's tables from a bench --json run
]
# The builds run without network access: no intersphinx_mapping.

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "_*.rst"]  # _*.rst: included pieces
templates_path = []

autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
# Signatures as joblib's docs show them; the type of each parameter is in its numpydoc section
# (the annotations name aliases of joblite._typing that only type checkers import).
autodoc_typehints = "none"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- HTML output ----------------------------------------------------------------
html_theme = "alabaster"
html_static_path = []
html_title = f"joblite {release}"
