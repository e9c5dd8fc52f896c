"""Fresh processes of the benchmark: a module function run in a new interpreter, its result as JSON.

Some figures need a process of their own: the peak memory of a load, or of
a ``Parallel`` call with its workers, must not count what the benchmark
already holds.  Their bodies are plain module functions (e.g.
:func:`joblite.bench.workloads.array_call_memory`) that take strings and
return a JSON-able dict; :func:`run_child` runs one in a fresh interpreter
started with ``python -m joblite.bench.children <module>:<function> <args...>``,
whose environment is built in one place, :func:`child_environment`.

Others need a process of their own for each implementation they compare,
called many times: a :class:`ChildServer` is a fresh interpreter that builds
a handler once (``python -m joblite.bench.children --serve <module>:<factory>
<args...>``) and then answers calls of it, one JSON line in, one JSON line
out, until it is closed.
"""

import importlib
import json
import os
import subprocess
import sys
import tempfile

__all__ = ["ChildFailed", "ChildServer", "child_environment", "main", "run_child"]


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
    result = subprocess.run(
        [sys.executable, "-m", "joblite.bench.children", _target(function), *map(str, args)],
        capture_output=True,
        text=True,
        env=child_environment(),
    )
    if result.returncode:
        raise _failed(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _failed(stderr):
    """The ChildFailed of a process whose standard error was `stderr` (str)."""
    tail = (stderr.strip().splitlines() or ["?"])[-1]
    return ChildFailed(f"subprocess failed: {tail}")


def _target(function):
    return f"{function.__module__}:{function.__qualname__}"


class ChildServer:
    """A fresh interpreter that answers calls of one handler, one call at a time, until closed.

    The child runs ``handler = factory(*args)`` once, then for each
    :meth:`call` ``handler(*call_args)``, and prints the result; between
    calls it waits on its standard input, so that it takes no CPU time
    while another process is measured.  A context manager: leaving it
    closes the child.

    Parameters
    ----------
    factory : callable
        A function defined at the top level of an importable module; it
        takes strings and returns the handler, which takes strings and
        returns a JSON-able object.
    *args : object
        Passed to `factory` as strings (``str(arg)``).

    Raises
    ------
    ChildFailed
        From :meth:`call` or :meth:`close`, when the child exits with an
        error (the last line of its stderr in the message).
    """

    def __init__(self, factory, *args):
        self._stderr = tempfile.TemporaryFile(mode="w+")  # a file: a pipe nobody reads could fill and block the child
        self._reported = False
        self._process = subprocess.Popen(
            [sys.executable, "-m", "joblite.bench.children", "--serve", _target(factory), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=child_environment(),
        )

    def call(self, *args):
        """``handler(*args)`` in the child (each argument as ``str(arg)``); its result, through JSON."""
        try:
            self._process.stdin.write(json.dumps([str(arg) for arg in args]) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the child has exited: its error comes with the empty answer below
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            self._stderr.seek(0)
            self._reported = True
            raise _failed(self._stderr.read())
        return json.loads(line)

    def close(self):
        """End the child (its standard input closed) and wait for it; idempotent.

        Raises
        ------
        ChildFailed
            If the child exited with an error that no :meth:`call` reported.
        """
        if self._stderr.closed:
            return
        try:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass
            self._process.stdout.close()
            if self._process.wait() and not self._reported:
                self._stderr.seek(0)
                raise _failed(self._stderr.read())
        finally:
            self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            self.close()
            return
        self._process.kill()  # an error here: the child's own answer does not matter any more
        try:
            self.close()
        except ChildFailed:
            pass


def _serve(handler, lines, out):
    """Answer each JSON line of `lines` (an iterable of str) with ``handler(*line)`` as a JSON line on `out`."""
    for line in lines:
        print(json.dumps(handler(*json.loads(line))), file=out, flush=True)


def main(argv=None):
    """Body of the fresh process: run ``<module>:<function>(*args)``, print its result as JSON.

    With ``--serve`` first, the function is a factory: its result, the
    handler, answers each JSON line of standard input (see :class:`ChildServer`).

    Parameters
    ----------
    argv : list of str, optional
        ``[target, *args]`` or ``['--serve', target, *args]``; ``sys.argv[1:]`` by default.
    """
    argv = sys.argv[1:] if argv is None else argv
    serve = argv[:1] == ["--serve"]
    target, *args = argv[1:] if serve else argv
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    if serve:
        _serve(function(*args), sys.stdin, sys.stdout)
    else:
        print(json.dumps(function(*args)))


if __name__ == "__main__":
    main()
