"""The epoch loop: ``fit`` runs ``train_step`` over every batch and ``end_epoch`` after every epoch.

``train_step`` is one optimizer step with explicit arguments (as pytorch/examples' mnist ``train(args, model,
device, loader, optimizer, epoch)``) and returns its numbers as ``StepStats``; ``end_epoch`` evaluates the
validation split and lets the ``Monitor`` judge the score. The objective says what a step minimizes
(``batch_loss``): a classifier's mean loss over its examples, a language model's (``seqnlp.lm``) over its
predicted tokens, whose validation is then perplexity. Neither writes anything: ``fit`` alone has side
effects (the progress bar, metrics.jsonl, the best weights, checkpoints, stopping on a signal) and calls the
``Hook``s it is given after every step and epoch (TensorBoard logging is one). ``stop_on_signals`` turns
SIGINT/SIGTERM into the answer of fit's ``should_stop``.

Under torchrun every process runs this same loop on its share of each global batch, with the model wrapped in
DistributedDataParallel. Every decision (skip a step, stop on a signal, keep an epoch, stop early) is taken on
numbers summed over all processes, so the processes never disagree; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import torch
from tqdm.auto import tqdm

from seqnlp import distributed
from seqnlp.batching import Batch
from seqnlp.checkpoint import METRICS_FILE, WEIGHTS_FILE, append_jsonl, save_training_state, save_weights
from seqnlp.errors import TrainingError, TrainingInterrupted
from seqnlp.evaluation import evaluate_model
from seqnlp.lm import LanguageModelObjective, evaluate_language_model
from seqnlp.objective import Objective
from seqnlp.runtime import autocast, get_rng_state
from seqnlp.training.finetune import apply_freezing
from seqnlp.training.schedule import Monitor, Verdict, lr_factor, schedule_steps
from seqnlp.training.state import TrainingState

if TYPE_CHECKING:
    from seqnlp.training.setup import Setup

log = logging.getLogger(__name__)

StopCheck = Callable[[], Optional[int]]  # the signal number asking this process to stop, or None to go on


@dataclass(frozen=True)
class StepStats:
    """One step's numbers, summed over every process (so every process takes the same decisions)."""

    loss_sum: float  # the loss summed over what it averages (examples; a language model's predicted tokens)
    terms: int  # what the loss averages: examples, or a language model's predicted tokens
    examples: int
    tokens: int  # real tokens, padding excluded
    slots: int  # token slots of the padded batch, padding included
    finite: bool  # False: the step was not applied (a NaN/inf loss, or gradient norm outside fp16)
    nonfinite: str  # what was not finite: "loss" or "gradient norm"; "" for a finite step
    stop: bool  # some process was asked to stop (a signal)
    lr: float  # the learning rate the step ran at
    seconds: float  # wall-clock time of the step on this process


class Hook:
    """What ``fit`` calls after every step and every epoch; subclass it and override what you need."""

    def on_step(self, state: TrainingState, batch: Batch, stats: StepStats) -> None:
        """After a step: ``state`` already counts it; ``batch`` is this process's share of it."""

    def on_epoch(self, state: TrainingState, record: dict[str, Any]) -> None:
        """After an epoch's validation: ``record`` is its metrics.jsonl line."""


class StepLog(Hook):
    """Progress as log lines when there are no progress bars (stderr is a file, a pipe or CI, where bars would
    write a carriage-return update per step): a line every ``every`` steps; ``end_epoch`` logs each epoch's."""

    def __init__(self, every: int, num_batches: Optional[int]) -> None:
        self.every = every
        self.num_batches = num_batches  # per epoch; None for a stream of unknown size

    def on_step(self, state: TrainingState, batch: Batch, stats: StepStats) -> None:
        if state.step % self.every or not state.terms:
            return
        of = f"/{self.num_batches:,}" if self.num_batches else ""
        log.info("epoch %d, batch %d%s: train loss %.4f, %.0f tokens/s, lr %.2e", state.epoch, state.batch, of,
                 state.loss_sum / state.terms, state.tokens / max(state.seconds, 1e-9), stats.lr)


def never_stop() -> Optional[int]:
    return None


