"""Length-bucketed batches of padded ids, built straight from Arrow buffers.

The sampler groups examples of similar length (less padding, and often batches of equal length, which
the encoder runs without packing); the loader gathers a batch's ids with one Arrow ``take`` and pads them
with a vectorized NumPy scatter, so no Python loop runs per example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import torch
from datasets import Dataset


@dataclass
class Batch:
    """One batch: padded ids, true lengths (kept on the CPU, as packing wants) and labels."""

    input_ids: torch.Tensor  # [B, T] int64, padded with the tokenizer's [PAD] id
    lengths: torch.Tensor  # [B] int64, on the CPU
    labels: Optional[torch.Tensor]  # [B] int64, None for unlabeled data
    indices: np.ndarray  # [B] positions in the dataset, to put predictions back in order

    def to(self, device: torch.device) -> "Batch":
        non_blocking = device.type == "cuda"
        return Batch(
            self.input_ids.to(device, non_blocking=non_blocking),
            self.lengths,
            None if self.labels is None else self.labels.to(device, non_blocking=non_blocking),
            self.indices,
        )

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


class BucketSampler:
    """Yields lists of indices whose lengths are close: shuffled pools, sorted within, batches shuffled.

    Each epoch (``set_epoch``) the order changes, deterministically from the seed. With ``shuffle=False``
    every example is visited in order of length, which minimizes padding for evaluation.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        pool_batches: int = 50,
        seed: int = 0,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.pool_size = batch_size * pool_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        yield from self.batches()

    def batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(n)
        batches: list[np.ndarray] = []
        for start in range(0, n, self.pool_size):
            pool = order[start : start + self.pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches.extend(pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size))
        rng.shuffle(batches)  # type: ignore[arg-type]  # batch order is random; contents stay length-sorted
        return batches


class BatchLoader:
    """Iterates an encoded split (``input_ids``, ``length``, optional ``label``) as padded ``Batch``es."""

    def __init__(
        self,
        split: Dataset,
        batch_size: int,
        pad_id: int = 0,
        shuffle: bool = False,
        pool_batches: int = 50,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        if split._indices is not None:  # a selected/shuffled view: materialize once so takes stay cheap
            split = split.flatten_indices()
        table = split.data  # Arrow table, memory-mapped from the datasets cache
        self._ids: pa.ChunkedArray = table.column("input_ids")
        self.lengths = table.column("length").to_numpy().astype(np.int64)  # [N]
        self.labels: Optional[np.ndarray] = None  # [N]
        if "label" in split.column_names:
            self.labels = table.column("label").to_numpy().astype(np.int64)
        self.pad_id = pad_id
        self.pin_memory = pin_memory
        self.sampler = BucketSampler(self.lengths, batch_size, shuffle=shuffle, pool_batches=pool_batches, seed=seed)

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Batch]:
        for indices in self.sampler:
            yield self.collate(indices)

    @property
    def num_examples(self) -> int:
        return len(self.lengths)

    def collate(self, indices: np.ndarray) -> Batch:
        """Gather and pad the examples at ``indices``."""
        lengths = self.lengths[indices]  # [B]
        rows = self._ids.take(pa.array(indices)).combine_chunks()  # ListArray of B rows, in order
        flat = rows.flatten().to_numpy(zero_copy_only=False)  # [sum(lengths)]
        ids = pad_flat(flat, lengths, self.pad_id)  # [B, T]
        labels = None if self.labels is None else torch.from_numpy(self.labels[indices])
        input_ids = torch.from_numpy(ids)  # [B, T]
        if self.pin_memory:
            input_ids = input_ids.pin_memory()
            labels = None if labels is None else labels.pin_memory()
        return Batch(input_ids, torch.from_numpy(lengths), labels, indices)


def pad_flat(flat: np.ndarray, lengths: np.ndarray, pad_id: int) -> np.ndarray:
    """Concatenated sequences [sum(lengths)] -> a padded int64 matrix [B, max(lengths)], in one scatter."""
    width = int(lengths.max())
    ids = np.full((len(lengths), width), pad_id, dtype=np.int64)  # [B, T]
    ids[np.arange(width) < lengths[:, None]] = flat  # row-major fill == the rows one after another
    return ids
