"""The usable CPU count read from fixture cgroup files, and the thread-selection rule driven by a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import pytest

from seqnlp import threads
from seqnlp.threads import (
    ThreadTuner,
    candidates,
    cgroup_cpu_limit,
    parse_cfs,
    parse_cpu_max,
    parse_proc_cgroup,
    resolve_threads,
    usable_cpus,
)

# --- the files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, cpus", [
    ("max 100000\n", None), ("200000 100000\n", 2.0), ("150000 100000", 1.5), ("50000 100000", 0.5),
    ("100000", 1.0), ("", None), ("garbage 100000", None), ("0 100000", None),
])
def test_parse_cpu_max(text: str, cpus: Optional[float]) -> None:
    assert parse_cpu_max(text) == cpus


@pytest.mark.parametrize("quota, period, cpus", [
    ("-1\n", "100000\n", None), ("200000\n", "100000\n", 2.0), ("25000", "100000", 0.25), ("x", "100000", None),
    ("100000", "0", None),
])
def test_parse_cfs(quota: str, period: str, cpus: Optional[float]) -> None:
    assert parse_cfs(quota, period) == cpus


def test_parse_proc_cgroup_v1_v2_and_hybrid() -> None:
    hybrid = "12:pids:/user.slice\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n"
    paths = parse_proc_cgroup(hybrid)
    assert paths.v2 == "/docker/abc" and paths.v1_cpu == "/docker/abc"
    assert parse_proc_cgroup("0::/kubepods/pod1/c1\n") == threads.CgroupPaths("/kubepods/pod1/c1", None)
    assert parse_proc_cgroup("3:cpuacct:/x\n5:cpuset:/y\n") == threads.CgroupPaths(None, None)  # no "cpu" controller


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def v2_tree(tmp_path: Path, cgroup: str, limits: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup v2 mount under tmp_path/root with ``cpu.max`` files, and a /proc/self/cgroup naming ``cgroup``."""
    root = tmp_path / "root"
    write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    for directory, text in limits.items():
        write(root / directory / "cpu.max", text)
    (root / cgroup.lstrip("/")).mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-cgroup"
    write(proc, f"0::{cgroup}\n")
    return proc, root


def test_v2_quota_of_the_process_cgroup(tmp_path: Path) -> None:
    proc, root = v2_tree(tmp_path, "/kubepods/pod1", {"kubepods/pod1": "150000 100000\n", "kubepods": "max 100000\n"})
    assert cgroup_cpu_limit(proc, root) == 1.5


def test_v2_the_tightest_ancestor_binds(tmp_path: Path) -> None:
    proc, root = v2_tree(tmp_path, "/a/b/c", {"a": "100000 100000", "a/b": "300000 100000", "a/b/c": "max 100000"})
    assert cgroup_cpu_limit(proc, root) == 1.0


def test_v2_no_limit_anywhere(tmp_path: Path) -> None:
    proc, root = v2_tree(tmp_path, "/user.slice", {"user.slice": "max 100000"})
    assert cgroup_cpu_limit(proc, root) is None


def test_v2_namespaced_container_reads_the_mount_itself(tmp_path: Path) -> None:
    """In its own cgroup namespace a container sees "0::/" (or a host path that is not under its mount)."""
    root = tmp_path / "root"
    write(root / "cgroup.controllers", "cpu\n")
    write(root / "cpu.max", "200000 100000\n")
    proc = tmp_path / "proc-cgroup"
    for line in ("0::/\n", "0::/system.slice/docker-123.scope\n"):
        write(proc, line)
        assert cgroup_cpu_limit(proc, root) == 2.0


def test_v2_path_cannot_escape_the_mount(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "cgroup.controllers", "cpu\n")
    write(tmp_path / "cpu.max", "100000 100000\n")  # outside the mount: never read
    write(tmp_path / "proc-cgroup", "0::/../\n")
    assert cgroup_cpu_limit(tmp_path / "proc-cgroup", root) is None


