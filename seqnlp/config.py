"""One typed dataclass tree for every setting: YAML/JSON in, dotted overrides, validation.

A config is plain data. It is loaded from a file, overridden with ``section.key=value`` strings,
validated (unknown keys and bad values name the key and the valid choices) and saved with every run,
so a run directory always says exactly how it was made.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

import yaml

from seqnlp.errors import ConfigError

CELLS = ("rnn", "lstm", "gru")
NONLINEARITIES = ("tanh", "relu")
POOLINGS = ("last", "mean", "max", "attention")
RECURRENCES = ("auto", "masked", "packed")
TOKENIZER_KINDS = ("word", "bpe", "wordpiece", "unigram", "char")
NORMALIZATIONS = ("none", "nfc", "nfd", "nfkc", "nfkd")
TRUNCATION_SIDES = ("right", "left")
SCHEDULES = ("constant", "linear", "cosine", "plateau")
MONITORS = ("auto", "loss", "accuracy", "macro_f1")
SAMPLERS = ("bucket", "weighted")
CLASS_WEIGHTS = ("none", "auto")
PRECISIONS = ("fp32", "bf16", "fp16")
BUCKETINGS = ("exact", "pool")
ACTIVATIONS = ("relu", "tanh", "gelu")
ON_NONFINITE = ("stop", "skip")


@dataclass
class DataConfig:
    """Where the examples come from and which columns hold text and label."""

    dataset: Optional[str] = None  # Hub name, local dir, saved dataset, file, builder (csv/json/parquet), or synthetic:TASK?k=v; None: the embedded SMS Spam Collection
    config_name: Optional[str] = None  # Hub config (subset) name, e.g. "sst2" for "glue"
    revision: Optional[str] = None  # Hub revision (branch, tag or commit)
    data_files: dict[str, Any] = field(default_factory=dict)  # split -> path (or list of paths) for local files
    load_kwargs: dict[str, Any] = field(default_factory=dict)  # extra load_dataset options: delimiter, column_names, quoting, ...
    text_columns: list[str] = field(default_factory=lambda: ["text"])  # joined with text_separator when several
    text_separator: str = " "  # placed between several text columns
    label_column: str = "label"
    label_names: Optional[list[str]] = None  # names for integer labels 0..C-1 (ClassLabel names are used when present)
    multi_label: bool = False  # the label column holds lists of labels (a sigmoid per label; see README "Multi-label")
    train_split: str = "train"
    validation_split: str = "validation"  # carved from train (seeded, stratified) when the data has none
    test_split: Optional[str] = "test"  # used by `evaluate` when present
    validation_size: float = 0.1  # fraction of train carved off when there is no validation split
    test_size: float = 0.1  # fraction of train carved off as a test split when there is none (0: no test split)
    max_train_samples: Optional[int] = None  # a seeded subset of train, for quick experiments (streaming: the first N)
    streaming: bool = False  # read train as a stream, never materialized: for corpora larger than memory or disk
    streaming_sample: int = 10000  # streaming: the first N training texts train the tokenizer (and name the labels)
    shuffle_buffer: int = 10000  # streaming: examples in the shuffle buffer the stream is read through
    streaming_validation_size: int = 1000  # streaming without a validation split: the first N examples become it
    streaming_size: Optional[int] = None  # streaming: training examples per epoch, for the lr schedule; None: metadata


@dataclass
class TokenizerConfig:
    """How text becomes ids: a `tokenizers.Tokenizer` trained on the training split, or loaded."""

    kind: str = "word"  # word | bpe | wordpiece | unigram | char
    path: Optional[str] = None  # an existing tokenizer.json to load instead of training one
    vocab_size: int = 30000  # upper bound on the vocabulary, special tokens included
    min_frequency: int = 2  # tokens seen fewer times in train map to [UNK] (word, bpe, wordpiece)
    lowercase: bool = True
    normalization: str = "nfkc"  # unicode normalization: none | nfc | nfd | nfkc | nfkd
    strip_accents: bool = False
    max_length: int = 256  # tokens kept per text; longer texts are truncated
    truncation_side: str = "right"  # right keeps the beginning of a text, left keeps its end


@dataclass
class ModelConfig:
    """Embedding -> recurrent encoder -> pooling -> classifier head."""

    cell: str = "lstm"  # rnn | lstm | gru
    nonlinearity: str = "tanh"  # for cell=rnn only: tanh | relu
    embedding_dim: int = 128
    hidden_size: int = 128  # per direction
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3  # between stacked RNN layers (only when num_layers > 1) and before the head
    embedding_dropout: float = 0.2  # on the embedded tokens
    pooling: str = "max"  # over real tokens only: last | mean | max | attention
    head_hidden_size: int = 0  # 0: a single linear layer; >0: one hidden layer of this width
    head_activation: str = "relu"  # for the head's hidden layer: relu | tanh | gelu
    # How batches of mixed lengths run; every choice gives the same results, only speed differs.
    # auto: masked on the CPU when a batch has little padding or is long, packed otherwise and on CUDA.
    recurrence: str = "auto"  # auto | masked | packed
    # Initial embedding rows from a GloVe/word2vec/fastText text file (.txt, .vec, .gz) or a named source
    # (glove-6b-50d); embedding_dim must equal the vectors' dimension. None: random initialization.
    pretrained_vectors: Optional[str] = None
    freeze_embeddings: Union[bool, int] = False  # false: fine-tuned; true: frozen; N: frozen for epochs 1..N, then fine-tuned


@dataclass
class TrainConfig:
    """The optimization loop: AdamW, schedule, clipping, early stopping, precision, device."""

    epochs: int = 10
    batch_size: int = 64
    eval_batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    schedule: str = "linear"  # constant | linear | cosine (each after warm-up) | plateau (reduce on plateau)
    warmup_ratio: float = 0.05  # fraction of all steps spent warming the learning rate up from 0
    plateau_factor: float = 0.5  # schedule=plateau: lr multiplier when the monitored metric stalls
    plateau_patience: int = 1  # schedule=plateau: epochs without improvement before the lr drops
    max_grad_norm: Optional[float] = 1.0  # gradient-norm clipping; None disables it
    label_smoothing: float = 0.0
    monitor: str = "auto"  # validation metric that picks the best epoch and drives early stopping; auto: see README
    class_weights: Any = None  # None/"none" | "auto" (inverse label frequency in train) | a list, one weight per label
    sampler: str = "bucket"  # bucket: every example once per epoch | weighted: draws inverse to class frequency
    patience: Optional[int] = 3  # epochs without improvement before stopping; None trains every epoch
    bucketing: str = "pool"  # pool: shuffled pools sorted by length | exact: batches of one length where possible
    bucket_pool: int = 50  # bucketing=pool (and streaming): batches per length-sorting pool
    precision: str = "fp32"  # fp32 | bf16 (autocast, CPU or CUDA) | fp16 (autocast + grad scaling, CUDA)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: Optional[int] = None  # torch intra-op threads; None keeps torch's default
    log_every: int = 50  # steps between progress-bar updates of the running loss
    checkpoint_every: Optional[int] = 1000  # steps between resumable checkpoints (also at every epoch end); None: epoch ends only
    on_nonfinite: str = "stop"  # a NaN/inf loss or gradient: stop (naming the step) | skip the step
    tensorboard: Union[bool, str] = "auto"  # scalars to RUN_DIR/tensorboard: auto (when installed) | true | false


@dataclass
class Config:
    """Everything a run needs; saved as config.yaml in the run directory."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 13
    output_dir: Optional[str] = None  # the run directory (config, tokenizer, labels, weights, metrics); None: runs/<cell>-<time>

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


