"""The study's two figures, drawn with matplotlib's object API (``Figure``: no display, no global backend).

Importing this module needs matplotlib (the ``plots`` extra); ``seqnlp.tune.report`` skips the figures with a
log line when it is missing, and trials.csv holds their data.
"""

from __future__ import annotations

import logging
from pathlib import Path

from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)


def plot_history(trials: list[FrozenTrial], metric: str, direction: str, path: Path) -> Path:
    """Every trial's validation metric in trial order (complete: dots; pruned or stopped: crosses at their last
    epoch's value) and the best complete trial so far as a step line."""
    figure = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    ax = figure.subplots()
    complete = [(t.number, t.value) for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [(t.number, t.intermediate_values[t.last_step]) for t in trials
              if t.state == TrialState.PRUNED and t.last_step is not None]
    if complete:
        ax.plot(*zip(*complete), "o", color="C0", label="complete")
        best, line = None, []
        for number, value in complete:
            if best is None or (value < best if direction == "minimize" else value > best):
                best = value
            line.append((number, best))
        ax.step(*zip(*line), where="post", color="C1", label="best so far")
    if pruned:
        ax.plot(*zip(*pruned), "x", color="C3", label="pruned or stopped (last epoch)")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title("Optimization history")
    ax.grid(alpha=0.3)
    if complete or pruned:
        ax.legend(loc="best", fontsize="small")
    return _save(figure, path)


def plot_importance(importances: dict[str, float], metric: str, path: Path) -> Path:
    """Horizontal bars, the most important parameter on top."""
    names = list(importances)[::-1]
    figure = Figure(figsize=(7, 0.45 * len(names) + 1.2), dpi=100, layout="constrained")
    ax = figure.subplots()
    ax.barh(names, [importances[name] for name in names], color="C0")
    ax.set_xlabel(f"importance for validation {metric} (PED-ANOVA)")
    ax.set_title("Parameter importance")
    ax.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp)
    tmp.replace(path)
    log.info("figure written to %s", path)
    return path
