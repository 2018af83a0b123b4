"""TensorBoard scalars for a training run, beside metrics.jsonl: RUN_DIR/tensorboard/.

Optional: ``train.tensorboard: auto`` writes them when the ``tensorboard`` package is installed
(``pip install 'seqnlp[tensorboard]'``), ``true`` requires it, ``false`` never writes. Every method is a
no-op on a disabled logger, so training always passes one to ``fit`` as a ``Hook``. Whether ``true`` can be
honoured is checked once, before any data loads, by ``check_tensorboard`` (from ``training.run.preflight``).

Tags, all against the global optimizer step:
  train/loss, train/tokens_per_s   mean over the last ``train.log_every`` steps (real tokens, padding excluded)
  train/lr                         the learning rate of the latest step
  validation/loss, validation/accuracy, validation/macro_f1, train/epoch_loss   once per epoch
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Optional, Protocol, Union

from seqnlp.batching import Batch
from seqnlp.checkpoint import TENSORBOARD_DIR
from seqnlp.errors import ConfigError
from seqnlp.training.loop import Hook, StepStats
from seqnlp.training.state import TrainingState

log = logging.getLogger(__name__)


class _LoopCounters(Protocol):
    """The running sums of the epoch in progress (``training.state.TrainingState``)."""

    epoch: int
    step: int
    loss_sum: float
    terms: int
    tokens: int
    seconds: float


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def check_tensorboard(setting: Union[bool, str]) -> None:
    """``train.tensorboard: true`` without the package is an error before training starts, not after."""
    if setting is True and not tensorboard_installed():
        raise ConfigError("train.tensorboard: true needs the tensorboard package: pip install 'seqnlp[tensorboard]' "
                          "(or set train.tensorboard: auto to log only when it is installed)")


class TensorBoardLogger(Hook):
    """Writes training and validation scalars with ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self, writer: Any = None, log_every: int = 50) -> None:
        self.writer = writer  # None: disabled
        self.log_every = log_every
        self._last: Optional[tuple[int, float, int, int, float]] = None  # epoch, loss_sum, terms, tokens, seconds

    @classmethod
    def open(cls, setting: Union[bool, str], run_dir: Path, log_every: int,
             state: Optional[_LoopCounters] = None) -> "TensorBoardLogger":
        """A logger writing to ``run_dir/tensorboard`` when ``setting`` asks for it, else a disabled one.

        ``state`` is where a resumed run stands: events logged after its step are purged (those steps are
        trained again), and the first window starts there rather than at the start of the epoch.
        """
        if setting is False or (setting == "auto" and not tensorboard_installed()):
            return cls(None, log_every)
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when it is used

        resume_step = state.step if state is not None and state.step > 0 else None
        # Steps up to the checkpoint's are kept; later ones were logged by the interrupted process and come again.
        writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=resume_step + 1 if resume_step else None)
        log.info("TensorBoard scalars: tensorboard --logdir %s", run_dir / TENSORBOARD_DIR)
        logger = cls(writer, log_every)
        if resume_step is not None:
            logger._mark(state)  # type: ignore[arg-type]
        return logger

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def on_step(self, state: TrainingState, batch: Batch, stats: StepStats) -> None:
        self.train_step(state, stats.lr)

    def on_epoch(self, state: TrainingState, record: dict[str, Any]) -> None:
        self.epoch(record)

    def train_step(self, state: _LoopCounters, lr: float) -> None:
        """Every ``log_every`` steps: loss and tokens/s over the steps since the last write, and the lr."""
        if self.writer is None or state.step % self.log_every:
            return
        last = self._last
        if last is None or last[0] != state.epoch:  # the epoch's running sums start from zero
            last = (state.epoch, 0.0, 0, 0, 0.0)
        terms = state.terms - last[2]
        seconds = state.seconds - last[4]
        if terms > 0:  # a window of skipped (non-finite) steps has no loss to show
            self.writer.add_scalar("train/loss", (state.loss_sum - last[1]) / terms, state.step)
        if seconds > 0:
            self.writer.add_scalar("train/tokens_per_s", (state.tokens - last[3]) / seconds, state.step)
        self.writer.add_scalar("train/lr", lr, state.step)
        self._mark(state)

    def _mark(self, state: _LoopCounters) -> None:
        self._last = (state.epoch, state.loss_sum, state.terms, state.tokens, state.seconds)

    def epoch(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl record: validation loss/accuracy/macro-F1 (a language model's loss/perplexity) and the
        epoch's train loss."""
        if self.writer is None:
            return
        step = record["step"]
        for name in ("loss", "accuracy", "macro_f1", "perplexity"):
            if name in record["validation"]:
                self.writer.add_scalar(f"validation/{name}", record["validation"][name], step)
        self.writer.add_scalar("train/epoch_loss", record["train"]["loss"], step)
        self.writer.flush()  # an epoch's numbers are on disk even if the run is killed later

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> "TensorBoardLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
