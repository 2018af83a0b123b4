"""How the learning rate moves and when training stops: the lr schedule, the optimizer, and the ``Monitor``.

``lr_factor`` is the warm-up + decay curve of ``train.schedule``; ``Monitor`` keeps the best validation score
and counts the epochs since it last improved, which drive early stopping (``train.patience``) and, with
``train.schedule: plateau``, the learning-rate drops. Everything here is pure: no files, no progress, no
processes, so each piece is tested on numbers alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

import torch

from seqnlp.config import TrainConfig
from seqnlp.errors import ConfigError
from seqnlp.training.state import MonitorState


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then constant, linear or cosine decay to 0.

    ``plateau`` holds the rate after warm-up; the ``Monitor`` lowers it when the validation metric stalls.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule in ("constant", "plateau"):
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


def schedule_steps(tc: TrainConfig, batches_per_epoch: Optional[int]) -> tuple[int, int]:
    """(total steps, warm-up steps) of a run; (0, 0) for a stream of unknown size, whose schedule is constant."""
    total = tc.epochs * batches_per_epoch if batches_per_epoch is not None else 0
    return total, int(tc.warmup_ratio * total)


def check_stream_schedule(tc: TrainConfig, stream_size: Optional[int]) -> None:
    """A decaying schedule or a warm-up needs the number of steps, hence the stream's size."""
    if stream_size is None and (tc.schedule in ("linear", "cosine") or tc.warmup_ratio > 0):
        raise ConfigError(
            f"train.schedule={tc.schedule} with train.warmup_ratio={tc.warmup_ratio} needs the number of training "
            "examples, which this stream does not state: set data.streaming_size, or use train.schedule=constant "
            "(or plateau) with train.warmup_ratio=0"
        )


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig,
                   scales: Optional[Mapping[str, float]] = None) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only; biases are not decayed.

    The n-gram branch (``model.ngrams``) is a group of its own, last, whose learning rate is ``train.ngram_lr``.
    ``scales`` (parameter name -> learning-rate multiplier, 1 when absent; ``finetune.lr_scales``) gives layer
    groups rates of their own: a pair of parameter groups per multiplier, largest first, each recording it as
    ``lr_scale`` for the training step (which sets ``lr = schedule rate x lr_scale``).

    The fused kernel updates every parameter in one pass instead of the default loop of small ops per tensor,
    which on the CPU is a visible share of a short-text training step (the embedding table alone has millions of
    entries). The math is the same.
    """
    by_scale: dict[float, tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]] = {}
    wide = []  # the n-gram branch: a linear model over sparse features learns at its own rate (train.ngram_lr)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("ngrams."):
            wide.append(p)
            continue
        decay, no_decay = by_scale.setdefault((scales or {}).get(name, 1.0), ([], []))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [group for scale, (decay, no_decay) in sorted(by_scale.items(), reverse=True) for group in (
        {"params": decay, "weight_decay": cfg.weight_decay, "lr_scale": scale},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": scale})]
    if wide:
        groups.append({"params": wide, "weight_decay": cfg.weight_decay, "lr_scale": (cfg.ngram_lr or cfg.lr) / cfg.lr})
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused or None)


def is_improvement(score: float, best: Optional[float], metric: str) -> bool:
    """Lower is better for the loss, higher for every other metric; a tie is no improvement."""
    if best is None:
        return True
    return score < best if metric == "loss" else score > best


@dataclass(frozen=True)
class Verdict:
    """What one epoch's validation score means for the run."""

    improved: bool  # a new best: keep this epoch's weights
    stop: bool  # early stopping: ``patience`` epochs without improvement
    lr_dropped: bool  # schedule=plateau: the learning rate was just scaled down


class Monitor:
    """Best score, patience and plateau of the monitored validation metric, over a ``MonitorState``.

    The state is the one the run checkpoints (``TrainingState.monitor``); the monitor only changes it in
    ``update``, so a resumed run continues counting where the interrupted one stopped.
    """

    def __init__(self, metric: str, patience: Optional[int] = None, plateau_patience: Optional[int] = None,
                 plateau_factor: float = 1.0, state: Optional[MonitorState] = None) -> None:
        self.metric = metric  # "loss" is minimized, any other metric maximized
        self.patience = patience  # None: never stop early
        self.plateau_patience = plateau_patience  # None: no plateau schedule
        self.plateau_factor = plateau_factor
        self.state = state if state is not None else MonitorState()

    @classmethod
    def for_run(cls, metric: str, tc: TrainConfig, state: Optional[MonitorState] = None) -> "Monitor":
        """The monitor ``train.*`` asks for: patience always, the plateau only with schedule=plateau."""
        plateau = tc.plateau_patience if tc.schedule == "plateau" else None
        return cls(metric, tc.patience, plateau, tc.plateau_factor, state)

    def update(self, epoch: int, score: float) -> Verdict:
        """Record ``epoch``'s validation score and say whether it improved, and whether to stop or drop the lr."""
        state = self.state
        if is_improvement(score, state.best_score, self.metric):
            state.best_score, state.best_epoch, state.bad_epochs, state.plateau_bad = score, epoch, 0, 0
            return Verdict(improved=True, stop=False, lr_dropped=False)
        state.bad_epochs += 1
        state.plateau_bad += 1
        dropped = self.plateau_patience is not None and state.plateau_bad >= self.plateau_patience
        if dropped:
            state.plateau_scale *= self.plateau_factor
            state.plateau_bad = 0
        stop = self.patience is not None and state.bad_epochs >= self.patience
        return Verdict(improved=False, stop=stop, lr_dropped=dropped)
