"""Compare cells and settings on the same data, budget and seeds; diagnose gradient flow; report and plot."""

from seqnlp.compare.runs import CompareResult, RunRecord, compare, parse_grid

__all__ = ["CompareResult", "RunRecord", "compare", "parse_grid"]
