"""Run a command and report its peak memory: resident, and anonymous alone.

    python scripts/peak_memory.py -- seqnlp train --config configs/imdb.yaml

Resident memory (RSS) counts the pages of memory-mapped files that a process has read, such as the Arrow files
of the datasets cache; they are clean copies of the files, which the kernel drops whenever memory is short.
Anonymous memory (the Python heap, tensors, NumPy arrays) cannot be dropped: it is the number that must stay
bounded as the data grows. The command's processes (torchrun's workers included) are sampled every 0.2 s and
summed. Linux only: it reads /proc.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in children.read_text().split()]
            except OSError:
                pass  # the task ended while we looked
    return found


def sample(pids: list[int]) -> dict[str, int]:
    """Sum of VmRSS, RssAnon and RssFile (KiB) over ``pids``."""
    totals = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            if key in totals:
                totals[key] += int(value.split()[0])
    return totals


def main(command: list[str]) -> int:
    process = subprocess.Popen(command)
    peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    while process.poll() is None:
        for key, value in sample(tree(process.pid)).items():
            peak[key] = max(peak[key], value)
        time.sleep(0.2)
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, exact, of the largest process
    print(f"peak memory: resident {peak['VmRSS'] / 1024:,.0f} MiB (largest process {largest / 1024:,.0f} MiB), "
          f"anonymous {peak['RssAnon'] / 1024:,.0f} MiB, memory-mapped files {peak['RssFile'] / 1024:,.0f} MiB",
          file=sys.stderr)
    return process.returncode


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    sys.exit(main(args))
