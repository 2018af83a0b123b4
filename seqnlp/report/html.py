"""The building blocks of seqnlp's HTML pages: one self-contained file each, with its CSS inline and its images as
``data:`` URIs, so a page opens offline, from a mail attachment or a CI artifact, and loads nothing from elsewhere.

Every string from a run (texts, label names, paths) goes through ``escape``; nothing here runs a script.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

CSS = """
:root { color-scheme: light; --ink: #1d2329; --muted: #5b6570; --rule: #d8dde3; --accent: #2f6f9f; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1100px; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 10px; border-bottom: 1px solid var(--rule); }
h3 { font-size: 16px; margin: 20px 0 6px; }
p.meta, .muted { color: var(--muted); } code { font-size: 13px; background: #f2f4f6; padding: 1px 4px; border-radius: 3px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--rule); padding: 4px 10px; text-align: right; }
th { background: #f2f4f6; font-weight: 600; } td.name, th.name { text-align: left; }
table.matrix td { min-width: 64px; text-align: center; font-weight: 600; }
img.figure { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 16px; }
.card { border: 1px solid var(--rule); border-radius: 6px; padding: 8px 14px; min-width: 140px; }
.card .value { font-size: 22px; font-weight: 600; } .card .label { color: var(--muted); font-size: 13px; }
.example { border: 1px solid var(--rule); border-radius: 6px; padding: 10px 14px; margin: 10px 0; }
.tokens { line-height: 2.1; }
.tok { padding: 2px 3px; margin: 0 1px; border-radius: 3px; white-space: pre-wrap; }
.legend span { padding: 2px 6px; border-radius: 3px; margin-right: 6px; }
.note { color: #8a5a00; }
"""


def escape(value: Any) -> str:
    """Any value as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def page(title: str, body: Iterable[Optional[str]], subtitle: str = "") -> str:
    """A whole HTML document: ``body`` (HTML strings, already escaped; None parts left out) under an <h1>, with
    the CSS inline."""
    head = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n")
    meta = f'<p class="meta">{escape(subtitle)}</p>\n' if subtitle else ""
    return head + meta + "\n".join(part for part in body if part) + "\n</body>\n</html>\n"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], names: int = 1, css_class: str = "",
          element_id: str = "") -> str:
    """A table; the first ``names`` columns are left-aligned text, the rest numbers (floats with 4 decimals)."""
    attrs = (f' class="{escape(css_class)}"' if css_class else "") + (f' id="{escape(element_id)}"' if element_id else "")
    lines = [f"<table{attrs}>", "<tr>" + "".join(
        f'<th{" class=name" if i < names else ""}>{escape(h)}</th>' for i, h in enumerate(header)) + "</tr>"]
    for row in rows:
        cells = [f'<td class="name">{escape(v)}</td>' if i < names else f"<td>{escape(number(v))}</td>"
                 for i, v in enumerate(row)]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(lines + ["</table>"])


def number(value: Any, digits: int = 4) -> str:
    """Floats with ``digits`` decimals, integers with thousands separators, None as n/a, anything else as text."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def png(data: bytes, alt: str, element_id: str = "") -> str:
    """An <img> holding ``data`` (PNG bytes) as a base64 data: URI."""
    encoded = base64.b64encode(data).decode("ascii")
    attr = f' id="{escape(element_id)}"' if element_id else ""
    return f'<img class="figure"{attr} alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'


def cards(items: Sequence[tuple[str, str]]) -> str:
    """Headline numbers as cards: (label, value) pairs."""
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="value">{escape(value)}</div><div class="label">{escape(label)}</div></div>'
        for label, value in items) + "</div>"


def section(title: str, *parts: Optional[str], element_id: str = "") -> str:
    """An <h2> and its parts (None parts are left out)."""
    attr = f' id="{escape(element_id)}"' if element_id else ""
    return f"<section{attr}>\n<h2>{escape(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>"


def write_page(path: str | Path, document: str) -> Path:
    """Write ``document`` to ``path`` (creating its directory); returns the path. Nothing here imports torch, so
    the comparison's report can use these blocks from a light module."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path
