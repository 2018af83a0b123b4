"""How many threads to run on: the CPUs this process may really use, and a rule that times real work at each
candidate thread count and keeps the fastest.

A machine's core count is rarely what a process gets. The CPU affinity mask (``taskset``, ``docker --cpuset-cpus``)
and the cgroup CPU quota (``docker --cpus``, a Kubernetes CPU limit) both cut it down, and torch's default counts
neither: a pod limited to 2 CPUs on a 64-core node starts 64 threads. ``usable_cpus`` reads both.

Even that count is only an upper bound. PyTorch's OpenMP threads meet at a barrier after every parallel region, and
an RNN step is many small regions: when other processes keep the cores busy, one descheduled thread stalls all the
others for a time slice, and two threads can train several times slower than one (docs/performance.md has the
figures). So ``ThreadTuner`` measures: it times real steps at each candidate count (tokens per second, since batch
lengths vary), keeps the fastest, and probes again now and then, since load changes during a run. It is pure (the
clock is passed in, nothing here touches torch); ``seqnlp.training.threads`` drives it from training steps.

Nothing here imports torch, so the CLI can call it before torch starts.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, MutableMapping, Optional, Sequence

log = logging.getLogger(__name__)

AUTO = "auto"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the OS has no masks)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parse_cpu_max(text: str) -> Optional[float]:
    """cgroup v2 ``cpu.max`` (``"QUOTA PERIOD"``, or ``"max PERIOD"`` for no limit) -> CPUs, or None."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> Optional[float]:
    """cgroup v1 ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` -> CPUs, or None (a quota of -1 is no limit)."""
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


@dataclass(frozen=True)
class CgroupPaths:
    """Where this process sits in each cgroup hierarchy, from ``/proc/self/cgroup``."""

    v2: Optional[str] = None  # the path of the "0::PATH" line
    v1_cpu: Optional[str] = None  # the path of the v1 line whose controllers include "cpu"


def parse_proc_cgroup(text: str) -> CgroupPaths:
    """``/proc/self/cgroup`` lines (``ID:CONTROLLERS:PATH``) -> the v2 path and the v1 ``cpu`` path."""
    v2 = v1 = None
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        number, controllers, path = parts
        if number == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return CgroupPaths(v2, v1)


