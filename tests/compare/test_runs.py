"""compare: grid expansion and parsing, one comparison of every cell on a short synthetic task (every artifact,
parameter counts against PyTorch's formula, every cell learns), and the isolated-process protocol."""

from __future__ import annotations

import csv
import importlib.util
import json
import signal
import statistics
import threading
import time
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from seqnlp.compare import runs as compare_module
from seqnlp.checkpoint import REQUIRED_FILES, RESULTS_FILE
from seqnlp.compare import CompareResult, compare, parse_grid
from seqnlp.compare.runs import child_error, expand_grid, isolated_run, run_configs
from seqnlp.config import CELLS, Config, load_config
from seqnlp.errors import CheckpointError, ConfigError, DataError, SeqnlpError, TrainingInterrupted
from seqnlp.tokenizer import load_tokenizer

GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per layer and direction, as PyTorch stacks them
EMBED, HIDDEN = 8, 16
SHORT_TASK = "synthetic:marker?distance=2&prefix=3&vocab=6&train=300&validation=60&test=60"
SEEDS = [1, 2]


def short_task_config(**updates: Any) -> Config:
    """Every cell learns the marker at distance 2 to (nearly) 100% in three epochs with this config."""
    base = {
        "data.dataset": SHORT_TASK,
        "tokenizer.min_frequency": 1,
        "model.embedding_dim": EMBED,
        "model.hidden_size": HIDDEN,
        "model.bidirectional": False,
        "model.pooling": "last",  # the marker must be carried to the end: no pooling shortcut
        "model.dropout": 0.0,
        "model.embedding_dropout": 0.0,
        "train.lr": 0.02,
        "train.epochs": 3,
        "train.batch_size": 32,
        "train.patience": None,
        "train.device": "cpu",
        "train.num_threads": 1,
    }
    base.update(updates)
    return load_config(updates=base)


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> CompareResult:
    """Every cell x two seeds on the short marker task, in this process."""
    before = torch.get_num_threads()
    try:
        return compare(short_task_config(), seeds=SEEDS, output_dir=tmp_path_factory.mktemp("compare") / "report",
                       isolate=False, progress=False)
    finally:
        torch.set_num_threads(before)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- grid ---------------------------------------------------------------------------------------------------


def test_expand_grid_is_the_product_in_order_with_unique_names() -> None:
    points = expand_grid({"model.cell": ["rnn", "gru"], "model.hidden_size": [8, 16]})
    assert [p.values for p in points] == [
        {"model.cell": "rnn", "model.hidden_size": 8}, {"model.cell": "rnn", "model.hidden_size": 16},
        {"model.cell": "gru", "model.hidden_size": 8}, {"model.cell": "gru", "model.hidden_size": 16},
    ]
    assert [p.name for p in points] == ["00-cell-rnn_hidden_size-8", "01-cell-rnn_hidden_size-16",
                                        "02-cell-gru_hidden_size-8", "03-cell-gru_hidden_size-16"]


def test_point_names_are_safe_directory_names() -> None:
    (point,) = expand_grid({"data.dataset": ["synthetic:marker?distance=5&prefix=2"]})
    assert point.name == "00-dataset-synthetic-marker-distance=5-prefix=2"


