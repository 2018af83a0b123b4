"""``seqnlp tune``: a hyper-parameter search in a time budget, then one call to ``seqnlp.tune.tune`` (or
``resume_tune``)."""

from __future__ import annotations

from typing import Any, Optional

import click

from seqnlp.cli.options import config_options, data_options, data_updates, handle_errors, quiet_datasets
from seqnlp.config import load_config

PRUNERS = ("median", "halving", "hyperband", "none")  # seqnlp.tune.study.PRUNERS, without importing Optuna


@click.command()
@config_options("for every trial, e.g. train.num_threads=1", "YAML or JSON config file every trial starts from.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False),
              help="Study directory [default: runs/tune-<time>]; a study already there with the same settings "
                   "is joined.")
@data_options
@click.option("--budget", metavar="DURATION", help="Wall-clock time for this process: 90s, 20m, 1.5h, 1h30m.")
@click.option("--trials", type=click.IntRange(min=1), help="Stop once the study has this many finished trials.")
@click.option("--space", "space_file", type=click.Path(dir_okay=False),
              help="YAML search space laid over the default one (dotted keys: lists or {low, high, log, step}).")
@click.option("--pruner", type=click.Choice(PRUNERS), default="median", show_default=True,
              help="Stops poor trials early, on each epoch's validation metric.")
@click.option("--storage", metavar="URL",
              help="Optuna RDB URL (postgresql://..., mysql+pymysql://...) to share the study between machines "
                   "[default: sqlite in the study directory].")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Continue the study in DIR with its own settings; lost trials are retried.")
@click.pass_context
@handle_errors
def tune(ctx: click.Context, config_file: Optional[str], overrides: tuple[str, ...], output_dir: Optional[str],
         dataset: Optional[str], data_files: tuple[str, ...], text_columns: tuple[str, ...],
         label_column: Optional[str], budget: Optional[str], trials: Optional[int], space_file: Optional[str],
         pruner: str, storage: Optional[str], resume_dir: Optional[str]) -> None:
    """Search hyper-parameters with Optuna (TPE, pruning) and write the best config.

    Every trial is an ordinary training run of the config with sampled values (default space: cell, hidden
    size, layers, direction, pooling, learning rate, dropouts, weight decay, max_length, tokenizer kind and
    vocabulary size), in OUTPUT_DIR/trials/; the first one is the config's own values. Poor trials are pruned
    after an epoch. A budget too short for the first trial's first epoch is refused. The study lives in
    OUTPUT_DIR/study.db: --resume continues it after a kill, and several processes given the same -o share
    it. OUTPUT_DIR gets best.yaml (for seqnlp train -c), trials.csv, trials.md, history.png and
    importance.png, and a link to the best run. See docs/tuning.md.

    \b
    Examples:
      seqnlp tune --budget 20m --set train.num_threads=1                  # the embedded SMS data
      seqnlp tune -c configs/sst2.yaml --budget 1h -o runs/tune-sst2
      seqnlp tune -c configs/sst2.yaml --budget 1h -o runs/tune-sst2 &    # a second process joins the study
      seqnlp tune --resume runs/tune-sst2                                 # after a kill: the budget left
      seqnlp tune -c configs/imdb.yaml --space space.yaml --trials 30 --pruner hyperband
      seqnlp train -c runs/tune-sst2/best.yaml -o runs/sst2-best
    """
    from seqnlp.tune.budget import parse_duration

    seconds = parse_duration(budget) if budget is not None else None
    if resume_dir is not None:
        _forbid_with_resume(ctx)
        from seqnlp.tune import resume_tune

        quiet_datasets(ctx)
        _echo_result(resume_tune(resume_dir, budget=seconds, trials=trials, storage=storage))
        return
    config = load_config(config_file, overrides, data_updates(dataset, data_files, text_columns, label_column))
    from seqnlp.tune import tune as run_tune

    quiet_datasets(ctx)
    _echo_result(run_tune(config, space=space_file, budget=seconds, trials=trials, output_dir=output_dir, pruner=pruner,
                          storage=storage))


def _forbid_with_resume(ctx: click.Context) -> None:
    """--resume runs the study's own settings: only --budget, --trials and --storage may come with it."""
    allowed = {"resume_dir", "budget", "trials", "storage"}
    for param in ctx.command.params:
        if param.name not in allowed and \
                ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE:  # type: ignore[arg-type]
            flag = next((o for o in param.opts if o.startswith("--")), param.opts[0])
            raise click.UsageError(f"--resume continues with the study's own settings; drop {flag}")


def _echo_result(result: Any) -> None:
    """The trials by state, the best trial, where its config and run are; exit 1 when no trial completed."""
    counts = ", ".join(f"{n} {state}" for state, n in result.counts.items()) or "none"
    click.echo(f"Trials: {counts}")
    if result.best is None:  # nothing to train: a script must not go on to `train -c best.yaml`
        click.echo(f"Error: no trial completed; see {result.output_dir / 'trials.md'}, and continue with "
                   f"seqnlp tune --resume {result.output_dir} --budget ...", err=True)
        click.get_current_context().exit(1)
    best = result.best
    from seqnlp.tune.objective import describe

    click.echo(f"Best trial {best.number}: validation {result.metric} {best.value:.4f}  ({describe(best.params)})")
    click.echo(f"Best config: {result.files.get('best.yaml')}   Best run: {best.user_attrs.get('run_dir')}")
    click.echo(f"Report: {result.output_dir}  ({', '.join(sorted(result.files))})")
    click.echo(f"Next: seqnlp train -c {result.files.get('best.yaml')} -o runs/best")
