"""Interruption and resume: a run killed at any step and resumed ends exactly where an uninterrupted run ends.

Training runs in a real subprocess (``python -m seqnlp train``) that is killed with SIGKILL, or stopped with
SIGTERM/SIGINT, at arbitrary points; ``seqnlp.training.resume`` then finishes it in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from seqnlp.checkpoint import CHECKPOINT_DIR, LAST_POINTER, METRICS_FILE, RESULTS_FILE, WEIGHTS_FILE
from seqnlp.config import Config
from seqnlp.errors import CheckpointError, TrainingError
from seqnlp.model import RNNClassifier
from seqnlp.training import resume, train
from tests.helpers import tiny_config, toy_rows, write_csv

REPO = Path(__file__).resolve().parents[2]
TIMING_KEYS = {"seconds", "examples_per_s", "tokens_per_s"}  # wall-clock numbers differ between runs


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume-data")
    return {"train": write_csv(root / "train.csv", toy_rows(400, seed=3)),
            "test": write_csv(root / "test.csv", toy_rows(40, seed=4))}


def resumable_config(root: Path, files: dict[str, Path], name: str) -> Config:
    """About 120 steps over 3 epochs, with dropout (so the RNG state matters) and a checkpoint every step."""
    return tiny_config(root, files, **{
        "train.epochs": 3, "train.batch_size": 8, "train.checkpoint_every": 1, "model.dropout": 0.2,
        "model.embedding_dropout": 0.1, "model.num_layers": 2, "output_dir": str(root / name),
    })


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, files: dict[str, Path]) -> Path:
    """The uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    config = resumable_config(root, files, "run")
    train(config, progress=False)
    return Path(config.output_dir)  # type: ignore[arg-type]


def start_training(config: Config) -> subprocess.Popen:
    path = Path(config.output_dir) .with_suffix(".yaml")  # type: ignore[arg-type]
    config.save(path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "seqnlp", "-q", "train", "--config", str(path)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(run_dir: Path, process: subprocess.Popen, step: int, timeout: float = 120) -> None:
    """Poll the checkpoint pointer until it has passed ``step``."""
    pointer = run_dir / CHECKPOINT_DIR / LAST_POINTER
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended before step {step}: {process.stderr.read() if process.stderr else ''}")
        try:
            if int(json.loads(pointer.read_text())["dir"].split("-")[1]) >= step:
                return
        except (OSError, ValueError, KeyError):
            pass  # not written yet, or being replaced right now
        time.sleep(0.005)
    pytest.fail(f"no checkpoint at step {step} within {timeout} s")


def assert_same_outcome(run: Path, reference: Path) -> None:
    """Bit-identical best weights, and identical metrics apart from wall-clock timings."""
    ours, theirs = load_file(str(run / WEIGHTS_FILE)), load_file(str(reference / WEIGHTS_FILE))
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), f"{name} differs after resume"
    assert json.loads((run / RESULTS_FILE).read_text()) == json.loads((reference / RESULTS_FILE).read_text())
    assert _without_timings(run / METRICS_FILE) == _without_timings(reference / METRICS_FILE)


def _without_timings(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record["train"] = {k: v for k, v in record["train"].items() if k not in TIMING_KEYS}
    return records


@pytest.mark.slow  # training in a subprocess, killed and resumed
@pytest.mark.parametrize("kill_after", [3, 41, 95])
def test_sigkill_at_any_step_then_resume_matches_uninterrupted_run(
    tmp_path: Path, files: dict[str, Path], reference: Path, kill_after: int
) -> None:
    config = resumable_config(tmp_path, files, "run")
    process = start_training(config)
    wait_for_step(Path(config.output_dir), process, kill_after)  # type: ignore[arg-type]
    process.send_signal(signal.SIGKILL)  # wherever it is: mid-step, mid-checkpoint, mid-evaluation
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    run = Path(config.output_dir)  # type: ignore[arg-type]
    assert not (run / RESULTS_FILE).exists()  # it really was cut short
    resume(run, progress=False)
    assert_same_outcome(run, reference)


@pytest.mark.slow  # training in a subprocess, killed and resumed
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_save_a_checkpoint_and_exit_with_the_signal_code(
    tmp_path: Path, files: dict[str, Path], reference: Path, sig: int, code: int
) -> None:
    config = resumable_config(tmp_path, files, "run")
    config.train.checkpoint_every = 1000  # the signal, not the interval, must produce the checkpoint
    process = start_training(config)
    run = Path(config.output_dir)  # type: ignore[arg-type]
    deadline = time.monotonic() + 120
    while not (run / METRICS_FILE).exists():  # wait until the first epoch is done, then stop mid-epoch 2
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.005)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    assert "checkpoint saved" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) <= 3  # the warning and the one-line error, no traceback
    resume(run, progress=False)
    assert_same_outcome(run, reference)


