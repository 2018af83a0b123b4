"""The results tables of README.md and the docs, regenerated from the JSON records that commands wrote.

Every figure in a results table comes from a record in ``docs/results/``, and every record from a command:

    # run a command, then keep its run's results.json, the command, its wall time and peak memory as a record
    python scripts/results_tables.py record --title "SMS" --run-dir runs/sms sms -- \\
        taskset -c 1 seqnlp -q train -o runs/sms --overwrite --set train.num_threads=1

    # rewrite every table between <!-- results-table: NAME NAME ... --> and <!-- /results-table --> markers
    python scripts/results_tables.py
    python scripts/results_tables.py --check      # exit 1 when a table differs from its records (CI, tests)

A record is JSON: ``name``, ``title``, ``command`` (as typed, with ``seqnlp`` for the entry point), ``machine``
(what it ran on), ``date``, ``wall_s``, ``peak_rss_mib`` and ``results`` (the run's results.json, unchanged).
No figure is typed by hand: a table cell is a record's value, formatted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "results"
PAGES = ["README.md", "docs"]  # files, or folders of .md files, whose tables are regenerated
MARKER = re.compile(r"(<!-- results-table: ([\w\- ]+) -->\n)(.*?)(<!-- /results-table -->)", re.S)


def record(name: str, title: str, run_dir: Path, command: list[str], note: str = "") -> dict[str, Any]:
    """Run ``command``, then keep its run's results.json with the command, wall time and peak memory."""
    start = time.perf_counter()
    proc = subprocess.run(command, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"the command exited with {proc.returncode}; no record written")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB, the largest child
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    metrics_file = run_dir / "metrics.jsonl"
    epochs = sum(1 for line in metrics_file.read_text(encoding="utf-8").splitlines() if line.strip())
    entry = {
        "name": name,
        "title": title,
        "command": shlex.join(shown_command(command)),
        "note": note,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak_kib / 1024),
        "epochs_run": epochs,
        "results": results,
    }
    RECORDS.mkdir(parents=True, exist_ok=True)
    (RECORDS / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
    return entry


def shown_command(command: list[str]) -> list[str]:
    """The command as a user types it: ``.../python -m seqnlp`` and ``.../bin/seqnlp`` become ``seqnlp``."""
    for i, part in enumerate(command):
        if Path(part).name.startswith("python") and command[i + 1: i + 3] == ["-m", "seqnlp"]:
            return command[:i] + ["seqnlp"] + command[i + 3:]
        if Path(part).name == "seqnlp":
            return command[:i] + ["seqnlp"] + command[i + 1:]
    return command


def machine() -> str:
    """What the command ran on: CPU model and count, memory, torch's version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = 0.0
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "absent"
    return f"{os.cpu_count()} x {cpu}, {mem_gib:.0f} GiB, torch {torch_version}"


def load_records() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(RECORDS.glob("*.json"))}


def _metrics_cell(entry: dict[str, Any]) -> str:
    """The headline of a record: the split reported (as carved, when it was), its size and metrics."""
    results = entry["results"]
    metrics = results["test"] or results["validation"]
    split = metrics.get("split") or ("test" if results["test"] else "validation")
    if metrics.get("carved"):
        split = f"{split}, {metrics['carved']}"
    auroc = "" if metrics.get("auroc") is None else f", AUROC {metrics['auroc']:.3f}"
    epochs = entry.get("epochs_run")
    best = f"best epoch {results['best_epoch']}" + (f" of {epochs}" if epochs else "")
    return (f"{split} ({metrics['num_examples']:,}): accuracy **{100 * metrics['accuracy']:.2f}%**, "
            f"macro-F1 {metrics['macro_f1']:.3f}{auroc} ({best})")


def _baseline_cell(entry: dict[str, Any]) -> str:
    """The fast n-gram baseline (``train --baseline``) on the headline's split, fitted on the same training split."""
    results = entry["results"]
    base = results.get("baseline")
    if not base:
        return "not recorded (run with --baseline)"
    metrics, split = (base["test"], "test") if results["test"] and base.get("test") else (base["validation"],
                                                                                          "validation")
    return (f"{split}: accuracy {100 * metrics['accuracy']:.2f}%, macro-F1 {metrics['macro_f1']:.3f} "
            f"({base['description']}, {base['seconds']:.{1 if base['seconds'] < 10 else 0}f} s)")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def table(names: list[str], records: dict[str, dict[str, Any]]) -> str:
    """A Markdown table with one row per named record: what, the command, the result, time and memory."""
    rows = ["| data | command | result | the fast baseline, same splits | wall time, peak RSS |",
            "| --- | --- | --- | --- | --- |"]
    for name in names:
        if name not in records:
            raise SystemExit(f"no record docs/results/{name}.json (make it with: results_tables.py record {name} ...)")
        entry = records[name]
        command = entry["command"].replace("|", "\\|")
        rows.append(f"| {entry['title']} | `{command}` | {_metrics_cell(entry)} | {_baseline_cell(entry)} | "
                    f"{_duration(entry['wall_s'])}, {entry['peak_rss_mib']:,} MiB |")
    machines = sorted({records[n]["machine"] for n in names})
    notes = list(dict.fromkeys(records[n]["note"] for n in names if records[n].get("note")))  # each once
    footer = [f"Machine: {m}." for m in machines] + notes
    return "\n".join(rows) + "\n\n" + "\n".join(footer) + "\n"


def render(text: str, records: dict[str, dict[str, Any]]) -> str:
    def replace(match: re.Match[str]) -> str:
        return match.group(1) + table(match.group(2).split(), records) + match.group(4)

    return MARKER.sub(replace, text)


def pages() -> list[Path]:
    found: list[Path] = []
    for item in PAGES:
        path = ROOT / item
        found += sorted(path.rglob("*.md")) if path.is_dir() else [path]
    return found


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action")
    rec = sub.add_parser("record", help="run a command and keep its results as docs/results/NAME.json")
    rec.add_argument("name")
    rec.add_argument("--title", required=True, help="what was trained, for the table's first column")
    rec.add_argument("--run-dir", type=Path, required=True, help="the run directory the command writes")
    rec.add_argument("--note", default="", help="a sentence printed under the table (e.g. how busy the machine was)")
    rec.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    parser.add_argument("--check", action="store_true", help="exit 1 if a table differs from its records")
    args = parser.parse_args(argv)
    if args.action == "record":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        entry = record(args.name, args.title, args.run_dir, command, args.note)
        print(f"docs/results/{args.name}.json: {_metrics_cell(entry)}")
    records = load_records()
    stale = []
    for path in pages():
        text = path.read_text(encoding="utf-8")
        new = render(text, records)
        if new != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"results tables out of date in {', '.join(stale)}: run python scripts/results_tables.py",
              file=sys.stderr)
        return 1
    for name in stale:
        print(f"rewrote the results tables of {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
