"""PNG figures with matplotlib, an optional extra (``pip install 'seqnlp[plots]'``).

Without matplotlib every function logs a note and returns None; the CSV files beside a figure hold its data.
Figures are drawn through matplotlib's object API (``Figure``), which neither needs a display nor changes the
global backend of a program that imports seqnlp.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'seqnlp[plots]'"


def _figure(path: Path, width: float, height: float, columns: int) -> Optional["Figure"]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        log.info("matplotlib is not installed (%s): %s not drawn; the CSV beside it has the data", INSTALL_HINT,
                 path.name)
        return None
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    figure.subplots(1, columns)
    return figure


def _save(figure: "Figure", path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    log.info("figure written to %s", path)
    return path


def plot_validation_curves(series: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], path: str | Path) -> Optional[Path]:
    """Validation accuracy and loss per epoch: one line per label (mean over its seeds), a band from the lowest
    to the highest seed. ``series`` maps a label to its runs, each a list of per-epoch records."""
    path = Path(path)
    figure = _figure(path, 10, 3.8, 2)
    if figure is None:
        return None
    axes = figure.axes
    for color, (label, runs) in enumerate(series.items()):
        for ax, metric in zip(axes, ("validation_accuracy", "validation_loss")):
            by_epoch: dict[int, list[float]] = {}
            for run in runs:
                for record in run:
                    by_epoch.setdefault(int(record["epoch"]), []).append(float(record[metric]))
            epochs = sorted(by_epoch)
            means = [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
            ax.plot(epochs, means, marker="o", markersize=3, color=f"C{color}", label=label)
            if len(runs) > 1:
                ax.fill_between(epochs, [min(by_epoch[e]) for e in epochs], [max(by_epoch[e]) for e in epochs],
                                color=f"C{color}", alpha=0.15, linewidth=0)
    for ax, title in zip(axes, ("validation accuracy", "validation loss")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return _save(figure, path)


def plot_diagnostics(
    profiles: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    saturation: Sequence[tuple[str, str, float]],
    path: str | Path,
    title: str = "",
    threshold: float = 0.99,
) -> Optional[Path]:
    """Left: mean norm of the loss gradient w.r.t. each position's embedding against its distance from the end
    (log scale), one line per model. Right: the fraction of saturated activations, one bar per model and quantity.

    ``profiles`` maps a label to (distances, norms); ``saturation`` holds (label, quantity, fraction) rows.
    """
    path = Path(path)
    figure = _figure(path, 11, 4.2, 2)
    if figure is None:
        return None
    left, right = figure.axes
    colors = {label: f"C{i}" for i, label in enumerate(dict.fromkeys([*profiles, *(row[0] for row in saturation)]))}
    for label, (distances, norms) in profiles.items():
        # A gradient that underflowed float32 is exactly 0: a gap on the log scale, not a plunge to its floor.
        left.plot(distances, [n if n > 0 else float("nan") for n in norms], color=colors[label], label=label)
    left.set_yscale("log")
    left.set_xlabel("distance from the end of the text (tokens)")
    left.set_ylabel("mean ||dloss / d embedding||")
    left.set_title("gradient reaching each position")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize="small")
    names = [f"{label}: {quantity}" for label, quantity, _ in saturation]
    bars = right.barh(range(len(saturation)), [value for _, _, value in saturation],
                      color=[colors[label] for label, _, _ in saturation])
    right.bar_label(bars, fmt="%.3f", fontsize="x-small", padding=2)
    right.set_yticks(range(len(saturation)), names, fontsize="small")
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel(f"fraction saturated (tanh: |x| > {threshold:g}; gates: < {1 - threshold:.2g} or > {threshold:g})")
    right.set_title("saturation")
    right.grid(alpha=0.3, axis="x")
    if title:
        figure.suptitle(title)
    return _save(figure, path)
