"""The schedule module on numbers alone: lr_factor, is_improvement, schedule_steps, make_optimizer and Monitor."""

from __future__ import annotations

import math

import pytest
import torch

from seqnlp.config import TrainConfig
from seqnlp.training.schedule import Monitor, Verdict, is_improvement, lr_factor, make_optimizer, schedule_steps
from seqnlp.training.state import MonitorState


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine", "plateau"])
def test_warm_up_is_a_linear_ramp_to_one(schedule: str) -> None:
    factors = [lr_factor(step, 100, 10, schedule) for step in range(10)]
    assert factors == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lr_factor(10, 100, 10, schedule) == pytest.approx(1.0)  # the first step after warm-up: full rate


def test_linear_decays_to_zero_at_the_end() -> None:
    assert lr_factor(10, 110, 10, "linear") == pytest.approx(1.0)
    assert lr_factor(60, 110, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(85, 110, 10, "linear") == pytest.approx(0.25)
    assert lr_factor(110, 110, 10, "linear") == pytest.approx(0.0)
    assert lr_factor(500, 110, 10, "linear") == pytest.approx(0.0)  # never negative past the end
    factors = [lr_factor(s, 110, 10, "linear") for s in range(10, 111)]
    assert all(a > b for a, b in zip(factors, factors[1:]))


def test_cosine_is_half_way_at_half_time() -> None:
    assert lr_factor(0, 100, 0, "cosine") == pytest.approx(1.0)
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5)
    assert lr_factor(25, 100, 0, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(60, 110, 10, "cosine") == pytest.approx(0.5)  # half-way after warm-up
    factors = [lr_factor(s, 100, 0, "cosine") for s in range(101)]
    assert all(a > b for a, b in zip(factors, factors[1:]))


@pytest.mark.parametrize("schedule", ["constant", "plateau"])
def test_constant_and_plateau_hold_the_rate_after_warm_up(schedule: str) -> None:
    assert [lr_factor(s, 100, 5, schedule) for s in (5, 6, 50, 99, 100, 1000)] == [1.0] * 6
    assert [lr_factor(s, 100, 0, schedule) for s in (0, 50, 99)] == [1.0] * 3


def test_no_warm_up_starts_at_the_full_rate() -> None:
    assert lr_factor(0, 10, 0, "linear") == pytest.approx(1.0)
    assert lr_factor(5, 10, 0, "linear") == pytest.approx(0.5)


def test_is_improvement_for_loss_is_lower() -> None:
    assert is_improvement(0.9, None, "loss")
    assert is_improvement(0.4, 0.5, "loss")
    assert not is_improvement(0.6, 0.5, "loss")
    assert not is_improvement(0.5, 0.5, "loss")  # a tie is not an improvement


@pytest.mark.parametrize("monitor", ["accuracy", "macro_f1"])
def test_is_improvement_for_scores_is_higher(monitor: str) -> None:
    assert is_improvement(0.0, None, monitor)
    assert is_improvement(0.6, 0.5, monitor)
    assert not is_improvement(0.4, 0.5, monitor)
    assert not is_improvement(1.0, 1.0, monitor)


def test_schedule_steps_counts_every_epoch_and_the_warm_up() -> None:
    assert schedule_steps(TrainConfig(epochs=3, warmup_ratio=0.1), 20) == (60, 6)
    assert schedule_steps(TrainConfig(epochs=3, warmup_ratio=0.1), None) == (0, 0)  # a stream of unknown size


def test_make_optimizer_decays_matrices_only() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 2))
    optimizer = make_optimizer(model, TrainConfig(lr=0.1, weight_decay=0.5))
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.5 and plain["weight_decay"] == 0.0
    assert [tuple(p.shape) for p in decayed["params"]] == [(5, 3), (2, 3)]
    assert [tuple(p.shape) for p in plain["params"]] == [(2,)]
    assert decayed["lr"] == plain["lr"] == 0.1


# --- Monitor: best score, patience, plateau -----------------------------------------------------------------


