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
      vectors.json       with model.pretrained_vectors: how much of the vocabulary the vectors covered
      tensorboard/       with train.tensorboard: event files of the same scalars (tensorboard --logdir)
      checkpoints/       the last resumable training state (see "resumable training state" below)
      pretrained/        with train.pretrain: the language model the run started from, a run directory itself

A language model's run directory (``seqnlp pretrain``, or pretrained/ above) has the same files but
thresholds.json; its model.safetensors holds embedding.*, encoder.* and the adaptive softmax (decoder.*), its
metrics.jsonl and results.json report loss and perplexity, and pretraining.json marks it and says what it read.

Every file but metrics.jsonl is written to a temporary name in the same directory and renamed, so a crash
leaves the previous file whole. metrics.jsonl grows by one appended line per epoch (``append_jsonl``): a
crash can cut its last line short, and a resume rewrites it whole from the checkpoint's history.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from seqnlp.config import Config, config_from_dict, read_config_file
from seqnlp.errors import CheckpointError, ConfigError
from seqnlp.model import RNNClassifier
from seqnlp.tokenizer import load_tokenizer, pad_id, vocab_digest

CONFIG_FILE = "config.yaml"
LABELS_FILE = "labels.json"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
THRESHOLDS_FILE = "thresholds.json"
VECTORS_FILE = "vectors.json"  # coverage of model.pretrained_vectors, when set
TENSORBOARD_DIR = "tensorboard"  # event files, when train.tensorboard is on
PRETRAINED_DIR = "pretrained"  # train.pretrain: the language-model run the classifier starts from
PRETRAINING_FILE = "pretraining.json"  # in a language model's run directory: its texts, directions and softmax
VOCAB_KEY = "vocab_sha256"  # safetensors metadata: the vocabulary the weights were trained with
REQUIRED_FILES = (CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE, WEIGHTS_FILE)
CHECKPOINT_DIR = "checkpoints"  # resumable training state (see below)
LAST_POINTER = "last.json"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Create the run directory; refuse to mix a new run into an existing one unless ``overwrite``."""
    run_dir = Path(path)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"output directory {run_dir} is a file")
    existing = [name for name in REQUIRED_FILES + (METRICS_FILE, RESULTS_FILE, THRESHOLDS_FILE, VECTORS_FILE,
                                                   PRETRAINING_FILE) if (run_dir / name).exists()]
    if existing and not overwrite:
        raise CheckpointError(
            f"output directory {run_dir} already holds a run ({existing[0]}); choose another --output-dir or pass --overwrite"
        )
    for name in existing:
        (run_dir / name).unlink()
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
    """Load safetensors weights into ``model``; a missing, corrupt or mismatched file is a CheckpointError."""
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"weights file {path} does not exist") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"weights file {path} is corrupt or truncated: {str(exc).splitlines()[0]}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"weights file {path} does not fit the model in {CONFIG_FILE}: {detail}") from None


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Config, Tokenizer, list[str], RNNClassifier]:
    """Read a run directory back: config, tokenizer, labels and the model with its best weights, in eval mode."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if (run_dir / PRETRAINING_FILE).is_file():
        raise CheckpointError(f"{run_dir} holds a language model (it has {PRETRAINING_FILE}), not a classifier; start "
                              f"one from it with seqnlp train --init-from {run_dir}")
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    if missing:
        raise CheckpointError(f"run directory {run_dir} is missing {', '.join(missing)}")
    try:
        config = config_from_dict(read_config_file(run_dir / CONFIG_FILE))
    except ConfigError as exc:
        raise CheckpointError(f"{run_dir / CONFIG_FILE}: {exc}") from None
    label_names = read_json(run_dir / LABELS_FILE)
    if not isinstance(label_names, list) or len(label_names) < 2 or not all(isinstance(n, str) for n in label_names):
        raise CheckpointError(f"{run_dir / LABELS_FILE} must be a JSON list of at least two label names")
    tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    model = RNNClassifier(config.model, tokenizer.get_vocab_size(), len(label_names), pad_id=pad_id(tokenizer))
    header = _safetensors_header(run_dir / WEIGHTS_FILE)
    embedding_rows = header.get("embedding.weight", {}).get("shape", [None])[0]
    trained_with = header.get("__metadata__", {}).get(VOCAB_KEY)
    if (embedding_rows is not None and embedding_rows != tokenizer.get_vocab_size()) or (
        trained_with is not None and trained_with != vocab_digest(tokenizer)
    ):
        raise CheckpointError(
            f"{run_dir / TOKENIZER_FILE} is not the tokenizer these weights were trained with "
            f"({tokenizer.get_vocab_size()} tokens, weights expect {embedding_rows})"
        )
    load_weights(model, run_dir / WEIGHTS_FILE)
    return config, tokenizer, label_names, model.to(device).eval()


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


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line in place (not atomic: a crash can cut the line short; see the module docstring)."""
    with path.open("a", encoding="utf-8") as f:
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


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (shapes and metadata) without loading tensors; {} if unreadable."""
    try:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if size <= 0 or size > 100_000_000:
                return {}  # load_weights reports the corrupt file
            header = json.loads(f.read(size))
        return header if isinstance(header, dict) else {}
    except (OSError, ValueError):
        return {}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, fsync it and rename it over ``path``."""
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
    """
    root = run_dir / CHECKPOINT_DIR
    root.mkdir(exist_ok=True)
    name = f"step-{step:08d}"
    target = root / name
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        save_weights(model, staging / WEIGHTS_FILE, tokenizer)
        tensors, groups = _flatten_optimizer(optimizer)
        with atomic_path(staging / OPTIMIZER_FILE) as tmp:
            save_file(tensors, str(tmp))
        write_json(staging / STATE_FILE, {**state, "optimizer_param_groups": groups})
        os.chmod(staging, 0o777 & ~_umask())
        if target.exists():  # the same step saved twice (e.g. a signal right after the epoch-end save)
            shutil.rmtree(target)
        os.replace(staging, target)
        _fsync_dir(root)
        write_json(root / LAST_POINTER, {"dir": name})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for old in root.iterdir():  # only now is the previous checkpoint redundant
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_training_state(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer from the last checkpoint in place; return the JSON state, for
    ``TrainingState.from_json`` to read (and check)."""
    root = run_dir / CHECKPOINT_DIR
    pointer = root / LAST_POINTER
    if not pointer.is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from ({CHECKPOINT_DIR}/{LAST_POINTER} is missing)")
    last = read_json(pointer)
    name = last.get("dir") if isinstance(last, dict) else None
    if not isinstance(name, str) or "/" in name or not (root / name).is_dir():
        raise CheckpointError(f"{pointer} names no checkpoint directory")
    directory = root / name
    if not (directory / STATE_FILE).is_file():
        raise CheckpointError(f"{directory / STATE_FILE} is missing")
    state = read_json(directory / STATE_FILE)
    groups = state.pop("optimizer_param_groups", None) if isinstance(state, dict) else None
    if not isinstance(groups, list):
        raise CheckpointError(f"{directory / STATE_FILE} has no optimizer_param_groups list; it is not a seqnlp "
                              "checkpoint")
    load_weights(model, directory / WEIGHTS_FILE)
    try:
        tensors = load_file(str(directory / OPTIMIZER_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{directory / OPTIMIZER_FILE} is corrupt or missing: {str(exc).splitlines()[0]}") from None
    try:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, groups))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{directory / OPTIMIZER_FILE} does not fit the optimizer: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return state


def has_training_state(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT_DIR / LAST_POINTER).is_file()


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Optimizer state_dict -> {"<param index>.<name>": tensor} for safetensors, and JSON param groups."""
    sd = optimizer.state_dict()
    tensors = {}
    for index, values in sd["state"].items():
        for key, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{key}"] = tensor.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = tensor
    return {"state": state, "param_groups": groups}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
