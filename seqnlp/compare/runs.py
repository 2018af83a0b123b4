"""Compare cells (and other settings) on the same data, tokenizer, budget and seeds, with ``seqnlp.training.train``.

A grid maps dotted config keys to the values to try (``{"model.cell": ["rnn", "lstm", "gru"]}``); every point
of the grid is trained once per seed, each into its own run directory, by the ordinary training code. What
changes between runs is the grid point and the seed; everything else (data, tokenizer settings, epochs, early
stopping) comes from the one base config. Each run is measured:

- accuracy and macro-F1 of the best epoch's weights (test split when there is one, else validation),
- parameter counts (the whole model, and the recurrent encoder alone),
- training seconds per epoch and tokens per second (real tokens, padding excluded), epochs to the best epoch,
- inference tokens per second: ``Classifier.logits`` over the validation texts, timed once after a warm-up,
- peak memory: with ``isolate=True`` each run trains in a fresh Python process, and that process's peak
  resident set size (``getrusage`` ``ru_maxrss``) at the end of ``train()`` is reported: the interpreter and
  libraries included, since that is what the machine must hold. Its size just before ``train()`` (after the
  imports) is kept beside it as ``baseline_memory_mb``. The difference is not the model's own footprint:
  torch's first backward pass alone allocates tens of MB once per process. In one process a peak cannot be
  attributed to a run, so ``isolate=False`` reports no memory. On CUDA, ``torch.cuda.max_memory_allocated``
  measures the tensors exactly.

``compare()`` runs the grid and has ``seqnlp.compare.report`` write the tables and plots.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from seqnlp import errors
from seqnlp.compare.jobs import resolve_jobs, run_all, share_cpus
from seqnlp.config import CELLS, Config, config_from_dict, get_value, load_config, read_config_file
from seqnlp.errors import CheckpointError, ConfigError, SeqnlpError

log = logging.getLogger(__name__)

DEFAULT_GRID: dict[str, list[Any]] = {"model.cell": list(CELLS)}
RUNS_DIR = "runs"
DIAGNOSTICS_DIR = "diagnostics"
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, kibibytes on Linux


@dataclass
class GridPoint:
    """One combination of grid values; ``name`` is its directory under ``runs/``."""

    name: str
    values: dict[str, Any]  # dotted key -> value


@dataclass
class RunRecord:
    """What one run of one grid point with one seed measured (the rows of runs.csv)."""

    point: str
    values: dict[str, Any]
    seed: int
    run_dir: str
    split: str  # the split accuracy and macro_f1 are measured on: test when the data has one, else validation
    accuracy: float
    macro_f1: float
    validation_accuracy: float
    validation_macro_f1: float
    num_parameters: int
    encoder_parameters: int
    epochs: int  # epochs trained (early stopping can end a run before train.epochs)
    best_epoch: int
    train_seconds_per_epoch: float
    train_tokens_per_s: float
    inference_tokens_per_s: float
    peak_memory_mb: Optional[float]  # peak RSS of the run's own process; None when runs share a process
    baseline_memory_mb: Optional[float]  # that process's peak RSS just before train(), after the imports
    peak_gpu_memory_mb: Optional[float]  # torch.cuda.max_memory_allocated, on CUDA only
    curves: list[dict[str, Any]] = field(default_factory=list)  # per epoch: train loss, validation metrics


@dataclass
class CompareResult:
    """A finished comparison: the report directory, every run, and the summary per grid point."""

    report_dir: Path
    runs: list[RunRecord]
    summaries: list[dict[str, Any]]  # per grid point: values, seeds, each measure's mean/std/min/max
    table: str  # the Markdown table of report.md
    files: dict[str, Path]  # report file name -> path


def compare(
    base: Config,
    grid: Optional[Mapping[str, Sequence[Any]]] = None,
    seeds: Optional[Sequence[int]] = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    isolate: bool = True,
    progress: bool = True,
    diagnose: bool = False,
    diagnose_examples: int = 256,
    jobs: int | str = "auto",
) -> CompareResult:
    """Train every point of ``grid`` (default: the three cells) once per seed and write the report directory.

    ``seeds`` default to ``[base.seed]``; ``output_dir`` to ``runs/compare-<date>-<time>``. With ``diagnose``,
    the first seed's model of every point is also diagnosed (``seqnlp.compare.diagnose``), freshly initialized and
    trained, into ``REPORT_DIR/diagnostics/``. ``jobs`` runs train at once (``auto``: ``resolve_jobs``).
    """
    from seqnlp.compare.report import markdown_table, summarize, write_report

    grid = dict(grid or DEFAULT_GRID)
    seeds = list(seeds) if seeds is not None else [base.seed]
    report_dir = Path(output_dir or f"runs/compare-{datetime.now():%Y%m%d-%H%M%S}")
    if not overwrite and (report_dir / RUNS_DIR).is_dir() and any((report_dir / RUNS_DIR).iterdir()):
        raise CheckpointError(f"report directory {report_dir} already holds a comparison; "
                              "choose another --output-dir or pass --overwrite")
    jobs = resolve_jobs(jobs, isolate, base, len(expand_grid(grid)) * len(seeds))
    records = run_grid(base, grid, seeds, report_dir, overwrite=overwrite, isolate=isolate, progress=progress,
                       jobs=jobs)
    files, appendix = _diagnose_runs(records, seeds[0], report_dir, diagnose_examples) if diagnose else ({}, "")
    if jobs > 1:
        appendix = (f"## How the runs ran\n\n{jobs} runs trained at a time, each in its own process on its share of "
                    "the CPUs, so the speed columns are each run's speed beside the others (`--jobs 1`: each run "
                    "alone).\n\n" + appendix)
    files.update(write_report(report_dir, records, base, grid, seeds, appendix=appendix))
    summaries = summarize(records)
    return CompareResult(report_dir, records, summaries, markdown_table(summaries), files)


def _diagnose_runs(records: Sequence[RunRecord], seed: int, report_dir: Path,
                   examples: int) -> tuple[dict[str, Path], str]:
    """Diagnose each grid point's run with ``seed``, at initialization and trained: files and a Markdown section."""
    from seqnlp.compare import diagnose as diagnostics
    from seqnlp.compare.report import point_label

    chosen = [r for r in records if r.seed == seed]
    run_dirs, labels = [r.run_dir for r in chosen], [point_label(r.values) for r in chosen]
    subjects = [*diagnostics.subjects_from_runs(run_dirs, "init", labels=labels),
                *diagnostics.subjects_from_runs(run_dirs, "trained", labels=labels)]
    found = diagnostics.diagnose(subjects, examples=examples)
    written = diagnostics.write_diagnostics(found, report_dir / DIAGNOSTICS_DIR)
    images = [f"![{p.stem}]({DIAGNOSTICS_DIR}/{p.name})" for p in written.values() if p.suffix == ".png"]
    section = "\n".join([f"## Gradient flow and saturation (seed {seed}, up to {examples} validation examples)", "",
                         diagnostics.summary_markdown(found), "", *images])
    return {f"{DIAGNOSTICS_DIR}/{name}": path for name, path in written.items()}, section


