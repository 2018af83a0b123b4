"""The ``seqnlp compare`` and ``seqnlp diagnose`` commands: cells compared on one budget, and gradient flow.

``seqnlp.cli`` adds them to the ``seqnlp`` group; like every command they parse, call the library and echo.
"""

from __future__ import annotations

from typing import Optional

import click

from seqnlp.cli.options import (config_options, data_options, data_updates, handle_errors, output_options,
                                parse_threads, quiet_datasets)
from seqnlp.config import CELLS, load_config


@click.command()
@config_options("for every run")
@output_options("Report directory [default: runs/compare-<time>].", "Replace runs already in --output-dir.")
@data_options
@click.option("--cell", "cells", multiple=True, type=click.Choice(CELLS),
              help="A cell to compare; repeat for several [default: rnn, lstm and gru].")
@click.option("-g", "--grid", multiple=True, metavar="KEY=V1,V2",
              help="Also vary a dotted config key, e.g. model.bidirectional=true,false; repeatable.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Seeds per setting: the config's seed and the ones after it.")
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum epochs of every run.")
@click.option("--diagnose", "with_diagnostics", is_flag=True,
              help="Also measure gradient flow and saturation of each setting (first seed), at init and trained.")
@click.option("--diagnose-examples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Validation examples the diagnostics average over.")
@click.option("--in-process", is_flag=True,
              help="Train every run in this process: quicker to start, but peak memory is not measured.")
@click.option("-j", "--jobs", default="auto", show_default=True, metavar="N|auto", callback=parse_threads,
              help="Runs that train at once, each in its own process; auto: one per usable CPU, one thread each "
                   "(on a GPU or with --in-process: 1). Runs side by side share the machine in their speed columns.")
@click.pass_context
@handle_errors
def compare(ctx: click.Context, config_file: Optional[str], overrides: tuple[str, ...], output_dir: Optional[str],
            overwrite: bool, dataset: Optional[str], data_files: tuple[str, ...], text_columns: tuple[str, ...],
            label_column: Optional[str], cells: tuple[str, ...], grid: tuple[str, ...], seeds: int,
            epochs: Optional[int], with_diagnostics: bool, diagnose_examples: int, in_process: bool,
            jobs: int | str) -> None:
    """Train RNN, LSTM and GRU (and any other grid) on the same data, budget and seeds, and report.

    Every setting is trained once per seed by the ordinary training code, each into its own run directory
    under OUTPUT_DIR/runs/. The report (report.md, results.csv/.json, runs.csv, curves.csv and, with
    matplotlib, validation_curves.png) gives accuracy, macro-F1, parameters, time per epoch, training and
    inference tokens/s, peak memory and epochs to the best epoch: mean ± standard deviation over seeds.

    \b
    Examples:
      seqnlp compare --config configs/sst2.yaml --set data.max_train_samples=5000 --epochs 3 --seeds 3
      seqnlp compare --dataset "synthetic:marker?distance=50" --set model.pooling=last \\
                     --set model.bidirectional=false --diagnose
      seqnlp compare --cell lstm --cell gru --grid model.hidden_size=64,256 --grid model.num_layers=1,2
      seqnlp compare --config configs/sst2.yaml --jobs 1     # one run at a time: each alone on the machine
    """
    from seqnlp.compare import compare as run_compare
    from seqnlp.compare import parse_grid

    updates = data_updates(dataset, data_files, text_columns, label_column)
    if epochs is not None:
        updates["train.epochs"] = epochs
    base = load_config(config_file, overrides, updates)
    varied = parse_grid(grid, base)
    if "model.cell" in varied and cells:
        raise click.UsageError("give the cells with --cell or with --grid model.cell=..., not both")
    # The cells come first unless --grid names model.cell, whose place then follows the --grid order.
    full_grid = varied if "model.cell" in varied else {"model.cell": list(cells or CELLS), **varied}
    quiet_datasets(ctx)
    result = run_compare(base, full_grid, seeds=[base.seed + i for i in range(seeds)], output_dir=output_dir,
                         overwrite=overwrite, isolate=not in_process, progress=not ctx.obj["quiet"],
                         diagnose=with_diagnostics, diagnose_examples=diagnose_examples,
                         jobs=jobs)
    click.echo(result.table)
    click.echo(f"Report: {result.report_dir}  ({', '.join(sorted(result.files))})")


@click.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--weights", type=click.Choice(["trained", "init", "both"]), default="trained", show_default=True,
              help="Diagnose the runs' trained weights, a fresh initialization, or both.")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False),
              help="Without run directories: fresh models of this config.")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Without run directories: override a dotted config key; repeatable.")
@data_options
@click.option("--cell", "cells", multiple=True, type=click.Choice(CELLS),
              help="Without run directories: a cell to initialize; repeat [default: rnn, lstm and gru].")
@click.option("-n", "--examples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Examples to average over.")
@click.option("--split", help="Split the examples come from [default: validation].")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False),
              help="Where the CSV, Markdown and PNG files go [default: runs/diagnose-<time>].")
@click.pass_context
@handle_errors
def diagnose(ctx: click.Context, run_dirs: tuple[str, ...], weights: str, config_file: Optional[str],
             overrides: tuple[str, ...], dataset: Optional[str], data_files: tuple[str, ...],
             text_columns: tuple[str, ...], label_column: Optional[str], cells: tuple[str, ...], examples: int,
             split: Optional[str], output_dir: Optional[str]) -> None:
    """Gradient flow and saturation: where the vanishing gradient becomes visible.

    For each model: the norm of the loss gradient with respect to each token's embedding against the token's
    distance from the end of the text, averaged over real examples; and how saturated its tanh units and
    gates are. Give trained run directories, or (with no run directory) a config whose cells are freshly
    initialized. Writes gradient_profile.csv, saturation.csv, diagnostics.md and, with matplotlib, one
    figure per weights state.

    \b
    Examples:
      seqnlp diagnose runs/sst2-rnn runs/sst2-lstm runs/sst2-gru --weights both
      seqnlp diagnose --dataset "synthetic:marker?distance=50" --set model.pooling=last \\
                      --set model.bidirectional=false
    """
    from seqnlp.compare import diagnose as diagnostics

    from_config = bool(config_file or overrides or cells or dataset or data_files or text_columns or label_column)
    quiet_datasets(ctx)
    if run_dirs:
        if from_config:
            raise click.UsageError("give run directories or a config to initialize, not both")
        states = ["init", "trained"] if weights == "both" else [weights]
        subjects = [s for state in states for s in diagnostics.subjects_from_runs(run_dirs, state)]
    else:
        if weights != "init" and ctx.get_parameter_source("weights") != click.core.ParameterSource.DEFAULT:
            raise click.UsageError(f"--weights {weights} needs run directories; a config gives fresh models only")
        config = load_config(config_file, overrides, data_updates(dataset, data_files, text_columns, label_column))
        subjects = diagnostics.subjects_from_config(config, list(cells or CELLS))
    found = diagnostics.diagnose(subjects, examples=examples, split=split)
    files = diagnostics.write_diagnostics(found, output_dir)
    click.echo(diagnostics.summary_markdown(found))
    click.echo(f"Diagnostics: {next(iter(files.values())).parent}  ({', '.join(files)})")
