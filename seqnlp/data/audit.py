"""``seqnlp audit``: what is wrong with a data set, and what it implies for training, before any training.

``audit(config)`` loads and splits the data exactly as ``train`` would (carved splits included), runs the
cheap checks of ``seqnlp.data.scan`` (duplicates, leakage, conflicting labels, empty texts), then trains the
tokenizer the config would train and measures, untruncated: token-length percentiles, what each candidate
``tokenizer.max_length`` truncates and how much padding it implies, the unknown-token rate of every split and,
with ``model.pretrained_vectors``, how many vocabulary entries and running tokens the vectors cover. A
majority-class baseline says what score a model must beat. ``AuditReport`` renders as Markdown
(``seqnlp.data.audit_markdown``) or JSON.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from datasets import Dataset
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from seqnlp.config import Config, validate
from seqnlp.data.audit_markdown import render
from seqnlp.data.provenance import run_splits
from seqnlp.data.scan import SplitScan, label_array, scan_splits
from seqnlp.data.sources import describe_source
from seqnlp.data.splits import load_splits, load_stream
from seqnlp.sampling import BucketSampler, cut
from seqnlp.tokenizer import SPECIAL_TOKENS, UNK, build_tokenizer, encode_texts, iter_texts

log = logging.getLogger(__name__)

KEEP = (0.95, 0.99)  # the shares of training texts a suggested max_length keeps whole
ENCODE_CHUNK = 10_000  # texts encoded at a time


@dataclass
class LengthStats:
    """Token counts of one split's texts, untruncated, under the tokenizer training would build."""

    texts: int
    tokens: int
    mean: float
    percentiles: dict[str, int]  # "p50", "p90", "p95", "p99", "max" -> tokens
    unknown: int  # [UNK] tokens
    unknown_rate: float  # unknown / tokens
    texts_with_unknown: int
    texts_all_unknown: int  # texts with no known token (empty ones, encoded as one [UNK], included)


@dataclass
class MaxLengthOption:
    """What one ``tokenizer.max_length`` does to the training split."""

    why: str  # "configured", "keeps 95%", "keeps 99%", "longest"
    max_length: int
    truncated: float  # share of texts cut short
    tokens_dropped: float  # share of all tokens cut off
    padding_bucketed: float  # padding share of seqnlp's length-bucketed batches (train.bucketing, train.batch_size)
    padding_random: float  # padding share of batches of random texts, each padded to its longest
    padding_fixed: float  # padding share when every text is padded to max_length (fixed-shape exports)


@dataclass
class VectorCoverage:
    """How much of the vocabulary and of the running text ``model.pretrained_vectors`` covers."""

    source: str
    words: int  # vocabulary entries looked up ([PAD] and [UNK] aside)
    found: int
    coverage: float  # found / words
    token_coverage: dict[str, float]  # split -> share of its tokens whose entry has a vector


@dataclass
class Baseline:
    """Always predicting the training split's most frequent label (multi-label: its most frequent label set)."""

    label: str
    scores: dict[str, dict[str, float]]  # labelled split -> {"accuracy": ..., "macro_f1": ...}


@dataclass
class AuditReport:
    """Everything ``audit`` found; ``to_markdown()`` and ``to_json()`` render it."""

    source: str
    label_names: list[str]
    multi_label: bool
    scan: SplitScan
    tokenizer: dict[str, Any]  # kind, vocab_size (as trained), max_length (configured), lowercase
    lengths: dict[str, LengthStats]
    max_lengths: list[MaxLengthOption]
    baseline: Baseline
    vectors: Optional[VectorCoverage] = None
    notes: list[str] = field(default_factory=list)  # how the data was read (e.g. a stream's sample)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage

    @property
    def leaked(self) -> bool:
        """Whether any split shares a text with an earlier one: what ``seqnlp audit --strict`` fails on."""
        return bool(self.scan.leaked)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        return render(self)