def test_v1_quota(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for directory, quota in (("cpu,cpuacct", "-1"), ("cpu,cpuacct/docker", "-1"), ("cpu,cpuacct/docker/abc", "50000")):
        write(root / directory / "cpu.cfs_quota_us", quota + "\n")
        write(root / directory / "cpu.cfs_period_us", "100000\n")
    write(tmp_path / "proc-cgroup", "4:cpu,cpuacct:/docker/abc\n0::/docker/abc\n")
    assert cgroup_cpu_limit(tmp_path / "proc-cgroup", root) == 0.5


def test_v1_without_a_quota_and_missing_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    write(tmp_path / "proc-cgroup", "2:cpu:/\n")
    assert cgroup_cpu_limit(tmp_path / "proc-cgroup", root) is None
    assert cgroup_cpu_limit(tmp_path / "missing", root) is None  # no /proc (not Linux)
    assert cgroup_cpu_limit(tmp_path / "proc-cgroup", tmp_path / "nothing-mounted") is None


def test_usable_cpus_is_the_affinity_capped_by_the_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc, root = v2_tree(tmp_path, "/pod", {"pod": "150000 100000"})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 64)
    assert usable_cpus(proc, root) == 2  # a quota of 1.5 CPUs rounds up
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 1)
    assert usable_cpus(proc, root) == 1  # the mask is tighter
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    write(root / "pod" / "cpu.max", "10000 100000")
    assert usable_cpus(proc, root) == 1  # never 0
    write(root / "pod" / "cpu.max", "max 100000")
    assert usable_cpus(proc, root) == 8
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert usable_cpus(proc, root) == 3  # whoever set it asked for at most 3
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert usable_cpus(proc, root) == 8


def test_affinity_is_read_from_the_os() -> None:
    assert 1 <= threads.affinity_cpus()


def test_candidates_and_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    assert candidates(1) == [1] and candidates(2) == [1, 2] and candidates(6) == [1, 2, 4, 6]
    assert candidates(16) == [1, 2, 4, 8, 16]
    monkeypatch.setattr(threads, "usable_cpus", lambda: 6)
    assert resolve_threads("auto") == 6 and resolve_threads(3) == 3 and resolve_threads(None) is None


# --- the rule ---------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(tuner: ThreadTuner, clock: FakeClock, speed: Callable[[int], float], steps: int,
          tokens: int = 1000) -> list[int]:
    """Run ``steps`` steps of ``tokens`` tokens, each taking tokens / speed(threads) seconds; the counts run at."""
    ran = []
    for _ in range(steps):
        threads_now = tuner.threads
        ran.append(threads_now)
        seconds = tokens / speed(threads_now)
        clock.now += seconds
        tuner.observe(tokens, seconds)
    return ran


def test_idle_machine_picks_the_most_threads() -> None:
    clock = FakeClock()
    tuner = ThreadTuner([1, 2], clock=clock)
    ran = drive(tuner, clock, {1: 1000.0, 2: 1400.0}.__getitem__, 40)
    assert ran[0] == 1  # it starts at the count that never collapses
    assert tuner.chosen == 2 and ran[-10:] == [2] * 10
    decision = tuner.decisions[0]
    assert decision.rates == pytest.approx({1: 1000.0, 2: 1400.0}) and decision.reason == "fastest"
    assert "2 threads (fastest; tokens/s: 1 thread 1,000, 2 threads 1,400)" == decision.summary()


def test_probe_alternates_counts_and_skips_warm_up_steps() -> None:
    clock = FakeClock()
    tuner = ThreadTuner([1, 2], steps=3, rounds=2, delay=2, clock=clock)
    ran = drive(tuner, clock, {1: 1000.0, 2: 1400.0}.__getitem__, 16)
    # 2 steps' delay, then 1 (warm already) x3, 2 x(1 warm-up + 3), 2 x3, 1 x(1 + 3): A B B A
    assert ran == [1, 1] + [1] * 3 + [2] * 4 + [2] * 3 + [1] * 4
    assert tuner.chosen == 2 and tuner.threads == 2


def test_a_collapsing_count_is_dropped_after_one_measured_step() -> None:
    """Busy cores: two threads run at a tenth of one thread's speed; the probe gives up on them at once."""
    clock = FakeClock()
    tuner = ThreadTuner([1, 2], clock=clock)
    ran = drive(tuner, clock, {1: 1000.0, 2: 100.0}.__getitem__, 30)
    assert ran.count(2) == 2  # one warm-up step and one measured step
    assert tuner.chosen == 1 and "dropped below 50% of the best: 2" in tuner.decisions[0].reason


def test_close_rates_prefer_fewer_threads() -> None:
    clock = FakeClock()
    tuner = ThreadTuner([1, 2, 4], tolerance=0.05, clock=clock)
    drive(tuner, clock, {1: 1000.0, 2: 1030.0, 4: 1040.0}.__getitem__, 40)
    assert tuner.chosen == 1
    assert tuner.decisions[0].reason == "within 5% of 4 threads, fewer threads"


