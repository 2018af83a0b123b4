"""The budget: durations in and out, the data surveyed once, one epoch of the cheapest model timed, and a budget
too small for one trial refused."""

from __future__ import annotations

from typing import Callable

import pytest

from seqnlp.config import Config
from seqnlp.errors import ConfigError
from seqnlp.tune.budget import Floor, Survey, check_budget, format_duration, parse_duration, survey, trial_floor


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("20m", 1200), ("1.5h", 5400), ("1h30m", 5400), ("2d", 172800), (" 1m 30s ", 90), (".5m", 30),
    ("20M", 1200),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, message", [
    ("20", "give a number with a unit"), ("", "is not a duration"), ("20 minutes", "is not a duration"),
    ("m", "is not a duration"), ("0s", "must be longer than 0 seconds"), ("-5m", "is not a duration"),
])
def test_parse_duration_refuses_what_it_would_have_to_guess(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_duration(text)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45.4, "45s"), (725, "12m05s"), (3725, "1h02m"), (-3, "0s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_survey_reads_the_data_as_training_will(make_base: Callable[..., Config]) -> None:
    found = survey(make_base())
    assert (found.train_examples, found.validation_examples) == (160, 40)  # 20% carved for validation
    assert found.monitor == "accuracy"  # auto on balanced classes
    assert found.load_seconds > 0 and found.train is not None and len(found.train) == 160


def test_the_floor_prepares_the_data_for_real_and_times_an_epoch(make_base: Callable[..., Config]) -> None:
    base = make_base()
    found = survey(base)
    floor = trial_floor(base, found)
    assert floor is not None and floor.prepare_seconds > found.load_seconds and floor.epoch_seconds > 0
    assert floor.total == floor.prepare_seconds + floor.epoch_seconds


def test_a_stream_of_unknown_size_has_no_floor(make_base: Callable[..., Config]) -> None:
    assert trial_floor(make_base(), Survey(None, 10, "accuracy", 1.0)) is None


def test_a_budget_below_the_cheapest_first_epoch_is_refused() -> None:
    found = Survey(67349, 872, "accuracy", 10.0)
    check_budget(600, Floor(30.0, 90.0), found)
    check_budget(None, Floor(30.0, 90.0), found)
    check_budget(10, None, found)
    with pytest.raises(ConfigError) as info:
        check_budget(100, Floor(30.0, 90.0), found)
    message = str(info.value)
    assert message.startswith("--budget 1m40s is too small for one trial: the smallest model in the search space "
                              "needs about 2m00s here to end its first epoch (30s to read and tokenize 67,349 "
                              "training texts, 1m30s per epoch); give --budget 6m00s or more")
    with pytest.raises(ConfigError, match="too small for one trial: the first trial needs about 2m00s"):
        check_budget(100, Floor(30.0, 90.0), found, "the first trial")
