"""Label names (sorted values, ClassLabel order, given names) and the map from a label column to indices, with
errors that name the split, row, column and value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from seqnlp.config import DataConfig
from seqnlp.errors import DataError
from tests.data.helpers import files_config, label_of, labelled_rows, labels, load, texts, write_rows


def test_string_labels_are_sorted(tmp_path: Path) -> None:
    rows = labelled_rows(30, labels=("cherry", "apple", "banana"))
    path = write_rows(tmp_path / "train.jsonl", rows)
    splits = load(DataConfig(**files_config(train=path), validation_size=0.2, test_size=0.0))
    assert splits.label_names == ["apple", "banana", "cherry"]
    assert {**label_of(splits, "train"), **label_of(splits, "validation")} == {r["text"]: r["label"] for r in rows}


def test_int_labels_sort_numerically(tmp_path: Path) -> None:
    rows = labelled_rows(30, labels=(2, 10, 1))
    path = write_rows(tmp_path / "train.jsonl", rows)
    splits = load(DataConfig(**files_config(train=path), validation_size=0.2, test_size=0.0))
    assert splits.label_names == ["1", "2", "10"]  # not the string order 1, 10, 2
    expected = {r["text"]: str(r["label"]) for r in rows}
    for name in ("train", "validation"):
        for text, label in label_of(splits, name).items():
            assert label == expected[text]


def test_int_labels_with_label_names(tmp_path: Path) -> None:
    rows = labelled_rows(30, labels=(0, 1, 2))
    path = write_rows(tmp_path / "train.jsonl", rows)
    names = ["zeta", "alpha", "mid"]  # deliberately unsorted: index i must map to names[i]
    splits = load(DataConfig(**files_config(train=path), label_names=names, validation_size=0.2, test_size=0.0))
    assert splits.label_names == names
    expected = {r["text"]: names[r["label"]] for r in rows}
    for name in ("train", "validation"):
        for text, label in label_of(splits, name).items():
            assert label == expected[text]


def test_int_label_outside_label_names(tmp_path: Path) -> None:
    rows = labelled_rows(6, labels=(0, 1))
    rows[4]["label"] = 7
    path = write_rows(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError) as info:
        load(DataConfig(**files_config(train=path), label_names=["a", "b"]))
    message = str(info.value)
    assert "split 'train', row 4" in message
    assert "label 7" in message
    assert "a, b" in message


def test_given_label_names_fix_the_order(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(20))
    splits = load(DataConfig(**files_config(train=path), validation_size=0.2, test_size=0.0),
                  label_names=["pos", "neg"])
    assert splits.label_names == ["pos", "neg"]
    assert splits.data["train"].features["label"].names == ["pos", "neg"]
    index = {"pos": 0, "neg": 1}
    expected = {r["text"]: index[r["label"]] for r in labelled_rows(20)}
    for name in ("train", "validation"):
        assert labels(splits, name) == [expected[t] for t in texts(splits, name)]


def test_unknown_label_with_fixed_label_names_names_row_and_value(tmp_path: Path) -> None:
    train = write_rows(tmp_path / "train.jsonl", labelled_rows(20))
    test_rows = labelled_rows(5, prefix="x")
    test_rows[3]["label"] = "maybe"
    test = write_rows(tmp_path / "test.jsonl", test_rows)
    with pytest.raises(DataError) as info:
        load(DataConfig(**files_config(train=train, test=test)), label_names=["neg", "pos"])
    message = str(info.value)
    assert "split 'test', row 3" in message
    assert "'maybe'" in message
    assert "column 'label'" in message
    assert "neg, pos" in message


def test_unknown_label_in_test_split_with_inferred_names(tmp_path: Path) -> None:
    train = write_rows(tmp_path / "train.jsonl", labelled_rows(20))
    test_rows = labelled_rows(5, prefix="x")
    test_rows[0]["label"] = "other"
    test = write_rows(tmp_path / "test.jsonl", test_rows)
    with pytest.raises(DataError, match=r"split 'test', row 0: label 'other'"):
        load(DataConfig(**files_config(train=train, test=test)))


def test_missing_label_column(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(10))
    with pytest.raises(DataError) as info:
        load(DataConfig(**files_config(train=path), label_column="category"))
    assert "label column 'category'" in str(info.value)
    assert "columns that exist: text, label" in str(info.value)


def test_single_class_train_split(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(10, labels=("pos",)))
    with pytest.raises(DataError, match=r"label column 'label' of split 'train' has a single class \(pos\)"):
        load(DataConfig(**files_config(train=path)))


@pytest.mark.parametrize("nested", ["list", "mapping"])
def test_nested_labels_are_rejected(tmp_path: Path, nested: str) -> None:
    rows = [{"text": f"t{i}", "label": ["a", "b"][: 1 + i % 2] if nested == "list" else {"k": "ab"[i % 2]}}
            for i in range(6)]
    path = write_rows(tmp_path / "train.jsonl", rows)
    expected = "holds lists of labels; set data.multi_label" if nested == "list" else "holds a mapping at row 0"
    with pytest.raises(DataError, match=expected):
        load(DataConfig(**files_config(train=path)))


# --- labels that are not classes (issue 14, items 12 and 13) ------------------------------------------------------


def test_continuous_float_labels_are_refused_as_regression(tmp_path: Path) -> None:
    """They trained as 697 classes and ended at accuracy 0.0000 with exit 0."""
    rows = [{"text": f"t{i} words", "label": 0.173 * i + 0.01} for i in range(300)]
    path = write_rows(tmp_path / "train.csv", rows)
    with pytest.raises(DataError) as info:
        load(DataConfig(**files_config(train=path)))
    assert str(info.value) == ("label column 'label' of split 'train' holds numbers that are not whole (0.01, 0.183, "
                               "0.356, ...): a continuous target; seqnlp classifies, regression is not supported: bin "
                               "the values into classes")


def test_a_label_for_nearly_every_row_is_refused(tmp_path: Path) -> None:
    rows = [{"text": f"t{i} words", "label": f"id-{i * 2 // 3}"} for i in range(300)]  # 200 values in 300 rows
    path = write_rows(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError, match="has 200 distinct values in 300 rows, nearly one per example: an id or a "
                                        "continuous target, not classes; seqnlp classifies, regression is not "
                                        "supported"):
        load(DataConfig(**files_config(train=path)))


def test_whole_number_floats_and_many_small_classes_are_fine(tmp_path: Path) -> None:
    rows = [{"text": f"t{i} words", "label": float(i % 3)} for i in range(60)]
    splits = load(DataConfig(**files_config(train=write_rows(tmp_path / "train.csv", rows)), test_size=0.0))
    assert splits.label_names == ["0.0", "1.0", "2.0"]
    rows = [{"text": f"t{i} words", "label": f"c{i % 40}"} for i in range(60)]  # 40 classes: under the floor of 50
    splits = load(DataConfig(**files_config(train=write_rows(tmp_path / "many.jsonl", rows)), validation_size=0.5,
                             test_size=0.0))
    assert len(splits.label_names) == 40


def test_a_mixed_type_label_column_says_so(tmp_path: Path) -> None:
    """It was reported as "holds mappings or nested lists"."""
    rows = [{"text": f"t{i}", "label": i % 2 if i < 10 else "ab"[i % 2]} for i in range(20)]
    path = write_rows(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError) as info:
        load(DataConfig(**files_config(train=path)))
    message = str(info.value)
    if "cannot load" in message:  # datasets < 5 cannot read the file at all; its own message then says why
        pytest.skip(f"this datasets version refuses the file itself: {message}")
    assert message == ("label column 'label' of split 'train' mixes types: a number at row 0 (0), a string at row 10 "
                       "('a'); give every label the same type (e.g. all strings)")


def test_missing_float_labels_are_empty_values(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{'' if i == 5 else i % 2}\n" for i in range(20)), encoding="utf-8")
    with pytest.raises(DataError, match="label column 'label' of split 'train' has empty values"):
        load(DataConfig(**files_config(train=path)))
