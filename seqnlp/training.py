"""The training loop: AdamW, warm-up + decay or reduce-on-plateau, clipping, early stopping, checkpoints.

``train(config)`` runs the whole data path (load -> tokenize -> encode -> batch -> model) and leaves a run
directory behind (see ``seqnlp.checkpoint``). The best epoch, chosen on ``train.monitor`` over the validation
split, is the one whose weights are kept.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from seqnlp.batching import BatchLoader
from seqnlp.checkpoint import (
    METRICS_FILE,
    RESULTS_FILE,
    WEIGHTS_FILE,
    append_jsonl,
    load_weights,
    prepare_run_dir,
    save_run_files,
    save_weights,
    write_json,
)
from seqnlp.config import Config, TrainConfig, validate
from seqnlp.data import load_splits
from seqnlp.errors import DataError
from seqnlp.evaluation import evaluate_model
from seqnlp.model import RNNClassifier, count_parameters
from seqnlp.runtime import autocast, check_precision, resolve_device, seed_everything, set_threads
from seqnlp.tokenizer import build_tokenizer, encode_dataset, iter_texts, pad_id

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
    """
    validate(config)
    device = resolve_device(config.train.device)
    check_precision(config.train.precision, device)
    threads = torch.get_num_threads()
    set_threads(config.train.num_threads)
    try:
        return _train(config, device, overwrite, progress)
    finally:
        torch.set_num_threads(threads)  # a library call leaves torch's global state as it found it


def _train(config: Config, device: torch.device, overwrite: bool, progress: bool) -> TrainResult:
    tc = config.train
    seed_everything(config.seed)
    if config.output_dir is None:
        config.output_dir = f"runs/{config.model.cell}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = prepare_run_dir(config.output_dir, overwrite=overwrite)

    splits = load_splits(config.data, config.seed)
    train_split = splits.data[config.data.train_split]
    if config.data.validation_split not in splits.data:
        raise DataError(f"validation split {config.data.validation_split!r} not found")
    tokenizer = build_tokenizer(config.tokenizer, iter_texts(train_split))
    save_run_files(run_dir, config, tokenizer, splits.label_names)
    log.info("run directory: %s", run_dir)

    pad = pad_id(tokenizer)
    encoded = {name: encode_dataset(split, tokenizer, desc=f"encoding {name}") for name, split in splits.data.items()}
    pin = device.type == "cuda"
    train_loader = BatchLoader(encoded[config.data.train_split], tc.batch_size, pad_id=pad, shuffle=True,
                               pool_batches=tc.bucket_pool, seed=config.seed, pin_memory=pin)
    val_loader = BatchLoader(encoded[config.data.validation_split], tc.eval_batch_size, pad_id=pad, pin_memory=pin)

    model = RNNClassifier(config.model, tokenizer.get_vocab_size(), len(splits.label_names), pad_id=pad).to(device)
    num_parameters = count_parameters(model)
    log.info("model: %s %d-layer%s, %s parameters", config.model.cell.upper(), config.model.num_layers,
             " bidirectional" if config.model.bidirectional else "", f"{num_parameters:,}")
    optimizer = make_optimizer(model, tc)
    scaler = torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16")
    total_steps = tc.epochs * len(train_loader)
    warmup_steps = int(tc.warmup_ratio * total_steps)

    history: list[dict[str, Any]] = []
    best_score: Optional[float] = None
    best_epoch, bad_epochs, plateau_bad, plateau_scale, step = 0, 0, 0, 1.0, 0
    for epoch in range(1, tc.epochs + 1):
        train_loader.set_epoch(epoch)
        stats, step = _train_epoch(model, train_loader, optimizer, scaler, tc, device, epoch, step,
                                   total_steps, warmup_steps, plateau_scale, progress)
        val = evaluate_model(model, val_loader, splits.label_names, device, tc.precision)
        score = val["loss"] if tc.monitor == "loss" else val[tc.monitor]
        improved = is_improvement(score, best_score, tc.monitor)
        record = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"], "train": stats,
                  "validation": val, "best": improved}
        history.append(record)
        append_jsonl(run_dir / METRICS_FILE, record)
        log.info("epoch %d: train loss %.4f (%.0f tokens/s) | validation loss %.4f accuracy %.4f macro-F1 %.4f%s",
                 epoch, stats["loss"], stats["tokens_per_s"], val["loss"], val["accuracy"], val["macro_f1"],
                 " *" if improved else "")
        if improved:
            best_score, best_epoch, bad_epochs, plateau_bad = score, epoch, 0, 0
            save_weights(model, run_dir / WEIGHTS_FILE, tokenizer)
        else:
            bad_epochs += 1
            plateau_bad += 1
            if tc.schedule == "plateau" and plateau_bad >= tc.plateau_patience:
                plateau_scale *= tc.plateau_factor
                plateau_bad = 0
                log.info("validation %s stalled: learning rate scaled to %.3g", tc.monitor, tc.lr * plateau_scale)
            if tc.patience is not None and bad_epochs >= tc.patience:
                log.info("early stopping: no %s improvement for %d epochs", tc.monitor, bad_epochs)
                break

    load_weights(model, run_dir / WEIGHTS_FILE)
    test = None
    test_name = config.data.test_split
    if test_name is not None and test_name in encoded and "label" in encoded[test_name].column_names:
        test_loader = BatchLoader(encoded[test_name], tc.eval_batch_size, pad_id=pad, pin_memory=pin)
        test = evaluate_model(model, test_loader, splits.label_names, device, tc.precision)
        log.info("test (best epoch %d): accuracy %.4f macro-F1 %.4f", best_epoch, test["accuracy"], test["macro_f1"])
    result = TrainResult(run_dir, best_epoch, history[best_epoch - 1]["validation"], test, history, num_parameters)
    write_json(run_dir / RESULTS_FILE, {"best_epoch": best_epoch, "num_parameters": num_parameters,
                                        "validation": result.validation, "test": test})
    return result


def _train_epoch(
    model: RNNClassifier,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    tc: TrainConfig,
    device: torch.device,
    epoch: int,
    step: int,
    total_steps: int,
    warmup_steps: int,
    plateau_scale: float,
    progress: bool,
) -> tuple[dict[str, float], int]:
    """One pass over the training data; returns throughput and mean loss, and the global step."""
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    examples = tokens = slots = 0
    bar = tqdm(loader, total=len(loader), desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False)
    for batch in bar:
        lr = tc.lr * lr_factor(step, total_steps, warmup_steps, tc.schedule) * plateau_scale
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = batch.to(device)
        assert batch.labels is not None
        with autocast(device, tc.precision):
            logits = model(batch.input_ids, batch.lengths)  # [B, C]
        loss = F.cross_entropy(logits.float(), batch.labels, label_smoothing=tc.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if tc.max_grad_norm is not None:
            # Recurrent nets can produce exploding gradients on long texts; clipping the global norm keeps one
            # such batch from throwing the weights far off.
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        loss_sum += loss.detach() * len(batch.labels)
        examples += len(batch.labels)
        tokens += batch.num_tokens
        slots += batch.input_ids.numel()
        if progress and step % tc.log_every == 0:
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{float(loss_sum) / examples:.4f}", tok_s=f"{tokens / elapsed:,.0f}", lr=f"{lr:.2e}")
    elapsed = time.perf_counter() - start
    stats = {
        "loss": float(loss_sum) / max(examples, 1),
        "seconds": elapsed,
        "examples_per_s": examples / elapsed,
        "tokens_per_s": tokens / elapsed,  # real tokens, padding excluded
        "padding_ratio": 1.0 - tokens / max(slots, 1),
    }
    return stats, step
