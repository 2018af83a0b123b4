"""Data loading: every source format, text/label normalization, carved splits, label names, and clear errors.

All data is written into tmp_path by the test itself; nothing is fetched from the Hub.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from seqnlp.config import DataConfig
from seqnlp.data import Splits, load_splits
from seqnlp.data.splits import prepare_split
from seqnlp.errors import DataError


def labelled_rows(n: int, labels: tuple[Any, ...] = ("neg", "pos"), prefix: str = "t") -> list[dict[str, Any]]:
    """``n`` rows with unique texts ("t0 words", ...) and labels cycling through ``labels``."""
    return [{"text": f"{prefix}{i} some words", "label": labels[i % len(labels)]} for i in range(n)]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows in the format the suffix names (csv, tsv, json, jsonl, parquet)."""
    suffix = path.suffix
    if suffix in (".csv", ".tsv"):
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:  # pragma: no cover - a mistake in the test
        raise ValueError(suffix)
    return path


def load(cfg: DataConfig, seed: int = 0, label_names: Optional[list[str]] = None) -> Splits:
    return load_splits(cfg, seed=seed, label_names=label_names)


def files_config(**files: Path) -> dict[str, Any]:
    return {"data_files": {split: str(path) for split, path in files.items()}}


def label_of(splits: Splits, split: str) -> dict[str, str]:
    """text -> label name, for every row of a prepared split."""
    data = splits.data[split]
    return {t: splits.label_names[y] for t, y in zip(data["text"], data["label"])}


def texts(splits: Splits, *names: str) -> list[str]:
    """The ``text`` values of the named splits, one after another, as a plain list."""
    return [t for name in names for t in splits.data[name]["text"]]


def labels(splits: Splits, name: str) -> list[int]:
    return list(splits.data[name]["label"])


def sizes(splits: Splits) -> dict[str, int]:
    return {name: len(split) for name, split in splits.data.items()}


# --- sources --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_each_file_format_loads(tmp_path: Path, suffix: str) -> None:
    rows = labelled_rows(40)
    path = write_rows(tmp_path / f"train{suffix}", rows)
    splits = load(DataConfig(**files_config(train=path)))
    assert splits.label_names == ["neg", "pos"]
    assert sizes(splits) == {"train": 32, "validation": 4, "test": 4}
    every = {}
    for name in splits.data:
        assert splits.data[name].column_names == ["text", "label"]
        assert isinstance(splits.data[name].features["label"], ClassLabel)
        every.update(label_of(splits, name))
    assert every == {r["text"]: r["label"] for r in rows}  # nothing lost, nothing duplicated, labels intact


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_single_file_as_dataset_path(tmp_path: Path, suffix: str) -> None:
    rows = labelled_rows(20)
    path = write_rows(tmp_path / f"all{suffix}", rows)
    splits = load(DataConfig(dataset=str(path), validation_size=0.2, test_size=0.0))
    assert sizes(splits) == {"train": 16, "validation": 4}
    assert {**label_of(splits, "train"), **label_of(splits, "validation")} == {r["text"]: r["label"] for r in rows}


def test_tsv_defaults_to_tab_and_no_quoting(tmp_path: Path) -> None:
    # Quotes opening a field would start a quoted (multi-line) field under the CSV default quoting.
    written = ['"so" he said', '"unbalanced, opening quote', 'he said "hi, there', "a, b, c", "'single'"] * 2
    path = tmp_path / "train.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{'ab'[i % 2]}\n" for i, t in enumerate(written)), encoding="utf-8")
    splits = load(DataConfig(**files_config(train=path), validation_size=0.2, test_size=0.0))
    assert sorted(texts(splits, "train", "validation")) == sorted(written)
    assert splits.label_names == ["a", "b"]


