"""Text files read line by line: the inputs of ``seqnlp predict``, the diagnosis of a data file that failed to load,
and the checks of data files that need no data library (they exist, their format is known), run before any import.

Every error names the file and the line (JSON Lines, CSV/TSV rows, undecodable bytes, lone surrogates).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, TextIO

from seqnlp.config import DataConfig
from seqnlp.config.paths import FILE_FORMATS
from seqnlp.errors import DataError

PREDICT_CHUNK = 1024  # input lines read, predicted and written at a time: memory stays bounded
_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}  # suffix -> input format (auto)
# Data file suffix -> (datasets builder, default load_dataset options)
BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
BUILDER_NAMES = FILE_FORMATS  # data.dataset may name a format for files of any suffix
FORMAT_HINT = "name the format with --dataset csv (or json, parquet) and the file with --data-files train=PATH"


def check_data_files(cfg: DataConfig) -> None:
    """Data files that exist and whose format is known (by suffix, or data.dataset naming it), checked at once,
    before any data library is imported: a DataError names the file."""
    if cfg.dataset is not None and cfg.dataset.startswith("synthetic:"):
        return  # generated: training's preflight refuses data files beside it
    files = {split: [paths] if isinstance(paths, (str, Path)) else list(paths) for split, paths in cfg.data_files.items()}
    if not files and cfg.dataset is not None and Path(cfg.dataset).expanduser().is_file():
        files = {cfg.train_split: [cfg.dataset]}
    for split, paths in files.items():
        for path in map(str, paths):
            if not any(ch in path for ch in "*?[") and not Path(path).expanduser().exists():
                raise DataError(f"data file for split {split!r} does not exist: {path}")
            named = cfg.dataset in BUILDER_NAMES and bool(cfg.data_files)
            if not named and not any(ch in path for ch in "*?[") and Path(path).suffix.lower() not in BUILDERS:
                raise DataError(f"cannot tell the format of {path} from its suffix ({Path(path).suffix or 'none'}); "
                                f"use {', '.join(BUILDERS)}, or {FORMAT_HINT}")


def read_texts(stream: TextIO, input_format: str, columns: list[str], separator: str = " ",
               chunk_size: int = PREDICT_CHUNK, empty_ok: bool = False) -> Iterator[list[str]]:
    """Yield the texts of an open file in chunks of ``chunk_size``: plain-text lines, JSONL or CSV/TSV.

    ``input_format`` is ``text``, ``jsonl``, ``csv``, ``tsv`` or ``auto`` (by the file's suffix; text without
    one). JSONL and CSV/TSV join ``columns`` with ``separator``, as training joins text columns. Errors name the
    file and the line; bytes that are not UTF-8, and a file without a single text (unless ``empty_ok``: standard
    input, where a pipeline over an empty shard must not fail), are DataErrors too.
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
    if count == 0 and not empty_ok:
        raise DataError(f"no texts in {getattr(stream, 'name', 'the input')}")


def _rows(stream: TextIO, name: str, input_format: str, columns: list[str], separator: str) -> Iterator[str]:
    fmt = _FORMATS.get(Path(name).suffix.lower(), "text") if input_format == "auto" else input_format
    if fmt in ("csv", "tsv"):
        # TSV is read without quoting, as the data layer reads .tsv files.
        reader = (csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv"
                  else csv.DictReader(stream))
        if reader.fieldnames is None:
            return iter(())  # an empty file: no header, no texts
        missing = [c for c in columns if c not in reader.fieldnames]
        if missing:
            raise DataError(f"{name}: column {missing[0]!r} not found; columns: {', '.join(reader.fieldnames)}"
                            f"{header_hint(list(reader.fieldnames), 'predict')}")
        return (separator.join(row[c] or "" for c in columns) for row in reader)
    if fmt == "jsonl":
        return _jsonl_texts(stream, name, columns, separator)
    return (line.rstrip("\r\n") for line in stream)


def _jsonl_texts(stream: TextIO, name: str, columns: list[str], separator: str) -> Iterator[str]:
    for number, record in iter_jsonl(stream, name):
        if any(c not in record for c in columns):
            raise DataError(f"{name}, line {number}: needs field(s) {', '.join(columns)}; found {', '.join(record)}")
        wrong = next((c for c in columns if not isinstance(record[c], (str, type(None)))), None)
        if wrong is not None:
            raise DataError(f"{name}, line {number}: field {wrong!r} holds {type(record[wrong]).__name__} "
                            f"{json.dumps(record[wrong])[:40]}, not a text")
        yield separator.join("" if record[c] is None else record[c] for c in columns)


def header_hint(columns: list[str], reader: str) -> str:
    """A hint when the columns found look like a CSV read wrong: one column named by a whole line holding ';', tab
    or '|' (another delimiter), or names that look like data (no header row). ``reader``: load (data.load_kwargs
    can fix it) or predict (its own options can)."""
    delimiter = next((d for d in (";", "\t", "|") if len(columns) == 1 and d in columns[0]), None)
    if delimiter is not None:
        if reader == "predict":
            return f" (the columns look separated by {delimiter!r}: predict reads CSV with ',' or TSV with --format tsv)"
        return f" (the columns look separated by {delimiter!r}: set data.load_kwargs: {{delimiter: {delimiter!r}}})"
    if any(c.strip().lstrip("-").replace(".", "", 1).isdigit() or len(c.split()) > 3 or len(c) > 40 for c in columns):
        if reader == "predict":
            return " (the file seems to have no header row: a CSV file starts with one; --format text reads lines)"
        names = ", ".join(["text", "label"] if len(columns) == 2 else [f"col{i + 1}" for i in range(len(columns))])
        return (f" (the file seems to have no header row: name its {len(columns)} columns in order with "
                f"data.load_kwargs: {{column_names: [{names}]}})")
    return ""


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


def iter_jsonl(lines: Iterable[str], name: str, strict: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank JSON Lines line; a DataError names the first bad line. ``strict``
    also refuses lone surrogates (``"\\ud800"``: valid JSON, but not text), which make a data file unreadable to
    pyarrow; prediction inputs keep them, and the tokenizer replaces them."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{name}, line {number}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise DataError(f"{name}, line {number}: nested too deeply") from None
        if not isinstance(record, dict):
            raise DataError(f"{name}, line {number}: not a JSON object ({type(record).__name__})")
        if strict and "\\u" in line.lower():  # an escape may be half of a UTF-16 pair: a lone surrogate
            try:
                json.dumps(record, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as exc:
                raise DataError(f"{name}, line {number}: a lone surrogate \\u{ord(exc.object[exc.start]):04x} (half "
                                "of a UTF-16 pair, not text); fix the escape or drop the line") from None
        yield number, record


def _bad_jsonl_line(path: Path) -> Optional[str]:
    with path.open(encoding="utf-8") as f:
        try:
            for _ in iter_jsonl(f, str(path), strict=True):
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
