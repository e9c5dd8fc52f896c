"""The one place joblite's version is written: the build (pyproject.toml), the docs and the bench's JSON read it."""

__version__ = "0.1.0"
