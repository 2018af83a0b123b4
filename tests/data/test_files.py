"""Text files read line by line: ``read_texts`` (the inputs of ``seqnlp predict``) in chunks, in every format, and
errors that name the file and the line; ``iter_jsonl`` and ``find_bad_line`` for data files that failed to load."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from seqnlp.data.files import PREDICT_CHUNK, find_bad_line, iter_jsonl, read_texts
from seqnlp.errors import DataError


def read_file(path: Path, input_format: str = "auto", columns: tuple[str, ...] = ("text",), separator: str = " ",
              chunk_size: int = PREDICT_CHUNK) -> list[list[str]]:
    with path.open(encoding="utf-8") as stream:
        return list(read_texts(stream, input_format, list(columns), separator, chunk_size=chunk_size))


def test_plain_text_lines_come_in_chunks() -> None:
    stream = io.StringIO("one\ntwo\r\n\nfour\nfive")
    assert list(read_texts(stream, "text", ["text"], chunk_size=2)) == [["one", "two"], ["", "four"], ["five"]]


def test_the_default_chunk_bounds_memory() -> None:
    chunks = list(read_texts(io.StringIO("x\n" * (PREDICT_CHUNK + 1)), "text", ["text"]))
    assert [len(c) for c in chunks] == [PREDICT_CHUNK, 1]


@pytest.mark.parametrize("name, content", [
    ("in.jsonl", '{"title": "A", "body": "b"}\n\n{"title": null, "body": "c"}\n'),
    ("in.json", '{"title": "A", "body": "b"}\n{"title": null, "body": "c"}\n'),
    ("in.csv", 'id,title,body\n1,A,b\n2,,c\n'),
    ("in.tsv", 'title\tbody\nA\tb\n\tc\n'),
])
def test_auto_goes_by_the_suffix_and_joins_the_columns(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert read_file(path, columns=("title", "body"), separator=" | ") == [["A | b", " | c"]]


def test_auto_reads_an_unknown_suffix_as_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text('{"text": "not json here"}\nline two\n', encoding="utf-8")
    assert read_file(path) == [['{"text": "not json here"}', "line two"]]


def test_tsv_is_read_without_quoting(tmp_path: Path) -> None:
    path = tmp_path / "in.tsv"
    path.write_text('text\tid\n"a great start\t1\nawful\t2\n', encoding="utf-8")
    assert read_file(path) == [['"a great start', "awful"]]


def test_a_missing_csv_column_lists_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("id,review\n1,great\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"in\.csv: column 'text' not found; columns: id, review"):
        read_file(path)


def test_a_bad_jsonl_line_and_a_missing_field_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "great"}\n\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl, line 3: not valid JSON"):
        read_file(path)
    path.write_text('{"text": "great"}\n{"review": "awful"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: needs field\(s\) text; found review"):
        read_file(path)


def test_bytes_that_are_not_utf8_are_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café great\nawful\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt is not UTF-8 text \(byte \d+\)"):
        read_file(path)


@pytest.mark.parametrize("name, content", [("empty.txt", ""), ("blank.jsonl", "\n\n"), ("header.csv", "text\n")])
def test_an_input_without_texts_is_a_data_error(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=f"no texts in {path}"):
        read_file(path)
    with pytest.raises(DataError, match="no texts in the input"):
        list(read_texts(io.StringIO(content), {".txt": "text", ".jsonl": "jsonl", ".csv": "csv"}[path.suffix], ["text"]))


def test_iter_jsonl_skips_blank_lines_and_names_a_line_that_is_not_an_object() -> None:
    assert list(iter_jsonl(['{"a": 1}\n', "\n", '{"b": 2}\n'], "x.jsonl")) == [(1, {"a": 1}), (3, {"b": 2})]
    with pytest.raises(DataError, match=r"x\.jsonl, line 2: not a JSON object \(list\)"):
        list(iter_jsonl(['{"a": 1}\n', "[1, 2]\n"], "x.jsonl"))


def test_find_bad_line_names_the_file_and_line(tmp_path: Path) -> None:
    good, bad = tmp_path / "train.csv", tmp_path / "test.csv"
    good.write_text("text,label\na,x\nb,y\n", encoding="utf-8")
    bad.write_text("text,label\na,x\nb,y,z\n", encoding="utf-8")
    assert find_bad_line({"train": [str(good)], "test": [str(bad)]}, "csv", {}) == (
        f"{bad}, line 3: 3 fields where the header has 2")
    assert find_bad_line({"train": [str(good)]}, "csv", {}) is None