def test_tsv_defaults_also_apply_when_the_builder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("text\tlabel\n" + "".join(f"x, {i}\t{'ab'[i % 2]}\n" for i in range(10)), encoding="utf-8")
    splits = load(DataConfig(dataset="csv", **files_config(train=path), validation_size=0.2, test_size=0.0))
    assert sorted(texts(splits, "train", "validation")) == sorted(
        f"x, {i}" for i in range(10)
    )


def test_load_kwargs_override_the_format_defaults(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text;label\n" + "".join(f"a, {i};{'xy'[i % 2]}\n" for i in range(10)), encoding="utf-8")
    splits = load(DataConfig(**files_config(train=path), load_kwargs={"delimiter": ";"}, validation_size=0.2,
                             test_size=0.0))
    assert splits.label_names == ["x", "y"]
    assert "a, 0" in texts(splits, "train", "validation")


def test_saved_dataset_dict_with_classlabel(tmp_path: Path) -> None:
    features = Features({"text": Value("string"), "label": ClassLabel(names=["pos", "neg"])})  # not sorted
    train = Dataset.from_dict({"text": [f"a{i}" for i in range(20)], "label": [i % 2 for i in range(20)]},
                              features=features)
    validation = Dataset.from_dict({"text": ["v0", "v1", "v2"], "label": [1, 1, 0]}, features=features)
    DatasetDict({"train": train, "validation": validation}).save_to_disk(str(tmp_path / "saved"))
    splits = load(DataConfig(dataset=str(tmp_path / "saved"), test_size=0.0))
    assert splits.label_names == ["pos", "neg"]  # ClassLabel order, not the sorted order
    assert texts(splits, "validation") == ["v0", "v1", "v2"]  # an existing split is kept as it is
    assert labels(splits, "validation") == [1, 1, 0]
    assert label_of(splits, "train") == {f"a{i}": ["pos", "neg"][i % 2] for i in range(20)}
    assert splits.data["train"].features["label"].names == ["pos", "neg"]


def test_saved_single_dataset_becomes_the_train_split(tmp_path: Path) -> None:
    Dataset.from_dict({"text": [f"s{i}" for i in range(10)], "label": ["b", "a"] * 5}).save_to_disk(
        str(tmp_path / "one")
    )
    splits = load(DataConfig(dataset=str(tmp_path / "one"), validation_size=0.2, test_size=0.0))
    assert sizes(splits) == {"train": 8, "validation": 2}
    assert splits.label_names == ["a", "b"]


def test_embedded_sms_spam_collection() -> None:
    splits = load(DataConfig(), seed=13)
    assert splits.label_names == ["ham", "spam"]
    assert sum(sizes(splits).values()) == 5574
    assert set(splits.data) == {"train", "validation", "test"}
    for carved in ("validation", "test"):
        assert abs(len(splits.data[carved]) - 557.4) < 1  # 10% of 5,574 each
    counts = Counter(labels(splits, "train") + labels(splits, "validation") + labels(splits, "test"))
    assert counts == {0: 4827, 1: 747}  # the collection's documented class sizes
    assert all(isinstance(t, str) and t for t in texts(splits, "validation"))


# --- text columns ---------------------------------------------------------------------------------------------


def test_several_text_columns_are_joined_with_the_separator(tmp_path: Path) -> None:
    rows = [{"title": f"T{i}", "body": f"body {i}", "label": "ab"[i % 2]} for i in range(10)]
    path = write_rows(tmp_path / "train.jsonl", rows)
    splits = load(DataConfig(**files_config(train=path), text_columns=["title", "body"], text_separator=" || ",
                             validation_size=0.2, test_size=0.0))
    loaded = texts(splits, "train", "validation")
    assert sorted(loaded) == sorted(f"T{i} || body {i}" for i in range(10))
    assert splits.data["train"].column_names == ["text", "label"]  # the source columns are gone


def test_none_text_becomes_empty_string(tmp_path: Path) -> None:
    rows = [{"title": None if i < 2 else f"T{i}", "body": None if i in (0, 5) else f"b{i}", "label": "ab"[i % 2]}
            for i in range(10)]
    path = write_rows(tmp_path / "train.jsonl", rows)
    splits = load(DataConfig(**files_config(train=path), text_columns=["title"], validation_size=0.2,
                             test_size=0.0))
    loaded = texts(splits, "train", "validation")
    assert None not in loaded
    assert sorted(loaded) == sorted(["", ""] + [f"T{i}" for i in range(2, 10)])

    joined = load(DataConfig(**files_config(train=path), text_columns=["title", "body"], text_separator="|",
                             validation_size=0.2, test_size=0.0))
    loaded = texts(joined, "train", "validation")
    assert sorted(loaded) == sorted(["|", "|b1", "T5|"] + [f"T{i}|b{i}" for i in (2, 3, 4, 6, 7, 8, 9)])


def test_non_string_text_values_are_converted(tmp_path: Path) -> None:
    rows = [{"text": i * 11, "label": "ab"[i % 2]} for i in range(10)]
    path = write_rows(tmp_path / "train.jsonl", rows)
    splits = load(DataConfig(**files_config(train=path), validation_size=0.2, test_size=0.0))
    assert sorted(texts(splits, "train", "validation")) == sorted(
        str(i * 11) for i in range(10)
    )


# --- carved splits --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "validation_size, test_size, expected",
    [
        (0.1, 0.1, {"train": 160, "validation": 20, "test": 20}),
        (0.2, 0.1, {"train": 140, "validation": 40, "test": 20}),
        (0.25, 0.0, {"train": 150, "validation": 50}),
        pytest.param(
            0.15, 0.15, {"train": 140, "validation": 30, "test": 30},
        ),
        pytest.param(
            0.3, 0.2, {"train": 100, "validation": 60, "test": 40},
        ),
    ],
)
def test_carved_split_sizes(tmp_path: Path, validation_size: float, test_size: float,
                            expected: dict[str, int]) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(200))
    splits = load(DataConfig(**files_config(train=path), validation_size=validation_size, test_size=test_size))
    assert sizes(splits) == expected


