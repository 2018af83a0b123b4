"""Local paths in a config: relative ones are read from the folder of the file that names them.

A config file's relative paths (``data.data_files``, a local ``data.dataset``, ``tokenizer.path``, a vectors file)
mean "beside this file", so a recipe works from any current directory; they become absolute when it is loaded,
and each remembers where it came from, for an error message about it (``path_origin``). A saved config
(``Config.save``, a run's config.yaml) writes its relative paths absolute, read from the current directory, so it
means the same files when it is loaded again as a config file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

# data.dataset values that name a file format for data.data_files rather than a dataset of their own
FILE_FORMATS = ("csv", "json", "parquet", "text", "arrow")
_DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt", ".arrow")
_VECTOR_SUFFIXES = (".txt", ".vec", ".gz", ".bin")
_ORIGINS: dict[str, str] = {}  # a path resolved against a config file's folder -> where it came from


def resolve_paths(config: Any, folder: Path, origin: Optional[Path] = None) -> None:
    """Make ``config``'s relative local paths absolute, read from ``folder`` (the config file ``origin``'s).

    ``data.data_files`` are always paths; ``data.dataset`` is one when it looks like a path (``./x``, ``x.csv``) or
    names something in ``folder`` (else it is a Hub name, ``stanfordnlp/imdb``); ``tokenizer.path`` always;
    ``model.pretrained_vectors`` when it looks like a file (else it is a named source, ``glove-6b-50d``). URLs
    and absolute paths are kept.
    """
    def fix(value: Any, always: bool, suffixes: tuple[str, ...] = (), slash: bool = False) -> Any:
        if isinstance(value, list):
            return [fix(v, always, suffixes, slash) for v in value]
        if not isinstance(value, str) or "://" in value or not value.strip():
            return value
        local = Path(value).expanduser()
        if local.is_absolute():
            return value
        path_like = (always or value.startswith((".", "~")) or local.suffix.lower() in suffixes
                     or (slash and "/" in value) or (folder / local).exists())
        if not path_like:
            return value
        new = os.path.normpath(os.path.abspath(folder / local))
        if origin is not None:
            _ORIGINS[new] = f"{origin.as_posix()} names it as {value}, read from that file's folder, {folder.as_posix()}/"
        return new

    data = config.data
    data.data_files = {split: fix(paths, True) for split, paths in data.data_files.items()}
    if data.dataset is not None and data.dataset not in FILE_FORMATS and not data.dataset.startswith("synthetic:"):
        data.dataset = fix(data.dataset, False, _DATA_SUFFIXES)
    if config.tokenizer.path is not None:
        config.tokenizer.path = fix(config.tokenizer.path, True)
    if config.model.pretrained_vectors is not None:
        config.model.pretrained_vectors = fix(config.model.pretrained_vectors, False, _VECTOR_SUFFIXES, slash=True)


def path_origin(path: str) -> Optional[str]:
    """Where a path that a config file named came from, for an error about it: ``configs/run.yaml names it as
    ../data/train.tsv, read from that file's folder, configs/``; None for a path no config file named."""
    return _ORIGINS.get(str(path))
