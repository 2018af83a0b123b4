"""``tune`` and ``resume_tune``: check everything, open (or join) the study, run trials until the budget or the
trial count is spent, and write the report after every trial.

Before any trial: the config is preflighted, the data surveyed (its errors surface here; ``train.monitor: auto``
is resolved to the metric the study optimizes), the search space checked, and the budget compared with one epoch
of the cheapest model the space holds. Then Optuna's ``optimize`` runs ``Objective`` trial after trial; after
each one, a progress line is logged, the report rewritten, and lost trials (of processes that died) queued again.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from seqnlp.config import Config, config_from_dict, load_config
from seqnlp.errors import ConfigError, TrainingInterrupted
from seqnlp.tune import report
from seqnlp.tune.budget import Survey, check_budget, format_duration, survey, trial_floor
from seqnlp.tune.objective import Objective, close_run_dir, progress_line
from seqnlp.tune.space import SearchSpace, load_space, space_from_data
from seqnlp.tune.study import (
    STUDY_DB,
    TRIALS_DIR,
    Settings,
    create_or_join,
    opened,
    finished,
    load_existing,
    locate,
    make_pruner,
    optuna_quiet,
    recover_lost_trials,
    storage_url,
    study_name,
    time_spent,
    write_study_file,
)

log = logging.getLogger(__name__)

QUIET_LOGGERS = ("seqnlp.training", "seqnlp.data", "seqnlp.tokenizer", "seqnlp.checkpoint", "seqnlp.evaluation",
                 "seqnlp.model", "seqnlp.runtime", "seqnlp.batching")  # each trial's own log lines, unless -v


class TuneInterrupted(TrainingInterrupted):
    """SIGINT or SIGTERM stopped the study; ``seqnlp tune --resume`` continues it."""

    def __init__(self, signum: int, output_dir: Path) -> None:
        super().__init__(signum, output_dir)
        self.args = (f"interrupted; the study is saved, continue it with: seqnlp tune --resume {output_dir}",)


@dataclass
class TuneResult:
    """What a study found; the same is in OUTPUT_DIR's trials.md, trials.csv and best.yaml."""

    output_dir: Path
    metric: str  # the validation metric optimized
    best: Optional[FrozenTrial]  # the best complete trial; None when none completed
    counts: dict[str, int]  # trials by state: complete, pruned, failed, ...
    seconds: float  # this call's wall-clock time
    files: dict[str, Path] = field(default_factory=dict)  # report name -> path


def tune(config: Config, space: Optional[SearchSpace | str | Path] = None, budget: Optional[float] = None,
         trials: Optional[int] = None, output_dir: Optional[str | Path] = None,
         pruner: str | optuna.pruners.BasePruner = "median", storage: Optional[str] = None) -> TuneResult:
    """Search ``space`` (a SearchSpace, a YAML file laid over ``default_space``, or None: the default) around
    ``config`` for ``budget`` seconds of this process and/or until the study has ``trials`` finished trials. A study already in ``output_dir`` with the same settings is
    joined (several processes can share one study); ``pruner`` is one of ``PRUNERS`` or an Optuna pruner;
    ``storage`` is an Optuna RDB URL (default: SQLite in ``output_dir``)."""
    from seqnlp.training import preflight

    if budget is None and trials is None:
        raise ConfigError("give a time budget (--budget 20m), a number of trials (--trials N), or both")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials {trials} must be at least 1")
    base = copy.deepcopy(config)
    space = space if isinstance(space, SearchSpace) else load_space(space, base)
    preflight(base)
    found = survey(base)
    base.train.monitor = found.monitor  # auto, resolved once: every trial picks its best epoch by what is optimized
    quickest = _check_budget(budget, base, space, found)
    out = Path(output_dir or f"runs/tune-{datetime.now():%Y%m%d-%H%M%S}")
    pruner_name, pruner_object = make_pruner(pruner, base.train.epochs)
    settings = Settings(base.to_dict(), space.to_data(), found.monitor, pruner_name, budget, trials)
    url, name = storage_url(out, storage), study_name(out, storage)
    _check_fresh(out, storage)
    out.mkdir(parents=True, exist_ok=True)
    with opened(url) as rdb:
        study, created = create_or_join(rdb, name, settings, pruner_object, base.seed)
        if created:
            _enqueue_baseline(study, space, base)
        write_study_file(out, url, name, settings)
        return _run(study, settings, out, budget, trials, quickest)


def resume_tune(output_dir: str | Path, budget: Optional[float] = None, trials: Optional[int] = None,
                storage: Optional[str] = None, pruner: Optional[str | optuna.pruners.BasePruner] = None) -> TuneResult:
    """Continue the study in ``output_dir`` with its own settings: lost trials are retried, finished ones are not.
    Without ``budget``, what its first budget has left; without ``trials``, its own trial count."""
    out = Path(output_dir)
    url, name = locate(out, storage)
    with opened(url) as rdb:
        study, settings = load_existing(rdb, name, pruner)
        return _continue(study, settings, out, budget, trials)


