"""Text files read line by line: the inputs of ``seqnlp predict``, and the diagnosis of a data file that failed to load.

Every error names the file and the line (JSON Lines, CSV/TSV rows, undecodable bytes).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from seqnlp.errors import DataError


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
