#!/usr/bin/env python
"""Benchmark seqnlp against the pipeline most users hand-write from the packed-BiLSTM sentiment tutorial.

The reference (written here, tutorial style): lowercase + whitespace split, a ``Counter`` vocabulary, a
``Dataset`` of Python lists that tokenizes in ``__getitem__``, a ``DataLoader`` with plain random shuffling
whose ``collate_fn`` pads, ``nn.Embedding(V, 100)`` -> 2-layer bidirectional ``nn.LSTM(100, 256)`` over
``pack_padded_sequence(enforce_sorted=False)`` -> the last forward and backward states -> ``nn.Linear``;
Adam 1e-3, batch 64. seqnlp runs the same model and batch size through its public API (``seqnlp.load_config``,
``seqnlp.training.train``, ``seqnlp.load(...).logits``).

Every measured configuration runs in a fresh subprocess (clean thread settings, its own peak RSS); medians over
repeats go to ``OUT/results.md`` (one Markdown table per study) and every raw number to ``OUT/results.json``.

    python scripts/benchmark.py --quick                       # smoke run: tiny sizes, minutes
    python scripts/benchmark.py --out bench/main              # the full comparison (hours: docs/benchmarks.md)
    python scripts/benchmark.py --study packing --epochs 1    # packed vs dense vs bucketing, on SST-2
    python scripts/benchmark.py --study memory --epochs 1     # peak RSS on growing IMDB subsets
    python scripts/benchmark.py --study quickstart --threads auto,1,2 --busy 0,2   # `seqnlp train`, idle and busy

Studies:
  main     seqnlp vs the reference on SST-2 and IMDB: training tokens/s, examples/s, s/epoch, padding, peak RSS,
           accuracy after the same epochs; batch inference examples/s and single-text latency; CLI start-up.
  packing  the seqnlp model on SST-2 with every batch packed (forced here, in this process only) or seqnlp's own
           choice (``model.recurrence: auto``: dense when a batch's lengths are all equal, else masked or packed),
           for exact-length bucketing and pools of 1 (random batches) .. all.
  memory   peak RSS of both pipelines while training on growing IMDB subsets (nested: each contains the smaller).
  quickstart  README's first command, `seqnlp train` on the embedded SMS data with every default but the thread
           count, as a user runs it (the CLI in a fresh process, a fresh datasets cache): wall time, epochs, the
           thread counts `auto` settled on.

A busy machine (``--busy N``): N busy loops (``python -c "while True: pass"``) start before each measured job and
stop after it, so every job meets the same load; a comma list (``--busy 0,2``) interleaves idle and busy jobs.
``--threads auto`` runs seqnlp with ``train.num_threads: auto`` (the reference has no such setting: its ``x ref``
is against the reference at the usable CPU count, torch's default). seqnlp's jobs start torch with the OpenMP
settings seqnlp's command line gives it (``OMP_WAIT_POLICY=PASSIVE`` when the machine is busy as the job starts,
unless set); the reference's with the environment as it is. The quickstart study's ``--threads main`` is the command as it ran before ``auto``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import random
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import click
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"

# The model both pipelines train (the tutorial's), and the vocabulary bound both tokenizers get.
EMBEDDING_DIM = 100
HIDDEN_SIZE = 256  # per direction
NUM_LAYERS = 2
DROPOUT = 0.5  # on embeddings, between the LSTM layers, and before the head (as in the tutorial)
LR = 1e-3
VOCAB_MAX = 30_000  # special tokens included, as seqnlp's tokenizer.vocab_size counts them
MIN_FREQ = 2

STUDIES = ("main", "packing", "memory", "quickstart")
BUSY_LOOP = "while True: pass"  # one busy process of the busy-machine scenario
# seqnlp's log line for a decision of train.num_threads: auto (a progress bar may precede it on the same line)
THREAD_CHOICE = re.compile(r"threads: (?:now |still )?(\d+) threads? \(")
PIPELINES = ("reference", "seqnlp")
CELLS = ("lstm", "gru", "rnn")
PRECISIONS = ("fp32", "bf16")
BUCKETINGS = ("pool", "exact")  # seqnlp's train.bucketing
PACKING_MODES = ("auto", "packed")  # auto: seqnlp's choice (model.recurrence: auto); packed: every batch packed


# --------------------------------------------------------------------------------------------------------------
# The reference: the tutorial pipeline, kept deliberately plain.
# --------------------------------------------------------------------------------------------------------------

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


def tokenize(text: str) -> list[str]:
    """The tutorial's tokenizer: lowercase, split on whitespace."""
    return text.lower().split()


def build_vocab(texts: Iterable[str], max_size: int = VOCAB_MAX, min_freq: int = MIN_FREQ) -> dict[str, int]:
    """A ``Counter`` vocabulary: ``<pad>``=0, ``<unk>``=1, then the most frequent tokens seen ``min_freq`` times."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokenize(text))
    vocab = {PAD: PAD_ID, UNK: UNK_ID}
    for token, count in counts.most_common(max_size - len(vocab)):
        if count < min_freq:
            break
        vocab[token] = len(vocab)
    return vocab


def numericalize(text: str, vocab: dict[str, int], max_length: int) -> list[int]:
    """Token ids of one text, truncated to ``max_length``; an empty text gets one ``<unk>`` (packing rejects 0)."""
    return [vocab.get(token, UNK_ID) for token in tokenize(text)[:max_length]] or [UNK_ID]


class ReferenceDataset(Dataset):
    """Texts and label indices as Python lists; every access tokenizes, as the tutorial's pipeline does."""

    def __init__(self, texts: list[str], labels: list[int], vocab: dict[str, int], max_length: int) -> None:
        self.texts = texts
        self.labels = labels
        self.vocab = vocab
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return numericalize(self.texts[index], self.vocab, self.max_length), self.labels[index]


def collate_batch(batch: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``collate_fn``: pad to the longest text -> ids [B, T], lengths [B] (CPU), labels [B]."""
    sequences = [torch.tensor(ids, dtype=torch.long) for ids, _ in batch]
    lengths = torch.tensor([len(ids) for ids in sequences], dtype=torch.long)  # [B]
    ids = pad_sequence(sequences, batch_first=True, padding_value=PAD_ID)  # [B, T]
    labels = torch.tensor([label for _, label in batch], dtype=torch.long)  # [B]
    return ids, lengths, labels


_RNN_CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class ReferenceClassifier(nn.Module):
    """Embedding -> packed bidirectional RNN/LSTM/GRU -> [last forward state; last backward state] -> linear."""

    def __init__(self, vocab_size: int, num_labels: int, cell: str = "lstm") -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, EMBEDDING_DIM, padding_idx=PAD_ID)
        self.rnn = _RNN_CELLS[cell](EMBEDDING_DIM, HIDDEN_SIZE, num_layers=NUM_LAYERS, bidirectional=True,
                                    dropout=DROPOUT, batch_first=True)
        self.fc = nn.Linear(2 * HIDDEN_SIZE, num_labels)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids [B, T], lengths [B] (CPU) -> logits [B, C]."""
        embedded = self.dropout(self.embedding(ids))  # [B, T, E]
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        _, hidden = self.rnn(packed)
        if isinstance(hidden, tuple):  # LSTM: (h_n, c_n)
            hidden = hidden[0]  # [L*2, B, H]
        hidden = self.dropout(torch.cat([hidden[-2], hidden[-1]], dim=-1))  # [B, 2H]: top layer, both directions
        return self.fc(hidden)  # [B, C]


def reference_train_epoch(
    model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, criterion: nn.Module
) -> dict[str, float]:
    """One epoch of the tutorial's loop; returns the same numbers seqnlp writes to metrics.jsonl under ``train``."""
    model.train()
    loss_sum, examples, tokens, slots = 0.0, 0, 0, 0
    start = time.perf_counter()
    for ids, lengths, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(ids, lengths), labels)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(labels)
        examples += len(labels)
        tokens += int(lengths.sum())
        slots += ids.numel()
    seconds = time.perf_counter() - start
    return {
        "loss": loss_sum / max(examples, 1),
        "seconds": seconds,
        "examples_per_s": examples / seconds,
        "tokens_per_s": tokens / seconds,  # real tokens, padding excluded
        "padding_ratio": 1.0 - tokens / max(slots, 1),
    }


