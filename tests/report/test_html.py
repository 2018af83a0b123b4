"""The HTML building blocks (``seqnlp.report.html``): escaping, numbers, tables, inline images, whole pages."""

from __future__ import annotations

import base64
from pathlib import Path

from seqnlp.report import html


def test_escape_makes_any_value_safe_text_and_attribute() -> None:
    assert html.escape('<img src=x onerror="alert(1)">') == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
    assert html.escape(3) == "3"


def test_numbers_are_formatted_by_type() -> None:
    assert [html.number(v) for v in (None, True, 12345, 0.123456, "x")] == ["n/a", "true", "12,345", "0.1235", "x"]


def test_table_aligns_names_left_and_escapes_every_cell() -> None:
    table = html.table(["label", "f1"], [["<neg>", 0.5], ["pos", None]], element_id="t")
    assert table.startswith('<table id="t">')
    assert '<td class="name">&lt;neg&gt;</td><td>0.5000</td>' in table and "<td>n/a</td>" in table


def test_png_is_an_inline_data_uri() -> None:
    image = html.png(b"\x89PNG fake", 'a "figure"', "fig")
    assert image.startswith('<img class="figure" id="fig" alt="a &quot;figure&quot;" src="data:image/png;base64,')
    assert base64.b64decode(image.split("base64,")[1].rstrip('">')) == b"\x89PNG fake"


def test_a_page_is_one_document_with_its_css(tmp_path: Path) -> None:
    document = html.page("A <title>", [html.section("Part", "<p>x</p>", None, element_id="part")], "sub")
    assert document.startswith("<!DOCTYPE html>") and document.count("<style>") == 1
    assert "<title>A &lt;title&gt;</title>" in document and '<section id="part">' in document
    path = html.write_page(tmp_path / "deep" / "page.html", document)
    assert path.read_text(encoding="utf-8") == document
