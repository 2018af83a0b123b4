"""The optimizer's part of a checkpoint: its tensors in optimizer.safetensors, keyed ``"<parameter index>.<name>"``,
and its parameter groups (hyper-parameters) as JSON in state.json; read back checked against the live optimizer.

``load_state_dict`` accepts a moment tensor of the wrong shape (it surfaces steps later as a non-finite loss) and
meets a non-integer key or a malformed group with a traceback. ``read_optimizer`` checks every group and setting,
every key, and every tensor's shape and dtype against its parameter (on the file's header, before reading it),
and refuses each problem in one line naming the file and the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from seqnlp.errors import CheckpointError
from seqnlp.tensorfile import DTYPE_NAMES, load_tensors, read_header


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Optimizer state_dict -> {"<param index>.<name>": tensor} for safetensors, and JSON param groups."""
    sd = optimizer.state_dict()
    tensors = {}
    for index, values in sd["state"].items():
        for key, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{key}"] = tensor.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def read_optimizer(path: Path, groups: list[Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The state dict for ``optimizer.load_state_dict``: the tensors of ``path`` and the saved ``groups`` (from
    state.json beside it), each checked against ``optimizer``'s parameters and settings."""
    params = _check_groups(path.parent / "state.json", groups, optimizer)
    found, _ = read_header(path)
    for key, info in found.items():
        index, _, name = key.partition(".")
        if not index.isdigit() or not name.isidentifier() or int(index) not in params:
            raise CheckpointError(f"{path}: tensor {key[:60]!r} is not '<parameter index>.<name>' for one of the "
                                  f"{len(params)} parameters")
        param = params[int(index)]
        if name == "step":  # a step count: a float scalar
            if info.shape not in ((), (1,)) or info.dtype not in ("F32", "F64"):
                raise CheckpointError(f"{path}: {key} must be a float scalar (a step count), not {info.dtype} "
                                      f"{list(info.shape)}")
        elif info.shape != tuple(param.shape) or info.dtype != DTYPE_NAMES.get(param.dtype):
            raise CheckpointError(f"{path}: {key} is {info.dtype} {list(info.shape)}, but parameter {index} is "
                                  f"{DTYPE_NAMES.get(param.dtype)} {list(param.shape)}")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in load_tensors(path).items():  # non-finite values are refused there
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = tensor
    return {"state": state, "param_groups": groups}


def _check_groups(source: Path, groups: list[Any], optimizer: torch.optim.Optimizer) -> dict[int, torch.Tensor]:
    """Each saved group has the live group's settings, each of the same kind, and indices for as many parameters;
    returns the parameter each saved index will be loaded into (``load_state_dict`` pairs them in order)."""
    live = optimizer.param_groups
    if len(groups) != len(live):
        raise CheckpointError(f"{source}: optimizer_param_groups holds {len(groups)} groups; the optimizer has "
                              f"{len(live)}")
    params: dict[int, torch.Tensor] = {}
    for number, (saved, current) in enumerate(zip(groups, live)):
        where = f"{source}: optimizer_param_groups[{number}]"
        indices = saved.get("params") if isinstance(saved, dict) else None
        if not isinstance(indices, list) or len(indices) != len(current["params"]) or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices):
            raise CheckpointError(f"{where} must be an object whose 'params' lists the indices of its "
                                  f"{len(current['params'])} parameters")
        for key, value in saved.items():
            if key == "params":
                continue
            if key not in current:
                raise CheckpointError(f"{where}: unknown setting {key[:40]!r}; settings: "
                                      f"{', '.join(k for k in current if k != 'params')}")
            if not _same_kind(value, current[key]):
                raise CheckpointError(f"{where}: {key} is {str(value)[:40]}, which is not a setting of the kind "
                                      f"{current[key]!r} is")
        params.update(zip(indices, current["params"]))
    if len(params) != sum(len(group["params"]) for group in live):
        raise CheckpointError(f"{source}: optimizer_param_groups names a parameter index twice")
    return params


def _same_kind(value: Any, current: Any) -> bool:
    """A saved setting fits the live one: flags and None for flags, finite numbers for numbers, lists of as many
    finite numbers for tuples (AdamW's betas)."""
    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    if isinstance(current, bool) or current is None:
        return value is None or isinstance(value, bool)
    if number(current):
        return number(value)
    if isinstance(current, (tuple, list)):
        return isinstance(value, list) and len(value) == len(current) and all(number(v) for v in value)
    return isinstance(value, type(current))
