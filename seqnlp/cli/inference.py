"""``seqnlp evaluate`` and ``seqnlp predict``: a trained run applied to a split or to texts."""

from __future__ import annotations

import json
from typing import Optional, TextIO

import click

from seqnlp.cli.options import (data_options, handle_errors, inference_options, parse_data_files, quiet_datasets,
                                threads_option)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@data_options
@click.option("--split", help="Split to evaluate [default: test, else validation].")
@inference_options
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
@handle_errors
def evaluate(ctx: click.Context, run_dir: str, dataset: Optional[str], data_files: tuple[str, ...],
             text_columns: tuple[str, ...], label_column: Optional[str], split: Optional[str], batch_size: int,
             precision: str, threads: int | str, as_json: bool) -> None:
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
                            precision=precision, num_threads=threads)
    click.echo(json.dumps(result) if as_json else format_report(result))


@click.command()
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
@threads_option
@click.pass_context
@handle_errors
def predict(ctx: click.Context, run_dir: str, texts: tuple[str, ...], input_file: Optional[TextIO],
            input_format: str, text_columns: tuple[str, ...], top_k: Optional[int], quantize: bool, batch_size: int,
            precision: str, threads: int | str) -> None:
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
    clf = Classifier.load(run_dir, quantize=quantize, batch_size=batch_size, precision=precision, num_threads=threads)
    if top_k is not None and top_k > len(clf.label_names):
        raise click.BadParameter(f"{top_k} is more than the {len(clf.label_names)} labels", param_hint="--top-k")
    columns = list(text_columns) or clf.config.data.text_columns
    chunks = [list(texts)] if texts else read_texts(input_file, input_format, columns,  # type: ignore[arg-type]
                                                    clf.config.data.text_separator)
    for chunk in chunks:
        for result in clf.predict(chunk, top_k=top_k):
            click.echo(json.dumps(result, ensure_ascii=False))
