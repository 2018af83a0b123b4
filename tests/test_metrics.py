"""Metrics (torchmetrics through ``seqnlp.metrics``) against hand-computed references: accuracy, precision, recall,
F1 and the confusion matrix, AUROC by its definition, multi-label metrics and thresholds; batched accumulation
equals the whole set; and every summary names its task."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

from seqnlp.calibration import BinaryThreshold, Calibration
from seqnlp.metrics import MULTI_LABEL, SINGLE_LABEL, CalibrationMetrics, Metrics, build_metrics, summarize
from seqnlp.objective import MultiLabelObjective, Objective

NAMES = ["a", "b", "c"]
# Rows are true labels, columns predictions:  a  b  c
TARGET = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])  # a: 2  1  1
PREDS = torch.tensor([0, 0, 1, 2, 1, 1, 0, 2, 2, 1])  # b: 1  2  0
CONFUSION = [[2, 1, 1], [1, 2, 0], [0, 1, 2]]  # c: 0  1  2
FOUR = ["w", "x", "y", "z"]


def computed(preds: torch.Tensor, target: torch.Tensor, names: list[str], chunk: int | None = None) -> dict[str, Any]:
    """build_metrics updated ``chunk`` predictions at a time (all at once by default), then summarized."""
    metrics = build_metrics(len(names))
    step = chunk or len(preds)
    for start in range(0, len(preds), step):
        metrics.update(preds[start : start + step], target[start : start + step])
    return summarize(metrics.compute(), names)


def test_metrics_match_a_hand_computed_reference() -> None:
    result = computed(PREDS, TARGET, NAMES)
    precision = {"a": 2 / 3, "b": 2 / 4, "c": 2 / 3}  # correct / column sum
    recall = {"a": 2 / 4, "b": 2 / 3, "c": 2 / 3}  # correct / row sum
    f1 = {"a": 4 / 7, "b": 4 / 7, "c": 2 / 3}  # 2pr / (p + r)
    support = {"a": 4, "b": 3, "c": 3}

    assert result["accuracy"] == pytest.approx(6 / 10)
    assert result["macro_precision"] == pytest.approx(11 / 18)
    assert result["macro_recall"] == pytest.approx(11 / 18)
    assert result["macro_f1"] == pytest.approx(38 / 63)  # (4/7 + 4/7 + 2/3) / 3
    assert result["confusion_matrix"] == CONFUSION  # rows = true labels: [0][2] is 1, [2][0] is 0
    assert list(result["per_class"]) == NAMES
    for name in NAMES:
        per_class = result["per_class"][name]
        assert per_class["precision"] == pytest.approx(precision[name])
        assert per_class["recall"] == pytest.approx(recall[name])
        assert per_class["f1"] == pytest.approx(f1[name])
        assert per_class["support"] == support[name]
        assert isinstance(per_class["support"], int)
    json.dumps(result)  # plain, JSON-ready numbers


def test_a_never_predicted_class_has_zero_precision_and_recall() -> None:
    target = torch.tensor([0, 1, 2, 2])
    preds = torch.tensor([0, 1, 1, 1])
    result = computed(preds, target, NAMES)
    assert result["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert result["per_class"]["b"]["precision"] == pytest.approx(1 / 3)
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 2, 0]]


@pytest.mark.parametrize("chunk", [1, 7, 32])
def test_batched_accumulation_equals_the_whole_set(chunk: int) -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (103,), generator=gen)
    preds = torch.where(torch.rand(103, generator=gen) < 0.6, target, torch.randint(0, 4, (103,), generator=gen))
    whole = computed(preds, target, FOUR)
    batched = computed(preds, target, FOUR, chunk=chunk)
    assert batched["confusion_matrix"] == whole["confusion_matrix"]
    assert_nested_close(batched, whole)
    if chunk > 1:  # and it is not the mean of per-batch scores, which would be wrong
        per_batch = [computed(preds[i : i + chunk], target[i : i + chunk], FOUR)["macro_f1"]
                     for i in range(0, 103, chunk)]
        assert sum(per_batch) / len(per_batch) != pytest.approx(whole["macro_f1"], abs=1e-6)


def assert_nested_close(a: Any, b: Any) -> None:
    """Nested dicts/lists of numbers, equal up to float rounding."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_nested_close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_nested_close(x, y)
    else:
        assert a == pytest.approx(b, abs=1e-7)


# --- AUROC and multi-label metrics ------------------------------------------------------------------------------

def rank_auroc(scores: list[float], positive: list[bool]) -> float:
    """AUROC by its definition: the share of (positive, negative) pairs ranked right, ties counting half."""
    pairs = [(p, n) for p, is_p in zip(scores, positive) if is_p for n, is_n in zip(scores, positive) if not is_n]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def metrics_of(objective: Objective, probs: torch.Tensor, target: torch.Tensor, names: list[str],
               chunk: int | None = None, thresholds: list[float] | None = None) -> dict[str, Any]:
    metrics = Metrics(objective, names, thresholds=thresholds)
    step = chunk or len(probs)
    for start in range(0, len(probs), step):
        metrics.update(probs[start : start + step], target[start : start + step])
    return metrics.compute()


