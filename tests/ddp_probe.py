"""What runs inside the processes that tests/test_distributed.py starts.

* ``collectives``: a process spawned by the test, exercising every helper of ``seqnlp.distributed``.
* As a script, ``python -m seqnlp`` with probes: torchrun starts it in place of ``-m seqnlp``, and every
  training step and every file write of the training module is appended as a JSON line to
  ``$SEQNLP_PROBE_DIR/rank-<RANK>.jsonl``. The probes wrap the library from outside, so the library itself
  carries no test hooks.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from seqnlp import distributed
from seqnlp.errors import CheckpointError, DataError

WRITERS = ("prepare_run_dir", "save_run_files", "save_weights", "save_training_state", "append_jsonl",
           "write_jsonl", "write_json")


def collectives(rank: int, port: int, out: str) -> None:
    """One of two spawned processes: call every helper of seqnlp.distributed; write down what each returned."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    seen: dict[str, Any] = {}

    def fail(error: Exception) -> None:
        raise error

    with distributed.session(torch.device("cpu")):
        seen["rank"], seen["world"], seen["main"] = distributed.rank(), distributed.world_size(), distributed.is_main()
        seen["sum"] = distributed.all_sum([1.0, float(rank)])
        seen["gather"] = distributed.gather({"rank": rank})
        seen["from_main"] = distributed.from_main(lambda: f"made by rank {distributed.rank()}")
        try:
            distributed.from_main(lambda: fail(CheckpointError("no room")))
        except Exception as exc:
            seen["from_main_error"] = f"{type(exc).__name__}: {exc}"
        with distributed.main_first():
            seen["first_start"] = time.time()
            time.sleep(0.3 if rank == 0 else 0)
            seen["first_end"] = time.time()
        try:
            with distributed.main_first():
                if rank == 0:
                    raise DataError("bad file")
                seen["ran_after_failure"] = True
        except Exception as exc:
            seen["main_first_error"] = f"{type(exc).__name__}: {exc}"
        torch.manual_seed(rank)
        module = torch.nn.Linear(3, 2)
        distributed.broadcast_module(module)
        seen["weights"] = module.weight.tolist()
    seen["left"] = not torch.distributed.is_initialized()
    Path(out, f"{rank}.json").write_text(json.dumps(seen), encoding="utf-8")


def record(**fields: Any) -> None:
    log = Path(os.environ["SEQNLP_PROBE_DIR"]) / f"rank-{os.environ.get('RANK', '0')}.jsonl"
    with log.open("a", encoding="utf-8") as f:
        f.write(json.dumps(fields) + "\n")


def probe(training: Any) -> None:
    """Log every training step (epoch and example indices) and every file the training module writes."""
    step = training._Loop._step

    def probed_step(self: Any, batch: Any, *args: Any) -> bool:
        record(event="step", epoch=self.state.epoch, indices=batch.indices.tolist())
        return step(self, batch, *args)

    training._Loop._step = probed_step
    for name in WRITERS:
        original = getattr(training, name)

        def probed(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            record(event="write", what=_name)
            return _original(*args, **kwargs)

        setattr(training, name, probed)


if __name__ == "__main__":
    import seqnlp.training
    from seqnlp.cli import main

    probe(seqnlp.training)
    main(prog_name="seqnlp")
