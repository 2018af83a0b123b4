"""The study's storage and survival: pruners by name, joining with the same settings only, where --resume finds
a study, the time a study has spent, and trials of dead processes failed and queued again once."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState

from seqnlp.errors import ConfigError
from seqnlp.tune.study import (
    STUDY_DB,
    STUDY_FILE,
    Settings,
    create_or_join,
    hidden,
    load_existing,
    locate,
    make_pruner,
    opened,
    recover_lost_trials,
    storage_url,
    time_spent,
    write_study_file,
)

# study.ask() outside optimize() warns that the heartbeat (on in every seqnlp storage) needs optimize(): these
# tests ask for trials by hand to stage running and lost ones.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")

SETTINGS = Settings({"train": {"epochs": 3}}, {"model.hidden_size": [8, 16]}, "accuracy", "median", 60.0, None)


@pytest.mark.parametrize("name, kind", [("median", optuna.pruners.MedianPruner),
                                        ("halving", optuna.pruners.SuccessiveHalvingPruner),
                                        ("hyperband", optuna.pruners.HyperbandPruner),
                                        ("none", optuna.pruners.NopPruner)])
def test_pruners_by_name(name: str, kind: type) -> None:
    recorded, pruner = make_pruner(name, epochs=6)
    assert recorded == name and isinstance(pruner, kind)


def test_a_pruner_object_is_used_as_it_is_and_a_bad_name_is_refused() -> None:
    mine = optuna.pruners.PercentilePruner(25.0)
    assert make_pruner(mine, 6) == ("PercentilePruner", mine)
    with pytest.raises(ConfigError, match="pruner 'asha' is not one of median, halving, hyperband, none"):
        make_pruner("asha", 6)


def test_the_direction_follows_the_metric() -> None:
    assert SETTINGS.direction == "maximize"
    assert replace(SETTINGS, metric="loss").direction == "minimize"


def test_a_second_process_joins_with_the_same_settings_only(tmp_path: Path) -> None:
    url = storage_url(tmp_path, None)
    with opened(url) as storage:
        study, created = create_or_join(storage, "s", SETTINGS, optuna.pruners.NopPruner(), seed=1)
        study.enqueue_trial({"model.hidden_size": 8})
        joined, again_created = create_or_join(storage, "s", replace(SETTINGS, budget=5.0, trials=3),
                                               optuna.pruners.NopPruner(), 1)
        assert (created, again_created) == (True, False)
        assert len(joined.trials) == 1  # the same study: budget and trial count may differ per process
        with pytest.raises(ConfigError, match="already holds a study with another space; continue it with seqnlp "
                                              "tune --resume DIR"):
            create_or_join(storage, "s", replace(SETTINGS, space={"model.cell": ["gru"]}), optuna.pruners.NopPruner(),
                           1)
        again, settings = load_existing(storage, "s")
        assert settings == SETTINGS and isinstance(again.pruner, optuna.pruners.MedianPruner)
        with pytest.raises(ConfigError, match="no study named 'other'"):
            load_existing(storage, "other")
    assert (tmp_path / STUDY_DB).is_file()


def test_locate_finds_the_study_of_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such directory"):
        locate(tmp_path / "nope", None)
    with pytest.raises(ConfigError, match="it holds no study"):
        locate(tmp_path, None)
    write_study_file(tmp_path, "postgresql://me:secret@db.example/optuna", "runs", SETTINGS)
    text = (tmp_path / STUDY_FILE).read_text()
    assert "secret" not in text and "db.example" in text
    with pytest.raises(ConfigError, match="give its URL with --storage"):
        locate(tmp_path, None)
    assert locate(tmp_path, "postgresql://me@db/o") == ("postgresql://me@db/o", tmp_path.resolve().name)
    (tmp_path / STUDY_DB).touch()
    assert locate(tmp_path, None) == (storage_url(tmp_path, None), "seqnlp-tune")


def test_hidden_masks_the_password() -> None:
    assert hidden("mysql+pymysql://me:pw@host/db") == "mysql+pymysql://me:***@host/db"


def _trial(number: int, state: TrialState, start: int, stop: int) -> FrozenTrial:
    t0 = datetime(2026, 1, 1)
    return FrozenTrial(number=number, state=state, value=0.5 if state == TrialState.COMPLETE else None,
                       datetime_start=t0 + timedelta(seconds=start), datetime_complete=t0 + timedelta(seconds=stop),
                       params={}, distributions={}, user_attrs={}, system_attrs={}, intermediate_values={},
                       trial_id=number)


def test_time_spent_counts_parallel_trials_once_and_lost_ones_not_at_all() -> None:
    trials = [_trial(0, TrialState.COMPLETE, 0, 100), _trial(1, TrialState.PRUNED, 50, 150),  # overlap: 150 s
              _trial(2, TrialState.COMPLETE, 200, 260), _trial(3, TrialState.FAIL, 300, 900)]
    assert time_spent(trials) == 210.0


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped: the pid names no process now
    return process.pid


def test_a_trial_of_a_dead_process_is_failed_and_queued_again_once(tmp_path: Path) -> None:
    import socket

    with opened(storage_url(tmp_path, None)) as storage:
        study = optuna.create_study(storage=storage, study_name="s")
        dead, alive = study.ask(), study.ask()
        for trial, pid in ((dead, _dead_pid()), (alive, 1)):  # pid 1 is always alive
            trial.suggest_int("model.hidden_size", 8, 16)
            trial.set_user_attr("process", {"host": socket.gethostname(), "pid": pid})
        failed = study.ask()
        failed.suggest_int("model.hidden_size", 8, 16)
        failed.set_user_attr("error", "DataError: no such column")
        study.tell(failed, state=TrialState.FAIL)

        assert recover_lost_trials(study) == [dead.number]
        states = {t.number: t.state for t in study.trials}
        assert states == {0: TrialState.FAIL, 1: TrialState.RUNNING, 2: TrialState.FAIL, 3: TrialState.WAITING}
        retry = study.trials[3]
        assert retry.user_attrs["retry_of"] == dead.number
        assert retry.system_attrs["fixed_params"] == {"model.hidden_size": dead.params["model.hidden_size"]}
        assert recover_lost_trials(study) == []  # queued once, not at every call


def test_a_running_trial_of_another_host_is_left_to_the_heartbeat(tmp_path: Path) -> None:
    with opened(storage_url(tmp_path, None)) as storage:
        study = optuna.create_study(storage=storage, study_name="s")
        trial = study.ask()
        trial.suggest_int("model.hidden_size", 8, 16)
        trial.set_user_attr("process", {"host": "another-machine", "pid": _dead_pid()})
        assert recover_lost_trials(study) == []
        assert study.trials[0].state == TrialState.RUNNING


def test_distributions_of_a_recovered_trial_still_fit_the_space(tmp_path: Path) -> None:
    with opened(storage_url(tmp_path, None)) as storage:
        study = optuna.create_study(storage=storage, study_name="s")
        study.enqueue_trial({"model.hidden_size": 12}, user_attrs={"retry_of": 0})
        trial = study.ask()
        assert trial.suggest_int("model.hidden_size", 8, 16) == 12
        assert isinstance(trial.distributions["model.hidden_size"], IntDistribution)
