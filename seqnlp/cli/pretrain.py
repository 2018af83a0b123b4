"""``seqnlp pretrain``: a language model over the classifier's embedding and encoder, from the same settings as
``seqnlp train``, in one call to ``seqnlp.training.pretrain`` (or ``seqnlp.training.resume``)."""

from __future__ import annotations

from typing import Any, Optional

import click

from seqnlp.cli.options import (config_options, data_options, data_updates, handle_errors, output_options,
                                quiet_datasets, rank, resume_alone, show_progress)
from seqnlp.rundir import check_run_dir
from seqnlp.config import load_config


@click.command()
@config_options("e.g. pretrain.epochs=3")
@output_options("Run directory of the language model [default: runs/lm-<cell>-<time>].")
@data_options
@click.option("--text-file", "text_files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Unlabelled texts to pretrain on besides the training split (.txt: one a line; .jsonl/.csv/.tsv: "
                   "the text columns); repeatable (pretrain.text_files).")
@click.option("--epochs", type=click.IntRange(min=1), help="Language-model epochs (pretrain.epochs).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), metavar="RUN_DIR",
              help="Continue an interrupted pretraining run from its last checkpoint, with its saved config.")
@click.pass_context
@handle_errors
def pretrain(ctx: click.Context, config_file: Optional[str], overrides: tuple[str, ...], output_dir: Optional[str],
             overwrite: bool, dataset: Optional[str], data_files: tuple[str, ...], text_columns: tuple[str, ...],
             label_column: Optional[str], text_files: tuple[str, ...], epochs: Optional[int],
             resume_dir: Optional[str]) -> None:
    """Pretrain the embedding and recurrent encoder as a language model, for `seqnlp train --init-from`.

    The model, tokenizer and data settings are those of `seqnlp train` (the same config file serves both);
    the language model reads the training split's texts and any --text-file, never the validation or test
    texts (validation measures its perplexity). A bidirectional encoder learns both directions: forward
    predicts the next token, backward the previous one. The pretrain section sets epochs, lr, batch size
    and the adaptive softmax. docs/pretraining.md has the details and what it measured.

    \b
    Examples:
      seqnlp pretrain -c configs/imdb-pretrain.yaml -o runs/imdb-lm
      seqnlp train -c configs/imdb-pretrain.yaml --init-from runs/imdb-lm --set train.pretrain=false
      seqnlp pretrain --data-files train=reviews.csv --text-file unlabelled.txt -o runs/lm --epochs 3
      seqnlp pretrain --resume runs/imdb-lm      # after Ctrl-C, SIGTERM or a crash
    """
    if resume_dir is not None:
        resume_alone(ctx)
        check_run_dir(resume_dir)  # before the heavy imports: a usage error answers at once
        from seqnlp.training import resume_pretraining

        quiet_datasets(ctx)
        _echo_result(resume_pretraining(resume_dir, progress=show_progress(ctx)))
        return
    updates = data_updates(dataset, data_files, text_columns, label_column)
    flags: dict[str, Any] = {"output_dir": output_dir, "pretrain.epochs": epochs,
                             "pretrain.text_files": list(text_files) or None}
    updates.update({key: value for key, value in flags.items() if value is not None})
    config = load_config(config_file, overrides, updates)

    from seqnlp.training import pretrain as run_pretraining

    quiet_datasets(ctx)
    _echo_result(run_pretraining(config, overwrite=overwrite, progress=show_progress(ctx)))


def _echo_result(result: Any) -> None:
    if rank() > 0:
        return
    click.echo(f"Run directory: {result.run_dir}")
    click.echo(f"Best epoch {result.best_epoch}: validation perplexity {result.validation['perplexity']:.2f} "
               f"(loss {result.validation['loss']:.4f})")
    click.echo(f"Next: seqnlp train --init-from {result.run_dir} (with the same model and data settings)")
