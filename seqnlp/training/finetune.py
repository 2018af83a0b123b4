"""Starting from a pretrained run, and fine-tuning from it as ULMFiT does (docs/pretraining.md).

A new run with ``train.init_from`` (or ``train.pretrain``, whose language model lands in RUN_DIR/pretrained) takes
that run's tokenizer and copies its ``embedding.*`` and ``encoder.*`` weights; the head (and anything else the
pretrained run lacks) starts fresh. Every copied parameter must exist on both sides with the same shape, and the
cell must be the same, or the run stops before training with one line naming the parameter and both shapes.

Fine-tuning treats the model as layer groups from the top down: the head (with pooling and anything else that is
not embedding or encoder), each recurrent layer (top first), the embedding. ``train.layer_lr_decay`` gives each
group that fraction of the rate of the group above (discriminative fine-tuning), and ``train.gradual_unfreezing``
trains the head alone at first and unfreezes one more group every N epochs (gradual unfreezing).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from seqnlp.checkpoint import CONFIG_FILE, PRETRAINED_DIR, TOKENIZER_FILE, WEIGHTS_FILE, VOCAB_KEY
from seqnlp.config import Config, ModelConfig, TokenizerConfig, TrainConfig, config_from_dict, read_config_file
from seqnlp.errors import CheckpointError, ConfigError
from seqnlp.model import RNNClassifier
from seqnlp.tokenizer import load_tokenizer, pad_id
from seqnlp.training.vectors import is_frozen

log = logging.getLogger(__name__)

PRETRAINED_PREFIXES = ("embedding.", "encoder.")  # what a pretrained start copies; the rest is new
_LAYER = re.compile(r"encoder\.rnn\.\w+_l(\d+)(_reverse)?$")  # a recurrent layer's parameter (PyTorch's names)
_ENCODER_KEYS = ("cell", "embedding_dim", "hidden_size", "num_layers", "bidirectional")


def init_dir(config: Config, run_dir: Path) -> Optional[Path]:
    """Where a new run's tokenizer, embedding and encoder come from: ``train.init_from``, or RUN_DIR/pretrained
    with ``train.pretrain``; None for a random start."""
    if config.train.init_from is not None:
        return Path(config.train.init_from)
    return run_dir / PRETRAINED_DIR if config.train.pretrain else None


def init_tokenizer_config(config: Config, source: Path) -> TokenizerConfig:
    """The tokenizer settings of a run started from ``source``: its tokenizer.json, truncated as this run says."""
    return dataclasses.replace(config.tokenizer, path=str(source / TOKENIZER_FILE))


def check_init_dir(config: Config, source: Path) -> None:
    """Before any data loads: ``source`` is a run directory whose encoder this model can take, parameter by
    parameter (the same cell, and every embedding/encoder shape equal); a ConfigError names what differs."""
    for name in (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE):
        if not (source / name).is_file():
            raise ConfigError(f"train.init_from: {source} holds no {name}; give a directory written by seqnlp "
                              "pretrain (or seqnlp train)")
    try:
        theirs = config_from_dict(read_config_file(source / CONFIG_FILE)).model
    except ConfigError as exc:
        raise ConfigError(f"train.init_from: {source / CONFIG_FILE}: {exc}") from None
    ours = config.model
    if _cell(theirs) != _cell(ours):
        raise ConfigError(f"train.init_from: {source} has a {_cell(theirs)} encoder and this run's model.cell is "
                          f"{_cell(ours)}; a pretrained encoder only starts a model of its own cell")
    tokenizer = load_tokenizer(source / TOKENIZER_FILE)
    with torch.device("meta"):  # shapes only: no memory, no initialization
        model = RNNClassifier(ours, tokenizer.get_vocab_size(), 2, pad_id=pad_id(tokenizer))
    match_shapes(model, saved_shapes(source / WEIGHTS_FILE), source / WEIGHTS_FILE)


def saved_shapes(path: Path) -> dict[str, list[int]]:
    """Parameter name -> shape of a safetensors file, read from its header (no tensor is loaded)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: list(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"weights file {path} is corrupt or truncated: {str(exc).splitlines()[0]}") from None


