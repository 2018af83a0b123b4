"""``seqnlp.explain.explain``: what an Explanation holds (tokens, spans, label, completeness, agreement), its JSON,
and the errors of bad requests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seqnlp.errors import ConfigError, DataError
from seqnlp.explain import explain
from seqnlp.explain.explanation import spearman
from seqnlp.predict import Classifier


@pytest.fixture(scope="module")
def clf(toy_run: Path) -> Classifier:
    return Classifier.load(toy_run, device="cpu")


def test_an_explanation_of_the_decided_label(clf: Classifier) -> None:
    (e,) = explain(clf, ["The FILM was Great"])
    assert e.label == "pos" == e.prediction["label"] and e.probability == pytest.approx(e.prediction["score"])
    assert e.tokens == ["the", "film", "was", "great"]  # normalized (lowercased) as the model saw them
    assert [e.text[a:b] for a, b in e.spans] == ["The", "FILM", "was", "Great"]  # spans point into the text as given
    assert len(e.attributions) == len(e.occlusion or []) == 4 and e.steps == 32
    assert e.relative_gap < 0.05 and not e.notes
    assert e.agreement is not None and e.agreement > 0.5  # both methods rank the tokens alike
    assert int(np.argmax(e.attributions)) == 3


def test_another_label_can_be_explained(clf: Classifier) -> None:
    decided, other = explain(clf, ["awful film"])[0], explain(clf, ["awful film"], label="pos")[0]
    assert decided.label == "neg" and other.label == "pos" and other.prediction["label"] == "neg"
    assert other.probability == pytest.approx(1 - decided.probability, abs=1e-6)
    # Two labels: the log-odds of one are minus the other's, and so are the attributions.
    np.testing.assert_allclose(other.attributions, [-a for a in decided.attributions], atol=1e-5)


def test_to_dict_is_json_with_the_completeness_check(clf: Classifier) -> None:
    (e,) = explain(clf, ["the plot was great"], with_occlusion=False)
    data = json.loads(json.dumps(e.to_dict()))
    assert data["occlusion"] is None and data["agreement"] is None
    assert data["spans"] == [[0, 3], [4, 8], [9, 12], [13, 18]]
    completeness = data["completeness"]
    assert completeness["attribution_sum"] == pytest.approx(sum(e.attributions))
    assert completeness["logit_difference"] == pytest.approx(e.logit - e.baseline_logit)
    assert completeness["gap"] == pytest.approx(e.gap) and completeness["relative_gap"] == pytest.approx(e.relative_gap)


def test_an_empty_text_is_explained_by_its_one_token(clf: Classifier) -> None:
    (e,) = explain(clf, [""])
    assert e.tokens == ["[UNK]"] and e.spans == [(0, 0)] and len(e.attributions) == 1


def test_a_large_gap_gets_a_note(clf: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    import seqnlp.explain.explanation as explanation

    def gapped(*args: object, **kwargs: object) -> tuple[torch.Tensor, float, float, int]:
        return torch.tensor([0.5, 0.5]), 3.0, 0.0, 288  # attributions sum to 1 of a difference of 3

    monkeypatch.setattr(explanation, "integrated_gradients", gapped)
    (e,) = explain(clf, ["great film"], with_occlusion=False)
    assert e.gap == pytest.approx(-2.0) and e.relative_gap == pytest.approx(2 / 3)
    assert e.notes == ["the attributions miss 67% of the logit difference: raise steps"]
    assert e.gradient_points == 288


@pytest.mark.parametrize("kwargs, error, message", [
    ({"label": "spam"}, DataError, "label 'spam' is not one of the run's labels: neg, pos"),
    ({"steps": 0}, ConfigError, "steps must be an integer from 1 to 1024, not 0"),
    ({"steps": 2.5}, ConfigError, "steps must be an integer"),
])
def test_bad_requests_are_one_line_errors(clf: Classifier, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        explain(clf, ["a"], **kwargs)


def test_a_quantized_model_cannot_be_explained(toy_run: Path) -> None:
    with pytest.raises(ConfigError, match="int8-quantized"):
        explain(Classifier.load(toy_run, quantize=True), ["a"])


def test_spearman_matches_its_definition() -> None:
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # Ties share their mean rank: ranks (1.5, 1.5, 3) against (1, 2, 3).
    assert spearman(np.array([5.0, 5.0, 9.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(np.sqrt(3) / 2)
    assert spearman(np.array([1.0]), np.array([2.0])) is None
    assert spearman(np.array([1.0, 1.0]), np.array([2.0, 3.0])) is None