def parse_grid(items: Sequence[str], base: Optional[Config] = None) -> dict[str, list[Any]]:
    """``["model.hidden_size=64,128"]`` -> ``{"model.hidden_size": [64, 128]}``, each value parsed and validated
    as ``--set`` would (so a bad key or value names the key and the valid choices)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError(f"grid {item!r} is not of the form section.key=VALUE1,VALUE2,...")
        parsed = [get_value(load_config(base=base or Config(), overrides=[f"{key}={v.strip()}"]), key)
                  for v in values.split(",")]
        grid.setdefault(key, []).extend(parsed)
    return grid


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[GridPoint]:
    """Every combination of the grid's values, in order (the last key varies fastest)."""
    for key, values in grid.items():
        if not values:
            raise ConfigError(f"grid key {key!r} has no values")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"grid key {key!r} repeats a value: {list(values)}")
    keys = list(grid)
    points = []
    for index, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        values = dict(zip(keys, combo))
        slug = "_".join(f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in values.items())
        points.append(GridPoint(f"{index:02d}-{re.sub(r'[^A-Za-z0-9._=-]+', '-', slug)}", values))
    return points


def run_configs(base: Config, points: Sequence[GridPoint], seeds: Sequence[int], report_dir: Path) -> list[Config]:
    """One validated (and preflighted) config per grid point and seed, in run order, each with its own run
    directory."""
    if not seeds:
        raise ConfigError("compare needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds repeat: {list(seeds)}")
    configs = []
    for point in points:
        if "seed" in point.values or "output_dir" in point.values:
            raise ConfigError("seed and output_dir are set by compare; give seeds with --seeds")
        for seed in seeds:
            run_dir = report_dir / RUNS_DIR / point.name / f"seed-{seed}"
            configs.append(load_config(base=base, updates={**point.values, "seed": seed, "output_dir": str(run_dir)}))
    from seqnlp.training import preflight  # imports torch: only once every config has loaded

    for config in configs:  # files and packages too, so a bad point fails before the first run trains
        preflight(config)
    return configs


