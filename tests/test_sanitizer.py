"""The debug build's sanitizers stop a process at a kernel's memory error, so that CI fails.

A debug build (``JOBLITE_DEBUG=1`` at install; see ``setup.py``) compiles the
kernels with AddressSanitizer and UndefinedBehaviorSanitizer, and it alone
contains ``joblite._ext._debug_probe``: kernels broken on purpose.  Each test
here calls one of them in a child process with the ASan runtime preloaded
and expects the sanitizer's report and a failed exit, as ``.ci/sanitize``
runs the kernel tests.  Skipped in any other build.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import joblite

DEBUG_BUILD = importlib.util.find_spec("joblite._ext._debug_probe") is not None
JOBLITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(joblite.__file__)))

pytestmark = pytest.mark.skipif(
    not DEBUG_BUILD,
    reason="needs the debug build (JOBLITE_DEBUG=1 at install, as .ci/sanitize does): "
    "joblite._ext._debug_probe is not built",
)


def _asan_runtime():
    """Path of the ASan runtime: the one this process preloads, or the one gcc names."""
    for entry in os.environ.get("LD_PRELOAD", "").replace(":", " ").split():
        if "libasan" in os.path.basename(entry):
            return entry
    gcc = shutil.which("gcc")
    if gcc:
        path = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
        if os.path.isabs(path) and os.path.exists(path):
            return path
    pytest.fail("a debug build needs the ASan runtime: none is preloaded here, and gcc names none")


def _run_sanitized(code):
    """Run `code` in a child Python that has the ASan runtime preloaded; its CompletedProcess."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = _asan_runtime()
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env["PYTHONMALLOC"] = "malloc"  # every object from malloc, where ASan sees its bounds
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [JOBLITE_ROOT, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_stopped_by(result, report, good_output):
    """The child printed `good_output` (the correct call), then died with the sanitizer's `report`."""
    assert result.stdout.split() == [good_output], result.stdout + result.stderr
    assert report in result.stderr, result.stderr
    # the report names the broken kernel's frame
    assert "_debug_probe" in result.stderr, result.stderr
    assert result.returncode != 0, result.stderr


def test_read_past_the_end_of_a_buffer_stops_the_process():
    result = _run_sanitized(
        """
        from joblite._ext import _debug_probe as probe

        data = bytes(range(256)) * 4
        print(probe.sum_bytes(data, len(data)))
        probe.sum_bytes(data, len(data) + 64)
        print("read past the end unnoticed")
        """
    )
    _assert_stopped_by(result, "ERROR: AddressSanitizer: heap-buffer-overflow", str(255 * 256 // 2 * 4))


def test_use_of_a_freed_object_stops_the_process():
    # The kernel holds a borrowed pointer into the bytes object while Python code runs;
    # the callback drops the only reference, so the read that follows is of freed memory.
    result = _run_sanitized(
        """
        from joblite._ext import _debug_probe as probe

        items = [bytes(range(256)) * 16]
        print(probe.sum_after_call(items, lambda: None))
        probe.sum_after_call(items, items.clear)
        print("freed memory read unnoticed")
        """
    )
    _assert_stopped_by(result, "ERROR: AddressSanitizer: heap-use-after-free", str(255 * 256 // 2 * 16))


def test_undefined_behaviour_stops_the_process():
    result = _run_sanitized(
        """
        from joblite._ext import _debug_probe as probe

        print(probe.shift_left(1, 4))
        probe.shift_left(1, 40)
        print("undefined shift unnoticed")
        """
    )
    _assert_stopped_by(result, "runtime error: shift exponent 40 is too large", "16")


def test_bounds_checks_hold_in_the_kernels_that_skip_them_for_speed():
    # run_tasks turns bounds checks off outside the debug build (it trusts take_batch's
    # 3-tuples); the debug build keeps them: a 2-tuple is an IndexError, not a read past it.
    result = _run_sanitized(
        """
        from joblite._ext import _tasks

        print(_tasks.run_tasks([(len, ("abc",), {})])[0])
        try:
            _tasks.run_tasks([(len, ("abc",))])
        except IndexError as exc:
            print(type(exc).__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "IndexError"], result.stdout + result.stderr
