"""Errors that a user can act on: each message is one line naming the file, column, key or value."""

from __future__ import annotations


class SeqnlpError(Exception):
    """Base class: the CLI prints the message on one line and exits 1, without a traceback."""

    exit_code = 1


class ConfigError(SeqnlpError, ValueError):
    """An unknown config key or a bad value; the message names the key and the valid choices."""

    exit_code = 2


class UsageError(SeqnlpError):
    """The command was called wrong (a run directory that does not exist, an output directory that already holds
    a run without --overwrite): exit 2, as click's own usage errors."""

    exit_code = 2


class RunBusyError(SeqnlpError):
    """Another process is training the run directory; the message names it (pid, host, command, start time)."""


class StorageError(SeqnlpError):
    """The disk refused a write (full, read-only, no permission, a quota or file size limit); the message names
    the path and the cause. Every file written before is whole: each is written to a temporary name and renamed."""


class MissingExtraError(SeqnlpError, ImportError):
    """An optional dependency is not installed; the message says which extra to install (``pip install 'seqnlp[X]'``)."""


class DataError(SeqnlpError, ValueError):
    """A dataset, split, column or value that cannot be used as given."""


class CheckpointError(SeqnlpError):
    """A run directory that is missing files or holds files that do not fit together."""


class RunDirUsageError(UsageError, CheckpointError):
    """A run directory named wrong (missing, or already holding a run): a usage error (exit 2) that library
    callers may catch as the CheckpointError it also is."""


class TrainingError(SeqnlpError):
    """Training cannot go on (e.g. a non-finite loss); the last checkpoint in the run directory is intact."""


class DistributedError(SeqnlpError):
    """Another process of a multi-process (torchrun) run failed; its own error says why."""


class TrainingInterrupted(SeqnlpError):
    """SIGINT or SIGTERM stopped training after a checkpoint was saved; exit code 128 + the signal number."""

    def __init__(self, signum: int, run_dir: object, saved: str = "checkpoint saved") -> None:
        import signal

        self.signum = signum
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}; {saved}, continue with: seqnlp train --resume {run_dir}")
