"""Prepared splits: text columns joined into ``text``, splits carved from train (seeded, stratified), subsets of
train, unlabeled splits, empty ones; and ``only``, which prepares just the splits asked for.

All data is written into tmp_path by the test itself; nothing is fetched from the Hub.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from seqnlp.config import DataConfig
from seqnlp.data import split_names
from seqnlp.data.splits import prepare_split
from seqnlp.errors import DataError
from tests.data.helpers import files_config, labelled_rows, labels, load, sizes, texts, write_rows


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


def test_non_string_text_values_are_refused(tmp_path: Path) -> None:
    """Issue 14: numbers in a text column would train on their repr; the column and its type are named."""
    rows = [{"text": i * 11, "label": "ab"[i % 2]} for i in range(10)]
    path = write_rows(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError, match="text column 'text' of split 'train' holds int64 values, not text"):
        load(DataConfig(**files_config(train=path), validation_size=0.2, test_size=0.0))


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


def test_existing_validation_split_is_kept_and_no_test_is_carved_beside_it(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A dev file is the evaluation split: a test carved from train beside it would measure something else (on
    SST-2, whose train holds phrases of the same sentences, such a "test" scored 7 points above dev). The run
    says so (issue 17)."""
    train = write_rows(tmp_path / "train.jsonl", labelled_rows(100))
    validation_rows = labelled_rows(7, prefix="v")
    validation = write_rows(tmp_path / "dev.jsonl", validation_rows)
    cfg = DataConfig(**files_config(train=train, validation=validation))
    with caplog.at_level(logging.INFO, logger="seqnlp"):
        splits = load(cfg)
    assert texts(splits, "validation") == [r["text"] for r in validation_rows]  # same rows, same order
    assert sizes(splits) == {"train": 100, "validation": 7}  # nothing carved
    assert splits.carved == {} and split_names(cfg) == ["train", "validation"]
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and warning[0].startswith("no test split: the data has its own validation split")
    assert "--data-files test=PATH" in warning[0]


def test_carved_splits_are_named_as_carved(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = write_rows(tmp_path / "train.jsonl", labelled_rows(100))
    with caplog.at_level(logging.INFO, logger="seqnlp"):
        splits = load(DataConfig(**files_config(train=train), validation_size=0.1, test_size=0.125))
    assert splits.carved == {"validation": "carved from train, 10%", "test": "carved from train, 12.5%"}
    assert "split test, carved from train, 12.5%: 12 examples" in caplog.text
    test = write_rows(tmp_path / "test.jsonl", labelled_rows(5, prefix="x"))
    assert load(DataConfig(**files_config(train=train, test=test))).carved == {"validation": "carved from train, 10%"}


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


# --- only: the splits inference needs -----------------------------------------------------------------------------


@pytest.fixture
def prepared_splits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every split ``prepare_split`` prepares from now on, in order."""
    from seqnlp.data import splits as splits_module

    names: list[str] = []
    real = splits_module.prepare_split

    def counting(split: Dataset, cfg: DataConfig, label_names: list[str], split_name: str) -> Dataset:
        names.append(split_name)
        return real(split, cfg, label_names, split_name=split_name)

    monkeypatch.setattr(splits_module, "prepare_split", counting)
    return names


def test_only_an_own_split_is_prepared_without_train(tmp_path: Path, prepared_splits: list[str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    cfg = DataConfig(**files_config(train=write_rows(tmp_path / "train.csv", labelled_rows(100)),
                                    test=write_rows(tmp_path / "test.csv", labelled_rows(12, prefix="x"))))
    with caplog.at_level(logging.INFO, logger="seqnlp"):
        test = load(cfg, label_names=["neg", "pos"], only=["test"])
    assert prepared_splits == ["test"]  # train is neither prepared nor carved
    assert "split test: 12 examples" in caplog.text and "split train" not in caplog.text
    assert list(test.data) == ["test"] and test.available == ["train", "test", "validation"]
    assert texts(test, "test") == [r["text"] for r in labelled_rows(12, prefix="x")]

    inferred = load(cfg, only=["test"])  # no label names given: train is read for them, still not prepared
    assert inferred.label_names == ["neg", "pos"] and prepared_splits == ["test", "test"]


@pytest.mark.parametrize("files, wanted", [
    (("train",), "validation"),
    (("train",), "test"),
    (("train",), "train"),
    (("train", "test"), "validation"),
], ids=["validation-carved-first", "test-carved-after-validation", "train-after-carving", "validation-beside-test"])
def test_only_a_carved_split_is_the_one_training_carved(tmp_path: Path, files: tuple[str, ...], wanted: str) -> None:
    abc = ("a", "b", "c")
    rows = {"train": labelled_rows(200, labels=abc), "test": labelled_rows(9, labels=abc, prefix="v")}
    cfg = DataConfig(**files_config(**{name: write_rows(tmp_path / f"{name}.jsonl", rows[name]) for name in files}),
                     validation_size=0.15, test_size=0.1)
    full = load(cfg, seed=7)  # what training loads
    one = load(cfg, seed=7, label_names=full.label_names, only=[wanted])
    assert list(one.data) == [wanted] and one.available == list(full.data)
    assert texts(one, wanted) == texts(full, wanted)  # the same examples, in the same order
    assert labels(one, wanted) == labels(full, wanted)


def test_only_leaves_out_a_split_the_data_does_not_have(tmp_path: Path, prepared_splits: list[str]) -> None:
    cfg = DataConfig(**files_config(train=write_rows(tmp_path / "train.csv", labelled_rows(20))), test_size=0.0)
    splits = load(cfg, label_names=["neg", "pos"], only=["test"])
    assert dict(splits.data) == {} and splits.available == ["train", "validation"]
    assert prepared_splits == []


def test_split_names_lists_own_then_carved_splits_without_preparing(tmp_path: Path,
                                                                    prepared_splits: list[str]) -> None:
    train, test = write_rows(tmp_path / "train.csv", labelled_rows(20)), write_rows(tmp_path / "t.csv", labelled_rows(4))
    assert split_names(DataConfig(**files_config(train=train, test=test))) == ["train", "test", "validation"]
    assert split_names(DataConfig(**files_config(train=train))) == ["train", "validation", "test"]
    assert split_names(DataConfig(**files_config(train=train), test_split=None)) == ["train", "validation"]
    assert split_names(DataConfig(**files_config(test=test))) == ["test"]  # nothing to carve from
    assert split_names(DataConfig()) == ["train", "validation", "test"]  # the embedded data: train only
    assert prepared_splits == []


def test_a_run_prepares_only_the_splits_it_uses(tmp_path: Path, prepared_splits: list[str]) -> None:
    """Hub data sets bring splits a run does not use, with -1 labels (IMDB's "unsupervised", GLUE's test): they
    are left out, and a ClassLabel split of -1 alone is unlabelled."""
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    rows = {"text": [f"t{i} words" for i in range(40)], "label": [i % 2 for i in range(40)]}
    hidden = {"text": [f"h{i}" for i in range(6)], "label": [-1] * 6}
    DatasetDict({"train": Dataset.from_dict(rows, features=features),
                 "unsupervised": Dataset.from_dict(hidden, features=features),
                 "test": Dataset.from_dict(hidden, features=features)}).save_to_disk(str(tmp_path / "hub"))
    splits = load(DataConfig(dataset=str(tmp_path / "hub")))
    assert sorted(prepared_splits) == ["test", "train"]
    assert set(splits.data) == {"train", "validation", "test"}
    assert splits.data["test"].column_names == ["text"]  # unlabelled: evaluated by no one, predicted on
