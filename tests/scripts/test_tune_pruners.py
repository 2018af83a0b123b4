"""scripts/tune_pruners.py: replaying recorded curves charges pruned trials only the epochs they ran."""

from __future__ import annotations

from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from seqnlp.tune.study import optuna_quiet  # noqa: E402

from tests.helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tune_pruners.py"


def _curve(values: list[float]) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(value=max(values), intermediate_values=dict(enumerate(values, 1)),
                                     user_attrs={"seconds": 2.0 * len(values)})


def test_replay_charges_pruned_trials_only_their_epochs() -> None:
    script = load_script("tune_pruners")
    good, bad = [0.6, 0.7, 0.8], [0.1, 0.2, 0.3]
    curves = [_curve(good), _curve(good), _curve(good), _curve(bad)]
    with optuna_quiet():
        assert script.replay(curves, optuna.pruners.NopPruner(), "maximize") == (24.0, 0, 0.8)
        spent, pruned, best = script.replay(curves, optuna.pruners.MedianPruner(n_startup_trials=3), "maximize")
    assert (spent, pruned, best) == (20.0, 1, 0.8)  # the bad trial stops after its first epoch (2 s)
