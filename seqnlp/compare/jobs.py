"""How many of compare's runs train at once, and on how many threads each.

A small recurrent model gains little from a second thread (every step is many small parallel regions whose
threads wait on each other) and much from a core of its own, so on a CPU two one-thread runs side by side finish
sooner than two two-thread runs one after the other (docs/performance.md has the figures). Runs that train at once
measure each other's share of the machine in their speed columns; ``--jobs 1`` gives each run the machine alone.
"""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Sequence, TypeVar

from seqnlp.config import Config, load_config
from seqnlp.errors import ConfigError
from seqnlp.threads import AUTO, usable_cpus

T = TypeVar("T")


def resolve_jobs(jobs: int | str, isolate: bool, base: Config, runs: int) -> int:
    """How many runs train at once. ``auto``: one per usable CPU (at most one per run) for isolated runs on the
    CPU, whose small recurrent steps gain more from a core each than from two threads each
    (docs/performance.md); one at a time in one process, and on a GPU."""
    if jobs != AUTO:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ConfigError(f"jobs: {jobs!r} is not auto or an integer >= 1")
        if jobs > 1 and not isolate:
            raise ConfigError("jobs > 1 needs isolated runs (one process each); drop --in-process or use --jobs 1")
        return jobs
    if not isolate or base.train.device not in ("auto", "cpu"):
        return 1
    if base.train.device == "auto":
        import torch

        if torch.cuda.is_available():
            return 1
    return max(1, min(usable_cpus(), runs))


def share_cpus(config: Config, jobs: int) -> Config:
    """``config`` for one of ``jobs`` runs trained at once: ``train.num_threads: auto`` becomes its share of the
    usable CPUs, so the runs neither tune against each other nor oversubscribe the cores; a fixed count stays."""
    if config.train.num_threads != AUTO:
        return config
    return load_config(base=config, updates={"train.num_threads": max(1, usable_cpus() // jobs)})


def run_all(tasks: Sequence[Callable[[], T]], jobs: int) -> list[T]:
    """Call every task, ``jobs`` at a time (in threads: each waits on a subprocess), and return their results in
    order; the first failure, in task order, is raised once the tasks already started have ended, and no other
    task starts."""
    if jobs == 1:
        return [task() for task in tasks]
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="seqnlp-compare")
    try:
        futures = [pool.submit(task) for task in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()  # after a failure: the tasks not yet started never start
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
