"""``seqnlp baseline``: the fast n-gram linear baseline on the very splits ``seqnlp train`` would use."""

from __future__ import annotations

import json
from typing import Any, Optional

import click

from seqnlp.cli.options import config_options, data_options, data_updates, handle_errors, quiet_datasets
from seqnlp.config import BASELINE_CLASSIFIERS, load_config


@click.command()
@config_options("e.g. baseline.char_ngrams=5")
@data_options
@click.option("--classifier", type=click.Choice(BASELINE_CLASSIFIERS), help="Linear classifier (baseline.classifier).")
@click.option("--seed", type=int, help="Random seed: the same seed carves the same splits as train.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.pass_context
@handle_errors
def baseline(ctx: click.Context, config_file: Optional[str], overrides: tuple[str, ...], dataset: Optional[str],
             data_files: tuple[str, ...], text_columns: tuple[str, ...], label_column: Optional[str],
             classifier: Optional[str], seed: Optional[int], as_json: bool) -> None:
    """Fit a TF-IDF n-gram linear model on train's splits and report validation and test accuracy.

    The data is loaded and carved exactly as `seqnlp train` would with the same config and seed, so the
    numbers read beside a run's. The model: TF-IDF word 1-2-grams (baseline.word_ngrams), optionally
    character n-grams (baseline.char_ngrams), and logistic regression or a linear SVM (scikit-learn,
    pip install 'seqnlp[baseline]'). `seqnlp train --baseline` fits it too and records it in results.json.

    \b
    Examples:
      seqnlp baseline                                    # the embedded SMS Spam Collection
      seqnlp baseline --config configs/imdb.yaml
      seqnlp baseline --config configs/sst2.yaml --classifier svm --set baseline.char_ngrams=5
      seqnlp baseline --data-files train=train.csv --data-files test=test.csv --json
    """
    updates: dict[str, Any] = data_updates(dataset, data_files, text_columns, label_column)
    flags = {"baseline.classifier": classifier, "seed": seed}
    updates.update({key: value for key, value in flags.items() if value is not None})
    config = load_config(config_file, overrides, updates)

    from seqnlp.baseline import fit_baseline

    quiet_datasets(ctx)
    result = fit_baseline(config)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    click.echo(f"Baseline: {result.description}, {result.num_features:,} features, {result.train_examples:,} "
               f"training texts, {result.seconds:.1f} s")
    click.echo(f"Validation: {headline(result.validation)}")
    if result.test is not None:
        click.echo(f"Test: {headline(result.test)}")


def headline(metrics: dict[str, float]) -> str:
    return f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"
