"""Fresh processes of the benchmark: a module function run in a new interpreter, its result as JSON.

Some figures need a process of their own: the peak memory of a load, or of
a ``Parallel`` call with its workers, must not count what the benchmark
already holds.  Their bodies are plain module functions (e.g.
:func:`joblite.bench.workloads.array_call_memory`) that take strings and
return a JSON-able dict; :func:`run_child` runs one in a fresh interpreter
started with ``python -m joblite.bench.children <module>:<function> <args...>``,
whose environment is built in one place, :func:`child_environment`.
"""

import importlib
import json
import os
import subprocess
import sys

__all__ = ["ChildFailed", "child_environment", "main", "run_child"]


class ChildFailed(RuntimeError):
    """A fresh process of the benchmark exited with an error.

    Its message is ``'subprocess failed: <the last line of its stderr>'``.
    """


def child_environment():
    """The environment of a fresh process: this one's, with the joblite in use first on ``PYTHONPATH``.

    Returns
    -------
    dict of str to str
    """
    import joblite

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def run_child(function, *args):
    """Run ``function(*args)`` in a fresh interpreter and return its result.

    Parameters
    ----------
    function : callable
        A function defined at the top level of an importable module; it
        takes strings and returns a JSON-able object.
    *args : object
        Passed to `function` as strings (``str(arg)``).

    Returns
    -------
    object
        What `function` returned, through JSON.

    Raises
    ------
    ChildFailed
        When the process exits with an error (the last line of its stderr in the message).
    """
    target = f"{function.__module__}:{function.__qualname__}"
    result = subprocess.run(
        [sys.executable, "-m", "joblite.bench.children", target, *map(str, args)],
        capture_output=True,
        text=True,
        env=child_environment(),
    )
    if result.returncode:
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise ChildFailed(f"subprocess failed: {tail}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    """Body of the fresh process: run ``<module>:<function>(*args)``, print its result as JSON.

    Parameters
    ----------
    argv : list of str, optional
        ``[target, *args]``; ``sys.argv[1:]`` by default.
    """
    target, *args = sys.argv[1:] if argv is None else argv
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    print(json.dumps(function(*args)))


if __name__ == "__main__":
    main()
