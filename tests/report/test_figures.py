"""The report's figures: PNG bytes with matplotlib, None without it."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from seqnlp.report import figures

PNG = b"\x89PNG\r\n\x1a\n"
HISTORY = [{"epoch": e, "best": e == 2, "train": {"loss": 1.0 / e}, "validation": {"loss": 1.2 / e, "accuracy": 0.5 + e / 10,
                                                                                     "macro_f1": 0.4 + e / 10}}
           for e in (1, 2, 3)]
CALIBRATION: dict[str, Any] = {
    "temperature": 1.5, "before": {"ece": 0.1}, "after": {"ece": 0.02},
    "reliability": {stage: [{"low": 0.5, "high": 0.6, "count": 3, "confidence": 0.55, "accuracy": 0.6},
                            {"low": 0.9, "high": 1.0, "count": 9, "confidence": 0.95, "accuracy": 0.9}]
                    for stage in ("before", "after")},
    "risk_coverage": [{"coverage": c, "examples": 10, "accuracy": 0.9, "min_confidence": 0.6} for c in (1.0, 0.5)],
}


def test_figures_are_png_images() -> None:
    pytest.importorskip("matplotlib")
    assert (figures.training_curves(HISTORY) or b"").startswith(PNG)
    assert (figures.reliability(CALIBRATION) or b"").startswith(PNG)
    assert figures.training_curves([]) is None


def test_without_matplotlib_there_are_no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert figures.training_curves(HISTORY) is None and figures.reliability(CALIBRATION) is None
