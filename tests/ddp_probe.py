"""What runs inside the processes that tests/test_distributed.py starts.

* ``collectives``: a process spawned by the test, exercising every helper of ``seqnlp.distributed``.
* As a script, ``python -m seqnlp`` with probes: torchrun starts it in place of ``-m seqnlp``, and every
  training step (seen through ``fit``'s public ``Hook``) and every file write of the training modules is
  appended as a JSON line to ``$SEQNLP_PROBE_DIR/rank-<RANK>.jsonl``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from seqnlp import distributed
from seqnlp.batching import Batch
from seqnlp.errors import CheckpointError, DataError
from seqnlp.training import Hook, StepStats
from seqnlp.training.state import TrainingState

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
        seen["metrics"], seen["metrics_whole"] = sharded_metrics(rank)
        torch.manual_seed(rank)
        module = torch.nn.Linear(3, 2)
        distributed.broadcast_module(module)
        seen["weights"] = module.weight.tolist()
    seen["left"] = not torch.distributed.is_initialized()
    Path(out, f"{rank}.json").write_text(json.dumps(seen), encoding="utf-8")


def sharded_metrics(rank: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Multi-label and single-label metrics (AUROC included) from this rank's half of 40 examples, synced; and
    the same metrics of all 40 in this process alone."""
    from seqnlp.metrics import Metrics
    from seqnlp.objective import make_objective

    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(40, 3, generator=generator)  # [N, C]
    multi_hot = (torch.rand(40, 3, generator=generator) < 0.4).float()  # [N, C]
    classes = torch.randint(0, 3, (40,), generator=generator)  # [N]
    found: list[dict[str, Any]] = [{}, {}]
    for multi_label, target in ((True, multi_hot), (False, classes)):
        for out, sync, rows in ((found[0], True, slice(rank, None, 2)), (found[1], False, slice(None))):
            metrics = Metrics(make_objective(multi_label, 3), ["a", "b", "c"], sync=sync, thresholds=[0.3, 0.5, 0.7])
            metrics.update(probs[rows], target[rows])
            out["multi" if multi_label else "single"] = rounded(metrics.compute())
    return found[0], found[1]


def rounded(value: Any) -> Any:
    """Floats to 6 places, in nested dicts and lists: sums taken in another order differ in the last bits."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def record(**fields: Any) -> None:
    log = Path(os.environ["SEQNLP_PROBE_DIR"]) / f"rank-{os.environ.get('RANK', '0')}.jsonl"
    with log.open("a", encoding="utf-8") as f:
        f.write(json.dumps(fields) + "\n")


class StepProbe(Hook):
    """Logs every training step: its epoch and the example indices of this rank's share of the batch."""

    def on_step(self, state: TrainingState, batch: Batch, stats: StepStats) -> None:
        record(event="step", epoch=state.epoch, indices=batch.indices.tolist())


def probe() -> None:
    """Give ``train`` and ``resume`` the step probe, and log every file the training modules write."""
    import seqnlp.training
    from seqnlp.training import loop, run, setup

    for name in ("train", "resume"):
        original = getattr(seqnlp.training, name)

        def probed_run(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            return _original(*args, hooks=[StepProbe()], **kwargs)

        setattr(seqnlp.training, name, probed_run)  # the CLI imports them from seqnlp.training when it runs
    for module in (run, setup, loop):
        for name in WRITERS:
            if not hasattr(module, name):
                continue

            def probed(*args: Any, _original: Any = getattr(module, name), _name: str = name, **kwargs: Any) -> Any:
                record(event="write", what=_name)
                return _original(*args, **kwargs)

            setattr(module, name, probed)


if __name__ == "__main__":
    from seqnlp.cli import main

    probe()
    main(prog_name="seqnlp")
