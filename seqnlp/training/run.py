"""A training run from end to end: ``train`` and ``resume`` = ``preflight`` -> ``prepare`` -> ``fit`` -> ``finish``.

``preflight`` runs every check that needs files or optional packages, once, before any data loads.
``prepare`` loads the data, trains the tokenizer, prepares the run directory and builds the model, loaders and
optimizer as one frozen ``Setup``; ``seqnlp.training.loop.fit`` trains it; ``finish`` reloads the best weights,
tunes multi-label thresholds, evaluates the test split and writes results.json and the model card (README.md,
``seqnlp.modelcard``; see ``seqnlp.checkpoint``). The data is checked and recorded (data.json) before the tokenizer
is trained: duplicates, leakage, conflicting labels and empty texts are warned about with counts.
``resume(run_dir)`` continues an interrupted run from its last checkpoint, mid-epoch included, and ends where
the uninterrupted run would have (same weights, same metrics).

Launched by torchrun, every process runs the same functions; rank 0 names the run directory, trains the
tokenizer and writes the files, and hands the others what they need (see ``seqnlp.distributed``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from seqnlp import distributed
from seqnlp.baseline import require_sklearn
from seqnlp.checkpoint import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    LABELS_FILE,
    RESULTS_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    has_training_state,
    load_weights,
    read_json,
    save_thresholds,
    write_json,
)
from seqnlp.config import Config, config_from_dict, read_config_file, validate
from seqnlp.data import synthetic
from seqnlp.data.files import check_data_files
from seqnlp.errors import CheckpointError, ConfigError, StorageError, TrainingError
from seqnlp.evaluation import evaluate_model, fit_calibration_on
from seqnlp.modelcard import environment, write_model_card
from seqnlp.rundir import check_run_dir, claim
from seqnlp.runtime import check_precision, resolve_device, seed_everything, set_threads
from seqnlp.tokenizer import (
    load_tokenizer,
)
from seqnlp.training.finetune import check_init_dir
from seqnlp.training.loop import Hook, StepLog, fit, stop_on_signals
from seqnlp.training.setup import Setup, prepare, restore
from seqnlp.training.state import TrainingState
from seqnlp.training.tensorboard import TensorBoardLogger, check_tensorboard
from seqnlp.training.threads import AutoThreads
from seqnlp.training.vectors import check_dim

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run reports; the same numbers are in the run directory's results.json."""

    run_dir: Path
    best_epoch: int
    validation: dict[str, Any]  # metrics of the best epoch on the validation split
    test: Optional[dict[str, Any]]  # metrics of the best weights on the test split, when there is one
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch, as in metrics.jsonl
    num_parameters: int = 0
    monitor: str = ""  # the metric that chose the best epoch (train.monitor, with auto resolved)
    thresholds: Optional[list[float]] = None  # multi-label: per-label thresholds tuned on validation
    temperature: float = 1.0  # the calibration's temperature, fitted on validation (calibration.json)
    baseline: Optional[dict[str, Any]] = None  # with train.baseline: the n-gram baseline on the same splits


def train(config: Config, overwrite: bool = False, progress: bool = True, hooks: Sequence[Hook] = ()) -> TrainResult:
    """Train a classifier as ``config`` says and write its run directory; ``config`` itself is not changed.

    ``overwrite`` allows reusing an output directory that already holds a run; ``progress`` shows bars;
    ``hooks`` are called after every step and epoch (see ``loop.Hook``). SIGINT/SIGTERM save a checkpoint
    and raise ``TrainingInterrupted``; ``resume`` continues from it.
    """
    preflight(config)
    config = copy.deepcopy(config)  # the run directory's name is filled in below
    with session(config) as device, contextlib.ExitStack() as writer:
        seed_everything(config.seed)
        # Rank 0 names the run directory and becomes its one writer, before any data loads; the others take its name.
        config.output_dir = distributed.from_main(lambda: claim(
            writer, config.output_dir or f"runs/{config.model.cell}-{datetime.now():%Y%m%d-%H%M%S}", overwrite))
        setup = prepare(config, device, Path(config.output_dir), overwrite=overwrite)
        return fit_and_finish(setup, TrainingState(), progress, hooks)