@torch.no_grad()
def reference_logits(model: nn.Module, vocab: dict[str, int], texts: list[str], max_length: int,
                     batch_size: int) -> torch.Tensor:
    """Batch inference the tutorial way: a DataLoader over the texts in their order -> logits [N, C]."""
    model.eval()
    dataset = ReferenceDataset(texts, [0] * len(texts), vocab, max_length)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_batch)
    return torch.cat([model(ids, lengths) for ids, lengths, _ in loader])  # [N, C]


@torch.no_grad()
def reference_predict_one(model: nn.Module, vocab: dict[str, int], text: str, max_length: int) -> torch.Tensor:
    """The tutorial's ``predict_sentiment``: one text -> class probabilities [C]."""
    ids = torch.tensor(numericalize(text, vocab, max_length), dtype=torch.long).unsqueeze(0)  # [1, T]
    lengths = torch.tensor([ids.shape[1]])  # [1]
    return torch.softmax(model(ids, lengths), dim=-1)[0]  # [C]


# --------------------------------------------------------------------------------------------------------------
# seqnlp, configured like the reference.
# --------------------------------------------------------------------------------------------------------------


def seqnlp_updates(job: dict[str, Any]) -> dict[str, Any]:
    """Dotted config values that make a seqnlp run match the reference.

    Same model (embedding 100, 2x256 bidirectional, dropout 0.5 on embeddings, between layers and before the
    head, pooling ``last`` = the final forward and backward states), batch 64, Adam 1e-3 (AdamW with weight decay
    0), constant learning rate without warm-up, no gradient clipping, every epoch trained (no early stopping):
    the math of the tutorial. What stays seqnlp's own: the word tokenizer (Rust, punctuation split off), the
    length-bucketed sampler (``bucket_pool``) and the choice of dense, masked or packed recurrence per batch.
    """
    return {
        "data.data_files": {"train": job["train_file"], "validation": job["eval_file"]},
        "data.text_columns": ["text"],
        "data.label_column": "label",
        "data.test_split": None,
        "data.test_size": 0.0,
        "tokenizer.kind": "word",
        "tokenizer.vocab_size": VOCAB_MAX,
        "tokenizer.min_frequency": MIN_FREQ,
        "tokenizer.max_length": job["max_length"],
        "model.cell": job["cell"],
        "model.embedding_dim": EMBEDDING_DIM,
        "model.hidden_size": HIDDEN_SIZE,
        "model.num_layers": NUM_LAYERS,
        "model.bidirectional": True,
        "model.dropout": DROPOUT,
        "model.embedding_dropout": DROPOUT,
        "model.pooling": "last",
        "model.head_hidden_size": 0,
        "model.recurrence": "packed" if job.get("force_packing") else "auto",
        "train.epochs": job["epochs"],
        "train.batch_size": job["batch_size"],
        "train.eval_batch_size": job["infer_batch"],
        "train.lr": LR,
        "train.weight_decay": 0.0,
        "train.schedule": "constant",
        "train.warmup_ratio": 0.0,
        "train.max_grad_norm": None,
        "train.label_smoothing": 0.0,
        "train.monitor": "accuracy",
        "train.patience": None,
        "train.bucketing": job.get("bucketing", "pool"),
        "train.bucket_pool": job["bucket_pool"],
        "train.precision": job["precision"],
        "train.device": "cpu",
        "train.num_threads": job["threads"],
        "seed": job["seed"],
        "output_dir": job["run_dir"],
    }


class PackingProbe:
    """Wraps seqnlp's ``RecurrentEncoder.forward`` in this (worker) process only; the library is unchanged.

    It counts training batches whose lengths are all equal and the batches that ran on dense kernels (equal
    lengths, or seqnlp's masked path). With ``force`` (which also sets ``model.recurrence: packed``) it runs
    equal-length batches packed too: one zero step is appended, so the lengths differ from the width and seqnlp
    takes its packed path, which never reads past a text's length. The math is the same either way; only speed
    differs.
    """

    def __init__(self, force: bool) -> None:
        self.force = force
        self.batches = 0
        self.equal_length = 0
        self.dense = 0

    def install(self) -> None:
        from seqnlp.model import RecurrentEncoder

        original = RecurrentEncoder.forward
        probe = self

        def forward(encoder: Any, embedded: torch.Tensor, lengths: torch.Tensor,
                    need_outputs: bool = True) -> tuple[Optional[torch.Tensor], torch.Tensor]:
            path = encoder.path(lengths, embedded.shape[1], embedded.device)
            equal_length = path == "dense"  # seqnlp runs a batch dense exactly when its lengths are all equal
            if probe.force and equal_length:
                padded = F.pad(embedded, (0, 0, 0, 1))  # [B, T+1, E]
                outputs, final = original(encoder, padded, lengths, need_outputs)
                path = "packed"
                result = (None if outputs is None else outputs[:, :-1]), final
            else:
                result = original(encoder, embedded, lengths, need_outputs)
            if encoder.training:
                probe.batches += 1
                probe.equal_length += int(equal_length)
                probe.dense += int(path != "packed")
            return result

        RecurrentEncoder.forward = forward  # type: ignore[method-assign]

    def stats(self) -> dict[str, Any]:
        def share(count: int) -> float:
            return count / self.batches if self.batches else 0.0

        return {"train_batches": self.batches, "equal_length_share": share(self.equal_length),
                "dense_share": share(self.dense)}


# --------------------------------------------------------------------------------------------------------------
# Workers: one measured configuration per process.
# --------------------------------------------------------------------------------------------------------------


def max_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    On Linux this is ``VmHWM`` of /proc/self/status, the high-water mark of this program's own memory map.
    ``ru_maxrss`` is not used there: across fork + exec it keeps the parent's peak, so every child of a parent
    holding 500 MiB would report at least 500 MiB.
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def read_jsonl(path: str | Path) -> tuple[list[str], list[str]]:
    """A prepared split -> (texts, label names)."""
    texts, labels = [], []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row["label"])
    return texts, labels


def seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def time_latency(predict_one: Callable[[str], Any], texts: list[str]) -> list[float]:
    """Seconds per single-text call, after three warm-up calls."""
    for text in texts[:3]:
        predict_one(text)
    seconds = []
    for text in texts:
        start = time.perf_counter()
        predict_one(text)
        seconds.append(time.perf_counter() - start)
    return seconds


