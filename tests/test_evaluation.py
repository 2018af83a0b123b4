"""Evaluation on a trained run: ``evaluate_model`` and ``predict_split`` (training's passes), ``evaluate`` on the
run's own splits or on other data in one call, its inference settings, and ``format_report``'s tables.

The metrics themselves are checked against references in tests/test_metrics.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from datasets import Dataset

import seqnlp
from seqnlp.batching import BatchLoader
from seqnlp.checkpoint import CALIBRATION_FILE, RESULTS_FILE
from seqnlp.cli import main
from seqnlp.config import Config, DataConfig
from seqnlp.data import load_splits
from seqnlp.errors import ConfigError, DataError
from seqnlp.evaluation import calibrate, evaluate, evaluate_model, format_report, predict_split
from seqnlp.metrics import Metrics
from seqnlp.objective import MultiLabelObjective
from seqnlp.predict import Classifier
from seqnlp.tokenizer import encode_dataset
from seqnlp.training import train
from tests.helpers import toy_rows, write_csv


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
    assert result["split"] == "test" and result["carved"] is None  # the toy run's own test file
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
    # Named as carved wherever it is reported: the run's results, evaluate's result and its report.
    assert result.test["carved"] == again["carved"] == "carved from train, 20%"
    assert json.loads((result.run_dir / RESULTS_FILE).read_text())["test"]["carved"] == "carved from train, 20%"
    assert format_report(again).splitlines()[0] == "Split: test, carved from train, 20% (40 examples)"
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


def test_evaluate_reports_auroc(encoded_test: tuple[Classifier, Dataset]) -> None:
    clf, encoded = encoded_test
    result = evaluate_model(clf.model, BatchLoader(encoded, 16, pad_id=clf.pad_id), clf.label_names, clf.device)
    assert result["auroc"] == pytest.approx(1.0)  # the toy task is learned
    assert set(result["per_class"]["pos"]) == {"precision", "recall", "f1", "support", "auroc"}


def test_predict_split_gives_the_classifiers_probabilities_in_loader_order(
        encoded_test: tuple[Classifier, Dataset]) -> None:
    clf, encoded = encoded_test
    texts = load_splits(clf.config.data, clf.config.seed, label_names=clf.label_names, only=["test"]).data["test"]
    clf.model.train()
    try:
        probs, labels = predict_split(clf.model, BatchLoader(encoded, 7, pad_id=clf.pad_id), clf.device, "fp32",
                                      clf.objective)
        assert clf.model.training  # the one inference loop restores the mode it found
    finally:
        clf.model.eval()
    order = np.argsort(encoded["length"], kind="stable")  # the loader's length-sorted order
    np.testing.assert_allclose(probs, clf.predict_proba([texts["text"][i] for i in order]), atol=1e-6)
    assert labels.tolist() == np.asarray(encoded["label"])[order].tolist()


# --- evaluate: other data in one call, inference settings -------------------------------------------------------


def test_evaluate_other_data_files_in_one_line(toy_run: Path, tmp_path: Path) -> None:
    rows = toy_rows(30, seed=8)
    other = write_csv(tmp_path / "other.csv", rows)
    result = seqnlp.evaluate(toy_run, data_files={"test": other})
    assert result["split"] == "test" and result["num_examples"] == 30 and result["accuracy"] == 1.0
    assert result == evaluate(toy_run, data=DataConfig(data_files={"test": str(other)}))  # the same as a DataConfig


def test_evaluate_a_dataset_file_with_other_columns(toy_run: Path, tmp_path: Path) -> None:
    """Other data keeps only how the run read its columns; the columns can be renamed too. A single file is the
    train split, so its test split is carved with the defaults and the run's seed."""
    rows = [{"review": r["text"], "sentiment": r["label"]} for r in toy_rows(50, seed=9)]
    path = write_csv(tmp_path / "reviews.csv", rows)
    result = evaluate(toy_run, dataset=str(path), text_columns="review", label_column="sentiment")
    assert result["split"] == "test" and result["num_examples"] == 5  # 10% of 50
    validation = evaluate(toy_run, "validation", dataset=str(path), text_columns=["review"],
                          label_column="sentiment")
    assert validation["num_examples"] == 5 and validation["per_class"].keys() == {"neg", "pos"}


