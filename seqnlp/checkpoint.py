"""A run directory in and out: every file is one a person can open, and none of them can run code.

::

    RUN_DIR/
      config.yaml        the resolved Config (YAML, read back with a safe loader)
      labels.json        label names in index order
      tokenizer.json     the tokenizers.Tokenizer, truncation included
      model.safetensors  weights of the best epoch (safetensors: tensors only, no pickle)
      metrics.jsonl      one JSON object per epoch: train loss, throughput, validation metrics, lr
      results.json       the best epoch's validation metrics and, when there is a test split, test metrics
      thresholds.json    multi-label runs: {label: threshold}, tuned on the validation split
      calibration.json   the temperature (and a binary run's decision threshold) fitted on the validation split
      vectors.json       with model.pretrained_vectors: how much of the vocabulary the vectors covered
      data.json          where the data came from (file and content hashes), label counts, example texts per
                         label, and what the cheap data checks found (seqnlp.data.provenance)
      README.md          the model card, with Hugging Face metadata, written last (seqnlp.modelcard)
      report.html        `seqnlp report`: curves, confusion matrix, calibration, mistakes explained (one HTML file)
      tensorboard/       with train.tensorboard: event files of the same scalars (tensorboard --logdir)
      checkpoints/       the last resumable training state (see "resumable training state" below)
      .lock              held by the process training the run (see seqnlp.rundir, where every name is declared)
      pretrained/        with train.pretrain: the language model the run started from, a run directory itself

A language model's run directory (``seqnlp pretrain``, or pretrained/ above) has the same files but
thresholds.json; its model.safetensors holds embedding.*, encoder.* and the adaptive softmax (decoder.*), its
metrics.jsonl and results.json report loss and perplexity, and pretraining.json marks it and says what it read.

Every file but metrics.jsonl is written to a temporary name in the same directory and renamed, so a crash
leaves the previous file whole. metrics.jsonl grows by one appended line per epoch (``append_jsonl``): a
crash can cut its last line short, and a resume rewrites it whole from the checkpoint's history. A write the
disk refuses is a one-line ``StorageError``. Nothing read is trusted: shapes, dtypes and finiteness of every
tensor (``seqnlp.tensorfile``, ``seqnlp.optimizer_state``) and every checkpoint path are checked on loading.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from seqnlp.calibration import Calibration
from seqnlp.calibration import from_record as calibration_from_record
from seqnlp.config import Config, config_from_dict, read_config_file
from seqnlp.errors import CheckpointError, ConfigError
from seqnlp.model import RNNClassifier, min_parameters
from seqnlp.optimizer_state import flatten_optimizer, read_optimizer
from seqnlp.rundir import (  # the names of every file, declared without torch (the CLI checks runs before importing it)
    CALIBRATION_FILE,
    CARD_FILE,
    CHECKPOINT_DIR,
    CHECKPOINT_NAME,
    CONFIG_FILE,
    DATA_FILE,
    LABELS_FILE,
    LAST_POINTER,
    LOCK_FILE,
    METRICS_FILE,
    OPTIMIZER_FILE,
    PRETRAINED_DIR,
    PRETRAINING_FILE,
    REQUIRED_FILES,
    RESULTS_FILE,
    REPORT_FILE,
    RUN_FILES,
    STATE_FILE,
    TENSORBOARD_DIR,
    THRESHOLDS_FILE,
    TOKENIZER_FILE,
    VECTORS_FILE,
    VOCAB_KEY,
    WEIGHTS_FILE,
    check_output_dir,
    check_run_dir,
    progress,
    storage_errors,
    training_status,
)
from seqnlp.tensorfile import check_tensors, load_tensors, read_header
from seqnlp.tokenizer import load_tokenizer, pad_id, vocab_digest

__all__ = ["CALIBRATION_FILE", "CARD_FILE", "CHECKPOINT_DIR", "CONFIG_FILE", "DATA_FILE", "LABELS_FILE",
           "LAST_POINTER", "LOCK_FILE", "METRICS_FILE", "OPTIMIZER_FILE", "PRETRAINED_DIR", "PRETRAINING_FILE",
           "REPORT_FILE", "REQUIRED_FILES", "RESULTS_FILE", "STATE_FILE", "TENSORBOARD_DIR", "THRESHOLDS_FILE",
           "TOKENIZER_FILE", "VECTORS_FILE", "VOCAB_KEY", "WEIGHTS_FILE", "append_jsonl", "atomic_path",
           "has_training_state", "last_checkpoint", "load_calibration", "load_run", "load_thresholds",
           "load_training_state", "load_weights", "prepare_run_dir", "read_json", "save_run_files", "save_thresholds",
           "save_training_state", "save_weights", "write_json", "write_jsonl"]

log = logging.getLogger(__name__)



def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Create the run directory; refuse to mix a new run into an existing one unless ``overwrite``."""
    run_dir = check_output_dir(path, overwrite)
    with storage_errors(run_dir):
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        if overwrite:
            shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
            shutil.rmtree(run_dir / TENSORBOARD_DIR, ignore_errors=True)  # the old run's curves would mix with the new
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def save_run_files(run_dir: Path, config: Config, tokenizer: Tokenizer, label_names: list[str]) -> None:
    """Write everything but the weights: the config, labels and tokenizer."""
    with atomic_path(run_dir / CONFIG_FILE) as tmp:
        config.save(tmp)
    write_json(run_dir / LABELS_FILE, list(label_names))
    with atomic_path(run_dir / TOKENIZER_FILE) as tmp:
        tokenizer.save(str(tmp))


