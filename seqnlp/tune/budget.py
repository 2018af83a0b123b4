"""The time budget: ``20m`` parsed and printed, and checked before any trial runs.

``survey`` reads the data once, as training will (examples per split, words per text, and the metric
``train.monitor: auto`` resolves to, which the study then optimizes). ``epoch_seconds`` times a few training
steps of the cheapest model the search space holds, on batches shaped like the data, and scales them to one
epoch and its validation pass: a lower bound on any trial, since every trial trains at least one epoch. A budget
below it is a ``ConfigError`` before the study starts, instead of a study that ends with nothing.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Optional

from seqnlp.config import Config
from seqnlp.errors import ConfigError, DataError

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd])")
SAMPLE_TEXTS = 2000  # texts whose words are counted for the typical length
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
    words_per_text: float  # mean whitespace-separated words over a sample of training texts
    distinct_words: int  # in that sample
    monitor: str  # the metric the study optimizes: train.monitor, with auto resolved as training resolves it


def survey(config: Config) -> Survey:
    """Load the data as ``config`` says (errors in the data surface here, before any trial)."""
    from seqnlp.batching import label_array
    from seqnlp.data import load_splits, load_stream
    from seqnlp.training.plan import label_counts, resolve_monitor

    data = config.data
    splits = (load_stream if data.streaming else load_splits)(data, config.seed)
    train = splits.sample if splits.stream is not None else splits.data[data.train_split]
    size = splits.stream_size if splits.stream is not None else len(train)
    validation = splits.split(data.validation_split)
    texts = train.select(range(min(SAMPLE_TEXTS, len(train))))["text"]
    words = [text.split() for text in texts]
    if "label" not in train.column_names:
        raise DataError("the training split has no labels")
    labels = label_array(train.data.column("label"))
    monitor, _ = resolve_monitor(config.train.monitor, label_counts(labels, len(splits.label_names)), data.multi_label)
    return Survey(size, len(validation) if validation is not None else 0,
                  sum(map(len, words)) / max(len(words), 1), len({w for ws in words for w in ws}), monitor)


def epoch_seconds(config: Config, found: Survey) -> Optional[float]:
    """About how long one epoch (training and validation) of ``config``'s model takes here; None for a stream of
    unknown size. Times ``PROBE_STEPS`` steps on random ids of the data's typical length."""
    import torch

    from seqnlp.model import RNNClassifier
    from seqnlp.runtime import resolve_device, set_threads
    from seqnlp.training.schedule import make_optimizer

    if found.train_examples is None:
        return None
    tc = config.train
    length = max(1, min(config.tokenizer.max_length, round(found.words_per_text)))
    vocab = max(16, min(config.tokenizer.vocab_size, found.distinct_words))
    device = resolve_device(tc.device)
    threads = torch.get_num_threads()
    set_threads(tc.num_threads)
    try:
        model = RNNClassifier(config.model, vocab, 2).to(device)
        optimizer = make_optimizer(model, tc)
        ids = torch.randint(1, vocab, (tc.batch_size, length), device=device)  # [B, T]
        lengths = torch.full((tc.batch_size,), length, dtype=torch.long)  # [B], on the CPU as packing wants
        labels = torch.zeros(tc.batch_size, dtype=torch.long, device=device)  # [B]
        for step in range(PROBE_STEPS + 1):
            if step == 1:
                start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(ids, lengths), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        per_step = (time.perf_counter() - start) / PROBE_STEPS
    finally:
        torch.set_num_threads(threads)
    # A validation example costs about a third of a training one (a forward pass, no backward or update).
    batches = math.ceil(found.train_examples / tc.batch_size) + found.validation_examples / tc.batch_size / 3
    return per_step * batches


def check_budget(budget: Optional[float], cheapest_epoch: Optional[float], found: Survey) -> None:
    """A budget shorter than one epoch of the cheapest model cannot finish a single trial: say so now."""
    if budget is None or cheapest_epoch is None:
        return
    log.info("one epoch of the smallest model in the search space takes about %s here", format_duration(cheapest_epoch))
    if budget < cheapest_epoch:
        raise ConfigError(
            f"--budget {format_duration(budget)} is too small for one trial: one epoch of the smallest model in the "
            f"search space takes about {format_duration(cheapest_epoch)} here ({found.train_examples:,} training "
            f"texts); give --budget {format_duration(max(60.0, 3 * cheapest_epoch))} or more, or fewer texts "
            "(--set data.max_train_samples=N)")
