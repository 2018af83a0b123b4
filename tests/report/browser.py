"""A real headless browser for the HTML tests: Debian's chromium, driven from the command line.

``render`` loads a page, takes a screenshot and returns every console message the page produced (chromium logs
them to stderr with ``--enable-logging=stderr``), and ``dump_dom`` returns the DOM after loading. Tests that
need a browser skip when none is installed (``.ci/run`` installs chromium, so CI runs them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 120  # seconds: a safety net for a hung browser, never a measurement
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\]\s*(.*)")


def find_browser() -> Optional[str]:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def require_browser() -> str:
    browser = find_browser()
    if browser is None:
        pytest.skip("no headless browser (apt-get install chromium; .ci/run does)")
    return browser


def _run(args: list[str]) -> subprocess.CompletedProcess:
    browser = require_browser()
    with tempfile.TemporaryDirectory(prefix="seqnlp-chromium-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                   "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}", *args]
        env = {**os.environ, "HOME": profile}
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)


def render(page: Path, screenshot: Path, width: int = 1200, height: int = 2200) -> list[str]:
    """Load ``page``, write a ``width`` x ``height`` screenshot, return the page's console messages."""
    done = _run(["--enable-logging=stderr", "--v=0", f"--window-size={width},{height}",
                 f"--screenshot={screenshot}", page.resolve().as_uri()])
    assert screenshot.is_file(), f"the browser wrote no screenshot:\n{done.stderr[-2000:]}"
    return [match.group(1) for line in done.stderr.splitlines() if (match := _CONSOLE.search(line))]


def dump_dom(page: Path) -> str:
    """The page's DOM after loading, as the browser serializes it."""
    done = _run(["--dump-dom", page.resolve().as_uri()])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
