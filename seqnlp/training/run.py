"""The training loop: AdamW, warm-up + decay or reduce-on-plateau, clipping, early stopping, checkpoints.

``train(config)`` runs the whole data path (load -> tokenize -> encode -> batch -> model) and leaves a run
directory behind (see ``seqnlp.checkpoint``). The best epoch, chosen on ``train.monitor`` over the validation
split, is the one whose weights are kept. ``resume(run_dir)`` continues an interrupted run from its last
checkpoint, mid-epoch included, and ends where the uninterrupted run would have (same weights, same metrics).

Launched by torchrun, every process runs this same loop on its share of each global batch, with the model
wrapped in DistributedDataParallel (see ``seqnlp.distributed``). Every decision (skip a step, stop on a
signal, keep an epoch, stop early) is taken on numbers summed over all processes, so the processes never
disagree; only rank 0 writes files and shows progress.
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

import numpy as np
import torch
from datasets import Dataset
from tokenizers import Tokenizer
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from seqnlp import distributed
from seqnlp.batching import Batch, BatchLoader, StreamLoader, label_array
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
    save_thresholds,
    save_training_state,
    save_weights,
    write_json,
    write_jsonl,
)
from seqnlp.config import Config, TrainConfig, config_from_dict, read_config_file, validate
from seqnlp.data import Splits, load_splits, load_stream
from seqnlp.errors import CheckpointError, ConfigError, DataError, TrainingError, TrainingInterrupted
from seqnlp.evaluation import evaluate_model, predict_split
from seqnlp.model import RNNClassifier, count_parameters
from seqnlp.objective import tune_thresholds
from seqnlp.training.plan import LabelPlan, plan_labels
from seqnlp.runtime import (
    autocast,
    check_precision,
    get_rng_state,
    resolve_device,
    seed_everything,
    set_rng_state,
    set_threads,
)
from seqnlp.training.tensorboard import TensorBoardLogger, check_tensorboard
from seqnlp.tokenizer import (
    SPECIAL_TOKENS,
    build_tokenizer,
    encode_dataset,
    encode_stream,
    iter_texts,
    load_tokenizer,
    pad_id,
)
from seqnlp.training.vectors import check_dim, initialize_embedding, set_frozen

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
    monitor: str = ""  # the metric that chose the best epoch (train.monitor, with auto resolved)
    thresholds: Optional[list[float]] = None  # multi-label: per-label thresholds tuned on validation


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
    """AdamW with weight decay on matrices only; biases are not decayed.

    The fused kernel updates every parameter in one pass instead of the default loop of small ops per tensor,
    which on the CPU is a visible share of a short-text training step (the embedding table alone has millions of
    entries). The math is the same.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused or None)


def train(config: Config, overwrite: bool = False, progress: bool = True) -> TrainResult:
    """Train a classifier as ``config`` says and write its run directory.

    ``overwrite`` allows reusing an output directory that already holds a run; ``progress`` shows bars.
    SIGINT/SIGTERM save a checkpoint and raise ``TrainingInterrupted``; ``resume`` continues from it.
    """
    validate(config)
    check_tensorboard(config.train.tensorboard)  # fail before any data loads
    if config.model.pretrained_vectors is not None:
        check_dim(config.model.pretrained_vectors, config.model.embedding_dim)
    with _session(config) as device:
        seed_everything(config.seed)
        # Rank 0 names the run directory; the other ranks take its name.
        config.output_dir = distributed.from_main(
            lambda: config.output_dir or f"runs/{config.model.cell}-{datetime.now():%Y%m%d-%H%M%S}")
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
    with _session(config) as device:
        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
        labels = read_json(run_dir / LABELS_FILE)
        return _run(config, device, run_dir, progress, tokenizer=tokenizer, label_names=labels)


