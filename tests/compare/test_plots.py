"""Figures: PNGs when matplotlib is installed, None and a log note when it is not, never a warning."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest

from seqnlp.compare.plots import plot_diagnostics, plot_validation_curves

PNG = b"\x89PNG\r\n\x1a\n"
CURVES = {"rnn": [[{"epoch": 1, "validation_accuracy": 0.5, "validation_loss": 0.7},
                   {"epoch": 2, "validation_accuracy": 0.6, "validation_loss": 0.6}],
                  [{"epoch": 1, "validation_accuracy": 0.55, "validation_loss": 0.65}]]}
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")


@needs_matplotlib
def test_validation_curves_png_with_seeds_of_different_lengths(tmp_path: Path) -> None:
    path = plot_validation_curves(CURVES, tmp_path / "sub" / "curves.png")
    assert path == tmp_path / "sub" / "curves.png" and path.read_bytes()[:8] == PNG


@needs_matplotlib
def test_diagnostics_png_with_an_underflowed_gradient(tmp_path: Path) -> None:
    profiles = {"rnn": ([0, 1, 2, 3], [0.1, 1e-20, 0.0, 0.0]), "gru": ([0, 1], [0.2, 0.01])}
    saturation = [("rnn", "state h (tanh)", 0.0), ("gru", "update gate", 0.25)]
    path = plot_diagnostics(profiles, saturation, tmp_path / "diag.png", title="t")
    assert path is not None and path.read_bytes()[:8] == PNG  # zeros are gaps on the log axis, no warning


def test_without_matplotlib_nothing_is_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with caplog.at_level(logging.INFO, logger="seqnlp"):
        assert plot_validation_curves(CURVES, tmp_path / "curves.png") is None
        assert plot_diagnostics({"rnn": ([0], [1.0])}, [], tmp_path / "diag.png") is None
    assert not list(tmp_path.iterdir())
    assert caplog.text.count("pip install 'seqnlp[plots]'") == 2
