"""Two processes on the CPU (gloo, loopback only): the collectives, then one run stopped by SIGTERM and resumed.

The run is launched by torchrun through ``tests/ddp_probe.py`` (the CLI with probes that log each rank's steps
and file writes). It is stopped with SIGTERM to torchrun after its first epoch and resumed with ``--resume``;
the two launches together must have trained on every example exactly once per epoch, written files from rank 0
only, and ended where a single process with the same global batch ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch.multiprocessing
from safetensors.torch import load_file

from seqnlp.checkpoint import CHECKPOINT_DIR, LAST_POINTER, METRICS_FILE, RESULTS_FILE, STATE_FILE, WEIGHTS_FILE
from seqnlp.config import Config
from seqnlp.training import train
from tests import ddp_probe
from tests.helpers import tiny_config, toy_rows, write_csv

pytestmark = pytest.mark.slow  # every test here launches processes (torchrun, or torch.multiprocessing)

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "ddp_probe.py"
PER_RANK_BATCH = 8
EPOCHS = 4


def test_collectives_agree_and_a_failure_on_rank_0_reaches_every_rank(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(ddp_probe.collectives, args=(free_port(), str(tmp_path)), nprocs=2)
    zero, one = (json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1))
    assert (zero["rank"], zero["world"], zero["main"], one["rank"], one["main"]) == (0, 2, True, 1, False)
    assert zero["sum"] == one["sum"] == [2.0, 1.0]
    assert zero["gather"] == one["gather"] == [{"rank": 0}, {"rank": 1}]
    assert zero["from_main"] == one["from_main"] == "made by rank 0"
    assert zero["from_main_error"] == "CheckpointError: no room"
    assert one["from_main_error"] == "DistributedError: rank 0 failed: CheckpointError: no room"
    assert one["first_start"] >= zero["first_end"]  # rank 0 filled the cache before rank 1 began
    assert zero["main_first_error"] == "DataError: bad file"
    assert one["main_first_error"].startswith("DistributedError: another process failed")
    assert "ran_after_failure" not in one
    assert zero["weights"] == one["weights"]
    # Each rank updated metrics with half of the same examples: synced, both get the metrics of all of them.
    assert zero["metrics"] == one["metrics"] == zero["metrics_whole"]
    assert zero["left"] and one["left"]


def ddp_config(root: Path, files: dict[str, Path], name: str, batch_size: int = PER_RANK_BATCH) -> Config:
    """320 training examples: 20 steps an epoch with a global batch of 16. No dropout, so two processes and one
    process with the same global batch compute the same thing up to rounding."""
    return tiny_config(root, files, **{"train.epochs": EPOCHS, "train.batch_size": batch_size,
                                       "train.bucket_pool": 4, "output_dir": str(root / name)})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(args: list[str], probes: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "SEQNLP_PROBE_DIR": str(probes)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", str(PROBE), "-q", "train", *args]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def ddp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The two-process run, interrupted after epoch 1 and resumed; returns its run directory, probes and outputs."""
    root = tmp_path_factory.mktemp("ddp")
    files = {"train": write_csv(root / "train.csv", toy_rows(400, seed=5)),
             "test": write_csv(root / "test.csv", toy_rows(40, seed=6))}
    config = ddp_config(root, files, "run")
    config.save(root / "run.yaml")
    run, probes = root / "run", root / "probes"
    probes.mkdir()

    first = torchrun(["--config", str(root / "run.yaml")], probes)
    deadline = time.monotonic() + 180
    while not (run / METRICS_FILE).exists():  # epoch 1 is done; stop the run in epoch 2
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            pytest.fail(f"the first epoch did not finish: {first.communicate()[1][-3000:]}")
        time.sleep(0.005)
    first.send_signal(signal.SIGTERM)  # to torchrun, which passes it on to both ranks
    _, interrupted = first.communicate(timeout=120)

    second = torchrun(["--resume", str(run)], probes)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    return {"root": root, "files": files, "run": run, "probes": probes, "interrupted": interrupted,
            "interrupted_code": first.returncode, "stdout": out}


