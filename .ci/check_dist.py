"""Check the contents of joblite's built sdist and wheels against what they must hold.

Usage (from anywhere; the checkout is the folder above this file)::

    python .ci/check_dist.py dist/joblite-X.tar.gz dist/joblite-X-cp311-*.whl
    python .ci/check_dist.py --pure dist-pure/joblite-X-py3-none-any.whl

The expected manifest is derived from the files git tracks in the checkout, so that a new
source or test file is expected without editing a list here:

* the **sdist** holds every tracked file (sources, ``.pyx``, tests and their data, docs,
  benchmarks, the CI scripts) but those in ``SDIST_OMITS``, and besides them only what
  setuptools adds (``PKG-INFO``, ``setup.cfg``, ``src/joblite.egg-info/``); no compiled or
  generated file (``.so``, ``.c``);
* a **compiled wheel** holds every tracked ``.py`` and ``.pyi`` under ``src/joblite``,
  ``py.typed``, one compiled module per ``src/joblite/_ext/*.pyx`` but the debug-only ones,
  and its ``.dist-info`` with the license; no ``.pyx``, ``.pxd``, ``.c`` nor tests; its tag
  names a platform;
* a **pure wheel** (``--pure``, built with ``JOBLITE_PUREPYTHON=1``) is the same without the
  compiled modules' package ``joblite._ext`` (its modules and stubs), tagged ``py3-none-any``.

Both kinds must carry the version of ``src/joblite/_version.py`` in their names and metadata,
and the license metadata of ``pyproject.toml``.  Exits 1, listing every missing and unexpected
file, when an artifact does not match; 2 for bad arguments.
"""

import argparse
import ast
import os
import re
import subprocess
import sys
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tracked files the sdist leaves out: git's own configuration.
SDIST_OMITS = {".gitignore"}
# Compiled modules built only by JOBLITE_DEBUG=1 (setup.py's DEBUG_ONLY).
DEBUG_ONLY = {"_debug_probe"}
# What setuptools adds to an sdist besides the tracked files.
SDIST_ADDED = re.compile(r"^(PKG-INFO|setup\.cfg|src/joblite\.egg-info/[^/]+)$")
# joblite's license and those of the C libraries compiled into joblite._ext._codec (vendor/):
# the license-files of pyproject.toml, which every artifact names and every wheel carries.
LICENSE_FILES = (
    "LICENSE",
    "vendor/c-blosc/LICENSE.txt",
    "vendor/c-blosc/LICENSES/BITSHUFFLE.txt",
    "vendor/c-blosc/LICENSES/FASTLZ.txt",
    "vendor/c-blosc/LICENSES/LZ4.txt",
    "vendor/c-blosc/LICENSES/ZSTD.txt",
    "vendor/xxhash/LICENSE",
)
LICENSE_FIELDS = ("License-Expression: BSD-3-Clause AND BSD-2-Clause AND MIT",) + tuple(
    f"License-File: {path}" for path in LICENSE_FILES
)