def run_grid(
    base: Config,
    grid: Optional[Mapping[str, Sequence[Any]]],
    seeds: Sequence[int],
    report_dir: str | Path,
    overwrite: bool = False,
    isolate: bool = True,
    progress: bool = True,
    jobs: int | str = 1,
) -> list[RunRecord]:
    """Train every grid point once per seed into ``report_dir/runs/`` and measure each run.

    ``isolate`` trains each run in a fresh Python process (honest peak memory, and no run inherits another's
    allocator state); without it, runs share this process and report no memory. ``jobs`` isolated runs train at
    once (``auto``: see ``resolve_jobs``), each on its share of the usable CPUs when its config says
    ``train.num_threads: auto``.
    """
    report_dir = Path(report_dir)
    points = expand_grid(grid or DEFAULT_GRID)
    configs = run_configs(base, points, seeds, report_dir)  # every config is validated before anything trains
    jobs = resolve_jobs(jobs, isolate, base, len(configs))
    if jobs > 1:
        configs = [share_cpus(config, jobs) for config in configs]
        log.info("training %d runs %d at a time, %s thread(s) each", len(configs), jobs,
                 configs[0].train.num_threads)
    runs = list(zip(configs, itertools.product(points, seeds)))

    def run(number: int, config: Config, point: GridPoint, seed: int) -> RunRecord:
        described = ", ".join(f"{k}={v}" for k, v in point.values.items())
        log.info("run %d/%d: %s, seed %d -> %s", number, len(configs), described, seed, config.output_dir)
        measured = (_measure_isolated(config, overwrite, progress and jobs == 1) if isolate
                    else measure_run(config, overwrite, progress))
        return RunRecord(point=point.name, values=dict(point.values), seed=seed, **measured)

    return run_all([functools.partial(run, n, config, point, seed)
                    for n, (config, (point, seed)) in enumerate(runs, start=1)], jobs)


