"""What the ``seqnlp`` commands share: one-line errors, the data and inference options, and their parsing.

Nothing here imports torch or datasets at import time, so ``seqnlp --help`` stays instant.
"""

from __future__ import annotations

import os
from functools import wraps
from typing import Any, Callable, Optional

import click

from seqnlp.config import PRECISIONS
from seqnlp.errors import ConfigError, SeqnlpError

INFERENCE_BATCH_SIZE = 256  # seqnlp.predict.DEFAULT_BATCH_SIZE, without importing torch
INFERENCE_PRECISION = "fp32"  # seqnlp.predict.DEFAULT_PRECISION


def handle_errors(command: Callable) -> Callable:
    """Expected errors print one line and exit non-zero; --debug shows the traceback instead."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return command(*args, **kwargs)
        except SeqnlpError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)

    return wrapper


def rank() -> int:
    """This process's rank when torchrun started it (torchrun sets RANK), else 0; read without importing torch."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def quiet_datasets(ctx: click.Context) -> None:
    """-q also silences datasets' own bars (generating, preparing, encoding); called by commands, not by --help."""
    if ctx.obj["quiet"]:
        import datasets

        datasets.disable_progress_bars()


def parse_data_files(values: tuple[str, ...]) -> dict[str, list[str]]:
    """``("train=a.csv", "train=b.csv", "test=c.csv")`` -> ``{"train": ["a.csv", "b.csv"], "test": ["c.csv"]}``."""
    files: dict[str, list[str]] = {}
    for item in values:
        split, sep, path = item.partition("=")
        if not sep or not split or not path:
            raise ConfigError(f"--data-files {item!r} is not of the form SPLIT=PATH (e.g. train=data/train.csv)")
        files.setdefault(split, []).append(path)
    return files


def data_updates(dataset: Optional[str], data_files: tuple[str, ...], text_columns: tuple[str, ...],
                 label_column: Optional[str]) -> dict[str, Any]:
    """The data options given, as dotted config updates."""
    updates: dict[str, Any] = {}
    if dataset is not None:
        updates["data.dataset"] = dataset
    if data_files:
        updates["data.data_files"] = parse_data_files(data_files)
    if text_columns:
        updates["data.text_columns"] = list(text_columns)
    if label_column is not None:
        updates["data.label_column"] = label_column
    return updates


def data_options(command: Callable) -> Callable:
    """--dataset, --data-files, --text-column and --label-column."""
    options = [
        click.option("--dataset", metavar="NAME_OR_PATH",
                     help="Hub name, local directory, saved dataset, data file, or a format (csv, json, parquet)."),
        click.option("--data-files", multiple=True, metavar="SPLIT=PATH",
                     help="A local file for a split; repeat for each split."),
        click.option("--text-column", "text_columns", multiple=True, metavar="COL",
                     help="Text column; repeat to join several."),
        click.option("--label-column", metavar="COL", help="Label column."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def inference_options(command: Callable) -> Callable:
    """--batch-size and --precision of the forward passes: inference settings, not the run's training ones."""
    options = [
        click.option("--batch-size", type=click.IntRange(min=1), default=INFERENCE_BATCH_SIZE, show_default=True,
                     help="Texts per forward pass: memory and speed, not results, depend on it."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=INFERENCE_PRECISION, show_default=True,
                     help="Inference precision: fp32, or bf16/fp16 autocast (fp16 needs CUDA)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def parse_threads(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    """--threads: auto or a positive integer."""
    if value.strip().lower() == "auto":
        return "auto"
    if value.strip().isdigit() and int(value) >= 1:
        return int(value)
    raise click.BadParameter(f"{value!r} is not auto or an integer >= 1")


def threads_option(command: Callable) -> Callable:
    """--threads of inference: N, or auto (the usable CPUs, then the fastest count timed on the first batches)."""
    return click.option("--threads", default="auto", show_default=True, metavar="N|auto", callback=parse_threads,
                        help="Torch threads: N, or auto: the CPUs this process may use, then the fastest count, "
                             "timed on the first batches (docs/performance.md).")(command)
