"""train() end to end: the toy task, metrics files, early stopping, plateau, seeds, precision, the run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from seqnlp.checkpoint import CONFIG_FILE, METRICS_FILE, RESULTS_FILE, WEIGHTS_FILE
from seqnlp.config import Config, load_config
from seqnlp.data import load_splits
from seqnlp.errors import CheckpointError, ConfigError
from seqnlp.evaluation import evaluate
from seqnlp.predict import Classifier
from seqnlp.tokenizer import encode_dataset
from seqnlp.training import TrainResult, train

MakeConfig = Callable[..., Config]
FAST = {"train.num_threads": 1}  # tiny models train fastest on one thread, and the machine is shared


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines()]


def read_results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RESULTS_FILE).read_text(encoding="utf-8"))


# --- train() on the toy task ------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_toy_task_is_learned_to_100_percent(make_config: MakeConfig, cell: str) -> None:
    config = make_config(**{"model.cell": cell, "train.epochs": 3, **FAST})
    result = train(config, progress=False)

    assert isinstance(result, TrainResult)
    assert result.run_dir == Path(config.output_dir)  # type: ignore[arg-type]
    assert result.test is not None
    assert result.test["accuracy"] == 1.0
    assert result.test["num_examples"] == 40
    assert result.validation["accuracy"] == 1.0
    assert 1 <= result.best_epoch <= 3 and len(result.history) == 3

    # results.json holds the returned numbers; metrics.jsonl holds the history.
    results = read_results(result.run_dir)
    assert results.pop("environment")["device"] == "cpu"  # the machine, for the model card
    assert results == {"best_epoch": result.best_epoch, "num_parameters": result.num_parameters, "skipped_steps": 0,
                       "monitor": "accuracy", "monitor_reason": "auto: classes balanced within 1.5x (1.00x)",
                       "label_counts": {"neg": 80, "pos": 80}, "class_weights": None, "sampler": "bucket",
                       "validation": result.validation, "test": result.test}
    assert result.monitor == "accuracy" and result.thresholds is None
    # The best epoch's record, with the split named as carved (results.json, the CLI's summary), now with how
    # calibrated its probabilities are.
    assert {k: v for k, v in result.validation.items() if k != "calibration"} == {
        **result.history[result.best_epoch - 1]["validation"], "split": "validation", "carved": "carved from train, 20%"}
    assert result.validation["calibration"]["temperature"] == result.temperature
    assert result.test["split"] == "test" and result.test["carved"] is None  # the toy run's own test file
    assert read_metrics(result.run_dir) == result.history
    assert result.num_parameters == sum(t.numel() for t in load_file(str(result.run_dir / WEIGHTS_FILE)).values())


def test_metrics_jsonl_has_one_record_per_epoch(toy_run: Path) -> None:
    records = read_metrics(toy_run)
    epochs = 8  # conftest's tiny_config
    steps_per_epoch = 10  # 200 training rows - 20% validation = 160, in batches of 16
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    assert [r["step"] for r in records] == [steps_per_epoch * e for e in range(1, epochs + 1)]
    for record in records:
        train_stats = record["train"]
        assert set(train_stats) >= {"loss", "seconds", "examples_per_s", "tokens_per_s", "padding_ratio"}
        assert train_stats["loss"] > 0 and math.isfinite(train_stats["loss"])
        assert train_stats["examples_per_s"] > 0 and train_stats["tokens_per_s"] > train_stats["examples_per_s"]
        assert 0.0 <= train_stats["padding_ratio"] < 1.0
        val = record["validation"]
        assert val["num_examples"] == 40
        assert 0.0 <= val["accuracy"] <= 1.0 and 0.0 <= val["macro_f1"] <= 1.0 and val["loss"] > 0
        assert sum(map(sum, val["confusion_matrix"])) == 40
        assert set(val["per_class"]) == {"neg", "pos"}
        assert 0 < record["lr"] <= 0.01
        assert isinstance(record["best"], bool)
    assert records[0]["best"] is True
    # The linear schedule decays: the last epoch runs at a lower rate than the first.
    assert records[-1]["lr"] < records[0]["lr"]
    assert records[-1]["train"]["loss"] < records[0]["train"]["loss"]

    results = read_results(toy_run)
    best = results["best_epoch"]
    assert records[best - 1]["best"] is True and not any(r["best"] for r in records[best:])
    assert {k: v for k, v in results["validation"].items() if k != "calibration"} == {
        **records[best - 1]["validation"], "split": "validation", "carved": "carved from train, 20%"}


def test_throughput_and_padding_ratio_count_real_tokens(toy_run: Path) -> None:
    clf = Classifier.load(toy_run, device="cpu")
    splits = load_splits(clf.config.data, clf.config.seed, label_names=clf.label_names)
    lengths = np.sort(np.array(encode_dataset(splits.data["train"], clf.tokenizer)["length"]))  # [160]
    batch_size = clf.config.train.batch_size
    # All 160 examples fit in one length-sorting pool, so every epoch's batches are runs of sorted lengths.
    slots = sum(len(chunk) * chunk.max() for chunk in np.split(lengths, range(batch_size, len(lengths), batch_size)))
    for record in read_metrics(toy_run):
        stats = record["train"]
        assert stats["padding_ratio"] == pytest.approx(1 - lengths.sum() / slots)
        assert stats["examples_per_s"] * stats["seconds"] == pytest.approx(len(lengths))
        assert stats["tokens_per_s"] * stats["seconds"] == pytest.approx(lengths.sum())


def test_early_stopping_stops_when_the_monitor_cannot_improve(make_config: MakeConfig) -> None:
    patience = 2
    config = make_config(**{"model.cell": "gru", "train.epochs": 10, "train.monitor": "accuracy",
                            "train.patience": patience, **FAST})
    result = train(config, progress=False)
    accuracies = [r["validation"]["accuracy"] for r in result.history]
    assert accuracies[result.best_epoch - 1] == 1.0  # accuracy hit its ceiling, so it cannot improve any more
    assert len(result.history) == result.best_epoch + patience < 10
    assert len(read_metrics(result.run_dir)) == len(result.history)
    assert all(not r["best"] for r in result.history[result.best_epoch :])


def test_plateau_schedule_lowers_the_rate_after_a_stall(make_config: MakeConfig) -> None:
    factor = 0.5
    config = make_config(**{"model.cell": "gru", "train.epochs": 4, "train.schedule": "plateau",
                            "train.monitor": "accuracy", "train.plateau_patience": 1, "train.plateau_factor": factor,
                            "train.warmup_ratio": 0.0, **FAST})
    result = train(config, progress=False)
    records = read_metrics(result.run_dir)
    lrs = [r["lr"] for r in records]

    # Expected: the rate an epoch ran at is the base rate scaled once per stalled epoch before it.
    expected, scale = [], 1.0
    for record in records:
        expected.append(0.01 * scale)
        if not record["best"]:
            scale *= factor
    assert lrs == pytest.approx(expected)
    assert not all(r["best"] for r in records[:-1])  # there was a stall ...
    assert min(lrs) < lrs[0]  # ... and the rate went down after it


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / WEIGHTS_FILE))


def test_same_seed_same_weights_other_seed_other_weights(make_config: MakeConfig, tmp_path: Path) -> None:
    def run(seed: int, name: str) -> dict[str, torch.Tensor]:
        config = make_config(**{"model.cell": "gru", "train.epochs": 2, "train.monitor": "loss", "seed": seed,
                                "output_dir": str(tmp_path / name), **FAST})
        train(config, progress=False)
        return weights(tmp_path / name)

    first, again, other = run(7, "a"), run(7, "b"), run(8, "c")
    assert first.keys() == again.keys() == other.keys()
    for name, tensor in first.items():
        assert torch.equal(tensor, again[name]), f"{name} differs between two runs with the same seed"
    assert not all(torch.equal(tensor, other[name]) for name, tensor in first.items())


def test_saved_weights_are_those_of_the_best_epoch(toy_run: Path) -> None:
    results = read_results(toy_run)
    records = read_metrics(toy_run)
    best = results["best_epoch"]
    assert best < len(records), "the check needs later epochs whose weights must not be the saved ones"

    again = evaluate(Classifier.load(toy_run, device="cpu"), split="validation")
    assert again["loss"] == pytest.approx(results["validation"]["loss"], rel=1e-5)
    assert again["accuracy"] == results["validation"]["accuracy"]
    assert again["confusion_matrix"] == results["validation"]["confusion_matrix"]
    # The last epoch's weights would score a clearly different loss.
    assert records[-1]["validation"]["loss"] != pytest.approx(again["loss"], rel=1e-3)


def test_bf16_trains_on_the_cpu(make_config: MakeConfig) -> None:
    config = make_config(**{"model.cell": "gru", "train.epochs": 2, "train.precision": "bf16", **FAST})
    result = train(config, progress=False)
    assert all(math.isfinite(r["train"]["loss"]) for r in result.history)
    assert result.history[-1]["train"]["loss"] < result.history[0]["train"]["loss"]
    assert result.test is not None and result.test["accuracy"] >= 0.9
    assert {t.dtype for t in weights(result.run_dir).values()} == {torch.float32}  # autocast, fp32 weights


def test_fp16_on_the_cpu_is_a_config_error(make_config: MakeConfig) -> None:
    config = make_config(**{"train.precision": "fp16"})
    with pytest.raises(ConfigError, match=r"train\.precision.*fp16.*CUDA"):
        train(config, progress=False)
    assert not Path(config.output_dir).exists()  # type: ignore[arg-type]  # refused before anything is written


def test_train_refuses_an_output_dir_holding_a_run(make_config: MakeConfig) -> None:
    config = make_config()
    run_dir = Path(config.output_dir)  # type: ignore[arg-type]
    run_dir.mkdir()
    (run_dir / CONFIG_FILE).write_text("precious: true\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(config, progress=False)
    assert (run_dir / CONFIG_FILE).read_text(encoding="utf-8") == "precious: true\n"
    assert sorted(p.name for p in run_dir.iterdir()) == [CONFIG_FILE]


# --- train() and preflight: the caller's config, each check once, compare ------------------------------------

MARKER = "synthetic:marker?distance=2&prefix=2&vocab=4&train=60&validation=20&test=20"


def test_train_leaves_the_callers_config_alone(make_config: MakeConfig, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = make_config(**{"output_dir": None, "train.epochs": 1})
    before = config.to_dict()
    result = train(config, progress=False)
    assert config.to_dict() == before and config.output_dir is None
    assert result.run_dir.parent == Path("runs") and result.run_dir.name.startswith("lstm-")
    assert (tmp_path / result.run_dir / CONFIG_FILE).is_file()


def test_preflight_runs_each_check_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import Counter

    from seqnlp.data import synthetic
    from seqnlp.training import run

    calls: Counter[str] = Counter()

    def counted(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return original(*args, **kwargs)
        return call

    for name in ("validate", "check_dim", "check_tensorboard", "check_synthetic"):
        monkeypatch.setattr(run, name, counted(name, getattr(run, name)))
    monkeypatch.setattr(synthetic, "max_tokens", counted("max_tokens", synthetic.max_tokens))
    vectors = tmp_path / "v.txt"
    vectors.write_text("".join(f"{w} 0.1 0.2 0.3 {i}\n" for i, w in enumerate(["d0", "d1", "d2", "x0", "x1"])))
    config = load_config(updates={"data.dataset": MARKER, "model.pretrained_vectors": str(vectors),
                                  "model.embedding_dim": 4, "model.hidden_size": 4, "train.epochs": 1,
                                  "train.device": "cpu", "train.num_threads": 1, "tokenizer.min_frequency": 1,
                                  "output_dir": str(tmp_path / "run")})
    train(config, progress=False)
    assert calls == {"validate": 1, "check_dim": 1, "check_tensorboard": 1, "check_synthetic": 1, "max_tokens": 1}


def test_compare_preflights_every_config_before_the_first_run_trains(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from seqnlp.compare import runs

    trained: list[object] = []
    monkeypatch.setattr(runs, "measure_run", lambda *args, **kwargs: trained.append(args))
    base = load_config(updates={"data.dataset": "synthetic:marker?distance=10&prefix=2"})
    with pytest.raises(ConfigError, match="up to 13 tokens, more than tokenizer.max_length=8"):
        runs.run_grid(base, {"tokenizer.max_length": [64, 8]}, [1], tmp_path, isolate=False, progress=False)
    assert trained == [] and not (tmp_path / "runs").exists()


def test_the_public_api_names_train_resume_and_the_errors() -> None:
    import seqnlp
    from seqnlp import errors
    from seqnlp.compare import compare
    from seqnlp.training import recipe, run

    # seqnlp.train is the whole recipe: a language-model stage first when train.pretrain asks (recipe), then run's.
    assert seqnlp.train is recipe.train and seqnlp.resume is recipe.resume and seqnlp.TrainResult is run.TrainResult
    for name in ("SeqnlpError", "ConfigError", "DataError", "CheckpointError", "TrainingError", "TrainingInterrupted",
                 "DistributedError"):
        assert getattr(seqnlp, name) is getattr(errors, name) and name in seqnlp.__all__
    assert "resume" in seqnlp.__all__ and callable(seqnlp.load_config) and callable(compare)
    assert callable(seqnlp.evaluate) and callable(seqnlp.load) and callable(seqnlp.export_run)
