"""The cheap data checks: duplicates, leakage, conflicting labels and empty texts, exact and normalized."""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest
from datasets import ClassLabel, Dataset, Features, Sequence, Value

from seqnlp.data.scan import findings, label_counts, normalize, scan_splits, warn_about

NAMES = ["neg", "pos"]


def split(rows: list[tuple[str, int]] | list[str], names: list[str] = NAMES) -> Dataset:
    """A prepared split: (text, label index) pairs, or bare texts for an unlabelled one."""
    if rows and isinstance(rows[0], str):
        return Dataset.from_dict({"text": list(rows)}, features=Features({"text": Value("string")}))
    texts, labels = zip(*rows) if rows else ((), ())
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    return Dataset.from_dict({"text": list(texts), "label": list(labels)}, features=features)


def multi_split(rows: list[tuple[str, list[float]]], width: int = 3) -> Dataset:
    features = Features({"text": Value("string"), "label": Sequence(Value("float32"), length=width)})
    return Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]}, features=features)


@pytest.mark.parametrize(("a", "b"), [
    ("Great movie!", "great   movie"),
    ("ＦＵＬＬ width", "full width"),  # NFKC folds full-width letters
    ("one, two; three...", "one two three"),
    ("tab\tand\nnewline", "tab and newline"),
    ("  padded  ", "padded"),
    ("«quoted» — dash", "quoted dash"),
])
def test_normalize_calls_the_same_what_a_reader_would(a: str, b: str) -> None:
    out = normalize(pa.array([a, b], pa.large_string())).to_pylist()
    assert out[0] == out[1]
    assert out[0] == out[0].strip() and "  " not in out[0] and out[0] == out[0].lower()


def test_normalize_result() -> None:
    assert normalize(pa.array(["  Hello,   WORLD!! ＯＫ?"], pa.large_string())).to_pylist() == ["hello world ok"]


def test_normalize_keeps_different_words_apart() -> None:
    out = normalize(pa.array(["not good", "good", "dont", "don't"], pa.large_string())).to_pylist()
    assert len(set(out)) == 4  # "don't" -> "don t": punctuation becomes a space, it does not join words


def test_exact_and_normalized_duplicates_within_a_split() -> None:
    train = split([("a b", 0), ("a b", 0), ("A, b!", 0), ("c", 1), ("c", 1), ("c", 1), ("d", 1)])
    scan = scan_splits({"train": train}, NAMES)
    exact, normalized = scan.exact.duplicates["train"], scan.normalized.duplicates["train"]
    assert (exact.rows, exact.texts) == (3, 2)  # "a b" once more, "c" twice more
    assert (normalized.rows, normalized.texts) == (4, 2)  # "A, b!" joins "a b"
    assert normalized.examples[0] == ("c", 3) or normalized.examples[0] == ("a b", 3)
    assert {count for _, count in normalized.examples} == {3}


def test_leakage_counts_rows_of_the_later_split_found_in_the_earlier() -> None:
    train = split([("alpha", 0), ("beta", 1), ("gamma", 0)])
    validation = split([("alpha", 0), ("delta", 1)])
    test = split([("Beta.", 1), ("alpha", 0), ("alpha", 0), ("epsilon", 0)])
    scan = scan_splits({"test": test, "validation": validation, "train": train}, NAMES,
                       order=["train", "validation", "test"])
    exact = {(leak.source, leak.target): leak for leak in scan.exact.leaks}
    normalized = {(leak.source, leak.target): leak for leak in scan.normalized.leaks}
    assert list(exact) == [("train", "validation"), ("train", "test"), ("validation", "test")]
    assert exact["train", "validation"].rows == 1 and exact["train", "validation"].fraction == 0.5
    assert exact["train", "test"].rows == 2  # both "alpha" rows; "Beta." only once normalized
    assert normalized["train", "test"].rows == 3 and normalized["train", "test"].fraction == 0.75
    assert exact["validation", "test"].rows == 2
    assert normalized["train", "test"].examples[0] == "beta"  # examples are shown as first written
    assert [(leak.source, leak.target) for leak in scan.leaked] == list(normalized)