def test_rechecks_follow_the_load_and_back_off_while_it_holds() -> None:
    clock = FakeClock()
    tuner = ThreadTuner([1, 2], recheck_s=10.0, max_recheck_s=40.0, clock=clock)
    load = {"busy": False}

    def speed(n: int) -> float:
        return {1: 1000.0, 2: 150.0}[n] if load["busy"] else {1: 1000.0, 2: 1400.0}[n]

    drive(tuner, clock, speed, 30)
    assert tuner.chosen == 2 and tuner.interval == 10.0
    load["busy"] = True  # other processes start
    while len(tuner.decisions) < 2:
        drive(tuner, clock, speed, 1)
    assert tuner.chosen == 1 and tuner.decisions[-1].changed and tuner.interval == 10.0
    while len(tuner.decisions) < 4:  # the load stays: each confirmation doubles the wait, up to the cap
        drive(tuner, clock, speed, 1)
    gaps = [b.at - a.at for a, b in zip(tuner.decisions[1:], tuner.decisions[2:])]
    assert tuner.chosen == 1 and not tuner.decisions[-1].changed
    assert gaps[0] >= 10.0 and gaps[1] >= 20.0 and tuner.interval == 40.0
    load["busy"] = False  # the others finish: the next probe goes back to two threads
    while len(tuner.decisions) < 5:
        drive(tuner, clock, speed, 1)
    assert tuner.chosen == 2 and tuner.decisions[-1].changed and tuner.interval == 10.0


def test_no_probe_before_the_recheck_time() -> None:
    clock = FakeClock()
    tuner = ThreadTuner([1, 2], recheck_s=1e9, clock=clock)
    drive(tuner, clock, {1: 1000.0, 2: 1400.0}.__getitem__, 500)
    assert len(tuner.decisions) == 1 and not tuner.probing


def test_one_candidate_never_switches() -> None:
    clock = FakeClock()
    tuner = ThreadTuner([1], clock=clock)
    assert set(drive(tuner, clock, lambda n: 1000.0, 20)) == {1} and not tuner.decisions


def test_bad_candidates_are_rejected() -> None:
    with pytest.raises(ValueError, match="thread counts >= 1"):
        ThreadTuner([])
    with pytest.raises(ValueError, match="thread counts >= 1"):
        ThreadTuner([0, 2])


# --- the OpenMP wait policy of seqnlp's own processes -----------------------------------------------------------


def test_passive_wait_on_a_busy_machine_unless_the_environment_chose() -> None:
    assert threads.passive_wait_env({}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert threads.passive_wait_env({}, busy=False) == {}  # idle: spinning waits are faster
    assert threads.passive_wait_env({"OMP_WAIT_POLICY": "ACTIVE"}) == {}
    assert threads.passive_wait_env({"GOMP_SPINCOUNT": "10000"}) == {}


def test_busy_is_read_from_the_tasks_running_now_not_the_lagging_load_average() -> None:
    stat = "cpu  1 2 3\nctxt 99\nprocs_running 4\nprocs_blocked 0\n"
    assert threads.runnable_others(stat) == 3 and threads.runnable_others("cpu 1 2\n") is None
    assert threads.machine_busy(0, cpus=2) is False
    assert threads.machine_busy(1, cpus=2) is True  # one CPU's worth of other work on two
    assert threads.machine_busy(3, cpus=8) is False
    assert threads.machine_busy(None, cpus=2) is False
    assert isinstance(threads.machine_busy_now(), bool)


def test_busy_now_is_the_median_of_several_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    readings = iter([3, 1, 1, 3, 3])  # procs_running, this process included: a passing task is outvoted
    waits: list[float] = []
    stat = lambda: f"procs_running {next(readings)}\n"  # noqa: E731
    assert threads.machine_busy_now(read_stat=stat, sleep=waits.append) is True
    assert waits == [0.01] * 4
    readings, waits = iter([1, 3, 1, 1, 1]), []
    assert threads.machine_busy_now(read_stat=stat, sleep=waits.append) is False
    assert waits == [0.01] * 3  # the fourth reading makes a majority: no fifth
    readings, waits = iter([1, 1, 1]), []
    assert threads.machine_busy_now(read_stat=stat, sleep=waits.append) is False and waits == [0.01] * 2
    assert threads.machine_busy_now(read_stat=lambda: "cpu 1\n", sleep=waits.append) is False  # no procs_running


def test_the_policy_is_set_only_before_torch_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    environ: dict[str, str] = {}
    assert threads.prefer_passive_wait(environ, busy=True) is False and environ == {}  # torch is loaded here
    monkeypatch.delitem(threads.sys.modules, "torch")
    assert threads.prefer_passive_wait(environ, busy=False) is False and environ == {}
    assert threads.prefer_passive_wait(environ, busy=True) is True and environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    chosen = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert threads.prefer_passive_wait(chosen, busy=True) is False and chosen == {"OMP_WAIT_POLICY": "ACTIVE"}
    assert threads.wait_policy(environ) == "OpenMP threads sleep at barriers"
    assert threads.wait_policy({}) == "OpenMP threads spin at barriers"
