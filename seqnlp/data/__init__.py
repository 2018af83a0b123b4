"""Data in: sources (Hub, files, directories, saved datasets, the embedded SMS data, synthetic tasks) -> labelled splits."""

from seqnlp.data.sources import describe_source, load_raw
from seqnlp.data.splits import Splits, load_splits, load_stream, split_names

__all__ = ["Splits", "describe_source", "load_raw", "load_splits", "load_stream", "split_names"]
