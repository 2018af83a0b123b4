"""The model matrix: every cell x depth x direction x pooling, checked against the model invariants.

Models are tiny (vocab 30, embedding 8, hidden 6, batch of 4) so the whole matrix runs in a few seconds.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from seqnlp import config
from seqnlp.config import ModelConfig
from seqnlp.errors import ConfigError
from seqnlp.model import (
    CELL_CLASSES,
    Pooling,
    RNNClassifier,
    cell_name,
    count_parameters,
    gather_steps,
    layer_weights,
    make_rnn,
    step_indices,
)

VOCAB = 30
EMBED = 8
HIDDEN = 6
LABELS = 3
PAD = 0
LENGTHS = [5, 2, 7, 1]  # mixed lengths: the batch runs packed; the longest sets the width

CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per layer and direction, as PyTorch stacks them
POOLINGS = ["last", "mean", "max", "attention"]

MATRIX = [
    pytest.param(cell, nonlinearity, layers, bidirectional, pooling,
                 id=f"{cell}-{nonlinearity}-L{layers}-{'bi' if bidirectional else 'uni'}-{pooling}")
    for cell, nonlinearity in CELLS
    for layers in (1, 2)
    for bidirectional in (False, True)
    for pooling in POOLINGS
]
ENCODERS = [
    pytest.param(cell, nonlinearity, layers, bidirectional,
                 id=f"{cell}-{nonlinearity}-L{layers}-{'bi' if bidirectional else 'uni'}")
    for cell, nonlinearity in CELLS
    for layers in (1, 2)
    for bidirectional in (False, True)
]


def model_config(cell: str = "lstm", nonlinearity: str = "tanh", num_layers: int = 1, bidirectional: bool = True,
                 pooling: str = "max", dropout: float = 0.0, **extra: object) -> ModelConfig:
    return ModelConfig(cell=cell, nonlinearity=nonlinearity, embedding_dim=EMBED, hidden_size=HIDDEN,
                       num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                       embedding_dropout=0.0, pooling=pooling, **extra)  # type: ignore[arg-type]


def build(*args: object, seed: int = 0, **kwargs: object) -> RNNClassifier:
    torch.manual_seed(seed)
    return RNNClassifier(model_config(*args, **kwargs), VOCAB, LABELS, pad_id=PAD)  # type: ignore[arg-type]


def padded_batch(
    lengths: list[int], extra_width: int = 0, seed: int = 1, fill: int | None = PAD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random real ids (never PAD) -> ids [B, max(lengths) + extra_width], lengths [B].

    The real ids depend on ``lengths`` and ``seed`` only, not on the width. Positions past each length hold
    ``fill``, or random real ids when ``fill`` is None (garbage that only the lengths mark as padding).
    """
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths) + extra_width
    real = torch.randint(1, VOCAB, (len(lengths), max(lengths)), generator=gen)
    real = F.pad(real, (0, extra_width))  # [B, T]
    garbage = torch.randint(1, VOCAB, (len(lengths), width), generator=torch.Generator().manual_seed(seed + 1000))
    lens = torch.tensor(lengths)  # [B]
    is_real = torch.arange(width) < lens[:, None]  # [B, T]
    padding = garbage if fill is None else torch.full_like(real, fill)
    return torch.where(is_real, real, padding), lens


# --- shape and padding invariance -------------------------------------------------------------------------


