"""``explain``: why a run labels each text as it does, token by token, with both methods of ``attribution``.

Each ``Explanation`` holds the text's tokens with their character spans, the label explained (by default the one
the run decides; multi-label: the most probable), its calibrated probability, the Integrated Gradients
attribution and the occlusion of every token, the completeness check (``gap``) and how well the two methods
agree (Spearman's rank correlation over the tokens). ``to_dict`` is its JSON form.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from seqnlp.errors import ConfigError, DataError
from seqnlp.explain.attribution import DEFAULT_STEPS, integrated_gradients, occlusion
from seqnlp.predict import Classifier
from seqnlp.tokenizer import encode_texts, fallback_id

log = logging.getLogger(__name__)

MAX_STEPS = 1024  # interpolation steps one explanation may ask for
GAP_NOTE = 0.05  # a completeness gap over this share of max(|logit difference|, 1) gets a note


@dataclass
class Explanation:
    """One text's token attributions for one label (see the module docstring)."""

    text: str
    label: str  # the label explained
    probability: float  # its calibrated probability
    prediction: dict[str, Any]  # what Classifier.predict answers for the text
    tokens: list[str]  # as the tokenizer produced them (after normalization and truncation)
    spans: list[tuple[int, int]]  # each token's [start, end) characters in ``text``
    attributions: list[float]  # Integrated Gradients, per token: they sum to about logit - baseline_logit
    logit: float  # the label's log-odds for the text (before the temperature)
    baseline_logit: float  # the same for the all-[PAD] baseline
    steps: int  # Integrated Gradients' uniform interpolation steps
    gradient_points: int  # the points the gradient was taken at: the steps, and the halved segments' midpoints
    occlusion: Optional[list[float]] = None  # logit minus the logit without the token, per token
    agreement: Optional[float] = None  # Spearman rank correlation of attributions and occlusion
    notes: list[str] = field(default_factory=list)

    @property
    def gap(self) -> float:
        """Completeness: the attributions' sum minus the logit difference they should add up to."""
        return float(sum(self.attributions)) - (self.logit - self.baseline_logit)

    @property
    def relative_gap(self) -> float:
        """|gap| over |logit - baseline_logit| (0 when both are 0)."""
        difference = abs(self.logit - self.baseline_logit)
        return abs(self.gap) / difference if difference > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spans"] = [list(span) for span in self.spans]
        data["completeness"] = {"attribution_sum": float(sum(self.attributions)),
                                "logit_difference": self.logit - self.baseline_logit, "gap": self.gap,
                                "relative_gap": self.relative_gap}
        return data


def explain(run: str | Path | Classifier, texts: Sequence[str], label: Optional[str] = None,
            steps: int = DEFAULT_STEPS, with_occlusion: bool = True, device: str = "auto") -> list[Explanation]:
    """Explain ``run``'s decision on each of ``texts`` (a run directory, loaded on ``device``, or a Classifier).

    ``label`` explains that label instead of the one decided (e.g. why a review was *not* called positive).
    ``steps`` is Integrated Gradients' interpolation steps; ``with_occlusion`` adds the occlusion cross-check.

    >>> seqnlp.explain.explain("runs/sst2", ["a gripping , beautifully shot film"])[0].tokens  # doctest: +SKIP
    """
    clf = run if isinstance(run, Classifier) else Classifier.load(run, device=device)
    if clf.quantized:
        raise ConfigError("explanations need gradients, which an int8-quantized model has none of; load the run "
                          "without quantize")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ConfigError(f"steps must be an integer from 1 to {MAX_STEPS}, not {steps!r}")
    if label is not None and label not in clf.label_names:
        raise DataError(f"label {label!r} is not one of the run's labels: {', '.join(clf.label_names)}")
    texts = list(texts)
    predictions = clf.predict(texts, probabilities=True)
    return [_explain_one(clf, text, prediction, label, steps, with_occlusion)
            for text, prediction in zip(texts, predictions)]


def _explain_one(clf: Classifier, text: str, prediction: dict[str, Any], label: Optional[str], steps: int,
                 with_occlusion: bool) -> Explanation:
    probabilities = prediction.pop("probabilities")
    if label is None:
        label = prediction["label"] if not clf.multi_label else max(probabilities, key=probabilities.get)
    target = clf.label_names.index(label)
    ids, tokens, spans = _tokens(clf, text)
    ids_on_device = ids.to(clf.device)
    attributions, logit, baseline, points = integrated_gradients(clf.model, ids_on_device, target, clf.multi_label,
                                                                 steps)
    explanation = Explanation(text, label, float(probabilities[label]), prediction, tokens, spans,
                              attributions.tolist(), logit, baseline, steps, points)
    if with_occlusion:
        occluded = occlusion(clf.model, ids_on_device, target, clf.multi_label, fallback_id(clf.tokenizer),
                             clf.batch_size)
        explanation.occlusion = occluded.tolist()
        explanation.agreement = spearman(attributions.numpy(), occluded.numpy())
    if abs(explanation.gap) > GAP_NOTE * max(abs(logit - baseline), 1.0):
        explanation.notes.append(f"the attributions miss {explanation.relative_gap:.0%} of the logit difference: "
                                 "raise steps")
    return explanation


def _tokens(clf: Classifier, text: str) -> tuple[torch.Tensor, list[str], list[tuple[int, int]]]:
    """The ids the Classifier feeds the model for ``text`` [T], with each token's string and character span."""
    ids = encode_texts(clf.tokenizer, [text])[0]
    encoding = clf.tokenizer.encode(text)
    if list(encoding.ids) == ids:
        return torch.tensor(ids), list(encoding.tokens), [tuple(o) for o in encoding.offsets]  # type: ignore[misc]
    # An empty text (one fallback token), or a text the encoder clipped first: no spans to show.
    tokens = [clf.tokenizer.id_to_token(i) or "" for i in ids]
    return torch.tensor(ids), tokens, [(0, 0)] * len(ids)


def spearman(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    """Spearman's rank correlation of two score vectors (average ranks for ties); None below two tokens or when
    either is constant."""
    if len(a) < 2:
        return None
    ranks = [_average_ranks(x) for x in (a, b)]
    if any(np.ptp(r) == 0 for r in ranks):
        return None
    return float(np.corrcoef(ranks[0], ranks[1])[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):  # ties share the mean of their ranks
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks
