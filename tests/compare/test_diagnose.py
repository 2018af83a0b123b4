"""Diagnostics: the step-by-step unroll matches PyTorch's layers, the gradient profile has one finite value per
position, the vanishing gradient of a fresh RNN shows, saturation statistics mean what they say, and the files."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from seqnlp.config import ModelConfig, load_config
from seqnlp.compare.diagnose import (
    Diagnosis,
    diagnose,
    embedding_gradient_norms,
    pooled_saturation,
    saturation_row,
    subjects_from_config,
    subjects_from_runs,
    summary_markdown,
    unroll,
    write_diagnostics,
)
from seqnlp.model import RNNClassifier

VOCAB, EMBED, HIDDEN = 20, 6, 5
LENGTHS = [7, 3, 5, 1]
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
TASK = "synthetic:marker?distance=12&prefix=4&vocab=5&train=60&validation=40&test=10"




def build(cell: str, nonlinearity: str = "tanh", layers: int = 1, bidirectional: bool = False,
          pooling: str = "last", seed: int = 0) -> RNNClassifier:
    torch.manual_seed(seed)
    cfg = ModelConfig(cell=cell, nonlinearity=nonlinearity, embedding_dim=EMBED, hidden_size=HIDDEN,
                      num_layers=layers, bidirectional=bidirectional, dropout=0.0, embedding_dropout=0.0,
                      pooling=pooling)
    return RNNClassifier(cfg, VOCAB, 2).eval()


def batch(lengths: list[int] = LENGTHS, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    ids = torch.randint(1, VOCAB, (len(lengths), max(lengths)), generator=gen)
    ids[torch.arange(max(lengths)) >= lens[:, None]] = 0  # padding
    return ids, lens, torch.randint(0, 2, (len(lengths),), generator=gen)


@pytest.mark.parametrize("cell, nonlinearity", CELLS)
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_unroll_reproduces_the_encoder_outputs(cell: str, nonlinearity: str, layers: int, bidirectional: bool) -> None:
    model = build(cell, nonlinearity, layers, bidirectional, pooling="mean")
    ids, lengths, _ = batch()
    with torch.no_grad():
        expected, _ = model.encoder(model.embedding(ids), lengths)  # [B, T, D*H]
        outputs, activations = unroll(model, ids, lengths)
    assert_close(outputs, expected, atol=1e-5, rtol=1e-4)
    real_tokens = sum(LENGTHS)
    directions = ("forward", "backward") if bidirectional else ("forward",)
    assert {(layer, direction) for layer, direction, _ in activations} == {
        (layer, direction) for layer in range(layers) for direction in directions}
    assert all(values.shape == (real_tokens, HIDDEN) for values in activations.values())


def test_unroll_names_the_gates_of_each_cell() -> None:
    ids, lengths, _ = batch()
    names = {cell: {q for _, _, q in unroll(build(cell), ids, lengths)[1]} for cell in ("rnn", "lstm", "gru")}
    assert names["rnn"] == {"state h (tanh)"}
    assert names["lstm"] == {"input gate", "forget gate", "output gate", "candidate (tanh)", "tanh(c)"}
    assert names["gru"] == {"reset gate", "update gate", "candidate (tanh)"}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradient_norms_have_one_finite_value_per_real_position(cell: str) -> None:
    model = build(cell, bidirectional=True, pooling="max")
    ids, lengths, labels = batch()
    norms = embedding_gradient_norms(model, ids, lengths, labels)  # [B, T]
    assert norms.shape == ids.shape
    assert torch.isfinite(norms).all()
    real = torch.arange(ids.shape[1]) < lengths[:, None]
    assert (norms[~real] == 0).all() and (norms[real] > 0).all()


def test_each_rows_gradient_is_its_own_examples() -> None:
    model = build("gru")
    ids, lengths, labels = batch()
    together = embedding_gradient_norms(model, ids, lengths, labels)
    for i, length in enumerate(LENGTHS):
        alone = embedding_gradient_norms(model, ids[i : i + 1, :length], lengths[i : i + 1], labels[i : i + 1])
        assert_close(alone[0], together[i, :length], atol=1e-6, rtol=1e-4)


def test_a_fresh_rnn_read_to_the_end_shows_the_vanishing_gradient() -> None:
    model = build("rnn", pooling="last")
    ids, lengths, labels = batch([40] * 8)
    norms = embedding_gradient_norms(model, ids, lengths, labels).mean(dim=0)  # [T]; position 39 is the last
    assert norms[-1] > 1e3 * norms[-31]  # 30 steps back, less than a thousandth of the signal is left


def test_saturated_activations_are_counted() -> None:
    model = build("lstm")
    with torch.no_grad():
        # PyTorch stacks the LSTM blocks as input, forget, candidate, output gate.
        model.encoder.rnn.bias_hh_l0[HIDDEN : 2 * HIDDEN] = 50.0  # the forget gate: always open
        model.encoder.rnn.weight_ih_l0[2 * HIDDEN : 3 * HIDDEN] *= 100.0  # the candidate: a saturated tanh
    ids, lengths, _ = batch()
    rows = [saturation_row(key, values) for key, values in unroll(model, ids, lengths)[1].items()]
    by_quantity = {row["quantity"]: row for row in rows}
    assert by_quantity["forget gate"]["saturated"] == 1.0 and by_quantity["forget gate"]["mean"] == pytest.approx(1.0)
    assert by_quantity["candidate (tanh)"]["saturated"] > 0.8
    assert all(row["count"] == sum(LENGTHS) * HIDDEN for row in rows)
    pooled = {q: (mean, saturated) for q, mean, saturated in pooled_saturation(Diagnosis("lstm", "init", [0], [1.0],
                                                                                          [1], rows))}
    assert pooled["forget gate"] == (pytest.approx(1.0), 1.0)
    assert pooled["candidate (tanh)"][0] > 0.9  # tanh quantities report mean |x|, gates their mean


def test_fresh_weights_are_not_saturated() -> None:
    ids, lengths, _ = batch()
    for cell in ("rnn", "lstm", "gru"):
        rows = [saturation_row(key, values) for key, values in unroll(build(cell), ids, lengths)[1].items()]
        assert all(row["saturated"] < 0.05 for row in rows), (cell, rows)


@pytest.fixture(scope="module")
def diagnoses() -> list[Diagnosis]:
    config = load_config(updates={"data.dataset": TASK, "model.embedding_dim": EMBED, "model.hidden_size": HIDDEN,
                                  "model.bidirectional": False, "model.pooling": "last", "train.num_threads": 1})
    return diagnose(subjects_from_config(config, ["rnn", "lstm", "gru"]), examples=32)


def test_the_profile_has_one_finite_value_per_distance(diagnoses: list[Diagnosis]) -> None:
    longest = 4 + 1 + 12  # prefix + marker + distance
    for diagnosis in diagnoses:
        assert diagnosis.weights == "init"
        assert diagnosis.distances[0] == 0 and diagnosis.distances[-1] < longest
        assert diagnosis.distances == list(range(len(diagnosis.distances)))  # every position, none skipped
        assert len(diagnosis.grad_norms) == len(diagnosis.counts) == len(diagnosis.distances)
        assert all(torch.isfinite(torch.tensor(diagnosis.grad_norms)))
        assert diagnosis.counts[0] == 32 and diagnosis.counts == sorted(diagnosis.counts, reverse=True)
        assert diagnosis.counts[12] == 32  # every text is at least distance + 1 long
    assert [d.label for d in diagnoses] == ["rnn", "lstm", "gru"]


def test_summary_and_files(diagnoses: list[Diagnosis], tmp_path: Path) -> None:
    summary = summary_markdown(diagnoses)
    longest = max(d.distances[-1] for d in diagnoses)
    assert summary.splitlines()[0] == f"| model | weights | grad at 0 | grad at 5 | grad at 10 | grad at {longest} |"
    assert "| lstm | init | forget gate |" in summary
    files = write_diagnostics(diagnoses, tmp_path, title="marker")
    with (tmp_path / "gradient_profile.csv").open(newline="", encoding="utf-8") as f:
        profile = list(csv.DictReader(f))
    assert len(profile) == sum(len(d.distances) for d in diagnoses)
    assert profile[0] == {"model": "rnn", "weights": "init", "distance_from_end": "0",
                          "grad_norm": str(diagnoses[0].grad_norms[0]), "examples": "32"}
    with (tmp_path / "saturation.csv").open(newline="", encoding="utf-8") as f:
        saturation = list(csv.DictReader(f))
    assert {(r["model"], r["quantity"]) for r in saturation} >= {("rnn", "state h (tanh)"), ("gru", "update gate")}
    if importlib.util.find_spec("matplotlib") is None:
        assert set(files) == {"gradient_profile.csv", "saturation.csv", "diagnostics.md"}
    else:
        assert (tmp_path / "diagnostics_init.png").read_bytes()[:4] == b"\x89PNG"


def test_files_without_matplotlib(diagnoses: list[Diagnosis], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    files = write_diagnostics(diagnoses, tmp_path)
    assert set(files) == {"gradient_profile.csv", "saturation.csv", "diagnostics.md"}
    assert not list(tmp_path.glob("*.png"))


def test_subjects_from_runs_trained_and_reinitialized(trained_run: Path) -> None:
    (trained,) = subjects_from_runs([trained_run])
    (fresh,) = subjects_from_runs([trained_run], weights="init")
    assert (trained.label, trained.weights, fresh.weights) == ("lstm", "trained", "init")
    assert not torch.equal(trained.model.encoder.rnn.weight_hh_l0, fresh.model.encoder.rnn.weight_hh_l0)
    (again,) = subjects_from_runs([trained_run], weights="init")
    assert torch.equal(fresh.model.encoder.rnn.weight_hh_l0, again.model.encoder.rnn.weight_hh_l0)  # seeded
    twice = subjects_from_runs([trained_run, trained_run])
    assert [s.label for s in twice] == [f"lstm ({trained_run.name})"] * 2
    (labelled,) = subjects_from_runs([trained_run], labels=["mine"])
    assert labelled.label == "mine"
    (diagnosis,) = diagnose([trained], examples=8)
    assert diagnosis.counts[0] == 8
