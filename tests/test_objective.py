"""The task objectives (loss, probabilities, decisions) and the rules that read the training labels: class
weights, sampling weights, the auto monitor and per-label thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqnlp.config import TrainConfig
from seqnlp.errors import ConfigError
from seqnlp.objective import DEFAULT_THRESHOLD, MultiLabelObjective, Objective, make_objective, tune_thresholds
from seqnlp.training.plan import class_weights, label_counts, plan_labels, resolve_monitor, sample_weights

NAMES = ["ham", "spam"]


def test_label_counts_of_classes_and_of_multi_hot_rows() -> None:
    assert label_counts(np.array([0, 1, 1, 2, 1]), 4).tolist() == [1, 3, 1, 0]
    multi_hot = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 0]], dtype=np.float32)
    assert label_counts(multi_hot, 3).tolist() == [2, 1, 1]


def test_auto_class_weights_are_sklearns_balanced() -> None:
    # n / (C * count): 100 / (2 * 80) and 100 / (2 * 20); every class then weighs 50 in total.
    weights = class_weights("auto", np.array([80, 20]), 100, multi_label=False, label_names=NAMES)
    assert weights == pytest.approx([0.625, 2.5])
    assert np.dot(weights, [80, 20]) == pytest.approx(100)
    assert class_weights("auto", np.array([30, 30, 30]), 90, False, ["a", "b", "c"]) == pytest.approx([1, 1, 1])


def test_auto_pos_weight_for_multi_label_is_negatives_over_positives() -> None:
    assert class_weights("auto", np.array([10, 50, 0]), 100, True, ["a", "b", "c"]) == pytest.approx([9.0, 1.0, 1.0])


def test_a_label_absent_from_train_gets_weight_1() -> None:
    assert class_weights("auto", np.array([90, 0, 10]), 100, False, ["a", "b", "c"]) == \
        pytest.approx([100 / 270, 1.0, 100 / 30])


def test_none_and_explicit_class_weights() -> None:
    assert class_weights(None, np.array([9, 1]), 10, False, NAMES) is None
    assert class_weights("none", np.array([9, 1]), 10, False, NAMES) is None
    assert class_weights([1, 4.5], np.array([9, 1]), 10, False, NAMES) == [1.0, 4.5]


def test_explicit_class_weights_must_give_one_per_label() -> None:
    with pytest.raises(ConfigError, match=r"train.class_weights: 3 weights for 2 labels \(ham, spam\)"):
        class_weights([1, 2, 3], np.array([9, 1]), 10, False, NAMES)


@pytest.mark.parametrize(("counts", "expected"), [
    ([100, 100], "accuracy"),
    ([150, 100], "accuracy"),  # exactly 1.5x: not more than the ratio
    ([151, 100], "macro_f1"),
    ([4825, 747], "macro_f1"),  # the SMS Spam Collection's ham/spam
    ([50, 50, 10], "macro_f1"),
])
def test_auto_monitor_is_macro_f1_for_imbalanced_classes(counts: list[int], expected: str) -> None:
    monitor, reason = resolve_monitor("auto", np.array(counts), multi_label=False)
    assert monitor == expected and reason.startswith("auto:")


def test_auto_monitor_for_multi_label_and_explicit_monitors() -> None:
    assert resolve_monitor("auto", np.array([10, 10]), multi_label=True)[0] == "macro_f1"
    for monitor in ("loss", "accuracy", "macro_f1"):
        assert resolve_monitor(monitor, np.array([900, 100]), multi_label=False) == (monitor, "set in train.monitor")


def test_weighted_loss_matches_a_hand_computed_reference() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    objective = make_objective(False, 2, weights=[0.5, 3.0])
    per_example = F.cross_entropy(logits, labels, reduction="none")
    weights = torch.tensor([0.5, 3.0, 3.0])
    assert objective.loss(logits, labels) == pytest.approx(float((weights * per_example).sum() / weights.sum()))
    # Evaluation's loss is the plain one, whatever the weights.
    assert objective.loss_sum(logits, labels) == pytest.approx(float(per_example.sum()))


def test_multi_label_loss_uses_pos_weight_on_positives_only() -> None:
    logits = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    objective = make_objective(True, 2, weights=[4.0, 2.0])
    assert isinstance(objective, MultiLabelObjective)
    expected = torch.stack([
        -4.0 * F.logsigmoid(torch.tensor(1.0)), -F.logsigmoid(torch.tensor(2.0)),  # row 1: positive, negative
        -F.logsigmoid(torch.tensor(-0.5)), -2.0 * F.logsigmoid(torch.tensor(0.0)),  # row 2: negative, positive
    ]).mean()
    assert objective.loss(logits, labels) == pytest.approx(float(expected))
    assert objective.loss_sum(logits, labels) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")))


def test_probabilities_and_decisions_per_task() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.0], [-3.0, 0.1, 4.0]])
    single, multi = Objective(3), MultiLabelObjective(3)
    assert torch.allclose(single.probabilities(logits).sum(dim=-1), torch.ones(2))
    assert single.decide(single.probabilities(logits)).tolist() == [0, 2]
    probs = multi.probabilities(logits)
    assert torch.allclose(probs, torch.sigmoid(logits))
    assert multi.decide(probs).tolist() == [[1, 0, 1], [0, 1, 1]]  # >= 0.5 by default: sigmoid(0) is in
    assert multi.decide(probs, torch.tensor([0.9, 0.5, 0.99])).tolist() == [[0, 0, 0], [0, 1, 0]]


def test_sample_weights_draw_each_class_equally_often() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    weights = sample_weights(labels, label_counts(labels, 2))
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum())


def test_tuned_thresholds_separate_a_separable_label_and_sit_between_the_scores() -> None:
    probs = np.array([[0.9, 0.2], [0.7, 0.3], [0.35, 0.1], [0.2, 0.05]])
    labels = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    thresholds = tune_thresholds(probs, labels)
    assert thresholds[0] == pytest.approx((0.7 + 0.35) / 2)  # halfway between the last positive and next score
    assert thresholds[1] == DEFAULT_THRESHOLD  # no positive example: nothing to tune


def test_tuned_thresholds_maximize_each_labels_f1() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((300, 4)) < [0.1, 0.3, 0.5, 0.8]).astype(np.float32)
    probs = np.clip(labels * 0.3 + rng.random((300, 4)) * 0.7, 0, 1)  # informative but overlapping
    thresholds = tune_thresholds(probs, labels)

    def f1(j: int, t: float) -> float:
        predicted, truth = probs[:, j] >= t, labels[:, j] > 0
        tp = (predicted & truth).sum()
        return 2 * tp / (predicted.sum() + truth.sum())

    for j in range(4):
        best_possible = max(f1(j, t) for t in np.unique(probs[:, j]))
        assert f1(j, thresholds[j]) == pytest.approx(best_possible)


def test_plan_reads_the_labels_once_for_every_choice() -> None:
    labels = np.array([0] * 80 + [1] * 20)
    plan = plan_labels(TrainConfig(class_weights="auto", sampler="weighted"), False, labels, NAMES)
    assert plan.monitor == "macro_f1" and plan.counts.tolist() == [80, 20]
    assert plan.class_weights == pytest.approx([0.625, 2.5])
    assert plan.sample_weights is not None and len(plan.sample_weights) == 100
    assert plan.record(NAMES)["class_weights"] == pytest.approx({"ham": 0.625, "spam": 2.5})
    assert plan.objective.weights is not None and plan.objective.weights.tolist() == pytest.approx([0.625, 2.5])
    plain = plan_labels(TrainConfig(), False, labels, NAMES)
    assert plain.class_weights is None and plain.sample_weights is None and plain.objective.weights is None