def save_weights(model: torch.nn.Module, path: Path, tokenizer: Tokenizer | None = None) -> None:
    """Save the model's weights as safetensors, atomically, stamped with the tokenizer's vocabulary digest."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    metadata = {"format": "pt", "producer": "seqnlp"}
    if tokenizer is not None:
        metadata[VOCAB_KEY] = vocab_digest(tokenizer)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into ``model``; a missing, corrupt or mismatched file, a tensor of another dtype
    and a non-finite value are CheckpointErrors. Names, shapes and dtypes are checked on the header, before any
    tensor is read."""
    found, _ = read_header(path)
    check_tensors(path, found, model.state_dict(), fits=f"the model in {CONFIG_FILE}")
    state = load_tensors(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"weights file {path} does not fit the model in {CONFIG_FILE}: {detail}") from None


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Config, Tokenizer, list[str], RNNClassifier]:
    """Read a run directory back: config, tokenizer, labels and the model with its best weights, in eval mode.

    Nothing is trusted: the model is built only once the weights file's header shows it can hold the model the
    config describes, so a config.yaml asking for a huge model allocates nothing. A run that another process is
    still training is read as it stands (a warning says which epoch's weights), or refused before its first epoch
    has ended. A language model's directory (``seqnlp pretrain``) is refused with a pointer to ``--init-from``.
    """
    run_dir = check_run_dir(run_dir)
    if (run_dir / PRETRAINING_FILE).is_file():
        raise CheckpointError(f"{run_dir} holds a language model (it has {PRETRAINING_FILE}), not a classifier; start "
                              f"one from it with seqnlp train --init-from {run_dir}")
    holder = training_status(run_dir)
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    if missing and holder is not None:
        raise CheckpointError(f"{run_dir} is still training, epoch {progress(run_dir)[0]} ({holder}); no epoch has "
                              "finished, so it has no weights yet: try again when the first epoch ends")
    if missing:
        raise CheckpointError(f"run directory {run_dir} is missing {', '.join(missing)}")
    config, label_names, tokenizer = _read_run_files(run_dir)
    found, metadata = read_header(run_dir / WEIGHTS_FILE)
    embedding_rows = found["embedding.weight"].shape[0] if "embedding.weight" in found else None
    trained_with = metadata.get(VOCAB_KEY)
    if (embedding_rows is not None and embedding_rows != tokenizer.get_vocab_size()) or (
        trained_with is not None and trained_with != vocab_digest(tokenizer)
    ):
        raise CheckpointError(
            f"{run_dir / TOKENIZER_FILE} is not the tokenizer these weights were trained with "
            f"({tokenizer.get_vocab_size()} tokens, weights expect {embedding_rows})"
        )
    declared = sum(info.numel for info in found.values())
    needed = min_parameters(config.model, tokenizer.get_vocab_size(), len(label_names))
    if needed > declared:
        raise CheckpointError(f"weights file {run_dir / WEIGHTS_FILE} does not fit the model in {CONFIG_FILE}: "
                              f"that model has at least {needed:,} parameters, the file holds {declared:,}")
    model = RNNClassifier(config.model, tokenizer.get_vocab_size(), len(label_names), pad_id=pad_id(tokenizer))
    load_weights(model, run_dir / WEIGHTS_FILE)
    if holder is not None:
        epoch, best = progress(run_dir)
        log.warning("%s is still training, epoch %d; using the best weights so far, epoch %d (%s)", run_dir, epoch,
                    best, holder)
    return config, tokenizer, label_names, model.to(device).eval()


