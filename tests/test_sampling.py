"""Length-bucketed sampling: every example once per epoch, deterministic per seed and epoch, shared among ranks,
and far less padding than random batches; checked against naive references on synthetic lengths."""

from __future__ import annotations

import numpy as np
import pytest

from seqnlp import sampling
from seqnlp.config import load_config
from seqnlp.errors import ConfigError, DataError
from seqnlp.sampling import BucketSampler


def skewed_lengths(n: int = 1000, seed: int = 0) -> np.ndarray:
    """Mostly short sequences with a long tail, like real text."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(mean=2.5, sigma=1.0, size=n).astype(np.int64), 1, 400)


def padding(lengths: np.ndarray, batches: list[np.ndarray]) -> int:
    """Pad tokens needed to batch ``lengths`` as ``batches``."""
    return int(sum(lengths[b].max() * len(b) - lengths[b].sum() for b in batches))


def epoch(sampler: BucketSampler, number: int) -> list[list[int]]:
    sampler.set_epoch(number)
    return [b.tolist() for b in sampler]


# --- BucketSampler --------------------------------------------------------------------------------------------


def test_every_index_exactly_once_per_epoch() -> None:
    lengths = skewed_lengths(1000)
    sampler = BucketSampler(lengths, batch_size=16, pool_batches=8, seed=3)
    for number in range(3):
        batches = epoch(sampler, number)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(1000))
        assert len(batches) == len(sampler) == 63  # ceil(1000 / 16)
        assert sorted(len(b) for b in batches)[0] == 1000 - 62 * 16  # one short batch, the rest full
        assert sum(len(b) == 16 for b in batches) == 62


def test_deterministic_per_seed_and_epoch() -> None:
    lengths = skewed_lengths(300)
    first = BucketSampler(lengths, batch_size=8, pool_batches=4, seed=11)
    second = BucketSampler(lengths, batch_size=8, pool_batches=4, seed=11)
    assert epoch(first, 2) == epoch(second, 2)
    assert epoch(first, 2) == epoch(first, 2)  # iterating again gives the same epoch
    assert epoch(first, 0) != epoch(first, 1)
    assert epoch(first, 1) != epoch(first, 2)
    other_seed = BucketSampler(lengths, batch_size=8, pool_batches=4, seed=12)
    assert epoch(other_seed, 2) != epoch(first, 2)


def test_batches_are_length_sorted_within_a_pool() -> None:
    lengths = skewed_lengths(1000)
    sampler = BucketSampler(lengths, batch_size=16, pool_batches=8, seed=0)
    batches = list(sampler)
    for b in batches:
        assert np.all(np.diff(lengths[b]) >= 0)
    # Batch order is shuffled: not simply by increasing length.
    firsts = [int(lengths[b[0]]) for b in batches]
    assert firsts != sorted(firsts)


def test_one_pool_partitions_the_sorted_lengths() -> None:
    lengths = skewed_lengths(500)
    sampler = BucketSampler(lengths, batch_size=10, pool_batches=1000, seed=4)  # one pool holds everything
    batches = list(sampler)
    in_length_order = sorted(batches, key=lambda b: (lengths[b[0]], lengths[b[-1]]))
    joined = np.concatenate([lengths[b] for b in in_length_order])
    np.testing.assert_array_equal(joined, np.sort(lengths))  # batches are disjoint slices of the sorted order
    # ...yielded in random order, not shortest first.
    assert [b.tolist() for b in batches] != [b.tolist() for b in in_length_order]


def test_bucketing_pads_far_less_than_random_batches() -> None:
    lengths = skewed_lengths(2000, seed=1)
    bucketed = list(BucketSampler(lengths, batch_size=32, pool_batches=20, seed=0))
    order = np.random.default_rng(0).permutation(len(lengths))
    random_batches = [order[i : i + 32] for i in range(0, len(order), 32)]
    assert padding(lengths, bucketed) < 0.2 * padding(lengths, random_batches)


def test_no_shuffle_orders_by_length() -> None:
    lengths = np.array([5, 1, 3, 3, 9, 1, 2, 7, 3])
    sampler = BucketSampler(lengths, batch_size=4, shuffle=False, seed=0)
    batches = [b.tolist() for b in sampler]
    assert batches == [[1, 5, 6, 2], [3, 8, 0, 7], [4]]  # stable: equal lengths keep their order
    sampler.set_epoch(5)
    assert [b.tolist() for b in sampler] == batches
    assert len(sampler) == 3


# --- equal-length bucketing (train.bucketing: exact) -----------------------------------------------------------


@pytest.mark.parametrize("n, size, seed", [(1, 4, 0), (50, 8, 1), (1000, 16, 2), (1003, 64, 3), (400, 1, 4)])
def test_equal_length_batches_partition_and_mix_lengths_only_in_the_leftovers(n: int, size: int, seed: int) -> None:
    lengths = skewed_lengths(n, seed=seed)
    order = np.random.default_rng(seed).permutation(n)
    batches = sampling.equal_length_batches(order, lengths, size)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert len(batches) == sampling.count_equal_length_batches(lengths, size)
    counts = np.bincount(lengths)
    # Every length fills as many whole single-length batches as it can ...
    single = [b for b in batches if len(b) == size and len(set(lengths[b])) == 1]
    assert len(single) >= int((counts // size).sum())
    # ... and only the leftovers (fewer than `size` of each length) form batches of mixed lengths.
    mixed = [b for b in batches if len(set(lengths[b])) > 1]
    assert sum(len(b) for b in mixed) <= int((counts % size).sum())
    for b in mixed:
        assert np.all(np.diff(lengths[b]) >= 0)  # sorted: neighbouring lengths only


def test_equal_length_batches_keep_the_given_order_within_a_length() -> None:
    lengths = np.array([3, 1, 3, 3, 1, 3, 3])
    order = np.array([6, 5, 4, 3, 2, 1, 0])
    batches = [b.tolist() for b in sampling.equal_length_batches(order, lengths, 2)]
    assert batches == [[4, 1], [6, 5], [3, 2], [0]]  # by length, each in the given order; then the leftovers


@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("n", [5, 97, 250])
def test_exact_sampler_shares_every_example_once_in_equal_steps(replicas: int, n: int) -> None:
    lengths = skewed_lengths(n, seed=n)
    samplers = [BucketSampler(lengths, batch_size=8, seed=5, num_replicas=replicas, rank=r, equal_lengths=True)
                for r in range(replicas)]
    for number in (1, 2):
        shares = [epoch(s, number) for s in samplers]
        assert all(len(share) == len(samplers[0]) for share in shares)
        assert sorted(i for share in shares for batch in share for i in batch) == list(range(n))
    if n > 8:
        assert epoch(samplers[0], 1) != epoch(samplers[0], 2)  # reshuffled every epoch
    assert epoch(samplers[0], 2) == epoch(BucketSampler(lengths, batch_size=8, seed=5, num_replicas=replicas,
                                                        rank=0, equal_lengths=True), 2)  # and deterministic


def test_exact_bucketing_refuses_weights_and_streams() -> None:
    with pytest.raises(ValueError, match="equal-length batches cannot be drawn with sampling weights"):
        BucketSampler(np.array([1, 2, 3]), batch_size=2, equal_lengths=True, weights=np.ones(3))
    with pytest.raises(ConfigError, match="train.bucketing: exact needs every training length up front"):
        load_config(updates={"train.bucketing": "exact", "data.streaming": True})


def test_exact_bucketing_runs_most_batches_dense_where_pools_cannot() -> None:
    # Lengths spread wide relative to the batch: pools sorted by length still mix lengths in most batches.
    lengths = np.random.default_rng(0).integers(1, 40, size=4000)
    exact = list(BucketSampler(lengths, batch_size=32, seed=0, equal_lengths=True))
    pooled = list(BucketSampler(lengths, batch_size=32, pool_batches=2, seed=0))
    share = lambda batches: np.mean([len(set(lengths[b])) == 1 for b in batches])  # noqa: E731
    assert share(exact) > 0.6 > share(pooled)
    assert padding(lengths, exact) < padding(lengths, pooled)


# --- BucketSampler over several processes ----------------------------------------------------------------------


@pytest.mark.parametrize("replicas", [2, 3, 4])
@pytest.mark.parametrize("n", [4, 37, 96, 97, 101, 250])
@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_share_every_example_once_in_equal_steps(replicas: int, n: int, shuffle: bool) -> None:
    lengths = skewed_lengths(n, seed=n)
    samplers = [BucketSampler(lengths, batch_size=8, shuffle=shuffle, pool_batches=3, seed=5, num_replicas=replicas,
                              rank=r) for r in range(replicas)]
    for number in (1, 2):
        shares = [epoch(s, number) for s in samplers]
        assert len({len(share) for share in shares}) == 1  # every rank takes the same number of steps
        assert len(shares[0]) == len(samplers[0])
        everything = [i for share in shares for batch in share for i in batch]
        assert sorted(everything) == list(range(n))  # nothing dropped, nothing repeated
        for step in zip(*shares):
            sizes = [len(batch) for batch in step]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1  # balanced, no rank idle


@pytest.mark.parametrize("n", [64, 100, 258])  # (257 would leave one example for two ranks: merged, see below)
def test_global_batches_are_those_of_one_process_with_the_global_batch_size(n: int) -> None:
    lengths = skewed_lengths(n, seed=1)
    one = BucketSampler(lengths, batch_size=16, pool_batches=4, seed=9)
    ranks = [BucketSampler(lengths, batch_size=8, pool_batches=4, seed=9, num_replicas=2, rank=r) for r in (0, 1)]
    for number in (1, 2):
        together = [sorted(a + b) for a, b in zip(epoch(ranks[0], number), epoch(ranks[1], number))]
        assert together == [sorted(batch) for batch in epoch(one, number)]


def test_a_tail_too_small_to_share_joins_the_batch_before() -> None:
    lengths = np.arange(1, 18)  # 17 examples in global batches of 8 (4 per rank): 8 + 8 + 1
    shares = [BucketSampler(lengths, batch_size=4, shuffle=False, num_replicas=2, rank=r).batches() for r in (0, 1)]
    assert [len(b) for b in shares[0]] == [4, 5] and [len(b) for b in shares[1]] == [4, 4]


def test_fewer_examples_than_processes_is_an_error() -> None:
    with pytest.raises(DataError, match="3 examples cannot be shared among 4 processes"):
        BucketSampler(np.ones(3), batch_size=2, num_replicas=4, rank=0)


# --- weighted sampling ----------------------------------------------------------------------------------------


def imbalanced(n: int = 1000, rare_every: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skewed lengths, labels with one rare class (1 in ``rare_every``), and inverse-frequency weights."""
    labels = (np.arange(n) % rare_every == 0).astype(np.int64)
    counts = np.bincount(labels)
    return skewed_lengths(n), labels, 1.0 / counts[labels]


