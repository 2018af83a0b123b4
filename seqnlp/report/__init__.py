"""One self-contained HTML page about a run: ``seqnlp report RUN`` (``seqnlp.report.run``).

- ``seqnlp.report.html``: the page's building blocks (inline CSS, tables, images as data: URIs);
- ``seqnlp.report.figures``: the figures as PNG bytes, drawn with matplotlib when it is installed;
- ``seqnlp.report.run``: the run report: curves, confusion matrix, per-class table, calibration, mistakes explained.

The package imports nothing heavy; ``seqnlp.compare.report`` writes the comparison's page with the same blocks.
"""