def train_step(model: torch.nn.Module, batch: Batch, device: torch.device, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, objective: Objective | LanguageModelObjective, lr: float,
               precision: str = "fp32", max_grad_norm: Optional[float] = None, stop: bool = False) -> StepStats:
    """One optimizer step of ``model`` (the module, or its DDP wrapper) on ``batch`` at learning rate ``lr``
    (times each parameter group's ``lr_scale``, see ``schedule.make_optimizer``).

    A step whose loss (or, outside fp16, gradient norm) is not finite on any process is not applied: the
    gradients are dropped and ``StepStats.finite`` is False; the caller decides whether to stop or skip.
    ``stop`` says this process was asked to stop; it is summed with the loss, in the one all-reduce per step.
    """
    start = time.perf_counter()
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)  # a group may learn at a multiple of the scheduled rate
    batch = batch.to(device)
    with autocast(device, precision):
        # A classifier's logits, then its auxiliary logits [P, B, C] (``RNNClassifier.forward``'s parts); a
        # language model's per-prediction losses [D, N].
        outputs = model(batch.input_ids, batch.lengths, **objective.forward_options)
    loss, reported, terms = objective.batch_loss(outputs, batch)
    optimizer.zero_grad(set_to_none=True)
    loss_sum, terms, examples, tokens, slots, stops = distributed.all_sum(
        [reported.item() * terms, terms, len(batch.lengths), batch.num_tokens, batch.input_ids.numel(), int(stop)])
    finite = math.isfinite(loss_sum)
    if finite:
        scaler.scale(loss).backward()  # under DDP, also averages the gradients over the processes
        scaler.unscale_(optimizer)
        # Recurrent nets can produce exploding gradients on long texts; clipping the global norm keeps one
        # such batch from throwing the weights far off. With clipping off the norm is still measured.
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm or math.inf)
        # Under fp16 an inf gradient is routine: the scaler skips that step and lowers its scale.
        finite = precision == "fp16" or bool(torch.isfinite(norm))
    if finite:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.zero_grad(set_to_none=True)
    nonfinite = "" if finite else "gradient norm" if math.isfinite(loss_sum) else "loss"
    return StepStats(loss_sum, int(terms), int(examples), int(tokens), int(slots), finite, nonfinite, stops > 0, lr,
                     time.perf_counter() - start)


def count_step(state: TrainingState, stats: StepStats, on_nonfinite: str = "stop",
               run_dir: Optional[Path] = None) -> None:
    """Add a step to ``state``; a non-finite one stops training (``on_nonfinite: stop``) or is counted as skipped.

    ``run_dir`` only names the directory whose last checkpoint the error says is intact.
    """
    if not stats.finite:
        where = f"step {state.step + 1} (epoch {state.epoch}, batch {state.batch + 1})"
        if on_nonfinite == "stop":
            raise TrainingError(f"non-finite {stats.nonfinite} at {where}; training stopped, the last checkpoint in "
                                f"{run_dir or 'the run directory'} is intact (set train.on_nonfinite=skip to skip such steps)")
        state.skipped_steps += 1
        log.warning("non-finite %s at %s: step skipped", stats.nonfinite, where)
    state.step += 1
    state.batch += 1
    if stats.finite:
        state.loss_sum += stats.loss_sum
        state.terms += stats.terms
        state.examples += stats.examples
    state.tokens += stats.tokens
    state.slots += stats.slots
    state.seconds += stats.seconds


def end_epoch(setup: Setup, state: TrainingState, monitor: Monitor) -> tuple[dict[str, Any], Verdict]:
    """Evaluate the validation split, let ``monitor`` judge it, and add the epoch's record to ``state.history``.

    Returns the record (a metrics.jsonl line) and the verdict; ``state.finished`` is set when it says stop.
    """
    seconds = max(state.seconds, 1e-9)
    stats = {
        "loss": state.loss_sum / max(state.terms, 1),
        "seconds": state.seconds,
        "examples_per_s": state.examples / seconds,
        "tokens_per_s": state.tokens / seconds,  # real tokens, padding excluded
        "padding_ratio": 1.0 - state.tokens / max(state.slots, 1),
    }
    precision = setup.config.train.precision
    if setup.plan.objective.language_model:
        stats["perplexity"] = math.exp(min(stats["loss"], 50.0))
        val = evaluate_language_model(setup.model, setup.val_loader, setup.device, precision)  # type: ignore[arg-type]
        scores = f"loss {val['loss']:.4f} perplexity {val['perplexity']:.2f}"
    else:
        val = evaluate_model(setup.model, setup.val_loader, setup.label_names, setup.device, precision,
                             setup.plan.objective)  # type: ignore[arg-type]
        scores = f"loss {val['loss']:.4f} accuracy {val['accuracy']:.4f} macro-F1 {val['macro_f1']:.4f}"
    verdict = monitor.update(state.epoch, val[monitor.metric])
    record = {"epoch": state.epoch, "step": state.step, "lr": setup.optimizer.param_groups[0]["lr"],
              "train": stats, "validation": val, "best": verdict.improved}
    state.history.append(record)
    log.info("epoch %d: train loss %.4f (%.0f tokens/s) | validation %s%s", state.epoch, stats["loss"],
             stats["tokens_per_s"], scores, " *" if verdict.improved else "")
    if verdict.lr_dropped:
        log.info("validation %s stalled: learning rate scaled to %.3g", monitor.metric,
                 setup.config.train.lr * state.monitor.plateau_scale)
    if verdict.stop:
        log.info("early stopping: no %s improvement for %d epochs", monitor.metric, state.monitor.bad_epochs)
        state.finished = True
    return record, verdict


