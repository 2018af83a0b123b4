"""``seqnlp report RUN``: one self-contained HTML page about a trained run.

The page holds what a person needs to decide whether to trust the run: the headline numbers and settings, the
training curves (metrics.jsonl), the confusion matrix and per-class table of a labelled split (by default the
test split, else validation, as ``seqnlp evaluate`` picks), how calibrated its probabilities are before and after
the temperature (reliability and risk-coverage), and its most confident mistakes, each explained token by token
(``seqnlp.explain``). Everything is inline (``seqnlp.report.html``): the page opens offline and loads nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from seqnlp.calibration import decision_confidence
from seqnlp.checkpoint import METRICS_FILE, REPORT_FILE, RESULTS_FILE, read_json
from seqnlp.evaluation import evaluate, labelled_split
from seqnlp.explain import DEFAULT_STEPS, Explanation, explain
from seqnlp.explain.render import fragment
from seqnlp.metrics import MULTI_LABEL
from seqnlp.predict import Classifier
from seqnlp.report import figures, html

log = logging.getLogger(__name__)

DEFAULT_EXAMPLES = 8  # misclassified examples explained on the page


@dataclass
class Mistake:
    """A text the run decided wrong: its true label(s), what was decided, and how sure the run was."""

    text: str
    truth: str
    decided: str
    confidence: float


def write_report(run_dir: str | Path, output: Optional[str | Path] = None, split: Optional[str] = None,
                 examples: int = DEFAULT_EXAMPLES, steps: int = DEFAULT_STEPS, device: str = "auto") -> Path:
    """Write the run's HTML report to ``output`` (default RUN_DIR/report.html) and return its path.

    ``split`` is the labelled split evaluated (default: test, else validation); ``examples`` of its most
    confident mistakes are explained with ``steps`` Integrated Gradients steps (0 examples: none).
    """
    run_dir = Path(run_dir)
    clf = Classifier.load(run_dir, device=device)
    result = evaluate(clf, split)
    _, prepared, _ = labelled_split(clf, result["split"])
    mistakes = find_mistakes(clf, prepared["text"], prepared["label"], examples)
    explanations = explain(clf, [m.text for m in mistakes], steps=steps) if mistakes else []
    results = read_json(run_dir / RESULTS_FILE) if (run_dir / RESULTS_FILE).is_file() else {}
    body: list[Optional[str]] = [
        overview(clf, result, results),
        curves_section(read_history(run_dir)),
        confusion_section(result, clf.label_names),
        per_class_section(result),
        calibration_section(result.get("calibration")),
        mistakes_section(mistakes, explanations, result["split"]),
    ]
    subtitle = f"{run_dir} · {datetime.now():%Y-%m-%d %H:%M} · seqnlp report"
    path = html.write_page(output or run_dir / REPORT_FILE, html.page(f"seqnlp run report: {run_dir.name}", body,
                                                                     subtitle))
    log.info("report written to %s", path)
    return path


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's epoch records; a line a crash cut short is left out."""
    path = run_dir / METRICS_FILE
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s: a line that is not JSON is left out of the curves", path)
    return records


def find_mistakes(clf: Classifier, texts: Sequence[str], labels: Sequence[Any], limit: int) -> list[Mistake]:
    """The ``limit`` texts the run decides wrong with the most confidence, most confident first."""
    if limit <= 0 or not texts:
        return []
    probs = torch.from_numpy(clf.predict_proba(list(texts)))  # [N, C]
    decided = clf.decide(probs)  # [N] classes, or [N, C] multi-hot
    confidence = decision_confidence(probs, decided, clf.multi_label).numpy()  # [N]
    found = []
    for i in np.argsort(-confidence, kind="stable"):
        if clf.multi_label:
            truth = ", ".join(n for n, on in zip(clf.label_names, labels[i]) if on > 0.5) or "(none)"
            said = ", ".join(n for n, on in zip(clf.label_names, decided[i].tolist()) if on) or "(none)"
        else:
            truth, said = clf.label_names[int(labels[i])], clf.label_names[int(decided[i])]
        if truth != said:
            found.append(Mistake(texts[i], truth, said, float(confidence[i])))
            if len(found) == limit:
                break
    return found


def overview(clf: Classifier, result: dict[str, Any], results: dict[str, Any]) -> str:
    """The headline numbers as cards, and the settings that made the run."""
    multi = result["task"] == MULTI_LABEL
    calibration = result.get("calibration") or {}
    items = [("split", f"{result['split']} ({result['num_examples']:,})"),
             ("exact match" if multi else "accuracy", f"{result['accuracy']:.4f}"),
             ("macro-F1", f"{result['macro_f1']:.4f}"),
             ("AUROC", "n/a" if result["auroc"] is None else f"{result['auroc']:.4f}")]
    if calibration:
        items += [("ECE before → after", f"{calibration['before']['ece']:.3f} → {calibration['after']['ece']:.3f}"),
                  ("temperature", f"{calibration['temperature']:.3f}")]
    m = clf.config.model
    settings = [("cell", m.cell), ("layers", m.num_layers), ("bidirectional", m.bidirectional),
                ("embedding / hidden", f"{m.embedding_dim} / {m.hidden_size}"), ("pooling", m.pooling),
                ("tokenizer", f"{clf.config.tokenizer.kind}, {clf.tokenizer.get_vocab_size():,} tokens, "
                              f"max_length {clf.config.tokenizer.max_length}"),
                ("labels", ", ".join(clf.label_names)), ("best epoch", results.get("best_epoch")),
                ("parameters", results.get("num_parameters")), ("monitor", results.get("monitor"))]
    return html.section("Overview", html.cards(items), html.table(["setting", "value"],
                                                                  [(k, html.number(v)) for k, v in settings], names=2),
                        element_id="overview")


