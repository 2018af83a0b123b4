"""The run directory's guards (issue 14): one writer at a time, readers that say a run is still training, stale
temporaries cleaned, refused writes in one line, usage errors before anything heavy.

A second writer is played by this very process: ``flock`` locks belong to an open file, so a second ``open`` of the
lock file conflicts with the first as another process's would; one test uses a real second process and SIGKILL.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner, Result
from safetensors.torch import load_file

from seqnlp.checkpoint import CHECKPOINT_DIR, LAST_POINTER, WEIGHTS_FILE, load_run, save_training_state
from seqnlp.cli import main
from seqnlp.errors import CheckpointError, RunBusyError, RunDirUsageError, StorageError
from seqnlp.rundir import (
    LOCK_FILE,
    METRICS_FILE,
    check_output_dir,
    check_run_dir,
    clean_temporaries,
    lock_run,
    progress,
    storage_error,
    storage_errors,
    training_status,
)
from tests.helpers import tiny_set_args

REPO_ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: object, input: str | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def one_error_line(result: Result, exit_code: int) -> str:
    """The single ``Error:`` line of a failed command (no traceback, nothing on stdout)."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def run(toy_run: Path, tmp_path: Path) -> Path:
    """A private copy of the trained toy run."""
    return Path(shutil.copytree(toy_run, tmp_path / "run"))


# --- the lock ----------------------------------------------------------------------------------------------------


def test_the_lock_names_its_holder_and_goes_away(tmp_path: Path) -> None:
    run_dir = tmp_path / "new" / "run"
    assert training_status(run_dir) is None
    with lock_run(run_dir):
        holder = training_status(run_dir)
        assert holder is not None and holder.pid == os.getpid() and holder.command
        with pytest.raises(RunBusyError, match=rf"{run_dir} is being trained by pid {os.getpid()} on "):
            with lock_run(run_dir):
                pass
    assert training_status(run_dir) is None
    assert not run_dir.exists()  # created by the lock, and nothing else was written: removed again


