"""Build script: compiles every ``src/joblite/_ext/*.pyx`` into ``joblite._ext.<name>``.

Metadata lives in ``pyproject.toml``; this file only declares the extensions.
Two environment variables, read at install time (each is on when set to a
non-empty value other than ``0``), choose the build:

* ``JOBLITE_PUREPYTHON=1`` builds no extension: a pure-Python package, which
  leaves out the package of the compiled modules, ``joblite._ext``, so that
  joblite knows it was installed pure by choice (``joblite._impl``).
* ``JOBLITE_DEBUG=1`` builds the compiled modules for development: Cython's
  ``boundscheck``, ``wraparound`` and ``initializedcheck`` on in every
  function, ``-O0 -g``, and AddressSanitizer with UndefinedBehaviorSanitizer
  (GCC or Clang).  It adds ``joblite._ext._debug_probe``, deliberately broken
  kernels that the sanitizer tests call, which no other build contains.  The
  modules then load only into a process with the ASan runtime preloaded:
  ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``.  Slow; never for users.
  It cannot be combined with ``JOBLITE_PUREPYTHON``.
* Otherwise (the default) a missing Cython or numpy, or a compile error, fails
  the install; there is no silent fallback to the pure-Python twin.

The Cython compiler directives are declared here, once, for all modules.

``joblite._ext._codec`` is linked with c-blosc, compiled from the sources in
``vendor/c-blosc`` (see its README) as two static libraries: the shuffles for
AVX2 need ``-mavx2`` and are only called on CPUs that have it (c-blosc checks
at run time).
"""

import glob
import os
import platform
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_clib import build_clib as _build_clib
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.command.build_py import build_py as _build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def _env_flag(name):
    return os.environ.get(name, "") not in ("", "0")


PURE = _env_flag("JOBLITE_PUREPYTHON")
DEBUG = _env_flag("JOBLITE_DEBUG")
if PURE and DEBUG:
    raise SystemExit(
        f"joblite: JOBLITE_DEBUG={os.environ['JOBLITE_DEBUG']!r} asks for a debug build of the compiled "
        f"modules and JOBLITE_PUREPYTHON={os.environ['JOBLITE_PUREPYTHON']!r} for no compiled module; "
        "unset one of them"
    )

# The module built only in debug mode (see the module docstring).
DEBUG_ONLY = ("_debug_probe",)

# Bounds, negative-index and initialization checks are on in every function.  The few
# hot kernels that turn them off do it with decorators whose argument is the compile-time
# name JOBLITE_DEBUG (given to cythonize below): ``@cython.boundscheck(JOBLITE_DEBUG)``.
# Cython replaces the name by its value while parsing, so in the debug build those
# decorators turn the checks on like everywhere else; a literal False would win over
# any directive passed here, since a function's directives override the module's.
CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": True,
    "wraparound": True,
    "cdivision": True,
    "initializedcheck": True,
    "embedsignature": True,
}

if DEBUG:
    # -O0 comes after the interpreter's own -O3 in the compiler's arguments, so it wins.
    EXTRA_COMPILE_ARGS = [
        "-O0",
        "-g",
        "-fno-omit-frame-pointer",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
    ]
    EXTRA_LINK_ARGS = ["-fsanitize=address,undefined"]
    # Its own build tree: neither mode's generated C or objects can end up in the other.
    BUILD_BASE = os.path.join("build", "debug")
elif sys.platform == "win32":
    EXTRA_COMPILE_ARGS, EXTRA_LINK_ARGS, BUILD_BASE = ["/O2"], [], "build"
else:
    EXTRA_COMPILE_ARGS, EXTRA_LINK_ARGS, BUILD_BASE = ["-O3"], [], "build"