def run_reference(job: dict[str, Any]) -> dict[str, Any]:
    """Train the tutorial pipeline for ``epochs``, evaluate it once (timed as batch inference), time single texts."""
    seed_all(job["seed"])
    train_texts, train_names = read_jsonl(job["train_file"])
    eval_texts, eval_names = read_jsonl(job["eval_file"])
    label_names = sorted(set(train_names))
    index = {name: i for i, name in enumerate(label_names)}
    vocab = build_vocab(train_texts)
    dataset = ReferenceDataset(train_texts, [index[n] for n in train_names], vocab, job["max_length"])
    loader = DataLoader(dataset, batch_size=job["batch_size"], shuffle=True, collate_fn=collate_batch,
                        generator=torch.Generator().manual_seed(job["seed"]))
    model = ReferenceClassifier(len(vocab), len(label_names), cell=job["cell"])
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    criterion = nn.CrossEntropyLoss()
    epochs = [reference_train_epoch(model, loader, optimizer, criterion) for _ in range(job["epochs"])]
    peak_train = max_rss_mb()

    # Evaluation after the last epoch is also the batch-inference measurement.
    reference_logits(model, vocab, eval_texts[:16], job["max_length"], job["infer_batch"])  # warm-up
    start = time.perf_counter()
    logits = reference_logits(model, vocab, eval_texts, job["max_length"], job["infer_batch"])  # [N, C]
    infer_seconds = time.perf_counter() - start
    gold = torch.tensor([index[n] for n in eval_names])
    result: dict[str, Any] = {
        "epochs": epochs,
        "accuracy": float((logits.argmax(dim=-1) == gold).float().mean()),
        "vocab_size": len(vocab),
        "num_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "peak_rss_train_mb": peak_train,
    }
    if job["measure_inference"]:
        result["infer_examples_per_s"] = len(eval_texts) / infer_seconds
        result["latency_s"] = time_latency(
            lambda text: reference_predict_one(model, vocab, text, job["max_length"]),
            eval_texts[: job["latency_samples"]],
        )
    return result


def run_seqnlp(job: dict[str, Any]) -> dict[str, Any]:
    """Train through ``seqnlp.training.train`` (throughput from its metrics), then time ``seqnlp.load(...).logits``."""
    import datasets
    from tokenizers import Tokenizer

    import seqnlp
    from seqnlp.training import train

    datasets.disable_progress_bars()
    probe = PackingProbe(force=job["force_packing"])
    probe.install()
    config = seqnlp.load_config(updates=seqnlp_updates(job))
    trained = train(config, overwrite=True, progress=False)
    peak_train = max_rss_mb()
    run_dir = Path(trained.run_dir)
    result: dict[str, Any] = {
        "epochs": [record["train"] for record in trained.history],
        "accuracy": trained.history[-1]["validation"]["accuracy"],  # after the last epoch, as for the reference
        "best_epoch": trained.best_epoch,
        "best_accuracy": trained.validation["accuracy"],
        "vocab_size": Tokenizer.from_file(str(run_dir / "tokenizer.json")).get_vocab_size(),
        "num_parameters": trained.num_parameters,
        "peak_rss_train_mb": peak_train,
        **probe.stats(),
    }
    if job["measure_inference"]:
        eval_texts, _ = read_jsonl(job["eval_file"])
        classifier = seqnlp.load(run_dir, device="cpu", batch_size=job["infer_batch"], precision=job["precision"])
        classifier.logits(eval_texts[:16])  # warm-up
        start = time.perf_counter()
        classifier.logits(eval_texts)
        result["infer_examples_per_s"] = len(eval_texts) / (time.perf_counter() - start)
        result["latency_s"] = time_latency(lambda text: classifier.logits([text]),
                                           eval_texts[: job["latency_samples"]])
    if not job["keep_run"]:
        (run_dir / "model.safetensors").unlink(missing_ok=True)  # config, metrics and results stay as evidence
    return result


def run_worker(job_file: Path) -> None:
    """Entry point of a child process: run one job, write its result JSON."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    job = json.loads(job_file.read_text(encoding="utf-8"))
    if job["threads"] != "auto":  # auto: seqnlp sets its own (the reference has no auto jobs)
        torch.set_num_threads(job["threads"])
    if job["pipeline"] == "seqnlp":  # import what seqnlp will use, so the baseline covers each pipeline's imports
        import seqnlp.predict  # noqa: F401
        import seqnlp.training  # noqa: F401
    baseline = max_rss_mb()
    run = run_seqnlp if job["pipeline"] == "seqnlp" else run_reference
    result = run(job)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update({
        "cpu_seconds": usage.ru_utime + usage.ru_stime,  # all threads; wall time is the parent's wall_s
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "rss_after_imports_mb": baseline,
        "peak_rss_mb": max_rss_mb(),
    })
    Path(job["result_file"]).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------
# Data: the same prepared files for both pipelines.
# --------------------------------------------------------------------------------------------------------------

SST2_LABELS = ("negative", "positive")


def read_sst2(path: Path) -> list[tuple[str, str]]:
    """GLUE SST-2 TSV (header ``sentence<TAB>label``, no quoting) -> (text, label name) rows."""
    with path.open(encoding="utf-8", newline="") as f:
        return [(row["sentence"], SST2_LABELS[int(row["label"])])
                for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def read_imdb(path: Path) -> list[tuple[str, str]]:
    """IMDB CSV (``id,rating,label,text``, RFC-4180 quoting, labels neg/pos) -> (text, label name) rows."""
    with path.open(encoding="utf-8", newline="") as f:
        return [(row["text"], row["label"]) for row in csv.DictReader(f)]


@dataclass(frozen=True)
class DataSpec:
    name: str
    train_file: str  # in DATA_DIR/<name>/
    eval_file: str
    eval_split: str  # what the evaluation split is, for the report
    read: Callable[[Path], list[tuple[str, str]]]


DATASETS = {
    "sst2": DataSpec("sst2", "train.tsv", "dev.tsv", "dev", read_sst2),
    "imdb": DataSpec("imdb", "train.csv", "test.csv", "test", read_imdb),
}
DEFAULT_SIZES = {"train": {"sst2": None, "imdb": 5000}, "eval": {"sst2": None, "imdb": 5000}}  # None: all rows
QUICK_SIZES = {"train": {"sst2": 500, "imdb": 100}, "eval": {"sst2": 100, "imdb": 50}}


def seeded_subset(rows: Sequence[Any], size: Optional[int], seed: int) -> list[Any]:
    """The first ``size`` rows of a seeded permutation (all rows when ``size`` is None): a larger subset holds
    every smaller one, so growing the data only adds examples."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    count = len(rows) if size is None else min(size, len(rows))
    return [rows[i] for i in order[:count]]


