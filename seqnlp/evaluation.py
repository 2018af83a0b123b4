"""Evaluation of a model on a labelled split: the mean loss and every metric (``seqnlp.metrics``) in one pass.

``evaluate_model`` and ``predict_split`` serve training (the validation split after each epoch, and the
probabilities thresholds are tuned on); ``evaluate`` serves a user with a trained run and a split of its own data,
or of other data; ``format_report`` prints what ``evaluate`` returns. Every pass runs through
``seqnlp.predict.forward_batches``, the one inference loop.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from seqnlp import distributed
from seqnlp.batching import BatchLoader
from seqnlp.config import DataConfig, load_config
from seqnlp.data import load_splits, split_names
from seqnlp.errors import ConfigError, DataError
from seqnlp.metrics import MULTI_LABEL, Metrics
from seqnlp.objective import Objective
from seqnlp.predict import (DEFAULT_BATCH_SIZE, DEFAULT_PRECISION, Classifier, check_inference_settings,
                            forward_batches)
from seqnlp.runtime import ThreadControl
from seqnlp.tokenizer import encode_dataset

log = logging.getLogger(__name__)


@torch.inference_mode()
def evaluate_model(
    model: torch.nn.Module,
    loader: BatchLoader,
    label_names: list[str],
    device: torch.device,
    precision: str = "fp32",
    objective: Optional[Objective] = None,
    thresholds: Optional[Sequence[float]] = None,
    threads: Optional[ThreadControl] = None,
) -> dict[str, Any]:
    """Mean loss and all metrics of ``model`` over every batch of ``loader`` (of every process, if sharded).

    ``objective`` (default: single-label) says how logits become probabilities and decisions; multi-label
    decisions use ``thresholds`` (default 0.5 for every label). The loss is the plain, unweighted one.
    ``threads`` sets torch's thread count for the passes (None: as it is; training sets its own).
    """
    if loader.labels is None:
        raise DataError("cannot evaluate on a split without labels")
    objective = objective or Objective(len(label_names))
    metrics = Metrics(objective, label_names, sync=loader.sharded, thresholds=thresholds).to(device)
    total_loss, total = 0.0, 0
    for batch, logits in forward_batches(model, loader, device, precision, threads):  # logits [B, C]
        assert batch.labels is not None
        total_loss += float(objective.loss_sum(logits.float(), batch.labels))
        total += len(batch.labels)
        metrics.update(objective.probabilities(logits), batch.labels)
    if loader.sharded:
        total_loss, total = distributed.all_sum([total_loss, total])
    result = {"loss": total_loss / max(total, 1), "num_examples": int(total)}
    result.update(metrics.compute())
    return result


@torch.inference_mode()
def predict_split(model: torch.nn.Module, loader: BatchLoader, device: torch.device, precision: str,
                  objective: Objective) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [N, C] and labels of a whole labeled split (every process's share, when sharded)."""
    assert loader.labels is not None
    probs, labels = [], []
    for batch, logits in forward_batches(model, loader, device, precision):  # logits [B, C]
        probs.append(objective.probabilities(logits).cpu().numpy())
        labels.append(loader.labels[batch.indices])
    mine = (np.concatenate(probs), np.concatenate(labels))
    shares = distributed.gather(mine) if loader.sharded else [mine]
    return np.concatenate([p for p, _ in shares]), np.concatenate([y for _, y in shares])


def evaluate(
    run: str | Path | Classifier,
    split: Optional[str] = None,
    *,
    data: Optional[DataConfig] = None,
    dataset: Optional[str] = None,
    data_files: Optional[Mapping[str, str | Sequence[str]]] = None,
    text_columns: Optional[str | Sequence[str]] = None,
    label_column: Optional[str] = None,
    device: str = "auto",
    batch_size: Optional[int] = None,
    precision: Optional[str] = None,
    num_threads: int | str | None = "auto",
) -> dict[str, Any]:
    """Evaluate a trained run (a run directory, or a loaded Classifier) on a labeled split.

    With no data named, the run's own data is used (its carved splits are reproduced from the saved seed); with
    no ``split``, its test split, else its validation split. Other data is a ``dataset`` (a file, directory,
    saved dataset or Hub name) or ``data_files`` (``{"test": "held_out.csv"}``), read with the run's text and
    label columns unless ``text_columns``/``label_column`` say otherwise; or a whole DataConfig as ``data``:

    >>> seqnlp.evaluate("runs/sst2", data_files={"test": "dev.tsv"})  # doctest: +SKIP

    ``batch_size`` and ``precision`` (default: the Classifier's, or 256 and fp32 when loading) only change how
    the forward passes run, and ``num_threads`` (when loading; a Classifier brings its own) on how many threads:
    N, None (torch's setting) or ``auto`` (timed: docs/performance.md). Only the evaluated split is prepared
    (``load_splits(only=...)``).
    """
    clf = run if isinstance(run, Classifier) else Classifier.load(
        run, device=device, batch_size=batch_size or DEFAULT_BATCH_SIZE, precision=precision or DEFAULT_PRECISION,
        num_threads=num_threads)
    batch_size, precision = batch_size or clf.batch_size, precision or clf.precision
    check_inference_settings(batch_size, precision, clf.device, clf.quantized)
    data_cfg = _data_config(clf, data, dataset, data_files, text_columns, label_column)
    name = split
    if name is None:  # the test split, else validation: which exist is known without preparing any
        names = split_names(data_cfg)
        name = next((s for s in (data_cfg.test_split, data_cfg.validation_split) if s is not None and s in names),
                    None)
        if name is None:
            raise DataError(f"split {data_cfg.test_split!r} not found; splits that exist: {', '.join(names)} "
                            "(use --split)")
    splits = load_splits(data_cfg, clf.config.seed, label_names=clf.label_names, only=[name])
    if name not in splits.data:
        raise DataError(f"split {name!r} not found; splits that exist: {', '.join(splits.available)} (use --split)")
    encoded = encode_dataset(splits.data[name], clf.tokenizer, desc=f"encoding {name}")
    if "label" not in encoded.column_names:
        raise DataError(f"split {name!r} has no label column {data_cfg.label_column!r}; it cannot be evaluated")
    loader = BatchLoader(encoded, batch_size, pad_id=clf.pad_id)
    result = evaluate_model(clf.model, loader, clf.label_names, clf.device, precision,
                            objective=clf.objective, thresholds=clf.thresholds, threads=clf.thread_control)
    result["split"] = name
    if not math.isfinite(result["loss"]):
        log.warning("evaluation loss is not finite")
    return result


