"""The ``seqnlp`` command: each command parses its options, makes one call into the library, and echoes.

    seqnlp train      train a classifier into a run directory, or --resume one  (seqnlp.train)
    seqnlp evaluate   metrics of a run on a split of its own data or of other data  (seqnlp.evaluate)
    seqnlp predict    one JSON object per text, from arguments or a file  (seqnlp.load(...).predict)
    seqnlp compare    cells and settings trained on the same data, budget and seeds  (seqnlp.compare.compare)
    seqnlp diagnose   gradient flow and saturation of trained or fresh models  (seqnlp.compare.diagnose)
    seqnlp serve      an HTTP JSON API over a run  (seqnlp.serve.create_app)
    seqnlp export     a run as one ONNX or TorchScript file  (seqnlp.export_run)

compare and diagnose are defined in ``seqnlp.cli_compare``, the options and error handling every command shares in
``seqnlp.cli_options``. Heavy imports (torch, datasets) happen inside the commands, so ``seqnlp --help`` answers at
once.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Optional, TextIO

import click

from seqnlp.cli_compare import compare, diagnose
from seqnlp.cli_options import (data_options, data_updates, handle_errors, inference_options, parse_data_files,
                                quiet_datasets, rank)
from seqnlp.config import CELLS, PRECISIONS, load_config
from seqnlp.errors import ConfigError


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
    if rank() > 0:  # under torchrun, rank 0 speaks for the run: the others log warnings and errors only
        quiet, verbose = True, False
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("datasets", "filelock", "fsspec", "urllib3", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    ctx.obj = {"quiet": quiet}


main.add_command(compare)
main.add_command(diagnose)


@main.command()
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

        quiet_datasets(ctx)
        _echo_result(resume(resume_dir, progress=not ctx.obj["quiet"]))
        return
    updates = data_updates(dataset, data_files, text_columns, label_column)
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


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@data_options
@click.option("--split", help="Split to evaluate [default: test, else validation].")
@inference_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
@handle_errors
def evaluate(ctx: click.Context, run_dir: str, dataset: Optional[str], data_files: tuple[str, ...],
             text_columns: tuple[str, ...], label_column: Optional[str], split: Optional[str], batch_size: int,
             precision: str, as_json: bool) -> None:
    """Evaluate a trained run: accuracy, macro-F1, AUROC, per-class report and confusion matrix.

    A multi-label run reports exact match, Hamming loss, micro/macro-F1 and AUROC, and per label its
    precision, recall, F1, AUROC and the threshold it was decided with (the run's thresholds.json).

    With no data given, the run's own data is used (its test split, else validation). Other data is read with
    the run's text and label columns unless --text-column/--label-column say otherwise.

    \b
    Examples:
      seqnlp evaluate runs/sms
      seqnlp evaluate runs/sst2 --data-files validation=data/dev.tsv --split validation --json
      seqnlp evaluate runs/imdb --batch-size 1024 --precision bf16
    """
    from seqnlp.evaluation import evaluate as run_evaluation
    from seqnlp.evaluation import format_report

    quiet_datasets(ctx)
    result = run_evaluation(run_dir, split=split, dataset=dataset, data_files=parse_data_files(data_files),
                            text_columns=text_columns, label_column=label_column, batch_size=batch_size,
                            precision=precision)
    click.echo(json.dumps(result) if as_json else format_report(result))


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
@inference_options
@click.pass_context
@handle_errors
def predict(ctx: click.Context, run_dir: str, texts: tuple[str, ...], input_file: Optional[TextIO],
            input_format: str, text_columns: tuple[str, ...], top_k: Optional[int], quantize: bool, batch_size: int,
            precision: str) -> None:
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
    from seqnlp.data.files import read_texts
    from seqnlp.predict import Classifier

    if texts and input_file is not None:
        raise click.UsageError("give texts as arguments or with --input, not both")
    if not texts and input_file is None:
        raise click.UsageError("no texts: give them as arguments or with --input FILE (- for stdin)")
    clf = Classifier.load(run_dir, quantize=quantize, batch_size=batch_size, precision=precision)
    if top_k is not None and top_k > len(clf.label_names):
        raise click.BadParameter(f"{top_k} is more than the {len(clf.label_names)} labels", param_hint="--top-k")
    columns = list(text_columns) or clf.config.data.text_columns
    chunks = [list(texts)] if texts else read_texts(input_file, input_format, columns,  # type: ignore[arg-type]
                                                    clf.config.data.text_separator)
    for chunk in chunks:
        for result in clf.predict(chunk, top_k=top_k):
            click.echo(json.dumps(result, ensure_ascii=False))


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
@inference_options
@click.option("--no-access-log", is_flag=True, help="Do not log one line per request.")
@click.pass_context
@handle_errors
def serve(ctx: click.Context, run_dir: str, host: str, port: int, max_batch: int, max_text_chars: int,
          max_body_bytes: int, threads: Optional[int], device: str, batch_size: int, precision: str,
          no_access_log: bool) -> None:
    """Serve a trained run over HTTP: a JSON API for predictions (needs pip install 'seqnlp[serve]').

    \b
    Endpoints:
      GET  /health       the model is loaded: labels, cell, version
      GET  /v1/model     labels, config summary, parameter count, limits, batch size, precision
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
                     device=device, num_threads=threads or default_threads(), batch_size=batch_size,
                     precision=precision)
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
@handle_errors
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


if __name__ == "__main__":  # pragma: no cover
    main()
