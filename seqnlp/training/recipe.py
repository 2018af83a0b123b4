"""A recipe in one call: ``train`` pretrains a language model first when ``train.pretrain`` asks for one, then
trains the classifier from it; ``pretrain`` trains a language model alone; ``resume`` continues any of them.

A classifier alone is ``seqnlp.training.run.train``. With ``train.pretrain: true`` the run directory holds the
language model in RUN_DIR/pretrained (a run directory of its own, see ``seqnlp.checkpoint``), trained on the
training texts as ``pretrain.*`` says, and the classifier in RUN_DIR starts from it (``training.finetune``).
Interrupted in either stage, ``resume(RUN_DIR)`` finishes that stage and goes on, as the uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
from datetime import datetime
from pathlib import Path
from typing import Sequence

import torch

from seqnlp import distributed
from seqnlp.checkpoint import (
    CONFIG_FILE,
    LABELS_FILE,
    PRETRAINED_DIR,
    RESULTS_FILE,
    TOKENIZER_FILE,
    has_training_state,
    read_json,
)
from seqnlp.config import Config, config_from_dict, read_config_file
from seqnlp.errors import CheckpointError
from seqnlp.runtime import seed_everything
from seqnlp.tokenizer import load_tokenizer
from seqnlp.training import run
from seqnlp.training.loop import Hook
from seqnlp.training.pretrain import PretrainResult, check_pretraining, finish_pretraining, is_language_model_run
from seqnlp.rundir import check_run_dir, claim
from seqnlp.training.run import TrainResult, fit_and_finish, preflight, session
from seqnlp.training.setup import prepare, restore
from seqnlp.training.state import TrainingState

log = logging.getLogger(__name__)


def train(config: Config, overwrite: bool = False, progress: bool = True, hooks: Sequence[Hook] = ()) -> TrainResult:
    """Train a classifier as ``config`` says, its language-model stage first when ``train.pretrain`` is set;
    ``config`` itself is not changed. Arguments as ``run.train``; ``hooks`` serve the classifier's stage."""
    if not config.train.pretrain:
        return run.train(config, overwrite=overwrite, progress=progress, hooks=hooks)
    preflight(config)
    check_pretraining(config)
    config = copy.deepcopy(config)  # the run directory's name is filled in below
    with session(config) as device, contextlib.ExitStack() as writer:
        seed_everything(config.seed)
        # Rank 0 becomes the run's one writer; an existing run is refused before the language model costs anything.
        config.output_dir = distributed.from_main(
            lambda: claim(writer, config.output_dir or _default_dir(config, ""), overwrite))
        run_dir = Path(config.output_dir)
        if distributed.is_main():
            if overwrite:
                shutil.rmtree(run_dir / PRETRAINED_DIR, ignore_errors=True)
            elif (run_dir / PRETRAINED_DIR).exists():
                raise CheckpointError(f"{run_dir / PRETRAINED_DIR} holds a language model of an earlier run; pass "
                                      f"--overwrite to start again, or continue it with --resume {run_dir}")
        return _pretrain_then_train(config, device, run_dir, progress, hooks)


def pretrain(config: Config, overwrite: bool = False, progress: bool = True,
             hooks: Sequence[Hook] = ()) -> PretrainResult:
    """Train a language model over the embedding and encoder ``config`` describes and write its run directory
    (``config.output_dir``, default runs/lm-<cell>-<time>); ``seqnlp train --init-from`` starts from it."""
    preflight(config)
    check_pretraining(config)
    config = copy.deepcopy(config)
    with session(config) as device, contextlib.ExitStack() as writer:
        seed_everything(config.seed)
        config.output_dir = distributed.from_main(
            lambda: claim(writer, config.output_dir or _default_dir(config, "lm-"), overwrite))
        setup = prepare(config, device, Path(config.output_dir), overwrite=overwrite, language_model=True)
        return fit_and_finish(setup, TrainingState(), progress, hooks, end=finish_pretraining)


