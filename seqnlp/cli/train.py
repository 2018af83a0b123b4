"""``seqnlp train``: settings from defaults, --config, --set and flags, then one call to ``seqnlp.train`` (or ``seqnlp.resume``)."""

from __future__ import annotations

from typing import Any, Optional

import click

from seqnlp.cli.baseline import headline
from seqnlp.cli.options import (config_options, data_options, data_updates, handle_errors, output_options,
                                quiet_datasets, rank, resume_alone, show_progress)
from seqnlp.config import CELLS, PRECISIONS, THRESHOLD_RULES, load_config
from seqnlp.data.files import check_data_files
from seqnlp.errors import ConfigError
from seqnlp.rundir import check_output_dir, check_run_dir


@click.command()
@config_options()
@output_options("Run directory [default: runs/<cell>-<time>].")
@data_options
@click.option("--cell", type=click.Choice(CELLS), help="Recurrent cell.")
@click.option("--layers", type=click.IntRange(min=1), help="Stacked recurrent layers.")
@click.option("--bidirectional/--unidirectional", default=None, help="Read the text in both directions.")
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Training batch size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--seed", type=int, help="Random seed (data split, initialization, batch order).")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Training precision.")
@click.option("--streaming", is_flag=True, default=None,
              help="Read the training split as a stream, never materialized (data.streaming).")
@click.option("--multi-label", is_flag=True, default=None,
              help="The label column holds lists of labels: a sigmoid per label (data.multi_label).")
@click.option("--class-weights", metavar="auto|none|W1,W2,...",
              help="Loss weight per label: auto (inverse frequency in train), none, or one number per label.")
@click.option("--threshold", "threshold_rule", type=click.Choice(THRESHOLD_RULES),
              help="Binary runs: decide by the most probable label (argmax), or by a threshold tuned on validation "
                   "for the best F1 (f1) or for --target-precision (precision) [calibration.threshold].")
@click.option("--target-precision", type=click.FloatRange(0, 1, min_open=True), metavar="P",
              help="Binary runs: the threshold with the most validation recall at precision P of the positive "
                   "label (calibration.positive_label); implies --threshold precision.")
@click.option("--baseline", is_flag=True, default=None,
              help="Also fit the fast n-gram baseline on the same splits and report it beside the run (train.baseline).")
@click.option("--init-from", type=click.Path(file_okay=False), metavar="RUN_DIR",
              help="Start from a pretrained run's tokenizer, embedding and encoder (train.init_from; seqnlp pretrain).")
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), metavar="RUN_DIR",
              help="Continue an interrupted run from its last checkpoint, with its saved config.")
@click.pass_context
@handle_errors
def train(ctx: click.Context, config_file: Optional[str], overrides: tuple[str, ...], output_dir: Optional[str],
          overwrite: bool, dataset: Optional[str], data_files: tuple[str, ...], text_columns: tuple[str, ...],
          label_column: Optional[str], cell: Optional[str], layers: Optional[int], bidirectional: Optional[bool],
          epochs: Optional[int], batch_size: Optional[int], lr: Optional[float], seed: Optional[int],
          device: Optional[str], precision: Optional[str], streaming: Optional[bool], multi_label: Optional[bool],
          class_weights: Optional[str], threshold_rule: Optional[str], target_precision: Optional[float],
          baseline: Optional[bool], init_from: Optional[str], print_config: bool, resume_dir: Optional[str]) -> None:
    """Train a classifier and write its run directory.

    Settings come from the defaults, then --config (its relative paths read from its folder), then --set,
    then the flags below. With no data named: the embedded SMS Spam Collection. A recipe reads its Hub data
    set; --data-files gives local files instead, split by split. Missing splits are carved from train (test
    only when validation is). Under torchrun, --batch-size is per process; rank 0 writes the run directory.
    One process writes a run directory at a time: a second train or --resume on it stops at once, naming the first.

    \b
    Examples:
      seqnlp train
      seqnlp train --config configs/sst2.yaml --cell gru --output-dir runs/sst2-gru
      seqnlp train --config configs/sst2.yaml --data-files train=PATH/train.tsv \\
                   --data-files validation=PATH/dev.tsv          # local copies instead of the Hub
      seqnlp train --data-files train=train.csv --data-files test=test.csv \\
                   --text-column title --text-column body --label-column topic
      seqnlp train --data-files train=data.csv --set 'data.load_kwargs.delimiter=;' \\
                   --set 'data.load_kwargs.column_names=[label, text]'   # no header row
      seqnlp train --resume runs/imdb            # after Ctrl-C, SIGTERM or a crash
      torchrun --nproc_per_node=4 -m seqnlp train --config configs/imdb.yaml
      seqnlp train --dataset big.jsonl --streaming --set train.schedule=constant --set train.warmup_ratio=0
      seqnlp train --class-weights auto          # imbalanced classes: inverse-frequency loss weights
      seqnlp train --config configs/imdb.yaml --baseline   # results.json gets the n-gram baseline beside it
      seqnlp train --data-files train=tagged.jsonl --label-column labels --multi-label
      seqnlp train --target-precision 0.95       # spam only when validation says 95% of such calls are right
      seqnlp train --config configs/imdb.yaml --init-from runs/imdb-lm    # from seqnlp pretrain's run
    """
    if resume_dir is not None:
        _resume(ctx, resume_dir)
        return
    updates = data_updates(dataset, data_files, text_columns, label_column)
    flags = {"output_dir": output_dir, "model.cell": cell, "model.num_layers": layers,
             "model.bidirectional": bidirectional, "train.epochs": epochs, "train.batch_size": batch_size,
             "train.lr": lr, "seed": seed, "train.device": device, "train.precision": precision,
             "data.streaming": streaming, "data.multi_label": multi_label,
             "train.class_weights": _class_weights(class_weights), "train.baseline": baseline,
             "train.init_from": init_from, **_decision(threshold_rule, target_precision)}
    updates.update({key: value for key, value in flags.items() if value is not None})
    config = load_config(config_file, overrides, updates)
    if print_config:
        import yaml

        click.echo(yaml.safe_dump(config.to_dict(), sort_keys=False), nl=False)
        return

    if config.output_dir is not None:  # usage errors and bad file names answer before the heavy imports
        check_output_dir(config.output_dir, overwrite)
    check_data_files(config.data)
    from seqnlp.training import train as run_training

    quiet_datasets(ctx)
    _echo_result(run_training(config, overwrite=overwrite, progress=show_progress(ctx)))


