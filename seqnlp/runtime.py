"""Where and how tensors run: device choice, mixed precision and seeding, shared by training and inference."""

from __future__ import annotations

import contextlib
import logging
import random
import time
from typing import Any, Callable, ContextManager, Iterator, Optional

import numpy as np
import torch

from seqnlp.errors import ConfigError
from seqnlp.threads import AUTO, ThreadTuner, candidates, resolve_threads, usable_cpus

log = logging.getLogger(__name__)

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when it is available, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: {name!r} is not one of auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} asked for CUDA, but torch sees no GPU (use auto or cpu)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"train.device: {name!r} is not one of auto, cpu, cuda, cuda:N")
    return device


def check_precision(precision: str, device: torch.device) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision: fp16 needs a CUDA device; on the CPU use bf16 or fp32")


def autocast(device: torch.device, precision: str) -> ContextManager:
    """Autocast to bf16/fp16 for the forward pass; a no-op for fp32, and for fp16 off CUDA (a run trained
    in fp16 on a GPU then predicts in fp32 on the CPU)."""
    if precision == "fp32" or (precision == "fp16" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(num_threads: int | str | None) -> None:
    """Set torch's intra-op threads: a count, ``auto`` (the CPUs this process may use: ``seqnlp.threads``), or
    None to leave torch's setting."""
    threads = resolve_threads(num_threads)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)


class ThreadControl:
    """The torch thread count of inference: a fixed count, None (torch's setting), or ``auto``: the usable CPUs
    (at most ``max_threads``), timed batch by batch by a ``ThreadTuner`` that keeps the fastest count.

    ``applied()`` sets the count for a stretch of work and restores torch's setting after (a library call leaves
    it as it found it); ``observe`` reports a batch, and switches when the tuner asks. One control serves every
    call of a Classifier, so a server's tuner learns over its requests.
    """

    def __init__(self, setting: int | str | None, device: torch.device = torch.device("cpu"),
                 max_threads: Optional[int] = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.setting = setting
        self.tuner: Optional[ThreadTuner] = None
        self.fixed: Optional[int] = None
        if setting == AUTO:
            cpus = usable_cpus() if max_threads is None else max(1, min(max_threads, usable_cpus()))
            if device.type == "cpu" and cpus > 1:
                self.tuner = ThreadTuner(candidates(cpus), clock=clock)
            else:
                self.fixed = cpus
        elif setting is not None:
            self.fixed = int(setting)

    @property
    def threads(self) -> Optional[int]:
        """The count the next batch runs at (None: torch's setting)."""
        return self.tuner.threads if self.tuner is not None else self.fixed

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        before = torch.get_num_threads()
        if self.threads is not None and self.threads != before:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def observe(self, tokens: int, seconds: float) -> None:
        if self.tuner is None:
            return
        decided = len(self.tuner.decisions)
        threads = self.tuner.observe(tokens, seconds)
        if threads is not None:
            torch.set_num_threads(threads)
        if len(self.tuner.decisions) > decided:
            log.debug("inference threads: %s", self.tuner.decisions[-1].summary())


def get_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as JSON-ready data (no pickle), for exact resumption."""
    version, python_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(python_state), gauss],
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])
