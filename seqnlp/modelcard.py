"""The model card: README.md in every run directory, with Hugging Face metadata, written from the run's own files.

``render_model_card(run_dir)`` reads config.yaml, labels.json, tokenizer.json, results.json, metrics.jsonl and
data.json, and, when the run has them, calibration.json, thresholds.json and vectors.json; nothing else, so the
card can be written again at any time (``seqnlp push`` does, with the repository id for the download lines) and
says nothing the files do not. The YAML front matter is built with huggingface_hub's ``ModelCardData``
(library_name, tags, datasets, metrics, model-index), so the Hub shows the results in its evaluation widget.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Optional, Sequence

from seqnlp.checkpoint import (
    CALIBRATION_FILE,
    CARD_FILE,
    CONFIG_FILE,
    DATA_FILE,
    LABELS_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    THRESHOLDS_FILE,
    TOKENIZER_FILE,
    VECTORS_FILE,
    atomic_path,
)
from seqnlp.config import Config, config_from_dict, read_config_file
from seqnlp.data.audit_markdown import quote, table
from seqnlp.errors import CheckpointError

Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


def write_model_card(run_dir: str | Path) -> Path:
    """Write README.md into ``run_dir`` (atomically) and return its path."""
    path = Path(run_dir) / CARD_FILE
    text = render_model_card(run_dir)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def render_model_card(run_dir: str | Path, repo_id: Optional[str] = None,
                      files: Optional[Sequence[str]] = None) -> str:
    """The card's Markdown, front matter included; ``repo_id`` adds how to download the model from the Hub, and
    ``files`` lists what the card travels with (default: the run directory's entries)."""
    run = _Run(Path(run_dir))
    name = repo_id.rsplit("/", 1)[-1] if repo_id else run.dir.resolve().name
    if files is None:
        files = [p.name + ("/" if p.is_dir() else "") for p in run.dir.iterdir() if not p.name.startswith(".")]
    sections = [_title(run, name), _intended_use(run, repo_id), _data(run), _training(run), _results(run),
                _limitations(run), _files(files)]
    return "---\n" + _front_matter(run, name) + "---\n\n" + "\n\n".join(s for s in sections if s) + "\n"


def environment(device: Any, world_size: int = 1) -> dict[str, Any]:
    """The machine a run trained on, as results.json records it: CPU, cores, torch threads, device, versions."""
    import torch

    import seqnlp

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "cores_available": affinity,
           "torch_threads": torch.get_num_threads(), "device": str(device), "processes": world_size,
           "torch": torch.__version__, "python": platform.python_version(), "seqnlp": seqnlp.__version__}
    if getattr(device, "type", None) == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


