"""An ``AuditReport`` as Markdown: the findings first, then a section per check, tables a person can scan.

Texts quoted from the data are shown as code spans (whitespace collapsed, pipes escaped), so markup inside
them (IMDB's ``<br />``) neither renders nor breaks a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from seqnlp.data.scan import findings

if TYPE_CHECKING:
    from seqnlp.data.audit import AuditReport

QUOTE_CHARS = 120  # quoted texts are cut to this many characters
UNKNOWN_RATE = 0.01  # an evaluation split with at least this share of [UNK] tokens is a finding


def render(report: AuditReport) -> str:
    """The whole report, as Markdown."""
    sections = [_header(report), _findings(report), _splits(report), _duplicates(report), _leakage(report),
                _conflicts(report), _lengths(report), _max_lengths(report), _vectors(report), _baseline(report)]
    return "\n\n".join(s for s in sections if s) + "\n"


def table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A Markdown table; ``align`` gives each column "l" or "r" (default: first left, the rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """A text from the data as an inline code span that is safe in a table cell."""
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    text = text.replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if text else "(empty)"


def _pct(share: float) -> str:
    return f"{100 * share:.2f}%"


def _header(report: AuditReport) -> str:
    sizes = " · ".join(f"{name} {count:,}" for name, count in report.scan.sizes.items())
    timing = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in report.seconds.items())
    lines = [f"# Data audit: {report.source}", "",
             f"Splits: {sizes}. Labels: {', '.join(report.label_names)}"
             f"{' (multi-label)' if report.multi_label else ''}.",
             f"Audited in {sum(report.seconds.values()):.1f} s ({timing})."]
    lines += [f"Note: {note}." for note in report.notes]
    return "\n".join(lines)


def _findings(report: AuditReport) -> str:
    lines = [f"- {line}" for line in findings(report.scan)] or ["- No leakage, conflicting labels, duplicates or "
                                                                "empty texts."]
    configured = next((o for o in report.max_lengths if o.why == "configured"), None)
    if configured is not None and configured.truncated > 0:
        keep = {o.why: o.max_length for o in report.max_lengths}
        lines.append(f"- tokenizer.max_length={configured.max_length} truncates {_pct(configured.truncated)} of the "
                     f"training texts ({_pct(configured.tokens_dropped)} of their tokens); "
                     + ", ".join(f"{why}: {limit:,}" for why, limit in keep.items() if why.startswith("keeps")))
    for name, stats in list(report.lengths.items())[1:]:  # train's own rate is min_frequency's doing
        if stats.unknown_rate >= UNKNOWN_RATE:
            lines.append(f"- {name}: {_pct(stats.unknown_rate)} of the tokens are [UNK] to the tokenizer trained on "
                         f"train ({stats.texts_with_unknown:,} of {stats.texts:,} texts have one)")
    for name, stats in report.lengths.items():
        if stats.texts_all_unknown:
            lines.append(f"- {name}: {stats.texts_all_unknown:,} texts have no known token (the model sees only "
                         "[UNK])")
    if report.baseline.scores:
        scores = ", ".join(f"{name} accuracy {s['accuracy']:.4f} / macro-F1 {s['macro_f1']:.4f}"
                           for name, s in report.baseline.scores.items())
        lines.append(f"- Always answering {report.baseline.label!r} scores {scores}: the bar a model must clear.")
    return "## Findings\n\n" + "\n".join(lines)


def _splits(report: AuditReport) -> str:
    scan = report.scan
    header = ["split", "examples", *report.label_names, "empty texts"]
    rows = []
    for name, size in scan.sizes.items():
        counts = scan.label_counts.get(name)
        cells = ([f"{c:,} ({_pct(c / max(size, 1))})" for c in counts.values()] if counts
                 else ["(no labels)"] * len(report.label_names))
        rows.append([name, f"{size:,}", *cells, f"{scan.empty[name]:,}"])
    out = "## Splits and labels\n\n" + table(header, rows)
    train = next(iter(scan.label_counts.values()), None)
    if train and min(train.values()) > 0:
        out += (f"\n\nThe largest class of {next(iter(scan.label_counts))} has "
                f"{max(train.values()) / min(train.values()):.2f}x the examples of the smallest.")
    return out


def _duplicates(report: AuditReport) -> str:
    exact, normalized = report.scan.exact.duplicates, report.scan.normalized.duplicates
    rows = [[name, f"{exact[name].rows:,} ({exact[name].texts:,})", f"{dup.rows:,} ({dup.texts:,})",
             _pct(dup.rows / max(report.scan.sizes[name], 1))] for name, dup in normalized.items()]
    out = ("## Duplicates within a split\n\nRows repeating an earlier row of their split (distinct texts repeated). "
           "Normalized: NFKC, lowercase, punctuation and symbols dropped, whitespace collapsed.\n\n"
           + table(["split", "exact", "normalized", "normalized share"], rows))
    examples = [f"- {name}: " + ", ".join(f"{quote(text, 60)} ×{count}" for text, count in dup.examples)
                for name, dup in normalized.items() if dup.examples]
    return out + ("\n\nMost repeated (normalized):\n\n" + "\n".join(examples) if examples else "")


def _leakage(report: AuditReport) -> str:
    exact = {(leak.source, leak.target): leak for leak in report.scan.exact.leaks}
    leaks = report.scan.normalized.leaks
    if not leaks:
        return ""
    rows = []
    for leak in leaks:
        same = exact[(leak.source, leak.target)]
        rows.append([leak.target, leak.source, f"{same.rows:,} ({_pct(same.fraction)})",
                     f"{leak.rows:,} ({_pct(leak.fraction)})"])
    out = ("## Leakage across splits\n\nRows of a split whose text is also in an earlier split: a score on them "
           "measures memory, not generalization.\n\n" + table(["rows of", "also in", "exact", "normalized"], rows, "llrr"))
    examples = [f"- {leak.target} in {leak.source}: " + ", ".join(quote(text, 80) for text in leak.examples)
                for leak in leaks if leak.examples]
    return out + ("\n\nExamples:\n\n" + "\n".join(examples) if examples else "")


def _conflicts(report: AuditReport) -> str:
    exact, normalized = report.scan.exact.conflicts, report.scan.normalized.conflicts
    out = (f"## Conflicting labels\n\nThe same text with different labels (all labelled splits): {exact.texts:,} "
           f"texts in {exact.rows:,} rows exactly, {normalized.texts:,} in {normalized.rows:,} rows normalized.")
    if normalized.examples:
        out += "\n\n" + table(["text (as first written)", "labels"],
                              [[quote(text), ", ".join(labels)] for text, labels in normalized.examples], "ll")
    return out


def _lengths(report: AuditReport) -> str:
    tok = report.tokenizer
    header = ["split", "texts", "tokens", "mean", "p50", "p90", "p95", "p99", "max", "[UNK] rate",
              "texts with [UNK]", "no known token"]
    rows = [[name, f"{s.texts:,}", f"{s.tokens:,}", f"{s.mean:.1f}", *(f"{v:,}" for v in s.percentiles.values()),
             _pct(s.unknown_rate), f"{s.texts_with_unknown:,}", f"{s.texts_all_unknown:,}"]
            for name, s in report.lengths.items()]
    return (f"## Token lengths\n\nUntruncated, under the {tok['kind']} tokenizer training would build "
            f"({tok['vocab_size']:,} tokens, trained on {next(iter(report.lengths), 'train')}, min_frequency "
            f"{tok['min_frequency']}, lowercase {str(tok['lowercase']).lower()}).\n\n" + table(header, rows))


def _max_lengths(report: AuditReport) -> str:
    if not report.max_lengths:
        return ""
    rows = [[f"{o.max_length:,}", o.why, _pct(o.truncated), _pct(o.tokens_dropped), _pct(o.padding_bucketed),
             _pct(o.padding_random), _pct(o.padding_fixed)] for o in report.max_lengths]
    return ("## Choosing tokenizer.max_length\n\nOn the training split. Padding: the share of padded token slots "
            "in seqnlp's length-bucketed batches (train.batch_size, train.bucketing), in batches of random texts, "
            "and with every text padded to max_length (a fixed-shape export).\n\n"
            + table(["max_length", "why", "texts truncated", "tokens dropped", "padding: seqnlp batches",
                     "padding: random batches", "padding: fixed length"], rows, "rlrrrrr"))


def _vectors(report: AuditReport) -> str:
    v = report.vectors
    if v is None:
        return ""
    rows = [[name, _pct(share)] for name, share in v.token_coverage.items()]
    return (f"## Pretrained vectors\n\n{v.source}: {v.found:,} of {v.words:,} vocabulary entries found "
            f"({_pct(v.coverage)}). Share of running tokens with a vector:\n\n" + table(["split", "tokens covered"],
                                                                                        rows))


def _baseline(report: AuditReport) -> str:
    b = report.baseline
    if not b.scores:
        return ""
    rows = [[name, f"{s['accuracy']:.4f}", f"{s['macro_f1']:.4f}"] for name, s in b.scores.items()]
    return (f"## Majority-class baseline\n\nAlways answering {b.label!r}, train's most frequent label"
            f"{' set' if report.multi_label else ''}:\n\n" + table(["split", "accuracy", "macro-F1"], rows))
