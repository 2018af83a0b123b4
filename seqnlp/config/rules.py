"""Rules over a whole Config: choices, ranges, and keys that rule each other out. Runs once, after every source of
settings (file, ``--set`` overrides, typed updates) is merged."""

from __future__ import annotations

import math
from typing import Any

from seqnlp.config.schema import CHOICES, Config
from seqnlp.config.typed import get_value
from seqnlp.errors import ConfigError


CLASS_WEIGHTS = ("none", "auto")  # train.class_weights also takes a list of numbers: checked by hand


# Every integer key: (dotted key, lowest, highest); None always passes. The highest values are far beyond any sensible
# run; they keep a typo, or a config from elsewhere, from asking for terabytes, a hang or an overflow deep inside.
_INT_RANGES: tuple[tuple[str, int, int], ...] = (
    ("seed", 0, 2**32 - 1),  # NumPy's seeding takes 32 bits
    ("tokenizer.vocab_size", 3, 10_000_000), ("tokenizer.min_frequency", 1, 10**9), ("tokenizer.max_length", 1, 10**6),
    ("model.embedding_dim", 1, 65_536), ("model.hidden_size", 1, 65_536), ("model.num_layers", 1, 64),
    ("model.head_hidden_size", 0, 65_536),
    ("train.epochs", 1, 100_000), ("train.batch_size", 1, 10**6), ("train.eval_batch_size", 1, 10**6),
    ("train.bucket_pool", 1, 10**6), ("train.log_every", 1, 10**9), ("train.checkpoint_every", 1, 10**9),
    ("train.patience", 1, 100_000), ("train.plateau_patience", 0, 100_000), ("train.num_threads", 1, 4096),
    ("data.max_train_samples", 1, 10**12), ("data.streaming_sample", 1, 10**8), ("data.shuffle_buffer", 1, 10**8),
    ("data.streaming_validation_size", 1, 10**8), ("data.streaming_size", 1, 10**15),
    ("model.ngram_buckets", 1, 100_000_000), ("baseline.word_ngrams", 1, 10), ("baseline.char_ngrams", 0, 10),
    ("baseline.min_df", 1, 10**9),
    ("train.gradual_unfreezing", 0, 100_000), ("pretrain.epochs", 1, 100_000), ("pretrain.batch_size", 1, 10**6),
)
# Numbers: (dotted key, lowest allowed value, whether the lowest is excluded); each must also be finite.
_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    ("train.weight_decay", 0, False), ("train.lr", 0, True), ("train.max_grad_norm", 0, True),
    ("train.plateau_factor", 0, True), ("train.ngram_lr", 0, True), ("baseline.c", 0, True),
    ("train.layer_lr_decay", 0, True), ("pretrain.lr", 0, True),
)


_FRACTIONS = ("model.dropout", "model.embedding_dropout", "model.ngram_dropout",
              "train.warmup_ratio", "train.label_smoothing", "data.validation_size", "data.test_size")

MAX_NGRAM_ORDER = 5  # model.ngram_orders: orders above this add buckets and collisions, rarely accuracy


def is_thread_setting(value: object) -> bool:
    """A torch thread setting (train.num_threads, and inference's) is auto, None (torch's own) or a count >= 1."""
    return value is None or value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


def validate(config: Config) -> None:
    """Check choices, ranges and combinations of keys; every error names the key and what is allowed."""
    for key, choices in CHOICES.items():
        value = get_value(config, key)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    for key, lowest, highest in _INT_RANGES:
        value = get_value(config, key)
        if isinstance(value, int) and not isinstance(value, bool) and not lowest <= value <= highest:
            raise ConfigError(f"{key}: {value!r} must be >= {lowest} and <= {highest}")
    for key, low, strict in _BOUNDS:
        value = get_value(config, key)
        if value is None:
            continue
        if not (value > low if strict else value >= low) or not math.isfinite(value):  # also rejects NaN
            relation = ">" if strict else ">="
            raise ConfigError(f"{key}: {value!r} must be {relation} {low} and finite")
    for key in _FRACTIONS:
        value = get_value(config, key)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}: {value!r} must be in [0, 1)")
    if not config.data.text_columns:
        raise ConfigError("data.text_columns: name at least one text column")
    if config.data.validation_size + config.data.test_size >= 1.0:
        raise ConfigError("data.validation_size + data.test_size must leave some examples for training")
    if not config.train.plateau_factor < 1:
        raise ConfigError(f"train.plateau_factor: {config.train.plateau_factor!r} must be < 1 (a learning-rate drop)")
    if not is_thread_setting(config.train.num_threads):
        raise ConfigError(f"train.num_threads: {config.train.num_threads!r} is not auto, null or an integer >= 1")
    if config.train.tensorboard not in (True, False, "auto"):
        raise ConfigError(f"train.tensorboard: {config.train.tensorboard!r} is not one of auto, true, false")
    freeze = config.model.freeze_embeddings
    if not isinstance(freeze, bool) and not 0 <= freeze <= 100_000:
        raise ConfigError(f"model.freeze_embeddings: {freeze!r} must be true, false or a number of epochs >= 0 "
                          "and <= 100000")
    if config.model.pretrained_vectors is not None and not config.model.pretrained_vectors.strip():
        raise ConfigError("model.pretrained_vectors: give a vectors file or a named source, or null for none")
    _validate_calibration(config)
    _validate_class_weights(config.train.class_weights)
    _validate_ngrams(config)
    _validate_sampling(config)  # the vectors' dimension is checked with the file, by training's preflight
    _validate_pretraining(config)  # the init_from directory and the text files are checked by preflight


