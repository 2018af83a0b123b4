"""Where a study lives and how it survives: Optuna's RDB storage, the study's own record of its settings, and
the recovery of trials whose process died.

::

    OUTPUT_DIR/
      study.db       the Optuna study (SQLite), unless --storage names a server (PostgreSQL, MySQL)
      study.json     where the study is (storage URL, password hidden; study name) and what it optimizes
      trials/trial-NNNN/   one run directory per trial (see seqnlp.tune.objective)

The settings a study was started with (base config, search space, metric, pruner, budget) are stored in the
study itself (a user attribute), so ``--resume`` and every process that joins use the very same ones. A trial
whose process died stays RUNNING in the storage: ``recover_lost_trials`` marks it failed (at once when it ran on
this host and its process is gone; after the heartbeat's grace period otherwise) and enqueues its parameters
again, once, as a new trial.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

from seqnlp.checkpoint import atomic_path
from seqnlp.errors import ConfigError

log = logging.getLogger(__name__)

STUDY_DB = "study.db"
STUDY_FILE = "study.json"
TRIALS_DIR = "trials"
SETTINGS_ATTR = "seqnlp"  # the study's user attribute that holds its Settings
SQLITE_STUDY_NAME = "seqnlp-tune"
HEARTBEAT_SECONDS = 60  # a running trial records that it is alive this often
GRACE_SECONDS = 600  # a trial silent this long is failed by any process of the study (a machine that died)
SQLITE_TIMEOUT_SECONDS = 60  # how long a write waits for another process's lock on study.db
PRUNERS = ("median", "halving", "hyperband", "none")
TPE_STARTUP_TRIALS = 5  # random trials before TPE models the results (Optuna's default, 10, is half a CPU budget)
MEDIAN_STARTUP_TRIALS = 3  # trials never pruned: the median needs a few whole curves to mean anything
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Settings:
    """What a study is; stored in it, so every process and every resume runs the same search."""

    config: dict[str, Any]  # the base config every trial starts from (train.monitor resolved)
    space: dict[str, Any]  # the search space, as plain data (seqnlp.tune.space.SearchSpace.to_data)
    metric: str  # the validation metric optimized: the base config's train.monitor
    pruner: str  # one of PRUNERS
    budget: Optional[float]  # seconds, as first given; --resume spends what is left of it
    trials: Optional[int]  # finished trials to stop at, as first given

    @property
    def direction(self) -> str:
        return "minimize" if self.metric == "loss" else "maximize"


def storage_url(output_dir: Path, storage: Optional[str]) -> str:
    """``storage`` as given, or the SQLite file in the output directory."""
    return storage or f"sqlite:///{(output_dir / STUDY_DB).resolve()}"


def study_name(output_dir: Path, storage: Optional[str]) -> str:
    """The study's name: fixed in a study.db of its own; the output directory's name on a shared server."""
    return SQLITE_STUDY_NAME if storage is None else output_dir.resolve().name


@contextlib.contextmanager
def optuna_quiet() -> Iterator[None]:
    """Optuna's own INFO lines (study created, trial finished) are replaced by seqnlp's one line per trial."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with a heartbeat per running trial (SQLite: waiting for other processes' locks)."""
    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_SECONDS}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat is "experimental"
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=GRACE_SECONDS)
        except ImportError as exc:
            raise ConfigError(f"--storage {hidden(url)} needs its database driver: {exc}") from None
        except Exception as exc:  # SQLAlchemy's errors: a bad URL, a server that does not answer
            raise ConfigError(f"--storage {hidden(url)} cannot be opened: {str(exc).splitlines()[0]}") from None


def hidden(url: str) -> str:
    """A storage URL with its password masked, fit for logs and study.json."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<storage URL>"


def make_sampler(seed: Optional[int]) -> optuna.samplers.BaseSampler:
    """TPE over all parameters jointly; ``constant_liar`` keeps processes sharing a study from sampling alike."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=TPE_STARTUP_TRIALS, multivariate=True,
                                          constant_liar=True)


def make_pruner(pruner: str | optuna.pruners.BasePruner, epochs: int) -> tuple[str, optuna.pruners.BasePruner]:
    """The pruner ``--pruner`` names (its steps are epochs; docs/tuning.md says why median is the default), or a
    pruner object as it is; with the name the study records."""
    if isinstance(pruner, optuna.pruners.BasePruner):
        return type(pruner).__name__, pruner
    if pruner == "median":
        return pruner, optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=0)
    if pruner == "halving":
        return pruner, optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if pruner == "hyperband":
        return pruner, optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 2), reduction_factor=3)
    if pruner == "none":
        return pruner, optuna.pruners.NopPruner()
    raise ConfigError(f"pruner {pruner!r} is not one of {', '.join(PRUNERS)}")


@contextlib.contextmanager
def opened(url: str) -> Iterator[optuna.storages.RDBStorage]:
    """The study's storage, its connections closed on the way out."""
    storage = open_storage(url)
    try:
        yield storage
    finally:
        storage.engine.dispose()


