#!/usr/bin/env python
"""Which pruner fits a few epochs per trial: replay the learning curves of an unpruned study under each pruner.

Run a study without pruning (``seqnlp tune --pruner none``), then::

    python scripts/tune_pruners.py runs/tune-nopruner --orders 200
    python scripts/tune_pruners.py runs/a runs/b        # the complete trials of several studies of the same data

Every complete trial's validation curve (one value per epoch, from the study) is fed, trial after trial, to a fresh
in-memory study with the pruner under test, exactly as ``seqnlp tune``'s hook reports it; a pruned trial costs the
epochs it ran (at its own measured seconds per epoch), a complete one all of them. Since the order of trials
changes what the pruners compare with, the replay is repeated over ``--orders`` random orders. Per pruner it
prints the share of the unpruned time spent, the trials pruned, how often the study's best trial survives, and the
best value the pruned study keeps. What it cannot show: the trials a live study would add with the time saved.
"""

from __future__ import annotations

import argparse
import random
import statistics
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from seqnlp.tune.study import STUDY_DB, SQLITE_STUDY_NAME, make_pruner

PRUNERS: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "median (seqnlp: 3 startup trials)": lambda epochs: make_pruner("median", epochs)[1],
    "median, 1 warm-up epoch": lambda epochs: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    "successive halving, eta 3": lambda epochs: make_pruner("halving", epochs)[1],
    "successive halving, eta 2": lambda epochs: optuna.pruners.SuccessiveHalvingPruner(min_resource=1,
                                                                                       reduction_factor=2),
    "hyperband, eta 3": lambda epochs: make_pruner("hyperband", epochs)[1],
}


def replay(curves: list[FrozenTrial], pruner: optuna.pruners.BasePruner, direction: str) -> tuple[float, int, float]:
    """Seconds spent, trials pruned and the best complete value, replaying ``curves`` in order."""
    study = optuna.create_study(direction=direction, pruner=pruner)
    spent, pruned, values = 0.0, 0, []
    for recorded in curves:
        trial = study.ask()
        per_epoch = recorded.user_attrs["seconds"] / max(len(recorded.intermediate_values), 1)
        for epoch, value in sorted(recorded.intermediate_values.items()):
            trial.report(value, epoch)
            spent += per_epoch
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                pruned += 1
                break
        else:
            study.tell(trial, recorded.value)
            values.append(recorded.value)
    pick = min if direction == "minimize" else max
    return spent, pruned, pick(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study_dirs", nargs="+", help="study directories (their complete trials are pooled)")
    parser.add_argument("--orders", type=int, default=200, help="random trial orders replayed per pruner")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    curves, direction, epochs = load_curves(args.study_dirs)
    total = sum(t.user_attrs["seconds"] for t in curves)
    best = (min if direction == "minimize" else max)(t.value for t in curves)
    print(f"{len(curves)} complete trials, {sum(len(t.intermediate_values) for t in curves)} epochs, "
          f"{total:.0f} s unpruned; best {best:.4f}; {args.orders} random orders\n")
    print("| pruner | time spent (of unpruned) | trials pruned | best trial kept | best value kept: mean | worst order |")
    print("| --- | --- | --- | --- | --- | --- |")
    rng = random.Random(0)
    orders = [rng.sample(curves, len(curves)) for _ in range(args.orders)]
    for name, make in PRUNERS.items():
        results = [replay(order, make(epochs), direction) for order in orders]
        spent = statistics.mean(r[0] for r in results) / total
        pruned = statistics.mean(r[1] for r in results)
        kept = statistics.mean(r[2] == best for r in results)
        values = [r[2] for r in results]
        worst = min(values) if direction == "maximize" else max(values)
        print(f"| {name} | {spent:.0%} | {pruned:.1f} of {len(curves)} | {kept:.0%} of orders | "
              f"{statistics.mean(values):.4f} | {worst:.4f} |")


def load_curves(study_dirs: list[str]) -> tuple[list[FrozenTrial], str, int]:
    """The complete trials of every study, in order, with the first study's direction and epochs."""
    curves, direction, epochs = [], "maximize", 1
    for index, study_dir in enumerate(study_dirs):
        storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir}/{STUDY_DB}")
        try:
            study = optuna.load_study(storage=storage, study_name=SQLITE_STUDY_NAME)
            curves += [t for t in study.trials if t.state == TrialState.COMPLETE and t.intermediate_values]
            if index == 0:
                direction = study.direction.name.lower()
                epochs = int(study.user_attrs["seqnlp"]["config"]["train"]["epochs"])
        finally:
            storage.engine.dispose()
    return curves, direction, epochs


if __name__ == "__main__":
    main()
