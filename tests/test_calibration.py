"""Temperature scaling and binary decision thresholds (``seqnlp.calibration``): a known temperature is recovered, the
fitted one minimizes the NLL, argmax never changes, thresholds reach their target, calibration.json round-trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqnlp.calibration import (
    BinaryThreshold,
    Calibration,
    check_decision_labels,
    decision_confidence,
    fit,
    fit_temperature,
    from_record,
    nll,
    tune_binary_threshold,
)
from seqnlp.errors import ConfigError
from seqnlp.objective import tune_thresholds


def sampled(n: int, classes: int, scale: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``scale`` times sharper than the ones the labels were drawn from: the right temperature is ``scale``."""
    generator = torch.Generator().manual_seed(seed)
    true = torch.randn(n, classes, generator=generator, dtype=torch.float64) * 2  # [N, C]
    labels = torch.multinomial(torch.softmax(true, dim=1), 1, generator=generator).squeeze(1)  # [N]
    return true * scale, labels


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_a_known_temperature_is_recovered(scale: float) -> None:
    logits, labels = sampled(20_000, 4, scale)
    assert fit_temperature(logits, labels) == pytest.approx(scale, rel=0.05)


def test_the_fitted_temperature_minimizes_the_nll() -> None:
    logits, labels = sampled(2_000, 3, 2.0, seed=1)
    t = fit_temperature(logits, labels)
    assert t is not None
    best = nll(logits, labels, False, t)
    for other in (t * 0.9, t * 0.99, t * 1.01, t * 1.1, 1.0):
        assert best <= nll(logits, labels, False, other) + 1e-12


def test_multi_label_shares_one_temperature() -> None:
    generator = torch.Generator().manual_seed(2)
    true = torch.randn(20_000, 3, generator=generator, dtype=torch.float64) * 2
    labels = torch.bernoulli(torch.sigmoid(true), generator=generator)  # [N, C] multi-hot
    assert fit_temperature(true * 4, labels, multi_label=True) == pytest.approx(4.0, rel=0.05)


def test_no_error_on_the_split_leaves_no_temperature_to_fit() -> None:
    logits = torch.tensor([[2.0, -1.0], [-0.5, 0.5], [3.0, -0.1]])
    assert fit_temperature(logits, torch.tensor([0, 1, 0])) is None
    assert fit_temperature(logits, torch.tensor([[1, 0], [0, 1], [1, 0]]), multi_label=True) is None
    calibration, record = fit(logits, torch.tensor([0, 1, 0]), ["a", "b"], False)
    assert calibration.temperature == 1.0 and record["method"] == "none" and "no misclassified" in record["note"]


def test_temperature_never_changes_the_most_probable_label() -> None:
    logits, labels = sampled(500, 5, 3.0, seed=3)
    calibration, record = fit(logits, labels, list("abcde"), False)
    assert calibration.temperature != 1.0 and record["nll_after"] < record["nll_before"]
    assert torch.equal(calibration.scale(logits).argmax(dim=1), logits.argmax(dim=1))
    assert record["fitted_on"] == {"split": "validation", "examples": 500}


def test_temperature_false_keeps_one() -> None:
    logits, labels = sampled(100, 2, 3.0)
    calibration, record = fit(logits, labels, ["a", "b"], False, temperature=False)
    assert calibration == Calibration() and record["method"] == "none" and "note" not in record


# --- binary decision thresholds --------------------------------------------------------------------------------


P = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2])
Y = np.array([1, 1, 0, 1, 1, 0, 1, 0], dtype=bool)


def test_target_precision_keeps_the_most_recall_that_reaches_it() -> None:
    # Calling the top k positive: precision 1, 1, 2/3, 3/4, 4/5, 4/6, 5/7, 5/8.
    found = tune_binary_threshold(P, Y, "precision", target_precision=0.75)
    assert found["threshold"] == pytest.approx((0.6 + 0.4) / 2)  # top 5: precision 0.8, the lowest cut >= 0.75
    assert found["reached"] and found["precision"] == pytest.approx(0.8) and found["recall"] == pytest.approx(0.8)
    strict = tune_binary_threshold(P, Y, "precision", target_precision=1.0)
    assert strict["threshold"] == pytest.approx(0.85) and strict["recall"] == pytest.approx(0.4)


