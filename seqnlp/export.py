"""Export a trained run as one self-contained model file: ONNX (for onnxruntime) or TorchScript.

The exported model takes ``input_ids [B, T]`` and ``lengths [B]`` (both int64, texts padded on the right with
the pad id) and returns ``logits [B, C]``, for any batch size and any T. It runs the masked form of the
encoder (``seqnlp.masked``), since packed sequences do not export. Beside the model file go what a user needs
without seqnlp::

    OUTPUT_DIR/
      model.onnx | model.pt   the model (model.int8.* when quantized)
      tokenizer.json          the run's tokenizer: text -> ids, truncation to max_length included
      labels.json             label names in logit order
      export.json             inputs, outputs, pad id, max_length, label names, and the parity check

Every export is checked before it is reported: the exported file is run (by onnxruntime or torch.jit.load) on
random texts of mixed lengths, and its logits are compared with the packed model's.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn

from seqnlp.checkpoint import LABELS_FILE, TOKENIZER_FILE, atomic_path, load_run, write_json
from seqnlp.errors import ConfigError, SeqnlpError
from seqnlp.masked import MaskedRNNClassifier
from seqnlp.quantize import quantize_dynamic
from seqnlp.tokenizer import fallback_id, pad_id

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
MODEL_SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
METADATA_FILE = "export.json"
INPUT_NAMES = ["input_ids", "lengths"]
OUTPUT_NAMES = ["logits"]
FP32_TOLERANCE = 1e-4  # the largest logit difference an fp32 export may show, relative to logits above 1
INSTALL_HINT = "pip install 'seqnlp[export]'"


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


def export_run(run_dir: str | Path, format: str = "onnx", output: Optional[str | Path] = None,
               quantize: bool = False) -> ExportResult:
    """Export a run directory's model as ``format`` (onnx or torchscript), optionally int8-quantized.

    ``output`` is the model file, or a directory to put ``model.onnx``/``model.pt`` in; by default
    ``RUN_DIR/export/``. The tokenizer, labels and export.json are written beside the model file.
    """
    if format not in FORMATS:
        raise ConfigError(f"format: {format!r} is not one of {', '.join(FORMATS)}")
    if format == "onnx":
        require_onnx()
    config, tokenizer, labels, model = load_run(run_dir, "cpu")
    run_dir = Path(run_dir)
    model_file = _model_path(run_dir, output, format, quantize)
    model_file.parent.mkdir(parents=True, exist_ok=True)
    masked = MaskedRNNClassifier(model)
    example = _example_inputs(pad_id(tokenizer))
    if format == "onnx":
        from seqnlp.export_onnx import onnx_runner, write_onnx

        int8 = write_onnx(masked, example, model_file, quantize)
        run_exported = onnx_runner(model_file)
    else:
        int8 = _write_torchscript(masked, example, model_file, quantize)
        run_exported = _torchscript_runner(model_file)
    max_abs_diff, scale = _parity_check(model, run_exported, tokenizer.get_vocab_size(), pad_id(tokenizer),
                                        config.tokenizer.max_length)
    if not quantize and max_abs_diff > FP32_TOLERANCE * max(1.0, scale):
        raise SeqnlpError(f"{model_file}: exported logits differ from the trained model's by {max_abs_diff:.2e} "
                          f"(logits up to {scale:.3g}); please report this with {run_dir / 'config.yaml'}")
    metadata = _metadata(config, tokenizer, labels, model_file, format, quantize, int8, max_abs_diff, run_dir)
    files = [model_file]
    for name in (TOKENIZER_FILE, LABELS_FILE):
        target = model_file.parent / name
        if not (target.exists() and target.samefile(run_dir / name)):
            shutil.copyfile(run_dir / name, target)
        files.append(target)
    write_json(model_file.parent / METADATA_FILE, metadata)
    files.append(model_file.parent / METADATA_FILE)
    log.info("exported %s (%s%s), max |logit difference| %.2e on the check texts", model_file, format,
             ", int8" if quantize else "", max_abs_diff)
    return ExportResult(model_file, format, quantize, int8, max_abs_diff, files, metadata)


def require_onnx() -> None:
    """The ONNX exporter needs onnx and onnxscript; checking and quantizing need onnxruntime."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise SeqnlpError(f"ONNX export needs the {module} package: {INSTALL_HINT}") from None


def _model_path(run_dir: Path, output: Optional[str | Path], format: str, quantize: bool) -> Path:
    name = ("model.int8" if quantize else "model") + MODEL_SUFFIXES[format]
    if output is None:
        return run_dir / "export" / name
    path = Path(output)
    if path.is_dir() or not path.suffix:
        return path / name
    return path


def _example_inputs(pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch to trace with: 3 texts of lengths 5, 2 and 4. Batch and time differ, and no dimension is 0 or
    1 (torch.export would fix those), so neither is baked into the graph."""
    lengths = torch.tensor([5, 2, 4])  # [B]
    ids = torch.full((3, 5), pad, dtype=torch.long)  # [B, T]
    for row, length in enumerate(lengths.tolist()):
        ids[row, :length] = torch.arange(2, 2 + length)
    return ids, lengths


# --- TorchScript -------------------------------------------------------------------------------------------------

def _write_torchscript(masked: MaskedRNNClassifier, example: tuple[torch.Tensor, torch.Tensor], path: Path,
                       quantize: bool) -> list[str]:
    """Trace the masked model (every shape is read from the inputs, so both axes stay dynamic) and save it."""
    module: nn.Module = masked
    int8: list[str] = []
    if quantize:
        module, int8 = quantize_dynamic(masked)
    with quiet_exporters(), torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        with atomic_path(path) as tmp:
            traced.save(str(tmp))
    return int8


def _torchscript_runner(path: Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    with quiet_exporters():
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()

    return run


# --- checks and metadata ------------------------------------------------------------------------------------------

def _parity_check(model: nn.Module, run_exported: Callable[[np.ndarray, np.ndarray], np.ndarray], vocab_size: int,
                  pad: int, max_length: int, batch: int = 8, seed: int = 0) -> tuple[float, float]:
    """Max |logit difference| between the exported file and the packed model on random ids of mixed lengths,
    in a batch shape unlike the one traced; and the largest |logit|, the scale that difference is read on."""
    generator = torch.Generator().manual_seed(seed)
    width = min(max_length, 37)
    lengths = torch.linspace(1, width, batch).round().long()  # [B]: 1 .. width
    ids = torch.randint(2 if vocab_size > 2 else 0, vocab_size, (batch, width), generator=generator)  # [B, T]
    ids[torch.arange(width)[None, :] >= lengths[:, None]] = pad
    with torch.no_grad():
        expected = model(ids, lengths).numpy()  # [B, C]
    got = run_exported(ids.numpy(), lengths.numpy())  # [B, C]
    return float(np.abs(got - expected).max()), float(np.abs(expected).max())


def _metadata(config: Any, tokenizer: Any, labels: list[str], model_file: Path, format: str, quantize: bool,
              int8: list[str], max_abs_diff: float, run_dir: Path) -> dict[str, Any]:
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
                     "about": "unnormalized scores in label order; softmax gives probabilities"}],
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
        **({"opset": 18} if format == "onnx" else {}),
    }


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

