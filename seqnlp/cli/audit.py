"""``seqnlp audit`` (``seqnlp.data.audit.audit``) and ``seqnlp push`` (``seqnlp.hub.push``): check data before
training, publish a run after it."""

from __future__ import annotations

from typing import Optional

import click

from seqnlp.cli.options import config_options, data_options, data_updates, handle_errors, quiet_datasets
from seqnlp.config import load_config
from seqnlp.errors import DataError
from seqnlp.rundir import check_run_dir


@click.command()
@config_options("e.g. tokenizer.kind=bpe")
@data_options
@click.option("--strict", is_flag=True,
              help="Exit 1 when a split shares a text with an earlier one (leakage), after printing the report.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of Markdown.")
@click.pass_context
@handle_errors
def audit(ctx: click.Context, config_file: Optional[str], overrides: tuple[str, ...], dataset: Optional[str],
          data_files: tuple[str, ...], text_columns: tuple[str, ...], label_column: Optional[str], strict: bool,
          as_json: bool) -> None:
    """Check a data set before training on it.

    Loads and splits the data as `seqnlp train` would with the same settings, then reports: exact and
    normalized duplicates within splits, leakage across them, texts with different labels, empty texts, class
    balance, token-length percentiles under the tokenizer training would build (and the max_length that keeps
    95% and 99% of the texts, with the padding it implies), the unknown-token rate, vector coverage when
    model.pretrained_vectors is set, and a majority-class baseline.

    \b
    Examples:
      seqnlp audit                                   # the embedded SMS Spam Collection
      seqnlp audit --config configs/imdb.yaml
      seqnlp audit --config configs/sst2.yaml --strict      # CI: fail on train/validation/test leakage
      seqnlp audit --data-files train=train.csv --data-files test=test.csv --json > audit.json
    """
    config = load_config(config_file, overrides, data_updates(dataset, data_files, text_columns, label_column))
    from seqnlp.data.audit import audit as run_audit

    quiet_datasets(ctx)
    report = run_audit(config, progress=not ctx.obj["quiet"])
    click.echo(report.to_json() if as_json else report.to_markdown().rstrip("\n"))
    if strict and report.leaked:
        leaks = "; ".join(f"{leak.rows:,} {leak.target} rows also in {leak.source}" for leak in report.scan.leaked)
        raise DataError(f"leakage across splits: {leaks} (--strict)")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("repo_id")
@click.option("--to-dir", type=click.Path(file_okay=False),
              help="Write exactly what would be uploaded to this new folder instead; no network.")
@click.option("--private", is_flag=True, help="Make a new repository private.")
@click.option("--revision", metavar="BRANCH", help="Branch to commit to [default: main].")
@click.option("-m", "--message", help="Commit message.")
@click.option("--keep-card", is_flag=True, help="Upload the run's README.md as it is (e.g. edited by hand) instead "
                                                "of rendering the model card again.")
@handle_errors
def push(run_dir: str, repo_id: str, to_dir: Optional[str], private: bool, revision: Optional[str],
         message: Optional[str], keep_card: bool) -> None:
    """Upload a run directory to the Hugging Face Hub as model repository REPO_ID.

    Everything but the resumable training state (checkpoints/) goes up in one commit, with the model card
    (README.md) rendered for REPO_ID. Log in first (`hf auth login`, or set HF_TOKEN). --to-dir writes the
    same files to a folder instead, to inspect them or upload them later.

    \b
    Examples:
      seqnlp push runs/sms me/sms-spam-lstm
      seqnlp push runs/sms me/sms-spam-lstm --private --revision experiments
      seqnlp push runs/sms me/sms-spam-lstm --to-dir export/sms-spam-lstm     # offline: what would be uploaded
    """
    check_run_dir(run_dir)
    from seqnlp.hub import push as run_push

    result = run_push(run_dir, repo_id, to_dir=to_dir, private=private, revision=revision, message=message,
                      keep_card=keep_card)
    where = f"{result.to_dir}" if result.to_dir is not None else f"https://huggingface.co/{repo_id}"
    click.echo(f"{len(result.files)} files -> {where}" + (f" (commit {result.url})" if result.url else ""))