def test_an_unreachable_precision_takes_the_best_one_and_says_so() -> None:
    found = tune_binary_threshold(np.array([0.9, 0.8, 0.1]), np.array([0, 1, 1], dtype=bool), "precision", 0.99)
    assert not found["reached"] and found["precision"] == pytest.approx(2 / 3)


def test_f1_threshold_is_the_per_label_f1_tuning() -> None:
    found = tune_binary_threshold(P, Y, "f1")
    assert found["threshold"] == pytest.approx(tune_thresholds(P[:, None], Y[:, None].astype(float))[0])


def test_fit_tunes_the_threshold_on_calibrated_probabilities_of_the_positive_label() -> None:
    logits, labels = sampled(400, 2, 2.0, seed=5)
    calibration, record = fit(logits, labels, ["ham", "spam"], False, rule="precision", target_precision=0.9)
    assert calibration.threshold is not None and calibration.threshold.positive == 1
    probs = torch.softmax(logits / calibration.temperature, dim=1)[:, 1].numpy()
    expected = tune_binary_threshold(probs, labels.numpy() == 1, "precision", 0.9)
    assert record["decision"] == {"rule": "precision", "positive_label": "spam", "target_precision": 0.9, **expected}
    assert from_record(record, ["ham", "spam"]) == calibration  # calibration.json reads back as it was fitted
    other, _ = fit(logits, labels, ["ham", "spam"], False, rule="f1", positive_label="ham")
    assert other.threshold is not None and other.threshold.positive == 0


def test_a_binary_threshold_decides_on_its_positive_label() -> None:
    probs = torch.tensor([[0.3, 0.7], [0.6, 0.4], [0.05, 0.95]])
    assert BinaryThreshold(1, 0.8).decide(probs).tolist() == [0, 0, 1]
    assert BinaryThreshold(0, 0.55).decide(probs).tolist() == [1, 0, 1]


def test_decision_confidence_is_the_probability_of_what_was_decided() -> None:
    probs = torch.tensor([[0.3, 0.7], [0.6, 0.4]])
    assert decision_confidence(probs, torch.tensor([0, 0]), False).tolist() == pytest.approx([0.3, 0.6])
    multi = torch.tensor([[0.9, 0.2, 0.6], [0.5, 0.99, 0.01]])
    decided = torch.tensor([[1, 0, 1], [1, 1, 0]])
    assert decision_confidence(multi, decided, True).tolist() == pytest.approx([0.6, 0.5])


@pytest.mark.parametrize("record, message", [
    ([], "JSON object"),
    ({"temperature": 0}, "temperature"),
    ({"temperature": math.inf}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"temperature": 1.5, "decision": {"positive_label": "eggs", "threshold": 0.5}}, "positive_label"),
    ({"temperature": 1.5, "decision": {"positive_label": "spam", "threshold": 1.5}}, "threshold"),
])
def test_a_malformed_record_says_what_is_wrong(record: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_record(record, ["ham", "spam"])


def test_a_threshold_needs_a_binary_single_label_run() -> None:
    check_decision_labels("precision", "spam", ["ham", "spam"], False)
    with pytest.raises(ConfigError, match="binary single-label run; this one has 3 labels"):
        check_decision_labels("f1", None, ["a", "b", "c"], False)
    with pytest.raises(ConfigError, match="binary single-label"):
        check_decision_labels("f1", None, ["a", "b"], True)
    with pytest.raises(ConfigError, match="'eggs' is not one of the labels: ham, spam"):
        check_decision_labels("argmax", "eggs", ["ham", "spam"], False)
