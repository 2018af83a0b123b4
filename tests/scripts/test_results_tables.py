"""scripts/results_tables.py: a record keeps what a command wrote; a table is regenerated from records, never typed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "results_tables.py"

RESULTS = {"best_epoch": 2, "test": {"split": "test", "carved": "carved from train, 10%", "num_examples": 557,
                                     "accuracy": 0.98384, "macro_f1": 0.96512, "auroc": 0.98871},
           "validation": {"split": "validation", "num_examples": 557, "accuracy": 0.9, "macro_f1": 0.9, "auroc": None},
           "baseline": {"description": "TF-IDF words + linear SVM (C=0.5)", "seconds": 1.4,
                        "validation": {"accuracy": 0.95, "macro_f1": 0.9}, "test": {"accuracy": 0.9712, "macro_f1": 0.9}}}


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location("seqnlp_results_tables_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "RECORDS", tmp_path / "docs" / "results")
    return module


def _fake_run(run_dir: Path) -> list[str]:
    """A command that writes a run directory's results.json and metrics.jsonl, as seqnlp train does."""
    code = (f"import json, pathlib; d = pathlib.Path({str(run_dir)!r}); d.mkdir(parents=True);"
            f"(d / 'results.json').write_text(json.dumps({RESULTS!r}));"
            "(d / 'metrics.jsonl').write_text('{}\\n{}\\n{}\\n')")
    return [sys.executable, "-c", code]


def test_record_keeps_the_results_and_the_command_as_typed(script: Any, tmp_path: Path) -> None:
    entry = script.record("toy", "Toy data", tmp_path / "run", _fake_run(tmp_path / "run"), note="A note.")
    saved = json.loads((tmp_path / "docs" / "results" / "toy.json").read_text())
    assert saved == entry and saved["results"] == RESULTS and saved["epochs_run"] == 3
    assert saved["command"].startswith(f"{sys.executable} -c ")
    assert script.shown_command(["taskset", "-c", "1", "/x/.venv/bin/python", "-m", "seqnlp", "-q", "train"]) == [
        "taskset", "-c", "1", "seqnlp", "-q", "train"]


def test_a_failing_command_writes_no_record(script: Any, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="exited with 3"):
        script.record("bad", "Bad", tmp_path, [sys.executable, "-c", "raise SystemExit(3)"])
    assert not (tmp_path / "docs" / "results" / "bad.json").exists()


def test_tables_are_regenerated_between_markers_and_checked(script: Any, tmp_path: Path) -> None:
    script.record("toy", "Toy data", tmp_path / "run", _fake_run(tmp_path / "run"), note="A note.")
    page = tmp_path / "README.md"
    page.write_text("# x\n\n<!-- results-table: toy -->\nstale 99.9%\n<!-- /results-table -->\n\nafter\n")
    (tmp_path / "docs" / "page.md").write_text("no tables here\n")
    assert script.main(["--check"]) == 1  # the stale table is found, and left alone
    assert "stale 99.9%" in page.read_text()
    assert script.main([]) == 0
    text = page.read_text()
    assert "stale" not in text and text.endswith("<!-- /results-table -->\n\nafter\n")
    row = "test, carved from train, 10% (557): accuracy **98.38%**, macro-F1 0.965, AUROC 0.989 (best epoch 2 of 3)"
    assert row in text and "| Toy data |" in text and "A note." in text
    assert "| test: accuracy 97.12%, macro-F1 0.900 (TF-IDF words + linear SVM (C=0.5), 1.4 s) |" in text
    assert script.main(["--check"]) == 0


def test_a_record_without_a_baseline_says_so(script: Any) -> None:
    entry = {"results": {key: value for key, value in RESULTS.items() if key != "baseline"}}
    assert script._baseline_cell(entry) == "not recorded (run with --baseline)"


def test_a_table_naming_a_missing_record_fails(script: Any, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("<!-- results-table: nothing -->\n<!-- /results-table -->\n")
    (tmp_path / "docs").mkdir()
    with pytest.raises(SystemExit, match="no record docs/results/nothing.json"):
        script.main(["--check"])
