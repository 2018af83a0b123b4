"""MkDocs hook: the configuration and command references, generated at build time from their one source.

The configuration reference comes from ``seqnlp/config/schema.py``: every field of every section with its type,
its default (read from the dataclasses) and its trailing ``# comment`` (read from the source with ``tokenize``).
A field without a comment fails the build. The command reference is each command's ``--help``, from click.

A page asks for a reference with a marker line: ``<!-- generated: config-reference -->`` or
``<!-- generated: cli-reference -->``. Nothing here fetches anything.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import sys
import tokenize
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "seqnlp" / "config" / "schema.py"


def _import_seqnlp() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the checkout's seqnlp, whether or not it is installed
    import seqnlp.config

    return seqnlp.config


class FieldDoc(typing.NamedTuple):
    key: str  # dotted: data.dataset
    type: str
    default: str
    description: str  # the trailing comment, with the comment lines just above the field before it


def _comments(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """Line -> trailing comment, and line -> comment on a line of its own."""
    trailing: dict[int, str] = {}
    alone: dict[int, str] = {}
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            text = tok.string.lstrip("#").strip()
            (alone if not lines[row - 1][:col].strip() else trailing)[row] = text
    return trailing, alone


def _type_text(node: ast.expr, source: str) -> str:
    """An annotation as a reader wants it: choices for a Literal, "or null" for Optional."""
    text = ast.get_source_segment(source, node) or ""
    literal = re.fullmatch(r"Literal\[(.*)\]", text)
    if literal:
        return "one of " + ", ".join(f"`{c.strip().strip(chr(34))}`" for c in literal.group(1).split(","))
    text = text.replace("dict[str, Any]", "mapping").replace("list[str]", "list of str")
    text = re.sub(r"Optional\[(.*)\]", r"\1 or null", text)
    text = re.sub(r"Union\[(.*)\]", lambda m: " or ".join(p.strip() for p in m.group(1).split(",")), text)
    text = text.replace('Literal["auto"]', '"auto"')
    return "any" if text == "Any" else text


def _value_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if not value.strip() else value
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def field_docs() -> dict[str, list[FieldDoc]]:
    """Section ("" for the top level) -> its fields, in the order schema.py declares them."""
    config = _import_seqnlp()
    source = SCHEMA.read_text(encoding="utf-8")
    tree = ast.parse(source)
    trailing, alone = _comments(source)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    defaults = config.Config()
    sections: dict[str, list[FieldDoc]] = {}
    for section, cls_name in [("", "Config")] + [(f.name, typing.get_type_hints(config.Config)[f.name].__name__)
                                                 for f in dataclasses.fields(config.Config)
                                                 if dataclasses.is_dataclass(typing.get_type_hints(config.Config)[f.name])]:
        docs = []
        instance = getattr(defaults, section) if section else defaults
        for node in classes[cls_name].body:
            if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
                continue
            name = node.target.id
            value = getattr(instance, name)
            if section == "" and dataclasses.is_dataclass(value):
                continue  # a section: documented under its own heading
            above, row = [], node.lineno - 1
            while row in alone:  # a comment block right above the field explains it further
                above.insert(0, alone[row])
                row -= 1
            description = " ".join([trailing.get(node.end_lineno or node.lineno, "")] + above).strip()
            if not trailing.get(node.end_lineno or node.lineno):
                description = ""
            docs.append(FieldDoc(f"{section}.{name}" if section else name, _type_text(node.annotation, source),
                                 _value_text(value), description))
        sections[section] = docs
    return sections


def missing_descriptions() -> list[str]:
    """Every key whose field has no trailing ``# comment`` in schema.py."""
    return [d.key for docs in field_docs().values() for d in docs if not d.description]


def config_reference() -> str:
    """The configuration reference as Markdown: a table per section."""
    missing = missing_descriptions()
    if missing:
        raise ValueError(f"config keys without a description (a trailing # comment in {SCHEMA.name}): "
                         f"{', '.join(missing)}")
    config = _import_seqnlp()
    titles = {"data": "data", "tokenizer": "tokenizer", "model": "model", "train": "train", "": "top level"}
    out = []
    for section, docs in field_docs().items():
        cls = typing.get_type_hints(config.Config)[section] if section else config.Config
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        out += [f"## `{section}` section" if section else f"## The {titles['']}", "", summary, "",
                "| key | type | default | description |", "| --- | --- | --- | --- |"]
        for d in docs:
            description = d.description.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            description = description.replace("|", "\\|")  # HTML-safe: runs/<cell>-<time> is text, not a tag
            out.append(f"| `{d.key}` | {d.type.replace('|', chr(92) + '|')} | `{d.default}` | {description} |")
        out.append("")
    return "\n".join(out)


def cli_reference() -> str:
    """Every command's ``--help``, as the terminal shows it."""
    _import_seqnlp()
    import click

    from seqnlp.cli import main

    out = []
    root = click.Context(main, info_name="seqnlp", **main.context_settings)
    out += ["## `seqnlp`", "", "```text", main.get_help(root), "```", ""]
    for name, command in main.commands.items():
        ctx = click.Context(command, info_name=name, parent=root)
        out += [f"## `seqnlp {name}`", "", "```text", command.get_help(ctx), "```", ""]
    return "\n".join(out)


GENERATORS = {"config-reference": config_reference, "cli-reference": cli_reference}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each ``<!-- generated: NAME -->`` marker line with what its generator makes."""
    for name, make in GENERATORS.items():
        marker = f"<!-- generated: {name} -->"
        if marker in markdown:
            try:
                markdown = markdown.replace(marker, make())
            except ValueError as exc:
                from mkdocs.exceptions import PluginError

                raise PluginError(str(exc)) from exc
    return markdown
