"""Synthetic long-range tasks, as ordinary ``datasets.DatasetDict``s with ``text`` and ``label`` columns.

They make the vanishing gradient measurable: the distance a model must carry information over is a knob.
Each task is named by a spec string that works wherever a dataset name does (``data.dataset``, ``--dataset``)::

    synthetic:marker?distance=50              the label is a marker token followed by 50 distractor tokens
    synthetic:parity?length=12                the label is the parity of the number of 1s among 12 bits

Generation is deterministic: the same spec gives the same texts on every machine, independent of the run's
``seed`` (which drives initialization and batch order), so runs with different seeds see the same data.
Every split (train, validation, test) is generated, so none is carved from train.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from seqnlp.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX = "synthetic:"
SPLITS = ("train", "validation", "test")
_SPLIT_DEFAULTS = {"train": 2000, "validation": 500, "test": 500, "seed": 0}


@dataclass(frozen=True)
class Task:
    """A generator and its integer parameters (defaults and lowest allowed values)."""

    generate: Callable[[np.random.Generator, int, dict[str, int]], tuple[list[str], list[int]]]
    defaults: dict[str, int]
    minimums: dict[str, int]
    label_names: Callable[[dict[str, int]], list[str]]
    max_tokens: Callable[[dict[str, int]], int]  # the longest text, in whitespace-separated tokens
    summary: str


def _marker(rng: np.random.Generator, n: int, p: dict[str, int]) -> tuple[list[str], list[int]]:
    """``[prefix distractors] x<label> [distance distractors]``: the marker must be remembered over ``distance``."""
    labels = rng.integers(0, p["classes"], size=n)
    before = rng.integers(0, p["prefix"] + 1, size=n)  # varying position from the start, fixed from the end
    texts = []
    for label, count in zip(labels, before):
        noise = rng.integers(0, p["vocab"], size=count + p["distance"])
        words = [f"d{w}" for w in noise]
        words.insert(int(count), f"x{label}")
        texts.append(" ".join(words))
    return texts, labels.tolist()


def _parity(rng: np.random.Generator, n: int, p: dict[str, int]) -> tuple[list[str], list[int]]:
    """``length`` bits; the label is whether the number of 1s is odd: every bit matters, from first to last."""
    bits = rng.integers(0, 2, size=(n, p["length"]))  # [N, L]
    texts = [" ".join(map(str, row)) for row in bits]
    return texts, (bits.sum(axis=1) % 2).tolist()


TASKS: dict[str, Task] = {
    "marker": Task(
        generate=_marker,
        defaults={"distance": 20, "prefix": 10, "classes": 2, "vocab": 20, **_SPLIT_DEFAULTS},
        minimums={"distance": 0, "prefix": 0, "classes": 2, "vocab": 1},
        label_names=lambda p: [f"x{i}" for i in range(p["classes"])],
        max_tokens=lambda p: p["prefix"] + 1 + p["distance"],
        summary="a marker token x<label> sits `distance` distractors (d0..d<vocab-1>) before the end",
    ),
    "parity": Task(
        generate=_parity,
        defaults={"length": 10, **_SPLIT_DEFAULTS},
        minimums={"length": 1},
        label_names=lambda p: ["even", "odd"],
        max_tokens=lambda p: p["length"],
        summary="`length` bits (0/1); the label is the parity of the number of 1s",
    ),
}


def is_synthetic(name: str | None) -> bool:
    return name is not None and name.startswith(PREFIX)


def parse_spec(spec: str) -> tuple[str, dict[str, int]]:
    """``synthetic:TASK?key=value&...`` -> (task name, every parameter with defaults filled in).

    Errors name the spec, the bad part, and the valid choices.
    """
    if not is_synthetic(spec):
        raise ConfigError(f"data.dataset: {spec!r} does not start with {PREFIX!r}")
    name, _, query = spec[len(PREFIX):].partition("?")
    if name not in TASKS:
        raise ConfigError(f"data.dataset: synthetic task {name!r} is not one of {', '.join(TASKS)}")
    task = TASKS[name]
    params = dict(task.defaults)
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key not in params:
            raise ConfigError(f"data.dataset: {key!r} is not a parameter of synthetic:{name}; "
                              f"parameters: {', '.join(params)}")
        try:
            params[key] = int(value)
        except ValueError:
            raise ConfigError(f"data.dataset: synthetic:{name} parameter {key}={value!r} is not an integer") from None
    lows = {**task.minimums, "train": 1, "validation": 1, "test": 1, "seed": 0}
    for key, low in lows.items():
        if params[key] < low:
            raise ConfigError(f"data.dataset: synthetic:{name} parameter {key}={params[key]} must be >= {low}")
    return name, params


def max_tokens(spec: str) -> int:
    """The longest text of a spec's task, in words (what the word tokenizer makes of it)."""
    name, params = parse_spec(spec)
    return TASKS[name].max_tokens(params)


def load(spec: str) -> DatasetDict:
    """Generate the task a spec names: train, validation and test splits."""
    name, params = parse_spec(spec)
    return make(name, **params)


def make(task: str, **params: int) -> DatasetDict:
    """Generate a synthetic task from keyword parameters: ``make("marker", distance=50)``."""
    spec = f"{PREFIX}{task}" + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
    name, full = parse_spec(spec)
    definition = TASKS[name]
    features = Features({"text": Value("string"), "label": ClassLabel(names=definition.label_names(full))})
    splits = {}
    for index, split in enumerate(SPLITS):
        # One stream per split: a split's examples do not change when another split's size does.
        rng = np.random.default_rng([full["seed"], index])
        texts, labels = definition.generate(rng, full[split], full)
        splits[split] = Dataset.from_dict({"text": texts, "label": labels}, features=features)
    log.info("generated synthetic:%s (%s)", name, ", ".join(f"{k}={v}" for k, v in full.items()))
    return DatasetDict(splits)
