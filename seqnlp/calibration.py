"""Post-hoc fitting on the validation split: a temperature for the probabilities and a binary decision threshold.

Temperature scaling (Guo et al., 2017) divides every logit by one scalar T > 0 fitted to minimize the validation
negative log-likelihood. It changes how confident the probabilities are, never which label is the most probable,
so accuracy is unchanged and ECE usually falls. The NLL is convex in 1/T, hence unimodal in log T, and a bounded
golden-section search over log T finds its minimum without an optimizer's learning rate or line search.

Multi-label runs get ONE temperature shared by every label's sigmoid, not one per label: a rare label has a
handful of validation positives, too few to fit a scale of its own without overfitting, and one scalar keeps
the ranking within and across labels (so per-label thresholds, tuned after it, keep their meaning).

A validation split the model classifies without a single error gives no temperature: its NLL keeps falling as
T goes to 0 (every probability to 1). The temperature then stays 1, and ``calibration.json`` says why.

A binary single-label run can also replace "the most probable label" by a threshold on its positive label's
(calibrated) probability, tuned on validation for the best F1 or for the most recall at a target precision.
Everything fitted goes to the run directory's calibration.json (``seqnlp.checkpoint``); ``Calibration`` is how
the Classifier, the evaluation and the export apply it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from seqnlp.errors import ConfigError
from seqnlp.objective import tune_thresholds

log = logging.getLogger(__name__)

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0  # the search's bounds, and what calibration.json may hold
SEARCH_STEPS = 80  # golden-section steps: the bracket shrinks by 0.618 each, to ~1e-16 of log(1e4)
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class BinaryThreshold:
    """A binary run's decision: ``positive`` (a label index) when its probability reaches ``threshold``."""

    positive: int
    threshold: float

    def decide(self, probs: torch.Tensor) -> torch.Tensor:
        """probabilities [N, 2] -> predicted class [N] (int64)."""
        chosen = probs[:, self.positive] >= self.threshold  # [N]
        return torch.where(chosen, self.positive, 1 - self.positive).long()


