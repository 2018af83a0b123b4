"""TensorBoard scalars: the windowed step logger, the auto/true/false switch, and event files read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from seqnlp.training import tensorboard as tblog
from seqnlp.checkpoint import prepare_run_dir
from seqnlp.config import Config, load_config
from seqnlp.errors import ConfigError
from seqnlp.training.tensorboard import TensorBoardLogger

MakeConfig = Callable[..., Config]


class FakeWriter:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Counters:
    def __init__(self, epoch: int, step: int, loss_sum: float, terms: int, tokens: int, seconds: float) -> None:
        self.epoch, self.step, self.loss_sum, self.terms = epoch, step, loss_sum, terms  # terms: what the loss averages
        self.tokens, self.seconds = tokens, seconds


def test_the_setting_parses_as_auto_true_or_false(tmp_path: Path) -> None:
    assert load_config(overrides=["train.tensorboard=false"]).train.tensorboard is False
    assert load_config(overrides=["train.tensorboard=true"]).train.tensorboard is True
    assert load_config().train.tensorboard == "auto"
    config = load_config(updates={"train.tensorboard": True})
    config.save(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml").train.tensorboard is True
    with pytest.raises(ConfigError, match="train.tensorboard: 'yes please' is not one of auto, true, false"):
        load_config(overrides=["train.tensorboard=yes please"])


def test_step_scalars_are_means_over_the_window_since_the_last_write() -> None:
    writer = FakeWriter()
    logger = TensorBoardLogger(writer, log_every=2)
    logger.train_step(Counters(1, 1, 10.0, 10, 100, 1.0), lr=0.1)  # not a log step
    assert writer.scalars == []
    logger.train_step(Counters(1, 2, 16.0, 20, 300, 2.0), lr=0.2)
    logger.train_step(Counters(1, 4, 18.0, 40, 700, 4.0), lr=0.3)
    # The epoch's sums restart from zero in epoch 2: the window starts there too.
    logger.train_step(Counters(2, 6, 5.0, 10, 50, 0.5), lr=0.4)
    by_tag: dict[str, list[tuple[int, float]]] = {}
    for tag, value, step in writer.scalars:
        by_tag.setdefault(tag, []).append((step, value))
    assert by_tag["train/loss"] == [(2, 0.8), (4, pytest.approx(0.1)), (6, 0.5)]
    assert by_tag["train/tokens_per_s"] == [(2, 150.0), (4, 200.0), (6, 100.0)]
    assert by_tag["train/lr"] == [(2, 0.2), (4, 0.3), (6, 0.4)]


def test_a_window_of_skipped_steps_logs_no_loss() -> None:
    writer = FakeWriter()
    logger = TensorBoardLogger(writer, log_every=1)
    logger.train_step(Counters(1, 1, 0.0, 0, 40, 1.0), lr=0.1)  # the step was skipped: no examples counted
    assert [tag for tag, _, _ in writer.scalars] == ["train/tokens_per_s", "train/lr"]


def test_epoch_record_and_close() -> None:
    writer = FakeWriter()
    with TensorBoardLogger(writer) as logger:
        logger.epoch({"step": 7, "train": {"loss": 0.5}, "validation": {"loss": 0.4, "accuracy": 0.9, "macro_f1": 0.8}})
    assert sorted(writer.scalars) == [("train/epoch_loss", 0.5, 7), ("validation/accuracy", 0.9, 7),
                                      ("validation/loss", 0.4, 7), ("validation/macro_f1", 0.8, 7)]
    assert writer.closed and logger.writer is None


def test_a_language_models_epoch_record_logs_its_perplexity() -> None:
    writer = FakeWriter()
    TensorBoardLogger(writer).epoch({"step": 3, "train": {"loss": 4.0}, "validation": {"loss": 3.5, "perplexity": 33.1}})
    assert sorted(writer.scalars) == [("train/epoch_loss", 4.0, 3), ("validation/loss", 3.5, 3),
                                      ("validation/perplexity", 33.1, 3)]


def test_a_disabled_logger_does_nothing(tmp_path: Path) -> None:
    logger = TensorBoardLogger.open(False, tmp_path, log_every=1)
    assert not logger.enabled
    logger.train_step(Counters(1, 1, 1.0, 1, 1, 1.0), lr=0.1)
    logger.epoch({"step": 1})
    logger.close()
    assert not (tmp_path / "tensorboard").exists()


def test_true_without_the_package_is_an_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tblog, "tensorboard_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"train.tensorboard: true needs the tensorboard package: .*seqnlp\[tensorboard\]"):
        tblog.check_tensorboard(True)
    tblog.check_tensorboard("auto")
    assert not TensorBoardLogger.open("auto", tmp_path, log_every=1).enabled


def test_true_without_the_package_fails_before_the_data_loads(make_config: MakeConfig,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from seqnlp.training import train

    monkeypatch.setattr(tblog, "tensorboard_installed", lambda: False)
    config = make_config(**{"train.tensorboard": True})
    with pytest.raises(ConfigError, match="seqnlp\\[tensorboard\\]"):
        train(config, progress=False)
    assert not Path(config.output_dir).exists()  # type: ignore[arg-type]


def test_overwriting_a_run_clears_its_old_event_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    (run / "tensorboard" / "events.out.tfevents.old").write_text("x", encoding="utf-8")
    (run / "results.json").write_text("{}", encoding="utf-8")
    prepare_run_dir(run, overwrite=True)
    assert not (run / "tensorboard").exists()


def _scalars(directory: Path) -> dict[str, list[Any]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory))
    accumulator.Reload()
    return {tag: accumulator.Scalars(tag) for tag in accumulator.Tags()["scalars"]}


@pytest.mark.parametrize("setting", [True, "auto"])
def test_training_writes_event_files_with_the_expected_tags(make_config: MakeConfig, setting: object) -> None:
    pytest.importorskip("tensorboard")
    from seqnlp.training import train

    config = make_config(**{"train.tensorboard": setting, "train.log_every": 2, "train.epochs": 2})
    result = train(config, progress=False)
    scalars = _scalars(result.run_dir / "tensorboard")
    assert set(scalars) == {"train/loss", "train/lr", "train/tokens_per_s", "train/epoch_loss",
                            "validation/loss", "validation/accuracy", "validation/macro_f1"}
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e.step for e in scalars["validation/accuracy"]] == [r["step"] for r in records]
    for event, record in zip(scalars["validation/macro_f1"], records):
        assert event.value == pytest.approx(record["validation"]["macro_f1"], rel=1e-6)
    steps = records[-1]["step"]
    assert [e.step for e in scalars["train/loss"]] == list(range(2, steps + 1, 2))
    assert all(e.value > 0 for e in scalars["train/tokens_per_s"])


def test_false_writes_no_event_files(make_config: MakeConfig) -> None:
    from seqnlp.training import train

    config = make_config(**{"train.tensorboard": False, "train.epochs": 1})
    result = train(config, progress=False)
    assert not (result.run_dir / "tensorboard").exists()


class Crash(Exception):
    pass


def test_a_resumed_run_logs_every_step_once(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Crashed at step 5 with the checkpoint of step 3: steps 4-5 are logged again and the old ones purged."""
    pytest.importorskip("tensorboard")
    from seqnlp.training import resume, train

    original = TensorBoardLogger.train_step

    def crash_at_step_5(self: TensorBoardLogger, state: Any, lr: float) -> None:
        original(self, state, lr)
        if state.step == 5:
            raise Crash

    monkeypatch.setattr(TensorBoardLogger, "train_step", crash_at_step_5)
    config = make_config(**{"train.tensorboard": True, "train.log_every": 1, "train.epochs": 2,
                            "train.checkpoint_every": 3})
    with pytest.raises(Crash):
        train(config, progress=False)
    assert [e.step for e in _scalars(Path(config.output_dir) / "tensorboard")["train/lr"]] == [1, 2, 3, 4, 5]
    monkeypatch.setattr(TensorBoardLogger, "train_step", original)
    result = resume(config.output_dir, progress=False)  # type: ignore[arg-type]
    scalars = _scalars(result.run_dir / "tensorboard")
    steps = result.history[-1]["step"]
    assert [e.step for e in scalars["train/lr"]] == list(range(1, steps + 1))
    assert [e.step for e in scalars["validation/loss"]] == [r["step"] for r in result.history]