@contextlib.contextmanager
def _session(config: Config) -> Iterator[torch.device]:
    """Resolve the device, join torchrun's process group if launched by it, and set torch's thread count for
    the run; leave the group and restore the thread count after."""
    device = resolve_device(config.train.device)
    check_precision(config.train.precision, device)
    threads = torch.get_num_threads()
    set_threads(config.train.num_threads)
    try:
        with distributed.session(device) as device:
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
    tc, data = config.train, config.data
    resuming = tokenizer is not None
    rank, world = distributed.rank(), distributed.world_size()
    if world > 1 and config.model.freeze_embeddings not in (False, 0):
        # DDP fixes at construction which parameters get gradients; freezing would change that mid-run.
        raise ConfigError("model.freeze_embeddings is not supported under torchrun (DistributedDataParallel); "
                          "use false")
    progress = progress and distributed.is_main()
    with distributed.main_first():  # the first process of each node fills the datasets cache, the others read it
        splits = (load_stream if data.streaming else load_splits)(data, config.seed, label_names=label_names)
    if data.validation_split not in splits.data:
        raise DataError(f"validation split {data.validation_split!r} not found")
    if splits.stream is not None:
        _check_stream_schedule(tc, splits.stream_size)
    # Class counts, weights, the monitor and the weighted sampler all come from the training labels (a stream's
    # sample when streaming), read before the run directory is prepared so a bad train.class_weights costs nothing.
    plan = plan_labels(tc, data.multi_label, _labels_of(splits.sample if splits.stream is not None
                                                        else splits.data[data.train_split]), splits.label_names)
    if tokenizer is None:  # trained once, on rank 0, and the very same one on every rank
        tokenizer = distributed.from_main(lambda: _new_tokenizer(config, splits, run_dir, overwrite))
    log.info("run directory: %s", run_dir)

    pad = pad_id(tokenizer)
    with distributed.main_first():
        encoded = {name: encode_dataset(split, tokenizer, desc=f"encoding {name}")
                   for name, split in splits.data.items()}
    pin = device.type == "cuda"
    shard = {"num_replicas": world, "rank": rank}  # this process's share of every batch
    train_loader: BatchLoader | StreamLoader
    if splits.stream is not None:
        stream = encode_stream(splits.stream.shuffle(seed=config.seed, buffer_size=data.shuffle_buffer), tokenizer)
        train_loader = StreamLoader(stream, tc.batch_size, pad_id=pad, pool_batches=tc.bucket_pool, seed=config.seed,
                                    pin_memory=pin, num_examples=splits.stream_size, **shard)
    else:
        train_loader = BatchLoader(encoded[data.train_split], tc.batch_size, pad_id=pad, shuffle=True,
                                   pool_batches=tc.bucket_pool, seed=config.seed, pin_memory=pin,
                                   equal_lengths=tc.bucketing == "exact", sample_weights=plan.sample_weights,
                                   **shard)
    val_loader = BatchLoader(encoded[data.validation_split], tc.eval_batch_size, pad_id=pad, pin_memory=pin, **shard)

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
        if saved.get("world_size", 1) != world:
            raise CheckpointError(
                f"{run_dir} was trained by {saved.get('world_size', 1)} process(es) and this resume runs {world}; "
                "resume with as many (torchrun --nproc_per_node), since the global batch and its order depend on it")
        if state.batch and not train_loader.mid_epoch_resume:
            raise CheckpointError(f"{run_dir} stopped inside epoch {state.epoch} of a stream; a streaming run "
                                  "resumes at epoch boundaries only")
        set_rng_state(saved["rng_by_rank"][rank] if world > 1 else saved["rng"])
        if saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        # Epoch records written after the checkpoint would be written again: keep the checkpoint's.
        if distributed.is_main():
            write_jsonl(run_dir / METRICS_FILE, state.history)
        log.info("resuming at epoch %d, batch %d (step %d)", state.epoch, state.batch, state.step)
    elif world > 1:
        seed_everything(config.seed + rank)  # the same initial weights on every rank, then a dropout stream each
    # DDP averages the gradients over the ranks in backward. No device_ids: Batch.to moves ids and labels,
    # and the lengths stay on the CPU, where packing wants them.
    train_model = DistributedDataParallel(model) if world > 1 else model

    loop = _Loop(config, device, run_dir, model, train_model, optimizer, scaler, train_loader, val_loader,
                 splits.label_names, tokenizer, state, progress, plan)
    with _stop_on_signals() as received, loop.tb:
        loop.fit(received)

    if state.best_epoch == 0:
        raise TrainingError("no epoch finished, so there are no best weights")
    distributed.from_main(lambda: load_weights(model, run_dir / WEIGHTS_FILE))
    distributed.broadcast_module(model)  # the best weights, from rank 0 to all
    objective = plan.objective
    validation = state.history[state.best_epoch - 1]["validation"]
    thresholds = None
    if objective.multi_label:  # tune a threshold per label on validation, then report both splits with them
        thresholds = tune_thresholds(*predict_split(model, val_loader, device, tc.precision, objective)).tolist()
        if distributed.is_main():
            save_thresholds(run_dir, splits.label_names, thresholds)
        log.info("thresholds tuned on %s: %s", data.validation_split,
                 ", ".join(f"{n} {t:.3f}" for n, t in zip(splits.label_names, thresholds)))
        validation = evaluate_model(model, val_loader, splits.label_names, device, tc.precision, objective, thresholds)
    test = None
    test_name = data.test_split
    if test_name is not None and test_name in encoded and "label" in encoded[test_name].column_names:
        test_loader = BatchLoader(encoded[test_name], tc.eval_batch_size, pad_id=pad, pin_memory=pin, **shard)
        test = evaluate_model(model, test_loader, splits.label_names, device, tc.precision, objective, thresholds)
        log.info("test (best epoch %d): accuracy %.4f macro-F1 %.4f AUROC %s", state.best_epoch, test["accuracy"],
                 test["macro_f1"], "n/a" if test["auroc"] is None else f"{test['auroc']:.4f}")
    if distributed.is_main():
        write_json(run_dir / RESULTS_FILE, {"best_epoch": state.best_epoch, "num_parameters": num_parameters,
                                            "skipped_steps": state.skipped_steps, **plan.record(splits.label_names),
                                            "sampler": tc.sampler, "validation": validation, "test": test})
    return TrainResult(run_dir, state.best_epoch, validation, test, state.history, num_parameters,
                       monitor=plan.monitor, thresholds=thresholds)


