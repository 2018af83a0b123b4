"""Explanations rendered: JSON lines, coloured and plain terminal text, and HTML that escapes the text and loads
nothing from elsewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

from seqnlp.explain import Explanation
from seqnlp.explain.render import fragment, page, terminal, to_json, write_html


def example(text: str = "a <b>bold</b> & great film", **kwargs: object) -> Explanation:
    """A hand-made explanation: spans found in ``text``, one token opposing and one supporting."""
    tokens = ["a", "<b>bold</b>", "great", "film"]
    spans, at = [], 0
    for token in tokens:
        start = text.index(token, at)
        spans.append((start, start + len(token)))
        at = start + len(token)
    defaults = dict(text=text, label="pos", probability=0.9, prediction={"label": "pos", "score": 0.9},
                    tokens=tokens, spans=spans, attributions=[0.0, -0.5, 2.0, 0.1], logit=2.2, baseline_logit=0.5,
                    steps=32, gradient_points=40, occlusion=[0.0, -0.3, 1.5, 0.2], agreement=0.8)
    defaults.update(kwargs)
    return Explanation(**defaults)  # type: ignore[arg-type]


def test_json_lines_round_trip() -> None:
    lines = to_json([example(), example(label="neg")]).splitlines()
    assert [json.loads(line)["label"] for line in lines] == ["pos", "neg"]
    assert json.loads(lines[0])["completeness"]["gap"] == example().gap


def test_terminal_colours_each_token_and_reports_the_checks() -> None:
    text = terminal(example())
    assert "\x1b[48;2;" in text and "great" in text
    green = re.search(r"\x1b\[48;2;(\d+);(\d+);(\d+)m\x1b\[38;2;0;0;0mgreat", text)
    red = re.search(r"\x1b\[48;2;(\d+);(\d+);(\d+)m\x1b\[38;2;0;0;0m<b>bold</b>", text)
    assert green and red
    g = [int(v) for v in green.groups()]
    r = [int(v) for v in red.groups()]
    assert g[1] > g[0] and r[0] > r[1]  # green supports, red opposes
    summary = text.splitlines()[1]
    assert "pos (p=0.900)" in summary and "gap -0.100" in summary and "Spearman +0.80" in summary
    assert "'great'  IG +2.000  occlusion +1.500" in text


def test_plain_terminal_text_has_the_numbers_and_no_escape_codes() -> None:
    text = terminal(example(), color=False)
    assert "\x1b" not in text and "great[+2.00]" in text and "<b>bold</b>[-0.50]" in text


def test_html_escapes_the_text_and_loads_nothing(tmp_path: Path) -> None:
    block = fragment(example())
    assert "<b>bold</b>" not in block and "&lt;b&gt;bold&lt;/b&gt;" in block and "&amp;" in block
    assert 'title="IG +2.0000, occlusion +1.5000"' in block
    path = write_html(tmp_path / "why.html", [example(), example(occlusion=None, agreement=None)], subtitle="toy")
    document = path.read_text(encoding="utf-8")
    assert document == page([example(), example(occlusion=None, agreement=None)], subtitle="toy")
    assert document.startswith("<!DOCTYPE html>") and "<style>" in document and "<script" not in document
    assert not re.search(r"(src|href)\s*=", document) and "url(" not in document  # nothing fetched from elsewhere
    assert document.count('<div class="example">') == 2 and "<th>occlusion</th>" in document
