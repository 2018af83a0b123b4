"""Text columns that would train on garbage (issue 14, items 10 and 11): non-string columns are refused naming the
column and its type; empty and missing texts are counted, with their first rows, and refused when most are."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from seqnlp.config import DataConfig
from seqnlp.errors import DataError
from tests.data.helpers import files_config, labelled_rows, load, texts, write_rows


@pytest.mark.parametrize(("values", "kind"), [
    (lambda i: ["now", "only", f"w{i}"], "lists of string"),  # a parquet list<string> column: trained on its repr
    (lambda i: i * 11, "int64 values"),
    (lambda i: i + 0.5, "float64 values"),
    (lambda i: {"body": f"t{i}"}, "mappings"),
])
def test_a_text_column_that_is_not_text_is_refused(tmp_path: Path, values, kind: str) -> None:  # type: ignore[no-untyped-def]
    rows = [{"text": values(i), "label": "ab"[i % 2]} for i in range(20)]
    path = write_rows(tmp_path / "train.parquet", rows)
    with pytest.raises(DataError) as info:
        load(DataConfig(**files_config(train=path)))
    message = str(info.value)
    assert message.startswith(f"text column 'text' of split 'train' holds {kind}, not text; ")
    if kind.startswith("lists"):
        assert "join each row's tokens into one string" in message
    else:
        assert "convert the column, or name another in data.text_columns" in message


def test_a_text_column_empty_in_every_row_is_refused(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "train.jsonl", [{"text": None, "label": "ab"[i % 2]} for i in range(10)])
    with pytest.raises(DataError, match="text column 'text' of split 'train' is empty in every row"):
        load(DataConfig(**files_config(train=path)))


def test_empty_and_missing_texts_are_counted_with_their_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = labelled_rows(40)
    for i in (3, 7, 11, 19, 23, 31, 39):
        rows[i]["text"] = [None, "", "  \t", "\n"][i % 4]
    path = write_rows(tmp_path / "train.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="seqnlp.data.texts"):
        splits = load(DataConfig(**files_config(train=path), validation_size=0.25, test_size=0.0))
    assert caplog.messages == ["split 'train': 7 of 40 texts are empty or missing (rows 3, 7, 11, 19, 23, ..., "
                               "counting from 0); they are kept as empty texts"]
    assert len(texts(splits, "train", "validation")) == 40  # kept, not dropped


def test_a_csv_where_most_texts_read_as_missing_is_refused(tmp_path: Path) -> None:
    """pandas reads "NaN", "NA", "null" texts as missing values: 163 of 300 rows were trained as "" silently."""
    path = tmp_path / "train.csv"
    lines = ["text,label"] + [f"{'NaN' if i % 2 else ('' if i % 3 else 'hello great')},{i % 2}" for i in range(300)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load(DataConfig(**files_config(train=path)))
    assert str(info.value) == (
        "split 'train': 250 of 300 texts are empty or missing (rows 1, 2, 3, 4, 5, ..., counting from 0): most texts "
        "are empty; check data.text_columns (CSV/TSV readers take texts such as NA, NaN, null or None for missing "
        "values unless data.load_kwargs has keep_default_na: false)")


def test_keep_default_na_keeps_nan_texts_as_text(tmp_path: Path) -> None:
    """The fix the message names works: "NaN" stays a text."""
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f"{'NaN' if i % 2 else 'hello'},{i % 2}\n" for i in range(40)),
                    encoding="utf-8")
    cfg = DataConfig(**files_config(train=path), load_kwargs={"keep_default_na": False}, validation_size=0.25,
                     test_size=0.0)
    assert sorted(set(texts(load(cfg), "train", "validation"))) == ["NaN", "hello"]
