"""The report's figures as PNG bytes, drawn with matplotlib (``pip install 'seqnlp[plots]'``) when it is installed.

Without matplotlib each function returns None and the page shows the same numbers as tables. Figures go through
matplotlib's object API (``Figure``), which needs no display and leaves the global backend alone.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'seqnlp[plots]'"


def _figure(width: float, height: float, columns: int) -> Optional["Figure"]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        log.info("matplotlib is not installed (%s): the report shows tables instead of figures", INSTALL_HINT)
        return None
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    figure.subplots(1, columns)
    return figure


def _png(figure: "Figure") -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def training_curves(history: Sequence[Mapping[str, Any]]) -> Optional[bytes]:
    """Left: training and validation loss per epoch; right: validation accuracy and macro-F1 (metrics.jsonl)."""
    figure = _figure(10, 3.6, 2) if history else None
    if figure is None:
        return None
    from matplotlib.ticker import MaxNLocator

    left, right = figure.axes
    epochs = [int(r["epoch"]) for r in history]
    left.plot(epochs, [r["train"]["loss"] for r in history], marker="o", markersize=3, label="training")
    left.plot(epochs, [r["validation"]["loss"] for r in history], marker="o", markersize=3, label="validation")
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        right.plot(epochs, [r["validation"][key] for r in history], marker="o", markersize=3, label=name)
    best = [r["epoch"] for r in history if r.get("best")]
    for ax, title in ((left, "loss"), (right, "validation")):
        if best:
            ax.axvline(best[-1], color="0.6", linestyle=":", linewidth=1, label=f"best epoch ({best[-1]})")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _png(figure)


def reliability(calibration: Mapping[str, Any]) -> Optional[bytes]:
    """Left: accuracy against confidence per bin, before and after the temperature, and the diagonal of perfect
    calibration; right: accuracy against coverage of the calibrated decisions (risk-coverage)."""
    figure = _figure(10, 3.8, 2)
    if figure is None:
        return None
    left, right = figure.axes
    left.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    for stage, marker in (("before", "s"), ("after", "o")):
        rows = calibration["reliability"][stage]
        scores = calibration[stage]
        label = (f"{stage} (T={calibration['temperature']:.2f})" if stage == "after" else "before (T=1)")
        left.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker=marker, markersize=4,
                  label=f"{label}: ECE {scores['ece']:.3f}")
    left.set_xlim(0, 1.02)
    left.set_ylim(0, 1.02)
    left.set_xlabel("mean confidence in the bin")
    left.set_ylabel("accuracy in the bin")
    left.set_title("reliability")
    covered = [r for r in calibration["risk_coverage"] if r["accuracy"] is not None]
    right.plot([r["coverage"] for r in covered], [r["accuracy"] for r in covered], marker="o", markersize=4)
    for r in covered:
        right.annotate(f"p≥{r['min_confidence']:.2f}", (r["coverage"], r["accuracy"]), fontsize="x-small",
                       textcoords="offset points", xytext=(0, 6), ha="center")
    right.invert_xaxis()
    right.set_xlabel("coverage (share of texts answered, most confident first)")
    right.set_ylabel("accuracy")
    right.set_title("risk-coverage")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize="small", loc="upper left")
    return _png(figure)
