"""The language model: each direction sees only its own side of the text, padding changes nothing, a classifier
loading its weights computes the same features, and a toy language model's perplexity falls."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from seqnlp.batching import Batch
from seqnlp.config import ModelConfig, TrainConfig
from seqnlp.lm import (
    LanguageModel,
    LanguageModelObjective,
    cross_direction_blocks,
    directional_outputs,
    evaluate_language_model,
    softmax_shape,
)
from seqnlp.model import RNNClassifier
from seqnlp.training.loop import train_step
from seqnlp.training.schedule import make_optimizer

VOCAB = 40
CELLS = ["rnn", "lstm", "gru"]


def tiny(cell: str = "lstm", layers: int = 2, bidirectional: bool = True, **kw: object) -> ModelConfig:
    return ModelConfig(cell=cell, embedding_dim=8, hidden_size=6, num_layers=layers, bidirectional=bidirectional,
                       dropout=0.0, embedding_dropout=0.0, **kw)  # type: ignore[arg-type]


def ids_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (2..VOCAB-1) padded with 0 after each length: [B, T], lengths [B]."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(2, VOCAB, (len(lengths), width), generator=gen)
    for row, length in enumerate(lengths):
        ids[row, length:] = 0
    return ids, torch.tensor(lengths)


def test_the_adaptive_softmax_fits_the_vocabulary_and_the_width() -> None:
    assert softmax_shape([250, 1000, 5000], 30000, 128) == ([250, 1000, 5000], 4.0)  # projections 32, 8, 2
    assert softmax_shape([250, 1000, 5000], 800, 128) == ([250], 4.0)
    assert softmax_shape([250, 1000], 40, 128) == ([20], 4.0)  # none fits: half the vocabulary
    assert softmax_shape([250, 1000, 5000], 30000, 16) == ([250, 1000], 4.0)  # a third cluster: 16 // 64 = 0 dims
    assert softmax_shape([2000], 3, 2) == ([1], 1.0)


@pytest.mark.parametrize("cell", CELLS)
def test_each_direction_sees_only_its_own_side(cell: str) -> None:
    """Changing the tokens after position k leaves the forward outputs up to k alone, and changing the tokens
    before k leaves the backward outputs from k on alone, through every layer of a stacked encoder."""
    torch.manual_seed(0)
    model = LanguageModel(tiny(cell, layers=3), VOCAB).eval()
    ids, lengths = ids_batch([9, 9])
    k = 4
    later, earlier = ids.clone(), ids.clone()
    later[:, k + 1 :] = torch.randint(2, VOCAB, later[:, k + 1 :].shape)
    earlier[:, :k] = torch.randint(2, VOCAB, earlier[:, :k].shape)
    run = lambda x: directional_outputs(model.encoder.rnn, model.embedding(x), lengths, False)  # noqa: E731
    base, after, before = run(ids), run(later), run(earlier)  # [D, B, T, H]
    assert_close(after[0, :, : k + 1], base[0, :, : k + 1])
    assert not torch.allclose(after[0, :, k + 1 :], base[0, :, k + 1 :])
    assert_close(before[1, :, k:], base[1, :, k:])
    assert not torch.allclose(before[1, :, :k], base[1, :, :k])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers,bidirectional", [(1, True), (2, True), (2, False)])
def test_a_classifier_with_these_weights_computes_the_same_features(cell: str, layers: int,
                                                                    bidirectional: bool) -> None:
    """The cross-direction weights are zero, so the classifier's ordinary (packed, dense or masked) encoder gives
    the language model's per-direction outputs, padding included."""
    torch.manual_seed(1)
    cfg = tiny(cell, layers, bidirectional)
    lm = LanguageModel(cfg, VOCAB).eval()
    classifier = RNNClassifier(cfg, VOCAB, 2).eval()
    classifier.load_state_dict({k: v for k, v in lm.state_dict().items() if k.startswith(("embedding.", "encoder."))},
                               strict=False)
    ids, lengths = ids_batch([7, 3, 5])
    embedded = lm.embedding(ids)
    ours = directional_outputs(lm.encoder.rnn, embedded, lengths, False)  # [D, B, T, H]
    theirs, _ = classifier.encoder(embedded, lengths)  # [B, T, D*H], zeros past each length
    mask = (torch.arange(7) < lengths[:, None])[..., None]
    for direction in range(2 if bidirectional else 1):
        assert_close(theirs[..., direction * 6 : (direction + 1) * 6] * mask, ours[direction] * mask)