@pytest.mark.parametrize("recurrence", ["packed", "masked"])
@pytest.mark.parametrize("cell, nonlinearity, layers, bidirectional, pooling", MATRIX)
def test_logits_shape_and_padding_invariance(cell: str, nonlinearity: str, layers: int, bidirectional: bool,
                                             pooling: str, recurrence: str) -> None:
    model = build(cell, nonlinearity, layers, bidirectional, pooling, dropout=0.3, recurrence=recurrence).eval()
    ids, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        batched = model(ids, lengths)  # the packed or the masked path
        assert batched.shape == (len(LENGTHS), LABELS)
        assert batched.dtype == torch.float32
        assert torch.isfinite(batched).all()

        # Each text alone has no padding at all: the dense path.
        alone = torch.cat([model(ids[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate(LENGTHS)])
        assert_close(alone, batched)

        # Extra padding columns, and garbage ids where the lengths say "padding", change nothing.
        wide_ids, wide_lengths = padded_batch(LENGTHS, extra_width=4)
        assert_close(model(wide_ids, wide_lengths), batched)
        garbage_ids, _ = padded_batch(LENGTHS, extra_width=4, fill=None)  # same real ids, random "padding"
        assert (garbage_ids != wide_ids).any()
        assert_close(model(garbage_ids, wide_lengths), batched)

    # The texts really differ, so a model that ignored its input would not pass the checks above by accident.
    assert not torch.allclose(batched[0], batched[2])


@pytest.mark.parametrize("cell, nonlinearity, layers, bidirectional", ENCODERS)
def test_equal_lengths_dense_path_matches_padded_batch(cell: str, nonlinearity: str, layers: int,
                                                       bidirectional: bool) -> None:
    """A batch whose texts all have the same length runs dense; with padding columns added it runs packed."""
    model = build(cell, nonlinearity, layers, bidirectional, "mean").eval()
    ids, lengths = padded_batch([4, 4, 4])
    wide_ids, wide_lengths = padded_batch([4, 4, 4], extra_width=3)
    with torch.no_grad():
        assert_close(model(wide_ids, wide_lengths), model(ids, lengths))


@pytest.mark.parametrize("head_hidden_size, activation", [(0, "relu"), (5, "relu"), (5, "tanh"), (5, "gelu")])
def test_head_variants_give_logits_per_label(head_hidden_size: int, activation: str) -> None:
    torch.manual_seed(0)
    cfg = model_config(head_hidden_size=head_hidden_size, head_activation=activation)
    model = RNNClassifier(cfg, VOCAB, 4, pad_id=PAD).eval()
    ids, lengths = padded_batch(LENGTHS)
    assert model(ids, lengths).shape == (len(LENGTHS), 4)
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert len(linears) == (2 if head_hidden_size else 1)
    assert linears[-1].out_features == 4


def test_unknown_cell_is_a_config_error_naming_the_choices() -> None:
    cfg = model_config()
    cfg.cell = "transformer"
    with pytest.raises(ConfigError, match=r"model\.cell.*transformer.*rnn, lstm, gru"):
        make_rnn(cfg, EMBED)


# --- the shared plumbing: cell table, per-layer weights, reversal within each length ------------------------


def test_the_cell_table_has_the_configs_names_and_round_trips() -> None:
    assert tuple(CELL_CLASSES) == config.CELLS  # config validates model.cell with these names, without torch
    for name, kind in CELL_CLASSES.items():
        rnn = make_rnn(model_config(name), EMBED)
        assert type(rnn) is kind and cell_name(rnn) == name
        assert cell_name(kind(3, 2)) == name


def test_cell_name_refuses_other_classes_naming_the_valid_ones() -> None:
    from seqnlp.export.quantize import quantize_dynamic

    quantized, _ = quantize_dynamic(torch.nn.Sequential(make_rnn(model_config("lstm"), EMBED)))
    for other in (quantized[0], torch.nn.Linear(2, 2)):
        with pytest.raises(ValueError, match="is not one of RNN, LSTM, GRU"):
            cell_name(other)


@pytest.mark.parametrize("cell, nonlinearity, layers, bidirectional", ENCODERS)
def test_layer_weights_are_the_rnns_own_parameters_for_every_layer_and_direction(
        cell: str, nonlinearity: str, layers: int, bidirectional: bool) -> None:
    rnn = build(cell, nonlinearity, layers, bidirectional).encoder.rnn
    directions = [False, True] if bidirectional else [False]
    found = [(layer, reverse, layer_weights(rnn, layer, reverse)) for layer in range(layers) for reverse in directions]
    gates = GATES[cell]
    for layer, reverse, (w_ih, w_hh, b_ih, b_hh) in found:
        input_size = EMBED if layer == 0 else HIDDEN * len(directions)
        assert w_ih.shape == (gates * HIDDEN, input_size) and w_hh.shape == (gates * HIDDEN, HIDDEN)
        assert b_ih.shape == b_hh.shape == (gates * HIDDEN,)
    # The very Parameter objects (not copies), and together every parameter of the RNN exactly once.
    returned = [id(weight) for *_, weights in found for weight in weights]
    assert sorted(returned) == sorted(id(p) for p in rnn.parameters())
    no_bias = torch.nn.GRU(3, 2, num_layers=2, bias=False)
    assert [id(w) for w in layer_weights(no_bias, 1, False)] == [id(no_bias.weight_ih_l1), id(no_bias.weight_hh_l1)]


def test_step_indices_reverse_each_text_within_its_length_and_keep_padding_last() -> None:
    lengths = torch.tensor([3, 1, 5, 2])
    mask, reverse, last = step_indices(lengths, 5)
    assert mask.tolist() == [[True] * n + [False] * (5 - n) for n in lengths.tolist()]
    assert reverse.tolist() == [[2, 1, 0, 3, 4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 0, 2, 3, 4]]
    assert last.shape == (4, 1, 1) and last.flatten().tolist() == [2, 0, 4, 1]
    values = torch.randn(4, 5, 3)  # [B, T, F]
    flipped = gather_steps(values, reverse)  # [B, T, F]
    assert torch.equal(gather_steps(flipped, reverse), values)  # the map is its own inverse
    for row, n in enumerate(lengths.tolist()):
        assert torch.equal(flipped[row, :n], values[row, :n].flip(0))  # real steps reversed
        assert torch.equal(flipped[row, n:], values[row, n:])  # padding stays where it was: last


# --- gradients ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell, nonlinearity, layers, bidirectional, pooling", MATRIX)
def test_every_parameter_gets_a_gradient(cell: str, nonlinearity: str, layers: int, bidirectional: bool,
                                         pooling: str) -> None:
    model = build(cell, nonlinearity, layers, bidirectional, pooling).train()
    ids, lengths = padded_batch(LENGTHS)
    labels = torch.tensor([0, 1, 2, 1])
    F.cross_entropy(model(ids, lengths), labels).backward()

    for name, param in model.named_parameters():
        if name == "pooling.score.bias":
            continue  # see test_attention_score_bias_can_learn
        assert param.grad is not None, f"{name} has no gradient"
        if name == "embedding.weight":
            continue
        assert param.grad.abs().max() > 1e-6, f"{name} has a zero gradient"

    # The embedding: the padding row never learns, rows of tokens in the batch do, other rows are untouched.
    assert model.embedding.padding_idx == PAD
    grad = model.embedding.weight.grad
    used = set(ids[torch.arange(ids.shape[1]) < lengths[:, None]].tolist())
    assert PAD not in used
    assert torch.count_nonzero(grad[PAD]) == 0
    assert grad[sorted(used)].abs().max() > 1e-6
    for token in range(VOCAB):
        if token not in used:
            assert torch.count_nonzero(grad[token]) == 0, f"embedding row {token} (not in the batch) has a gradient"
        elif pooling != "max":
            # (max pooling may legitimately pass no gradient to a token whose steps never win the max)
            assert grad[token].abs().max() > 1e-6, f"embedding row {token} (in the batch) has a zero gradient"


def test_attention_score_bias_can_learn() -> None:
    model = build("gru", pooling="attention").train()
    ids, lengths = padded_batch(LENGTHS)
    F.cross_entropy(model(ids, lengths), torch.tensor([0, 1, 2, 1])).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().max() > 1e-6, f"{name} cannot learn"


# --- the final state of stacked (bidirectional) RNNs -------------------------------------------------------


@pytest.mark.parametrize("lengths, recurrence", [(LENGTHS, "packed"), (LENGTHS, "masked"), ([3, 3, 3, 3], "auto")],
                         ids=["packed", "masked", "dense"])
@pytest.mark.parametrize("cell, nonlinearity, layers, bidirectional", ENCODERS)
def test_last_pooling_is_forward_last_token_and_backward_first_token(
    cell: str, nonlinearity: str, layers: int, bidirectional: bool, lengths: list[int], recurrence: str
) -> None:
    model = build(cell, nonlinearity, layers, bidirectional, "last", recurrence=recurrence).eval()
    ids, lens = padded_batch(lengths)
    with torch.no_grad():
        embedded = model.embedding(ids)  # [B, T, E]
        outputs, final = model.encoder(embedded, lens, need_outputs=True)  # top layer's per-step outputs
        assert outputs is not None
        assert outputs.shape == (len(lengths), max(lengths), HIDDEN * (2 if bidirectional else 1))
        assert final.shape == (len(lengths), HIDDEN * (2 if bidirectional else 1))
        rows = torch.arange(len(lengths))
        forward_last = outputs[rows, lens - 1, :HIDDEN]  # [B, H]
        expected = torch.cat([forward_last, outputs[:, 0, HIDDEN:]], dim=1) if bidirectional else forward_last
        assert_close(final, expected)
        # Outputs past each length are zeros.
        for i, n in enumerate(lengths):
            assert torch.count_nonzero(outputs[i, n:]) == 0
        # The classifier with pooling=last feeds exactly this vector to its head.
        assert_close(model(ids, lens), model.head(expected))

        if layers == 2:
            # The bottom layer's final states are something else: the check above really tells layers apart.
            state = model.encoder.rnn(embedded)[1]
            h_n = state[0] if isinstance(state, tuple) else state  # [L*D, B, H]
            assert not torch.allclose(h_n[0], final[:, :HIDDEN])


# --- the masked path: same math as packing, dense kernels ---------------------------------------------------


@pytest.mark.parametrize("cell, nonlinearity, layers, bidirectional, pooling", MATRIX)
def test_masked_path_matches_packed_logits_and_gradients(cell: str, nonlinearity: str, layers: int,
                                                         bidirectional: bool, pooling: str) -> None:
    """In training mode (dropout off so both paths draw nothing): equal logits and equal gradients everywhere."""
    ids, lengths = padded_batch(LENGTHS)
    results = {}
    for recurrence in ("packed", "masked"):
        model = build(cell, nonlinearity, layers, bidirectional, pooling, recurrence=recurrence).train()
        logits = model(ids, lengths)
        (logits * torch.arange(1.0, LABELS + 1)).sum().backward()  # weights the labels differently
        grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
        results[recurrence] = logits.detach(), grads
    (packed, packed_grads), (masked, masked_grads) = results["packed"], results["masked"]
    assert_close(masked, packed)
    assert masked_grads.keys() == packed_grads.keys()
    assert any(name.startswith("encoder.rnn.") for name in masked_grads)  # the RNN's own parameters learn
    for name, grad in packed_grads.items():
        assert_close(masked_grads[name], grad, msg=name)


def test_masked_path_drops_out_between_layers_in_training_only() -> None:
    ids, lengths = padded_batch(LENGTHS)
    for dropout, differs in ((0.5, True), (0.0, False)):
        model = build("lstm", num_layers=2, dropout=dropout, recurrence="masked").train()
        embedded = model.embedding(ids)  # [B, T, E]; the encoder alone: no head dropout in play
        first, second = model.encoder(embedded, lengths)[0], model.encoder(embedded, lengths)[0]
        assert not torch.allclose(first, second) if differs else torch.equal(first, second)
    model = build("lstm", num_layers=2, dropout=0.5, recurrence="masked").eval()
    with torch.no_grad():
        masked = model(ids, lengths)
        assert_close(model(ids, lengths), masked)
        model.encoder.recurrence = "packed"
        assert_close(model(ids, lengths), masked)


def test_masked_path_under_bf16_autocast_matches_each_text_alone() -> None:
    """Under bf16 autocast the masked batch gives each text's logits alone (the dense path, the same bf16 kernels),
    and stays within bf16 rounding of the packed path, which autocast leaves in fp32 (logits here are ~0.2)."""
    model = build("lstm", num_layers=2, recurrence="masked").eval()
    ids, lengths = padded_batch(LENGTHS)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        masked = model(ids, lengths).float()
        alone = torch.cat([model(ids[i : i + 1, :n], lengths[i : i + 1]).float() for i, n in enumerate(LENGTHS)])
        model.encoder.recurrence = "packed"
        packed = model(ids, lengths).float()
    assert_close(masked, alone, atol=5e-3, rtol=0)
    assert_close(masked, packed, atol=5e-3, rtol=0)


def test_auto_recurrence_picks_the_path_by_padding_width_and_device() -> None:
    encoder = build("gru").encoder
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert encoder.path(torch.tensor([4, 4]), 4, cpu) == "dense"
    assert encoder.path(torch.tensor([4, 4]), 4, cuda) == "dense"
    assert encoder.path(torch.tensor([10] * 7 + [9]), 10, cpu) == "masked"  # 1.25% padding
    assert encoder.path(torch.tensor([10] * 7 + [9]), 10, cuda) == "packed"  # cuDNN packs natively
    assert encoder.path(torch.tensor([2, 1]), 2, cpu) == "packed"  # 25% padding, short
    assert encoder.path(torch.tensor([64, 10]), 64, cpu) == "masked"  # long: the packed CPU path slows down
    assert encoder.path(torch.tensor([63, 10]), 63, cpu) == "packed"
    encoder.recurrence = "masked"
    assert encoder.path(torch.tensor([2, 1]), 2, cuda) == "masked"
    assert encoder.path(torch.tensor([2, 2]), 2, cpu) == "dense"
    encoder.recurrence = "packed"
    assert encoder.path(torch.tensor([10] * 7 + [9]), 10, cpu) == "packed"


def test_int8_quantized_encoder_runs_mixed_batches_packed() -> None:
    """torch's dynamic int8 LSTM has no per-layer weights to call the masked kernels with: it packs instead."""
    from seqnlp.export.quantize import quantize_dynamic

    model = build("lstm", num_layers=2).eval()
    quantized, _ = quantize_dynamic(copy.deepcopy(model))
    lengths = [10] * 7 + [9]  # 1.25% padding: auto would pick the masked path for a float encoder
    ids, lens = padded_batch(lengths)
    assert model.encoder.path(lens, 10, torch.device("cpu")) == "masked"
    assert quantized.encoder.path(lens, 10, torch.device("cpu")) == "packed"
    with torch.no_grad():
        assert_close(quantized(ids, lens), model(ids, lens), atol=0.05, rtol=0.05)


# --- dropout and parameter counts --------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_inter_layer_dropout_only_when_stacked(cell: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyTorch warns about dropout on a single layer
        single = make_rnn(model_config(cell, num_layers=1, dropout=0.4), EMBED)
        stacked = make_rnn(model_config(cell, num_layers=2, dropout=0.4), EMBED)
        RNNClassifier(model_config(cell, num_layers=1, dropout=0.4), VOCAB, LABELS)
    assert single.dropout == 0.0
    assert stacked.dropout == pytest.approx(0.4)
    assert stacked.num_layers == 2 and single.num_layers == 1


@pytest.mark.parametrize("cell, nonlinearity, layers, bidirectional", ENCODERS)
def test_rnn_parameter_count_matches_pytorch_formula(cell: str, nonlinearity: str, layers: int,
                                                     bidirectional: bool) -> None:
    model = build(cell, nonlinearity, layers, bidirectional, "attention")
    directions = 2 if bidirectional else 1
    expected = 0
    for layer in range(layers):
        input_size = EMBED if layer == 0 else HIDDEN * directions
        per_direction = GATES[cell] * (HIDDEN * (input_size + HIDDEN) + 2 * HIDDEN)
        expected += per_direction * directions
    assert sum(p.numel() for p in model.encoder.rnn.parameters()) == expected
    assert model.encoder.output_dim == HIDDEN * directions

    out = HIDDEN * directions
    embedding = VOCAB * EMBED
    attention = out  # the scorer has no bias: softmax would ignore it
    head = out * LABELS + LABELS
    assert count_parameters(model) == embedding + expected + attention + head


# --- masked pooling ---------------------------------------------------------------------------------------


def trap_outputs(lengths: torch.Tensor, width: int, dim: int, pad_value: float) -> torch.Tensor:
    """Per-step outputs [B, T, D]: negative values at real positions, ``pad_value`` past each length."""
    gen = torch.Generator().manual_seed(3)
    outputs = -1.0 - torch.rand(len(lengths), width, dim, generator=gen)  # all real values < -1
    outputs[torch.arange(width) >= lengths[:, None]] = pad_value
    return outputs


@pytest.mark.parametrize("pad_value", [0.0, 1e6])
def test_max_pooling_ignores_padded_positions(pad_value: float) -> None:
    lengths = torch.tensor([3, 1, 5])
    outputs = trap_outputs(lengths, 6, 4, pad_value)
    pooled = Pooling("max", 4)(outputs, torch.zeros(3, 4), lengths)
    expected = torch.stack([outputs[i, :n].amax(dim=0) for i, n in enumerate(lengths.tolist())])
    assert_close(pooled, expected)
    assert (pooled < -1.0).all()  # a padded position (0 or huge) was never picked


@pytest.mark.parametrize("pad_value", [0.0, 1e6])
def test_mean_pooling_divides_by_true_length(pad_value: float) -> None:
    lengths = torch.tensor([3, 1, 5])
    outputs = trap_outputs(lengths, 6, 4, pad_value)
    pooled = Pooling("mean", 4)(outputs, torch.zeros(3, 4), lengths)
    expected = torch.stack([outputs[i, :n].sum(dim=0) / n for i, n in enumerate(lengths.tolist())])
    assert_close(pooled, expected)


def test_attention_pooling_weights_real_tokens_only() -> None:
    lengths = torch.tensor([3, 1, 5])
    clean = trap_outputs(lengths, 6, 4, 0.0)
    trapped = trap_outputs(lengths, 6, 4, 1e6)
    pooling = Pooling("attention", 4)
    with torch.no_grad():
        assert_close(pooling(trapped, torch.zeros(3, 4), lengths), pooling(clean, torch.zeros(3, 4), lengths))
        # A single real token gets all the weight.
        assert_close(pooling(trapped, torch.zeros(3, 4), lengths)[1], trapped[1, 0])


def test_last_pooling_returns_the_final_state() -> None:
    final = torch.randn(2, 4)
    assert Pooling("last", 4)(None, final, torch.tensor([2, 1])) is final
    assert not Pooling("last", 4).needs_outputs and Pooling("max", 4).needs_outputs

