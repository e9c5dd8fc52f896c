"""``joblite.externals.loky`` and ``joblite.externals.cloudpickle``: the installed loky and cloudpickle.

joblib vendors both under ``joblib.externals``; joblite depends on the
released packages instead, and names them here so that code written for
joblib (``from joblib.externals.loky import set_loky_pickler``, ...) runs
unchanged: they are the packages themselves (their submodules are reached
through them, e.g. ``joblite.externals.loky.backend``, not by a dotted
import of ``joblite.externals.loky.backend``).  joblite pickles the batches
it sends to loky workers itself, with cloudpickle, so loky's pickler setting
(``set_loky_pickler``) does not change how joblite's tasks travel (see the
differences page).
"""

import sys

import cloudpickle
import loky

__all__ = ["loky", "cloudpickle"]

sys.modules[f"{__name__}.loky"] = loky
sys.modules[f"{__name__}.cloudpickle"] = cloudpickle