def audit(config: Config, progress: bool = False) -> AuditReport:
    """Audit the data ``config`` names, split as ``train`` would split it, with the tokenizer it would train;
    ``progress`` shows a bar while the texts are tokenized."""
    validate(config)
    data, seconds = config.data, {}
    clock = time.perf_counter()
    splits = (load_stream if data.streaming else load_splits)(data, config.seed)
    named, notes = run_splits(data, splits)
    seconds["load"] = _lap(clock)
    clock = time.perf_counter()
    scan = scan_splits(named, splits.label_names, list(named))
    seconds["checks"] = _lap(clock)
    clock = time.perf_counter()
    train = named[data.train_split]
    tokenizer = build_tokenizer(config.tokenizer, iter_texts(train))
    tokenizer.no_truncation()  # lengths as the texts are; each max_length option is judged below
    seconds["tokenizer"] = _lap(clock)
    clock = time.perf_counter()
    vocab = tokenizer.get_vocab_size()
    with tqdm(total=sum(len(split) for split in named.values()), desc="counting tokens", unit=" texts",
              disable=not progress) as bar:
        counted = {name: _count_tokens(tokenizer, split, vocab if config.model.pretrained_vectors else 0, bar)
                   for name, split in named.items()}
    lengths = {name: stats for name, (stats, _, _) in counted.items()}
    options = max_length_options(counted[data.train_split][1], config)
    seconds["tokens"] = _lap(clock)
    vectors = None
    if config.model.pretrained_vectors is not None:
        clock = time.perf_counter()
        frequencies = {name: freq for name, (_, _, freq) in counted.items()}
        vectors = vector_coverage(config.model.pretrained_vectors, tokenizer, frequencies)
        seconds["vectors"] = _lap(clock)
    baseline = majority_baseline(named, splits.label_names, data.train_split)
    info = {"kind": config.tokenizer.kind, "vocab_size": vocab, "max_length": config.tokenizer.max_length,
            "lowercase": config.tokenizer.lowercase, "min_frequency": config.tokenizer.min_frequency}
    return AuditReport(describe_source(data), list(splits.label_names), data.multi_label, scan, info, lengths,
                       options, baseline, vectors, notes, seconds)


def max_length_options(lengths: np.ndarray, config: Config) -> list[MaxLengthOption]:
    """The configured max_length, those keeping 95% and 99% of the training texts whole, and the longest text."""
    if len(lengths) == 0:
        return []
    candidates = [("configured", config.tokenizer.max_length)]
    candidates += [(f"keeps {share:.0%}", int(np.quantile(lengths, share, method="inverted_cdf"))) for share in KEEP]
    candidates.append(("longest", int(lengths.max())))
    return [_option(why, max(1, limit), lengths, config) for why, limit in candidates]


def _option(why: str, limit: int, lengths: np.ndarray, config: Config) -> MaxLengthOption:
    kept = np.minimum(lengths, limit)  # [N] what training sees
    tc = config.train
    bucketed = BucketSampler(kept, tc.batch_size, shuffle=True, pool_batches=tc.bucket_pool, seed=config.seed,
                             equal_lengths=tc.bucketing == "exact")
    rng = np.random.default_rng(config.seed)
    random_batches = cut(rng.permutation(len(kept)), tc.batch_size)
    total = max(int(lengths.sum()), 1)
    return MaxLengthOption(
        why, limit,
        truncated=float((lengths > limit).mean()),
        tokens_dropped=float(np.maximum(lengths - limit, 0).sum() / total),
        padding_bucketed=_padding(kept, bucketed.global_batches()),
        padding_random=_padding(kept, random_batches),
        padding_fixed=float(1.0 - kept.sum() / (len(kept) * limit)),
    )


def _padding(lengths: np.ndarray, batches: Sequence[np.ndarray]) -> float:
    """The padding share of ``batches`` (index arrays), each padded to its longest text."""
    slots = sum(len(batch) * int(lengths[batch].max()) for batch in batches if len(batch))
    return float(1.0 - lengths.sum() / max(slots, 1))


