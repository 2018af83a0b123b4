"""Training: preflight a config, prepare a run, fit it epoch by epoch, finish with its results; resume one.

``train`` and ``resume`` are the whole path (``run``); ``loop.fit`` takes ``Hook``s called after every step
and epoch, and ``preflight`` checks a config's files and packages without training it.
"""

from seqnlp.training.loop import Hook, StepStats
from seqnlp.training.run import TrainResult, preflight, resume, train
from seqnlp.training.setup import Setup

__all__ = ["Hook", "Setup", "StepStats", "TrainResult", "preflight", "resume", "train"]
