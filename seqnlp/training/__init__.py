"""Training: prepare a run, fit it epoch by epoch, finish with its results; resume an interrupted one."""

from seqnlp.training.run import TrainResult, resume, train

__all__ = ["TrainResult", "resume", "train"]
