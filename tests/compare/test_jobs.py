"""How many compare runs train at once and on how many threads: the rule, the thread shares, and the runner that
keeps results in order and stops starting tasks after a failure."""

from __future__ import annotations

import threading
import time

import pytest

from seqnlp.compare import jobs as jobs_module
from seqnlp.compare.jobs import resolve_jobs, run_all, share_cpus
from seqnlp.config import Config, load_config
from seqnlp.errors import ConfigError


def cpu_config(**updates: object) -> Config:
    return load_config(updates={"train.device": "cpu", **updates})


def test_auto_runs_one_job_per_usable_cpu_for_isolated_cpu_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs_module, "usable_cpus", lambda: 2)
    assert resolve_jobs("auto", True, cpu_config(), runs=3) == 2
    assert resolve_jobs("auto", True, cpu_config(), runs=1) == 1  # never more jobs than runs
    assert resolve_jobs("auto", False, cpu_config(), runs=3) == 1  # one process: one run at a time
    assert resolve_jobs("auto", True, cpu_config(**{"train.device": "cuda"}), runs=3) == 1
    monkeypatch.setattr(jobs_module, "usable_cpus", lambda: 1)
    assert resolve_jobs("auto", True, cpu_config(), runs=3) == 1


def test_a_fixed_job_count_is_checked() -> None:
    assert resolve_jobs(3, True, cpu_config(), runs=2) == 3
    assert resolve_jobs(1, False, cpu_config(), runs=2) == 1
    with pytest.raises(ConfigError, match="needs isolated runs"):
        resolve_jobs(2, False, cpu_config(), runs=2)
    for bad in (0, -1, True, "two"):
        with pytest.raises(ConfigError, match="is not auto or an integer >= 1"):
            resolve_jobs(bad, True, cpu_config(), runs=2)  # type: ignore[arg-type]


def test_runs_side_by_side_get_a_share_of_the_cpus_unless_their_count_is_fixed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs_module, "usable_cpus", lambda: 4)
    assert share_cpus(cpu_config(), 2).train.num_threads == 2
    assert share_cpus(cpu_config(), 4).train.num_threads == 1
    assert share_cpus(cpu_config(), 8).train.num_threads == 1
    fixed = cpu_config(**{"train.num_threads": 3})
    assert share_cpus(fixed, 2) is fixed


def test_run_all_keeps_the_order_and_runs_tasks_at_once() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def task(value: int, delay: float) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(delay)
        with lock:
            running[0] -= 1
        return value

    assert run_all([lambda v=v, d=d: task(v, d) for v, d in ((1, 0.2), (2, 0.0), (3, 0.1))], jobs=2) == [1, 2, 3]
    assert most[0] == 2
    assert run_all([lambda: 7, lambda: 8], jobs=1) == [7, 8]


def test_after_a_failure_no_task_starts_and_the_first_failure_is_raised() -> None:
    started: list[int] = []

    def task(value: int) -> int:
        started.append(value)
        if value == 1:
            raise ConfigError("run 1 failed")
        time.sleep(0.5)  # the others are still running when the failure is seen
        return value

    with pytest.raises(ConfigError, match="run 1 failed"):
        run_all([lambda v=v: task(v) for v in range(1, 6)], jobs=2)
    assert 5 not in started and len(started) <= 3
