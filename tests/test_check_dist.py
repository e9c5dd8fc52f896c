"""The check of the built artifacts' contents (.ci/check_dist.py), which .ci/run runs on the
sdist and the wheels it builds: it must pass a complete artifact and fail, naming the file,
when a needed file is dropped or a file that must stay out (a .pyx in a wheel, a compiled
module in the sdist) gets in.

The artifacts here are real archives holding the checkout's tracked files, laid out as
setuptools lays them out; the real sdist and wheels are checked in .ci/run.
"""

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

import joblite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, ".ci", "check_dist.py")
SUFFIX = ".cpython-311-x86_64-linux-gnu.so"


def _load_check_dist():
    spec = importlib.util.spec_from_file_location("check_dist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_dist = _load_check_dist()
try:
    TRACKED = check_dist.tracked_files(ROOT)
except RuntimeError:  # the tests of an unpacked sdist: nothing to derive the manifest from
    TRACKED = None
pytestmark = pytest.mark.skipif(TRACKED is None, reason="needs the git checkout the artifacts are made from")
VERSION = check_dist.project_version(ROOT)
METADATA = "Metadata-Version: 2.4\nName: joblite\n" + "".join(field + "\n" for field in check_dist.LICENSE_FIELDS)


def wheel_members(pure):
    """A complete wheel's members: the package's .py, .pyi and py.typed, compiled modules, dist-info."""
    members = {}
    for path in TRACKED:
        if pure and path.startswith("src/joblite/_ext/"):
            continue
        if path.startswith("src/joblite/") and path.endswith((".py", ".pyi", "py.typed")):
            members[path[len("src/") :]] = b""
        elif path.startswith("src/joblite/_ext/") and path.endswith(".pyx") and not pure:
            if "_debug_probe" not in path:
                members[path[len("src/") : -len(".pyx")] + SUFFIX] = b"\x7fELF"
    info = f"joblite-{VERSION}.dist-info/"
    for name in ("WHEEL", "RECORD", "top_level.txt", *(f"licenses/{path}" for path in check_dist.LICENSE_FILES)):
        members[info + name] = b""
    members[info + "METADATA"] = METADATA.encode()
    return members


def sdist_members():
    prefix = f"joblite-{VERSION}/"
    members = {prefix + path: b"" for path in TRACKED if path != ".gitignore"}
    members[prefix + "PKG-INFO"] = METADATA.encode()
    members[prefix + "setup.cfg"] = b""
    members[prefix + "src/joblite.egg-info/SOURCES.txt"] = b""
    return members


def write_wheel(folder, members, pure):
    tags = "py3-none-any" if pure else "cp311-cp311-linux_x86_64"
    path = os.path.join(folder, f"joblite-{VERSION}-{tags}.whl")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_sdist(folder, members):
    path = os.path.join(folder, f"joblite-{VERSION}.tar.gz")
    source = os.path.join(folder, "member")
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            with open(source, "wb") as handle:
                handle.write(data)
            archive.add(source, arcname=name)
    os.remove(source)
    return path


def run_check(*args):
    """The script's exit status and output, run as .ci/run runs it."""
    result = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=ROOT)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
def test_a_complete_wheel_passes(tmp_path, pure):
    path = write_wheel(str(tmp_path), wheel_members(pure), pure)
    status, output = run_check(*(["--pure"] if pure else []), path)
    assert status == 0, output
    assert "as expected" in output


def test_a_complete_sdist_passes(tmp_path):
    status, output = run_check(write_sdist(str(tmp_path), sdist_members()))
    assert status == 0, output


@pytest.mark.parametrize(
    "dropped",
    [
        "joblite/py.typed",
        "joblite/_ext/_hasher.pyi",
        "joblite/persistence.py",
        f"joblite/_ext/_hasher{SUFFIX}",
        "licenses/LICENSE",
        "licenses/vendor/c-blosc/LICENSES/ZSTD.txt",
    ],
)
def test_a_wheel_without_a_needed_file_fails_naming_it(tmp_path, dropped):
    members = wheel_members(pure=False)
    name = next(name for name in members if name.endswith(dropped))
    del members[name]
    status, output = run_check(write_wheel(str(tmp_path), members, pure=False))
    assert status == 1
    assert (
        "missing the compiled module joblite/_ext/_hasher" if dropped.endswith(".so") else f"missing {name}"
    ) in output


