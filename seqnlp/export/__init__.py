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

import logging
import shutil
from pathlib import Path
from typing import Optional

from seqnlp.checkpoint import LABELS_FILE, TOKENIZER_FILE, load_run, write_json
from seqnlp.errors import ConfigError, SeqnlpError
from seqnlp.export.common import (
    FORMATS,
    FP32_TOLERANCE,
    METADATA_FILE,
    ExportResult,
    example_inputs,
    metadata,
    model_path,
    parity_check,
)
from seqnlp.export.masked import MaskedRNNClassifier
from seqnlp.export.onnx import onnx_runner, require_onnx, write_onnx
from seqnlp.export.torchscript import torchscript_runner, write_torchscript
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
        require_onnx()
    config, tokenizer, labels, model = load_run(run_dir, "cpu")
    run_dir = Path(run_dir)
    model_file = model_path(run_dir, output, format, quantize)
    model_file.parent.mkdir(parents=True, exist_ok=True)
    masked = MaskedRNNClassifier(model)
    example = example_inputs(pad_id(tokenizer))
    if format == "onnx":
        int8 = write_onnx(masked, example, model_file, quantize)
        run_exported = onnx_runner(model_file)
    else:
        int8 = write_torchscript(masked, example, model_file, quantize)
        run_exported = torchscript_runner(model_file)
    max_abs_diff, scale = parity_check(model, run_exported, tokenizer.get_vocab_size(), pad_id(tokenizer),
                                        config.tokenizer.max_length)
    if not quantize and max_abs_diff > FP32_TOLERANCE * max(1.0, scale):
        raise SeqnlpError(f"{model_file}: exported logits differ from the trained model's by {max_abs_diff:.2e} "
                          f"(logits up to {scale:.3g}); please report this with {run_dir / 'config.yaml'}")
    meta = metadata(config, tokenizer, labels, model_file, format, quantize, int8, max_abs_diff, run_dir)
    files = [model_file]
    for name in (TOKENIZER_FILE, LABELS_FILE):
        target = model_file.parent / name
        if not (target.exists() and target.samefile(run_dir / name)):
            shutil.copyfile(run_dir / name, target)
        files.append(target)
    write_json(model_file.parent / METADATA_FILE, meta)
    files.append(model_file.parent / METADATA_FILE)
    log.info("exported %s (%s%s), max |logit difference| %.2e on the check texts", model_file, format,
             ", int8" if quantize else "", max_abs_diff)
    return ExportResult(model_file, format, quantize, int8, max_abs_diff, files, meta)
