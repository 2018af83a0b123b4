#!/usr/bin/env python
"""Exported and int8 models against the trained run: parity, accuracy and CPU speed on real texts.

For each run directory, six ways to get logits, all fed the same length-sorted batches on the same threads:

    torch fp32           Classifier.load(run): the packed RNNClassifier (the reference)
    torch int8           Classifier.load(run, quantize=True): torch dynamic int8 (LSTM/GRU + Linear)
    torchscript fp32     seqnlp export --format torchscript, run by torch.jit.load
    torchscript int8     ... --quantize
    onnx fp32            seqnlp export --format onnx, run by onnxruntime
    onnx int8            ... --quantize (onnxruntime's dynamic int8: LSTM, MatMul, embedding)

Reported per way: accuracy, agreement of predictions with the reference, the largest |logit difference| from
the reference, batch throughput (examples/s over the whole set, batches of --batch-size sorted by length) and
single-text latency (median and 90th percentile over the first --latency-texts texts, one text per call). Other
jobs on a shared machine slow some calls down, so the models take turns (pass by pass, text by text), throughput
is the fastest of --repeats passes, and a text's latency is the fastest of three calls.

    python scripts/quantize_benchmark.py runs/sst2 --split validation
    python scripts/quantize_benchmark.py runs/imdb --split test --limit 2000 --out bench/imdb.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # ids [B, T], lengths [B] (int64) -> logits [B, C]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--split", default="validation", help="Split of the run's own data [default: validation].")
    parser.add_argument("--limit", type=int, help="Use a seeded random subset of this many examples.")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--latency-texts", type=int, default=200, help="Texts timed one at a time.")
    parser.add_argument("--threads", type=int, default=1, help="Threads for torch and onnxruntime alike.")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Passes over the set; the fastest counts (other jobs on the machine slow some down).")
    parser.add_argument("--skip-onnx", action="store_true", help="Leave out the ONNX rows (no export extra).")
    parser.add_argument("--out", type=Path, help="Also write every number to this JSON file.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    import torch

    torch.set_num_threads(args.threads)
    texts, labels, label_names = load_texts(args.run_dir, args.split, args.limit)
    from seqnlp.predict import Classifier
    from seqnlp.tokenizer import encode_texts

    reference = Classifier.load(args.run_dir, device="cpu")
    sequences = encode_texts(reference.tokenizer, texts)
    lengths = [len(s) for s in sequences]
    print(f"{args.run_dir}: {len(texts)} {args.split} texts, tokens per text mean {statistics.mean(lengths):.1f}, "
          f"max {max(lengths)}; {args.threads} thread(s); torch {torch.__version__}", flush=True)

    runners = build_runners(args.run_dir, args.threads, not args.skip_onnx)
    batches = length_sorted_batches(sequences, reference.pad_id, args.batch_size)
    logits = {name: batched_logits(runner, batches, len(sequences)) for name, (runner, _) in runners.items()}
    # Timings interleave the models (round by round, text by text), so a busy spell on a shared machine slows
    # them all alike instead of whichever model happened to be running.
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, (runner, _) in runners.items():
            start = time.perf_counter()
            for _, ids, lens in batches:
                runner(ids, lens)
            seconds[name].append(time.perf_counter() - start)
    latencies = single_latencies({name: runner for name, (runner, _) in runners.items()},
                                 sequences[: args.latency_texts])
    ref_logits = next(iter(logits.values()))
    rows = []
    for name, (_, size) in runners.items():
        predictions = logits[name].argmax(axis=1)
        row = {
            "model": name,
            "accuracy": float((predictions == labels).mean()),
            "agreement": float((predictions == ref_logits.argmax(axis=1)).mean()),
            "max_abs_logit_diff": float(np.abs(logits[name] - ref_logits).max()),
            "examples_per_s": len(sequences) / min(seconds[name]),
            "latency_ms_p50": 1000 * statistics.median(latencies[name]),
            "latency_ms_p90": 1000 * float(np.percentile(latencies[name], 90)),
            "file_mb": size / 1e6 if size else None,
        }
        rows.append(row)
        print(format_row(row), flush=True)
    base = rows[0]
    print("\n" + markdown(rows, base))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"run_dir": str(args.run_dir), "split": args.split, "examples": len(texts), "threads": args.threads,
                "repeats": args.repeats,
                "batch_size": args.batch_size, "latency_texts": min(args.latency_texts, len(texts)),
                "label_names": label_names, "command": " ".join(sys.argv)}
        args.out.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")


def load_texts(run_dir: Path, split: str, limit: int | None) -> tuple[list[str], np.ndarray, list[str]]:
    """The run's own data split (as training read it), optionally a seeded random subset."""
    from seqnlp.checkpoint import load_run
    from seqnlp.data import load_splits

    config, _, label_names, _ = load_run(run_dir)
    data = load_splits(config.data, config.seed, label_names=label_names).split(split)
    if data is None:
        sys.exit(f"{run_dir}: its data has no {split!r} split")
    if limit is not None and limit < len(data):
        data = data.shuffle(seed=0).select(range(limit))
    return list(data["text"]), np.asarray(data["label"], dtype=np.int64), label_names


