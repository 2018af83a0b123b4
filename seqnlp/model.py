"""Embedding -> RNN/LSTM/GRU over real tokens only -> pooling over real tokens -> classifier head.

Padding never reaches a real token's state, whichever of three equivalent paths a batch takes:

- dense: every text in the batch has the same length, so there is no padding and the RNN runs as is;
- packed: ``pack_padded_sequence``; cuDNN runs it natively, but on the CPU PyTorch then steps through time
  one small matrix product at a time, and its cost per token grows with the batch's width;
- masked: each layer and direction runs dense over the padded batch. Padding sits after each text's last
  token, so the forward direction only carries it into padded positions; the backward direction reads each
  text reversed *within its length* (a gather), so its padding also comes last. Final states are read at
  each text's last real step. On the CPU this reaches oneDNN's fused LSTM kernel and PyTorch's batched input
  projections, at the price of computing the padded positions.

So a text gets the same logits alone and inside any padded batch, on any path (up to float rounding).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import _VF, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqnlp.config import ModelConfig
from seqnlp.errors import ConfigError
from seqnlp.ngrams import NgramBranch

# The one table of recurrent cells: config name -> PyTorch class (cell_name reads it backwards). Its names are
# seqnlp.config.CELLS, which validates model.cell without importing torch.
CELL_CLASSES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}

# recurrence=auto on the CPU takes the masked path when at most this share of a batch is padding, or when the
# batch is at least MASKED_MIN_WIDTH steps wide: PyTorch's packed CPU path slows down per token as batches get
# longer (5-7x slower than masked for an LSTM at 150-200 tokens), while the masked path pays for every padded position.
# Measured with scripts/recurrence_paths.py (docs/cells.md, "How padding is handled").
MASKED_MAX_PADDING = 0.15
MASKED_MIN_WIDTH = 64


def cell_name(rnn: nn.Module) -> str:
    """The ``CELL_CLASSES`` name of ``rnn``'s class, so code holding a built RNN (export, diagnostics) need not
    keep a table of its own; any other class (e.g. torch's int8 LSTM) is a ValueError naming the valid ones."""
    for name, kind in CELL_CLASSES.items():
        if type(rnn) is kind:
            return name
    valid = ", ".join(kind.__name__ for kind in CELL_CLASSES.values())
    raise ValueError(f"{type(rnn).__module__}.{type(rnn).__name__} is not one of {valid}")


def make_rnn(cfg: ModelConfig, input_size: int) -> nn.RNNBase:
    """The recurrent layer stack named by ``cfg.cell``."""
    if cfg.cell not in CELL_CLASSES:
        raise ConfigError(f"model.cell: {cfg.cell!r} is not one of {', '.join(CELL_CLASSES)}")
    kwargs = {"nonlinearity": cfg.nonlinearity} if cfg.cell == "rnn" else {}
    return CELL_CLASSES[cfg.cell](
        input_size,
        cfg.hidden_size,
        num_layers=cfg.num_layers,
        bidirectional=cfg.bidirectional,
        # Dropout acts between stacked layers only; PyTorch warns when it is set for a single layer.
        dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        batch_first=True,
        **kwargs,
    )


class RecurrentEncoder(nn.Module):
    """Runs the RNN over real tokens only and returns per-step outputs and the final state."""

    def __init__(self, cfg: ModelConfig, input_size: int) -> None:
        super().__init__()
        self.rnn = make_rnn(cfg, input_size)
        self.recurrence = cfg.recurrence
        self.num_directions = 2 if cfg.bidirectional else 1
        self.output_dim = cfg.hidden_size * self.num_directions

    def path(self, lengths: torch.Tensor, width: int, device: torch.device) -> str:
        """Which equivalent computation a batch of ``lengths`` padded to ``width`` takes: dense | packed | masked."""
        if bool((lengths == width).all()):
            return "dense"  # no padding: packing would change nothing
        if type(self.rnn) not in CELL_CLASSES.values():
            return "packed"  # e.g. torch's int8 LSTM/GRU (seqnlp.export.quantize): its kernels take packed input
        if self.recurrence != "auto":
            return self.recurrence
        if device.type != "cpu":
            return "packed"  # cuDNN runs packed sequences natively
        padding = 1.0 - int(lengths.sum()) / (len(lengths) * width)
        return "masked" if padding <= MASKED_MAX_PADDING or width >= MASKED_MIN_WIDTH else "packed"

    def forward(
        self, embedded: torch.Tensor, lengths: torch.Tensor, need_outputs: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """embedded [B, T, E], lengths [B] (CPU) -> outputs [B, T, D*H] (zeros past each length) or None,
        final [B, D*H] (top layer: forward state at the last real token, backward state at the first)."""
        batch, width = embedded.shape[:2]
        path = self.path(lengths, width, embedded.device)
        if path == "masked":
            return self._forward_masked(embedded, lengths.to(embedded.device))
        if path == "dense":
            outputs, state = self.rnn(embedded)
        else:
            packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
            packed_out, state = self.rnn(packed)
            outputs = None
            if need_outputs:
                outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=width)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n); [L*D, B, H]
        top = h_n[-self.num_directions :]  # [D, B, H]: the last layer's directions
        final = top.transpose(0, 1).reshape(batch, self.output_dim)  # [B, D*H]
        return outputs, final

    def _forward_masked(self, embedded: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The masked path (see the module docstring), with this RNN's own parameters; shapes as ``forward``."""
        rnn = self.rnn

        def run_layer(layer: int, reverse: bool, inputs: torch.Tensor) -> torch.Tensor:
            return _single_layer(rnn, layer, reverse, inputs, self.training)

        dropout = rnn.dropout if self.training else 0.0  # what nn.RNNBase does between layers
        return masked_recurrence(embedded, lengths, run_layer, rnn.num_layers, self.num_directions, dropout)


def masked_recurrence(
    embedded: torch.Tensor,
    lengths: torch.Tensor,
    run_layer: Callable[[int, bool, torch.Tensor], torch.Tensor],
    num_layers: int,
    num_directions: int,
    dropout: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """embedded [B, T, E], lengths [B] (on embedded's device, each in 1..T) -> outputs [B, T, D*H] (zeros past
    each length), final [B, D*H], the same as the packed RNN's.

    ``run_layer(layer, reverse, inputs [B, T, F])`` runs one layer and direction densely -> [B, T, H]: the
    training model calls PyTorch's RNN kernels with its own parameters, the export (seqnlp.export.masked) modules
    that exporters can trace. ``dropout`` is applied between layers (pass 0 outside training)."""
    mask, reverse_index, last_index = step_indices(lengths, embedded.shape[1])
    hidden = embedded  # [B, T, F]
    finals: list[torch.Tensor] = []
    for layer in range(num_layers):
        if layer > 0 and dropout > 0:
            hidden = F.dropout(hidden, dropout, training=True)
        outputs, finals = [], []
        for direction in range(num_directions):
            reverse = direction == 1
            # Padding never reaches a real step: it comes after each text's last token in both directions.
            inputs = gather_steps(hidden, reverse_index) if reverse else hidden
            out = run_layer(layer, reverse, inputs)  # [B, T, H]; reversed: step t = position length-1-t
            finals.append(out.gather(1, last_index.expand(-1, 1, out.shape[2])).squeeze(1))  # [B, H]
            outputs.append(gather_steps(out, reverse_index) if reverse else out)  # the map is its own inverse
        hidden = torch.cat(outputs, dim=2)  # [B, T, D*H]
    outputs_top = hidden * mask[..., None].to(hidden.dtype)  # padded positions hold zeros, as when packed
    return outputs_top, torch.cat(finals, dim=1)  # [B, T, D*H], [B, D*H]


def step_indices(lengths: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """lengths [B] (each in 1..width) -> mask [B, T] of real steps; reverse_index [B, T]: the position each step
    of a text reversed within its length reads (padding stays last; the map is its own inverse); last_index
    [B, 1, 1]: each text's last real step. Shared by every code path that runs a backward direction densely
    (the masked path, the export, the diagnostics), so they all reverse texts the same way."""
    steps = torch.arange(width, device=lengths.device)[None, :]  # [1, T]
    mask = steps < lengths[:, None]  # [B, T]
    reverse_index = torch.where(mask, lengths[:, None] - 1 - steps, steps)  # [B, T]
    return mask, reverse_index, (lengths - 1)[:, None, None]


def gather_steps(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values [B, T, F], index [B, T] -> values[b, index[b, t]] as [B, T, F]."""
    return values.gather(1, index[..., None].expand(-1, -1, values.shape[2]))


def layer_weights(rnn: nn.RNNBase, layer: int, reverse: bool) -> list[torch.Tensor]:
    """``rnn``'s own parameters of one layer and direction, in the order PyTorch's RNN kernels take them:
    weight_ih [G*H, F], weight_hh [G*H, H], then bias_ih [G*H] and bias_hh [G*H] when ``rnn.bias``
    (G gate blocks: 1 RNN, 3 GRU, 4 LSTM). The one place that knows PyTorch's ``weight_ih_l0_reverse`` names."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ())
    return [getattr(rnn, name + suffix) for name in names]


def _single_layer(rnn: nn.RNNBase, layer: int, reverse: bool, inputs: torch.Tensor, training: bool) -> torch.Tensor:
    """One layer and direction of ``rnn`` over dense ``inputs`` [B, T, F] -> outputs [B, T, H], through the same
    kernels ``nn.RNNBase.forward`` calls and with ``rnn``'s own parameters (so gradients reach them)."""
    return run_kernel(rnn, layer_weights(rnn, layer, reverse), inputs, training)


def run_kernel(rnn: nn.RNNBase, weights: list[torch.Tensor], inputs: torch.Tensor, training: bool) -> torch.Tensor:
    """``rnn``'s cell kernel over dense ``inputs`` [B, T, F] with ``weights`` (``layer_weights``' order, weight_ih
    [G*H, F]) -> outputs [B, T, H]. The language model passes a column slice of weight_ih, so each direction of
    a stacked bidirectional encoder reads its own direction's outputs only (``seqnlp.lm``)."""
    h0 = inputs.new_zeros(1, inputs.shape[0], rnn.hidden_size)  # [1, B, H]
    args = (rnn.bias, 1, 0.0, training, False, True)  # bias, layers, dropout, train, bidirectional, batch_first
    if isinstance(rnn, nn.LSTM):
        return _VF.lstm(inputs, (h0, h0), weights, *args)[0]
    if isinstance(rnn, nn.GRU):
        return _VF.gru(inputs, h0, weights, *args)[0]
    kernel = _VF.rnn_tanh if rnn.nonlinearity == "tanh" else _VF.rnn_relu
    return kernel(inputs, h0, weights, *args)[0]


class Pooling(nn.Module):
    """Reduces per-step outputs to one vector per text, looking at real tokens only."""

    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        self.kind = kind
        # No bias: softmax ignores a constant added to every score, so a bias could never learn.
        self.score = nn.Linear(dim, 1, bias=False) if kind == "attention" else None

    @property
    def needs_outputs(self) -> bool:
        return self.kind != "last"

    def forward(self, outputs: torch.Tensor | None, final: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """outputs [B, T, D*H] or None, final [B, D*H], lengths [B] -> [B, D*H]."""
        if self.kind == "last":
            return final
        assert outputs is not None
        width = outputs.shape[1]
        mask = torch.arange(width, device=outputs.device) < lengths.to(outputs.device)[:, None]  # [B, T]
        if self.kind == "mean":
            summed = (outputs * mask[..., None]).sum(dim=1)  # [B, D*H]
            return summed / lengths.to(outputs.device, outputs.dtype)[:, None]
        if self.kind == "max":
            return outputs.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)  # [B, D*H]
        assert self.score is not None
        scores = self.score(outputs).squeeze(-1).masked_fill(~mask, float("-inf"))  # [B, T]
        weights = torch.softmax(scores.float(), dim=1).to(outputs.dtype)  # [B, T]
        return torch.bmm(weights[:, None, :], outputs).squeeze(1)  # [B, D*H]


class RNNClassifier(nn.Module):
    """Token ids and lengths in, class logits out; with ``model.ngram_orders``, a wide n-gram branch's logits
    (seqnlp.ngrams) are added to the head's."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, num_labels: int, pad_id: int = 0) -> None:
        super().__init__()
        self.config = cfg
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=pad_id)
        self.embedding_dropout = nn.Dropout(cfg.embedding_dropout)
        self.encoder = RecurrentEncoder(cfg, cfg.embedding_dim)
        self.pooling = Pooling(cfg.pooling, self.encoder.output_dim)
        self.head = _head(cfg, self.encoder.output_dim, num_labels)
        self.ngrams = (NgramBranch(cfg.ngram_orders, vocab_size, cfg.ngram_buckets, num_labels, cfg.ngram_dropout)
                       if cfg.ngram_orders else None)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor, parts: bool = False) -> torch.Tensor:
        """input_ids [B, T], lengths [B] (CPU, each >= 1) -> logits [B, C].

        ``parts`` (training): [P, B, C], the logits and then, with an n-gram branch and ``model.ngram_aux_loss``,
        the recurrent head's and the branch's own logits, each to get a loss: the branch can fit the training
        texts early (their rare n-grams name their label), and then the sum's loss no longer teaches the RNN;
        with their own losses both learn as they would alone, and the sum is an ensemble of the two."""
        head = self.from_embeddings(self.embedding(input_ids), lengths)  # [B, C]
        if self.ngrams is None:
            return head[None] if parts else head
        wide = self.ngrams(input_ids, lengths)  # [B, C]
        logits = head + wide  # [B, C]
        if not parts:
            return logits
        return torch.stack([logits, head, wide]) if self.config.ngram_aux_loss else logits[None]  # [P, B, C]

    def from_embeddings(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """embedded [B, T, E] (rows of ``embedding``, or points between them), lengths [B] -> the recurrent head's
        logits [B, C]: the forward pass after the lookup, which attributions (seqnlp.explain) differentiate. An
        n-gram branch's logits (``ngrams``) depend on the ids alone and are not included."""
        embedded = self.embedding_dropout(embedded)  # [B, T, E]
        outputs, final = self.encoder(embedded, lengths, need_outputs=self.pooling.needs_outputs)
        pooled = self.pooling(outputs, final, lengths)  # [B, D*H]
        return self.head(pooled)  # [B, C]


def _head(cfg: ModelConfig, input_dim: int, num_labels: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(cfg.dropout)]
    if cfg.head_hidden_size > 0:
        activation = _ACTIVATIONS[cfg.head_activation]()
        layers += [nn.Linear(input_dim, cfg.head_hidden_size), activation, nn.Dropout(cfg.dropout)]
        input_dim = cfg.head_hidden_size
    layers.append(nn.Linear(input_dim, num_labels))
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


_GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per recurrent layer and direction


def min_parameters(cfg: ModelConfig, vocab_size: int, num_labels: int) -> int:
    """A lower bound on the parameters of ``RNNClassifier(cfg, vocab_size, num_labels)``, computed without building
    it: the embedding, the recurrent stack and the output layer's weight (other parts only add). Loading a run
    compares it with the weights file's header first, so a config.yaml describing a huge model allocates nothing."""
    directions, hidden = (2 if cfg.bidirectional else 1), cfg.hidden_size
    recurrent = 0
    for layer in range(cfg.num_layers):
        inputs = cfg.embedding_dim if layer == 0 else directions * hidden
        recurrent += directions * _GATES.get(cfg.cell, 1) * hidden * (inputs + hidden + 2)  # W_ih, W_hh, two biases
    head_inputs = cfg.head_hidden_size or directions * hidden
    return vocab_size * cfg.embedding_dim + recurrent + head_inputs * num_labels