# Valid choices per dotted key: checked on load and on every override.
CHOICES: dict[str, tuple[str, ...]] = {
    "model.cell": CELLS,
    "model.nonlinearity": NONLINEARITIES,
    "model.pooling": POOLINGS,
    "model.head_activation": ACTIVATIONS,
    "model.recurrence": RECURRENCES,
    "tokenizer.kind": TOKENIZER_KINDS,
    "tokenizer.normalization": NORMALIZATIONS,
    "tokenizer.truncation_side": TRUNCATION_SIDES,
    "train.schedule": SCHEDULES,
    "train.monitor": MONITORS,
    "train.sampler": SAMPLERS,
    "train.precision": PRECISIONS,
    "train.bucketing": BUCKETINGS,
    "train.on_nonfinite": ON_NONFINITE,
}

# (dotted key, lowest allowed value, whether the lowest is excluded)
_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    ("tokenizer.vocab_size", 3, False),
    ("tokenizer.min_frequency", 1, False),
    ("tokenizer.max_length", 1, False),
    ("model.embedding_dim", 1, False),
    ("model.hidden_size", 1, False),
    ("model.num_layers", 1, False),
    ("model.head_hidden_size", 0, False),
    ("train.epochs", 1, False),
    ("train.batch_size", 1, False),
    ("train.eval_batch_size", 1, False),
    ("train.lr", 0, True),
    ("train.weight_decay", 0, False),
    ("train.plateau_patience", 0, False),
    ("train.bucket_pool", 1, False),
    ("train.log_every", 1, False),
    ("train.checkpoint_every", 1, False),
    ("train.max_grad_norm", 0, True),
    ("train.patience", 1, False),
    ("train.num_threads", 1, False),
    ("data.max_train_samples", 1, False),
    ("data.streaming_sample", 1, False),
    ("data.shuffle_buffer", 1, False),
    ("data.streaming_validation_size", 1, False),
    ("data.streaming_size", 1, False),
)
_FRACTIONS = (
    "model.dropout",
    "model.embedding_dropout",
    "train.warmup_ratio",
    "train.label_smoothing",
    "data.validation_size",
    "data.test_size",
)


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    updates: Optional[Mapping[str, Any]] = None,
    base: Optional[Config] = None,
) -> Config:
    """Build a validated Config: ``base`` (default: the defaults) or the YAML/JSON file at ``path``, then overrides.

    ``overrides`` are ``"section.key=value"`` strings whose values are parsed as YAML (``true``, ``3``,
    ``[a, b]``, ``null``); ``updates`` maps dotted keys to already-typed values and is applied last.
    """
    if base is not None and path is not None:
        raise ConfigError("give a base config or a config file, not both")
    config = copy.deepcopy(base) if base is not None else config_from_dict(read_config_file(path) if path else {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        set_value(config, key.strip(), _parse_override(config, key.strip(), value))
    for key, value in (updates or {}).items():
        set_value(config, key, value)
    validate(config)
    return config


def _parse_override(config: Config, dotted: str, text: str) -> Any:
    """Parse an override's value as YAML, except that a text field keeps its literal text ("1.10" stays "1.10")."""
    try:
        parsed = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text  # not YAML: take it as a plain string
    if parsed is not None and not isinstance(parsed, (str, list, dict)) and _is_text_field(config, dotted):
        return text.strip()
    return parsed


def _is_text_field(config: Config, dotted: str) -> bool:
    """A str or Optional[str] field; a Union such as bool | str keeps YAML's parse (true is a bool there)."""
    *sections, name = dotted.split(".")
    target: Any = config
    for section in sections:
        target = getattr(target, section, None)
    if not dataclasses.is_dataclass(target):
        return False
    tp = _hints(type(target)).get(name)
    union = typing.get_origin(tp) in (Union, types.UnionType)
    return tp is str or (union and {a for a in typing.get_args(tp) if a is not type(None)} == {str})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file with a safe loader (no code execution)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML/JSON: {exc}".splitlines()[0]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(raw).__name__}")
    return raw


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Turn nested plain data into a Config, rejecting unknown keys and ill-typed values."""
    config = _build(Config, raw, prefix="")
    validate(config)
    return config


def set_value(config: Config, dotted: str, value: Any) -> None:
    """Set one dotted key (``model.cell``) on a Config, coercing the value to the field's type."""
    target: Any = config
    parts = dotted.split(".")
    for depth, name in enumerate(parts):
        prefix = ".".join(parts[:depth])
        hints = _hints(type(target))
        if name not in hints:
            raise ConfigError(_unknown_key(prefix, name, hints))
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(hints[name]):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{dotted}: a section needs a mapping, got {value!r}")
                setattr(target, name, _build(hints[name], value, prefix=dotted))
            else:
                setattr(target, name, _coerce(hints[name], value, dotted))
            return
        target = getattr(target, name)
        if not dataclasses.is_dataclass(target):
            raise ConfigError(f"{'.'.join(parts[: depth + 1])} is a value, not a section")


def validate(config: Config) -> None:
    """Check choices and ranges; every error names the key and what is allowed."""
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
    if config.data.dataset is not None and config.data.dataset.startswith("synthetic:"):
        _validate_synthetic(config)
    _validate_class_weights(config.train.class_weights)
    _validate_vectors(config.model)
    if config.train.tensorboard not in (True, False, "auto"):
        raise ConfigError(f"train.tensorboard: {config.train.tensorboard!r} is not one of auto, true, false")
    if config.train.sampler == "weighted" and config.data.multi_label:
        raise ConfigError("train.sampler: weighted draws by the class of an example, so it needs single-label "
                          "data; with data.multi_label use train.class_weights (pos_weight) instead")
    if config.train.sampler == "weighted" and config.train.bucketing == "exact":
        raise ConfigError("train.sampler: weighted draws examples with replacement, which train.bucketing: exact "
                          "cannot cut into equal-length batches; use train.bucketing: pool")
    if config.train.bucketing == "exact" and config.data.streaming:
        raise ConfigError("train.bucketing: exact needs every training length up front; a stream (data.streaming) is "
                          "bucketed in pools: use train.bucketing: pool")
    if config.train.sampler == "weighted" and config.data.streaming:
        raise ConfigError("train.sampler: weighted needs the whole training split's labels; it cannot read a stream "
                          "(data.streaming); use train.class_weights instead")


def _validate_class_weights(value: Any) -> None:
    """``none``/``auto`` or a list of positive numbers; its length is checked against the labels at training."""
    if value is None or (isinstance(value, str) and value in CLASS_WEIGHTS):
        return
    if isinstance(value, list) and value and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0 for w in value
    ):
        return
    raise ConfigError(
        f"train.class_weights: {value!r} is not one of none, auto, or a list of positive numbers, one per label"
    )