def tracked_files(root=ROOT):
    """The files git tracks in `root`, as '/'-separated paths relative to it.

    Raises
    ------
    RuntimeError
        If `root` is not a git checkout (the expected manifest is made from it).
    """
    try:
        listing = subprocess.run(["git", "-C", root, "ls-files", "-z"], check=True, capture_output=True).stdout.decode(
            "utf-8"
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(
            f"check_dist: {root} is not a git checkout, which the expected manifest is made from ({exc})"
        ) from exc
    return sorted(path for path in listing.split("\0") if path)


def project_version(root=ROOT):
    """``__version__`` of ``src/joblite/_version.py``, read without importing joblite."""
    with open(os.path.join(root, "src", "joblite", "_version.py"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [target.id for target in node.targets] == ["__version__"]:
            return ast.literal_eval(node.value)
    raise RuntimeError("check_dist: src/joblite/_version.py assigns no __version__")


def wheel_problems(names, filename, tracked, version, pure, metadata):
    """Missing and unexpected members of a wheel, as sentences; empty when it matches.

    Parameters
    ----------
    names : list of str
        The wheel's member names (its zip listing).
    filename : str
        The wheel's file name, whose tags are checked.
    tracked : list of str
        The checkout's tracked files (`tracked_files`).
    version : str
        The version the wheel must carry.
    pure : bool
        True for the pure-Python wheel: no ``joblite._ext``, tagged ``py3-none-any``.
    metadata : str or None
        The text of its ``.dist-info/METADATA``; None when it has none.
    """
    problems = []
    match = re.fullmatch(r"joblite-(?P<version>[^-]+)-(?P<tags>.+)\.whl", os.path.basename(filename))
    if not match:
        return [f"{filename}: not a joblite wheel's file name"]
    if match["version"] != version:
        problems.append(f"{filename}: version {match['version']}, expected {version}")
    any_platform = match["tags"] == "py3-none-any"
    if pure and not any_platform:
        problems.append(f"{filename}: tags {match['tags']}, expected py3-none-any for the pure wheel")
    if not pure and any_platform:
        problems.append(f"{filename}: tagged py3-none-any, but a compiled wheel is made for one platform")

    dist_info = f"joblite-{version}.dist-info/"
    required = {dist_info + name for name in ("METADATA", "WHEEL", "RECORD", "top_level.txt")}
    required |= {f"{dist_info}licenses/{path}" for path in LICENSE_FILES}
    compiled = {}  # module name -> the member that holds it
    for path in tracked:
        if not path.startswith("src/joblite/"):
            continue
        member = path[len("src/") :]
        if pure and member.startswith("joblite/_ext/"):
            continue  # a pure package leaves out the compiled modules' package (setup.py)
        stem, ext = os.path.splitext(os.path.basename(member))
        if ext in (".py", ".pyi") or member == "joblite/py.typed":
            required.add(member)
        elif ext == ".pyx" and stem not in DEBUG_ONLY and not pure:
            compiled[f"{os.path.dirname(member)}/{stem}"] = None
    present = set(names)
    for name in names:
        module, dot, ext = name.partition(".")
        if ext.endswith(("so", "pyd")) and module in compiled and compiled[module] is None:
            compiled[module] = name
    problems += [f"{filename}: missing {member}" for member in sorted(required - present)]
    problems += [
        f"{filename}: missing the compiled module {module} (from {module}.pyx)"
        for module, member in sorted(compiled.items())
        if member is None
    ]
    allowed = required | {member for member in compiled.values() if member}
    unexpected = sorted(name for name in present - allowed if not name.endswith("/"))
    problems += [f"{filename}: unexpected {name}" for name in unexpected]
    return problems + metadata_problems(filename, metadata)


def metadata_problems(filename, metadata):
    """The license fields missing from an artifact's core metadata (`metadata`, its text or None)."""
    lines = set((metadata or "").splitlines())
    return [f"{filename}: its metadata lacks {field!r}" for field in LICENSE_FIELDS if field not in lines]


def sdist_problems(names, filename, tracked, version, metadata):
    """Missing and unexpected members of an sdist, as sentences; empty when it matches.

    Parameters
    ----------
    names : list of str
        The sdist's member names (its tar listing), each under ``joblite-<version>/``.
    filename : str
        The sdist's file name.
    tracked : list of str
        The checkout's tracked files (`tracked_files`).
    version : str
        The version the sdist must carry.
    metadata : str or None
        The text of its ``PKG-INFO``; None when it has none.
    """
    prefix = f"joblite-{version}/"
    if os.path.basename(filename) != f"joblite-{version}.tar.gz":
        return [f"{filename}: expected the name joblite-{version}.tar.gz"]
    problems = [f"{filename}: {name} is outside {prefix}" for name in names if not (name + "/").startswith(prefix)]
    present = {name[len(prefix) :] for name in names if name.startswith(prefix)}
    present.discard("")
    required = set(tracked) - SDIST_OMITS
    problems += [f"{filename}: missing {path}" for path in sorted(required - present)]
    dirs = {os.path.dirname(path) for path in present | required}
    dirs |= {parent for path in list(dirs) for parent in _parents(path)}
    unexpected = sorted(path for path in present - required - dirs if not SDIST_ADDED.match(path))
    problems += [f"{filename}: unexpected {path}" for path in unexpected]
    if "PKG-INFO" not in present:
        problems.append(f"{filename}: missing PKG-INFO")
    return problems + metadata_problems(filename, metadata)


def _parents(path):
    while path:
        path = os.path.dirname(path)
        yield path


def check(paths, pure=False, root=ROOT):
    """The problems of every artifact in `paths` (``.whl`` or ``.tar.gz``), as sentences."""
    tracked = tracked_files(root)
    version = project_version(root)
    problems = []
    for path in paths:
        if path.endswith(".whl"):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                info = f"joblite-{version}.dist-info/METADATA"
                metadata = archive.read(info).decode("utf-8") if info in names else None
            problems += wheel_problems(names, path, tracked, version, pure, metadata)
        elif path.endswith(".tar.gz"):
            with tarfile.open(path) as archive:
                names = archive.getnames()
                info = f"joblite-{version}/PKG-INFO"
                metadata = archive.extractfile(info).read().decode("utf-8") if info in names else None
            problems += sdist_problems(names, path, tracked, version, metadata)
        else:
            problems.append(f"{path}: neither a wheel (.whl) nor an sdist (.tar.gz)")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", help="wheels (.whl) and sdists (.tar.gz)")
    parser.add_argument("--pure", action="store_true", help="the wheels are pure-Python (JOBLITE_PUREPYTHON=1)")
    args = parser.parse_args(argv)
    for path in args.artifacts:
        if not os.path.isfile(path):
            parser.error(f"no such artifact: {path}")
    problems = check(args.artifacts, pure=args.pure)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_dist: {len(problems)} problems in {len(args.artifacts)} artifacts", file=sys.stderr)
        return 1
    print(f"check_dist: {', '.join(os.path.basename(path) for path in args.artifacts)}: as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
