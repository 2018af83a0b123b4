"""Errors that a user can act on: each message is one line naming the file, column, key or value."""

from __future__ import annotations


class SeqnlpError(Exception):
    """Base class: the CLI prints the message on one line and exits 1, without a traceback."""

    exit_code = 1


class ConfigError(SeqnlpError, ValueError):
    """An unknown config key or a bad value; the message names the key and the valid choices."""

    exit_code = 2


class DataError(SeqnlpError, ValueError):
    """A dataset, split, column or value that cannot be used as given."""


class CheckpointError(SeqnlpError):
    """A run directory that is missing files or holds files that do not fit together."""
