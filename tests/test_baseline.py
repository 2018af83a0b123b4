"""The fast n-gram baseline (seqnlp.baseline, `seqnlp baseline`, `train --baseline`): a number on tiny data, on
the very splits train uses, and one line naming the extra when scikit-learn is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqnlp.cli import main
from seqnlp.errors import ConfigError, SeqnlpError
from tests.helpers import multilabel_rows, tiny_set_args, write_jsonl

pytest.importorskip("sklearn")

from seqnlp.baseline import describe, fit_baseline  # noqa: E402


@pytest.mark.parametrize("classifier", ["svm", "logistic"])
def test_the_baseline_learns_the_toy_task(make_config, classifier: str) -> None:
    config = make_config(**{"baseline.classifier": classifier, "baseline.min_df": 1, "baseline.c": 10.0})
    result = fit_baseline(config)
    assert result.validation["accuracy"] == 1.0 and result.test is not None and result.test["accuracy"] == 1.0
    assert result.train_examples == 160  # 200 training rows less the 20% carved for validation, as train does
    assert result.num_features > 0 and result.settings["classifier"] == classifier


def test_character_ngrams_add_features(make_config) -> None:
    words = fit_baseline(make_config(**{"baseline.min_df": 1}))
    both = fit_baseline(make_config(**{"baseline.min_df": 1, "baseline.char_ngrams": 4}))
    assert both.num_features > words.num_features
    assert "char 2-4-grams" in both.description


def test_the_baseline_uses_the_same_training_subset_as_train(make_config) -> None:
    result = fit_baseline(make_config(**{"data.max_train_samples": 50, "baseline.min_df": 1}))
    assert result.train_examples == 50


def test_multi_label_data_gets_one_classifier_per_label(tmp_path: Path, make_config) -> None:
    files = {"train": str(write_jsonl(tmp_path / "ml.jsonl", multilabel_rows(300)))}
    config = make_config(**{"data.data_files": files, "data.label_column": "labels", "data.multi_label": True,
                            "data.test_size": 0.0, "baseline.min_df": 1})
    result = fit_baseline(config)
    assert result.test is None
    assert result.validation["macro_f1"] > 0.9


def test_the_description_names_the_model() -> None:
    from seqnlp.config import BaselineConfig

    assert describe(BaselineConfig()) == "TF-IDF word 1-2-grams + linear SVM (C=0.5)"
    assert describe(BaselineConfig(classifier="logistic", word_ngrams=1, c=4)) == "TF-IDF words + logistic regression (C=4)"


def test_a_missing_scikit_learn_is_one_line_naming_the_extra(make_config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    with pytest.raises(SeqnlpError, match=r"pip install 'seqnlp\[baseline\]'"):
        fit_baseline(make_config())


def test_streaming_is_refused(make_config) -> None:
    with pytest.raises(ConfigError, match="data.streaming"):
        make_config(**{"data.streaming": True, "train.baseline": True})


def test_the_command_reports_validation_and_test(toy_csv: dict[str, Path]) -> None:
    args = ["baseline", "--data-files", f"train={toy_csv['train']}", "--data-files", f"test={toy_csv['test']}",
            "--set", "baseline.min_df=1", "--set", "baseline.c=10", "--set", "data.validation_size=0.2"]
    result = CliRunner().invoke(main, ["-q", *args])
    assert result.exit_code == 0, result.output
    assert "Validation: accuracy 1.0000" in result.output and "Test: accuracy 1.0000" in result.output
    as_json = CliRunner().invoke(main, ["-q", *args, "--json", "--classifier", "logistic"])
    assert as_json.exit_code == 0, as_json.output
    record = json.loads(as_json.output)
    assert record["test"]["accuracy"] == 1.0 and record["settings"]["classifier"] == "logistic"


def test_train_with_baseline_records_it_beside_the_run(toy_csv: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "-q", "train", "--data-files", f"train={toy_csv['train']}", "--data-files", f"test={toy_csv['test']}",
        "-o", str(run), "--epochs", "1", "--baseline", "--set", "baseline.min_df=1", *tiny_set_args()])
    assert result.exit_code == 0, result.output
    assert "Baseline (TF-IDF word 1-2-grams + linear SVM (C=0.5)): validation accuracy 1.0000" in result.output
    recorded = json.loads((run / "results.json").read_text())["baseline"]
    assert recorded["test"]["accuracy"] == 1.0 and recorded["train_examples"] == 160
