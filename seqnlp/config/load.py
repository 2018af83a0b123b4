"""Configs in: a YAML/JSON file read with a safe loader, ``section.key=value`` overrides, typed updates; validated once."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Optional, Union

import yaml

from seqnlp.config import rules
from seqnlp.config.paths import FILE_FORMATS, resolve_paths
from seqnlp.config.schema import Config
from seqnlp.config.typed import build, field_types, set_value
from seqnlp.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; a larger file is not one
MAX_DEPTH = 32  # mappings and lists inside each other: a config has 2 or 3 levels, load_kwargs a few more
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML was built with it
log = logging.getLogger(__name__)



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
    config = copy.deepcopy(base) if base is not None else build(Config, read_config_file(path) if path else {}, "")
    if path:
        resolve_paths(config, Path(path).parent, origin=Path(path))
    file_data = copy.deepcopy(config.data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        set_value(config, key.strip(), _parse_override(config, key.strip(), value))
    for key, value in (updates or {}).items():
        set_value(config, key, value)
    if path:
        _files_replace_dataset(config, file_data, Path(path))
    rules.validate(config)
    return config


def _files_replace_dataset(config: Config, file_data: Any, path: Path) -> None:
    """Data files given on top of a config file that names a dataset (a recipe's Hub data set) replace it: the
    documented way to run a recipe on local copies (``--data-files train=... --data-files validation=...``)."""
    data = config.data
    named = file_data.dataset
    if (not data.data_files or data.data_files == file_data.data_files or named is None
            or named in FILE_FORMATS or data.dataset != named):
        return
    log.info("data files given: they replace data.dataset %r of %s", named, path)
    data.dataset, data.config_name, data.revision = None, None, None


def _parse_override(config: Config, dotted: str, text: str) -> Any:
    """Parse an override's value as YAML, except that a text field (str, Optional[str], Literal) keeps its literal
    text: "1.10" stays "1.10". A Union such as bool | str keeps YAML's parse (true is a bool there). Inside a
    mapping (``data.load_kwargs.delimiter=;``) one character that is not a letter or digit is itself (a tab too):
    YAML would read ``|`` or ``#`` as syntax."""
    if len(text) == 1 and not text.isalnum() and _inside_mapping(config, dotted):
        return text
    try:
        parsed = safe_yaml(text, f"--set {dotted}") if text.strip() else None
    except yaml.YAMLError:
        return text  # not YAML: take it as a plain string
    *sections, name = dotted.split(".")
    target: Any = config
    for section in sections:
        target = getattr(target, section, None)
    tp = field_types(type(target)).get(name) if dataclasses.is_dataclass(target) else None
    union = typing.get_origin(tp) in (Union, types.UnionType)
    options = [a for a in typing.get_args(tp) if a is not type(None)] if union else [tp]
    text_field = len(options) == 1 and (options[0] is str or typing.get_origin(options[0]) is Literal)
    return text.strip() if text_field and parsed is not None and not isinstance(parsed, (str, list, dict)) else parsed


def _inside_mapping(config: Config, dotted: str) -> bool:
    target: Any = config
    for name in dotted.split(".")[:-1]:
        if not dataclasses.is_dataclass(target):
            return False
        target = getattr(target, name, None)
    return isinstance(target, dict)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file with a safe loader (no code execution, no anchors or aliases, at most
    ``MAX_CONFIG_BYTES``): what it holds is plain data of the size of the file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is {path.stat().st_size:,} bytes; a config is at most "
                              f"{MAX_CONFIG_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else safe_yaml(text, f"config file {path}")
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML/JSON: {exc}".splitlines()[0]) from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply to be a config") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(raw).__name__}")
    return raw


def safe_yaml(text: str, source: str) -> Any:
    """YAML through the safe loader (libyaml's when installed), refusing anchors and aliases (``&a``, ``*a``: a few
    hundred bytes of nested aliases expand to gigabytes, an alias bomb) and nesting deeper than ``MAX_DEPTH`` (the
    pure-Python parser slows quadratically with depth). A config needs neither. Errors name ``source`` and the line."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            line = event.start_mark.line + 1
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
                raise ConfigError(f"{source}, line {line}: YAML anchors and aliases ({sign}{anchor}) are not allowed "
                                  "in a config; write the value out")
            depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
            if depth > MAX_DEPTH:
                raise ConfigError(f"{source}, line {line}: nested more than {MAX_DEPTH} deep, which no config is")
        return yaml.load(text, Loader=_LOADER)
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply to be a config") from None


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Turn nested plain data (a saved config) into a validated Config, rejecting unknown keys and bad values."""
    config = build(Config, raw, prefix="")
    rules.validate(config)
    return config