def _validate_vectors(cfg: ModelConfig) -> None:
    """Freezing takes a bool or an epoch count; a named source's dimension is known without reading a file."""
    freeze = cfg.freeze_embeddings
    if not isinstance(freeze, bool) and freeze < 0:
        raise ConfigError(f"model.freeze_embeddings: {freeze!r} must be true, false or a number of epochs >= 0")
    source = cfg.pretrained_vectors
    if source is None:
        return
    if not source.strip():
        raise ConfigError("model.pretrained_vectors: give a vectors file or a named source, or null for none")
    from seqnlp.training.vectors import NAMED_SOURCES  # only for configs that ask for vectors

    named = NAMED_SOURCES.get(source)
    if named is not None and named.dim != cfg.embedding_dim:
        raise ConfigError(
            f"model.embedding_dim={cfg.embedding_dim} does not match {source}'s {named.dim}-dimensional vectors; "
            f"set model.embedding_dim={named.dim}"
        )


def _validate_synthetic(config: Config) -> None:
    """A synthetic task's spec must parse, and its texts must fit: truncation would change the task."""
    from seqnlp.data import synthetic  # imports datasets: only for configs that name a synthetic task

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


def get_value(config: Config, dotted: str) -> Any:
    value: Any = config
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown_key(prefix: str, name: str, hints: Mapping[str, Any]) -> str:
    where = f"{prefix}.{name}" if prefix else name
    return f"unknown config key {where!r}; valid keys{' in ' + prefix if prefix else ''}: {', '.join(hints)}"


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {raw!r}")
    hints = _hints(cls)
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in hints:
            raise ConfigError(_unknown_key(prefix, str(name), hints))
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], value if value is not None else {}, key)
        else:
            kwargs[name] = _coerce(hints[name], value, key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Coerce a parsed value to a field type, or raise a ConfigError naming the key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(inner[0], value, key)
        for option in inner:  # e.g. bool | int: the first type that takes the value as it is
            try:
                return _coerce(option, value, key)
            except ConfigError:
                pass
        names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
        raise ConfigError(f"{key}: expected {' or '.join(names.get(a, str(a)) for a in inner)}, got {value!r}")
    if tp is Any:
        return value
    if origin is list:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(args[0], v, key) for v in value] if args else list(value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover - a bug in the dataclasses above