def test_resume_of_a_finished_run_changes_nothing(tmp_path: Path, reference: Path) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(reference, run)
    before = (run / WEIGHTS_FILE).read_bytes()
    result = resume(run, progress=False)
    assert (run / WEIGHTS_FILE).read_bytes() == before
    assert result.best_epoch == json.loads((reference / RESULTS_FILE).read_text())["best_epoch"]


def test_resume_needs_a_checkpoint(tmp_path: Path, reference: Path) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(reference, run)
    shutil.rmtree(run / CHECKPOINT_DIR)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resume(run, progress=False)
    with pytest.raises(CheckpointError, match="config.yaml is missing"):
        resume(tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="nothing-here does not exist"):
        resume(tmp_path / "nothing-here", progress=False)


def test_only_the_newest_checkpoint_is_kept(reference: Path) -> None:
    directories = [p for p in (reference / CHECKPOINT_DIR).iterdir() if p.is_dir()]
    assert len(directories) == 1
    pointer = json.loads((reference / CHECKPOINT_DIR / LAST_POINTER).read_text())
    assert pointer["dir"] == directories[0].name
    assert not [p for p in reference.rglob("*") if p.name.startswith(".")]  # no staging leftovers


def _poison_forward(monkeypatch: pytest.MonkeyPatch, at_call: int) -> None:
    """Make the model's forward return NaN logits on its ``at_call``-th training call."""
    original = RNNClassifier.forward
    calls = {"n": 0}

    def forward(self: RNNClassifier, input_ids: torch.Tensor, lengths: torch.Tensor,
                parts: bool = False) -> torch.Tensor:
        logits = original(self, input_ids, lengths, parts)
        if self.training:
            calls["n"] += 1
            if calls["n"] == at_call:
                return logits * float("nan")
        return logits

    monkeypatch.setattr(RNNClassifier, "forward", forward)


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_checkpoint(
    tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = resumable_config(tmp_path, files, "run")
    _poison_forward(monkeypatch, at_call=30)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 30 \(epoch 1, batch 30\)"):
        train(config, progress=False)
    run = Path(config.output_dir)  # type: ignore[arg-type]
    pointer = json.loads((run / CHECKPOINT_DIR / LAST_POINTER).read_text())
    assert pointer["dir"] == "step-00000029"  # the last good step; the bad one was never applied
    monkeypatch.undo()
    result = resume(run, progress=False)  # the intact checkpoint resumes and finishes
    assert result.test is not None and result.test["accuracy"] == 1.0


def test_non_finite_loss_can_be_skipped(tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    config = resumable_config(tmp_path, files, "run")
    config.train.on_nonfinite = "skip"
    config.train.checkpoint_every = None
    _poison_forward(monkeypatch, at_call=10)
    result = train(config, progress=False)
    results = json.loads((Path(config.output_dir) / RESULTS_FILE).read_text())  # type: ignore[arg-type]
    assert results["skipped_steps"] == 1
    assert result.test is not None and result.test["accuracy"] == 1.0
    for name, tensor in load_file(str(Path(config.output_dir) / WEIGHTS_FILE)).items():  # type: ignore[arg-type]
        assert torch.isfinite(tensor).all(), name