def test_carved_splits_partition_train(tmp_path: Path) -> None:
    rows = labelled_rows(200)
    path = write_rows(tmp_path / "train.jsonl", rows)
    splits = load(DataConfig(**files_config(train=path)))
    parts = [set(texts(splits, name)) for name in ("train", "validation", "test")]
    assert sum(len(p) for p in parts) == 200
    assert set.union(*parts) == {r["text"] for r in rows}


def test_no_test_split_when_test_split_is_none(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(100))
    splits = load(DataConfig(**files_config(train=path), test_split=None))
    assert sizes(splits) == {"train": 90, "validation": 10}


def test_carved_splits_are_stratified(tmp_path: Path) -> None:
    # 10% positives: a plain random split of 20 rows misses them often; a stratified one holds exactly 2.
    rows = [{"text": f"t{i}", "label": "pos" if i % 10 == 0 else "neg"} for i in range(200)]
    path = write_rows(tmp_path / "train.jsonl", rows)
    for seed in (0, 1, 2):
        splits = load(DataConfig(**files_config(train=path)), seed=seed)
        assert Counter(labels(splits, "validation")) == {0: 18, 1: 2}
        assert Counter(labels(splits, "test")) == {0: 18, 1: 2}
        assert Counter(labels(splits, "train")) == {0: 144, 1: 16}


def test_carving_is_deterministic_per_seed(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(200))
    cfg = DataConfig(**files_config(train=path))
    first, again, other = load(cfg, seed=5), load(cfg, seed=5), load(cfg, seed=6)
    for name in ("train", "validation", "test"):
        assert texts(first, name) == texts(again, name)
    assert set(texts(first, "validation")) != set(texts(other, "validation"))
    assert set(texts(first, "test")) != set(texts(other, "test"))


