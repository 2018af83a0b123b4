"""``seqnlp audit`` and ``seqnlp push`` on the command line: Markdown or JSON out, ``--strict`` as a CI gate,
``--to-dir`` as an offline push, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from seqnlp.cli import main
from tests.helpers import toy_rows, write_csv

REPO_ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["-q", *args])


def data_args(tmp_path: Path, leak: bool) -> list[str]:
    """Toy train and test files whose texts are all different (each is numbered), but for one planted leak."""
    train = [{**row, "text": f"{row['text']} train{i}"} for i, row in enumerate(toy_rows(60, seed=0))]
    test = [{**row, "text": f"{row['text']} test{i}"} for i, row in enumerate(toy_rows(20, seed=1))]
    if leak:
        test[0] = dict(train[5])
    files = {"train": write_csv(tmp_path / "train.csv", train), "test": write_csv(tmp_path / "test.csv", test)}
    return [arg for split, path in files.items() for arg in ("--data-files", f"{split}={path}")]


@pytest.mark.parametrize("command", ["audit", "push"])
def test_help_shows_examples(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.stdout and f"seqnlp {command} " in result.stdout


def test_audit_prints_the_markdown_report(tmp_path: Path) -> None:
    result = invoke("audit", *data_args(tmp_path, leak=True), "--set", "tokenizer.min_frequency=1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Data audit: data files train=")
    assert "## Leakage across splits" in result.stdout and "## Majority-class baseline" in result.stdout


def test_strict_fails_on_leakage_after_the_report(tmp_path: Path) -> None:
    result = invoke("audit", *data_args(tmp_path, leak=True), "--strict", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert any(leak["rows"] for leak in report["scan"]["normalized"]["leaks"])
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "leakage across splits" in errors[0] and "(--strict)" in errors[0]


def test_strict_passes_clean_data(tmp_path: Path) -> None:
    args = data_args(tmp_path, leak=False)
    result = invoke("audit", *args, "--strict", "--json")
    assert result.exit_code == 0, result.output
    assert not any(leak["rows"] for leak in json.loads(result.stdout)["scan"]["normalized"]["leaks"])


def test_audit_config_errors_are_one_line(tmp_path: Path) -> None:
    result = invoke("audit", "--set", "tokenizer.kind=nope")
    assert result.exit_code == 2 and result.stderr.startswith("Error: tokenizer.kind")


def test_push_to_dir(toy_run: Path, tmp_path: Path) -> None:
    result = invoke("push", str(toy_run), "someone/toy", "--to-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    count = len([p for p in (tmp_path / "out").rglob("*") if p.is_file()])
    assert result.stdout.strip() == f"{count} files -> {tmp_path / 'out'}"


def test_push_offline_is_one_line(toy_run: Path) -> None:
    result = invoke("push", str(toy_run), "someone/toy")  # tests/conftest.py turns the Hub off
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "offline mode is on" in result.stderr


@pytest.mark.slow  # a real seqnlp process
def test_help_does_not_import_torch_or_datasets() -> None:
    code = ("import sys\nfrom seqnlp.cli import main\n"
            "for args in (['audit', '--help'], ['push', '--help']):\n"
            "    try:\n        main(args, standalone_mode=False)\n    except SystemExit:\n        pass\n"
            "heavy = [m for m in ('torch', 'datasets', 'huggingface_hub') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
