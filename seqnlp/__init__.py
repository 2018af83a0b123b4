"""seqnlp: text classification with RNN, LSTM and GRU encoders, from Hugging Face datasets to predictions.

    import seqnlp
    config = seqnlp.load_config("configs/quickstart.yaml", overrides=["model.cell=gru"])
    result = seqnlp.train(config)      # stopped by Ctrl-C, SIGTERM or a crash? seqnlp.resume(run_dir) continues
    seqnlp.load(result.run_dir).predict(["free entry in a weekly competition"])
    seqnlp.evaluate(result.run_dir)
    seqnlp.export_run(result.run_dir, format="onnx", quantize=True)   # -> runs/.../export/model.int8.onnx

Heavy modules (torch, datasets) load on first use, so importing seqnlp, or printing the CLI's help, is fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from seqnlp.config import Config, DataConfig, ModelConfig, TokenizerConfig, TrainConfig, load_config
from seqnlp.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DistributedError,
    SeqnlpError,
    TrainingError,
    TrainingInterrupted,
)

if TYPE_CHECKING:
    from seqnlp.evaluation import evaluate
    from seqnlp.export import ExportResult, export_run
    from seqnlp.predict import Classifier, load
    from seqnlp.training import PretrainResult, TrainResult, pretrain, resume, train

__version__ = "0.1.0"

_LAZY = {
    "train": "seqnlp.training",
    "resume": "seqnlp.training",
    "TrainResult": "seqnlp.training",
    "pretrain": "seqnlp.training",
    "PretrainResult": "seqnlp.training",
    "evaluate": "seqnlp.evaluation",
    "load": "seqnlp.predict",
    "Classifier": "seqnlp.predict",
    "export_run": "seqnlp.export",
    "ExportResult": "seqnlp.export",
}

__all__ = [
    "Config", "DataConfig", "TokenizerConfig", "ModelConfig", "TrainConfig", "load_config",
    "train", "resume", "TrainResult", "pretrain", "PretrainResult", "evaluate", "load", "Classifier", "export_run", "ExportResult",
    "SeqnlpError", "ConfigError", "DataError", "CheckpointError", "TrainingError", "TrainingInterrupted",
    "DistributedError", "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seqnlp' has no attribute {name!r}")
