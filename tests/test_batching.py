"""Length-bucketed sampling and padded batches: checked against naive references on small synthetic data."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pyarrow as pa
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Sequence, Value, concatenate_datasets

from seqnlp import batching
from seqnlp.batching import Batch, BatchLoader, BucketSampler, StreamLoader, chunk_starts, pad_flat, take_rows
from seqnlp.config import load_config
from seqnlp.errors import CheckpointError, ConfigError, DataError


def naive_pad(rows: list[list[int]], pad_id: int) -> np.ndarray:
    width = max(len(r) for r in rows)
    return np.array([r + [pad_id] * (width - len(r)) for r in rows], dtype=np.int64)


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


# --- pad_flat -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("pad_id", [0, 7])
def test_pad_flat_matches_naive_reference(seed: int, pad_id: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 20, size=int(rng.integers(1, 12)))
    rows = [rng.integers(10, 1000, size=n).tolist() for n in lengths]
    flat = np.array([v for r in rows for v in r], dtype=np.int32)
    padded = pad_flat(flat, lengths, pad_id)
    assert padded.dtype == np.int64
    assert padded.shape == (len(rows), max(lengths))
    np.testing.assert_array_equal(padded, naive_pad(rows, pad_id))


def test_pad_flat_equal_lengths_and_single_row() -> None:
    np.testing.assert_array_equal(pad_flat(np.array([1, 2, 3, 4]), np.array([2, 2]), 0), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(pad_flat(np.array([5, 6, 7]), np.array([3]), 0), [[5, 6, 7]])
    np.testing.assert_array_equal(pad_flat(np.array([5, 6, 7]), np.array([1, 2]), 9), [[5, 9], [6, 7]])


# --- take_rows ------------------------------------------------------------------------------------------------


def chunked_ids(chunks: int = 30, rows: int = 200, seed: int = 0) -> pa.ChunkedArray:
    rng = np.random.default_rng(seed)
    arrays = [pa.array([list(range(int(k))) for k in rng.integers(1, 60, size=rows)], type=pa.list_(pa.int32()))
              for _ in range(chunks)]
    arrays[3] = arrays[3].slice(17, 90)  # a chunk that is a view with an offset
    return pa.chunked_array(arrays)


@pytest.mark.parametrize("seed", range(4))
def test_take_rows_matches_arrow_take(seed: int) -> None:
    column = chunked_ids(seed=seed)
    rng = np.random.default_rng(seed)
    for size in (0, 1, 7, 300):
        indices = rng.integers(0, len(column), size=size)
        expected = column.take(pa.array(indices, type=pa.int64())).combine_chunks()
        assert take_rows(column, chunk_starts(column), indices).equals(expected)


def peak_arrow_allocation(work: Callable[[], object]) -> int:
    """The most memory Arrow held at once while ``work`` ran (bytes)."""
    default = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(default)
    pa.set_memory_pool(pool)
    try:
        work()
    finally:
        pa.set_memory_pool(default)
    return pool.max_memory()


def test_take_rows_copies_the_rows_not_the_column() -> None:
    column = chunked_ids(chunks=40, rows=500)
    indices = np.random.default_rng(1).integers(0, len(column), size=64)
    assert peak_arrow_allocation(lambda: column.take(pa.array(indices))) >= column.nbytes  # what it avoids
    assert peak_arrow_allocation(lambda: take_rows(column, chunk_starts(column), indices)) < column.nbytes / 20


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
    batches = batching.equal_length_batches(order, lengths, size)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert len(batches) == batching.count_equal_length_batches(lengths, size)
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
    batches = [b.tolist() for b in batching.equal_length_batches(order, lengths, 2)]
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


# --- BatchLoader ----------------------------------------------------------------------------------------------

ENCODED = Features(
    {"input_ids": Sequence(Value("int32")), "length": Value("int32"), "label": ClassLabel(names=["a", "b", "c"])}
)


def encoded_split(n: int, start: int = 0, seed: int = 0, labelled: bool = True) -> Dataset:
    """Rows whose ids encode their row number (row r: r*1000+2, r*1000+3, ...), so misplaced rows show."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 15, size=n)
    rows = range(start, start + n)
    data = {
        "input_ids": [[r * 1000 + 2 + j for j in range(int(k))] for r, k in zip(rows, lengths)],
        "length": [int(k) for k in lengths],
    }
    features = ENCODED.copy()
    if labelled:
        data["label"] = [r % 3 for r in rows]
    else:
        del features["label"]
    return Dataset.from_dict(data, features=features)