def _data_config(clf: Classifier, data: Optional[DataConfig], dataset: Optional[str],
                 data_files: Optional[Mapping[str, Any]], text_columns: Optional[str | Sequence[str]],
                 label_column: Optional[str]) -> DataConfig:
    """The data to evaluate on: ``data`` as given, else the run's data with the changes named. Other data (a
    dataset or files) keeps only how the run read its columns: none of its splits, sizes or load options."""
    columns = [text_columns] if isinstance(text_columns, str) else text_columns
    files = {split: str(paths) if isinstance(paths, (str, Path)) else [str(p) for p in paths]
             for split, paths in (data_files or {}).items()}
    updates = {key: value for key, value in (("data.dataset", dataset), ("data.data_files", files or None),
                                             ("data.text_columns", list(columns) if columns else None),
                                             ("data.label_column", label_column)) if value is not None}
    if data is not None:
        if updates:
            raise ConfigError("give the data as data=DataConfig(...) or as dataset/data_files/text_columns/"
                              "label_column, not both")
        return data
    if not updates:
        return clf.config.data
    base = copy.deepcopy(clf.config)
    if dataset is not None or files:
        run = clf.config.data
        base.data = DataConfig(text_columns=run.text_columns, text_separator=run.text_separator,
                               label_column=run.label_column, label_names=run.label_names,
                               multi_label=run.multi_label)
    return load_config(base=base, updates=updates).data


def format_report(result: dict[str, Any], label_names: Optional[Sequence[str]] = None) -> str:
    """``evaluate``'s result as aligned tables: the headline metrics, a row per label (multi-label: with the
    threshold it was decided with) and, single-label, the confusion matrix. Labels default to the result's own."""
    if "task" not in result:
        raise DataError("the result has no 'task' (it was written before seqnlp recorded one): evaluate the run again")
    names = list(label_names) if label_names is not None else list(result["per_class"])
    multi = result["task"] == MULTI_LABEL
    lines = [f"Split: {result['split']} ({result['num_examples']:,} examples)", ""]
    headline = ((("exact_match", "exact match"), ("hamming_loss", "Hamming loss"), ("micro_f1", "micro-F1"))
                if multi else (("accuracy", "accuracy"),))
    for key, name in headline + (("macro_f1", "macro-F1"), ("macro_precision", "macro-precision"),
                                 ("macro_recall", "macro-recall"), ("auroc", "AUROC"), ("loss", "loss")):
        lines.append(f"  {name:<16}" + ("n/a" if result[key] is None else f"{result[key]:.4f}"))
    width = max(9, *(len(n) for n in names)) + 2
    extra = ("predicted", "threshold") if multi else ()
    lines += ["", f"  {'label':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'auroc':>10}{'support':>10}"
              + "".join(f"{e:>10}" for e in extra)]
    for name, row in result["per_class"].items():
        auroc = "n/a" if row["auroc"] is None else f"{row['auroc']:.4f}"
        lines.append(f"  {name:<{width}}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
                     f"{auroc:>10}{row['support']:>10,}"
                     + (f"{row['predicted']:>10,}{row.get('threshold', 0.5):>10.3f}" if multi else ""))
    if multi:
        return "\n".join(lines)
    cell = max(7, *(len(n) for n in names)) + 2
    lines += ["", "  Confusion matrix (rows: true label, columns: predicted)",
              "  " + " " * width + "".join(f"{n:>{cell}}" for n in names)]
    for name, row in zip(names, result["confusion_matrix"]):
        lines.append(f"  {name:<{width}}" + "".join(f"{v:>{cell},}" for v in row))
    return "\n".join(lines)