def resume(run_dir: str | Path, progress: bool = True, hooks: Sequence[Hook] = ()) -> TrainResult:
    """Continue an interrupted run from its last checkpoint, with its saved config, tokenizer and labels."""
    run_dir = check_run_dir(run_dir)
    for name in (CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE):
        if not (run_dir / name).is_file():
            raise CheckpointError(f"cannot resume {run_dir}: {name} is missing")
    if not has_training_state(run_dir):
        raise CheckpointError(f"cannot resume {run_dir}: it has no checkpoint (was it trained with seqnlp?)")
    config = config_from_dict(read_config_file(run_dir / CONFIG_FILE))
    preflight(config, resuming=True)
    with session(config) as device, contextlib.ExitStack() as writer:
        distributed.from_main(lambda: claim(writer, str(run_dir), overwrite=None))
        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
        setup = prepare(config, device, run_dir, tokenizer=tokenizer, label_names=read_json(run_dir / LABELS_FILE))
        return fit_and_finish(setup, restore(setup), progress, hooks)


def preflight(config: Config, resuming: bool = False) -> None:
    """Every check that reads a file or needs an optional package, once, before any data loads.

    ``config`` is validated again (a library caller may have changed it since it was loaded); then the data
    files (they exist, their format is known), the vectors' dimension (named source or file; not when
    ``resuming``: the weights hold the vectors by then), ``train.tensorboard: true`` without tensorboard, a
    synthetic task's spec and length, frozen embeddings or gradual unfreezing under torchrun, and the pretrained run
    of ``train.init_from`` (not when ``resuming``). The output directory is checked
    (created, locked, written) right after, by ``rundir.claim``, still before any data loads.
    """
    validate(config)
    check_tensorboard(config.train.tensorboard)
    if config.train.baseline:
        require_sklearn()
    if config.model.pretrained_vectors is not None and not resuming:
        check_dim(config.model.pretrained_vectors, config.model.embedding_dim)
    if config.data.dataset is not None and config.data.dataset.startswith("synthetic:"):
        check_synthetic(config)
    check_data_files(config.data)
    if config.train.init_from is not None and not resuming:
        check_init_dir(config, Path(config.train.init_from))
    if distributed.launched_world_size() > 1:
        # DDP fixes at construction which parameters get gradients; freezing would change that mid-run.
        for key, value, off in (("model.freeze_embeddings", config.model.freeze_embeddings, "false"),
                                ("train.gradual_unfreezing", config.train.gradual_unfreezing, "0")):
            if value not in (False, 0):
                raise ConfigError(f"{key} is not supported under torchrun (DistributedDataParallel); use {off}")


def check_synthetic(config: Config) -> None:
    """A synthetic task's spec must parse, and its texts must fit: truncation would change the task."""
    spec = config.data.dataset
    assert spec is not None
    longest = synthetic.max_tokens(spec)
    if config.data.data_files:
        raise ConfigError(f"data.dataset: {spec!r} is generated; leave data.data_files empty")
    if config.tokenizer.kind == "word" and longest > config.tokenizer.max_length:
        raise ConfigError(
            f"data.dataset: {spec!r} makes texts of up to {longest} tokens, more than tokenizer.max_length="
            f"{config.tokenizer.max_length}; truncation would change the task, so raise tokenizer.max_length"
        )


