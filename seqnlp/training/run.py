"""A training run from end to end: ``train`` and ``resume`` = ``preflight`` -> ``prepare`` -> ``fit`` -> ``finish``.

``preflight`` runs every check that needs files or optional packages, once, before any data loads.
``prepare`` loads the data, trains the tokenizer, prepares the run directory and builds the model, loaders and
optimizer as one frozen ``Setup``; ``seqnlp.training.loop.fit`` trains it; ``finish`` reloads the best weights,
tunes multi-label thresholds, evaluates the test split and writes results.json (see ``seqnlp.checkpoint``).
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
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from datasets import Dataset
from tokenizers import Tokenizer
from torch.nn.parallel import DistributedDataParallel

from seqnlp import distributed
from seqnlp.batching import BatchLoader, StreamLoader, label_array
from seqnlp.checkpoint import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LABELS_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    has_training_state,
    load_training_state,
    load_weights,
    prepare_run_dir,
    read_json,
    save_run_files,
    save_thresholds,
    write_json,
    write_jsonl,
)
from seqnlp.config import Config, TrainConfig, config_from_dict, read_config_file, validate
from seqnlp.data import Splits, load_splits, load_stream, synthetic
from seqnlp.errors import CheckpointError, ConfigError, DataError, TrainingError
from seqnlp.evaluation import evaluate_model, predict_split
from seqnlp.model import RNNClassifier, count_parameters
from seqnlp.objective import tune_thresholds
from seqnlp.runtime import check_precision, resolve_device, seed_everything, set_rng_state, set_threads
from seqnlp.tokenizer import (
    SPECIAL_TOKENS,
    build_tokenizer,
    encode_dataset,
    encode_stream,
    iter_texts,
    load_tokenizer,
    pad_id,
)
from seqnlp.training.loop import Hook, fit, stop_on_signals
from seqnlp.training.plan import LabelPlan, plan_labels
from seqnlp.training.schedule import make_optimizer
from seqnlp.training.state import TrainingState
from seqnlp.training.tensorboard import TensorBoardLogger, check_tensorboard
from seqnlp.training.threads import AutoThreads
from seqnlp.training.vectors import check_dim, initialize_embedding

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


@dataclass(frozen=True)
class Setup:
    """Everything one run trains with, built by ``prepare``; ``fit`` and ``finish`` only read it.

    ``model`` is the module itself (evaluated and saved); ``train_model`` is what the steps run: the same
    module, or its DistributedDataParallel wrapper in a multi-process run.
    """

    config: Config
    device: torch.device
    run_dir: Path
    model: RNNClassifier
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    train_loader: BatchLoader | StreamLoader  # this process's share of every training batch
    val_loader: BatchLoader
    test_loader: Optional[BatchLoader]  # None when the data has no labelled test split
    tokenizer: Tokenizer
    label_names: list[str]
    plan: LabelPlan  # the objective, the monitored metric and the sampler weights, from the training labels
    num_parameters: int  # trainable parameters of the model as built (before any freezing)


def train(config: Config, overwrite: bool = False, progress: bool = True, hooks: Sequence[Hook] = ()) -> TrainResult:
    """Train a classifier as ``config`` says and write its run directory; ``config`` itself is not changed.

    ``overwrite`` allows reusing an output directory that already holds a run; ``progress`` shows bars;
    ``hooks`` are called after every step and epoch (see ``loop.Hook``). SIGINT/SIGTERM save a checkpoint
    and raise ``TrainingInterrupted``; ``resume`` continues from it.
    """
    preflight(config)
    config = copy.deepcopy(config)  # the run directory's name is filled in below
    with _session(config) as device:
        seed_everything(config.seed)
        # Rank 0 names the run directory; the other ranks take its name.
        config.output_dir = distributed.from_main(
            lambda: config.output_dir or f"runs/{config.model.cell}-{datetime.now():%Y%m%d-%H%M%S}")
        setup = prepare(config, device, Path(config.output_dir), overwrite=overwrite)
        return _fit_and_finish(setup, TrainingState(), progress, hooks)


def resume(run_dir: str | Path, progress: bool = True, hooks: Sequence[Hook] = ()) -> TrainResult:
    """Continue an interrupted run from its last checkpoint, with its saved config, tokenizer and labels."""
    run_dir = Path(run_dir)
    for name in (CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE):
        if not (run_dir / name).is_file():
            raise CheckpointError(f"cannot resume {run_dir}: {name} is missing")
    if not has_training_state(run_dir):
        raise CheckpointError(f"cannot resume {run_dir}: it has no checkpoint (was it trained with seqnlp?)")
    config = config_from_dict(read_config_file(run_dir / CONFIG_FILE))
    preflight(config, resuming=True)
    with _session(config) as device:
        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
        setup = prepare(config, device, run_dir, tokenizer=tokenizer, label_names=read_json(run_dir / LABELS_FILE))
        return _fit_and_finish(setup, restore(setup), progress, hooks)


def preflight(config: Config, resuming: bool = False) -> None:
    """Every check that reads a file or needs an optional package, once, before any data loads.

    ``config`` is validated again (a library caller may have changed it since it was loaded); then the
    vectors' dimension (named source or file; not when ``resuming``: the weights hold the vectors by then),
    ``train.tensorboard: true`` without tensorboard, a synthetic task's spec and length, and frozen embeddings
    under torchrun.
    """
    validate(config)
    check_tensorboard(config.train.tensorboard)
    if config.model.pretrained_vectors is not None and not resuming:
        check_dim(config.model.pretrained_vectors, config.model.embedding_dim)
    if config.data.dataset is not None and config.data.dataset.startswith("synthetic:"):
        check_synthetic(config)
    if distributed.launched_world_size() > 1 and config.model.freeze_embeddings not in (False, 0):
        # DDP fixes at construction which parameters get gradients; freezing would change that mid-run.
        raise ConfigError("model.freeze_embeddings is not supported under torchrun (DistributedDataParallel); "
                          "use false")


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


def prepare(config: Config, device: torch.device, run_dir: Path, tokenizer: Optional[Tokenizer] = None,
            label_names: Optional[list[str]] = None, overwrite: bool = False) -> Setup:
    """Data, tokenizer, loaders, model and optimizer of a new run (``tokenizer`` None) or a resumed one.

    A new run's directory is prepared only once the data has loaded and the tokenizer is trained, so bad
    data never costs the run that ``overwrite`` would replace.
    """
    splits, plan = _load_data(config, label_names)
    if tokenizer is None:  # trained once, on rank 0, and the very same one on every rank
        tokenizer = distributed.from_main(lambda: _new_tokenizer(config, splits, run_dir, overwrite))
        vectors = config.model.pretrained_vectors  # a resumed run has its weights already
    else:
        vectors = None
    log.info("run directory: %s", run_dir)
    train_loader, val_loader, test_loader = _loaders(config, device, splits, tokenizer, plan)

    pad = pad_id(tokenizer)
    model = RNNClassifier(config.model, tokenizer.get_vocab_size(), len(splits.label_names), pad_id=pad).to(device)
    if vectors is not None:
        initialize_embedding(model.embedding, vectors, tokenizer.get_vocab(), pad, config.seed,
                             skip=tuple(SPECIAL_TOKENS), run_dir=run_dir)
    num_parameters = count_parameters(model)
    log.info("model: %s %d-layer%s, %s parameters", config.model.cell.upper(), config.model.num_layers,
             " bidirectional" if config.model.bidirectional else "", f"{num_parameters:,}")
    optimizer = make_optimizer(model, config.train)
    scaler = torch.amp.GradScaler(device.type, enabled=config.train.precision == "fp16")
    if distributed.world_size() > 1:
        # The same initial weights on every rank, then a dropout stream each (a resumed run restores its own).
        seed_everything(config.seed + distributed.rank())
    # DDP averages the gradients over the ranks in backward. No device_ids: Batch.to moves ids and labels,
    # and the lengths stay on the CPU, where packing wants them.
    train_model = DistributedDataParallel(model) if distributed.world_size() > 1 else model
    return Setup(config, device, run_dir, model, train_model, optimizer, scaler, train_loader, val_loader,
                 test_loader, tokenizer, splits.label_names, plan, num_parameters)


def restore(setup: Setup) -> TrainingState:
    """Load the last checkpoint into ``setup``'s model and optimizer, and the RNG; return where the run stood."""
    run_dir = setup.run_dir
    saved = load_training_state(run_dir, setup.model, setup.optimizer)
    state = TrainingState.from_json(saved, f"the checkpoint state in {run_dir / CHECKPOINT_DIR}")
    world = distributed.world_size()
    if state.world_size != world:
        raise CheckpointError(
            f"{run_dir} was trained by {state.world_size} process(es) and this resume runs {world}; "
            "resume with as many (torchrun --nproc_per_node), since the global batch and its order depend on it")
    if state.batch and not setup.train_loader.mid_epoch_resume:
        raise CheckpointError(f"{run_dir} stopped inside epoch {state.epoch} of a stream; a streaming run "
                              "resumes at epoch boundaries only")
    set_rng_state(state.rng_by_rank[distributed.rank()])
    if state.scaler:
        setup.scaler.load_state_dict(state.scaler)
    # Epoch records written after the checkpoint would be written again: keep the checkpoint's.
    if distributed.is_main():
        write_jsonl(run_dir / METRICS_FILE, state.history)
    log.info("resuming at epoch %d, batch %d (step %d)", state.epoch, state.batch, state.step)
    return state


