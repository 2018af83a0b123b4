"""``prepare``: everything a run trains with, built once as a frozen ``Setup``: the data loaded and checked, the
tokenizer trained (rank 0) and the run directory prepared, the loaders, the model (with pretrained vectors), the
optimizer; ``restore`` reads a checkpoint back into it for ``resume``.

A new run's directory is prepared only once the data has loaded and the tokenizer is trained, so bad data never
costs the run that ``--overwrite`` would replace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from datasets import Dataset
from tokenizers import Tokenizer
from torch.nn.parallel import DistributedDataParallel

from seqnlp import distributed
from seqnlp.baseline import fit_baseline
from seqnlp.batching import BatchLoader, StreamLoader, label_array
from seqnlp.calibration import check_decision_labels
from seqnlp.checkpoint import (
    CHECKPOINT_DIR,
    DATA_FILE,
    METRICS_FILE,
    load_training_state,
    prepare_run_dir,
    save_run_files,
    write_json,
    write_jsonl,
)
from seqnlp.config import Config
from seqnlp.data import Splits, load_splits, load_stream
from seqnlp.data.provenance import record_data
from seqnlp.errors import CheckpointError, DataError
from seqnlp.lm import LanguageModel
from seqnlp.model import RNNClassifier, count_parameters
from seqnlp.ngrams import init_naive_bayes
from seqnlp.runtime import seed_everything, set_rng_state
from seqnlp.tokenizer import (
    SPECIAL_TOKENS,
    build_tokenizer,
    encode_dataset,
    encode_stream,
    iter_texts,
    pad_id,
    vocab_digest,
)
from seqnlp.training.finetune import init_dir, init_tokenizer_config, load_pretrained, lr_scales
from seqnlp.training.plan import LabelPlan, plan_labels
from seqnlp.training.pretrain import language_model_config, pretraining_data, write_pretraining_record
from seqnlp.training.schedule import check_stream_schedule, make_optimizer
from seqnlp.training.state import TrainingState
from seqnlp.training.vectors import initialize_embedding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setup:
    """Everything one run trains with, built by ``prepare``; ``fit`` and ``finish`` only read it.

    ``model`` is the module itself (evaluated and saved); ``train_model`` is what the steps run: the same
    module, or its DistributedDataParallel wrapper in a multi-process run.
    """

    config: Config
    device: torch.device
    run_dir: Path
    model: RNNClassifier | LanguageModel
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
    carved: dict[str, str] = field(default_factory=dict)  # split -> how it was carved from train (Splits.carved)
    baseline: Optional[dict[str, Any]] = None  # train.baseline: BaselineResult.to_dict() (rank 0 only)


def prepare(config: Config, device: torch.device, run_dir: Path, tokenizer: Optional[Tokenizer] = None,
            label_names: Optional[list[str]] = None, overwrite: bool = False, language_model: bool = False) -> Setup:
    """Data, tokenizer, loaders, model and optimizer of a new run (``tokenizer`` None) or a resumed one.

    A new run's directory is prepared only once the data has loaded and the tokenizer is trained, so bad
    data never costs the run that ``overwrite`` would replace. A new run with ``train.init_from`` (or
    ``train.pretrain``) takes the pretrained run's tokenizer, embedding and encoder (``training.finetune``).
    ``language_model``: a language model over the same embedding and encoder instead of a classifier, trained
    as ``training.pretrain`` says; ``config`` is saved as given and ``Setup.config`` holds its derived settings.
    """
    settings = language_model_config(config) if language_model else config
    splits, plan = _load_data(settings, label_names)
    if language_model:
        splits, plan = pretraining_data(settings, splits, plan)
    baseline = None
    if settings.train.baseline and not language_model and distributed.is_main():  # seconds, on the very splits
        baseline = fit_baseline(settings, splits).to_dict()
    new_run = tokenizer is None  # a resumed run has its weights already
    init = init_dir(settings, run_dir) if new_run else None
    if tokenizer is None:  # trained once, on rank 0, and the very same one on every rank
        tokenizer = distributed.from_main(
            lambda: _new_tokenizer(config, splits, run_dir, overwrite, init, language_model))
    log.info("run directory: %s", run_dir)
    train_loader, val_loader, test_loader = _loaders(settings, device, splits, tokenizer, plan)
    model = _build_model(settings, tokenizer, len(splits.label_names), language_model).to(device)
    _initialize(model, settings, tokenizer, train_loader, device, run_dir, init, new_run)
    num_parameters = count_parameters(model)
    log.info("%s: %s %d-layer%s, %s parameters", "language model" if language_model else "model",
             settings.model.cell.upper(), settings.model.num_layers,
             " bidirectional" if settings.model.bidirectional else "", f"{num_parameters:,}")
    tc = settings.train
    optimizer = make_optimizer(model, tc, lr_scales(model, tc.layer_lr_decay) if tc.layer_lr_decay < 1 else None)
    scaler = torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16")
    if distributed.world_size() > 1:
        # The same initial weights on every rank, then a dropout stream each (a resumed run restores its own).
        seed_everything(settings.seed + distributed.rank())
    # DDP averages the gradients over the ranks in backward. No device_ids: Batch.to moves ids and labels,
    # and the lengths stay on the CPU, where packing wants them. An adaptive softmax leaves the clusters no
    # target of a batch falls in without gradients, which DDP must be told to expect.
    train_model = (DistributedDataParallel(model, find_unused_parameters=language_model)
                   if distributed.world_size() > 1 else model)
    return Setup(settings, device, run_dir, model, train_model, optimizer, scaler, train_loader, val_loader,
                 test_loader, tokenizer, splits.label_names, plan, num_parameters, carved=splits.carved,
                 baseline=baseline)


def _build_model(config: Config, tokenizer: Tokenizer, num_labels: int,
                 language_model: bool) -> RNNClassifier | LanguageModel:
    pad, vocab_size = pad_id(tokenizer), tokenizer.get_vocab_size()
    if language_model:
        return LanguageModel(config.model, vocab_size, pad_id=pad, cutoffs=config.pretrain.cutoffs)
    return RNNClassifier(config.model, vocab_size, num_labels, pad_id=pad)


def _initialize(model: RNNClassifier | LanguageModel, config: Config, tokenizer: Tokenizer,
                train_loader: BatchLoader | StreamLoader, device: torch.device, run_dir: Path, init: Optional[Path],
                new_run: bool) -> None:
    """A new run's starting weights beyond the random ones: a pretrained run's embedding and encoder, or word
    vectors; and the n-gram branch's Naive-Bayes counts (a resumed run has all of them in its checkpoint)."""
    if not new_run:
        return
    if init is not None:
        load_pretrained(model, init, vocab_digest(tokenizer))
    elif config.model.pretrained_vectors is not None:
        initialize_embedding(model.embedding, config.model.pretrained_vectors, tokenizer.get_vocab(),
                             pad_id(tokenizer), config.seed, skip=tuple(SPECIAL_TOKENS), run_dir=run_dir)
    ngrams = getattr(model, "ngrams", None)
    if ngrams is not None and config.model.ngram_init == "nb":
        init_naive_bayes(ngrams, train_loader, config.train.eval_batch_size, device)


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
    try:
        set_rng_state(state.rng_by_rank[distributed.rank()])
        if state.scaler:
            setup.scaler.load_state_dict(state.scaler)
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
        raise CheckpointError(f"the checkpoint state in {run_dir / CHECKPOINT_DIR} cannot be restored: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    # Epoch records written after the checkpoint would be written again: keep the checkpoint's.
    if distributed.is_main():
        write_jsonl(run_dir / METRICS_FILE, state.history)
    log.info("resuming at epoch %d, batch %d (step %d)", state.epoch, state.batch, state.step)
    return state


def _load_data(config: Config, label_names: Optional[list[str]]) -> tuple[Splits, LabelPlan]:
    """The splits (train as a stream with data.streaming) and the plan their training labels decide."""
    data = config.data
    with distributed.main_first():  # the first process of each node fills the datasets cache, the others read it
        splits = (load_stream if data.streaming else load_splits)(data, config.seed, label_names=label_names)
    if data.validation_split not in splits.data:
        raise DataError(f"validation split {data.validation_split!r} not found")
    if splits.stream is not None:
        check_stream_schedule(config.train, splits.stream_size)
    # Class counts, weights, the monitor and the weighted sampler all come from the training labels (a stream's
    # sample when streaming), read before the run directory is prepared so a bad train.class_weights costs nothing.
    labels = _labels_of(splits.sample if splits.stream is not None else splits.data[data.train_split])
    check_decision_labels(config.calibration.threshold, config.calibration.positive_label, splits.label_names,
                          data.multi_label)
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


def _new_tokenizer(config: Config, splits: Splits, run_dir: Path, overwrite: bool, init: Optional[Path] = None,
                   language_model: bool = False) -> Tokenizer:
    """Check and record the data, train the run's tokenizer (on the training split, or a stream's sample) or take
    ``init``'s, then prepare the run directory and write the run's files (a language model's pretraining.json too)."""
    data = record_data(config.data, splits)  # the cheap data checks (warned with counts) and the data's hashes
    texts = splits.sample if splits.sample is not None else splits.data[config.data.train_split]
    settings = config.tokenizer if init is None else init_tokenizer_config(config, init)
    tokenizer = build_tokenizer(settings, iter_texts(texts))
    prepare_run_dir(run_dir, overwrite=overwrite)
    save_run_files(run_dir, config, tokenizer, splits.label_names)
    write_json(run_dir / DATA_FILE, data)
    if language_model:
        write_pretraining_record(run_dir, config, splits, tokenizer)
    return tokenizer