def test_the_lock_leaves_a_directory_that_holds_files(tmp_path: Path) -> None:
    with lock_run(tmp_path):
        (tmp_path / "config.yaml").write_text("seed: 1\n", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no .lock left behind


def test_a_second_writer_is_one_line_naming_the_first(run: Path, toy_csv: dict[str, Path]) -> None:
    """Issue 14, item 1: train --overwrite and a second --resume on a run being trained stop at once; the run stays."""
    before = snapshot(run)
    with lock_run(run):
        for args in (["train", "--resume", run],
                     ["train", "--data-files", f"train={toy_csv['train']}", "--output-dir", run, "--overwrite"]):
            line = one_error_line(invoke("-q", *args), 1)
            assert line.startswith(f"Error: {run} is being trained by pid {os.getpid()} on ")
            assert line.endswith("wait for it to end or stop it: one process writes a run directory at a time")
    assert {k: v for k, v in snapshot(run).items() if k != LOCK_FILE} == before


@pytest.mark.slow  # a second real process, killed with SIGKILL
def test_a_killed_writer_leaves_no_stale_lock(run: Path) -> None:
    code = ("import sys, time\nfrom pathlib import Path\nfrom seqnlp.rundir import lock_run\n"
            "with lock_run(Path(sys.argv[1])):\n    print('locked', flush=True)\n    time.sleep(120)\n")
    with subprocess.Popen([sys.executable, "-c", code, str(run)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
            holder = training_status(run)
            assert holder is not None and holder.pid == proc.pid
            with pytest.raises(RunBusyError, match=f"pid {proc.pid}"):
                with lock_run(run):
                    pass
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    assert (run / LOCK_FILE).exists()  # SIGKILL left the file ...
    assert training_status(run) is None  # ... but the kernel released its lock
    with lock_run(run):
        holder = training_status(run)
        assert holder is not None and holder.pid == os.getpid()


# --- readers of a run that is still training -----------------------------------------------------------------------


def test_a_reader_says_which_epoch_of_a_run_in_training_it_uses(run: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 14, item 2: predict, evaluate, serve and export all load through load_run."""
    epochs = [json.loads(line) for line in (run / METRICS_FILE).read_text(encoding="utf-8").splitlines()]
    best = max(r["epoch"] for r in epochs if r["best"])
    with lock_run(run), caplog.at_level("WARNING", logger="seqnlp.checkpoint"):
        load_run(run)
    assert caplog.messages == [
        f"{run} is still training, epoch {len(epochs) + 1}; using the best weights so far, epoch {best} "
        f"(pid {os.getpid()} on {_holder_text(caplog.messages[0])}"]
    caplog.clear()
    load_run(run)  # not training any more: nothing to say
    assert caplog.messages == []


def _holder_text(message: str) -> str:
    return message.split(f"(pid {os.getpid()} on ", 1)[1]


def test_a_run_before_its_first_epoch_says_it_is_still_training(run: Path) -> None:
    (run / WEIGHTS_FILE).unlink()
    (run / METRICS_FILE).unlink()
    with lock_run(run):
        line = one_error_line(invoke("predict", run, "great"), 1)
        assert line.startswith(f"Error: {run} is still training, epoch 1 (pid {os.getpid()} on ")
        assert line.endswith("no epoch has finished, so it has no weights yet: try again when the first epoch ends")
    assert "missing model.safetensors" in one_error_line(invoke("predict", run, "great"), 1)  # not training


def test_progress_reads_metrics_even_when_the_last_line_is_cut(tmp_path: Path) -> None:
    assert progress(tmp_path) == (1, 0)
    records = [{"epoch": 1, "best": True}, {"epoch": 2, "best": False}, {"epoch": 3, "best": True}]
    (tmp_path / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records) + '{"epoch": 4, "be',
                                         encoding="utf-8")
    assert progress(tmp_path) == (4, 3)


# --- temporaries ---------------------------------------------------------------------------------------------------


def test_resume_cleans_what_a_crash_left(run: Path) -> None:
    """Issue 14, item 3: temporaries as large as the model, a staging folder, a half-written last.json."""
    checkpoints = run / CHECKPOINT_DIR
    leftovers = [run / ".model.safetensors.x1y2.tmp", run / ".metrics.jsonl.q.tmp", checkpoints / ".last.json.a.tmp"]
    for path in leftovers:
        path.write_bytes(b"\0" * 100_000)
    staging = checkpoints / ".step-00000099.abcd"
    staging.mkdir()
    (staging / WEIGHTS_FILE).write_bytes(b"\0" * 1000)
    keep = [run / ".hidden-notes", checkpoints / "notes"]  # not ours: left alone
    keep[0].write_text("mine", encoding="utf-8")
    keep[1].mkdir()
    with lock_run(run):
        assert clean_temporaries(run) == 3 * 100_000 + 1000
    assert not any(p.exists() for p in [*leftovers, staging])
    assert all(p.exists() for p in keep)


def test_saving_a_checkpoint_deletes_only_older_checkpoints(run: Path) -> None:
    """Issue 14, item 1: saving deleted every other folder in checkpoints/, another process's staging folder too."""
    import torch

    from seqnlp.checkpoint import load_run as load
    from seqnlp.training.schedule import make_optimizer

    config, tokenizer, _, model = load(run)
    root = run / CHECKPOINT_DIR
    (root / ".step-00000500.other").mkdir()
    (root / "notes").mkdir()
    outside = run.parent / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x", encoding="utf-8")
    (root / "step-00000001").symlink_to(outside, target_is_directory=True)
    save_training_state(run, 10**6, model, make_optimizer(model, config.train), {"any": 1}, tokenizer)
    names = sorted(p.name for p in root.iterdir())
    assert names == [".step-00000500.other", LAST_POINTER, "notes", "step-00000001", "step-01000000"]
    assert (outside / "precious").exists()
    assert torch.equal(load_file(str(root / "step-01000000" / WEIGHTS_FILE))["embedding.weight"],
                       model.embedding.weight.detach())


# --- usage errors ---------------------------------------------------------------------------------------------------


def test_usage_errors_are_exit_2(run: Path, tmp_path: Path) -> None:
    with pytest.raises(RunDirUsageError, match="already holds a run"):
        check_output_dir(run, overwrite=False)
    assert check_output_dir(run, overwrite=True) == run
    with pytest.raises(RunDirUsageError, match="does not exist"):
        check_run_dir(tmp_path / "nope")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    for check in (lambda: check_run_dir(tmp_path / "file"), lambda: check_output_dir(tmp_path / "file", True)):
        with pytest.raises(RunDirUsageError, match="is a file") as info:
            check()
        assert info.value.exit_code == 2 and isinstance(info.value, CheckpointError)


@contextlib.contextmanager
def nothing_heavy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Importing anything heavy (torch, datasets, the library behind the commands) fails inside the block."""
    heavy = ("torch", "datasets", "seqnlp.training", "seqnlp.predict", "seqnlp.evaluation", "seqnlp.serve",
             "seqnlp.export", "seqnlp.checkpoint", "seqnlp.data.sources", "seqnlp.data.splits")
    with monkeypatch.context() as patch:
        for name in heavy:
            patch.setitem(sys.modules, name, None)  # None in sys.modules: importing the name raises ImportError
        yield


@pytest.mark.parametrize("command", ["evaluate", "predict", "serve", "export", "resume"])
def test_a_missing_run_directory_is_a_usage_error_found_first(command: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14, item 14: exit 2, before torch, datasets or any data is touched."""
    target = tmp_path / "nowhere"
    args = {"evaluate": ["evaluate", target], "predict": ["predict", target, "great"], "serve": ["serve", target],
            "export": ["export", target], "resume": ["train", "--resume", target]}[command]
    with nothing_heavy(monkeypatch):
        line = one_error_line(invoke(*args), 2)
    assert line == f"Error: run directory {target} does not exist"


def test_an_output_directory_holding_a_run_is_a_usage_error_found_first(run: Path, toy_csv: dict[str, Path],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with nothing_heavy(monkeypatch):
        line = one_error_line(invoke("train", "--data-files", f"train={toy_csv['train']}", "-o", run), 2)
    assert line == (f"Error: output directory {run} already holds a run (config.yaml); choose another --output-dir "
                    "or pass --overwrite")


def test_a_data_file_without_a_known_suffix_is_named_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14, item 13: the file is named (it was a blank), before anything heavy is imported."""
    data = tmp_path / "data"
    data.write_text("text,label\na,b\n", encoding="utf-8")
    for args in (["--data-files", f"train={data}"], ["--dataset", data]):
        with nothing_heavy(monkeypatch):
            line = one_error_line(invoke("train", *args, "-o", tmp_path / "out"), 1)
        assert line.startswith(f"Error: cannot tell the format of {data} from its suffix (none); use .csv, .tsv, ")
        assert line.endswith("name the format with --dataset csv (or json, parquet) and the file with --data-files "
                             "train=PATH")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a real seqnlp process: sys.modules shows what was imported
def test_usage_errors_answer_without_importing_torch_or_datasets(tmp_path: Path) -> None:
    code = ("import sys\nfrom seqnlp.cli import main\n"
            f"for args in (['predict', {str(tmp_path / 'x')!r}, 'a'], ['train', '--resume', {str(tmp_path / 'y')!r}]):\n"
            "    try:\n        main(args)\n    except SystemExit as exit:\n        assert exit.code == 2, exit.code\n"
            "print([m for m in ('torch', 'datasets') if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert "does not exist" in proc.stderr


# --- refused writes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "cause"), [
    (errno.ENOSPC, "no space left on device"), (errno.EROFS, "read-only file system"),
    (errno.EACCES, "permission denied"), (errno.EDQUOT, "disk quota exceeded"),
    (errno.EFBIG, "file too large for the file size limit (ulimit -f)"),
])
def test_refused_writes_are_one_line_naming_path_and_cause(code: int, cause: str) -> None:
    expected = f"cannot write runs/x/model.safetensors: {cause}; files already written are intact"
    for exc in (OSError(code, os.strerror(code)), Exception(f"I/O error: {os.strerror(code)} (os error {code})")):
        error = storage_error(exc, "runs/x/model.safetensors")
        assert isinstance(error, StorageError) and str(error) == expected
    with pytest.raises(StorageError, match=cause.replace("(", r"\(").replace(")", r"\)")):
        with storage_errors("runs/x/model.safetensors"):
            raise OSError(code, os.strerror(code))
    assert storage_error(OSError(errno.ENOENT, "gone"), "x") is None  # not a refused write: raised as it is
    assert storage_error(ValueError("os error nothing"), "x") is None


def test_an_output_directory_that_cannot_be_created_is_found_before_the_data(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14, item 9: found first, not after loading the data and training the tokenizer."""
    import seqnlp.training.run

    monkeypatch.setattr(seqnlp.training.setup, "_load_data", lambda *a: pytest.fail("the data was loaded"))
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    result = invoke("-q", "train", "--data-files", f"train={tmp_path / 'file'}", "--dataset", "csv",
                    "-o", blocker / "run", *tiny_set_args())
    assert one_error_line(result, 1) == (f"Error: cannot write {blocker / 'run'}: a part of the path is a file, not a "
                                         "directory; files already written are intact")


def test_a_read_only_output_directory_is_found_before_the_data(tmp_path: Path, toy_csv: dict[str, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import seqnlp.training.run

    monkeypatch.setattr(seqnlp.training.setup, "_load_data", lambda *a: pytest.fail("the data was loaded"))
    out = tmp_path / "out"
    out.mkdir()
    real_open = os.open

    def read_only(path: object, *args: object, **kwargs: object) -> int:
        if str(path).startswith(str(out)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    result = invoke("-q", "train", "--data-files", f"train={toy_csv['train']}", "-o", out, *tiny_set_args())
    assert one_error_line(result, 1) == f"Error: cannot write {out / LOCK_FILE}: read-only file system; files " \
                                        "already written are intact"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_directory_without_write_permission(tmp_path: Path, toy_csv: dict[str, Path]) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    try:
        result = invoke("-q", "train", "--data-files", f"train={toy_csv['train']}", "-o", out, *tiny_set_args())
        assert "permission denied" in one_error_line(result, 1)
    finally:
        out.chmod(0o755)
