"""Build script: compiles every ``src/joblite/_ext/*.pyx`` into ``joblite._ext.<name>``.

Metadata lives in ``pyproject.toml``; this file only declares the extensions.

* ``JOBLITE_PUREPYTHON=1`` (any non-empty value other than ``0``) at install
  time builds no extension: a pure-Python package.
* Otherwise a missing Cython or numpy, or a compile error, fails the install;
  there is no silent fallback to the pure-Python twin.
* The Cython compiler directives are declared here, once, for all modules.
"""

import glob
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

PURE = os.environ.get("JOBLITE_PUREPYTHON", "") not in ("", "0")

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}

EXTRA_COMPILE_ARGS = ["/O2"] if sys.platform == "win32" else ["-O3"]


def _extensions():
    """One Extension per ``src/joblite/_ext/*.pyx`` (paths relative to this file)."""
    pyx_files = sorted(glob.glob(os.path.join(HERE, "src", "joblite", "_ext", "*.pyx")))
    if not pyx_files:
        raise RuntimeError(
            "joblite: no src/joblite/_ext/*.pyx found next to setup.py; set "
            "JOBLITE_PUREPYTHON=1 to install the pure-Python package"
        )
    extensions = []
    for path in pyx_files:
        name = os.path.splitext(os.path.basename(path))[0]
        extensions.append(
            Extension(
                f"joblite._ext.{name}",
                sources=[os.path.relpath(path, HERE).replace(os.sep, "/")],
                extra_compile_args=list(EXTRA_COMPILE_ARGS),
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return extensions


class build_ext(_build_ext):
    """Cythonize at build time only, so that ``sdist``/``egg_info`` need no Cython.

    The generated C files go to ``build/cython``, not next to the sources.  They
    are regenerated when a ``.pyx``/``.pxd`` or this file (the directives) changed.
    """

    def finalize_options(self):
        try:
            import numpy
            from Cython.Build import cythonize
        except ImportError as exc:
            raise RuntimeError(
                f"joblite: building the compiled modules needs Cython and numpy ({exc}); "
                "install them, or set JOBLITE_PUREPYTHON=1 for the pure-Python package"
            ) from exc
        c_dir = os.path.join("build", "cython")
        exts = self.distribution.ext_modules
        for ext in exts:
            ext.include_dirs.append(numpy.get_include())
        exts[:] = cythonize(
            exts,
            build_dir=c_dir,
            compiler_directives=CYTHON_DIRECTIVES,
            include_path=[os.path.join(HERE, "src", "joblite", "_ext")],
            force=self.force or _older_than_setup_py(os.path.join(HERE, c_dir)),
            quiet=True,
        )
        super().finalize_options()


def _older_than_setup_py(c_dir):
    """True if any C file generated into `c_dir` predates this setup.py."""
    setup_mtime = os.path.getmtime(os.path.abspath(__file__))
    c_files = glob.glob(os.path.join(c_dir, "**", "*.c"), recursive=True)
    return any(os.path.getmtime(path) < setup_mtime for path in c_files)


if PURE:
    setup(
        ext_modules=[],
        # a separate build tree, so no compiled module left in build/ by an
        # earlier compiled build can end up in the pure package
        options={"build": {"build_base": "build/pure"}},
    )
else:
    setup(ext_modules=_extensions(), cmdclass={"build_ext": build_ext})
