"""Padded batches from Arrow data and from streams: checked against naive references on small synthetic data
(the sampling that orders them is tests/test_sampling.py)."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pyarrow as pa
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Sequence, Value, concatenate_datasets

from seqnlp import batching
from seqnlp.batching import Batch, BatchLoader, StreamLoader, chunk_starts, pad_flat, take_rows
from seqnlp.errors import CheckpointError, DataError


def naive_pad(rows: list[list[int]], pad_id: int) -> np.ndarray:
    width = max(len(r) for r in rows)
    return np.array([r + [pad_id] * (width - len(r)) for r in rows], dtype=np.int64)




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
