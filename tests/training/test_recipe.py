"""`seqnlp pretrain` and recipes with a language-model stage: the run directories they write, the texts they read
(never validation or test), and resuming them where they stopped."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from seqnlp.checkpoint import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    PRETRAINED_DIR,
    PRETRAINING_FILE,
    RESULTS_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    load_run,
)
from seqnlp.cli import main
from seqnlp.config import Config
from seqnlp.errors import CheckpointError, TrainingInterrupted
from seqnlp.lm import LanguageModel
from seqnlp.tokenizer import load_tokenizer
from seqnlp.training import Hook, PretrainResult, TrainResult, pretrain, resume, resume_pretraining, train
from seqnlp.training import loop
from seqnlp.training.state import TrainingState
from tests.helpers import tiny_config, tiny_set_args, toy_rows, write_csv

TIMING_KEYS = {"seconds", "examples_per_s", "tokens_per_s"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Toy train/validation/test files; "zebra" appears only in validation and "walrus" only in test."""
    root = tmp_path_factory.mktemp("recipe-data")
    validation = [{**row, "text": row["text"] + " zebra"} for row in toy_rows(40, seed=5)]
    test = [{**row, "text": row["text"] + " walrus"} for row in toy_rows(40, seed=6)]
    return {"train": write_csv(root / "train.csv", toy_rows(200, seed=4)),
            "validation": write_csv(root / "validation.csv", validation),
            "test": write_csv(root / "test.csv", test)}


def lm_config(root: Path, files: dict[str, Path], name: str, **updates: Any) -> Config:
    return tiny_config(root, files, **{"pretrain.epochs": 3, "pretrain.lr": 0.01, "pretrain.batch_size": 8,
                                       "train.checkpoint_every": 1, "output_dir": str(root / name), **updates})