def fit(setup: Setup, state: TrainingState, should_stop: StopCheck = never_stop, progress: bool = True,
        hooks: Sequence[Hook] = ()) -> None:
    """Train from where ``state`` stands until the last epoch or early stopping; ``state`` is updated in place.

    Writes metrics.jsonl, the best weights and checkpoints (rank 0; every rank takes part). ``should_stop`` is
    asked before every step: a signal number makes every process checkpoint after that step and raise
    ``TrainingInterrupted``.
    """
    tc = setup.config.train
    monitor = Monitor.for_run(setup.plan.monitor, tc, state.monitor)
    total, warmup = schedule_steps(tc, setup.train_loader.num_batches)
    progress = progress and distributed.is_main()
    while not state.finished and state.epoch <= tc.epochs:
        apply_freezing(setup.model, setup.config.model, tc, state.epoch)
        with tqdm(total=setup.train_loader.num_batches, initial=state.batch, desc=f"epoch {state.epoch}",
                  unit="batch", disable=not progress, leave=False) as bar:
            for batch in setup.train_loader.epoch(state.epoch, skip=state.batch):
                signum = should_stop()
                lr = tc.lr * lr_factor(state.step, total, warmup, tc.schedule) * state.monitor.plateau_scale
                stats = train_step(setup.train_model, batch, setup.device, setup.optimizer, setup.scaler,
                                   setup.plan.objective, lr, tc.precision, tc.max_grad_norm, stop=signum is not None)
                count_step(state, stats, tc.on_nonfinite, setup.run_dir)
                bar.update(1)
                if progress and state.step % tc.log_every == 0 and state.terms:
                    bar.set_postfix(loss=f"{state.loss_sum / state.terms:.4f}",
                                    tok_s=f"{state.tokens / max(state.seconds, 1e-9):,.0f}", lr=f"{lr:.2e}")
                for hook in hooks:
                    hook.on_step(state, batch, stats)
                if stats.stop:
                    _interrupt(setup, state, signum or signal.SIGTERM)
                if tc.checkpoint_every is not None and state.step % tc.checkpoint_every == 0:
                    save_checkpoint(setup, state)
        record, verdict = end_epoch(setup, state, monitor)
        if distributed.is_main():
            append_jsonl(setup.run_dir / METRICS_FILE, record)
            if verdict.improved:
                save_weights(setup.model, setup.run_dir / WEIGHTS_FILE, setup.tokenizer)
        for hook in hooks:
            hook.on_epoch(state, record)
        state.next_epoch()
        save_checkpoint(setup, state)


def save_checkpoint(setup: Setup, state: TrainingState) -> bool:
    """Save a resumable checkpoint (rank 0 writes it, with every rank's RNG state); every rank calls this.

    Returns False, saving nothing, inside an epoch of a stream, which cannot resume there.
    """
    if state.batch and not setup.train_loader.mid_epoch_resume:
        return False
    state.rng_by_rank = distributed.gather(get_rng_state())  # one per rank, in rank order
    state.world_size = len(state.rng_by_rank)
    state.scaler = setup.scaler.state_dict()
    if distributed.is_main():
        save_training_state(setup.run_dir, state.step, setup.model, setup.optimizer, state.to_json(),
                            setup.tokenizer)
    return True


def _interrupt(setup: Setup, state: TrainingState, signum: int) -> None:
    """A signal reached this rank or another one: every rank checkpoints and stops, at the same step."""
    saved = save_checkpoint(setup, state)
    raise TrainingInterrupted(signum, setup.run_dir, "checkpoint saved" if saved else
                              f"epoch {state.epoch} is lost (a stream resumes at epoch boundaries)")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """While training, SIGINT and SIGTERM are recorded (not raised) so ``fit`` can checkpoint and stop cleanly:
    ``fit(..., should_stop=lambda: received[0] if received else None)``."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers can only be set from the main thread
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def record(signum: int, frame: Any) -> None:
        if received:  # a second signal: stop now, the checkpoint written at the first one stands
            raise KeyboardInterrupt
        received.append(signum)
        log.warning("%s received: saving a checkpoint, then stopping", signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, record)
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
