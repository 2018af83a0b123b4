"""What the task type means for training, evaluation and prediction: loss, probabilities, decisions.

Single-label (one class per text): a softmax over the labels, cross-entropy (optionally weighted per class),
and the most probable label is the prediction. Multi-label (a set of labels per text, ``data.multi_label``):
a sigmoid per label, binary cross-entropy (class weights become BCE's ``pos_weight``), and every label whose
probability reaches its own threshold is predicted; the thresholds are tuned on the validation split after
training (``tune_thresholds``). The loop, the evaluation and the Classifier call these methods and never ask
which task they serve.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from seqnlp.batching import Batch

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5


class Objective:
    """Single-label classification: softmax, cross-entropy, argmax."""

    multi_label = False
    language_model = False  # seqnlp.lm.LanguageModelObjective is the one that predicts tokens
    forward_options = {"parts": True}  # what a training step passes the model: the logits and auxiliary ones

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

    def batch_loss(self, parts: torch.Tensor, batch: "Batch") -> tuple[torch.Tensor, torch.Tensor, int]:
        """What a training step minimizes, from the model's logits and auxiliary logits ``parts`` [P, B, C]
        (``forward_options``): (the sum of every part's mean loss, the logits' own mean loss, which is reported,
        and how many examples it averages)."""
        assert batch.labels is not None
        main = self.loss(parts[0].float(), batch.labels)
        total = main + sum((self.loss(aux.float(), batch.labels) for aux in parts[1:]), torch.zeros_like(main))
        return total, main, len(batch.labels)

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