def match_shapes(model: nn.Module, saved: Mapping[str, Sequence[int]], path: Path) -> list[str]:
    """The names ``model`` takes from ``saved`` (embedding.*, encoder.*), each present on both sides with the
    same shape; anything else is a ConfigError naming the parameter and both shapes."""
    own = {name: list(t.shape) for name, t in model.state_dict().items() if name.startswith(PRETRAINED_PREFIXES)}
    theirs = {name: list(shape) for name, shape in saved.items() if name.startswith(PRETRAINED_PREFIXES)}
    for name, shape in own.items():
        if name not in theirs:
            raise ConfigError(f"train.init_from: {path} has no {name} (this model's is {shape}); its model."
                              f"{'/'.join(_ENCODER_KEYS)} must match this run's")
        if theirs[name] != shape:
            raise ConfigError(f"train.init_from: {name} is {theirs[name]} in {path} but {shape} in this model; set "
                              f"model.{'/'.join(_ENCODER_KEYS)} as the pretrained run did")
    for name, shape in theirs.items():
        if name not in own:
            raise ConfigError(f"train.init_from: {path} has {name} {shape}, which this model lacks; set "
                              f"model.{'/'.join(_ENCODER_KEYS)} as the pretrained run did")
    return sorted(own)


def load_pretrained(model: nn.Module, source: Path, vocab: Optional[str] = None) -> int:
    """Copy ``source``'s embedding and encoder weights into ``model`` (checked by ``match_shapes``); returns how
    many values were copied. ``vocab`` is the digest of this run's tokenizer, checked against the weights'."""
    path = source / WEIGHTS_FILE
    names = match_shapes(model, saved_shapes(path), path)
    with safe_open(str(path), framework="pt") as f:
        trained_with = (f.metadata() or {}).get(VOCAB_KEY)
        state = {name: f.get_tensor(name) for name in names}
    if vocab is not None and trained_with is not None and trained_with != vocab:
        raise CheckpointError(f"{path} was trained with another vocabulary than {source / TOKENIZER_FILE}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not any(n.startswith(PRETRAINED_PREFIXES) for n in missing)
    copied = sum(t.numel() for t in state.values())
    log.info("started from %s: %s values of the embedding and encoder; new: %s", source, f"{copied:,}",
             ", ".join(sorted({n.split('.')[0] for n in missing})) or "nothing")
    return copied


def layer_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names from the top down: the rest (head, pooling, ...), each recurrent layer (top first), the
    embedding."""
    layers = model.encoder.rnn.num_layers
    groups: list[list[str]] = [[] for _ in range(layers + 2)]
    for name, _ in model.named_parameters():
        match = _LAYER.match(name)
        index = len(groups) - 1 if name.startswith("embedding.") else layers - int(match[1]) if match else 0
        groups[index].append(name)
    return groups


def lr_scales(model: nn.Module, decay: float) -> dict[str, float]:
    """Parameter name -> learning-rate multiplier: ``decay`` to the power of its group's depth below the head."""
    return {name: decay**depth for depth, names in enumerate(layer_groups(model)) for name in names}


def trainable_groups(tc: TrainConfig, num_groups: int, epoch: int) -> int:
    """How many layer groups, from the top, train in ``epoch`` (1-based) under ``train.gradual_unfreezing``."""
    if tc.gradual_unfreezing == 0:
        return num_groups
    return min(num_groups, 1 + (epoch - 1) // tc.gradual_unfreezing)


def apply_freezing(model: nn.Module, mc: ModelConfig, tc: TrainConfig, epoch: int) -> None:
    """Freeze for ``epoch`` what gradual unfreezing and ``model.freeze_embeddings`` hold back; train the rest.

    A frozen parameter gets no gradient, and AdamW leaves a parameter without one untouched (weight decay
    included), so unfreezing needs no new optimizer.
    """
    groups = layer_groups(model)
    trainable = trainable_groups(tc, len(groups), epoch)
    params = dict(model.named_parameters())
    frozen_groups, changed = [], False
    for index, names in enumerate(groups):
        frozen = index >= trainable or (index == len(groups) - 1 and is_frozen(mc.freeze_embeddings, epoch))
        if frozen and names:
            frozen_groups.append(_group_name(index, len(groups)))
        for name in names:
            changed |= params[name].requires_grad == frozen
            params[name].requires_grad_(not frozen)
    if changed:
        log.info("epoch %d: %s", epoch, f"frozen: {', '.join(frozen_groups)}" if frozen_groups else
                 "every layer trains from here on")


def _group_name(index: int, num_groups: int) -> str:
    if index == num_groups - 1:
        return "embedding"
    return "head" if index == 0 else f"recurrent layer {num_groups - 2 - index}"


def _cell(model: ModelConfig) -> str:
    return model.cell if model.cell != "rnn" else f"rnn ({model.nonlinearity})"
