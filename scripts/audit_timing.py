"""Time the data checks: what ``train`` adds before its tokenizer (``record_data``) and the whole ``seqnlp audit``.

    taskset -c 1 python scripts/audit_timing.py configs/imdb.yaml configs/sst2.yaml --repeats 3

For each config: loading and splitting (the datasets cache warmed by a first load that is not timed), the cheap
checks alone (``scan_splits``), everything ``train`` runs before its tokenizer (``record_data``: the checks, file
and content hashes, examples), and the full audit with its own stages. Medians of ``--repeats`` runs, in seconds:
wall time, and the CPU time of the process (all its threads), which a busy machine inflates much less.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Callable

import datasets

from seqnlp.config import load_config
from seqnlp.data import load_splits
from seqnlp.data.audit import audit
from seqnlp.data.provenance import record_data, run_splits
from seqnlp.data.scan import scan_splits


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def measure(path: str, repeats: int) -> dict[str, tuple[float, float]]:
    config = load_config(path)
    load_splits(config.data, config.seed)  # fills the datasets cache: later loads read Arrow files
    splits = load_splits(config.data, config.seed)
    named, _ = run_splits(config.data, splits)
    size = float(sum(len(s) for s in named.values()))
    return {"examples": (size, size),
            "load": timed(lambda: load_splits(config.data, config.seed), repeats),
            "checks": timed(lambda: scan_splits(named, splits.label_names, list(named)), repeats),
            "train adds": timed(lambda: record_data(config.data, splits), repeats),
            "audit": timed(lambda: audit(config), repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    logging.basicConfig(level=logging.ERROR)  # the checks' warnings are the data's, not the timing's
    rows = {path: measure(path, args.repeats) for path in args.configs}
    header = list(next(iter(rows.values())))
    print("| config | " + " | ".join(header[:1] + [f"{k} s (CPU s)" for k in header[1:]]) + " |")
    print("| --- |" + " ---: |" * len(header))
    for path, row in rows.items():
        cells = [f"{int(row['examples'][0]):,}"] + [f"{row[k][0]:.2f} ({row[k][1]:.2f})" for k in header[1:]]
        print(f"| {path} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
