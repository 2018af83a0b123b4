"""The search space: the default one, YAML files laid over it, every check before a trial runs, and sampling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seqnlp.config import Config, load_config
from seqnlp.errors import ConfigError
from seqnlp.tune.space import Choice, Range, SearchSpace, default_space, load_space, space_from_data

ISSUE_KEYS = {  # what issue 19 asks the default space to search
    "model.cell", "model.hidden_size", "model.num_layers", "model.bidirectional", "model.pooling", "train.lr",
    "model.dropout", "model.embedding_dropout", "train.weight_decay", "tokenizer.max_length", "tokenizer.kind",
    "tokenizer.vocab_size",
}


def test_the_default_space_searches_what_the_issue_lists_and_passes_its_own_checks() -> None:
    space = load_space(None, Config())
    assert set(space.params) == ISSUE_KEYS
    assert isinstance(space.params["train.lr"], Range) and space.params["train.lr"].log
    assert space.params["model.hidden_size"].kind is int  # type: ignore[union-attr]


def test_max_length_is_searched_around_the_configs_own_value() -> None:
    base = load_config(updates={"tokenizer.max_length": 64})
    assert default_space(base).params["tokenizer.max_length"] == Choice((32, 64, 128))


def test_a_file_is_laid_over_the_default_space(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("model.cell: [gru]\nmodel.pooling: null\nmodel.embedding_dim: {low: 32, high: 256, log: true}\n")
    space = load_space(path, Config())
    assert space.params["model.cell"] == Choice(("gru",))
    assert "model.pooling" not in space.params
    assert space.params["model.embedding_dim"] == Range(int, 32, 256, log=True)
    assert len(space.params) == len(ISSUE_KEYS)  # one dropped, one added


def test_defaults_false_keeps_only_the_files_keys() -> None:
    space = space_from_data({"defaults": False, "train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}, Config())
    assert list(space.params) == ["train.lr"]
    assert space.params["train.lr"] == Range(float, 1e-4, 1e-2, log=True)


def test_a_step_range_and_an_optional_int_field() -> None:
    space = space_from_data({"defaults": False, "model.dropout": {"low": 0.0, "high": 0.5, "step": 0.1},
                             "train.patience": {"low": 1, "high": 4}}, Config())
    assert space.params["model.dropout"] == Range(float, 0.0, 0.5, step=0.1)
    assert space.params["train.patience"] == Range(int, 1, 4)  # Optional[int]: a range of ints


@pytest.mark.parametrize("raw, message", [
    ({"model.hiden_size": [64]}, "unknown config key 'model.hiden_size'; valid keys in model: cell"),
    ({"modle.cell": ["gru"]}, "unknown config key 'modle.cell'; valid keys: data"),
    ({"model": [1]}, "model is a section"),
    ({"model.cell.x": [1]}, "model.cell is a value, not a section"),
    ({"defaults": False}, "the search space is empty"),
    ({"defaults": False, "model.cell": None}, "the search space is empty"),
    ({"defaults": "no"}, "defaults: expected true or false"),
    ({"model.cell": []}, "model.cell: the list of choices is empty"),
    ({"model.cell": ["lstm", "cnn"]}, "model.cell: 'cnn' is not one of rnn, lstm, gru"),
    ({"model.cell": ["lstm", "lstm"]}, "model.cell: a choice is listed twice"),
    ({"data.text_columns": [["a", "b"]]}, "data.text_columns: a choice must be a number, string"),
    ({"model.hidden_size": 64}, "model.hidden_size: give a list of choices"),
    ({"model.cell": {"low": 1, "high": 2}}, "model.cell is not a number; give its choices as a list"),
    ({"model.hidden_size": {"low": 64}}, "model.hidden_size: high must be an integer, got None"),
    ({"model.hidden_size": {"low": 64, "high": 100.5}}, "model.hidden_size: high must be an integer"),
    ({"model.hidden_size": {"low": 64, "high": 32}}, "low (64) must be below high (32)"),
    ({"model.hidden_size": {"low": 0, "high": 32}}, "model.hidden_size: 0 must be >= 1"),
    ({"model.dropout": {"low": 0.0, "high": 1.0}}, "model.dropout: 1.0 must be in [0, 1)"),
    ({"train.lr": {"low": 0.0, "high": 0.1, "log": True}}, "train.lr: a log scale needs low > 0"),
    ({"train.lr": {"low": 0.1, "high": 0.2, "log": "yes"}}, "train.lr: log must be true or false"),
    ({"train.lr": {"low": 0.1, "high": 0.2, "lgo": True}}, "train.lr: unknown range field 'lgo'"),
    ({"model.num_layers": {"low": 1, "high": 4, "log": True, "step": 1}}, "give log or step, not both"),
    ({"model.num_layers": {"low": 1, "high": 4, "step": 0}}, "step must be a positive integer"),
    ({"model.dropout": {"low": 0.0, "high": 0.5, "step": 0.2}}, "must be a whole number of steps of 0.2"),
    ({"output_dir": ["a", "b"]}, "output_dir is set by tune itself"),
])
def test_a_bad_space_is_one_line_naming_the_file_and_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        space_from_data(raw, Config(), "space.yaml")
    assert str(info.value).startswith("space.yaml: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("[a, b]", "expected a mapping of dotted config keys"),
    ("model.cell: [gru\n", "is not valid YAML"),
])
def test_a_bad_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_space(path, Config())


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="search space file .*nope.yaml does not exist"):
        load_space(tmp_path / "nope.yaml", Config())


def test_sampled_values_stay_inside_the_space_and_have_the_fields_types() -> None:
    optuna = pytest.importorskip("optuna")
    space = load_space(None, Config())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        values = space.sample(study.ask())
        config = load_config(updates=values)  # every sample is a valid config
        assert config.model.cell in ("rnn", "lstm", "gru")
        assert isinstance(values["model.hidden_size"], int) and 32 <= values["model.hidden_size"] <= 256
        assert isinstance(values["model.num_layers"], int) and 1 <= values["model.num_layers"] <= 2
        assert 3e-4 <= values["train.lr"] <= 1e-2
        assert values["tokenizer.max_length"] in (128, 256, 512)


def test_cheapest_takes_low_ends_no_second_direction_and_the_first_cell() -> None:
    cheapest = load_space(None, Config()).cheapest()
    assert cheapest["model.hidden_size"] == 32 and cheapest["model.num_layers"] == 1
    assert cheapest["model.bidirectional"] is False
    assert cheapest["model.cell"] == "rnn"
    assert cheapest["tokenizer.max_length"] == 128
    load_config(updates=cheapest)


def test_plain_data_round_trips() -> None:
    space = load_space(None, Config())
    again = space_from_data({"defaults": False, **space.to_data()}, Config())
    assert again == space
    assert isinstance(again, SearchSpace)


def test_the_configs_own_values_when_the_space_holds_them() -> None:
    space = space_from_data({"defaults": False, "model.hidden_size": {"low": 64, "high": 256},
                             "model.bidirectional": [True], "model.dropout": {"low": 0.1, "high": 0.5, "step": 0.1}},
                            Config())
    assert space.values_of(Config()) == {"model.hidden_size": 128, "model.bidirectional": True, "model.dropout": 0.3}
    assert space.values_of(load_config(updates={"model.hidden_size": 512})) is None  # above the range
    assert space.values_of(load_config(updates={"model.dropout": 0.25})) is None  # between two steps
    assert space.values_of(load_config(updates={"model.bidirectional": False})) is None  # not a choice
    assert load_space(None, Config()).values_of(Config()) is not None  # the defaults lie inside the default space
