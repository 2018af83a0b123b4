"""Shared fixtures: toy data files, tiny configs, and one trained run reused across tests (helpers.py has the data).

Tests never touch the network or ../shared: the Hugging Face caches point into a temporary directory and
the Hub is switched off before datasets is imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

_CACHE = tempfile.mkdtemp(prefix="seqnlp-tests-")
os.environ.setdefault("HF_HOME", _CACHE)
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE, "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # train.num_threads: auto then means one thread (see _one_torch_thread)

import pytest  # noqa: E402

from seqnlp.config import Config  # noqa: E402
from tests.helpers import tiny_config, toy_rows, write_csv  # noqa: E402


@pytest.fixture
def toy_csv(tmp_path: Path) -> dict[str, Path]:
    """train.csv (200 rows) and test.csv (40 rows) of the toy task, with text and string label columns."""
    return {
        "train": write_csv(tmp_path / "train.csv", toy_rows(200, seed=0)),
        "test": write_csv(tmp_path / "test.csv", toy_rows(40, seed=1)),
    }


@pytest.fixture
def make_config(tmp_path: Path, toy_csv: dict[str, Path]) -> Callable[..., Config]:
    """``make_config(**dotted_updates)`` -> a tiny Config on the toy files, writing into tmp_path/run."""
    return lambda **updates: tiny_config(tmp_path, toy_csv, **updates)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and one thread does not collapse on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained toy run directory, shared by the tests that only read it."""
    from seqnlp.training import train

    root = tmp_path_factory.mktemp("trained")
    files = {
        "train": write_csv(root / "train.csv", toy_rows(200, seed=0)),
        "test": write_csv(root / "test.csv", toy_rows(40, seed=1)),
    }
    config = tiny_config(root, files)
    train(config, progress=False)
    return Path(config.output_dir)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def toy_run(trained_run: Path) -> Path:
    """The shared trained toy run (read-only)."""
    return trained_run
