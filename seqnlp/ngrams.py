"""A wide n-gram branch beside the RNN: hashed n-grams of the token ids, one weight per label each, whose
logits add to the recurrent head's.

On long documents a linear model over n-grams is a strong classifier of its own (NBSVM, Wang & Manning 2012;
fastText), and it complements a recurrent encoder (Mesnil et al. 2014): the RNN reads order and negation, the
n-grams remember thousands of telling phrases. The branch is computed inside the model from ``input_ids`` and
``lengths``, so training, prediction, export and quantization all see the same model:

- unigrams use the token ids themselves (rows ``0..V-1``); every n-gram of order >= 2 is hashed into one of
  ``buckets`` shared rows after them, by a polynomial hash of its ids modulo the prime 2^31 - 1, computed in
  int64 with no overflow (every intermediate stays below 2^52);
- an n-gram counts only when it lies wholly inside the text (masked by length), so padding never changes a
  text's logits;
- its logits are the sum of the n-grams' rows divided by the square root of their number: a bag of n-grams
  normalized to unit length, as the TF-IDF vectors of linear baselines are, so long and short texts give logits
  of the same scale;
- ``init: nb`` starts each row from Naive-Bayes log-count ratios of the training split (one-vs-rest per label),
  the feature weights of NBSVM; the branch is then trained with the rest of the model.
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from seqnlp.batching import BatchLoader, StreamLoader

log = logging.getLogger(__name__)

HASH_PRIME = 2_147_483_647  # 2^31 - 1: the hash works modulo this prime
HASH_MULTIPLIER = 1_000_003  # hash = (hash * M + id + 1) mod P per token: < 2^31 * 2^20 + 2^31, exact in int64
NB_SMOOTHING = 1.0  # Laplace smoothing of the per-class n-gram counts (NBSVM's alpha)


class NgramBranch(nn.Module):
    """input_ids [B, T] and lengths [B] -> per-label logits [B, C] of the text's n-grams."""

    def __init__(self, orders: Sequence[int], vocab_size: int, buckets: int, num_labels: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.orders = tuple(sorted(orders))
        self.vocab_size = vocab_size
        self.buckets = buckets
        self.dropout = dropout
        self.offset = vocab_size if 1 in self.orders else 0  # the first hashed row
        rows = self.offset + (buckets if any(n > 1 for n in self.orders) else 0)
        self.weight = nn.Embedding(rows, num_labels)
        nn.init.zeros_(self.weight.weight)

    def features(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids [B, T], lengths [B] -> rows [B, K*T] (int64) and mask [B, K*T] (bool) of the K orders'
        n-grams; the n-gram starting at step t is real when it ends inside the text (t + n - 1 < length)."""
        width = input_ids.shape[1]
        steps = torch.arange(width, device=input_ids.device)[None, :]  # [1, T]
        lengths = lengths.to(input_ids.device)[:, None]  # [B, 1]
        rows, masks = [], []
        for n in self.orders:
            if n == 1:
                rows.append(input_ids)
            else:
                padded = F.pad(input_ids, (0, n - 1))  # [B, T + n - 1]: every start step has n ids to read
                hashed = torch.zeros_like(input_ids)  # [B, T]
                for k in range(n):
                    hashed = (hashed * HASH_MULTIPLIER + padded[:, k: k + width] + 1) % HASH_PRIME
                rows.append(self.offset + hashed % self.buckets)
            masks.append(steps + (n - 1) < lengths)  # [B, T]
        return torch.cat(rows, dim=1), torch.cat(masks, dim=1)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """input_ids [B, T], lengths [B] -> logits [B, C]."""
        rows, mask = self.features(input_ids, lengths)  # [B, F], [B, F]
        if self.training and self.dropout > 0:  # drop whole n-grams, not single weights
            mask = mask & (torch.rand(mask.shape, device=mask.device) >= self.dropout)
        keep = mask.to(self.weight.weight.dtype)[..., None]  # [B, F, 1]
        summed = (self.weight(rows) * keep).sum(dim=1)  # [B, C]
        return summed / keep.sum(dim=1).clamp(min=1.0).sqrt()  # [B, C]

    @torch.no_grad()
    def init_naive_bayes(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
        """Set every row to half its Naive-Bayes log-count ratio per label, from ``batches`` of (input_ids [B, T],
        lengths [B], labels [B] class indices or [B, C] multi-hot) of the training split.

        For label c, with p and q the smoothed n-gram counts of the texts with and without it,
        r = log(p / |p|) - log(q / |q|) (Wang & Manning 2012); rows no training text reaches stay 0. For two
        classes the halves make the logit difference exactly r's sum."""
        table = self.weight.weight  # [R, C]
        counts = torch.zeros_like(table, dtype=torch.float64)  # [R, C]: occurrences in texts with each label
        totals = torch.zeros(table.shape[0], dtype=torch.float64, device=table.device)  # [R]
        for input_ids, lengths, labels in batches:
            rows, mask = self.features(input_ids, lengths)  # [B, F]
            if labels.dim() == 1:
                labels = F.one_hot(labels, table.shape[1])
            weights = mask[..., None].double() * labels[:, None, :].double()  # [B, F, C]
            counts.index_add_(0, rows.reshape(-1), weights.reshape(-1, table.shape[1]))
            totals.index_add_(0, rows.reshape(-1), mask.reshape(-1).double())
        rest = totals[:, None] - counts  # [R, C]
        p, q = counts + NB_SMOOTHING, rest + NB_SMOOTHING
        ratio = (p / p.sum(dim=0)).log() - (q / q.sum(dim=0)).log()  # [R, C]
        ratio[totals == 0] = 0.0
        table.copy_((0.5 * ratio).to(table.dtype))


def init_naive_bayes(branch: NgramBranch, loader: BatchLoader | StreamLoader, batch_size: int,
                     device: torch.device) -> None:
    """Initialize ``branch`` from every labelled example of ``loader``'s whole split (not one process's share, so
    every process of a torchrun gets the same weights); a stream cannot be counted (rules.py refuses it)."""
    if not isinstance(loader, BatchLoader):
        return

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for start in range(0, loader.num_examples, batch_size):
            batch = loader.collate(np.arange(start, min(start + batch_size, loader.num_examples)))
            assert batch.labels is not None
            yield batch.input_ids.to(device), batch.lengths, batch.labels.to(device)

    branch.init_naive_bayes(batches())
    log.info("n-gram branch (orders %s, %s buckets): Naive-Bayes ratios from %s training texts",
             ", ".join(map(str, branch.orders)), f"{branch.buckets:,}", f"{loader.num_examples:,}")