def test_an_unlabelled_split_is_checked_for_leakage_too() -> None:
    scan = scan_splits({"train": split([("x y", 0), ("z", 1)]), "test": split(["X Y", "w"])}, NAMES)
    assert scan.normalized.leaks[0].rows == 1
    assert "test" not in scan.label_counts
    assert scan.normalized.conflicts.texts == 0


def test_conflicting_labels_across_splits_exact_and_normalized() -> None:
    train = split([("fine", 0), ("fine", 1), ("ok", 0), ("Meh.", 0)])
    test = split([("meh", 1), ("ok", 0)])
    scan = scan_splits({"train": train, "test": test}, NAMES)
    assert (scan.exact.conflicts.texts, scan.exact.conflicts.rows) == (1, 2)
    assert (scan.normalized.conflicts.texts, scan.normalized.conflicts.rows) == (2, 4)
    assert sorted(scan.normalized.conflicts.examples) == [("Meh.", ["neg", "pos"]), ("fine", ["neg", "pos"])]


def test_multi_label_conflicts_compare_label_sets_across_splits() -> None:
    train = multi_split([("rain", [0, 0, 1]), ("goal", [1, 0, 0]), ("vote", [0, 1, 0])])
    test = multi_split([("rain", [0, 0, 1]), ("goal", [1, 0, 1]), ("vote", [0, 1, 0])])
    scan = scan_splits({"train": train, "test": test}, ["sports", "politics", "weather"])
    assert scan.exact.conflicts.texts == 1
    assert scan.exact.conflicts.examples == [("goal", ["sports", "sports+weather"])]
    assert scan.label_counts["test"] == {"sports": 1, "politics": 1, "weather": 2}
    assert scan.examples["weather"] == ["rain"]


def test_empty_texts_and_label_examples() -> None:
    train = split([("", 0), ("   ", 1), ("first neg", 0), ("first pos", 1), ("second neg", 0)])
    scan = scan_splits({"train": train}, NAMES)
    assert scan.empty == {"train": 2}
    assert scan.examples == {"neg": ["first neg", "second neg"], "pos": ["first pos"]}
    assert scan.label_counts["train"] == {"neg": 3, "pos": 2}


def test_a_shuffled_split_is_read_through_its_indices() -> None:
    """Carved splits are index selections over a shared table: the checks must see the selected rows only."""
    base = split([(f"text {i}", i % 2) for i in range(10)])
    train, test = base.select([0, 1, 2, 3, 4]), base.select([4, 5, 6])
    scan = scan_splits({"train": train, "test": test}, NAMES)
    assert scan.sizes == {"train": 5, "test": 3}
    assert scan.exact.leaks[0].rows == 1
    assert label_counts(test, NAMES) == {"neg": 2, "pos": 1}


def test_findings_and_warnings_name_the_counts(caplog: pytest.LogCaptureFixture) -> None:
    train = split([("a", 0), ("a", 0), ("b", 1), ("", 1)])
    test = split([("a", 1), ("c", 0)])
    scan = scan_splits({"train": train, "test": test}, NAMES)
    lines = findings(scan)
    assert lines[0].startswith("1 test rows (50.00%) have a text also in train (all exactly)")
    assert any("texts carry different labels" in line for line in lines)
    assert any(line.startswith("train repeats 1 rows") for line in lines)
    assert lines[-1] == "train has 1 empty texts"
    with caplog.at_level(logging.WARNING, logger="seqnlp.data.scan"):
        warn_about(scan)
    # empty texts are left to the loader's own warning, which names their rows
    assert [r.getMessage() for r in caplog.records] == [f"data check: {line} (details: seqnlp audit)"
                                                        for line in lines[:-1]]


def test_clean_data_has_no_findings() -> None:
    scan = scan_splits({"train": split([("a", 0), ("b", 1)]), "test": split([("c", 0)])}, NAMES)
    assert findings(scan) == [] and scan.leaked == []
