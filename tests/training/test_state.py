"""TrainingState: to_json -> from_json gives the same state, and a damaged or older state.json is a one-line
CheckpointError naming the key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from seqnlp.errors import CheckpointError
from seqnlp.runtime import get_rng_state
from seqnlp.training.state import VERSION, MonitorState, TrainingState


def a_state() -> TrainingState:
    return TrainingState(
        epoch=3, batch=4, step=24, skipped_steps=1, finished=False, loss_sum=1.25, terms=64, examples=64, tokens=900,
        slots=1024, seconds=0.5, monitor=MonitorState(best_score=0.9, best_epoch=2, bad_epochs=0, plateau_bad=0,
                                                       plateau_scale=0.5),
        history=[{"epoch": 1, "validation": {"accuracy": 0.8}}, {"epoch": 2, "validation": {"accuracy": 0.9}}],
        rng_by_rank=[get_rng_state(), get_rng_state()], world_size=2, scaler={"scale": 65536.0},
    )


def test_round_trip_through_json_text() -> None:
    state = a_state()
    again = TrainingState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state


def test_a_fresh_state_round_trips_with_no_best_score() -> None:
    state = TrainingState(rng_by_rank=[get_rng_state()])
    assert TrainingState.from_json(state.to_json()) == state
    assert state.to_json()["monitor"]["best_score"] is None


def test_the_layout_is_versioned_and_sections_are_apart() -> None:
    data = a_state().to_json()
    assert data["version"] == VERSION
    assert set(data) == {"version", "loop", "monitor", "history", "rng_by_rank", "world_size", "scaler"}
    assert data["loop"]["step"] == 24 and "best_score" not in data["loop"]


def test_next_epoch_starts_the_sums_from_zero() -> None:
    state = a_state()
    state.next_epoch()
    assert (state.epoch, state.batch, state.loss_sum, state.examples, state.tokens, state.slots,
            state.seconds) == (4, 0, 0.0, 0, 0, 0, 0.0)
    assert state.step == 24 and state.monitor.best_epoch == 2  # the run's counters stay


def broken(edit: Any) -> dict[str, Any]:
    data = copy.deepcopy(a_state().to_json())
    edit(data)
    return data


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["loop"].pop("epoch"), "key 'loop.epoch' is missing"),
    (lambda d: d.pop("monitor"), "key 'monitor' is missing"),
    (lambda d: d["loop"].update(step="24"), "'loop.step' must be an integer, got '24'"),
    (lambda d: d["loop"].update(batch=True), "'loop.batch' must be an integer, got True"),
    (lambda d: d["loop"].update(finished=1), "'loop.finished' must be true or false, got 1"),
    (lambda d: d["monitor"].update(best_score="high"), "'monitor.best_score' must be a number, got 'high'"),
    (lambda d: d.update(history={}), "'history' must be a list"),
    (lambda d: d.update(history=[1, 2]), "'history' must be a list of epoch records"),
    (lambda d: d.update(scaler=None), "'scaler' must be an object, got None"),
    (lambda d: d.update(world_size=3), "'rng_by_rank' must hold one RNG state object per process (3), found 2"),
    # Issue 14: unknown keys, values out of range and RNG states that would fail deep inside a resume.
    (lambda d: d["loop"].update(bogus=1), "unknown key 'loop.bogus'; loop holds epoch, batch, step"),
    (lambda d: d["monitor"].update(best=1), "unknown key 'monitor.best'"),
    (lambda d: d.update(extra={}), "unknown key 'extra'; the state holds version, loop, monitor"),
    (lambda d: d["loop"].update(step=-1), "'loop.step' is out of range"),
    (lambda d: d["loop"].update(epoch=0), "'loop.epoch' is out of range"),
    (lambda d: d["loop"].update(loss_sum=float("nan")), "'loop.loss_sum' is out of range"),
    (lambda d: d["monitor"].update(plateau_scale=2.0), "'monitor.plateau_scale' is out of range"),
    (lambda d: d["monitor"].update(best_score=float("inf")), "'monitor.best_score' is out of range"),
    (lambda d: d["rng_by_rank"][0].update(python=[1, 2]), "rng_by_rank[0]: 'python' is not a python random"),
    (lambda d: d["rng_by_rank"][1]["numpy"].__setitem__(0, "PCG64"), "rng_by_rank[1]: 'numpy' is not"),
    (lambda d: d["rng_by_rank"][0]["numpy"][1].__setitem__(3, 2**40), "'numpy' is not"),
    (lambda d: d["rng_by_rank"][0].update(torch=[256]), "'torch' is not a torch random"),
    (lambda d: d["rng_by_rank"][0].update(torch="seed"), "'torch' is not"),
    (lambda d: d["rng_by_rank"][0].pop("python"), "'python' is not"),
    (lambda d: d["rng_by_rank"][0].update(cuda=[[1, 300]]), "'cuda' is not"),
    (lambda d: d["rng_by_rank"][0].update(mps=[]), "unknown key 'mps'"),
    (lambda d: d.update(world_size=0, rng_by_rank=[]), "one RNG state object per process (0)"),
])
def test_bad_values_name_the_key(edit: Any, message: str) -> None:
    with pytest.raises(CheckpointError) as info:
        TrainingState.from_json(broken(edit), "runs/x/state.json")
    text = str(info.value)
    assert text.startswith("runs/x/state.json") and message in text and "\n" not in text


def test_an_int_where_a_float_belongs_is_taken() -> None:
    state = TrainingState.from_json(broken(lambda d: d["loop"].update(loss_sum=2)))
    assert state.loss_sum == 2.0 and isinstance(state.loss_sum, float)


def test_the_old_layout_is_refused_in_one_line() -> None:
    """state.json as seqnlp wrote it before TrainingState: loop and monitor mixed, no version."""
    old = {"loop": {"epoch": 2, "batch": 0, "step": 10, "best_score": 0.9, "best_epoch": 1, "history": []},
           "rng": get_rng_state(), "world_size": 1, "scaler": {}}
    with pytest.raises(CheckpointError, match=rf"another seqnlp version \(1, this one reads {VERSION}\); train the run "
                       "again"):
        TrainingState.from_json(old)
    before_terms = a_state().to_json()  # version 2 counted no loss terms (a language model's loss is per token)
    del before_terms["loop"]["terms"]
    before_terms["version"] = 2
    with pytest.raises(CheckpointError, match=rf"another seqnlp version \(2, this one reads {VERSION}\)"):
        TrainingState.from_json(before_terms)
    with pytest.raises(CheckpointError, match="must hold a JSON object, not list"):
        TrainingState.from_json([1, 2])
