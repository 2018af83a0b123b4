"""The cheap data checks: duplicates within splits, leakage across them, one text with different labels, empty texts.

Every text is hashed twice by Arrow (``dictionary_encode`` gives each distinct text an integer id): as it is
(exact) and normalized (NFKC, lowercase, punctuation and symbols dropped, whitespace collapsed), so "Great
movie!" and "great  movie" count as the same text. The rest is NumPy over the ids, which is why ``train`` can run
these checks on every run (IMDB's 50,000 reviews take seconds) and warn with counts; ``seqnlp audit`` reports them
in full, with the checks that need a tokenizer (``seqnlp.data.audit``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

log = logging.getLogger(__name__)

EXAMPLES = 3  # example texts kept per finding and per label
EXAMPLE_CHARS = 200  # an example text is cut to this many characters
# Runs of punctuation or symbols, with the whitespace around them, become one space; then runs of whitespace
# do. Two passes whose patterns match rarely are several times faster than one that matches every space.
_PUNCTUATION = r"\s*[\p{P}\p{S}][\p{P}\p{S}\s]*"
_SPACES = r"\s\s+|[^\S ]"


@dataclass
class Duplicates:
    """Rows of one split that repeat a text seen earlier in the same split."""

    rows: int  # rows that repeat an earlier row: dropping them leaves each text once
    texts: int  # distinct texts that occur more than once
    examples: list[tuple[str, int]] = field(default_factory=list)  # the most repeated texts, with their count


@dataclass
class Leak:
    """Rows of ``target`` whose text is also in ``source``: a model evaluated on them has seen them."""

    source: str
    target: str
    rows: int
    fraction: float  # of the target split
    examples: list[str] = field(default_factory=list)


@dataclass
class Conflicts:
    """Texts that occur with different labels (all labelled splits together)."""

    texts: int
    rows: int  # rows holding those texts
    examples: list[tuple[str, list[str]]] = field(default_factory=list)  # a text and the labels it carries


@dataclass
class TextChecks:
    """The checks under one notion of "the same text" (exact or normalized)."""

    duplicates: dict[str, Duplicates]  # split -> duplicates within it
    leaks: list[Leak]  # one per ordered pair of splits (train -> validation -> test -> others)
    conflicts: Conflicts


@dataclass
class SplitScan:
    """What the cheap checks found; ``train`` warns with its counts and records it in data.json."""

    sizes: dict[str, int]  # split -> examples
    label_counts: dict[str, dict[str, int]]  # labelled split -> label -> examples (multi-label: positives)
    empty: dict[str, int]  # split -> texts empty or whitespace only
    exact: TextChecks
    normalized: TextChecks
    examples: dict[str, list[str]] = field(default_factory=dict)  # label -> the first training texts with it

    @property
    def leaked(self) -> list[Leak]:
        """Every pair of splits that shares texts, exactly or once normalized (normalized includes exact)."""
        return [leak for leak in self.normalized.leaks if leak.rows]


def scan_splits(splits: Mapping[str, Dataset], label_names: Sequence[str], order: Sequence[str] = ()) -> SplitScan:
    """Run the cheap checks on prepared splits (``text`` and, when labelled, ``label`` columns).

    ``order`` names the splits in the order leakage is judged (train first: a validation text found in train
    is leaked, not the other way round); splits it does not name follow in their own order.
    """
    names = [n for n in order if n in splits] + [n for n in splits if n not in order]
    texts = {name: _column(splits[name], "text") for name in names}
    labels, key_names = label_keys(splits, names, label_names)
    sizes = {name: len(texts[name]) for name in names}
    empty = {name: int(pc.sum(pc.equal(pc.utf8_trim_whitespace(texts[name]), "")).as_py() or 0) for name in names}
    joined = pa.concat_arrays([texts[name] for name in names])  # [N] every split, in ``names`` order
    bounds = dict(zip(names, np.cumsum([0] + [sizes[n] for n in names])))
    ranges = {name: (int(bounds[name]), int(bounds[name]) + sizes[name]) for name in names}
    checks = [_checks(form, joined, ranges, labels, key_names) for form in (joined, normalize(joined))]
    counts = {name: label_counts(splits[name], label_names) for name in labels}
    train = names[0] if names else None
    examples = _label_examples(texts[train], splits[train], label_names) if train in labels else {}
    return SplitScan(sizes, counts, empty, checks[0], checks[1], examples)


def normalize(texts: pa.Array) -> pa.Array:
    """NFKC, lowercase, punctuation and symbols dropped, whitespace collapsed and trimmed: what a reader would
    still call the same text."""
    out = pc.utf8_lower(pc.utf8_normalize(texts, form="NFKC"))
    out = pc.replace_substring_regex(out, pattern=_PUNCTUATION, replacement=" ")
    out = pc.replace_substring_regex(out, pattern=_SPACES, replacement=" ")
    return pc.utf8_trim_whitespace(out)


def label_keys(splits: Mapping[str, Dataset], names: Sequence[str],
               label_names: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """One integer per row of each labelled split saying which label it has, and each key's name.

    Single-label: the class index and its name. Multi-label: each distinct set of labels, numbered over all the
    splits together (so a key means the same set in every split), named by its labels joined with "+".
    """
    columns = {name: _column(splits[name], "label") for name in names if "label" in splits[name].column_names}
    if not columns:
        return {}, list(label_names)
    if not any(pa.types.is_fixed_size_list(c.type) for c in columns.values()):
        return {name: c.to_numpy(zero_copy_only=False).astype(np.int64) for name, c in columns.items()}, \
            list(label_names)
    rows = np.concatenate([_multi_hot(c) for c in columns.values()])  # [M, C] bool
    sets, inverse = np.unique(rows, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    ends = np.cumsum([len(c) for c in columns.values()])
    keys = dict(zip(columns, np.split(inverse, ends[:-1])))
    return keys, ["+".join(n for n, on in zip(label_names, row) if on) or "(none)" for row in sets]


def label_array(split: Dataset) -> np.ndarray:
    """A split's labels: class indices [N] int64, or multi-hot rows [N, C] bool."""
    column = _column(split, "label")
    if pa.types.is_fixed_size_list(column.type):
        return _multi_hot(column)
    return column.to_numpy(zero_copy_only=False).astype(np.int64)