def _count_tokens(tokenizer: Tokenizer, split: Dataset, vocab_size: int,
                  bar: tqdm) -> tuple[LengthStats, np.ndarray, Optional[np.ndarray]]:
    """Encode a split untruncated: its statistics, the length of each text [N], and with ``vocab_size`` > 0 the
    count of each token id [V] (for vector coverage)."""
    unk = tokenizer.token_to_id(UNK)
    lengths, unknown = [], []
    frequencies = np.zeros(vocab_size, dtype=np.int64) if vocab_size else None
    for start in range(0, len(split), ENCODE_CHUNK):
        ids = encode_texts(tokenizer, split[start:start + ENCODE_CHUNK]["text"])  # empty text: one [UNK], as trained
        lengths.extend(len(row) for row in ids)
        unknown.extend(row.count(unk) if unk is not None else 0 for row in ids)
        if frequencies is not None and ids:
            flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64)
            frequencies += np.bincount(flat, minlength=vocab_size)[:vocab_size]
        bar.update(len(ids))
    length = np.asarray(lengths, dtype=np.int64)  # [N]
    unknowns = np.asarray(unknown, dtype=np.int64)  # [N]
    tokens = int(length.sum())
    quantiles = np.quantile(length, [0.5, 0.9, 0.95, 0.99], method="inverted_cdf") if len(length) else [0] * 4
    percentiles = {**{f"p{p}": int(q) for p, q in zip((50, 90, 95, 99), quantiles)},
                   "max": int(length.max()) if len(length) else 0}
    stats = LengthStats(
        texts=len(length), tokens=tokens, mean=float(length.mean()) if len(length) else 0.0,
        percentiles=percentiles, unknown=int(unknowns.sum()), unknown_rate=float(unknowns.sum() / max(tokens, 1)),
        texts_with_unknown=int((unknowns > 0).sum()),
        texts_all_unknown=int((unknowns >= length).sum()),
    )
    return stats, length, frequencies


def vector_coverage(source: str, tokenizer: Tokenizer, frequencies: Mapping[str, Optional[np.ndarray]]) -> VectorCoverage:
    """Look the vocabulary up in the vectors as training would (``seqnlp.training.vectors.align``)."""
    from seqnlp.training.vectors import align

    aligned = align(source, tokenizer.get_vocab(), skip=tuple(SPECIAL_TOKENS))
    found = aligned.found  # [V] bool
    words = len([t for t in tokenizer.get_vocab() if t not in SPECIAL_TOKENS])
    hits = int(aligned.exact + aligned.lowercase)
    coverage = {}
    for name, freq in frequencies.items():
        if freq is not None:
            coverage[name] = float(freq[: len(found)][found[: len(freq)]].sum() / max(int(freq.sum()), 1))
    return VectorCoverage(source, words, hits, hits / max(words, 1), coverage)


def majority_baseline(splits: Mapping[str, Dataset], label_names: Sequence[str], train: str) -> Baseline:
    """Scores of predicting train's most frequent label (multi-label: label set) for every example of every other
    labelled split. Macro-F1: a label always predicted scores 2p / (1 + p), p its share of the split; others 0."""
    labels = {name: label_array(split) for name, split in splits.items() if "label" in split.column_names}
    if train not in labels or len(labels[train]) == 0:
        return Baseline("", {})
    if labels[train].ndim == 1:  # class indices [N]
        majority = np.eye(len(label_names), dtype=bool)[np.bincount(labels[train]).argmax()]  # [C]
        labels = {name: np.eye(len(label_names), dtype=bool)[values] for name, values in labels.items()}
    else:  # multi-hot rows [N, C]
        sets, counts = np.unique(labels[train], axis=0, return_counts=True)
        majority = sets[counts.argmax()]  # [C]
    scores = {}
    for name, rows in labels.items():
        if name == train or len(rows) == 0:
            continue
        shares = rows.mean(axis=0)  # [C] share of the split with each label
        f1 = np.where(majority, 2 * shares / (1 + shares), 0.0)  # [C]
        scores[name] = {"accuracy": float((rows == majority).all(axis=1).mean()), "macro_f1": float(f1.mean())}
    name = "+".join(n for n, on in zip(label_names, majority) if on) or "(no label)"
    return Baseline(name, scores)


def _lap(start: float) -> float:
    return round(time.perf_counter() - start, 3)
