"""Gradient flow and saturation of recurrent classifiers: where the vanishing gradient becomes visible.

Two measurements on a batch of real examples, for a trained or a freshly initialized model:

- the gradient profile: the norm of the loss gradient with respect to each position's embedding,
  ``||dL/de_t||``, against the position's distance from the end of its text (0 = the last token), averaged
  over the examples long enough to have that distance. A vanilla RNN read left to right and pooled at the end
  shows it falling exponentially with distance: the early tokens get (almost) no learning signal.
- saturation: the cell is unrolled step by step with the model's own weights (the fused PyTorch kernels hide
  the gates), and every activation at a real token is collected: tanh outputs (RNN state, LSTM ``tanh(c)`` and
  candidate, GRU candidate) and gates (LSTM input/forget/output, GRU reset/update). A tanh at ``|x| > 0.99``
  or a gate below 0.01 or above 0.99 passes almost no gradient.

``write_diagnostics`` writes both as CSV, a Markdown summary and (with matplotlib) one figure per weights state.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from seqnlp.batching import BatchLoader
from seqnlp.checkpoint import load_run
from seqnlp.compare.plots import plot_diagnostics
from seqnlp.config import Config, load_config
from seqnlp.data import load_splits
from seqnlp.errors import DataError
from seqnlp.model import RNNClassifier, cell_name, gather_steps, layer_weights, step_indices
from seqnlp.objective import Objective, make_objective
from seqnlp.runtime import resolve_device, seed_everything, set_threads
from seqnlp.tokenizer import build_tokenizer, encode_dataset, iter_texts, pad_id

log = logging.getLogger(__name__)

THRESHOLD = 0.99  # a tanh beyond +-THRESHOLD, or a gate beyond THRESHOLD or below 1 - THRESHOLD, is saturated
SUMMARY_DISTANCES = (0, 5, 10, 20, 50, 100, 200, 500)  # distances shown in the Markdown summary
PROFILE_CSV = "gradient_profile.csv"
SATURATION_CSV = "saturation.csv"
SUMMARY_MD = "diagnostics.md"


@dataclass
class Subject:
    """A model to diagnose, with what it needs to read the data: its tokenizer, config and label names."""

    label: str  # the name in tables and legends
    weights: str  # "trained" or "init"
    model: RNNClassifier
    tokenizer: Tokenizer
    config: Config
    label_names: list[str]


@dataclass
class Diagnosis:
    """One model's gradient profile and saturation statistics."""

    label: str
    weights: str
    distances: list[int]  # 0 = the last real token of a text
    grad_norms: list[float]  # mean ||dloss/d embedding|| at each distance
    counts: list[int]  # examples long enough to reach each distance
    # per layer, direction and quantity: see saturation_row
    saturation: list[dict[str, Any]] = field(default_factory=list)


def subjects_from_runs(run_dirs: Sequence[str | Path], weights: str = "trained", device: str = "cpu",
                       labels: Optional[Sequence[str]] = None) -> list[Subject]:
    """Models of trained runs; ``weights="init"`` re-initializes each (seeded with its run's seed) instead.

    ``labels`` name them in tables and legends (default: the cell, plus the run directory's name if needed).
    """
    if weights not in ("trained", "init"):
        raise DataError(f"weights must be trained or init, not {weights!r}")
    subjects = []
    for run_dir in run_dirs:
        config, tokenizer, label_names, model = load_run(run_dir, resolve_device(device))
        if weights == "init":
            seed_everything(config.seed)
            model = RNNClassifier(config.model, tokenizer.get_vocab_size(), len(label_names),
                                  pad_id=pad_id(tokenizer)).to(model.embedding.weight.device)
        subjects.append(Subject(config.model.cell, weights, model.eval(), tokenizer, config, label_names))
    if labels is not None:
        for subject, label in zip(subjects, labels, strict=True):
            subject.label = label
    else:
        _disambiguate(subjects, [Path(r).name for r in run_dirs])
    return subjects


def subjects_from_config(config: Config, cells: Sequence[str], device: str = "cpu") -> list[Subject]:
    """Freshly initialized models of ``config`` for each cell, with a tokenizer trained on its training split."""
    splits = load_splits(config.data, config.seed)
    tokenizer = build_tokenizer(config.tokenizer, iter_texts(splits.data[config.data.train_split]))
    subjects = []
    for cell in cells:
        cell_config = load_config(base=config, updates={"model.cell": cell})
        seed_everything(config.seed)
        model = RNNClassifier(cell_config.model, tokenizer.get_vocab_size(), len(splits.label_names),
                              pad_id=pad_id(tokenizer)).to(resolve_device(device))
        subjects.append(Subject(cell, "init", model.eval(), tokenizer, cell_config, splits.label_names))
    return subjects


