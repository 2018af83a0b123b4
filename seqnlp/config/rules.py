"""Rules over a whole Config: choices, ranges, and keys that rule each other out. Runs once, after every source of
settings (file, ``--set`` overrides, typed updates) is merged."""

from __future__ import annotations

import math
from typing import Any

from seqnlp.config.schema import CHOICES, Config
from seqnlp.config.typed import get_value
from seqnlp.errors import ConfigError


CLASS_WEIGHTS = ("none", "auto")  # train.class_weights also takes a list of numbers: checked by hand


# (dotted key, lowest allowed value, whether the lowest is excluded); None always passes
_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    *((key, 1, False) for key in (
        "tokenizer.min_frequency", "tokenizer.max_length", "model.embedding_dim", "model.hidden_size",
        "model.num_layers", "train.epochs", "train.batch_size", "train.eval_batch_size", "train.bucket_pool",
        "train.log_every", "train.checkpoint_every", "train.patience", "data.max_train_samples",
        "data.streaming_sample", "data.shuffle_buffer", "data.streaming_validation_size", "data.streaming_size")),
    ("tokenizer.vocab_size", 3, False), ("model.head_hidden_size", 0, False), ("train.weight_decay", 0, False),
    ("train.plateau_patience", 0, False), ("train.lr", 0, True), ("train.max_grad_norm", 0, True),
)


_FRACTIONS = ("model.dropout", "model.embedding_dropout", "train.warmup_ratio", "train.label_smoothing",
              "data.validation_size", "data.test_size")


def validate(config: Config) -> None:
    """Check choices, ranges and combinations of keys; every error names the key and what is allowed."""
    for key, choices in CHOICES.items():
        value = get_value(config, key)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    for key, low, strict in _BOUNDS:
        value = get_value(config, key)
        if value is None:
            continue
        if not (value > low if strict else value >= low):  # also rejects NaN
            relation = ">" if strict else ">="
            raise ConfigError(f"{key}: {value!r} must be {relation} {low}")
    for key in _FRACTIONS:
        value = get_value(config, key)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}: {value!r} must be in [0, 1)")
    if not config.data.text_columns:
        raise ConfigError("data.text_columns: name at least one text column")
    if config.data.validation_size + config.data.test_size >= 1.0:
        raise ConfigError("data.validation_size + data.test_size must leave some examples for training")
    if config.tokenizer.vocab_size > 10_000_000:
        raise ConfigError("tokenizer.vocab_size: must be <= 10,000,000")
    threads = config.train.num_threads
    if not (threads is None or threads == "auto" or (isinstance(threads, int) and not isinstance(threads, bool)
                                                     and threads >= 1)):
        raise ConfigError(f"train.num_threads: {threads!r} is not auto, null or an integer >= 1")
    if config.train.tensorboard not in (True, False, "auto"):
        raise ConfigError(f"train.tensorboard: {config.train.tensorboard!r} is not one of auto, true, false")
    freeze = config.model.freeze_embeddings
    if not isinstance(freeze, bool) and freeze < 0:
        raise ConfigError(f"model.freeze_embeddings: {freeze!r} must be true, false or a number of epochs >= 0")
    if config.model.pretrained_vectors is not None and not config.model.pretrained_vectors.strip():
        raise ConfigError("model.pretrained_vectors: give a vectors file or a named source, or null for none")
    _validate_class_weights(config.train.class_weights)
    _validate_sampling(config)  # the vectors' dimension is checked with the file, by training's preflight


def _validate_sampling(config: Config) -> None:
    """The weighted sampler, exact bucketing and streaming each rule out some of the others."""
    weighted, exact, stream = config.train.sampler == "weighted", config.train.bucketing == "exact", config.data.streaming
    for clash, message in (
        (weighted and config.data.multi_label, "train.sampler: weighted draws by the class of an example, so it "
         "needs single-label data; with data.multi_label use train.class_weights (pos_weight) instead"),
        (weighted and exact, "train.sampler: weighted draws examples with replacement, which train.bucketing: exact "
         "cannot cut into equal-length batches; use train.bucketing: pool"),
        (exact and stream, "train.bucketing: exact needs every training length up front; a stream (data.streaming) "
         "is bucketed in pools: use train.bucketing: pool"),
        (weighted and stream, "train.sampler: weighted needs the whole training split's labels; it cannot read a "
         "stream (data.streaming); use train.class_weights instead"),
    ):
        if clash:
            raise ConfigError(message)


def _validate_class_weights(value: Any) -> None:
    """``none``/``auto`` or a list of positive numbers; its length is checked against the labels at training."""
    numbers = isinstance(value, list) and bool(value) and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0 for w in value)
    if not (value is None or numbers or (isinstance(value, str) and value in CLASS_WEIGHTS)):
        raise ConfigError(f"train.class_weights: {value!r} is not one of none, auto, or a list of positive numbers, "
                          "one per label")
