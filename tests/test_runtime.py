"""Thread settings of inference: a fixed count, torch's own, or auto timed batch by batch; always restored."""

from __future__ import annotations

import pytest
import torch

from seqnlp import runtime
from seqnlp.runtime import ThreadControl, set_threads


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _restore_threads() -> object:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_fixed_count_is_applied_for_the_work_and_restored_after() -> None:
    torch.set_num_threads(1)
    control = ThreadControl(2)
    with control.applied():
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
    with ThreadControl(None).applied():  # None: torch's setting as it is
        assert torch.get_num_threads() == 1


def test_auto_times_batches_and_switches_as_the_tuner_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 2)
    clock = Clock()
    control = ThreadControl("auto", clock=clock)
    assert control.tuner is not None and control.threads == 1  # it starts at one thread
    rate = {1: 1000.0, 2: 3000.0}
    torch.set_num_threads(1)
    with control.applied():
        for _ in range(30):
            seconds = 100 / rate[torch.get_num_threads()]
            clock.now += seconds
            control.observe(100, seconds)
        assert torch.get_num_threads() == 2 and control.tuner.chosen == 2
    assert torch.get_num_threads() == 1  # restored after the call


def test_auto_without_a_choice_is_a_fixed_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 1)
    assert ThreadControl("auto").tuner is None and ThreadControl("auto").threads == 1
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 8)
    assert ThreadControl("auto", max_threads=3).tuner.candidates == [1, 2, 3]  # type: ignore[union-attr]
    on_gpu = ThreadControl("auto", device=torch.device("cuda"))
    assert on_gpu.tuner is None and on_gpu.threads == 8


def test_set_threads_takes_a_count_auto_or_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "resolve_threads", lambda setting: {"auto": 2, None: None}.get(setting, setting))
    set_threads(1)
    assert torch.get_num_threads() == 1
    set_threads("auto")
    assert torch.get_num_threads() == 2
    set_threads(None)
    assert torch.get_num_threads() == 2