def measure_run(config: Config, overwrite: bool = False, progress: bool = True,
                track_memory: bool = False) -> dict[str, Any]:
    """Train one run with ``seqnlp.training.train`` and measure it (the RunRecord fields but point/values/seed).

    ``track_memory`` reports this process's peak RSS: meaningful only in a process that runs nothing else
    (see ``isolate``).
    """
    import torch

    from seqnlp.runtime import resolve_device
    from seqnlp.training import train

    cuda = resolve_device(config.train.device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss_before = _peak_rss_mb()
    result = train(config, overwrite=overwrite, progress=progress)
    peak_memory = _peak_rss_mb() if track_memory else None
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    encoder_parameters, inference = _inference_speed(config, result.run_dir)

    epochs = result.history
    seconds = sum(e["train"]["seconds"] for e in epochs)
    tokens = sum(e["train"]["tokens_per_s"] * e["train"]["seconds"] for e in epochs)
    final = result.test if result.test is not None else result.validation
    return {
        "run_dir": str(result.run_dir),
        "split": "test" if result.test is not None else "validation",
        "accuracy": final["accuracy"],
        "macro_f1": final["macro_f1"],
        "validation_accuracy": result.validation["accuracy"],
        "validation_macro_f1": result.validation["macro_f1"],
        "num_parameters": result.num_parameters,
        "encoder_parameters": encoder_parameters,
        "epochs": len(epochs),
        "best_epoch": result.best_epoch,
        "train_seconds_per_epoch": seconds / len(epochs),
        "train_tokens_per_s": tokens / seconds,
        "inference_tokens_per_s": inference,
        "peak_memory_mb": peak_memory,
        "baseline_memory_mb": rss_before if track_memory else None,
        "peak_gpu_memory_mb": peak_gpu,
        "curves": [
            {"epoch": e["epoch"], "train_loss": e["train"]["loss"], "validation_loss": e["validation"]["loss"],
             "validation_accuracy": e["validation"]["accuracy"], "validation_macro_f1": e["validation"]["macro_f1"]}
            for e in epochs
        ],
    }


def _inference_speed(config: Config, run_dir: Path) -> tuple[int, float]:
    """The trained encoder's parameter count, and real tokens per second of ``Classifier.logits`` over the
    validation texts (after a warm-up call), on the run's device and thread count."""
    import torch

    from seqnlp.data import load_splits
    from seqnlp.model import count_parameters
    from seqnlp.predict import Classifier
    from seqnlp.runtime import set_threads
    from seqnlp.tokenizer import encode_texts

    # Measured as the run evaluated itself: its eval batch size and precision.
    clf = Classifier.load(run_dir, device=config.train.device, batch_size=config.train.eval_batch_size,
                          precision=config.train.precision)
    name = config.data.validation_split
    texts = load_splits(config.data, config.seed, label_names=clf.label_names, only=[name]).data[name]["text"]
    tokens = sum(len(ids) for ids in encode_texts(clf.tokenizer, texts))
    threads = torch.get_num_threads()
    set_threads(config.train.num_threads)
    try:
        clf.logits(texts[: clf.batch_size])  # warm-up: first-call allocations are not the steady speed
        start = time.perf_counter()
        clf.logits(texts)
        if clf.device.type == "cuda":
            torch.cuda.synchronize(clf.device)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return count_parameters(clf.model.encoder), tokens / elapsed


def _peak_rss_mb() -> float:
    import resource  # POSIX only; imported here so the rest of the module works everywhere

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_UNIT / 2**20


def _measure_isolated(config: Config, overwrite: bool, progress: bool) -> dict[str, Any]:
    """``measure_run`` in a fresh Python process; its logs and progress bars go to this process's stderr."""
    with tempfile.TemporaryDirectory(prefix="seqnlp-compare-") as tmp:
        config_path, result_path = Path(tmp) / "config.yaml", Path(tmp) / "result.json"
        config.save(config_path)
        level = logging.getLogger("seqnlp").getEffectiveLevel()
        code = "from seqnlp.threads import prefer_passive_wait; prefer_passive_wait(); " \
               f"from seqnlp.compare.runs import isolated_run; isolated_run({str(config_path)!r}, {str(result_path)!r}, " \
               f"{overwrite!r}, {progress!r}, {level!r})"
        completed = subprocess.run([sys.executable, "-c", code], check=False)
        outcome = json.loads(result_path.read_text(encoding="utf-8")) if result_path.exists() else None
    if outcome is None:
        raise SeqnlpError(f"the run for {config.output_dir} failed (exit code {completed.returncode}); "
                          "its error is printed above")
    if "error" in outcome:
        raise child_error(outcome)
    return outcome


def child_error(outcome: Mapping[str, Any]) -> SeqnlpError:
    """The error an isolated run reported, rebuilt in this process with its message and exit code: as its own
    class when that takes just a message, else as a SeqnlpError (TrainingInterrupted takes a signal and a run)."""
    error_type = getattr(errors, str(outcome.get("error_type")), None)
    if not (isinstance(error_type, type) and issubclass(error_type, SeqnlpError)):
        error_type = SeqnlpError
    try:
        error = error_type(outcome["error"])
    except TypeError:
        error = SeqnlpError(outcome["error"])
    if isinstance(outcome.get("exit_code"), int):
        error.exit_code = outcome["exit_code"]
    return error


def isolated_run(config_path: str, result_path: str, overwrite: bool, progress: bool, level: int) -> None:
    """Entry point of an isolated run: train, measure, write the measurements (or the error) as JSON."""
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    for noisy in ("datasets", "filelock", "fsspec", "urllib3", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if not progress:
        import datasets

        datasets.disable_progress_bars()
    try:
        outcome = measure_run(config_from_dict(read_config_file(config_path)), overwrite, progress,
                              track_memory=True)
    except SeqnlpError as exc:
        outcome = {"error": str(exc), "error_type": type(exc).__name__, "exit_code": exc.exit_code}
    Path(result_path).write_text(json.dumps(outcome), encoding="utf-8")