def test_a_text_alone_or_padded_in_a_batch_has_the_same_losses() -> None:
    torch.manual_seed(2)
    model = LanguageModel(tiny(), VOCAB).eval()
    ids, lengths = ids_batch([6, 2, 4])
    together = model(ids, lengths)  # [D, N]
    assert together.shape == (2, 12)
    alone = model(ids[1:2, :2], lengths[1:2])  # the second text: tokens 6..7 of the row-major order
    assert_close(alone, together[:, 6:8])
    # Targets: the next token forward, the previous one backward, [PAD] past either end.
    forward_last = model.decoder.log_prob(model.output_dropout(
        directional_outputs(model.encoder.rnn, model.embedding(ids[1:2, :2]), lengths[1:2], False)[0, 0, 1:2]))
    assert_close(-forward_last[0, 0], alone[0, 1])


def test_every_parameter_learns_but_the_cross_direction_weights_which_stay_zero() -> None:
    torch.manual_seed(3)
    model = LanguageModel(tiny(layers=2), VOCAB, cutoffs=[10, 20])
    blocks = cross_direction_blocks(model.encoder.rnn)
    assert len(blocks) == 2 and all(bool((w[:, cols] == 0).all()) for w, cols in blocks)
    ids, lengths = ids_batch([8, 8, 5, 3])
    ids[0, :8] = torch.arange(2, 10) * 4  # reach every cluster of the adaptive softmax
    model(ids, lengths).mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name
    for weight, cols in blocks:
        assert bool((weight.grad[:, cols] == 0).all())
    optimizer = make_optimizer(model, TrainConfig(lr=0.05, weight_decay=0.1))
    batch = Batch(ids, lengths, None, np.arange(4))
    for _ in range(3):
        train_step(model, batch, torch.device("cpu"), optimizer, torch.amp.GradScaler("cpu", enabled=False),
                   LanguageModelObjective(), 0.05)
    assert all(bool((w[:, cols] == 0).all()) for w, cols in blocks)


def test_a_toy_language_models_perplexity_falls() -> None:
    """Texts that count up (5 6 7 ...) are predictable from either side: training must lower the perplexity
    on held-out texts far below where it started and below the vocabulary's size."""
    torch.manual_seed(4)
    model = LanguageModel(tiny(layers=1), VOCAB, cutoffs=[10])

    def counting(n: int, seed: int) -> Batch:
        gen = torch.Generator().manual_seed(seed)
        starts = torch.randint(2, 20, (n, 1), generator=gen)
        ids = starts + torch.arange(12)[None, :]  # [n, 12], ids 2..31
        return Batch(ids, torch.full((n,), 12), None, np.arange(n))

    held_out = counting(16, seed=99)

    class Loader(list):
        sharded = False

    before = evaluate_language_model(model, Loader([held_out]), torch.device("cpu"))["perplexity"]
    optimizer = make_optimizer(model, TrainConfig(lr=0.02))
    for step in range(150):
        train_step(model, counting(16, seed=step), torch.device("cpu"), optimizer,
                   torch.amp.GradScaler("cpu", enabled=False), LanguageModelObjective(), 0.02)
    after = evaluate_language_model(model, Loader([held_out]), torch.device("cpu"))
    # Inside a text each token is certain; only the ends ([PAD] after 12 tokens) stay hard for a 6-unit LSTM.
    assert after["perplexity"] < min(before, VOCAB) / 4
    assert set(after) >= {"loss", "perplexity", "perplexity_forward", "perplexity_backward", "num_tokens"}
    assert after["num_tokens"] == 16 * 12 and math.isclose(after["perplexity"], math.exp(after["loss"]))


def test_scoring_in_slices_without_gradients_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(5)
    model = LanguageModel(tiny(), VOCAB, cutoffs=[10, 20]).eval()
    ids, lengths = ids_batch([9, 4, 7])
    whole = model(ids, lengths).detach()  # gradients on: one slice
    monkeypatch.setattr("seqnlp.lm.EVAL_ROWS", 5)
    with torch.no_grad():
        assert_close(model(ids, lengths), whole)
