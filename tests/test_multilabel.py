"""Multi-label classification end to end: list columns in, multi-hot Arrow vectors, a sigmoid head that learns a
toy task, thresholds tuned on validation, saved and used by predict and evaluate, from Python and the CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from tests.helpers import CUES, multilabel_rows, tiny_config, tiny_set_args, write_jsonl

from seqnlp.checkpoint import CALIBRATION_FILE, RESULTS_FILE, THRESHOLDS_FILE
from seqnlp.cli import main
from seqnlp.config import DataConfig, load_config
from seqnlp.data import load_splits
from seqnlp.errors import CheckpointError, ConfigError, DataError
from seqnlp.evaluation import evaluate
from seqnlp.predict import Classifier
from seqnlp.training import train

LABELS = sorted(CUES.values())  # ["politics", "sports", "weather"]
ML = {"data.label_column": "labels", "data.multi_label": True}


def data_config(files: dict[str, Path], **kwargs: Any) -> DataConfig:
    return DataConfig(data_files={k: str(v) for k, v in files.items()}, label_column="labels", multi_label=True,
                      **kwargs)


@pytest.fixture(scope="module")
def ml_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ml-data")
    return {"train": write_jsonl(root / "train.jsonl", multilabel_rows(300, seed=0)),
            "test": write_jsonl(root / "test.jsonl", multilabel_rows(60, seed=1))}


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory: pytest.TempPathFactory, ml_files: dict[str, Path]) -> Path:
    root = tmp_path_factory.mktemp("ml-run")
    result = train(tiny_config(root, ml_files, **ML), progress=False)
    return result.run_dir


# --- data -------------------------------------------------------------------------------------------------------


def test_list_labels_become_multi_hot_float_vectors(ml_files: dict[str, Path]) -> None:
    splits = load_splits(data_config(ml_files), seed=0)
    assert splits.label_names == LABELS  # the sorted union of the lists
    test = splits.data["test"]
    assert test.features["label"] == datasets.Sequence(datasets.Value("float32"), length=3)
    assert pa.types.is_fixed_size_list(test.data.column("label").type)
    rows = multilabel_rows(60, seed=1)
    for row, vector in zip(rows, test["label"]):
        assert vector == [1.0 if name in row["labels"] else 0.0 for name in LABELS]
    assert any(sum(v) == 0 for v in test["label"]) and any(sum(v) >= 2 for v in test["label"])


def test_carving_does_not_stratify_list_labels(ml_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        splits = load_splits(data_config({"train": ml_files["train"]}, validation_size=0.2, test_size=0.1), seed=0)
    assert "stratified" not in caplog.text
    sizes = {name: len(split) for name, split in splits.data.items()}
    assert sizes == {"train": 210, "validation": 60, "test": 30}
    texts = [set(split["text"]) for split in splits.data.values()]
    assert sum(len(t) for t in texts) == len(set().union(*texts))  # disjoint (the toy texts are near-unique)


def test_label_names_from_a_list_of_class_labels(tmp_path: Path) -> None:
    features = datasets.Features({"text": datasets.Value("string"),
                                  "labels": datasets.Sequence(datasets.ClassLabel(names=["z", "y", "x"]))})
    saved = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "labels": [[0, 2], [], [1]]}, features=features)
    saved.save_to_disk(str(tmp_path / "saved"))
    cfg = DataConfig(dataset=str(tmp_path / "saved"), label_column="labels", multi_label=True, validation_size=0.0,
                     test_size=0.0, validation_split=None)
    splits = load_splits(cfg, seed=0)
    assert splits.label_names == ["z", "y", "x"]  # the ClassLabel's order, not sorted
    assert splits.data["train"]["label"] == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_a_list_column_without_multi_label_is_a_clear_error(ml_files: dict[str, Path]) -> None:
    with pytest.raises(DataError, match="holds lists of labels; set data.multi_label: true"):
        load_splits(DataConfig(data_files={"train": str(ml_files["train"])}, label_column="labels"), seed=0)


def test_multi_label_on_a_single_label_column_is_a_clear_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": f"t{i}", "labels": "ab"[i % 2]} for i in range(10)])
    with pytest.raises(DataError, match="holds one label per example, but data.multi_label is true"):
        load_splits(data_config({"train": path}), seed=0)


def test_unknown_label_in_another_split_names_the_row(tmp_path: Path) -> None:
    train_path = write_jsonl(tmp_path / "train.jsonl", [{"text": "t", "labels": ["a", "b"]}] * 10)
    test_path = write_jsonl(tmp_path / "test.jsonl", [{"text": "t", "labels": ["a"]}, {"text": "u", "labels": ["c"]}])
    with pytest.raises(DataError, match=r"split 'test', row 1: label 'c' .* not one of the known labels \(a, b\)"):
        load_splits(data_config({"train": train_path, "test": test_path}), seed=0)


def test_weighted_sampler_needs_single_label_data() -> None:
    with pytest.raises(ConfigError, match="train.sampler: weighted .* single-label"):
        load_config(updates={"data.multi_label": True, "train.sampler": "weighted"})


# --- training, thresholds, prediction --------------------------------------------------------------------------


def test_the_toy_task_is_learned_and_thresholds_are_saved(ml_run: Path) -> None:
    results = json.loads((ml_run / RESULTS_FILE).read_text())
    assert results["monitor"] == "macro_f1" and results["monitor_reason"] == "auto: multi-label data"
    test = results["test"]
    assert test["num_examples"] == 60
    assert test["exact_match"] >= 0.9 and test["macro_f1"] >= 0.95 and test["auroc"] >= 0.98
    assert test["task"] == results["validation"]["task"] == "multi_label"  # results.json says which task it measured
    thresholds = json.loads((ml_run / THRESHOLDS_FILE).read_text())
    assert list(thresholds) == LABELS and all(0 < t < 1 for t in thresholds.values())
    assert {name: row["threshold"] for name, row in test["per_class"].items()} == pytest.approx(thresholds)


def test_predict_returns_every_label_at_or_above_its_threshold(ml_run: Path) -> None:
    clf = Classifier.load(ml_run, device="cpu")
    saved = json.loads((ml_run / THRESHOLDS_FILE).read_text())
    assert clf.multi_label and clf.thresholds == pytest.approx(list(saved.values()))
    texts = ["the goal was great and the rain came", "a film with a plot", "vote vote", "rain goal vote"]
    results = clf.predict(texts)
    assert [r["labels"] for r in results] == [["sports", "weather"], [], ["politics"], LABELS]
    probs = clf.predict_proba(texts)
    assert probs.shape == (4, 3) and not np.allclose(probs.sum(axis=1), 1.0)  # independent sigmoids
    for result, row in zip(results, probs):
        assert list(result["scores"]) == LABELS
        assert list(result["scores"].values()) == pytest.approx(row.tolist())
        assert result["labels"] == [n for n, p, t in zip(LABELS, row, clf.thresholds) if p >= t]
    top = clf.predict(texts[:1], top_k=2)[0]["top_k"]
    assert [t["label"] for t in top] == [LABELS[i] for i in np.argsort(-probs[0])[:2]]
    assert {t["label"] for t in top} == {"sports", "weather"}


def test_one_temperature_is_fitted_and_multi_label_abstains_on_its_least_sure_label(ml_run: Path) -> None:
    record = json.loads((ml_run / CALIBRATION_FILE).read_text())
    assert record["scope"] == "one temperature shared by every label" and "decision" not in record
    clf = Classifier.load(ml_run, device="cpu")
    assert clf.calibration.temperature == record["temperature"]
    texts = ["the goal was great and the rain came", "a film with a plot", "vote vote", "rain goal vote"]
    probs = clf.predict_proba(texts)
    assert clf.thresholds is not None
    sure = [min(p if p >= t else 1 - p for p, t in zip(row, clf.thresholds)) for row in probs]  # least sure label
    cut = float(np.median(sure))
    for result, confidence, plain in zip(clf.predict(texts, min_confidence=cut), sure, clf.predict(texts)):
        assert result["abstained"] is bool(confidence < cut)
        assert result["labels"] == (None if result["abstained"] else plain["labels"])
    calibration = evaluate(clf)["calibration"]
    assert sum(row["count"] for row in calibration["reliability"]["after"]) == 3 * 60  # every (text, label)


def test_predict_and_evaluate_use_the_saved_thresholds(ml_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "edited"
    shutil.copytree(ml_run, run)
    (run / THRESHOLDS_FILE).write_text(json.dumps({"politics": 1.0, "sports": 0.0, "weather": 0.5}))
    clf = Classifier.load(run, device="cpu")
    results = clf.predict(["vote", "a film", "rain"])
    assert [r["labels"] for r in results] == [["sports"], ["sports"], ["sports", "weather"]]
    result = evaluate(clf)
    per_class = result["per_class"]
    assert per_class["sports"]["predicted"] == result["num_examples"]  # threshold 0: always predicted
    assert per_class["politics"]["predicted"] == 0  # threshold 1: never (a sigmoid stays below 1 here)
    assert per_class["sports"]["threshold"] == 0.0


def test_a_bad_thresholds_file_is_a_checkpoint_error(ml_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "bad"
    shutil.copytree(ml_run, run)
    (run / THRESHOLDS_FILE).write_text(json.dumps({"politics": 0.5}))
    with pytest.raises(CheckpointError, match="thresholds.json must map each label"):
        Classifier.load(run, device="cpu")


def test_auto_class_weights_become_pos_weight(tmp_path: Path, ml_files: dict[str, Path]) -> None:
    config = tiny_config(tmp_path, ml_files, **ML, **{"train.epochs": 1, "train.class_weights": "auto"})
    result = train(config, progress=False)
    results = json.loads((result.run_dir / RESULTS_FILE).read_text())
    counts = results["label_counts"]
    n = 240  # 300 - 20% validation
    assert results["class_weights"] == pytest.approx({k: (n - c) / c for k, c in counts.items()})


# --- command line -------------------------------------------------------------------------------------------------


def test_cli_train_evaluate_predict(tmp_path: Path, ml_files: dict[str, Path]) -> None:
    runner = CliRunner()
    run = tmp_path / "cli-run"
    args = ["-q", "train", "--data-files", f"train={ml_files['train']}", "--data-files", f"test={ml_files['test']}",
            "--label-column", "labels", "--multi-label", "--epochs", "8", "--batch-size", "16", "-o", str(run)]
    result = runner.invoke(main, args + tiny_set_args())
    assert result.exit_code == 0, result.output
    assert "(by validation macro_f1)" in result.stdout and "\ntest: exact match" in result.stdout
    assert (run / THRESHOLDS_FILE).is_file()

    shown = runner.invoke(main, ["-q", "evaluate", str(run)])
    assert shown.exit_code == 0, shown.output
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert ["label", "precision", "recall", "f1", "auroc", "support", "predicted", "threshold"] in lines
    assert any(line[:2] == ["exact", "match"] for line in lines) and any(line[:1] == ["AUROC"] for line in lines)
    as_json = json.loads(runner.invoke(main, ["-q", "evaluate", str(run), "--json"]).stdout)
    assert as_json["exact_match"] >= 0.9 and set(as_json["per_class"]) == set(LABELS)
    assert as_json["task"] == "multi_label"

    predicted = runner.invoke(main, ["-q", "predict", str(run), "goal and rain", "a movie"])
    assert predicted.exit_code == 0, predicted.output
    first, second = (json.loads(line) for line in predicted.stdout.splitlines())
    assert first["labels"] == ["sports", "weather"] and second["labels"] == []
    assert set(first["scores"]) == set(LABELS)


def test_cli_list_labels_without_the_flag_is_a_one_line_error(ml_files: dict[str, Path]) -> None:
    result = CliRunner().invoke(main, ["-q", "train", "--data-files", f"train={ml_files['train']}",
                                       "--label-column", "labels", "--set", "train.device=cpu"])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "--multi-label" in result.stderr


def test_a_stream_of_list_labels_trains(tmp_path: Path, ml_files: dict[str, Path]) -> None:
    """Streaming: the labels come from the sample, and the stream's rows become multi-hot vectors as they are read."""
    config = tiny_config(tmp_path, ml_files, **ML, **{
        "data.streaming": True, "data.streaming_validation_size": 60, "data.streaming_sample": 100,
        "data.shuffle_buffer": 50, "data.streaming_size": 240, "train.bucket_pool": 4, "train.epochs": 8,
        "train.class_weights": "auto"})
    result = train(config, progress=False)
    results = json.loads((result.run_dir / RESULTS_FILE).read_text())
    assert sum(results["label_counts"].values()) > 0 and set(results["class_weights"]) == set(LABELS)
    assert results["test"]["macro_f1"] >= 0.9
    assert (result.run_dir / THRESHOLDS_FILE).is_file()
