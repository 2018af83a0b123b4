"""Embedding -> RNN/LSTM/GRU over a packed sequence -> pooling over real tokens -> classifier head.

Padding never reaches the recurrence: a batch of mixed lengths is packed, and a batch whose texts all
have the same length runs dense (packing would change nothing, and the dense path is the fast one). So a
text gets the same logits alone and inside any padded batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqnlp.config import ModelConfig
from seqnlp.errors import ConfigError

_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def make_rnn(cfg: ModelConfig, input_size: int) -> nn.RNNBase:
    """The recurrent layer stack named by ``cfg.cell``."""
    if cfg.cell not in _CELLS:
        raise ConfigError(f"model.cell: {cfg.cell!r} is not one of {', '.join(_CELLS)}")
    kwargs = {"nonlinearity": cfg.nonlinearity} if cfg.cell == "rnn" else {}
    return _CELLS[cfg.cell](
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
        self.num_directions = 2 if cfg.bidirectional else 1
        self.output_dim = cfg.hidden_size * self.num_directions

    def forward(
        self, embedded: torch.Tensor, lengths: torch.Tensor, need_outputs: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """embedded [B, T, E], lengths [B] (CPU) -> outputs [B, T, D*H] (zeros past each length) or None,
        final [B, D*H] (top layer: forward state at the last real token, backward state at the first)."""
        batch, width = embedded.shape[:2]
        if bool((lengths == width).all()):
            outputs, state = self.rnn(embedded)  # equal lengths: no padding, no packing needed
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
    """Token ids and lengths in, class logits out."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, num_labels: int, pad_id: int = 0) -> None:
        super().__init__()
        self.config = cfg
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=pad_id)
        self.embedding_dropout = nn.Dropout(cfg.embedding_dropout)
        self.encoder = RecurrentEncoder(cfg, cfg.embedding_dim)
        self.pooling = Pooling(cfg.pooling, self.encoder.output_dim)
        self.head = _head(cfg, self.encoder.output_dim, num_labels)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """input_ids [B, T], lengths [B] (CPU, each >= 1) -> logits [B, C]."""
        embedded = self.embedding_dropout(self.embedding(input_ids))  # [B, T, E]
        outputs, final = self.encoder(embedded, lengths, need_outputs=self.pooling.needs_outputs)
        pooled = self.pooling(outputs, final, lengths)  # [B, D*H]
        return self.head(pooled)  # [B, C]


def _head(cfg: ModelConfig, input_dim: int, num_labels: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(cfg.dropout)]
    if cfg.head_hidden_size > 0:
        layers += [nn.Linear(input_dim, cfg.head_hidden_size), _ACTIVATIONS[cfg.head_activation](), nn.Dropout(cfg.dropout)]
        input_dim = cfg.head_hidden_size
    layers.append(nn.Linear(input_dim, num_labels))
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