def finish(setup: Setup, state: TrainingState) -> TrainResult:
    """Reload the best epoch's weights, tune multi-label thresholds, evaluate the test split, write results.json."""
    model, run_dir, tc, names = setup.model, setup.run_dir, setup.config.train, setup.label_names
    best_epoch = state.monitor.best_epoch
    if best_epoch == 0:
        raise TrainingError("no epoch finished, so there are no best weights")
    distributed.from_main(lambda: load_weights(model, run_dir / WEIGHTS_FILE))
    distributed.broadcast_module(model)  # the best weights, from rank 0 to all
    objective = setup.plan.objective
    validation = state.history[best_epoch - 1]["validation"]
    thresholds = None
    if objective.multi_label:  # tune a threshold per label on validation, then report both splits with them
        scores = predict_split(model, setup.val_loader, setup.device, tc.precision, objective)
        thresholds = tune_thresholds(*scores).tolist()
        if distributed.is_main():
            save_thresholds(run_dir, names, thresholds)
        log.info("thresholds tuned on %s: %s", setup.config.data.validation_split,
                 ", ".join(f"{n} {t:.3f}" for n, t in zip(names, thresholds)))
        validation = evaluate_model(model, setup.val_loader, names, setup.device, tc.precision, objective, thresholds)
    test = None
    if setup.test_loader is not None:
        test = evaluate_model(model, setup.test_loader, names, setup.device, tc.precision, objective, thresholds)
        log.info("test (best epoch %d): accuracy %.4f macro-F1 %.4f AUROC %s", best_epoch, test["accuracy"],
                 test["macro_f1"], "n/a" if test["auroc"] is None else f"{test['auroc']:.4f}")
    num_parameters = setup.num_parameters
    if distributed.is_main():
        write_json(run_dir / RESULTS_FILE, {"best_epoch": best_epoch, "num_parameters": num_parameters,
                                            "skipped_steps": state.skipped_steps, **setup.plan.record(names),
                                            "sampler": tc.sampler, "validation": validation, "test": test})
    return TrainResult(run_dir, best_epoch, validation, test, state.history, num_parameters,
                       monitor=setup.plan.monitor, thresholds=thresholds)


