"""Evaluation of a model on a labelled split: the mean loss and every metric (``seqnlp.metrics``) in one pass.

``evaluate_model`` serves training (the validation split after each epoch); ``evaluate`` serves a user with a
trained run and a split of its own data, or of other data.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from seqnlp import distributed
from seqnlp.batching import BatchLoader
from seqnlp.config import DataConfig
from seqnlp.data import load_splits
from seqnlp.errors import DataError
from seqnlp.metrics import Metrics
from seqnlp.objective import Objective
from seqnlp.predict import Classifier
from seqnlp.runtime import autocast
from seqnlp.tokenizer import encode_dataset

log = logging.getLogger(__name__)


@torch.inference_mode()
def evaluate_model(
    model: torch.nn.Module,
    loader: BatchLoader,
    label_names: list[str],
    device: torch.device,
    precision: str = "fp32",
    objective: Optional[Objective] = None,
    thresholds: Optional[Sequence[float]] = None,
) -> dict[str, Any]:
    """Mean loss and all metrics of ``model`` over every batch of ``loader`` (of every process, if sharded).

    ``objective`` (default: single-label) says how logits become probabilities and decisions; multi-label
    decisions use ``thresholds`` (default 0.5 for every label). The loss is the plain, unweighted one.
    """
    if loader.labels is None:
        raise DataError("cannot evaluate on a split without labels")
    objective = objective or Objective(len(label_names))
    was_training = model.training
    model.eval()
    metrics = Metrics(objective, label_names, sync=loader.sharded, thresholds=thresholds).to(device)
    total_loss, total = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        with autocast(device, precision):
            logits = model(batch.input_ids, batch.lengths)  # [B, C]
        assert batch.labels is not None
        total_loss += float(objective.loss_sum(logits.float(), batch.labels))
        total += len(batch.labels)
        metrics.update(objective.probabilities(logits), batch.labels)
    model.train(was_training)
    if loader.sharded:
        total_loss, total = distributed.all_sum([total_loss, total])
    result = {"loss": total_loss / max(total, 1), "num_examples": int(total)}
    result.update(metrics.compute())
    return result


@torch.inference_mode()
def predict_split(model: torch.nn.Module, loader: BatchLoader, device: torch.device, precision: str,
                  objective: Objective) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [N, C] and labels of a whole labeled split (every process's share, when sharded)."""
    assert loader.labels is not None
    was_training = model.training
    model.eval()
    probs, labels = [], []
    for batch in loader:
        with autocast(device, precision):
            logits = model(batch.input_ids.to(device), batch.lengths)  # [B, C]
        probs.append(objective.probabilities(logits).cpu().numpy())
        labels.append(loader.labels[batch.indices])
    model.train(was_training)
    mine = (np.concatenate(probs), np.concatenate(labels))
    shares = distributed.gather(mine) if loader.sharded else [mine]
    return np.concatenate([p for p, _ in shares]), np.concatenate([y for _, y in shares])


def evaluate(
    run: str | Path | Classifier,
    data: Optional[DataConfig] = None,
    split: Optional[str] = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Evaluate a trained run (a run directory, or a loaded Classifier) on a labeled split.

    With no ``data``, the run's own data is used (its carved splits are reproduced from the saved seed);
    with no ``split``, its test split, else its validation split.
    """
    clf = run if isinstance(run, Classifier) else Classifier.load(run, device=device)
    data_cfg = data if data is not None else clf.config.data
    splits = load_splits(data_cfg, clf.config.seed, label_names=clf.label_names)
    name = split or next(
        (s for s in (data_cfg.test_split, data_cfg.validation_split) if s is not None and s in splits.data), None
    )
    if name is None or name not in splits.data:
        raise DataError(
            f"split {name or data_cfg.test_split!r} not found; splits that exist: {', '.join(splits.data)} (use --split)"
        )
    encoded = encode_dataset(splits.data[name], clf.tokenizer, desc=f"encoding {name}")
    if "label" not in encoded.column_names:
        raise DataError(f"split {name!r} has no label column {data_cfg.label_column!r}; it cannot be evaluated")
    loader = BatchLoader(encoded, clf.batch_size, pad_id=clf.pad_id)
    result = evaluate_model(clf.model, loader, clf.label_names, clf.device, clf.config.train.precision,
                            objective=clf.objective, thresholds=clf.thresholds)
    result["split"] = name
    if not math.isfinite(result["loss"]):
        log.warning("evaluation loss is not finite")
    return result
