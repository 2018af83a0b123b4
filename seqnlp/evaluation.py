"""Metrics through torchmetrics, and evaluation of a model on a split.

Metrics are updated per batch and computed once per pass, so they are exact over the whole split
(accumulated counts, not an average of batch scores). When the split is sharded over the processes of a
multi-process run, each process evaluates its share and the counts (and the loss) are summed over all of
them, so every process gets the metrics of the whole split.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from seqnlp import distributed
from seqnlp.batching import BatchLoader
from seqnlp.config import DataConfig
from seqnlp.data import load_splits
from seqnlp.errors import DataError
from seqnlp.predict import Classifier
from seqnlp.runtime import autocast
from seqnlp.tokenizer import encode_dataset

log = logging.getLogger(__name__)


def build_metrics(num_labels: int, sync: bool = False) -> MetricCollection:
    """Accuracy, macro and per-class precision/recall/F1, and the confusion matrix.

    ``sync``: ``compute`` sums the counts of every process (each one saw a shard of the data).
    """
    c = num_labels
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(c, average="micro", sync_on_compute=sync),
            "macro_f1": MulticlassF1Score(c, average="macro", sync_on_compute=sync),
            "macro_precision": MulticlassPrecision(c, average="macro", sync_on_compute=sync),
            "macro_recall": MulticlassRecall(c, average="macro", sync_on_compute=sync),
            "precision": MulticlassPrecision(c, average="none", sync_on_compute=sync),
            "recall": MulticlassRecall(c, average="none", sync_on_compute=sync),
            "f1": MulticlassF1Score(c, average="none", sync_on_compute=sync),
            "confusion_matrix": MulticlassConfusionMatrix(c, sync_on_compute=sync),
        }
    )


def summarize(values: dict[str, torch.Tensor], label_names: list[str]) -> dict[str, Any]:
    """Computed metric tensors -> plain JSON-ready numbers, with a per-class report."""
    confusion = values["confusion_matrix"].long()  # [C, C]: rows are true labels, columns predictions
    support = confusion.sum(dim=1)
    return {
        "accuracy": float(values["accuracy"]),
        "macro_f1": float(values["macro_f1"]),
        "macro_precision": float(values["macro_precision"]),
        "macro_recall": float(values["macro_recall"]),
        "per_class": {
            name: {
                "precision": float(values["precision"][i]),
                "recall": float(values["recall"][i]),
                "f1": float(values["f1"][i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion.tolist(),
    }


@torch.inference_mode()
def evaluate_model(
    model: torch.nn.Module,
    loader: BatchLoader,
    label_names: list[str],
    device: torch.device,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Mean loss and all metrics of ``model`` over every batch of ``loader`` (of every process, if sharded)."""
    if loader.labels is None:
        raise DataError("cannot evaluate on a split without labels")
    was_training = model.training
    model.eval()
    metrics = build_metrics(len(label_names), sync=loader.sharded).to(device)
    total_loss, total = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        with autocast(device, precision):
            logits = model(batch.input_ids, batch.lengths)  # [B, C]
        assert batch.labels is not None
        total_loss += float(F.cross_entropy(logits.float(), batch.labels, reduction="sum"))
        total += len(batch.labels)
        metrics.update(logits.argmax(dim=-1), batch.labels)
    model.train(was_training)
    if loader.sharded:
        total_loss, total = distributed.all_sum([total_loss, total])
    result = {"loss": total_loss / max(total, 1), "num_examples": int(total)}
    result.update(summarize(metrics.compute(), label_names))
    return result


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
    result = evaluate_model(clf.model, loader, clf.label_names, clf.device, clf.config.train.precision)
    result["split"] = name
    if not math.isfinite(result["loss"]):
        log.warning("evaluation loss is not finite")
    return result
