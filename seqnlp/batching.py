"""Length-bucketed batches of padded ids, built straight from Arrow buffers.

The sampler groups examples of similar length (less padding, and often batches of equal length, which
the encoder runs without packing); the loader gathers a batch's ids with an Arrow ``take`` from each chunk of
the memory-mapped column that holds some of them, and pads them with a vectorized NumPy scatter, so no
Python loop runs per example and no batch copies more than its own rows.

With several processes (``num_replicas`` > 1) every process builds the same global batches of
``batch_size x num_replicas`` examples and keeps its share of each: the ranks see disjoint examples, take the
same number of steps, and together see every example once per epoch. ``StreamLoader`` does the same for an
``IterableDataset`` read as it streams, in bounded pools.
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


class BucketSampler:
    """Yields lists of indices whose lengths are close: shuffled pools, sorted within, batches shuffled.

    With ``equal_lengths`` the batches are cut by exact length instead (see ``equal_length_batches``): the
    whole epoch is the pool, and most batches hold texts of a single length. Each epoch (``set_epoch``) the order changes, deterministically from the seed. With ``shuffle=False``
    every example is visited in order of length, which minimizes padding for evaluation.

    With ``num_replicas`` > 1, the pools and global batches are cut for ``batch_size x num_replicas`` and
    rank ``rank`` keeps every ``num_replicas``-th example of each (the global batch is length-sorted, so the
    shares have near-equal lengths and the ranks near-equal work). Nothing is dropped or repeated: a last
    global batch too small to give every rank an example is merged into the batch before it.

    With ``weights`` (one per example, e.g. inverse class frequency) an epoch is instead ``N`` draws with
    replacement, each example drawn with probability proportional to its weight; the draws are then pooled,
    length-sorted and cut exactly as above. The draws depend only on the seed and the epoch, so every rank
    makes the same global batches and a resumed epoch is the same epoch.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        pool_batches: int = 50,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        equal_lengths: bool = False,
        weights: Optional[np.ndarray] = None,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in 0..{num_replicas - 1}")
        self.lengths = np.asarray(lengths)
        self.probabilities: Optional[np.ndarray] = None  # [N] draw probabilities, for a weighted sampler
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != self.lengths.shape or not np.all(np.isfinite(weights) & (weights >= 0)) \
                    or weights.sum() <= 0:
                raise ValueError("sampling weights must be one finite, non-negative number per example, not all 0")
            self.probabilities = weights / weights.sum()
            if equal_lengths:  # draws with replacement change each length's count, hence the number of batches
                raise ValueError("equal-length batches cannot be drawn with sampling weights")
        if num_replicas > 1 and len(self.lengths) < num_replicas:
            raise DataError(f"{len(self.lengths)} examples cannot be shared among {num_replicas} processes")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.global_batch_size = batch_size * num_replicas
        self.pool_size = self.global_batch_size * pool_batches
        self.seed = seed
        self.equal_lengths = equal_lengths
        self.epoch = 0
        self._count: Optional[int] = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self._count is None:
            if self.shuffle and self.equal_lengths:
                self._count = count_equal_length_batches(self.lengths, self.global_batch_size, self.num_replicas)
            else:
                self._count = num_global_batches(len(self.lengths), self.global_batch_size, self.num_replicas)
        return self._count

    def __iter__(self) -> Iterator[np.ndarray]:
        yield from self.batches()

    def batches(self) -> list[np.ndarray]:
        """This rank's batches of the epoch, in order."""
        return [batch[self.rank :: self.num_replicas] for batch in self.global_batches()]

    def global_batches(self) -> list[np.ndarray]:
        """The batches of all ranks together, as one process with ``batch_size x num_replicas`` would see them."""
        n, size = len(self.lengths), self.global_batch_size
        if not self.shuffle:
            return cut(np.argsort(self.lengths, kind="stable"), size, self.num_replicas)
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.equal_lengths:
            batches = equal_length_batches(rng.permutation(n), self.lengths, size, self.num_replicas)
            rng.shuffle(batches)  # type: ignore[arg-type]
            return batches
        order = rng.permutation(n) if self.probabilities is None else rng.choice(n, size=n, p=self.probabilities)
        batches: list[np.ndarray] = []
        for start in range(0, n, self.pool_size):
            pool = order[start : start + self.pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches.extend(pool[i : i + size] for i in range(0, len(pool), size))
        _merge_short_tail(batches, self.num_replicas)
        rng.shuffle(batches)  # type: ignore[arg-type]  # batch order is random; contents stay length-sorted
        return batches


def cut(order: np.ndarray, size: int, min_last: int = 1) -> list[np.ndarray]:
    """``order`` in consecutive batches of ``size``; a last batch shorter than ``min_last`` joins the one before."""
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    _merge_short_tail(batches, min_last)
    return batches


def equal_length_batches(order: np.ndarray, lengths: np.ndarray, size: int, min_last: int = 1) -> list[np.ndarray]:
    """``order`` cut into batches of ``size`` in which, wherever possible, every example has the same length.

    The examples of each length fill whole batches in the order ``order`` gives them: such a batch has no
    padding, and the encoder runs it without packing (on the CPU, only then does ``nn.LSTM`` reach oneDNN's
    fused kernel). What is left of each length (fewer than ``size``) is sorted by length and cut as ``cut``
    does, so only those batches mix (neighbouring) lengths.
    """
    by_length = order[np.argsort(lengths[order], kind="stable")]  # grouped by length, in ``order`` within
    sorted_lengths = lengths[by_length]
    starts = np.flatnonzero(np.diff(sorted_lengths, prepend=-1))  # where each length's group begins
    ends = np.append(starts[1:], len(by_length))
    batches: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    for start, end in zip(starts, ends):
        full_end = start + (end - start) // size * size
        batches.extend(by_length[i : i + size] for i in range(start, full_end, size))
        rest.append(by_length[full_end:end])
    leftovers = np.concatenate(rest) if rest else by_length[:0]
    batches.extend(leftovers[i : i + size] for i in range(0, len(leftovers), size))
    _merge_short_tail(batches, min_last)
    return batches


def count_equal_length_batches(lengths: np.ndarray, size: int, min_last: int = 1) -> int:
    """How many batches ``equal_length_batches`` makes of ``lengths`` (the same for any ``order``)."""
    counts = np.bincount(np.asarray(lengths, dtype=np.int64))
    rest = int((counts % size).sum())
    count = int((counts // size).sum()) + -(-rest // size)
    return count - 1 if count > 1 and 0 < rest % size < min_last else count


def num_global_batches(n: int, size: int, num_replicas: int) -> int:
    """How many batches ``cut(range(n), size, num_replicas)`` makes."""
    count = -(-n // size)
    return count - 1 if count > 1 and 0 < n % size < num_replicas else count


def _merge_short_tail(batches: list[np.ndarray], min_last: int) -> None:
    if len(batches) > 1 and len(batches[-1]) < min_last:
        batches[-2:] = [np.concatenate(batches[-2:])]


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
