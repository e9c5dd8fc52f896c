"""Progress of a ``Parallel`` call: joblib-style verbose lines, a progress bar, a per-task callback."""

import sys
import time

__all__ = ["Progress"]


class _TextBar:
    """A one-line bar on stderr, for when tqdm is not installed."""

    def __init__(self, total, stream):
        self.total = total
        self.n = 0
        self.stream = stream
        self._last = 0.0
        self.drawn = None

    def update(self, count):
        self.n += count
        now = time.monotonic()
        if now - self._last >= 0.1 or self.n == self.total:
            self._last = now
            self._draw()

    def _draw(self):
        self.drawn = self.n
        if self.total:
            filled = int(30 * self.n / self.total)
            text = f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.n}/{self.total}"
        else:
            text = f"\r{self.n} tasks done"
        self.stream.write(text)
        self.stream.flush()

    def close(self):
        if self.drawn != self.n:
            self._draw()
        self.stream.write("\n")
        self.stream.flush()


class Progress:
    """What a call reports as its tasks finish.

    Parameters
    ----------
    total : int or None
        Number of tasks, when the iterable has a length.
    verbose : int
        joblib's levels: 0 silent; above 0, ``[Parallel(n_jobs=N)]: Done ...``
        lines on stderr (stdout from 50, as joblib) at growing intervals
        (every task above 10).
    progress : bool or 'force'
        A progress bar on stderr (tqdm when installed, else a text bar), only
        when stderr is a terminal unless ``'force'``.
    callback : callable or None
        ``callback(index, result)``, called in the caller's process for each
        finished task.
    n_jobs : int
    """

    def __init__(self, total, verbose, progress, callback, n_jobs):
        self.total = total
        self.verbose = verbose
        self.callback = callback
        self.n_jobs = n_jobs
        self.done = 0
        self.start = time.monotonic()
        self._next_report = 1
        self._printed = None
        self.bar = None
        stream = sys.stderr
        if progress == "force" or (progress and hasattr(stream, "isatty") and stream.isatty()):
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self.bar = _TextBar(total, stream)
            else:
                self.bar = tqdm(total=total, file=stream, unit="task")
        self.active = bool(callback or self.bar is not None or verbose > 0)

    def finished(self, start, results):
        """Tasks ``start, start + 1, ...`` finished with `results`."""
        if self.callback is not None:
            for offset, result in enumerate(results):
                self.callback(start + offset, result)
        self.done += len(results)
        if self.bar is not None:
            self.bar.update(len(results))

    def report(self, final):
        """Print a verbose line if one is due (`final`: the call completed, and none was printed for it)."""
        if self.verbose <= 0 or not self.done:
            return
        if final:
            if self._printed != self.done:
                self._print()
        elif self.done >= self._next_report or self.verbose > 10:
            self._next_report = self.done * 2
            self._print()

    def _print(self):
        elapsed = time.monotonic() - self.start
        total = f" out of {self.total}" if self.total is not None else ""
        self._printed = self.done
        stream = sys.stderr if self.verbose < 50 else sys.stdout  # as joblib
        stream.write(f"[Parallel(n_jobs={self.n_jobs})]: Done {self.done:4d}{total} tasks | elapsed: {elapsed:.1f}s\n")

    def close(self):
        """The call ended."""
        if self.bar is not None:
            self.bar.close()
