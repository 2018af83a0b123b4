"""The ``seqnlp`` command: each command parses its options, makes one call into the library, and echoes.

    seqnlp train      train a classifier into a run directory, or --resume one  (seqnlp.train)
    seqnlp pretrain   pretrain the embedding and encoder as a language model  (seqnlp.training.pretrain)
    seqnlp baseline   a fast TF-IDF n-gram linear model on train's splits  (seqnlp.baseline.fit_baseline)
    seqnlp evaluate   metrics of a run on a split of its own data or of other data  (seqnlp.evaluate)
    seqnlp predict    one JSON object per text, from arguments or a file  (seqnlp.load(...).predict)
    seqnlp calibrate  fit a run's temperature (and binary threshold) again on a labelled split  (seqnlp.evaluation)
    seqnlp compare    cells and settings trained on the same data, budget and seeds  (seqnlp.compare.compare)
    seqnlp diagnose   gradient flow and saturation of trained or fresh models  (seqnlp.compare.diagnose)
    seqnlp serve      an HTTP JSON API over a run  (seqnlp.serve.create_app)
    seqnlp export     a run as one ONNX or TorchScript file  (seqnlp.export_run)
    seqnlp explain    token attributions of a run's decisions: Integrated Gradients and occlusion  (seqnlp.explain)
    seqnlp report     one self-contained HTML page about a run  (seqnlp.report.run.write_report)
    seqnlp audit      duplicates, leakage, label conflicts, lengths and baselines of a data set  (seqnlp.data.audit)
    seqnlp push       a run directory to the Hugging Face Hub, or to a folder  (seqnlp.hub.push)
    seqnlp tune       a hyper-parameter search in a time budget, on Optuna  (seqnlp.tune.tune)

Each family of commands has a module of its own (``seqnlp.cli.train``, ``.baseline``, ``.inference``, ``.compare``,
``.deploy``, ``.explain``, ``.audit``, ``.tune``); the options and error handling they share are in
``seqnlp.cli.options``. Heavy imports (torch, datasets, scikit-learn) happen inside the commands, so ``seqnlp --help``
answers at once.
"""

from __future__ import annotations

import logging
import sys

import click

from seqnlp.cli.audit import audit, push
from seqnlp.cli.baseline import baseline
from seqnlp.cli.compare import compare, diagnose
from seqnlp.cli.deploy import export, serve
from seqnlp.cli.explain import explain, report
from seqnlp.cli.inference import calibrate, evaluate, predict
from seqnlp.cli.options import rank
from seqnlp.cli.pretrain import pretrain
from seqnlp.cli.train import train
from seqnlp.cli.tune import tune
from seqnlp.threads import prefer_passive_wait


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
      seqnlp baseline --config configs/sst2.yaml     # a TF-IDF n-gram linear model on the same splits
      seqnlp pretrain --config configs/imdb-pretrain.yaml -o runs/imdb-lm
      seqnlp evaluate runs/sst2-gru
      seqnlp predict runs/sst2-gru "a gripping, beautifully shot film"
      seqnlp compare --config configs/sst2.yaml --seeds 3 --diagnose
      seqnlp diagnose runs/sst2-gru --weights both
      seqnlp serve runs/sst2-gru --port 8000
      seqnlp export runs/sst2-gru --format onnx
      seqnlp explain runs/sst2-gru "not a bad film at all"
      seqnlp report runs/sst2-gru                  # runs/sst2-gru/report.html
      seqnlp audit --config configs/sst2.yaml --strict
      seqnlp push runs/sst2-gru me/sst2-gru
      seqnlp tune --config configs/sst2.yaml --budget 20m
    """
    prefer_passive_wait()  # before any command loads torch: OpenMP threads that sleep at barriers (seqnlp.threads)
    if rank() > 0:  # under torchrun, rank 0 speaks for the run: the others log warnings and errors only
        quiet, verbose = True, False
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("datasets", "filelock", "fsspec", "urllib3", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    ctx.obj = {"quiet": quiet}


for _command in (train, pretrain, baseline, evaluate, predict, calibrate, compare, diagnose, serve, export, explain,
                 report, audit, push, tune):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
