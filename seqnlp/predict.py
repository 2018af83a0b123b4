"""Inference: the one loop every forward pass without gradients goes through, and the Classifier built on it.

``forward_batches`` serves training's evaluation (``seqnlp.evaluation``), ``seqnlp evaluate`` and the Classifier
alike, so eval mode, inference mode and autocast are decided in one place. A Classifier is a trained run loaded
from its directory: texts in, labels and probabilities out. How it runs (batch size, precision, device,
int8 quantization) is an inference setting given when it is loaded, not read from the run's training config.

Probabilities are calibrated: the run's calibration.json (``seqnlp.calibration``) divides the logits by its
temperature, and a binary run may decide by a threshold tuned on validation. A run trained before seqnlp fitted
calibrations has none, and keeps its model's own probabilities (temperature 1). ``min_confidence`` makes
``predict`` abstain on the texts it is not sure enough of.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer

from seqnlp.batching import Batch, pad_flat
from seqnlp.calibration import Calibration, decision_confidence
from seqnlp.checkpoint import CALIBRATION_FILE, load_calibration, load_run, load_thresholds
from seqnlp.config import PRECISIONS, Config, is_thread_setting
from seqnlp.errors import ConfigError, DataError
from seqnlp.model import RNNClassifier
from seqnlp.objective import DEFAULT_THRESHOLD, make_objective
from seqnlp.runtime import ThreadControl, autocast, resolve_device
from seqnlp.threads import AUTO
from seqnlp.tokenizer import encode_texts, pad_id

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256  # texts per forward pass: memory, not results, depends on it
DEFAULT_PRECISION = "fp32"


def forward_batches(model: torch.nn.Module, batches: Iterable[Batch], device: torch.device,
                    precision: str = DEFAULT_PRECISION,
                    threads: Optional[ThreadControl] = None) -> Iterator[tuple[Batch, torch.Tensor]]:
    """(batch on ``device``, logits [B, C]) for each batch: eval mode, no autograd, autocast to ``precision``.

    ``threads`` (None: torch's setting as it is) sets the thread count and times every forward pass for it. The
    model's training mode and torch's thread count are restored once the batches are done (or the loop is left).
    """
    was_training = model.training
    model.eval()
    threads = threads or ThreadControl(None)
    try:
        with threads.applied():
            for batch in batches:
                batch = batch.to(device)
                start = time.perf_counter()
                with torch.inference_mode(), autocast(device, precision):
                    logits = model(batch.input_ids, batch.lengths)  # [B, C]
                threads.observe(batch.num_tokens, time.perf_counter() - start)
                yield batch, logits
    finally:
        model.train(was_training)


def check_inference_settings(batch_size: int, precision: str, device: torch.device, quantized: bool = False,
                             num_threads: int | str | None = AUTO) -> None:
    """A ConfigError naming the setting for a batch size that is not a positive integer, an unknown precision,
    fp16 off CUDA (autocast to fp16 needs a GPU), an int8 model asked to run in anything but fp32, or a thread
    count that is not auto, None or a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
    if not is_thread_setting(num_threads):
        raise ConfigError(f"num_threads must be auto, None or a positive integer, not {num_threads!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"precision: fp16 needs a CUDA device, not {device}; on the CPU use bf16 or fp32")
    if quantized and precision != "fp32":
        raise ConfigError(f"precision: an int8-quantized model runs in fp32, not {precision}")


class Classifier:
    """The model, tokenizer and label names of one run, ready for inference.

    >>> clf = Classifier.load("runs/sms")          # doctest: +SKIP
    >>> clf.predict(["WINNER!! Claim your prize now"])  # doctest: +SKIP
    [{'label': 'spam', 'score': 0.99}]

    A multi-label run (``data.multi_label``) predicts every label whose probability reaches its threshold
    (``thresholds``, tuned on validation and read from the run's thresholds.json):

    >>> tagger.predict(["rain stops the match"])  # doctest: +SKIP
    [{'labels': ['sports', 'weather'], 'scores': {'politics': 0.02, 'sports': 0.97, 'weather': 0.88}}]

    ``calibration`` (read from calibration.json) scales the logits before every probability, and may give a binary
    run a decision threshold; ``predict(..., min_confidence=0.9)`` abstains below 0.9:

    >>> clf.predict(["call me maybe"], min_confidence=0.9)  # doctest: +SKIP
    [{'label': None, 'abstained': True, 'score': 0.71, 'best': 'ham'}]
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
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = DEFAULT_PRECISION,
        calibration: Optional[Calibration] = None,
        num_threads: int | str | None = AUTO,
    ) -> None:
        check_inference_settings(batch_size, precision, device, quantized, num_threads)
        self.calibration = calibration or Calibration()  # temperature (and binary threshold) fitted on validation
        self.model = model.eval()
        self.quantized = quantized  # int8 weights (CPU only), fp32 activations
        self.batch_size = batch_size  # texts per forward pass
        self.precision = precision  # fp32, or bf16/fp16 autocast
        self.thread_control = ThreadControl(num_threads, device)  # torch threads of the forward passes (auto: timed)
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
    def load(cls, run_dir: str | Path, device: str = "auto", quantize: bool = False,
             batch_size: int = DEFAULT_BATCH_SIZE, precision: str = DEFAULT_PRECISION,
             num_threads: int | str | None = AUTO) -> "Classifier":
        """Load a run directory (safetensors weights, JSON/YAML files only: nothing is unpickled).

        ``quantize`` makes the LSTM/GRU and linear layers dynamically int8-quantized for faster CPU inference
        (seqnlp.export.quantize says what is and is not quantized); it needs the CPU, which ``auto`` then picks, and fp32.
        ``batch_size`` texts run per forward pass, autocast to ``precision`` (fp32, bf16, or fp16 on CUDA),
        whatever the run was trained with: the defaults give the numbers of an fp32 run's own evaluation.
        ``num_threads`` is torch's thread count for them: N, None (torch's setting), or ``auto``: the usable CPUs,
        then the fastest count, timed on the first batches (docs/performance.md).
        """
        dev = torch.device("cpu") if quantize and device == "auto" else resolve_device(device)
        if quantize and dev.type != "cpu":
            raise ConfigError(f"quantize: int8 dynamic quantization runs on the CPU, not on {dev}; use device cpu")
        check_inference_settings(batch_size, precision, dev, quantize, num_threads)  # before the run is read
        config, tokenizer, labels, model = load_run(run_dir, dev)
        thresholds = load_thresholds(Path(run_dir), labels) if config.data.multi_label else None
        if config.data.multi_label and thresholds is None:
            log.warning("%s has no thresholds.json (training did not finish): every label's threshold is %.1f",
                        run_dir, DEFAULT_THRESHOLD)
        calibration = load_calibration(Path(run_dir), labels)
        if calibration is None:
            log.info("%s has no %s (trained before seqnlp calibrated runs, or stopped before): probabilities are "
                     "the model's own (temperature 1)", run_dir, CALIBRATION_FILE)
        if quantize:
            from seqnlp.export.quantize import quantize_dynamic

            model, _ = quantize_dynamic(model)
        return cls(model, tokenizer, labels, config, dev, Path(run_dir), thresholds=thresholds, quantized=quantize,
                   batch_size=batch_size, precision=precision, calibration=calibration, num_threads=num_threads)

    @property
    def multi_label(self) -> bool:
        return self.objective.multi_label

    def predict(self, texts: Sequence[str], top_k: Optional[int] = None, probabilities: bool = False,
                min_confidence: Optional[float] = None) -> list[dict[str, Any]]:
        """One dict per text: ``label`` and ``score`` (its calibrated probability); with ``top_k``, also ``top_k``:
        the k most probable labels with their probabilities, best first; with ``probabilities``, also
        ``probabilities``: every label's probability, in label order.

        Multi-label: ``labels``, every label whose probability reaches its threshold (possibly none), in label
        order, and ``scores``, every label's probability.

        With ``min_confidence``, every dict also says ``abstained``: true when the decision's confidence (the
        probability of the label decided; multi-label: of the least sure label decision, p or 1 - p) is below it.
        An abstention answers ``label`` (``labels``) null and names the decision it held back as ``best``.
        """
        if top_k is not None and not 1 <= top_k <= len(self.label_names):
            raise DataError(f"top_k must be between 1 and the number of labels ({len(self.label_names)}), not {top_k}")
        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise DataError(f"min_confidence must be between 0 and 1, not {min_confidence}")
        probs = torch.from_numpy(self.predict_proba(texts))  # [N, C]
        decided = self.decide(probs)  # [N] classes, or [N, C] multi-hot
        confidence = decision_confidence(probs, decided, self.multi_label).tolist()  # [N]
        results = []
        for n, row in enumerate(probs.numpy()):
            result: dict[str, Any]
            if self.multi_label:
                result = {"labels": [name for name, on in zip(self.label_names, decided[n].tolist()) if on],
                          "scores": {name: float(p) for name, p in zip(self.label_names, row)}}
            else:
                result = {"label": self.label_names[int(decided[n])], "score": float(row[int(decided[n])])}
            if min_confidence is not None:
                result = _abstain(result, confidence[n] < min_confidence)
            if top_k is not None:
                order = np.argsort(-row, kind="stable")[:top_k]
                result["top_k"] = [{"label": self.label_names[i], "score": float(row[i])} for i in order]
            if probabilities:
                result["probabilities"] = {name: float(p) for name, p in zip(self.label_names, row)}
            results.append(result)
        return results

    def decide(self, probs: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities [N, C] -> decisions: [N] classes (the most probable, or a binary run's tuned
        threshold), or multi-hot [N, C] (each label at or above its threshold)."""
        if self.calibration.threshold is not None:
            return self.calibration.threshold.decide(probs)
        thresholds = None if self.thresholds is None else torch.tensor(self.thresholds, dtype=torch.float64)
        return self.objective.decide(probs, thresholds)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated class probabilities [N, C] (float32), in the order of ``texts``; multi-label: one sigmoid
        per label. The logits are divided by the run's temperature first."""
        return self.objective.probabilities(self.calibration.scale(self.logits(texts))).numpy()

    @torch.inference_mode()
    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        """The model's own logits [N, C] on the CPU, before calibration. Texts are batched by length, so padding
        stays small."""
        if isinstance(texts, str):
            raise DataError("pass a list of texts, not a single string")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"text {i} is a {type(text).__name__}, not a string")
        out = torch.empty(len(texts), len(self.label_names))  # [N, C]
        batches = self._batches(encode_texts(self.tokenizer, texts))
        for batch, logits in forward_batches(self.model, batches, self.device, self.precision,
                                             self.thread_control):
            out[torch.from_numpy(batch.indices)] = logits.float().cpu()
        return out

    def _batches(self, sequences: list[list[int]]) -> Iterator[Batch]:
        """Unlabeled batches of the sequences sorted by length; ``indices`` put the outputs back in order."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))  # [N]
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]  # [B]
            batch_lengths = lengths[indices]
            flat = np.fromiter(
                itertools.chain.from_iterable(sequences[i] for i in indices), dtype=np.int64, count=int(batch_lengths.sum())
            )
            ids = pad_flat(flat, batch_lengths, self.pad_id)  # [B, T]
            yield Batch(torch.from_numpy(ids), torch.from_numpy(batch_lengths), None, indices)


def _abstain(result: dict[str, Any], abstained: bool) -> dict[str, Any]:
    """``result`` with ``abstained``; when it abstains, its label (labels) null and the decision held back as best."""
    key = "labels" if "labels" in result else "label"
    if not abstained:
        return {**result, "abstained": False}
    return {key: None, "abstained": True, "best": result[key], **{k: v for k, v in result.items() if k != key}}


def load(run_dir: str | Path, device: str = "auto", quantize: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
         precision: str = DEFAULT_PRECISION, num_threads: int | str | None = AUTO) -> Classifier:
    """Load a trained run for prediction: ``seqnlp.load("runs/x").predict(["some text"])``."""
    return Classifier.load(run_dir, device=device, quantize=quantize, batch_size=batch_size, precision=precision,
                           num_threads=num_threads)