def _validate_pretraining(config: Config) -> None:
    """A pretrained start comes from one place, and it sets the tokenizer and the embedding itself."""
    tc, cutoffs = config.train, config.pretrain.cutoffs
    if tc.layer_lr_decay > 1.0:
        raise ConfigError(f"train.layer_lr_decay: {tc.layer_lr_decay!r} must be in (0, 1]: lower layers learn at "
                          "most as fast as the ones above them")
    if not cutoffs or any(c < 1 for c in cutoffs) or any(a >= b for a, b in zip(cutoffs, cutoffs[1:])):
        raise ConfigError(f"pretrain.cutoffs: {cutoffs!r} must be one or more increasing token counts >= 1, "
                          "e.g. [2000, 10000]")
    dropout = config.pretrain.dropout
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ConfigError(f"pretrain.dropout: {dropout!r} must be in [0, 1), or null for the model's own")
    if any(not path.strip() for path in config.pretrain.text_files):
        raise ConfigError("pretrain.text_files: an entry is empty; give a file path")
    if tc.pretrain and config.data.streaming:
        raise ConfigError("train.pretrain: the language model reads the whole training split, which a stream "
                          "(data.streaming) does not hold; pretrain with seqnlp pretrain on a copy, or set "
                          "data.streaming=false")
    if tc.init_from is None:
        return
    if not tc.init_from.strip():
        raise ConfigError("train.init_from: give a pretrained run directory, or null for a random start")
    for clash, key in ((tc.pretrain, "train.pretrain"), (config.tokenizer.path is not None, "tokenizer.path"),
                       (config.model.pretrained_vectors is not None, "model.pretrained_vectors")):
        if clash:
            raise ConfigError(f"train.init_from: {tc.init_from!r} with {key}: the pretrained run gives the "
                              "tokenizer, the embedding and the encoder; set only one of them")


def _validate_ngrams(config: Config) -> None:
    """model.ngram_orders: distinct orders in 1..MAX_NGRAM_ORDER; the baseline cannot read a stream."""
    orders = config.model.ngram_orders
    if not isinstance(orders, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in orders) \
            or len(set(orders)) != len(orders) or any(not 1 <= n <= MAX_NGRAM_ORDER for n in orders):
        raise ConfigError(f"model.ngram_orders: {orders!r} must be a list of distinct orders from 1 to "
                          f"{MAX_NGRAM_ORDER}, e.g. [1, 2], or [] for no n-gram branch")
    if orders and config.model.ngram_init == "nb" and config.data.streaming:
        raise ConfigError("model.ngram_init: nb counts n-grams over the whole training split, which a stream "
                          "(data.streaming) does not hold; use model.ngram_init: zeros")
    if config.baseline.char_ngrams == 1:
        raise ConfigError("baseline.char_ngrams: 1 is not allowed; 0 for no character n-grams, or N >= 2 for 2..N")
    if config.train.baseline and config.data.streaming:
        raise ConfigError("train.baseline: the baseline needs the training split in memory; it cannot read a "
                          "stream (data.streaming): set train.baseline: false, or run seqnlp baseline on a file")


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


def _validate_calibration(config: Config) -> None:
    """A decision threshold is for binary single-label runs (the number of labels is checked once they are known)."""
    calibration = config.calibration
    if not 0.0 < calibration.target_precision <= 1.0:
        raise ConfigError(f"calibration.target_precision: {calibration.target_precision!r} must be in (0, 1]")
    if calibration.threshold != "argmax" and config.data.multi_label:
        raise ConfigError(f"calibration.threshold: {calibration.threshold} is for binary single-label runs; a "
                          "multi-label run tunes a threshold per label (thresholds.json): use argmax")


def _validate_class_weights(value: Any) -> None:
    """``none``/``auto`` or a list of positive numbers; its length is checked against the labels at training."""
    numbers = isinstance(value, list) and bool(value) and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0 for w in value)
    if not (value is None or numbers or (isinstance(value, str) and value in CLASS_WEIGHTS)):
        raise ConfigError(f"train.class_weights: {value!r} is not one of none, auto, or a list of positive numbers, "
                          "one per label")