def create_or_join(storage: optuna.storages.RDBStorage, name: str, settings: Settings,
                   pruner: optuna.pruners.BasePruner, seed: int) -> tuple[optuna.Study, bool]:
    """Create the study (its sampler seeded with ``seed``, so a study run by one process is reproducible), or join
    it when another process made it with the same settings (then with a random seed, so the processes' first
    random trials differ). Returns the study and whether this process created it."""
    try:
        with optuna_quiet():
            study = optuna.create_study(storage=storage, study_name=name, direction=settings.direction,
                                        sampler=make_sampler(seed), pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=name, sampler=make_sampler(None), pruner=pruner)
        recorded = study.user_attrs.get(SETTINGS_ATTR)
        if recorded is not None:
            check_same(Settings(**recorded), settings)
            log.info("joining the study %s (%d trials so far)", name, len(study.trials))
            return study, False
    study.set_user_attr(SETTINGS_ATTR, asdict(settings))
    return study, True


def load_existing(storage: optuna.storages.RDBStorage, name: str,
                  pruner: Optional[str | optuna.pruners.BasePruner] = None) -> tuple[optuna.Study, Settings]:
    """An existing study and its settings, for --resume (its own pruner unless ``pruner`` is given)."""
    try:
        study = optuna.load_study(storage=storage, study_name=name, sampler=make_sampler(None))
    except KeyError:
        raise ConfigError(f"no study named {name!r} in {hidden(storage.url)}") from None
    recorded = study.user_attrs.get(SETTINGS_ATTR)
    if recorded is None:
        raise ConfigError(f"the study {name!r} in {hidden(storage.url)} was not made by seqnlp tune")
    settings = Settings(**recorded)
    if pruner is None and settings.pruner not in PRUNERS:
        raise ConfigError(f"the study {name!r} was pruned by a {settings.pruner} object; resume it from Python with "
                          "resume_tune(..., pruner=...)")
    _, study.pruner = make_pruner(pruner or settings.pruner, int(settings.config["train"]["epochs"]))
    return study, settings


def check_same(recorded: Settings, given: Settings) -> None:
    """Joining a study is only meaningful with its own config, space, metric and pruner."""
    for what in ("config", "space", "metric", "pruner"):
        if getattr(recorded, what) != getattr(given, what):
            raise ConfigError(f"this output directory already holds a study with another {what}; continue it "
                              "with seqnlp tune --resume DIR, or choose another --output-dir")


def write_study_file(output_dir: Path, url: str, name: str, settings: Settings) -> None:
    """study.json: where the study is and what it optimizes, for people and for --resume."""
    data = {"storage": hidden(url), "study_name": name, "metric": settings.metric, "direction": settings.direction}
    with atomic_path(output_dir / STUDY_FILE) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def locate(output_dir: Path, storage: Optional[str]) -> tuple[str, str]:
    """The storage URL and study name of the study in ``output_dir``, for --resume."""
    if not output_dir.is_dir():
        raise ConfigError(f"--resume {output_dir}: no such directory")
    if storage is not None:
        return storage, study_name(output_dir, storage)
    if (output_dir / STUDY_DB).is_file():
        return storage_url(output_dir, None), SQLITE_STUDY_NAME
    where = output_dir / STUDY_FILE
    if where.is_file():
        recorded = json.loads(where.read_text(encoding="utf-8"))
        raise ConfigError(f"the study of {output_dir} is in {recorded.get('storage')}; give its URL with --storage")
    raise ConfigError(f"--resume {output_dir}: it holds no study ({STUDY_DB} or {STUDY_FILE})")


def process_tag() -> dict[str, Any]:
    """This process, as a running trial records it, so a later process can tell whether it died."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def recover_lost_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials of dead processes on this host, and enqueue every lost trial's parameters once.

    A lost trial is a failed one without an ``error`` (its process was killed or interrupted, or the heartbeat
    declared it dead). Returns the numbers of the lost trials enqueued again.
    """
    here = process_tag()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("process")
        if owner and owner.get("host") == here["host"] and owner.get("pid") != here["pid"] and \
                not _alive(int(owner.get("pid", 0))):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            log.warning("trial %d was running in process %s, which has stopped: marked failed", trial.number,
                        owner.get("pid"))
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    requeued = []
    for trial in trials:
        if trial.state == TrialState.FAIL and "error" not in trial.user_attrs and trial.number not in retried \
                and trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            requeued.append(trial.number)
            log.info("trial %d did not finish (its process stopped): its parameters are queued again", trial.number)
    return requeued


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def time_spent(trials: list[FrozenTrial]) -> float:
    """Seconds during which at least one trial ran to its end (complete or pruned): the budget a study used,
    with trials of parallel processes counted once."""
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials
                   if t.state in FINISHED and t.datetime_start and t.datetime_complete)
    total, end = 0.0, None
    for start, stop in spans:
        start = max(start, end) if end is not None else start
        if stop > start:
            total += (stop - start).total_seconds()
        end = stop if end is None else max(end, stop)
    return total


def finished(trials: list[FrozenTrial]) -> int:
    return sum(t.state in FINISHED for t in trials)


