"""One typed dataclass tree for every setting: YAML/JSON in, dotted overrides, validation.

A config is plain data: loaded from a file, overridden with ``section.key=value`` strings and typed updates,
validated once as a whole (errors name the key and the valid choices, which are the fields' ``Literal`` types)
and saved with every run, so a run directory says how it was made. Checks that need files or optional
packages (vectors, synthetic tasks, tensorboard) run once per run in ``seqnlp.training.run.preflight``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Union

import yaml

from seqnlp.errors import ConfigError


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
    label_column: str = "label"  # the column holding the label (a list of labels with multi_label)
    label_names: Optional[list[str]] = None  # names for integer labels 0..C-1 (ClassLabel names are used when present)
    multi_label: bool = False  # the label column holds lists of labels (a sigmoid per label; see README "Multi-label")
    train_split: str = "train"  # the split trained on
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

    kind: Literal["word", "bpe", "wordpiece", "unigram", "char"] = "word"  # word | bpe | wordpiece | unigram | char
    path: Optional[str] = None  # an existing tokenizer.json to load instead of training one
    vocab_size: int = 30000  # upper bound on the vocabulary, special tokens included
    min_frequency: int = 2  # tokens seen fewer times in train map to [UNK] (word, bpe, wordpiece)
    lowercase: bool = True  # lowercase every text before tokenizing
    normalization: Literal["none", "nfc", "nfd", "nfkc", "nfkd"] = "nfkc"  # unicode normalization: none | nfc | nfd | nfkc | nfkd
    strip_accents: bool = False  # drop combining accents after normalization
    max_length: int = 256  # tokens kept per text; longer texts are truncated
    truncation_side: Literal["right", "left"] = "right"  # right keeps the beginning of a text, left keeps its end


@dataclass
class ModelConfig:
    """Embedding -> recurrent encoder -> pooling -> classifier head."""

    cell: Literal["rnn", "lstm", "gru"] = "lstm"  # rnn | lstm | gru
    nonlinearity: Literal["tanh", "relu"] = "tanh"  # for cell=rnn only: tanh | relu
    embedding_dim: int = 128  # width of the token embedding
    hidden_size: int = 128  # per direction
    num_layers: int = 1  # stacked recurrent layers
    bidirectional: bool = True  # also read every text right to left
    dropout: float = 0.3  # between stacked RNN layers (only when num_layers > 1) and before the head
    embedding_dropout: float = 0.2  # on the embedded tokens
    pooling: Literal["last", "mean", "max", "attention"] = "max"  # over real tokens only: last | mean | max | attention
    head_hidden_size: int = 0  # 0: a single linear layer; >0: one hidden layer of this width
    head_activation: Literal["relu", "tanh", "gelu"] = "relu"  # for the head's hidden layer: relu | tanh | gelu
    # How batches of mixed lengths run; every choice gives the same results, only speed differs.
    # auto: masked on the CPU when a batch has little padding or is long, packed otherwise and on CUDA.
    recurrence: Literal["auto", "masked", "packed"] = "auto"  # auto | masked | packed
    # Initial embedding rows from a GloVe/word2vec/fastText text file (.txt, .vec, .gz) or a named source
    # (glove-6b-50d); embedding_dim must equal the vectors' dimension. None: random initialization.
    pretrained_vectors: Optional[str] = None  # a vectors file or a named source; None: random initialization
    freeze_embeddings: Union[bool, int] = False  # false: fine-tuned; true: frozen; N: frozen for epochs 1..N, then fine-tuned


@dataclass
class TrainConfig:
    """The optimization loop: AdamW, schedule, clipping, early stopping, precision, device."""

    epochs: int = 10  # passes over the training split (early stopping can end a run sooner)
    batch_size: int = 64  # examples per training step (per process under torchrun)
    eval_batch_size: int = 256  # examples per evaluation batch
    lr: float = 2e-3  # AdamW's peak learning rate
    weight_decay: float = 0.01  # AdamW's decoupled weight decay, on matrices only
    schedule: Literal["constant", "linear", "cosine", "plateau"] = "linear"  # constant | linear | cosine (each after warm-up) | plateau (reduce on plateau)
    warmup_ratio: float = 0.05  # fraction of all steps spent warming the learning rate up from 0
    plateau_factor: float = 0.5  # schedule=plateau: lr multiplier when the monitored metric stalls
    plateau_patience: int = 1  # schedule=plateau: epochs without improvement before the lr drops
    max_grad_norm: Optional[float] = 1.0  # gradient-norm clipping; None disables it
    label_smoothing: float = 0.0  # cross-entropy label smoothing (single-label)
    monitor: Literal["auto", "loss", "accuracy", "macro_f1"] = "auto"  # validation metric that picks the best epoch and drives early stopping; auto: see README
    class_weights: Any = None  # None/"none" | "auto" (inverse label frequency in train) | a list, one weight per label
    sampler: Literal["bucket", "weighted"] = "bucket"  # bucket: every example once per epoch | weighted: draws inverse to class frequency
    patience: Optional[int] = 3  # epochs without improvement before stopping; None trains every epoch
    bucketing: Literal["exact", "pool"] = "pool"  # pool: shuffled pools sorted by length | exact: batches of one length where possible
    bucket_pool: int = 50  # bucketing=pool (and streaming): batches per length-sorting pool
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # fp32 | bf16 (autocast, CPU or CUDA) | fp16 (autocast + grad scaling, CUDA)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: Optional[int] = None  # torch intra-op threads; None keeps torch's default
    log_every: int = 50  # steps between progress-bar updates of the running loss
    checkpoint_every: Optional[int] = 1000  # steps between resumable checkpoints (also at every epoch end); None: epoch ends only
    on_nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/inf loss or gradient: stop (naming the step) | skip the step
    tensorboard: Union[bool, Literal["auto"]] = "auto"  # scalars to RUN_DIR/tensorboard: auto (when installed) | true | false


@dataclass
class Config:
    """Everything a run needs; saved as config.yaml in the run directory."""

    data: DataConfig = field(default_factory=DataConfig)  # the examples
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # text -> ids
    model: ModelConfig = field(default_factory=ModelConfig)  # ids -> logits
    train: TrainConfig = field(default_factory=TrainConfig)  # the optimization loop
    seed: int = 13  # seeds data splits, batch order, initialization and dropout
    output_dir: Optional[str] = None  # the run directory (config, tokenizer, labels, weights, metrics); None: runs/<cell>-<time>

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


_hints: Callable[[type], dict[str, Any]] = functools.cache(typing.get_type_hints)  # field name -> type, per class


def _literal_fields(cls: type, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Dotted key -> choices, for every field typed ``Literal[...]`` (sections searched recursively)."""
    found: dict[str, tuple[str, ...]] = {}
    for name, tp in _hints(cls).items():
        if dataclasses.is_dataclass(tp):
            found.update(_literal_fields(tp, f"{prefix}{name}."))
        elif typing.get_origin(tp) is Literal:
            found[f"{prefix}{name}"] = typing.get_args(tp)
    return found


