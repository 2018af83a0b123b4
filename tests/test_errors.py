"""Bad input through the ``seqnlp`` command line (issue 4): one clear line, a non-zero exit, nothing lost.

Every case here runs the real command in-process with click's ``CliRunner`` and checks that

* the exit code is 2 for usage and config errors and 1 for everything else,
* stderr holds exactly one ``Error:`` line, naming the file, column, line, key or value (and the valid choices),
  and no Python traceback; with ``-q`` that line is all of stderr,
* nothing is lost: a run directory the command was pointed at has the same bytes afterwards.

Cases already covered by tests/test_cli.py (unknown ``--set`` keys and choices, a missing data or config file, a
wrong text column at training, a directory that is not a run, ``--top-k`` above the label count, non-UTF-8 or
malformed predict input, an existing run without ``--overwrite``) are not repeated. Empty and missing texts are
not errors: the module's run is trained, evaluated and used for prediction with them.
"""

from __future__ import annotations

import gc
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner, Result
from tests.helpers import tiny_set_args, toy_rows, write_csv

from seqnlp.cli import main

# When a load fails part-way, datasets' CSV builder abandons its pandas reader with the data file still open; the
# file is closed whenever the garbage collector reaches it, which may be during any later test, where the
# ResourceWarning would fail that test under filterwarnings=error. Ignore exactly that warning for data files in
# this module (and collect once at its end); every other warning is still an error.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedReader name='.*\.(csv|tsv|jsonl)'>:ResourceWarning")

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRED_FILES = ("config.yaml", "labels.json", "tokenizer.json", "model.safetensors")


# --- helpers ------------------------------------------------------------------------------------------------