def _labels_of(split: Optional[Dataset]) -> np.ndarray:
    """The ``label`` column of a prepared split as NumPy ([N] class indices or [N, C] multi-hot)."""
    if split is None or "label" not in split.column_names:
        raise DataError("the training split has no labels")
    if split._indices is not None:
        split = split.flatten_indices()
    return label_array(split.data.column("label"))


def _new_tokenizer(config: Config, splits: Splits, run_dir: Path, overwrite: bool) -> Tokenizer:
    """Train the run's tokenizer (on the training split, or a stream's sample), then prepare the run
    directory and write the run's files."""
    texts = splits.sample if splits.sample is not None else splits.data[config.data.train_split]
    tokenizer = build_tokenizer(config.tokenizer, iter_texts(texts))
    prepare_run_dir(run_dir, overwrite=overwrite)
    save_run_files(run_dir, config, tokenizer, splits.label_names)
    return tokenizer


def _check_stream_schedule(tc: TrainConfig, stream_size: Optional[int]) -> None:
    """A decaying schedule or a warm-up needs the number of steps, hence the stream's size."""
    if stream_size is None and (tc.schedule in ("linear", "cosine") or tc.warmup_ratio > 0):
        raise ConfigError(
            f"train.schedule={tc.schedule} with train.warmup_ratio={tc.warmup_ratio} needs the number of training "
            "examples, which this stream does not state: set data.streaming_size, or use train.schedule=constant "
            "(or plateau) with train.warmup_ratio=0"
        )


