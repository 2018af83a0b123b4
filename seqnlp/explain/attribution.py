"""Token attributions of one text: Integrated Gradients on the embeddings, and leave-one-token-out occlusion.

What is explained is the target label's log-odds, the logit a probability is read from: ``z_t`` for a multi-label
run's sigmoid, ``z_t - logsumexp(z_j, j != t)`` for a softmax (for two labels, ``z_t - z_other``). Both methods
read the model's own logits; the run's temperature only divides them (and their attributions) by one number.

Integrated Gradients (Sundararajan et al., 2017) walks a straight line from a baseline to the text's embeddings
[T, E] and averages the gradient along it: ``a_t = sum_e (x - x') * mean_k grad f(x' + alpha_k (x - x'))``, with
the baseline x' the [PAD] embedding at every position (zeros: the padding row never trains) and the midpoints
``alpha_k = (k + 1/2) / steps`` as one batch of ``steps`` texts. Completeness says the attributions sum to
``f(x) - f(x')``; what they miss (a Riemann sum is not an integral) is reported as the gap.

Occlusion needs no gradient, so it checks IG from outside: the drop of ``f`` when a token is deleted from the
text (all T shortened texts run as one batch; a one-token text becomes the empty text's token).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from seqnlp.model import RNNClassifier

DEFAULT_STEPS = 32  # interpolation steps of Integrated Gradients, run as one batch


def target_score(logits: torch.Tensor, target: int, multi_label: bool) -> torch.Tensor:
    """logits [B, C] -> the log-odds of label ``target`` [B] (see the module docstring)."""
    logits = logits.float()
    if multi_label:
        return logits[:, target]
    others = torch.cat([logits[:, :target], logits[:, target + 1:]], dim=1)  # [B, C-1]
    return logits[:, target] - torch.logsumexp(others, dim=1)


def integrated_gradients(model: RNNClassifier, ids: torch.Tensor, target: int, multi_label: bool,
                         steps: int = DEFAULT_STEPS) -> tuple[torch.Tensor, float, float]:
    """ids [T] (one text, on the model's device) -> (attributions [T] on the CPU, f(x), f(baseline))."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    length = torch.tensor([len(ids)])  # [1], on the CPU as the encoder wants it
    with _gradients(model):
        embedded = model.embedding(ids[None]).detach()  # [1, T, E]
        baseline = model.embedding(torch.full_like(ids, model.pad_id)[None]).detach()  # [1, T, E]
        alphas = (torch.arange(steps, device=ids.device, dtype=embedded.dtype) + 0.5) / steps  # [S]
        path = (baseline + alphas[:, None, None] * (embedded - baseline)).requires_grad_(True)  # [S, T, E]
        scores = target_score(model.from_embeddings(path, length.expand(steps)), target, multi_label)  # [S]
        (grads,) = torch.autograd.grad(scores.sum(), path)  # [S, T, E]
        attributions = ((embedded - baseline)[0] * grads.mean(dim=0)).sum(dim=1)  # [T]
        with torch.no_grad():
            ends = target_score(model.from_embeddings(torch.cat([embedded, baseline]), length.expand(2)), target,
                                multi_label)  # [2]: the text, the baseline
    return attributions.detach().float().cpu(), float(ends[0]), float(ends[1])


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
