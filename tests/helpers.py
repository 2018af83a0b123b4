"""Test data and configs shared by the test modules: a toy task every cell learns to 100% in seconds, the files it is
written to, and the one set of tiny-model settings (``TINY``) every test that trains uses."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from types import ModuleType

from seqnlp.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """A script of scripts/ (``"benchmark"``) imported as a module, for its tests: registered in sys.modules first,
    since dataclasses look their module up while the class is built."""
    import importlib.util
    import sys

    module_name = f"seqnlp_script_{name}"
    spec = importlib.util.spec_from_file_location(module_name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module

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
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


# A model small enough to train in seconds that still learns the toy tasks to 100%: the one set of tiny settings
# every test that trains starts from (in Python through tiny_config, on the command line through tiny_set_args).
TINY: dict[str, object] = {
    "data.validation_size": 0.2,
    "tokenizer.min_frequency": 1,
    "model.embedding_dim": 16,
    "model.hidden_size": 16,
    "model.dropout": 0.0,
    "model.embedding_dropout": 0.0,
    "train.lr": 0.01,
    "train.patience": None,
    "train.device": "cpu",
    "train.num_threads": 1,  # tiny models: one thread is faster and immune to a busy machine
}


def tiny_set_args(**extra: object) -> list[str]:
    """``TINY`` (and ``extra``, dotted keys with ``__`` for ``.``) as ``--set KEY=VALUE`` arguments."""
    settings = {**TINY, **{key.replace("__", "."): value for key, value in extra.items()}}
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={_yaml(value)}")]


def _yaml(value: object) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def tiny_config(tmp_path: Path, files: dict[str, Path], **updates: object) -> Config:
    """A config that trains a small model on the toy files in a few seconds."""
    base = {
        **TINY,
        "data.data_files": {split: str(path) for split, path in files.items()},
        "train.epochs": 8,
        "train.batch_size": 16,
        "output_dir": str(tmp_path / "run"),
    }
    base.update(updates)
    return load_config(updates=base)