def _read_run_files(run_dir: Path) -> tuple[Config, list[str], Tokenizer]:
    """config.yaml (validated), labels.json and tokenizer.json of a run directory."""
    try:
        config = config_from_dict(read_config_file(run_dir / CONFIG_FILE))
    except ConfigError as exc:
        raise CheckpointError(f"{run_dir / CONFIG_FILE}: {exc}") from None
    label_names = read_json(run_dir / LABELS_FILE)
    if not isinstance(label_names, list) or len(label_names) < 2 or not all(isinstance(n, str) for n in label_names):
        raise CheckpointError(f"{run_dir / LABELS_FILE} must be a JSON list of at least two label names")
    return config, label_names, load_tokenizer(run_dir / TOKENIZER_FILE)


def save_thresholds(run_dir: Path, label_names: list[str], thresholds: list[float]) -> None:
    write_json(run_dir / THRESHOLDS_FILE, dict(zip(label_names, (float(t) for t in thresholds))))


def load_thresholds(run_dir: Path, label_names: list[str]) -> list[float] | None:
    """A multi-label run's per-label thresholds, in label order; None when the run has no thresholds.json (it
    stopped before they were tuned), and a CheckpointError when the file does not name every label."""
    path = run_dir / THRESHOLDS_FILE
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or set(data) != set(label_names) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in data.values()
    ):
        raise CheckpointError(f"{path} must map each label in {LABELS_FILE} to a threshold in [0, 1]")
    return [float(data[name]) for name in label_names]


def load_calibration(run_dir: Path, label_names: list[str]) -> Calibration | None:
    """A run's calibration.json as a Calibration; None when the run has none (trained before seqnlp fitted one,
    or stopped before it), and a CheckpointError naming the file and the problem when it is malformed."""
    path = run_dir / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        return calibration_from_record(read_json(path), label_names)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line in place (not atomic: a crash can cut the line short; see the module docstring)."""
    with storage_errors(path), path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, fsync it and rename it over ``path``.

    A write the disk refuses (full, read-only, a quota or file size limit) is a StorageError naming ``path``, and
    the file it was to replace is left whole."""
    with storage_errors(path):
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- resumable training state -------------------------------------------------------------------------------
#
#   RUN_DIR/checkpoints/
#     last.json               {"dir": "step-00000420"}: the newest complete checkpoint, replaced atomically
#     step-00000420/
#       model.safetensors     weights at that step
#       optimizer.safetensors optimizer tensors (AdamW moments, step counts)
#       state.json            counters, best score, RNG states, optimizer hyper-parameters, scaler, history
#
# A checkpoint directory is complete before last.json names it, and older ones are deleted only after, so a crash
# at any moment leaves one loadable checkpoint. state.json is the JSON of ``training.state.TrainingState``
# (``to_json``/``from_json``) plus the optimizer's hyper-parameters; this module only writes and reads it.


