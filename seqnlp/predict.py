"""A trained classifier loaded from its run directory: texts in, labels and probabilities out."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer

from seqnlp.batching import pad_flat
from seqnlp.checkpoint import load_run, load_thresholds
from seqnlp.config import Config
from seqnlp.errors import ConfigError, DataError
from seqnlp.model import RNNClassifier
from seqnlp.objective import DEFAULT_THRESHOLD, make_objective
from seqnlp.runtime import autocast, resolve_device
from seqnlp.tokenizer import encode_texts, pad_id

log = logging.getLogger(__name__)


class Classifier:
    """The model, tokenizer and label names of one run, ready for inference.

    >>> clf = Classifier.load("runs/sms")          # doctest: +SKIP
    >>> clf.predict(["WINNER!! Claim your prize now"])  # doctest: +SKIP
    [{'label': 'spam', 'score': 0.99}]

    A multi-label run (``data.multi_label``) predicts every label whose probability reaches its threshold
    (``thresholds``, tuned on validation and read from the run's thresholds.json):

    >>> tagger.predict(["rain stops the match"])  # doctest: +SKIP
    [{'labels': ['sports', 'weather'], 'scores': {'politics': 0.02, 'sports': 0.97, 'weather': 0.88}}]
    """

    def __init__(
        self,
        model: RNNClassifier,
        tokenizer: Tokenizer,
        label_names: list[str],
        config: Config,
        device: torch.device,
        run_dir: Optional[Path] = None,
        thresholds: Optional[Sequence[float]] = None,
        quantized: bool = False,
    ) -> None:
        self.model = model.eval()
        self.quantized = quantized  # int8 weights (CPU only): runs in fp32 activations, whatever the run's precision
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.config = config
        self.device = device
        self.run_dir = run_dir
        self.pad_id = pad_id(tokenizer)
        self.objective = make_objective(config.data.multi_label, len(self.label_names))
        # Multi-label only: a label is predicted when its probability is at least its threshold.
        self.thresholds: Optional[list[float]] = None
        if self.objective.multi_label:
            self.thresholds = [DEFAULT_THRESHOLD] * len(self.label_names) if thresholds is None else list(thresholds)

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "auto", quantize: bool = False) -> "Classifier":
        """Load a run directory (safetensors weights, JSON/YAML files only: nothing is unpickled).

        ``quantize`` makes the LSTM/GRU and linear layers dynamically int8-quantized for faster CPU inference
        (seqnlp.export.quantize says what is and is not quantized); it needs the CPU, which ``auto`` then picks.
        """
        dev = torch.device("cpu") if quantize and device == "auto" else resolve_device(device)
        if quantize and dev.type != "cpu":
            raise ConfigError(f"quantize: int8 dynamic quantization runs on the CPU, not on {dev}; use device cpu")
        config, tokenizer, labels, model = load_run(run_dir, dev)
        thresholds = load_thresholds(Path(run_dir), labels) if config.data.multi_label else None
        if config.data.multi_label and thresholds is None:
            log.warning("%s has no thresholds.json (training did not finish): every label's threshold is %.1f",
                        run_dir, DEFAULT_THRESHOLD)
        if quantize:
            from seqnlp.export.quantize import quantize_dynamic

            model, _ = quantize_dynamic(model)
        return cls(model, tokenizer, labels, config, dev, Path(run_dir), thresholds=thresholds, quantized=quantize)

    @property
    def multi_label(self) -> bool:
        return self.objective.multi_label

    @property
    def batch_size(self) -> int:
        return self.config.train.eval_batch_size

    def predict(self, texts: Sequence[str], top_k: Optional[int] = None,
                probabilities: bool = False) -> list[dict[str, Any]]:
        """One dict per text: ``label`` and ``score`` (its probability); with ``top_k``, also ``top_k``:
        the k most probable labels with their probabilities, best first; with ``probabilities``, also
        ``probabilities``: every label's probability, in label order.

        Multi-label: ``labels``, every label whose probability reaches its threshold (possibly none), in label
        order, and ``scores``, every label's probability."""
        if top_k is not None and not 1 <= top_k <= len(self.label_names):
            raise DataError(f"top_k must be between 1 and the number of labels ({len(self.label_names)}), not {top_k}")
        probs = self.predict_proba(texts)  # [N, C]
        chosen = None
        if self.thresholds is not None:
            chosen = self.objective.decide(torch.from_numpy(probs), torch.tensor(self.thresholds, dtype=torch.float64)).numpy()  # [N, C]
        results = []
        for n, row in enumerate(probs):
            result: dict[str, Any]
            if chosen is not None:
                result = {"labels": [name for name, on in zip(self.label_names, chosen[n]) if on],
                          "scores": {name: float(p) for name, p in zip(self.label_names, row)}}
            else:
                best = int(row.argmax())
                result = {"label": self.label_names[best], "score": float(row[best])}
            if top_k is not None:
                order = np.argsort(-row, kind="stable")[:top_k]
                result["top_k"] = [{"label": self.label_names[i], "score": float(row[i])} for i in order]
            if probabilities:
                result["probabilities"] = {name: float(p) for name, p in zip(self.label_names, row)}
            results.append(result)
        return results

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities [N, C] (float32), in the order of ``texts``; multi-label: one sigmoid per label."""
        return self.objective.probabilities(self.logits(texts)).numpy()

    @torch.inference_mode()
    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        """Logits [N, C] on the CPU. Texts are batched by length, so padding stays small."""
        if isinstance(texts, str):
            raise DataError("pass a list of texts, not a single string")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"text {i} is a {type(text).__name__}, not a string")
        out = torch.empty(len(texts), len(self.label_names))  # [N, C]
        if not texts:
            return out
        for indices, ids, lengths in self._batches(encode_texts(self.tokenizer, texts)):
            with autocast(self.device, "fp32" if self.quantized else self.config.train.precision):
                logits = self.model(ids.to(self.device), lengths)  # [B, C]
            out[torch.from_numpy(indices)] = logits.float().cpu()
        return out

    def _batches(self, sequences: list[list[int]]) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))  # [N]
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]  # [B]
            batch_lengths = lengths[indices]
            flat = np.fromiter(
                itertools.chain.from_iterable(sequences[i] for i in indices), dtype=np.int64, count=int(batch_lengths.sum())
            )
            ids = pad_flat(flat, batch_lengths, self.pad_id)  # [B, T]
            yield indices, torch.from_numpy(ids), torch.from_numpy(batch_lengths)


def load(run_dir: str | Path, device: str = "auto", quantize: bool = False) -> Classifier:
    """Load a trained run for prediction: ``seqnlp.load("runs/x").predict(["some text"])``."""
    return Classifier.load(run_dir, device=device, quantize=quantize)