def test_existing_validation_split_is_kept(tmp_path: Path) -> None:
    train = write_rows(tmp_path / "train.jsonl", labelled_rows(100))
    validation_rows = labelled_rows(7, prefix="v")
    validation = write_rows(tmp_path / "dev.jsonl", validation_rows)
    splits = load(DataConfig(**files_config(train=train, validation=validation)))
    assert texts(splits, "validation") == [r["text"] for r in validation_rows]  # same rows, same order
    assert sizes(splits) == {"train": 90, "validation": 7, "test": 10}  # only the test split is carved
    assert not set(texts(splits, "train")) & set(texts(splits, "validation"))


def test_custom_split_names(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(50))
    splits = load(DataConfig(data_files={"fit": str(path)}, train_split="fit", validation_split="dev",
                             test_split=None, validation_size=0.2))
    assert sizes(splits) == {"fit": 40, "dev": 10}
    assert splits.split("dev") is splits.data["dev"]
    assert splits.split("test") is None
    assert splits.split(None) is None


def test_max_train_samples(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(200))
    full = load(DataConfig(**files_config(train=path)), seed=3)
    small = load(DataConfig(**files_config(train=path), max_train_samples=30), seed=3)
    again = load(DataConfig(**files_config(train=path), max_train_samples=30), seed=3)
    assert sizes(small) == {"train": 30, "validation": 20, "test": 20}
    assert set(texts(small, "train")) < set(texts(full, "train"))
    assert texts(small, "validation") == texts(full, "validation")  # carved before subsetting
    assert texts(small, "train") == texts(again, "train")
    assert small.data["train"]._indices is None  # flattened: no indices mapping left behind


def test_max_train_samples_is_a_seeded_random_subset(tmp_path: Path) -> None:
    rows = labelled_rows(100)
    files = files_config(train=write_rows(tmp_path / "train.jsonl", rows),
                         validation=write_rows(tmp_path / "dev.jsonl", labelled_rows(4, prefix="v")),
                         test=write_rows(tmp_path / "test.jsonl", labelled_rows(4, prefix="x")))
    cfg = DataConfig(**files, max_train_samples=10)  # nothing carved: train is still in file order
    first, again, other = load(cfg, seed=1), load(cfg, seed=1), load(cfg, seed=2)
    assert len(first.data["train"]) == 10
    assert set(texts(first, "train")) <= {r["text"] for r in rows}
    assert texts(first, "train") == texts(again, "train")
    assert set(texts(first, "train")) != set(texts(other, "train"))
    assert set(texts(first, "train")) != {r["text"] for r in rows[:10]}  # not just the head of the file


def test_max_train_samples_larger_than_train_is_a_no_op(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(50))
    splits = load(DataConfig(**files_config(train=path), max_train_samples=1000))
    assert sizes(splits) == {"train": 40, "validation": 5, "test": 5}


# --- label names ----------------------------------------------------------------------------------------------


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


def test_unlabeled_split_keeps_only_text(tmp_path: Path) -> None:
    DatasetDict({
        "train": Dataset.from_dict({"text": [f"t{i}" for i in range(20)], "label": ["neg", "pos"] * 10}),
        "test": Dataset.from_dict({"text": [f"u{i}" for i in range(4)]}),
    }).save_to_disk(str(tmp_path / "saved"))
    splits = load(DataConfig(dataset=str(tmp_path / "saved")))
    assert splits.data["test"].column_names == ["text"]
    assert texts(splits, "test") == ["u0", "u1", "u2", "u3"]
    assert splits.label_names == ["neg", "pos"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_unlabeled_test_file_keeps_only_text(tmp_path: Path, suffix: str) -> None:
    train = write_rows(tmp_path / f"train{suffix}", labelled_rows(20))
    test = write_rows(tmp_path / f"test{suffix}", [{"text": f"u{i}"} for i in range(4)])
    splits = load(DataConfig(**files_config(train=train, test=test)))
    assert splits.data["test"].column_names == ["text"]
    assert texts(splits, "test") == ["u0", "u1", "u2", "u3"]


# --- errors ---------------------------------------------------------------------------------------------------


def test_missing_text_column_lists_existing_columns(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", [{"sentence": f"s{i}", "label": "ab"[i % 2]} for i in range(10)])
    with pytest.raises(DataError) as info:
        load(DataConfig(**files_config(train=path)))
    message = str(info.value)
    assert "text column 'text'" in message
    assert "split 'train'" in message
    assert "columns that exist: sentence, label" in message


def test_missing_second_text_column(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(10))
    with pytest.raises(DataError, match=r"text column 'body' not found .* columns that exist: text, label"):
        load(DataConfig(**files_config(train=path), text_columns=["text", "body"]))


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


def test_empty_split_is_rejected_by_prepare_split() -> None:
    empty = Dataset.from_dict({"text": [], "label": []},
                              features=Features({"text": Value("string"), "label": Value("string")}))
    with pytest.raises(DataError, match=r"split 'test' is empty"):
        prepare_split(empty, DataConfig(), ["neg", "pos"], split_name="test")


def test_empty_file_split(tmp_path: Path) -> None:
    train = write_rows(tmp_path / "train.csv", labelled_rows(20))
    test = tmp_path / "test.csv"
    test.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="test"):
        load(DataConfig(**files_config(train=train, test=test)))


def test_saved_dataset_with_an_empty_split(tmp_path: Path) -> None:
    features = Features({"text": Value("string"), "label": ClassLabel(names=["a", "b"])})
    DatasetDict({
        "train": Dataset.from_dict({"text": ["x", "y", "z", "w"], "label": [0, 1, 0, 1]}, features=features),
        "test": Dataset.from_dict({"text": [], "label": []}, features=features),
    }).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError):
        load(DataConfig(dataset=str(tmp_path / "saved")))


def test_missing_train_split_lists_existing_splits(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", labelled_rows(10))
    with pytest.raises(DataError, match=r"split 'train' not found .*splits that exist: training"):
        load(DataConfig(data_files={"training": str(path)}))


def test_nonexistent_data_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"data file for split 'train' does not exist") as info:
        load(DataConfig(data_files={"train": str(missing)}))
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("name", ["nope.csv", "nope_dir", "sub/dir/nope"])
def test_nonexistent_dataset_path(tmp_path: Path, name: str) -> None:
    missing = tmp_path / name
    with pytest.raises(DataError, match="does not exist") as info:
        load(DataConfig(dataset=str(missing)))
    assert str(missing) in str(info.value)


def test_relative_path_that_does_not_exist_is_not_sent_to_the_hub() -> None:
    with pytest.raises(DataError, match=r"dataset path './no/such/data.csv' does not exist"):
        load(DataConfig(dataset="./no/such/data.csv"))


def test_unknown_file_format(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("hello\n")
    with pytest.raises(DataError, match=r"cannot tell the format of \.txt files"):
        load(DataConfig(data_files={"train": str(path)}))


def test_dataset_name_with_data_files_must_be_a_format(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.csv", labelled_rows(10))
    with pytest.raises(DataError, match="must be empty or a file format"):
        load(DataConfig(dataset="imdb", data_files={"train": str(path)}))


@pytest.mark.parametrize("nested", ["list", "mapping"])
def test_nested_labels_are_rejected(tmp_path: Path, nested: str) -> None:
    rows = [{"text": f"t{i}", "label": ["a", "b"][: 1 + i % 2] if nested == "list" else {"k": "ab"[i % 2]}}
            for i in range(6)]
    path = write_rows(tmp_path / "train.jsonl", rows)
    expected = "holds lists of labels; set data.multi_label" if nested == "list" else "holds mappings"
    with pytest.raises(DataError, match=expected):
        load(DataConfig(**files_config(train=path)))


def test_datasets_is_offline() -> None:
    # conftest turns the Hub off before datasets is imported; a test run must never reach the network.
    assert datasets.config.HF_HUB_OFFLINE