def label_counts(split: Dataset, label_names: Sequence[str]) -> dict[str, int]:
    """Examples per label (multi-label: rows where the label is on)."""
    labels = label_array(split)
    counts = labels.sum(axis=0) if labels.ndim == 2 else np.bincount(labels, minlength=len(label_names))  # [C]
    return {name: int(c) for name, c in zip(label_names, counts)}


def warn_about(scan: SplitScan) -> None:
    """Log one warning per kind of problem, with counts; silence means none was found. Empty texts are left out:
    loading the data already warns about them, split by split, with their row numbers."""
    for line in findings(scan):
        if not line.endswith(" empty texts"):
            log.warning("data check: %s (details: seqnlp audit)", line)


def findings(scan: SplitScan) -> list[str]:
    """The problems found, one line each, the most serious first: leakage, conflicting labels, duplicates, empty."""
    lines = []
    exact_leaks = {(leak.source, leak.target): leak.rows for leak in scan.exact.leaks}
    for leak in scan.leaked:
        exact = exact_leaks.get((leak.source, leak.target), 0)
        how = "all exactly" if exact == leak.rows else f"{exact:,} exactly, {leak.rows - exact:,} once normalized"
        lines.append(f"{leak.rows:,} {leak.target} rows ({leak.fraction:.2%}) have a text also in {leak.source} "
                     f"({how})")
    conflicts = scan.normalized.conflicts
    if conflicts.texts:
        lines.append(f"{conflicts.texts:,} texts carry different labels ({conflicts.rows:,} rows, "
                     f"{scan.exact.conflicts.texts:,} of them exactly the same text)")
    for name, dup in scan.normalized.duplicates.items():
        if dup.rows:
            lines.append(f"{name} repeats {dup.rows:,} rows ({dup.rows / max(scan.sizes[name], 1):.2%}; "
                         f"{scan.exact.duplicates[name].rows:,} exact duplicates)")
    for name, count in scan.empty.items():
        if count:
            lines.append(f"{name} has {count:,} empty texts")
    return lines


def _column(split: Dataset, name: str) -> pa.Array:
    """A column as one Arrow array, row selections (shuffles, carved splits) applied; text as large_string."""
    column = split.with_format("arrow")[:].column(name).combine_chunks()
    return column.cast(pa.large_string()) if pa.types.is_string(column.type) else column


