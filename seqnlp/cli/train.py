"""``seqnlp train``: settings from defaults, --config, --set and flags, then one call to ``seqnlp.train`` (or ``seqnlp.resume``)."""

from __future__ import annotations

from typing import Any, Optional

import click

from seqnlp.cli.options import (data_options, data_updates, handle_errors, quiet_datasets, rank)
from seqnlp.config import CELLS, PRECISIONS, load_config
from seqnlp.errors import ConfigError


@click.command()
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False), help="YAML or JSON config file.")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a dotted config key, e.g. model.hidden_size=256; repeatable.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), help="Run directory [default: runs/<cell>-<time>].")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --output-dir.")
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
          class_weights: Optional[str], init_from: Optional[str], print_config: bool,
          resume_dir: Optional[str]) -> None:
    """Train a classifier and write its run directory.

    Settings come from the defaults, then --config, then --set, then the flags below. With no dataset
    named, seqnlp trains on the embedded SMS Spam Collection. Under torchrun, every process trains on its
    share of each batch (--batch-size is per process) and rank 0 writes the run directory.

    \b
    Examples:
      seqnlp train
      seqnlp train --config configs/sst2.yaml --cell gru --output-dir runs/sst2-gru
      seqnlp train --data-files train=train.csv --data-files test=test.csv \\
                   --text-column title --text-column body --label-column topic
      seqnlp train --dataset imdb --set tokenizer.max_length=400 --set model.pooling=mean
      seqnlp train --resume runs/imdb            # after Ctrl-C, SIGTERM or a crash
      torchrun --nproc_per_node=4 -m seqnlp train --config configs/imdb.yaml
      seqnlp train --dataset big.jsonl --streaming --set train.schedule=constant --set train.warmup_ratio=0
      seqnlp train --class-weights auto          # imbalanced classes: inverse-frequency loss weights
      seqnlp train --data-files train=tagged.jsonl --label-column labels --multi-label
      seqnlp train --config configs/imdb-pretrain.yaml   # pretrains a language model first (train.pretrain)
      seqnlp train --config configs/imdb.yaml --init-from runs/imdb-lm    # from seqnlp pretrain's run
    """
    if resume_dir is not None:
        given = [p for p in ctx.command.params if p.name != "resume_dir"
                 and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]  # type: ignore[arg-type]
        if given:
            param = given[0]  # name the flag as typed: --unidirectional is the off side of --bidirectional
            typed = param.secondary_opts if ctx.params[param.name] is False and param.secondary_opts else param.opts
            flag = next((o for o in typed if o.startswith("--")), typed[0])
            raise click.UsageError(f"--resume continues with the run's saved config; drop {flag}")
        from seqnlp.training import resume

        quiet_datasets(ctx)
        _echo_result(resume(resume_dir, progress=not ctx.obj["quiet"]))
        return
    updates = data_updates(dataset, data_files, text_columns, label_column)
    flags = {"output_dir": output_dir, "model.cell": cell, "model.num_layers": layers,
             "model.bidirectional": bidirectional, "train.epochs": epochs, "train.batch_size": batch_size,
             "train.lr": lr, "seed": seed, "train.device": device, "train.precision": precision,
             "data.streaming": streaming, "data.multi_label": multi_label,
             "train.class_weights": _class_weights(class_weights), "train.init_from": init_from}
    updates.update({key: value for key, value in flags.items() if value is not None})
    config = load_config(config_file, overrides, updates)
    if print_config:
        import yaml

        click.echo(yaml.safe_dump(config.to_dict(), sort_keys=False), nl=False)
        return

    from seqnlp.training import train as run_training

    quiet_datasets(ctx)
    _echo_result(run_training(config, overwrite=overwrite, progress=not ctx.obj["quiet"]))


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
    click.echo(f"Best epoch {result.best_epoch} (by validation {result.monitor}): "
               f"validation {_headline(result.validation)}")
    if result.test is not None:
        click.echo(f"Test: {_headline(result.test)}")
    click.echo(f"Next: seqnlp evaluate {result.run_dir}  |  seqnlp predict {result.run_dir} \"some text\"")


def _headline(metrics: dict[str, Any]) -> str:
    # "accuracy" is the exact match of a multi-label run; a record from before "task" was kept (a resumed run's
    # history) names it accuracy.
    accuracy = "exact match" if metrics.get("task") == "multi_label" else "accuracy"
    auroc = "n/a" if metrics.get("auroc") is None else f"{metrics['auroc']:.4f}"
    return f"{accuracy} {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, AUROC {auroc}"
