"""Metrics through torchmetrics: updated per batch, computed once per pass, exact over the whole split.

Metrics are updated per batch and computed once per pass, so they are exact over the whole split
(accumulated counts, not an average of batch scores). When the split is sharded over the processes of a
multi-process run, each process evaluates its share and the counts (and the loss) are summed over all of
them, so every process gets the metrics of the whole split; AUROC's stored scores are gathered the same way.

Single-label: accuracy, macro and per-class precision/recall/F1, confusion matrix, and AUROC (one-vs-rest per
class, macro-averaged; with two classes that is the binary AUROC of either class's probability). Multi-label:
exact match (reported as ``accuracy`` too, as scikit-learn's accuracy_score does), Hamming loss, micro and
macro F1, macro precision/recall, per-label precision/recall/F1/support, and macro AUROC over the labels.
AUROC averages only the labels that have both positive and negative examples in the split (it is undefined for
the others, and reported per label as null).

Every summary says which task it measures in ``task`` (``single_label`` or ``multi_label``), so a reader of
results.json or of ``evaluate --json`` never infers it from which keys are present.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MultilabelAUROC,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelHammingDistance,
    MultilabelPrecision,
    MultilabelRecall,
    MultilabelStatScores,
)

from seqnlp.objective import Objective

SINGLE_LABEL = "single_label"  # the ``task`` of a summary: one class per text
MULTI_LABEL = "multi_label"  # a set of labels per text

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
        "task": SINGLE_LABEL,
        "accuracy": float(values["accuracy"]),
        "macro_f1": float(values["macro_f1"]),
        "macro_precision": float(values["macro_precision"]),
        "macro_recall": float(values["macro_recall"]),
        "per_class": _per_class(values, label_names, support=support.tolist()),
        "confusion_matrix": confusion.tolist(),
    }


def build_multilabel_metrics(num_labels: int, sync: bool = False) -> MetricCollection:
    """Threshold-dependent multi-label metrics, updated with multi-hot decisions [N, C] (see module docstring)."""
    c = num_labels
    return MetricCollection(
        {
            "exact_match": MultilabelExactMatch(c, sync_on_compute=sync),
            "hamming_loss": MultilabelHammingDistance(c, average="micro", sync_on_compute=sync),
            "micro_f1": MultilabelF1Score(c, average="micro", sync_on_compute=sync),
            "macro_f1": MultilabelF1Score(c, average="macro", sync_on_compute=sync),
            "macro_precision": MultilabelPrecision(c, average="macro", sync_on_compute=sync),
            "macro_recall": MultilabelRecall(c, average="macro", sync_on_compute=sync),
            "precision": MultilabelPrecision(c, average="none", sync_on_compute=sync),
            "recall": MultilabelRecall(c, average="none", sync_on_compute=sync),
            "f1": MultilabelF1Score(c, average="none", sync_on_compute=sync),
            "stats": MultilabelStatScores(c, average="none", sync_on_compute=sync),  # [C, 5]: tp fp tn fn support
        }
    )


def summarize_multilabel(values: dict[str, torch.Tensor], label_names: list[str]) -> dict[str, Any]:
    """Computed multi-label metric tensors -> plain numbers; ``accuracy`` is the exact match (subset accuracy)."""
    stats = values["stats"].long()  # [C, 5]
    return {
        "task": MULTI_LABEL,
        "accuracy": float(values["exact_match"]),
        "exact_match": float(values["exact_match"]),
        "hamming_loss": float(values["hamming_loss"]),
        "micro_f1": float(values["micro_f1"]),
        "macro_f1": float(values["macro_f1"]),
        "macro_precision": float(values["macro_precision"]),
        "macro_recall": float(values["macro_recall"]),
        # support: examples that have the label; predicted: examples given the label
        "per_class": _per_class(values, label_names, support=stats[:, 4].tolist(),
                                predicted=(stats[:, 0] + stats[:, 1]).tolist()),
    }


def _per_class(values: dict[str, torch.Tensor], label_names: list[str], **counts: list[int]) -> dict[str, Any]:
    """Per label: precision, recall and F1 from ``values``, then each of ``counts`` (one integer per label)."""
    return {
        name: {
            "precision": float(values["precision"][i]),
            "recall": float(values["recall"][i]),
            "f1": float(values["f1"][i]),
            **{key: int(column[i]) for key, column in counts.items()},
        }
        for i, name in enumerate(label_names)
    }


class Metrics:
    """One evaluation pass's metrics for the task of ``objective``: update with probabilities and labels per
    batch, then ``compute`` a JSON-ready summary. ``thresholds`` (multi-label, one per label) decide the labels;
    AUROC reads the probabilities themselves."""

    def __init__(self, objective: Objective, label_names: list[str], sync: bool = False,
                 thresholds: Optional[Sequence[float]] = None) -> None:
        c = len(label_names)
        self.objective, self.label_names = objective, list(label_names)
        self.thresholds = (torch.tensor(list(thresholds), dtype=torch.float64)  # [C]
                           if thresholds is not None and objective.multi_label else None)
        self.decisions = build_multilabel_metrics(c, sync) if objective.multi_label else build_metrics(c, sync)
        self.scores: Metric = (MultilabelAUROC(c, average="none", sync_on_compute=sync) if objective.multi_label
                               else MulticlassAUROC(c, average="none", sync_on_compute=sync))

    def to(self, device: torch.device) -> "Metrics":
        self.decisions, self.scores = self.decisions.to(device), self.scores.to(device)
        return self

    def update(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        """probs [B, C]; labels [B] class indices, or [B, C] multi-hot."""
        target = labels.long()
        self.decisions.update(self.objective.decide(probs, self.thresholds), target)
        self.scores.update(probs, target)

    def compute(self) -> dict[str, Any]:
        values = self.decisions.compute()
        with warnings.catch_warnings():  # a label without positives: its AUROC is undefined, and left out below
            warnings.simplefilter("ignore", UserWarning)
            auroc = self.scores.compute().float().cpu()  # [C]
        if self.objective.multi_label:
            summary = summarize_multilabel(values, self.label_names)
            stats = values["stats"].long().cpu()
            positives, total = stats[:, 4], stats[0, :4].sum()
        else:
            summary = summarize(values, self.label_names)
            confusion = values["confusion_matrix"].long().cpu()
            positives, total = confusion.sum(dim=1), confusion.sum()
        defined = (positives > 0) & (positives < total)  # [C]: both classes of the one-vs-rest problem occur
        summary["auroc"] = float(auroc[defined].mean()) if bool(defined.any()) else None
        for i, row in enumerate(summary["per_class"].values()):
            row["auroc"] = float(auroc[i]) if bool(defined[i]) else None
            if self.thresholds is not None:
                row["threshold"] = float(self.thresholds[i])
        return summary
