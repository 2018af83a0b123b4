"""Token attributions of one text: Integrated Gradients on the embeddings, and leave-one-token-out occlusion.

What is explained is the target label's log-odds, the logit a probability is read from: ``z_t`` for a multi-label
run's sigmoid, ``z_t - logsumexp(z_j, j != t)`` for a softmax (for two labels, ``z_t - z_other``). Both methods
read the model's own logits; the run's temperature only divides them (and their attributions) by one number.

Integrated Gradients (Sundararajan et al., 2017) walks a straight line from a baseline x' to the text's
embeddings x [T, E] and integrates the gradient along it, per token t:
``a_t = sum_e (x - x')_te * integral_0^1 d f(x' + alpha (x - x')) / d x_te d alpha``, the baseline being the [PAD]
embedding at every position (zeros: the padding row never trains). Completeness says the attributions sum to
``f(x) - f(x')``; what a finite sum misses is reported as the gap.

The integral is a midpoint sum over ``steps`` equal segments, run as one batch. A recurrent model with max
pooling can change its verdict over a sliver of the path (on SST-2, f rose by 10 over 1/1000 of it), where equal
steps converge slowly: 32 of them missed up to 7 times the logit difference. Since f is known at the ends of every
segment, so is each segment's own error (its midpoint gradient's estimate against the change of f along it): the
``steps / 4`` worst segments are halved, one batch a round, until every segment's error is below its share of
``TOLERANCE`` (so the gap is too) or ``REFINE_ROUNDS`` rounds are spent. This is adaptive quadrature of the same
integral; the gradient points it used are reported with the gap.

Occlusion needs no gradient, so it checks IG from outside: the drop of ``f`` when a token is deleted from the
text (all T shortened texts run as one batch; a one-token text becomes the empty text's token).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from seqnlp.model import RNNClassifier

DEFAULT_STEPS = 32  # uniform interpolation steps of Integrated Gradients, run as one batch
REFINE_ROUNDS = 16  # rounds of halving the segments (steps / 4 a round) whose gradients disagree with f most
TOLERANCE = 0.01  # the completeness gap refinement stops at, relative to max(|f(x) - f(baseline)|, 1)


def target_score(logits: torch.Tensor, target: int, multi_label: bool) -> torch.Tensor:
    """logits [B, C] -> the log-odds of label ``target`` [B] (see the module docstring)."""
    logits = logits.float()
    if multi_label:
        return logits[:, target]
    others = torch.cat([logits[:, :target], logits[:, target + 1:]], dim=1)  # [B, C-1]
    return logits[:, target] - torch.logsumexp(others, dim=1)


def integrated_gradients(model: RNNClassifier, ids: torch.Tensor, target: int, multi_label: bool,
                         steps: int = DEFAULT_STEPS, rounds: int = REFINE_ROUNDS,
                         tolerance: float = TOLERANCE) -> tuple[torch.Tensor, float, float, int]:
    """ids [T] (one text, on the model's device) -> (attributions [T] on the CPU, f(x), f(baseline), gradient
    points used): ``steps`` uniform segments, then up to ``rounds`` rounds of halving the worst (see the module
    docstring) until the completeness gap is within ``tolerance`` of max(|f(x) - f(baseline)|, 1)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    with _gradients(model):
        path = _Path(model, ids, target, multi_label)
        knots = torch.linspace(0, 1, steps + 1, dtype=torch.float64)  # [S+1]
        values = path.scores(knots)  # [S+1]
        mids = (knots[:-1] + knots[1:]) / 2  # [S]
        density = path.density(mids)  # [S, T]
        for _ in range(rounds):
            widths = (knots[1:] - knots[:-1])[:, None]  # [S, 1]
            errors = ((density * widths).sum(dim=1) - (values[1:] - values[:-1])).abs()  # [S]
            allowed = tolerance * max(abs(float(values[-1] - values[0])), 1.0)
            if abs(float((density * widths).sum() - (values[-1] - values[0]))) <= allowed:
                break
            worst = torch.topk(errors, min(max(1, steps // 4), len(errors))).indices  # the worst, to halve
            worst = worst[errors[worst] > allowed / len(errors)]  # [K]: the rest cannot add up to the tolerance
            if len(worst) == 0:
                break
            split = mids[worst]  # [K]: each one's midpoint becomes a knot
            halves = torch.cat([(knots[worst] + split) / 2, (split + knots[worst + 1]) / 2])  # [2K]
            keep = torch.ones(len(mids), dtype=torch.bool)
            keep[worst] = False
            knots, order = torch.sort(torch.cat([knots, split]))
            values = torch.cat([values, path.scores(split)])[order]
            mids, order = torch.sort(torch.cat([mids[keep], halves]))
            density = torch.cat([density[keep], path.density(halves)])[order]
        attributions = (density * (knots[1:] - knots[:-1])[:, None]).sum(dim=0)  # [T]
    return attributions.float(), float(values[-1]), float(values[0]), len(mids)


class _Path:
    """The straight line from the all-[PAD] baseline to a text's embeddings, and what is read along it."""

    def __init__(self, model: RNNClassifier, ids: torch.Tensor, target: int, multi_label: bool) -> None:
        self.model, self.target, self.multi_label = model, target, multi_label
        self.length = len(ids)
        self.embedded = model.embedding(ids[None]).detach()  # [1, T, E]
        self.baseline = model.embedding(torch.full_like(ids, model.pad_id)[None]).detach()  # [1, T, E]
        # An n-gram branch reads the ids alone: its logits are the same all along the path, and take no share.
        self.wide = None if model.ngrams is None else model.ngrams(ids[None], torch.tensor([len(ids)])).detach()

    def _points(self, alphas: torch.Tensor) -> torch.Tensor:
        alphas = alphas.to(self.embedded.device, self.embedded.dtype)
        return self.baseline + alphas[:, None, None] * (self.embedded - self.baseline)  # [K, T, E]

    def _score(self, points: torch.Tensor) -> torch.Tensor:
        lengths = torch.full((len(points),), self.length, dtype=torch.long)  # [K], on the CPU
        logits = self.model.from_embeddings(points, lengths)  # [K, C]
        if self.wide is not None:
            logits = logits + self.wide  # [K, C]
        return target_score(logits, self.target, self.multi_label)  # [K]

    def scores(self, alphas: torch.Tensor) -> torch.Tensor:
        """f at the points ``alphas`` [K] -> [K] (float64, CPU)."""
        with torch.no_grad():
            return self._score(self._points(alphas)).double().cpu()

    def density(self, alphas: torch.Tensor) -> torch.Tensor:
        """Per token, (x - x') . grad f at the points ``alphas`` [K] -> [K, T] (float64, CPU): a segment of width
        w around the point contributes w times this."""
        points = self._points(alphas).requires_grad_(True)  # [K, T, E]
        (grads,) = torch.autograd.grad(self._score(points).sum(), points)  # [K, T, E]
        return ((self.embedded - self.baseline) * grads).sum(dim=2).double().cpu()  # [K, T]


@torch.inference_mode()
def occlusion(model: RNNClassifier, ids: torch.Tensor, target: int, multi_label: bool, empty_id: int,
              batch_size: int = 256) -> torch.Tensor:
    """ids [T] -> f(text) - f(text without token t), for each t [T] on the CPU; ``empty_id`` is the token an empty
    text encodes to (what a one-token text becomes without it)."""
    was_training = model.training
    model.eval()
    try:
        full = target_score(model(ids[None], torch.tensor([len(ids)])), target, multi_label)  # [1]
        n = len(ids)
        if n == 1:
            shortened = torch.tensor([[empty_id]], device=ids.device)  # [1, 1]
        else:
            keep = ~torch.eye(n, dtype=torch.bool, device=ids.device)  # [T, T]: row t drops position t
            shortened = ids[None, :].expand(n, n)[keep].view(n, n - 1)  # [T, T-1]
        scores = []
        for start in range(0, len(shortened), batch_size):
            rows = shortened[start:start + batch_size]  # [B, T-1]
            lengths = torch.full((len(rows),), rows.shape[1], dtype=torch.long)  # [B]
            scores.append(target_score(model(rows, lengths), target, multi_label))
        return (full - torch.cat(scores)).float().cpu()  # [T]
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _gradients(model: RNNClassifier) -> Iterator[None]:
    """Gradients on (inference mode off) through the model in eval mode (no dropout); cuDNN's RNN has no backward
    in eval mode, so it is switched off for the pass. The model's mode and parameters' flags are restored."""
    was_training = model.training
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            for p in model.parameters():
                p.requires_grad_(False)  # only the path needs a gradient
            yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)
