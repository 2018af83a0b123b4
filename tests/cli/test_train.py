"""``seqnlp train`` on the machine a user really has (issue 14): a disk that refuses a write mid-run, a file size
limit, and a stderr that is not a terminal."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from safetensors import SafetensorError

import seqnlp.checkpoint
from seqnlp.checkpoint import CHECKPOINT_DIR, WEIGHTS_FILE, load_run
from seqnlp.cli import main
from tests.helpers import tiny_set_args

REPO_ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = "synthetic:marker?distance=2&prefix=2&vocab=4&train=60&validation=20&test=20"


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_full_disk_mid_run_is_one_line_and_the_run_resumes(tmp_path: Path, toy_csv: dict[str, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Epoch 1 is saved; the disk fills up during epoch 2's saves: one line naming the file, the cause and the resume
    command; epoch 1's weights and checkpoint stay whole, no temporary file is left, and the resume finishes."""
    run = tmp_path / "run"
    real_save, calls, saved = seqnlp.checkpoint.save_file, [], {}

    def disk_fills_up(tensors: dict[str, Any], path: str, metadata: Any = None) -> None:
        calls.append(path)
        if len(calls) == 4:  # epoch 1 wrote the best weights, the checkpoint's weights and its optimizer
            saved["weights"] = (run / WEIGHTS_FILE).read_bytes()
            Path(path).write_bytes(b"\0" * 100)  # part of the file made it to disk
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(seqnlp.checkpoint, "save_file", disk_fills_up)
    result = invoke("-q", "train", "--data-files", f"train={toy_csv['train']}", "-o", run, "--epochs", "3",
                    *tiny_set_args(train__monitor="loss", train__tensorboard="false"))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: cannot write {run}")
    assert line.endswith(f": no space left on device; files already written are intact; once fixed, continue with: "
                         f"seqnlp train --resume {run}")
    assert (run / WEIGHTS_FILE).read_bytes() == saved["weights"]  # epoch 1's best weights, whole
    load_run(run)
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".step-")]
    monkeypatch.setattr(seqnlp.checkpoint, "save_file", real_save)
    resumed = invoke("-q", "train", "--resume", run)
    assert resumed.exit_code == 0, resumed.output
    assert (run / CHECKPOINT_DIR).is_dir() and "Best epoch" in resumed.stdout


@pytest.mark.slow  # a real process under a real file size limit
def test_a_file_size_limit_is_one_line(tmp_path: Path) -> None:
    """``ulimit -f``: the weights cannot be written; the files already written stay whole."""
    run = tmp_path / "run"

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))

    args = [sys.executable, "-m", "seqnlp", "-q", "train", "--dataset", SYNTHETIC, "-o", str(run), "--epochs", "1",
            *tiny_set_args(model__hidden_size=32, model__embedding_dim=32, train__tensorboard="false")]
    proc = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          preexec_fn=limit_file_size)
    assert proc.returncode == 1, proc.stderr
    # the synthetic task repeats texts across its splits: the data checks warn about it before training starts
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("data check: ")]
    assert errors == [f"Error: cannot write {run / WEIGHTS_FILE}: file too large for the file size "
                      "limit (ulimit -f); files already written are intact"]
    assert (run / "config.yaml").is_file() and not (run / WEIGHTS_FILE).exists()
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


def test_without_a_terminal_training_logs_lines_instead_of_bars(tmp_path: Path, toy_csv: dict[str, Path]) -> None:
    """A progress bar on a file or a pipe writes a carriage-return update per step (55 KB for the default run)."""
    result = invoke("train", "--data-files", f"train={toy_csv['train']}", "-o", tmp_path / "run", "--epochs", "2",
                    "--batch-size", "16", *tiny_set_args(train__log_every=4))
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr and "%|" not in result.stderr
    lines = result.stderr.splitlines()
    steps = [line for line in lines if line.startswith("epoch 1, batch ")]
    assert [line.split(":")[0] for line in steps] == ["epoch 1, batch 4/9", "epoch 1, batch 8/9"]  # 140 examples
    assert all("train loss" in line and "tokens/s" in line and "lr " in line for line in steps)
    assert sum(line.startswith(("epoch 1: train loss", "epoch 2: train loss")) for line in lines) == 2


def test_quiet_logs_neither(tmp_path: Path, toy_csv: dict[str, Path]) -> None:
    result = invoke("-q", "train", "--data-files", f"train={toy_csv['train']}", "-o", tmp_path / "run", "--epochs",
                    "1", *tiny_set_args(train__log_every=1))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_refused_write_anywhere_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's last line of defence: an OSError of a refused write from code that did not name it (a report,
    a cache) is one line naming the file; --debug still shows the traceback."""
    import errno

    cli_train = sys.modules["seqnlp.cli.train"]  # the attribute seqnlp.cli.train is the command itself

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "report.md"))

    monkeypatch.setattr(cli_train, "check_data_files", full)
    result = invoke("train", "-o", tmp_path / "out")
    assert (result.exit_code, result.stderr) == (1, f"Error: cannot write {tmp_path / 'report.md'}: no space left on "
                                                    "device; files already written are intact\n")
    assert isinstance(invoke("--debug", "train", "-o", tmp_path / "out").exception, OSError)
    monkeypatch.setattr(cli_train, "check_data_files", lambda cfg: (_ for _ in ()).throw(OSError(errno.ENOENT, "x")))
    assert isinstance(invoke("train", "-o", tmp_path / "out").exception, OSError)  # not a refused write: a bug


def test_export_to_a_place_that_cannot_be_written(toy_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    result = invoke("export", toy_run, "--format", "torchscript", "--output", blocker / "model.pt")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.stderr == (f"Error: cannot write {blocker / 'model.pt'}: a part of the path is a file, not a "
                             "directory; files already written are intact\n")
