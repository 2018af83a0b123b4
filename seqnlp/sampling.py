"""Which examples share a batch: length-bucketed and shuffled index arrays, computed from the lengths alone.

Examples of similar length go together (less padding, and often batches of equal length, which the encoder
runs without packing). Everything here is NumPy over the lengths, deterministic from the seed and the epoch,
so a resumed epoch is the same epoch; ``seqnlp.batching`` turns the indices into padded tensors.

With several processes (``num_replicas`` > 1) every process builds the same global batches of
``batch_size x num_replicas`` examples and keeps its share of each: the ranks see disjoint examples, take the
same number of steps, and together see every example once per epoch.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from seqnlp.errors import DataError


class BucketSampler:
    """Yields lists of indices whose lengths are close: shuffled pools, sorted within, batches shuffled.

    With ``equal_lengths`` the batches are cut by exact length instead (see ``equal_length_batches``): the
    whole epoch is the pool, and most batches hold texts of a single length. Each epoch (``set_epoch``) the order
    changes, deterministically from the seed. With ``shuffle=False`` every example is visited in order of length,
    which minimizes padding for evaluation.

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
