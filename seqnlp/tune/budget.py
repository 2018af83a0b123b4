"""The time budget: ``20m`` parsed and printed, and checked before any trial runs.

``survey`` reads the data once, as training will (examples per split, and the metric ``train.monitor: auto``
resolves to, which the study then optimizes). ``trial_floor`` does what every trial does before training (the
data read, the cheapest tokenizer in the search space trained, every text encoded), then times a few training
steps of the cheapest model on batches of the data's mean length and scales them to one epoch and its validation
pass: a lower bound on any trial, since every trial trains at least one epoch. A budget below it is a
``ConfigError`` before the study starts, instead of a study that ends with nothing.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from seqnlp.config import Config
from seqnlp.errors import ConfigError, DataError

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd])")
PROBE_STEPS = 3  # timed training steps (after one untimed warm-up step)


def parse_duration(text: str) -> float:
    """``90s``, ``20m``, ``1.5h``, ``1h30m`` -> seconds; a unit is required, so ``20`` is not guessed at."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _PART.sub("", compact):
        raise ConfigError(f"--budget {text!r} is not a duration; give a number with a unit: 90s, 20m, 1.5h, 1h30m")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(compact))
    if seconds <= 0:
        raise ConfigError(f"--budget {text!r} must be longer than 0 seconds")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds as ``45s``, ``12m05s`` or ``1h02m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass(frozen=True)
class Survey:
    """The data as training will see it, read once before the study."""

    train_examples: Optional[int]  # None: a stream that does not state its size
    validation_examples: int
    monitor: str  # the metric the study optimizes: train.monitor, with auto resolved as training resolves it
    load_seconds: float  # reading and preparing the splits, which every trial does again
    train: Optional["Dataset"] = field(default=None, repr=False, compare=False)  # the prepared split; None: a stream


@dataclass(frozen=True)
class Floor:
    """The least time a trial needs before its first epoch ends, in two parts."""

    prepare_seconds: float  # read the data, train the tokenizer, encode every text
    epoch_seconds: float  # train one epoch and validate it

    @property
    def total(self) -> float:
        return self.prepare_seconds + self.epoch_seconds


def survey(config: Config) -> Survey:
    """Load the data as ``config`` says (errors in the data surface here, before any trial)."""
    from seqnlp.batching import label_array
    from seqnlp.data import load_splits, load_stream
    from seqnlp.training.plan import label_counts, resolve_monitor

    data = config.data
    start = time.perf_counter()
    splits = (load_stream if data.streaming else load_splits)(data, config.seed)
    seconds = time.perf_counter() - start
    train = splits.sample if splits.stream is not None else splits.data[data.train_split]
    if "label" not in train.column_names:
        raise DataError("the training split has no labels")
    labels = label_array(train.data.column("label"))
    monitor, _ = resolve_monitor(config.train.monitor, label_counts(labels, len(splits.label_names)), data.multi_label)
    validation = splits.split(data.validation_split)
    return Survey(splits.stream_size if splits.stream is not None else len(train),
                  len(validation) if validation is not None else 0, monitor, seconds,
                  None if splits.stream is not None else train)


def trial_floor(config: Config, found: Survey) -> Optional[Floor]:
    """About how long a trial of ``config`` takes to end its first epoch here: the data read, the tokenizer
    trained and every text encoded, for real, then ``PROBE_STEPS`` training steps with the tokenizer's
    vocabulary (the embedding and its optimizer state are a large share of a step), timed at the data's mean
    length and scaled to an epoch and its validation pass. None for a stream.

    A lower bound: real batches mix lengths, and a busy machine slows a long epoch more than a few steps (on
    SST-2 the recipe's first epoch took 4 times the estimate made a minute before, on one shared core)."""
    from seqnlp.tokenizer import build_tokenizer, encode_dataset, iter_texts

    if found.train is None or found.train_examples is None:
        return None
    start = time.perf_counter()
    tokenizer = build_tokenizer(config.tokenizer, iter_texts(found.train))
    lengths = encode_dataset(found.train, tokenizer, desc="timing the encoding")["length"]
    prepare, vocab = found.load_seconds + time.perf_counter() - start, tokenizer.get_vocab_size()
    length = max(1, round(sum(lengths) / max(len(lengths), 1)))
    per_step = _step_seconds(config, vocab, length)
    # A validation example costs about a third of a training one (a forward pass, no backward or update).
    batches = math.ceil(found.train_examples / config.train.batch_size) + \
        found.validation_examples / config.train.batch_size / 3
    return Floor(prepare, per_step * batches)


def _step_seconds(config: Config, vocab: int, length: int) -> float:
    """Seconds per training step of ``config``'s model on random ids [batch_size, length]."""
    import torch

    from seqnlp.model import RNNClassifier
    from seqnlp.runtime import resolve_device, set_threads
    from seqnlp.training.schedule import make_optimizer

    tc = config.train
    device = resolve_device(tc.device)
    threads = torch.get_num_threads()
    set_threads(tc.num_threads)
    try:
        model = RNNClassifier(config.model, vocab, 2).to(device)
        optimizer = make_optimizer(model, tc)
        ids = torch.randint(1, vocab, (tc.batch_size, length), device=device)  # [B, T]
        lengths = torch.full((tc.batch_size,), length, dtype=torch.long)  # [B], on the CPU as packing wants
        labels = torch.zeros(tc.batch_size, dtype=torch.long, device=device)  # [B]
        for step in range(PROBE_STEPS + 1):  # the first step warms up, untimed
            if step == 1:
                start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(ids, lengths), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / PROBE_STEPS
    finally:
        torch.set_num_threads(threads)


def check_budget(budget: Optional[float], floor: Optional[Floor], found: Survey,
                 what: str = "the smallest model in the search space") -> None:
    """A budget shorter than the first epoch of ``what`` (the study's first trial, or its cheapest) cannot
    finish a single trial: say so now."""
    if budget is None or floor is None:
        return
    total, prepare, epoch = (format_duration(s) for s in (floor.total, floor.prepare_seconds, floor.epoch_seconds))
    log.info("%s: its first epoch ends after about %s here (%s to prepare the data, %s per epoch)", what, total,
             prepare, epoch)
    if budget < floor.total:
        raise ConfigError(
            f"--budget {format_duration(budget)} is too small for one trial: {what} needs about {total} here to end "
            f"its first epoch ({prepare} to read and tokenize {found.train_examples:,} training texts, {epoch} per "
            f"epoch); give --budget {format_duration(max(60.0, 3 * floor.total))} or more, or fewer texts "
            "(--set data.max_train_samples=N)")
