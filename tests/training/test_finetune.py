"""Starting from a pretrained run: its tokenizer and weights load exactly, mismatches stop in one line, and the
ULMFiT options (per-layer learning rates, gradual unfreezing) act on the right layer groups."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from seqnlp.batching import Batch
from seqnlp.checkpoint import PRETRAINED_DIR, TOKENIZER_FILE, WEIGHTS_FILE
from seqnlp.cli import main
from seqnlp.config import ModelConfig, TrainConfig, load_config
from seqnlp.errors import CheckpointError, ConfigError
from seqnlp.model import RNNClassifier
from seqnlp.objective import Objective
from seqnlp.tokenizer import load_tokenizer
from seqnlp.training import pretrain, train
from seqnlp.training.finetune import (
    apply_freezing,
    check_init_dir,
    init_dir,
    layer_groups,
    load_pretrained,
    lr_scales,
    trainable_groups,
)
from seqnlp.training.loop import train_step
from seqnlp.training.run import prepare
from seqnlp.training.schedule import make_optimizer
from tests.helpers import tiny_config, tiny_set_args, toy_rows, write_csv

TWO_LAYERS = {"model.num_layers": 2, "pretrain.epochs": 1, "pretrain.lr": 0.01}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetune-data")
    return {"train": write_csv(root / "train.csv", toy_rows(200, seed=0)),
            "test": write_csv(root / "test.csv", toy_rows(40, seed=1))}


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory, files: dict[str, Path]) -> Path:
    """A language model (2-layer bidirectional LSTM) pretrained on the toy texts."""
    root = tmp_path_factory.mktemp("lm")
    config = tiny_config(root, files, **TWO_LAYERS, output_dir=str(root / "lm"))
    return pretrain(config, progress=False).run_dir


def test_init_from_loads_the_tokenizer_embedding_and_encoder_exactly(tmp_path: Path, files: dict[str, Path],
                                                                     lm_dir: Path) -> None:
    config = tiny_config(tmp_path, files, **{"model.num_layers": 2, "train.init_from": str(lm_dir)})
    setup = prepare(config, torch.device("cpu"), Path(config.output_dir))  # type: ignore[arg-type]
    assert setup.tokenizer.get_vocab() == load_tokenizer(lm_dir / TOKENIZER_FILE).get_vocab()
    saved = load_file(str(lm_dir / WEIGHTS_FILE))
    ours = setup.model.state_dict()
    shared = [name for name in ours if name.startswith(("embedding.", "encoder."))]
    assert len(shared) == 1 + 2 * 2 * 4  # the embedding, then 2 layers x 2 directions x (2 weights + 2 biases)
    for name in shared:
        assert torch.equal(ours[name], saved[name]), name
    assert not any(name.startswith("head.") for name in saved)  # the head is new: the language model has none
    assert any(name.startswith("decoder.") for name in saved)  # ... and its softmax stays behind


def test_the_pretrained_start_is_where_training_starts(tmp_path: Path, files: dict[str, Path], lm_dir: Path) -> None:
    """``init_dir`` finds the start: train.init_from, or RUN_DIR/pretrained with train.pretrain."""
    run_dir = tmp_path / "run"
    assert init_dir(load_config(), run_dir) is None
    assert init_dir(load_config(updates={"train.init_from": str(lm_dir)}), run_dir) == lm_dir
    assert init_dir(load_config(updates={"train.pretrain": True}), run_dir) == run_dir / PRETRAINED_DIR


@pytest.mark.parametrize("change,message", [
    ({"model.hidden_size": 8},
     r"train\.init_from: encoder\.rnn\.weight_ih_l0 is \[64, 16\] in .*model\.safetensors but \[32, 16\] in this "
     r"model; set model\.cell/embedding_dim/hidden_size/num_layers/bidirectional as the pretrained run did"),
    ({"model.embedding_dim": 12}, r"embedding\.weight is \[\d+, 16\] in .* but \[\d+, 12\] in this model"),
    ({"model.num_layers": 1}, r"has encoder\.rnn\.\w+_l1 \[[\d, ]+\], which this model lacks"),
    ({"model.num_layers": 3}, r"has no encoder\.rnn\.weight_ih_l2 \(this model's is \[64, 32\]\)"),
    ({"model.bidirectional": False}, r"encoder\.rnn\.weight_ih_l1 is \[64, 32\] in .* but \[64, 16\] in this model"),
    ({"model.bidirectional": False, "model.num_layers": 1},
     r"has encoder\.rnn\.\w+_l\d(_reverse)? \[[\d, ]+\], which this model lacks"),
    ({"model.cell": "gru"}, r"has a lstm encoder and this run's model\.cell is gru; a pretrained encoder only "
                            r"starts a model of its own cell"),
])
def test_a_mismatch_is_refused_in_one_line_naming_the_parameter_and_both_shapes(
        tmp_path: Path, files: dict[str, Path], lm_dir: Path, change: dict[str, object], message: str) -> None:
    settings = {"model.num_layers": 2, **change}
    args = ["train", "--data-files", f"train={files['train']}", "--init-from", str(lm_dir), "-o", str(tmp_path / "r"),
            *tiny_set_args(**{k.replace(".", "__"): v for k, v in settings.items()})]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: train.init_from: ")
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "r").exists()  # refused before any data loads or any directory is made


def test_a_directory_that_is_no_run_is_refused(tmp_path: Path) -> None:
    config = load_config(updates={"train.init_from": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"train.init_from: .* holds no config.yaml; give a directory written by "
                                          r"seqnlp pretrain \(or seqnlp train\)"):
        check_init_dir(config, tmp_path)


@pytest.mark.parametrize("updates,message", [
    ({"train.init_from": "x", "train.pretrain": True}, "with train.pretrain: the pretrained run gives the tokenizer"),
    ({"train.init_from": "x", "model.pretrained_vectors": "glove-6b-50d"}, "with model.pretrained_vectors"),
    ({"train.init_from": "x", "tokenizer.path": "t.json"}, "with tokenizer.path"),
    ({"train.init_from": " "}, "give a pretrained run directory, or null"),
    ({"train.layer_lr_decay": 1.5}, r"train.layer_lr_decay: 1.5 must be in \(0, 1\]"),
    ({"train.layer_lr_decay": 0.0}, "train.layer_lr_decay: 0.0 must be > 0"),
    ({"train.gradual_unfreezing": -1}, "train.gradual_unfreezing: -1 must be >= 0"),
    ({"pretrain.cutoffs": [100, 50]}, r"pretrain.cutoffs: \[100, 50\] must be one or more increasing"),
    ({"pretrain.dropout": 1.0}, r"pretrain.dropout: 1.0 must be in \[0, 1\)"),
    ({"train.pretrain": True, "data.streaming": True}, "train.pretrain: the language model reads the whole"),
])
def test_pretraining_settings_are_checked(updates: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(updates=updates)


def two_layer_classifier() -> RNNClassifier:
    torch.manual_seed(0)
    return RNNClassifier(ModelConfig(embedding_dim=4, hidden_size=3, num_layers=2, pooling="attention"), 20, 2)


def test_layer_groups_run_from_the_head_down_to_the_embedding() -> None:
    groups = layer_groups(two_layer_classifier())
    assert groups[0] == ["pooling.score.weight", "head.1.weight", "head.1.bias"]
    assert groups[1] == [f"encoder.rnn.{w}_l1{d}" for d in ("", "_reverse")
                         for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert groups[2] == [name.replace("_l1", "_l0") for name in groups[1]]
    assert groups[3] == ["embedding.weight"]
    scales = lr_scales(two_layer_classifier(), 0.5)
    assert (scales["head.1.weight"], scales["encoder.rnn.bias_hh_l1"], scales["encoder.rnn.weight_ih_l0_reverse"],
            scales["embedding.weight"]) == (1.0, 0.5, 0.25, 0.125)


def test_each_layer_group_steps_at_its_own_rate() -> None:
    model = two_layer_classifier()
    optimizer = make_optimizer(model, TrainConfig(), lr_scales(model, 0.5))
    assert [g["lr_scale"] for g in optimizer.param_groups] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    batch = Batch(torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2]), torch.tensor([0, 1]), np.arange(2))
    train_step(model, batch, torch.device("cpu"), optimizer, torch.amp.GradScaler("cpu", enabled=False),
               Objective(2), lr=0.2)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    # One rate (the default) keeps the two groups every run had: decayed matrices, then the rest.
    plain = make_optimizer(model, TrainConfig())
    assert len(plain.param_groups) == 2 and {g["lr_scale"] for g in plain.param_groups} == {1.0}


def test_gradual_unfreezing_trains_one_more_group_every_n_epochs() -> None:
    tc = TrainConfig(gradual_unfreezing=2)
    assert [trainable_groups(tc, 4, epoch) for epoch in range(1, 10)] == [1, 1, 2, 2, 3, 3, 4, 4, 4]
    assert trainable_groups(TrainConfig(), 4, 1) == 4
    model = two_layer_classifier()
    trainable = lambda: {n for n, p in model.named_parameters() if p.requires_grad}  # noqa: E731
    groups = layer_groups(model)
    apply_freezing(model, ModelConfig(), TrainConfig(gradual_unfreezing=1), epoch=1)
    assert trainable() == set(groups[0])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.5))
    batch = Batch(torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2]), torch.tensor([0, 1]), np.arange(2))
    train_step(model, batch, torch.device("cpu"), optimizer, torch.amp.GradScaler("cpu", enabled=False),
               Objective(2), lr=0.1)
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) == (name not in groups[0]), name  # frozen ones do not move
    apply_freezing(model, ModelConfig(), TrainConfig(gradual_unfreezing=1), epoch=3)
    assert trainable() == set(groups[0] + groups[1] + groups[2])
    apply_freezing(model, ModelConfig(freeze_embeddings=True), TrainConfig(gradual_unfreezing=1), epoch=9)
    assert trainable() == set(groups[0] + groups[1] + groups[2])  # model.freeze_embeddings still holds it
    apply_freezing(model, ModelConfig(), TrainConfig(), epoch=1)
    assert trainable() == {n for n, _ in model.named_parameters()}


def test_a_pretrained_start_with_ulmfit_options_trains_the_toy_task(tmp_path: Path, files: dict[str, Path],
                                                                     lm_dir: Path) -> None:
    config = tiny_config(tmp_path, files, **{"model.num_layers": 2, "train.init_from": str(lm_dir),
                                             "train.epochs": 6, "train.gradual_unfreezing": 1,
                                             "train.layer_lr_decay": 0.5})
    result = train(config, progress=False)
    assert result.test is not None and result.test["accuracy"] >= 0.9
    lrs = [record["lr"] for record in result.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] <= config.train.lr  # the head's rate: the schedule's


def test_load_pretrained_refuses_weights_of_another_vocabulary(tmp_path: Path, lm_dir: Path) -> None:
    tokenizer = load_tokenizer(lm_dir / TOKENIZER_FILE)
    model = RNNClassifier(ModelConfig(embedding_dim=16, hidden_size=16, num_layers=2), tokenizer.get_vocab_size(), 2)
    assert load_pretrained(model, lm_dir) > 0
    with pytest.raises(CheckpointError, match="was trained with another vocabulary"):
        load_pretrained(model, lm_dir, vocab="not this one")