def write_jsonl(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for text, label in rows:
            f.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    tmp.replace(path)


def prepare_data(spec: DataSpec, data_dir: Path, out: Path, train_size: Optional[int], eval_size: Optional[int],
                 seed: int, cache: dict[Path, list[tuple[str, str]]]) -> dict[str, Any]:
    """Write seeded subsets of a dataset as JSONL ``{"text", "label"}`` files that both pipelines read."""
    source_train, source_eval = data_dir / spec.name / spec.train_file, data_dir / spec.name / spec.eval_file
    for path in (source_train, source_eval):
        if not path.is_file():
            raise click.ClickException(f"{spec.name}: {path} does not exist (set --data-dir)")
    for path in (source_train, source_eval):
        if path not in cache:
            cache[path] = spec.read(path)
    train_rows = seeded_subset(cache[source_train], train_size, seed)
    eval_rows = seeded_subset(cache[source_eval], eval_size, seed)
    folder = out / "data" / f"{spec.name}-{len(train_rows)}-{len(eval_rows)}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    train_file, eval_file = folder / "train.jsonl", folder / "eval.jsonl"
    if not train_file.exists():
        write_jsonl(train_file, train_rows)
    if not eval_file.exists():
        write_jsonl(eval_file, eval_rows)
    return {"dataset": spec.name, "train_file": str(train_file), "eval_file": str(eval_file),
            "train_examples": len(train_rows), "eval_examples": len(eval_rows), "eval_split": spec.eval_split,
            "source": [str(source_train), str(source_eval)]}


# --------------------------------------------------------------------------------------------------------------
# Jobs: build, run each in a subprocess, collect.
# --------------------------------------------------------------------------------------------------------------


def job_id(job: dict[str, Any]) -> str:
    parts = [job["study"], job["dataset"], job["pipeline"], job["cell"], job["precision"], f"t{job['threads']}"]
    if job["variant"]:
        parts.append(job["variant"])
    if job.get("busy"):
        parts.append(f"busy{job['busy']}")
    return "-".join(parts + [f"r{job['repeat']}"])


def make_job(settings: dict[str, Any], data: dict[str, Any], study: str, pipeline: str, cell: str, precision: str,
             threads: int | str, repeat: int, variant: str = "", bucket_pool: int = 50, force_packing: bool = False,
             measure_inference: bool = True, bucketing: str = "pool", busy: int = 0) -> dict[str, Any]:
    job = {
        "study": study, "dataset": data["dataset"], "pipeline": pipeline, "cell": cell, "precision": precision,
        "threads": threads, "repeat": repeat, "variant": variant, "seed": settings["seed"] + repeat,
        "epochs": settings["epochs"], "max_length": settings["max_length"], "batch_size": settings["batch_size"],
        "infer_batch": settings["infer_batch"], "latency_samples": settings["latency_samples"],
        "train_file": data["train_file"], "eval_file": data["eval_file"], "train_examples": data["train_examples"],
        "bucketing": bucketing, "bucket_pool": bucket_pool, "force_packing": force_packing, "measure_inference": measure_inference,
        "keep_run": settings["keep_runs"], "busy": busy,
    }
    job["id"] = job_id(job)
    return job


def study_cells(settings: dict[str, Any], study: str) -> list[str]:
    """``--cells`` if given; else every cell for the main study and LSTM for the packing and memory studies."""
    return settings["cells"] or list(CELLS if study == "main" else ["lstm"])


def study_precisions(settings: dict[str, Any], study: str) -> list[str]:
    """``--precision`` if given; else fp32 and bf16 for the main study and fp32 for the packing study."""
    return settings["precisions"] or list(PRECISIONS if study == "main" else ["fp32"])


def main_jobs(settings: dict[str, Any], prepared: dict[str, dict[str, Any]], repeat: int) -> list[dict[str, Any]]:
    """Per data set, busy level and thread count: the reference (not for ``auto``) and each seqnlp variant."""
    jobs = []
    for name in settings["datasets"]:
        for busy in settings.get("busy", [0]):
            for threads in settings["threads"]:
                for cell in study_cells(settings, "main"):
                    if "reference" in settings["pipelines"] and threads != "auto":
                        jobs.append(make_job(settings, prepared[name], "main", "reference", cell, "fp32", threads,
                                             repeat, busy=busy))
                    if "seqnlp" in settings["pipelines"]:
                        for precision in study_precisions(settings, "main"):
                            for bucketing in settings["bucketings"]:
                                jobs.append(make_job(settings, prepared[name], "main", "seqnlp", cell, precision,
                                                     threads, repeat, variant="" if bucketing == "pool" else bucketing,
                                                     bucketing=bucketing, busy=busy))
    return jobs


def quickstart_jobs(settings: dict[str, Any], repeat: int) -> list[dict[str, Any]]:
    """README's first command at each busy level and thread setting (data: the embedded SMS collection)."""
    data = {"dataset": "sms", "train_file": "", "eval_file": "", "train_examples": 0}
    return [make_job(settings, data, "quickstart", "seqnlp", "lstm", "fp32", threads, repeat, busy=busy,
                     measure_inference=False)
            for busy in settings.get("busy", [0]) for threads in settings["threads"]]


def packing_jobs(settings: dict[str, Any], data: dict[str, Any], repeat: int) -> list[dict[str, Any]]:
    jobs = []
    all_batches = max(1, math.ceil(data["train_examples"] / settings["batch_size"]))  # one pool: a full sort
    for threads in settings["threads"]:
        for cell in study_cells(settings, "packing"):
            for precision in study_precisions(settings, "packing"):
                for pool in settings["pools"]:
                    for mode in settings["packing_modes"]:
                        jobs.append(make_job(
                            settings, data, "packing", "seqnlp", cell, precision, threads, repeat,
                            variant=f"pool{pool}-{mode}", bucket_pool=all_batches if pool in ("all", "exact") else
                            int(pool), bucketing="exact" if pool == "exact" else "pool",
                            force_packing=mode == "packed", measure_inference=False))
    return jobs


def memory_jobs(settings: dict[str, Any], prepared: list[dict[str, Any]], repeat: int) -> list[dict[str, Any]]:
    jobs = []
    for data in prepared:
        for threads in settings["threads"]:
            for pipeline in settings["pipelines"]:
                jobs.append(make_job(settings, data, "memory", pipeline, study_cells(settings, "memory")[0], "fp32",
                                     threads, repeat, variant=f"n{data['train_examples']}", measure_inference=False))
    return jobs


def use_this_checkout() -> dict[str, str]:
    """Make this checkout's seqnlp the one imported here and in every child (not another installed copy)."""
    if (REPO / "seqnlp" / "__init__.py").is_file():
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    return {}


def child_env(threads: int | str, out: Path) -> dict[str, str]:
    """The environment of a measured child: its thread count everywhere (``auto``: nothing set, as a user's shell
    sets nothing), offline, caches inside OUT."""
    env = dict(os.environ)
    env.update(use_this_checkout())
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS", "RAYON_RS_NUM_CPUS"):
        if threads == "auto":
            env.pop(name, None)
        else:
            env[name] = str(threads)
    env.update({"HF_DATASETS_CACHE": str(out / "hf-cache"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "true"})
    return env


@contextlib.contextmanager
def busy_machine(processes: int) -> Iterator[None]:
    """``processes`` busy loops (one Python process each, never pinned) for the length of the block."""
    loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(processes)]
    try:
        if loops:
            time.sleep(0.5)  # let them start spinning
        yield
    finally:
        for loop in loops:
            loop.kill()
        for loop in loops:
            loop.wait()


def run_job(job: dict[str, Any], out: Path, resume: bool, timeout: Optional[float] = None) -> dict[str, Any]:
    """Run one job in a fresh Python process (beside ``job["busy"]`` busy loops); returns its result merged with
    the job (or an ``error``, also when it ran past ``timeout`` seconds), and the load average before and after."""
    jobs_dir, logs_dir = out / "jobs", out / "logs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    logs_dir.mkdir(parents=True, exist_ok=True)
    job_file, result_file = jobs_dir / f"{job['id']}.job.json", jobs_dir / f"{job['id']}.json"
    log_file = logs_dir / f"{job['id']}.log"
    job = {**job, "run_dir": str(out / "runs" / job["id"]), "result_file": str(result_file)}
    if resume and result_file.is_file() and job_file.is_file():
        if json.loads(job_file.read_text(encoding="utf-8")) == job:
            return {"job": job, **json.loads(result_file.read_text(encoding="utf-8")), "resumed": True}
    result_file.unlink(missing_ok=True)
    job_file.write_text(json.dumps(job, indent=1) + "\n", encoding="utf-8")
    load_before = [round(x, 2) for x in os.getloadavg()]
    with busy_machine(job.get("busy", 0)), log_file.open("w", encoding="utf-8") as log:
        start = time.perf_counter()
        try:
            if job["study"] == "quickstart":
                proc = run_quickstart(job, out, log, timeout)
            else:
                env = child_env(job["threads"], out)
                if job["pipeline"] == "seqnlp":  # what seqnlp's command line starts torch with (seqnlp.threads)
                    from seqnlp.threads import machine_busy_now, passive_wait_env

                    env.update(passive_wait_env(env, machine_busy_now()))
                proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(job_file)],
                                      stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=timeout)
        except subprocess.TimeoutExpired:
            wall = time.perf_counter() - start
            return {"job": job, "error": f"timed out after {wall:.0f} s", "wall_s": wall, "timed_out": True,
                    "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]}
        wall = time.perf_counter() - start
    loads = {"load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]}
    if proc.returncode != 0 or not result_file.is_file():
        tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        return {"job": job, "error": f"exit {proc.returncode}: " + " | ".join(tail), "wall_s": wall, **loads}
    return {"job": job, **json.loads(result_file.read_text(encoding="utf-8")), "wall_s": wall, **loads}


def run_quickstart(job: dict[str, Any], out: Path, log: Any, timeout: Optional[float] = None) -> subprocess.CompletedProcess:
    """README's first command as a user runs it: ``python -m seqnlp train`` with every default but
    ``train.num_threads``, this checkout's seqnlp, a fresh datasets cache; then its result file from the run."""
    run_dir, cache = Path(job["run_dir"]), out / "hf-cache" / job["id"]
    shutil.rmtree(cache, ignore_errors=True)
    env = {**child_env("auto", out), "HF_DATASETS_CACHE": str(cache)}
    env.pop("TOKENIZERS_PARALLELISM", None)
    threads = job["threads"]
    if threads == "main":  # as before train.num_threads: auto: torch's default count, libgomp's default spinning
        threads, env["GOMP_SPINCOUNT"] = "null", "300000"
    command = [sys.executable, "-m", "seqnlp", "train", "--output-dir", str(run_dir), "--overwrite",
               "--set", f"train.num_threads={threads}"]
    try:
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=timeout)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if proc.returncode == 0:
        log.flush()
        text = Path(log.name).read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
        epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        result = {"epochs": [e["train"] for e in epochs], "accuracy": results["test"]["accuracy"],
                  "best_epoch": results["best_epoch"], "command": shlex.join(command[1:]),
                  "thread_choices": THREAD_CHOICE.findall(text),
                  "thread_log": [line[line.index("threads: "):] for line in text.splitlines() if "threads: " in line]}
        (run_dir / "model.safetensors").unlink(missing_ok=True)
        Path(job["result_file"]).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return proc


def measure_startup(runs: int, out: Path) -> dict[str, Any]:
    """Median wall time of ``seqnlp --help`` and ``seqnlp predict --help`` (the installed entry point, else
    ``python -m seqnlp``), with the bare interpreter and ``import torch`` for scale."""
    entry = shutil.which("seqnlp")
    cli = [entry] if entry else [sys.executable, "-m", "seqnlp"]
    commands = {
        "seqnlp --help": cli + ["--help"],
        "seqnlp predict --help": cli + ["predict", "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    env = child_env(1, out)
    results: dict[str, Any] = {"entry_point": shlex.join(cli)}
    for name, command in commands.items():
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # warm the page cache
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            seconds.append(time.perf_counter() - start)
            if proc.returncode != 0:
                results[name] = {"error": proc.stderr.decode(errors="replace").strip().splitlines()[-1:]}
                break
        else:
            results[name] = {"command": shlex.join(command), "seconds": seconds, "median_s": statistics.median(seconds)}
    return results


# --------------------------------------------------------------------------------------------------------------
# Summaries and the Markdown report.
# --------------------------------------------------------------------------------------------------------------


def run_metrics(result: dict[str, Any]) -> dict[str, float]:
    """One run's numbers: throughput over all its epochs, mean s/epoch and padding, memory, accuracy, inference."""
    epochs = result["epochs"]
    seconds = sum(e["seconds"] for e in epochs)
    tokens = sum(e["tokens_per_s"] * e["seconds"] for e in epochs)
    examples = sum(e["examples_per_s"] * e["seconds"] for e in epochs)
    if result["job"]["study"] == "quickstart":
        return {"wall_s": result["wall_s"], "train_seconds": seconds, "epochs": len(epochs),
                "epoch_seconds": seconds / len(epochs), "train_tokens_per_s": tokens / seconds,
                "accuracy": result["accuracy"], "load_before": result["load_before"][0],
                "load_after": result["load_after"][0]}
    metrics = {
        "train_tokens_per_s": tokens / seconds,
        "train_examples_per_s": examples / seconds,
        "epoch_seconds": seconds / len(epochs),
        "padding_ratio": statistics.fmean(e["padding_ratio"] for e in epochs),
        "tokens_per_example": tokens / examples,
        "peak_rss_train_mb": result["peak_rss_train_mb"],
        "peak_rss_mb": result["peak_rss_mb"],
        "rss_after_imports_mb": result["rss_after_imports_mb"],
        "accuracy": result["accuracy"],
        "vocab_size": result["vocab_size"],
        "num_parameters": result["num_parameters"],
    }
    for key in ("equal_length_share", "dense_share", "infer_examples_per_s", "cpu_seconds", "wall_s"):
        if key in result:
            metrics[key] = result[key]
    if result.get("latency_s"):
        latency = sorted(result["latency_s"])
        metrics["latency_ms"] = 1000 * statistics.median(latency)
        metrics["latency_p90_ms"] = 1000 * latency[min(len(latency) - 1, int(0.9 * len(latency)))]
    return metrics


GROUP_KEYS = ("study", "dataset", "pipeline", "cell", "precision", "threads", "variant", "busy")


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group runs by configuration (every job field but the repeat) -> median, min and max of every metric."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for result in results:
        key = tuple(result["job"].get(k, 0) for k in GROUP_KEYS)
        groups.setdefault(key, []).append(result)
    rows = []
    for key, members in groups.items():
        ok = [run_metrics(m) for m in members if "error" not in m]
        row: dict[str, Any] = dict(zip(GROUP_KEYS, key))
        row.update({"train_examples": members[0]["job"]["train_examples"], "repeats": len(ok),
                    "errors": [m["error"] for m in members if "error" in m],
                    "timed_out_s": [round(m["wall_s"]) for m in members if m.get("timed_out")],
                    "thread_choices": [m.get("thread_choices") for m in members if "error" not in m]})
        for metric in sorted({k for m in ok for k in m}):
            values = [m[metric] for m in ok if metric in m]
            row[metric] = statistics.median(values)
            row[f"{metric}_min"], row[f"{metric}_max"] = min(values), max(values)
        rows.append(row)
    add_ratios(rows)
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """seqnlp rows of the main study get ratios to the reference with the same data, cell, threads and busy level
    (``auto``: the reference at the usable CPU count, torch's default); quickstart rows get their wall time over
    the best fixed thread count's at the same busy level."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    reference = {(r["dataset"], r["cell"], r["threads"], r.get("busy", 0)): r for r in rows
                 if r["study"] == "main" and r["pipeline"] == "reference" and r["repeats"]}
    for busy in {r.get("busy", 0) for r in rows if r["study"] == "quickstart"}:
        level = [r for r in rows if r["study"] == "quickstart" and r.get("busy", 0) == busy and r["repeats"]]
        fixed = [r for r in level if isinstance(r["threads"], int)]
        for row in level:
            if fixed:  # thread counts round differently, so early stopping may end runs at different epochs
                row["wall_vs_best_fixed"] = row["wall_s"] / min(r["wall_s"] for r in fixed)
                row["epoch_vs_best_fixed"] = row["epoch_seconds"] / min(r["epoch_seconds"] for r in fixed)
    for row in rows:
        threads = usable if row["threads"] == "auto" else row["threads"]
        ref = reference.get((row["dataset"], row["cell"], threads, row.get("busy", 0)))
        if row["study"] != "main" or row["pipeline"] != "seqnlp" or ref is None or not row["repeats"]:
            continue
        row["train_tokens_ratio"] = row["train_tokens_per_s"] / ref["train_tokens_per_s"]
        row["train_examples_ratio"] = row["train_examples_per_s"] / ref["train_examples_per_s"]
        row["accuracy_delta_points"] = 100 * (row["accuracy"] - ref["accuracy"])
        if "infer_examples_per_s" in row and "infer_examples_per_s" in ref:
            row["infer_ratio"] = row["infer_examples_per_s"] / ref["infer_examples_per_s"]
        if "latency_ms" in row and "latency_ms" in ref:
            row["latency_speedup"] = ref["latency_ms"] / row["latency_ms"]


def _num(value: Optional[float], digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def main_table(rows: list[dict[str, Any]]) -> list[str]:
    header = ["data", "cell", "pipeline", "precision", "threads", "train tok/s", "x ref", "train ex/s", "s/epoch",
              "padding", "dense", "peak RSS MiB", "accuracy %", "d acc (pts)", "infer ex/s", "x ref", "latency ms",
              "x ref"]
    body = []
    for r in rows:
        if not r["repeats"]:
            body.append([r["dataset"], r["cell"], r["pipeline"], r["precision"], _threads(r)]
                        + ["error"] + [""] * (len(header) - 6))
            continue
        delta = r.get("accuracy_delta_points")
        body.append([
            r["dataset"], r["cell"], _pipeline_name(r), r["precision"], _threads(r),
            _num(r["train_tokens_per_s"]), _ratio(r.get("train_tokens_ratio")), _num(r["train_examples_per_s"], 1),
            _num(r["epoch_seconds"], 1), f"{100 * r['padding_ratio']:.1f}%",
            f"{100 * r['dense_share']:.0f}%" if "dense_share" in r else "", _num(r["peak_rss_train_mb"]),
            _num(100 * r["accuracy"], 2), "" if delta is None else f"{delta:+.2f}",
            _num(r.get("infer_examples_per_s"), 1), _ratio(r.get("infer_ratio")), _num(r.get("latency_ms"), 2),
            _ratio(r.get("latency_speedup")),
        ])
    return _table(header, body)


def _threads(row: dict[str, Any]) -> str:
    """The thread setting, with the busy loops beside the run when there were any."""
    return str(row["threads"]) + (f" (busy {row['busy']})" if row.get("busy") else "")


def quickstart_table(rows: list[dict[str, Any]]) -> list[str]:
    """README's first command: wall time per busy level and thread setting, and what auto settled on."""
    header = ["busy loops", "train.num_threads", "wall s (median)", "min-max", "x best fixed", "s/epoch",
              "x best fixed", "epochs", "train tok/s", "test accuracy %", "auto's choices", "load before/after"]
    body = []
    for r in sorted((r for r in rows if r["study"] == "quickstart"), key=lambda r: (r.get("busy", 0), str(r["threads"]))):
        if not r["repeats"]:
            stopped = f"> {min(r['timed_out_s'])} (stopped)" if r.get("timed_out_s") else "error"
            body.append([str(r.get("busy", 0)), str(r["threads"]), stopped] + [""] * (len(header) - 3))
            continue
        choices = [" -> ".join(c) for c in r.get("thread_choices") or [] if c]
        body.append([str(r.get("busy", 0)), str(r["threads"]), _num(r["wall_s"], 1),
                     f"{r['wall_s_min']:.1f}-{r['wall_s_max']:.1f}", _ratio(r.get("wall_vs_best_fixed")),
                     _num(r["epoch_seconds"], 2), _ratio(r.get("epoch_vs_best_fixed")), _num(r["epochs"]),
                     _num(r["train_tokens_per_s"]),
                     _num(100 * r["accuracy"], 2), "; ".join(choices) if r["threads"] == "auto" else "",
                     f"{r['load_before']:.1f}/{r['load_after']:.1f}"])
    return _table(header, body)


def _pipeline_name(row: dict[str, Any]) -> str:
    """The pipeline, with seqnlp's bucketing when it is not the default."""
    return f"{row['pipeline']} ({row['variant']})" if row["pipeline"] == "seqnlp" and row.get("variant") else row["pipeline"]


def data_table(rows: list[dict[str, Any]], prepared: dict[str, dict[str, Any]], max_length: int) -> list[str]:
    """Per data set: sizes, both vocabularies, tokens per example, and parameter counts (LSTM when run)."""
    cell = next((c for c in ("lstm", *CELLS) if any(r["cell"] == c for r in rows)), "lstm")
    header = ["data", "train", "eval", "max length", "reference vocab", "seqnlp vocab", "reference tok/example",
              "seqnlp tok/example", f"reference params ({cell})", f"seqnlp params ({cell})"]
    body = []
    for name, data in prepared.items():
        def first(pipeline: str, metric: str) -> Optional[float]:
            found = [r[metric] for r in rows if r["study"] == "main" and r["dataset"] == name
                     and r["pipeline"] == pipeline and r["cell"] == cell and metric in r]
            return found[0] if found else None

        body.append([name, f"{data['train_examples']:,}", f"{data['eval_examples']:,} ({data['eval_split']})",
                     str(max_length), _num(first("reference", "vocab_size")), _num(first("seqnlp", "vocab_size")),
                     _num(first("reference", "tokens_per_example"), 1), _num(first("seqnlp", "tokens_per_example"), 1),
                     _num(first("reference", "num_parameters")), _num(first("seqnlp", "num_parameters"))])
    return _table(header, body)


def packing_table(rows: list[dict[str, Any]]) -> list[str]:
    header = ["cell", "precision", "threads", "bucket pool (batches)", "packing", "train tok/s", "x default",
              "s/epoch", "padding", "equal-length batches", "ran dense", "accuracy %"]
    study = [r for r in rows if r["study"] == "packing" and r["repeats"]]
    default = {(r["cell"], r["precision"], r["threads"]): r for r in study if r["variant"] == "pool50-auto"}
    body = []
    for r in study:
        pool, mode = r["variant"][len("pool"):].rsplit("-", 1)
        base = default.get((r["cell"], r["precision"], r["threads"]))
        body.append([r["cell"], r["precision"], str(r["threads"]), pool, mode, _num(r["train_tokens_per_s"]),
                     _ratio(r["train_tokens_per_s"] / base["train_tokens_per_s"]) if base else "",
                     _num(r["epoch_seconds"], 1), f"{100 * r['padding_ratio']:.1f}%",
                     f"{100 * r['equal_length_share']:.0f}%", f"{100 * r['dense_share']:.0f}%",
                     _num(100 * r["accuracy"], 2)])
    return _table(header, body)


def memory_table(rows: list[dict[str, Any]]) -> list[str]:
    header = ["pipeline", "threads", "train examples", "peak RSS MiB (training)", "x smallest", "RSS after imports MiB"]
    study = sorted((r for r in rows if r["study"] == "memory" and r["repeats"]),
                   key=lambda r: (r["pipeline"], r["threads"], r["train_examples"]))
    smallest: dict[tuple, float] = {}
    body = []
    for r in study:
        base = smallest.setdefault((r["pipeline"], r["threads"]), r["peak_rss_train_mb"])
        body.append([r["pipeline"], str(r["threads"]), f"{r['train_examples']:,}", _num(r["peak_rss_train_mb"]),
                     _ratio(r["peak_rss_train_mb"] / base), _num(r.get("rss_after_imports_mb"))])
    return _table(header, body)


def targets(rows: list[dict[str, Any]], startup: dict[str, Any]) -> list[str]:
    """Issue 3's targets, read off the medians: benchmark output, not a test."""
    lines = []
    for r in rows:
        if r["study"] != "main" or r["pipeline"] != "seqnlp" or r["cell"] != "lstm" or "train_tokens_ratio" not in r:
            continue
        delta = r["accuracy_delta_points"]
        if r["precision"] == "fp32":
            met = r["train_tokens_ratio"] >= 3.5 and delta >= 0
            goal = ">= 3.5x tokens/s at equal or better accuracy"
        else:
            met = r["train_tokens_ratio"] >= 5 and delta >= -0.3
            goal = ">= 5x tokens/s, accuracy at most 0.3 points below the reference"
        lines.append(f"- {r['dataset']}, LSTM {r['precision']}, {r['threads']} thread(s): {goal}: "
                     f"{r['train_tokens_ratio']:.2f}x, {delta:+.2f} points -> **{'met' if met else 'not met'}**")
    for name in ("seqnlp --help", "seqnlp predict --help"):
        if "median_s" in startup.get(name, {}):
            median = startup[name]["median_s"]
            lines.append(f"- `{name}` < 0.5 s: {median:.3f} s -> **{'met' if median < 0.5 else 'not met'}**")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    machine, settings, rows = report["machine"], report["settings"], report["summary"]
    lines = ["# seqnlp benchmark", "", f"Command: `{machine['command']}`", "",
             f"- machine: {machine['cpu_model']}, {machine['cpu_count']} logical CPUs "
             f"({machine['cpus_usable']} usable by this process), Python {machine['python']}, torch {machine['torch']} "
             f"(default threads {machine['torch_default_threads']}, CPU capability {machine['cpu_capability']})",
             f"- seqnlp {machine['seqnlp']} at {machine['git_commit']}; {machine['date']}; "
             f"load average at start {machine['load_average']}",
             f"- median of {settings['repeats']} repeat(s) (seed {settings['seed']} + repeat); {settings['epochs']} "
             f"epoch(s); batch {settings['batch_size']}; inference batch {settings['infer_batch']}; "
             f"latency over {settings['latency_samples']} texts", ""]
    main = [r for r in rows if r["study"] == "main"]
    if main:
        lines += ["## seqnlp vs the tutorial pipeline", "", *main_table(main), "",
                  "x ref: seqnlp / reference (latency: reference / seqnlp). d acc: seqnlp - reference accuracy, "
                  "in points, after the same number of epochs.", "",
                  *data_table(main, report["data"], settings["max_length"]), ""]
    if any(r["study"] == "packing" for r in rows):
        lines += ["## Packing study (SST-2)", "", *packing_table(rows), "",
                  "x default: tokens/s relative to seqnlp's default (pool 50, auto). exact: batches of one "
                  "length wherever possible; a number: shuffled pools of that many batches, sorted by length. "
                  "packed: every batch packed; auto: seqnlp's choice (equal lengths dense, others masked or packed "
                  "by `model.recurrence: auto`).", ""]
    if any(r["study"] == "memory" for r in rows):
        lines += ["## Peak memory as IMDB grows", "", *memory_table(rows), ""]
    if any(r["study"] == "quickstart" for r in rows):
        lines += ["## README's first command (`seqnlp train`, embedded SMS data)", "", *quickstart_table(rows), "",
                  "wall s: the whole command in a fresh process with a fresh datasets cache (imports, data, "
                  "tokenizer, training, test evaluation). x best fixed: over the fastest fixed thread count's "
                  "median at the same busy level, for the wall time and for the training seconds per epoch (thread "
                  "counts round differently, so early stopping can end runs at different epochs). auto's choices: "
                  "per repeat, the count each probe settled on. load: the 1-minute load average before and after "
                  "the run (the busy loops included).", ""]
    startup = report.get("startup") or {}
    timed = {k: v for k, v in startup.items() if isinstance(v, dict)}
    if timed:
        body = [[f"`{k}`", f"{v['median_s']:.3f}" if "median_s" in v else "error",
                 f"{min(v['seconds']):.3f}" if "seconds" in v else "", str(len(v.get("seconds", [])))]
                for k, v in timed.items()]
        lines += ["## Start-up", "", *_table(["command", "median s", "min s", "runs"], body), ""]
    goals = targets(rows, startup)
    if goals:
        lines += ["## Targets (issue 3)", "", *goals, ""]
    errors = [f"- {r['study']} {r['dataset']} {r['pipeline']} {r['cell']} {r['precision']} {r['variant']}: {e}"
              for r in rows for e in r["errors"]]
    if errors:
        lines += ["## Errors", "", *errors, ""]
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    import seqnlp

    cpu_model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "seqnlp": seqnlp.__version__,
        "seqnlp_path": str(Path(seqnlp.__file__).parent),
        "git_commit": commit,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name] + sys.argv),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }


# --------------------------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------------------------


def parse_list(value: str, choices: Sequence[str], option: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in choices]
    if bad or not items:
        raise click.BadParameter(f"{bad[0] if bad else value!r} is not one of {', '.join(choices)}", param_hint=option)
    return list(dict.fromkeys(items))


def parse_ints(value: str, option: str, allow: Sequence[str] = ()) -> list[Any]:
    items = []
    for item in (v.strip() for v in value.split(",") if v.strip()):
        if item in allow:
            items.append(item)
        elif item.isdigit() and int(item) > 0:
            items.append(int(item))
        else:
            extra = f" or {', '.join(allow)}" if allow else ""
            raise click.BadParameter(f"{item!r} is not a positive integer{extra}", param_hint=option)
    if not items:
        raise click.BadParameter("give at least one value", param_hint=option)
    return items


def parse_sizes(items: Sequence[str], defaults: dict[str, Optional[int]], option: str) -> dict[str, Optional[int]]:
    """``DATASET=N`` (or ``DATASET=all``) items over per-dataset defaults."""
    sizes = dict(defaults)
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in DATASETS or not (value == "all" or (value.isdigit() and int(value) > 0)):
            raise click.BadParameter(f"{item!r} is not DATASET=N or DATASET=all with DATASET one of "
                                     f"{', '.join(DATASETS)}", param_hint=option)
        sizes[name] = None if value == "all" else int(value)
    return sizes


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--study", default="main", show_default=True, help="Comma list of: main, packing, memory, quickstart.")
@click.option("--datasets", "dataset_names", default="sst2,imdb", show_default=True, help="Main study data.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR,
              show_default=True, help="Folder with sst2/ and imdb/.")