def _disambiguate(subjects: Sequence[Subject], names: Sequence[str]) -> None:
    labels = [s.label for s in subjects]
    for subject, name in zip(subjects, names):
        if labels.count(subject.label) > 1:
            subject.label = f"{subject.label} ({name})"


def diagnose(subjects: Sequence[Subject], examples: int = 256, split: Optional[str] = None,
             batch_size: int = 64) -> list[Diagnosis]:
    """Gradient profile and saturation of each subject on ``examples`` examples of ``split`` (default: the
    validation split), drawn with the subject's config seed, on its ``train.num_threads`` threads."""
    threads = torch.get_num_threads()
    try:
        diagnoses = []
        for subject in subjects:
            set_threads(subject.config.train.num_threads)
            diagnoses.append(_diagnose_one(subject, examples, split, batch_size))
        return diagnoses
    finally:
        torch.set_num_threads(threads)


def _diagnose_one(subject: Subject, examples: int, split: Optional[str], batch_size: int) -> Diagnosis:
    model = subject.model.eval()  # no dropout: the gradient of the function the model computes
    device = model.embedding.weight.device
    grad_sum = torch.zeros(0, dtype=torch.float64)
    count = torch.zeros(0, dtype=torch.long)
    activations: dict[tuple[int, str, str], list[torch.Tensor]] = {}
    for ids, lengths, labels in _batches(subject, examples, split, batch_size):
        ids, labels = ids.to(device), labels.to(device)
        objective = make_objective(subject.config.data.multi_label, len(subject.label_names))
        norms = embedding_gradient_norms(model, ids, lengths, labels, objective).cpu()  # [B, T]
        width = ids.shape[1]
        distance = lengths[:, None] - 1 - torch.arange(width)  # [B, T]; negative past the end
        real = distance >= 0
        if len(grad_sum) < width:
            grad_sum = F.pad(grad_sum, (0, width - len(grad_sum)))
            count = F.pad(count, (0, width - len(count)))
        grad_sum.index_add_(0, distance[real], norms[real].double())
        count.index_add_(0, distance[real], torch.ones_like(distance[real]))
        for key, values in unroll(model, ids, lengths)[1].items():
            activations.setdefault(key, []).append(values.cpu())
    means = (grad_sum / count.clamp(min=1)).tolist()
    distances = [d for d in range(len(count)) if count[d] > 0]
    rows = [saturation_row(key, torch.cat(values)) for key, values in activations.items()]
    log.info("%s (%s): gradient norm %.3g at the last token, %.3g at distance %d", subject.label, subject.weights,
             means[0], means[distances[-1]], distances[-1])
    return Diagnosis(subject.label, subject.weights, distances, [means[d] for d in distances],
                     [int(count[d]) for d in distances], rows)