def finish(setup: Setup, state: TrainingState) -> TrainResult:
    """Reload the best epoch's weights, fit the calibration (and multi-label thresholds) on validation, evaluate
    both splits with them, and write calibration.json, results.json and, last, the model card."""
    model, run_dir, tc, names = setup.model, setup.run_dir, setup.config.train, setup.label_names
    best_epoch = state.monitor.best_epoch
    if best_epoch == 0:
        raise TrainingError("no epoch finished, so there are no best weights")
    distributed.from_main(lambda: load_weights(model, run_dir / WEIGHTS_FILE))
    distributed.broadcast_module(model)  # the best weights, from rank 0 to all
    objective = setup.plan.objective
    # The temperature (and a binary decision, or multi-label thresholds) fitted on validation (seqnlp.calibration).
    calibration, record, thresholds = fit_calibration_on(model, setup.val_loader, names, objective, setup.device,
                                                         tc.precision, setup.config.calibration,
                                                         setup.config.data.validation_split)
    if thresholds is not None and distributed.is_main():
        save_thresholds(run_dir, names, thresholds)
    validation = evaluate_model(model, setup.val_loader, names, setup.device, tc.precision, objective, thresholds,
                                calibration)
    fitted = validation["calibration"]
    record.update(ece_before=fitted["before"]["ece"], ece_after=fitted["after"]["ece"])
    log.info("calibration on %s: temperature %.3f, NLL %.4f -> %.4f, ECE %.4f -> %.4f",
             setup.config.data.validation_split, calibration.temperature, record["nll_before"], record["nll_after"],
             record["ece_before"], record["ece_after"])
    test = None
    if setup.test_loader is not None:
        test = evaluate_model(model, setup.test_loader, names, setup.device, tc.precision, objective, thresholds,
                              calibration)
        log.info("test (best epoch %d): accuracy %.4f macro-F1 %.4f AUROC %s ECE %.4f", best_epoch, test["accuracy"],
                 test["macro_f1"], "n/a" if test["auroc"] is None else f"{test['auroc']:.4f}",
                 test["calibration"]["after"]["ece"])
    data = setup.config.data
    validation = {**validation, "split": data.validation_split, "carved": setup.carved.get(data.validation_split)}
    if test is not None:
        test = {**test, "split": data.test_split, "carved": setup.carved.get(str(data.test_split))}
    num_parameters = setup.num_parameters
    if distributed.is_main():
        write_json(run_dir / CALIBRATION_FILE, record)
        write_json(run_dir / RESULTS_FILE, {"best_epoch": best_epoch, "num_parameters": num_parameters,
                                            "skipped_steps": state.skipped_steps, **setup.plan.record(names),
                                            "sampler": tc.sampler, "validation": validation, "test": test,
                                            "environment": environment(setup.device, distributed.world_size()),
                                            **({"baseline": setup.baseline} if setup.baseline else {})})
        write_model_card(run_dir)  # last: it reads every file above
    return TrainResult(run_dir, best_epoch, validation, test, state.history, num_parameters,
                       monitor=setup.plan.monitor, thresholds=thresholds, temperature=calibration.temperature,
                       baseline=setup.baseline)


def fit_and_finish(setup: Setup, state: TrainingState, progress: bool, hooks: Sequence[Hook],
                   end: Callable[[Setup, TrainingState], Any] = finish) -> Any:
    """Fit with TensorBoard logging (rank 0 alone writes event files), the thread count timed (``auto``) and
    signals caught, then ``end`` (``finish``; a language model's is ``pretrain.finish_pretraining``)."""
    tc = setup.config.train
    tensorboard = TensorBoardLogger.open(tc.tensorboard if distributed.is_main() else False, setup.run_dir,
                                         tc.log_every, state)
    threads = AutoThreads.for_run(tc, setup.device)
    timed = [threads] if threads else []
    logged = [] if progress else [StepLog(tc.log_every, setup.train_loader.num_batches)]  # no bars: log lines
    try:
        with stop_on_signals() as received, tensorboard:
            fit(setup, state, lambda: received[0] if received else None, progress,
                [tensorboard, *timed, *logged, *hooks])
        return end(setup, state)
    except StorageError as exc:
        if not has_training_state(setup.run_dir):
            raise
        raise StorageError(f"{exc}; once fixed, continue with: seqnlp train --resume {setup.run_dir}") from None


@contextlib.contextmanager
def session(config: Config) -> Iterator[torch.device]:
    """Resolve the device, join torchrun's process group if launched by it, and set torch's thread count for
    the run (``auto``: the usable CPUs, until ``AutoThreads`` times the steps); leave the group and restore the
    thread count after."""
    device = resolve_device(config.train.device)
    check_precision(config.train.precision, device)
    threads = torch.get_num_threads()
    set_threads(config.train.num_threads)
    try:
        with distributed.session(device) as device:
            yield device
    finally:
        torch.set_num_threads(threads)  # a library call leaves torch's global state as it found it


