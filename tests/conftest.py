"""Shared fixtures: tiny in-memory data, tiny configs, and one trained run reused across tests.

Tests never touch the network or ../shared: the Hugging Face caches point into a temporary directory and
the Hub is switched off before datasets is imported.
"""

from __future__ import annotations

import csv
import os
import random
import tempfile
from pathlib import Path
from typing import Callable, Iterator

_CACHE = tempfile.mkdtemp(prefix="seqnlp-tests-")
os.environ.setdefault("HF_HOME", _CACHE)
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE, "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from seqnlp.config import Config, load_config  # noqa: E402

FILLER = "the a movie film plot story acting scene was is it this and with very quite really some".split()


def toy_rows(n: int = 200, seed: int = 0) -> list[dict[str, str]]:
    """A toy task an RNN must learn to 100%: the label is which cue word ("great"/"awful") the text holds."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.choices(FILLER, k=rng.randint(2, 12))
        words.insert(rng.randint(0, len(words)), "great" if label == "pos" else "awful")
        rows.append({"text": " ".join(words), "label": label})
    return rows


CUES = {"goal": "sports", "vote": "politics", "rain": "weather"}  # cue word -> label, for the multi-label toy


def multilabel_rows(n: int = 300, seed: int = 0) -> list[dict[str, object]]:
    """A toy multi-label task: each cue word appears with probability 0.4 and brings its label; a text may
    have no label, one or several. A recurrent model must learn it almost perfectly."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for _ in range(n):
        words = rng.choices(FILLER, k=rng.randint(2, 10))
        labels = []
        for cue, label in CUES.items():
            if rng.random() < 0.4:
                words.insert(rng.randint(0, len(words)), cue)
                labels.append(label)
        rows.append({"text": " ".join(words), "labels": labels})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def toy_csv(tmp_path: Path) -> dict[str, Path]:
    """train.csv (200 rows) and test.csv (40 rows) of the toy task, with text and string label columns."""
    return {
        "train": write_csv(tmp_path / "train.csv", toy_rows(200, seed=0)),
        "test": write_csv(tmp_path / "test.csv", toy_rows(40, seed=1)),
    }


def tiny_config(tmp_path: Path, files: dict[str, Path], **updates: object) -> Config:
    """A config that trains a small model on the toy files in a few seconds."""
    base = {
        "data.data_files": {split: str(path) for split, path in files.items()},
        "data.validation_size": 0.2,
        "tokenizer.min_frequency": 1,
        "model.embedding_dim": 16,
        "model.hidden_size": 16,
        "model.dropout": 0.0,
        "model.embedding_dropout": 0.0,
        "train.epochs": 8,
        "train.batch_size": 16,
        "train.lr": 0.01,
        "train.patience": None,
        "train.device": "cpu",
        "train.num_threads": 1,  # tiny models: one thread is faster and immune to a busy machine
        "output_dir": str(tmp_path / "run"),
    }
    base.update(updates)
    return load_config(updates=base)


@pytest.fixture
def make_config(tmp_path: Path, toy_csv: dict[str, Path]) -> Callable[..., Config]:
    """``make_config(**dotted_updates)`` -> a tiny Config on the toy files, writing into tmp_path/run."""
    return lambda **updates: tiny_config(tmp_path, toy_csv, **updates)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and one thread does not collapse on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained toy run directory, shared by the tests that only read it."""
    from seqnlp.training import train

    root = tmp_path_factory.mktemp("trained")
    files = {
        "train": write_csv(root / "train.csv", toy_rows(200, seed=0)),
        "test": write_csv(root / "test.csv", toy_rows(40, seed=1)),
    }
    config = tiny_config(root, files)
    train(config, progress=False)
    return Path(config.output_dir)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def toy_run(trained_run: Path) -> Path:
    """The shared trained toy run (read-only)."""
    return trained_run