def _batches(subject: Subject, examples: int, split: Optional[str],
             batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    config = subject.config
    name = split or config.data.validation_split
    splits = load_splits(config.data, config.seed, label_names=subject.label_names, only=[name])
    data = splits.split(name)
    if data is None:
        raise DataError(f"split {name!r} not found; splits that exist: {', '.join(splits.available)}")
    if "label" not in data.column_names:
        raise DataError(f"split {name!r} has no labels; the gradient of the loss needs them")
    data = data.shuffle(seed=config.seed).select(range(min(examples, len(data))))
    loader = BatchLoader(encode_dataset(data, subject.tokenizer, desc=f"encoding {name}"), batch_size,
                         pad_id=pad_id(subject.tokenizer))
    for batch in loader:
        assert batch.labels is not None
        yield batch.input_ids, batch.lengths, batch.labels


def embedding_gradient_norms(model: RNNClassifier, ids: torch.Tensor, lengths: torch.Tensor,
                             labels: torch.Tensor, objective: Optional[Objective] = None) -> torch.Tensor:
    """ids [B, T], lengths [B] (CPU), labels [B] (multi-label: [B, C]) -> ||dloss/d embedding|| per position [B, T]
    (0 past each length); ``objective`` (default single-label) gives the loss.

    The loss is summed over the batch, so each example's row is the gradient of its own loss.
    """
    captured: list[torch.Tensor] = []
    hook = model.embedding.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        with torch.enable_grad():
            logits = model(ids, lengths)  # [B, C]
            loss = (objective or Objective(logits.shape[-1])).loss_sum(logits.float(), labels)
            (grad,) = torch.autograd.grad(loss, captured[0])  # [B, T, E]
    finally:
        hook.remove()
    mask = torch.arange(ids.shape[1], device=ids.device) < lengths.to(ids.device)[:, None]  # [B, T]
    return grad.float().norm(dim=-1) * mask  # [B, T]


@torch.no_grad()
def unroll(model: RNNClassifier, ids: torch.Tensor,
           lengths: torch.Tensor) -> tuple[torch.Tensor, dict[tuple[int, str, str], torch.Tensor]]:
    """Run the model's recurrent layers step by step with its own weights.

    ids [B, T], lengths [B] (CPU) -> the top layer's outputs [B, T, D*H] (zeros past each length; equal to the
    encoder's) and, per (layer, direction, quantity), that quantity's values at every real token [N, H].
    """
    rnn = model.encoder.rnn
    cell = cell_name(rnn)
    x = model.embedding(ids)  # [B, T, E]
    # Per-text time reversal: position t of a text of length n reads position n-1-t; padding stays in place.
    mask, reverse, _ = step_indices(lengths.to(ids.device), ids.shape[1])  # [B, T], [B, T]
    collected: dict[tuple[int, str, str], torch.Tensor] = {}
    for layer in range(rnn.num_layers):
        outputs = []
        for direction in ("forward", "backward")[: 2 if rnn.bidirectional else 1]:
            backward = direction == "backward"
            w_ih, w_hh, b_ih, b_hh = layer_weights(rnn, layer, backward)
            inputs = gather_steps(x, reverse) if backward else x
            out, acts = _run_cell(cell, model.config.nonlinearity, inputs, mask, w_ih, w_hh, b_ih, b_hh)
            outputs.append(gather_steps(out, reverse) if backward else out)
            for quantity, values in acts.items():
                collected[(layer, direction, quantity)] = values
        x = torch.cat(outputs, dim=-1) * mask[..., None]  # [B, T, D*H]: the next layer's input
    return x, collected


def _run_cell(cell: str, nonlinearity: str, x: torch.Tensor, mask: torch.Tensor, w_ih: torch.Tensor,
              w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One direction of one layer: x [B, T, I], mask [B, T] -> outputs [B, T, H] and activations [N, H] each."""
    batch, width = mask.shape
    hidden = w_hh.shape[1]
    projected = x @ w_ih.T + b_ih  # [B, T, G*H]: the input part of every gate, for all steps at once
    h = x.new_zeros(batch, hidden)  # [B, H]
    c = x.new_zeros(batch, hidden)  # [B, H], LSTM only
    outputs = []
    acts: dict[str, list[torch.Tensor]] = {}
    for t in range(width):
        active = mask[:, t]  # [B]
        recurrent = h @ w_hh.T + b_hh  # [B, G*H]
        if cell == "rnn":
            pre = projected[:, t] + recurrent
            new_h = torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)
            step = {"state h (tanh)" if nonlinearity == "tanh" else "state h (relu)": new_h}
        elif cell == "lstm":
            i, f, g, o = (projected[:, t] + recurrent).chunk(4, dim=-1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            new_c = f * c + i * g
            tanh_c = torch.tanh(new_c)
            new_h = o * tanh_c
            c = torch.where(active[:, None], new_c, c)
            step = {"input gate": i, "forget gate": f, "output gate": o, "candidate (tanh)": g, "tanh(c)": tanh_c}
        else:  # gru
            xr, xz, xn = projected[:, t].chunk(3, dim=-1)
            hr, hz, hn = recurrent.chunk(3, dim=-1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            new_h = (1 - z) * n + z * h
            step = {"reset gate": r, "update gate": z, "candidate (tanh)": n}
        h = torch.where(active[:, None], new_h, h)
        outputs.append(new_h * active[:, None])
        for name, values in step.items():
            acts.setdefault(name, []).append(values[active])
    return torch.stack(outputs, dim=1), {name: torch.cat(v) for name, v in acts.items()}


def saturation_row(key: tuple[int, str, str], values: torch.Tensor) -> dict[str, Any]:
    """Statistics of one (layer, direction, quantity)'s activations [N, H]: count, mean, mean |x|, and the
    fraction saturated (a tanh beyond +-THRESHOLD, a gate outside [1 - THRESHOLD, THRESHOLD], a ReLU at 0)."""
    layer, direction, quantity = key
    kind = "gate" if "gate" in quantity else "relu" if "relu" in quantity else "tanh"
    if kind == "gate":
        saturated = (values > THRESHOLD) | (values < 1 - THRESHOLD)
    elif kind == "relu":
        saturated = values == 0  # a ReLU at 0 passes no gradient
    else:
        saturated = values.abs() > THRESHOLD
    return {"layer": layer, "direction": direction, "quantity": quantity, "kind": kind, "count": values.numel(),
            "mean": float(values.float().mean()), "mean_abs": float(values.float().abs().mean()),
            "saturated": float(saturated.float().mean())}


def pooled_saturation(diagnosis: Diagnosis) -> list[tuple[str, float, float]]:
    """(quantity, typical value, saturated fraction) over every layer and direction, weighted by activation count.

    The typical value is the mean of a gate (near 1: the forget/update gate keeps the state) and the mean of
    ``|x|`` for a tanh or ReLU (a tanh's signed mean says little).
    """
    pooled: dict[str, list[float]] = {}
    for row in diagnosis.saturation:
        totals = pooled.setdefault(row["quantity"], [0.0, 0.0, 0.0])
        totals[0] += row["count"]
        totals[1] += (row["mean"] if row["kind"] == "gate" else row["mean_abs"]) * row["count"]
        totals[2] += row["saturated"] * row["count"]
    return [(quantity, total / n, saturated / n) for quantity, (n, total, saturated) in pooled.items()]


def summary_markdown(diagnoses: Sequence[Diagnosis]) -> str:
    """The gradient norm at a few distances from the end, and pooled saturation, as Markdown tables."""
    longest = max(d.distances[-1] for d in diagnoses)
    shown = [d for d in SUMMARY_DISTANCES if d < longest] + [longest]
    lines = ["| model | weights | " + " | ".join(f"grad at {d}" for d in shown) + " |",
             "|" + " --- |" * (2 + len(shown))]
    for diagnosis in diagnoses:
        by_distance = dict(zip(diagnosis.distances, diagnosis.grad_norms))
        cells = [f"{by_distance[d]:.2e}" if d in by_distance else "n/a" for d in shown]
        lines.append(f"| {diagnosis.label} | {diagnosis.weights} | " + " | ".join(cells) + " |")
    lines += ["", "| model | weights | quantity | mean (gates) or mean abs (tanh) | saturated |",
              "| --- | --- | --- | --- | --- |"]
    for diagnosis in diagnoses:
        for quantity, mean, saturated in pooled_saturation(diagnosis):
            lines.append(f"| {diagnosis.label} | {diagnosis.weights} | {quantity} | {mean:.3f} | {saturated:.3f} |")
    return "\n".join(lines)


def write_diagnostics(diagnoses: Sequence[Diagnosis], output_dir: str | Path | None = None,
                      title: str = "") -> dict[str, Path]:
    """gradient_profile.csv, saturation.csv, diagnostics.md and diagnostics_<weights>.png (with matplotlib)
    into ``output_dir`` (default: runs/diagnose-<date>-<time>); returns file name -> path."""
    out = Path(output_dir or f"runs/diagnose-{datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    files = {PROFILE_CSV: out / PROFILE_CSV, SATURATION_CSV: out / SATURATION_CSV, SUMMARY_MD: out / SUMMARY_MD}
    with files[PROFILE_CSV].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "weights", "distance_from_end", "grad_norm", "examples"])
        for d in diagnoses:
            writer.writerows([d.label, d.weights, *row] for row in zip(d.distances, d.grad_norms, d.counts))
    with files[SATURATION_CSV].open("w", newline="", encoding="utf-8") as f:
        fields = ["model", "weights", "layer", "direction", "quantity", "kind", "count", "mean", "mean_abs",
                  "saturated"]
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows({"model": d.label, "weights": d.weights, **row} for d in diagnoses for row in d.saturation)
    files[SUMMARY_MD].write_text(summary_markdown(diagnoses) + "\n", encoding="utf-8")
    for weights in dict.fromkeys(d.weights for d in diagnoses):
        chosen = [d for d in diagnoses if d.weights == weights]
        png = plot_diagnostics(
            {d.label: (d.distances, d.grad_norms) for d in chosen},
            [(d.label, quantity, saturated) for d in chosen for quantity, _, saturated in pooled_saturation(d)],
            out / f"diagnostics_{weights}.png",
            title=f"{title} ({weights} weights)".strip() if title else f"{weights} weights",
            threshold=THRESHOLD,
        )
        if png is not None:
            files[png.name] = png
    log.info("diagnostics written to %s", out)
    return files