def curves_section(history: list[dict[str, Any]]) -> str:
    """Loss and validation metrics per epoch: a figure (with matplotlib) and the table."""
    if not history:
        return html.section("Training curves", '<p class="muted">No metrics.jsonl: the run has no epoch history.</p>',
                            element_id="training")
    image = figures.training_curves(history)
    rows = [(r["epoch"], r["train"]["loss"], r["validation"]["loss"], r["validation"]["accuracy"],
             r["validation"]["macro_f1"], round(r["train"]["tokens_per_s"]), "yes" if r.get("best") else "")
            for r in history]
    return html.section(
        "Training curves", html.png(image, "training and validation loss and metrics per epoch",
                                    "curves") if image else _no_figure(),
        html.table(["epoch", "train loss", "validation loss", "validation accuracy", "validation macro-F1",
                    "train tokens/s", "new best"], rows, names=1), element_id="training")


def confusion_section(result: dict[str, Any], label_names: list[str]) -> Optional[str]:
    """The confusion matrix as a table, each cell shaded by its share of the true label's row."""
    if result["task"] == MULTI_LABEL:
        return None
    matrix = result["confusion_matrix"]
    lines = ['<table class="matrix" id="confusion-matrix">',
             "<tr><th>true \\ predicted</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in label_names) + "</tr>"]
    for name, row in zip(label_names, matrix):
        total = max(sum(row), 1)
        cells = []
        for count in row:
            share = count / total
            shade = round(255 - 175 * share)
            ink = "#fff" if share > 0.6 else "#1d2329"
            cells.append(f'<td style="background: rgb({shade}, {round(255 - 120 * share)}, 255); color: {ink}" '
                         f'title="{share:.1%} of {html.escape(name)}">{count:,}</td>')
        lines.append(f'<tr><th class="name">{html.escape(name)}</th>{"".join(cells)}</tr>')
    return html.section("Confusion matrix", "\n".join(lines + ["</table>"]),
                        '<p class="muted">Rows: the true label; columns: the label decided. Shade: the share of '
                        "the row.</p>", element_id="confusion")


def per_class_section(result: dict[str, Any]) -> str:
    multi = result["task"] == MULTI_LABEL
    header = ["label", "precision", "recall", "F1", "AUROC", "support"] + (["predicted", "threshold"] if multi else [])
    rows = [[name, r["precision"], r["recall"], r["f1"], r["auroc"], r["support"]]
            + ([r["predicted"], r.get("threshold")] if multi else []) for name, r in result["per_class"].items()]
    return html.section("Per class", html.table(header, rows), element_id="per-class")


def calibration_section(calibration: Optional[dict[str, Any]]) -> Optional[str]:
    """Scores before and after the temperature, the reliability figure and tables, and risk-coverage."""
    if not calibration:
        return None
    scores = html.table(["", "ECE", "MCE", "Brier score", "NLL"],
                        [[f"{stage} (temperature {t:.3f})"] + [calibration[stage][k] for k in ("ece", "mce", "brier", "nll")]
                         for stage, t in (("before", 1.0), ("after", calibration["temperature"]))])
    decision = calibration.get("decision")
    rule = (f"<p>Decision: <b>{html.escape(decision['positive_label'])}</b> when its calibrated probability is at "
            f"least {decision['threshold']:.3f} (tuned on validation).</p>" if decision else None)
    image = figures.reliability(calibration)
    reliability = html.table(["confidence bin", "examples", "mean confidence", "accuracy"],
                             [(f"{r['low']:.1f}–{r['high']:.1f}" if r["low"] != r["high"] else f"{r['low']:.1f}",
                               r["count"], r["confidence"], r["accuracy"]) for r in calibration["reliability"]["after"]])
    coverage = html.table(["coverage", "examples", "accuracy", "min confidence (--min-confidence)"],
                          [(f"{r['coverage']:.0%}", r["examples"], r["accuracy"], r["min_confidence"])
                           for r in calibration["risk_coverage"]])
    return html.section(
        "Calibration", scores, rule,
        html.png(image, "reliability before and after temperature scaling, and risk-coverage",
                 "reliability") if image else _no_figure(),
        "<h3>Reliability after calibration</h3>", reliability,
        "<h3>Risk-coverage: answer only the most confident texts</h3>", coverage, element_id="calibration")


def mistakes_section(mistakes: list[Mistake], explanations: list[Explanation], split: str) -> str:
    """The most confident mistakes, each with the explanation of the label the run decided."""
    if not mistakes:
        return html.section("Misclassified examples", f'<p class="muted">No misclassified example in {split} '
                            "(or none asked for).</p>", element_id="mistakes")
    blocks = [f'<p class="muted">The run\'s most confident mistakes on {html.escape(split)}. Colour: Integrated '
              "Gradients towards (green) or against (red) the label decided.</p>"]
    for n, (mistake, explanation) in enumerate(zip(mistakes, explanations), 1):
        blocks.append(f'<div class="example"><h3>{n}. true: {html.escape(mistake.truth)} · decided: '
                      f"{html.escape(mistake.decided)} (confidence {mistake.confidence:.3f})</h3>\n"
                      f"{fragment(explanation)}</div>")
    return html.section("Misclassified examples", *blocks, element_id="mistakes")


def _no_figure() -> str:
    return f'<p class="muted">Figures need matplotlib ({html.escape(figures.INSTALL_HINT)}); the tables hold the numbers.</p>'