@pytest.mark.parametrize("grid, message", [
    ({"model.cell": []}, "has no values"),
    ({"model.cell": ["rnn", "rnn"]}, "repeats a value"),
])
def test_expand_grid_rejects_empty_and_repeated_values(grid: dict[str, list[Any]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        expand_grid(grid)


def test_parse_grid_types_values_as_the_config_does() -> None:
    grid = parse_grid(["model.hidden_size=64, 128", "model.bidirectional=true,false", "train.lr=1e-3"])
    assert grid == {"model.hidden_size": [64, 128], "model.bidirectional": [True, False], "train.lr": [0.001]}


@pytest.mark.parametrize("item, fragments", [
    ("model.hidden=1,2", ["unknown config key 'model.hidden'", "hidden_size"]),
    ("model.pooling=max,sum", ["model.pooling", "'sum'", "last, mean, max, attention"]),
    ("model.cell", ["not of the form"]),
    ("model.cell=", ["not of the form"]),
])
def test_parse_grid_errors_name_the_key_and_the_choices(item: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_grid([item])
    for fragment in fragments:
        assert fragment in str(info.value)


def test_run_configs_give_every_point_and_seed_its_own_run_dir(tmp_path: Path) -> None:
    configs = run_configs(short_task_config(), expand_grid({"model.cell": ["rnn", "gru"]}), [3, 4], tmp_path)
    assert [(c.model.cell, c.seed) for c in configs] == [("rnn", 3), ("rnn", 4), ("gru", 3), ("gru", 4)]
    assert [Path(c.output_dir).relative_to(tmp_path).as_posix() for c in configs] == [  # type: ignore[arg-type]
        "runs/00-cell-rnn/seed-3", "runs/00-cell-rnn/seed-4", "runs/01-cell-gru/seed-3", "runs/01-cell-gru/seed-4"]
    assert all(c.model.hidden_size == HIDDEN and c.train.epochs == 3 for c in configs)  # the shared budget


@pytest.mark.parametrize("grid, seeds, message", [
    ({"seed": [1, 2]}, [1], "set by compare"),
    ({"model.cell": ["rnn"]}, [], "at least one seed"),
    ({"model.cell": ["rnn"]}, [1, 1], "seeds repeat"),
    ({"model.hidden_size": [0]}, [1], "model.hidden_size: 0 must be >= 1"),
])
def test_run_configs_reject_bad_grids_before_training(tmp_path: Path, grid: dict[str, list[Any]],
                                                      seeds: list[int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_configs(short_task_config(), expand_grid(grid), seeds, tmp_path)


# --- one comparison of every cell ---------------------------------------------------------------------------


def test_the_grid_runs_every_cell_and_seed(comparison: CompareResult) -> None:
    runs = [(r.values["model.cell"], r.seed) for r in comparison.runs]
    assert runs == [(cell, seed) for cell in CELLS for seed in SEEDS]
    for record in comparison.runs:
        run_dir = Path(record.run_dir)
        assert run_dir.parent.parent == comparison.report_dir / "runs"
        assert all((run_dir / name).is_file() for name in (*REQUIRED_FILES, RESULTS_FILE))


def test_the_report_directory_holds_every_artifact(comparison: CompareResult) -> None:
    report = comparison.report_dir
    expected = {"report.md", "results.csv", "results.json", "runs.csv", "curves.csv"}
    assert expected <= set(comparison.files)
    assert all((report / name).is_file() for name in expected)
    if importlib.util.find_spec("matplotlib") is None:
        assert not (report / "validation_curves.png").exists()
    else:
        assert (report / "validation_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "![validation curves](validation_curves.png)" in (report / "report.md").read_text(encoding="utf-8")


def test_every_cell_learns_the_marker_at_a_short_distance(comparison: CompareResult) -> None:
    for record in comparison.runs:
        assert record.split == "test"
        assert record.accuracy >= 0.95, (record.values, record.seed, record.accuracy)


def test_parameter_counts_equal_pytorchs_formula(comparison: CompareResult) -> None:
    for record in comparison.runs:
        cell = record.values["model.cell"]
        vocab = load_tokenizer(Path(record.run_dir) / "tokenizer.json").get_vocab_size()
        encoder = GATES[cell] * (HIDDEN * (EMBED + HIDDEN) + 2 * HIDDEN)  # one layer, one direction
        assert record.encoder_parameters == encoder
        assert record.num_parameters == vocab * EMBED + encoder + (HIDDEN * 2 + 2)  # embedding, encoder, head


def test_measures_are_taken_per_run(comparison: CompareResult) -> None:
    for record in comparison.runs:
        assert record.epochs == 3 and 1 <= record.best_epoch <= 3
        assert record.train_seconds_per_epoch > 0
        assert record.train_tokens_per_s > 0 and record.inference_tokens_per_s > 0
        assert record.peak_memory_mb is None and record.peak_gpu_memory_mb is None  # one process, CPU
        assert [c["epoch"] for c in record.curves] == [1, 2, 3]


def test_results_hold_mean_and_sample_spread_over_seeds(comparison: CompareResult) -> None:
    results = json.loads((comparison.report_dir / "results.json").read_text(encoding="utf-8"))
    assert results["settings"]["seeds"] == SEEDS
    assert results["settings"]["grid"] == {"model.cell": list(CELLS)}
    assert [p["values"]["model.cell"] for p in results["points"]] == list(CELLS)
    for point in results["points"]:
        runs = [r for r in comparison.runs if r.point == point["point"]]
        speeds = [r.train_tokens_per_s for r in runs]
        assert point["measures"]["train_tokens_per_s"]["mean"] == pytest.approx(statistics.fmean(speeds))
        assert point["measures"]["train_tokens_per_s"]["std"] == pytest.approx(statistics.stdev(speeds))
        assert point["measures"]["peak_memory_mb"] is None
    rows = read_csv(comparison.report_dir / "results.csv")
    assert [row["model.cell"] for row in rows] == list(CELLS)
    assert {"accuracy_mean", "accuracy_std", "num_parameters_mean", "inference_tokens_per_s_mean"} <= set(rows[0])


def test_runs_and_curves_csv_have_a_row_per_run_and_epoch(comparison: CompareResult) -> None:
    runs = read_csv(comparison.report_dir / "runs.csv")
    assert [(r["model.cell"], int(r["seed"])) for r in runs] == [(c, s) for c in CELLS for s in SEEDS]
    curves = read_csv(comparison.report_dir / "curves.csv")
    assert len(curves) == sum(r.epochs for r in comparison.runs)
    assert {"label", "seed", "epoch", "validation_accuracy", "validation_loss"} <= set(curves[0])


def test_the_markdown_table_has_a_row_per_cell(comparison: CompareResult) -> None:
    lines = comparison.table.splitlines()
    assert lines[0].startswith("| cell | test accuracy | test macro-F1 | params | encoder params |")
    assert "peak RSS MB" not in lines[0]  # not measured in one process: the column is left out
    assert [line.split("|")[1].strip() for line in lines[2:]] == list(CELLS)
    assert comparison.table in (comparison.report_dir / "report.md").read_text(encoding="utf-8")


def test_a_second_comparison_into_the_same_directory_needs_overwrite(comparison: CompareResult) -> None:
    with pytest.raises(CheckpointError, match="already holds a comparison"):
        compare(short_task_config(), output_dir=comparison.report_dir, isolate=False, progress=False)


# --- isolated runs ------------------------------------------------------------------------------------------


def test_isolated_run_measures_peak_memory_and_writes_json(tmp_path: Path) -> None:
    config = short_task_config(**{"train.epochs": 1, "output_dir": str(tmp_path / "run")})
    config.save(tmp_path / "config.yaml")
    isolated_run(str(tmp_path / "config.yaml"), str(tmp_path / "out.json"), False, False, 30)
    outcome = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert outcome["peak_memory_mb"] >= outcome["baseline_memory_mb"] > 0
    assert outcome["epochs"] == 1 and Path(outcome["run_dir"]) == tmp_path / "run"


def test_isolated_run_reports_a_seqnlp_error_as_json(tmp_path: Path) -> None:
    config = short_task_config(**{"data.dataset": str(tmp_path / "missing.csv"), "output_dir": str(tmp_path / "r")})
    config.save(tmp_path / "config.yaml")
    isolated_run(str(tmp_path / "config.yaml"), str(tmp_path / "out.json"), False, False, 30)
    outcome = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert outcome["error_type"] == "DataError" and "missing.csv" in outcome["error"]


@pytest.mark.slow  # a real Python subprocess
def test_an_isolated_run_goes_through_a_python_subprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's half of the protocol: the child command is run (here by exec, in this process, to keep the
    test fast) and its JSON becomes the run's measurements; the child's error comes back as the same error."""
    calls: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> subprocess.CompletedProcess:
        calls.append(command)
        assert command[1] == "-c"
        exec(command[2], {})  # noqa: S102 - the code string compare built
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(compare_module.subprocess, "run", fake_run)
    result = compare(short_task_config(**{"train.epochs": 1}), grid={"model.cell": ["gru"]},
                     output_dir=tmp_path / "report", progress=False)
    assert len(calls) == 1
    (record,) = result.runs
    assert record.peak_memory_mb is not None and record.peak_memory_mb > 0
    assert "peak RSS MB" in result.table

    broken = short_task_config(**{"data.dataset": str(tmp_path / "missing.csv")})
    with pytest.raises(DataError, match="missing.csv"):
        compare(broken, grid={"model.cell": ["rnn"]}, output_dir=tmp_path / "broken", progress=False)


def test_a_child_that_dies_without_json_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compare_module.subprocess, "run",
                        lambda command, check: subprocess.CompletedProcess(command, -9))
    with pytest.raises(Exception, match=r"failed \(exit code -9\)"):
        compare(short_task_config(), grid={"model.cell": ["rnn"]}, output_dir=tmp_path / "report", progress=False)


def test_a_childs_error_that_takes_more_than_a_message_comes_back_with_its_exit_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TrainingInterrupted takes a signal and a run directory, not a message: it comes back as a SeqnlpError with
    the child's message and exit code (130 for SIGINT), which the CLI exits with."""
    def interrupted(config: Config, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise TrainingInterrupted(signal.SIGINT, config.output_dir)

    def fake_run(command: list[str], check: bool) -> subprocess.CompletedProcess:
        exec(command[2], {})  # noqa: S102 - the code string compare built; measure_run is patched below
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(compare_module, "measure_run", interrupted)
    monkeypatch.setattr(compare_module.subprocess, "run", fake_run)
    with pytest.raises(SeqnlpError) as info:
        compare(short_task_config(), grid={"model.cell": ["rnn"]}, output_dir=tmp_path / "report", progress=False)
    assert info.value.exit_code == 130
    assert str(info.value).startswith("interrupted by SIGINT; checkpoint saved, continue with: seqnlp train --resume")


@pytest.mark.parametrize("outcome, kind, exit_code", [
    ({"error": "bad key", "error_type": "ConfigError", "exit_code": 2}, ConfigError, 2),
    ({"error": "no such file", "error_type": "DataError"}, DataError, 1),  # written before exit codes were
    ({"error": "stopped", "error_type": "TrainingInterrupted", "exit_code": 143}, SeqnlpError, 143),
    ({"error": "odd", "error_type": "ValueError", "exit_code": 1}, SeqnlpError, 1),  # not a seqnlp error class
])
def test_child_errors_keep_their_class_when_they_can_and_their_message_and_exit_code(
        outcome: dict[str, Any], kind: type, exit_code: int) -> None:
    error = child_error(outcome)
    assert type(error) is kind and str(error) == outcome["error"] and error.exit_code == exit_code


# --- runs side by side ----------------------------------------------------------------------------------------


def test_runs_side_by_side_each_get_a_share_of_the_cpus_and_come_back_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two jobs: the isolated runs start in two threads (each waits on its own process), each with its share of the
    CPUs as a fixed thread count; records keep the grid's order and report.md says how the runs ran."""
    from seqnlp.compare import jobs as jobs_module

    seen: list[tuple[str, Any, str]] = []

    def fake_isolated(config: Config, overwrite: bool, progress: bool) -> dict[str, Any]:
        seen.append((str(config.model.cell), config.train.num_threads, threading.current_thread().name))
        assert progress is False  # two runs' bars would garble each other
        time.sleep(0.05 if config.model.cell == "rnn" else 0.0)  # the first run finishes last
        return {"run_dir": config.output_dir, "split": "test", "accuracy": 1.0, "macro_f1": 1.0,
                "validation_accuracy": 1.0, "validation_macro_f1": 1.0, "num_parameters": 10,
                "encoder_parameters": 5, "epochs": 1, "best_epoch": 1, "train_seconds_per_epoch": 1.0,
                "train_tokens_per_s": 100.0, "inference_tokens_per_s": 100.0, "peak_memory_mb": 1.0,
                "baseline_memory_mb": 1.0, "peak_gpu_memory_mb": None, "curves": []}

    monkeypatch.setattr(jobs_module, "usable_cpus", lambda: 2)
    monkeypatch.setattr(compare_module, "_measure_isolated", fake_isolated)
    result = compare(short_task_config(**{"train.num_threads": "auto"}), output_dir=tmp_path / "report",
                     progress=True, jobs="auto")
    assert [r.values["model.cell"] for r in result.runs] == list(CELLS)
    assert {threads for _, threads, _ in seen} == {1}
    assert all(name.startswith("seqnlp-compare") for _, _, name in seen)
    assert "2 runs trained at a time" in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
