"""Labels: their names in index order, and the map from a raw label column to class indices or multi-hot rows.

Names come from a ``ClassLabel``, from ``data.label_names``, or from the sorted set of the training split's values
(multi-label: the union of its lists).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import datasets
from datasets import ClassLabel, Dataset

from seqnlp.config import DataConfig
from seqnlp.errors import DataError


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


def check_columns(split: Dataset, wanted: list[str], role: str, split_name: str) -> None:
    missing = [c for c in wanted if c not in split.column_names]
    if missing:
        raise DataError(
            f"{role} column {missing[0]!r} not found in split {split_name!r}; "
            f"columns that exist: {', '.join(split.column_names)}"
        )
