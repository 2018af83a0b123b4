"""Loaded data -> prepared splits: one ``text`` column and a ``label`` column, and the splits a run needs.

Whatever the source, ``load_splits`` returns the same shape of data: splits with ``text`` (str) and ``label``
(ClassLabel, or multi-hot rows) columns, plus the label names in index order. A validation (and test) split is
carved from train, seeded and stratified, when the data has none. ``load_stream`` does the same for a training
split read as a stream. Inference on one split (``only``) prepares just that split, or, when it is carved, train
and the carving exactly as training did it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from seqnlp.config import DataConfig
from seqnlp.data.files import find_bad_line
from seqnlp.data.labels import check_columns, infer_label_names, label_converter
from seqnlp.data.sources import describe_source, first_line, load_raw, local_files, own_split_names
from seqnlp.data.texts import check_text_columns, count_empty
from seqnlp.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """Prepared splits (``text`` str, ``label`` ClassLabel) and the label names in index order.

    With ``data.streaming``, the training split is ``stream`` (read lazily, never stored) instead of an entry of
    ``data``, ``sample`` holds its first ``data.streaming_sample`` examples, for the tokenizer, and
    ``stream_size`` is its number of examples when that is known. ``available`` names every split the data has
    or gets by carving, including those ``load_splits(only=...)`` left out of ``data``.
    """

    data: DatasetDict
    label_names: list[str]
    stream: Optional[IterableDataset] = None
    sample: Optional[Dataset] = None
    stream_size: Optional[int] = None
    available: list[str] = field(default_factory=list)
    carved: dict[str, str] = field(default_factory=dict)  # split -> how it was carved: "carved from train, 10%"

    def split(self, name: Optional[str]) -> Optional[Dataset]:
        return self.data[name] if name is not None and name in self.data else None


def load_splits(cfg: DataConfig, seed: int, label_names: Optional[list[str]] = None,
                only: Optional[Sequence[str]] = None) -> Splits:
    """Load, normalize and split a dataset as ``cfg`` describes.

    ``label_names`` fixes the label order (a trained model's labels); otherwise it is derived from the
    training split. A validation (and test) split is carved from train, seeded and stratified, when
    the data has none.

    ``only`` prepares just the named splits, for inference on one of them: ``data`` then holds those the data has
    (``available`` names them all). A split of the data's own is prepared alone (of local files, only its files
    are read); a carved one is carved from train as training carved it (same seed, validation first, then
    test), so it holds the very same examples.
    """
    known = own_split_names(cfg) if only is not None else None
    raw = load_raw(cfg, splits=None if known is None else _to_read(cfg, known, only, label_names))
    own = known if known is not None else list(raw)
    if only is None:  # a run uses train, validation and test: others (IMDB's "unsupervised") are not prepared
        unused = [name for name in raw if name not in (cfg.train_split, cfg.validation_split, cfg.test_split)]
        if unused:
            log.info("not used: split(s) %s of %s", ", ".join(unused), describe_source(cfg))
            raw = DatasetDict({name: split for name, split in raw.items() if name not in unused})
    if cfg.train_split not in raw and label_names is None:
        raise _no_train_split(cfg, own)
    if label_names is None:
        label_names = infer_label_names(raw[cfg.train_split], cfg)
    if only is not None:  # train was read for its label names alone, unless it is wanted or carved from
        keep = _to_read(cfg, own, only, label_names=label_names)
        raw = DatasetDict({name: split for name, split in raw.items() if name in keep})
    try:
        prepared = DatasetDict(
            {name: prepare_split(split, cfg, label_names, split_name=name) for name, split in raw.items()}
        )
    except UnicodeDecodeError:  # pyarrow reads some invalid UTF-8 without complaint; it surfaces here
        where = find_bad_line(local_files(cfg), "", cfg.load_kwargs)
        raise DataError(f"cannot load {describe_source(cfg)}: {where or 'its text is not UTF-8'}") from None
    if cfg.train_split in prepared:
        prepared = _carve_missing_splits(prepared, cfg, seed, own)
        subset = only is None or cfg.train_split in only
        if subset and cfg.max_train_samples is not None and cfg.max_train_samples < len(prepared[cfg.train_split]):
            train = prepared[cfg.train_split].shuffle(seed=seed).select(range(cfg.max_train_samples))
            prepared[cfg.train_split] = train.flatten_indices()
    if only is not None:
        prepared = DatasetDict({name: prepared[name] for name in dict.fromkeys(only) if name in prepared})
    carved = carving(cfg, own)
    for name, split in prepared.items():
        log.info("split %s: %d examples", split_label(name, carved.get(name)), len(split))
    _note_missing_test(cfg, own, only)
    return Splits(prepared, list(label_names), available=own + list(carved), carved=carved)


def split_label(name: str, carved: Optional[str]) -> str:
    """How a split is named wherever it is reported: ``test``, or ``test, carved from train, 10%``."""
    return f"{name}, {carved}" if carved else name


def carving(cfg: DataConfig, own: Sequence[str]) -> dict[str, str]:
    """Split -> how it is carved from train (``carved from train, 10%``), for each split the data lacks."""
    sizes = {cfg.validation_split: cfg.validation_size, cfg.test_split: cfg.test_size}
    return {name: f"carved from {cfg.train_split}, {round(100 * sizes[name], 4):g}%"
            for name in carved_split_names(cfg, own)}


def _note_missing_test(cfg: DataConfig, own: Sequence[str], only: Optional[Sequence[str]]) -> None:
    """Say why a run given a validation split of its own but no test split gets no test split."""
    if (only is None and cfg.test_split is not None and cfg.test_split not in own and cfg.test_size > 0
            and cfg.validation_split in own):
        log.warning("no test split: the data has its own %s split and no %s split, and a test split is carved from "
                    "%s only when validation is carved too; results are on %s, which also picks the best epoch "
                    "(give a test file for an unbiased estimate: --data-files %s=PATH)", cfg.validation_split,
                    cfg.test_split, cfg.train_split, cfg.validation_split, cfg.test_split)


def split_names(cfg: DataConfig) -> list[str]:
    """Every split the data has, then those carved from train (validation, then test), without preparing any.

    Local files, the embedded data, synthetic tasks and saved datasets are not read; a Hub dataset is loaded.
    """
    own = own_split_names(cfg)
    own = own if own is not None else list(load_raw(cfg))
    return own + carved_split_names(cfg, own)


def carved_split_names(cfg: DataConfig, own: Sequence[str]) -> list[str]:
    """The splits carved from train when the data has only ``own``, in the order they are carved.

    A test split is carved only together with validation: data that brings its own validation split (a dev
    file) is evaluated on it, and a test carved from train beside it would measure something else (SST-2's
    train holds phrases of the same sentences, so such a "test" scored 7 points above dev).
    """
    if cfg.train_split not in own or cfg.validation_split in own:
        return []
    names = [cfg.validation_split] if cfg.validation_split is not None else []
    if cfg.test_split is not None and cfg.test_split not in own and cfg.test_size > 0:
        names.append(cfg.test_split)
    return names


def _to_read(cfg: DataConfig, own: Sequence[str], only: Optional[Sequence[str]],
             label_names: Optional[list[str]]) -> list[str]:
    """The data's own splits that preparing ``only`` needs: those named, and train to carve from or name labels."""
    wanted = set(only or ())
    needs_train = label_names is None or bool(wanted & set(carved_split_names(cfg, own)))
    return [name for name in own if name in wanted or (needs_train and name == cfg.train_split)]