class _Loop:
    """The epoch and step loop over one run's objects; ``state`` is all it changes besides the model.

    ``model`` is the module itself (evaluated and saved); ``train_model`` is what the steps run: the same
    module, or its DistributedDataParallel wrapper in a multi-process run.
    """

    def __init__(self, config: Config, device: torch.device, run_dir: Path, model: RNNClassifier,
                 train_model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                 train_loader: BatchLoader | StreamLoader, val_loader: BatchLoader, label_names: list[str],
                 tokenizer: Tokenizer, state: LoopState, progress: bool, plan: LabelPlan) -> None:
        self.config, self.tc, self.device, self.run_dir = config, config.train, device, run_dir
        self.model, self.train_model, self.optimizer, self.scaler = model, train_model, optimizer, scaler
        self.train_loader, self.val_loader, self.label_names = train_loader, val_loader, label_names
        self.tokenizer, self.state, self.progress = tokenizer, state, progress
        self.objective, self.monitor = plan.objective, plan.monitor  # the loss; the metric that picks the best
        batches = train_loader.num_batches  # None for a stream of unknown size (then the schedule is constant)
        self.total_steps = self.tc.epochs * batches if batches is not None else 0
        self.warmup_steps = int(self.tc.warmup_ratio * self.total_steps)
        # Rank 0 alone writes event files, as it alone writes the rest of the run directory.
        self.tb = TensorBoardLogger.open(self.tc.tensorboard if distributed.is_main() else False, run_dir,
                                         self.tc.log_every, state)

    def fit(self, received: list[int]) -> None:
        state, tc = self.state, self.tc
        while not state.finished and state.epoch <= tc.epochs:
            set_frozen(self.model.embedding, self.config.model.freeze_embeddings, state.epoch)
            bar = tqdm(total=self.train_loader.num_batches, initial=state.batch, desc=f"epoch {state.epoch}",
                       unit="batch", disable=not self.progress, leave=False)
            with bar:
                for batch in self.train_loader.epoch(state.epoch, skip=state.batch):
                    if self._step(batch, bar, received):
                        self._stop(received)
                    if tc.checkpoint_every is not None and state.step % tc.checkpoint_every == 0:
                        self.checkpoint()
            self._end_epoch()
            self.checkpoint()

    def checkpoint(self) -> bool:
        """Save a resumable checkpoint (rank 0 writes it, with every rank's RNG state); every rank calls this.

        Returns False, saving nothing, inside an epoch of a stream, which cannot resume there.
        """
        if self.state.batch and not self.train_loader.mid_epoch_resume:
            return False
        rng = distributed.gather(get_rng_state())  # one per rank, in rank order
        if distributed.is_main():
            extra = {"rng_by_rank": rng} if len(rng) > 1 else {}
            save_training_state(self.run_dir, self.state.step, self.model, self.optimizer,
                                {"loop": dataclasses.asdict(self.state), "rng": rng[0], **extra,
                                 "world_size": len(rng), "scaler": self.scaler.state_dict()},
                                self.tokenizer)
        return True

    def _stop(self, received: list[int]) -> None:
        """A signal reached this rank or another one: every rank checkpoints and stops, at the same step."""
        saved = self.checkpoint()
        raise TrainingInterrupted(received[0] if received else signal.SIGTERM, self.run_dir,
                                  "checkpoint saved" if saved else
                                  f"epoch {self.state.epoch} is lost (a stream resumes at epoch boundaries)")

    def _step(self, batch: Batch, bar: tqdm, received: list[int]) -> bool:
        """One optimizer step; returns whether a signal asks every rank to stop."""
        state, tc = self.state, self.tc
        start = time.perf_counter()
        self.train_model.train()
        lr = tc.lr * lr_factor(state.step, self.total_steps, self.warmup_steps, tc.schedule) * state.plateau_scale
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = batch.to(self.device)
        assert batch.labels is not None
        with autocast(self.device, tc.precision):
            logits = self.train_model(batch.input_ids, batch.lengths)  # [B, C]
        loss = self.objective.loss(logits.float(), batch.labels)
        self.optimizer.zero_grad(set_to_none=True)
        # One all-reduce (none in a single process) gives every rank the same numbers, hence the same decisions:
        # the loss is finite only if it is finite on every rank, and a signal to any rank stops them all.
        loss_sum, examples, tokens, slots, signalled = distributed.all_sum(
            [loss.item() * len(batch.labels), len(batch.labels), batch.num_tokens, batch.input_ids.numel(),
             len(received)])
        finite = math.isfinite(loss_sum)
        if finite:
            self.scaler.scale(loss).backward()  # under DDP, also averages the gradients over the ranks
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
            self._non_finite("gradient norm" if math.isfinite(loss_sum) else "loss")
        state.step += 1
        state.batch += 1
        if finite:
            state.loss_sum += loss_sum
            state.examples += int(examples)
        state.tokens += int(tokens)
        state.slots += int(slots)
        state.seconds += time.perf_counter() - start
        bar.update(1)
        self.tb.train_step(state, lr)
        if self.progress and state.step % tc.log_every == 0 and state.examples:
            bar.set_postfix(loss=f"{state.loss_sum / state.examples:.4f}",
                            tok_s=f"{state.tokens / max(state.seconds, 1e-9):,.0f}", lr=f"{lr:.2e}")
        return signalled > 0

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
        val = evaluate_model(self.model, self.val_loader, self.label_names, self.device, tc.precision,
                             self.objective)
        score = val[self.monitor]
        improved = is_improvement(score, state.best_score, self.monitor)
        record = {"epoch": state.epoch, "step": state.step, "lr": self.optimizer.param_groups[0]["lr"],
                  "train": stats, "validation": val, "best": improved}
        state.history.append(record)
        if distributed.is_main():
            append_jsonl(self.run_dir / METRICS_FILE, record)
        self.tb.epoch(record)
        log.info("epoch %d: train loss %.4f (%.0f tokens/s) | validation loss %.4f accuracy %.4f macro-F1 %.4f%s",
                 state.epoch, stats["loss"], stats["tokens_per_s"], val["loss"], val["accuracy"], val["macro_f1"],
                 " *" if improved else "")
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs, state.plateau_bad = score, state.epoch, 0, 0
            if distributed.is_main():
                save_weights(self.model, self.run_dir / WEIGHTS_FILE, self.tokenizer)
        else:
            state.bad_epochs += 1
            state.plateau_bad += 1
            if tc.schedule == "plateau" and state.plateau_bad >= tc.plateau_patience:
                state.plateau_scale *= tc.plateau_factor
                state.plateau_bad = 0
                log.info("validation %s stalled: learning rate scaled to %.3g", self.monitor,
                         tc.lr * state.plateau_scale)
            if tc.patience is not None and state.bad_epochs >= tc.patience:
                log.info("early stopping: no %s improvement for %d epochs", self.monitor, state.bad_epochs)
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

