"""The report of a comparison: runs grouped by grid point, mean and spread over seeds, as Markdown, CSV and JSON.

::

    REPORT_DIR/
      report.md              the table (mean ± sample standard deviation over seeds) and what each column means
      report.html            the same in one self-contained page (inline CSS, the curves inline), with every run
                             and its calibration (ECE before and after its temperature), as `seqnlp report` writes
      results.csv / .json    one row per grid point: every measure's mean, std, min and max (JSON: also every run)
      runs.csv               one row per run (grid point x seed)
      curves.csv             per run and epoch: train loss and validation loss, accuracy, macro-F1
      validation_curves.png  validation accuracy and loss per epoch, one line per grid point (needs matplotlib)
      runs/POINT/seed-S/     each run's own run directory
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from seqnlp.config import Config
from seqnlp.compare.plots import plot_validation_curves
from seqnlp.report import html

if TYPE_CHECKING:
    from seqnlp.compare.runs import RunRecord

log = logging.getLogger(__name__)

REPORT_FILE = "report.md"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
RUNS_CSV = "runs.csv"
CURVES_CSV = "curves.csv"
CURVES_PNG = "validation_curves.png"
HTML_FILE = "report.html"

# measure -> (table header, number format, whether the spread over seeds is shown)
MEASURES: dict[str, tuple[str, str, bool]] = {
    "accuracy": ("accuracy", ".3f", True),
    "macro_f1": ("macro-F1", ".3f", True),
    "num_parameters": ("params", ",.0f", False),
    "encoder_parameters": ("encoder params", ",.0f", False),
    "train_seconds_per_epoch": ("train s/epoch", ".2f", True),
    "train_tokens_per_s": ("train tok/s", ",.0f", True),
    "inference_tokens_per_s": ("infer tok/s", ",.0f", True),
    "peak_memory_mb": ("peak RSS MB", ".0f", True),
    "peak_gpu_memory_mb": ("peak GPU MB", ".1f", True),
    "best_epoch": ("epochs to best", ".1f", True),
}
_RUN_FIELDS = ("point", "seed", "run_dir", "split", "validation_accuracy", "validation_macro_f1", "epochs",
               "baseline_memory_mb")


def point_label(values: Mapping[str, Any]) -> str:
    """``{"model.cell": "gru"}`` -> ``gru``; several keys -> ``cell=gru, hidden_size=64``."""
    if len(values) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in values.items())


def summarize(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One summary per grid point, in run order: its values, seeds, and each measure's mean/std/min/max.

    ``std`` is the sample standard deviation (0 with one seed); a measure a run did not take (memory when runs
    share a process, GPU memory on the CPU) is None.
    """
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(record.point, []).append(record)
    summaries = []
    for point, runs in groups.items():
        measures: dict[str, Optional[dict[str, float]]] = {}
        for key in MEASURES:
            values = [getattr(run, key) for run in runs]
            if any(v is None for v in values):
                measures[key] = None
                continue
            measures[key] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values),
                "max": max(values),
            }
        summaries.append({"point": point, "label": point_label(runs[0].values), "values": runs[0].values,
                          "seeds": [run.seed for run in runs], "split": runs[0].split, "measures": measures})
    return summaries


_AUTO_MONITOR = ": macro-F1 when the classes are imbalanced, else accuracy; each run's results.json says which"