def records(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    return [{**r, "train": {k: v for k, v in r["train"].items() if k not in TIMING_KEYS}} for r in map(json.loads, lines)]


def test_pretrain_writes_an_inspectable_run_directory(tmp_path: Path, files: dict[str, Path]) -> None:
    extra = tmp_path / "unlabelled.txt"
    extra.write_text("a gnu grazes\n\nthe gnu was great\n", encoding="utf-8")
    out = tmp_path / "lm"
    args = ["pretrain", *[f"--data-files={s}={p}" for s, p in files.items()], "--text-file", str(extra),
            "--epochs", "2", "-o", str(out), *tiny_set_args(pretrain__lr=0.01, pretrain__batch_size=8)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"Run directory: {out}" in result.output and "validation perplexity" in result.output
    assert f"Next: seqnlp train --init-from {out}" in result.output

    config = yaml.safe_load((out / CONFIG_FILE).read_text(encoding="utf-8"))
    assert config["pretrain"]["text_files"] == [str(extra)] and config["pretrain"]["epochs"] == 2
    vocab = load_tokenizer(out / TOKENIZER_FILE).get_vocab()
    assert "gnu" in vocab  # the unlabelled file is read ...
    assert "zebra" not in vocab and "walrus" not in vocab  # ... the validation and test texts never are
    weights = load_file(str(out / WEIGHTS_FILE))
    assert {name.split(".")[0] for name in weights} == {"embedding", "encoder", "decoder"}
    history = [json.loads(line) for line in (out / METRICS_FILE).read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in history] == [1, 2]
    for record in history:
        assert record["train"]["perplexity"] > 1 and record["validation"]["perplexity"] > 1
        assert record["validation"]["num_texts"] == 40  # measured on the validation split
    assert history[1]["validation"]["perplexity"] < history[0]["validation"]["perplexity"]
    results = json.loads((out / RESULTS_FILE).read_text(encoding="utf-8"))
    assert results["objective"] == "language_model" and results["validation"] == history[results["best_epoch"] - 1][
        "validation"]
    with pytest.raises(CheckpointError, match=r"holds a language model \(it has pretraining.json\), not a classifier; "
                                              r"start one from it with seqnlp train --init-from"):
        load_run(out)
    record = json.loads((out / PRETRAINING_FILE).read_text(encoding="utf-8"))
    assert record["directions"] == 2 and record["training_texts"] == 200 + 2  # the blank line is skipped
    assert record["settings"] == {"epochs": 2, "lr": 0.01, "batch_size": 8}


class InterruptAt(Hook):
    """Sends this process SIGINT after step ``step``: the loop checkpoints after the next step and stops."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, state: TrainingState, batch: Any, stats: Any) -> None:
        if state.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_an_interrupted_pretraining_run_resumes_to_the_same_end(tmp_path: Path, files: dict[str, Path]) -> None:
    reference = pretrain(lm_config(tmp_path, files, "reference"), progress=False)
    assert isinstance(reference, PretrainResult) and len(reference.history) == 3
    config = lm_config(tmp_path, files, "interrupted")
    with pytest.raises(TrainingInterrupted):
        pretrain(config, progress=False, hooks=[InterruptAt(30)])  # inside epoch 2 (25 steps an epoch)
    run_dir = Path(config.output_dir)  # type: ignore[arg-type]
    assert not (run_dir / RESULTS_FILE).exists() and (run_dir / CHECKPOINT_DIR).is_dir()
    resumed = resume_pretraining(run_dir, progress=False)
    assert resumed.best_epoch == reference.best_epoch
    assert records(run_dir) == records(reference.run_dir)
    ours, theirs = load_file(str(run_dir / WEIGHTS_FILE)), load_file(str(reference.run_dir / WEIGHTS_FILE))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert isinstance(resume(run_dir, progress=False), PretrainResult)  # seqnlp.resume knows it too
    with pytest.raises(CheckpointError, match="is not a language model's run directory"):
        resume_pretraining(tmp_path)


def test_a_recipe_pretrains_then_trains_the_classifier_from_it(tmp_path: Path, files: dict[str, Path]) -> None:
    config = lm_config(tmp_path, files, "recipe", **{"train.pretrain": True, "train.epochs": 3})
    result = train(config, progress=False)
    assert isinstance(result, TrainResult) and result.test is not None and result.test["accuracy"] >= 0.9
    run_dir, lm_dir = result.run_dir, result.run_dir / PRETRAINED_DIR
    assert (lm_dir / PRETRAINING_FILE).is_file() and (lm_dir / RESULTS_FILE).is_file()
    assert len(records(lm_dir)) == 3 and len(records(run_dir)) == 3
    assert load_tokenizer(run_dir / TOKENIZER_FILE).get_vocab() == load_tokenizer(lm_dir / TOKENIZER_FILE).get_vocab()
    assert yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))["train"]["pretrain"] is True
    # The recipe refuses to mix into its own directory, and --overwrite starts both stages again.
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(config, progress=False)
    assert isinstance(train(config, overwrite=True, progress=False), TrainResult)


@pytest.mark.slow
def test_a_recipe_stopped_in_its_language_model_stage_resumes_to_the_same_end(
        tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"train.pretrain": True, "train.epochs": 2, "model.dropout": 0.2}
    reference = train(lm_config(tmp_path, files, "reference", **settings), progress=False)
    config = lm_config(tmp_path, files, "interrupted", **settings)
    real_step, steps = loop.train_step, []

    def step_then_signal(model: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        stats = real_step(model, *args, **kwargs)
        steps.append(isinstance(model, LanguageModel))
        if sum(steps) == 40 and steps[-1]:  # inside the language model's second epoch
            os.kill(os.getpid(), signal.SIGINT)
        return stats

    monkeypatch.setattr(loop, "train_step", step_then_signal)
    with pytest.raises(TrainingInterrupted):
        train(config, progress=False)
    monkeypatch.undo()
    run_dir = Path(config.output_dir)  # type: ignore[arg-type]
    assert not (run_dir / WEIGHTS_FILE).exists() and not (run_dir / PRETRAINED_DIR / RESULTS_FILE).exists()
    with pytest.raises(CheckpointError, match=r"holds a language model of an earlier run; .* --resume"):
        train(config, progress=False)
    resumed = resume(run_dir, progress=False)
    assert isinstance(resumed, TrainResult) and resumed.test == reference.test
    for stage in (Path(), Path(PRETRAINED_DIR)):
        assert records(run_dir / stage) == records(reference.run_dir / stage)
        ours = load_file(str(run_dir / stage / WEIGHTS_FILE))
        theirs = load_file(str(reference.run_dir / stage / WEIGHTS_FILE))
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