def check_loader(split: Dataset, loader: BatchLoader, pad_id: int = 0) -> None:
    """Every batch agrees with the split's own rows, and every row appears once."""
    expected_ids = list(split["input_ids"])
    expected_labels: Optional[list[int]] = list(split["label"]) if "label" in split.column_names else None
    seen: list[int] = []
    for batch in loader:
        assert isinstance(batch, Batch)
        indices = batch.indices.tolist()
        seen += indices
        rows = [expected_ids[i] for i in indices]
        lengths = [len(r) for r in rows]
        assert batch.input_ids.dtype == torch.int64
        assert batch.input_ids.shape == (len(rows), max(lengths))
        assert batch.lengths.dtype == torch.int64
        assert batch.lengths.device.type == "cpu"
        assert batch.lengths.tolist() == lengths
        assert batch.num_tokens == sum(lengths)
        for row, (ids, length) in enumerate(zip(rows, lengths)):
            assert batch.input_ids[row, :length].tolist() == ids
            assert torch.all(batch.input_ids[row, length:] == pad_id)
        if expected_labels is None:
            assert batch.labels is None
        else:
            assert batch.labels is not None
            assert batch.labels.dtype == torch.int64
            assert batch.labels.tolist() == [expected_labels[i] for i in indices]
    assert sorted(seen) == list(range(len(split)))


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_batches_match_the_rows(shuffle: bool) -> None:
    split = encoded_split(50)
    loader = BatchLoader(split, batch_size=8, shuffle=shuffle, pool_batches=2, seed=1)
    assert len(loader) == 7
    assert loader.num_examples == 50
    assert len(list(loader)) == 7
    check_loader(split, loader)


def test_loader_pads_with_the_given_pad_id() -> None:
    split = encoded_split(20)
    check_loader(split, BatchLoader(split, batch_size=6, pad_id=5), pad_id=5)


def test_loader_without_shuffle_orders_by_length() -> None:
    split = encoded_split(30)
    loader = BatchLoader(split, batch_size=7)
    lengths = np.concatenate([b.lengths.numpy() for b in loader])
    assert np.all(np.diff(lengths) >= 0)


def test_loader_epochs_change_the_order_but_not_the_content() -> None:
    split = encoded_split(60)
    loader = BatchLoader(split, batch_size=8, shuffle=True, pool_batches=2, seed=0)
    loader.set_epoch(0)
    first = [b.indices.tolist() for b in loader]
    loader.set_epoch(1)
    second = [b.indices.tolist() for b in loader]
    assert first != second
    assert sorted(i for b in first for i in b) == sorted(i for b in second for i in b) == list(range(60))


@pytest.mark.parametrize(
    "view",
    [
        lambda d: d.select([7, 3, 3, 0, 25, 12, 9, 40, 1]),
        lambda d: d.select(range(10, 30)),  # contiguous: an offset slice of the table, no indices mapping
        lambda d: d.shuffle(seed=4),
        lambda d: d.shuffle(seed=4).select(range(5, 35)),
        lambda d: d.train_test_split(test_size=0.3, seed=0)["test"],
    ],
    ids=["select", "select-contiguous", "shuffle", "shuffle-select", "train-test-split"],
)
def test_loader_on_views_with_indices(view) -> None:  # type: ignore[no-untyped-def]
    split = view(encoded_split(50))
    check_loader(split, BatchLoader(split, batch_size=4, shuffle=True, pool_batches=2, seed=2))


def test_loader_on_multi_chunk_arrow_data() -> None:
    split = concatenate_datasets([encoded_split(7, start=0, seed=1), encoded_split(13, start=7, seed=2),
                                  encoded_split(11, start=20, seed=3)])
    assert split.data.column("input_ids").num_chunks == 3  # precondition: several chunks
    check_loader(split, BatchLoader(split, batch_size=5, shuffle=True, pool_batches=2, seed=0))
    assert split[20]["input_ids"][0] == 20 * 1000 + 2


def test_loader_on_shuffled_multi_chunk_data() -> None:
    split = concatenate_datasets([encoded_split(9, start=0, seed=1), encoded_split(9, start=9, seed=2)])
    view = split.shuffle(seed=0).select(range(3, 17))
    check_loader(view, BatchLoader(view, batch_size=4, shuffle=True, pool_batches=1, seed=1))


def test_unlabeled_split_gives_no_labels() -> None:
    split = encoded_split(12, labelled=False)
    loader = BatchLoader(split, batch_size=5)
    assert loader.labels is None
    check_loader(split, loader)


