"""data.json: file hashes, content fingerprints, the Hub id of the data, and the cheap checks as training runs them."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from seqnlp.config import DataConfig
from seqnlp.data.provenance import SMS_SPAM_HUB_ID, content_sha256, file_hashes, hub_dataset_id, record_data
from seqnlp.data.sources import SMS_SPAM_FILE
from tests.data.helpers import files_config, labelled_rows, load, write_rows


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("settings", "expected"), [
    ({}, SMS_SPAM_HUB_ID),
    ({"dataset": "imdb"}, "imdb"),
    ({"dataset": "stanfordnlp/imdb", "revision": "main"}, "stanfordnlp/imdb"),
    ({"dataset": "glue", "config_name": "sst2"}, "glue"),
    ({"dataset": "synthetic:marker?distance=5"}, None),
    ({"dataset": "csv", "data_files": {"train": "a.csv"}}, None),
    ({"dataset": "./data/x.csv"}, None),
    ({"dataset": "/abs/path"}, None),
])
def test_hub_dataset_id(settings: dict, expected: str | None) -> None:
    assert hub_dataset_id(DataConfig(**settings)) == expected


def test_a_local_directory_is_not_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mydata").mkdir()
    monkeypatch.chdir(tmp_path)
    assert hub_dataset_id(DataConfig(dataset="mydata")) is None


def test_file_hashes_of_data_files_and_globs(tmp_path: Path) -> None:
    a = write_rows(tmp_path / "a.csv", labelled_rows(4))
    b1 = write_rows(tmp_path / "b1.csv", labelled_rows(3, prefix="x"))
    b2 = write_rows(tmp_path / "b2.csv", labelled_rows(3, prefix="y"))
    records = file_hashes(DataConfig(data_files={"train": str(a), "test": str(tmp_path / "b*.csv")}))
    assert [(r["split"], Path(r["path"]).name, r["bytes"], r["sha256"]) for r in records] == [
        ("train", "a.csv", a.stat().st_size, sha256(a)),
        ("test", "b1.csv", b1.stat().st_size, sha256(b1)),
        ("test", "b2.csv", b2.stat().st_size, sha256(b2)),
    ]


def test_file_hashes_of_the_embedded_data_and_of_a_directory(tmp_path: Path) -> None:
    [record] = file_hashes(DataConfig())
    assert record["sha256"] == sha256(SMS_SPAM_FILE) and record["path"].endswith("SMSSpamCollection")
    (tmp_path / "d").mkdir()
    write_rows(tmp_path / "d" / "train.csv", labelled_rows(2))
    (tmp_path / "d" / ".hidden").write_text("x")
    records = file_hashes(DataConfig(dataset=str(tmp_path / "d")))
    assert [Path(r["path"]).name for r in records] == ["train.csv"]


def test_content_fingerprint_follows_the_content_not_the_format(tmp_path: Path) -> None:
    rows = labelled_rows(6)
    csv = load(DataConfig(**files_config(train=write_rows(tmp_path / "t.csv", rows)), test_size=0))
    jsonl = load(DataConfig(**files_config(train=write_rows(tmp_path / "t.jsonl", rows)), test_size=0))
    assert content_sha256(csv.data["train"]) == content_sha256(jsonl.data["train"])
    rows[0]["label"] = "pos" if rows[0]["label"] == "neg" else "neg"
    changed = load(DataConfig(**files_config(train=write_rows(tmp_path / "u.csv", rows)), test_size=0))
    assert content_sha256(changed.data["train"]) != content_sha256(csv.data["train"])


def test_record_data_warns_and_describes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = labelled_rows(20)
    test = labelled_rows(3) + [{"text": "T0 some words!", "label": "neg"}]  # every test text is in train
    cfg = DataConfig(**files_config(train=write_rows(tmp_path / "train.csv", train),
                                    test=write_rows(tmp_path / "test.csv", test)), validation_size=0.25)
    splits = load(cfg)
    with caplog.at_level(logging.WARNING, logger="seqnlp.data.scan"):
        record = record_data(cfg, splits)
    assert any("test rows" in r.getMessage() and "also in" in r.getMessage() for r in caplog.records)
    assert list(record["splits"]) == ["train", "validation", "test"]
    assert record["splits"]["test"]["examples"] == 4 and record["splits"]["test"]["label_counts"] == {"neg": 3, "pos": 1}
    assert record["hub_id"] is None and record["label_names"] == ["neg", "pos"]
    assert [f["sha256"] for f in record["files"]] == [sha256(tmp_path / "train.csv"), sha256(tmp_path / "test.csv")]
    assert set(record["examples"]) == {"neg", "pos"}
    assert record["checks"]["findings"] and record["checks"]["normalized"]["leaks"]
