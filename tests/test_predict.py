"""Classifier: texts in, labels and probabilities out, in input order, whatever the batching."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from seqnlp.calibration import BinaryThreshold, Calibration
from seqnlp.checkpoint import CALIBRATION_FILE
from seqnlp.errors import CheckpointError, ConfigError, DataError
from seqnlp.predict import DEFAULT_BATCH_SIZE, Classifier, forward_batches, load

TEXTS = [
    "this film was great",
    "awful",
    "",
    "the plot and the acting and the story were really quite awful with some very long scenes in it",
    "great great",
    "it is a movie",
    "awful awful awful the film",
    "a",
]


@pytest.fixture(scope="module")
def clf(toy_run: Path) -> Classifier:
    return Classifier.load(toy_run, device="cpu")


def with_batch_size(clf: Classifier, batch_size: int) -> Classifier:
    """The same model, batching ``batch_size`` texts at a time."""
    return Classifier(clf.model, clf.tokenizer, clf.label_names, clf.config, clf.device, clf.run_dir,
                      batch_size=batch_size)


def test_load_gives_a_classifier_on_the_cpu(toy_run: Path) -> None:
    clf = load(toy_run, device="cpu")
    assert isinstance(clf, Classifier)
    assert clf.label_names == ["neg", "pos"]
    assert clf.device == torch.device("cpu") and clf.run_dir == toy_run
    assert not clf.model.training
    assert clf.pad_id == 0


def test_predict_returns_a_label_and_its_probability(clf: Classifier) -> None:
    results = clf.predict(TEXTS)
    probs = clf.predict_proba(TEXTS)
    assert probs.shape == (len(TEXTS), 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert len(results) == len(TEXTS)
    for result, row in zip(results, probs):
        assert set(result) == {"label", "score"}
        assert result["label"] in clf.label_names
        assert isinstance(result["score"], float)
        assert result["score"] == pytest.approx(float(row.max()))
        assert result["label"] == clf.label_names[int(row.argmax())]
        assert 0.5 <= result["score"] <= 1.0  # two labels: the best one has at least half the mass


def test_top_k_over_all_labels_is_a_distribution_best_first(clf: Classifier) -> None:
    for result in clf.predict(TEXTS, top_k=2):
        top = result["top_k"]
        assert sorted(t["label"] for t in top) == ["neg", "pos"]
        assert sum(t["score"] for t in top) == pytest.approx(1.0, abs=1e-6)
        assert top[0]["score"] >= top[1]["score"]
        assert top[0] == {"label": result["label"], "score": result["score"]}


def test_probabilities_are_every_label_in_order_and_match_predict_proba(clf: Classifier) -> None:
    probs = clf.predict_proba(TEXTS)
    results = clf.predict(TEXTS, top_k=1, probabilities=True)
    for result, row in zip(results, probs):
        assert list(result["probabilities"]) == clf.label_names
        assert list(result["probabilities"].values()) == row.tolist()
        assert result["probabilities"][result["label"]] == result["score"]
    assert [{k: v for k, v in r.items() if k != "probabilities"} for r in results] == clf.predict(TEXTS, top_k=1)


def test_top_1_is_the_prediction(clf: Classifier) -> None:
    for result in clf.predict(TEXTS, top_k=1):
        assert result["top_k"] == [{"label": result["label"], "score": result["score"]}]


@pytest.mark.parametrize("top_k", [0, -1, 3, 100])
def test_top_k_out_of_range_is_a_data_error(clf: Classifier, top_k: int) -> None:
    with pytest.raises(DataError, match=rf"top_k must be between 1 and .*2.*{top_k}"):
        clf.predict(["great"], top_k=top_k)


def test_no_texts_no_predictions(clf: Classifier) -> None:
    assert clf.predict([]) == []
    assert clf.predict([], top_k=2) == []
    assert clf.predict_proba([]).shape == (0, 2)


def test_empty_text_still_gets_a_valid_label(clf: Classifier) -> None:
    for text in ["", "   ", "\n"]:
        [result] = clf.predict([text], top_k=2)
        assert result["label"] in clf.label_names
        assert np.isfinite(result["score"]) and 0.5 <= result["score"] <= 1.0
        assert sum(t["score"] for t in result["top_k"]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("batch_size", [1, 3, 256])
def test_outputs_follow_input_order_despite_length_sorting(clf: Classifier, batch_size: int) -> None:
    batched = with_batch_size(clf, batch_size)
    one_by_one = np.concatenate([clf.predict_proba([text]) for text in TEXTS])
    # Sanity: the inputs are not already sorted by length, so sorting would reorder them.
    lengths = [len(clf.tokenizer.encode(t).ids) for t in TEXTS]
    assert lengths != sorted(lengths)
    np.testing.assert_allclose(batched.predict_proba(TEXTS), one_by_one, rtol=1e-5, atol=1e-6)
    assert [r["label"] for r in batched.predict(TEXTS)] == [clf.predict([t])[0]["label"] for t in TEXTS]
    reversed_probs = batched.predict_proba(TEXTS[::-1])
    np.testing.assert_allclose(reversed_probs[::-1], one_by_one, rtol=1e-5, atol=1e-6)


def test_a_text_alone_and_beside_much_longer_texts_scores_the_same(clf: Classifier) -> None:
    short = "great film"
    long_texts = [" ".join(["the movie was really quite some story"] * 20 + [w]) for w in ("awful", "great")]
    alone = clf.logits([short])
    together = clf.logits([long_texts[0], short, long_texts[1]])
    torch.testing.assert_close(together[1:2], alone)
    assert not torch.allclose(together[0], alone[0])


@pytest.mark.parametrize("bad", [[1], [None], ["fine", b"bytes"], [["nested"]]], ids=["int", "none", "bytes", "list"])
def test_non_string_input_is_a_data_error(clf: Classifier, bad: list) -> None:
    with pytest.raises(DataError, match=r"text \d+ is a \w+, not a string"):
        clf.predict(bad)


def test_a_bare_string_is_not_split_into_characters(clf: Classifier) -> None:
    try:
        results = clf.predict("great")  # type: ignore[arg-type]
    except DataError:
        return  # refusing it is fine too
    assert len(results) == 1


def test_accepts_any_iterable_of_strings(clf: Classifier) -> None:
    expected = clf.predict_proba(["great", "awful"])
    np.testing.assert_array_equal(clf.predict_proba(("great", "awful")), expected)
    np.testing.assert_array_equal(clf.predict_proba(t for t in ["great", "awful"]), expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text, label",
    [("great", "pos"), ("awful", "neg"), ("the movie was great", "pos"), ("the acting was awful", "neg"),
     ("it is a very great film with some scene", "pos"), ("quite awful story and plot", "neg")],
)
def test_the_toy_task_is_predicted_right(clf: Classifier, text: str, label: str) -> None:
    [result] = clf.predict([text])
    assert result["label"] == label
    assert result["score"] > 0.5


def test_cue_words_move_the_probability_the_right_way(clf: Classifier) -> None:
    pos = clf.label_names.index("pos")
    great, neutral, awful = clf.predict_proba(["the film was great", "the film was", "the film was awful"])[:, pos]
    assert great > 0.5 > awful
    assert great > neutral > awful


def test_a_run_trained_in_fp16_predicts_on_the_cpu(toy_run: Path, tmp_path: Path, clf: Classifier) -> None:
    run = Path(shutil.copytree(toy_run, tmp_path / "fp16"))
    raw = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    raw["train"]["precision"] = "fp16"  # what a run trained with fp16 on a GPU saves
    (run / "config.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    texts = ["great film", "awful", "the film was great", "it was awful"]
    cpu = Classifier.load(run, device="cpu")
    assert [cpu.predict([t])[0]["label"] for t in texts] == ["pos", "neg", "pos", "neg"]  # one text: dense path
    np.testing.assert_allclose(cpu.predict_proba(texts), clf.predict_proba(texts), atol=1e-2)


# --- inference settings and the one inference loop ----------------------------------------------------------------


def test_inference_settings_are_not_read_from_the_training_config(toy_run: Path, tmp_path: Path,
                                                                   clf: Classifier) -> None:
    run = Path(shutil.copytree(toy_run, tmp_path / "bf16"))
    raw = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    raw["train"].update(precision="bf16", eval_batch_size=1)  # how the run trained and evaluated itself
    (run / "config.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    loaded = Classifier.load(run, device="cpu")
    assert (loaded.batch_size, loaded.precision) == (DEFAULT_BATCH_SIZE, "fp32") == (256, "fp32")
    torch.testing.assert_close(loaded.logits(TEXTS), clf.logits(TEXTS), rtol=0, atol=0)


def test_load_takes_the_batch_size_and_precision(toy_run: Path, clf: Classifier) -> None:
    small = load(toy_run, device="cpu", batch_size=3, precision="bf16")
    assert (small.batch_size, small.precision) == (3, "bf16")
    np.testing.assert_allclose(small.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=2e-2)  # bf16 autocast
    assert [r["label"] for r in small.predict(TEXTS[:2])] == [r["label"] for r in clf.predict(TEXTS[:2])]


@pytest.mark.parametrize("settings, message", [
    ({"batch_size": 0}, "batch_size must be a positive integer, not 0"),
    ({"batch_size": True}, "batch_size must be a positive integer, not True"),
    ({"batch_size": 2.5}, "batch_size must be a positive integer, not 2.5"),
    ({"precision": "fp8"}, "precision: 'fp8' is not one of fp32, bf16, fp16"),
    ({"precision": "fp16"}, "precision: fp16 needs a CUDA device, not cpu; on the CPU use bf16 or fp32"),
    ({"precision": "bf16", "quantize": True}, "an int8-quantized model runs in fp32, not bf16"),
    ({"num_threads": 0}, "num_threads must be auto, None or a positive integer, not 0"),
    ({"num_threads": "many"}, "num_threads must be auto, None or a positive integer, not 'many'"),
], ids=["zero", "bool", "float", "unknown-precision", "fp16-on-cpu", "quantized-bf16", "threads-0", "threads-str"])
def test_bad_inference_settings_are_config_errors(toy_run: Path, settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Classifier.load(toy_run, device="cpu", **settings)


def test_forward_batches_runs_without_autograd_and_restores_the_mode(clf: Classifier) -> None:
    batches = list(clf._batches([clf.tokenizer.encode(t).ids or [clf.pad_id] for t in ["great film", "awful", "a"]]))
    clf.model.train()
    try:
        loop = forward_batches(clf.model, batches, clf.device)
        batch, logits = next(loop)
        assert not clf.model.training and not logits.requires_grad and logits.shape == (len(batch.indices), 2)
        loop.close()  # left early: the mode still comes back
        assert clf.model.training
    finally:
        clf.model.eval()


# --- calibration and abstention -------------------------------------------------------------------------------


def calibrated(clf: Classifier, calibration: Calibration) -> Classifier:
    return Classifier(clf.model, clf.tokenizer, clf.label_names, clf.config, clf.device, clf.run_dir,
                      calibration=calibration)


def test_load_reads_the_runs_calibration(toy_run: Path, clf: Classifier) -> None:
    record = json.loads((toy_run / CALIBRATION_FILE).read_text(encoding="utf-8"))
    assert clf.calibration.temperature == record["temperature"]


def test_probabilities_are_divided_by_the_temperature(clf: Classifier) -> None:
    warm = calibrated(clf, Calibration(2.5))
    expected = torch.softmax(clf.logits(TEXTS) / 2.5, dim=1).numpy()
    np.testing.assert_allclose(warm.predict_proba(TEXTS), expected, rtol=1e-6)
    assert [r["label"] for r in warm.predict(TEXTS)] == [r["label"] for r in clf.predict(TEXTS)]  # argmax kept


def test_a_run_without_calibration_keeps_its_probabilities_and_says_so(toy_run: Path, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    run = Path(shutil.copytree(toy_run, tmp_path / "old"))
    (run / CALIBRATION_FILE).unlink()
    with caplog.at_level(logging.INFO, logger="seqnlp.predict"):
        old = Classifier.load(run, device="cpu")
    assert old.calibration == Calibration() and "no calibration.json" in caplog.text
    expected = torch.softmax(old.logits(TEXTS), dim=1).numpy()
    np.testing.assert_allclose(old.predict_proba(TEXTS), expected, rtol=1e-6)


def test_a_malformed_calibration_file_is_a_checkpoint_error(toy_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(toy_run, tmp_path / "bad"))
    (run / CALIBRATION_FILE).write_text('{"temperature": -1}', encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"calibration\.json: temperature must be a number in \[0.01, 100"):
        Classifier.load(run, device="cpu")


def test_a_binary_threshold_decides_and_scores_the_label_decided(clf: Classifier) -> None:
    strict = calibrated(clf, Calibration(1.0, BinaryThreshold(clf.label_names.index("pos"), 0.99)))
    probs = clf.predict_proba(TEXTS)
    for result, row in zip(strict.predict(TEXTS), probs):
        label = "pos" if row[clf.label_names.index("pos")] >= 0.99 else "neg"
        assert result == {"label": label, "score": pytest.approx(float(row[clf.label_names.index(label)]))}


def test_min_confidence_abstains_below_it(clf: Classifier) -> None:
    plain = clf.predict(TEXTS)
    cut = float(np.median([r["score"] for r in plain]))
    results = clf.predict(TEXTS, min_confidence=cut, top_k=1)
    assert any(r["abstained"] for r in results) and not all(r["abstained"] for r in results)
    for before, after in zip(plain, results):
        if before["score"] < cut:
            assert after["label"] is None and after["abstained"] is True and after["best"] == before["label"]
        else:
            assert after["label"] == before["label"] and after["abstained"] is False and "best" not in after
        assert after["score"] == before["score"] and after["top_k"][0]["label"] == before["label"]
    assert all(not r["abstained"] for r in clf.predict(TEXTS, min_confidence=0.0))
    with pytest.raises(DataError, match="min_confidence must be between 0 and 1"):
        clf.predict(TEXTS, min_confidence=1.5)
@pytest.mark.parametrize("num_threads", [1, 2, "auto", None])
def test_the_thread_setting_changes_no_prediction_and_leaves_torch_as_it_was(toy_run: Path, clf: Classifier,
                                                                            num_threads: object) -> None:
    before = torch.get_num_threads()
    other = load(toy_run, device="cpu", batch_size=2, num_threads=num_threads)  # type: ignore[arg-type]
    assert other.thread_control.setting == num_threads
    np.testing.assert_allclose(other.predict_proba(TEXTS), clf.predict_proba(TEXTS), rtol=1e-5, atol=1e-6)
    assert torch.get_num_threads() == before
