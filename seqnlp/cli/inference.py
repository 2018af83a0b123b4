"""``seqnlp evaluate``, ``seqnlp predict`` and ``seqnlp calibrate``: a trained run applied to a split or to texts,
and its calibration fitted again on a split."""

from __future__ import annotations

import json
from typing import Optional, TextIO

import click

from seqnlp.cli.options import (INFERENCE_BATCH_SIZE, data_options, handle_errors, inference_options, other_data_options,
                                parse_data_files, quiet_datasets, threads_option)
from seqnlp.config import THRESHOLD_RULES
from seqnlp.rundir import check_run_dir


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@other_data_options
@click.option("--split", help="Split to evaluate [default: test, else validation].")
@inference_options
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
@handle_errors
def evaluate(ctx: click.Context, run_dir: str, dataset: Optional[str], data_files: tuple[str, ...],
             text_columns: tuple[str, ...], label_column: Optional[str], split: Optional[str], batch_size: int,
             precision: str, threads: int | str, as_json: bool) -> None:
    """Evaluate a trained run: accuracy, macro-F1, AUROC, per-class report, confusion matrix and calibration.

    Calibration: ECE, MCE, Brier score and NLL before and after the run's temperature (calibration.json), a
    reliability table, and the accuracy on the most confident 100% ... 50% of the texts (risk-coverage).

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
    check_run_dir(run_dir)  # before the heavy imports: a usage error answers at once
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
@click.option("--min-confidence", type=click.FloatRange(0, 1), metavar="P",
              help="Abstain (label null, abstained true) when the decision's calibrated probability is below P.")
@inference_options
@threads_option
@click.pass_context
@handle_errors
def predict(ctx: click.Context, run_dir: str, texts: tuple[str, ...], input_file: Optional[TextIO],
            input_format: str, text_columns: tuple[str, ...], top_k: Optional[int], quantize: bool,
            min_confidence: Optional[float], batch_size: int, precision: str, threads: int | str) -> None:
    """Predict labels: one JSON object per input text on stdout.

    {"label", "score"} per text, the score a calibrated probability (the run's calibration.json); a multi-label
    run gives {"labels": [every label at or above its threshold], "scores": {label: probability}}. With
    --min-confidence P every object says "abstained": below P it is {"label": null, "abstained": true,
    "best": the label held back, "score": ...}; `seqnlp evaluate` shows the accuracy each P keeps.

    Texts come from the arguments, or --input: plain text (one text a line), JSONL or CSV/TSV. A lone - (as the
    text or the --input file) reads standard input, as Unix tools do; empty standard input prints nothing.

    \b
    Examples:
      seqnlp predict runs/sms "WINNER!! Claim your free prize now"
      seqnlp predict runs/sms --input messages.txt --top-k 2
      cat reviews.jsonl | seqnlp predict runs/imdb -i - --format jsonl --text-column review
      zcat shard-*.txt.gz | seqnlp predict runs/imdb -
      seqnlp predict runs/imdb --input reviews.txt --quantize
      seqnlp predict runs/sms --min-confidence 0.9 "are we still on for tonight"
    """
    if texts == ("-",) and input_file is None:
        texts, input_file = (), click.open_file("-", encoding="utf-8")
    if texts and input_file is not None:
        raise click.UsageError("give texts as arguments or with --input, not both")
    if not texts and input_file is None:
        raise click.UsageError("no texts: give them as arguments or with --input FILE (- for stdin)")
    check_run_dir(run_dir)  # before the heavy imports: a usage error answers at once
    from seqnlp.data.files import read_texts
    from seqnlp.predict import Classifier

    clf = Classifier.load(run_dir, quantize=quantize, batch_size=batch_size, precision=precision, num_threads=threads)
    if top_k is not None and top_k > len(clf.label_names):
        raise click.BadParameter(f"{top_k} is more than the {len(clf.label_names)} labels", param_hint="--top-k")
    columns = list(text_columns) or clf.config.data.text_columns
    stdin = input_file is not None and getattr(input_file, "name", "") in ("<stdin>", "-")
    chunks = [list(texts)] if texts else read_texts(input_file, input_format, columns,  # type: ignore[arg-type]
                                                    clf.config.data.text_separator, empty_ok=stdin)
    for chunk in chunks:
        for result in clf.predict(chunk, top_k=top_k, min_confidence=min_confidence):
            click.echo(json.dumps(result, ensure_ascii=False))


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@data_options
@click.option("--split", help="Labelled split to fit on [default: the run's validation split].")
@click.option("--threshold", "rule", type=click.Choice(THRESHOLD_RULES), default="argmax", show_default=True,
              help="Binary runs: decide by the most probable label, or by a threshold tuned for F1 or precision.")
@click.option("--target-precision", type=click.FloatRange(0, 1, min_open=True), metavar="P",
              help="Binary runs: the most recall at precision P of the positive label; implies --threshold precision.")
@click.option("--positive-label", metavar="LABEL", help="Binary runs: the label the threshold is on [default: the "
              "second label].")
@click.option("--no-temperature", is_flag=True, help="Keep temperature 1 (no temperature scaling).")
@click.option("--batch-size", type=click.IntRange(min=1), default=INFERENCE_BATCH_SIZE, show_default=True,
              help="Texts per forward pass.")
@click.pass_context
@handle_errors
def calibrate(ctx: click.Context, run_dir: str, dataset: Optional[str], data_files: tuple[str, ...],
              text_columns: tuple[str, ...], label_column: Optional[str], split: Optional[str], rule: str,
              target_precision: Optional[float], positive_label: Optional[str], no_temperature: bool,
              batch_size: int) -> None:
    """Fit a run's calibration again on a labelled split: its temperature, and a binary run's decision threshold.

    Training fits them on the validation split; fit them here on labelled data that looks like what the run
    will see, give a run trained before seqnlp calibrated runs its calibration.json, or move a binary run's
    --target-precision without training again. Prints the new calibration.json.

    \b
    Examples:
      seqnlp calibrate runs/sms --target-precision 0.99
      seqnlp calibrate runs/sst2 --data-files heldout=data/sst2-heldout.tsv --split heldout
    """
    check_run_dir(run_dir)
    from seqnlp.evaluation import calibrate as run_calibration

    if target_precision is not None and ctx.get_parameter_source("rule") == click.core.ParameterSource.COMMANDLINE \
            and rule != "precision":
        raise click.UsageError(f"--target-precision sets --threshold precision; drop --threshold {rule}")
    quiet_datasets(ctx)
    record = run_calibration(run_dir, split, temperature=not no_temperature,
                             threshold="precision" if target_precision is not None else rule,
                             target_precision=target_precision or 0.95, positive_label=positive_label,
                             batch_size=batch_size, dataset=dataset, data_files=parse_data_files(data_files) or None,
                             text_columns=text_columns or None, label_column=label_column)
    click.echo(json.dumps(record, indent=2))