def _ancestors(mount: Path, path: str) -> list[Path]:
    """``mount/path`` and every directory above it up to ``mount``: a parent's limit binds its children too.

    In a container with its own cgroup namespace the path may not exist under the mount (which then is the
    container's own cgroup): the mount alone is read."""
    top = mount.resolve()
    inner = (mount / path.lstrip("/")).resolve()
    if not inner.is_dir() or (inner != top and top not in inner.parents):
        return [mount]
    found = [inner]
    while found[-1] != top:
        found.append(found[-1].parent)
    return found


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def cgroup_cpu_limit(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> Optional[float]:
    """The tightest CPU quota over this process's cgroup and its ancestors, in CPUs (v2, else v1); None: no limit.

    v2 reads ``cpu.max`` under ``root`` (or ``root/unified`` on a hybrid system); v1 reads ``cpu.cfs_quota_us``
    and ``cpu.cfs_period_us`` under ``root/cpu`` (or ``root/cpu,cpuacct``).
    """
    text = _read(proc_cgroup)
    if text is None:
        return None
    paths = parse_proc_cgroup(text)
    limits: list[float] = []
    if paths.v2 is not None:
        for mount in (root, root / "unified"):
            if (mount / "cgroup.controllers").is_file():
                for directory in _ancestors(mount, paths.v2):
                    found = _read(directory / "cpu.max")
                    limit = parse_cpu_max(found) if found is not None else None
                    if limit is not None:
                        limits.append(limit)
                break
    if paths.v1_cpu is not None:
        for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
            mount = root / name
            if (mount / "cpu.cfs_quota_us").is_file():
                for directory in _ancestors(mount, paths.v1_cpu):
                    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
                    limit = parse_cfs(quota, period) if quota is not None and period is not None else None
                    if limit is not None:
                        limits.append(limit)
                break
    return min(limits) if limits else None


def usable_cpus(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may really use: its affinity mask, capped by its cgroup quota rounded up; at least 1.

    ``OMP_NUM_THREADS`` set to a number caps it too: whoever set it asked for at most that many threads.
    """
    cpus = affinity_cpus()
    limit = cgroup_cpu_limit(proc_cgroup, root)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit - 1e-9)))
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) >= 1:
        cpus = min(cpus, int(env))
    return max(1, cpus)


def describe_cpus(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> str:
    """Where the usable CPU count comes from, for the log: the affinity mask and the cgroup quota."""
    limit = cgroup_cpu_limit(proc_cgroup, root)
    quota = "no cgroup CPU quota" if limit is None else f"cgroup CPU quota {limit:g}"
    return (f"{affinity_cpus()} CPUs in the affinity mask, {quota}, {os.cpu_count()} on the machine; "
            f"{wait_policy(os.environ)}")


def runnable_others(stat_text: str) -> Optional[int]:
    """Tasks running or ready to run on the machine right now, this one excluded, from ``/proc/stat``'s
    ``procs_running`` (None when the line is missing)."""
    for line in stat_text.splitlines():
        name, _, value = line.partition(" ")
        if name == "procs_running" and value.strip().isdigit():
            return max(0, int(value) - 1)
    return None


def machine_busy(running_others: Optional[int], cpus: int) -> bool:
    """Whether other work keeps at least half of the machine's CPUs busy, by the tasks runnable besides this one.

    Not the load average: it lags by a minute, so a job started right after another (a benchmark's next run, a
    script's next command) would count its predecessor's load and wait passively on an idle machine, where
    spinning is the faster way to wait (a 2-thread run idle: 2.8 s an epoch spinning, 4.2 s sleeping)."""
    return (running_others or 0) >= cpus / 2


def machine_busy_now(samples: int = 5, interval: float = 0.01,
                     read_stat: Callable[[], Optional[str]] = lambda: _read(Path("/proc/stat")),
                     sleep: Callable[[float], None] = time.sleep) -> bool:
    """``machine_busy`` by the majority of up to ``samples`` readings of ``/proc/stat``'s runnable tasks,
    ``interval`` seconds apart (one reading catches a passing process), on this machine's CPU count; it stops as
    soon as a majority agrees, so an idle machine costs every command three readings (False off Linux)."""
    cpus, need, votes = os.cpu_count() or 1, samples // 2 + 1, [0, 0]  # [idle, busy]
    while max(votes) < need:
        stat = read_stat()
        count = runnable_others(stat) if stat else None
        if count is None:
            return False
        votes[machine_busy(count, cpus)] += 1
        if max(votes) < need:
            sleep(interval)
    return votes[1] >= need


def passive_wait_env(environ: Mapping[str, str], busy: bool = True) -> dict[str, str]:
    """The OpenMP setting seqnlp's own processes start torch with on a busy machine: a thread that reaches a barrier
    first sleeps at once (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning, which takes the core from the very
    thread it waits for (docs/performance.md: beside two busy loops, two threads trained the default run 1.9x
    faster so). On an idle machine spinning is faster, so nothing is set; nor when the environment already chose
    (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``)."""
    if not busy or "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return {}
    return {"OMP_WAIT_POLICY": "PASSIVE"}


def prefer_passive_wait(environ: Optional[MutableMapping[str, str]] = None, busy: Optional[bool] = None) -> bool:
    """Put ``passive_wait_env`` into this process's environment if torch has not started yet (OpenMP reads it once,
    when torch loads); True when it was set. ``busy`` (default: ``machine_busy`` now, from ``/proc``) says whether
    other work keeps the machine busy. For the command line and the processes seqnlp starts, not for a library
    import: a library does not change its caller's environment."""
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules:
        return False
    updates = passive_wait_env(environ, machine_busy_now() if busy is None else busy)
    environ.update(updates)
    return bool(updates)


def wait_policy(environ: Mapping[str, str]) -> str:
    """How OpenMP threads wait at barriers in this process, for the log."""
    if environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        return "OpenMP threads sleep at barriers"
    return "OpenMP threads spin at barriers" + (" (GOMP_SPINCOUNT set)" if "GOMP_SPINCOUNT" in environ else "")


def candidates(cpus: int) -> list[int]:
    """Thread counts worth timing on ``cpus`` usable CPUs: 1, the powers of two below ``cpus``, and ``cpus``."""
    found = {1, cpus}
    power = 2
    while power < cpus:
        found.add(power)
        power *= 2
    return sorted(found)


def resolve_threads(setting: int | str | None) -> Optional[int]:
    """A thread setting (a count, ``auto`` or None) -> the count to start with (None: leave torch's setting)."""
    if setting is None:
        return None
    if setting == AUTO:
        return usable_cpus()
    return int(setting)


@dataclass
class _Rate:
    tokens: int = 0
    seconds: float = 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds

    @property
    def per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Decision:
    """A finished probe: the chosen count, each candidate's measured tokens/s, and why the choice was made."""

    threads: int
    rates: dict[int, float]  # thread count -> tokens/s in this probe (dropped candidates: their rate when dropped)
    reason: str
    changed: bool
    at: float = field(default=0.0)  # the clock's time of the decision

    def summary(self) -> str:
        rates = ", ".join(f"{n} thread{'s' if n > 1 else ''} {r:,.0f}" for n, r in sorted(self.rates.items()))
        return f"{self.threads} thread{'s' if self.threads > 1 else ''} ({self.reason}; tokens/s: {rates})"


class ThreadTuner:
    """Picks the thread count that runs the most tokens per second, from the steps it is told about.

    The caller runs every step at ``threads`` and reports it with ``observe(tokens, seconds)``; when the answer
    is a number, the caller switches to that many threads before the next step. A run starts at the fewest
    threads, the count that never collapses.

    A probe times each candidate for ``steps`` steps, in ``rounds`` rounds whose order alternates (A B, B A:
    a load that drifts during the probe hits every candidate alike); the first step after a switch is not
    counted (new thread teams and caches). A candidate that runs at less than ``drop_below`` of the best rate
    seen in the probe is dropped at once, so a thread count that collapses on a busy machine costs few steps.
    The fastest candidate wins; one within ``tolerance`` of it with fewer threads is preferred (it leaves cores
    to others and suffers less from them). The first probe starts after ``delay`` steps (first batches pay
    one-off allocations); later probes come ``recheck_s`` seconds after a decision, an interval that doubles
    (up to ``max_recheck_s``) each time a probe confirms the choice and starts over when the choice changes.
    """

    def __init__(self, candidates: Sequence[int], steps: int = 3, rounds: int = 2, delay: int = 2,
                 recheck_s: float = 30.0, max_recheck_s: float = 480.0, tolerance: float = 0.05,
                 drop_below: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        if not candidates or min(candidates) < 1:
            raise ValueError(f"candidates must be thread counts >= 1, not {list(candidates)}")
        self.candidates = sorted(set(candidates))
        self.steps, self.rounds, self.delay = steps, rounds, delay
        self.recheck_s, self.max_recheck_s, self.interval = recheck_s, max_recheck_s, recheck_s
        self.tolerance, self.drop_below, self.clock = tolerance, drop_below, clock
        self.threads = self.candidates[0]  # the count the next step runs at: the fewest, which never collapses
        self.chosen: Optional[int] = None  # the last decision's count (None before the first probe)
        self.decisions: list[Decision] = []
        self._plan: list[int] = []  # the thread count of each remaining probe step, next first
        self._rates: dict[int, _Rate] = {}
        self._dropped: set[int] = set()
        self._previous: Optional[int] = None  # the count the step before this one ran at
        self._next_probe = math.inf
        self._waited = 0

    @property
    def probing(self) -> bool:
        return bool(self._plan)

    def observe(self, tokens: int, seconds: float) -> Optional[int]:
        """Count the step that just ran at ``threads``; return the count for the next step if it changes."""
        ran_at, warm = self.threads, self._previous == self.threads
        self._previous = ran_at
        if len(self.candidates) == 1:
            return None
        if self._plan:
            self._plan.pop(0)
            if warm and ran_at not in self._dropped:
                self._count(ran_at, tokens, seconds)
            if not self._plan:
                self._decide()
        elif self.chosen is None:
            self._waited += 1
            if self._waited >= self.delay:
                self._start_probe()
        elif self.clock() >= self._next_probe:
            self._start_probe()
        return self._switch_to(self._plan[0] if self._plan else self.chosen)

    def _start_probe(self) -> None:
        """Plan a probe: the current count first (no switch), then the others from the fewest threads up; the
        next round in reverse."""
        order = [self.threads, *[n for n in self.candidates if n != self.threads]]
        plan: list[int] = []
        for round_ in range(self.rounds):
            for n in order if round_ % 2 == 0 else order[::-1]:
                # the first step after a switch warms up and is not counted
                plan.extend([n] * (self.steps + (0 if plan and plan[-1] == n else 1)))
        if plan[0] == self.threads and self._previous == self.threads:
            plan.pop(0)  # already warm at this count
        self._plan, self._rates, self._dropped = plan, {n: _Rate() for n in self.candidates}, set()

    def _count(self, threads: int, tokens: int, seconds: float) -> None:
        """Add a measured step; drop every candidate running below ``drop_below`` of the best rate so far."""
        self._rates[threads].add(tokens, seconds)
        best = max(r.per_s for r in self._rates.values())
        for n, rate in self._rates.items():
            if n not in self._dropped and rate.seconds > 0 and rate.per_s < self.drop_below * best:
                self._dropped.add(n)
                self._plan = [m for m in self._plan if m != n]

    def _decide(self) -> None:
        rates = {n: r.per_s for n, r in self._rates.items() if r.seconds > 0}
        if not rates:  # nothing was measured (all steps were warm-ups): keep what runs now
            rates = {self.threads: 0.0}
        best = max(rates.values())
        threads = min(n for n, rate in rates.items() if rate >= (1 - self.tolerance) * best)
        fastest = max(rates, key=rates.__getitem__)
        reason = "fastest" if threads == fastest else f"within {self.tolerance:.0%} of {fastest} threads, fewer threads"
        if self._dropped:
            reason += f"; dropped below {self.drop_below:.0%} of the best: {', '.join(map(str, sorted(self._dropped)))}"
        changed = self.chosen is not None and threads != self.chosen
        if self.chosen is None or changed:
            self.interval = self.recheck_s
        else:
            self.interval = min(self.interval * 2, self.max_recheck_s)
        now = self.clock()
        self.chosen = threads
        self._next_probe = now + self.interval
        self.decisions.append(Decision(threads, rates, reason, changed, now))

    def _switch_to(self, threads: Optional[int]) -> Optional[int]:
        if threads is None or threads == self.threads:
            return None
        self.threads = threads
        return threads
