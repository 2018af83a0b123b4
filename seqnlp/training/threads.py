"""``train.num_threads: auto`` while training: a ``Hook`` that times the steps at each candidate thread count with
``seqnlp.threads.ThreadTuner`` and runs the rest at the fastest, probing again as the run goes on.

Only the thread count changes, never the math: every count computes the same results up to float rounding, so a
resumed run (which probes afresh) ends where an uninterrupted one would, up to rounding. The hook runs for a
single process on the CPU; under torchrun every step waits for the slowest rank, so one rank's timings say
little (torchrun gives each process ``OMP_NUM_THREADS``, which ``auto`` respects), and on CUDA the CPU threads do
not set the pace.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

from seqnlp import distributed
from seqnlp.batching import Batch
from seqnlp.config import TrainConfig
from seqnlp.threads import AUTO, ThreadTuner, candidates, describe_cpus, usable_cpus
from seqnlp.training.loop import Hook, StepStats
from seqnlp.training.state import TrainingState

log = logging.getLogger(__name__)


class AutoThreads(Hook):
    """Feeds every step's tokens and seconds to a ``ThreadTuner`` and applies the thread count it asks for."""

    def __init__(self, tuner: ThreadTuner, set_threads: Optional[Callable[[int], None]] = None) -> None:
        self.tuner = tuner
        self.set_threads = set_threads or torch.set_num_threads
        self.set_threads(tuner.threads)

    @classmethod
    def for_run(cls, tc: TrainConfig, device: torch.device) -> Optional["AutoThreads"]:
        """The hook for ``train.num_threads: auto`` on one CPU process with more than one usable CPU, else None."""
        if tc.num_threads != AUTO or device.type != "cpu" or distributed.world_size() > 1:
            return None
        cpus = usable_cpus()
        if cpus == 1:
            log.info("threads: 1 (%s)", describe_cpus())
            return None
        tuner = ThreadTuner(candidates(cpus))
        log.info("threads: auto, timing %s threads on the first steps (%s)",
                 " and ".join(map(str, tuner.candidates)), describe_cpus())
        return cls(tuner)

    def on_step(self, state: TrainingState, batch: Batch, stats: StepStats) -> None:
        decided = len(self.tuner.decisions)
        threads = self.tuner.observe(stats.tokens, stats.seconds)
        if threads is not None:
            self.set_threads(threads)
        if len(self.tuner.decisions) > decided:
            decision = self.tuner.decisions[-1]  # every probe is logged: the gaps between them double
            log.info("threads: %s%s at step %d; next check in %.0f s", "" if decided == 0 else
                     "now " if decision.changed else "still ", decision.summary(), state.step, self.tuner.interval)
