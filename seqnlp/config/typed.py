"""Plain data <-> typed dataclasses: build a section from a mapping, coerce a value to its field's type, set and get
dotted keys. Unknown keys and ill-typed values are ConfigErrors naming the key and what is allowed; nothing here
knows which settings exist (that is ``seqnlp.config.schema``).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Callable, Literal, Mapping, Union

from seqnlp.errors import ConfigError


field_types: Callable[[type], dict[str, Any]] = functools.cache(typing.get_type_hints)  # field name -> type, per class


def literal_fields(cls: type, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Dotted key -> choices, for every field typed ``Literal[...]`` (sections searched recursively)."""
    found: dict[str, tuple[str, ...]] = {}
    for name, tp in field_types(cls).items():
        if dataclasses.is_dataclass(tp):
            found.update(literal_fields(tp, f"{prefix}{name}."))
        elif typing.get_origin(tp) is Literal:
            found[f"{prefix}{name}"] = typing.get_args(tp)
    return found


def set_value(config: Any, dotted: str, value: Any) -> None:
    """Set one dotted key (``model.cell``) on a Config, coercing the value to the field's type."""
    target: Any = config
    parts = dotted.split(".")
    for depth, name in enumerate(parts):
        prefix = ".".join(parts[:depth])
        hints = field_types(type(target))
        if name not in hints:
            raise ConfigError(_unknown_key(prefix, name, hints))
        if depth < len(parts) - 1 and typing.get_origin(hints[name]) is dict:
            _set_item(target, name, parts[depth + 1:], value, dotted)
            return
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(hints[name]):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{dotted}: a section needs a mapping, got {value!r}")
                setattr(target, name, build(hints[name], value, prefix=dotted))
            else:
                setattr(target, name, _coerce(hints[name], value, dotted))
            return
        target = getattr(target, name)
        if not dataclasses.is_dataclass(target):
            raise ConfigError(f"{'.'.join(parts[: depth + 1])} is a value, not a section")


def _set_item(section: Any, name: str, keys: list[str], value: Any, dotted: str) -> None:
    """Set one entry inside a mapping field: ``data.load_kwargs.delimiter`` or ``data.data_files.train``.

    The mapping's other entries are kept; a deeper key (``a.b.c``) walks nested mappings, making them as needed.
    """
    mapping = dict(getattr(section, name))
    inner = mapping
    for key in keys[:-1]:
        child = inner.get(key)
        if child is None:
            child = inner[key] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {key!r} holds {child!r}, not a mapping")
        else:
            child = inner[key] = dict(child)
        inner = child
    inner[keys[-1]] = value
    setattr(section, name, mapping)


def get_value(config: Any, dotted: str) -> Any:
    value: Any = config
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


def _unknown_key(prefix: str, name: str, hints: Mapping[str, Any]) -> str:
    where = f"{prefix}.{name}" if prefix else name
    return f"unknown config key {where!r}; valid keys{' in ' + prefix if prefix else ''}: {', '.join(hints)}"


def build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    """A dataclass from plain data: unknown keys and ill-typed values are errors; nothing else is checked yet."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {raw!r}")
    hints = field_types(cls)
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in hints:
            raise ConfigError(_unknown_key(prefix, str(name), hints))
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = build(hints[name], value if value is not None else {}, key)
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