def save_training_state(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    tokenizer: Tokenizer | None = None,
) -> Path:
    """Write a complete checkpoint for ``step`` and point ``last.json`` at it; returns its directory.

    ``state`` is the JSON of the training state (``TrainingState.to_json()``); it goes to state.json as it is.
    Only checkpoint directories (``step-NNNNNNNN``, not links) older than this one are deleted after it.
    """
    root = run_dir / CHECKPOINT_DIR
    name = f"step-{step:08d}"
    target = root / name
    with storage_errors(root):
        root.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        save_weights(model, staging / WEIGHTS_FILE, tokenizer)
        tensors, groups = flatten_optimizer(optimizer)
        with atomic_path(staging / OPTIMIZER_FILE) as tmp:
            save_file(tensors, str(tmp))
        write_json(staging / STATE_FILE, {**state, "optimizer_param_groups": groups})
        with storage_errors(target):
            os.chmod(staging, 0o777 & ~_umask())
            if target.exists():  # the same step saved twice (e.g. a signal right after the epoch-end save)
                shutil.rmtree(target)
            os.replace(staging, target)
            _fsync_dir(root)
        write_json(root / LAST_POINTER, {"dir": name})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for old in root.iterdir():  # only now is the previous checkpoint redundant
        if CHECKPOINT_NAME.fullmatch(old.name) and old.name != name and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_training_state(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer from the last checkpoint in place; return the JSON state, for
    ``TrainingState.from_json`` to read (and check). Every optimizer tensor is checked against its parameter."""
    directory = last_checkpoint(run_dir)
    if not (directory / STATE_FILE).is_file():
        raise CheckpointError(f"{directory / STATE_FILE} is missing")
    state = read_json(directory / STATE_FILE)
    groups = state.pop("optimizer_param_groups", None) if isinstance(state, dict) else None
    if not isinstance(groups, list):
        raise CheckpointError(f"{directory / STATE_FILE} has no optimizer_param_groups list; it is not a seqnlp "
                              "checkpoint")
    load_weights(model, directory / WEIGHTS_FILE)
    loaded = read_optimizer(directory / OPTIMIZER_FILE, groups, optimizer)
    try:
        optimizer.load_state_dict(loaded)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{directory / OPTIMIZER_FILE} does not fit the optimizer: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return state


def last_checkpoint(run_dir: Path) -> Path:
    """The checkpoint directory ``last.json`` names: a ``step-NNNNNNNN`` directory inside checkpoints/, never a
    link or a path that leads out of it."""
    root = run_dir / CHECKPOINT_DIR
    pointer = root / LAST_POINTER
    if not pointer.is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from ({CHECKPOINT_DIR}/{LAST_POINTER} is missing)")
    last = read_json(pointer)
    name = last.get("dir") if isinstance(last, dict) else None
    if not isinstance(name, str) or not CHECKPOINT_NAME.fullmatch(name):
        shown = json.dumps(last)[:60]
        raise CheckpointError(f'{pointer} must be {{"dir": "step-NNNNNNNN"}}, naming a checkpoint directory beside it,'
                              f" not {shown}")
    directory = root / name
    links = [p for p in (directory, *(directory / f for f in (WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE)))
             if p.is_symlink()]
    if links:
        raise CheckpointError(f"{links[0]} is a symbolic link; a checkpoint is read only from its own directory")
    if not directory.is_dir() or directory.resolve().parent != root.resolve():
        raise CheckpointError(f"{pointer} names {name}, which is not a checkpoint directory in {root}")
    return directory


def has_training_state(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT_DIR / LAST_POINTER).is_file()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
