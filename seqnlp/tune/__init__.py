"""Hyper-parameter search on Optuna: ``seqnlp tune`` finds the settings that train best on your data, in a time budget.

    from seqnlp.config import load_config
    from seqnlp.tune import tune, resume_tune, load_space
    config = load_config("configs/sst2.yaml", overrides=["train.num_threads=1"])
    result = tune(config, budget=20 * 60, output_dir="runs/tune-sst2")   # -> runs/tune-sst2/best.yaml
    resume_tune("runs/tune-sst2")                                         # after a kill: lost trials retried

Each trial is an ordinary ``seqnlp.train`` run in OUTPUT_DIR/trials/trial-NNNN, reported to Optuna's pruner
epoch by epoch through the training loop's ``Hook``. The study is Optuna's RDB storage (SQLite in OUTPUT_DIR,
or a PostgreSQL/MySQL server shared by many machines). Needs the ``tune`` extra (``pip install
'seqnlp[tune]'``); the figures also need ``plots``.

    space.py      the search space: the default one, YAML files over it, checks, sampling
    budget.py     durations; the data surveyed and one epoch of the cheapest model timed, before any trial
    study.py      storage, the study's recorded settings, the pruner and sampler, lost trials recovered
    objective.py  one trial: sample, train with the pruning hook, record how it ended
    search.py     tune / resume_tune: the loop over trials
    report.py     trials.csv/.md, best.yaml, the best link; plots.py: history.png, importance.png
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqnlp.errors import ConfigError
from seqnlp.tune.space import Choice, Range, SearchSpace, default_space, load_space, space_from_data

if TYPE_CHECKING:
    from seqnlp.tune.search import TuneResult, resume_tune, tune

__all__ = ["Choice", "Range", "SearchSpace", "TuneResult", "default_space", "load_space", "resume_tune",
           "space_from_data", "tune"]


def __getattr__(name: str) -> Any:
    """``tune``, ``resume_tune`` and ``TuneResult`` import Optuna and torch: loaded on first use."""
    if name in ("tune", "resume_tune", "TuneResult"):
        try:
            from seqnlp.tune import search
        except ModuleNotFoundError as exc:
            if exc.name not in ("optuna", "sqlalchemy"):
                raise
            raise ConfigError("seqnlp tune needs Optuna: pip install 'seqnlp[tune]'") from None
        return getattr(search, name)
    raise AttributeError(f"module 'seqnlp.tune' has no attribute {name!r}")
