"""The comparison report from hand-made run records: statistics, the Markdown table, and every file, with and
without matplotlib."""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from seqnlp.compare import RunRecord
from seqnlp.config import Config
from seqnlp.compare.report import markdown_table, point_label, summarize, write_report


def record(cell: str, seed: int, accuracy: float, memory: float | None = None, **values: Any) -> RunRecord:
    speed = 1000.0 * (1 + seed)
    return RunRecord(
        point=f"p-{cell}", values={"model.cell": cell, **values}, seed=seed, run_dir=f"runs/{cell}/{seed}",
        split="validation", accuracy=accuracy, macro_f1=accuracy - 0.1, validation_accuracy=accuracy,
        validation_macro_f1=accuracy - 0.1, num_parameters=1234, encoder_parameters=200, epochs=2, best_epoch=seed,
        train_seconds_per_epoch=0.5, train_tokens_per_s=speed, inference_tokens_per_s=2 * speed,
        peak_memory_mb=memory, baseline_memory_mb=None if memory is None else memory - 50, peak_gpu_memory_mb=None,
        curves=[{"epoch": e, "train_loss": 1.0 / e, "validation_loss": 1.1 / e, "validation_accuracy": accuracy,
                 "validation_macro_f1": accuracy - 0.1} for e in (1, 2)],
    )


RECORDS = [record("rnn", 1, 0.5, 400.0), record("rnn", 2, 0.7, 410.0), record("gru", 1, 0.9, 420.0),
           record("gru", 2, 0.9, 430.0)]


def test_point_label_is_the_value_or_key_value_pairs() -> None:
    assert point_label({"model.cell": "gru"}) == "gru"
    assert point_label({"model.cell": "gru", "model.hidden_size": 64}) == "cell=gru, hidden_size=64"


def test_summarize_gives_mean_sample_std_min_max_per_point() -> None:
    rnn, gru = summarize(RECORDS)
    assert rnn["point"] == "p-rnn" and rnn["seeds"] == [1, 2] and rnn["label"] == "rnn"
    assert rnn["measures"]["accuracy"] == pytest.approx({"mean": 0.6, "std": 0.1414213, "min": 0.5, "max": 0.7})
    assert gru["measures"]["accuracy"]["std"] == 0.0
    assert rnn["measures"]["best_epoch"]["mean"] == 1.5
    assert rnn["measures"]["peak_gpu_memory_mb"] is None  # not measured: None, not 0


def test_one_seed_has_zero_spread() -> None:
    (only,) = summarize([record("lstm", 3, 0.8)])
    assert only["measures"]["accuracy"] == {"mean": 0.8, "std": 0.0, "min": 0.8, "max": 0.8}
    assert only["measures"]["peak_memory_mb"] is None


def test_markdown_table_formats_mean_and_spread_and_drops_unmeasured_columns() -> None:
    table = markdown_table(summarize(RECORDS))
    header, rule, rnn, gru = table.splitlines()
    assert header == ("| cell | validation accuracy | validation macro-F1 | params | encoder params | train s/epoch "
                      "| train tok/s | infer tok/s | peak RSS MB | epochs to best |")
    assert rule.count("---") == 10
    assert rnn.startswith("| rnn | 0.600 ± 0.141 | 0.500 ± 0.141 | 1,234 | 200 | 0.50 ± 0.00 | 2,500 ± 707 |")
    assert rnn.endswith("| 405 ± 7 | 1.5 ± 0.7 |")
    assert "peak GPU MB" not in header


def test_markdown_table_without_spread_for_one_seed() -> None:
    row = markdown_table(summarize([record("lstm", 3, 0.8)])).splitlines()[2]
    assert "±" not in row and "n/a" not in row  # peak memory is a column only when some run measured it


def test_markdown_table_one_column_per_grid_key() -> None:
    records = [record("rnn", 1, 0.5, hidden_size=8), record("rnn", 1, 0.6, hidden_size=16)]
    records[1].point = "p-rnn-16"
    header, _, first, second = markdown_table(summarize(records)).splitlines()
    assert header.startswith("| cell | hidden_size | validation accuracy |")
    assert first.startswith("| rnn | 8 | 0.500 |") and second.startswith("| rnn | 16 | 0.600 |")


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    files = write_report(tmp_path, RECORDS, Config(), {"model.cell": ["rnn", "gru"]}, [1, 2], appendix="## more")
    assert {"report.md", "results.csv", "results.json", "runs.csv", "curves.csv"} <= set(files)
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["settings"]["seeds"] == [1, 2] and len(results["runs"]) == 4
    assert results["settings"]["base_config"]["model"]["cell"] == "lstm"
    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["model.cell"] for r in rows] == ["rnn", "gru"]
    assert float(rows[0]["accuracy_mean"]) == pytest.approx(0.6)
    assert rows[0]["peak_gpu_memory_mb_mean"] == ""  # not measured: an empty cell
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# seqnlp compare: 2 settings x 2 seeds")
    assert "365 MB of it is the process after its imports" in report  # the mean baseline: (350 + ... + 380) / 4
    assert report.rstrip().endswith("## more")


def test_write_report_writes_one_self_contained_html_page(tmp_path: Path) -> None:
    """report.html in the form of `seqnlp report`: the table, the curves inline, and every run."""
    run = tmp_path / "runs" / "gru"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"validation": {"calibration": {
        "temperature": 1.5, "before": {"ece": 0.08}, "after": {"ece": 0.02}}}}), encoding="utf-8")
    records = [*RECORDS[:3], record("gru", 2, 0.9, 430.0)]
    records[3].run_dir = str(run)
    files = write_report(tmp_path, records, Config(), {"model.cell": ["rnn", "gru"]}, [1, 2], appendix="## more")
    document = files["report.html"].read_text(encoding="utf-8")
    assert document.startswith("<!DOCTYPE html>") and "<style>" in document and "<script" not in document
    assert "<title>seqnlp compare: 2 settings x 2 seeds</title>" in document
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", document)
    assert links and all(link.startswith("data:") for link in links)  # nothing fetched from elsewhere
    assert document.count('src="data:image/png;base64,') == 1  # the validation curves
    assert "<td class=\"name\">0.600 ± 0.141</td>" in document  # the comparison, as report.md has it
    rows = re.findall(r"<tr>(.*?)</tr>", document[document.index('<section id="runs">'):], re.S)
    assert len(rows) == 5 and rows[1].count("n/a") == 3  # a run without calibration
    assert "<td>0.0800</td><td>0.0200</td><td>1.5000</td>" in rows[4]
    assert "<pre>## more</pre>" in document


def test_write_report_without_matplotlib_still_writes_the_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with caplog.at_level(logging.INFO, logger="seqnlp"):
        files = write_report(tmp_path, RECORDS, Config(), {"model.cell": ["rnn", "gru"]}, [1, 2])
    assert "validation_curves.png" not in files and not (tmp_path / "validation_curves.png").exists()
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "curves.csv").is_file()
    assert "![validation curves]" not in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "data:image" not in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "pip install 'seqnlp[plots]'" in caplog.text


def test_report_says_when_memory_was_not_measured(tmp_path: Path) -> None:
    write_report(tmp_path, [record("rnn", 1, 0.5), record("rnn", 2, 0.6)], Config(), {"model.cell": ["rnn"]}, [1, 2])
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "- peak RSS MB: not measured, because the runs shared one process" in report
    assert "peak GPU MB" not in report  # no run measured it: neither a column nor a note