CBLOSC = os.path.join("vendor", "c-blosc")
_LZ4 = os.path.join(CBLOSC, "internal-complibs", "lz4-1.10.0")
_ZSTD = os.path.join(CBLOSC, "internal-complibs", "zstd-1.5.6")
CBLOSC_INCLUDE = [os.path.join(CBLOSC, "blosc"), _LZ4, _ZSTD, os.path.join(_ZSTD, "common")]
XXHASH = os.path.join("vendor", "xxhash")
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _cblosc_libraries():
    """c-blosc with lz4 and zstd (the codecs of joblite's ``'blosc-*'`` compressors), as build_clib libraries.

    On x86 also xxHash's dispatcher (``xxh_x86dispatch.c``), for ``XXH3_64bits``.

    The macros are those of c-blosc's own CMake build for these codecs;
    zstd's assembly decoder is left out (``ZSTD_DISABLE_ASM``: its C loop
    instead), so that only C files are compiled.  The symbols are hidden:
    the extension does not export c-blosc to other modules.
    """
    macros = [("HAVE_LZ4", "1"), ("HAVE_ZSTD", "1"), ("ZSTD_DISABLE_ASM", "1"), ("ZSTD_MULTITHREAD", "0")]
    names = ["blosc", "blosclz", "fastcopy", "shuffle", "shuffle-generic", "bitshuffle-generic"]
    if X86:
        macros += [("SHUFFLE_SSE2_ENABLED", "1"), ("SHUFFLE_AVX2_ENABLED", "1")]
        names += ["shuffle-sse2", "bitshuffle-sse2"]
    sources = [os.path.join(CBLOSC, "blosc", name + ".c") for name in names]
    sources += [os.path.join(_LZ4, "lz4.c"), os.path.join(_LZ4, "lz4hc.c")]
    for part in ("common", "compress", "decompress"):
        sources += sorted(glob.glob(os.path.join(_ZSTD, part, "*.c")))
    if sys.platform == "win32":
        cflags = list(EXTRA_COMPILE_ARGS)
    elif DEBUG:
        # Not instrumented: the sanitizers check joblite's kernels, not c-blosc (fuzzed upstream);
        # -O1 -g0 compiles in about half the time of -O2 -g, which keeps .ci/sanitize short.
        cflags = ["-O1", "-g0", "-fvisibility=hidden", "-w"]
    else:
        # -w: another project's warnings; -g0 after the interpreter's -g: no debug symbols (half
        # the compile time)
        cflags = [*EXTRA_COMPILE_ARGS, "-fvisibility=hidden", "-w", "-g0"]
        if X86 and "gcc" in os.path.basename((os.environ.get("CC") or sysconfig.get_config_var("CC") or "").split()[0]):
            # No jump across a 32-byte boundary (Intel's JCC erratum; an option of GNU as): without
            # it, the speed of lz4's and the shuffles' loops depended on where the linker put them,
            # which any change to _codec moves (one thread's 16 MiB decode took 1.9 or 2.4 ms).
            cflags.append("-Wa,-mbranches-within-32B-boundaries")
    info = {"macros": macros, "include_dirs": CBLOSC_INCLUDE, "cflags": cflags}
    libraries = [("joblite_cblosc", {**info, "sources": [path.replace(os.sep, "/") for path in sources]})]
    if X86:
        avx2 = [os.path.join(CBLOSC, "blosc", name + ".c") for name in ("shuffle-avx2", "bitshuffle-avx2")]
        flags = cflags + (["/arch:AVX2"] if sys.platform == "win32" else ["-mavx2"])
        avx2 = [path.replace(os.sep, "/") for path in avx2]
        libraries.append(("joblite_cblosc_avx2", {**info, "sources": avx2, "cflags": flags}))
        # XXH3_64bits with its AVX2 and AVX-512 loops, chosen at load by xxHash's own dispatcher
        # (each loop compiled with a target attribute, so no -mavx2 here)
        dispatch = os.path.join(XXHASH, "xxh_x86dispatch.c").replace(os.sep, "/")
        xxhash = {"sources": [dispatch], "macros": [], "include_dirs": [XXHASH], "cflags": cflags}
        libraries.append(("joblite_xxhash_dispatch", xxhash))
    return libraries


