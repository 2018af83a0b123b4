"""Text files read line by line: the inputs of ``seqnlp predict``, and the diagnosis of a data file that failed to load.

Every error names the file and the line (JSON Lines, CSV/TSV rows, undecodable bytes).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, TextIO

from seqnlp.errors import DataError

PREDICT_CHUNK = 1024  # input lines read, predicted and written at a time: memory stays bounded
_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}  # suffix -> input format (auto)


def read_texts(stream: TextIO, input_format: str, columns: list[str], separator: str = " ",
               chunk_size: int = PREDICT_CHUNK) -> Iterator[list[str]]:
    """Yield the texts of an open file in chunks of ``chunk_size``: plain-text lines, JSONL or CSV/TSV.

    ``input_format`` is ``text``, ``jsonl``, ``csv``, ``tsv`` or ``auto`` (by the file's suffix; text without
    one). JSONL and CSV/TSV join ``columns`` with ``separator``, as training joins text columns. Errors name the
    file and the line; bytes that are not UTF-8, and a file without a single text, are DataErrors too.
    """
    name = getattr(stream, "name", "<input>")
    count = 0
    try:
        chunk: list[str] = []
        for text in _rows(stream, str(name), input_format, columns, separator):
            chunk.append(text)
            if len(chunk) == chunk_size:
                count += len(chunk)
                yield chunk
                chunk = []
        if chunk:
            count += len(chunk)
            yield chunk
    except UnicodeDecodeError as exc:
        raise DataError(f"{getattr(stream, 'name', 'the input')} is not UTF-8 text (byte {exc.start})") from None
    if count == 0:
        raise DataError(f"no texts in {getattr(stream, 'name', 'the input')}")


def _rows(stream: TextIO, name: str, input_format: str, columns: list[str], separator: str) -> Iterator[str]:
    fmt = _FORMATS.get(Path(name).suffix.lower(), "text") if input_format == "auto" else input_format
    if fmt in ("csv", "tsv"):
        # TSV is read without quoting, as the data layer reads .tsv files.
        reader = (csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv"
                  else csv.DictReader(stream))
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{name}: column {missing[0]!r} not found; columns: {', '.join(reader.fieldnames or [])}")
        return (separator.join(row[c] or "" for c in columns) for row in reader)
    if fmt == "jsonl":
        return _jsonl_texts(stream, name, columns, separator)
    return (line.rstrip("\r\n") for line in stream)


def _jsonl_texts(stream: TextIO, name: str, columns: list[str], separator: str) -> Iterator[str]:
    for number, record in iter_jsonl(stream, name):
        if any(c not in record for c in columns):
            raise DataError(f"{name}, line {number}: needs field(s) {', '.join(columns)}; found {', '.join(record)}")
        yield separator.join("" if record[c] is None else str(record[c]) for c in columns)


def find_bad_line(files: dict[str, list[str]], builder: str, kwargs: dict[str, Any]) -> Optional[str]:
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
