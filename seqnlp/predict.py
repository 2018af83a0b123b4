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
from seqnlp.checkpoint import load_run
from seqnlp.config import Config
from seqnlp.errors import ConfigError, DataError
from seqnlp.model import RNNClassifier
from seqnlp.runtime import autocast, resolve_device
from seqnlp.tokenizer import encode_texts, pad_id

log = logging.getLogger(__name__)


class Classifier:
    """The model, tokenizer and label names of one run, ready for inference.

    >>> clf = Classifier.load("runs/sms")          # doctest: +SKIP
    >>> clf.predict(["WINNER!! Claim your prize now"])  # doctest: +SKIP
    [{'label': 'spam', 'score': 0.99}]
    """

    def __init__(
        self,
        model: RNNClassifier,
        tokenizer: Tokenizer,
        label_names: list[str],
        config: Config,
        device: torch.device,
        run_dir: Optional[Path] = None,
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

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "auto", quantize: bool = False) -> "Classifier":
        """Load a run directory (safetensors weights, JSON/YAML files only: nothing is unpickled).

        ``quantize`` makes the LSTM/GRU and linear layers dynamically int8-quantized for faster CPU inference
        (seqnlp.quantize says what is and is not quantized); it needs the CPU, which ``auto`` then picks.
        """
        dev = torch.device("cpu") if quantize and device == "auto" else resolve_device(device)
        if quantize and dev.type != "cpu":
            raise ConfigError(f"quantize: int8 dynamic quantization runs on the CPU, not on {dev}; use device cpu")
        config, tokenizer, labels, model = load_run(run_dir, dev)
        if quantize:
            from seqnlp.quantize import quantize_dynamic

            model, _ = quantize_dynamic(model)
        return cls(model, tokenizer, labels, config, dev, Path(run_dir), quantized=quantize)

    @property
    def batch_size(self) -> int:
        return self.config.train.eval_batch_size

    def predict(self, texts: Sequence[str], top_k: Optional[int] = None) -> list[dict[str, Any]]:
        """One dict per text: ``label`` and ``score`` (its probability); with ``top_k``, also ``top_k``:
        the k most probable labels with their probabilities, best first."""
        if top_k is not None and not 1 <= top_k <= len(self.label_names):
            raise DataError(f"top_k must be between 1 and the number of labels ({len(self.label_names)}), not {top_k}")
        probs = self.predict_proba(texts)  # [N, C]
        results = []
        for row in probs:
            best = int(row.argmax())
            result: dict[str, Any] = {"label": self.label_names[best], "score": float(row[best])}
            if top_k is not None:
                order = np.argsort(-row, kind="stable")[:top_k]
                result["top_k"] = [{"label": self.label_names[i], "score": float(row[i])} for i in order]
            results.append(result)
        return results

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities [N, C] (float32), in the order of ``texts``."""
        return torch.softmax(self.logits(texts).float(), dim=-1).numpy()

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