def _extensions():
    """One Extension per ``src/joblite/_ext/*.pyx`` of this mode (paths relative to this file)."""
    pyx_files = sorted(glob.glob(os.path.join(HERE, "src", "joblite", "_ext", "*.pyx")))
    if not pyx_files:
        raise RuntimeError(
            "joblite: no src/joblite/_ext/*.pyx found next to setup.py; set "
            "JOBLITE_PUREPYTHON=1 to install the pure-Python package"
        )
    extensions = []
    for path in pyx_files:
        name = os.path.splitext(os.path.basename(path))[0]
        if name in DEBUG_ONLY and not DEBUG:
            continue
        extension = Extension(
            f"joblite._ext.{name}",
            sources=[os.path.relpath(path, HERE).replace(os.sep, "/")],
            extra_compile_args=list(EXTRA_COMPILE_ARGS),
            extra_link_args=list(EXTRA_LINK_ARGS),
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        if name == "_codec":
            # build_ext links build_clib's libraries into every module.  xxhash.h is used inline,
            # but for XXH3_64bits on x86: xxh_x86dispatch.h names the dispatcher's instead.
            extension.include_dirs += [os.path.join(CBLOSC, "blosc"), XXHASH]
            if X86:
                extension.define_macros.append(("JOBLITE_XXH3_DISPATCH", "1"))
        extensions.append(extension)
    return extensions


class build_ext(_build_ext):
    """Cythonize at build time only, so that ``sdist``/``egg_info`` need no Cython.

    The generated C files go to ``build/cython`` (``build/debug/cython`` in debug
    mode), not next to the sources.  They are regenerated when a ``.pyx``/``.pxd``
    or this file (the directives) changed.  An in-place build that switches
    between the debug and the normal mode rebuilds every module, since the
    modules in place cannot tell which mode made them otherwise.
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
        if self.inplace and _switch_inplace_mode():
            self.force = True
        c_dir = os.path.join(BUILD_BASE, "cython")
        exts = self.distribution.ext_modules
        for ext in exts:
            ext.include_dirs.append(numpy.get_include())
        exts[:] = cythonize(
            exts,
            build_dir=c_dir,
            compiler_directives=CYTHON_DIRECTIVES,
            compile_time_env={"JOBLITE_DEBUG": DEBUG},
            include_path=[os.path.join(HERE, "src", "joblite", "_ext")],
            force=self.force or _older_than_setup_py(os.path.join(HERE, c_dir)),
            quiet=True,
        )
        super().finalize_options()

    def run(self):
        self.run_command("build_clib")  # c-blosc: ``build_ext --inplace`` alone would not build it
        super().run()


class build_clib(_build_clib):
    """Compile c-blosc's sources one per CPU at a time, and only those newer than their object files.

    The objects also go stale when this file changes (the flags may have).
    """

    def build_libraries(self, libraries):
        from concurrent.futures import ThreadPoolExecutor

        for name, info in libraries:
            sources = info["sources"]
            objects = self.compiler.object_filenames(sources, output_dir=self.build_temp)
            stale = [source for source, obj in zip(sources, objects) if _stale(obj, source)]

            def compile_one(source, info=info):
                self.compiler.compile(
                    [source],
                    output_dir=self.build_temp,
                    macros=info["macros"],
                    include_dirs=info["include_dirs"],
                    extra_postargs=info["cflags"],
                    debug=self.debug,
                )

            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                list(pool.map(compile_one, stale))
            self.compiler.create_static_lib(objects, name, output_dir=self.build_clib, debug=self.debug)


def _stale(obj, source):
    """True if `obj` is missing, or older than `source` or this setup.py."""
    if not os.path.exists(obj):
        return True
    return os.path.getmtime(obj) < max(os.path.getmtime(source), os.path.getmtime(os.path.abspath(__file__)))


def _switch_inplace_mode():
    """True if the modules in place were built in the other mode; removes a stale probe.

    The debug-only probe module in place marks a debug build there.
    """
    ext_dir = os.path.join(HERE, "src", "joblite", "_ext")
    probes = [path for name in DEBUG_ONLY for path in glob.glob(os.path.join(ext_dir, name + ".*"))]
    probes = [path for path in probes if not path.endswith(".pyx")]
    if DEBUG:
        return not probes
    for path in probes:
        os.remove(path)
    return bool(probes)


def _older_than_setup_py(c_dir):
    """True if any C file generated into `c_dir` predates this setup.py."""
    setup_mtime = os.path.getmtime(os.path.abspath(__file__))
    c_files = glob.glob(os.path.join(c_dir, "**", "*.c"), recursive=True)
    return any(os.path.getmtime(path) < setup_mtime for path in c_files)


class build_py_pure(_build_py):
    """Leave out ``joblite._ext`` (its ``.pyi`` stubs describe modules a pure package lacks)."""

    def finalize_options(self):
        super().finalize_options()
        self.packages = [package for package in self.packages if package != "joblite._ext"]
        self.package_data.pop("joblite._ext", None)


if PURE:
    setup(
        ext_modules=[],
        cmdclass={"build_py": build_py_pure},
        # a separate build tree, so no compiled module left in build/ by an
        # earlier compiled build can end up in the pure package
        options={"build": {"build_base": "build/pure"}},
    )
else:
    setup(
        ext_modules=_extensions(),
        libraries=_cblosc_libraries(),
        cmdclass={"build_ext": build_ext, "build_clib": build_clib},
        options={"build": {"build_base": BUILD_BASE}},
    )