def _fit_and_finish(setup: Setup, state: TrainingState, progress: bool, hooks: Sequence[Hook]) -> TrainResult:
    """Fit with TensorBoard logging (rank 0 alone writes event files), the thread count timed (``auto``) and
    signals caught, then finish."""
    tc = setup.config.train
    tensorboard = TensorBoardLogger.open(tc.tensorboard if distributed.is_main() else False, setup.run_dir,
                                         tc.log_every, state)
    threads = AutoThreads.for_run(tc, setup.device)
    with stop_on_signals() as received, tensorboard:
        fit(setup, state, lambda: received[0] if received else None, progress,
            [tensorboard, *([threads] if threads else []), *hooks])
    return finish(setup, state)


@contextlib.contextmanager
def _session(config: Config) -> Iterator[torch.device]:
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


def _load_data(config: Config, label_names: Optional[list[str]]) -> tuple[Splits, LabelPlan]:
    """The splits (train as a stream with data.streaming) and the plan their training labels decide."""
    data = config.data
    with distributed.main_first():  # the first process of each node fills the datasets cache, the others read it
        splits = (load_stream if data.streaming else load_splits)(data, config.seed, label_names=label_names)
    if data.validation_split not in splits.data:
        raise DataError(f"validation split {data.validation_split!r} not found")
    if splits.stream is not None:
        _check_stream_schedule(config.train, splits.stream_size)
    # Class counts, weights, the monitor and the weighted sampler all come from the training labels (a stream's
    # sample when streaming), read before the run directory is prepared so a bad train.class_weights costs nothing.
    labels = _labels_of(splits.sample if splits.stream is not None else splits.data[data.train_split])
    return splits, plan_labels(config.train, data.multi_label, labels, splits.label_names)


