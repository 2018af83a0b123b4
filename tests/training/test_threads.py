"""``train.num_threads: auto`` in training: when the hook runs, that fit applies what the tuner asks for, and that
the thread count changes nothing but float rounding (dropout masks included)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import pytest
import torch

from seqnlp.config import Config
from seqnlp.runtime import seed_everything
from seqnlp.threads import ThreadTuner
from seqnlp.training import threads as training_threads
from seqnlp.training import train
from seqnlp.training.loop import fit, train_step
from seqnlp.training.run import prepare
from seqnlp.training.state import TrainingState
from seqnlp.training.threads import AutoThreads

MakeConfig = Callable[..., Config]
CPU = torch.device("cpu")


def test_the_hook_runs_for_auto_on_one_cpu_process_only(make_config: MakeConfig,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", applied.append)
    monkeypatch.setattr(training_threads, "usable_cpus", lambda: 4)
    auto = make_config(**{"train.num_threads": "auto"}).train
    hook = AutoThreads.for_run(auto, CPU)
    assert hook is not None and hook.tuner.candidates == [1, 2, 4] and applied == [1]  # it starts at one thread
    assert AutoThreads.for_run(make_config(**{"train.num_threads": 2}).train, CPU) is None
    assert AutoThreads.for_run(make_config(**{"train.num_threads": None}).train, CPU) is None
    assert AutoThreads.for_run(auto, torch.device("cuda")) is None  # the GPU sets the pace
    monkeypatch.setattr(training_threads, "usable_cpus", lambda: 1)
    assert AutoThreads.for_run(auto, CPU) is None  # nothing to choose


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fit_applies_the_tuners_choices_and_logs_the_decision(make_config: MakeConfig,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(**{"train.epochs": 2, "train.checkpoint_every": None})
    seed_everything(config.seed)
    setup = prepare(config, CPU, Path(config.output_dir))  # type: ignore[arg-type]
    applied: list[int] = []
    tuner = ThreadTuner([1, 2], steps=1, rounds=1, delay=1, clock=Clock())
    hook = AutoThreads(tuner, set_threads=applied.append)  # recorded, not applied: torch keeps one thread
    with caplog.at_level(logging.INFO, logger="seqnlp.training.threads"):
        fit(setup, TrainingState(), progress=False, hooks=[hook])
    # starts at 1; the probe runs 1 (warm: 1 step), then 2 (warm-up + 1 step); the faster one stays
    assert applied[:2] == [1, 2] and len(tuner.decisions) == 1 and applied[-1] == tuner.chosen
    assert "threads: " in caplog.text and "tokens/s: 1 thread" in caplog.text


def test_thread_count_changes_only_rounding(make_config: MakeConfig) -> None:
    """The same step with dropout at one and at two threads: the same masks, gradients equal up to rounding."""
    config = make_config(**{"model.dropout": 0.3, "model.embedding_dropout": 0.2, "model.num_layers": 2,
                            "model.embedding_dim": 64, "model.hidden_size": 64})
    grads = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            seed_everything(config.seed)
            setup = prepare(config, CPU, Path(config.output_dir), overwrite=True)  # type: ignore[arg-type]
            batch = next(iter(setup.train_loader.epoch(1)))
            train_step(setup.model, batch, CPU, setup.optimizer, setup.scaler, setup.plan.objective, lr=0.0)
            grads.append([p.grad.clone() for p in setup.model.parameters() if p.grad is not None])
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*grads):
        torch.testing.assert_close(one, two, rtol=1e-4, atol=1e-6)


def test_auto_trains_like_a_fixed_count(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setattr(training_threads, "usable_cpus", lambda: 2)
    before = torch.get_num_threads()
    fixed = train(make_config(**{"train.num_threads": 1, "train.epochs": 3, "output_dir": str(tmp_path / "fixed")}),
                  progress=False)
    auto = train(make_config(**{"train.num_threads": "auto", "train.epochs": 3, "output_dir": str(tmp_path / "auto")}),
                 progress=False)
    assert torch.get_num_threads() == before  # the library leaves torch's setting as it found it
    assert auto.best_epoch == fixed.best_epoch
    assert auto.validation["accuracy"] == fixed.validation["accuracy"]
    assert auto.validation["loss"] == pytest.approx(fixed.validation["loss"], rel=1e-3)
