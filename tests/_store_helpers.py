"""Helpers shared by the tests of the cache store's maintenance and its command line: real caches, the command run."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

import joblite
from joblite.__main__ import main

# The subprocesses run the joblite under test (the checkout or the installed one), whatever their cwd.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))


def square(x):
    return x * x


def ramp(n):
    return np.arange(n, dtype=np.float64)


def make_cache(location, compress=False):
    """A cache of two functions: 4 small results and 3 array results."""
    memory = joblite.Memory(location, verbose=0, compress=compress)
    cached_square, cached_ramp = memory.cache(square), memory.cache(ramp)
    for x in range(4):
        cached_square(x)
    for n in (1000, 20000, 30000):
        cached_ramp(n)
    return cached_square.func_id, cached_ramp.func_id


def entry_files(location):
    """``{(function folder, args_id): path}`` of every entry file on disk."""
    root = os.path.join(location, "joblite")
    found = {}
    for dirpath, _, filenames in os.walk(root):
        if os.path.relpath(dirpath, root).startswith("."):
            continue
        for name in filenames:
            if name.endswith(".out"):
                found[(os.path.dirname(dirpath), name[: -len(".out")])] = os.path.join(dirpath, name)
    return found


def run_cli(*args, cwd, env=None):
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join(
        [PACKAGE_PARENT] + ([environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else [])
    )
    return subprocess.run(
        [sys.executable, "-m", "joblite", "cache", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
    )


def run_json(capsys, *args):
    status = main(["cache", *map(str, args), "--json"])
    return status, json.loads(capsys.readouterr().out)


def write_module(folder, name, source):
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
