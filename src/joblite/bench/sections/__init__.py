"""The sections of the benchmark, one module each, and what every section is given.

A section is a function ``section(context) -> list of Row`` (see
:class:`joblite.bench.report.Row`): it builds a real, seeded workload (from
:mod:`joblite.bench.workloads`), times joblite and its baselines on it in the
same run, and returns one row per (case, implementation) with the ratios
that matter already computed.  Every section is given the same
:class:`Context`; the registry of sections, in their run order, is
:data:`joblite.bench.cli.SECTIONS`.

Nothing here imports numpy, joblib or dask at module import time; each
section imports what it needs when it runs.
"""

import contextlib
import dataclasses
from typing import Optional

__all__ = ["Context"]


@dataclasses.dataclass(frozen=True)
class Context:
    """What a section is given.

    Attributes
    ----------
    quick : bool, default False
        Small workloads and few repeats, to run in a few seconds.
    tmpdir : str or None, default None
        Where the section writes its files (:meth:`scratch_folder`); the
        system's temporary directory when None.
    """

    quick: bool = False
    tmpdir: Optional[str] = None

    def sizes(self, table):
        """``table['quick']`` or ``table['full']``, as :attr:`quick` says."""
        return table["quick" if self.quick else "full"]

    @contextlib.contextmanager
    def scratch_folder(self):
        """A fresh folder in :attr:`tmpdir` (``joblite-bench-*``), removed with what it holds at the end.

        Yields
        ------
        str
            Its path.
        """
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="joblite-bench-", dir=self.tmpdir)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