def test_evaluate_with_data_and_other_data_arguments_is_a_config_error(toy_run: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        evaluate(toy_run, data=DataConfig(), dataset="other.csv")


def test_evaluate_batch_size_and_precision_are_inference_settings(toy_run: Path) -> None:
    reference = evaluate(toy_run, device="cpu")
    small = evaluate(toy_run, device="cpu", batch_size=3)
    assert small["confusion_matrix"] == reference["confusion_matrix"]
    assert small["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    bf16 = evaluate(toy_run, device="cpu", precision="bf16")
    assert bf16["accuracy"] == reference["accuracy"] == 1.0
    assert bf16["loss"] == pytest.approx(reference["loss"], rel=0.05)  # autocast: close, not equal
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        evaluate(Classifier.load(toy_run, device="cpu"), precision="fp16")


# --- format_report ----------------------------------------------------------------------------------------------


def test_format_report_single_label(toy_run: Path) -> None:
    result = evaluate(toy_run, device="cpu")
    report = format_report(result).splitlines()
    assert report[0] == "Split: test (40 examples)"
    assert [line.split() for line in report if line.split()[:1] == ["accuracy"]] == [["accuracy", "1.0000"]]
    assert not any("exact match" in line for line in report)
    rows = [line.split() for line in report]
    assert ["label", "precision", "recall", "f1", "auroc", "support"] in rows
    matrix = rows.index(["Confusion", "matrix", "(rows:", "true", "label,", "columns:", "predicted)"])
    assert rows[matrix + 1:matrix + 4] == [["neg", "pos"], ["neg", "20", "0"], ["pos", "0", "20"]]
    assert format_report(result, ["neg", "pos"]) == format_report(result)  # the labels default to the result's
    # Calibration: the scores before and after the run's temperature, then the reliability and risk-coverage tables.
    calibration = result["calibration"]
    assert f"  Calibration (temperature {calibration['temperature']:.3f})" in report
    ece = next(row for row in rows if row[:1] == ["ECE"])
    assert ece == ["ECE", f"{calibration['before']['ece']:.4f}", f"{calibration['after']['ece']:.4f}"]
    assert ["100%", "40", "1.0000", f"{calibration['risk_coverage'][0]['min_confidence']:.4f}"] in rows
    assert sum(int(row[1]) for row in rows if len(row) == 4 and row[0][:1].isdigit() and "-" in row[0]) == 40


def test_evaluate_matches_the_calibration_training_reported(toy_run: Path) -> None:
    results = json.loads((toy_run / RESULTS_FILE).read_text(encoding="utf-8"))
    result = evaluate(toy_run, device="cpu")
    assert result["calibration"]["risk_coverage"] == results["test"]["calibration"]["risk_coverage"]
    for stage in ("before", "after"):
        assert result["calibration"][stage] == pytest.approx(results["test"]["calibration"][stage], rel=1e-4)


def multi_label_result() -> dict[str, Any]:
    probs = torch.tensor([[0.9, 0.2, 0.6], [0.4, 0.8, 0.1], [0.7, 0.6, 0.3], [0.1, 0.3, 0.9]])
    target = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float32)
    metrics = Metrics(MultiLabelObjective(3), ["politics", "sports", "weather"], thresholds=[0.5, 0.7, 0.95])
    metrics.update(probs, target)
    return {"loss": 0.25, "num_examples": 4, **metrics.compute(), "split": "test"}


def test_format_report_multi_label() -> None:
    report = format_report(multi_label_result()).splitlines()
    rows = [line.split() for line in report]
    assert report[0] == "Split: test (4 examples)"
    assert ["exact", "match", "0.5000"] in rows and ["Hamming", "loss", "0.1667"] in rows  # c misses both
    assert ["label", "precision", "recall", "f1", "auroc", "support", "predicted", "threshold"] in rows
    assert ["weather", "0.0000", "0.0000", "0.0000", "1.0000", "2", "0", "0.950"] in rows
    assert ["sports", "1.0000", "1.0000", "1.0000", "1.0000", "1", "1", "0.700"] in rows
    assert not any("Confusion" in line for line in report) and not any(row[:1] == ["accuracy"] for row in rows)


def test_format_report_needs_the_task(toy_run: Path) -> None:
    result = evaluate(toy_run, device="cpu")
    del result["task"]  # a summary written before seqnlp recorded the task
    with pytest.raises(DataError, match="no 'task'"):
        format_report(result)


# --- calibrate: the calibration fitted again on a split -----------------------------------------------------------


def noisy_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Toy rows with every fifth label flipped: the learned model is wrong on those, right on the rest."""
    rows = toy_rows(n, seed=seed)
    for row in rows[::5]:
        row["label"] = "neg" if row["label"] == "pos" else "pos"
    return rows


def test_calibrate_fits_again_on_the_split_named_and_the_run_uses_it(toy_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(toy_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints", "tensorboard")))
    (run / CALIBRATION_FILE).unlink()  # a run trained before seqnlp calibrated runs
    held = write_csv(tmp_path / "held.csv", noisy_rows(100, seed=5))
    record = calibrate(run, "held", data_files={"held": held})
    assert record["fitted_on"] == {"split": "held", "examples": 100} and record["method"] == "temperature_scaling"
    # The toy model says 0.6 where it is right 80% of the time: the fitted temperature sharpens it.
    assert record["temperature"] < 1 and record["nll_after"] < record["nll_before"]
    assert json.loads((run / CALIBRATION_FILE).read_text(encoding="utf-8")) == record
    assert Classifier.load(run, device="cpu").calibration.temperature == record["temperature"]
    after = evaluate(run, "held", data_files={"held": held})["calibration"]
    assert after["after"]["ece"] == pytest.approx(record["ece_after"]) and record["ece_after"] < record["ece_before"]


def test_calibrate_moves_a_binary_decision_without_training(toy_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(toy_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints", "tensorboard")))
    held = write_csv(tmp_path / "held.csv", noisy_rows(100, seed=6))
    record = calibrate(run, "held", data_files={"held": held}, threshold="precision", target_precision=0.9,
                       positive_label="pos")
    decision = record["decision"]
    assert decision["positive_label"] == "pos" and decision["target_precision"] == 0.9
    threshold = Classifier.load(run, device="cpu").calibration.threshold
    assert threshold is not None and threshold.threshold == decision["threshold"]
    with pytest.raises(ConfigError, match="calibration.positive_label: 'spam' is not one of the labels"):
        calibrate(run, positive_label="spam")


def test_cli_calibrate_prints_the_new_record(toy_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(toy_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints", "tensorboard")))
    held = write_csv(tmp_path / "held.csv", noisy_rows(60, seed=7))
    result = CliRunner().invoke(main, ["calibrate", str(run), "--data-files", f"held={held}", "--split", "held",
                                       "--target-precision", "0.8"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((run / CALIBRATION_FILE).read_text(encoding="utf-8"))
    assert json.loads(result.stdout)["decision"]["rule"] == "precision"
    clash = CliRunner().invoke(main, ["calibrate", str(run), "--threshold", "f1", "--target-precision", "0.8"])
    assert clash.exit_code == 2 and "drop --threshold f1" in clash.output
