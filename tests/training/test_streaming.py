"""Training from a stream (data.streaming): a local CSV read as an IterableDataset, never materialized."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from seqnlp.checkpoint import METRICS_FILE, RESULTS_FILE, WEIGHTS_FILE
from seqnlp.config import Config
from seqnlp.errors import ConfigError, DataError, TrainingInterrupted
from seqnlp.tokenizer import load_tokenizer
from seqnlp.batching import Batch
from seqnlp.training import Hook, StepStats, resume, train
from seqnlp.training.state import TrainingState
from tests.helpers import tiny_config, toy_rows

TRAIN_ROWS = toy_rows(240, seed=7)


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    """JSON Lines, not CSV: datasets' streaming CSV reader leaves its file to the garbage collector when a stream
    is not read to the end (as when its first rows are taken), a ResourceWarning that pytest turns into an error."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stream-data")
    return {"train": write_jsonl(root / "train.jsonl", TRAIN_ROWS),
            "test": write_jsonl(root / "test.jsonl", toy_rows(40, 8))}


def stream_config(root: Path, files: dict[str, Path], **updates: Any) -> Config:
    """The first 40 rows become validation, the next 60 train the tokenizer; 200 rows an epoch, in pools of 64."""
    return tiny_config(root, files, **{
        "data.streaming": True, "data.streaming_validation_size": 40, "data.streaming_sample": 60,
        "data.shuffle_buffer": 50, "data.streaming_size": 200, "train.bucket_pool": 4, "train.epochs": 6,
        "train.monitor": "loss", "output_dir": str(root / "run"), **updates})


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory, files: dict[str, Path]) -> Path:
    root = tmp_path_factory.mktemp("stream-run")
    config = stream_config(root, files)
    train(config, progress=False)
    return Path(config.output_dir)  # type: ignore[arg-type]


def test_a_stream_learns_the_toy_task(streamed: Path) -> None:
    results = json.loads((streamed / RESULTS_FILE).read_text())
    assert results["test"]["accuracy"] == 1.0
    assert results["validation"]["num_examples"] == 40
    history = [json.loads(line) for line in (streamed / METRICS_FILE).read_text().splitlines()]
    assert len(history) == 6 and history[-1]["step"] == 6 * 13  # 200 examples in batches of 16: 13 a epoch


def test_the_tokenizer_is_trained_on_the_sample_only(streamed: Path, files: dict[str, Path]) -> None:
    vocab = set(load_tokenizer(streamed / "tokenizer.json").get_vocab()) - {"[PAD]", "[UNK]"}
    sample = {word for row in TRAIN_ROWS[40:100] for word in row["text"].split()}
    assert vocab == sample


def test_a_decaying_schedule_needs_the_stream_size(tmp_path: Path, files: dict[str, Path]) -> None:
    config = stream_config(tmp_path, files, **{"data.streaming_size": None})
    with pytest.raises(ConfigError, match="set data.streaming_size"):
        train(config, progress=False)


def test_a_label_after_the_sample_is_an_error_naming_it(tmp_path: Path) -> None:
    rows = toy_rows(120, seed=2) + [{"text": "the movie was fine", "label": "meh"}]
    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows)}
    config = stream_config(tmp_path, files, **{"data.streaming_size": None, "train.schedule": "constant",
                                               "train.warmup_ratio": 0.0, "train.epochs": 1})
    with pytest.raises(DataError, match="label 'meh' .* not one of the known labels"):
        train(config, progress=False)


def test_sigterm_mid_epoch_then_resume_from_the_epoch_start_matches_the_uninterrupted_run(
    tmp_path: Path, files: dict[str, Path], streamed: Path
) -> None:
    class SigtermAfterStep20(Hook):
        def on_step(self, state: TrainingState, batch: Batch, stats: StepStats) -> None:
            if state.step == 20:  # epoch 2, batch 7: the next step sees the signal and every rank stops after it
                os.kill(os.getpid(), signal.SIGTERM)

    config = stream_config(tmp_path, files)
    with pytest.raises(TrainingInterrupted, match="epoch 2 is lost"):
        train(config, progress=False, hooks=[SigtermAfterStep20()])
    run = Path(config.output_dir)  # type: ignore[arg-type]
    assert len((run / METRICS_FILE).read_text().splitlines()) == 1
    resume(run, progress=False)
    ours, theirs = load_file(str(run / WEIGHTS_FILE)), load_file(str(streamed / WEIGHTS_FILE))
    assert all(bool((ours[name] == theirs[name]).all()) for name in theirs)
    assert json.loads((run / RESULTS_FILE).read_text()) == json.loads((streamed / RESULTS_FILE).read_text())
