"""Where examples come from: every source format, the embedded data, saved datasets, and clear errors for data
that cannot be found or read; reading only the files of the splits asked for.

All data is written into tmp_path by the test itself; nothing is fetched from the Hub.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from seqnlp.config import DataConfig, load_config
from seqnlp.data import load_raw
from seqnlp.data.sources import own_split_names
from seqnlp.errors import DataError
from tests.data.helpers import files_config, label_of, labelled_rows, labels, load, sizes, texts, write_rows


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


def test_nonexistent_data_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"data file for split 'train' does not exist") as info:
        load(DataConfig(data_files={"train": str(missing)}))
    assert str(missing) in str(info.value)


def test_a_missing_file_says_what_it_was_resolved_against(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: a recipe's relative path failed with only the path; now the message says where it was looked for
    and how to point at another copy."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "run.yaml").write_text("data:\n  data_files: {train: ../data/train.tsv}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        load(load_config("configs/run.yaml").data)
    assert str(info.value) == (
        f"data file for split 'train' does not exist: {tmp_path / 'data' / 'train.tsv'} (configs/run.yaml names it as "
        "../data/train.tsv, read from that file's folder, configs/); point at your copy with --data-files train=PATH")
    with pytest.raises(DataError, match=r"does not exist: mine.tsv \(relative to the current directory, .*\); point at"):
        load(DataConfig(data_files={"train": "mine.tsv"}))


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
    with pytest.raises(DataError, match=r"cannot tell the format of .*train\.txt from the suffix \(\.txt\)"):
        load(DataConfig(data_files={"train": str(path)}))


def test_dataset_name_with_data_files_must_be_a_format(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.csv", labelled_rows(10))
    with pytest.raises(DataError, match="must be empty or a file format"):
        load(DataConfig(dataset="imdb", data_files={"train": str(path)}))


def test_datasets_is_offline() -> None:
    # conftest turns the Hub off before datasets is imported; a test run must never reach the network.
    assert datasets.config.HF_HUB_OFFLINE


# --- reading only some splits -------------------------------------------------------------------------------------


def test_load_raw_reads_only_the_files_of_the_splits_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqnlp.data import sources

    read: list[Any] = []
    real = sources._load
    monkeypatch.setattr(sources, "_load", lambda path, **kwargs: (read.append(kwargs.get("data_files")),
                                                                  real(path, **kwargs))[1])
    test = write_rows(tmp_path / "test.csv", labelled_rows(6, prefix="x"))
    cfg = DataConfig(**files_config(train=tmp_path / "not-there.csv", test=test))  # train is never looked at
    raw = load_raw(cfg, splits=["test"])
    assert list(raw) == ["test"] and raw["test"]["text"] == [r["text"] for r in labelled_rows(6, prefix="x")]
    assert read == [{"test": [str(test)]}]
    assert dict(load_raw(cfg, splits=["validation"])) == {} and len(read) == 1  # no file of it: nothing read


def test_own_split_names_come_from_the_config_when_it_tells_them(tmp_path: Path) -> None:
    features = Features({"text": Value("string"), "label": ClassLabel(names=["a", "b"])})
    part = Dataset.from_dict({"text": ["x", "y"], "label": [0, 1]}, features=features)
    DatasetDict({"train": part, "dev": part}).save_to_disk(str(tmp_path / "saved"))
    part.save_to_disk(str(tmp_path / "one"))
    assert own_split_names(DataConfig()) == ["train"]
    assert own_split_names(DataConfig(data_files={"train": "a.csv", "test": ["b.csv", "c.csv"]})) == ["train", "test"]
    single = write_rows(tmp_path / "file.csv", labelled_rows(4))
    assert own_split_names(DataConfig(dataset=str(single), train_split="fit")) == ["fit"]
    assert own_split_names(DataConfig(dataset="synthetic:marker?distance=3")) == ["train", "validation", "test"]
    assert own_split_names(DataConfig(dataset=str(tmp_path / "saved"))) == ["train", "dev"]
    assert own_split_names(DataConfig(dataset=str(tmp_path / "one"))) == ["train"]
    assert own_split_names(DataConfig(dataset="some/hub-dataset")) is None  # only loading it tells


def test_a_hub_dataset_that_cannot_load_says_how_to_use_local_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipe's Hub data set fails (online: a typo, a gated set); the message names the way to give local copies
    (issue 17). Offline, the no-network message does the same, at once (issue 14, tests/data/test_hub.py)."""
    from seqnlp.data import sources

    def failing(*args: Any, **kwargs: Any) -> None:
        raise FileNotFoundError("Dataset nyu-mll/glue is not cached")

    monkeypatch.setattr(datasets, "load_dataset", failing)
    monkeypatch.setattr(sources, "offline_reason", lambda: None)  # as if online
    with pytest.raises(DataError) as info:
        load(DataConfig(dataset="nyu-mll/glue", config_name="sst2"))
    assert str(info.value) == ("Hub dataset 'nyu-mll/glue' not found: Dataset nyu-mll/glue is not cached; without the "
                               "Hub, give local files per split: --data-files train=PATH (and validation=PATH, test=PATH)")


