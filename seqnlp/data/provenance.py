"""Where a run's data came from and what it held, recorded in the run directory as data.json.

``train`` calls ``record_data`` once, before the tokenizer is trained: it runs the cheap checks of
``seqnlp.data.scan`` (and warns with their counts), hashes the local data files, fingerprints the content of every
prepared split (texts and labels as trained on, carving included, whatever the file format), and keeps a few
example texts per label. The model card (``seqnlp.modelcard``) is written from this record.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional

from datasets import Dataset

from seqnlp.config import DataConfig
from seqnlp.data import synthetic
from seqnlp.data.scan import findings, label_array, scan_splits, warn_about
from seqnlp.data.sources import SMS_SPAM_FILE, describe_source, local_files
from seqnlp.data.splits import Splits

log = logging.getLogger(__name__)

SMS_SPAM_HUB_ID = "ucirvine/sms_spam"  # the Hub's copy of the embedded SMS Spam Collection v.1
MAX_HASHED_FILES = 1000  # a directory with more files is recorded without hashes
HASH_CHUNK = 1 << 20
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")  # "imdb", "stanfordnlp/imdb"


def run_splits(cfg: DataConfig, splits: Splits) -> tuple[dict[str, Dataset], list[str]]:
    """The splits a run uses, train first, then validation, test and any others; a stream is represented by its
    sample (the texts its tokenizer is trained on). The notes say what stands for what."""
    named = dict(splits.data)
    notes = []
    if splits.sample is not None:
        named[cfg.train_split] = splits.sample
        notes.append(f"data.streaming: {cfg.train_split} is its first {len(splits.sample):,} examples "
                     "(data.streaming_sample), the sample the tokenizer is trained on")
    order = [n for n in (cfg.train_split, cfg.validation_split, cfg.test_split) if n in named]
    return {name: named[name] for name in order + [n for n in named if n not in order]}, notes


def record_data(cfg: DataConfig, splits: Splits) -> dict[str, Any]:
    """Run the cheap checks (warning with counts) and describe the data: the content of data.json."""
    named, notes = run_splits(cfg, splits)
    scan = scan_splits(named, splits.label_names, list(named))
    warn_about(scan)
    checks = {key: value for key, value in dataclasses.asdict(scan).items()
              if key not in ("sizes", "label_counts", "examples")}
    return {
        "source": describe_source(cfg),
        "dataset": cfg.dataset,
        "hub_id": hub_dataset_id(cfg),
        "config_name": cfg.config_name,
        "revision": cfg.revision,
        "files": file_hashes(cfg),
        "splits": {name: {"examples": len(split), "label_counts": scan.label_counts.get(name),
                          "content_sha256": content_sha256(split)} for name, split in named.items()},
        "label_names": list(splits.label_names),
        "examples": scan.examples,
        "notes": notes,
        "checks": {"findings": findings(scan), **checks},
    }


def hub_dataset_id(cfg: DataConfig) -> Optional[str]:
    """The Hub id of the data set, when the data is one (or is the embedded copy of one); None for local data."""
    if cfg.dataset is None and not cfg.data_files:
        return SMS_SPAM_HUB_ID
    name = cfg.dataset
    if name is None or cfg.data_files or synthetic.is_synthetic(name) or not _HUB_ID.fullmatch(name):
        return None
    return None if Path(name).expanduser().exists() else name


def file_hashes(cfg: DataConfig) -> list[dict[str, Any]]:
    """The local files the data was read from: split, path as configured, size and SHA-256."""
    if cfg.dataset is None and not cfg.data_files:
        return [_file_record("train", SMS_SPAM_FILE, "seqnlp/data/sms_spam/SMSSpamCollection")]
    records = []
    for split, paths in local_files(cfg).items():
        for pattern in paths:
            matches = sorted(glob.glob(str(Path(pattern).expanduser()))) or [pattern]
            records += [_file_record(split, Path(match), match) for match in matches]
    if not records and cfg.dataset is not None and Path(cfg.dataset).expanduser().is_dir():
        root = Path(cfg.dataset).expanduser()
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        if len(files) > MAX_HASHED_FILES:
            log.info("data.json: %s holds %d files; recorded without hashes", root, len(files))
            return [{"split": None, "path": str(root), "files": len(files)}]
        records = [_file_record(None, p, str(Path(cfg.dataset) / p.relative_to(root))) for p in files]
    return records


def content_sha256(split: Dataset) -> str:
    """A fingerprint of what a split holds (texts, then labels), independent of the file format it came from."""
    digest = hashlib.sha256()
    for start in range(0, len(split), 10_000):
        for text in split[start:start + 10_000]["text"]:
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
    if "label" in split.column_names:
        digest.update(label_array(split).astype("<i8").tobytes())
    return digest.hexdigest()


def _file_record(split: Optional[str], path: Path, shown: str) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        log.warning("data.json: cannot hash %s: %s", path, exc.strerror or exc)
        return {"split": split, "path": shown, "bytes": None, "sha256": None}
    return {"split": split, "path": shown, "bytes": size, "sha256": digest.hexdigest()}


def summary(record: Mapping[str, Any]) -> str:
    """One line naming the data of a data.json record, for logs and the model card's title line."""
    return str(record.get("hub_id") or record.get("source") or "unknown data")