def test_weighted_sampler_draws_classes_about_equally_and_keeps_the_epoch_size() -> None:
    lengths, labels, weights = imbalanced()
    sampler = BucketSampler(lengths, 32, weights=weights, seed=1)
    drawn = np.concatenate([index for number in range(5) for index in epoch(sampler, number)])
    assert len(drawn) == 5 * len(lengths) and len(sampler) == len(BucketSampler(lengths, 32))
    share = labels[drawn].mean()  # the rare class is 10% of the data and about half of the draws
    assert 0.45 < share < 0.55
    assert len(np.unique(drawn)) < len(drawn)  # drawn with replacement


def test_weighted_sampler_is_deterministic_per_seed_and_epoch_and_still_length_bucketed() -> None:
    lengths, _, weights = imbalanced()
    a, b = (BucketSampler(lengths, 32, weights=weights, seed=3, pool_batches=5) for _ in range(2))
    assert epoch(a, 2) == epoch(b, 2)
    assert epoch(a, 2) != epoch(a, 3)
    assert epoch(a, 2) != epoch(BucketSampler(lengths, 32, weights=weights, seed=4, pool_batches=5), 2)
    # Within a pool the draws are length-sorted: bucketing pads far less than the same draws in random batches.
    batches = [np.array(x) for x in epoch(a, 2)]
    for batch in batches:
        assert np.all(np.diff(lengths[batch]) >= 0)
    draws = np.random.default_rng(0).permutation(np.concatenate(batches))
    assert padding(lengths, batches) < padding(lengths, [draws[i:i + 32] for i in range(0, len(draws), 32)]) / 3


@pytest.mark.parametrize("replicas", [2, 3])
def test_weighted_sampler_shares_the_same_global_draws_among_ranks(replicas: int) -> None:
    lengths, _, weights = imbalanced(500)
    whole = BucketSampler(lengths, 8 * replicas, weights=weights, seed=2)
    shares = [BucketSampler(lengths, 8, weights=weights, seed=2, num_replicas=replicas, rank=r)
              for r in range(replicas)]
    for sampler in [whole, *shares]:
        sampler.set_epoch(4)
    per_rank = [s.batches() for s in shares]
    assert len({len(b) for b in per_rank}) == 1  # equal steps on every rank
    for step, global_batch in enumerate(whole.batches()):
        together = np.concatenate([per_rank[r][step] for r in range(replicas)])
        assert sorted(together.tolist()) == sorted(global_batch.tolist())


def test_weighted_sampler_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="one finite, non-negative number per example"):
        BucketSampler(np.ones(4), 2, weights=np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="not all 0"):
        BucketSampler(np.ones(2), 2, weights=np.zeros(2))
