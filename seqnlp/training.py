"""The training loop: AdamW, warm-up + decay or reduce-on-plateau, clipping, early stopping, checkpoints.

``train(config)`` runs the whole data path (load -> tokenize -> encode -> batch -> model) and leaves a run
directory behind (see ``seqnlp.checkpoint``). The best epoch, chosen on ``train.monitor`` over the validation
split, is the one whose weights are kept. ``resume(run_dir)`` continues an interrupted run from its last
checkpoint, mid-epoch included, and ends where the uninterrupted run would have (same weights, same metrics).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from seqnlp.batching import Batch, BatchLoader
from seqnlp.checkpoint import (
    CONFIG_FILE,
    LABELS_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    append_jsonl,
    has_training_state,
    load_training_state,
    load_weights,
    prepare_run_dir,
    read_json,
    save_run_files,
    save_training_state,
    save_weights,
    write_json,
    write_jsonl,
)
from seqnlp.config import Config, TrainConfig, config_from_dict, read_config_file, validate
from seqnlp.data import load_splits
from seqnlp.errors import CheckpointError, DataError, TrainingError, TrainingInterrupted
from seqnlp.evaluation import evaluate_model
from seqnlp.model import RNNClassifier, count_parameters
from seqnlp.runtime import (
    autocast,
    check_precision,
    get_rng_state,
    resolve_device,
    seed_everything,
    set_rng_state,
    set_threads,
)
from seqnlp.tblog import TensorBoardLogger, check_tensorboard
from seqnlp.tokenizer import SPECIAL_TOKENS, build_tokenizer, encode_dataset, iter_texts, load_tokenizer, pad_id
from seqnlp.vectors import check_dim, initialize_embedding, set_frozen

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run reports; the same numbers are in the run directory's results.json."""

    run_dir: Path
    best_epoch: int
    validation: dict[str, Any]  # metrics of the best epoch on the validation split
    test: Optional[dict[str, Any]]  # metrics of the best weights on the test split, when there is one
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch, as in metrics.jsonl
    num_parameters: int = 0


@dataclass
class LoopState:
    """Where the loop stands: with the weights, optimizer and RNG states, enough to continue exactly."""

    epoch: int = 1  # the epoch in progress (1-based)
    batch: int = 0  # batches of this epoch already trained on
    step: int = 0  # optimizer steps so far, skipped ones included
    best_score: Optional[float] = None
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the monitored metric last improved (early stopping)
    plateau_bad: int = 0  # the same, reset at every learning-rate drop (schedule=plateau)
    plateau_scale: float = 1.0
    skipped_steps: int = 0  # steps skipped for a non-finite loss or gradient
    finished: bool = False
    # Running sums of the epoch in progress, so its statistics survive an interruption.
    loss_sum: float = 0.0
    examples: int = 0
    tokens: int = 0
    slots: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def reset_epoch(self) -> None:
        self.batch, self.loss_sum, self.examples, self.tokens, self.slots, self.seconds = 0, 0.0, 0, 0, 0, 0.0


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then constant, linear or cosine decay to 0.

    ``plateau`` holds the rate after warm-up; the loop lowers it when the validation metric stalls.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule in ("constant", "plateau"):
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


def is_improvement(score: float, best: Optional[float], monitor: str) -> bool:
    if best is None:
        return True
    return score < best if monitor == "loss" else score > best


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only; biases are not decayed."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def train(config: Config, overwrite: bool = False, progress: bool = True) -> TrainResult:
    """Train a classifier as ``config`` says and write its run directory.

    ``overwrite`` allows reusing an output directory that already holds a run; ``progress`` shows bars.
    SIGINT/SIGTERM save a checkpoint and raise ``TrainingInterrupted``; ``resume`` continues from it.
    """
    validate(config)
    check_tensorboard(config.train.tensorboard)  # fail before any data loads
    if config.model.pretrained_vectors is not None:
        check_dim(config.model.pretrained_vectors, config.model.embedding_dim)
    if config.output_dir is None:
        config.output_dir = f"runs/{config.model.cell}-{datetime.now():%Y%m%d-%H%M%S}"
    with _torch_settings(config) as device:
        seed_everything(config.seed)
        return _run(config, device, Path(config.output_dir), progress, overwrite=overwrite)


