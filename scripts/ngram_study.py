#!/usr/bin/env python
"""The n-gram branch (seqnlp.ngrams) trained alone, without the RNN: a fast way to choose its orders, buckets,
initialization and learning rate on a recipe's data before paying for full runs (docs/accuracy.md).

The data, tokenizer and batches are the recipe's (same loading, carving and seed as ``seqnlp train``); each
variant trains the branch with AdamW and cross-entropy, batch 64, and prints its validation accuracy after its
initialization and after every epoch. Variants are ``;``-separated lists of ``key=value``: orders (digits, e.g.
123), buckets, init (nb | zeros), lr, wd, drop, epochs.

    python scripts/ngram_study.py --config configs/imdb.yaml "init=nb,lr=0.01;init=zeros,lr=0.01,buckets=4000000"
"""

from __future__ import annotations

import argparse
import time
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from seqnlp.batching import BatchLoader
from seqnlp.config import load_config
from seqnlp.data import load_splits
from seqnlp.ngrams import NgramBranch
from seqnlp.tokenizer import build_tokenizer, encode_dataset, iter_texts, pad_id

DEFAULTS = {"orders": "123", "buckets": "1000000", "init": "nb", "lr": "0.002", "wd": "0.01", "drop": "0",
            "epochs": "2"}


def accuracy(branch: NgramBranch, loader: BatchLoader) -> float:
    branch.eval()
    right = total = 0
    with torch.no_grad():
        for batch in loader:
            assert batch.labels is not None
            right += int((branch(batch.input_ids, batch.lengths).argmax(1) == batch.labels).sum())
            total += len(batch.labels)
    branch.train()
    return right / total


def whole_split(loader: BatchLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    for start in range(0, loader.num_examples, 256):
        batch = loader.collate(np.arange(start, min(start + 256, loader.num_examples)))
        assert batch.labels is not None
        yield batch.input_ids, batch.lengths, batch.labels


def run(spec: dict[str, str], vocab_size: int, num_labels: int, train: BatchLoader, val: BatchLoader,
        seed: int) -> str:
    torch.manual_seed(seed)
    branch = NgramBranch([int(n) for n in spec["orders"]], vocab_size, int(spec["buckets"]), num_labels,
                         float(spec["drop"]))
    if spec["init"] == "nb":
        branch.init_naive_bayes(whole_split(train))
    found = [f"init {accuracy(branch, val):.4f}"]
    optimizer = torch.optim.AdamW(branch.parameters(), lr=float(spec["lr"]), weight_decay=float(spec["wd"]))
    for epoch in range(1, int(spec["epochs"]) + 1):
        start = time.perf_counter()
        for batch in train.epoch(epoch):
            loss = F.cross_entropy(branch(batch.input_ids, batch.lengths), batch.labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        found.append(f"epoch {epoch} {accuracy(branch, val):.4f} ({time.perf_counter() - start:.0f} s)")
    return " | ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", help="';'-separated variants of key=value pairs (see above)")
    parser.add_argument("--config", required=True, help="the recipe whose data and tokenizer to use")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config, overrides=args.overrides)
    splits = load_splits(config.data, config.seed)
    tokenizer = build_tokenizer(config.tokenizer, iter_texts(splits.data[config.data.train_split]))
    pad = pad_id(tokenizer)
    train = BatchLoader(encode_dataset(splits.data[config.data.train_split], tokenizer), 64, pad_id=pad,
                        shuffle=True, seed=config.seed)
    val = BatchLoader(encode_dataset(splits.data[config.data.validation_split], tokenizer), 256, pad_id=pad)
    for text in args.variants.split(";"):
        spec = {**DEFAULTS, **dict(item.split("=", 1) for item in text.split(",") if item)}
        result = run(spec, tokenizer.get_vocab_size(), len(splits.label_names), train, val, config.seed)
        print(f"{text}: {result}", flush=True)


if __name__ == "__main__":
    main()
