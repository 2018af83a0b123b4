#!/usr/bin/env python
"""What this CPU can do for a recurrent classifier, below seqnlp: matrix products, and the three RNN paths.

Two measurements, each a forward + backward pass timed in this process on ``--threads`` torch threads:

    gemm    GFLOP/s of fp32 and bf16 matrix products at the shapes of a BiLSTM 2x256 step (batch 64): the
            ceiling for any RNN implementation, since an LSTM spends almost all its work in them.
    paths   seqnlp's RecurrentEncoder (BiLSTM/GRU/RNN, 2 x 256, inputs of 100) over batches of 64 texts whose
            lengths are drawn from a range, on each path: ``packed`` (pack_padded_sequence), ``masked`` (dense
            kernels over the padded batch, each text reversed within its length for the backward direction) and,
            for reference, ``dense``: the same number of real tokens with no padding at all (every text as long
            as the batch's mean length). Tokens/s counts real tokens only.

The ``model.recurrence: auto`` thresholds in seqnlp/model.py come from the ``paths`` table.

    python scripts/recurrence_paths.py --threads 1 --out bench/paths-t1.md
    python scripts/recurrence_paths.py --threads 2 --cells lstm --precision fp32,bf16
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from seqnlp.config import ModelConfig
from seqnlp.model import RecurrentEncoder

BATCH = 64
INPUT = 100
HIDDEN = 256
LAYERS = 2
LENGTH_RANGES = ((8, 12), (18, 26), (40, 60), (150, 200))
GEMM_SHAPES = ((64, 256, 1024), (64, 1024, 256), (640, 512, 2048), (2048, 2048, 2048))  # [M, K] @ [K, N]


def seconds_per_call(fn: Callable[[], object], budget_s: float) -> float:
    """Mean seconds per call after two warm-up calls, over as many calls as fit in ``budget_s`` (at least three)."""
    for _ in range(2):
        fn()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < budget_s:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def gemm_rows(precisions: list[str], budget_s: float) -> list[list[str]]:
    """``a @ b`` (MKL for fp32 on this build, oneDNN for bf16) and, for fp32, oneDNN's own linear layer: on an
    AMD CPU, MKL may take a narrower code path than the hardware has, which oneDNN's number would expose."""
    rows = []
    for precision in precisions:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        for m, k, n in GEMM_SHAPES:
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            kernels: dict[str, Callable[[], object]] = {"a @ b": lambda: a @ b}
            if precision == "fp32" and torch.backends.mkldnn.is_available():
                a_dnnl, w_dnnl = a.to_mkldnn(), b.t().contiguous().to_mkldnn()  # oneDNN layout, weight [N, K]
                kernels["oneDNN linear"] = lambda: torch._C._nn.mkldnn_linear(a_dnnl, w_dnnl, None)
            for kernel, fn in kernels.items():
                seconds = seconds_per_call(fn, budget_s)
                rows.append([precision, kernel, f"[{m}x{k}] @ [{k}x{n}]", f"{seconds * 1e6:,.0f}",
                             f"{2 * m * k * n / seconds / 1e9:.0f}"])
    return rows


def path_rows(cells: list[str], precisions: list[str], budget_s: float,
              length_ranges: tuple[tuple[int, int], ...] = LENGTH_RANGES) -> list[list[str]]:
    rows = []
    for cell in cells:
        torch.manual_seed(0)
        cfg = ModelConfig(cell=cell, hidden_size=HIDDEN, num_layers=LAYERS, bidirectional=True, dropout=0.5)
        encoder = RecurrentEncoder(cfg, INPUT).train()
        for low, high in length_ranges:
            lengths = torch.randint(low, high + 1, (BATCH,), generator=torch.Generator().manual_seed(low))
            width, tokens = int(lengths.max()), int(lengths.sum())
            mean = round(tokens / BATCH)
            batches = {
                "packed": (torch.randn(BATCH, width, INPUT), lengths),
                "masked": (torch.randn(BATCH, width, INPUT), lengths),
                "dense": (torch.randn(BATCH, mean, INPUT), torch.full((BATCH,), mean)),
            }
            for precision in precisions:
                speeds = {}
                for path, (inputs, lens) in batches.items():
                    encoder.recurrence = "masked" if path == "dense" else path
                    inputs.requires_grad_(True)

                    def step() -> None:
                        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                            outputs, final = encoder(inputs, lens)
                        (outputs.float().sum() + final.float().sum()).backward()

                    speeds[path] = int(lens.sum()) / seconds_per_call(step, budget_s)
                padding = 1 - tokens / (BATCH * width)
                rows.append([cell, precision, f"{low}-{high}", f"{100 * padding:.0f}%",
                             *(f"{speeds[p]:,.0f}" for p in ("packed", "masked", "dense")),
                             f"{speeds['masked'] / speeds['packed']:.2f}x"])
    return rows


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--precision", default="fp32,bf16")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timed calls per measurement")
    parser.add_argument("--skip-gemm", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precisions = args.precision.split(",")
    lines = [
        "# RNN paths on this CPU", "",
        f"- {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"{args.threads} thread(s), CPU capability {torch.backends.cpu.get_cpu_capability()}",
        f"- batch {BATCH}, inputs {INPUT}, {LAYERS} x {HIDDEN} bidirectional, forward + backward", "",
    ]
    if not args.skip_gemm:
        lines += ["## Matrix products", "", *table(["precision", "kernel", "shape", "us", "GFLOP/s"],
                                                   gemm_rows(precisions, args.budget)), ""]
    print("\n".join(lines), flush=True)
    paths = ["## Real tokens/s per path", "",
             *table(["cell", "precision", "lengths", "padding", "packed", "masked", "dense (no padding)",
                     "masked / packed"], path_rows(args.cells.split(","), precisions, args.budget)), ""]
    print("\n".join(paths), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines + paths) + "\n")

if __name__ == "__main__":
    main()
