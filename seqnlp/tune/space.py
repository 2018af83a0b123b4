"""The search space: which dotted config keys ``seqnlp tune`` varies, and over which values.

A space maps a dotted key (the same keys as ``--set``) to a ``Choice`` (a list of values) or a ``Range`` (low,
high, and a log scale or a step). In YAML::

    model.cell: [lstm, gru]                          # a list: a categorical choice
    model.hidden_size: {low: 64, high: 512, log: true}   # an int range (the key is an int), on a log scale
    model.dropout: {low: 0.0, high: 0.5, step: 0.1}  # a float range in steps of 0.1
    model.pooling: null                              # not searched: the config's own value

A file is laid over ``default_space`` (``defaults: false`` starts from nothing instead). Every key, value and
bound is checked against the base config before any trial runs: an unknown key, a choice or a bound the config
rejects, an empty space are one-line ``ConfigError``s naming the file and the key. Nothing here imports torch
or Optuna; ``sample`` takes an Optuna trial.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

from seqnlp.config import Config, load_config
from seqnlp.config.typed import field_types, get_value
from seqnlp.errors import ConfigError

SCALARS = (bool, int, float, str, type(None))  # what Optuna can store as a categorical choice
RANGE_KEYS = ("low", "high", "log", "step")
DEFAULTS_KEY = "defaults"  # the one top-level key of a space file that is not a config key
NOT_SEARCHABLE = ("output_dir",)  # set by tune itself


@dataclass(frozen=True)
class Choice:
    """A categorical parameter: one of ``values``."""

    values: tuple[Any, ...]

    def to_data(self) -> list[Any]:
        return list(self.values)


@dataclass(frozen=True)
class Range:
    """An int or float parameter in [low, high], on a log scale or in steps of ``step``."""

    kind: type  # int or float: the config field's type
    low: float
    high: float
    log: bool = False
    step: Optional[float] = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            data["log"] = True
        if self.step is not None:
            data["step"] = self.step
        return data


Param = Union[Choice, Range]


@dataclass(frozen=True)
class SearchSpace:
    """Dotted config key -> ``Choice`` or ``Range``, in the order trials sample them."""

    params: dict[str, Param]

    def to_data(self) -> dict[str, Any]:
        """Plain data (what a space file holds), for the study's record and equality checks."""
        return {key: param.to_data() for key, param in self.params.items()}

    def sample(self, trial: Any) -> dict[str, Any]:
        """One value per key, suggested by an Optuna ``trial`` (its params are named by the dotted keys)."""
        values: dict[str, Any] = {}
        for key, param in self.params.items():
            if isinstance(param, Choice):
                values[key] = trial.suggest_categorical(key, list(param.values))
            elif param.kind is int:
                values[key] = trial.suggest_int(key, int(param.low), int(param.high), log=param.log,
                                                step=int(param.step or 1))
            else:
                values[key] = trial.suggest_float(key, param.low, param.high, log=param.log, step=param.step)
        return values

    def values_of(self, config: Config) -> Optional[dict[str, Any]]:
        """``config``'s own value of every key, when each lies inside the space (None otherwise): the study's
        first trial, so the search starts from the config it was given and is never worse on validation."""
        values = {key: get_value(config, key) for key in self.params}
        if all(_inside(self.params[key], value) for key, value in values.items()):
            return values
        return None

    def cheapest(self) -> dict[str, Any]:
        """The values of the smallest, fastest model the space holds: every range's low end; among choices, the
        smallest number, ``False`` (no second direction), or else the first (cells are listed rnn first)."""
        values: dict[str, Any] = {}
        for key, param in self.params.items():
            if isinstance(param, Range):
                values[key] = param.kind(param.low)
            elif False in param.values:
                values[key] = False
            elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in param.values):
                values[key] = min(param.values)
            else:
                values[key] = param.values[0]
        return values