@click.option("--train-size", multiple=True, metavar="DATASET=N",
              help="Training examples (seeded subset, or 'all') [default: sst2=all, imdb=5000].")
@click.option("--eval-size", multiple=True, metavar="DATASET=N",
              help="Evaluation examples: SST-2 dev, IMDB test [default: sst2=all, imdb=5000].")
@click.option("--max-length", type=click.IntRange(min=1), help="Tokens kept per text, both pipelines [default: 400].")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per run [default: 3].")
@click.option("--repeats", type=click.IntRange(min=1), help="Runs per configuration; medians reported [default: 3].")
@click.option("--threads", help="Comma list of torch thread counts and/or auto (seqnlp's train.num_threads: auto); "
              "quickstart also takes main (torch's default count and OpenMP's default spinning, as before auto) "
              "[default: all CPUs usable].")
@click.option("--busy", default="0", show_default=True,
              help="Comma list of busy-loop counts: each job runs beside that many busy processes (0: none).")
@click.option("--cells", help="Comma list of lstm, gru, rnn [default: all three for main, lstm otherwise].")
@click.option("--precision", "precisions", help="seqnlp precisions: fp32, bf16 [default: both for main, fp32 "
              "otherwise]; the reference runs fp32.")
@click.option("--pipelines", default="reference,seqnlp", show_default=True, help="Which pipelines to run.")
@click.option("--pools", default="1,50,all,exact", show_default=True,
              help="Packing study: bucketing pools in batches ('all': one pool, a full sort) and/or 'exact' "
                   "(train.bucketing=exact).")
