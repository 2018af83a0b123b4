"""A language model over the classifier's own embedding and recurrent encoder, for in-domain pretraining.

``LanguageModel`` holds ``embedding`` and ``encoder`` exactly as ``RNNClassifier`` names and shapes them, so a
classifier can start from its weights (``seqnlp.training.finetune``), and an adaptive softmax
(``nn.AdaptiveLogSoftmaxWithLoss``) as its output: the most frequent token ids form a full-size head, the rarer
ones clusters behind smaller projections, so a 30,000-word output costs little more on the CPU than a 2,000-word one.
Token ids must be sorted by frequency for that, as seqnlp's word tokenizer sorts them.

A bidirectional encoder is trained as two language models (ELMo): the forward direction's output at position t
predicts token t+1, the backward direction's predicts token t-1; at a text's ends they predict ``[PAD]``, which
doubles as the text boundary. Each direction must see only its own side of the text, but a stacked bidirectional
``nn.LSTM`` feeds both directions of a layer into each direction of the next, which would show the forward
direction the very tokens it predicts. So the language model runs each direction as a stack of its own, through
the masked path's kernels (``seqnlp.model.run_kernel``): a layer above the first reads only its own direction's
half of ``weight_ih``, and the other half is zero and stays zero (no gradient reaches it). A classifier that loads
these weights computes the same features at first and learns the cross-direction weights from there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from seqnlp import distributed
from seqnlp.batching import BatchLoader
from seqnlp.config import ModelConfig
from seqnlp.model import RecurrentEncoder, gather_steps, layer_weights, run_kernel, step_indices
from seqnlp.predict import forward_batches

if TYPE_CHECKING:
    from seqnlp.batching import Batch

DIV_VALUE = 4.0  # adaptive softmax: each cluster's projection is this many times narrower than the one before
EVAL_ROWS = 8192  # predictions scored at a time without gradients: a rare-word cluster's logits stay ~100 MB
DIRECTION_NAMES = ("forward", "backward")


def softmax_shape(cutoffs: Sequence[int], vocab_size: int, hidden_size: int) -> tuple[list[int], float]:
    """The adaptive softmax's cutoffs and div_value for this vocabulary and width: the cutoffs below
    ``vocab_size`` (half the vocabulary when none is: it needs one), less the last ones while the rarest
    cluster's projection (``hidden_size // DIV_VALUE ** clusters``) would have no dimension left; a width too
    narrow even for one cluster keeps it full (div_value 1)."""
    kept = [int(c) for c in cutoffs if 0 < c < vocab_size] or [max(1, vocab_size // 2)]
    while len(kept) > 1 and hidden_size // DIV_VALUE ** len(kept) < 1:
        kept.pop()
    return kept, DIV_VALUE if hidden_size // DIV_VALUE >= 1 else 1.0


class LanguageModel(nn.Module):
    """Token ids and lengths in, the negative log-likelihood of every predicted token out (see the module doc)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, pad_id: int = 0, cutoffs: Sequence[int] = (2000, 10000)):
        super().__init__()
        self.config = cfg
        self.pad_id = pad_id
        # Built in RNNClassifier's order and with its names: a classifier can load embedding.* and encoder.*.
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=pad_id)
        self.embedding_dropout = nn.Dropout(cfg.embedding_dropout)
        self.encoder = RecurrentEncoder(cfg, cfg.embedding_dim)
        self.num_directions = self.encoder.num_directions
        self.output_dropout = nn.Dropout(cfg.dropout)
        self.cutoffs, div_value = softmax_shape(cutoffs, vocab_size, cfg.hidden_size)
        # One softmax for both directions, as ELMo ties them: the same words are predicted from either side.
        self.decoder = nn.AdaptiveLogSoftmaxWithLoss(cfg.hidden_size, vocab_size, self.cutoffs, div_value=div_value)
        with torch.no_grad():
            for weight, columns in cross_direction_blocks(self.encoder.rnn):
                weight[:, columns] = 0.0

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """input_ids [B, T], lengths [B] (each >= 1) -> the loss of each prediction [D, N]: N is the batch's
        real tokens, row-major; D the directions (forward first)."""
        width = input_ids.shape[1]
        lengths = lengths.to(input_ids.device)
        embedded = self.embedding_dropout(self.embedding(input_ids))  # [B, T, E]
        hidden = directional_outputs(self.encoder.rnn, embedded, lengths, self.training)  # [D, B, T, H]
        mask = torch.arange(width, device=input_ids.device) < lengths[:, None]  # [B, T]
        boundary = input_ids.new_full((input_ids.shape[0], 1), self.pad_id)  # [B, 1]
        # Past a text's last token its row holds [PAD] already, so the shift leaves [PAD] as the last target.
        targets = [torch.cat([input_ids[:, 1:], boundary], dim=1)]  # [B, T]: the next token
        if self.num_directions == 2:
            targets.append(torch.cat([boundary, input_ids[:, :-1]], dim=1))  # [B, T]: the previous token
        rows = self.output_dropout(hidden[:, mask]).float().flatten(0, 1)  # [D*N, H]
        wanted = torch.stack(targets)[:, mask].flatten()  # [D*N]
        # Without gradients (evaluation, wide batches) the rows are scored in slices, so a rare-word cluster's
        # logits never fill memory. The softmax runs in float32 (AdaptiveLogSoftmaxWithLoss mixes dtypes under
        # autocast).
        step = len(rows) if torch.is_grad_enabled() else EVAL_ROWS
        with torch.autocast(input_ids.device.type, enabled=False):
            log_probs = torch.cat([self.decoder(rows[i : i + step], wanted[i : i + step]).output
                                   for i in range(0, len(rows), step)])  # [D*N]
        return -log_probs.view(self.num_directions, -1)  # [D, N]


