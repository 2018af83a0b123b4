"""scripts/audit_timing.py: one row per config, every stage timed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import load_script, toy_rows, write_csv

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_timing.py"


def test_one_row_per_config_with_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    files = {"train": str(write_csv(tmp_path / "train.csv", toy_rows(80))),
             "test": str(write_csv(tmp_path / "test.csv", toy_rows(20, seed=1)))}
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({"data": {"data_files": files}, "tokenizer": {"min_frequency": 1}}))
    monkeypatch.setattr(sys, "argv", ["audit_timing.py", str(config), "--repeats", "1"])
    load_script("audit_timing").main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("| config | examples | load s (CPU s) | checks s (CPU s) | train adds s (CPU s) "
                        "| audit s (CPU s) |")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[0] == str(config) and cells[1] == "100"
    for cell in cells[2:]:
        wall, cpu = cell.rstrip(")").split(" (")
        assert float(wall) > 0 and float(cpu) > 0