@click.option("--packing", "packing_modes", default="auto,packed", show_default=True,
              help="Packing study: auto (seqnlp's choice) and/or packed (every batch).")
@click.option("--memory-sizes", help="Memory study: comma list of IMDB training sizes [default: 1250,2500,5000,10000].")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--infer-batch", type=click.IntRange(min=1), default=256, show_default=True,
              help="Batch size of batch inference (and seqnlp's evaluation).")
@click.option("--latency-samples", type=click.IntRange(min=1), help="Texts timed one at a time [default: 100].")
@click.option("--startup-runs", type=click.IntRange(min=0), help="Runs per start-up command; 0 skips [default: 10].")
@click.option("--seed", type=int, default=13, show_default=True, help="Data subsets; run r uses seed + r.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder for results.json, results.md, logs and runs [default: bench/<time>].")
@click.option("--quick", is_flag=True, help="Smoke run: tiny subsets, 1 epoch, 1 repeat, max length 128.")
@click.option("--bucketing", "bucketings", default="pool", show_default=True,
              help="Main study: seqnlp's train.bucketing, comma list of pool, exact.")
@click.option("--resume", is_flag=True, help="Reuse finished jobs already in --out (same settings only).")
@click.option("--timeout", "job_timeout", type=click.FloatRange(min=1), help="Stop a job after this many seconds "
              "(reported as an error: it took at least that long).")
