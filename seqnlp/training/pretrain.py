"""The language-model run's own pieces: its settings, its texts, its record and its end (docs/pretraining.md).

A language model is prepared, fitted and checkpointed by the same ``prepare``, ``fit`` and ``restore`` as a
classifier (``seqnlp.training.setup.prepare`` with ``language_model=True``); what differs is here. Its settings are the
run's config with ``pretrain.*`` (epochs, lr, batch size) in place of ``train.*``'s (``language_model_config``);
it reads the training split's texts and ``pretrain.text_files``, and measures perplexity on the validation split,
never training on it or on the test split (``pretraining_data``); ``finish_pretraining`` writes results.json.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import datasets
from datasets import Dataset, DatasetDict, concatenate_datasets
from tokenizers import Tokenizer

from seqnlp import distributed
from seqnlp.checkpoint import PRETRAINING_FILE, RESULTS_FILE, write_json
from seqnlp.config import Config
from seqnlp.data import Splits
from seqnlp.data.files import read_texts
from seqnlp.errors import ConfigError, DataError, TrainingError
from seqnlp.lm import LanguageModelObjective, softmax_shape
from seqnlp.training.plan import LabelPlan
from seqnlp.training.state import TrainingState

if TYPE_CHECKING:
    from seqnlp.training.setup import Setup

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    """What a finished language-model run reports; the same numbers are in its results.json."""

    run_dir: Path
    best_epoch: int
    validation: dict[str, Any]  # loss and perplexity of the best epoch on the validation split
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch, as in metrics.jsonl
    num_parameters: int = 0


def language_model_config(config: Config) -> Config:
    """The settings a language model trains with: ``pretrain.*`` for epochs, lr, batch size and dropout, the rest of
    ``train.*`` as it is (schedule, warm-up, clipping, patience, precision, device, threads, checkpoints), the
    validation loss as the monitored metric, and nothing that belongs to the classifier (labels, a pretrained
    start, fine-tuning options)."""
    lm = copy.deepcopy(config)
    tc, pretrain = lm.train, config.pretrain
    tc.epochs, tc.lr, tc.batch_size = pretrain.epochs, pretrain.lr, pretrain.batch_size
    tc.monitor, tc.sampler, tc.class_weights, tc.label_smoothing = "loss", "bucket", None, 0.0
    tc.pretrain, tc.init_from, tc.gradual_unfreezing, tc.layer_lr_decay = False, None, 0, 1.0
    if pretrain.dropout is not None:
        lm.model.dropout = lm.model.embedding_dropout = pretrain.dropout
    return lm


def check_pretraining(config: Config) -> None:
    """Before any data loads: the language model needs the training split whole, and its text files must exist."""
    if config.data.streaming:
        raise ConfigError("data.streaming: a language model reads the whole training split; set "
                          "data.streaming=false (or pretrain on a copy of the data that is not streamed)")
    for path in config.pretrain.text_files:
        if not Path(path).is_file():
            raise ConfigError(f"pretrain.text_files: {path} does not exist")


def pretraining_data(config: Config, splits: Splits, plan: LabelPlan) -> tuple[Splits, LabelPlan]:
    """The language model's splits and plan: its training texts are the training split's (labels dropped) and
    ``pretrain.text_files``'; the validation split measures its perplexity; there is no test split. The plan
    keeps the label counts for the record, with the language-model objective judged by validation loss."""
    data = config.data
    train = splits.data[data.train_split].select_columns(["text"])
    extra = read_text_files(config.pretrain.text_files, data.text_columns, data.text_separator)
    if extra is not None:
        train = concatenate_datasets([train, extra.cast(train.features)])
    log.info("language model: %d training texts (%d from pretrain.text_files); perplexity measured on %s",
             len(train), 0 if extra is None else len(extra), data.validation_split)
    prepared = DatasetDict({data.train_split: train, data.validation_split: splits.data[data.validation_split]})
    lm_plan = dataclasses.replace(plan, objective=LanguageModelObjective(), class_weights=None, monitor="loss",
                                  monitor_reason="language model: validation perplexity", sample_weights=None)
    return dataclasses.replace(splits, data=prepared), lm_plan


def read_text_files(paths: list[str], columns: list[str], separator: str) -> Optional[Dataset]:
    """The texts of unlabelled files as one ``text`` column: .txt one text a line, .jsonl/.csv/.tsv their
    ``columns`` joined with ``separator``; blank texts are skipped (with a count). None when no file is given."""
    if not paths:
        return None
    texts: list[str] = []
    for path in paths:
        blank = 0
        with open(path, encoding="utf-8", newline="") as stream:
            for chunk in read_texts(stream, "auto", columns, separator):
                kept = [text for text in chunk if text.strip()]
                blank += len(chunk) - len(kept)
                texts.extend(kept)
        if blank:
            log.warning("pretrain.text_files: %s: %d blank texts skipped", path, blank)
    if not texts:
        raise DataError(f"pretrain.text_files: no texts in {', '.join(paths)}")
    return Dataset.from_dict({"text": texts}, features=datasets.Features({"text": datasets.Value("string")}))


def write_pretraining_record(run_dir: Path, config: Config, splits: Splits, tokenizer: Tokenizer) -> None:
    """pretraining.json: what the language model is and what it read (its presence marks the directory)."""
    lm = language_model_config(config)
    directions = 2 if config.model.bidirectional else 1
    cutoffs, div_value = softmax_shape(config.pretrain.cutoffs, tokenizer.get_vocab_size(), config.model.hidden_size)
    write_json(run_dir / PRETRAINING_FILE, {
        "objective": "bidirectional language model: the forward direction predicts the next token, the backward "
                     "the previous one" if directions == 2 else "language model: predicts the next token",
        "directions": directions,
        "vocab_size": tokenizer.get_vocab_size(),
        "adaptive_softmax": {"cutoffs": cutoffs, "div_value": div_value},
        "training_texts": len(splits.data[config.data.train_split]),
        "text_files": list(config.pretrain.text_files),
        "validation_split": config.data.validation_split,
        "settings": {"epochs": lm.train.epochs, "lr": lm.train.lr, "batch_size": lm.train.batch_size},
    })


def is_language_model_run(run_dir: Path) -> bool:
    return (run_dir / PRETRAINING_FILE).is_file()


def finish_pretraining(setup: "Setup", state: TrainingState) -> PretrainResult:
    """Write results.json of a language-model run: the best epoch and its validation loss and perplexity (its
    model.safetensors already holds that epoch's weights)."""
    best_epoch = state.monitor.best_epoch
    if best_epoch == 0:
        raise TrainingError("no epoch finished, so there are no best weights")
    validation = state.history[best_epoch - 1]["validation"]
    if distributed.is_main():
        write_json(setup.run_dir / RESULTS_FILE, {"objective": "language_model", "best_epoch": best_epoch,
                                                  "num_parameters": setup.num_parameters,
                                                  "skipped_steps": state.skipped_steps, "validation": validation})
    log.info("language model (best epoch %d): validation perplexity %.2f, in %s", best_epoch,
             validation["perplexity"], setup.run_dir)
    return PretrainResult(setup.run_dir, best_epoch, validation, state.history, setup.num_parameters)