def resume(run_dir: str | Path, progress: bool = True,
           hooks: Sequence[Hook] = ()) -> TrainResult | PretrainResult:
    """Continue an interrupted run from its last checkpoint: a classifier, a language model, or a recipe stopped
    in its language-model stage (which is finished first, then the classifier trained)."""
    run_dir = check_run_dir(run_dir)
    if is_language_model_run(run_dir):
        return resume_pretraining(run_dir, progress, hooks)
    lm_dir = run_dir / PRETRAINED_DIR
    if has_training_state(run_dir) or not is_language_model_run(lm_dir):
        return run.resume(run_dir, progress=progress, hooks=hooks)
    config = _saved_config(lm_dir)  # the recipe's config, saved as given by its language-model stage
    preflight(config, resuming=True)
    with session(config) as device, contextlib.ExitStack() as writer:
        distributed.from_main(lambda: claim(writer, str(run_dir), overwrite=None))
        return _pretrain_then_train(config, device, run_dir, progress, hooks)


def resume_pretraining(run_dir: str | Path, progress: bool = True, hooks: Sequence[Hook] = ()) -> PretrainResult:
    """Continue an interrupted language-model run (``pretrain``'s) from its last checkpoint."""
    run_dir = check_run_dir(run_dir)
    if not is_language_model_run(run_dir):
        raise CheckpointError(f"{run_dir} is not a language model's run directory (it has no pretraining.json); "
                              "a classifier resumes with seqnlp train --resume")
    config = _saved_config(run_dir)
    preflight(config, resuming=True)
    with session(config) as device, contextlib.ExitStack() as writer:
        distributed.from_main(lambda: claim(writer, str(run_dir), overwrite=None))
        return _language_model_stage(config, device, run_dir, progress, hooks, resuming=True)


def _pretrain_then_train(config: Config, device: torch.device, run_dir: Path, progress: bool,
                         hooks: Sequence[Hook]) -> TrainResult:
    """The language-model stage (resumed, or skipped when it finished), then the classifier from it."""
    _language_model_stage(config, device, run_dir / PRETRAINED_DIR, progress, ())
    seed_everything(config.seed)  # the classifier's stage starts as a run of its own would
    # RUN_DIR holds the language model (and, after a crash, maybe the classifier's first files): keep the former.
    setup = prepare(config, device, run_dir, overwrite=True)
    return fit_and_finish(setup, TrainingState(), progress, hooks)


def _language_model_stage(config: Config, device: torch.device, lm_dir: Path, progress: bool,
                          hooks: Sequence[Hook], resuming: bool = False) -> PretrainResult:
    """Train the language model into ``lm_dir``, or continue it from its checkpoint; a finished one (results.json)
    is reported as it stands unless ``resuming`` asks to run its loop again (which then ends at once)."""
    if not resuming and (lm_dir / RESULTS_FILE).is_file():
        results = read_json(lm_dir / RESULTS_FILE)
        log.info("language model already trained in %s (validation perplexity %.2f)", lm_dir,
                 results["validation"]["perplexity"])
        return PretrainResult(lm_dir, results["best_epoch"], results["validation"])
    if has_training_state(lm_dir):
        tokenizer = load_tokenizer(lm_dir / TOKENIZER_FILE)
        setup = prepare(config, device, lm_dir, tokenizer=tokenizer, label_names=read_json(lm_dir / LABELS_FILE),
                        language_model=True)
        state = restore(setup)
    elif resuming:
        raise CheckpointError(f"cannot resume {lm_dir}: it has no checkpoint (was it trained with seqnlp?)")
    else:
        seed_everything(config.seed)
        setup = prepare(config, device, lm_dir, overwrite=True, language_model=True)
        state = TrainingState()
    return fit_and_finish(setup, state, progress, hooks, end=finish_pretraining)


def _saved_config(run_dir: Path) -> Config:
    for name in (CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE):
        if not (run_dir / name).is_file():
            raise CheckpointError(f"cannot resume {run_dir}: {name} is missing")
    return config_from_dict(read_config_file(run_dir / CONFIG_FILE))


def _default_dir(config: Config, prefix: str) -> str:
    return f"runs/{prefix}{config.model.cell}-{datetime.now():%Y%m%d-%H%M%S}"
