"""The run directory's file names and its guards, without torch, so the CLI can check a run before importing it.

``seqnlp.checkpoint`` reads and writes the files named here (its docstring says what each holds). The guards:

* one writer at a time: ``lock_run`` holds an exclusive ``flock`` on RUN_DIR/.lock while ``train`` or ``resume``
  runs. The kernel drops it when the process ends, however it ends, so a SIGKILL leaves no stale lock; the
  holder's pid, host, command and start time, written into the file, let a second writer or a reader name it;
* readers never take the lock: ``training_status`` says whether a run is being trained and by whom, and
  ``progress`` which epoch it is in and which epoch its best weights so far come from;
* ``clean_temporaries`` removes what an interrupted writer left behind (``.NAME.*.tmp`` files, each as large as
  the file it was to replace, and checkpoint staging folders);
* ``storage_errors`` turns a refused write (disk full, read-only, permissions, quota, ``ulimit -f``) into one
  line naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

from seqnlp.errors import RunBusyError, RunDirUsageError, StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock: a run directory is not locked there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
LABELS_FILE = "labels.json"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
THRESHOLDS_FILE = "thresholds.json"
VECTORS_FILE = "vectors.json"  # coverage of model.pretrained_vectors, when set
DATA_FILE = "data.json"  # the data's provenance and what the cheap data checks found
CALIBRATION_FILE = "calibration.json"  # temperature scaling fitted on validation, when the run is calibrated
CARD_FILE = "README.md"  # the model card
REPORT_FILE = "report.html"  # seqnlp.report.run: written by `seqnlp report`, not by training
TENSORBOARD_DIR = "tensorboard"  # event files, when train.tensorboard is on
PRETRAINED_DIR = "pretrained"  # train.pretrain: the language-model run the classifier starts from
PRETRAINING_FILE = "pretraining.json"  # in a language model's run directory: its texts, directions and softmax
VOCAB_KEY = "vocab_sha256"  # safetensors metadata: the vocabulary the weights were trained with
REQUIRED_FILES = (CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE, WEIGHTS_FILE)
RUN_FILES = REQUIRED_FILES + (METRICS_FILE, RESULTS_FILE, THRESHOLDS_FILE, VECTORS_FILE, DATA_FILE, CALIBRATION_FILE,
                              CARD_FILE, REPORT_FILE, PRETRAINING_FILE)  # any one: a run is here
CHECKPOINT_DIR = "checkpoints"  # resumable training state (see seqnlp.checkpoint)
LAST_POINTER = "last.json"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
CHECKPOINT_NAME = re.compile(r"step-\d{8}")  # the name of a checkpoint directory in checkpoints/
LOCK_FILE = ".lock"  # flock-ed by the process training the run, which writes its pid, host, command and start here

LOCK_ATTEMPTS = 5  # a reader's probe holds a shared lock for microseconds: a writer tries again before giving up
_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large for the file size limit (ulimit -f)",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "a part of the path is a file, not a directory",  # mkdir(exist_ok=True) on a file
}


@dataclass(frozen=True)
class Holder:
    """The process training a run, as it described itself in the lock file."""

    pid: Optional[int]
    host: str = "?"
    command: str = "?"
    started: str = "?"

    def __str__(self) -> str:
        if self.pid is None:
            return "another process (it has not written its name yet)"
        return f"pid {self.pid} on {self.host}, started {self.started}: {self.command}"


@contextlib.contextmanager
def lock_run(run_dir: Path) -> Iterator[None]:
    """Be the run directory's only writer for the block, creating the directory if needed; a RunBusyError names
    the process that already is. Writing this process's record into the lock file (synced) also proves, before
    any data loads, that the directory can be written. The lock file is removed on the way out (a SIGKILL leaves
    it, unlocked, which means nothing), and so is a directory this call created if nothing else was written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirUsageError(f"output directory {run_dir} is a file")
    created = not run_dir.exists()
    with storage_errors(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
    fd = _open_locked(run_dir)
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                  "started": datetime.now().isoformat(timespec="seconds")}
        with storage_errors(run_dir / LOCK_FILE):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
            os.fsync(fd)
        yield
    finally:
        with contextlib.suppress(OSError):  # still holding the lock: nobody can be waiting on this very file
            (run_dir / LOCK_FILE).unlink()
            if created and not any(run_dir.iterdir()):
                run_dir.rmdir()
        os.close(fd)  # releases the lock


def claim(writer: contextlib.ExitStack, run_dir: str, overwrite: Optional[bool]) -> str:
    """Make this process the one writer of ``run_dir`` until ``writer`` closes (creating the directory, and proving
    it can be written) before any data loads; a directory holding a run needs ``overwrite`` (None: resuming it).
    Then remove what a crashed writer left. Returns ``run_dir``."""
    path = Path(run_dir)
    writer.enter_context(lock_run(path))
    if overwrite is not None:
        check_output_dir(path, overwrite)
    clean_temporaries(path)
    return run_dir


