"""Several processes, one run: torchrun's environment, the process group, and rank-0-first steps.

Under ``torchrun --nproc_per_node=N -m seqnlp train ...`` every process runs the same ``train`` call; this
module is what makes them one run:

* ``session`` joins the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT):
  gloo on the CPU, NCCL on CUDA with one GPU per process (``cuda:LOCAL_RANK``), and leaves it at the end,
  on errors too;
* ``from_main`` runs a step on rank 0 only (naming the run directory, training the tokenizer) and gives
  its result, or its failure, to every rank, so no rank waits forever for a rank that failed;
* ``main_first`` lets the first process of each node fill the datasets cache before the others read it;
* ``all_sum``, ``gather`` and ``broadcast_module`` are the collectives the training loop needs.

Outside torchrun (no WORLD_SIZE, or WORLD_SIZE=1) every function is a no-op or a plain call, so a
single-process run takes exactly the path it always took.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

from seqnlp.errors import DistributedError

T = TypeVar("T")


def launched_world_size() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index on its node (its GPU under NCCL)."""
    return int(os.environ.get("LOCAL_RANK", rank())) if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes files and shows progress."""
    return rank() == 0


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[torch.device]:
    """Join torchrun's process group for the block, if launched by it; yield the device this rank uses.

    A group that already exists (set up by the caller) is used as it is and left open.
    """
    if launched_world_size() <= 1:
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process
        torch.cuda.set_device(device)
    if dist.is_initialized():
        yield device
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")  # the rest comes from torchrun's env
    try:
        yield device
    finally:
        dist.destroy_process_group()


def from_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and return its result on every rank; if it raises there, every rank raises.

    The result travels by pickle between the processes of this run, so it must be picklable.
    """
    if not is_distributed():
        return fn()
    payload: list[Any] = [None, None]  # [result, error message]
    error = None
    if is_main():
        try:
            payload[0] = fn()
        except BaseException as exc:  # any failure, interrupts included: the others must hear of it
            error, payload[1] = exc, f"{type(exc).__name__}: {exc}"
    dist.broadcast_object_list(payload, src=0)
    if error is not None:
        raise error
    if payload[1] is not None:
        raise DistributedError(f"rank 0 failed: {payload[1]}")
    return payload[0]


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """The first process of each node runs the block first, then the others: for work that fills a cache.

    Loading and encoding a dataset writes the datasets cache; the others then read it instead of redoing
    the work (and instead of racing on the same cache files). A failure in the first process stops all.
    """
    if not is_distributed():
        yield
        return
    if local_rank() == 0:
        try:
            yield
        except BaseException:
            _any(True)
            raise
        _any(False)
    else:
        if _any(False):
            raise DistributedError("another process failed while preparing the data; see its error above")
        yield


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sums over all ranks (the values themselves in a single process)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (picklable objects; ``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_module(module: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers, in place."""
    if not is_distributed():
        return
    for tensor in module.state_dict().values():  # state_dict tensors share storage with the parameters
        dist.broadcast(tensor, src=0)


def _any(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank; every rank must call it (it is also a barrier)."""
    return all_sum([float(flag)])[0] > 0


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":  # NCCL moves CUDA tensors only
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
