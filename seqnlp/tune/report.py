"""The study's report, rewritten after every trial (tables, best config) and at the end (plots too).

::

    OUTPUT_DIR/
      best.yaml        the best trial's config, ready for ``seqnlp train -c best.yaml``
      best             a link to the best trial's run directory (trials/trial-NNNN), when it is on this machine
      trials.csv       one row per trial: number, state, validation metric, epochs, seconds, every parameter
      trials.md        the same as a Markdown table, best first, under a summary
      history.png      the metric of every trial in order, and the best so far (needs matplotlib)
      importance.png   how much each parameter mattered (Optuna's PED-ANOVA), once 4 trials have completed

Files are written to a temporary name and renamed, so processes sharing a study never leave half a file.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from seqnlp.checkpoint import atomic_path
from seqnlp.config import config_from_dict, load_config
from seqnlp.tune.budget import format_duration
from seqnlp.tune.study import Settings, time_spent

log = logging.getLogger(__name__)

BEST_CONFIG = "best.yaml"
BEST_LINK = "best"
TRIALS_CSV = "trials.csv"
TRIALS_MD = "trials.md"
HISTORY_PNG = "history.png"
IMPORTANCE_PNG = "importance.png"
MIN_TRIALS_FOR_IMPORTANCE = 4  # complete trials; fewer give importances that mean nothing
PLOTS_HINT = "pip install 'seqnlp[plots]'"


def state_of(trial: FrozenTrial) -> str:
    """complete, pruned, stopped (by the budget), failed (an error), lost (its process stopped), running, waiting."""
    if trial.state == TrialState.PRUNED:
        return "stopped" if trial.user_attrs.get("stopped") == "budget" else "pruned"
    if trial.state == TrialState.FAIL:
        return "failed" if "error" in trial.user_attrs else "lost"
    return trial.state.name.lower()


def count_states(trials: list[FrozenTrial]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[state_of(trial)] = counts.get(state_of(trial), 0) + 1
    return counts


def rows(trials: list[FrozenTrial], settings: Settings, out: Path) -> list[dict[str, Any]]:
    """One row per trial: its number, how it ended, its (last) metric, time, parameters and run directory."""
    table = []
    for trial in trials:
        last = trial.intermediate_values.get(trial.last_step) if trial.last_step is not None else None
        value = trial.value if trial.state == TrialState.COMPLETE else last
        run_dir = trial.user_attrs.get("run_dir", "")
        table.append({
            "trial": trial.number, "state": state_of(trial), settings.metric: value,
            "epochs": trial.user_attrs.get("epochs", len(trial.intermediate_values)),
            "seconds": trial.user_attrs.get("seconds"),
            **{key: trial.params.get(key) for key in settings.space},
            "retry_of": trial.user_attrs.get("retry_of"),
            "note": trial.user_attrs.get("error", "the config's own values" if trial.user_attrs.get("baseline") else ""),
            "run_dir": os.path.relpath(run_dir, out) if run_dir else "",
        })
    return table


def write_tables(study: optuna.Study, settings: Settings, out: Path) -> dict[str, Path]:
    """trials.csv, trials.md and best.yaml (with the ``best`` link): cheap, so rewritten after every trial."""
    trials = study.get_trials(deepcopy=False)
    table = rows(trials, settings, out)
    files = {"trials.csv": _write(out / TRIALS_CSV, _csv(table)),
             "trials.md": _write(out / TRIALS_MD, markdown(table, trials, settings))}
    best = _best(trials, settings)
    if best is not None:
        files["best.yaml"] = write_best_config(best, settings, out)
        _link_best(best, out)
    return files


def write_report(study: optuna.Study, settings: Settings, out: Path) -> dict[str, Path]:
    """The tables, and the plots when matplotlib is installed."""
    files = write_tables(study, settings, out)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    if not complete:
        return files
    try:
        from seqnlp.tune.plots import plot_history, plot_importance
    except ImportError:
        log.info("matplotlib is not installed (%s): %s and %s not drawn", PLOTS_HINT, HISTORY_PNG, IMPORTANCE_PNG)
        return files
    files["history.png"] = plot_history(study.get_trials(deepcopy=False), settings.metric, settings.direction,
                                        out / HISTORY_PNG)
    importances = param_importances(study)
    if importances:
        files["importance.png"] = plot_importance(importances, settings.metric, out / IMPORTANCE_PNG)
    return files


def param_importances(study: optuna.Study) -> dict[str, float]:
    """Each parameter's share of the metric's variation among the best trials (PED-ANOVA); {} when too few trials
    have completed."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        log.info("%s not drawn: it needs %d complete trials, the study has %d", IMPORTANCE_PNG,
                 MIN_TRIALS_FOR_IMPORTANCE, len(complete))
        return {}
    # The "top" trials PED-ANOVA contrasts with the rest must be at least two.
    quantile = min(0.5, max(0.1, 2 / len(complete)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature and few-trial warnings: the plot says what it is
        evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
        try:
            return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
        except (ValueError, RuntimeError) as exc:
            log.info("%s not drawn: %s", IMPORTANCE_PNG, exc)
            return {}


def markdown(table: list[dict[str, Any]], trials: list[FrozenTrial], settings: Settings) -> str:
    """A summary (best trial, trials by state, time) over the table, best trials first."""
    metric = settings.metric
    best = _best(trials, settings)
    counts = ", ".join(f"{n} {state}" for state, n in count_states(trials).items())
    lines = [f"# Tuning: validation {metric} ({settings.direction})", ""]
    if best is not None:
        lines += [f"Best: trial {best.number}, validation {metric} **{best.value:.4f}** "
                  f"(config: `{BEST_CONFIG}`, run: `{BEST_LINK}/`)", ""]
    lines += [f"Trials: {counts}; {format_duration(time_spent(trials))} of finished trials, pruner "
              f"{settings.pruner}.", ""]
    if not table:
        return "\n".join(lines)
    headers = [key.rsplit(".", 1)[-1] if "." in key else key for key in table[0]]
    ordered = sorted(table, key=lambda row: _order(row.get(metric), settings.direction))
    lines += ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(_cell(value) for value in row.values()) + " |" for row in ordered]
    return "\n".join(lines) + "\n"


def write_best_config(best: FrozenTrial, settings: Settings, out: Path) -> Path:
    """best.yaml: the base config with the best trial's values, with no output_dir (train picks one)."""
    config = load_config(base=config_from_dict(settings.config), updates={**best.params, "output_dir": None})
    header = (f"# seqnlp tune: trial {best.number} of {out}, validation {settings.metric} {best.value:.4f}\n"
              f"# train it: seqnlp train -c {out / BEST_CONFIG} -o runs/best\n")
    return _write(out / BEST_CONFIG, header + yaml.safe_dump(config.to_dict(), sort_keys=False))


def _best(trials: list[FrozenTrial], settings: Settings) -> Optional[FrozenTrial]:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    pick = min if settings.direction == "minimize" else max
    return pick(complete, key=lambda t: (t.value, -t.number) if pick is max else (t.value, t.number))


def _link_best(best: FrozenTrial, out: Path) -> None:
    """OUTPUT_DIR/best -> the best trial's run directory, replaced atomically; skipped where links cannot be made."""
    run_dir = best.user_attrs.get("run_dir")
    if not run_dir or not Path(run_dir).is_dir():
        return
    link, tmp = out / BEST_LINK, out / f".{BEST_LINK}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(run_dir, out), target_is_directory=True)
        os.replace(tmp, link)
    except OSError as exc:
        log.info("no %s link (%s); the best run is %s", link, exc, run_dir)


def _order(value: Any, direction: str) -> tuple[int, float]:
    if value is None:
        return (1, 0.0)
    return (0, value if direction == "minimize" else -value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _csv(table: list[dict[str, Any]]) -> str:
    if not table:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()


def _write(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
