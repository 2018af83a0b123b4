"""The ``seqnlp`` command: train, evaluate, predict, compare, diagnose and serve, each a thin call into the library.

Heavy imports (torch, datasets) happen inside the commands, so ``seqnlp --help`` answers at once.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import sys
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TextIO

import click

from seqnlp.config import CELLS, load_config
from seqnlp.errors import ConfigError, DataError, SeqnlpError

PREDICT_CHUNK = 1024  # input lines read, predicted and written at a time: memory stays bounded


def _handle_errors(command: Callable) -> Callable:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings only; no progress bars.")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error.")
@click.version_option(package_name="seqnlp")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool, debug: bool) -> None:
    """Text classification with RNN, LSTM and GRU encoders.

    \b
    Examples:
      seqnlp train                                   # the embedded SMS Spam Collection
      seqnlp train --config configs/sst2.yaml --cell gru
      seqnlp evaluate runs/sst2-gru
      seqnlp predict runs/sst2-gru "a gripping, beautifully shot film"
      seqnlp compare --config configs/sst2.yaml --seeds 3 --diagnose
      seqnlp diagnose runs/sst2-gru --weights both
      seqnlp serve runs/sst2-gru --port 8000
      seqnlp export runs/sst2-gru --format onnx
    """
    if _rank() > 0:  # under torchrun, rank 0 speaks for the run: the others log warnings and errors only
        quiet, verbose = True, False
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("datasets", "filelock", "fsspec", "urllib3", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    ctx.obj = {"quiet": quiet}


def _rank() -> int:
    """This process's rank when torchrun started it (torchrun sets RANK), else 0; read without importing torch."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _quiet_datasets(ctx: click.Context) -> None:
    """-q also silences datasets' own bars (generating, preparing, encoding); called by commands, not by --help."""
    if ctx.obj["quiet"]:
        import datasets

        datasets.disable_progress_bars()


def _data_files(values: tuple[str, ...]) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for item in values:
        split, sep, path = item.partition("=")
        if not sep or not split or not path:
            raise ConfigError(f"--data-files {item!r} is not of the form SPLIT=PATH (e.g. train=data/train.csv)")
        files.setdefault(split, []).append(path)
    return files


def _data_updates(dataset: Optional[str], data_files: tuple[str, ...], text_columns: tuple[str, ...],
                  label_column: Optional[str]) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    if dataset is not None:
        updates["data.dataset"] = dataset
    if data_files:
        updates["data.data_files"] = _data_files(data_files)
    if text_columns:
        updates["data.text_columns"] = list(text_columns)
    if label_column is not None:
        updates["data.label_column"] = label_column
    return updates


def _data_options(command: Callable) -> Callable:
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


@main.command()
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False), help="YAML or JSON config file.")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a dotted config key, e.g. model.hidden_size=256; repeatable.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), help="Run directory [default: runs/<cell>-<time>].")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --output-dir.")
@_data_options
@click.option("--cell", type=click.Choice(CELLS), help="Recurrent cell.")
@click.option("--layers", type=click.IntRange(min=1), help="Stacked recurrent layers.")
@click.option("--bidirectional/--unidirectional", default=None, help="Read the text in both directions.")
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Training batch size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--seed", type=int, help="Random seed (data split, initialization, batch order).")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), help="Training precision.")
@click.option("--streaming", is_flag=True, default=None,
              help="Read the training split as a stream, never materialized (data.streaming).")
@click.option("--multi-label", is_flag=True, default=None,
              help="The label column holds lists of labels: a sigmoid per label (data.multi_label).")
@click.option("--class-weights", metavar="auto|none|W1,W2,...",
              help="Loss weight per label: auto (inverse frequency in train), none, or one number per label.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), metavar="RUN_DIR",
              help="Continue an interrupted run from its last checkpoint, with its saved config.")