@dataclass(frozen=True)
class Calibration:
    """What a run applies to its logits: divide by ``temperature``; a binary run may decide by ``threshold``."""

    temperature: float = 1.0
    threshold: Optional[BinaryThreshold] = None

    def scale(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [N, C] -> calibrated logits [N, C] (float32)."""
        return logits.float() / self.temperature


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool = False) -> Optional[float]:
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] minimizing the NLL of ``logits / T``: logits [N, C]; labels [N]
    class indices, or [N, C] multi-hot. None when no T can be fitted: no examples, or none misclassified
    (the NLL then falls all the way to T -> 0)."""
    z = logits.double()
    if multi_label:
        y = labels.double()
        if z.numel() == 0 or bool((((z >= 0).double() == y)).all()):
            return None
        nll = lambda t: float(F.binary_cross_entropy_with_logits(z / t, y))  # noqa: E731
    else:
        y = labels.long()
        if len(z) == 0 or bool((z.argmax(dim=1) == y).all()):
            return None
        nll = lambda t: float(F.cross_entropy(z / t, y))  # noqa: E731
    low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    a, b = high - _GOLDEN * (high - low), low + _GOLDEN * (high - low)
    fa, fb = nll(math.exp(a)), nll(math.exp(b))
    for _ in range(SEARCH_STEPS):  # keep the bracket around the minimum of a unimodal function
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - _GOLDEN * (high - low)
            fa = nll(math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + _GOLDEN * (high - low)
            fb = nll(math.exp(b))
    temperature = math.exp((low + high) / 2)
    if temperature < MIN_TEMPERATURE * 1.01 or temperature > MAX_TEMPERATURE / 1.01:
        log.warning("the fitted temperature %.3g is at the edge of [%g, %g]: the validation split barely constrains "
                    "it", temperature, MIN_TEMPERATURE, MAX_TEMPERATURE)
    return temperature


def nll(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``logits / temperature`` per example (summed over the labels, multi-label)."""
    z = logits.double() / temperature
    if multi_label:
        return float(F.binary_cross_entropy_with_logits(z, labels.double(), reduction="sum")) / max(len(z), 1)
    return float(F.cross_entropy(z, labels.long())) if len(z) else 0.0


def tune_binary_threshold(positive_probs: np.ndarray, is_positive: np.ndarray, rule: str,
                          target_precision: float = 0.95) -> dict[str, Any]:
    """The threshold on the positive label's probability that ``rule`` picks on these examples, and what it gives.

    ``f1``: the best F1 of the positive label (``seqnlp.objective.tune_thresholds``). ``precision``: the lowest
    threshold, hence the most recall, whose precision reaches ``target_precision``; when none does, the one of
    highest precision, with ``reached`` false. Returns threshold, precision, recall and (precision) reached.
    """
    p = positive_probs.astype(np.float64)
    y = is_positive.astype(bool)
    if rule == "f1":
        threshold = float(tune_thresholds(p[:, None], y[:, None].astype(np.float64))[0])
        result: dict[str, Any] = {"threshold": threshold}
    elif rule == "precision":
        result = _precision_threshold(p, y, target_precision)
    else:
        raise ValueError(f"rule {rule!r} is not one of f1, precision")
    called = p >= result["threshold"]
    tp, positives = int((called & y).sum()), int(y.sum())
    result["precision"] = tp / int(called.sum()) if called.any() else 1.0
    result["recall"] = tp / positives if positives else 0.0
    return result


def _precision_threshold(p: np.ndarray, y: np.ndarray, target: float) -> dict[str, Any]:
    """Cut between distinct probabilities, as ``tune_thresholds`` does; see ``tune_binary_threshold``."""
    n = len(p)
    if n == 0 or not y.any():
        return {"threshold": 1.0, "reached": False}
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    tp = np.cumsum(y_sorted)  # [N]: calling the top k+1 positive
    precision = tp / np.arange(1, n + 1)
    last_of_tie = np.append(p_sorted[1:] < p_sorted[:-1], True)
    good = np.flatnonzero(last_of_tie & (precision >= target))
    reached = len(good) > 0
    if reached:
        k = int(good[-1])  # the most examples called positive
    else:
        candidates = np.where(last_of_tie, precision, -1.0)
        k = int(np.flatnonzero(candidates == candidates.max())[-1])
    below = p_sorted[k + 1] if k + 1 < n else 0.0
    return {"threshold": float((p_sorted[k] + below) / 2), "reached": reached}


def fit(logits: torch.Tensor, labels: torch.Tensor, label_names: Sequence[str], multi_label: bool, *,
        temperature: bool = True, rule: str = "argmax", target_precision: float = 0.95,
        positive_label: Optional[str] = None, split: str = "validation") -> tuple[Calibration, dict[str, Any]]:
    """Fit everything on one split's logits [N, C] and labels: the Calibration to apply, and calibration.json.

    ``temperature`` false keeps T = 1. ``rule`` (binary single-label runs only) is argmax, f1 or precision;
    ``positive_label`` names the label the threshold is on (default: the second, as labels.json orders them).
    """
    fitted = fit_temperature(logits, labels, multi_label) if temperature else None
    t = 1.0 if fitted is None else fitted
    record: dict[str, Any] = {
        "method": "temperature_scaling" if fitted is not None else "none",
        "temperature": t,
        "scope": "one temperature shared by every label" if multi_label else "one temperature",
        "fitted_on": {"split": split, "examples": int(len(logits))},
        "nll_before": nll(logits, labels, multi_label), "nll_after": nll(logits, labels, multi_label, t),
    }
    if temperature and fitted is None:
        record["note"] = (f"the {split} split has no misclassified example, so its NLL falls all the way to T -> 0: "
                          "no temperature fits; kept 1")
        log.warning("calibration: %s", record["note"])
    threshold = None
    if rule != "argmax":
        positive = 1 if positive_label is None else list(label_names).index(positive_label)
        probs = torch.softmax(logits.double() / t, dim=1)[:, positive].numpy()
        found = tune_binary_threshold(probs, labels.numpy() == positive, rule, target_precision)
        threshold = BinaryThreshold(positive, found["threshold"])
        record["decision"] = {"rule": rule, "positive_label": label_names[positive], **found,
                              **({"target_precision": target_precision} if rule == "precision" else {})}
        if rule == "precision" and not found["reached"]:
            log.warning("calibration: no threshold reaches precision %.3f for %s on %s; the best, %.3f, is used",
                        target_precision, label_names[positive], split, found["precision"])
    return Calibration(t, threshold), record


def from_record(record: Any, label_names: Sequence[str]) -> Calibration:
    """calibration.json's data -> Calibration; a ValueError saying what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError("must be a JSON object")
    t = record.get("temperature")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not MIN_TEMPERATURE <= t <= MAX_TEMPERATURE:
        raise ValueError(f"temperature must be a number in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}], not {t!r}")
    decision = record.get("decision")
    if decision is None:
        return Calibration(float(t))
    names = list(label_names)
    if not isinstance(decision, dict) or len(names) != 2 or decision.get("positive_label") not in names:
        raise ValueError("decision must name one of the two labels of a binary run as positive_label")
    cut = decision.get("threshold")
    if isinstance(cut, bool) or not isinstance(cut, (int, float)) or not 0.0 <= cut <= 1.0:
        raise ValueError(f"decision.threshold must be a number in [0, 1], not {cut!r}")
    return Calibration(float(t), BinaryThreshold(names.index(decision["positive_label"]), float(cut)))


def decision_confidence(probs: torch.Tensor, decided: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """How sure each decision is: probs [N, C] and decisions ([N] classes, or [N, C] multi-hot) -> [N].

    Single-label: the probability of the label decided. Multi-label: the least sure of the per-label decisions,
    each the probability of what was decided (p when the label is given, 1 - p when it is not)."""
    if multi_label:
        return torch.where(decided.bool(), probs, 1 - probs).amin(dim=1)
    return probs.gather(1, decided.long()[:, None]).squeeze(1)


def check_decision_labels(rule: str, positive_label: Optional[str], label_names: Sequence[str],
                          multi_label: bool) -> None:
    """Before training: a decision threshold needs exactly two labels, and positive_label must be one of them."""
    names = list(label_names)
    if rule != "argmax" and (multi_label or len(names) != 2):
        raise ConfigError(f"calibration.threshold: {rule} needs a binary single-label run; this one has "
                          f"{len(names)} labels ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): "
                          "use argmax")
    if positive_label is not None and positive_label not in names:
        raise ConfigError(f"calibration.positive_label: {positive_label!r} is not one of the labels: "
                          f"{', '.join(names[:20])}")
