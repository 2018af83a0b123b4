"""safetensors files read without trusting them: the header first, within a bound; every tensor's name, shape and
dtype compared with what the model expects before any tensor data is read; non-finite values refused.

A run directory may come from anywhere. safetensors already guarantees that nothing in the file runs code and that
the data cannot be larger than the file; this module adds what it does not know: which tensors the model needs,
of which shapes and dtypes (a float64 or int8 tensor would be cast silently by ``load_state_dict``), and that every
value is finite (NaN weights would make every prediction NaN). Errors are ``CheckpointError``s naming the file
and the tensor.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from seqnlp.errors import CheckpointError

MAX_HEADER_BYTES = 16 << 20  # a seqnlp header is a few KB (one line per tensor); anything this large is not ours
DTYPE_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
               torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
               torch.bool: "BOOL"}
_ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header declares it."""

    dtype: str  # safetensors' name: F32, F64, I8, ...
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The tensors a safetensors file declares and its metadata, read from its header alone (no tensor data)."""
    try:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= MAX_HEADER_BYTES:
                raise CheckpointError(f"weights file {path} is corrupt or truncated: a header of {size:,} bytes")
            header = json.loads(f.read(size))
            data_bytes = path.stat().st_size - 8 - size
    except FileNotFoundError:
        raise CheckpointError(f"weights file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"weights file {path} is corrupt or truncated: {str(exc).splitlines()[0]}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"weights file {path} is corrupt: its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    tensors = {name: _tensor_info(path, name, entry) for name, entry in header.items()}
    declared = sum(info.numel * _ITEM_BYTES[info.dtype] for info in tensors.values())
    if declared > data_bytes or not isinstance(metadata, dict):
        raise CheckpointError(f"weights file {path} is corrupt or truncated: its header declares {declared:,} bytes "
                              f"of tensors and the file holds {max(data_bytes, 0):,}")
    return tensors, metadata


def check_tensors(path: Path, found: Mapping[str, TensorInfo], expected: Mapping[str, torch.Tensor],
                  fits: str = "the model in config.yaml") -> None:
    """``found`` (a header) holds exactly the tensors of ``expected`` (a state dict), shape for shape and dtype
    for dtype; checked before anything is read, so a wrong file costs no memory."""
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    if missing or unexpected:
        parts = ([f"missing {_names(missing)}"] if missing else []) + ([f"unexpected {_names(unexpected)}"]
                                                                        if unexpected else [])
        raise CheckpointError(f"weights file {path} does not fit {fits}: {'; '.join(parts)}")
    for name, tensor in expected.items():
        info, want = found[name], DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype))
        if info.shape != tuple(tensor.shape):
            raise CheckpointError(f"weights file {path} does not fit {fits}: {name} is {list(info.shape)}, the "
                                  f"model needs {list(tensor.shape)}")
        if info.dtype != want:
            raise CheckpointError(f"weights file {path}: {name} is stored as {info.dtype}, not {want} as seqnlp "
                                  "saves it; a converted or altered file is not loaded (it would be cast silently)")


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the file, each checked to be finite (NaN or inf weights would give NaN predictions)."""
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"weights file {path} does not exist") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"weights file {path} is corrupt or truncated: {str(exc).splitlines()[0]}") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"weights file {path}: {name} holds {bad:,} non-finite values (NaN or inf); "
                                  "these weights cannot predict anything")
    return tensors


def _tensor_info(path: Path, name: str, entry: Any) -> TensorInfo:
    dtype = entry.get("dtype") if isinstance(entry, dict) else None
    shape = entry.get("shape") if isinstance(entry, dict) else None
    if dtype not in _ITEM_BYTES or not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**40 for n in shape):
        raise CheckpointError(f"weights file {path} is corrupt or not seqnlp's: tensor {name[:60]!r} has dtype "
                              f"{str(dtype)[:20]!r} and shape {str(shape)[:60]}")
    return TensorInfo(dtype, tuple(shape))


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
