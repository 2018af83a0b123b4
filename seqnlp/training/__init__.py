"""Training: preflight a config, prepare a run, fit it epoch by epoch, finish with its results; resume one.

``train`` and ``resume`` are the whole path (``recipe``: a language-model stage first when ``train.pretrain``
asks, then ``run``'s classifier); ``pretrain`` trains a language model alone (docs/pretraining.md);
``loop.fit`` takes ``Hook``s called after every step and epoch, and ``preflight`` checks a config's files and
packages without training it.
"""

from seqnlp.training.loop import Hook, StepStats
from seqnlp.training.pretrain import PretrainResult
from seqnlp.training.recipe import pretrain, resume, resume_pretraining, train
from seqnlp.training.run import TrainResult, preflight
from seqnlp.training.setup import Setup

__all__ = ["Hook", "PretrainResult", "Setup", "StepStats", "TrainResult", "preflight", "pretrain", "resume",
           "resume_pretraining", "train"]