def _checks(form: pa.Array, texts: pa.Array, ranges: dict[str, tuple[int, int]], labels: Mapping[str, np.ndarray],
            key_names: Sequence[str]) -> TextChecks:
    """The checks with "the same text" meaning the same ``form`` (the texts, or their normalized form); examples
    are shown as the first row that has them in ``texts``."""
    ids = pc.dictionary_encode(form).indices.to_numpy(zero_copy_only=False).astype(np.int64)  # [N] text ids
    first_row = np.unique(ids, return_index=True)[1]  # [D] the first row of each id (ids are 0..D-1)

    def show(text_id: int) -> str:
        return _example(texts, first_row[text_id])

    by_split = {name: ids[start:stop] for name, (start, stop) in ranges.items()}
    duplicates = {name: _duplicates(split_ids, show) for name, split_ids in by_split.items()}
    names = list(ranges)
    leaks = [_leak(names[i], names[j], by_split[names[i]], by_split[names[j]], show)
             for i in range(len(names)) for j in range(i + 1, len(names))]
    conflicts = _conflicts(by_split, labels, show, key_names)
    return TextChecks(duplicates, leaks, conflicts)


def _duplicates(ids: np.ndarray, show: Callable[[int], str]) -> Duplicates:
    unique, counts = np.unique(ids, return_counts=True)
    repeated = np.flatnonzero(counts > 1)
    top = repeated[np.argsort(-counts[repeated], kind="stable")][:EXAMPLES]
    return Duplicates(rows=int(len(ids) - len(unique)), texts=int(len(repeated)),
                      examples=[(show(unique[k]), int(counts[k])) for k in top])


def _leak(source: str, target: str, source_ids: np.ndarray, target_ids: np.ndarray, show: Callable[[int], str]) -> Leak:
    shared = np.isin(target_ids, source_ids)  # [N_target]
    first = list(dict.fromkeys(target_ids[shared].tolist()))[:EXAMPLES]
    return Leak(source, target, int(shared.sum()), float(shared.mean()) if len(shared) else 0.0,
                [show(i) for i in first])


def _conflicts(by_split: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], show: Callable[[int], str],
               key_names: Sequence[str]) -> Conflicts:
    if not labels:
        return Conflicts(0, 0)
    ids = np.concatenate([by_split[name] for name in labels])  # [M] labelled rows
    keys = np.concatenate(list(labels.values()))  # [M]
    pairs = np.unique(np.stack([ids, keys], axis=1), axis=0)  # [P, 2] distinct (text, label) pairs, sorted
    texts, label_count = np.unique(pairs[:, 0], return_counts=True)
    conflicting = texts[label_count > 1]
    examples = [(show(text_id), [key_names[k] for k in pairs[pairs[:, 0] == text_id, 1]])
                for text_id in conflicting[:EXAMPLES]]
    return Conflicts(int(len(conflicting)), int(np.isin(ids, conflicting).sum()), examples)


def _label_examples(texts: pa.Array, split: Dataset, label_names: Sequence[str]) -> dict[str, list[str]]:
    """The first ``EXAMPLES`` non-empty training texts of each label, for the model card."""
    column = _column(split, "label")
    filled = pc.not_equal(pc.utf8_trim_whitespace(texts), "").to_numpy(zero_copy_only=False)  # [N]
    if pa.types.is_fixed_size_list(column.type):
        rows = _multi_hot(column)  # [N, C]
        picked = [np.flatnonzero(rows[:, k] & filled)[:EXAMPLES] for k in range(len(label_names))]
    else:
        indices = column.to_numpy(zero_copy_only=False).astype(np.int64)  # [N]
        order = np.flatnonzero(filled)[np.argsort(indices[filled], kind="stable")]  # rows by label, in row order
        starts = np.searchsorted(indices[order], np.arange(len(label_names) + 1))
        picked = [order[starts[k]:min(starts[k + 1], starts[k] + EXAMPLES)] for k in range(len(label_names))]
    return {name: [_example(texts, i) for i in rows_of] for name, rows_of in zip(label_names, picked)}


def _multi_hot(column: pa.Array) -> np.ndarray:
    """A fixed-size-list label column as a boolean matrix [N, C]."""
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size) > 0.5


def _example(texts: pa.Array, index: int) -> str:
    text = texts[int(index)].as_py() or ""
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS - 1] + "…"