@click.option("--keep-runs", is_flag=True, help="Keep model weights in the run directories.")
@click.option("--worker", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
def main(study: str, dataset_names: str, data_dir: Path, train_size: tuple[str, ...], eval_size: tuple[str, ...],
         max_length: Optional[int], epochs: Optional[int], repeats: Optional[int], threads: Optional[str],
         cells: Optional[str], precisions: Optional[str], pipelines: str, pools: str, packing_modes: str,
         memory_sizes: Optional[str], batch_size: int, infer_batch: int, latency_samples: Optional[int],
         startup_runs: Optional[int], seed: int, out: Optional[Path], quick: bool, bucketings: str, resume: bool,
         keep_runs: bool, worker: Optional[Path], busy: str, job_timeout: Optional[float]) -> None:
    """Benchmark seqnlp against the hand-written packed-BiLSTM tutorial pipeline (see docs/benchmarks.md)."""
    use_this_checkout()
    if worker is not None:
        run_worker(worker)
        return
    studies = parse_list(study, STUDIES, "--study")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    sizes = QUICK_SIZES if quick else DEFAULT_SIZES
    settings: dict[str, Any] = {
        "studies": studies,
        "datasets": parse_list(dataset_names, tuple(DATASETS), "--datasets"),
        "train_sizes": parse_sizes(train_size, sizes["train"], "--train-size"),
        "eval_sizes": parse_sizes(eval_size, sizes["eval"], "--eval-size"),
        "max_length": max_length or (128 if quick else 400),
        "epochs": epochs or (1 if quick else 3),
        "repeats": repeats or (1 if quick else 3),
        "threads": parse_ints(threads, "--threads", allow=("auto", "main")) if threads else [usable],
        "busy": [0 if b == "0" else b for b in parse_ints(busy, "--busy", allow=("0",))],
        "cells": parse_list(cells, CELLS, "--cells") if cells else None,  # None: each study's default
        "precisions": parse_list(precisions, PRECISIONS, "--precision") if precisions else None,
        "pipelines": parse_list(pipelines, PIPELINES, "--pipelines"),
        "pools": parse_ints(pools, "--pools", allow=("all", "exact")),
        "bucketings": parse_list(bucketings, BUCKETINGS, "--bucketing"),
        "packing_modes": parse_list(packing_modes, PACKING_MODES, "--packing"),
        "memory_sizes": parse_ints(memory_sizes or ("50,100" if quick else "1250,2500,5000,10000"), "--memory-sizes"),
        "batch_size": batch_size,
        "infer_batch": infer_batch,
        "latency_samples": latency_samples or (5 if quick else 100),
        "startup_runs": startup_runs if startup_runs is not None else (3 if quick else 10),
        "seed": seed,
        "quick": quick,
        "keep_runs": keep_runs,
    }
    out = out or REPO / "bench" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    click.echo(f"seqnlp benchmark -> {out}\n  {machine['cpu_model']}, {machine['cpus_usable']} usable CPUs, "
               f"torch {machine['torch']}, studies {', '.join(studies)}")

    cache: dict[Path, list[tuple[str, str]]] = {}

    def prepare(name: str, train: Optional[int] = None) -> dict[str, Any]:
        size = train if train is not None else settings["train_sizes"][name]
        return prepare_data(DATASETS[name], data_dir, out, size, settings["eval_sizes"][name], seed, cache)

    prepared = {name: prepare(name) for name in settings["datasets"]} if "main" in studies else {}
    packing_data = prepare("sst2") if "packing" in studies else None
    memory_data = [prepare("imdb", n) for n in settings["memory_sizes"]] if "memory" in studies else []
    cache.clear()

    report: dict[str, Any] = {"machine": machine, "settings": settings, "data": prepared,
                              "packing_data": packing_data, "memory_data": memory_data, "startup": {},
                              "runs": [], "summary": []}
    if "main" in studies and settings["startup_runs"]:
        click.echo("start-up times ...")
        report["startup"] = measure_startup(settings["startup_runs"], out)

    jobs: list[dict[str, Any]] = []
    for repeat in range(settings["repeats"]):  # repeats outermost: slow drift of the machine hits every config alike
        if "main" in studies:
            jobs += main_jobs(settings, prepared, repeat)
        if packing_data is not None:
            jobs += packing_jobs(settings, packing_data, repeat)
        if memory_data:
            jobs += memory_jobs(settings, memory_data, repeat)
        if "quickstart" in studies:
            jobs += quickstart_jobs(settings, repeat)
    click.echo(f"{len(jobs)} jobs, each in its own process; logs in {out / 'logs'}")
    started = time.perf_counter()
    for number, job in enumerate(jobs, start=1):
        result = run_job(job, out, resume, job_timeout)
        report["runs"].append(result)
        if "error" in result:
            status = f"ERROR {result['error']}"
        elif job["study"] == "quickstart":
            status = (f"{result['wall_s']:.1f} s wall, {len(result['epochs'])} epochs, threads "
                      f"{' -> '.join(result['thread_choices']) or job['threads']}")
        else:
            m = run_metrics(result)
            status = (f"{m['train_tokens_per_s']:,.0f} tok/s, {m['epoch_seconds']:.1f} s/epoch, "
                      f"acc {100 * m['accuracy']:.2f}%, peak {m['peak_rss_train_mb']:,.0f} MiB"
                      + (", reused" if result.get("resumed") else ""))
        elapsed = time.perf_counter() - started
        click.echo(f"[{number}/{len(jobs)}] {job['id']}: {status} ({result.get('wall_s', 0):.0f} s; "
                   f"{elapsed / 60:.1f} min so far)")
        report["summary"] = summarize(report["runs"])
        (out / "results.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    markdown = render_markdown(report)
    (out / "results.md").write_text(markdown + "\n", encoding="utf-8")
    click.echo("\n" + markdown)
    click.echo(f"Wrote {out / 'results.json'} and {out / 'results.md'}")


if __name__ == "__main__":
    main()