# Valid choices per dotted key, read from the Literal types above; checked by validate().
CHOICES: dict[str, tuple[str, ...]] = _literal_fields(Config)
CELLS, NONLINEARITIES, POOLINGS = CHOICES["model.cell"], CHOICES["model.nonlinearity"], CHOICES["model.pooling"]
RECURRENCES, ACTIVATIONS = CHOICES["model.recurrence"], CHOICES["model.head_activation"]
TOKENIZER_KINDS, NORMALIZATIONS = CHOICES["tokenizer.kind"], CHOICES["tokenizer.normalization"]
TRUNCATION_SIDES, SCHEDULES, MONITORS = CHOICES["tokenizer.truncation_side"], CHOICES["train.schedule"], CHOICES["train.monitor"]
SAMPLERS, PRECISIONS, BUCKETINGS = CHOICES["train.sampler"], CHOICES["train.precision"], CHOICES["train.bucketing"]
ON_NONFINITE = CHOICES["train.on_nonfinite"]
CLASS_WEIGHTS = ("none", "auto")  # train.class_weights also takes a list of numbers: checked by hand

# (dotted key, lowest allowed value, whether the lowest is excluded); None always passes
_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    *((key, 1, False) for key in (
        "tokenizer.min_frequency", "tokenizer.max_length", "model.embedding_dim", "model.hidden_size",
        "model.num_layers", "train.epochs", "train.batch_size", "train.eval_batch_size", "train.bucket_pool",
        "train.log_every", "train.checkpoint_every", "train.patience", "train.num_threads", "data.max_train_samples",
        "data.streaming_sample", "data.shuffle_buffer", "data.streaming_validation_size", "data.streaming_size")),
    ("tokenizer.vocab_size", 3, False), ("model.head_hidden_size", 0, False), ("train.weight_decay", 0, False),
    ("train.plateau_patience", 0, False), ("train.lr", 0, True), ("train.max_grad_norm", 0, True),
)
_FRACTIONS = ("model.dropout", "model.embedding_dropout", "train.warmup_ratio", "train.label_smoothing",
              "data.validation_size", "data.test_size")


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (),
                updates: Optional[Mapping[str, Any]] = None, base: Optional[Config] = None) -> Config:
    """Build a validated Config: ``base`` (default: the defaults) or the YAML/JSON file at ``path``, then overrides.

    ``overrides`` are ``"section.key=value"`` strings whose values are parsed as YAML (``true``, ``3``,
    ``[a, b]``, ``null``); ``updates`` maps dotted keys to already-typed values and is applied last. Values
    are type-checked as they are set, but the whole is validated once, at the end: an override can repair a
    file (``--set data.streaming=false`` for a file that combines streaming with the weighted sampler).
    """
    if base is not None and path is not None:
        raise ConfigError("give a base config or a config file, not both")
    config = copy.deepcopy(base) if base is not None else _build(Config, read_config_file(path) if path else {}, "")
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
    """Parse an override's value as YAML, except that a text field (str, Optional[str], Literal) keeps its literal
    text: "1.10" stays "1.10". A Union such as bool | str keeps YAML's parse (true is a bool there)."""
    try:
        parsed = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text  # not YAML: take it as a plain string
    *sections, name = dotted.split(".")
    target: Any = config
    for section in sections:
        target = getattr(target, section, None)
    tp = _hints(type(target)).get(name) if dataclasses.is_dataclass(target) else None
    union = typing.get_origin(tp) in (Union, types.UnionType)
    options = [a for a in typing.get_args(tp) if a is not type(None)] if union else [tp]
    text_field = len(options) == 1 and (options[0] is str or typing.get_origin(options[0]) is Literal)
    return text.strip() if text_field and parsed is not None and not isinstance(parsed, (str, list, dict)) else parsed


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
    """Turn nested plain data (a saved config) into a validated Config, rejecting unknown keys and bad values."""
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