def test_binary_auroc_is_the_auroc_of_the_positive_class_probability() -> None:
    p_spam = torch.tensor([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.4])
    target = torch.tensor([1, 1, 0, 1, 0, 0, 0, 1])
    probs = torch.stack([1 - p_spam, p_spam], dim=1)  # [N, 2]
    result = metrics_of(Objective(2), probs, target, ["ham", "spam"])
    expected = rank_auroc(p_spam.tolist(), [bool(t) for t in target])
    assert result["auroc"] == pytest.approx(expected) == pytest.approx(14 / 16)
    assert result["per_class"]["spam"]["auroc"] == pytest.approx(expected)
    assert result["accuracy"] == pytest.approx(6 / 8)  # the decision metrics as before: argmax


def test_multiclass_auroc_is_the_macro_mean_of_one_vs_rest() -> None:
    probs = torch.softmax(torch.randn(60, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    target = torch.arange(60) % 3
    result = metrics_of(Objective(3), probs, target, NAMES)
    per_class = [rank_auroc(probs[:, c].tolist(), (target == c).tolist()) for c in range(3)]
    assert [result["per_class"][n]["auroc"] for n in NAMES] == pytest.approx(per_class)
    assert result["auroc"] == pytest.approx(sum(per_class) / 3)
    assert metrics_of(Objective(3), probs, target, NAMES, chunk=7)["auroc"] == pytest.approx(result["auroc"])


def test_auroc_leaves_out_a_class_absent_from_the_split() -> None:
    probs = torch.softmax(torch.randn(20, 3, generator=torch.Generator().manual_seed(2)), dim=-1)
    target = torch.arange(20) % 2  # class c never occurs
    result = metrics_of(Objective(3), probs, target, NAMES)
    assert result["per_class"]["c"]["auroc"] is None
    defined = [rank_auroc(probs[:, c].tolist(), (target == c).tolist()) for c in range(2)]
    assert result["auroc"] == pytest.approx(sum(defined) / 2)
    single_class = metrics_of(Objective(3), probs, torch.zeros(20, dtype=torch.long), NAMES)
    assert single_class["auroc"] is None  # no class has both positives and negatives


MULTI_PROBS = torch.tensor([[0.9, 0.2, 0.6], [0.4, 0.8, 0.1], [0.7, 0.6, 0.3], [0.1, 0.3, 0.9]])
MULTI_TARGET = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float32)


def test_multi_label_metrics_match_a_hand_computed_reference() -> None:
    # Thresholds 0.5, 0.5, 0.5 -> decisions [1,0,1] [0,1,0] [1,1,0] [0,0,1]: only row 3 is wrong (label b).
    result = metrics_of(MultiLabelObjective(3), MULTI_PROBS, MULTI_TARGET, NAMES)
    assert result["exact_match"] == result["accuracy"] == pytest.approx(3 / 4)
    assert result["hamming_loss"] == pytest.approx(1 / 12)
    # a: tp 2; b: tp 1, fp 1; c: tp 2. micro: tp 5, fp 1, fn 0.
    assert result["per_class"]["b"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1, "predicted": 2, "auroc": 1.0})
    assert result["micro_f1"] == pytest.approx(10 / 11)
    assert result["macro_f1"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert result["auroc"] == pytest.approx(1.0)  # every label's positives outrank its negatives
    assert "confusion_matrix" not in result


def test_multi_label_metrics_decide_with_the_thresholds_given() -> None:
    # b's threshold above 0.6 fixes row 3; c's threshold 0.95 loses both of c's positives.
    result = metrics_of(MultiLabelObjective(3), MULTI_PROBS, MULTI_TARGET, NAMES, thresholds=[0.5, 0.7, 0.95])
    assert result["per_class"]["b"]["f1"] == pytest.approx(1.0)
    assert result["per_class"]["c"]["predicted"] == 0 and result["per_class"]["c"]["recall"] == 0.0
    assert [row["threshold"] for row in result["per_class"].values()] == pytest.approx([0.5, 0.7, 0.95])
    assert result["auroc"] == pytest.approx(1.0)  # AUROC does not depend on thresholds
    batched = metrics_of(MultiLabelObjective(3), MULTI_PROBS, MULTI_TARGET, NAMES, chunk=1,
                         thresholds=[0.5, 0.7, 0.95])
    assert batched == result


def test_every_summary_names_its_task() -> None:
    single = metrics_of(Objective(3), torch.softmax(torch.randn(6, 3), dim=-1), torch.arange(6) % 3, NAMES)
    multi = metrics_of(MultiLabelObjective(3), MULTI_PROBS, MULTI_TARGET, NAMES)
    assert single["task"] == SINGLE_LABEL == "single_label"
    assert multi["task"] == MULTI_LABEL == "multi_label"
    assert computed(PREDS, TARGET, NAMES)["task"] == SINGLE_LABEL
    assert json.loads(json.dumps(multi))["task"] == "multi_label"  # results.json and evaluate --json carry it


# --- calibration: ECE, MCE, Brier, NLL, reliability and risk-coverage -------------------------------------------


def calibration_of(logits: torch.Tensor, labels: torch.Tensor, temperature: float, multi: bool = False,
                   chunk: int | None = None, **kwargs: Any) -> dict[str, Any]:
    objective = MultiLabelObjective(logits.shape[1]) if multi else Objective(logits.shape[1])
    metrics = CalibrationMetrics(objective, logits.shape[1], Calibration(temperature, **kwargs))
    step = chunk or len(logits)
    for start in range(0, len(logits), step):
        metrics.update(logits[start:start + step], labels[start:start + step])
    return metrics.compute()


def random_logits(n: int = 300, c: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=generator) * 3, torch.randint(0, c, (n,), generator=generator)


def test_calibration_metrics_match_torchmetrics_and_definitions() -> None:
    logits, labels = random_logits()
    result = calibration_of(logits, labels, temperature=2.0)
    for stage, t in (("before", 1.0), ("after", 2.0)):
        probs = torch.softmax(logits / t, dim=1)
        got = result[stage]
        assert got["ece"] == pytest.approx(float(multiclass_calibration_error(probs, labels, 3, n_bins=10)), abs=1e-6)
        assert got["mce"] == pytest.approx(float(multiclass_calibration_error(probs, labels, 3, n_bins=10,
                                                                              norm="max")), abs=1e-6)
        brier = ((probs - torch.nn.functional.one_hot(labels, 3)) ** 2).sum(dim=1).mean()
        assert got["brier"] == pytest.approx(float(brier), rel=1e-5)
        assert got["nll"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits / t, labels)), rel=1e-5)
        rows = result["reliability"][stage]  # the table's weighted gap is the ECE
        assert sum(r["count"] for r in rows) == 300
        assert sum(r["count"] / 300 * abs(r["accuracy"] - r["confidence"]) for r in rows) == pytest.approx(
            got["ece"], abs=1e-6)
    assert result["temperature"] == 2.0 and result["bins"] == 10