@click.pass_context
@_handle_errors
def train(ctx: click.Context, config_file: Optional[str], overrides: tuple[str, ...], output_dir: Optional[str],
          overwrite: bool, dataset: Optional[str], data_files: tuple[str, ...], text_columns: tuple[str, ...],
          label_column: Optional[str], cell: Optional[str], layers: Optional[int], bidirectional: Optional[bool],
          epochs: Optional[int], batch_size: Optional[int], lr: Optional[float], seed: Optional[int],
          device: Optional[str], precision: Optional[str], streaming: Optional[bool], multi_label: Optional[bool],
          class_weights: Optional[str], print_config: bool, resume_dir: Optional[str]) -> None:
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

        _quiet_datasets(ctx)
        _echo_result(resume(resume_dir, progress=not ctx.obj["quiet"]))
        return
    updates = _data_updates(dataset, data_files, text_columns, label_column)
    flags = {"output_dir": output_dir, "model.cell": cell, "model.num_layers": layers,
             "model.bidirectional": bidirectional, "train.epochs": epochs, "train.batch_size": batch_size,
             "train.lr": lr, "seed": seed, "train.device": device, "train.precision": precision,
             "data.streaming": streaming, "data.multi_label": multi_label,
             "train.class_weights": _class_weights(class_weights)}
    updates.update({key: value for key, value in flags.items() if value is not None})
    config = load_config(config_file, overrides, updates)
    if print_config:
        import yaml

        click.echo(yaml.safe_dump(config.to_dict(), sort_keys=False), nl=False)
        return

    from seqnlp.training import train as run_training

    _quiet_datasets(ctx)
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
    if _rank() > 0:
        return
    click.echo(f"Run directory: {result.run_dir}")
    click.echo(f"Best epoch {result.best_epoch} (by validation {result.monitor}): "
               f"validation {_headline(result.validation)}")
    if result.test is not None:
        click.echo(f"Test: {_headline(result.test)}")
    click.echo(f"Next: seqnlp evaluate {result.run_dir}  |  seqnlp predict {result.run_dir} \"some text\"")


def _headline(metrics: dict[str, Any]) -> str:
    accuracy = "exact match" if "exact_match" in metrics else "accuracy"
    auroc = "n/a" if metrics.get("auroc") is None else f"{metrics['auroc']:.4f}"
    return f"{accuracy} {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, AUROC {auroc}"


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@_data_options
@click.option("--split", help="Split to evaluate [default: test, else validation].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
@_handle_errors
def evaluate(ctx: click.Context, run_dir: str, dataset: Optional[str], data_files: tuple[str, ...],
             text_columns: tuple[str, ...], label_column: Optional[str], split: Optional[str], as_json: bool) -> None:
    """Evaluate a trained run: accuracy, macro-F1, AUROC, per-class report and confusion matrix.

    A multi-label run reports exact match, Hamming loss, micro/macro-F1 and AUROC, and per label its
    precision, recall, F1, AUROC and the threshold it was decided with (the run's thresholds.json).

    With no data given, the run's own data is used (its test split, else validation).

    \b
    Examples:
      seqnlp evaluate runs/sms
      seqnlp evaluate runs/sst2 --data-files validation=data/dev.tsv --split validation --json
    """
    from seqnlp.config import DataConfig
    from seqnlp.evaluation import evaluate as run_evaluation
    from seqnlp.predict import Classifier

    _quiet_datasets(ctx)
    clf = Classifier.load(run_dir)
    data = None
    updates = _data_updates(dataset, data_files, text_columns, label_column)
    if updates:
        base = copy.deepcopy(clf.config)
        if dataset is not None or data_files:  # other data: keep only how the run read its columns
            run_data = clf.config.data
            base.data = DataConfig(text_columns=run_data.text_columns, text_separator=run_data.text_separator,
                                   label_column=run_data.label_column, label_names=run_data.label_names,
                                   multi_label=run_data.multi_label)
        data = load_config(base=base, updates=updates).data
    result = run_evaluation(clf, data=data, split=split)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(format_report(result, clf.label_names))


def format_report(result: dict[str, Any], label_names: list[str]) -> str:
    """Metrics, per-class report and confusion matrix (multi-label: per-label thresholds) as aligned tables."""
    multi = "exact_match" in result
    lines = [f"Split: {result['split']} ({result['num_examples']:,} examples)", ""]
    headline = ((("exact_match", "exact match"), ("hamming_loss", "Hamming loss"), ("micro_f1", "micro-F1"))
                if multi else (("accuracy", "accuracy"),))
    for key, name in headline + (("macro_f1", "macro-F1"), ("macro_precision", "macro-precision"),
                                 ("macro_recall", "macro-recall"), ("auroc", "AUROC"), ("loss", "loss")):
        lines.append(f"  {name:<16}" + ("n/a" if result[key] is None else f"{result[key]:.4f}"))
    width = max(9, *(len(n) for n in label_names)) + 2
    extra = ("predicted", "threshold") if multi else ()
    lines += ["", f"  {'label':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'auroc':>10}{'support':>10}"
              + "".join(f"{e:>10}" for e in extra)]
    for name, row in result["per_class"].items():
        auroc = "n/a" if row["auroc"] is None else f"{row['auroc']:.4f}"
        lines.append(f"  {name:<{width}}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
                     f"{auroc:>10}{row['support']:>10,}"
                     + (f"{row['predicted']:>10,}{row.get('threshold', 0.5):>10.3f}" if multi else ""))
    if multi:
        return "\n".join(lines)
    cell = max(7, *(len(n) for n in label_names)) + 2
    lines += ["", "  Confusion matrix (rows: true label, columns: predicted)",
              "  " + " " * width + "".join(f"{n:>{cell}}" for n in label_names)]
    for name, row in zip(label_names, result["confusion_matrix"]):
        lines.append(f"  {name:<{width}}" + "".join(f"{v:>{cell},}" for v in row))
    return "\n".join(lines)


@main.command()
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False), help="YAML or JSON config file.")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a dotted config key for every run; repeatable.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False),
              help="Report directory [default: runs/compare-<time>].")
