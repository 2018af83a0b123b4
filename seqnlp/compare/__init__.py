"""Compare cells and settings on the same data, budget and seeds; diagnose gradient flow; report and plot.

- ``seqnlp.compare.runs``: the grid of training runs and what each one measured (``compare``, ``parse_grid``);
- ``seqnlp.compare.report``: their tables (report.md, results.csv/json, runs.csv, curves.csv);
- ``seqnlp.compare.diagnose``: gradient per position and saturation of recurrent models (``seqnlp diagnose``);
- ``seqnlp.compare.plots``: the PNG figures of both, with matplotlib when it is installed.

Only the light ``runs`` module loads with the package (it imports torch and the trainer when a grid runs), so
``from seqnlp.compare import compare`` stays quick; the other modules are imported by name.
"""

from seqnlp.compare.runs import CompareResult, RunRecord, compare, parse_grid

__all__ = ["CompareResult", "RunRecord", "compare", "parse_grid"]
