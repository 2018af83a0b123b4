"""TorchScript export: the masked model traced (both axes stay dynamic, every shape is read from the inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqnlp.checkpoint import atomic_path
from seqnlp.export.common import Runner, quiet_exporters
from seqnlp.export.masked import MaskedRNNClassifier
from seqnlp.export.quantize import quantize_dynamic


def write_torchscript(masked: MaskedRNNClassifier, example: tuple[torch.Tensor, torch.Tensor], path: Path,
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


def torchscript_runner(path: Path) -> Runner:
    with quiet_exporters():
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()

    return run
