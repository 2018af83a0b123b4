"""``seqnlp report``: one self-contained HTML page per run, checked as text and in a real headless browser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from seqnlp.checkpoint import REPORT_FILE
from seqnlp.predict import Classifier
from seqnlp.report import figures
from seqnlp.report.run import find_mistakes, write_report
from tests.report.browser import dump_dom, render

MATRIX_FULL = (80, 135, 255)  # the shade of a confusion-matrix cell holding its whole row


@pytest.fixture(scope="module")
def report(toy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(toy_run, tmp_path_factory.mktemp("report") / "toy.html", examples=3, steps=8)


def external_references(document: str) -> list[str]:
    """Every src/href that would fetch something: anything but a data: URI or an in-page #anchor."""
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", document)
    return [link for link in links if not link.startswith(("data:", "#"))] + re.findall(r"url\(", document)


def test_the_page_holds_every_section_and_loads_nothing(report: Path, toy_run: Path) -> None:
    document = report.read_text(encoding="utf-8")
    assert document.startswith("<!DOCTYPE html>") and "<script" not in document and not external_references(document)
    for section in ("overview", "training", "confusion", "per-class", "calibration", "mistakes"):
        assert f'<section id="{section}">' in document, section
    assert document.count('src="data:image/png;base64,') == 2  # curves, reliability
    matrix = re.search(r'<table class="matrix" id="confusion-matrix">(.*?)</table>', document, re.S)
    assert matrix and [int(v) for v in re.findall(r">(\d+)</td>", matrix.group(1))] == [20, 0, 0, 20]
    assert "No misclassified example in test" in document  # the toy task is learned


def test_the_default_page_goes_to_the_run_directory(toy_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(toy_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints", "tensorboard")))
    assert write_report(run, examples=0) == run / REPORT_FILE and (run / REPORT_FILE).is_file()


def test_the_most_confident_mistakes_come_first_with_explanations(toy_run: Path, tmp_path: Path) -> None:
    clf = Classifier.load(toy_run, device="cpu")
    texts = ["great great film", "awful", "the plot was great", "awful awful"]
    truth = [clf.label_names.index("neg"), 0, clf.label_names.index("neg"), clf.label_names.index("neg")]
    mistakes = find_mistakes(clf, texts, truth, limit=5)
    probs = torch.from_numpy(clf.predict_proba(texts))
    expected = sorted((i for i in range(4) if clf.label_names[int(probs[i].argmax())] != clf.label_names[truth[i]]),
                      key=lambda i: -float(probs[i].max()))
    assert [m.text for m in mistakes] == [texts[i] for i in expected] and len(mistakes) >= 2
    assert all(m.decided == "pos" and m.truth == "neg" for m in mistakes)
    assert find_mistakes(clf, texts, truth, limit=1) == mistakes[:1] and not find_mistakes(clf, texts, truth, 0)


def test_without_matplotlib_the_page_shows_tables(toy_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(figures, "_figure", lambda *args: None)
    document = write_report(toy_run, tmp_path / "plain.html", examples=0).read_text(encoding="utf-8")
    assert "data:image/png" not in document and document.count("Figures need matplotlib") == 2
    assert '<table class="matrix" id="confusion-matrix">' in document


# --- in a real browser --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_browser_harness_sees_console_errors(tmp_path: Path) -> None:
    """So the next test's empty list means something."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><p>x</p><script>console.error("seqnlp-marker"); missing();</script>',
                    encoding="utf-8")
    messages = render(page, tmp_path / "broken.png", 300, 200)
    assert any("seqnlp-marker" in m for m in messages) and any("missing is not defined" in m for m in messages)


@pytest.mark.slow
def test_the_report_renders_in_a_browser_without_errors_and_shows_the_matrix(report: Path, tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    screenshot = tmp_path / "report.png"
    assert render(report, screenshot) == []  # no console error, no console message at all
    dom = dump_dom(report)
    assert 'id="confusion-matrix"' in dom and "Calibration" in dom
    with Image.open(screenshot) as image:
        pixels = image.convert("RGB")
        width, height = pixels.size
        matrix = [(x, y) for y in range(0, height, 2) for x in range(0, width, 2) if pixels.getpixel((x, y)) == MATRIX_FULL]
    # Two diagonal cells, each some 60 x 25 pixels (sampled every other pixel both ways): the matrix is on screen.
    assert len(matrix) > 400, f"confusion matrix not found in {screenshot}"
    ys = sorted({y for _, y in matrix})
    assert ys[-1] - ys[0] > 25  # two rows of cells, one above the other
    shutil.copy(screenshot, report.with_suffix(".png"))  # beside the page, for a person to look at


def test_a_multi_label_run_gets_its_page_without_a_confusion_matrix(tmp_path: Path) -> None:
    from seqnlp.training import train
    from tests.helpers import multilabel_rows, tiny_config, write_jsonl

    files = {"train": write_jsonl(tmp_path / "train.jsonl", multilabel_rows(200, seed=0)),
             "test": write_jsonl(tmp_path / "test.jsonl", multilabel_rows(40, seed=1))}
    config = tiny_config(tmp_path, files, **{"data.multi_label": True, "data.label_column": "labels",
                                              "train.epochs": 2})
    train(config, progress=False)
    document = write_report(config.output_dir, tmp_path / "ml.html", examples=2, steps=4).read_text(encoding="utf-8")
    assert 'id="confusion-matrix"' not in document and "<th>threshold</th>" in document
    assert '<section id="calibration">' in document and "exact match" in document
