"""``seqnlp.data.audit``: the full audit on small files whose every number can be worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqnlp.config import Config, load_config
from seqnlp.data.audit import AuditReport, audit
from tests.data.helpers import write_rows

WORDS = [f"w{i}" for i in range(100)]


def lengths_rows() -> list[dict[str, Any]]:
    """100 training texts of 1..100 distinct-vocabulary words; three of four are "pos"."""
    return [{"text": " ".join(WORDS[:k]), "label": "neg" if k % 4 == 0 else "pos"} for k in range(1, 101)]


def make(tmp_path: Path, train: list[dict[str, Any]], validation: list[dict[str, Any]],
         test: list[dict[str, Any]], **updates: Any) -> Config:
    files = {name: str(write_rows(tmp_path / f"{name}.jsonl", rows))
             for name, rows in (("train", train), ("validation", validation), ("test", test))}
    settings = {"data.data_files": files, "tokenizer.min_frequency": 1, "tokenizer.max_length": 64,
                "train.batch_size": 8, **updates}
    return load_config(updates=settings)


@pytest.fixture
def report(tmp_path: Path) -> AuditReport:
    validation = [{"text": "w1 w2 unseen", "label": "neg"}, {"text": "w3 novel words here", "label": "pos"}]
    test = [{"text": "W0 W1 W2!", "label": "pos"},  # train's 3-word text, once normalized
            {"text": "w0", "label": "neg"},  # train's 1-word text, exactly; train says "pos": a conflict
            {"text": "w5", "label": "pos"}, {"text": "w6", "label": "pos"}]
    return audit(make(tmp_path, lengths_rows(), validation, test))


def test_leakage_and_conflicts_are_found(report: AuditReport) -> None:
    leaks = {(leak.source, leak.target): leak.rows for leak in report.scan.normalized.leaks}
    exact = {(leak.source, leak.target): leak.rows for leak in report.scan.exact.leaks}
    assert leaks[("train", "test")] == 2 and exact[("train", "test")] == 1
    assert report.leaked
    assert report.scan.exact.conflicts.texts == 1  # "w0": pos in train, neg in test
    assert list(report.scan.sizes) == ["train", "validation", "test"]


def test_length_percentiles_are_those_of_the_texts(report: AuditReport) -> None:
    train = report.lengths["train"]
    assert train.texts == 100 and train.tokens == 5050 and train.mean == pytest.approx(50.5)
    assert train.percentiles == {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "max": 100}
    assert train.unknown == 0  # min_frequency 1: every training word is known


def test_max_length_options_truncation_and_padding(report: AuditReport) -> None:
    options = {o.why: o for o in report.max_lengths}
    assert [o.max_length for o in report.max_lengths] == [64, 95, 99, 100]
    lengths = np.arange(1, 101)
    for option in report.max_lengths:
        limit = option.max_length
        assert option.truncated == pytest.approx((lengths > limit).mean())
        assert option.tokens_dropped == pytest.approx(np.maximum(lengths - limit, 0).sum() / lengths.sum())
        assert option.padding_fixed == pytest.approx(1 - np.minimum(lengths, limit).sum() / (100 * limit))
        assert 0 <= option.padding_bucketed < option.padding_random < 1
    assert options["longest"].truncated == 0 and options["keeps 95%"].truncated == pytest.approx(0.05)


def test_unknown_tokens_of_unseen_words(report: AuditReport) -> None:
    validation = report.lengths["validation"]
    assert (validation.tokens, validation.unknown) == (7, 4)  # "unseen", "novel", "words", "here"
    assert validation.unknown_rate == pytest.approx(4 / 7)
    assert validation.texts_with_unknown == 2 and validation.texts_all_unknown == 0
    test = report.lengths["test"]
    assert (test.tokens, test.unknown) == (7, 1)  # "!" is a token of its own, in no training text


def test_majority_baseline(report: AuditReport) -> None:
    assert report.baseline.label == "pos"  # 75 of the 100 training texts
    test = report.baseline.scores["test"]
    assert test["accuracy"] == pytest.approx(0.75)
    assert test["macro_f1"] == pytest.approx((2 * 0.75 / 1.75) / 2)
    assert report.baseline.scores["validation"]["accuracy"] == pytest.approx(0.5)


def test_markdown_and_json_render_everything(report: AuditReport) -> None:
    text = report.to_markdown()
    for heading in ("# Data audit", "## Findings", "## Splits and labels", "## Duplicates within a split",
                    "## Leakage across splits", "## Conflicting labels", "## Token lengths",
                    "## Choosing tokenizer.max_length", "## Majority-class baseline"):
        assert heading in text
    assert "2 test rows (50.00%) have a text also in train (1 exactly, 1 once normalized)" in text
    assert "| 95 | keeps 95% | 5.00% |" in text
    assert "- validation: 57.14% of the tokens are [UNK] to the tokenizer trained on train (2 of 2 texts" in text
    data = json.loads(report.to_json())
    assert data["baseline"]["label"] == "pos" and data["lengths"]["train"]["percentiles"]["p99"] == 99
    assert set(data["seconds"]) == {"load", "checks", "tokenizer", "tokens"}


def test_vector_coverage_counts_entries_and_running_tokens(tmp_path: Path) -> None:
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("".join(f"{w} 0.1 0.2\n" for w in ("w0", "w1", "W2")), encoding="utf-8")  # W2: by lowercase
    train = [{"text": "w0 w1 w2 w3", "label": "a"}, {"text": "w0 w4", "label": "b"}]
    config = make(tmp_path, train, [{"text": "w0 w9", "label": "a"}], [{"text": "w3", "label": "b"}],
                  **{"model.pretrained_vectors": str(vectors), "model.embedding_dim": 2})
    coverage = audit(config).vectors
    assert coverage is not None
    assert (coverage.words, coverage.found) == (5, 3) and coverage.coverage == pytest.approx(0.6)
    assert coverage.token_coverage["train"] == pytest.approx(4 / 6)  # w0 twice, w1, w2 of 6 tokens
    assert coverage.token_coverage["validation"] == pytest.approx(1 / 2)  # w9 is [UNK]: no vector
    assert coverage.token_coverage["test"] == 0.0


def test_a_carved_validation_split_is_audited_as_train_would_carve_it(tmp_path: Path) -> None:
    rows = [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(50)] + [{"text": "text 3", "label": "b"}]
    path = write_rows(tmp_path / "all.jsonl", rows)
    config = load_config(updates={"data.data_files": {"train": str(path)}, "data.validation_size": 0.2,
                                  "data.test_size": 0.0, "tokenizer.min_frequency": 1})
    report = audit(config)
    assert report.scan.sizes == {"train": 41, "validation": 10}
    duplicated = report.scan.exact.duplicates["train"].rows + report.scan.exact.leaks[0].rows
    assert duplicated == 1  # "text 3" twice: in train twice, or once in train and once in validation


def test_streaming_audits_the_tokenizer_sample(tmp_path: Path) -> None:
    train = [{"text": f"row {i} words", "label": "ab"[i % 2]} for i in range(30)]
    config = make(tmp_path, train, [{"text": "row 1 words", "label": "b"}], [{"text": "x", "label": "a"}],
                  **{"data.streaming": True, "data.streaming_sample": 12})
    report = audit(config)
    assert report.scan.sizes["train"] == 12
    assert report.notes and "first 12 examples" in report.notes[0]
    assert report.scan.exact.leaks[0].rows == 1
