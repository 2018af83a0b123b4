"""The loop's parts driven directly: prepare -> Setup, one train_step, count_step on non-finite steps, fit with
hooks and a fake should_stop, then finish."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import torch

from seqnlp.batching import Batch, BatchLoader
from seqnlp.checkpoint import CHECKPOINT_DIR, CONFIG_FILE, LAST_POINTER, METRICS_FILE, WEIGHTS_FILE
from seqnlp.config import Config
from seqnlp.errors import TrainingError, TrainingInterrupted
from seqnlp.runtime import seed_everything
from seqnlp.training.loop import Hook, StepStats, count_step, fit, train_step
from seqnlp.training.run import finish
from seqnlp.training.setup import Setup, prepare
from seqnlp.training.state import TrainingState

MakeConfig = Callable[..., Config]
CPU = torch.device("cpu")


@pytest.fixture
def setup(make_config: MakeConfig) -> Setup:
    """A prepared toy run: 160 training rows in batches of 16 (10 steps an epoch), 40 validation rows, 2 epochs."""
    config = make_config(**{"train.epochs": 2, "train.checkpoint_every": None})
    seed_everything(config.seed)
    return prepare(config, CPU, Path(config.output_dir))  # type: ignore[arg-type]


def test_prepare_builds_what_the_config_says(setup: Setup) -> None:
    config = setup.config
    assert setup.label_names == ["neg", "pos"] and setup.plan.monitor == "accuracy"
    assert setup.model.embedding.num_embeddings == setup.tokenizer.get_vocab_size()
    assert setup.model.embedding.embedding_dim == config.model.embedding_dim == 16
    assert setup.train_model is setup.model  # one process: no DDP wrapper
    assert isinstance(setup.train_loader, BatchLoader) and setup.train_loader.num_batches == 10
    assert isinstance(setup.test_loader, BatchLoader) and setup.num_parameters > 0
    assert not setup.scaler.is_enabled()  # fp32
    assert {g["lr"] for g in setup.optimizer.param_groups} == {config.train.lr}
    assert (setup.run_dir / CONFIG_FILE).is_file()  # the run directory is prepared with the tokenizer
    batch = next(iter(setup.train_loader.epoch(1)))
    logits = setup.model(batch.input_ids, batch.lengths)
    assert batch.input_ids.shape[0] == 16 and logits.shape == (16, 2)  # [B, C]


def first_batch(setup: Setup) -> Batch:
    return next(iter(setup.train_loader.epoch(1)))


def batch_loss(setup: Setup, batch: Batch) -> float:
    setup.model.eval()
    with torch.no_grad():
        assert batch.labels is not None
        return float(setup.plan.objective.loss(setup.model(batch.input_ids, batch.lengths), batch.labels))


def step(setup: Setup, batch: Batch, model: Optional[torch.nn.Module] = None, **kwargs: Any) -> StepStats:
    return train_step(model or setup.train_model, batch, CPU, setup.optimizer, setup.scaler, setup.plan.objective,
                      kwargs.pop("lr", 0.01), max_grad_norm=1.0, **kwargs)


def test_one_step_lowers_the_loss_on_its_batch(setup: Setup) -> None:
    batch = first_batch(setup)
    before = batch_loss(setup, batch)
    stats = step(setup, batch, lr=0.05)
    assert stats.finite and stats.nonfinite == "" and not stats.stop
    assert stats.examples == 16 and stats.lr == 0.05 and setup.optimizer.param_groups[0]["lr"] == 0.05
    assert stats.loss_sum / stats.examples == pytest.approx(before, rel=1e-5)  # no dropout in the tiny config
    assert stats.tokens == int(batch.lengths.sum()) and stats.slots == batch.input_ids.numel() >= stats.tokens
    assert batch_loss(setup, batch) < before
    assert step(setup, batch, stop=True).stop  # the stop request travels with the step's numbers


def test_a_step_runs_the_ngram_branch_at_its_own_rate_and_nb_initializes_it(make_config: MakeConfig) -> None:
    config = make_config(**{"model.ngram_orders": [1, 2], "model.ngram_buckets": 101, "train.ngram_lr": 0.1})
    setup = prepare(config, CPU, Path(config.output_dir))  # type: ignore[arg-type]
    assert setup.model.ngrams is not None and setup.model.ngrams.weight.weight.abs().sum() > 0  # NB ratios
    stats = step(setup, first_batch(setup), lr=0.01)
    assert stats.finite
    # TINY trains at lr 0.01, so the branch group runs at 0.1 / 0.01 = 10x the scheduled rate
    assert [g["lr"] for g in setup.optimizer.param_groups] == pytest.approx([0.01, 0.01, 0.1])


class NaNLogits(torch.nn.Module):
    """The model, with its logits turned to NaN."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor, parts: bool = False) -> torch.Tensor:
        return self.model(input_ids, lengths, parts) * float("nan")


