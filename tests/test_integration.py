"""Real data through seqnlp: SST-2 and IMDB from the benchmark copy beside the repository.

The data lives in ``../shared/data`` (see its README for counts and checksums). It is absent on a user's machine,
so every test here skips cleanly without it. Loading is fast; the one training run is marked slow.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from seqnlp.config import DataConfig, load_config
from seqnlp.data import load_raw, load_splits
from seqnlp.data.labels import infer_label_names

DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SST2 = DATA_ROOT / "sst2"
IMDB = DATA_ROOT / "imdb"

SST2_LABELS = ["negative", "positive"]  # index 0 / 1, as in the GLUE release


def require(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"benchmark data not available: {', '.join(missing)}")


def sst2_data(**updates: object) -> DataConfig:
    """SST-2 train.tsv and dev.tsv (as validation): TSV without quoting, ``sentence`` and integer ``label``."""
    require(SST2 / "train.tsv", SST2 / "dev.tsv")
    fields = {
        "data_files": {"train": str(SST2 / "train.tsv"), "validation": str(SST2 / "dev.tsv")},
        "text_columns": ["sentence"],
        "label_names": SST2_LABELS,
        "test_split": None,  # GLUE hides the test labels: dev is the evaluation split
        "test_size": 0.0,
    }
    fields.update(updates)
    return DataConfig(**fields)  # type: ignore[arg-type]


def test_sst2_loads_with_label_names_and_row_counts() -> None:
    splits = load_splits(sst2_data(max_train_samples=300), seed=13)
    assert splits.label_names == SST2_LABELS
    assert set(splits.data) == {"train", "validation"}
    assert len(splits.data["train"]) == 300
    dev = splits.data["validation"]
    assert len(dev) == 872  # one row per line: the TSV is read without quoting
    assert dev.features["label"].names == SST2_LABELS
    assert Counter(dev["label"]) == {0: 428, 1: 444}  # the README's counts, so 0 -> negative, 1 -> positive
    for name, split in splits.data.items():
        texts = split["text"]
        assert all(isinstance(t, str) and t.strip() for t in texts), f"an empty text in {name}"
    assert dev[0]["text"].startswith("it 's a charming and often affecting journey")
    assert dev[0]["label"] == 1


def test_sst2_subset_is_seeded() -> None:
    first = load_splits(sst2_data(max_train_samples=50), seed=5).data["train"]["text"]
    again = load_splits(sst2_data(max_train_samples=50), seed=5).data["train"]["text"]
    other = load_splits(sst2_data(max_train_samples=50), seed=6).data["train"]["text"]
    assert first == again
    assert first != other


def test_imdb_test_csv_as_a_data_file() -> None:
    require(IMDB / "test.csv")
    cfg = DataConfig(data_files={"test": str(IMDB / "test.csv")}, train_split="test")
    raw = load_raw(cfg)
    assert raw["test"].num_rows == 25_000
    assert raw["test"].column_names == ["id", "rating", "label", "text"]
    names = infer_label_names(raw["test"], cfg)
    assert names == ["neg", "pos"]

    # As `seqnlp evaluate --data-files test=...` loads it: the run's label names, no split carved.
    splits = load_splits(DataConfig(data_files={"test": str(IMDB / "test.csv")}), seed=0, label_names=names)
    assert set(splits.data) == {"test"}
    test = splits.data["test"]
    assert len(test) == 25_000
    assert test.features["label"].names == ["neg", "pos"]
    assert Counter(test["label"]) == {0: 12_500, 1: 12_500}
    assert all(t.strip() for t in test["text"])


@pytest.mark.slow
def test_short_sst2_training_run_learns(tmp_path: Path) -> None:
    import torch

    from seqnlp.training import train

    data = sst2_data(max_train_samples=2_000)
    config = load_config(updates={
        "data.data_files": data.data_files,
        "data.text_columns": data.text_columns,
        "data.label_names": data.label_names,
        "data.test_split": None,
        "data.test_size": 0.0,
        "data.max_train_samples": 2_000,
        "tokenizer.min_frequency": 1,
        "tokenizer.max_length": 64,
        "model.embedding_dim": 64,
        "model.hidden_size": 64,
        "model.dropout": 0.0,
        "model.embedding_dropout": 0.0,
        "train.epochs": 1,
        "train.batch_size": 16,
        "train.lr": 0.01,
        "train.device": "cpu",
        "seed": 13,
        "output_dir": str(tmp_path / "sst2"),
    })
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small model on a busy machine: one thread is faster
    try:
        result = train(config, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert result.best_epoch == 1
    assert result.test is None
    assert result.validation["num_examples"] == 872
    assert result.validation["accuracy"] > 0.6, result.validation["accuracy"]
    assert (tmp_path / "sst2" / "model.safetensors").is_file()