def resume(run_dir: str | Path, progress: bool = True) -> TrainResult:
    """Continue an interrupted run from its last checkpoint, with its saved config, tokenizer and labels."""
    run_dir = Path(run_dir)
    for name in (CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE):
        if not (run_dir / name).is_file():
            raise CheckpointError(f"cannot resume {run_dir}: {name} is missing")
    if not has_training_state(run_dir):
        raise CheckpointError(f"cannot resume {run_dir}: it has no checkpoint (was it trained with seqnlp?)")
    config = config_from_dict(read_config_file(run_dir / CONFIG_FILE))
    with _torch_settings(config) as device:
        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
        labels = read_json(run_dir / LABELS_FILE)
        return _run(config, device, run_dir, progress, tokenizer=tokenizer, label_names=labels)


@contextlib.contextmanager
def _torch_settings(config: Config) -> Iterator[torch.device]:
    """Resolve the device and set torch's thread count for the run; restore the thread count after."""
    device = resolve_device(config.train.device)
    check_precision(config.train.precision, device)
    threads = torch.get_num_threads()
    set_threads(config.train.num_threads)
    try:
        yield device
    finally:
        torch.set_num_threads(threads)  # a library call leaves torch's global state as it found it


def _run(
    config: Config,
    device: torch.device,
    run_dir: Path,
    progress: bool,
    tokenizer: Optional[Tokenizer] = None,
    label_names: Optional[list[str]] = None,
    overwrite: bool = False,
) -> TrainResult:
    """Data, model and loop for a new run (``tokenizer`` None) or a resumed one.

    A new run's directory is prepared only once the data has loaded and the tokenizer is trained, so bad
    data never costs the run that ``--overwrite`` would replace.
    """
    tc = config.train
    resuming = tokenizer is not None
    splits = load_splits(config.data, config.seed, label_names=label_names)
    if config.data.validation_split not in splits.data:
        raise DataError(f"validation split {config.data.validation_split!r} not found")
    if tokenizer is None:
        tokenizer = build_tokenizer(config.tokenizer, iter_texts(splits.data[config.data.train_split]))
        prepare_run_dir(run_dir, overwrite=overwrite)
        save_run_files(run_dir, config, tokenizer, splits.label_names)
    log.info("run directory: %s", run_dir)

    pad = pad_id(tokenizer)
    encoded = {name: encode_dataset(split, tokenizer, desc=f"encoding {name}") for name, split in splits.data.items()}
    pin = device.type == "cuda"
    train_loader = BatchLoader(encoded[config.data.train_split], tc.batch_size, pad_id=pad, shuffle=True,
                               pool_batches=tc.bucket_pool, seed=config.seed, pin_memory=pin)
    val_loader = BatchLoader(encoded[config.data.validation_split], tc.eval_batch_size, pad_id=pad, pin_memory=pin)

    model = RNNClassifier(config.model, tokenizer.get_vocab_size(), len(splits.label_names), pad_id=pad).to(device)
    if config.model.pretrained_vectors is not None and not resuming:  # a resumed run has its weights already
        initialize_embedding(model.embedding, config.model.pretrained_vectors, tokenizer.get_vocab(), pad,
                             config.seed, skip=tuple(SPECIAL_TOKENS), run_dir=run_dir)
    num_parameters = count_parameters(model)
    log.info("model: %s %d-layer%s, %s parameters", config.model.cell.upper(), config.model.num_layers,
             " bidirectional" if config.model.bidirectional else "", f"{num_parameters:,}")
    optimizer = make_optimizer(model, tc)
    scaler = torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16")

    state = LoopState()
    if resuming:
        saved = load_training_state(run_dir, model, optimizer)
        state = LoopState(**saved["loop"])
        set_rng_state(saved["rng"])
        if saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        # Epoch records written after the checkpoint would be written again: keep the checkpoint's.
        write_jsonl(run_dir / METRICS_FILE, state.history)
        log.info("resuming at epoch %d, batch %d (step %d)", state.epoch, state.batch, state.step)

    loop = _Loop(config, device, run_dir, model, optimizer, scaler, train_loader, val_loader, splits.label_names,
                 tokenizer, state, progress)
    with _stop_on_signals() as received, loop.tb:
        loop.fit(received)

    if state.best_epoch == 0:
        raise TrainingError("no epoch finished, so there are no best weights")
    load_weights(model, run_dir / WEIGHTS_FILE)
    test = None
    test_name = config.data.test_split
    if test_name is not None and test_name in encoded and "label" in encoded[test_name].column_names:
        test_loader = BatchLoader(encoded[test_name], tc.eval_batch_size, pad_id=pad, pin_memory=pin)
        test = evaluate_model(model, test_loader, splits.label_names, device, tc.precision)
        log.info("test (best epoch %d): accuracy %.4f macro-F1 %.4f", state.best_epoch, test["accuracy"],
                 test["macro_f1"])
    validation = state.history[state.best_epoch - 1]["validation"]
    write_json(run_dir / RESULTS_FILE, {"best_epoch": state.best_epoch, "num_parameters": num_parameters,
                                        "skipped_steps": state.skipped_steps, "validation": validation, "test": test})
    return TrainResult(run_dir, state.best_epoch, validation, test, state.history, num_parameters)


