"""What the ``seqnlp`` commands share: one-line errors, the data and inference options, and their parsing.

Nothing here imports torch or datasets at import time, so ``seqnlp --help`` stays instant.
"""

from __future__ import annotations

import os
import sys
from functools import wraps
from typing import Any, Callable, Optional

import click

from seqnlp.config import PRECISIONS
from seqnlp.errors import ConfigError, SeqnlpError
from seqnlp.rundir import storage_error

INFERENCE_BATCH_SIZE = 256  # seqnlp.predict.DEFAULT_BATCH_SIZE, without importing torch
INFERENCE_PRECISION = "fp32"  # seqnlp.predict.DEFAULT_PRECISION


def handle_errors(command: Callable) -> Callable:
    """Expected errors print one line and exit non-zero; --debug shows the traceback instead. A write the disk
    refused (full, read-only, permissions, quota, file size limit) anywhere is one of them."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return command(*args, **kwargs)
        except (SeqnlpError, OSError) as exc:
            error = exc if isinstance(exc, SeqnlpError) else storage_error(exc, exc.filename or "a file")
            if error is None or ctx.find_root().params.get("debug"):
                raise
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)
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


def show_progress(ctx: click.Context) -> bool:
    """Progress bars only on a terminal: without -q, and when stderr is one. On a file, a pipe or CI a bar writes a
    carriage-return update per step; training logs a line per epoch and every train.log_every steps instead."""
    return not ctx.obj["quiet"] and sys.stderr.isatty()


def resume_alone(ctx: click.Context) -> None:
    """--resume RUN_DIR continues with the run's saved config: any other option given is a usage error."""
    given = [p for p in ctx.command.params if p.name != "resume_dir"
             and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]  # type: ignore[arg-type]
    if given:
        param = given[0]  # name the flag as typed: --unidirectional is the off side of --bidirectional
        typed = param.secondary_opts if ctx.params[param.name] is False and param.secondary_opts else param.opts
        flag = next((o for o in typed if o.startswith("--")), typed[0])
        raise click.UsageError(f"--resume continues with the run's saved config; drop {flag}")


def quiet_datasets(ctx: click.Context) -> None:
    """-q, or a stderr that is not a terminal, also silences datasets' own bars (generating, preparing, encoding);
    called by commands, not by --help."""
    if not show_progress(ctx):
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
    """The data options given, as dotted config updates; ``--data-files`` sets one split at a time
    (``data.data_files.train``), so a config's other splits keep their files."""
    updates: dict[str, Any] = {}
    if dataset is not None:
        updates["data.dataset"] = dataset
    for split, paths in parse_data_files(data_files).items():  # merged per split into the config's data files
        updates[f"data.data_files.{split}"] = paths
    if text_columns:
        updates["data.text_columns"] = list(text_columns)
    if label_column is not None:
        updates["data.label_column"] = label_column
    return updates


def config_options(set_help: str = "e.g. model.hidden_size=256",
                   config_help: str = "YAML or JSON config file.") -> Callable[[Callable], Callable]:
    """-c/--config and -s/--set, as every command that reads a config spells them; ``set_help`` ends the -s help."""
    def decorate(command: Callable) -> Callable:
        command = click.option("-s", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
                               help=f"Override a dotted config key, {set_help}; repeatable.")(command)
        return click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False),
                            help=config_help)(command)
    return decorate


def output_options(output_help: str, overwrite_help: str = "Replace a run already in --output-dir.") -> Callable[
        [Callable], Callable]:
    """-o/--output-dir and --overwrite, with the command's own help texts."""
    def decorate(command: Callable) -> Callable:
        command = click.option("--overwrite", is_flag=True, help=overwrite_help)(command)
        return click.option("-o", "--output-dir", type=click.Path(file_okay=False), help=output_help)(command)
    return decorate


def data_options(command: Callable) -> Callable:
    """--dataset, --data-files, --text-column and --label-column of the commands that train."""
    return _data_options(command, "A local file for a split (csv, tsv, json, jsonl, parquet); repeat for each split. "
                                  "Merged into the config's data files split by split; replaces a Hub dataset the "
                                  "config names.")


def other_data_options(command: Callable) -> Callable:
    """The same options for ``evaluate``, where they name other data than the run's."""
    return _data_options(command, "A local file for a split of other data than the run's (csv, tsv, json, jsonl, "
                                  "parquet); repeat for each split.")


def _data_options(command: Callable, files_help: str) -> Callable:
    options = [
        click.option("--dataset", metavar="NAME_OR_PATH",
                     help="Hub name, local directory, saved dataset, data file, or a format (csv, json, parquet)."),
        click.option("--data-files", multiple=True, metavar="SPLIT=PATH", help=files_help),
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
