"""``seqnlp serve`` and ``seqnlp export``: a trained run as an HTTP API or as one model file."""

from __future__ import annotations

import logging
from typing import Optional

import click

from seqnlp.cli.options import handle_errors, inference_options, parse_threads
from seqnlp.errors import ConfigError
from seqnlp.rundir import check_run_dir


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
@click.option("--body-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds for a request's body to arrive once its headers have (more: 408).")
@click.option("--header-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds for a request's line and headers to arrive (more: 408 and the connection closed).")
@click.option("--keep-alive-timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds an idle connection stays open between requests.")
@click.option("--max-connections", type=click.IntRange(min=1),
              help="Open connections at most; more are answered 503 and closed "
                   "[default: 256, fewer if the open-file limit (ulimit -n) is lower].")
@click.option("--max-header-bytes", type=click.IntRange(min=1024), default=16_384, show_default=True,
              help="Largest request line and headers (more: 400).")
@click.option("--threads", default="auto", show_default=True, metavar="N|auto", callback=parse_threads,
              help="Torch threads for inference: N, or auto: at most the usable CPUs less one (the event loop's), "
                   "the fastest count timed over the requests.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@inference_options
@click.option("--min-confidence", type=click.FloatRange(0, 1), metavar="P",
              help="Abstain below calibrated probability P unless a request sets its own \"min_confidence\".")
@click.option("--no-access-log", is_flag=True, help="Do not log one line per request.")
@click.pass_context
@handle_errors
def serve(ctx: click.Context, run_dir: str, host: str, port: int, max_batch: int, max_text_chars: int,
          max_body_bytes: int, body_timeout: float, header_timeout: float, keep_alive_timeout: float,
          max_connections: Optional[int], max_header_bytes: int, threads: int | str, device: str,
          batch_size: int, precision: str, min_confidence: Optional[float], no_access_log: bool) -> None:
    """Serve a trained run over HTTP: a JSON API for predictions (needs pip install 'seqnlp[serve]').

    \b
    Endpoints:
      GET  /health       the model is loaded: labels, cell, version
      GET  /v1/model     labels, config summary, parameter count, limits, batch size, precision
      POST /v1/predict   {"texts": ["...", ...]} or {"text": "..."}; options "top_k": K,
                         "return_probabilities": true, "min_confidence": P (below: "label": null,
                         "abstained": true)
      POST /v1/explain   {"texts": [...]} or {"text": "..."} (at most 16); options "label", "steps",
                         "occlusion": token attributions, as seqnlp explain --json

    Errors are JSON {"error": "..."}: 400 for a body that is not JSON, 422 for wrong fields or types, 413 for a
    request over a limit, 415 for a POST that is not Content-Type: application/json, 408 for a request that
    did not arrive in time, 503 for a connection over --max-connections. Ctrl-C or SIGTERM finishes the
    requests in flight, then stops.

    \b
    Examples:
      seqnlp serve runs/sms
      seqnlp serve runs/sst2-gru --host 0.0.0.0 --port 8080 --max-batch 64 --threads 2
      seqnlp serve runs/sms --max-connections 100 --header-timeout 5 --body-timeout 10
      curl -s localhost:8000/v1/predict -H 'Content-Type: application/json' \\
           -d '{"texts": ["free prize, call now", "see you at lunch"]}'
      curl -s localhost:8000/v1/predict -H 'Content-Type: application/json' -d '{"text": "call me", "min_confidence": 0.9}'
      curl -s localhost:8000/v1/explain -H 'Content-Type: application/json' -d '{"text": "free prize, call now"}'
    """
    check_run_dir(run_dir)  # before the heavy imports: a usage error answers at once
    from seqnlp.http_guard import ConnectionLimits, default_max_connections
    from seqnlp.serve import create_app, run_server

    app = create_app(run_dir, max_batch=max_batch, max_text_chars=max_text_chars, max_body_bytes=max_body_bytes,
                     body_timeout=body_timeout, device=device, num_threads=threads,
                     batch_size=batch_size, precision=precision, min_confidence=min_confidence)
    connections = ConnectionLimits(max_connections or default_max_connections(), header_timeout, keep_alive_timeout,
                                   max_header_bytes)
    level = logging.getLogger().getEffectiveLevel()
    run_server(app, host=host, port=port, log_level=logging.getLevelName(level).lower(), access_log=not no_access_log,
               connections=connections)


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
    check_run_dir(run_dir)  # before the heavy imports: a usage error answers at once
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