class _Run:
    """The files of one run directory, read once; the optional ones are None when absent."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        for required in (CONFIG_FILE, LABELS_FILE, RESULTS_FILE):
            if not (run_dir / required).is_file():
                raise CheckpointError(f"cannot write the model card of {run_dir}: {required} is missing")
        self.config: Config = config_from_dict(read_config_file(run_dir / CONFIG_FILE))
        self.labels: list[str] = _json(run_dir / LABELS_FILE)
        self.results: dict[str, Any] = _json(run_dir / RESULTS_FILE)
        self.data: dict[str, Any] = _json(run_dir / DATA_FILE, {})
        self.calibration = _json(run_dir / CALIBRATION_FILE, None)
        self.thresholds = _json(run_dir / THRESHOLDS_FILE, None)
        self.vectors = _json(run_dir / VECTORS_FILE, None)
        self.history = _jsonl(run_dir / METRICS_FILE)
        self.vocab_size = _vocab_size(run_dir / TOKENIZER_FILE)
        self.multi_label = self.config.data.multi_label
        self.eval = {split: self.results[split] for split in ("test", "validation") if self.results.get(split)}


def _json(path: Path, default: Any = ...) -> Any:
    if not path.is_file():
        if default is ...:
            raise CheckpointError(f"{path} is missing")
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl, skipping a last line a crash cut short."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _vocab_size(path: Path) -> Optional[int]:
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path)).get_vocab_size()
    except Exception:  # the card only reports the size; load_run reports a broken tokenizer.json
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _front_matter(run: _Run, name: str) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    hub_id = run.data.get("hub_id")
    files = run.data.get("files") or [{"path": "local data"}]
    dataset_name = hub_id or Path(files[0]["path"]).parent.name or Path(files[0]["path"]).stem  # imdb/train.csv: imdb
    results = []
    for split, metrics in run.eval.items():
        common = {"task_type": "text-classification", "task_name": "Text Classification",
                  "dataset_type": hub_id or "local", "dataset_name": dataset_name, "dataset_split": split,
                  "dataset_config": run.data.get("config_name"), "dataset_revision": run.data.get("revision")}
        accuracy = "Exact match" if run.multi_label else "Accuracy"
        results.append(EvalResult(**common, metric_type="accuracy", metric_value=metrics["accuracy"],
                                  metric_name=accuracy))
        results.append(EvalResult(**common, metric_type="f1", metric_value=metrics["macro_f1"],
                                  metric_name="Macro F1", metric_args={"average": "macro"}))
        if metrics.get("auroc") is not None:
            results.append(EvalResult(**common, metric_type="roc_auc", metric_value=metrics["auroc"],
                                      metric_name="AUROC (macro)"))
    tags = ["seqnlp", "text-classification", run.config.model.cell, "pytorch", "safetensors"]
    tags += ["multi-label"] if run.multi_label else []
    card = ModelCardData(library_name="seqnlp", pipeline_tag="text-classification", tags=tags,
                         datasets=[hub_id] if hub_id else None, metrics=["accuracy", "f1"],
                         model_name=name, eval_results=results or None)
    return card.to_yaml() + "\n"


def _title(run: _Run, name: str) -> str:
    m = run.config.model
    direction = "bidirectional " if m.bidirectional else ""
    what = (f"any set of its {len(run.labels)} labels" if run.multi_label
            else f"one of {len(run.labels)} labels")
    params = run.results.get("num_parameters")
    return (f"# {name}\n\nA {direction}{m.num_layers}-layer {m.cell.upper()} text classifier ({m.hidden_size} "
            f"hidden units per direction, {m.pooling} pooling{f', {params:,} parameters' if params else ''}) "
            f"trained with seqnlp on {_data_name(run)}. It predicts {what}: {', '.join(run.labels)}.")


def _data_name(run: _Run) -> str:
    source, hub_id, files = run.data.get("source"), run.data.get("hub_id"), run.data.get("files") or []
    if source and hub_id and not source.startswith("dataset "):  # a local copy of a Hub data set
        return f"{source} ({hub_id})"
    if hub_id:
        return str(hub_id)
    if files:  # local files: named by their folder (imdb/train.csv: imdb), never by their path
        return "local data " + repr(Path(files[0]["path"]).parent.name or Path(files[0]["path"]).name)
    return "its training data"


def _intended_use(run: _Run, repo_id: Optional[str]) -> str:
    local = "MODEL_DIR"
    lines = ["## Intended use", "",
             "Classifying texts like those it was trained on (see Data below) into "
             f"{', '.join(run.labels)}. Its scores hold for texts from the same source, language and time; "
             "texts from elsewhere need an evaluation of their own before its predictions are trusted, and "
             "decisions about people need a person to review them.", "", "### How to use", "", "```bash",
             "pip install seqnlp"]
    if repo_id:
        lines.append(f"hf download {repo_id} --local-dir {local}")
    lines += [f'seqnlp predict {local} "a text to classify"', "```", "", "```python", "import seqnlp", "",
              f'classifier = seqnlp.load("{local}")', 'classifier.predict(["a text to classify"])', "```"]
    if not repo_id:
        lines += ["", f"{local} is this directory."]
    return "\n".join(lines)


def _data(run: _Run) -> str:
    data = run.data
    if not data:
        return "## Data\n\nNot recorded: the run has no data.json (it was trained before seqnlp wrote one)."
    lines = ["## Data", "", _source_line(data)]
    files = [f for f in data.get("files", []) if f.get("sha256")]
    if files:
        lines += ["", table(["split", "file", "bytes", "sha256"],
                            [[f.get("split") or "", f"`{Path(f['path']).name}`", f"{f['bytes']:,}",
                              f"`{f['sha256']}`"] for f in files], "llrl")]
    splits = data.get("splits", {})
    header = ["split", "examples", *run.labels, "content sha256 (texts and labels as trained on)"]
    rows = [[name, f"{s['examples']:,}", *_counts(s, run.labels), f"`{s.get('content_sha256', '')[:16]}…`"]
            for name, s in splits.items()]
    lines += ["", "Label distribution:", "", table(header, rows, "lr" + "r" * len(run.labels) + "l")]
    lines += [f"\nNote: {note}." for note in data.get("notes", [])]
    examples = data.get("examples", {})
    if examples:
        lines += ["", "Example training texts:", ""]
        lines += [f"- **{label}**: " + " · ".join(quote(t, 100) for t in texts) for label, texts in examples.items()
                  if texts]
    found = data.get("checks", {}).get("findings", [])
    lines += ["", "Data checks (duplicates, leakage, conflicting labels, empty texts; `seqnlp audit` details them): "
              + ("none found." if not found else ""), *([""] if found else []), *(f"- {line}" for line in found)]
    return "\n".join(lines)


def _source_line(data: dict[str, Any]) -> str:
    """Where the data came from, without local paths (config.yaml has them): the card may be published."""
    source = str(data.get("source") or "not recorded")
    if source.startswith("data files ") or source.startswith("file "):
        source = "local files (below)"
    elif data.get("dataset") and not data.get("hub_id"):
        source = f"the local data set {Path(str(data['dataset'])).name!r}"
    if data.get("hub_id"):
        config = f", config {data['config_name']}" if data.get("config_name") else ""
        source += f" (Hub: `{data['hub_id']}`{config}, revision {data.get('revision') or 'the default branch'})"
    return f"Source: {source}."


def _counts(split: dict[str, Any], labels: list[str]) -> list[str]:
    counts = split.get("label_counts")
    if not counts:
        return ["-"] * len(labels)
    total = max(split["examples"], 1)
    return [f"{counts.get(n, 0):,} ({100 * counts.get(n, 0) / total:.1f}%)" for n in labels]


def _training(run: _Run) -> str:
    c, r = run.config, run.results
    m, t, tok = c.model, c.train, c.tokenizer
    settings = [
        ("model", f"{m.cell}, {m.num_layers} layer(s), {'bi' if m.bidirectional else 'uni'}directional, hidden "
                  f"{m.hidden_size}, embedding {m.embedding_dim}, {m.pooling} pooling, head hidden "
                  f"{m.head_hidden_size or 'none'}"),
        ("dropout", f"{m.dropout} (embedding {m.embedding_dropout})"),
        ("pretrained vectors", f"{m.pretrained_vectors} (frozen: {m.freeze_embeddings})" if m.pretrained_vectors
         else "none"),
        ("tokenizer", f"{tok.kind}, {run.vocab_size or tok.vocab_size:,} tokens, min_frequency {tok.min_frequency}"
                      f", lowercase {str(tok.lowercase).lower()}, max_length {tok.max_length} (keeps the "
                      f"{'beginning' if tok.truncation_side == 'right' else 'end'})"),
        ("optimizer", f"AdamW, lr {t.lr}, weight decay {t.weight_decay}, {t.schedule} schedule, warm-up "
                      f"{t.warmup_ratio}, gradient clipping {t.max_grad_norm}"),
        ("batches", f"{t.batch_size} examples, {t.sampler} sampler, {t.bucketing} bucketing"),
        ("epochs", f"at most {t.epochs}, early stopping patience {t.patience}; best epoch {r.get('best_epoch')} "
                   f"of {len(run.history)} run"),
        ("best epoch chosen by", f"validation {r.get('monitor')} ({r.get('monitor_reason', '')})"),
        ("class weights", json.dumps(r.get("class_weights")) if r.get("class_weights") else "none"),
        ("label smoothing, precision, seed", f"{t.label_smoothing}, {t.precision}, {c.seed}"),
    ]
    lines = ["## Training", "", table(["setting", "value"], settings, "ll"), "",
             f"Every setting is in {CONFIG_FILE}; `seqnlp train --config {CONFIG_FILE}` repeats the run."]
    return "\n".join(lines + ["", _speed(run)])


def _speed(run: _Run) -> str:
    epochs = [h["train"] for h in run.history if isinstance(h.get("train"), dict)]
    seconds = sum(e.get("seconds", 0.0) for e in epochs)
    tokens = sum(e.get("tokens_per_s", 0.0) * e.get("seconds", 0.0) for e in epochs)
    examples = sum(e.get("examples_per_s", 0.0) * e.get("seconds", 0.0) for e in epochs)
    env = run.results.get("environment") or {}
    lines = ["### Time and speed", ""]
    if epochs and seconds > 0:
        lines.append(f"{len(epochs)} epochs in {seconds:,.1f} s of training steps ({seconds / len(epochs):,.1f} s an "
                     f"epoch; validation passes excluded): {tokens / seconds:,.0f} tokens/s (real tokens, padding "
                     f"excluded), {examples / seconds:,.0f} examples/s.")
    if env:
        gpu = f", GPU {env['gpu']}" if env.get("gpu") else ""
        lines.append(f"Trained on {env.get('device')} ({env.get('cpu')}, {env.get('cores_available')} of "
                     f"{env.get('cpu_count')} cores available, {env.get('torch_threads')} torch threads, "
                     f"{env.get('processes', 1)} process(es){gpu}) with torch {env.get('torch')}, Python "
                     f"{env.get('python')}, seqnlp {env.get('seqnlp')}.")
    return "\n".join(lines) if len(lines) > 2 else ""


def _results(run: _Run) -> str:
    if not run.eval:
        return "## Results\n\nNo evaluation was recorded."
    accuracy = "exact match" if run.multi_label else "accuracy"
    rows = []
    for split, m in run.eval.items():
        n = m.get("num_examples") or 0
        interval = f" ± {Z95 * math.sqrt(m['accuracy'] * (1 - m['accuracy']) / n):.4f}" if n else ""
        auroc = "n/a" if m.get("auroc") is None else f"{m['auroc']:.4f}"
        rows.append([split, f"{n:,}", f"{m['accuracy']:.4f}{interval}", f"{m['macro_f1']:.4f}", auroc,
                     f"{m['loss']:.4f}" if m.get("loss") is not None else "n/a"])
    best = "test" if "test" in run.eval else "validation"
    lines = ["## Results", "", f"Validation: the best epoch's; test: the best weights'. ± is a 95% normal interval "
             f"of the {accuracy}.", "", table(["split", "examples", accuracy, "macro-F1", "AUROC", "loss"], rows)]
    per_class = run.eval[best].get("per_class") or {}
    if per_class:
        lines += ["", f"Per label on {best}:", "",
                  table(["label", "precision", "recall", "F1", "support"],
                        [[label, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}",
                          f"{v.get('support', 0):,}"] for label, v in per_class.items()])]
    baseline = _majority(run, best)
    if baseline:
        lines += ["", baseline]
    if run.thresholds:
        lines += ["", "Decision thresholds per label (tuned on validation): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in run.thresholds.items()) + "."]
    return "\n".join(lines) + _calibration(run)


def _majority(run: _Run, split: str) -> str:
    """What always answering train's most frequent label scores on ``split``, from data.json's label counts."""
    splits = run.data.get("splits", {})
    train = splits.get(run.config.data.train_split, {}).get("label_counts")
    target = splits.get(split, {})
    if run.multi_label or not train or not target.get("label_counts") or not target.get("examples"):
        return ""
    label = max(train, key=train.get)
    share = target["label_counts"].get(label, 0) / target["examples"]
    return f"Always answering {label!r} (train's most frequent label) scores accuracy {share:.4f} on {split}."


def _calibration(run: _Run) -> str:
    """What calibration.json says: the temperature, where it was fitted, NLL and ECE before and after, a decision."""
    record = run.calibration
    if not isinstance(record, dict) or not isinstance(record.get("temperature"), (int, float)):
        return ""
    fitted = record.get("fitted_on") or {}
    where = f" on {fitted['split']} ({fitted.get('examples', 0):,} examples)" if fitted.get("split") else ""
    rows = [["temperature", f"{record['temperature']:.4f}"]]
    for name in ("nll", "ece"):
        before, after = record.get(f"{name}_before"), record.get(f"{name}_after")
        if isinstance(before, (int, float)) and isinstance(after, (int, float)):
            rows.append([f"{name.upper()} before -> after", f"{before:.4f} -> {after:.4f}"])
    decision = record.get("decision")
    if isinstance(decision, dict) and isinstance(decision.get("threshold"), (int, float)):
        rows.append([f"decision: {decision.get('positive_label')!s} when its probability is at least",
                     f"{decision['threshold']:.4f}"])
    note = f"\n\n{record['note']}" if isinstance(record.get("note"), str) else ""
    return (f"\n\n### Calibration\n\nTemperature scaling fitted{where} ({CALIBRATION_FILE}); the scores above and "
            f"every prediction use it.\n\n" + table(["quantity", "value"], rows) + note)


def _limitations(run: _Run) -> str:
    tok, lines = run.config.tokenizer, []
    side = "end" if tok.truncation_side == "right" else "beginning"
    lines.append(f"Texts longer than {tok.max_length} tokens lose their {side}: the model never reads it.")
    lines.append(f"It knows the {run.vocab_size or tok.vocab_size:,} tokens its tokenizer learned from the training "
                 "split; any other word is [UNK] to it, so new vocabulary (names, slang, another language) "
                 "weakens its predictions.")
    checks = run.data.get("checks", {})
    for leak in checks.get("normalized", {}).get("leaks", []):
        if leak.get("rows"):
            degree = "slightly " if leak["fraction"] < 0.01 else ""
            lines.append(f"{leak['rows']:,} {leak['target']} examples ({100 * leak['fraction']:.2f}%) have a text "
                         f"also in {leak['source']}: scores on {leak['target']} are {degree}optimistic.")
    counts = run.results.get("label_counts") or {}
    if counts and min(counts.values()) > 0 and max(counts.values()) / min(counts.values()) > 1.5:
        lines.append(f"The classes are imbalanced (train: {', '.join(f'{k} {v:,}' for k, v in counts.items())}): "
                     "accuracy flatters a model that favours the largest class; read macro-F1 and the per-label "
                     "recall.")
    if run.calibration is None and not run.multi_label:
        lines.append("Its scores are softmax probabilities, not calibrated ones: a score of 0.9 need not be right "
                     "90% of the time.")
    elif run.calibration is not None:
        lines.append("Its scores are calibrated on the validation split; on texts unlike it (another source, another "
                     "time) a score of 0.9 need not be right 90% of the time: `seqnlp calibrate` fits it again on "
                     "labelled data of your own.")
    lines.append("It learned from labels people gave and inherits their mistakes and biases; it has no knowledge "
                 "beyond its training texts.")
    return "## Limitations\n\n" + "\n".join(f"- {line}" for line in lines)


def _files(files: Sequence[str]) -> str:
    names = sorted(set(files) | {CARD_FILE})
    return ("## Files\n\n" + ", ".join(f"`{n}`" for n in names)
            + ". Weights are safetensors; every other file is JSON, YAML or Markdown: nothing here runs code when "
              "loaded.")
