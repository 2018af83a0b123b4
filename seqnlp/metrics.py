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

Calibration (``CalibrationMetrics``, when a temperature is given): ECE and MCE (torchmetrics' top-label
``MulticlassCalibrationError``; multi-label: ``BinaryCalibrationError`` over every (text, label) probability), the
Brier score (single-label: the sum over labels of the squared error, averaged over texts, in [0, 2]; multi-label:
the mean over every (text, label)), the NLL, and a reliability table, each before (temperature 1) and after
temperature scaling; then a risk-coverage table of the decisions the calibrated run takes: its accuracy on the
most confident 100%, 90%, ... 50% of the texts, and the confidence that keeps each share (``--min-confidence``).
Confidences exactly 1.0 in float32 get a bin of their own, as in torchmetrics, so the table's ECE is its ECE.

Every summary says which task it measures in ``task`` (``single_label`` or ``multi_label``), so a reader of
results.json or of ``evaluate --json`` never infers it from which keys are present.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryCalibrationError,
    MulticlassCalibrationError,
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

from torchmetrics.utilities import dim_zero_cat

from seqnlp.calibration import BinaryThreshold, Calibration, decision_confidence
from seqnlp.objective import Objective

SINGLE_LABEL = "single_label"  # the ``task`` of a summary: one class per text
MULTI_LABEL = "multi_label"  # a set of labels per text
CALIBRATION_BINS = 10  # equal-width confidence bins of ECE, MCE and the reliability table
COVERAGES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # rows of the risk-coverage table

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
                 thresholds: Optional[Sequence[float]] = None, binary: Optional[BinaryThreshold] = None) -> None:
        c = len(label_names)
        self.objective, self.label_names, self.binary = objective, list(label_names), binary
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
        binary = self.binary
        decided = binary.decide(probs) if binary is not None else self.objective.decide(probs, self.thresholds)
        self.decisions.update(decided, target)
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


class _Record(Metric):
    """Per scored item its confidence and whether it came true (concatenated over batches and processes)."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("confidence", default=[], dist_reduce_fx="cat")
        self.add_state("correct", default=[], dist_reduce_fx="cat")
        self.add_state("brier", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("nll", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, confidence: torch.Tensor, correct: torch.Tensor, brier: float | torch.Tensor = 0.0,
               nll: float | torch.Tensor = 0.0, texts: int = 0) -> None:
        """confidence, correct [N]; ``brier`` and ``nll``: sums over the batch's ``texts`` texts."""
        self.confidence.append(confidence.float())  # type: ignore[attr-defined]
        self.correct.append(correct.float())  # type: ignore[attr-defined]
        self.brier += float(brier)  # type: ignore[operator]
        self.nll += float(nll)  # type: ignore[operator]
        self.count += texts  # type: ignore[operator]

    def compute(self) -> dict[str, Any]:
        empty = torch.zeros(0)
        # A list of batches here; one tensor once synced over processes (torchmetrics concatenates them).
        confidence = dim_zero_cat(self.confidence) if len(self.confidence) else empty  # type: ignore[arg-type]
        correct = dim_zero_cat(self.correct) if len(self.correct) else empty  # type: ignore[arg-type]
        count = max(float(self.count), 1.0)  # type: ignore[arg-type]
        return {"confidence": confidence.cpu(), "correct": correct.cpu(), "brier": float(self.brier) / count,
                "nll": float(self.nll) / count}


