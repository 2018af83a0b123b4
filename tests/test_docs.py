"""The README and the documentation site: the config reference is generated from schema.py and every key has a
description; README is short, its links and contents resolve, CI runs its test command as written; the site's
navigation names pages that exist. (CI builds the site itself with ``mkdocs build --strict``.)"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from seqnlp.config import Config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hook() -> Any:
    return _load(ROOT / "docs" / "hooks" / "reference.py", "seqnlp_docs_hook")


def _dotted_keys(section: Any, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        keys += _dotted_keys(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [f"{prefix}{f.name}"]
    return keys


# --- the config reference: one source of truth -------------------------------------------------------------------


def test_every_config_key_has_a_description(hook: Any) -> None:
    """Each field of seqnlp/config/schema.py carries a trailing # comment: the reference is made from it."""
    assert hook.missing_descriptions() == []


def test_a_key_without_a_comment_is_caught(hook: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = hook.SCHEMA.read_text(encoding="utf-8")
    stripped = re.sub(r"(\n    vocab_size: int = \d+)  #[^\n]*", r"\1", source)
    assert stripped != source
    monkeypatch.setattr(hook, "SCHEMA", tmp_path / "schema.py")
    hook.SCHEMA.write_text(stripped, encoding="utf-8")
    assert hook.missing_descriptions() == ["tokenizer.vocab_size"]
    with pytest.raises(ValueError, match="config keys without a description.*tokenizer.vocab_size"):
        hook.config_reference()


def test_the_config_reference_lists_every_key_with_its_default(hook: Any) -> None:
    text = hook.config_reference()
    for key in _dotted_keys(Config()):
        assert f"| `{key}` |" in text, key
    assert "| `model.cell` | one of `rnn`, `lstm`, `gru` | `lstm` |" in text
    assert "| `data.text_columns` | list of str | `[text]` |" in text
    assert "| `train.max_grad_norm` | float or null | `1.0` |" in text
    assert "runs/&lt;cell&gt;-&lt;time&gt;" in text  # a description is text, never HTML


def test_the_command_reference_has_every_commands_help(hook: Any) -> None:
    from seqnlp.cli import main

    text = hook.cli_reference()
    for name in main.commands:
        assert f"## `seqnlp {name}`" in text and f"Usage: seqnlp {name} [OPTIONS]" in text


def test_the_hook_replaces_its_markers(hook: Any) -> None:
    page = hook.on_page_markdown("# Config\n\n<!-- generated: config-reference -->\n", None, None, None)
    assert "<!-- generated" not in page and "| `seed` |" in page


# --- README ------------------------------------------------------------------------------------------------------


def test_readme_is_short_and_has_a_table_of_contents() -> None:
    assert len(README.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    contents = next(line for line in README.splitlines() if line.startswith("**Contents:**"))
    anchors = re.findall(r"\]\(#([^)]+)\)", README)
    for heading in headings:
        anchor = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        assert anchor in anchors, f"README's contents lack {heading!r}"
    assert set(anchors) <= {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    assert contents


def test_readme_links_point_at_files_that_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_ci_runs_the_readme_test_command_as_written() -> None:
    block = README[README.index("## Set up"):README.index("## A one-minute tour")]
    step2 = next(line for line in block.splitlines() if "pytest" in line and not line.startswith("#"))
    assert step2.startswith("python3 -m venv .venv && . .venv/bin/activate")  # a fresh shell finds its venv
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert step2 in ci
    assert any("mkdocs build --strict" in line for line in ci)


def test_results_tables_match_their_records() -> None:
    script = _load(ROOT / "scripts" / "results_tables.py", "seqnlp_results_tables")
    assert script.main(["--check"]) == 0, "run: python scripts/results_tables.py"
    assert "<!-- results-table:" in README


# --- the site ------------------------------------------------------------------------------------------------------


def _nav_files(items: Any) -> list[str]:
    found: list[str] = []
    for item in items:
        for value in item.values() if isinstance(item, dict) else [item]:
            found += _nav_files(value) if isinstance(value, list) else [value]
    return found


def test_the_site_navigation_names_pages_that_exist() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8").replace("!!python", "#"))
    pages = _nav_files(config["nav"])
    assert pages and all((ROOT / "docs" / page).is_file() for page in pages)
    written = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert written == set(pages), "a page is missing from mkdocs.yml's nav, or nav names one not written"
    assert config["theme"]["font"] is False  # no font CDN: the site reads offline
