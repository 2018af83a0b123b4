"""Text columns checked before anything trains on them: garbage in is refused or counted, never taken silently.

* A text column holds strings. Anything else (numbers, a ``list<string>`` column of tokens, mappings) would train
  on its Python repr; it is refused, naming the column and its type. Token lists are not joined behind the user's
  back (which separator? were they tokens of this tokenizer?): the message says how to join them in the data.
* Empty and missing texts (null, "", whitespace; in CSV/TSV, pandas also reads NA, NaN, null, None, n/a... as
  missing) are kept as empty texts with a warning that gives their count and first rows; a split where most texts
  are empty is refused: the wrong column, or a reader that took the texts for missing values.
"""

from __future__ import annotations

import logging
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc
from datasets import Dataset

from seqnlp.config import DataConfig
from seqnlp.errors import DataError

log = logging.getLogger(__name__)

MAX_EMPTY_SHARE = 0.5  # a split with more empty texts than this is refused
SHOWN_ROWS = 5  # row numbers a warning lists
_STRINGS = ("string", "large_string")
CSV_NA_HINT = ("CSV/TSV readers take texts such as NA, NaN, null or None for missing values unless "
               "data.load_kwargs has keep_default_na: false")


def check_text_columns(split: Dataset, cfg: DataConfig, split_name: str) -> None:
    """Each text column holds strings; a DataError names the column and what it holds otherwise."""
    for column in cfg.text_columns:
        feature = split.features[column]
        if _is_string(feature):
            continue
        if isinstance(feature, datasets.Value) and feature.dtype == "null":
            raise DataError(f"text column {column!r} of split {split_name!r} is empty in every row")
        if _is_string(list_item_feature(feature)):
            hint = ("join each row's tokens into one string in the data first (pandas: df[col].str.join(' '); "
                    "datasets: ds.map(lambda r: {col: ' '.join(r[col])}))")
        else:
            hint = "seqnlp reads text columns of strings: convert the column, or name another in data.text_columns"
        raise DataError(f"text column {column!r} of split {split_name!r} holds {describe(feature)}, not text; {hint}")


def join_texts(values: list[Any], separator: str) -> str:
    """One example's text columns as one text (None is empty)."""
    return separator.join("" if v is None else str(v) for v in values)


def count_empty(prepared: Dataset, split_name: str) -> None:
    """Warn with the count and the first rows (0-based) of the empty texts of a prepared split; refuse the split
    when most of its texts are empty."""
    texts = prepared.data.column("text")
    empty = np.flatnonzero(pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(texts)), 0), True)
                           .to_numpy(zero_copy_only=False))
    if len(empty) == 0:
        return
    rows = ", ".join(str(i) for i in empty[:SHOWN_ROWS]) + (", ..." if len(empty) > SHOWN_ROWS else "")
    message = (f"split {split_name!r}: {len(empty):,} of {len(prepared):,} texts are empty or missing "
               f"(rows {rows}, counting from 0)")
    if len(empty) > MAX_EMPTY_SHARE * len(prepared):
        raise DataError(f"{message}: most texts are empty; check data.text_columns ({CSV_NA_HINT})")
    log.warning("%s; they are kept as empty texts", message)


def describe(feature: Any) -> str:
    """A column's type as a user would say it: int64 numbers, lists of string, mappings, mixed JSON values."""
    if isinstance(feature, datasets.Value):
        return f"{feature.dtype} values"
    inner = list_item_feature(feature)
    if inner is not None:
        return f"lists of {describe(inner).removesuffix(' values')}"
    if isinstance(feature, dict):
        return "mappings"
    return f"{type(feature).__name__} values"


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


def _is_string(feature: Any) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype in _STRINGS
