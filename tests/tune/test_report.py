"""The report: states named as a person reads them, the Markdown table best first, best.yaml a config train
accepts, importances only with enough trials, and the two figures."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from seqnlp.config import Config, load_config
from seqnlp.tune.report import (
    count_states,
    markdown,
    param_importances,
    rows,
    state_of,
    write_best_config,
    write_report,
)
from seqnlp.tune.study import Settings

SPACE = {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "model.cell": ["gru", "lstm"]}
DISTRIBUTIONS = {"train.lr": FloatDistribution(1e-4, 1e-2, log=True),
                 "model.cell": CategoricalDistribution(["gru", "lstm"])}
SETTINGS = Settings(Config().to_dict(), SPACE, "accuracy", "median", None, None)


def _study(values: list[float], pruned: int = 0, attrs: dict | None = None) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for i, value in enumerate(values):
        params = {"train.lr": 1e-4 * (1 + i), "model.cell": "gru" if value > 0.7 else "lstm"}
        study.add_trial(create_trial(value=value, params=params, distributions=DISTRIBUTIONS,
                                     user_attrs={"epochs": 3, "seconds": 1.5, "run_dir": "/x/trials/t"}))
    for i in range(pruned):
        study.add_trial(create_trial(state=TrialState.PRUNED, params={"train.lr": 1e-3, "model.cell": "gru"},
                                     distributions=DISTRIBUTIONS, intermediate_values={1: 0.4},
                                     user_attrs=attrs or {}))
    return study


@pytest.mark.parametrize("state, attrs, name", [
    (TrialState.PRUNED, {}, "pruned"), (TrialState.PRUNED, {"stopped": "budget"}, "stopped"),
    (TrialState.FAIL, {"error": "DataError: x"}, "failed"), (TrialState.FAIL, {}, "lost"),
    (TrialState.COMPLETE, {}, "complete"),
])
def test_state_of(state: TrialState, attrs: dict, name: str) -> None:
    trial = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None, user_attrs=attrs)
    assert state_of(trial) == name


def test_rows_and_markdown_put_the_best_first(tmp_path: Path) -> None:
    study = _study([0.6, 0.9, 0.75], pruned=1)
    table = rows(study.trials, SETTINGS, Path("/x"))
    assert [row["trial"] for row in table] == [0, 1, 2, 3]
    assert table[3]["state"] == "pruned" and table[3]["accuracy"] == 0.4  # its last epoch's value
    assert table[1]["run_dir"] == "trials/t" and table[1]["train.lr"] == pytest.approx(2e-4)
    text = markdown(table, study.trials, SETTINGS)
    assert "Best: trial 1, validation accuracy **0.9000**" in text
    assert "Trials: 3 complete, 1 pruned" in text
    body = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[0] for line in body] == ["| 1", "| 2", "| 0", "| 3"]
    assert count_states(study.trials) == {"complete": 3, "pruned": 1}


def test_best_yaml_is_a_config_train_accepts(tmp_path: Path) -> None:
    study = _study([0.6, 0.9])
    path = write_best_config(study.best_trial, SETTINGS, tmp_path)
    assert path.read_text().startswith("# seqnlp tune: trial 1 of")
    config = load_config(path)
    assert config.train.lr == pytest.approx(2e-4) and config.model.cell == "gru" and config.output_dir is None


def test_importances_need_four_complete_trials() -> None:
    assert param_importances(_study([0.6, 0.9, 0.7])) == {}
    importances = param_importances(_study([0.6, 0.9, 0.7, 0.8, 0.65, 0.95]))
    assert set(importances) == {"train.lr", "model.cell"}
    assert all(value >= 0 for value in importances.values())


def test_the_report_draws_both_figures(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    files = write_report(_study([0.6, 0.9, 0.7, 0.8, 0.65], pruned=2, attrs={"stopped": "budget"}), SETTINGS,
                         tmp_path)
    for name in ("history.png", "importance.png", "trials.csv", "trials.md", "best.yaml"):
        assert files[name].is_file() and files[name].stat().st_size > 0, name
    assert not (tmp_path / "best").exists()  # the best run is not on this machine: no link


def test_without_matplotlib_the_figures_are_skipped_with_a_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.delitem(sys.modules, "seqnlp.tune.plots", raising=False)
    with caplog.at_level("INFO", logger="seqnlp.tune.report"):
        files = write_report(_study([0.6, 0.9]), SETTINGS, tmp_path)
    assert "history.png" not in files and (tmp_path / "trials.csv").is_file()
    assert "matplotlib is not installed (pip install 'seqnlp[plots]'): history.png and importance.png not drawn" \
        in caplog.text