def build_runners(run_dir: Path, threads: int, with_onnx: bool) -> dict[str, tuple[Runner, int]]:
    """name -> (logits function, model file size in bytes or 0)."""
    import torch

    from seqnlp.export import export_run
    from seqnlp.predict import Classifier

    def torch_runner(clf: Classifier) -> Runner:
        def run(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return clf.model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
        return run

    runners: dict[str, tuple[Runner, int]] = {
        "torch fp32 (packed)": (torch_runner(Classifier.load(run_dir, device="cpu")), 0),
        "torch int8 (packed)": (torch_runner(Classifier.load(run_dir, quantize=True)), 0),
    }
    scratch = Path(tempfile.mkdtemp(prefix="seqnlp-quantize-bench-"))
    for fmt in ("torchscript", "onnx") if with_onnx else ("torchscript",):
        for quantize in (False, True):
            result = export_run(run_dir, format=fmt, output=scratch / fmt, quantize=quantize)
            load = onnx_runner if fmt == "onnx" else torchscript_runner
            name = f"{fmt} {'int8' if quantize else 'fp32'}"
            runners[name] = (load(result.model_file, threads), result.model_file.stat().st_size)
    return runners


def torchscript_runner(path: Path, threads: int) -> Runner:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(path))

    def run(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    return run


def onnx_runner(path: Path, threads: int) -> Runner:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda ids, lengths: session.run(["logits"], {"input_ids": ids, "lengths": lengths})[0]


def length_sorted_batches(sequences: list[list[int]], pad: int,
                          batch_size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(indices, ids [B, T], lengths [B]) batches of texts sorted by length, as Classifier.predict makes them."""
    from seqnlp.batching import pad_flat

    order = np.argsort([len(s) for s in sequences], kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        indices = order[start: start + batch_size]
        lengths = np.array([len(sequences[i]) for i in indices], dtype=np.int64)
        flat = np.fromiter((t for i in indices for t in sequences[i]), dtype=np.int64, count=int(lengths.sum()))
        batches.append((indices, pad_flat(flat, lengths, pad), lengths))
    return batches


def batched_logits(run: Runner, batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]], count: int) -> np.ndarray:
    """Logits [N, C] in input order (the first call also warms the model up)."""
    out: np.ndarray | None = None
    for indices, ids, lengths in batches:
        logits = run(ids, lengths)
        if out is None:
            out = np.empty((count, logits.shape[1]), dtype=np.float32)
        out[indices] = logits
    assert out is not None
    return out


def single_latencies(runners: dict[str, Runner], sequences: list[list[int]], tries: int = 3) -> dict[str, list[float]]:
    """Seconds per call for one text at a time: per text, the fastest of ``tries`` calls of each model, the
    models taking turns (after a warm-up call each)."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for number, seq in enumerate(sequences):
        ids, lengths = np.asarray([seq], dtype=np.int64), np.asarray([len(seq)], dtype=np.int64)
        best = {name: float("inf") for name in runners}
        for _ in range(tries):
            for name, run in runners.items():
                if number == 0:
                    run(ids, lengths)
                start = time.perf_counter()
                run(ids, lengths)
                best[name] = min(best[name], time.perf_counter() - start)
        for name in runners:
            times[name].append(best[name])
    return times


def format_row(row: dict[str, Any]) -> str:
    return (f"  {row['model']:<20} acc {row['accuracy']:.4f}  agree {row['agreement']:.4f}  "
            f"max|dlogit| {row['max_abs_logit_diff']:.2e}  {row['examples_per_s']:8.1f} ex/s  "
            f"latency p50 {row['latency_ms_p50']:.2f} p90 {row['latency_ms_p90']:.2f} ms")


def markdown(rows: list[dict[str, Any]], base: dict[str, Any]) -> str:
    lines = ["| model | accuracy | agreement with torch fp32 | max abs logit diff | examples/s (batch) | speed-up "
             "| latency p50 / p90 (ms, 1 text) | file MB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        size = f"{row['file_mb']:.1f}" if row["file_mb"] else "-"
        lines.append(f"| {row['model']} | {row['accuracy']:.4f} | {row['agreement']:.4f} | "
                     f"{row['max_abs_logit_diff']:.1e} | {row['examples_per_s']:,.0f} | "
                     f"{row['examples_per_s'] / base['examples_per_s']:.2f}x | "
                     f"{row['latency_ms_p50']:.2f} / {row['latency_ms_p90']:.2f} | {size} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
