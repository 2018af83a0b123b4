"""One trial: the base config with the sampled values, trained by ``seqnlp.train`` into its own run directory,
reported to the pruner epoch by epoch through the training loop's own ``Hook``.

``TrialHook.on_epoch`` reports the epoch's validation metric to the trial and raises ``optuna.TrialPruned`` when
the pruner says so, or when the budget has no room for another epoch; ``on_step`` stops a trial whose epoch
would run past the budget. Either way the trial's run directory stays a run a person can inspect and use: its
config, tokenizer, labels, the best epoch's weights so far and metrics.jsonl (``seqnlp evaluate`` and
``seqnlp predict`` work on it); no results.json, since it did not finish. Every trial directory gets a
``trial.json`` saying how the trial ended, and loses its ``checkpoints/`` (a trial never resumes: a lost one
starts again as a new trial).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import optuna

from seqnlp.checkpoint import CHECKPOINT_DIR, write_json
from seqnlp.config import Config, load_config
from seqnlp.errors import SeqnlpError, TrainingInterrupted
from seqnlp import training
from seqnlp.training import Hook
from seqnlp.training.state import TrainingState
from seqnlp.tune.budget import format_duration
from seqnlp.tune.space import SearchSpace
from seqnlp.tune.study import TRIALS_DIR, process_tag

log = logging.getLogger(__name__)

TRIAL_FILE = "trial.json"  # in each trial's run directory: how the trial ended
MAX_FAILURES_IN_A_ROW = 3  # then the study stops with the last error: the cause is rarely the parameters


class BudgetSpent(Exception):
    """The budget has no room for the trial's next epoch (or the rest of this one)."""


class TrialHook(Hook):
    """Reports each epoch's validation ``metric`` to ``trial``; stops the run when pruned or out of budget."""

    def __init__(self, trial: optuna.Trial, metric: str, epochs: int, deadline: Optional[float]) -> None:
        self.trial, self.metric, self.epochs, self.deadline = trial, metric, epochs, deadline
        self.epoch_start: Optional[float] = None  # time.monotonic() at the epoch's first step
        self.last_epoch_seconds = 0.0  # training and validation, without the run's start-up
        self.first_epoch_end: Optional[float] = None  # time.monotonic() at the end of the first epoch
        self.reported: dict[int, float] = {}  # epoch -> validation metric

    def on_step(self, state: TrainingState, batch: Any, stats: Any) -> None:
        if self.epoch_start is None:
            self.epoch_start = time.monotonic() - stats.seconds  # this first step included
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise BudgetSpent(f"the budget ran out during epoch {state.epoch}")

    def on_epoch(self, state: TrainingState, record: dict[str, Any]) -> None:
        value = float(record["validation"][self.metric])
        self.reported[state.epoch] = value
        self.trial.report(value, state.epoch)
        now = time.monotonic()
        self.last_epoch_seconds = now - (self.epoch_start if self.epoch_start is not None else now)
        self.epoch_start = None
        self.first_epoch_end = self.first_epoch_end or now
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {state.epoch} (validation {self.metric} {value:.4f})")
        more = state.epoch < self.epochs and not state.finished
        if more and self.deadline is not None and now + self.last_epoch_seconds > self.deadline:
            raise BudgetSpent(f"no time left for epoch {state.epoch + 1}")