def test_a_non_finite_loss_leaves_the_weights_alone(setup: Setup) -> None:
    before = {name: p.detach().clone() for name, p in setup.model.named_parameters()}
    stats = step(setup, first_batch(setup), model=NaNLogits(setup.model))
    assert not stats.finite and stats.nonfinite == "loss"
    assert all(p.grad is None for p in setup.model.parameters())
    assert all(torch.equal(p, before[name]) for name, p in setup.model.named_parameters())


def test_count_step_stops_or_skips_a_non_finite_step(setup: Setup) -> None:
    stats = step(setup, first_batch(setup), model=NaNLogits(setup.model))
    state = TrainingState(epoch=2, batch=3, step=13)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 14 \(epoch 2, batch 4\); .* in runs/x is intact"):
        count_step(state, stats, "stop", Path("runs/x"))
    assert state.step == 13  # nothing counted
    count_step(state, stats, "skip")
    assert (state.step, state.batch, state.skipped_steps, state.examples, state.loss_sum) == (14, 4, 1, 0, 0.0)
    assert state.tokens == stats.tokens  # the tokens went through the model all the same


class Recorder(Hook):
    def __init__(self) -> None:
        self.steps: list[tuple[int, int, int]] = []  # (epoch, step, batch size)
        self.records: list[dict[str, Any]] = []

    def on_step(self, state: TrainingState, batch: Batch, stats: StepStats) -> None:
        self.steps.append((state.epoch, state.step, len(batch.indices)))

    def on_epoch(self, state: TrainingState, record: dict[str, Any]) -> None:
        self.records.append(record)


def test_fit_runs_every_epoch_calls_the_hooks_and_finish_reports(setup: Setup) -> None:
    state, hook = TrainingState(), Recorder()
    fit(setup, state, progress=False, hooks=[hook])
    assert [s[:2] for s in hook.steps] == [(1 + i // 10, i + 1) for i in range(20)]
    assert hook.records == state.history and [r["epoch"] for r in state.history] == [1, 2]
    assert (state.epoch, state.batch, state.step, state.finished) == (3, 0, 20, False)
    lines = (setup.run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == state.history
    assert json.loads((setup.run_dir / CHECKPOINT_DIR / LAST_POINTER).read_text())["dir"] == "step-00000020"
    result = finish(setup, state)
    assert result.best_epoch == state.monitor.best_epoch >= 1 and (setup.run_dir / WEIGHTS_FILE).is_file()
    assert {k: v for k, v in result.validation.items() if k != "calibration"} == {
        **state.history[result.best_epoch - 1]["validation"], "split": "validation",
        "carved": setup.carved.get("validation")}


def test_fit_stops_after_the_step_at_which_should_stop_answers(setup: Setup) -> None:
    state = TrainingState()

    def should_stop() -> Optional[int]:  # asked before every step: it answers before step 4
        return signal.SIGINT if state.step >= 3 else None

    with pytest.raises(TrainingInterrupted, match="interrupted by SIGINT; checkpoint saved") as info:
        fit(setup, state, should_stop, progress=False)
    assert info.value.exit_code == 130
    assert (state.epoch, state.batch, state.step) == (1, 4, 4)
    assert json.loads((setup.run_dir / CHECKPOINT_DIR / LAST_POINTER).read_text())["dir"] == "step-00000004"
    assert not (setup.run_dir / METRICS_FILE).exists()  # no epoch finished