def get_value(config: Config, dotted: str) -> Any:
    value: Any = config
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


def _unknown_key(prefix: str, name: str, hints: Mapping[str, Any]) -> str:
    where = f"{prefix}.{name}" if prefix else name
    return f"unknown config key {where!r}; valid keys{' in ' + prefix if prefix else ''}: {', '.join(hints)}"


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    """A dataclass from plain data: unknown keys and ill-typed values are errors; nothing else is checked yet."""
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


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Coerce a parsed value to a field type, or raise a ConfigError naming the key.

    A ``Literal`` field takes any string here; whether it is one of the choices is validate()'s business.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return _coerce_union(args, value, key)
    if tp is Any:
        return value
    if origin is Literal:
        return _coerce(str, value, key)
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
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and not isinstance(value, bool):
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
    if tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)  # YAML 1.1 reads "1e-3" as a string
        except ValueError:
            pass
    if tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    if tp in _TYPE_NAMES:
        raise ConfigError(f"{key}: expected {_TYPE_NAMES[tp]}, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover - a bug in the dataclasses above


def _coerce_union(args: tuple[Any, ...], value: Any, key: str) -> Any:
    """Optional[X] takes None or an X; a Union such as bool | int, the first type that takes the value as it is."""
    if value is None and type(None) in args:
        return None
    inner = [a for a in args if a is not type(None)]
    if len(inner) == 1:
        return _coerce(inner[0], value, key)
    for option in inner:
        try:
            return _coerce(option, value, key)
        except ConfigError:
            pass
    names = [_TYPE_NAMES.get(str if typing.get_origin(a) is Literal else a, str(a)) for a in inner]
    raise ConfigError(f"{key}: expected {' or '.join(names)}, got {value!r}")
