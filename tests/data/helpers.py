"""Rows, files and accessors shared by the tests of the data layer (sources, splits, labels)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from seqnlp.config import DataConfig
from seqnlp.data import Splits, load_splits


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


def load(cfg: DataConfig, seed: int = 0, label_names: Optional[list[str]] = None,
         only: Optional[Sequence[str]] = None) -> Splits:
    return load_splits(cfg, seed=seed, label_names=label_names, only=only)


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
