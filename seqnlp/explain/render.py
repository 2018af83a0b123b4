"""Explanations for people: JSON, coloured terminal text, and HTML (a fragment for reports, or a whole page).

Green tokens push towards the label explained, red ones away from it; the stronger the colour, the larger the
attribution against the text's largest. The colour comes from Integrated Gradients; occlusion is shown beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from seqnlp.explain.explanation import Explanation
from seqnlp.report import html

_SUPPORT = (46, 160, 67)  # green: the token raises the label's log-odds
_OPPOSE = (215, 58, 73)  # red: it lowers them


def to_json(explanations: Sequence[Explanation]) -> str:
    """One JSON object per line, as ``seqnlp predict`` prints predictions."""
    return "\n".join(json.dumps(e.to_dict(), ensure_ascii=False) for e in explanations)


def _shade(value: float, scale: float) -> tuple[int, int, int]:
    """White blended towards green (value > 0) or red (value < 0) by |value| / scale."""
    strength = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    color = _SUPPORT if value > 0 else _OPPOSE
    return tuple(round(255 + (c - 255) * strength * 0.85) for c in color)  # type: ignore[return-value]


def _pieces(explanation: Explanation) -> list[tuple[str, int | None]]:
    """(text, token index) in reading order: each token's own characters of the text, and the text between
    tokens with index None; tokens without a span (an empty text) as the tokenizer's strings."""
    text, pieces, at = explanation.text, [], 0
    if not any(end > start for start, end in explanation.spans):
        return [(token, i) for i, token in enumerate(explanation.tokens)]
    for i, (start, end) in enumerate(explanation.spans):
        if start > at:
            pieces.append((text[at:start], None))
        pieces.append((text[start:end], i))
        at = max(at, end)
    if at < len(text):
        pieces.append((text[at:], None))
    return pieces


def summary(explanation: Explanation) -> str:
    """One line: the label explained and its probability, the completeness check, and the methods' agreement."""
    e = explanation
    parts = [f"{e.label} (p={e.probability:.3f})",
             f"IG sum {sum(e.attributions):+.3f} vs logit difference {e.logit - e.baseline_logit:+.3f} "
             f"(gap {e.gap:+.3f}, {e.relative_gap:.1%}; {e.gradient_points} gradient points)"]
    if e.agreement is not None:
        parts.append(f"occlusion agrees: Spearman {e.agreement:+.2f}")
    return " | ".join(parts + e.notes)


def terminal(explanation: Explanation, color: bool = True, top: int = 5) -> str:
    """The text with every token on its colour (24-bit ANSI background), a summary line, and the ``top`` tokens
    with both methods' numbers. Without ``color``: each token followed by its attribution in brackets."""
    scale = max((abs(a) for a in explanation.attributions), default=0.0)
    if color:
        body = "".join(piece if i is None else _ansi(piece, explanation.attributions[i], scale)
                       for piece, i in _pieces(explanation))
    else:
        body = " ".join(f"{t}[{a:+.2f}]" for t, a in zip(explanation.tokens, explanation.attributions))
    lines = [body, "  " + summary(explanation)]
    order = sorted(range(len(explanation.tokens)), key=lambda i: -abs(explanation.attributions[i]))[:top]
    occluded = explanation.occlusion
    for i in order:
        extra = f"  occlusion {occluded[i]:+.3f}" if occluded is not None else ""
        lines.append(f"  {explanation.tokens[i]!r:>20}  IG {explanation.attributions[i]:+.3f}{extra}")
    return "\n".join(lines)


def _ansi(piece: str, value: float, scale: float) -> str:
    r, g, b = _shade(value, scale)
    return f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{piece}\x1b[0m"


def fragment(explanation: Explanation) -> str:
    """The explanation as an HTML block: the coloured text (hover a token for its numbers) and the summary."""
    e = explanation
    scale = max((abs(a) for a in e.attributions), default=0.0)
    spans = []
    for piece, i in _pieces(e):
        if i is None:
            spans.append(html.escape(piece))
            continue
        r, g, b = _shade(e.attributions[i], scale)
        title = f"IG {e.attributions[i]:+.4f}" + (f", occlusion {e.occlusion[i]:+.4f}" if e.occlusion else "")
        spans.append(f'<span class="tok" style="background: rgb({r}, {g}, {b})" title="{title}">'
                     f"{html.escape(piece)}</span>")
    return f'<div class="tokens">{"".join(spans)}</div>\n<div class="muted">{html.escape(summary(e))}</div>'


def page(explanations: Sequence[Explanation], title: str = "seqnlp explain", subtitle: str = "") -> str:
    """A standalone HTML page of explanations: the legend, then each text, its summary and a table of its
    tokens with both methods' numbers."""
    legend = ('<p class="legend"><span style="background: rgb(66, 172, 89)">supports the label</span>'
              '<span style="background: rgb(219, 87, 100)">opposes it</span> colour: Integrated Gradients on the '
              "embeddings (hover a token); occlusion: the log-odds lost when the token is deleted</p>")
    body = [legend]
    for n, e in enumerate(explanations, 1):
        rows: list[list[Any]] = [[t, a] + ([o] if e.occlusion is not None else [])
                                 for t, a, o in zip(e.tokens, e.attributions, e.occlusion or [None] * len(e.tokens))]
        header = ["token", "Integrated Gradients"] + (["occlusion"] if e.occlusion is not None else [])
        body.append(f'<div class="example"><h3>Text {n}: {html.escape(e.label)}</h3>\n{fragment(e)}\n'
                    f"{html.table(header, rows)}</div>")
    return html.page(title, body, subtitle)


def write_html(path: str | Path, explanations: Sequence[Explanation], title: str = "seqnlp explain",
               subtitle: str = "") -> Path:
    """Write ``page(explanations)`` to ``path``; returns the path."""
    return html.write_page(path, page(explanations, title, subtitle))