def updates(monitor: Monitor, scores: list[float]) -> list[Verdict]:
    return [monitor.update(epoch, score) for epoch, score in enumerate(scores, start=1)]


def test_accuracy_is_maximized_and_the_best_epoch_kept() -> None:
    monitor = Monitor("accuracy")
    verdicts = updates(monitor, [0.5, 0.7, 0.6, 0.7, 0.8])
    assert [v.improved for v in verdicts] == [True, True, False, False, True]
    assert not any(v.stop or v.lr_dropped for v in verdicts)
    assert (monitor.state.best_score, monitor.state.best_epoch, monitor.state.bad_epochs) == (0.8, 5, 0)


def test_loss_is_minimized() -> None:
    monitor = Monitor("loss")
    assert [v.improved for v in updates(monitor, [0.9, 0.5, 0.7, 0.5, 0.4])] == [True, True, False, False, True]
    assert (monitor.state.best_score, monitor.state.best_epoch) == (0.4, 5)


def test_patience_stops_after_that_many_epochs_without_improvement() -> None:
    monitor = Monitor("macro_f1", patience=2)
    verdicts = updates(monitor, [0.5, 0.4, 0.6, 0.6, 0.55])
    assert [v.stop for v in verdicts] == [False, False, False, False, True]
    assert monitor.state.bad_epochs == 2 and monitor.state.best_epoch == 3


def test_no_patience_never_stops() -> None:
    assert not any(v.stop for v in updates(Monitor("accuracy", patience=None), [0.9] + [0.1] * 20))


def test_plateau_scales_the_rate_after_plateau_patience_stalled_epochs() -> None:
    monitor = Monitor("loss", patience=None, plateau_patience=2, plateau_factor=0.5)
    verdicts = updates(monitor, [1.0, 1.1, 1.2, 1.3, 0.9, 1.0, 1.0])
    assert [v.lr_dropped for v in verdicts] == [False, False, True, False, False, False, True]
    assert monitor.state.plateau_scale == 0.25
    assert monitor.state.bad_epochs == 2  # early stopping keeps counting across the drops
    assert monitor.state.plateau_bad == 0


def test_for_run_follows_the_config() -> None:
    plain = Monitor.for_run("accuracy", TrainConfig(schedule="linear", patience=4, plateau_patience=1))
    assert (plain.patience, plain.plateau_patience) == (4, None)  # no plateau outside schedule=plateau
    plateau = Monitor.for_run("loss", TrainConfig(schedule="plateau", plateau_patience=3, plateau_factor=0.1))
    assert (plateau.plateau_patience, plateau.plateau_factor, plateau.metric) == (3, 0.1, "loss")


def test_the_monitor_continues_from_a_saved_state() -> None:
    """A resumed run hands the checkpoint's MonitorState over: counting goes on where it stopped."""
    state = MonitorState(best_score=0.8, best_epoch=2, bad_epochs=1)
    monitor = Monitor("accuracy", patience=2, state=state)
    assert monitor.update(4, 0.7) == Verdict(improved=False, stop=True, lr_dropped=False)
    assert state.bad_epochs == 2 and monitor.state is state


def test_the_ngram_branch_is_a_group_at_its_own_learning_rate() -> None:
    from seqnlp.config import ModelConfig
    from seqnlp.model import RNNClassifier

    model = RNNClassifier(ModelConfig(embedding_dim=4, hidden_size=4, ngram_orders=[1, 2], ngram_buckets=11), 20, 2)
    optimizer = make_optimizer(model, TrainConfig(lr=0.002, ngram_lr=0.02))
    wide = optimizer.param_groups[-1]
    assert wide["params"] == [model.ngrams.weight.weight] and wide["lr_scale"] == pytest.approx(10.0)
    counted = sum(len(group["params"]) for group in optimizer.param_groups)
    assert counted == len(list(model.parameters()))  # every parameter in exactly one group
    plain = make_optimizer(model, TrainConfig(lr=0.002))
    assert plain.param_groups[-1]["lr_scale"] == 1.0  # ngram_lr unset: the branch follows train.lr