def _loaders(config: Config, device: torch.device, splits: Splits, tokenizer: Tokenizer,
             plan: LabelPlan) -> tuple[BatchLoader | StreamLoader, BatchLoader, Optional[BatchLoader]]:
    """This process's share of the training, validation and (labelled) test batches."""
    tc, data, pad = config.train, config.data, pad_id(tokenizer)
    with distributed.main_first():
        encoded = {name: encode_dataset(split, tokenizer, desc=f"encoding {name}")
                   for name, split in splits.data.items()}
    pin = device.type == "cuda"
    shard = {"num_replicas": distributed.world_size(), "rank": distributed.rank()}
    train_loader: BatchLoader | StreamLoader
    if splits.stream is not None:
        stream = encode_stream(splits.stream.shuffle(seed=config.seed, buffer_size=data.shuffle_buffer), tokenizer)
        train_loader = StreamLoader(stream, tc.batch_size, pad_id=pad, pool_batches=tc.bucket_pool, seed=config.seed,
                                    pin_memory=pin, num_examples=splits.stream_size, **shard)
    else:
        train_loader = BatchLoader(encoded[data.train_split], tc.batch_size, pad_id=pad, shuffle=True,
                                   pool_batches=tc.bucket_pool, seed=config.seed, pin_memory=pin,
                                   equal_lengths=tc.bucketing == "exact", sample_weights=plan.sample_weights,
                                   **shard)
    val_loader = BatchLoader(encoded[data.validation_split], tc.eval_batch_size, pad_id=pad, pin_memory=pin, **shard)
    test = encoded.get(data.test_split) if data.test_split is not None else None
    test_loader = None
    if test is not None and "label" in test.column_names:
        test_loader = BatchLoader(test, tc.eval_batch_size, pad_id=pad, pin_memory=pin, **shard)
    return train_loader, val_loader, test_loader


def _labels_of(split: Optional[Dataset]) -> np.ndarray:
    """The ``label`` column of a prepared split as NumPy ([N] class indices or [N, C] multi-hot)."""
    if split is None or "label" not in split.column_names:
        raise DataError("the training split has no labels")
    if split._indices is not None:
        split = split.flatten_indices()
    return label_array(split.data.column("label"))


def _new_tokenizer(config: Config, splits: Splits, run_dir: Path, overwrite: bool) -> Tokenizer:
    """Train the run's tokenizer (on the training split, or a stream's sample), then prepare the run
    directory and write the run's files."""
    texts = splits.sample if splits.sample is not None else splits.data[config.data.train_split]
    tokenizer = build_tokenizer(config.tokenizer, iter_texts(texts))
    prepare_run_dir(run_dir, overwrite=overwrite)
    save_run_files(run_dir, config, tokenizer, splits.label_names)
    return tokenizer


def _check_stream_schedule(tc: TrainConfig, stream_size: Optional[int]) -> None:
    """A decaying schedule or a warm-up needs the number of steps, hence the stream's size."""
    if stream_size is None and (tc.schedule in ("linear", "cosine") or tc.warmup_ratio > 0):
        raise ConfigError(
            f"train.schedule={tc.schedule} with train.warmup_ratio={tc.warmup_ratio} needs the number of training "
            "examples, which this stream does not state: set data.streaming_size, or use train.schedule=constant "
            "(or plateau) with train.warmup_ratio=0"
        )
