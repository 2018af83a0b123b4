"""scripts/recurrence_paths.py: the tables it prints have one row per measurement and sane numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "recurrence_paths.py"


paths = load_script("recurrence_paths")


def number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("x%"))


def is_measurement(cell: str) -> bool:
    """A printed speed: a finite number >= 0. Its size depends on the machine, so no test asserts it."""
    value = number(cell)
    return value >= 0 and value != float("inf")


def test_path_rows_time_each_path_on_real_tokens() -> None:
    rows = paths.path_rows(["gru"], ["fp32"], budget_s=0.0, length_ranges=((3, 6),))
    assert len(rows) == 1
    cell, precision, lengths, padding, packed, masked, dense, ratio = rows[0]
    assert (cell, precision, lengths) == ("gru", "fp32", "3-6")
    assert 0 < number(padding) < 100  # lengths 3..6 padded to the longest
    assert all(is_measurement(c) for c in (packed, masked, dense, ratio))


def test_gemm_rows_report_both_precisions_and_onednn_for_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "GEMM_SHAPES", ((128, 128, 128),))  # 4 MFLOP a call: quick on any machine
    rows = paths.gemm_rows(["fp32", "bf16"], budget_s=0.0)
    kernels = [(r[0], r[1]) for r in rows]
    assert ("fp32", "a @ b") in kernels and ("bf16", "a @ b") in kernels
    assert ("fp32", "oneDNN linear") in kernels or not torch.backends.mkldnn.is_available()
    assert all(is_measurement(r[4]) for r in rows)


def test_table_is_markdown_with_a_row_per_entry() -> None:
    lines = paths.table(["a", "b"], [["1", "2"], ["3", "4"]])
    assert lines == ["| a | b |", "| --- | --- |", "| 1 | 2 |", "| 3 | 4 |"]