@dataclass
class Objective:
    """What Optuna calls once per trial: sample, train, report; returns the best epoch's validation metric."""

    base: Config
    space: SearchSpace
    metric: str
    output_dir: Path
    deadline: Optional[float] = None  # time.monotonic() at which the budget ends; None: no budget
    failures: int = 0  # failed trials in a row in this process
    first_epoch_seconds: list[float] = field(default_factory=list)  # trial start to its first epoch's end, so far

    def __call__(self, trial: optuna.Trial) -> float:
        values = self.space.sample(trial)
        run_dir = self.output_dir / TRIALS_DIR / f"trial-{trial.number:04d}"
        trial.set_user_attr("process", process_tag())
        trial.set_user_attr("run_dir", str(run_dir))
        hook = TrialHook(trial, self.metric, self.base.train.epochs, self.deadline)
        start = time.monotonic()
        outcome: dict[str, Any] = {"number": trial.number, "params": values}
        try:
            value = self._train(trial, values, run_dir, hook)
            outcome.update(state="complete", value=value)
            self.failures = 0
            return value
        except (optuna.TrialPruned, BudgetSpent) as exc:
            self.failures = 0
            reason = "budget" if isinstance(exc, BudgetSpent) else "pruned"
            trial.set_user_attr("stopped", reason)
            outcome.update(state="pruned", reason=f"{exc}" if reason == "pruned" else f"stopped: {exc}")
            raise optuna.TrialPruned(str(exc)) from None
        except (TrainingInterrupted, KeyboardInterrupt):
            outcome.update(state="interrupted", reason="interrupted; the study retries it on --resume")
            raise
        except SeqnlpError as exc:
            return self._failed(trial, exc, outcome)
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            outcome.update(state="failed", reason=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            seconds = time.monotonic() - start
            trial.set_user_attr("seconds", round(seconds, 3))
            trial.set_user_attr("epochs", len(hook.reported))
            if hook.first_epoch_end is not None:
                self.first_epoch_seconds.append(hook.first_epoch_end - start)
            outcome.update(seconds=round(seconds, 3), **{f"validation_{self.metric}_by_epoch": hook.reported})
            if run_dir.is_dir():
                close_run_dir(run_dir, outcome)

    def _train(self, trial: optuna.Trial, values: dict[str, Any], run_dir: Path, hook: TrialHook) -> float:
        config = load_config(base=self.base, updates={**values, "output_dir": str(run_dir)})
        if trial.user_attrs.get("retry_of") is not None:
            log.info("trial %d retries trial %d", trial.number, trial.user_attrs["retry_of"])
        result = training.train(config, progress=False, hooks=[hook])
        return float(result.validation[self.metric])

    def _failed(self, trial: optuna.Trial, exc: SeqnlpError, outcome: dict[str, Any]) -> float:
        """A trial whose settings cannot train (a bad combination, a diverging loss) fails; the study goes on,
        unless it is the ``MAX_FAILURES_IN_A_ROW``-th in a row."""
        self.failures += 1
        trial.set_user_attr("error", str(exc))
        outcome.update(state="failed", reason=str(exc))
        if self.failures >= MAX_FAILURES_IN_A_ROW:
            raise exc
        return float("nan")  # Optuna records a NaN as a failed trial


def close_run_dir(run_dir: Path, outcome: dict[str, Any]) -> None:
    """Write trial.json and drop the checkpoints: the run directory is kept for inspection, not to resume."""
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    write_json(run_dir / TRIAL_FILE, outcome)


def describe(values: dict[str, Any]) -> str:
    """``{"model.cell": "gru", "train.lr": 0.00123}`` -> ``cell=gru lr=0.00123``."""
    return " ".join(f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in values.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def progress_line(trial: optuna.trial.FrozenTrial, metric: str, best: Optional[optuna.trial.FrozenTrial],
                  left: Optional[float]) -> str:
    """One line per finished trial: how it ended, its metric, its time, its parameters, the budget left."""
    epochs = trial.user_attrs.get("epochs", 0)
    if trial.state == optuna.trial.TrialState.COMPLETE:
        how = f"complete: {metric} {trial.value:.4f}"
    elif trial.state == optuna.trial.TrialState.PRUNED:
        why = "stopped by the budget" if trial.user_attrs.get("stopped") == "budget" else "pruned"
        last = trial.intermediate_values[trial.last_step] if trial.last_step is not None else None
        how = f"{why} after epoch {trial.last_step}: {metric} {last:.4f}" if last is not None else \
            f"{why} before its first epoch ended"
    else:
        how = f"failed: {trial.user_attrs.get('error', 'interrupted')}"
    seconds = trial.user_attrs.get("seconds")
    took = f", {epochs} epoch{'s' if epochs != 1 else ''} in {format_duration(seconds)}" if seconds is not None else ""
    best_part = f" | best {best.value:.4f} (trial {best.number})" if best is not None else ""
    own = " (the config's own values)" if trial.user_attrs.get("baseline") else ""
    budget_part = f" | budget left {format_duration(left)}" if left is not None else ""
    return f"trial {trial.number}{own} {how}{took} | {describe(trial.params)}{best_part}{budget_part}"
