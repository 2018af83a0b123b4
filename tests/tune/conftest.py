"""The tuning tests' shared pieces: a tiny base config on the toy task, a two-value space, and one tiny study
(3 trials, the second pruned deterministically) run once and read by many tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from seqnlp.config import Config
from tests.helpers import tiny_config, toy_rows, write_csv

pytest.importorskip("optuna")

import optuna  # noqa: E402

from seqnlp.tune import SearchSpace, space_from_data  # noqa: E402

TINY_SPACE: dict[str, Any] = {"defaults": False, "model.hidden_size": [8, 16], "model.cell": ["gru", "lstm"]}


class PruneTrial(optuna.pruners.BasePruner):
    """Prunes exactly the trials numbered in ``numbers``, at their first report: a prune that cannot miss."""

    def __init__(self, *numbers: int) -> None:
        self.numbers = set(numbers)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number in self.numbers


def tiny_base(root: Path, **updates: Any) -> Config:
    """The tests' tiny model on the toy files in ``root``, 2 epochs."""
    files = {"train": write_csv(root / "train.csv", toy_rows(200, seed=0)),
             "test": write_csv(root / "test.csv", toy_rows(40, seed=1))}
    return tiny_config(root, files, **{"train.epochs": 2, "output_dir": None, **updates})


def tiny_space(base: Config) -> SearchSpace:
    return space_from_data(TINY_SPACE, base)


@pytest.fixture
def make_base(tmp_path: Path) -> Callable[..., Config]:
    return lambda **updates: tiny_base(tmp_path, **updates)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """3 trials of the tiny space; trial 1 is pruned after its first epoch. Returns the TuneResult."""
    from seqnlp.tune import tune

    root = tmp_path_factory.mktemp("tune")
    base = tiny_base(root)
    return tune(base, space=tiny_space(base), trials=3, output_dir=root / "study", pruner=PruneTrial(1))
