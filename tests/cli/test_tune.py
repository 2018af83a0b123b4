"""``seqnlp tune``: help, one-line errors before any trial, a tiny study whose best.yaml ``seqnlp train -c``
accepts, and a study killed with SIGKILL mid-trial that ``--resume`` finishes without repeating a finished trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from seqnlp.cli import main
from tests.helpers import tiny_set_args, toy_rows, write_csv

pytest.importorskip("optuna")

REPO_ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def toy_args(tmp_path: Path) -> list[str]:
    train = write_csv(tmp_path / "train.csv", toy_rows(200, seed=0))
    test = write_csv(tmp_path / "test.csv", toy_rows(40, seed=1))
    return ["--data-files", f"train={train}", "--data-files", f"test={test}", *tiny_set_args(train__epochs=2)]


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text("defaults: false\nmodel.hidden_size: [8, 16]\nmodel.cell: [gru, lstm]\n")
    return path


def test_help_shows_examples() -> None:
    result = invoke("tune", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and "seqnlp tune --resume" in result.output
    assert "tune" in invoke("--help").output


def test_a_tiny_study_writes_a_best_config_that_train_accepts(tmp_path: Path, toy_args: list[str],
                                                              space_file: Path) -> None:
    out = tmp_path / "study"
    result = invoke("-q", "tune", *toy_args, "--space", str(space_file), "--trials", "2", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "Trials: 2 complete" in result.output and f"Best config: {out / 'best.yaml'}" in result.output
    trained = invoke("-q", "train", "-c", str(out / "best.yaml"), "-o", str(tmp_path / "best-run"))
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "best-run" / "model.safetensors").is_file()


@pytest.mark.parametrize("args, message", [
    ([], "give a time budget (--budget 20m), a number of trials (--trials N), or both"),
    (["--budget", "20"], "--budget '20' is not a duration; give a number with a unit"),
    (["--trials", "2", "--set", "model.hiden_size=8"], "unknown config key 'model.hiden_size'"),
])
def test_bad_input_is_one_line_with_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("tune", *args, "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("space, message", [
    ("model.hiden_size: [8]\n", "unknown config key 'model.hiden_size'"),
    ("defaults: false\n", "the search space is empty"),
    ("model.dropout: {low: 0.1, high: 0.05}\n", "model.dropout: low (0.1) must be below high (0.05)"),
])
def test_a_bad_space_is_one_line_before_any_trial(tmp_path: Path, toy_args: list[str], space: str,
                                                  message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(space)
    result = invoke("tune", *toy_args, "--space", str(path), "--trials", "1", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"Error: {path}: {result.output.split(': ', 2)[2].strip()}"
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_resume_takes_only_budget_trials_and_storage(tmp_path: Path) -> None:
    result = invoke("tune", "--resume", str(tmp_path), "--set", "train.lr=0.1")
    assert result.exit_code == 2 and "--resume continues with the study's own settings; drop --set" in result.output
    result = invoke("tune", "--resume", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "no such directory" in result.output


@pytest.mark.slow  # real seqnlp processes, one of them killed
def test_a_study_killed_mid_trial_resumes_without_repeating_a_finished_trial(tmp_path: Path, toy_args: list[str],
                                                                               space_file: Path) -> None:
    import optuna

    out = tmp_path / "study"
    # Longer trials (20 epochs, no early stopping), so the kill lands inside the second one.
    args = [sys.executable, "-m", "seqnlp", "-q", "tune", *toy_args, "--set", "train.epochs=20", "--space",
            str(space_file), "--trials", "3", "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = tmp_path / "first.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not (out / "trials" / "trial-0001").is_dir():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert (out / "trials" / "trial-0000" / "trial.json").is_file()  # trial 0 had finished

    resumed = subprocess.run([sys.executable, "-m", "seqnlp", "tune", "--resume", str(out)], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "trial 1 was running in process" in resumed.stderr
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}")
    try:
        trials = optuna.load_study(storage=storage, study_name="seqnlp-tune").trials
    finally:
        storage.engine.dispose()
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"], states  # trial 0 was not run again
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params == trials[1].params
    assert trials[0].datetime_complete < trials[2].datetime_start
    assert '"state": "lost"' in (out / "trials" / "trial-0001" / "trial.json").read_text()
    assert not (out / "trials" / "trial-0001" / "checkpoints").exists()


@pytest.mark.slow  # a real seqnlp process
def test_tune_help_imports_neither_torch_nor_optuna() -> None:
    code = ("import sys\nfrom seqnlp.cli import main\ntry:\n    main(['tune', '--help'], standalone_mode=False)\n"
            "except SystemExit:\n    pass\nassert not {'torch', 'optuna', 'datasets'} & set(sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_study_with_no_complete_trial_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqnlp.tune import search

    result = search.TuneResult(tmp_path, "accuracy", None, {"pruned": 2}, 1.0)
    monkeypatch.setattr(search, "tune", lambda config, **kwargs: result)
    outcome = invoke("tune", "--trials", "2", "-o", str(tmp_path))
    assert outcome.exit_code == 1
    assert "Trials: 2 pruned" in outcome.output
    assert f"Error: no trial completed; see {tmp_path / 'trials.md'}" in outcome.output