def markdown_table(summaries: Sequence[dict[str, Any]]) -> str:
    """The comparison as a Markdown table: grid values, then each measure as mean ± std over seeds."""
    keys = list(summaries[0]["values"]) if summaries else []
    measures = [m for m in MEASURES if any(s["measures"][m] is not None for s in summaries)]
    splits = {s["split"] for s in summaries}
    split = splits.pop() if len(splits) == 1 else "test/validation"
    headers = [k.rsplit(".", 1)[-1] for k in keys] + [
        f"{split} {MEASURES[m][0]}" if m in ("accuracy", "macro_f1") else MEASURES[m][0] for m in measures
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for summary in summaries:
        cells = [str(summary["values"][k]) for k in keys]
        cells += [_format(summary["measures"][m], m, len(summary["seeds"])) for m in measures]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _format(stats: Optional[dict[str, float]], measure: str, seeds: int) -> str:
    if stats is None:
        return "n/a"
    _, fmt, spread = MEASURES[measure]
    text = format(stats["mean"], fmt)
    return f"{text} ± {format(stats['std'], fmt)}" if spread and seeds > 1 else text


def write_report(
    report_dir: str | Path,
    records: Sequence[RunRecord],
    base: Config,
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    appendix: str = "",
) -> dict[str, Path]:
    """Write every table (and the curves plot when matplotlib is installed); returns name -> path.

    ``appendix`` is Markdown added at the end of report.md (the diagnostics, when they were run).
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    summaries = summarize(records)
    paths = {name: report_dir / name for name in (REPORT_FILE, RESULTS_CSV, RESULTS_JSON, RUNS_CSV, CURVES_CSV)}

    settings = {"grid": {k: list(v) for k, v in grid.items()}, "seeds": list(seeds), "base_config": base.to_dict()}
    paths[RESULTS_JSON].write_text(json.dumps({"settings": settings, "points": summaries,
                                               "runs": [asdict(r) for r in records]}, indent=2) + "\n",
                                   encoding="utf-8")
    grid_keys = list(grid)
    point_rows = []
    for summary in summaries:
        row: dict[str, Any] = {k: summary["values"][k] for k in grid_keys}
        row.update(point=summary["point"], seeds=len(summary["seeds"]), split=summary["split"])
        for measure, stats in summary["measures"].items():
            for stat in ("mean", "std"):
                row[f"{measure}_{stat}"] = None if stats is None else stats[stat]
        point_rows.append(row)
    _write_csv(paths[RESULTS_CSV], point_rows)
    _write_csv(paths[RUNS_CSV], [{**{k: r.values[k] for k in grid_keys}, **{f: getattr(r, f) for f in _RUN_FIELDS},
                                  **{m: getattr(r, m) for m in MEASURES}} for r in records])
    _write_csv(paths[CURVES_CSV], [{"point": r.point, "label": point_label(r.values), "seed": r.seed, **epoch}
                                   for r in records for epoch in r.curves])

    series: dict[str, list[list[dict[str, Any]]]] = {}
    for record in records:
        series.setdefault(point_label(record.values), []).append(record.curves)
    plot = plot_validation_curves(series, report_dir / CURVES_PNG)
    if plot is not None:
        paths[CURVES_PNG] = plot
    markdown = _markdown(summaries, records, base, grid, seeds, plot)
    paths[REPORT_FILE].write_text(markdown + (f"\n{appendix}\n" if appendix else ""), encoding="utf-8")
    paths[HTML_FILE] = write_html(report_dir / HTML_FILE, summaries, records, markdown, plot, appendix)
    log.info("report written to %s", report_dir)
    return paths


def _markdown(summaries: Sequence[dict[str, Any]], records: Sequence[RunRecord], base: Config,
              grid: Mapping[str, Sequence[Any]], seeds: Sequence[int], plot: Optional[Path]) -> str:
    data = base.data
    source = data.dataset or ", ".join(f"{k}={v}" for k, v in data.data_files.items()) or "SMS Spam Collection"
    baselines = [r.baseline_memory_mb for r in records if r.baseline_memory_mb is not None]
    baseline = f"{statistics.fmean(baselines):.0f} MB of it is the process after its imports" if baselines else ""
    fixed = {key: value for section in ("model", "train") for key, value in base.to_dict()[section].items()
             if f"{section}.{key}" not in grid}
    lines = [
        f"# seqnlp compare: {len(summaries)} settings x {len(seeds)} seed{'s' if len(seeds) > 1 else ''}",
        "",
        f"Data: `{source}`" + (f", {data.max_train_samples:,} training examples" if data.max_train_samples else ""),
        f"Seeds: {', '.join(map(str, seeds))}. Each cell: mean ± sample standard deviation over the seeds.",
        "",
        markdown_table(summaries),
        "",
        "- accuracy, macro-F1: the best epoch's weights (chosen on validation "
        f"`{base.train.monitor}`{_AUTO_MONITOR if base.train.monitor == 'auto' else ''}) on the split named in the "
        "header",
        "- params: all trainable parameters; encoder params: the recurrent layers alone",
        "- train s/epoch, train tok/s: wall time and real (unpadded) tokens per second of the training passes",
        "- infer tok/s: `Classifier.logits` over the validation texts, after a warm-up",
        "- peak RSS MB: peak resident memory of the fresh process that trained the run, interpreter and libraries "
        f"included; {baseline}" if baselines else
        "- peak RSS MB: not measured, because the runs shared one process (`--in-process`)",
        *(["- peak GPU MB: `torch.cuda.max_memory_allocated` during training"] if any(
            s["measures"]["peak_gpu_memory_mb"] is not None for s in summaries) else []),
        "- epochs to best: the epoch whose weights were kept",
        "",
        "Settings shared by every run: "
        + ", ".join(f"`{k}={v}`" for k, v in fixed.items() if k not in ("log_every",)),
    ]
    if plot is not None:
        lines += ["", f"![validation curves]({plot.name})"]
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_html(path: Path, summaries: Sequence[dict[str, Any]], records: Sequence[RunRecord], markdown: str,
               plot: Optional[Path], appendix: str = "") -> Path:
    """report.html: the table, what its columns mean, the curves, and one row per run with its calibration."""
    keys = list(summaries[0]["values"]) if summaries else []
    measures = [m for m in MEASURES if any(s["measures"][m] is not None for s in summaries)]
    table = html.table([k.rsplit(".", 1)[-1] for k in keys] + [MEASURES[m][0] for m in measures],
                       [[str(s["values"][k]) for k in keys] + [_format(s["measures"][m], m, len(s["seeds"]))
                                                                for m in measures] for s in summaries],
                       names=len(keys) + len(measures), element_id="comparison")
    notes = "<ul>" + "".join(f"<li>{html.escape(line[2:])}</li>" for line in markdown.splitlines()
                             if line.startswith("- ")) + "</ul>"
    intro = [html.escape(line) for line in markdown.splitlines()[2:4] if line]
    curves = html.png(plot.read_bytes(), "validation accuracy and loss per epoch", "curves") if plot else None
    runs = html.table(["setting", "seed", "split", "accuracy", "macro-F1", "ECE before", "ECE after", "temperature",
                       "run directory"], [[point_label(r.values), r.seed, r.split, r.accuracy, r.macro_f1,
                                           *_calibration(r), r.run_dir] for r in records], names=3)
    body = [f"<p>{'<br>'.join(intro)}</p>", html.section("Results", table, notes, element_id="results"),
            html.section("Validation curves", curves, element_id="curves") if curves else "",
            html.section("Runs", runs, '<p class="muted">ECE on each run\'s split, before and after the temperature '
                         "fitted on its validation split; <code>seqnlp report RUN_DIR</code> shows one run in full."
                         "</p>", element_id="runs")]
    if appendix:
        body.append(html.section("Diagnostics", f"<pre>{html.escape(appendix)}</pre>", element_id="diagnostics"))
    return html.write_page(path, html.page(markdown.splitlines()[0].lstrip("# "), body))


def _calibration(record: RunRecord) -> list[Any]:
    """ECE before and after, and the temperature, of a run's split (results.json); n/a when it has none."""
    from seqnlp.checkpoint import RESULTS_FILE  # torch comes with it: only once runs exist

    path = Path(record.run_dir) / RESULTS_FILE
    try:
        found = (json.loads(path.read_text(encoding="utf-8")).get(record.split) or {}).get("calibration")
    except (OSError, ValueError):
        found = None
    if not found:
        return [None, None, None]
    return [found["before"]["ece"], found["after"]["ece"], found["temperature"]]
