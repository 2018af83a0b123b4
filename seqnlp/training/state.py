"""Where a run stands, as one typed object: what a checkpoint's state.json holds besides the tensors.

``TrainingState`` has the loop's counters, the running sums of the epoch in progress, the ``Monitor``'s state,
every process's RNG state, the grad scaler's state, the number of processes and the epoch history. With the
weights and the optimizer (``seqnlp.checkpoint`` keeps those in safetensors) it is enough to continue a run
exactly. ``to_json`` writes it; ``from_json`` reads it back and checks every key and type, so a damaged or
older state.json is a one-line ``CheckpointError`` naming the key, not a traceback halfway into a resume.
"""

from __future__ import annotations

import dataclasses
import math
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
                                  f"({_short(data.get('version', 1))}, this one reads {VERSION}); train the run again")
        _no_unknown(data, ("version", "loop", *_SECTIONS), "", source)
        loop = _read(cls, _require(data, "loop", dict, source), "loop", source, skip=_SECTIONS)
        monitor = _read(MonitorState, _require(data, "monitor", dict, source), "monitor", source)
        _check_ranges(loop, monitor, source)
        rng = _require(data, "rng_by_rank", list, source)
        world_size = _require(data, "world_size", int, source)
        if len(rng) != world_size or world_size < 1 or not all(isinstance(r, dict) for r in rng):
            raise CheckpointError(f"{source}: 'rng_by_rank' must hold one RNG state object per process "
                                  f"({world_size}), found {len(rng)}")
        for rank, state in enumerate(rng):
            check_rng_state(state, f"{source}: rng_by_rank[{rank}]")
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


def _check_ranges(loop: Mapping[str, Any], monitor: Mapping[str, Any], source: str) -> None:
    """Counters and sums are finite and >= 0, the epoch >= 1, the plateau scale in (0, 1], a best score finite."""
    bad = [f"loop.{key}" for key, value in loop.items()
           if not isinstance(value, bool) and not (_is_number(value) and value >= 0)]
    bad += [f"monitor.{key}" for key in ("best_epoch", "bad_epochs", "plateau_bad") if monitor[key] < 0]
    bad += ["loop.epoch"] * (loop["epoch"] < 1) + ["monitor.plateau_scale"] * (not 0 < monitor["plateau_scale"] <= 1)
    bad += ["monitor.best_score"] * (monitor["best_score"] is not None and not _is_number(monitor["best_score"]))
    if bad:
        raise CheckpointError(f"{source}: {bad[0]!r} is out of range (counts and sums are >= 0, the epoch >= 1, the "
                              "plateau scale in (0, 1], a best score finite)")


def check_rng_state(state: Mapping[str, Any], where: str) -> None:
    """The shape of ``runtime.get_rng_state``'s output: Python's Mersenne Twister (625 words and a gauss), NumPy's
    (624 words, a position, a cached gauss), torch's byte states; anything else would fail deep inside a resume."""
    _no_unknown(state, ("python", "numpy", "torch", "cuda"), "", where)
    python, numpy, torch_state = state.get("python"), state.get("numpy"), state.get("torch")
    checks = {
        "python": isinstance(python, list) and len(python) == 3 and _is_int(python[0])
        and _words(python[1], 625, 2**32) and (python[2] is None or _is_number(python[2])),
        "numpy": isinstance(numpy, list) and len(numpy) == 5 and numpy[0] == "MT19937" and _words(numpy[1], 624, 2**32)
        and _is_int(numpy[2]) and 0 <= numpy[2] <= 624 and _is_int(numpy[3]) and _is_number(numpy[4]),
        "torch": _words(torch_state, None, 256),
        "cuda": "cuda" not in state or (isinstance(state["cuda"], list) and all(_words(s, None, 256)
                                                                               for s in state["cuda"])),
    }
    bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise CheckpointError(f"{where}: {bad[0]!r} is not a {bad[0]} random-number-generator state as seqnlp saves it")


def _words(value: Any, length: int | None, bound: int) -> bool:
    """A list of ``length`` (any, if None; at least one) integers in [0, bound)."""
    return isinstance(value, list) and (len(value) == length if length is not None else bool(value)) and all(
        _is_int(v) and 0 <= v < bound for v in value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any) -> str:
    return repr(value)[:40]


def _no_unknown(data: Mapping[str, Any], known: tuple[str, ...], where: str, source: str) -> None:
    unknown = [str(key) for key in data if key not in known]
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise CheckpointError(f"{source}: unknown key {name[:60]!r}; {where or 'the state'} holds "
                              f"{', '.join(known)}")


def _read(cls: type, data: Mapping[str, Any], where: str, source: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of dataclass ``cls`` from ``data``, each required and type-checked (Optional allows null);
    a key that is not a field is an error."""
    _no_unknown(data, tuple(f.name for f in dataclasses.fields(cls) if f.name not in skip), where, source)
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
