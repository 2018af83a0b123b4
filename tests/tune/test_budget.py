"""The budget: durations in and out, the data surveyed once, one epoch of the cheapest model timed, and a budget
too small for one trial refused."""

from __future__ import annotations

from typing import Callable

import pytest

from seqnlp.config import Config
from seqnlp.errors import ConfigError
from seqnlp.tune.budget import Survey, check_budget, epoch_seconds, format_duration, parse_duration, survey


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
    assert 3 < found.words_per_text < 14 and found.distinct_words > 10


def test_one_epoch_is_timed_on_the_cheapest_model(make_base: Callable[..., Config]) -> None:
    base = make_base()
    seconds = epoch_seconds(base, survey(base))
    assert seconds is not None and seconds > 0


def test_a_stream_of_unknown_size_is_not_timed(make_base: Callable[..., Config]) -> None:
    assert epoch_seconds(make_base(), Survey(None, 10, 5.0, 100, "accuracy")) is None


def test_a_budget_below_one_epoch_of_the_cheapest_model_is_refused() -> None:
    found = Survey(67349, 872, 10.0, 14000, "accuracy")
    check_budget(600, 120.0, found)
    check_budget(None, 120.0, found)
    check_budget(10, None, found)
    with pytest.raises(ConfigError) as info:
        check_budget(30, 120.0, found)
    message = str(info.value)
    assert "--budget 30s is too small for one trial" in message and "about 2m00s here (67,349 training texts)" in message
    assert "give --budget 6m00s or more" in message
