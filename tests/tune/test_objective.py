"""One trial: the hook reports every epoch and stops a trial when pruned or out of budget; a trial that cannot
train fails without stopping the study, until it happens three times in a row."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest

from seqnlp.checkpoint import CHECKPOINT_DIR, METRICS_FILE, RESULTS_FILE, WEIGHTS_FILE
from seqnlp.config import Config
from seqnlp.errors import DataError
from seqnlp.training.state import TrainingState
from seqnlp.tune import space_from_data
from seqnlp.tune.objective import TRIAL_FILE, BudgetSpent, Objective, TrialHook, describe
from seqnlp.tune.study import TRIALS_DIR, optuna_quiet


class FakeTrial:
    """What TrialHook uses of an Optuna trial."""

    def __init__(self, prune_at: int = 0) -> None:
        self.prune_at, self.reports = prune_at, []  # type: ignore[var-annotated]

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return bool(self.prune_at) and self.reports[-1][0] >= self.prune_at


def _epoch(hook: TrialHook, epoch: int, accuracy: float, finished: bool = False) -> None:
    hook.on_epoch(TrainingState(epoch=epoch, finished=finished), {"validation": {"accuracy": accuracy, "loss": 1.0}})


def test_the_hook_reports_every_epoch_and_prunes_when_told() -> None:
    trial = FakeTrial(prune_at=2)
    hook = TrialHook(trial, "accuracy", epochs=5, deadline=None)  # type: ignore[arg-type]
    _epoch(hook, 1, 0.6)
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 2 \\(validation accuracy 0.7000\\)"):
        _epoch(hook, 2, 0.7)
    assert trial.reports == [(1, 0.6), (2, 0.7)] and hook.reported == {1: 0.6, 2: 0.7}


class Stats:
    seconds = 0.01  # what the hook reads of a step's StepStats


def test_the_hook_stops_a_step_past_the_deadline() -> None:
    hook = TrialHook(FakeTrial(), "accuracy", epochs=5, deadline=time.monotonic() - 1)  # type: ignore[arg-type]
    with pytest.raises(BudgetSpent, match="during epoch 3"):
        hook.on_step(TrainingState(epoch=3), None, Stats())
    TrialHook(FakeTrial(), "accuracy", 5, None).on_step(TrainingState(), None, Stats())  # type: ignore[arg-type]


def test_the_hook_stops_when_no_epoch_fits_in_what_is_left_but_lets_the_last_one_finish() -> None:
    hook = TrialHook(FakeTrial(), "accuracy", epochs=3, deadline=time.monotonic() + 3600)  # type: ignore[arg-type]

    def slow_epoch(epoch: int, finished: bool = False) -> None:
        hook.on_step(TrainingState(epoch=epoch), None, Stats())
        hook.epoch_start -= 4000  # type: ignore[operator]  # the epoch took longer than the hour left
        _epoch(hook, epoch, 0.6, finished)

    with pytest.raises(BudgetSpent, match="no time left for epoch 2"):
        slow_epoch(1)
    assert hook.last_epoch_seconds > 4000
    slow_epoch(3)  # the last epoch: nothing more to fit, the run finishes
    slow_epoch(2, finished=True)  # early stopping ended the run: the same


def _optimize(objective: Objective, n: int = 1) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    with optuna_quiet():
        study.optimize(objective, n_trials=n)
    return study


def test_a_trial_out_of_budget_is_stopped_and_its_directory_says_so(make_base: Callable[..., Config],
                                                                       tmp_path: Path) -> None:
    base = make_base()
    space = space_from_data({"defaults": False, "model.hidden_size": [8]}, base)
    study = _optimize(Objective(base, space, "accuracy", tmp_path / "out", deadline=time.monotonic() - 1))
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["stopped"] == "budget"
    run_dir = tmp_path / "out" / TRIALS_DIR / "trial-0000"
    record = json.loads((run_dir / TRIAL_FILE).read_text())
    assert record["state"] == "pruned" and record["reason"].startswith("stopped: the budget ran out during epoch 1")
    assert not (run_dir / CHECKPOINT_DIR).exists() and not (run_dir / RESULTS_FILE).exists()


def test_a_trial_that_cannot_train_fails_and_the_third_in_a_row_stops_the_study(make_base: Callable[..., Config],
                                                                                 tmp_path: Path) -> None:
    base = make_base()
    space = space_from_data({"defaults": False, "data.label_column": ["no_such_column"]}, base)
    objective = Objective(base, space, "accuracy", tmp_path / "out")
    with pytest.raises(DataError):
        _optimize(objective, n=5)
    assert objective.failures == 3


def test_a_complete_trial_returns_the_best_epochs_metric(make_base: Callable[..., Config], tmp_path: Path) -> None:
    base = make_base()
    space = space_from_data({"defaults": False, "model.hidden_size": [8]}, base)
    study = _optimize(Objective(base, space, "accuracy", tmp_path / "out"))
    trial = study.trials[0]
    run_dir = Path(trial.user_attrs["run_dir"])
    results = json.loads((run_dir / RESULTS_FILE).read_text())
    assert trial.value == pytest.approx(results["validation"]["accuracy"])
    assert trial.intermediate_values.keys() == {1, 2} and trial.user_attrs["epochs"] == 2
    assert (run_dir / WEIGHTS_FILE).is_file() and len((run_dir / METRICS_FILE).read_text().splitlines()) == 2
    assert not (run_dir / CHECKPOINT_DIR).exists()
    assert json.loads((run_dir / TRIAL_FILE).read_text())["state"] == "complete"


@pytest.mark.parametrize("values, text", [
    ({"model.cell": "gru", "train.lr": 0.0012345, "model.bidirectional": True}, "cell=gru lr=0.00123 bidirectional=true"),
    ({}, ""),
])
def test_describe(values: dict[str, Any], text: str) -> None:
    assert describe(values) == text
