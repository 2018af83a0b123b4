"""What the task type means for training, evaluation and prediction: loss, probabilities, decisions.

Single-label (one class per text): a softmax over the labels, cross-entropy (optionally weighted per class),
and the most probable label is the prediction. Multi-label (a set of labels per text, ``data.multi_label``):
a sigmoid per label, binary cross-entropy (class weights become BCE's ``pos_weight``), and every label whose
probability reaches its own threshold is predicted; the thresholds are tuned on the validation split after
training (``tune_thresholds``). The loop, the evaluation and the Classifier call these methods and never ask
which task they serve.

Also here, the rules that read the training split's label counts: ``class_weights`` (``train.class_weights``),
``sample_weights`` (``train.sampler: weighted``) and ``resolve_monitor`` (``train.monitor: auto``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from seqnlp.config import TrainConfig
from seqnlp.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
IMBALANCE_RATIO = 1.5  # train.monitor auto: macro-F1 when the largest class outnumbers the smallest by more


class Objective:
    """Single-label classification: softmax, cross-entropy, argmax."""

    multi_label = False

    def __init__(self, num_labels: int, weights: Optional[Sequence[float]] = None,
                 label_smoothing: float = 0.0) -> None:
        self.num_labels = num_labels
        self.weights = None if weights is None else torch.tensor(list(weights), dtype=torch.float32)  # [C]
        self.label_smoothing = label_smoothing

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss, a mean over the batch: logits [B, C] (float32), labels [B] -> scalar.

        With class weights the mean is weighted (PyTorch's convention: sum of w[y] * loss / sum of w[y]).
        """
        weight = None if self.weights is None else self.weights.to(logits.device)
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.label_smoothing)

    def loss_sum(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The plain (unweighted, unsmoothed) loss summed over the batch, for evaluation: comparable across runs
        whatever their class weights."""
        return F.cross_entropy(logits, labels, reduction="sum")

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [N, C] -> probabilities [N, C]: they sum to 1 over the labels."""
        return torch.softmax(logits.float(), dim=-1)

    def decide(self, probs: torch.Tensor, thresholds: Optional[torch.Tensor] = None) -> torch.Tensor:
        """probabilities [N, C] -> predicted class [N]."""
        return probs.argmax(dim=-1)


class MultiLabelObjective(Objective):
    """Multi-label classification: a sigmoid per label, binary cross-entropy, a threshold per label."""

    multi_label = True

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """logits [B, C] (float32), multi-hot labels [B, C] -> the mean over every example and label.

        Class weights are ``pos_weight``: the loss of a positive label is multiplied by its weight.
        """
        weight = None if self.weights is None else self.weights.to(logits.device)
        if self.label_smoothing:
            labels = labels * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weight)

    def loss_sum(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per example, the plain binary cross-entropy summed over the labels; summed over the batch."""
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [N, C] -> an independent probability per label [N, C]."""
        return torch.sigmoid(logits.float())

    def decide(self, probs: torch.Tensor, thresholds: Optional[torch.Tensor] = None) -> torch.Tensor:
        """probabilities [N, C] -> multi-hot decisions [N, C] (int64): each label at or above its threshold."""
        cut = DEFAULT_THRESHOLD if thresholds is None else thresholds.to(probs.device)  # [C]
        return (probs >= cut).long()


def make_objective(multi_label: bool, num_labels: int, weights: Optional[Sequence[float]] = None,
                   label_smoothing: float = 0.0) -> Objective:
    cls = MultiLabelObjective if multi_label else Objective
    return cls(num_labels, weights, label_smoothing)


def label_counts(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Examples per label [C]: class indices [N] are counted, multi-hot rows [N, C] summed (positives)."""
    if labels.ndim == 2:
        return labels.sum(axis=0).round().astype(np.int64)
    return np.bincount(labels, minlength=num_labels).astype(np.int64)


def class_weights(setting: Any, counts: np.ndarray, num_examples: int, multi_label: bool,
                  label_names: list[str]) -> Optional[list[float]]:
    """The loss weight of each label, from ``train.class_weights``; None for no weighting.

    ``auto``, single-label: ``n_examples / (n_classes * count)`` (scikit-learn's "balanced": every class then
    carries the same total weight, and a balanced data set gets 1 for every class). ``auto``, multi-label:
    BCE's ``pos_weight = negatives / positives`` per label (PyTorch's recommendation), so positives and
    negatives of a label weigh the same. A label with no example in train gets 1. A list is used as given.
    """
    if setting is None or setting == "none":
        return None
    if isinstance(setting, list):
        if len(setting) != len(label_names):
            raise ConfigError(f"train.class_weights: {len(setting)} weights for {len(label_names)} labels "
                              f"({', '.join(label_names)}); give one per label, in that order")
        return [float(w) for w in setting]
    counts = counts.astype(np.float64)
    present = counts > 0
    safe = np.where(present, counts, 1.0)
    if multi_label:
        weights = (num_examples - counts) / safe
    else:
        weights = num_examples / (len(counts) * safe)
    return [float(w) for w in np.where(present, weights, 1.0)]


def sample_weights(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A weight per example [N] for ``train.sampler: weighted``: 1 / (its class's count), so each class is drawn
    equally often."""
    return 1.0 / np.maximum(counts, 1)[labels]


def resolve_monitor(monitor: str, counts: np.ndarray, multi_label: bool) -> tuple[str, str]:
    """The metric that picks the best epoch, and why. ``auto``: macro-F1 for multi-label data, and for
    single-label data whose largest class has more than IMBALANCE_RATIO times the examples of the smallest;
    accuracy otherwise. Any other setting stands as given."""
    if monitor != "auto":
        return monitor, "set in train.monitor"
    if multi_label:
        return "macro_f1", "auto: multi-label data"
    largest, smallest = int(counts.max()), int(counts.min())
    ratio = largest / max(smallest, 1)
    if ratio > IMBALANCE_RATIO:
        return "macro_f1", f"auto: the largest class has {ratio:.2f}x the examples of the smallest (> {IMBALANCE_RATIO})"
    return "accuracy", f"auto: classes balanced within {IMBALANCE_RATIO}x ({ratio:.2f}x)"


def tune_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per label, the threshold that maximizes that label's F1 on these examples: probs, labels [N, C] -> [C].

    Candidates are the observed probabilities; the threshold returned is halfway between the lowest
    probability still called positive and the next lower one, so it does not sit on a training-set point.
    A label with no positive example keeps DEFAULT_THRESHOLD (no threshold can make its F1 anything but 0).
    """
    n, c = probs.shape
    thresholds = np.full(c, DEFAULT_THRESHOLD, dtype=np.float64)
    for j in range(c):
        p, y = probs[:, j].astype(np.float64), labels[:, j] > 0.5
        positives = int(y.sum())
        if positives == 0 or n == 0:
            continue
        order = np.argsort(-p, kind="stable")
        p_sorted, y_sorted = p[order], y[order]
        tp = np.cumsum(y_sorted)  # [N]: calling the top k+1 positive
        predicted = np.arange(1, n + 1)
        # Only cut between distinct probabilities: ties are all in or all out.
        last_of_tie = np.append(p_sorted[1:] < p_sorted[:-1], True)
        f1 = np.where(last_of_tie, 2 * tp / (predicted + positives), -1.0)
        k = int(np.argmax(f1))
        below = p_sorted[k + 1] if k + 1 < n else 0.0
        thresholds[j] = (p_sorted[k] + below) / 2
    return thresholds


@dataclass
class LabelPlan:
    """What the training split's labels decide for a run: the objective (with its class weights), the metric
    that picks the best epoch, and the weighted sampler's per-example weights."""

    objective: Objective
    counts: np.ndarray  # [C] examples per label in train (multi-label: positives)
    num_examples: int
    class_weights: Optional[list[float]]
    monitor: str
    monitor_reason: str
    sample_weights: Optional[np.ndarray]  # [N] for train.sampler=weighted, else None

    def record(self, label_names: list[str]) -> dict[str, Any]:
        """The plan as results.json records it."""
        return {
            "monitor": self.monitor,
            "monitor_reason": self.monitor_reason,
            "label_counts": dict(zip(label_names, (int(c) for c in self.counts))),
            "class_weights": None if self.class_weights is None else dict(zip(label_names, self.class_weights)),
        }


def plan_labels(tc: TrainConfig, multi_label: bool, labels: np.ndarray, label_names: list[str]) -> LabelPlan:
    """Read the training labels (class indices [N], or multi-hot [N, C]) once for every label-driven choice."""
    counts = label_counts(labels, len(label_names))
    weights = class_weights(tc.class_weights, counts, len(labels), multi_label, label_names)
    monitor, reason = resolve_monitor(tc.monitor, counts, multi_label)
    log.info("label counts in train: %s", ", ".join(f"{n} {c:,}" for n, c in zip(label_names, counts)))
    log.info("best epoch chosen on validation %s (%s)", monitor, reason)
    if weights is not None:
        what = "pos_weight" if multi_label else "class weights"
        log.info("%s: %s", what, ", ".join(f"{n} {w:.4g}" for n, w in zip(label_names, weights)))
    draws = None
    if tc.sampler == "weighted":
        draws = sample_weights(labels, counts)
        if weights is not None:
            log.warning("train.sampler=weighted and train.class_weights both compensate for imbalance; together "
                        "they over-weight the rare classes")
    objective = make_objective(multi_label, len(label_names), weights, tc.label_smoothing)
    return LabelPlan(objective, counts, len(labels), weights, monitor, reason, draws)
