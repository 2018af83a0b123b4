"""Export a trained run as one self-contained model file: ONNX (for onnxruntime) or TorchScript.

The exported model takes ``input_ids [B, T]`` and ``lengths [B]`` (both int64, texts padded on the right with
the pad id) and returns ``logits [B, C]``, for any batch size and any T. It runs the masked form of the
encoder (``seqnlp.export.masked``), since packed sequences do not export. Beside the model file go what a user needs
without seqnlp::

    OUTPUT_DIR/
      model.onnx | model.pt   the model (model.int8.* when quantized)
      tokenizer.json          the run's tokenizer: text -> ids, truncation to max_length included
      labels.json             label names in logit order
      export.json             inputs, outputs, pad id, max_length, label names, calibration, and the parity check

The run's calibration temperature (calibration.json) is part of the exported model: its logits are already divided
by it, so their softmax is the calibrated probability seqnlp predicts. export.json records the temperature and a
binary run's decision threshold (which the consumer applies to the probabilities).

Every export is checked before it is reported: the exported file is run (by onnxruntime or torch.jit.load) on
random texts of mixed lengths, and its logits are compared with the packed model's.

The package's modules: ``common`` (names, opset, paths, the parity check, export.json), ``masked`` (the model
without packing), ``onnx`` and ``torchscript`` (one format each, loaded only by ``export_run``, so that
``seqnlp.export.quantize``, which ``Classifier.load(quantize=True)`` uses, does not register the ONNX op).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Optional

import torch

from seqnlp.checkpoint import LABELS_FILE, TOKENIZER_FILE, load_calibration, load_run, write_json
from seqnlp.errors import ConfigError, SeqnlpError
from seqnlp.export.common import (
    FORMATS,
    FP32_TOLERANCE,
    METADATA_FILE,
    ExportResult,
    Runner,
    example_inputs,
    metadata,
    model_path,
    parity_check,
)
from seqnlp.export.masked import MaskedRNNClassifier
from seqnlp.rundir import storage_errors
from seqnlp.tokenizer import pad_id

__all__ = ["FORMATS", "ExportResult", "export_run"]

log = logging.getLogger(__name__)


def export_run(run_dir: str | Path, format: str = "onnx", output: Optional[str | Path] = None,
               quantize: bool = False) -> ExportResult:
    """Export a run directory's model as ``format`` (onnx or torchscript), optionally int8-quantized.

    ``output`` is the model file, or a directory to put ``model.onnx``/``model.pt`` in; by default
    ``RUN_DIR/export/``. The tokenizer, labels and export.json are written beside the model file.
    """
    if format not in FORMATS:
        raise ConfigError(f"format: {format!r} is not one of {', '.join(FORMATS)}")
    if format == "onnx":
        from seqnlp.export.onnx import require_onnx

        require_onnx()  # before any work: a missing package is the user's first error, not the last
    config, tokenizer, labels, model = load_run(run_dir, "cpu")
    run_dir = Path(run_dir)
    calibration = load_calibration(run_dir, labels)
    temperature = 1.0 if calibration is None else calibration.temperature
    model_file = model_path(run_dir, output, format, quantize)
    with storage_errors(model_file):  # a full or read-only disk: one line naming the file, not a traceback
        model_file.parent.mkdir(parents=True, exist_ok=True)
        int8, run_exported = _write(format, MaskedRNNClassifier(model, temperature),
                                    example_inputs(pad_id(tokenizer)), model_file, quantize)
    max_abs_diff, scale = parity_check(model, run_exported, tokenizer.get_vocab_size(), pad_id(tokenizer),
                                       config.tokenizer.max_length, temperature=temperature)
    if not quantize and max_abs_diff > FP32_TOLERANCE * max(1.0, scale):
        raise SeqnlpError(f"{model_file}: exported logits differ from the trained model's by {max_abs_diff:.2e} "
                          f"(logits up to {scale:.3g}); please report this with {run_dir / 'config.yaml'}")
    meta = metadata(config, tokenizer, labels, model_file, format, quantize, int8, max_abs_diff, run_dir,
                    calibration)
    files = [model_file]
    for name in (TOKENIZER_FILE, LABELS_FILE):
        target = model_file.parent / name
        if not (target.exists() and target.samefile(run_dir / name)):
            with storage_errors(target):
                shutil.copyfile(run_dir / name, target)
        files.append(target)
    write_json(model_file.parent / METADATA_FILE, meta)
    files.append(model_file.parent / METADATA_FILE)
    log.info("exported %s (%s%s), max |logit difference| %.2e on the check texts", model_file, format,
             ", int8" if quantize else "", max_abs_diff)
    return ExportResult(model_file, format, quantize, int8, max_abs_diff, files, meta)


def _write(format: str, masked: MaskedRNNClassifier, example: tuple[torch.Tensor, torch.Tensor], model_file: Path,
           quantize: bool) -> tuple[list[str], Runner]:
    """Write ``model_file`` in ``format``: what is int8, and a function that runs the written file.

    The format modules are imported here, not with the package: the ONNX one registers a custom torch op."""
    if format == "onnx":
        from seqnlp.export.onnx import onnx_runner, write_onnx

        return write_onnx(masked, example, model_file, quantize), onnx_runner(model_file)
    from seqnlp.export.torchscript import torchscript_runner, write_torchscript

    return write_torchscript(masked, example, model_file, quantize), torchscript_runner(model_file)