def default_space(base: Config) -> SearchSpace:
    """The space searched when no file says otherwise: the settings that matter most for an RNN classifier.

    It is sized for trials that take minutes on a CPU: up to 2 layers of 256 units (a space file widens it).
    ``tokenizer.max_length`` is searched around the base config's own value (half, as is, double), since what
    is long depends on the data; ``char`` tokenizers are left out, since their max_length counts characters.
    """
    length = base.tokenizer.max_length
    lengths = tuple(sorted({max(8, length // 2), length, length * 2}))
    return SearchSpace({
        "model.cell": Choice(("rnn", "lstm", "gru")),
        "model.hidden_size": Range(int, 32, 256, log=True),
        "model.num_layers": Range(int, 1, 2),
        "model.bidirectional": Choice((True, False)),
        "model.pooling": Choice(("last", "mean", "max", "attention")),
        "train.lr": Range(float, 3e-4, 1e-2, log=True),
        "model.dropout": Range(float, 0.0, 0.6),
        "model.embedding_dropout": Range(float, 0.0, 0.5),
        "train.weight_decay": Range(float, 1e-6, 0.1, log=True),
        "tokenizer.max_length": Choice(lengths),
        "tokenizer.kind": Choice(("word", "bpe", "unigram")),
        "tokenizer.vocab_size": Range(int, 2000, 50000, log=True),
    })


def load_space(path: Optional[str | Path], base: Config) -> SearchSpace:
    """The default space with a YAML file laid over it (None: the default alone), checked against ``base``."""
    if path is None:
        return check_space(default_space(base), base, "the default search space")
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"search space file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"search space file {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"search space file {path} is not valid YAML: {exc}".splitlines()[0]) from None
    return space_from_data(raw, base, str(path))


def space_from_data(raw: Any, base: Config, where: str = "search space") -> SearchSpace:
    """A space from plain data (a parsed space file, or a study's record of its space), checked against ``base``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of dotted config keys to choices or ranges, "
                          f"got {type(raw).__name__}")
    raw = dict(raw)
    use_defaults = raw.pop(DEFAULTS_KEY, True)
    if not isinstance(use_defaults, bool):
        raise ConfigError(f"{where}: {DEFAULTS_KEY}: expected true or false, got {use_defaults!r}")
    params: dict[str, Param] = dict(default_space(base).params) if use_defaults else {}
    for key, value in raw.items():
        key = str(key)
        if value is None:
            params.pop(key, None)
        else:
            params[key] = _param(key, value, base, where)
    return check_space(SearchSpace(params), base, where)


def check_space(space: SearchSpace, base: Config, where: str) -> SearchSpace:
    """Every key must be a config key and every choice and bound a value the config accepts; the space must
    vary something."""
    if not space.params:
        raise ConfigError(f"{where}: the search space is empty; name at least one key to search, e.g. "
                          "model.hidden_size: {low: 64, high: 512, log: true}")
    for key, param in space.params.items():
        extremes = param.values if isinstance(param, Choice) else (param.kind(param.low), param.kind(param.high))
        for value in extremes:
            try:
                load_config(base=base, updates={key: value})
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
    return space


def _inside(param: Param, value: Any) -> bool:
    """Whether ``value`` is one the space can propose (true is not 1 here, as it is in Python)."""
    if isinstance(param, Choice):
        return any(value == choice and isinstance(value, bool) == isinstance(choice, bool) for choice in param.values)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not param.low <= value <= param.high:
        return False
    steps = (value - param.low) / param.step if param.step is not None else 0.0
    return abs(steps - round(steps)) < 1e-9


def _param(key: str, value: Any, base: Config, where: str) -> Param:
    """One entry of a space file: a list is a Choice, a mapping a Range; the key must name a setting."""
    if key in NOT_SEARCHABLE:
        raise ConfigError(f"{where}: {key} is set by tune itself and cannot be searched")
    kind = _field_type(key, base, where)
    if isinstance(value, list):
        return _choice(key, value, where)
    if isinstance(value, Mapping):
        return _range(key, dict(value), kind, where)
    raise ConfigError(f"{where}: {key}: give a list of choices, e.g. [64, 128], or a range, e.g. "
                      f"{{low: 64, high: 512, log: true}}; got {value!r}")


def _field_type(key: str, base: Config, where: str) -> Any:
    """The declared type of a dotted key's field; an unknown key names the valid ones, as --set does."""
    target: Any = base
    parts = key.split(".")
    for depth, name in enumerate(parts):
        hints = field_types(type(target))
        if name not in hints:
            section = ".".join(parts[:depth])
            raise ConfigError(f"{where}: unknown config key {key!r}; valid keys{' in ' + section if section else ''}: "
                              f"{', '.join(hints)}")
        if depth < len(parts) - 1:
            target = getattr(target, name)
            if not dataclasses.is_dataclass(target):
                raise ConfigError(f"{where}: {'.'.join(parts[:depth + 1])} is a value, not a section")
    if dataclasses.is_dataclass(hints[parts[-1]]):
        raise ConfigError(f"{where}: {key} is a section; search its keys ({key}.KEY)")
    return hints[parts[-1]]


def _choice(key: str, values: list[Any], where: str) -> Choice:
    if not values:
        raise ConfigError(f"{where}: {key}: the list of choices is empty")
    for value in values:
        if not isinstance(value, SCALARS):
            raise ConfigError(f"{where}: {key}: a choice must be a number, string, true/false or null, got {value!r}")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{where}: {key}: a choice is listed twice in {values}")
    return Choice(tuple(values))


def _range(key: str, spec: dict[str, Any], kind: Any, where: str) -> Range:
    """``{low, high, log, step}`` over an int or float field."""
    unknown = sorted(set(spec) - set(RANGE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: {key}: unknown range field {unknown[0]!r}; a range has {', '.join(RANGE_KEYS)}")
    number = _number_type(kind)
    if number is None:
        raise ConfigError(f"{where}: {key} is not a number; give its choices as a list")
    for name in ("low", "high"):
        bound = spec.get(name)
        if not _is_number(bound) or (number is int and float(bound) != int(bound)):
            what = "an integer" if number is int else "a number"
            raise ConfigError(f"{where}: {key}: {name} must be {what}, got {bound!r}")
    low, high = float(spec["low"]), float(spec["high"])
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: {key}: log must be true or false, got {log!r}")
    if not low < high:
        raise ConfigError(f"{where}: {key}: low ({spec['low']}) must be below high ({spec['high']})")
    if log and low <= 0:
        raise ConfigError(f"{where}: {key}: a log scale needs low > 0, got {spec['low']}")
    if step is not None:
        if log:
            raise ConfigError(f"{where}: {key}: give log or step, not both")
        if not _is_number(step) or step <= 0 or (number is int and float(step) != int(step)):
            raise ConfigError(f"{where}: {key}: step must be a positive {'integer' if number is int else 'number'}, "
                              f"got {step!r}")
        if abs((high - low) / step - round((high - low) / step)) > 1e-9:
            raise ConfigError(f"{where}: {key}: high - low ({high - low:g}) must be a whole number of steps of {step}")
        step = float(step)
    return Range(number, number(low), number(high), log, step)


def _number_type(tp: Any) -> Optional[type]:
    """int or float for a field typed int, float or Optional of one; None for anything else."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else None
    return tp if tp in (int, float) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
