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


# --- messages made exact (issue 14, item 13) -----------------------------------------------------------------------


def test_a_lone_surrogate_names_its_line(tmp_path: Path) -> None:
    """pyarrow said "Trailing data at position 35", with no line."""
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "fine", "label": 1}\n' * 20 + '{"text": "bad \\ud800 x", "label": 1}\n', encoding="utf-8")
    expected = (f"{path}, line 21: a lone surrogate \\ud800 (half of a UTF-16 pair, not text); fix the escape or drop "
                "the line")
    assert find_bad_line({"train": [str(path)]}, "json", {}) == expected
    pair = ['{"text": "a \\ud83d\\ude00 pair is fine"}']
    assert list(iter_jsonl(pair, "x", strict=True)) == [(1, {"text": "a \U0001F600 pair is fine"})]
    assert read_file(path)[0][-1] == "bad \ud800 x"  # to predict, kept: the tokenizer replaces it (README)


def test_a_lone_surrogate_in_training_data_is_one_line_naming_it(tmp_path: Path) -> None:
    from seqnlp.config import DataConfig
    from tests.data.helpers import files_config, load

    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "fine", "label": 1}\n' * 20 + '{"text": "bad \\udc00", "label": 0}\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"cannot load .*: {path}, line 21: a lone surrogate \\udc00"):
        load(DataConfig(**files_config(train=path)))


def test_an_empty_csv_input_says_there_are_no_texts(tmp_path: Path) -> None:
    """It said "column 'text' not found; columns: " (nothing after the colon)."""
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^no texts in {path}$"):
        read_file(path)
    assert list(read_texts(io.StringIO(""), "csv", ["text"], empty_ok=True)) == []  # standard input may be empty


@pytest.mark.parametrize(("content", "hint"), [
    ("text;label\nhello;1\n", "(the columns look separated by ';': predict reads CSV with ',' or TSV with --format tsv)"),
    ("great film,1\nawful,0\n", "(the file seems to have no header row: a CSV file starts with one; --format text "
                                "reads lines)"),
])
def test_a_predict_csv_read_wrong_gets_a_hint(tmp_path: Path, content: str, hint: str) -> None:
    path = tmp_path / "in.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_file(path)
    assert str(info.value).startswith(f"{path}: column 'text' not found; columns: ")
    assert str(info.value).endswith(hint)


def test_a_jsonl_field_that_is_not_a_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "fine"}\n{"text": ["now", "only"]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}, line 2: field 'text' holds list \[\"now\", \"only\"\], not a text$"):
        read_file(path)


@pytest.mark.parametrize(("content", "hint"), [
    ("text;label\nhello great;1\nawful;0\n", "(the columns look separated by ';': set data.load_kwargs: "
                                             "{delimiter: ';'})"),
    ("hello great 0,0\nawful stuff 1,1\n", "(the file seems to have no header row: name its 2 columns in order with "
                                           "data.load_kwargs: {column_names: [text, label]})"),
])
def test_a_training_csv_read_wrong_gets_the_load_kwargs_fix(tmp_path: Path, content: str, hint: str) -> None:
    """It got "column not found" with no hint about column_names or delimiter."""
    from seqnlp.config import DataConfig
    from tests.data.helpers import files_config, load

    path = tmp_path / "train.csv"
    path.write_text(content * 10, encoding="utf-8")
    with pytest.raises(DataError) as info:
        load(DataConfig(**files_config(train=path)))
    assert "not found in split 'train'" in str(info.value) and str(info.value).endswith(hint)


def test_check_data_files_names_the_file(tmp_path: Path) -> None:
    from seqnlp.config import DataConfig
    from seqnlp.data.files import check_data_files

    data = tmp_path / "data"
    data.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=rf"cannot tell the format of {data} from its suffix \(none\)"):
        check_data_files(DataConfig(data_files={"train": str(data)}))
    with pytest.raises(DataError, match=rf"data file for split 'test' does not exist: {tmp_path / 'nope.csv'}"):
        check_data_files(DataConfig(data_files={"test": str(tmp_path / "nope.csv")}))
    check_data_files(DataConfig(dataset="csv", data_files={"train": str(data)}))  # the format is named: fine
    check_data_files(DataConfig(data_files={"train": str(tmp_path / "*.csv")}))  # a pattern: datasets expands it