def _continue(study: optuna.Study, settings: Settings, out: Path, budget: Optional[float],
              trials: Optional[int]) -> TuneResult:
    """--resume: the budget left and the trial count of the study's own settings, unless given."""
    if budget is None and settings.budget is not None:
        budget = settings.budget - time_spent(study.get_trials(deepcopy=False))
        if budget <= 0:
            raise ConfigError(f"the study's budget of {format_duration(settings.budget)} is spent; give --budget "
                              "to continue it")
        log.info("resuming with the %s left of the study's %s budget", format_duration(budget),
                 format_duration(settings.budget))
    trials = trials if trials is not None else settings.trials
    if budget is None and trials is None:
        raise ConfigError("give a time budget (--budget 20m) or a number of trials (--trials N)")
    return _run(study, settings, out, budget, trials)


def _check_budget(budget: Optional[float], base: Config, space: SearchSpace, found: Survey) -> Optional[float]:
    """Refuse a budget the study's first trial (the config's own values, when the space holds them, else the
    cheapest model) cannot end an epoch in; return the cheapest model's first epoch, the least a trial takes."""
    own = space.values_of(base)  # the first trial of a new study (see _enqueue_baseline)
    cheapest = trial_floor(config_for(base, space.cheapest()), found)
    if own is None:
        check_budget(budget, cheapest, found)
    else:
        first = trial_floor(config_for(base, own), found)
        check_budget(budget, first, found, "the first trial (the config's own values)")
    return cheapest.total if cheapest is not None else None


def _enqueue_baseline(study: optuna.Study, space: SearchSpace, base: Config) -> None:
    """The config's own values are the first trial, when the space holds them: the study then answers "how much
    better than my config?", and its best is never below the config's own validation score (up to the noise of
    training it again)."""
    values = space.values_of(base)
    if values is None:
        log.info("the config's own values are not all inside the search space: the study starts without them")
        return
    study.enqueue_trial(values, user_attrs={"baseline": True})


def config_for(base: Config, values: dict[str, Any]) -> Config:
    """``base`` with a trial's (or any) values of dotted keys, validated."""
    return load_config(base=base, updates=values)


def _check_fresh(out: Path, storage: Optional[str]) -> None:
    """A new study's trial directories must not land on those of a study that is gone."""
    trials = out / TRIALS_DIR
    if storage is None and not (out / STUDY_DB).exists() and trials.is_dir() and any(trials.iterdir()):
        raise ConfigError(f"{out} already holds trial directories but no study; choose another --output-dir")


def _run(study: optuna.Study, settings: Settings, out: Path, budget: Optional[float], trials: Optional[int],
         quickest: Optional[float] = None) -> TuneResult:
    """Run trials until the budget or the trial count is spent; report after each one and at the end. No trial
    starts in less time than ``quickest`` (the cheapest model's first epoch) or than the quickest first epoch
    of a trial so far."""
    base = config_from_dict(settings.config)
    space = space_from_data({"defaults": False, **settings.space}, base, "the study's search space")
    start = time.monotonic()
    deadline = start + budget if budget is not None else None
    objective = Objective(base, space, settings.metric, out, deadline)
    if quickest is not None:
        objective.first_epoch_seconds.append(quickest)
    _close_lost(study, recover_lost_trials(study))

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        left = None if deadline is None else deadline - time.monotonic()
        log.info("%s", progress_line(trial, settings.metric, _best(study), left))
        report.write_tables(study, settings, out)
        _close_lost(study, recover_lost_trials(study))
        done = finished(study.get_trials(deepcopy=False))
        # No new trial when what is left would not see even the quickest trial so far through its first epoch.
        shortest = min(objective.first_epoch_seconds, default=0.0)
        if (trials is not None and done >= trials) or (left is not None and left < shortest):
            study.stop()

    remaining = None if trials is None else trials - finished(study.get_trials(deepcopy=False))
    try:
        with _quiet_trials():
            if remaining is None or remaining > 0:
                study.optimize(objective, timeout=budget, callbacks=[after_trial], gc_after_trial=True)
    except TrainingInterrupted as exc:
        raise TuneInterrupted(exc.signum, out) from None
    finally:
        files = report.write_report(study, settings, out)
    counts = report.count_states(study.get_trials(deepcopy=False))
    return TuneResult(out, settings.metric, _best(study), counts, time.monotonic() - start, files)


def _best(study: optuna.Study) -> Optional[FrozenTrial]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def _close_lost(study: optuna.Study, numbers: Sequence[int]) -> None:
    """A lost trial's run directory gets its trial.json and loses its checkpoints, as every trial's does."""
    for number in numbers:
        trial = study.trials[number]
        run_dir = trial.user_attrs.get("run_dir")
        if run_dir and Path(run_dir).is_dir():
            close_run_dir(Path(run_dir), {"number": number, "params": trial.params, "state": "lost",
                                          "reason": "its process stopped before it ended; its parameters are "
                                                    "queued again as a new trial"})


@contextlib.contextmanager
def _quiet_trials() -> Iterator[None]:
    """One line per trial: each run's own log lines, Optuna's and datasets' progress bars are held back while
    the study runs (``-v`` keeps the runs' lines)."""
    import datasets

    verbose = logging.getLogger("seqnlp").getEffectiveLevel() <= logging.DEBUG
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    bars_off = datasets.are_progress_bars_disabled()
    if not verbose:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    datasets.disable_progress_bars()
    try:
        with optuna_quiet():
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if not bars_off:
            datasets.enable_progress_bars()
