#!/usr/bin/env python
"""A trained run with an n-gram branch, taken apart: validation and test accuracy of the recurrent head alone, of
the branch alone, of their sum (what the model predicts), and of head + a * branch for a few weights a (the one
with the lowest validation loss is named). Shows which part carries a run, and whether the 1:1 sum suits them.

    python scripts/ngram_parts.py runs/imdb-ngrams
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from seqnlp.batching import BatchLoader
from seqnlp.checkpoint import load_run
from seqnlp.data import load_splits
from seqnlp.tokenizer import encode_dataset, pad_id

WEIGHTS = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def parts_of(model: torch.nn.Module, loader: BatchLoader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """head logits [N, C], branch logits [N, C], labels [N] over the whole split."""
    heads, wides, labels = [], [], []
    with torch.no_grad():
        for batch in loader:
            parts = model(batch.input_ids, batch.lengths, parts=True)  # [3, B, C]: sum, head, branch
            heads.append(parts[1])
            wides.append(parts[2])
            labels.append(batch.labels)
    return torch.cat(heads), torch.cat(wides), torch.cat(labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config, tokenizer, labels, model = load_run(args.run_dir)
    if model.ngrams is None or not config.model.ngram_aux_loss:
        raise SystemExit(f"{args.run_dir} has no n-gram branch with model.ngram_aux_loss: nothing to take apart")
    model.eval()
    names = [config.data.validation_split, config.data.test_split]
    splits = load_splits(config.data, config.seed, label_names=labels, only=[n for n in names if n])
    found = {}
    for name in splits.data:
        loader = BatchLoader(encode_dataset(splits.data[name], tokenizer), 256, pad_id=pad_id(tokenizer))
        head, wide, y = found[name] = parts_of(model, loader)
        print(f"{name}: head {accuracy(head, y):.4f}  branch {accuracy(wide, y):.4f}  "
              f"sum {accuracy(head + wide, y):.4f}")
    head, wide, y = found[config.data.validation_split]
    losses = {a: float(F.cross_entropy(head + a * wide, y)) for a in WEIGHTS}
    for a in WEIGHTS:
        line = f"head + {a:g} x branch: validation {accuracy(head + a * wide, y):.4f} (loss {losses[a]:.4f})"
        if config.data.test_split in found:
            t_head, t_wide, t_y = found[config.data.test_split]
            line += f"  test {accuracy(t_head + a * t_wide, t_y):.4f}"
        print(line)
    print(f"lowest validation loss at a = {min(losses, key=losses.get):g}")


if __name__ == "__main__":
    main()
