#!/usr/bin/env python
"""Load a running ``seqnlp serve`` with POST /v1/predict requests and report requests/s and latency.

Start the server first, then point this client at it; pin each to its own cores so they do not compete:

    taskset -c 1 seqnlp serve runs/sms --port 8000 --threads 1 --no-access-log &
    taskset -c 0 python scripts/serve_benchmark.py --url http://127.0.0.1:8000 --batch 1 --batch 64

Each (batch size, concurrency) runs for ``--seconds`` after a short warm-up: ``concurrency`` threads, each with its
own keep-alive connection, send requests of ``batch`` texts drawn (seeded) from the embedded SMS Spam Collection or
``--texts FILE`` (one text a line), one after another. Every answer is checked (status 200, one prediction per
text). Only loopback URLs are accepted: this is a load generator.

The client is Python: at high request rates it can be the bottleneck (watch its core); ``wrk`` is a cross-check.
``--in-process RUN_DIR`` times ``Classifier.predict`` on the same requests without HTTP (one caller, one torch
thread; pin it to the server's core), which shows what the HTTP layer adds:

    taskset -c 1 python scripts/serve_benchmark.py --in-process runs/sms --batch 1 --batch 64
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Optional

import click

SMS = Path(__file__).resolve().parents[1] / "seqnlp" / "data" / "sms_spam" / "SMSSpamCollection"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_REQUESTS = 1_000_000  # per setting: a bound on the loop besides time


def load_texts(path: Optional[Path]) -> list[str]:
    if path is None:
        return [line.split("\t", 1)[1] for line in SMS.read_text(encoding="utf-8").splitlines() if "\t" in line]
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_setting(host: str, port: int, texts: list[str], batch: int, concurrency: int, seconds: float,
                warmup: float) -> dict[str, float]:
    """Latencies of every request answered in the timed window, from ``concurrency`` closed-loop clients."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        mine: list[float] = []
        try:
            for _ in range(MAX_REQUESTS):
                body = json.dumps({"texts": rng.sample(texts, batch)})
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    break
                conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                t1 = time.perf_counter()
                if response.status != 200 or len(json.loads(payload)["predictions"]) != batch:
                    raise RuntimeError(f"status {response.status}: {payload[:200]!r}")
                if t0 >= start_at:
                    mine.append(t1 - t0)
        except Exception as exc:  # reported below: the run is then void
            with lock:
                errors.append(repr(exc))
        finally:
            conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise click.ClickException(f"batch {batch}, concurrency {concurrency}: {errors[0]}")
    return summarize(latencies, batch, concurrency, seconds)


def run_in_process(run_dir: str, texts: list[str], batch: int, seconds: float, warmup: float) -> dict[str, float]:
    """The same closed loop as one HTTP client, calling ``Classifier.predict`` directly."""
    import torch

    from seqnlp.predict import Classifier

    torch.set_num_threads(1)
    clf = Classifier.load(run_dir, device="cpu")
    rng = random.Random(0)
    latencies: list[float] = []
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds
    for _ in range(MAX_REQUESTS):
        sample = rng.sample(texts, batch)
        t0 = time.perf_counter()
        if t0 >= stop_at:
            break
        clf.predict(sample)
        if t0 >= start_at:
            latencies.append(time.perf_counter() - t0)
    return summarize(latencies, batch, 0, seconds)


def summarize(latencies: list[float], batch: int, concurrency: int, seconds: float) -> dict[str, float]:
    latencies = sorted(latencies)

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {"batch": batch, "concurrency": concurrency, "requests": len(latencies),
            "req_per_s": len(latencies) / seconds, "texts_per_s": len(latencies) * batch / seconds,
            "mean_ms": 1000 * statistics.fmean(latencies), "p50_ms": pct(0.50), "p90_ms": pct(0.90),
            "p99_ms": pct(0.99)}


@click.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The server (loopback only).")
@click.option("--batch", "batches", multiple=True, type=click.IntRange(min=1), help="Texts per request [1 and 64].")
@click.option("--concurrency", "concurrencies", multiple=True, type=click.IntRange(min=1),
              help="Clients at once, each waiting for its answer before the next request [1 and 4].")
@click.option("--seconds", type=click.FloatRange(min=1, max=120), default=10, show_default=True,
              help="Timed window per setting.")
@click.option("--warmup", type=click.FloatRange(min=0, max=30), default=2, show_default=True)
@click.option("--texts", "texts_file", type=click.Path(dir_okay=False, path_type=Path),
              help="One text a line [default: the embedded SMS Spam Collection].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per setting instead of a table.")
@click.option("--in-process", "run_dir", type=click.Path(file_okay=False),
              help="No server: time Classifier.predict on this run directly (concurrency shows as 0).")
def main(url: str, batches: tuple[int, ...], concurrencies: tuple[int, ...], seconds: float, warmup: float,
         texts_file: Optional[Path], as_json: bool, run_dir: Optional[str]) -> None:
    texts = load_texts(texts_file)
    if run_dir is not None:
        rows = [run_in_process(run_dir, texts, b, seconds, warmup) for b in batches or (1, 64)]
    else:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or parsed.hostname not in LOOPBACK:
            raise click.BadParameter("only http:// on loopback (127.0.0.1, localhost, ::1)", param_hint="--url")
        host, port = parsed.hostname, parsed.port or 80
        rows = [run_setting(host, port, texts, b, c, seconds, warmup)
                for b in batches or (1, 64) for c in concurrencies or (1, 4)]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    click.echo("| texts/request | concurrency | requests | requests/s | texts/s | mean ms | p50 ms | p90 ms | p99 ms |")
    click.echo("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        click.echo(f"| {r['batch']} | {r['concurrency']} | {r['requests']:,} | {r['req_per_s']:,.1f} | "
                   f"{r['texts_per_s']:,.0f} | {r['mean_ms']:.2f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                   f"{r['p99_ms']:.2f} |")


if __name__ == "__main__":
    main()