def _resume(ctx: click.Context, resume_dir: str) -> None:
    """--resume RUN_DIR: any other option given is a usage error, and so is a directory that does not exist."""
    resume_alone(ctx)
    check_run_dir(resume_dir)  # before the heavy imports: a usage error answers at once
    from seqnlp.training import resume

    quiet_datasets(ctx)
    _echo_result(resume(resume_dir, progress=show_progress(ctx)))


def _decision(rule: Optional[str], target_precision: Optional[float]) -> dict[str, Any]:
    """--threshold and --target-precision as config updates; a target precision means the precision rule."""
    if target_precision is not None and rule not in (None, "precision"):
        raise click.UsageError(f"--target-precision sets --threshold precision; drop --threshold {rule}")
    return {"calibration.threshold": "precision" if target_precision is not None else rule,
            "calibration.target_precision": target_precision}


def _class_weights(value: Optional[str]) -> Any:
    """--class-weights: auto, none, or comma-separated numbers (one per label, checked when training)."""
    if value is None or value.strip().lower() in ("auto", "none"):
        return None if value is None else value.strip().lower()
    try:
        return [float(part) for part in value.split(",")]
    except ValueError:
        raise ConfigError(f"--class-weights {value!r} is not auto, none, or comma-separated numbers "
                          "(e.g. 1,5)") from None


def _echo_result(result: Any) -> None:
    if rank() > 0:
        return
    if not hasattr(result, "monitor"):  # --resume of a language model's run (seqnlp pretrain)
        click.echo(f"Run directory: {result.run_dir}")
        click.echo(f"Best epoch {result.best_epoch}: validation perplexity {result.validation['perplexity']:.2f}")
        return
    click.echo(f"Run directory: {result.run_dir}")
    click.echo(f"Best epoch {result.best_epoch} (by validation {result.monitor})")
    click.echo(f"{_split(result.validation, 'validation')}: {_headline(result.validation)}")
    if result.test is not None:
        click.echo(f"{_split(result.test, 'test')}: {_headline(result.test)}")
    if result.baseline is not None:
        base = result.baseline
        test = "" if base["test"] is None else f" | test {headline(base['test'])}"
        click.echo(f"Baseline ({base['description']}): validation {headline(base['validation'])}{test}")
    click.echo(f"Next: seqnlp evaluate {result.run_dir}  |  seqnlp predict {result.run_dir} \"some text\"")


def _split(metrics: dict[str, Any], default: str) -> str:
    """The split the metrics are on, as carved when it was: ``test, carved from train, 10%``."""
    name = metrics.get("split") or default
    return f"{name}, {metrics['carved']}" if metrics.get("carved") else name


def _headline(metrics: dict[str, Any]) -> str:
    # "accuracy" is the exact match of a multi-label run; a record from before "task" was kept (a resumed run's
    # history) names it accuracy.
    accuracy = "exact match" if metrics.get("task") == "multi_label" else "accuracy"
    auroc = "n/a" if metrics.get("auroc") is None else f"{metrics['auroc']:.4f}"
    return f"{accuracy} {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, AUROC {auroc}"
