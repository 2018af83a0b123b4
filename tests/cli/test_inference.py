"""``seqnlp predict`` as a Unix filter (issue 14, item 15): a lone ``-`` is standard input, and empty standard input
prints nothing and succeeds, so a pipeline over an empty shard does not fail."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from seqnlp.cli import main
from seqnlp.predict import Classifier


def invoke(*args: object, input: str | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def test_a_lone_dash_reads_standard_input(toy_run: Path) -> None:
    texts = ["this film was great", "awful", "", "great great"]
    result = invoke("predict", toy_run, "-", input="\n".join(texts) + "\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == Classifier.load(toy_run).predict(texts)


def test_a_dash_among_texts_is_a_text(toy_run: Path) -> None:
    result = invoke("predict", toy_run, "-", "great", input="ignored\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == Classifier.load(toy_run).predict(["-", "great"])


def test_empty_standard_input_prints_nothing_and_succeeds(toy_run: Path) -> None:
    for args in (["-"], ["-i", "-"], ["-i", "-", "--format", "jsonl"], ["-i", "-", "--format", "csv"]):
        result = invoke("predict", toy_run, *args, input="")
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", ""), (args, result.output)


def test_an_empty_file_is_still_an_error(toy_run: Path, tmp_path: Path) -> None:
    """A file named on purpose that holds no text is a mistake; it said "column 'text' not found; columns: "."""
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    result = invoke("predict", toy_run, "--input", path)
    assert (result.exit_code, result.stderr) == (1, f"Error: no texts in {path}\n")
