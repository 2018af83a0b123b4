"""One typed dataclass tree for every setting: YAML/JSON in, dotted overrides, validation.

A config is plain data: loaded from a file, overridden with ``section.key=value`` strings and typed updates,
validated once as a whole (errors name the key and the valid choices, which are the fields' ``Literal`` types)
and saved with every run, so a run directory says how it was made. Checks that need files or optional
packages (vectors, synthetic tasks, tensorboard) run once per run in ``seqnlp.training.run.preflight``.

    schema.py    the sections and their fields
    typed.py     mapping -> dataclass, value -> field type, dotted keys
    rules.py     rules over the whole config
    load.py      files, overrides and updates in
"""

from seqnlp.config.load import config_from_dict, load_config, read_config_file
from seqnlp.config.schema import (
    ACTIVATIONS,
    BASELINE_CLASSIFIERS,
    BUCKETINGS,
    CELLS,
    CHOICES,
    MONITORS,
    NGRAM_INITS,
    NONLINEARITIES,
    NORMALIZATIONS,
    ON_NONFINITE,
    POOLINGS,
    PRECISIONS,
    RECURRENCES,
    SAMPLERS,
    SCHEDULES,
    THRESHOLD_RULES,
    TOKENIZER_KINDS,
    TRUNCATION_SIDES,
    BaselineConfig,
    CalibrationConfig,
    Config,
    DataConfig,
    ModelConfig,
    PretrainConfig,
    TokenizerConfig,
    TrainConfig,
)
from seqnlp.config.typed import get_value, set_value
from seqnlp.config.rules import CLASS_WEIGHTS, is_thread_setting, validate

__all__ = [
    "ACTIVATIONS", "BASELINE_CLASSIFIERS", "BUCKETINGS", "CELLS", "CHOICES", "CLASS_WEIGHTS", "MONITORS", "NGRAM_INITS",
    "NONLINEARITIES", "NORMALIZATIONS", "ON_NONFINITE", "POOLINGS", "PRECISIONS", "RECURRENCES", "SAMPLERS",
    "SCHEDULES", "THRESHOLD_RULES", "TOKENIZER_KINDS", "TRUNCATION_SIDES", "BaselineConfig", "CalibrationConfig",
    "Config", "DataConfig", "ModelConfig", "PretrainConfig", "TokenizerConfig", "TrainConfig", "config_from_dict",
    "get_value", "is_thread_setting", "load_config", "read_config_file", "set_value", "validate",
]
