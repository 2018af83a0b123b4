"""``seqnlp serve`` and ``seqnlp export``: a trained run as an HTTP API or as one model file."""

from __future__ import annotations

import logging
from typing import Optional

import click

from seqnlp.cli.options import handle_errors, inference_options, parse_threads
from seqnlp.errors import ConfigError


@click.command()
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
@click.option("--threads", default="auto", show_default=True, metavar="N|auto", callback=parse_threads,
              help="Torch threads for inference: N, or auto: at most the usable CPUs less one (the event loop's), "
                   "the fastest count timed over the requests.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@inference_options
@click.option("--no-access-log", is_flag=True, help="Do not log one line per request.")
@click.pass_context
@handle_errors
def serve(ctx: click.Context, run_dir: str, host: str, port: int, max_batch: int, max_text_chars: int,
          max_body_bytes: int, threads: int | str, device: str, batch_size: int, precision: str,
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
    from seqnlp.serve import create_app, run_server

    app = create_app(run_dir, max_batch=max_batch, max_text_chars=max_text_chars, max_body_bytes=max_body_bytes,
                     device=device, num_threads=threads, batch_size=batch_size,
                     precision=precision)
    level = logging.getLogger().getEffectiveLevel()
    run_server(app, host=host, port=port, log_level=logging.getLevelName(level).lower(), access_log=not no_access_log)


@click.command()
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
