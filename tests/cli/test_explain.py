"""``seqnlp explain`` and ``seqnlp report`` through click's CliRunner, on the shared toy run."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from seqnlp.cli import main


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def test_explain_prints_the_tokens_and_the_checks(toy_run: Path) -> None:
    result = invoke("explain", str(toy_run), "the film was great", "awful", "--no-color")
    assert result.exit_code == 0, result.output
    first, second = result.stdout.split("\n\n")
    assert first.splitlines()[0].startswith("the[") and "great[+" in first
    assert "pos (p=" in first and "gap" in first and "Spearman" in first
    assert second.splitlines()[0].startswith("awful[+") and "neg (p=" in second
    colored = invoke("explain", str(toy_run), "great", "--color")
    assert "\x1b[48;2;" in colored.stdout


def test_explain_json_and_html(toy_run: Path, tmp_path: Path) -> None:
    page = tmp_path / "why.html"
    result = invoke("explain", str(toy_run), "the plot was great", "--json", "--steps", "8", "--label", "neg",
                    "--html", str(page))
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    data = json.loads(line)
    assert data["label"] == "neg" and data["steps"] == 8 and data["tokens"] == ["the", "plot", "was", "great"]
    assert page.is_file() and f"HTML: {page}" in result.stderr
    document = page.read_text(encoding="utf-8")
    assert "<h3>Text 1: neg</h3>" in document and "<th>Integrated Gradients</th>" in document


def test_explain_reads_texts_from_a_file(toy_run: Path, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("great film\nawful film\n", encoding="utf-8")
    result = invoke("explain", str(toy_run), "--input", str(texts), "--json", "--no-occlusion")
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["great film", "awful film"]
    assert all(json.loads(line)["occlusion"] is None for line in result.stdout.splitlines())


def test_explain_usage_errors(toy_run: Path) -> None:
    assert invoke("explain", str(toy_run)).exit_code == 2
    bad = invoke("explain", str(toy_run), "a", "--label", "spam")
    assert bad.exit_code == 1 and "Error: label 'spam' is not one of the run's labels: neg, pos" in bad.output
    assert invoke("explain", str(toy_run), "a", "--steps", "0").exit_code == 2


def test_report_writes_the_page_and_says_where(toy_run: Path, tmp_path: Path) -> None:
    page = tmp_path / "out" / "report.html"
    result = invoke("-q", "report", str(toy_run), "-o", str(page), "--examples", "2", "--steps", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Report: {page}\n" and page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    missing = invoke("report", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "does not exist" in missing.output  # a usage error
