"""Data in: sources (Hub, files, directories, saved datasets, the embedded SMS data, synthetic tasks) -> labelled splits.

The names below are imported on first use, so ``seqnlp.data.files`` (checks of data files that need no data library)
can be imported, by the CLI before anything heavy, without importing ``datasets``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Splits", "describe_source", "load_raw", "load_splits", "load_stream", "split_names"]


def __getattr__(name: str) -> Any:
    if name in ("describe_source", "load_raw"):
        from seqnlp.data import sources

        return getattr(sources, name)
    if name in ("Splits", "load_splits", "load_stream", "split_names"):
        from seqnlp.data import splits

        return getattr(splits, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
