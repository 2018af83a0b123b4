"""Where a run stands, as one typed object: what a checkpoint's state.json holds besides the tensors.

``TrainingState`` has the loop's counters, the running sums of the epoch in progress, the ``Monitor``'s state,
every process's RNG state, the grad scaler's state, the number of processes and the epoch history. With the
weights and the optimizer (``seqnlp.checkpoint`` keeps those in safetensors) it is enough to continue a run
exactly. ``to_json`` writes it; ``from_json`` reads it back and checks every key and type, so a damaged or
older state.json is a one-line ``CheckpointError`` naming the key, not a traceback halfway into a resume.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from seqnlp.errors import CheckpointError

VERSION = 3  # the state.json layout; 2 had no "terms"; 1 (no "version" key) was a hand-built dict


@dataclass
class MonitorState:
    """The monitored metric's bookkeeping (see ``schedule.Monitor``)."""

    best_score: Optional[float] = None  # the best validation score so far
    best_epoch: int = 0  # the epoch that scored it (0: none yet)
    bad_epochs: int = 0  # epochs since the score last improved (early stopping)
    plateau_bad: int = 0  # the same, reset at every learning-rate drop (schedule=plateau)
    plateau_scale: float = 1.0  # product of the plateau drops so far


@dataclass
class TrainingState:
    """Where the loop stands; with the weights and the optimizer, enough to continue exactly."""

    epoch: int = 1  # the epoch in progress (1-based)
    batch: int = 0  # batches of this epoch already trained on
    step: int = 0  # optimizer steps so far, skipped ones included
    skipped_steps: int = 0  # steps skipped for a non-finite loss or gradient
    finished: bool = False  # early stopping ended the run
    # Running sums of the epoch in progress, so its statistics survive an interruption.
    loss_sum: float = 0.0  # loss summed over the terms of finite steps
    terms: int = 0  # what the loss averages, over finite steps: examples (a language model: predicted tokens)
    examples: int = 0
    tokens: int = 0  # real tokens, padding excluded
    slots: int = 0  # token slots, padding included
    seconds: float = 0.0
    monitor: MonitorState = field(default_factory=MonitorState)
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per finished epoch (metrics.jsonl)
    # Captured when a checkpoint is saved:
    rng_by_rank: list[dict[str, Any]] = field(default_factory=list)  # Python/NumPy/torch RNG states, in rank order
    world_size: int = 1  # processes that trained the run (the global batch depends on it)
    scaler: dict[str, Any] = field(default_factory=dict)  # torch.amp.GradScaler state (empty unless fp16)

    def next_epoch(self) -> None:
        """Start the next epoch: its counters and running sums begin at zero."""
        self.epoch += 1
        self.batch, self.loss_sum, self.terms, self.examples = 0, 0.0, 0, 0
        self.tokens, self.slots, self.seconds = 0, 0, 0.0

    def to_json(self) -> dict[str, Any]:
        """The state as JSON-ready data: {"version", "loop", "monitor", "history", "rng_by_rank", ...}."""
        loop = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _SECTIONS}
        return {"version": VERSION, "loop": loop, "monitor": dataclasses.asdict(self.monitor),
                "history": self.history, "rng_by_rank": self.rng_by_rank, "world_size": self.world_size,
                "scaler": self.scaler}

    @classmethod
    def from_json(cls, data: Any, source: str = "state.json") -> "TrainingState":
        """Read ``to_json``'s output back, checking every key and type; errors name ``source`` and the key."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{source} must hold a JSON object, not {type(data).__name__}")
        if data.get("version") != VERSION:
            raise CheckpointError(f"{source} is a training state of another seqnlp version "
                                  f"({data.get('version', 1)!r}, this one reads {VERSION}); train the run again")
        loop = _read(cls, _require(data, "loop", dict, source), "loop", source, skip=_SECTIONS)
        monitor = _read(MonitorState, _require(data, "monitor", dict, source), "monitor", source)
        rng = _require(data, "rng_by_rank", list, source)
        world_size = _require(data, "world_size", int, source)
        if len(rng) != world_size or not all(isinstance(r, dict) for r in rng):
            raise CheckpointError(f"{source}: 'rng_by_rank' must hold one RNG state object per process "
                                  f"({world_size}), found {len(rng)}")
        history = _require(data, "history", list, source)
        if not all(isinstance(r, dict) for r in history):
            raise CheckpointError(f"{source}: 'history' must be a list of epoch records (objects)")
        return cls(**loop, monitor=MonitorState(**monitor), history=history, rng_by_rank=rng,
                   world_size=world_size, scaler=_require(data, "scaler", dict, source))


_SECTIONS = ("monitor", "history", "rng_by_rank", "world_size", "scaler")  # TrainingState fields outside "loop"
_NAMES = {int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "an object"}


def _require(data: Mapping[str, Any], key: str, kind: type, source: str, where: str = "") -> Any:
    """``data[key]`` if it is there and of ``kind`` (int for float is fine; bool is never an int)."""
    name = f"{where}.{key}" if where else key
    if key not in data:
        raise CheckpointError(f"{source}: key {name!r} is missing")
    value = data[key]
    fits = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, fits = float(value), True
    if not fits:
        raise CheckpointError(f"{source}: {name!r} must be {_NAMES[kind]}, got {value!r}")
    return value


def _read(cls: type, data: Mapping[str, Any], where: str, source: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of dataclass ``cls`` from ``data``, each required and type-checked (Optional allows null)."""
    values = {}
    for name, tp in typing.get_type_hints(cls).items():
        if name in skip:
            continue
        args = typing.get_args(tp)
        if type(None) in args and data.get(name, 0) is None:
            values[name] = None
            continue
        kind = next((a for a in args if a is not type(None)), tp)
        values[name] = _require(data, name, kind, source, where)
    return values
