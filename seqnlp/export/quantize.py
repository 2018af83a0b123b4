"""Dynamic int8 quantization for CPU inference: int8 weights, activations quantized on the fly per batch.

``torch.ao.quantization.quantize_dynamic`` has int8 kernels for ``nn.Linear``, ``nn.LSTM`` and ``nn.GRU``
(packed sequences included), but none for the plain ``nn.RNN``: an RNN-cell model keeps its recurrence in
float32 and gets only its head quantized. The embedding stays float32 too: it is a table lookup, not a
matrix product, so int8 would shrink it but not speed it up.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from seqnlp.errors import SeqnlpError

log = logging.getLogger(__name__)

QUANTIZABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.LSTM, nn.GRU)


def quantize_dynamic(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A dynamically int8-quantized copy of ``model`` (CPU, eval mode) and the names of its int8 modules."""
    try:
        from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic
    except ImportError:  # pragma: no cover - torch.ao.quantization is deprecated and may go
        raise SeqnlpError(f"torch {torch.__version__} has no torch.ao.quantization.quantize_dynamic") from None
    model = model.cpu().eval()
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao, and its qint8 tensors their own deprecation, on
        # every call; both still work in the torch versions seqnlp supports.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        quantized = torch_quantize_dynamic(model, set(QUANTIZABLE), dtype=torch.qint8)
    names = [name for name, module in quantized.named_modules() if _is_dynamic_int8(module)]
    float_rnns = [name for name, module in quantized.named_modules() if type(module) is nn.RNN]
    if float_rnns:
        log.warning("torch has no dynamic int8 kernel for nn.RNN: %s stay float32; int8: %s",
                    ", ".join(float_rnns), ", ".join(names) or "nothing")
    else:
        log.info("int8 dynamic quantization: %s", ", ".join(names) or "nothing")
    return quantized.eval(), names


def _is_dynamic_int8(module: nn.Module) -> bool:
    """A module swapped in by quantize_dynamic (not its packed-parameter holders)."""
    kind = type(module)
    return kind.__module__.startswith("torch.ao.nn.quantized.dynamic") and kind.__name__ != "PackedParameter"
