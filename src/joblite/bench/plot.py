"""Charts of the bench: ``--plot DIR`` (one PNG per section) and ``--compare ... --plot DIR``.

Drawn with matplotlib, the ``plot`` extra (``pip install "joblite[plot]"``),
on its non-interactive Agg backend, so that no display is needed.  Each bar is
one of joblite's figures (a ratio against a baseline of the same run) on a
log scale; its whisker is the case's spread (the largest ``max / min`` of
the case's repeated measures, the same noise ``--compare`` weighs changes
against); a tick marks the figure's target when it has one.
"""

import os

__all__ = ["plot_comparison", "plot_sections", "require_matplotlib"]

_MISSING = "the plots need matplotlib: pip install 'joblite[plot]'"


def require_matplotlib():
    """Import matplotlib with the Agg backend; return ``matplotlib.pyplot``.

    Raises
    ------
    RuntimeError
        If matplotlib is not installed; the message names the ``plot`` extra.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError(_MISSING) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _case_noise(rows):
    """Per (section, case): the largest ``max / min`` among its rows' measures (1 when unknown)."""
    noise = {}
    for row in rows:
        if row.spread and row.spread[0] > 0:
            key = (row.section, row.name)
            noise[key] = max(noise.get(key, 1.0), row.spread[2] / row.spread[0])
    return noise


def _figures(rows):
    """(section, label, value, case spread, target or None) for each figure of joblite's rows."""
    from .compare import ABSOLUTE
    from .report import _RATIO_COLUMNS

    titles = {key: title for key, title, _ in _RATIO_COLUMNS}
    noise = _case_noise(rows)
    out = []
    for row in rows:
        if row.impl != "joblite":
            continue
        for key, value in row.ratios.items():
            if value is None or value <= 0 or key in ABSOLUTE:
                continue
            goal = row.targets.get(key)
            out.append(
                (
                    row.section,
                    f"{row.name}: {titles.get(key, key)}",
                    value,
                    noise.get((row.section, row.name), 1.0),
                    None if goal is None else abs(goal),
                )
            )
    return out


def _save(plt, figure, directory, name):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    temporary = path + ".tmp.png"
    figure.savefig(temporary, dpi=100, bbox_inches="tight")
    plt.close(figure)
    os.replace(temporary, path)
    return path


def plot_sections(rows, directory):
    """Write one PNG per section: joblite's figures with their spread and targets.

    Parameters
    ----------
    rows : list of Row
        One run (:func:`~joblite.bench.report.rows_from_json`).
    directory : str
        Created if needed; each file is ``<section>.png``, replaced whole.

    Returns
    -------
    list of str
        The paths written, in section order.

    Raises
    ------
    RuntimeError
        If matplotlib is not installed (the message names the extra).
    """
    plt = require_matplotlib()
    figures = _figures(rows)
    paths = []
    for section in dict.fromkeys(figure[0] for figure in figures):
        members = [figure for figure in figures if figure[0] == section]
        figure, axes = plt.subplots(figsize=(9, 0.32 * len(members) + 1.2))
        positions = range(len(members))
        values = [value for _, _, value, _, _ in members]
        low = [value - value / spread for _, _, value, spread, _ in members]
        high = [value * spread - value for _, _, value, spread, _ in members]
        axes.barh(positions, values, xerr=[low, high], color="#4c72b0", ecolor="#333333", capsize=2)
        for position, (*_, goal) in zip(positions, members):
            if goal is not None:
                axes.plot([goal, goal], [position - 0.4, position + 0.4], color="#c44e52", linewidth=2)
        axes.set_yticks(list(positions), [label for _, label, _, _, _ in members], fontsize=7)
        axes.invert_yaxis()
        axes.set_xscale("log")
        axes.set_xlabel("joblite's figure (ratio against the baseline of the same run; red: target)")
        axes.set_title(f"[{section}] whiskers: the case's spread (max / min of its measures)")
        paths.append(_save(plt, figure, directory, f"{section}.png"))
    return paths


def plot_comparison(changes, directory):
    """Write ``compare.png``: each compared figure's change (new / old) and its tolerance.

    Parameters
    ----------
    changes : list of Change
        From :func:`~joblite.bench.compare.compare_runs`.
    directory : str
        Created if needed; the file is replaced whole.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    RuntimeError
        If matplotlib is not installed (the message names the extra).
    """
    from .compare import LOWER_IS_BETTER
    from .report import _RATIO_COLUMNS

    titles = {key: title for key, title, _ in _RATIO_COLUMNS}
    plt = require_matplotlib()
    figure, axes = plt.subplots(figsize=(9, 0.28 * max(len(changes), 1) + 1.2))
    # Drawn as "times better": above 1 is better whatever the figure's direction.
    gains = [1 / c.change if c.key in LOWER_IS_BETTER else c.change for c in changes]
    colours = {"regressed": "#c44e52", "improved": "#55a868", "same": "#8c8c8c"}
    positions = range(len(changes))
    axes.barh(positions, [gain - 1 for gain in gains], left=1, color=[colours[c.verdict] for c in changes])
    for position, change in zip(positions, changes):
        axes.plot([1 / (1 + change.tolerance), 1 + change.tolerance], [position, position], color="#333333", lw=0.8)
    labels = [f"[{c.section}] {c.name}: {c.impl}, {titles.get(c.key, c.key)}" for c in changes]
    axes.set_yticks(list(positions), labels, fontsize=6)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.axvline(1, color="#333333", linewidth=0.8)
    axes.set_xlabel("new run over old, as times better (red: regressed; line: the runs' tolerance)")
    return _save(plt, figure, directory, "compare.png")