class CalibrationMetrics:
    """How well the probabilities of one evaluation pass are calibrated, before and after ``calibration``'s
    temperature, and how accurate its decisions are at each coverage (see the module docstring)."""

    def __init__(self, objective: Objective, num_labels: int, calibration: Calibration, sync: bool = False,
                 thresholds: Optional[Sequence[float]] = None) -> None:
        self.objective, self.calibration = objective, calibration
        self.thresholds = (torch.tensor(list(thresholds), dtype=torch.float64)  # [C]
                           if thresholds is not None and objective.multi_label else None)
        bins = CALIBRATION_BINS

        def error(norm: str) -> Metric:
            if objective.multi_label:
                return BinaryCalibrationError(n_bins=bins, norm=norm, sync_on_compute=sync)
            return MulticlassCalibrationError(num_labels, n_bins=bins, norm=norm, sync_on_compute=sync)

        self.stages = {stage: (MetricCollection({"ece": error("l1"), "mce": error("max")}),
                               _Record(sync_on_compute=sync)) for stage in ("before", "after")}
        self.coverage = _Record(sync_on_compute=sync)

    def to(self, device: torch.device) -> "CalibrationMetrics":
        self.stages = {stage: (errors.to(device), record.to(device)) for stage, (errors, record) in self.stages.items()}
        self.coverage = self.coverage.to(device)
        return self

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """logits [B, C] (uncalibrated); labels [B] class indices, or [B, C] multi-hot."""
        multi = self.objective.multi_label
        target = labels.float() if multi else labels.long()
        for stage, (errors, record) in self.stages.items():
            scaled = logits.float() / (self.calibration.temperature if stage == "after" else 1.0)  # [B, C]
            probs = self.objective.probabilities(scaled)  # [B, C]
            nll = self.objective.loss_sum(scaled, target)
            if multi:  # every (text, label) probability is a binary forecast
                errors.update(probs.flatten(), target.long().flatten())
                brier = ((probs - target) ** 2).mean(dim=1).sum()
                record.update(probs.flatten(), target.flatten(), brier, nll, len(probs))
            else:
                errors.update(probs, target)
                confidence, predicted = probs.max(dim=1)  # [B]
                brier = ((probs - F.one_hot(target, probs.shape[1])) ** 2).sum()
                record.update(confidence, predicted == target, brier, nll, len(probs))
        probs = self.objective.probabilities(self.calibration.scale(logits))  # [B, C]: what the run decides on
        decided = (self.calibration.threshold.decide(probs) if self.calibration.threshold is not None
                   else self.objective.decide(probs, self.thresholds))
        correct = (decided == target.long()).all(dim=1) if multi else decided == target
        self.coverage.update(decision_confidence(probs, decided, multi), correct)

    def compute(self) -> dict[str, Any]:
        result: dict[str, Any] = {"temperature": self.calibration.temperature, "bins": CALIBRATION_BINS}
        reliability = {}
        for stage, (errors, record) in self.stages.items():
            values, summary = errors.compute(), record.compute()
            result[stage] = {"ece": float(values["ece"]), "mce": float(values["mce"]), "brier": summary["brier"],
                             "nll": summary["nll"]}
            reliability[stage] = reliability_table(summary["confidence"], summary["correct"])
        result["reliability"] = reliability
        covered = self.coverage.compute()
        result["risk_coverage"] = risk_coverage(covered["confidence"], covered["correct"])
        return result


def reliability_table(confidence: torch.Tensor, correct: torch.Tensor,
                      bins: int = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """One row per non-empty bin: its range, count, mean confidence and accuracy (the share that came true)."""
    edges = torch.linspace(0, 1, bins + 1, dtype=confidence.dtype)
    index = torch.bucketize(confidence, edges, right=True) - 1  # torchmetrics' binning: 1.0 is a bin of its own
    rows = []
    for b in range(bins + 1):
        chosen = index == b
        count = int(chosen.sum())
        if count == 0:
            continue
        low, high = round(float(edges[b]), 6), round(float(edges[b + 1]), 6) if b < bins else 1.0
        rows.append({"low": low, "high": high, "count": count, "confidence": float(confidence[chosen].mean()),
                     "accuracy": float(correct[chosen].mean())})
    return rows


def risk_coverage(confidence: torch.Tensor, correct: torch.Tensor,
                  coverages: Sequence[float] = COVERAGES) -> list[dict[str, Any]]:
    """Per coverage c: the accuracy of the decisions on the most confident c of the texts, and the confidence of
    the least confident one kept (abstaining below it keeps about that share)."""
    n = len(confidence)
    order = torch.argsort(confidence, descending=True, stable=True)
    rows = []
    for coverage in coverages:
        kept = order[: max(1, math.ceil(coverage * n))] if n else order
        rows.append({"coverage": coverage, "examples": int(len(kept)),
                     "accuracy": float(correct[kept].mean()) if n else None,
                     "min_confidence": float(confidence[kept].min()) if n else None})
    return rows