def directional_outputs(rnn: nn.RNNBase, embedded: torch.Tensor, lengths: torch.Tensor,
                        training: bool) -> torch.Tensor:
    """embedded [B, T, E], lengths [B] (on embedded's device) -> each direction's top-layer outputs [D, B, T, H],
    every direction a stack of its own: a layer above the first reads only its own direction's outputs (the
    columns of ``weight_ih`` that hold them). Position t of the backward direction has read tokens t..length-1."""
    hidden_size, num_directions = rnn.hidden_size, 2 if rnn.bidirectional else 1
    _, reverse_index, _ = step_indices(lengths, embedded.shape[1])
    outputs = []
    for direction in range(num_directions):
        reverse = direction == 1
        hidden = gather_steps(embedded, reverse_index) if reverse else embedded  # [B, T, F]; reversed: padding last
        for layer in range(rnn.num_layers):
            weights = layer_weights(rnn, layer, reverse)
            if layer > 0:
                if training and rnn.dropout > 0:
                    hidden = F.dropout(hidden, rnn.dropout, training=True)
                own = slice(direction * hidden_size, (direction + 1) * hidden_size)
                weights = [weights[0][:, own].contiguous(), *weights[1:]]  # weight_ih [G*H, H]: own direction only
            hidden = run_kernel(rnn, weights, hidden, training)  # [B, T, H]
        outputs.append(gather_steps(hidden, reverse_index) if reverse else hidden)
    return torch.stack(outputs)  # [D, B, T, H]


def cross_direction_blocks(rnn: nn.RNNBase) -> list[tuple[torch.Tensor, slice]]:
    """(weight_ih, columns) of every layer above the first of a bidirectional ``rnn`` that carry the other
    direction's outputs: the language model keeps them at zero."""
    if not rnn.bidirectional:
        return []
    hidden = rnn.hidden_size
    blocks = []
    for layer in range(1, rnn.num_layers):
        for direction, reverse in enumerate((False, True)):
            other = slice((1 - direction) * hidden, (2 - direction) * hidden)
            blocks.append((layer_weights(rnn, layer, reverse)[0], other))
    return blocks


class LanguageModelObjective:
    """What the training loop asks of an objective, for a language model: the mean loss of every prediction."""

    multi_label = False
    language_model = True

    forward_options: dict[str, bool] = {}  # the model returns its per-prediction losses

    def batch_loss(self, outputs: torch.Tensor, batch: "Batch") -> tuple[torch.Tensor, torch.Tensor, int]:
        """The model's per-prediction losses [D, N] -> (their mean, minimized and reported, the number of
        predictions it averages)."""
        loss = outputs.float().mean()
        return loss, loss, outputs.numel()


@torch.inference_mode()
def evaluate_language_model(model: LanguageModel, loader: BatchLoader, device: torch.device,
                            precision: str = "fp32") -> dict[str, Any]:
    """Mean loss and perplexity of ``model`` on every text of ``loader`` (of every process, if sharded), overall
    and per direction. Labels are not read."""
    directions = model.num_directions
    sums = [0.0] * directions
    predictions, texts = 0, 0
    for batch, losses in forward_batches(model, loader, device, precision):  # losses [D, N]
        sums = [total + float(row.sum()) for total, row in zip(sums, losses.float())]
        predictions += losses.shape[1]
        texts += len(batch.lengths)
    if loader.sharded:
        *sums, predictions, texts = distributed.all_sum([*sums, predictions, texts])
    loss = sum(sums) / max(directions * predictions, 1)
    result: dict[str, Any] = {"loss": loss, "perplexity": _perplexity(loss), "num_texts": int(texts),
                              "num_tokens": int(predictions)}
    if directions == 2:
        for name, total in zip(DIRECTION_NAMES, sums):
            result[f"perplexity_{name}"] = _perplexity(total / max(predictions, 1))
    return result


def _perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))  # a diverged model's perplexity stays a finite number in JSON
