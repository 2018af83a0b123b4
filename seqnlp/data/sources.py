"""Where examples come from: the dataset a user names, loaded as it is, without touching its columns.

The Hub (the default path for users who are online), a local directory, files per split
(csv/tsv/json/jsonl/parquet), a dataset saved with ``save_to_disk``, the SMS Spam Collection embedded in the
package, or a generated long-range task (``synthetic:marker?distance=50``, see ``seqnlp.data.synthetic``).
Load failures become one line; ``seqnlp.data.files`` names the bad file and line when it can.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Callable, Collection, Optional

import datasets
from datasets import DatasetDict, IterableDatasetDict

from seqnlp.config import DataConfig
from seqnlp.config.paths import path_origin
from seqnlp.data import synthetic
from seqnlp.data.files import BUILDER_NAMES, BUILDERS, FORMAT_HINT, find_bad_line
from seqnlp.data.hub import NO_NETWORK_HINT, offline_mode, offline_reason
from seqnlp.errors import DataError

log = logging.getLogger(__name__)

SMS_SPAM_FILE = Path(__file__).parent / "sms_spam" / "SMSSpamCollection"  # the embedded default data set

def describe_source(cfg: DataConfig) -> str:
    if cfg.dataset is None and not cfg.data_files:
        return "the embedded SMS Spam Collection"
    if synthetic.is_synthetic(cfg.dataset):
        return f"the synthetic task {cfg.dataset!r}"
    if cfg.data_files:
        return "data files " + ", ".join(f"{k}={v}" for k, v in cfg.data_files.items())
    return f"dataset {cfg.dataset!r}"


def load_raw(cfg: DataConfig, streaming: bool = False,
             splits: Optional[Collection[str]] = None) -> DatasetDict | IterableDatasetDict:
    """Load the dataset as the user named it, without touching its columns; as streams with ``streaming``.

    ``splits`` keeps only those of the data's splits; local files of the other splits are not even read.
    """
    if splits is None:
        return _load_raw(cfg, streaming)
    files = local_files(cfg)
    if files and not any(name in splits for name in files):
        return IterableDatasetDict() if streaming else DatasetDict()
    if cfg.data_files:
        cfg = dataclasses.replace(cfg, data_files={k: v for k, v in cfg.data_files.items() if k in splits})
    raw = _load_raw(cfg, streaming)
    return type(raw)({name: split for name, split in raw.items() if name in splits})


def own_split_names(cfg: DataConfig) -> Optional[list[str]]:
    """The splits the data itself has (none carved), when the config tells them without reading the data: files,
    the embedded data, a synthetic task, a saved dataset. None for a Hub dataset or a directory: loading tells."""
    if cfg.dataset is None and not cfg.data_files:
        return ["train"]
    if synthetic.is_synthetic(cfg.dataset):
        return list(synthetic.SPLITS)
    files = local_files(cfg)
    if files:
        return list(files)
    assert cfg.dataset is not None
    path = Path(cfg.dataset).expanduser()
    if (path / "dataset_dict.json").is_file():
        try:
            names = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # damaged: loading it reports the problem
        return [str(name) for name in names] if isinstance(names, list) else None
    if (path / "state.json").is_file():
        return [cfg.train_split]
    return None


def _load_raw(cfg: DataConfig, streaming: bool) -> DatasetDict | IterableDatasetDict:
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
                     diagnose=lambda: find_bad_line(files, builder, kwargs))

    name = cfg.dataset
    assert name is not None
    path = Path(name).expanduser()
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:  # datasets raises OSError, ValueError or IndexError for damaged saves
            raise DataError(f"cannot read the saved dataset in {path}: {first_line(exc)}") from exc
        loaded = loaded if isinstance(loaded, DatasetDict) else DatasetDict({cfg.train_split: loaded})
        if streaming:
            return IterableDatasetDict({key: split.to_iterable_dataset() for key, split in loaded.items()})
        return loaded
    if path.is_file():
        builder, defaults = _builder_for(None, {cfg.train_split: [str(path)]})
        kwargs = {**defaults, **cfg.load_kwargs}
        return _load(builder, data_files={cfg.train_split: str(path)}, **kwargs, source=f"file {path}",
                     streaming=streaming,
                     diagnose=lambda: find_bad_line({cfg.train_split: [str(path)]}, builder, kwargs))
    if path.is_dir():
        return _load(str(path), source=f"directory {path}", streaming=streaming, **cfg.load_kwargs)
    if _looks_like_path(name):
        raise DataError(f"dataset path {name!r} does not exist")
    return _load_hub(name, cfg, streaming)


def _load_hub(name: str, cfg: DataConfig, streaming: bool) -> DatasetDict | IterableDatasetDict:
    """A Hub dataset: the default for users who are online. Without a network, the cache alone, at once; any other
    failure (a typo, a private or gated data set) says how to use local copies instead."""
    source = f"Hub dataset {name!r}"
    reason = offline_reason()
    try:
        if reason is None:
            return _load(name, name=cfg.config_name, revision=cfg.revision, source=source, streaming=streaming,
                         **cfg.load_kwargs)
        with offline_mode():
            return _load(name, name=cfg.config_name, revision=cfg.revision, source=source, streaming=streaming,
                         **cfg.load_kwargs)
    except DataError as exc:
        if reason is not None and isinstance(exc.__cause__, (FileNotFoundError, ConnectionError)):
            raise DataError(f"{source} is not in the local datasets cache and there is no network ({reason}); "
                            f"{NO_NETWORK_HINT}") from None
        raise DataError(f"{exc}; without the Hub, give local files per split: --data-files train=PATH "
                        "(and validation=PATH, test=PATH)") from exc


def _existing(paths: Any, split: str) -> list[str]:
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for p in paths:
        if not any(ch in str(p) for ch in "*?[") and not Path(p).expanduser().exists():
            origin = path_origin(str(p))
            where = (origin if origin is not None else "" if Path(p).expanduser().is_absolute()
                     else f"relative to the current directory, {Path.cwd()}")
            raise DataError(f"data file for split {split!r} does not exist: {p}{f' ({where})' if where else ''}; "
                            f"point at your copy with --data-files {split}=PATH")
    return [str(Path(p).expanduser()) for p in paths]


def _builder_for(dataset: Optional[str], files: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
    if dataset in BUILDER_NAMES:
        suffix = Path(next(iter(files.values()))[0]).suffix.lower()
        defaults = BUILDERS[suffix][1] if suffix in BUILDERS and BUILDERS[suffix][0] == dataset else {}
        return dataset, defaults
    if dataset is not None:
        raise DataError(
            f"with data files, data.dataset must be empty or a file format ({', '.join(sorted(BUILDER_NAMES))}),"
            f" not {dataset!r}"
        )
    suffixes = {Path(p).suffix.lower() for paths in files.values() for p in paths}
    if len(suffixes) != 1 or next(iter(suffixes)) not in BUILDERS:
        names = ", ".join(sorted({p for paths in files.values() for p in paths}))
        raise DataError(f"cannot tell the format of {names[:200]} from the suffix ({', '.join(sorted(suffixes))}); "
                        f"use one of {', '.join(BUILDERS)} for all files, or {FORMAT_HINT}")
    return BUILDERS[suffixes.pop()]


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
        raise DataError(f"{source} not found: {first_line(exc)}") from exc
    except FileNotFoundError as exc:
        raise DataError(f"{source} not found: {first_line(exc)}") from exc
    except Exception as exc:  # parse errors from pandas/pyarrow arrive wrapped; report the root cause
        where = diagnose() if diagnose is not None else None
        if where is not None:
            raise DataError(f"cannot load {source}: {where}") from exc
        root = exc
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        raise DataError(f"cannot load {source}: {first_line(root)}") from exc
    finally:
        datasets_log.setLevel(level)
    if not isinstance(loaded, (DatasetDict, IterableDatasetDict)):
        raise DataError(f"{source} did not load as a set of splits")  # pragma: no cover - load_dataset contract
    return loaded


def local_files(cfg: DataConfig) -> dict[str, list[str]]:
    """Split -> local data files, for diagnosing a failed load."""
    if cfg.data_files:
        return {split: [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
                for split, paths in cfg.data_files.items()}
    if cfg.dataset is not None and Path(cfg.dataset).expanduser().is_file():
        return {cfg.train_split: [str(Path(cfg.dataset).expanduser())]}
    return {}


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).suffix.lower() in BUILDERS or name.count("/") > 1


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
