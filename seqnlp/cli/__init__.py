"""The ``seqnlp`` command: each command parses its options, makes one call into the library, and echoes.

    seqnlp train      train a classifier into a run directory, or --resume one  (seqnlp.train)
    seqnlp evaluate   metrics of a run on a split of its own data or of other data  (seqnlp.evaluate)
    seqnlp predict    one JSON object per text, from arguments or a file  (seqnlp.load(...).predict)
    seqnlp compare    cells and settings trained on the same data, budget and seeds  (seqnlp.compare.compare)
    seqnlp diagnose   gradient flow and saturation of trained or fresh models  (seqnlp.compare.diagnose)
    seqnlp serve      an HTTP JSON API over a run  (seqnlp.serve.create_app)
    seqnlp export     a run as one ONNX or TorchScript file  (seqnlp.export_run)

Each family of commands has a module of its own (``seqnlp.cli.train``, ``.inference``, ``.compare``, ``.deploy``);
the options and error handling they share are in ``seqnlp.cli.options``. Heavy imports (torch, datasets) happen inside the commands, so ``seqnlp --help`` answers at
once.
"""

from __future__ import annotations

import logging
import sys

import click

from seqnlp.cli.compare import compare, diagnose
from seqnlp.cli.deploy import export, serve
from seqnlp.cli.inference import evaluate, predict
from seqnlp.cli.options import rank
from seqnlp.cli.train import train
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
      seqnlp evaluate runs/sst2-gru
      seqnlp predict runs/sst2-gru "a gripping, beautifully shot film"
      seqnlp compare --config configs/sst2.yaml --seeds 3 --diagnose
      seqnlp diagnose runs/sst2-gru --weights both
      seqnlp serve runs/sst2-gru --port 8000
      seqnlp export runs/sst2-gru --format onnx
    """
    prefer_passive_wait()  # before any command loads torch: OpenMP threads that sleep at barriers (seqnlp.threads)
    if rank() > 0:  # under torchrun, rank 0 speaks for the run: the others log warnings and errors only
        quiet, verbose = True, False
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("datasets", "filelock", "fsspec", "urllib3", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    ctx.obj = {"quiet": quiet}


for _command in (train, evaluate, predict, compare, diagnose, serve, export):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
