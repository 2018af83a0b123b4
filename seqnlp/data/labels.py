"""Labels: their names in index order, and the map from a raw label column to class indices or multi-hot rows.

Names come from a ``ClassLabel``, from ``data.label_names``, or from the sorted set of the training split's values
(multi-label: the union of its lists).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import datasets
from datasets import ClassLabel, Dataset

from seqnlp.config import DataConfig
from seqnlp.data.files import header_hint
from seqnlp.data.texts import join_texts, list_item_feature
from seqnlp.errors import DataError

MAX_CLASS_SHARE = 0.5  # more distinct labels than this share of the rows: not a set of classes
MIN_CHECKED_CLASSES = 50  # ... once there are at least this many (a tiny data set may have few rows per class)


def infer_label_names(split: Dataset, cfg: DataConfig) -> list[str]:
    """Label names in index order: ClassLabel names, configured names, or the sorted set of values.

    With ``data.multi_label`` the column holds lists: names come from a list of ``ClassLabel``, from
    ``data.label_names``, or from the sorted union of the values in all the lists.
    """
    column = cfg.label_column
    check_columns(split, [column], role="label", split_name=cfg.train_split)
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
        raise _unusable(split, column, cfg.train_split)
    if cfg.label_names:
        return list(cfg.label_names)
    if cfg.multi_label:  # the union of the lists; a missing list (null) is an empty value, [] is no label
        rows = split.data.column(column).to_pylist()
        values = list({v for labels in rows for v in (labels if labels is not None else [None])})
    else:
        values = split.unique(column)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        raise DataError(f"label column {column!r} of split {cfg.train_split!r} has empty values")
    if not cfg.multi_label:
        _check_classes(values, len(split), column, cfg.train_split)
    names = [str(v) for v in sorted(values)]  # ints sort numerically, strings alphabetically
    if len(names) < 2:
        raise DataError(
            f"label column {column!r} of split {cfg.train_split!r} has a single class ({names[0] if names else 'none'});"
            " a classifier needs at least two"
        )
    return names


def _check_classes(values: list[Any], rows: int, column: str, split_name: str) -> None:
    """Values that are classes: not numbers with fractions (a continuous target), and not one per example."""
    fractional = sorted(v for v in values if isinstance(v, float) and not v.is_integer())
    where = f"label column {column!r} of split {split_name!r}"
    if fractional:
        raise DataError(f"{where} holds numbers that are not whole ({', '.join(map(repr, fractional[:3]))}, ...): a "
                        "continuous target; seqnlp classifies, regression is not supported: bin the values into classes")
    if len(values) >= MIN_CHECKED_CLASSES and len(values) > MAX_CLASS_SHARE * rows:
        raise DataError(f"{where} has {len(values):,} distinct values in {rows:,} rows, nearly one per example: an id "
                        "or a continuous target, not classes; seqnlp classifies, regression is not supported (name "
                        "the label column with data.label_column, or bin the values into classes)")


def _unusable(split: Dataset, column: str, split_name: str) -> DataError:
    """Why a label column of mixed JSON values cannot be used: it mixes types, or holds mappings or lists."""
    first: dict[str, tuple[int, Any]] = {}
    for row, value in enumerate(split[column]):
        first.setdefault(_kind(value), (row, value))
    where = f"label column {column!r} of split {split_name!r}"
    nested = [kind for kind in first if kind in ("a mapping", "a list")]
    if nested or len(first) < 2:
        kind = nested[0] if nested else next(iter(first), "nothing")
        row, value = first.get(kind, (0, None))
        return DataError(f"{where} holds {kind} at row {row} ({str(value)[:40]}); seqnlp needs a label, or a list of "
                         "labels with data.multi_label, per example")
    shown = ", ".join(f"{kind} at row {row} ({value!r})"[:60] for kind, (row, value) in list(first.items())[:3])
    return DataError(f"{where} mixes types: {shown}; give every label the same type (e.g. all strings)")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", dict: "a mapping", list: "a list"}.get(type(value), "null")


def label_converter(
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
        texts = [join_texts(list(parts), sep) for parts in zip(*columns)]
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


def _label_name(value: Any, value_names: Optional[list[str]]) -> Optional[str]:
    if value is None:
        return None
    if value_names is not None and isinstance(value, int) and not isinstance(value, bool):
        return value_names[value] if 0 <= value < len(value_names) else str(value)
    return str(value)


def check_columns(split: Dataset, wanted: list[str], role: str, split_name: str) -> None:
    missing = [c for c in wanted if c not in split.column_names]
    if missing:
        raise DataError(
            f"{role} column {missing[0]!r} not found in split {split_name!r}; "
            f"columns that exist: {', '.join(split.column_names)}{header_hint(split.column_names, 'load')}"
        )