def events(probes: Path, rank: int, kind: str) -> list[dict[str, Any]]:
    lines = (probes / f"rank-{rank}.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def test_sigterm_stops_every_rank_with_a_checkpoint(ddp: dict[str, Any]) -> None:
    assert ddp["interrupted_code"] != 0
    assert ddp["interrupted"].count("interrupted by SIGTERM; checkpoint saved") == 2  # both ranks, none hung
    stopped_at = [e["epoch"] for e in events(ddp["probes"], 0, "step")]
    assert 1 < max(stopped_at) <= EPOCHS  # it really was cut short after epoch 1 and resumed


def test_training_completes_and_only_rank_0_writes_one_checkpoint(ddp: dict[str, Any]) -> None:
    run = ddp["run"]
    assert "Run directory" in ddp["stdout"] and ddp["stdout"].count("Best epoch") == 1  # rank 0 speaks alone
    results = json.loads((run / RESULTS_FILE).read_text())
    assert results["test"]["accuracy"] == 1.0
    assert len((run / METRICS_FILE).read_text().splitlines()) == EPOCHS
    checkpoints = [p for p in (run / CHECKPOINT_DIR).iterdir() if p.is_dir()]
    assert len(checkpoints) == 1 and not [p for p in run.rglob("*") if p.name.startswith(".")]
    writes = [e["what"] for e in events(ddp["probes"], 0, "write")]
    assert {"prepare_run_dir", "save_run_files", "save_training_state", "save_weights", "write_json"} <= set(writes)
    assert events(ddp["probes"], 1, "write") == []
    state = json.loads((run / CHECKPOINT_DIR / checkpoints[0].name / STATE_FILE).read_text())
    assert state["world_size"] == 2
    ranks = state["rng_by_rank"]
    assert len(ranks) == 2 and ranks[0]["torch"] != ranks[1]["torch"]  # a dropout stream per rank


def test_every_example_is_seen_once_per_epoch_across_ranks(ddp: dict[str, Any]) -> None:
    seen: dict[int, dict[int, list[list[int]]]] = defaultdict(dict)  # epoch -> rank -> batches
    for rank in (0, 1):
        for event in events(ddp["probes"], rank, "step"):
            seen[event["epoch"]].setdefault(rank, []).append(event["indices"])
    assert sorted(seen) == list(range(1, EPOCHS + 1))
    orders = []
    for epoch, by_rank in seen.items():
        assert len(by_rank[0]) == len(by_rank[1]) == 20, epoch  # the same number of steps on both ranks
        everything = [i for batches in by_rank.values() for batch in batches for i in batch]
        assert sorted(everything) == list(range(320)), epoch  # all 320, each once, interruption included
        assert all(len(batch) == PER_RANK_BATCH for batches in by_rank.values() for batch in batches)
        orders.append([i for batch in by_rank[0] for i in batch])
    assert len({tuple(order) for order in orders}) == EPOCHS  # reshuffled every epoch


def test_matches_one_process_with_the_same_global_batch(ddp: dict[str, Any]) -> None:
    root = ddp["root"]
    single = ddp_config(root, ddp["files"], "single", batch_size=2 * PER_RANK_BATCH)
    train(single, progress=False)
    ours = [json.loads(line) for line in (ddp["run"] / METRICS_FILE).read_text().splitlines()]
    theirs = [json.loads(line) for line in (root / "single" / METRICS_FILE).read_text().splitlines()]
    for a, b in zip(ours, theirs):
        assert a["step"] == b["step"]
        assert a["train"]["loss"] == pytest.approx(b["train"]["loss"], abs=1e-6)  # the same sums, rounded apart
        assert a["validation"]["loss"] == pytest.approx(b["validation"]["loss"], abs=1e-6)
        assert a["validation"]["confusion_matrix"] == b["validation"]["confusion_matrix"]
        assert a["validation"]["auroc"] == pytest.approx(b["validation"]["auroc"], abs=1e-5)  # scores gathered
    # Calibration: fitted on the gathered validation logits, scored on synced confidences, as one process does.
    ours_cal, theirs_cal = (json.loads((run / RESULTS_FILE).read_text())["validation"]["calibration"]
                            for run in (ddp["run"], root / "single"))
    assert ours_cal["temperature"] == pytest.approx(theirs_cal["temperature"], rel=1e-4)
    for stage in ("before", "after"):
        assert ours_cal[stage] == pytest.approx(theirs_cal[stage], abs=1e-5)
    assert [r["examples"] for r in ours_cal["risk_coverage"]] == [r["examples"] for r in theirs_cal["risk_coverage"]]
    weights = load_file(str(ddp["run"] / WEIGHTS_FILE))
    for name, tensor in load_file(str(root / "single" / WEIGHTS_FILE)).items():
        assert (weights[name] - tensor).abs().max() < 1e-5, name
    assert json.loads((ddp["run"] / CHECKPOINT_DIR / LAST_POINTER).read_text()) == \
        json.loads((root / "single" / CHECKPOINT_DIR / LAST_POINTER).read_text())