def training_status(run_dir: Path) -> Optional[Holder]:
    """The process training ``run_dir`` now, or None when no process holds its lock."""
    if fcntl is None:
        return None
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None  # never trained since locks exist, or unreadable: nobody can be shown to hold it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        except OSError:
            return None  # a file system without flock
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def progress(run_dir: Path) -> tuple[int, int]:
    """(the epoch a run is in, the epoch its best weights so far are from, 0 for none), read from metrics.jsonl."""
    finished, best = 0, 0
    try:
        lines = (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            finished = record["epoch"]
            best = finished if record.get("best") is True else best
    return finished + 1, best


def check_output_dir(path: str | Path, overwrite: bool) -> Path:
    """An output directory that is a file, or that already holds a run (unless ``overwrite``), is a usage error;
    checked before anything loads."""
    run_dir = Path(path)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirUsageError(f"output directory {run_dir} is a file")
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing and not overwrite:
        raise RunDirUsageError(f"output directory {run_dir} already holds a run ({existing[0]}); choose another "
                               "--output-dir or pass --overwrite")
    return run_dir


def check_run_dir(path: str | Path) -> Path:
    """A run directory to read or resume must exist (a usage error otherwise); what it holds is checked on loading."""
    run_dir = Path(path)
    if not run_dir.exists():
        raise RunDirUsageError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise RunDirUsageError(f"run directory {run_dir} is a file, not a directory")
    return run_dir


def clean_temporaries(run_dir: Path) -> int:
    """Remove what an interrupted writer left: ``.NAME.*.tmp`` files in the run directory and checkpoints/, and
    checkpoint staging folders (``.step-NNNNNNNN.*``). Only the lock holder may call it. Returns the bytes freed."""
    freed = 0
    for folder in (run_dir, run_dir / CHECKPOINT_DIR):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            if not entry.name.startswith(".") or entry.name == LOCK_FILE:
                continue
            if entry.is_file() and not entry.is_symlink() and entry.name.endswith(".tmp"):
                freed += entry.stat().st_size
                entry.unlink(missing_ok=True)
            elif folder.name == CHECKPOINT_DIR and entry.is_dir() and not entry.is_symlink() and \
                    CHECKPOINT_NAME.match(entry.name[1:]):
                freed += sum(p.stat().st_size for p in entry.rglob("*") if p.is_file() and not p.is_symlink())
                shutil.rmtree(entry, ignore_errors=True)
    if freed:
        log.info("removed %.1f MB of temporary files an interrupted run left in %s", freed / 1e6, run_dir)
    return freed


def storage_error(exc: BaseException, path: str | Path) -> Optional[StorageError]:
    """A StorageError naming ``path`` and the cause when ``exc`` is a refused write: an OSError, or the error of a
    Rust library (safetensors, tokenizers) that carries "os error N"; None for any other error."""
    code = exc.errno if isinstance(exc, OSError) else _rust_errno(str(exc))
    if code not in _CAUSES:
        return None
    return StorageError(f"cannot write {path}: {_CAUSES[code]}; files already written are intact")


@contextlib.contextmanager
def storage_errors(path: str | Path) -> Iterator[None]:
    """Writes in the block that the disk refuses become a one-line StorageError naming ``path``."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        mapped = storage_error(exc, path)
        if mapped is None:
            raise
        raise mapped from None


def _open_locked(run_dir: Path) -> int:
    """The lock file, open and exclusively locked by this process. A writer that ends removes the file while
    holding its lock, so a lock won on a file that is no longer at the path is tried again on the new one."""
    path = run_dir / LOCK_FILE
    for attempt in range(LOCK_ATTEMPTS):
        with storage_errors(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if attempt == LOCK_ATTEMPTS - 1:
                holder = _holder(fd)
                os.close(fd)
                raise RunBusyError(f"{run_dir} is being trained by {holder}; wait for it to end or stop it: one "
                                   "process writes a run directory at a time") from None
            os.close(fd)
            time.sleep(0.05 * (attempt + 1))
            continue
        except OSError as exc:  # e.g. a network file system without flock: train unlocked, and say so
            log.warning("cannot lock %s (%s): nothing stops a second process from writing it", run_dir,
                        exc.strerror or exc)
            return fd
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        os.close(fd)  # the file was removed (or replaced) while this process waited: lock the one there now
    raise RunBusyError(f"{run_dir}: the lock file kept changing while this process tried to lock it; try again")


def _holder(fd: int) -> Holder:
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return Holder(int(record["pid"]), str(record["host"]), str(record["command"]), str(record["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(None)


def _command() -> str:
    """This process's command line, as a user would type it (``seqnlp train ...`` for the console script)."""
    argv = list(sys.argv) or ["python"]
    argv[0] = "seqnlp" if Path(argv[0]).name in ("seqnlp", "__main__.py") else argv[0]
    return " ".join(argv)[:300]


def _rust_errno(message: str) -> Optional[int]:
    found = re.search(r"os error (\d+)", message)
    return int(found.group(1)) if found else None
