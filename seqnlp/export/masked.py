"""The classifier's forward pass over padded ids with a mask instead of packed sequences, for export.

ONNX and TorchScript cannot carry a ``PackedSequence``, so this module rebuilds the same computation from
plain tensor operations that export with dynamic batch and time axes. It runs the training model's own masked
path (``seqnlp.model.masked_recurrence``) with one difference: there each layer is a call into PyTorch's RNN
kernels with the model's parameters; here it is a module of its own, which exporters can trace and the ONNX
exporter turns into ONNX RNN/LSTM/GRU operators. In short:

- every layer and direction of the trained ``nn.RNN/LSTM/GRU`` becomes its own one-layer, one-direction module
  with the same weights;
- the forward direction runs over the padded batch as is: padding sits after each text's last real token, so
  it can only change states at padded positions, which are never read by a real one (the top layer's are
  zeroed and never pooled);
- the backward direction runs over each text reversed *within its length* (a gather), so it starts at the
  text's last real token and its padding again comes last; its outputs are gathered back into place;
- the final state of a direction is its output at the text's last real step (``length - 1``), which is
  exactly what the packed RNN's ``h_n`` holds;
- pooling and head are the trained model's own modules, fed the same masked outputs, and so is the n-gram
  branch (``model.ngram_orders``), which is made of plain integer and embedding operations already;
- the logits are divided by the run's calibration temperature (calibration.json; 1 when it has none), so the
  exported model's softmax (sigmoid) gives the calibrated probabilities ``Classifier.predict_proba`` gives.

So for every text the logits equal those of the packed ``RNNClassifier`` divided by the temperature, up to float
rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from seqnlp.model import CELL_CLASSES, Pooling, RNNClassifier, cell_name, layer_weights, masked_recurrence


class MaskedRNNClassifier(nn.Module):
    """``input_ids [B, T]`` and ``lengths [B]`` (int64) in, logits ``[B, C]`` out: no packing anywhere."""

    def __init__(self, model: RNNClassifier, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = float(temperature)  # a constant of the exported graph
        rnn = model.encoder.rnn
        self.num_layers = rnn.num_layers
        self.num_directions = 2 if rnn.bidirectional else 1
        self.embedding = model.embedding
        # One module per (layer, direction), in the order [l0 fwd, l0 bwd, l1 fwd, ...].
        self.directions = nn.ModuleList(
            _single_direction(rnn, layer, reverse)
            for layer in range(self.num_layers)
            for reverse in ([False, True] if rnn.bidirectional else [False])
        )
        self.pooling: Pooling = model.pooling
        self.head = model.head
        self.ngrams = model.ngrams  # the wide n-gram branch (seqnlp.ngrams) or None: plain tensor operations
        self.eval()

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """input_ids [B, T] int64, lengths [B] int64 (each in 1..T) -> logits [B, C]."""
        lengths = lengths.clamp(min=1)  # a zero length would index position -1; the tokenizer never makes one
        hidden = self.embedding(input_ids)  # [B, T, E]
        outputs, final = masked_recurrence(hidden, lengths, self._run_layer, self.num_layers, self.num_directions)
        pooled = self.pooling(outputs, final, lengths)  # [B, D*H]
        logits = self.head(pooled)  # [B, C]
        if self.ngrams is not None:
            logits = logits + self.ngrams(input_ids, lengths)  # [B, C]
        return logits if self.temperature == 1.0 else logits / self.temperature

    def _run_layer(self, layer: int, reverse: bool, inputs: torch.Tensor) -> torch.Tensor:
        """inputs [B, T, F] -> outputs [B, T, H] of one layer and direction's own module."""
        return self.directions[layer * self.num_directions + int(reverse)](inputs)[0]


def _single_direction(rnn: nn.RNNBase, layer: int, reverse: bool) -> nn.RNNBase:
    """A one-layer, one-direction copy of one layer and direction of ``rnn`` (batch first, same weights)."""
    kind = cell_name(rnn)
    input_size = rnn.input_size if layer == 0 else rnn.hidden_size * (2 if rnn.bidirectional else 1)
    kwargs = {"nonlinearity": rnn.nonlinearity} if kind == "rnn" else {}
    single = CELL_CLASSES[kind](input_size, rnn.hidden_size, num_layers=1, bias=rnn.bias, batch_first=True,
                                **kwargs)
    with torch.no_grad():
        for target, source in zip(layer_weights(single, 0, False), layer_weights(rnn, layer, reverse), strict=True):
            target.copy_(source)
    return single.to(next(rnn.parameters()).device)