@pytest.mark.parametrize(
    "added",
    ["joblite/_ext/_hasher.pyx", "joblite/_ext/_hasher.c", f"joblite/_ext/_debug_probe{SUFFIX}", "tests/test_twins.py"],
)
def test_a_wheel_with_sources_or_tests_fails(tmp_path, added):
    members = wheel_members(pure=False)
    members[added] = b""
    status, output = run_check(write_wheel(str(tmp_path), members, pure=False))
    assert status == 1
    assert f"unexpected {added}" in output


@pytest.mark.parametrize("added", [f"joblite/_ext/_hasher{SUFFIX}", "joblite/_ext/__init__.py"])
def test_a_pure_wheel_with_the_compiled_package_fails(tmp_path, added):
    members = wheel_members(pure=True)
    members[added] = b""
    status, output = run_check("--pure", write_wheel(str(tmp_path), members, pure=True))
    assert status == 1 and f"unexpected {added}" in output


def test_a_pure_wheel_with_a_platform_tag_fails(tmp_path):
    status, output = run_check("--pure", write_wheel(str(tmp_path), wheel_members(pure=True), pure=False))
    assert status == 1 and "expected py3-none-any" in output


@pytest.mark.parametrize(
    "dropped",
    [
        "src/joblite/_ext/_hasher.pyx",
        "tests/data/persistence/v1/uncompressed.jl",
        "tests/test_twins.py",
        "setup.py",
        "LICENSE",
        "vendor/c-blosc/blosc/blosc.c",
        "PKG-INFO",
    ],
)
def test_an_sdist_without_a_needed_file_fails_naming_it(tmp_path, dropped):
    members = sdist_members()
    del members[f"joblite-{VERSION}/{dropped}"]
    status, output = run_check(write_sdist(str(tmp_path), members))
    assert status == 1
    assert f"missing {dropped}" in output


def test_an_sdist_with_a_build_product_fails(tmp_path):
    members = sdist_members()
    members[f"joblite-{VERSION}/src/joblite/_ext/_hasher.c"] = b""
    status, output = run_check(write_sdist(str(tmp_path), members))
    assert status == 1 and "unexpected src/joblite/_ext/_hasher.c" in output


def test_metadata_without_the_license_fails(tmp_path):
    members = wheel_members(pure=True)
    members[f"joblite-{VERSION}.dist-info/METADATA"] = b"Metadata-Version: 2.4\nName: joblite\n"
    status, output = run_check("--pure", write_wheel(str(tmp_path), members, pure=True))
    assert status == 1 and "License-Expression: BSD-3-Clause" in output


def test_the_installed_wheel_matches_the_manifest():
    """The RECORD of the install the suite runs on (pip built a real wheel for it) passes the check."""
    try:
        distribution = importlib.metadata.distribution("joblite")
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    wheel = distribution and distribution.read_text("WHEEL")
    installed = distribution and os.path.dirname(str(distribution.locate_file("joblite/__init__.py")))
    if not wheel or installed != os.path.dirname(joblite.__file__):
        pytest.skip("the joblite imported was not installed from a wheel (it runs from the source tree)")
    installer = {"INSTALLER", "REQUESTED", "direct_url.json"}
    names = [
        str(path)
        for path in distribution.files
        if "__pycache__" not in path.parts and path.name not in installer and not str(path).startswith("..")
    ]
    pure = "Root-Is-Purelib: true" in wheel
    filename = f"joblite-{VERSION}-{'py3-none-any' if pure else 'cp3-cp3-linux_x86_64'}.whl"
    assert check_dist.wheel_problems(names, filename, TRACKED, VERSION, pure, distribution.read_text("METADATA")) == []
