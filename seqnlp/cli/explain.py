"""``seqnlp explain`` and ``seqnlp report``: why a run decides as it does, and one HTML page about a run."""

from __future__ import annotations

import sys
from typing import Optional, TextIO

import click

from seqnlp.cli.options import handle_errors, quiet_datasets
from seqnlp.rundir import check_run_dir

DEFAULT_STEPS = 32  # seqnlp.explain.DEFAULT_STEPS, without importing torch
DEFAULT_EXAMPLES = 8  # seqnlp.report.run.DEFAULT_EXAMPLES


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("texts", nargs=-1)
@click.option("-i", "--input", "input_file", type=click.File("r", encoding="utf-8"),
              help="Read texts from a file, one a line, or - for standard input.")
@click.option("--label", help="Explain this label instead of the one the run decides.")
@click.option("--steps", type=click.IntRange(1, 1024), default=DEFAULT_STEPS, show_default=True,
              help="Integrated Gradients interpolation steps (one batch): more steps, smaller completeness gap.")
@click.option("--no-occlusion", is_flag=True, help="Skip the leave-one-token-out cross-check.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per text instead of coloured text.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write a standalone HTML page of the explanations to FILE.")
@click.option("--color/--no-color", default=None, help="Colour the tokens [default: when stdout is a terminal].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.pass_context
@handle_errors
def explain(ctx: click.Context, run_dir: str, texts: tuple[str, ...], input_file: Optional[TextIO],
            label: Optional[str], steps: int, no_occlusion: bool, as_json: bool, html_file: Optional[str],
            color: Optional[bool], device: str) -> None:
    """Explain a run's decisions token by token: Integrated Gradients on the embeddings, checked by occlusion.

    Each token's attribution is its share of the label's log-odds (green: towards the label, red: against);
    they add up to the log-odds minus the all-[PAD] baseline's, and the gap left is printed. Occlusion, the
    log-odds lost when the token is deleted, checks them without gradients (Spearman rank agreement).

    \b
    Examples:
      seqnlp explain runs/sst2 "a gripping , beautifully shot film"
      seqnlp explain runs/sst2 "not a bad film" --label negative --steps 64
      seqnlp explain runs/sms --input messages.txt --json > explanations.jsonl
      seqnlp explain runs/imdb "one of the dullest films this year" --html why.html
    """
    check_run_dir(run_dir)  # before the heavy imports: a usage error answers at once
    from seqnlp.data.files import read_texts
    from seqnlp.explain import explain as run_explain
    from seqnlp.explain import render

    if texts and input_file is not None:
        raise click.UsageError("give texts as arguments or with --input, not both")
    if not texts and input_file is None:
        raise click.UsageError("no texts: give them as arguments or with --input FILE (- for stdin)")
    chunks = [list(texts)] if texts else read_texts(input_file, "text", ["text"])  # type: ignore[arg-type]
    chosen = [text for chunk in chunks for text in chunk]
    explanations = run_explain(run_dir, chosen, label=label, steps=steps, with_occlusion=not no_occlusion,
                               device=device)
    if as_json:
        click.echo(render.to_json(explanations))
    else:
        colored = sys.stdout.isatty() if color is None else color
        click.echo("\n\n".join(render.terminal(e, color=colored) for e in explanations), color=colored)
    if html_file is not None:
        path = render.write_html(html_file, explanations, subtitle=f"seqnlp explain {run_dir}")
        click.echo(f"HTML: {path}", err=True)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE",
              help="Where the page goes [default: RUN_DIR/report.html].")
@click.option("--split", help="Labelled split to evaluate [default: test, else validation].")
@click.option("--examples", type=click.IntRange(min=0), default=DEFAULT_EXAMPLES, show_default=True,
              help="Most confident mistakes to show, each explained (0: none).")
@click.option("--steps", type=click.IntRange(1, 1024), default=DEFAULT_STEPS, show_default=True,
              help="Integrated Gradients steps of the explanations.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.pass_context
@handle_errors
def report(ctx: click.Context, run_dir: str, output: Optional[str], split: Optional[str], examples: int, steps: int,
           device: str) -> None:
    """Write one self-contained HTML page about a run: open it in any browser, offline.

    Training curves, the confusion matrix and per-class table of a labelled split, calibration before and after
    the temperature (reliability, risk-coverage), and the most confident mistakes with their explanations.
    Figures need matplotlib (pip install 'seqnlp[plots]'); without it the page shows tables.

    \b
    Examples:
      seqnlp report runs/sms
      seqnlp report runs/sst2 --split validation --examples 12 -o sst2-report.html
    """
    check_run_dir(run_dir)
    from seqnlp.report.run import write_report

    quiet_datasets(ctx)
    path = write_report(run_dir, output=output, split=split, examples=examples, steps=steps, device=device)
    click.echo(f"Report: {path}")
