"""What every export format shares: input and output names, the model file's path, the parity check and the
metadata written beside the model (export.json)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn

from seqnlp.checkpoint import LABELS_FILE, TOKENIZER_FILE
from seqnlp.tokenizer import fallback_id, pad_id

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
OPSET = 18  # the ONNX opset written
MODEL_SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
METADATA_FILE = "export.json"
INPUT_NAMES = ["input_ids", "lengths"]
OUTPUT_NAMES = ["logits"]
FP32_TOLERANCE = 1e-4  # the largest logit difference an fp32 export may show, relative to logits above 1
INSTALL_HINT = "pip install 'seqnlp[export]'"

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # runs an exported file: ids [B, T], lengths [B] -> [B, C]


@dataclass
class ExportResult:
    """What ``export_run`` wrote and what its parity check measured."""

    model_file: Path
    format: str
    quantized: bool
    int8: list[str]  # what is int8: module names (TorchScript) or ONNX operator types; empty when not quantized
    max_abs_diff: float  # exported vs packed fp32 model, on the check texts
    files: list[Path] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def model_path(run_dir: Path, output: Optional[str | Path], format: str, quantize: bool) -> Path:
    """The model file to write: ``output`` itself when it names a file, else ``model[.int8].onnx|.pt`` inside it
    (default ``RUN_DIR/export/``), so an int8 export never overwrites the fp32 one beside it."""
    name = ("model.int8" if quantize else "model") + MODEL_SUFFIXES[format]
    if output is None:
        return run_dir / "export" / name
    path = Path(output)
    if path.is_dir() or not path.suffix:
        return path / name
    return path


def example_inputs(pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch to trace with: 3 texts of lengths 5, 2 and 4. Batch and time differ, and no dimension is 0 or
    1 (torch.export would fix those), so neither is baked into the graph."""
    lengths = torch.tensor([5, 2, 4])  # [B]
    ids = torch.full((3, 5), pad, dtype=torch.long)  # [B, T]
    for row, length in enumerate(lengths.tolist()):
        ids[row, :length] = torch.arange(2, 2 + length)
    return ids, lengths


def parity_check(model: nn.Module, run_exported: Runner, vocab_size: int, pad: int, max_length: int, batch: int = 8,
                 seed: int = 0, temperature: float = 1.0) -> tuple[float, float]:
    """Max |logit difference| between the exported file and the packed model (its logits divided by
    ``temperature``, as the export divides them) on random ids of mixed lengths, in a batch shape unlike the one
    traced; and the largest |logit|, the scale that difference is read on."""
    generator = torch.Generator().manual_seed(seed)
    width = min(max_length, 37)
    lengths = torch.linspace(1, width, batch).round().long()  # [B]: 1 .. width
    ids = torch.randint(2 if vocab_size > 2 else 0, vocab_size, (batch, width), generator=generator)  # [B, T]
    ids[torch.arange(width)[None, :] >= lengths[:, None]] = pad
    with torch.no_grad():
        expected = (model(ids, lengths) / temperature).numpy()  # [B, C]
    got = run_exported(ids.numpy(), lengths.numpy())  # [B, C]
    return float(np.abs(got - expected).max()), float(np.abs(expected).max())


def metadata(config: Any, tokenizer: Any, labels: list[str], model_file: Path, format: str, quantize: bool,
             int8: list[str], max_abs_diff: float, run_dir: Path, calibration: Any = None) -> dict[str, Any]:
    """export.json: what a user without seqnlp needs to feed the model and read its logits, and where it came from.

    ``calibration`` (a seqnlp.calibration.Calibration, or None) is recorded: its temperature is already applied
    to the exported logits; a binary run's decision threshold is for the consumer to apply."""
    from seqnlp import __version__

    return {
        "format": format,
        "model_file": model_file.name,
        "tokenizer_file": TOKENIZER_FILE,
        "labels_file": LABELS_FILE,
        "inputs": [
            {"name": "input_ids", "dtype": "int64", "shape": ["batch", "time"],
             "about": "token ids from tokenizer.json, padded on the right with pad_id to the longest text"},
            {"name": "lengths", "dtype": "int64", "shape": ["batch"],
             "about": "real tokens per text, each between 1 and time"},
        ],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", len(labels)],
                     "about": "unnormalized scores in label order, already divided by calibration.temperature; "
                              + ("a sigmoid per label" if config.data.multi_label else "softmax")
                              + " gives calibrated probabilities"}],
        "calibration": _calibration(calibration, labels),
        "pad_id": pad_id(tokenizer),
        "empty_text_id": fallback_id(tokenizer),
        "max_length": config.tokenizer.max_length,
        "truncation_side": config.tokenizer.truncation_side,
        "labels": list(labels),
        "quantized": quantize,
        "int8": int8,
        "check": {"max_abs_logit_diff": max_abs_diff, "against": "the packed fp32 model of the run"},
        "model": config.model.__dict__.copy(),
        "source_run": str(run_dir),
        "seqnlp_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        **({"opset": OPSET} if format == "onnx" else {}),
    }


def _calibration(calibration: Any, labels: list[str]) -> dict[str, Any]:
    """export.json's calibration: the temperature inside the model, and a binary run's decision rule."""
    temperature = 1.0 if calibration is None else calibration.temperature
    threshold = None if calibration is None else calibration.threshold
    decision = None if threshold is None else {
        "positive_label": labels[threshold.positive], "threshold": threshold.threshold,
        "about": "decide positive_label when its probability is at least threshold, else the other label"}
    return {"temperature": temperature, "applied_in_model": True, "fitted": calibration is not None,
            "decision": decision}


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """Silence the exporters' chatter: deprecation notices (torch.jit), tracer and export warnings about
    constants that the parity check covers, and torch.onnx's progress lines."""
    # The root logger too: onnxruntime.quantization logs its advice there.
    loggers = [logging.getLogger(name) for name in ("", "torch.onnx", "torch.export", "torch._dynamo", "onnxscript",
                                                    "onnx_ir")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(_Discard()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