@click.option("--overwrite", is_flag=True, help="Replace runs already in --output-dir.")
@_data_options
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
@click.pass_context
@_handle_errors
def compare(ctx: click.Context, config_file: Optional[str], overrides: tuple[str, ...], output_dir: Optional[str],
            overwrite: bool, dataset: Optional[str], data_files: tuple[str, ...], text_columns: tuple[str, ...],
            label_column: Optional[str], cells: tuple[str, ...], grid: tuple[str, ...], seeds: int,
            epochs: Optional[int], with_diagnostics: bool, diagnose_examples: int, in_process: bool) -> None:
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
    """
    from seqnlp.compare import compare as run_compare
    from seqnlp.compare import parse_grid

    updates = _data_updates(dataset, data_files, text_columns, label_column)
    if epochs is not None:
        updates["train.epochs"] = epochs
    base = load_config(config_file, overrides, updates)
    varied = parse_grid(grid, base)
    if "model.cell" in varied and cells:
        raise click.UsageError("give the cells with --cell or with --grid model.cell=..., not both")
    # The cells come first unless --grid names model.cell, whose place then follows the --grid order.
    full_grid = varied if "model.cell" in varied else {"model.cell": list(cells or CELLS), **varied}
    _quiet_datasets(ctx)
    result = run_compare(base, full_grid, seeds=[base.seed + i for i in range(seeds)], output_dir=output_dir,
                         overwrite=overwrite, isolate=not in_process, progress=not ctx.obj["quiet"],
                         diagnose=with_diagnostics, diagnose_examples=diagnose_examples)
    click.echo(result.table)
    click.echo(f"Report: {result.report_dir}  ({', '.join(sorted(result.files))})")


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--weights", type=click.Choice(["trained", "init", "both"]), default="trained", show_default=True,
              help="Diagnose the runs' trained weights, a fresh initialization, or both.")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False),
              help="Without run directories: fresh models of this config.")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Without run directories: override a dotted config key; repeatable.")
@_data_options
@click.option("--cell", "cells", multiple=True, type=click.Choice(CELLS),
              help="Without run directories: a cell to initialize; repeat [default: rnn, lstm and gru].")
@click.option("-n", "--examples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Examples to average over.")
@click.option("--split", help="Split the examples come from [default: validation].")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False),
              help="Where the CSV, Markdown and PNG files go [default: runs/diagnose-<time>].")
@click.pass_context
@_handle_errors
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
    _quiet_datasets(ctx)
    if run_dirs:
        if from_config:
            raise click.UsageError("give run directories or a config to initialize, not both")
        states = ["init", "trained"] if weights == "both" else [weights]
        subjects = [s for state in states for s in diagnostics.subjects_from_runs(run_dirs, state)]
    else:
        if weights != "init" and ctx.get_parameter_source("weights") != click.core.ParameterSource.DEFAULT:
            raise click.UsageError(f"--weights {weights} needs run directories; a config gives fresh models only")
        config = load_config(config_file, overrides, _data_updates(dataset, data_files, text_columns, label_column))
        subjects = diagnostics.subjects_from_config(config, list(cells or CELLS))
    found = diagnostics.diagnose(subjects, examples=examples, split=split)
    files = diagnostics.write_diagnostics(found, output_dir)
    click.echo(diagnostics.summary_markdown(found))
    click.echo(f"Diagnostics: {next(iter(files.values())).parent}  ({', '.join(files)})")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("texts", nargs=-1)
@click.option("-i", "--input", "input_file", type=click.File("r", encoding="utf-8"),
              help="Read texts from a file, or - for standard input.")
@click.option("--format", "input_format", type=click.Choice(["auto", "text", "jsonl", "csv", "tsv"]),
              default="auto", show_default=True, help="Input format; auto goes by the file suffix (text for stdin).")
@click.option("--text-column", "text_columns", multiple=True, metavar="COL",
              help="Text field for JSONL/CSV input [default: the run's text columns].")
@click.option("-k", "--top-k", type=click.IntRange(min=1), help="Also list the K most probable labels.")
@click.option("--quantize", is_flag=True,
              help="Run int8 dynamic quantization of the LSTM/GRU and linear layers on the CPU: faster, nearly equal.")
@click.pass_context
@_handle_errors
def predict(ctx: click.Context, run_dir: str, texts: tuple[str, ...], input_file: Optional[TextIO],
            input_format: str, text_columns: tuple[str, ...], top_k: Optional[int], quantize: bool) -> None:
    """Predict labels: one JSON object per input text on stdout.

    {"label", "score"} per text; a multi-label run gives {"labels": [every label at or above its threshold],
    "scores": {label: probability}}.

    Texts come from the arguments, or --input: plain text (one text a line), JSONL or CSV/TSV.

    \b
    Examples:
      seqnlp predict runs/sms "WINNER!! Claim your free prize now"
      seqnlp predict runs/sms --input messages.txt --top-k 2
      cat reviews.jsonl | seqnlp predict runs/imdb -i - --format jsonl --text-column review
      seqnlp predict runs/imdb --input reviews.txt --quantize
    """
    from seqnlp.predict import Classifier

    if texts and input_file is not None:
        raise click.UsageError("give texts as arguments or with --input, not both")
    if not texts and input_file is None:
        raise click.UsageError("no texts: give them as arguments or with --input FILE (- for stdin)")
    clf = Classifier.load(run_dir, quantize=quantize)
    if top_k is not None and top_k > len(clf.label_names):
        raise click.BadParameter(f"{top_k} is more than the {len(clf.label_names)} labels", param_hint="--top-k")
    columns = list(text_columns) or clf.config.data.text_columns
    source = iter([list(texts)]) if texts else read_texts(input_file, input_format, columns,  # type: ignore[arg-type]
                                                          clf.config.data.text_separator)
    count = 0
    try:
        for chunk in source:
            for result in clf.predict(chunk, top_k=top_k):
                click.echo(json.dumps(result, ensure_ascii=False))
            count += len(chunk)
    except UnicodeDecodeError as exc:
        raise DataError(f"{getattr(input_file, 'name', 'the input')} is not UTF-8 text (byte {exc.start})") from None
    if count == 0:
        raise DataError(f"no texts in {getattr(input_file, 'name', 'the input')}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 listens on every interface.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on; 0 picks a free one (the log names it).")
@click.option("--max-batch", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most texts in one request (more: 413).")
@click.option("--max-text-chars", type=click.IntRange(min=1), default=20_000, show_default=True,
              help="Most characters in one text (more: 413).")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=1 << 20, show_default=True,
              help="Largest request body (more: 413).")
@click.option("--threads", type=click.IntRange(min=1),
              help="Torch threads for inference [default: the usable cores less one, at least 1].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--no-access-log", is_flag=True, help="Do not log one line per request.")
@click.pass_context
@_handle_errors
def serve(ctx: click.Context, run_dir: str, host: str, port: int, max_batch: int, max_text_chars: int,
          max_body_bytes: int, threads: Optional[int], device: str, no_access_log: bool) -> None:
    """Serve a trained run over HTTP: a JSON API for predictions (needs pip install 'seqnlp[serve]').

    \b
    Endpoints:
      GET  /health       the model is loaded: labels, cell, version
      GET  /v1/model     labels, config summary, parameter count, limits
      POST /v1/predict   {"texts": ["...", ...]} or {"text": "..."}; options "top_k": K,
                         "return_probabilities": true

    Errors are JSON {"error": "..."}: 400 for a body that is not JSON, 422 for wrong fields or types, 413 for a
    request over a limit. Ctrl-C or SIGTERM finishes the requests in flight, then stops.

    \b
    Examples:
      seqnlp serve runs/sms
      seqnlp serve runs/sst2-gru --host 0.0.0.0 --port 8080 --max-batch 64 --threads 2
      curl -s localhost:8000/v1/predict -d '{"texts": ["free prize, call now", "see you at lunch"]}'
    """
    from seqnlp.serve import create_app, default_threads, run_server

    app = create_app(run_dir, max_batch=max_batch, max_text_chars=max_text_chars, max_body_bytes=max_body_bytes,
                     device=device, num_threads=threads or default_threads())
    level = logging.getLogger().getEffectiveLevel()
    run_server(app, host=host, port=port, log_level=logging.getLevelName(level).lower(), access_log=not no_access_log)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-f", "--format", "export_format", default="onnx", show_default=True, metavar="onnx|torchscript",
              help="onnx (for onnxruntime; needs the export extra) or torchscript (for torch.jit.load).")
@click.option("-o", "--output", type=click.Path(), metavar="PATH",
              help="The model file, or a directory for it [default: RUN_DIR/export/].")
@click.option("--quantize", is_flag=True, help="Store the LSTM/GRU and linear layers as int8 (dynamic quantization).")
@click.pass_context
@_handle_errors
def export(ctx: click.Context, run_dir: str, export_format: str, output: Optional[str], quantize: bool) -> None:
    """Export a trained run as one model file that runs without seqnlp.

    The model takes input_ids [batch, time] and lengths [batch] (int64) and returns logits [batch, labels].
    tokenizer.json, labels.json and export.json (input names, shapes, pad id, max_length, labels) go beside
    it. The exported file is run once on texts of mixed lengths and checked against the trained model.

    \b
    Examples:
      seqnlp export runs/sst2                                  # runs/sst2/export/model.onnx
      seqnlp export runs/sst2 --format torchscript --output sst2-ts/
      seqnlp export runs/imdb --quantize                       # runs/imdb/export/model.int8.onnx
    """
    from seqnlp.export import FORMATS

    if export_format not in FORMATS:
        raise ConfigError(f"--format: {export_format!r} is not one of {', '.join(FORMATS)}")
    from seqnlp.export import export_run

    result = export_run(run_dir, format=export_format, output=output, quantize=quantize)
    int8 = f", int8: {', '.join(result.int8) or 'nothing'}" if quantize else ""
    click.echo(f"Model: {result.model_file} ({result.format}{int8})")
    click.echo(f"Beside it: {', '.join(p.name for p in result.files[1:])}")
    click.echo(f"Check: max |logit difference| from the trained model {result.max_abs_diff:.2e} "
               "on random texts of mixed lengths")


def read_texts(stream: TextIO, input_format: str, columns: list[str], separator: str) -> Iterator[list[str]]:
    """Yield texts in chunks from plain-text lines, JSONL or CSV/TSV; errors name the line."""
    name = getattr(stream, "name", "<input>")
    fmt = input_format
    if fmt == "auto":
        suffix = Path(str(name)).suffix.lower()
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}.get(suffix, "text")
    if fmt in ("csv", "tsv"):
        # TSV is read without quoting, as the data layer reads .tsv files.
        reader = csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else csv.DictReader(stream)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{name}: column {missing[0]!r} not found; columns: {', '.join(reader.fieldnames or [])}")
        rows: Iterator[str] = (separator.join(row[c] or "" for c in columns) for row in reader)
    elif fmt == "jsonl":
        rows = _jsonl_texts(stream, name, columns, separator)
    else:
        rows = (line.rstrip("\r\n") for line in stream)
    chunk: list[str] = []
    for text in rows:
        chunk.append(text)
        if len(chunk) == PREDICT_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _jsonl_texts(stream: TextIO, name: str, columns: list[str], separator: str) -> Iterator[str]:
    from seqnlp.data.files import iter_jsonl

    for number, record in iter_jsonl(stream, name):
        if any(c not in record for c in columns):
            raise DataError(f"{name}, line {number}: needs field(s) {', '.join(columns)}; found {', '.join(record)}")
        yield separator.join("" if record[c] is None else str(record[c]) for c in columns)


if __name__ == "__main__":  # pragma: no cover
    main()
