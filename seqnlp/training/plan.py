"""What the training split's labels decide for a run: class weights, the weighted sampler, and the monitored metric.

``train.class_weights: auto``, ``train.sampler: weighted`` and ``train.monitor: auto`` all read the label counts of
the training split; ``plan_labels`` reads them once and returns a ``LabelPlan``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from seqnlp.config import TrainConfig
from seqnlp.errors import ConfigError
from seqnlp.objective import Objective, make_objective

log = logging.getLogger(__name__)

IMBALANCE_RATIO = 1.5  # train.monitor auto: macro-F1 when the largest class outnumbers the smallest by more


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
