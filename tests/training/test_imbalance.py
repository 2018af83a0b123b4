"""Imbalanced data in training: class weights, the weighted sampler, the auto monitor, and what results.json records;
a weighted run stopped mid-epoch and resumed ends where the uninterrupted one does."""

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
from tests.helpers import tiny_config, toy_rows, write_csv
from safetensors.torch import load_file

from seqnlp.checkpoint import RESULTS_FILE, WEIGHTS_FILE
from seqnlp.cli import main
from seqnlp.config import load_config
from seqnlp.errors import ConfigError, TrainingInterrupted
from seqnlp.batching import Batch
from seqnlp.training import Hook, StepStats, resume, train
from seqnlp.training.state import TrainingState


def imbalanced_rows(seed: int) -> list[dict[str, str]]:
    """The toy task with four "pos" texts for each "neg" one: 100 pos, 25 neg."""
    rows = toy_rows(200, seed=seed)
    neg = [r for r in rows if r["label"] == "neg"][:25]
    return [r for r in rows if r["label"] == "pos"] + neg


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imbalanced")
    return {"train": write_csv(root / "train.csv", imbalanced_rows(0)),
            "test": write_csv(root / "test.csv", toy_rows(40, seed=1))}


def results_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RESULTS_FILE).read_text(encoding="utf-8"))


def test_auto_class_weights_and_monitor_are_recorded(tmp_path: Path, files: dict[str, Path]) -> None:
    result = train(tiny_config(tmp_path, files, **{"train.class_weights": "auto"}), progress=False)
    results = results_of(result.run_dir)
    # 125 rows - 20% validation (stratified) = 80 pos + 20 neg; weights n / (2 * count).
    assert results["label_counts"] == {"neg": 20, "pos": 80}
    assert results["class_weights"] == pytest.approx({"neg": 100 / 40, "pos": 100 / 160})
    assert results["monitor"] == "macro_f1" and "4.00x" in results["monitor_reason"]
    assert result.monitor == "macro_f1"
    assert 0.5 < results["test"]["auroc"] <= 1.0


def test_an_explicit_monitor_is_kept(tmp_path: Path, files: dict[str, Path]) -> None:
    config = tiny_config(tmp_path, files, **{"train.monitor": "loss", "train.epochs": 1})
    assert results_of(train(config, progress=False).run_dir)["monitor"] == "loss"


def test_class_weights_of_the_wrong_length_fail_before_the_run_directory(tmp_path: Path,
                                                                         files: dict[str, Path]) -> None:
    config = tiny_config(tmp_path, files, **{"train.class_weights": [1.0, 2.0, 3.0]})
    with pytest.raises(ConfigError, match=r"train.class_weights: 3 weights for 2 labels \(neg, pos\)"):
        train(config, progress=False)
    assert not Path(config.output_dir).exists()  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["sometimes", [1, -2], [], [1, float("nan")], True])
def test_bad_class_weights_name_the_key(value: Any) -> None:
    with pytest.raises(ConfigError, match="train.class_weights: .* not one of none, auto, or a list of positive"):
        load_config(updates={"train.class_weights": value})


def test_weighted_sampler_rejects_streams_and_exact_bucketing() -> None:
    with pytest.raises(ConfigError, match="train.sampler: weighted .* cannot read a stream"):
        load_config(updates={"data.streaming": True, "train.sampler": "weighted"})
    with pytest.raises(ConfigError, match="train.sampler: weighted .* train.bucketing: exact cannot"):
        load_config(updates={"train.bucketing": "exact", "train.sampler": "weighted"})


def weighted_config(root: Path, files: dict[str, Path], name: str) -> Any:
    return tiny_config(root, files, **{"train.sampler": "weighted", "train.class_weights": [1.0, 1.5],
                                       "train.epochs": 3, "model.dropout": 0.2, "output_dir": str(root / name)})


def test_weighted_run_stopped_mid_epoch_resumes_to_the_same_end(tmp_path: Path, files: dict[str, Path]) -> None:
    reference = train(weighted_config(tmp_path, files, "reference"), progress=False)
    assert results_of(reference.run_dir)["sampler"] == "weighted"

    class SigtermAfterStep9(Hook):
        def on_step(self, state: TrainingState, batch: Batch, stats: StepStats) -> None:
            if state.step == 9:  # epoch 2 (7 batches an epoch), batch 2: as if SIGTERM came now
                os.kill(os.getpid(), signal.SIGTERM)

    config = weighted_config(tmp_path, files, "stopped")
    with pytest.raises(TrainingInterrupted):
        train(config, progress=False, hooks=[SigtermAfterStep9()])
    assert json.loads((Path(config.output_dir) / "checkpoints" / "last.json").read_text())["dir"] == "step-00000010"
    resumed = resume(config.output_dir)  # type: ignore[arg-type]

    assert resumed.history[-1]["validation"] == reference.history[-1]["validation"]
    theirs = load_file(str(reference.run_dir / WEIGHTS_FILE))
    for name, tensor in load_file(str(resumed.run_dir / WEIGHTS_FILE)).items():
        assert torch.equal(tensor, theirs[name]), name


def test_cli_class_weights_flag() -> None:
    runner = CliRunner()

    def printed(*flags: str) -> Any:
        return runner.invoke(main, ["train", "--print-config", *flags])

    def weights(*flags: str) -> Any:
        return yaml.safe_load(printed(*flags).stdout)["train"]["class_weights"]

    assert weights() is None
    assert weights("--class-weights", "auto") == "auto"
    assert weights("--class-weights", "1,4.5") == [1.0, 4.5]
    bad = printed("--class-weights", "1,heavy")
    assert bad.exit_code == 2 and "--class-weights '1,heavy' is not auto, none" in bad.stderr
