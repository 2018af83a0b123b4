"""ONNX export: each recurrent layer as ONNX's own RNN/LSTM/GRU operator.

torch.export would unroll an ``nn.RNN`` step by step (fixing the time axis) and turn LSTM/GRU into loops, so
every layer and direction of the masked model is called through a custom op, ``seqnlp::recurrent_layer``, that
the exporter keeps opaque and that a translation here writes as one ONNX operator, weights as plain
initializers. onnxruntime's dynamic int8 quantization then finds the LSTM weights, the head and the embedding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqnlp.checkpoint import atomic_path
from seqnlp.errors import SeqnlpError
from seqnlp.export.common import INPUT_NAMES, INSTALL_HINT, OPSET, OUTPUT_NAMES, Runner, quiet_exporters
from seqnlp.export.masked import MaskedRNNClassifier
from seqnlp.model import cell_name, layer_weights

# ONNX orders gate blocks differently: torch LSTM i,f,g,o -> ONNX i,o,f,c; torch GRU r,z,n -> ONNX z,r,h.
_ONNX_GATES = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn_tanh": [0], "rnn_relu": [0]}


@torch.library.custom_op("seqnlp::recurrent_layer", mutates_args=())
def recurrent_layer(x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor, cell: str) -> torch.Tensor:
    """One layer and direction of an RNN/LSTM/GRU from a zero state, with ONNX's weight layout:
    x [B, T, F], w [1, G*H, F], r [1, G*H, H], b [1, 2*G*H] (gate blocks in ONNX order) -> outputs [B, T, H].

    An opaque op to torch.export, so the time axis stays dynamic (the exporter would unroll nn.RNN step by step
    and fix T) and each layer becomes ONNX's own RNN/LSTM/GRU operator with its weights as plain initializers,
    which onnxruntime's int8 quantization can then find.
    """
    gates = _ONNX_GATES[cell]
    hidden = r.shape[2]
    to_torch = [gates.index(g) for g in range(len(gates))]  # ONNX block holding torch's block g

    def torch_layout(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t[j * hidden:(j + 1) * hidden] for j in to_torch])

    w_ih, w_hh = torch_layout(w[0]), torch_layout(r[0])
    b_ih, b_hh = torch_layout(b[0, : len(gates) * hidden]), torch_layout(b[0, len(gates) * hidden:])
    h0 = x.new_zeros(1, x.shape[0], hidden)  # [1, B, H]
    params = [w_ih, w_hh, b_ih, b_hh]
    if cell == "lstm":
        out = torch.lstm(x, (h0, h0), params, True, 1, 0.0, False, False, True)[0]
    elif cell == "gru":
        out = torch.gru(x, h0, params, True, 1, 0.0, False, False, True)[0]
    else:
        rnn = torch.rnn_relu if cell == "rnn_relu" else torch.rnn_tanh
        out = rnn(x, h0, params, True, 1, 0.0, False, False, True)[0]
    return out.contiguous()  # [B, T, H]


@recurrent_layer.register_fake
def _(x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor, cell: str) -> torch.Tensor:
    return x.new_empty(x.shape[0], x.shape[1], r.shape[2])


class _RecurrentOp(nn.Module):
    """A one-layer, one-direction nn.RNN/LSTM/GRU with its weights in ONNX's layout, run by
    ``seqnlp::recurrent_layer``."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        name = cell_name(rnn)
        self.cell = f"rnn_{rnn.nonlinearity}" if name == "rnn" else name
        gates, hidden = _ONNX_GATES[self.cell], rnn.hidden_size

        def onnx_layout(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t[g * hidden:(g + 1) * hidden] for g in gates]).detach()

        w_ih, w_hh, b_ih, b_hh = layer_weights(rnn, 0, False)
        self.register_buffer("w", onnx_layout(w_ih)[None])  # [1, G*H, F]
        self.register_buffer("r", onnx_layout(w_hh)[None])  # [1, G*H, H]
        self.register_buffer("b", torch.cat([onnx_layout(b_ih), onnx_layout(b_hh)])[None])  # [1, 2*G*H]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return recurrent_layer(x, self.w, self.r, self.b, self.cell), None  # [B, T, H]


def _onnx_recurrent_layer(x: Any, w: Any, r: Any, b: Any, cell: str) -> Any:
    """ONNX translation of ``seqnlp::recurrent_layer``: the weights are already in ONNX's layout."""
    from onnxscript import opset18 as op

    hidden = int(r.shape[2])
    steps = op.Transpose(x, perm=[1, 0, 2])  # [T, B, F]
    if cell == "lstm":
        y, _, _ = op.LSTM(steps, w, r, b, hidden_size=hidden)
    elif cell == "gru":
        # linear_before_reset=1 is PyTorch's GRU: the reset gate multiplies (W_hn h + b_hn).
        y, _ = op.GRU(steps, w, r, b, hidden_size=hidden, linear_before_reset=1)
    else:
        y, _ = op.RNN(steps, w, r, b, hidden_size=hidden, activations=["Relu" if cell == "rnn_relu" else "Tanh"])
    return op.Transpose(op.Squeeze(y, [1]), perm=[1, 0, 2])  # [T, 1, B, H] -> [B, T, H]


def write_onnx(masked: MaskedRNNClassifier, example: tuple[torch.Tensor, torch.Tensor], path: Path,
               quantize: bool) -> list[str]:
    """Export through torch.export (dynamic batch and time); with ``quantize``, then onnxruntime's int8."""
    # The masked model is export_run's own: its layers are swapped for the op ONNX gets as its RNN/LSTM/GRU.
    masked.directions = nn.ModuleList(_RecurrentOp(rnn) for rnn in masked.directions)  # type: ignore[arg-type]
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    with quiet_exporters(), torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(
            masked, example, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
            dynamic_shapes={"input_ids": {0: batch, 1: time}, "lengths": {0: batch}},
            custom_translation_table={torch.ops.seqnlp.recurrent_layer.default: _onnx_recurrent_layer},
            opset_version=OPSET, dynamo=True, optimize=True, verbose=False,
        )
        assert program is not None
        if not quantize:
            with atomic_path(path) as tmp:
                program.save(str(tmp))
            return []
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            fp32 = Path(scratch) / "model.onnx"
            program.save(str(fp32))
            with atomic_path(path) as tmp:
                _quantize_onnx(fp32, tmp)
    return _onnx_int8_ops(path)


def _quantize_onnx(source: Path, target: Path) -> None:
    """onnxruntime's dynamic int8 quantization: LSTM, MatMul and the embedding Gather (it has no GRU or RNN)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic as ort_quantize_dynamic

    ort_quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def _onnx_int8_ops(path: Path) -> list[str]:
    """The int8 operator types onnxruntime put in: DynamicQuantizeLSTM, MatMulInteger (the head),
    DequantizeLinear (an int8 initializer such as the embedding), ..."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sorted({node.op_type for node in graph.node if any(k in node.op_type for k in ("Integer", "uantize"))})


def onnx_runner(path: Path) -> Runner:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return session.run(OUTPUT_NAMES, {"input_ids": ids, "lengths": lengths})[0]

    return run


def require_onnx() -> None:
    """The ONNX exporter needs onnx and onnxscript; checking and quantizing need onnxruntime."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise SeqnlpError(f"ONNX export needs the {module} package: {INSTALL_HINT}") from None
