"""Metrics against a hand-computed reference, batched accumulation, and evaluate() on a trained run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from datasets import Dataset

from seqnlp.batching import BatchLoader
from seqnlp.checkpoint import RESULTS_FILE
from seqnlp.config import Config, DataConfig
from seqnlp.data import load_splits
from seqnlp.errors import DataError
from seqnlp.evaluation import evaluate, evaluate_model
from seqnlp.metrics import Metrics, build_metrics, summarize
from seqnlp.objective import MultiLabelObjective, Objective
from seqnlp.predict import Classifier
from seqnlp.tokenizer import encode_dataset
from seqnlp.training import train

from tests.helpers import toy_rows, write_csv

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


@pytest.fixture(scope="module")
def encoded_test(toy_run: Path) -> tuple[Classifier, Dataset]:
    """The trained classifier and its encoded test split."""
    clf = Classifier.load(toy_run, device="cpu")
    splits = load_splits(clf.config.data, clf.config.seed, label_names=clf.label_names)
    return clf, encode_dataset(splits.data["test"], clf.tokenizer)


def test_evaluate_model_does_not_depend_on_the_batch_size(encoded_test: tuple[Classifier, Dataset]) -> None:
    clf, encoded = encoded_test
    results = [
        evaluate_model(clf.model, BatchLoader(encoded, size, pad_id=clf.pad_id), clf.label_names, clf.device)
        for size in (3, 16, 1000)
    ]
    for other in results[1:]:
        assert other["loss"] == pytest.approx(results[0]["loss"], rel=1e-5)
        assert other["num_examples"] == results[0]["num_examples"] == 40
        assert other["confusion_matrix"] == results[0]["confusion_matrix"]
        assert other["macro_f1"] == results[0]["macro_f1"]
    assert not clf.model.training  # evaluation leaves the mode as it found it


def test_evaluate_model_restores_training_mode(encoded_test: tuple[Classifier, Dataset]) -> None:
    clf, encoded = encoded_test
    clf.model.train()
    try:
        evaluate_model(clf.model, BatchLoader(encoded, 16, pad_id=clf.pad_id), clf.label_names, clf.device)
        assert clf.model.training
    finally:
        clf.model.eval()


def test_evaluate_model_needs_labels(encoded_test: tuple[Classifier, Dataset]) -> None:
    clf, encoded = encoded_test
    loader = BatchLoader(encoded.remove_columns("label"), 16, pad_id=clf.pad_id)
    with pytest.raises(DataError, match="without labels"):
        evaluate_model(clf.model, loader, clf.label_names, clf.device)


def test_evaluate_defaults_to_the_test_split_and_matches_results_json(toy_run: Path) -> None:
    results = json.loads((toy_run / RESULTS_FILE).read_text(encoding="utf-8"))
    result = evaluate(Classifier.load(toy_run, device="cpu"))  # the device the run was trained on
    assert result["split"] == "test"
    assert result["num_examples"] == results["test"]["num_examples"] == 40
    assert result["loss"] == pytest.approx(results["test"]["loss"], rel=1e-5)
    for key in ("accuracy", "macro_f1", "macro_precision", "macro_recall", "confusion_matrix", "per_class"):
        assert result[key] == results["test"][key], key
    assert result["accuracy"] == 1.0


def test_evaluate_a_run_directory_by_path(toy_run: Path) -> None:
    results = json.loads((toy_run / RESULTS_FILE).read_text(encoding="utf-8"))
    result = evaluate(toy_run)
    assert result["split"] == "test"
    assert result["confusion_matrix"] == results["test"]["confusion_matrix"]
    assert result["loss"] == pytest.approx(results["test"]["loss"], rel=1e-3)


def test_evaluate_a_named_split(toy_run: Path) -> None:
    result = evaluate(Classifier.load(toy_run, device="cpu"), split="validation")
    assert result["split"] == "validation" and result["num_examples"] == 40


def test_evaluate_reproduces_a_carved_test_split(make_config: Callable[..., Config], toy_csv: dict[str, Path]) -> None:
    """With no test file, training carves one from train; evaluate must carve the very same examples."""
    config = make_config(**{"data.data_files": {"train": str(toy_csv["train"])}, "data.test_size": 0.2,
                            "model.cell": "gru", "train.epochs": 1, "train.num_threads": 1})
    result = train(config, progress=False)
    assert result.test is not None and result.test["num_examples"] == 40
    again = evaluate(Classifier.load(result.run_dir, device="cpu"))
    assert again["split"] == "test"
    assert again["num_examples"] == 40
    assert again["loss"] == pytest.approx(result.test["loss"], rel=1e-5)
    assert again["confusion_matrix"] == result.test["confusion_matrix"]


def test_evaluate_on_other_data(toy_run: Path, tmp_path: Path) -> None:
    rows = toy_rows(30, seed=5)
    data = DataConfig(data_files={"test": str(write_csv(tmp_path / "other.csv", rows))})
    result = evaluate(toy_run, data=data)
    assert result["split"] == "test" and result["num_examples"] == 30
    assert result["per_class"]["pos"]["support"] == sum(r["label"] == "pos" for r in rows)


def test_a_label_the_model_never_saw_is_a_data_error(toy_run: Path, tmp_path: Path) -> None:
    rows = toy_rows(10, seed=2) + [{"text": "a meh film", "label": "meh"}]
    data = DataConfig(data_files={"test": str(write_csv(tmp_path / "other.csv", rows))})
    with pytest.raises(DataError, match=r"label 'meh'.*not one of the known labels \(neg, pos\)"):
        evaluate(toy_run, data=data)


def test_an_unlabeled_split_is_a_data_error(toy_run: Path, tmp_path: Path) -> None:
    rows = [{"text": r["text"]} for r in toy_rows(10, seed=3)]
    data = DataConfig(data_files={"test": str(write_csv(tmp_path / "unlabeled.csv", rows))})
    with pytest.raises(DataError, match=r"split 'test' has no label column 'label'"):
        evaluate(toy_run, data=data)


def test_a_missing_split_is_a_data_error_listing_the_splits(toy_run: Path) -> None:
    with pytest.raises(DataError, match=r"split 'nope' not found.*train.*test"):
        evaluate(toy_run, split="nope")


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


def test_evaluate_reports_auroc(encoded_test: tuple[Classifier, Dataset]) -> None:
    clf, encoded = encoded_test
    result = evaluate_model(clf.model, BatchLoader(encoded, 16, pad_id=clf.pad_id), clf.label_names, clf.device)
    assert result["auroc"] == pytest.approx(1.0)  # the toy task is learned
    assert set(result["per_class"]["pos"]) == {"precision", "recall", "f1", "support", "auroc"}
