"""Padded batches of ids, built straight from Arrow buffers, in the order ``seqnlp.sampling`` picks.

The loader gathers a batch's ids with an Arrow ``take`` from each chunk of the memory-mapped column that holds
some of them, and pads them with a vectorized NumPy scatter, so no Python loop runs per example and no batch
copies more than its own rows. ``BatchLoader`` reads a split whose lengths are all known, through a
``BucketSampler`` (length buckets, shuffling, and each process's share of every global batch);
``StreamLoader`` does the same for an ``IterableDataset`` read as it streams, in bounded pools: with several
processes, every rank reads the whole stream and keeps its share of each global batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import torch
from datasets import Dataset, IterableDataset

from seqnlp.errors import CheckpointError, DataError
from seqnlp.sampling import BucketSampler, cut

READ_BATCH = 1000  # examples of a stream turned into Arrow at a time


@dataclass
class Batch:
    """One batch: padded ids, true lengths (kept on the CPU, as packing wants) and labels."""

    input_ids: torch.Tensor  # [B, T] int64, padded with the tokenizer's [PAD] id
    lengths: torch.Tensor  # [B] int64, on the CPU
    labels: Optional[torch.Tensor]  # [B] int64 (multi-label: [B, C] float32 multi-hot), None for unlabeled data
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


class BatchLoader:
    """Iterates an encoded split (``input_ids``, ``length``, optional ``label``) as padded ``Batch``es.

    ``num_replicas``/``rank``: this process's share of every batch in a multi-process run (see BucketSampler).
    ``sample_weights``: draw each epoch's examples with replacement, in proportion to these (see BucketSampler).
    """

    mid_epoch_resume = True  # the batches of an epoch can be recomputed, so training can resume inside one

    def __init__(
        self,
        split: Dataset,
        batch_size: int,
        pad_id: int = 0,
        shuffle: bool = False,
        pool_batches: int = 50,
        seed: int = 0,
        pin_memory: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
        equal_lengths: bool = False,
        sample_weights: Optional[np.ndarray] = None,
    ) -> None:
        if split._indices is not None:  # a selected/shuffled view: materialize once so takes stay cheap
            split = split.flatten_indices()
        table = split.data  # Arrow table, memory-mapped from the datasets cache
        self._ids: pa.ChunkedArray = table.column("input_ids")  # one chunk per record batch of the cache file
        self._starts = chunk_starts(self._ids)
        self.lengths = table.column("length").to_numpy().astype(np.int64)  # [N]
        self.labels: Optional[np.ndarray] = None  # [N] (multi-label: [N, C])
        if "label" in split.column_names:
            self.labels = label_array(table.column("label"))
        self.pad_id = pad_id
        self.pin_memory = pin_memory
        self.sampler = BucketSampler(self.lengths, batch_size, shuffle=shuffle, pool_batches=pool_batches, seed=seed,
                                     num_replicas=num_replicas, rank=rank, equal_lengths=equal_lengths,
                                     weights=sample_weights)

    def __len__(self) -> int:
        return len(self.sampler)

    @property
    def num_batches(self) -> Optional[int]:
        """Batches per epoch (the same on every rank)."""
        return len(self.sampler)

    @property
    def sharded(self) -> bool:
        """Whether this process sees only its share of the split (metrics must then be summed over processes)."""
        return self.sampler.num_replicas > 1

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Batch]:
        for indices in self.sampler:
            yield self.collate(indices)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        """The batches of training epoch ``epoch``, after the first ``skip`` (already trained on)."""
        self.set_epoch(epoch)
        for indices in self.sampler.batches()[skip:]:
            yield self.collate(indices)

    @property
    def num_examples(self) -> int:
        return len(self.lengths)

    def collate(self, indices: np.ndarray) -> Batch:
        """Gather and pad the examples at ``indices``."""
        rows = take_rows(self._ids, self._starts, indices)
        return collate(rows, self.lengths, self.labels, indices, self.pad_id, self.pin_memory)


class StreamLoader:
    """Padded batches from an encoded ``IterableDataset``, formed as it streams, in bounded memory.

    The stream (already shuffled through a buffer by ``IterableDataset.shuffle``) is read in pools of
    ``batch_size x num_replicas x pool_batches`` examples, turned into Arrow ``READ_BATCH`` examples at a time
    (as Python lists, the ids of a whole pool would take several times the room); each pool is sorted by
    length, cut into global batches, and the batches are shuffled. Every rank reads the whole stream and
    keeps its share of each global batch, as ``BucketSampler`` does, so all ranks take the same number of
    steps without knowing the stream's length. ``set_epoch`` reshuffles the stream and the batches.

    ``num_batches`` is an estimate (from ``num_examples``, when known) for the progress bar and the schedule.
    """

    mid_epoch_resume = False  # a stream cannot be rewound to a batch: training resumes at epoch boundaries

    def __init__(
        self,
        stream: IterableDataset,
        batch_size: int,
        pad_id: int = 0,
        pool_batches: int = 50,
        seed: int = 0,
        pin_memory: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
        num_examples: Optional[int] = None,
    ) -> None:
        self.stream = stream
        self.schema = stream.features.arrow_schema if stream.features is not None else None
        self.pad_id = pad_id
        self.pin_memory = pin_memory
        self.num_replicas, self.rank, self.seed = num_replicas, rank, seed
        self.global_batch_size = batch_size * num_replicas
        self.pool_size = self.global_batch_size * pool_batches
        self.num_batches = None if num_examples is None else math.ceil(num_examples / self.global_batch_size)
        self.sharded = num_replicas > 1
        self._epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self.stream.set_epoch(epoch)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(self._epoch)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        """The batches of epoch ``epoch`` as the stream yields them; ``skip`` > 0 is impossible for a stream."""
        if skip:
            raise CheckpointError(f"a streaming run cannot resume inside epoch {epoch} (after batch {skip}); "
                                  "it resumes at epoch boundaries only")
        self.set_epoch(epoch)
        rng = np.random.default_rng((self.seed, epoch))
        for pool in self._pools():
            lengths = pool.column("length").to_numpy().astype(np.int64)  # [P]
            labels = label_array(pool.column("label")) if "label" in pool.column_names else None
            ids = pool.column("input_ids").combine_chunks()  # [P] rows
            batches = cut(np.argsort(lengths, kind="stable"), self.global_batch_size, self.num_replicas)
            rng.shuffle(batches)  # type: ignore[arg-type]
            for batch in batches:
                share = batch[self.rank :: self.num_replicas]
                yield collate(ids.take(pa.array(share)), lengths, labels, share, self.pad_id, self.pin_memory)

    def _pools(self) -> Iterator[pa.Table]:
        """Pools of ``pool_size`` examples; a remainder too small to share among the ranks joins the pool before."""
        ready: Optional[pa.Table] = None
        for table in self._cut_pools():
            if ready is not None and table.num_rows < self.num_replicas:
                ready = pa.concat_tables([ready, table])
                continue
            if ready is not None:
                yield ready
            ready = table
        if ready is None:
            return
        if ready.num_rows < self.num_replicas:
            raise DataError(f"the stream holds {ready.num_rows} examples, too few to share among "
                            f"{self.num_replicas} processes")
        yield ready

    def _cut_pools(self) -> Iterator[pa.Table]:
        """The stream as Arrow tables of ``pool_size`` rows (the last one shorter)."""
        parts: list[pa.Table] = []
        rows = 0
        for batch in self.stream.iter(batch_size=READ_BATCH):
            parts.append(pa.Table.from_pydict(batch, schema=self.schema))
            rows += parts[-1].num_rows
            while rows >= self.pool_size:
                table = pa.concat_tables(parts).combine_chunks()
                yield table.slice(0, self.pool_size)
                parts, rows = [table.slice(self.pool_size)], rows - self.pool_size
        if rows:
            yield pa.concat_tables(parts)


def label_array(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A label column as NumPy: class indices [N] int64, or multi-hot rows [N, C] float32 (a fixed-size list)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        width = column.type.list_size
        values = column.flatten().to_numpy(zero_copy_only=False)  # flatten() honours the array's offset
        return values.astype(np.float32).reshape(len(column), width)
    return column.to_numpy(zero_copy_only=False).astype(np.int64)


def chunk_starts(column: pa.ChunkedArray) -> np.ndarray:
    """The row at which each chunk of ``column`` starts, and the row count last: [K + 1]."""
    return np.cumsum([0] + [len(chunk) for chunk in column.chunks])


def take_rows(column: pa.ChunkedArray, starts: np.ndarray, indices: np.ndarray) -> pa.Array:
    """The rows ``indices`` of a chunked list column, in that order, copying those rows only.

    ``ChunkedArray.take`` first concatenates every chunk of a list column: a copy of the whole column (all of a
    split's ids) for each batch. Here each chunk that holds some of the rows gives them with its own ``take``.
    ``starts`` is ``chunk_starts(column)``.
    """
    if len(indices) == 0:
        return pa.array([], type=column.type)
    chunk_of = np.searchsorted(starts, indices, side="right") - 1  # [B]
    order = np.argsort(chunk_of, kind="stable")  # the rows grouped by chunk
    groups = np.split(order, np.flatnonzero(np.diff(chunk_of[order])) + 1)
    parts = [column.chunk(int(chunk_of[g[0]])).take(pa.array(indices[g] - starts[chunk_of[g[0]]])) for g in groups]
    return pa.concat_arrays(parts).take(pa.array(np.argsort(order)))  # back in the order asked for


def collate(
    rows: pa.Array,
    lengths: np.ndarray,
    labels: Optional[np.ndarray],
    indices: np.ndarray,
    pad_id: int,
    pin_memory: bool = False,
) -> Batch:
    """Pad ``rows`` (the ids of the examples at ``indices``, a list array) into a ``Batch``."""
    batch_lengths = lengths[indices]  # [B]
    flat = rows.flatten().to_numpy(zero_copy_only=False)  # [sum(lengths)]
    input_ids = torch.from_numpy(pad_flat(flat, batch_lengths, pad_id))  # [B, T]
    batch_labels = None if labels is None else torch.from_numpy(labels[indices])  # [B]
    if pin_memory:
        input_ids = input_ids.pin_memory()
        batch_labels = None if batch_labels is None else batch_labels.pin_memory()
    return Batch(input_ids, torch.from_numpy(batch_lengths), batch_labels, indices)


def pad_flat(flat: np.ndarray, lengths: np.ndarray, pad_id: int) -> np.ndarray:
    """Concatenated sequences [sum(lengths)] -> a padded int64 matrix [B, max(lengths)], in one scatter."""
    width = int(lengths.max())
    ids = np.full((len(lengths), width), pad_id, dtype=np.int64)  # [B, T]
    ids[np.arange(width) < lengths[:, None]] = flat  # row-major fill == the rows one after another
    return ids