class _Loop:
    """The epoch and step loop over one run's objects; ``state`` is all it changes besides the model."""

    def __init__(self, config: Config, device: torch.device, run_dir: Path, model: RNNClassifier,
                 optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, train_loader: BatchLoader,
                 val_loader: BatchLoader, label_names: list[str], tokenizer: Tokenizer, state: LoopState,
                 progress: bool) -> None:
        self.config, self.tc, self.device, self.run_dir = config, config.train, device, run_dir
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.train_loader, self.val_loader, self.label_names = train_loader, val_loader, label_names
        self.tokenizer, self.state, self.progress = tokenizer, state, progress
        self.total_steps = self.tc.epochs * len(train_loader)
        self.warmup_steps = int(self.tc.warmup_ratio * self.total_steps)
        self.tb = TensorBoardLogger.open(self.tc.tensorboard, run_dir, self.tc.log_every, state)

    def fit(self, received: list[int]) -> None:
        state, tc = self.state, self.tc
        while not state.finished and state.epoch <= tc.epochs:
            self.train_loader.set_epoch(state.epoch)
            set_frozen(self.model.embedding, self.config.model.freeze_embeddings, state.epoch)
            batches = self.train_loader.sampler.batches()
            bar = tqdm(total=len(batches), initial=state.batch, desc=f"epoch {state.epoch}", unit="batch",
                       disable=not self.progress, leave=False)
            with bar:
                while state.batch < len(batches):
                    self._step(self.train_loader.collate(batches[state.batch]), bar)
                    if received:
                        self.checkpoint()
                        raise TrainingInterrupted(received[0], self.run_dir)
                    if tc.checkpoint_every is not None and state.step % tc.checkpoint_every == 0:
                        self.checkpoint()
            self._end_epoch()
            self.checkpoint()

    def checkpoint(self) -> None:
        loop = dataclasses.asdict(self.state)
        save_training_state(self.run_dir, self.state.step, self.model, self.optimizer,
                            {"loop": loop, "rng": get_rng_state(), "scaler": self.scaler.state_dict()},
                            self.tokenizer)

    def _step(self, batch: Batch, bar: tqdm) -> None:
        state, tc = self.state, self.tc
        start = time.perf_counter()
        self.model.train()
        lr = tc.lr * lr_factor(state.step, self.total_steps, self.warmup_steps, tc.schedule) * state.plateau_scale
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = batch.to(self.device)
        assert batch.labels is not None
        with autocast(self.device, tc.precision):
            logits = self.model(batch.input_ids, batch.lengths)  # [B, C]
        loss = F.cross_entropy(logits.float(), batch.labels, label_smoothing=tc.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            # Recurrent nets can produce exploding gradients on long texts; clipping the global norm keeps one
            # such batch from throwing the weights far off. With clipping off the norm is still measured.
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.max_grad_norm or math.inf)
            # Under fp16 an inf gradient is routine: the scaler skips that step and lowers its scale.
            finite = tc.precision == "fp16" or bool(torch.isfinite(norm))
        if finite:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self._non_finite("loss" if not torch.isfinite(loss) else "gradient norm")
        state.step += 1
        state.batch += 1
        if finite:
            state.loss_sum += loss.item() * len(batch.labels)
            state.examples += len(batch.labels)
        state.tokens += batch.num_tokens
        state.slots += batch.input_ids.numel()
        state.seconds += time.perf_counter() - start
        bar.update(1)
        self.tb.train_step(state, lr)
        if self.progress and state.step % tc.log_every == 0 and state.examples:
            bar.set_postfix(loss=f"{state.loss_sum / state.examples:.4f}",
                            tok_s=f"{state.tokens / max(state.seconds, 1e-9):,.0f}", lr=f"{lr:.2e}")

    def _non_finite(self, what: str) -> None:
        state = self.state
        where = f"step {state.step + 1} (epoch {state.epoch}, batch {state.batch + 1})"
        self.optimizer.zero_grad(set_to_none=True)
        if self.tc.on_nonfinite == "stop":
            raise TrainingError(f"non-finite {what} at {where}; training stopped, the last checkpoint in "
                                f"{self.run_dir} is intact (set train.on_nonfinite=skip to skip such steps)")
        state.skipped_steps += 1
        log.warning("non-finite %s at %s: step skipped", what, where)

    def _end_epoch(self) -> None:
        state, tc = self.state, self.tc
        stats = {
            "loss": state.loss_sum / max(state.examples, 1),
            "seconds": state.seconds,
            "examples_per_s": state.examples / max(state.seconds, 1e-9),
            "tokens_per_s": state.tokens / max(state.seconds, 1e-9),  # real tokens, padding excluded
            "padding_ratio": 1.0 - state.tokens / max(state.slots, 1),
        }
        val = evaluate_model(self.model, self.val_loader, self.label_names, self.device, tc.precision)
        score = val["loss"] if tc.monitor == "loss" else val[tc.monitor]
        improved = is_improvement(score, state.best_score, tc.monitor)
        record = {"epoch": state.epoch, "step": state.step, "lr": self.optimizer.param_groups[0]["lr"],
                  "train": stats, "validation": val, "best": improved}
        state.history.append(record)
        append_jsonl(self.run_dir / METRICS_FILE, record)
        self.tb.epoch(record)
        log.info("epoch %d: train loss %.4f (%.0f tokens/s) | validation loss %.4f accuracy %.4f macro-F1 %.4f%s",
                 state.epoch, stats["loss"], stats["tokens_per_s"], val["loss"], val["accuracy"], val["macro_f1"],
                 " *" if improved else "")
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs, state.plateau_bad = score, state.epoch, 0, 0
            save_weights(self.model, self.run_dir / WEIGHTS_FILE, self.tokenizer)
        else:
            state.bad_epochs += 1
            state.plateau_bad += 1
            if tc.schedule == "plateau" and state.plateau_bad >= tc.plateau_patience:
                state.plateau_scale *= tc.plateau_factor
                state.plateau_bad = 0
                log.info("validation %s stalled: learning rate scaled to %.3g", tc.monitor, tc.lr * state.plateau_scale)
            if tc.patience is not None and state.bad_epochs >= tc.patience:
                log.info("early stopping: no %s improvement for %d epochs", tc.monitor, state.bad_epochs)
                state.finished = True
        state.epoch += 1
        state.reset_epoch()


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[list[int]]:
    """While training, SIGINT and SIGTERM are recorded (not raised) so the loop can checkpoint and stop cleanly."""
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