def test_calibration_metrics_batched_equal_the_whole_set() -> None:
    logits, labels = random_logits(101, seed=4)
    whole, batched = calibration_of(logits, labels, 1.7), calibration_of(logits, labels, 1.7, chunk=13)
    assert batched["after"] == pytest.approx(whole["after"], rel=1e-5)
    assert batched["risk_coverage"] == whole["risk_coverage"]


def test_a_probability_of_exactly_one_has_its_own_bin() -> None:
    logits, labels = torch.tensor([[100.0, 0.0], [0.0, 0.1]]), torch.tensor([0, 0])
    rows = calibration_of(logits, labels, 1.0)["reliability"]["before"]
    assert [(r["low"], r["high"], r["count"]) for r in rows] == [(0.5, 0.6, 1), (1.0, 1.0, 1)]


def test_risk_coverage_keeps_the_most_confident_decisions() -> None:
    # Binary probabilities of class 1: confidences 0.95, 0.9, 0.8, 0.7, 0.6, 0.55; the two least confident are wrong.
    p = torch.tensor([0.95, 0.1, 0.8, 0.3, 0.6, 0.45])
    logits = torch.stack([torch.zeros(6), torch.logit(p)], dim=1)
    labels = torch.tensor([1, 0, 1, 0, 0, 1])
    rows = {r["coverage"]: r for r in calibration_of(logits, labels, 1.0)["risk_coverage"]}
    assert rows[1.0]["accuracy"] == pytest.approx(4 / 6) and rows[1.0]["examples"] == 6
    assert rows[0.7]["examples"] == 5 and rows[0.7]["accuracy"] == pytest.approx(4 / 5)
    assert rows[0.6]["examples"] == 4 and rows[0.6]["accuracy"] == 1.0
    assert rows[0.6]["min_confidence"] == pytest.approx(0.7)
    # A binary threshold changes the decisions, so the coverage table follows it.
    strict = {r["coverage"]: r for r in calibration_of(logits, labels, 1.0, threshold=BinaryThreshold(1, 0.9))[
        "risk_coverage"]}
    assert strict[1.0]["accuracy"] == pytest.approx(4 / 6)  # calls 1 only for 0.95: right on 0.95, 0.1, 0.3, 0.6


def test_multi_label_calibration_scores_every_label_probability() -> None:
    generator = torch.Generator().manual_seed(6)
    logits = torch.randn(50, 3, generator=generator) * 2
    labels = (torch.rand(50, 3, generator=generator) < 0.4).float()
    result = calibration_of(logits, labels, 1.5, multi=True)
    probs = torch.sigmoid(logits / 1.5)
    assert result["after"]["ece"] == pytest.approx(float(binary_calibration_error(
        probs.flatten(), labels.long().flatten(), n_bins=10)), abs=1e-6)
    assert result["after"]["brier"] == pytest.approx(float(((probs - labels) ** 2).mean()), rel=1e-5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits / 1.5, labels, reduction="sum") / 50
    assert result["after"]["nll"] == pytest.approx(float(bce), rel=1e-5)
    assert sum(r["count"] for r in result["reliability"]["after"]) == 150
