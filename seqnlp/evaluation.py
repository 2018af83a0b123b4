"""Evaluation of a model on a labelled split: the mean loss and every metric (``seqnlp.metrics``) in one pass.

``evaluate_model`` and ``split_logits`` serve training (the validation split after each epoch, and the logits
the calibration and thresholds are fitted on); ``evaluate`` serves a user with a trained run and a split of its
own data, or of other data; ``format_report`` prints what ``evaluate`` returns; ``calibrate`` fits a run's
calibration again on a labelled split of the user's choosing. Every pass runs through
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
from datasets import Dataset

from seqnlp import distributed
from seqnlp.batching import BatchLoader
from seqnlp.calibration import Calibration, check_decision_labels
from seqnlp.calibration import fit as fit_calibration
from seqnlp.checkpoint import CALIBRATION_FILE, save_thresholds, write_json
from seqnlp.config import CalibrationConfig, DataConfig, load_config
from seqnlp.data import load_splits, split_names
from seqnlp.errors import ConfigError, DataError
from seqnlp.metrics import MULTI_LABEL, CalibrationMetrics, Metrics
from seqnlp.objective import Objective, tune_thresholds
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
    calibration: Optional[Calibration] = None,
    threads: Optional[ThreadControl] = None,
) -> dict[str, Any]:
    """Mean loss and all metrics of ``model`` over every batch of ``loader`` (of every process, if sharded).

    ``objective`` (default: single-label) says how logits become probabilities and decisions; multi-label
    decisions use ``thresholds`` (default 0.5 for every label). The loss is the plain, unweighted one, of the
    model's own logits. With ``calibration``, the metrics are those of the calibrated run (its temperature, and a
    binary run's decision threshold), and ``calibration`` in the result says how calibrated its probabilities are
    before and after the temperature (``seqnlp.metrics.CalibrationMetrics``). ``threads`` sets torch's thread
    count for the passes (None: as it is; training sets its own).
    """
    if loader.labels is None:
        raise DataError("cannot evaluate on a split without labels")
    objective = objective or Objective(len(label_names))
    binary = calibration.threshold if calibration is not None else None
    metrics = Metrics(objective, label_names, sync=loader.sharded, thresholds=thresholds, binary=binary).to(device)
    calibrated = (CalibrationMetrics(objective, len(label_names), calibration, loader.sharded, thresholds).to(device)
                  if calibration is not None else None)
    total_loss, total = 0.0, 0
    for batch, logits in forward_batches(model, loader, device, precision, threads):  # logits [B, C]
        assert batch.labels is not None
        total_loss += float(objective.loss_sum(logits.float(), batch.labels))
        total += len(batch.labels)
        scaled = calibration.scale(logits) if calibration is not None else logits  # [B, C]
        metrics.update(objective.probabilities(scaled), batch.labels)
        if calibrated is not None:
            calibrated.update(logits, batch.labels)
    if loader.sharded:
        total_loss, total = distributed.all_sum([total_loss, total])
    result = {"loss": total_loss / max(total, 1), "num_examples": int(total)}
    result.update(metrics.compute())
    if calibrated is not None:
        result["calibration"] = calibrated.compute()
        if binary is not None:
            result["calibration"]["decision"] = {"positive_label": label_names[binary.positive],
                                                 "threshold": binary.threshold}
    return result


@torch.inference_mode()
def split_logits(model: torch.nn.Module, loader: BatchLoader, device: torch.device,
                 precision: str) -> tuple[torch.Tensor, np.ndarray]:
    """Logits [N, C] (float32, CPU) and labels of a whole labeled split (every process's share, when sharded), in
    the loader's order: what a calibration is fitted on."""
    assert loader.labels is not None
    logits, labels = [], []
    for batch, out in forward_batches(model, loader, device, precision):  # out [B, C]
        logits.append(out.float().cpu())
        labels.append(loader.labels[batch.indices])
    mine = (torch.cat(logits), np.concatenate(labels))
    shares = distributed.gather(mine) if loader.sharded else [mine]
    return torch.cat([z for z, _ in shares]), np.concatenate([y for _, y in shares])


def predict_split(model: torch.nn.Module, loader: BatchLoader, device: torch.device, precision: str,
                  objective: Objective) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [N, C] and labels of a whole labeled split (every process's share, when sharded)."""
    logits, labels = split_logits(model, loader, device, precision)
    return objective.probabilities(logits).numpy(), labels


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
    name, prepared, carved = labelled_split(clf, split, data=data, dataset=dataset, data_files=data_files,
                                            text_columns=text_columns, label_column=label_column)
    encoded = encode_dataset(prepared, clf.tokenizer, desc=f"encoding {name}")
    loader = BatchLoader(encoded, batch_size, pad_id=clf.pad_id)
    result = evaluate_model(clf.model, loader, clf.label_names, clf.device, precision,
                            objective=clf.objective, thresholds=clf.thresholds, calibration=clf.calibration,
                            threads=clf.thread_control)
    result["split"] = name
    result["carved"] = carved  # "carved from train, 10%" for a split carved as training did
    if not math.isfinite(result["loss"]):
        log.warning("evaluation loss is not finite")
    return result


def fit_calibration_on(model: torch.nn.Module, loader: BatchLoader, label_names: list[str], objective: Objective,
                       device: torch.device, precision: str, settings: CalibrationConfig,
                       split: str) -> tuple[Calibration, dict[str, Any], Optional[list[float]]]:
    """Fit a calibration (``settings``: the ``calibration`` section) on the logits of ``loader``'s split, then,
    multi-label, a threshold per label on the calibrated probabilities: (calibration, calibration.json's record,
    thresholds or None). Training fits on its validation split; ``calibrate`` on the split a user names."""
    check_decision_labels(settings.threshold, settings.positive_label, label_names, objective.multi_label)
    logits, labels = split_logits(model, loader, device, precision)
    calibration, record = fit_calibration(
        logits, torch.from_numpy(labels), label_names, objective.multi_label, temperature=settings.temperature,
        rule=settings.threshold, target_precision=settings.target_precision, positive_label=settings.positive_label,
        split=split)
    if not objective.multi_label:
        return calibration, record, None
    thresholds = tune_thresholds(objective.probabilities(calibration.scale(logits)).numpy(), labels).tolist()
    log.info("thresholds tuned on %s: %s", split, ", ".join(f"{n} {t:.3f}" for n, t in zip(label_names, thresholds)))
    return calibration, record, thresholds


def calibrate(run_dir: str | Path, split: Optional[str] = None, *, temperature: bool = True,
              threshold: str = "argmax", target_precision: float = 0.95, positive_label: Optional[str] = None,
              device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE, **data: Any) -> dict[str, Any]:
    """Fit ``run_dir``'s calibration again on a labelled split and write calibration.json; returns its record.

    The split is the run's validation split unless ``split`` (and ``data``: the ``data``/``dataset``/``data_files``/
    ``text_columns``/``label_column`` of ``evaluate``) name another: labelled data that looks like what the run
    will see. ``temperature``, ``threshold``, ``target_precision`` and ``positive_label`` are the
    ``calibration.*`` settings. A multi-label run's thresholds are tuned again on the same split (thresholds.json),
    since they apply to the calibrated probabilities. A run trained before seqnlp calibrated runs gets its first.
    """
    clf = Classifier.load(run_dir, device=device, batch_size=batch_size)
    settings = CalibrationConfig(temperature, threshold, target_precision, positive_label)  # type: ignore[arg-type]
    check_decision_labels(threshold, positive_label, clf.label_names, clf.multi_label)  # before any data loads
    name, prepared, _ = labelled_split(clf, split or clf.config.data.validation_split, **data)
    loader = BatchLoader(encode_dataset(prepared, clf.tokenizer, desc=f"encoding {name}"), batch_size,
                         pad_id=clf.pad_id)
    calibration, record, thresholds = fit_calibration_on(clf.model, loader, clf.label_names, clf.objective,
                                                         clf.device, clf.precision, settings, name)
    run = Path(run_dir)
    if thresholds is not None:
        save_thresholds(run, clf.label_names, thresholds)
    scored = evaluate_model(clf.model, loader, clf.label_names, clf.device, clf.precision, clf.objective, thresholds,
                            calibration)["calibration"]
    record.update(ece_before=scored["before"]["ece"], ece_after=scored["after"]["ece"])
    write_json(run / CALIBRATION_FILE, record)
    log.info("calibration fitted on %s (%d examples): temperature %.3f, ECE %.4f -> %.4f", name,
             record["fitted_on"]["examples"], calibration.temperature, record["ece_before"], record["ece_after"])
    return record


def labelled_split(
    clf: Classifier,
    split: Optional[str] = None,
    *,
    data: Optional[DataConfig] = None,
    dataset: Optional[str] = None,
    data_files: Optional[Mapping[str, str | Sequence[str]]] = None,
    text_columns: Optional[str | Sequence[str]] = None,
    label_column: Optional[str] = None,
) -> tuple[str, Dataset, Optional[str]]:
    """The split ``evaluate`` reads (its arguments mean the same), prepared but not encoded: (name, dataset with
    ``text`` and ``label``, how it was carved from train or None). A split without labels is a DataError."""
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
    if "label" not in splits.data[name].column_names:
        raise DataError(f"split {name!r} has no label column {data_cfg.label_column!r}; it cannot be evaluated")
    return name, splits.data[name], splits.carved.get(name)


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
    carved = f", {result['carved']}" if result.get("carved") else ""
    lines = [f"Split: {result['split']}{carved} ({result['num_examples']:,} examples)", ""]
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
        return "\n".join(lines + format_calibration(result.get("calibration")))
    cell = max(7, *(len(n) for n in names)) + 2
    lines += ["", "  Confusion matrix (rows: true label, columns: predicted)",
              "  " + " " * width + "".join(f"{n:>{cell}}" for n in names)]
    for name, row in zip(names, result["confusion_matrix"]):
        lines.append(f"  {name:<{width}}" + "".join(f"{v:>{cell},}" for v in row))
    return "\n".join(lines + format_calibration(result.get("calibration")))


def format_calibration(calibration: Optional[dict[str, Any]]) -> list[str]:
    """The calibration block of a result as table lines: the scores before and after the temperature, the
    reliability table after it, and the risk-coverage table; none for a result without one."""
    if not calibration:
        return []
    decision = calibration.get("decision")
    rule = (f"; {decision['positive_label']} when its probability >= {decision['threshold']:.3f}" if decision
            else "")
    lines = ["", f"  Calibration (temperature {calibration['temperature']:.3f}{rule})",
             f"  {'':<16}{'before':>10}{'after':>10}"]
    for key, name in (("ece", "ECE"), ("mce", "MCE"), ("brier", "Brier score"), ("nll", "NLL")):
        lines.append(f"  {name:<16}{calibration['before'][key]:>10.4f}{calibration['after'][key]:>10.4f}")
    lines += ["", "  Reliability after calibration (rows: confidence bins)",
              f"  {'confidence':<16}{'examples':>10}{'mean conf':>11}{'accuracy':>10}"]
    for row in calibration["reliability"]["after"]:
        span = f"{row['low']:.1f}" if row["low"] == row["high"] else f"{row['low']:.1f}-{row['high']:.1f}"
        lines.append(f"  {span:<16}{row['count']:>10,}{row['confidence']:>11.4f}{row['accuracy']:>10.4f}")
    lines += ["", "  Risk-coverage (the most confident share of texts kept; --min-confidence keeps about that share)",
              f"  {'coverage':<16}{'examples':>10}{'accuracy':>11}{'min confidence':>16}"]
    for row in calibration["risk_coverage"]:
        if row["accuracy"] is not None:
            lines.append(f"  {row['coverage']:<16.0%}{row['examples']:>10,}{row['accuracy']:>11.4f}"
                         f"{row['min_confidence']:>16.4f}")
    return lines