def invoke(*args: Any, input: str | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def assert_error(result: Result, exit_code: int, *fragments: str, alone: bool = True) -> str:
    """A user error: ``exit_code``, no traceback, nothing on stdout and one ``Error:`` line naming each fragment.

    ``alone``: that line is all of stderr (commands run with ``-q``, or that fail before any progress output).
    Click usage errors add their ``Usage:`` lines, so they pass ``alone=False``.
    """
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    for fragment in fragments:
        assert fragment in line, line
    if alone:
        assert result.stderr.strip().splitlines() == [line], result.stderr
    return line


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (checkpoints included) by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def copy_run(run_dir: Path, tmp_path: Path, name: str = "run") -> Path:
    target = tmp_path / name
    shutil.copytree(run_dir, target)
    return target


def run_files_in(directory: Path) -> list[str]:
    """Files a failed command left in an output directory (it may create the directory itself, empty)."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def message(line: str, tmp_path: Path) -> str:
    """The error line without the temporary paths in it, whose names come from the test's own name."""
    return line.replace(str(tmp_path), "<tmp>")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def csv_lines(rows: list[dict[str, str]]) -> list[str]:
    """A header and one ``text,label`` line per row (toy texts hold no commas or quotes)."""
    return ["text,label"] + [f"{row['text']},{row['label']}" for row in rows]


# --- the module's run: trained through the CLI on data with empty and missing texts -----------------------------


@pytest.fixture(autouse=True, scope="module")
def _close_leftover_readers() -> Iterator[None]:
    yield
    gc.collect()  # readers left open by failed loads are closed here, under this module's warning filter


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.jsonl: 200 toy rows, 20 with an empty text and 20 with a null one; test.jsonl: 40 rows, 5 with an
    empty text and 5 with a null one; test.csv: the same 40 rows, the 10 texts as empty fields (read as missing)."""
    root = tmp_path_factory.mktemp("error-data")
    train = toy_rows(200, seed=0)
    records: list[dict[str, Any]] = []
    for i, row in enumerate(train):
        text: str | None = row["text"]
        if i % 10 == 0:
            text = ""
        elif i % 10 == 5:
            text = None
        records.append({"text": text, "label": row["label"]})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    test = toy_rows(40, seed=1)
    test_records: list[dict[str, Any]] = []
    for i, row in enumerate(test):
        test_records.append({"text": None if i % 8 == 4 else "" if i % 8 == 0 else row["text"], "label": row["label"]})
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test_records), encoding="utf-8")
    write_csv(root / "test.csv", [{"text": r["text"] or "", "label": r["label"]} for r in test_records])
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Result]:
    run_dir = tmp_path_factory.mktemp("error-run") / "run"
    result = invoke(
        "-q", "train", "--data-files", f"train={data_dir / 'train.jsonl'}", "--data-files",
        f"test={data_dir / 'test.jsonl'}", "--output-dir", run_dir, "--epochs", "4", "--batch-size", "16",
        "--device", "cpu", "--seed", "3", *tiny_set_args(train__monitor="loss"),
    )
    assert result.exit_code == 0, f"training on empty and missing texts failed:\n{result.output}"
    return run_dir, result


@pytest.fixture(scope="module")
def run_dir(trained: tuple[Path, Result]) -> Path:
    return trained[0]


@pytest.fixture(scope="module")
def run_bytes(run_dir: Path) -> dict[str, bytes]:
    """The run as training left it; commands that fail on it must leave it so."""
    return snapshot(run_dir)


# --- empty and missing texts are not errors ------------------------------------------------------------------


def test_empty_and_missing_texts_train(trained: tuple[Path, Result], data_dir: Path) -> None:
    run_dir, result = trained
    records = json_lines((data_dir / "train.jsonl").read_text(encoding="utf-8"))
    assert sum(r["text"] == "" for r in records) == 20 and sum(r["text"] is None for r in records) == 20
    for name in REQUIRED_FILES + ("metrics.jsonl", "results.json"):
        assert (run_dir / name).is_file(), name
    # -q still shows the warning that counts them, per split (issue 14): 40 of the 200 training texts, 10 of the 40;
    # the other lines are the data checks' (the toy data repeats texts on purpose), never the empty texts again
    lines = result.stderr.splitlines()
    assert [line for line in lines if not line.startswith("data check: ")] == [
        "split 'train': 40 of 200 texts are empty or missing (rows 0, 5, 10, 15, 20, ..., counting from 0); they are "
        "kept as empty texts",
        "split 'test': 10 of 40 texts are empty or missing (rows 0, 4, 8, 12, 16, ..., counting from 0); they are "
        "kept as empty texts"]
    assert not any("empty" in line for line in lines if line.startswith("data check: "))
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["validation"]["accuracy"] >= 0.8  # the cue word is still learned
    assert results["test"]["accuracy"] >= 0.7  # 10 of the 40 test texts are empty: at most they are wrong


@pytest.mark.parametrize("source", ["own", "csv"])
def test_empty_texts_evaluate(run_dir: Path, run_bytes: dict[str, bytes], data_dir: Path, source: str) -> None:
    extra = ["--data-files", f"test={data_dir / 'test.csv'}", "--split", "test"] if source == "csv" else []
    result = invoke("-q", "evaluate", run_dir, "--json", *extra)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "test"
    assert report["num_examples"] == 40  # the rows with an empty text are evaluated, not dropped
    assert sum(map(sum, report["confusion_matrix"])) == 40
    assert report["accuracy"] >= 0.7
    assert snapshot(run_dir) == run_bytes


def test_empty_and_missing_texts_predict(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("predict", run_dir, "", "great", "   ")
    assert result.exit_code == 0, result.output
    empty, great, blank = json_lines(result.stdout)
    for prediction in (empty, great, blank):
        assert prediction["label"] in ("neg", "pos")
        assert 0.0 <= prediction["score"] <= 1.0
    assert great["label"] == "pos"
    assert blank == empty  # whitespace only tokenizes to nothing, like the empty text

    (tmp_path / "in.csv").write_text('id,text\n1,\n2,great\n3,""\n', encoding="utf-8")
    (tmp_path / "in.jsonl").write_text('{"text": null}\n{"text": "great"}\n{"text": ""}\n', encoding="utf-8")
    for path in (tmp_path / "in.csv", tmp_path / "in.jsonl"):
        result = invoke("predict", run_dir, "--input", path)
        assert result.exit_code == 0, result.output
        assert json_lines(result.stdout) == [empty, great, empty], path.name


# --- datasets that cannot be found or used -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["./no/such/file.csv", "{tmp}/missing-dir/", "~/no-such-seqnlp-data.jsonl"])
def test_dataset_path_that_does_not_exist(tmp_path: Path, name: str) -> None:
    name = name.format(tmp=tmp_path)
    out = tmp_path / "out"
    assert_error(invoke("-q", "train", "--dataset", name, "--output-dir", out), 1, repr(name), "does not exist")
    assert run_files_in(out) == []


def test_hub_dataset_that_does_not_exist(tmp_path: Path) -> None:
    # The tests run with the Hub switched off (conftest): a name that is not cached cannot be loaded.
    out = tmp_path / "out"
    assert_error(invoke("-q", "train", "--dataset", "seqnlp-no-such-dataset", "--output-dir", out), 1,
                 "'seqnlp-no-such-dataset'")
    assert run_files_in(out) == []


def test_evaluate_on_a_dataset_path_that_does_not_exist(run_dir: Path, run_bytes: dict[str, bytes],
                                                        tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    assert_error(invoke("-q", "evaluate", run_dir, "--dataset", missing), 1, repr(missing), "does not exist")
    assert snapshot(run_dir) == run_bytes


def test_missing_label_column_lists_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", [{"text": r["text"], "category": r["label"]} for r in toy_rows(20)])
    line = assert_error(invoke("-q", "train", "--data-files", f"train={path}", "--output-dir", tmp_path / "out"), 1,
                        "label column 'label'", "'train'")
    assert line.endswith("columns that exist: text, category"), line
    assert run_files_in(tmp_path / "out") == []


def test_missing_label_column_given_by_flag(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", toy_rows(20))
    line = assert_error(invoke("-q", "train", "--data-files", f"train={path}", "--label-column", "sentiment",
                               "--output-dir", tmp_path / "out"), 1, "'sentiment'")
    assert line.endswith("columns that exist: text, label"), line


def test_missing_text_column_at_evaluation(run_dir: Path, run_bytes: dict[str, bytes], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "held_out.csv", [{"body": r["text"], "label": r["label"]} for r in toy_rows(10)])
    line = assert_error(invoke("-q", "evaluate", run_dir, "--data-files", f"test={path}"), 1,
                        "text column 'text'", "'test'")
    assert line.endswith("columns that exist: body, label"), line
    assert snapshot(run_dir) == run_bytes


@pytest.mark.parametrize(
    ("splits", "empty_split"),
    [
        (["train"], "train"),
        (["train", "test"], "test"),
        pytest.param(["train", "test"], "train"),
    ],
    ids=["train-alone", "test", "train-with-test"],
)
def test_header_only_csv_is_an_empty_split(tmp_path: Path, splits: list[str], empty_split: str) -> None:
    files = {split: write_csv(tmp_path / f"{split}.csv", toy_rows(40 if split == "train" else 10)) for split in splits}
    files[empty_split] = tmp_path / "header-only.csv"
    files[empty_split].write_text("text,label\n", encoding="utf-8")  # a header, no rows
    data = [arg for split, path in files.items() for arg in ("--data-files", f"{split}={path}")]
    result = invoke("-q", "train", *data, "--output-dir", tmp_path / "out", "--device", "cpu")
    line = message(assert_error(result, 1, str(files[empty_split])), tmp_path)
    assert f'"{empty_split}"' in line or f"'{empty_split}'" in line, line  # the split, by name
    assert "no data" in line or "empty" in line, line
    assert run_files_in(tmp_path / "out") == []


def test_header_only_csv_at_evaluation(run_dir: Path, run_bytes: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / "header-only.csv"
    path.write_text("text,label\n", encoding="utf-8")
    line = message(assert_error(invoke("-q", "evaluate", run_dir, "--data-files", f"test={path}"), 1, str(path)),
                   tmp_path)
    assert "no data" in line or "empty" in line, line
    assert snapshot(run_dir) == run_bytes


def test_empty_jsonl_file_is_an_empty_split(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("", encoding="utf-8")
    line = assert_error(invoke("-q", "train", "--data-files", f"train={path}", "--output-dir", tmp_path / "out"), 1,
                        str(path))
    line = message(line, tmp_path)
    assert "no data" in line or "empty" in line, line


def test_single_class_training_set(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", [{"text": r["text"], "label": "pos"} for r in toy_rows(30)])
    assert_error(invoke("-q", "train", "--data-files", f"train={path}", "--output-dir", tmp_path / "out"), 1,
                 "label column 'label'", "'train'", "single class (pos)", "at least two")
    assert run_files_in(tmp_path / "out") == []


def test_unseen_label_at_evaluation(run_dir: Path, run_bytes: dict[str, bytes], tmp_path: Path) -> None:
    rows = toy_rows(20, seed=5)
    rows[3]["label"] = "meh"
    path = write_csv(tmp_path / "held_out.csv", rows)
    assert_error(invoke("-q", "evaluate", run_dir, "--data-files", f"test={path}", "--split", "test"), 1,
                 "'meh'", "column 'label'", "row 3", "'test'", "known labels (neg, pos)")
    assert snapshot(run_dir) == run_bytes


# --- files that cannot be parsed: the file and the line are named ----------------------------------------------


def non_utf8_csv(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "latin1.csv"
    body = "\n".join(csv_lines(toy_rows(20))) + "\n"
    path.write_bytes(body.encode("utf-8") + "café awful,neg\n".encode("latin-1") + b"great,pos\n")
    return path, 22


def non_utf8_jsonl(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "latin1.jsonl"
    good = "".join(json.dumps(r) + "\n" for r in toy_rows(20)).encode("utf-8")
    path.write_bytes(good + '{"text": "café awful", "label": "neg"}\n'.encode("latin-1"))
    return path, 21


def wrong_field_count_csv(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "fields.csv"
    lines = csv_lines(toy_rows(20))
    path.write_text("\n".join(lines[:6] + ["a great film,pos,extra,fields"] + lines[6:]) + "\n", encoding="utf-8")
    return path, 7


def wrong_field_count_tsv(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "fields.tsv"
    lines = [line.replace(",", "\t") for line in csv_lines(toy_rows(20))]
    path.write_text("\n".join(lines[:9] + ["a great film\tpos\textra"] + lines[9:]) + "\n", encoding="utf-8")
    return path, 10


def truncated_json_line(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "truncated.jsonl"
    lines = [json.dumps(r) for r in toy_rows(20)]
    path.write_text("\n".join(lines[:4] + ['{"text": "a great film", "label": '] + lines[4:]) + "\n", encoding="utf-8")
    return path, 5


def garbage_json_line(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "garbage.jsonl"
    lines = [json.dumps(r) for r in toy_rows(20)]
    path.write_text("\n".join(lines[:11] + ["this is not json"] + lines[11:]) + "\n", encoding="utf-8")
    return path, 12


BAD_FILES = {
    "non-utf8-csv": non_utf8_csv,
    "non-utf8-jsonl": non_utf8_jsonl,
    "csv-field-count": wrong_field_count_csv,
    "tsv-field-count": wrong_field_count_tsv,
    "jsonl-truncated-line": truncated_json_line,
    "jsonl-garbage-line": garbage_json_line,
}


@pytest.mark.parametrize("how", ["data-files", "dataset"])
@pytest.mark.parametrize("bad", list(BAD_FILES))
def test_bad_data_file_names_file_and_line(tmp_path: Path, bad: str, how: str) -> None:
    path, line_number = BAD_FILES[bad](tmp_path)
    source = ["--data-files", f"train={path}"] if how == "data-files" else ["--dataset", path]
    result = invoke("-q", "train", *source, "--output-dir", tmp_path / "out")
    line = assert_error(result, 1, f"{path}, line {line_number}:", alone=False)  # alone: see the test below
    if bad.startswith("non-utf8"):
        assert "not UTF-8" in line
    elif "field-count" in bad:
        assert "fields where the header has 2" in line
    else:
        assert "not valid JSON" in line
    assert run_files_in(tmp_path / "out") == []


def test_non_utf8_file_at_evaluation(run_dir: Path, run_bytes: dict[str, bytes], tmp_path: Path) -> None:
    path, line_number = non_utf8_csv(tmp_path)
    assert_error(invoke("-q", "evaluate", run_dir, "--data-files", f"test={path}"), 1,
                 f"{path}, line {line_number}: not UTF-8", alone=False)
    assert snapshot(run_dir) == run_bytes


@pytest.mark.parametrize("bad", ["non-utf8-csv", "csv-field-count", "jsonl-garbage-line"])
def test_bad_data_file_is_reported_on_one_line(tmp_path: Path, bad: str) -> None:
    path, line_number = BAD_FILES[bad](tmp_path)
    result = invoke("-q", "train", "--dataset", path, "--output-dir", tmp_path / "out")
    assert_error(result, 1, f"{path}, line {line_number}:", alone=True)


def test_unclosed_csv_quote_names_the_line_where_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    lines = csv_lines(toy_rows(20))
    path.write_text("\n".join(lines[:6] + ['"an unclosed quote,pos'] + lines[6:]) + "\n", encoding="utf-8")
    assert_error(invoke("-q", "train", "--data-files", f"train={path}", "--output-dir", tmp_path / "out"), 1,
                 f"{path}, line 7:", alone=False)


@pytest.mark.parametrize("bad_line", ["[1, 2]", '"just a string"', "3"])
def test_jsonl_line_that_is_not_an_object_names_the_line(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "records.jsonl"
    lines = [json.dumps(r) for r in toy_rows(20)]
    path.write_text("\n".join(lines[:4] + [bad_line] + lines[4:]) + "\n", encoding="utf-8")
    assert_error(invoke("-q", "train", "--data-files", f"train={path}", "--output-dir", tmp_path / "out"), 1,
                 f"{path}, line 5:", alone=False)


# --- config: unknown keys and bad values name the key and the valid choices ------------------------------------


CONFIG_FILE_ERRORS = {
    "unknown-key": ("model:\n  hiden_size: 3\n", ["'model.hiden_size'", "valid keys in model:", "hidden_size"]),
    "unknown-section": ("modle:\n  cell: gru\n", ["'modle'", "data, tokenizer, model, train, pretrain, calibration, baseline, seed, output_dir"]),
    "cell-choice": ("model:\n  cell: transformer\n", ["model.cell", "'transformer'", "rnn, lstm, gru"]),
    "kind-choice": ("tokenizer:\n  kind: sentencepiece\n",
                    ["tokenizer.kind", "'sentencepiece'", "word, bpe, wordpiece, unigram, char"]),
    "precision-choice": ("train:\n  precision: fp8\n", ["train.precision", "'fp8'", "fp32, bf16, fp16"]),
    "int-type": ("train:\n  epochs: many\n", ["train.epochs", "an integer", "'many'"]),
    "bool-type": ("model:\n  bidirectional: sometimes\n", ["model.bidirectional", "true or false", "'sometimes'"]),
    "fraction-range": ("model:\n  dropout: 1.5\n", ["model.dropout: 1.5 must be in [0, 1)"]),
    "lower-bound": ("model:\n  hidden_size: 0\n", ["model.hidden_size: 0 must be >= 1"]),
    "section-not-mapping": ("model: 3\n", ["model: expected a mapping, got 3"]),
}


@pytest.mark.parametrize("case", list(CONFIG_FILE_ERRORS))
def test_config_file_error_names_key_and_choices(tmp_path: Path, case: str) -> None:
    text, fragments = CONFIG_FILE_ERRORS[case]
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert_error(invoke("train", "--print-config", "--config", path), 2, *fragments)


@pytest.mark.parametrize("text", ["- a list\n- of items\n", "model: {cell: [gru\n"], ids=["not-a-mapping", "bad-yaml"])
def test_config_file_that_is_not_a_config(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert_error(invoke("train", "--print-config", "--config", path), 2, f"config file {path}")


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes("model:\n  cell: gr\xfc\n".encode("latin-1"))
    assert_error(invoke("train", "--print-config", "--config", path), 2, str(path), "UTF-8")


SET_ERRORS = {
    "tokenizer.kind=sentencepiece": ["tokenizer.kind", "word, bpe, wordpiece, unigram, char"],
    "train.schedule=exponential": ["train.schedule", "'exponential'", "constant, linear, cosine, plateau"],
    "train.monitor=f1": ["train.monitor", "loss, accuracy, macro_f1"],
    "train.lr=0": ["train.lr: 0.0 must be > 0"],
    "data.test_size=1": ["data.test_size: 1.0 must be in [0, 1)"],
    "model.cell.size=3": ["model.cell is a value, not a section"],
    "model=3": ["model: a section needs a mapping, got 3"],
    "train.batchsize=8": ["'train.batchsize'", "batch_size"],
}


@pytest.mark.parametrize("override", list(SET_ERRORS))
def test_set_error_names_key_and_choices(override: str) -> None:
    assert_error(invoke("train", "--print-config", "--set", override), 2, *SET_ERRORS[override])


def test_config_error_leaves_the_run_it_would_overwrite(run_dir: Path, tmp_path: Path, data_dir: Path) -> None:
    target = copy_run(run_dir, tmp_path)
    before = snapshot(target)
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  pooling: median\n", encoding="utf-8")
    for args in (["--set", "model.cell=transformer"], ["--config", config]):
        result = invoke("-q", "train", "--data-files", f"train={data_dir / 'train.jsonl'}", "--output-dir", target,
                        "--overwrite", *args)
        assert_error(result, 2, "last, mean, max, attention" if "--config" in args else "rnn, lstm, gru")
        assert snapshot(target) == before


def test_data_error_leaves_the_run_it_would_overwrite(run_dir: Path, tmp_path: Path) -> None:
    target = copy_run(run_dir, tmp_path)
    before = snapshot(target)
    path, line_number = wrong_field_count_csv(tmp_path)
    result = invoke("-q", "train", "--data-files", f"train={path}", "--output-dir", target, "--overwrite")
    assert_error(result, 1, f"{path}, line {line_number}:", alone=False)
    assert snapshot(target) == before


# --- run directories that are incomplete or do not fit together --------------------------------------------------


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("missing", REQUIRED_FILES)
def test_run_directory_missing_a_file(run_dir: Path, tmp_path: Path, missing: str, command: str) -> None:
    target = copy_run(run_dir, tmp_path)
    (target / missing).unlink()
    before = snapshot(target)
    args = [command, target, "great"] if command == "predict" else ["-q", command, target]
    line = assert_error(invoke(*args), 1, str(target), f"missing {missing}")
    assert line.endswith(f"missing {missing}"), line  # only the file that is really missing
    assert snapshot(target) == before


def _truncate_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt_header(data: bytes) -> bytes:
    return data[:8] + b"{" * 20 + data[28:]


CORRUPT_WEIGHTS = {
    "truncated-half": _truncate_half,
    "truncated-to-100-bytes": lambda data: data[:100],
    "empty": lambda data: b"",
    "random-bytes": lambda data: random.Random(0).randbytes(4096),
    "corrupt-header": _corrupt_header,
}


@pytest.mark.parametrize("damage", list(CORRUPT_WEIGHTS))
def test_corrupt_weights_file(run_dir: Path, tmp_path: Path, damage: str) -> None:
    target = copy_run(run_dir, tmp_path)
    weights = target / "model.safetensors"
    weights.write_bytes(CORRUPT_WEIGHTS[damage](weights.read_bytes()))
    before = snapshot(target)
    for args in (["predict", target, "great"], ["-q", "evaluate", target]):
        assert_error(invoke(*args), 1, f"weights file {weights}", "corrupt or truncated")
    assert snapshot(target) == before


def test_weights_of_another_model(run_dir: Path, tmp_path: Path) -> None:
    from seqnlp.checkpoint import load_run, save_weights
    from seqnlp.model import RNNClassifier

    target = copy_run(run_dir, tmp_path)
    config, tokenizer, labels, _ = load_run(target)
    config.model.hidden_size = 24  # the run's config says 16
    save_weights(RNNClassifier(config.model, tokenizer.get_vocab_size(), len(labels)), target / "model.safetensors",
                 tokenizer)
    assert_error(invoke("predict", target, "great"), 1, str(target / "model.safetensors"),
                 "does not fit the model in config.yaml")


def _other_vocabulary(target: Path) -> None:
    from seqnlp.config import TokenizerConfig
    from seqnlp.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(TokenizerConfig(kind="char", min_frequency=1), [r["text"] for r in toy_rows(50)])
    tokenizer.save(str(target / "tokenizer.json"))


def _swapped_ids(target: Path) -> None:
    """Same size, but two tokens trade ids: the embedding rows fit, their meaning does not."""
    path = target / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    first, second = [token for token, index in sorted(vocab.items(), key=lambda item: item[1]) if index >= 2][:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize("mismatch", [_other_vocabulary, _swapped_ids], ids=["other-vocabulary", "swapped-ids"])
def test_tokenizer_that_does_not_match_the_weights(run_dir: Path, tmp_path: Path, mismatch: Any) -> None:
    target = copy_run(run_dir, tmp_path)
    mismatch(target)
    before = snapshot(target)
    for args in (["predict", target, "great"], ["-q", "evaluate", target]):
        assert_error(invoke(*args), 1, f"{target / 'tokenizer.json'} is not the tokenizer these weights were trained")
    assert snapshot(target) == before


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("tokenizer.json", "{not json", "cannot be read"),
        ("labels.json", "[\"neg\", ", "is not valid JSON"),
        ("labels.json", "[\"only-one\"]", "at least two label names"),
        ("config.yaml", "model:\n  hiden_size: 16\n", "'model.hiden_size'"),
    ],
    ids=["tokenizer-not-json", "labels-not-json", "labels-single", "config-unknown-key"],
)
def test_run_file_that_cannot_be_used(run_dir: Path, tmp_path: Path, name: str, content: str, fragment: str) -> None:
    target = copy_run(run_dir, tmp_path)
    (target / name).write_text(content, encoding="utf-8")
    before = snapshot(target)
    assert_error(invoke("predict", target, "great"), 1, str(target / name), fragment)
    assert snapshot(target) == before


# --- predict ----------------------------------------------------------------------------------------------------


def test_multi_megabyte_text_is_clipped(run_dir: Path, run_bytes: dict[str, bytes], tmp_path: Path) -> None:
    from seqnlp.predict import Classifier
    from seqnlp.tokenizer import encode_texts

    base = " ".join(row["text"] for row in toy_rows(2000, seed=5))
    text = (base + " ") * (5_000_000 // len(base) + 1)  # about 5 MB on one line
    assert len(text) > 5_000_000
    path = tmp_path / "huge.txt"
    path.write_text(text + "\n", encoding="utf-8")

    result = invoke("predict", run_dir, "--input", path, "--top-k", "2")
    assert result.exit_code == 0, result.output[-2000:]
    (prediction,) = json_lines(result.stdout)

    clf = Classifier.load(run_dir, device="cpu")
    (expected,) = clf.predict([text[:100_000]], top_k=2)
    assert prediction["label"] == expected["label"]
    assert prediction["score"] == pytest.approx(expected["score"], abs=1e-6)
    for got, want in zip(prediction["top_k"], expected["top_k"]):
        assert got["label"] == want["label"] and got["score"] == pytest.approx(want["score"], abs=1e-6)
    # The work is bounded: the whole text encodes to the ids of its beginning, max_length of them.
    (ids,) = encode_texts(clf.tokenizer, [text])
    assert len(ids) == clf.config.tokenizer.max_length
    assert encode_texts(clf.tokenizer, [text[:100_000]]) == [ids]
    assert snapshot(run_dir) == run_bytes


def test_empty_input_file(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("", encoding="utf-8")
    assert_error(invoke("predict", run_dir, "--input", path), 1, f"no texts in {path}")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_input_file_without_records(run_dir: Path, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_text("\n\n" if suffix == ".jsonl" else "text\n", encoding="utf-8")  # blank lines / header only
    assert_error(invoke("predict", run_dir, "--input", path), 1, f"no texts in {path}")


# --- resume -------------------------------------------------------------------------------------------------------


def test_resume_a_run_without_checkpoints(run_dir: Path, tmp_path: Path) -> None:
    target = copy_run(run_dir, tmp_path)
    shutil.rmtree(target / "checkpoints")
    before = snapshot(target)
    assert_error(invoke("-q", "train", "--resume", target), 1, f"cannot resume {target}", "no checkpoint")
    assert snapshot(target) == before


def test_resume_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    target = tmp_path / "nowhere"
    assert_error(invoke("-q", "train", "--resume", target), 2, f"run directory {target} does not exist")
    assert not target.exists()


def _option(args: list[str], flag: str) -> Any:
    return pytest.param(args, flag, id=" ".join(args))


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        _option(["--epochs", "3"], "--epochs"),
        _option(["--cell", "gru"], "--cell"),
        _option(["--overwrite"], "--overwrite"),
        _option(["--output-dir", "elsewhere"], "--output-dir"),
        _option(["--data-files", "train=x.csv"], "--data-files"),
        _option(["--print-config"], "--print-config"),
        _option(["--set", "train.epochs=3"], "--set"),
        _option(["--config", "c.yaml"], "--config"),
        _option(["--text-column", "body"], "--text-column"),
        _option(["--seed", "0"], "--seed"),
        _option(["--unidirectional"], "--unidirectional"),
    ],
)
def test_resume_with_other_options_is_a_usage_error(run_dir: Path, tmp_path: Path, args: list[str],
                                                    flag: str) -> None:
    target = copy_run(run_dir, tmp_path)  # a copy: where the check fails, resume goes on and writes
    before = snapshot(target)
    line = assert_error(invoke("-q", "train", "--resume", target, *args), 2, "--resume", alone=False)
    assert line.rsplit("drop ", 1)[-1] == flag, line
    assert snapshot(target) == before


# --- --debug ------------------------------------------------------------------------------------------------------


@pytest.mark.slow  # a real seqnlp process
def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", [{"text": r["text"], "label": "pos"} for r in toy_rows(30)])
    args = ["-q", "train", "--data-files", f"train={path}", "--output-dir", str(tmp_path / "out")]
    plain = invoke(*args)
    assert_error(plain, 1, "single class (pos)")

    proc = subprocess.run([sys.executable, "-m", "seqnlp", "--debug", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "seqnlp.errors.DataError: label column 'label' of split 'train' has a single class (pos)" in proc.stderr
    assert proc.stdout == ""