def load_stream(cfg: DataConfig, seed: int, label_names: Optional[list[str]] = None) -> Splits:
    """``load_splits`` for ``data.streaming``: the training split is a stream, read as training goes.

    Validation (and test) are finite: the data's own splits, read into memory as Arrow, or, when there is no
    validation split, the first ``data.streaming_validation_size`` training examples, which training skips.
    The next ``data.streaming_sample`` training examples are read into memory too: they train the tokenizer
    and, unless a ClassLabel or ``data.label_names`` names the labels, give their sorted set of values
    (a label first seen later in the stream is then an error naming it). ``seed`` is unused: a stream is
    shuffled as it is read (``StreamLoader``), not split.
    """
    raw = load_raw(cfg, streaming=True)
    if cfg.train_split not in raw:
        raise _no_train_split(cfg, raw)
    stream = raw[cfg.train_split]
    size = cfg.streaming_size or _stated_size(stream, cfg.train_split)
    finite = {name: _read_all(split, name) for name, split in raw.items() if name != cfg.train_split}
    carved: dict[str, str] = {}
    if cfg.validation_split is not None and cfg.validation_split not in finite:
        finite[cfg.validation_split] = _read_head(stream, cfg.streaming_validation_size, cfg.train_split)
        stream = stream.skip(cfg.streaming_validation_size)
        if cfg.streaming_size is None and size is not None:
            size = max(1, size - cfg.streaming_validation_size)
        carved[cfg.validation_split] = f"carved from {cfg.train_split}, its first {cfg.streaming_validation_size:,}"
        log.info("carved %s split: the first %d examples of %s", cfg.validation_split,
                 len(finite[cfg.validation_split]), cfg.train_split)
    if cfg.max_train_samples is not None:
        stream = stream.take(cfg.max_train_samples)
        size = cfg.max_train_samples if size is None else min(size, cfg.max_train_samples)
    sample = _read_head(stream, cfg.streaming_sample, cfg.train_split)
    check_columns(sample, [cfg.label_column], role="label", split_name=cfg.train_split)
    if label_names is None:
        label_names = infer_label_names(sample, cfg)
    prepared_sample = prepare_split(sample, cfg, label_names, split_name=cfg.train_split)
    convert, features = label_converter(cfg, label_names, cfg.train_split, True, sample.features[cfg.label_column])
    stream = stream.map(convert, batched=True, with_indices=True, remove_columns=sample.column_names,
                        features=features)
    prepared = DatasetDict({name: prepare_split(split, cfg, label_names, split_name=name)
                            for name, split in finite.items()})
    for name, split in prepared.items():
        log.info("split %s: %d examples", name, len(split))
    log.info("split %s: read as a stream", cfg.train_split)
    return Splits(prepared, list(label_names), stream=stream, sample=prepared_sample, stream_size=size,
                  carved=carved)


