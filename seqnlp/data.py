"""Hugging Face datasets in; one ``text`` column and one integer ``label`` column out.

Data can come from the Hub (the default path for users who are online), a local directory, files per split
(csv/tsv/json/jsonl/parquet), a dataset saved with ``save_to_disk``, the SMS Spam Collection embedded in
the package, or a generated long-range task (``synthetic:marker?distance=50``, see ``seqnlp.synthetic``). Whatever the source, ``load_splits`` returns the same shape of data: splits with ``text`` (str)
and ``label`` (ClassLabel) columns, plus the label names in index order.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import datasets
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from seqnlp import synthetic
from seqnlp.config import DataConfig
from seqnlp.errors import DataError

log = logging.getLogger(__name__)

EMBEDDED_DIR = Path(__file__).parent / "datasets"
SMS_SPAM_FILE = EMBEDDED_DIR / "sms_spam" / "SMSSpamCollection"

# File suffix -> (datasets builder, default load_dataset options)
_BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
_BUILDER_NAMES = {"csv", "json", "parquet", "text", "arrow"}


@dataclass
class Splits:
    """Prepared splits (``text`` str, ``label`` ClassLabel) and the label names in index order.

    With ``data.streaming``, the training split is ``stream`` (read lazily, never stored) instead of an entry of
    ``data``, ``sample`` holds its first ``data.streaming_sample`` examples, for the tokenizer, and
    ``stream_size`` is its number of examples when that is known.
    """

    data: DatasetDict
    label_names: list[str]
    stream: Optional[IterableDataset] = None
    sample: Optional[Dataset] = None
    stream_size: Optional[int] = None

    def split(self, name: Optional[str]) -> Optional[Dataset]:
        return self.data[name] if name is not None and name in self.data else None


def load_splits(cfg: DataConfig, seed: int, label_names: Optional[list[str]] = None) -> Splits:
    """Load, normalize and split a dataset as ``cfg`` describes.

    ``label_names`` fixes the label order (a trained model's labels); otherwise it is derived from the
    training split. A validation (and test) split is carved from train, seeded and stratified, when
    the data has none.
    """
    raw = load_raw(cfg)
    if cfg.train_split not in raw and label_names is None:
        raise _no_train_split(cfg, raw)
    if label_names is None:
        label_names = infer_label_names(raw[cfg.train_split], cfg)
    try:
        prepared = DatasetDict(
            {name: prepare_split(split, cfg, label_names, split_name=name) for name, split in raw.items()}
        )
    except UnicodeDecodeError:  # pyarrow reads some invalid UTF-8 without complaint; it surfaces here
        where = _find_bad_line(_local_files(cfg), "", cfg.load_kwargs)
        raise DataError(f"cannot load {describe_source(cfg)}: {where or 'its text is not UTF-8'}") from None
    if cfg.train_split in prepared:
        prepared = _carve_missing_splits(prepared, cfg, seed)
        if cfg.max_train_samples is not None and cfg.max_train_samples < len(prepared[cfg.train_split]):
            train = prepared[cfg.train_split].shuffle(seed=seed).select(range(cfg.max_train_samples))
            prepared[cfg.train_split] = train.flatten_indices()
    for name, split in prepared.items():
        log.info("split %s: %d examples", name, len(split))
    return Splits(prepared, list(label_names))


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
    if cfg.validation_split is not None and cfg.validation_split not in finite:
        finite[cfg.validation_split] = _read_head(stream, cfg.streaming_validation_size, cfg.train_split)
        stream = stream.skip(cfg.streaming_validation_size)
        if cfg.streaming_size is None and size is not None:
            size = max(1, size - cfg.streaming_validation_size)
        log.info("carved %s split: the first %d examples of %s", cfg.validation_split,
                 len(finite[cfg.validation_split]), cfg.train_split)
    if cfg.max_train_samples is not None:
        stream = stream.take(cfg.max_train_samples)
        size = cfg.max_train_samples if size is None else min(size, cfg.max_train_samples)
    sample = _read_head(stream, cfg.streaming_sample, cfg.train_split)
    _check_columns(sample, [cfg.label_column], role="label", split_name=cfg.train_split)
    if label_names is None:
        label_names = infer_label_names(sample, cfg)
    prepared_sample = prepare_split(sample, cfg, label_names, split_name=cfg.train_split)
    convert, features = _converter(cfg, label_names, cfg.train_split, True, sample.features[cfg.label_column])
    stream = stream.map(convert, batched=True, with_indices=True, remove_columns=sample.column_names,
                        features=features)
    prepared = DatasetDict({name: prepare_split(split, cfg, label_names, split_name=name)
                            for name, split in finite.items()})
    for name, split in prepared.items():
        log.info("split %s: %d examples", name, len(split))
    log.info("split %s: read as a stream", cfg.train_split)
    return Splits(prepared, list(label_names), stream=stream, sample=prepared_sample, stream_size=size)


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


def _no_train_split(cfg: DataConfig, raw: DatasetDict | IterableDatasetDict) -> DataError:
    return DataError(
        f"split {cfg.train_split!r} not found in {describe_source(cfg)}; "
        f"splits that exist: {', '.join(raw) or 'none'} (set data.train_split)"
    )


def describe_source(cfg: DataConfig) -> str:
    if cfg.dataset is None and not cfg.data_files:
        return "the embedded SMS Spam Collection"
    if synthetic.is_synthetic(cfg.dataset):
        return f"the synthetic task {cfg.dataset!r}"
    if cfg.data_files:
        return "data files " + ", ".join(f"{k}={v}" for k, v in cfg.data_files.items())
    return f"dataset {cfg.dataset!r}"


def load_raw(cfg: DataConfig, streaming: bool = False) -> DatasetDict | IterableDatasetDict:
    """Load the dataset as the user named it, without touching its columns; as streams with ``streaming``."""
    if cfg.dataset is None and not cfg.data_files:
        return _load(
            "csv",
            data_files={"train": str(SMS_SPAM_FILE)},
            delimiter="\t",
            column_names=["label", "text"],
            quoting=csv.QUOTE_NONE,
            source="the embedded SMS Spam Collection",
            streaming=streaming,
        )
    if synthetic.is_synthetic(cfg.dataset):
        assert cfg.dataset is not None
        generated = synthetic.load(cfg.dataset)
        if streaming:
            return IterableDatasetDict({key: split.to_iterable_dataset() for key, split in generated.items()})
        return generated
    if cfg.data_files:
        files = {split: _existing(paths, split) for split, paths in cfg.data_files.items()}
        builder, defaults = _builder_for(cfg.dataset, files)
        kwargs = {**defaults, **cfg.load_kwargs}
        return _load(builder, data_files=files, **kwargs, source=describe_source(cfg), streaming=streaming,
                     diagnose=lambda: _find_bad_line(files, builder, kwargs))

    name = cfg.dataset
    assert name is not None
    path = Path(name).expanduser()
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:  # datasets raises OSError, ValueError or IndexError for damaged saves
            raise DataError(f"cannot read the saved dataset in {path}: {_first_line(exc)}") from exc
        loaded = loaded if isinstance(loaded, DatasetDict) else DatasetDict({cfg.train_split: loaded})
        if streaming:
            return IterableDatasetDict({key: split.to_iterable_dataset() for key, split in loaded.items()})
        return loaded
    if path.is_file():
        builder, defaults = _builder_for(None, {cfg.train_split: [str(path)]})
        kwargs = {**defaults, **cfg.load_kwargs}
        return _load(builder, data_files={cfg.train_split: str(path)}, **kwargs, source=f"file {path}",
                     streaming=streaming,
                     diagnose=lambda: _find_bad_line({cfg.train_split: [str(path)]}, builder, kwargs))
    if path.is_dir():
        return _load(str(path), source=f"directory {path}", streaming=streaming, **cfg.load_kwargs)
    if _looks_like_path(name):
        raise DataError(f"dataset path {name!r} does not exist")
    # A Hub dataset: the default for users who are online.
    return _load(name, name=cfg.config_name, revision=cfg.revision, source=f"Hub dataset {name!r}",
                 streaming=streaming, **cfg.load_kwargs)


def infer_label_names(split: Dataset, cfg: DataConfig) -> list[str]:
    """Label names in index order: ClassLabel names, configured names, or the sorted set of values.

    With ``data.multi_label`` the column holds lists: names come from a list of ``ClassLabel``, from
    ``data.label_names``, or from the sorted union of the values in all the lists.
    """
    column = cfg.label_column
    _check_columns(split, [column], role="label", split_name=cfg.train_split)
    feature = split.features[column]
    inner = list_item_feature(feature)
    if cfg.multi_label:
        if inner is None:
            raise DataError(f"label column {column!r} holds one label per example, but data.multi_label is true; "
                            "a multi-label column holds lists (JSON Lines: \"labels\": [\"a\", \"b\"])")
        feature = inner
    elif inner is not None:
        raise DataError(f"label column {column!r} holds lists of labels; set data.multi_label: true "
                        "(--multi-label) to train a multi-label classifier")
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    if not isinstance(feature, datasets.Value):
        raise DataError(f"label column {column!r} holds mappings or nested lists; seqnlp needs a label or a list "
                        "of labels per example")
    if cfg.label_names:
        return list(cfg.label_names)
    if cfg.multi_label:  # the union of the lists; a missing list (null) is an empty value, [] is no label
        rows = split.data.column(column).to_pylist()
        values = list({v for labels in rows for v in (labels if labels is not None else [None])})
    else:
        values = split.unique(column)
    if any(v is None for v in values):
        raise DataError(f"label column {column!r} of split {cfg.train_split!r} has empty values")
    names = [str(v) for v in sorted(values)]  # ints sort numerically, strings alphabetically
    if len(names) < 2:
        raise DataError(
            f"label column {column!r} of split {cfg.train_split!r} has a single class ({names[0] if names else 'none'});"
            " a classifier needs at least two"
        )
    return names


def prepare_split(split: Dataset, cfg: DataConfig, label_names: list[str], split_name: str) -> Dataset:
    """Join the text columns into ``text`` and map labels to indices of ``label_names``.

    A split without the label column (unlabeled test data) keeps only ``text``.
    """
    _check_columns(split, cfg.text_columns, role="text", split_name=split_name)
    if len(split) == 0:
        raise DataError(f"split {split_name!r} is empty")
    # datasets gives every split of a file-based dataset the same columns: an unlabeled test file gets a
    # label column of nulls, which means "no labels", not "bad labels".
    has_labels = cfg.label_column in split.column_names and (
        split.data.column(cfg.label_column).null_count < len(split)
    )
    convert, features = _converter(cfg, label_names, split_name, has_labels, split.features.get(cfg.label_column))
    try:
        return split.map(
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


def _converter(
    cfg: DataConfig, label_names: list[str], split_name: str, has_labels: bool, feature: Any
) -> tuple[Callable[[dict[str, list], list[int]], dict[str, list]], datasets.Features]:
    """The batched ``map`` function that makes ``text`` and ``label`` columns, and the features it yields."""
    index = {name: i for i, name in enumerate(label_names)}
    multi_label = cfg.multi_label
    if multi_label and has_labels and list_item_feature(feature) is None:
        raise DataError(f"split {split_name!r}: label column {cfg.label_column!r} holds one label per example, but "
                        "data.multi_label is true; a multi-label column holds lists")
    if multi_label and feature is not None:
        feature = list_item_feature(feature)
    # Raw value -> name: ClassLabel ints through their names, configured names for ints, else str(value).
    value_names = feature.names if isinstance(feature, ClassLabel) else (cfg.label_names or None)
    text_columns, label_column, sep = list(cfg.text_columns), cfg.label_column, cfg.text_separator

    def index_of(value: Any, row: int) -> int:
        name = _label_name(value, value_names)
        if name not in index:
            raise DataError(
                f"split {split_name!r}, row {row}: label {value!r} in column {label_column!r} is not one of "
                f"the known labels ({', '.join(label_names)})"
            )
        return index[name]

    def multi_hot(values: Any, row: int) -> list[float]:
        if not isinstance(values, list):
            raise DataError(f"split {split_name!r}, row {row}: label {values!r} in column {label_column!r} is not a "
                            "list of labels (data.multi_label is true)")
        vector = [0.0] * len(label_names)
        for value in values:
            vector[index_of(value, row)] = 1.0
        return vector

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        columns = [batch[c] for c in text_columns]
        texts = [sep.join("" if v is None else str(v) for v in parts) for parts in zip(*columns)]
        out: dict[str, list] = {"text": texts}
        if has_labels:
            encode = multi_hot if multi_label else index_of
            out["label"] = [encode(value, row) for value, row in zip(batch[label_column], indices)]
        return out

    features = datasets.Features({"text": datasets.Value("string")})
    if has_labels:
        # Multi-label: a multi-hot float vector per example, an Arrow fixed-size list [C].
        features["label"] = (datasets.Sequence(datasets.Value("float32"), length=len(label_names)) if multi_label
                             else ClassLabel(names=label_names))
    return convert, features


def list_item_feature(feature: Any) -> Any:
    """The item feature of a list feature (``List``/``Sequence``/``[...]``), or None for a scalar one."""
    if isinstance(feature, list):
        return feature[0] if feature else None
    if isinstance(feature, _LIST_FEATURES):
        return feature.feature
    return None


# datasets >= 4 has List and LargeList (Sequence is a function making a List); datasets 3 has a Sequence class.
_LIST_FEATURES = tuple(t for t in (getattr(datasets, "List", None), getattr(datasets, "LargeList", None),
                                   getattr(datasets, "Sequence", None)) if isinstance(t, type))


def _label_name(value: Any, value_names: Optional[list[str]]) -> Optional[str]:
    if value is None:
        return None
    if value_names is not None and isinstance(value, int) and not isinstance(value, bool):
        return value_names[value] if 0 <= value < len(value_names) else str(value)
    return str(value)


def _carve_missing_splits(data: DatasetDict, cfg: DataConfig, seed: int) -> DatasetDict:
    """Carve validation (and test) splits from train, seeded, and stratified by label when single-label."""
    train = data[cfg.train_split]
    wanted = []
    if cfg.validation_split is not None and cfg.validation_split not in data:
        wanted.append((cfg.validation_split, cfg.validation_size))
    if cfg.test_split is not None and cfg.test_split not in data and cfg.test_size > 0:
        wanted.append((cfg.test_split, cfg.test_size))
    total = len(train)
    for name, fraction in wanted:
        count = max(1, round(fraction * total))  # rows, from the original size: fractions of a remainder drift
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
        log.warning("stratified split impossible (%s); using a random split", _first_line(exc))
        return split.train_test_split(test_size=count, seed=seed)


def _check_columns(split: Dataset, wanted: list[str], role: str, split_name: str) -> None:
    missing = [c for c in wanted if c not in split.column_names]
    if missing:
        raise DataError(
            f"{role} column {missing[0]!r} not found in split {split_name!r}; "
            f"columns that exist: {', '.join(split.column_names)}"
        )


def _existing(paths: Any, split: str) -> list[str]:
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for p in paths:
        if not any(ch in str(p) for ch in "*?[") and not Path(p).expanduser().exists():
            raise DataError(f"data file for split {split!r} does not exist: {p}")
    return [str(Path(p).expanduser()) for p in paths]


def _builder_for(dataset: Optional[str], files: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
    if dataset in _BUILDER_NAMES:
        suffix = Path(next(iter(files.values()))[0]).suffix.lower()
        defaults = _BUILDERS[suffix][1] if suffix in _BUILDERS and _BUILDERS[suffix][0] == dataset else {}
        return dataset, defaults
    if dataset is not None:
        raise DataError(
            f"with data files, data.dataset must be empty or a file format ({', '.join(sorted(_BUILDER_NAMES))}),"
            f" not {dataset!r}"
        )
    suffixes = {Path(p).suffix.lower() for paths in files.values() for p in paths}
    if len(suffixes) != 1 or next(iter(suffixes)) not in _BUILDERS:
        raise DataError(
            f"cannot tell the format of {', '.join(sorted(suffixes))} files; use {', '.join(_BUILDERS)} "
            "or set data.dataset to csv, json or parquet"
        )
    return _BUILDERS[suffixes.pop()]


def _load(path: str, source: str, diagnose: Optional[Callable[[], Optional[str]]] = None,
          streaming: bool = False, **kwargs: Any) -> DatasetDict | IterableDatasetDict:
    """``load_dataset`` with errors turned into one line; ``diagnose`` may name the bad file and line.

    With ``streaming`` nothing is read yet (an error in the data surfaces when the stream reaches it).
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    datasets_log = logging.getLogger("datasets")
    level = datasets_log.level
    datasets_log.setLevel(logging.CRITICAL)  # it logs a failure before raising; seqnlp reports it in one line
    if streaming:
        kwargs["streaming"] = True
    try:
        loaded = datasets.load_dataset(path, **kwargs)
    except datasets.exceptions.DatasetNotFoundError as exc:
        raise DataError(f"{source} not found: {_first_line(exc)}") from exc
    except FileNotFoundError as exc:
        raise DataError(f"{source} not found: {_first_line(exc)}") from exc
    except Exception as exc:  # parse errors from pandas/pyarrow arrive wrapped; report the root cause
        where = diagnose() if diagnose is not None else None
        if where is not None:
            raise DataError(f"cannot load {source}: {where}") from exc
        root = exc
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        raise DataError(f"cannot load {source}: {_first_line(root)}") from exc
    finally:
        datasets_log.setLevel(level)
    if not isinstance(loaded, (DatasetDict, IterableDatasetDict)):
        raise DataError(f"{source} did not load as a set of splits")  # pragma: no cover - load_dataset contract
    return loaded


def _local_files(cfg: DataConfig) -> dict[str, list[str]]:
    """Split -> local data files, for diagnosing a failed load."""
    if cfg.data_files:
        return {split: [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
                for split, paths in cfg.data_files.items()}
    if cfg.dataset is not None and Path(cfg.dataset).expanduser().is_file():
        return {cfg.train_split: [str(Path(cfg.dataset).expanduser())]}
    return {}


def _find_bad_line(files: dict[str, list[str]], builder: str, kwargs: dict[str, Any]) -> Optional[str]:
    """After a failed load: the first file and line that is not UTF-8, not a JSON object, or of the wrong width;
    or a file with no rows at all."""
    for split, name in ((split, name) for split, names in files.items() for name in names):
        path = Path(name)
        if not path.is_file():
            continue
        lines = 0
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    raw.decode(kwargs.get("encoding", "utf-8"))
                except UnicodeDecodeError as exc:
                    return f"{path}, line {number}: not UTF-8 text (byte {exc.start} of the line)"
                lines += bool(raw.strip())
        is_csv = builder == "csv" or path.suffix.lower() in (".csv", ".tsv")
        if lines == 0 or (is_csv and lines == 1 and not kwargs.get("column_names")):
            return f"{path} has no rows: split {split!r} is empty"
        if path.suffix.lower() == ".jsonl":
            problem = _bad_jsonl_line(path)
            if problem:
                return problem
        if is_csv:
            problem = _bad_csv_row(path, kwargs)
            if problem:
                return problem
    return None


def iter_jsonl(lines: Iterable[str], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank JSON Lines line; a DataError names the first bad line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{name}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{name}, line {number}: not a JSON object ({type(record).__name__})")
        yield number, record


def _bad_jsonl_line(path: Path) -> Optional[str]:
    with path.open(encoding="utf-8") as f:
        try:
            for _ in iter_jsonl(f, str(path)):
                pass
        except DataError as exc:
            return str(exc)
    return None


def _bad_csv_row(path: Path, kwargs: dict[str, Any]) -> Optional[str]:
    delimiter = kwargs.get("delimiter", kwargs.get("sep", "\t" if path.suffix.lower() == ".tsv" else ","))
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=kwargs.get("quoting", csv.QUOTE_MINIMAL))
        expected = len(kwargs["column_names"]) if kwargs.get("column_names") else None
        start = 1  # the line a row starts on: a quoted field may span lines
        try:
            for row in reader:
                if expected is None:
                    expected = len(row)
                elif row and len(row) != expected:
                    return f"{path}, line {start}: {len(row)} fields where the header has {expected}"
                start = reader.line_num + 1
        except csv.Error as exc:
            return f"{path}, line {start}: {exc}"
    return None


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).suffix.lower() in _BUILDERS or name.count("/") > 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
