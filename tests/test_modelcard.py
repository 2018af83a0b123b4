"""The model card every run writes: Hugging Face metadata that parses, and contents taken from the run's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from seqnlp.checkpoint import CALIBRATION_FILE, CARD_FILE, DATA_FILE, RESULTS_FILE
from seqnlp.errors import CheckpointError
from seqnlp.modelcard import environment, render_model_card, write_model_card


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture
def run_copy(toy_run: Path, tmp_path: Path) -> Path:
    """A writable copy of the shared toy run."""
    return Path(shutil.copytree(toy_run, tmp_path / "run"))


def test_training_writes_the_card_and_the_data_record(toy_run: Path) -> None:
    assert (toy_run / CARD_FILE).is_file() and (toy_run / DATA_FILE).is_file()
    data = json.loads((toy_run / DATA_FILE).read_text())
    assert list(data["splits"]) == ["train", "validation", "test"]
    assert {f["split"] for f in data["files"]} == {"train", "test"}
    env = json.loads((toy_run / RESULTS_FILE).read_text())["environment"]
    assert env["device"] == "cpu" and env["torch_threads"] == 1 and env["processes"] == 1


def test_metadata_is_what_the_hub_reads(toy_run: Path) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(toy_run / CARD_FILE)  # parses the front matter, model-index included
    results = json.loads((toy_run / RESULTS_FILE).read_text())
    assert card.data.library_name == "seqnlp" and card.data.pipeline_tag == "text-classification"
    assert "lstm" in card.data.tags and card.data.metrics == ["accuracy", "f1"]
    assert card.data.datasets is None  # local files have no Hub id
    scores = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    for split in ("validation", "test"):
        assert scores[split, "accuracy"] == results[split]["accuracy"]
        assert scores[split, "f1"] == results[split]["macro_f1"]
        assert scores[split, "roc_auc"] == results[split]["auroc"]


def test_contents_come_from_the_run_files(toy_run: Path) -> None:
    text = (toy_run / CARD_FILE).read_text()
    data = json.loads((toy_run / DATA_FILE).read_text())
    for heading in ("## Intended use", "## Data", "## Training", "### Time and speed", "## Results",
                    "## Limitations", "## Files"):
        assert heading in text
    assert all(f["sha256"] in text for f in data["files"])  # the data fingerprint
    assert not any(f["path"] in text for f in data["files"])  # file names only: the card may be published
    assert "Source: local files (below)." in text
    assert data["examples"]["pos"][0] in text  # example texts per label
    counts = data["splits"]["train"]["label_counts"]
    assert f"{counts['neg']:,} (" in text and f"{counts['pos']:,} (" in text  # the label distribution
    assert "tokens/s" in text and "torch threads" in text
    assert "| lstm, 1 layer(s), bidirectional, hidden 16, embedding 16, max pooling" in text
    calibration = json.loads((toy_run / "calibration.json").read_text(encoding="utf-8"))
    assert "### Calibration" in text and f"| temperature | {calibration['temperature']:.4f} |" in text
    assert f"{calibration['ece_before']:.4f} -> {calibration['ece_after']:.4f}" in text


def test_render_is_reproducible_and_names_the_repository(toy_run: Path) -> None:
    assert render_model_card(toy_run) == (toy_run / CARD_FILE).read_text()
    text = render_model_card(toy_run, repo_id="someone/toy-lstm")
    assert front_matter(text)["model-index"][0]["name"] == "toy-lstm"
    assert "hf download someone/toy-lstm --local-dir MODEL_DIR" in text and text.startswith("---\n")


def test_calibration_json_is_reported_when_present(run_copy: Path) -> None:
    calibration = {"method": "temperature_scaling", "temperature": 1.7, "fitted_on": {"split": "validation",
                   "examples": 40}, "nll_before": 0.5, "nll_after": 0.4, "ece_before": 0.081, "ece_after": 0.012,
                   "decision": {"positive_label": "pos", "threshold": 0.62}}
    (run_copy / CALIBRATION_FILE).write_text(json.dumps(calibration))
    text = (write_model_card(run_copy)).read_text()
    assert "### Calibration" in text and "fitted on validation (40 examples)" in text
    assert "| temperature | 1.7000 |" in text and "| ECE before -> after | 0.0810 -> 0.0120 |" in text
    assert "| decision: pos when its probability is at least | 0.6200 |" in text
    assert "not calibrated" not in text


def test_a_run_without_calibration_says_its_scores_are_not_calibrated(run_copy: Path) -> None:
    (run_copy / CALIBRATION_FILE).unlink()
    text = write_model_card(run_copy).read_text()
    assert "### Calibration" not in text and "not calibrated" in text


def test_a_run_without_data_json_still_gets_a_card(run_copy: Path) -> None:
    (run_copy / DATA_FILE).unlink()
    text = render_model_card(run_copy)
    assert "Not recorded: the run has no data.json" in text
    assert front_matter(text)["library_name"] == "seqnlp"


def test_leakage_is_a_limitation(run_copy: Path) -> None:
    data = json.loads((run_copy / DATA_FILE).read_text())
    data["checks"]["normalized"]["leaks"] = [{"source": "train", "target": "test", "rows": 7, "fraction": 0.175,
                                              "examples": []}]
    (run_copy / DATA_FILE).write_text(json.dumps(data))
    assert "- 7 test examples (17.50%) have a text also in train: scores on test are optimistic." in \
        render_model_card(run_copy)


def test_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="config.yaml is missing"):
        render_model_card(tmp_path)


def test_environment_names_the_machine() -> None:
    env = environment("cpu")
    assert env["cpu"] and env["cpu_count"] >= env["cores_available"] >= 1
    assert env["torch_threads"] >= 1 and env["device"] == "cpu"
