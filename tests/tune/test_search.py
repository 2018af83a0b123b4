"""tune and resume_tune end to end on the toy task: a tiny study finishes with a pruned trial whose run directory
is sane, writes every report, joins and resumes without repeating a trial, and refuses bad input before any
trial runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest

from seqnlp import evaluate
from seqnlp.checkpoint import CHECKPOINT_DIR, METRICS_FILE, RESULTS_FILE, WEIGHTS_FILE
from seqnlp.config import Config, load_config
from seqnlp.errors import ConfigError, TrainingInterrupted
from seqnlp.tune import resume_tune, space_from_data, tune
from seqnlp.tune import search as search_module
from seqnlp.tune.budget import Floor
from seqnlp.tune.objective import TRIAL_FILE
from seqnlp.tune.study import STUDY_DB, STUDY_FILE
from tests.tune.conftest import TINY_SPACE, PruneTrial, tiny_space


def test_a_tiny_study_finishes_with_one_pruned_trial(tiny_study: Any) -> None:
    assert tiny_study.counts == {"complete": 2, "pruned": 1}
    assert tiny_study.metric == "accuracy" and tiny_study.best.number in (0, 2)
    out = tiny_study.output_dir
    for name in (STUDY_DB, STUDY_FILE, "trials.csv", "trials.md", "best.yaml"):
        assert (out / name).is_file(), name
    assert (out / "best").resolve() == Path(tiny_study.best.user_attrs["run_dir"]).resolve()
    if "history.png" in tiny_study.files:  # matplotlib installed
        assert (out / "history.png").stat().st_size > 0


def test_the_first_trial_is_the_configs_own_values(tiny_study: Any) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tiny_study.output_dir / STUDY_DB}")
    try:
        first = optuna.load_study(storage=storage, study_name="seqnlp-tune").trials[0]
    finally:
        storage.engine.dispose()
    assert first.user_attrs["baseline"] is True
    assert first.params == {"model.hidden_size": 16, "model.cell": "lstm"}  # TINY's, and the config's default cell
    assert "the config's own values" in (tiny_study.output_dir / "trials.csv").read_text().splitlines()[1]


def test_the_pruned_trial_leaves_a_run_a_person_can_use(tiny_study: Any) -> None:
    run_dir = tiny_study.output_dir / "trials" / "trial-0001"
    record = json.loads((run_dir / TRIAL_FILE).read_text())
    assert record["state"] == "pruned" and record["reason"].startswith("pruned at epoch 1")
    assert list(record["validation_accuracy_by_epoch"]) == ["1"]
    assert len((run_dir / METRICS_FILE).read_text().splitlines()) == 1
    assert (run_dir / WEIGHTS_FILE).is_file()
    assert not (run_dir / CHECKPOINT_DIR).exists() and not (run_dir / RESULTS_FILE).exists()
    metrics = evaluate(run_dir, split="validation")  # its best weights so far are a usable model
    assert metrics["accuracy"] == pytest.approx(record["validation_accuracy_by_epoch"]["1"])


def test_the_best_config_is_the_base_with_the_best_values(tiny_study: Any) -> None:
    best = load_config(tiny_study.output_dir / "best.yaml")
    assert best.output_dir is None
    assert best.model.hidden_size == tiny_study.best.params["model.hidden_size"]
    assert best.model.cell == tiny_study.best.params["model.cell"]
    assert best.train.monitor == "accuracy"  # auto, resolved: the run picks its best epoch by what was tuned


def test_the_trials_table_has_every_trial(tiny_study: Any) -> None:
    lines = (tiny_study.output_dir / "trials.csv").read_text().splitlines()
    assert lines[0].startswith("trial,state,accuracy,epochs,seconds,model.hidden_size,model.cell,retry_of")
    assert sorted(line.split(",")[1] for line in lines[1:]) == ["complete", "complete", "pruned"]
    markdown = (tiny_study.output_dir / "trials.md").read_text()
    assert f"Best: trial {tiny_study.best.number}, validation accuracy" in markdown
    assert "| trial | state | accuracy |" in markdown


def _copy_study(tiny_study: Any, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(tiny_study.output_dir, copy, symlinks=True)
    return copy


def test_resume_runs_only_the_trials_still_missing(tiny_study: Any, tmp_path: Path) -> None:
    out = _copy_study(tiny_study, tmp_path)
    with pytest.raises(ConfigError, match="pruned by a PruneTrial object; resume it from Python with"):
        resume_tune(out)
    done = resume_tune(out, pruner="none")  # its own --trials 3: already reached
    assert done.counts == {"complete": 2, "pruned": 1}
    more = resume_tune(out, trials=4, pruner="none")
    assert more.counts == {"complete": 3, "pruned": 1}
    record = json.loads((out / "trials" / "trial-0003" / TRIAL_FILE).read_text())
    assert record["state"] == "complete"


def test_a_second_process_joins_a_study_with_the_same_settings(make_base: Callable[..., Config],
                                                               tmp_path: Path) -> None:
    base = make_base()
    out = tmp_path / "shared"
    tune(base, space=tiny_space(base), trials=1, output_dir=out, pruner="none")
    joined = tune(base, space=tiny_space(base), trials=2, output_dir=out, pruner="none")
    assert joined.counts == {"complete": 2}
    other = space_from_data({**TINY_SPACE, "model.cell": ["rnn"]}, base)
    with pytest.raises(ConfigError, match="already holds a study with another space"):
        tune(base, space=other, trials=3, output_dir=out, pruner="none")


def test_a_budget_too_small_for_one_trial_is_refused_before_the_study(make_base: Callable[..., Config],
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_module, "trial_floor", lambda config, found: Floor(40.0, 60.0))
    base = make_base()
    with pytest.raises(ConfigError, match="--budget 10s is too small for one trial: the first trial \\(the config's "
                                          "own values\\) needs about 1m40s"):
        tune(base, space=tiny_space(base), budget=10, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_bad_space_file_is_refused_before_the_data_loads(make_base: Callable[..., Config], tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("model.hiden_size: [8, 16]\n")
    base = make_base(**{"data.data_files": {"train": str(tmp_path / "missing.csv")}})
    with pytest.raises(ConfigError, match="space.yaml: unknown config key 'model.hiden_size'"):
        tune(base, space=space, trials=1, output_dir=tmp_path / "out")


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give a time budget \\(--budget 20m\\), a number of trials"),
    ({"trials": 0}, "--trials 0 must be at least 1"),
])
def test_tune_needs_a_budget_or_a_trial_count(make_base: Callable[..., Config], tmp_path: Path,
                                              kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tune(make_base(), output_dir=tmp_path / "out", **kwargs)


def test_trial_directories_of_a_vanished_study_are_not_overwritten(make_base: Callable[..., Config],
                                                                   tmp_path: Path) -> None:
    base = make_base()
    (tmp_path / "out" / "trials" / "trial-0000").mkdir(parents=True)
    with pytest.raises(ConfigError, match="already holds trial directories but no study"):
        tune(base, space=tiny_space(base), trials=1, output_dir=tmp_path / "out")


def test_a_pruner_object_is_recorded_by_its_class_name(tiny_study: Any) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tiny_study.output_dir / STUDY_DB}")
    try:
        study = optuna.load_study(storage=storage, study_name="seqnlp-tune")
        assert study.user_attrs["seqnlp"]["pruner"] == PruneTrial.__name__
    finally:
        storage.engine.dispose()


def test_a_signal_stops_the_study_and_resume_retries_the_trial(make_base: Callable[..., Config], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    import seqnlp.training
    from seqnlp.tune.search import TuneInterrupted

    def interrupted(config: Config, **kwargs: Any) -> None:
        raise TrainingInterrupted(signal.SIGTERM, config.output_dir)

    base = make_base()
    out = tmp_path / "study"
    with monkeypatch.context() as patch:
        patch.setattr(seqnlp.training, "train", interrupted)
        with pytest.raises(TuneInterrupted) as info:
            tune(base, space=tiny_space(base), trials=1, output_dir=out, pruner="none")
    assert info.value.exit_code == 143
    assert str(info.value) == f"interrupted; the study is saved, continue it with: seqnlp tune --resume {out}"
    assert "| 0 | lost |" in (out / "trials.md").read_text()
    resumed = resume_tune(out)
    assert resumed.counts == {"lost": 1, "complete": 1}
    assert resumed.best is not None and resumed.best.user_attrs["retry_of"] == 0