def _stated_size(stream: IterableDataset, name: str) -> Optional[int]:
    """The number of examples a stream's metadata states (Hub datasets usually do; plain files do not)."""
    splits = stream.info.splits
    return splits[name].num_examples if splits and name in splits and splits[name].num_examples else None


def _read_head(stream: IterableDataset, count: int, name: str) -> Dataset:
    """The first ``count`` examples of a stream, in memory as Arrow."""
    table = next(iter(stream.with_format("arrow").iter(batch_size=count)), None)
    if table is None or table.num_rows == 0:
        raise DataError(f"split {name!r} is empty")
    return _arrow_dataset(table, stream)


def _read_all(stream: IterableDataset, name: str) -> Dataset:
    """A finite split of a stream, whole, in memory as Arrow."""
    tables = list(stream.with_format("arrow").iter(batch_size=10_000))
    if not tables:
        raise DataError(f"split {name!r} is empty")
    return _arrow_dataset(pa.concat_tables(tables), stream)


def _arrow_dataset(table: pa.Table, stream: IterableDataset) -> Dataset:
    features = stream.features  # known for Hub datasets (ClassLabel names included), None for plain files
    if features is None:
        return Dataset(table)
    return Dataset(table.cast(features.arrow_schema), info=datasets.DatasetInfo(features=features))


def _no_train_split(cfg: DataConfig, names: Sequence[str] | DatasetDict | IterableDatasetDict) -> DataError:
    return DataError(
        f"split {cfg.train_split!r} not found in {describe_source(cfg)}; "
        f"splits that exist: {', '.join(names) or 'none'} (set data.train_split)"
    )


def prepare_split(split: Dataset, cfg: DataConfig, label_names: list[str], split_name: str) -> Dataset:
    """Join the text columns into ``text`` and map labels to indices of ``label_names``.

    A split without the label column (unlabeled test data) keeps only ``text``.
    """
    check_columns(split, cfg.text_columns, role="text", split_name=split_name)
    if len(split) == 0:
        raise DataError(f"split {split_name!r} is empty")
    check_text_columns(split, cfg, split_name)
    # datasets gives every split of a file-based dataset the same columns: an unlabeled test file gets a
    # label column of nulls, which means "no labels", not "bad labels".
    has_labels = cfg.label_column in split.column_names and not _unlabelled(split, cfg.label_column)
    convert, features = label_converter(cfg, label_names, split_name, has_labels, split.features.get(cfg.label_column))
    try:
        prepared = split.map(
            convert,
            batched=True,
            with_indices=True,
            remove_columns=split.column_names,
            features=features,
            desc=f"preparing {split_name}",
        )
    except (DataError, UnicodeDecodeError):
        raise
    except Exception as exc:  # datasets wraps errors raised inside map; unwrap ours
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, (DataError, UnicodeDecodeError)):
            raise cause from None
        raise
    count_empty(prepared, split_name)
    return prepared


def _unlabelled(split: Dataset, column: str) -> bool:
    """A label column of nulls, or a ClassLabel column of -1 (the Hub's "no label", as in GLUE's test splits)."""
    values = split.data.column(column)
    if values.null_count == len(split):
        return True
    if isinstance(split.features.get(column), ClassLabel):
        return bool(pc.all(pc.equal(values, -1)).as_py())
    return False


def _carve_missing_splits(data: DatasetDict, cfg: DataConfig, seed: int, own: Sequence[str]) -> DatasetDict:
    """Carve the splits the data lacks (validation, then test) from train, seeded, and stratified by label when
    single-label. ``own`` names the data's own splits, even those not loaded: what is carved depends on them."""
    train = data[cfg.train_split]
    fractions = {cfg.validation_split: cfg.validation_size, cfg.test_split: cfg.test_size}
    total = len(train)
    for name in carved_split_names(cfg, own):
        count = max(1, round(fractions[name] * total))  # rows, from the original size: fractions of a remainder drift
        part = _split(train, count, seed)
        log.info("carved %s split (%d examples) from %s", name, len(part["test"]), cfg.train_split)
        data[name] = part["test"]
        train = part["train"]
    data[cfg.train_split] = train
    return data


def _split(split: Dataset, count: int, seed: int) -> DatasetDict:
    if not isinstance(split.features.get("label"), ClassLabel):  # multi-hot lists: no class to stratify by
        return split.train_test_split(test_size=count, seed=seed)
    try:
        return split.train_test_split(test_size=count, stratify_by_column="label", seed=seed)
    except ValueError as exc:  # a class too rare to stratify: fall back to a plain seeded split
        log.warning("stratified split impossible (%s); using a random split", first_line(exc))
        return split.train_test_split(test_size=count, seed=seed)