def test_batch_to_keeps_lengths_on_cpu() -> None:
    split = encoded_split(6)
    batch = next(iter(BatchLoader(split, batch_size=6)))
    moved = batch.to(torch.device("cpu"))
    assert moved.lengths is batch.lengths
    assert torch.equal(moved.input_ids, batch.input_ids)
    assert moved.labels is not None and batch.labels is not None
    assert torch.equal(moved.labels, batch.labels)
    np.testing.assert_array_equal(moved.indices, batch.indices)


# --- StreamLoader ---------------------------------------------------------------------------------------------


def stream_batches(split: Dataset, epoch_number: int, replicas: int = 1, rank: int = 0, **kwargs: int) -> list[Batch]:
    loader = StreamLoader(split.to_iterable_dataset(num_shards=3), pad_id=0, seed=2, num_replicas=replicas,
                          rank=rank, **kwargs)  # type: ignore[arg-type]
    return list(loader.epoch(epoch_number))


def rows_of(batch: Batch) -> list[int]:
    """The row numbers encoded in the ids (row r starts with r*1000+2)."""
    return [(int(ids[0]) - 2) // 1000 for ids in batch.input_ids]


@pytest.mark.parametrize("read_batch", [7, 1000])  # pools made of several reads, or several pools from one
@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("n", [5, 50, 97])
def test_stream_loader_shares_every_example_once_in_equal_steps(
    replicas: int, n: int, read_batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "READ_BATCH", read_batch)
    split = encoded_split(n, seed=n)
    expected = {r: row for r, row in enumerate(split["input_ids"])}
    for number in (1, 2):
        shares = [stream_batches(split, number, replicas, r, batch_size=4, pool_batches=2) for r in range(replicas)]
        assert len({len(share) for share in shares}) == 1
        seen = []
        for batch in (b for share in shares for b in share):
            rows = rows_of(batch)
            seen += rows
            assert batch.labels is not None and batch.labels.tolist() == [r % 3 for r in rows]
            for i, r in enumerate(rows):
                assert batch.input_ids[i, : batch.lengths[i]].tolist() == expected[r]
                assert torch.all(batch.input_ids[i, batch.lengths[i] :] == 0)
        assert sorted(seen) == list(range(n))


def test_stream_loader_buckets_by_length_and_reshuffles_every_epoch() -> None:
    split = encoded_split(200, seed=3)
    first, second = (stream_batches(split, number, batch_size=10, pool_batches=5) for number in (1, 2))
    assert [rows_of(b) for b in first] != [rows_of(b) for b in second]
    pooled = [np.sort(split["length"][start : start + 50]) for start in range(0, 200, 50)]
    naive = sum(int(p[i : i + 10].max()) * len(p[i : i + 10]) for p in pooled for i in range(0, 50, 10))
    assert sum(b.input_ids.numel() for b in first) <= naive + 10 * 14  # sorted within pools: little padding


def test_stream_loader_cannot_start_inside_an_epoch_or_share_too_few_examples() -> None:
    loader = StreamLoader(encoded_split(3).to_iterable_dataset(), batch_size=2, num_replicas=2, rank=0)
    with pytest.raises(CheckpointError, match="resumes at epoch boundaries only"):
        next(loader.epoch(2, skip=5))
    few = StreamLoader(encoded_split(1).to_iterable_dataset(), batch_size=2, num_replicas=2, rank=1)
    with pytest.raises(DataError, match="too few to share among 2 processes"):
        list(few.epoch(1))


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
    shares = [BucketSampler(lengths, 8, weights=weights, seed=2, num_replicas=replicas, rank=r) for r in range(replicas)]
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


def test_loader_gives_multi_hot_labels_as_float_rows() -> None:
    features = Features({"input_ids": Sequence(Value("int32")), "length": Value("int32"),
                         "label": Sequence(Value("float32"), length=3)})
    hot = [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    split = Dataset.from_dict({"input_ids": [[2], [3, 4], [5], [6, 7, 8]], "length": [1, 2, 1, 3], "label": hot},
                              features=features)
    loader = BatchLoader(split.select([3, 1, 0, 2]), 3)
    assert loader.labels is not None and loader.labels.shape == (4, 3) and loader.labels.dtype == np.float32
    for batch in loader:
        assert batch.labels is not None and batch.labels.dtype == torch.float32
        assert batch.labels.tolist() == [hot[[3, 1, 0, 2][i]] for i in batch.indices]
