"""Config: defaults, YAML/JSON files, dotted overrides, typed updates, validation messages, save -> load."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path

import pytest
import yaml

from seqnlp.config import (
    config_from_dict,
    CHOICES,
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
    get_value,
    load_config,
    read_config_file,
    validate,
)
from seqnlp.errors import ConfigError

SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# --- defaults and files ---------------------------------------------------------------------------------------


def test_defaults_validate_and_match_the_dataclasses() -> None:
    config = load_config()
    validate(config)  # must not raise
    assert config == Config()
    assert config.model.cell == "lstm"
    assert config.data.text_columns == ["text"]
    assert config.train.lr == pytest.approx(2e-3)


def test_defaults_do_not_share_mutable_state() -> None:
    first, second = load_config(), load_config()
    first.data.text_columns.append("body")
    first.data.data_files["train"] = "x.csv"
    assert second.data.text_columns == ["text"]
    assert second.data.data_files == {}


def test_yaml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "model:\n  cell: gru\n  hidden_size: 64\n"
        "train:\n  lr: 1e-3\n  max_grad_norm: null\n"
        "data:\n  text_columns: [title, body]\n  data_files: {train: a.csv}\n"
        "seed: 7\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.model.cell == "gru"
    assert config.model.hidden_size == 64
    assert config.train.lr == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string; it must become a float
    assert isinstance(config.train.lr, float)
    assert config.train.max_grad_norm is None
    assert config.data.text_columns == ["title", "body"]
    assert config.data.data_files == {"train": str(tmp_path / "a.csv")}  # read from the config file's folder
    assert config.seed == 7
    assert config.model.num_layers == ModelConfig().num_layers  # untouched keys keep their defaults


def test_json_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"tokenizer": {"kind": "bpe", "vocab_size": 500}, "train": {"epochs": 2}}))
    config = load_config(path)
    assert config.tokenizer.kind == "bpe"
    assert config.tokenizer.vocab_size == 500
    assert config.train.epochs == 2


def test_empty_file_and_empty_section_give_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == Config()
    section = tmp_path / "section.yaml"
    section.write_text("model:\n")
    assert load_config(section) == Config()


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)


def test_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: 3\n")
    with pytest.raises(ConfigError, match=r"model: expected a mapping"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_malformed_yaml_and_json(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML/JSON"):
        load_config(bad_yaml)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("model:\n  cell: gru\n")  # YAML, but the .json suffix asks for JSON
    with pytest.raises(ConfigError, match="not valid YAML/JSON"):
        load_config(bad_json)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"model:\n  cell: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_config_file(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path)):
        load_config(tmp_path)


# --- dotted overrides and updates -----------------------------------------------------------------------------


def test_overrides_are_parsed_as_yaml_and_coerced() -> None:
    config = load_config(
        overrides=[
            "model.cell=gru",
            "train.lr=1e-3",
            "data.text_columns=[title, body]",
            "train.max_grad_norm=null",
            "model.bidirectional=false",
            "train.epochs=3",
            "data.label_names=[neg, pos]",
        ]
    )
    assert config.model.cell == "gru"
    assert config.train.lr == pytest.approx(1e-3)
    assert isinstance(config.train.lr, float)
    assert config.data.text_columns == ["title", "body"]
    assert config.train.max_grad_norm is None
    assert config.model.bidirectional is False
    assert config.train.epochs == 3
    assert config.data.label_names == ["neg", "pos"]


def test_override_whitespace_and_later_wins() -> None:
    config = load_config(overrides=[" model.cell = gru", "model.cell=rnn"])
    assert config.model.cell == "rnn"


@pytest.mark.parametrize("item, expected", [("data.text_separator==", "="), ("data.text_separator=a=b", "a=b")])
def test_override_splits_on_the_first_equals_sign(item: str, expected: str) -> None:
    assert load_config(overrides=[item]).data.text_separator == expected


def test_single_string_becomes_a_one_item_list() -> None:
    assert load_config(overrides=["data.text_columns=body"]).data.text_columns == ["body"]


def test_int_field_accepts_integral_float() -> None:
    config = load_config(overrides=["train.epochs=4.0"])
    assert config.train.epochs == 4
    assert type(config.train.epochs) is int


def test_whole_section_override_from_a_mapping() -> None:
    config = load_config(overrides=["model={cell: gru, hidden_size: 8}"])
    assert config.model.cell == "gru"
    assert config.model.hidden_size == 8
    assert config.model.pooling == ModelConfig().pooling


def test_updates_mapping_is_applied_after_overrides() -> None:
    config = load_config(
        overrides=["model.cell=gru", "train.epochs=3"],
        updates={"model.cell": "rnn", "data.data_files": {"train": "a.csv"}, "train.patience": None},
    )
    assert config.model.cell == "rnn"
    assert config.train.epochs == 3
    assert config.data.data_files == {"train": "a.csv"}
    assert config.train.patience is None


def test_base_is_copied_not_mutated() -> None:
    base = Config()
    config = load_config(base=base, overrides=["model.cell=gru", "data.text_columns=[a, b]"])
    assert config.model.cell == "gru"
    assert base.model.cell == "lstm"
    assert base.data.text_columns == ["text"]


def test_base_and_path_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        load_config(tmp_path / "c.yaml", base=Config())


@pytest.mark.parametrize("item", ["model.cell", "model.cell gru", "=gru", "  =x"])
def test_malformed_override(item: str) -> None:
    with pytest.raises(ConfigError, match="section.key=value") as info:
        load_config(overrides=[item])
    assert repr(item) in str(info.value)


def test_string_override_keeps_its_literal_text() -> None:
    assert load_config(overrides=["data.revision=1.10"]).data.revision == "1.10"


# --- unknown keys and bad values ------------------------------------------------------------------------------


def test_unknown_top_level_key_names_it_and_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["modle.cell=gru"])
    message = str(info.value)
    assert "'modle'" in message
    for name in field_names(Config):
        assert name in message


def test_unknown_top_level_key_in_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="'optimizer'") as info:
        load_config(path)
    for name in field_names(Config):
        assert name in str(info.value)


@pytest.mark.parametrize("section, cls", SECTIONS.items())
def test_unknown_key_in_section_names_it_and_lists_that_sections_keys(section: str, cls: type) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[f"{section}.no_such_key=1"])
    message = str(info.value)
    assert f"'{section}.no_such_key'" in message
    assert f"valid keys in {section}" in message
    for name in field_names(cls):
        assert name in message


def test_unknown_key_in_section_from_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  cel: gru\n")
    with pytest.raises(ConfigError, match=r"'model\.cel'") as info:
        load_config(path)
    for name in field_names(ModelConfig):
        assert name in str(info.value)


def test_unknown_key_in_updates() -> None:
    with pytest.raises(ConfigError, match=r"'train\.learning_rate'"):
        load_config(updates={"train.learning_rate": 0.1})


def test_key_below_a_value_is_rejected() -> None:
    with pytest.raises(ConfigError, match="seed is a value, not a section"):
        load_config(overrides=["seed.x=1"])


def test_section_set_to_a_value_is_rejected() -> None:
    with pytest.raises(ConfigError, match="a section needs a mapping"):
        load_config(overrides=["model=3"])


def test_bad_choice_lists_the_valid_choices() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["model.cell=transformer"])
    message = str(info.value)
    assert "model.cell" in message
    assert "'transformer'" in message
    for cell in ("rnn", "lstm", "gru"):
        assert cell in message


@pytest.mark.parametrize("key, choices", CHOICES.items())
def test_choice_keys_are_real_keys_and_every_choice_validates(key: str, choices: tuple[str, ...]) -> None:
    section, name = key.split(".")
    assert section in field_names(Config)
    assert dataclasses.is_dataclass(getattr(Config(), section))
    assert name in field_names(type(getattr(Config(), section)))
    assert get_value(Config(), key) in choices  # the default is itself a valid choice
    for choice in choices:
        assert get_value(load_config(updates={key: choice}), key) == choice
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(updates={key: "definitely-not-a-choice"})


def test_choices_are_read_from_the_literal_types() -> None:
    import typing

    from seqnlp import config as config_module

    assert config_module.CELLS == ("rnn", "lstm", "gru") and CHOICES["model.cell"] == config_module.CELLS
    for section, cls in {**SECTIONS, "tokenizer": type(Config().tokenizer)}.items():
        for name, tp in typing.get_type_hints(cls).items():
            if typing.get_origin(tp) is typing.Literal:
                assert CHOICES[f"{section}.{name}"] == typing.get_args(tp)


def test_a_bad_choice_in_a_file_can_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  cell: transformer\n")
    with pytest.raises(ConfigError, match="model.cell: 'transformer' is not one of rnn, lstm, gru"):
        load_config(path)
    assert load_config(path, overrides=["model.cell=gru"]).model.cell == "gru"


def test_an_override_can_repair_a_file_that_combines_clashing_keys(tmp_path: Path) -> None:
    """Validation runs once, after the file, the overrides and the updates: --set can fix what the file got wrong."""
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  streaming: true\ntrain:\n  sampler: weighted\n")
    with pytest.raises(ConfigError, match="train.sampler: weighted .* cannot read a stream"):
        load_config(path)
    config = load_config(path, overrides=["data.streaming=false"])
    assert config.data.streaming is False and config.train.sampler == "weighted"
    assert load_config(path, updates={"train.sampler": "bucket"}).data.streaming is True


def test_load_config_validates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqnlp.config import rules

    calls: list[Config] = []
    original = rules.validate
    monkeypatch.setattr(rules, "validate", lambda config: calls.append(config) or original(config))
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  cell: gru\n")
    load_config(path, overrides=["train.epochs=2"], updates={"seed": 3})
    assert len(calls) == 1


def test_config_imports_no_other_seqnlp_module() -> None:
    """Pure config: yaml, the standard library and seqnlp.errors (so loading a config never imports torch)."""
    import ast

    imported: set[str] = set()
    for path in (Path(__file__).resolve().parents[1] / "seqnlp" / "config").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {m for m in imported if m.startswith("seqnlp") and not m.startswith("seqnlp.config")} == {"seqnlp.errors"}


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.epochs=abc", "train.epochs: expected an integer, got 'abc'"),
        ("train.epochs=2.5", "train.epochs: expected an integer"),
        ("model.num_layers=true", "model.num_layers: expected an integer"),
        ("train.lr=abc", "train.lr: expected a number, got 'abc'"),
        ("train.lr=true", "train.lr: expected a number"),
        ("model.bidirectional=3", "model.bidirectional: expected true or false"),
        ("model.cell=[gru]", "model.cell: expected a string"),
        ("data.text_columns={a: 1}", "data.text_columns: expected a list"),
        ("data.data_files=[a.csv]", "data.data_files: expected a mapping"),
        ("data.text_separator=", "data.text_separator: expected a string, got None"),
    ],
)
def test_wrong_types_name_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("model.bidirectional", "yes", "expected true or false, got 'yes'"),
        ("model.bidirectional", 1, "expected true or false"),
        ("train.epochs", "3", "expected an integer, got '3'"),
        ("train.lr", None, "expected a number, got None"),
        ("data.text_columns", None, "expected a list"),
    ],
)
def test_wrong_types_in_updates(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        load_config(updates={key: value})
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.dropout=1.5", "model.dropout: 1.5 must be in [0, 1)"),
        ("model.dropout=-0.1", "model.dropout: -0.1 must be in [0, 1)"),
        ("model.embedding_dropout=1.0", "model.embedding_dropout: 1.0 must be in [0, 1)"),
        ("train.epochs=0", "train.epochs: 0 must be >= 1 and <= 100000"),
        ("train.lr=0", "train.lr: 0.0 must be > 0 and finite"),
        ("train.lr=-1e-3", "train.lr: -0.001 must be > 0 and finite"),
        ("train.lr=.inf", "train.lr: inf must be > 0 and finite"),
        ("train.max_grad_norm=0", "train.max_grad_norm: 0.0 must be > 0 and finite"),
        ("train.patience=0", "train.patience: 0 must be >= 1 and <= 100000"),
        ("tokenizer.vocab_size=2", "tokenizer.vocab_size: 2 must be >= 3 and <= 10000000"),
        ("tokenizer.max_length=0", "tokenizer.max_length: 0 must be >= 1 and <= 1000000"),
        ("data.max_train_samples=0", "data.max_train_samples: 0 must be >= 1 and <= 1000000000000"),
        ("data.text_columns=[]", "data.text_columns: name at least one text column"),
        ("tokenizer.vocab_size=20000000", "tokenizer.vocab_size: 20000000 must be >= 3 and <= 10000000"),
        # Issue 14: every integer key has an upper bound too, and numbers must be finite.
        ("seed=99999999999999999999999", "seed: 99999999999999999999999 must be >= 0 and <= 4294967295"),
        ("seed=-1", "seed: -1 must be >= 0 and <= 4294967295"),
        ("model.hidden_size=100000", "model.hidden_size: 100000 must be >= 1 and <= 65536"),
        ("model.num_layers=100000", "model.num_layers: 100000 must be >= 1 and <= 64"),
        ("train.batch_size=10000000", "train.batch_size: 10000000 must be >= 1 and <= 1000000"),
        ("train.num_threads=100000", "train.num_threads: 100000 must be >= 1 and <= 4096"),
        ("data.streaming_sample=1000000000", "data.streaming_sample: 1000000000 must be >= 1 and <= 100000000"),
        ("train.plateau_factor=1.5", "train.plateau_factor: 1.5 must be < 1 (a learning-rate drop)"),
        ("train.plateau_factor=0", "train.plateau_factor: 0.0 must be > 0 and finite"),
        ("train.weight_decay=.nan", "train.weight_decay: nan must be >= 0 and finite"),
        ("model.freeze_embeddings=1000000", "model.freeze_embeddings: 1000000 must be true, false or a number of "
                                            "epochs >= 0 and <= 100000"),
    ],
)
def test_range_checks(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert str(info.value) == expected


def test_every_integer_key_has_a_range() -> None:
    """Issue 14: an integer key without an upper bound is a hang or an overflow waiting for a typo."""
    from seqnlp.config import Config
    from seqnlp.config.rules import _INT_RANGES
    from seqnlp.config.typed import field_types

    def int_keys(cls: type, prefix: str = "") -> set[str]:
        keys = set()
        for name, tp in field_types(cls).items():
            if dataclasses.is_dataclass(tp):
                keys |= int_keys(tp, f"{prefix}{name}.")
            elif tp is int or int in typing.get_args(tp):
                keys.add(f"{prefix}{name}")
        return keys

    # bool | int, a list of orders 1..5, and increasing cutoffs (a language model's vocabulary bounds them)
    by_hand = {"model.freeze_embeddings", "model.ngram_orders", "pretrain.cutoffs"}
    ranged = {key for key, _, _ in _INT_RANGES} | by_hand
    assert int_keys(Config) <= ranged


def test_fractions_must_leave_training_data() -> None:
    with pytest.raises(ConfigError, match="must leave some examples"):
        load_config(updates={"data.validation_size": 0.5, "data.test_size": 0.5})


def test_range_limits_themselves_are_allowed() -> None:
    config = load_config(
        overrides=["model.dropout=0", "train.epochs=1", "tokenizer.vocab_size=3", "train.weight_decay=0",
                   "model.head_hidden_size=0", "data.test_size=0", "train.patience=null"]
    )
    assert config.model.dropout == 0.0
    assert config.train.epochs == 1
    assert config.tokenizer.vocab_size == 3
    assert config.train.patience is None


def test_range_checked_in_files_too(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  dropout: 1.5\n")
    with pytest.raises(ConfigError, match=r"model\.dropout: 1\.5 must be in \[0, 1\)"):
        load_config(path)


@pytest.mark.parametrize("override", ["train.lr=nan", "train.weight_decay=.nan", "train.max_grad_norm=nan"])
def test_nan_is_rejected(override: str) -> None:
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        load_config(overrides=[override])


# --- save -> load ---------------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    config = load_config(
        updates={
            "data.data_files": {"train": ["a.csv", "b.csv"], "test": "t.csv"},
            "data.load_kwargs": {"delimiter": ";"},
            "data.text_columns": ["title", "body"],
            "data.text_separator": "\t",
            "data.label_names": ["no", "yes"],  # YAML 1.1 booleans when unquoted
            "data.revision": "1.10",
            "model.cell": "gru",
            "train.lr": 1e-5,
            "train.max_grad_norm": None,
            "train.num_threads": 2,
            "seed": 99,
            "output_dir": str(tmp_path / "run"),
        }
    )
    path = tmp_path / "config.yaml"
    config.save(path)
    loaded = load_config(path)
    # Relative paths are saved absolute (read from the current directory): a config file's are read from its folder.
    assert loaded.data.data_files == {"train": [str(Path("a.csv").absolute()), str(Path("b.csv").absolute())],
                                      "test": str(Path("t.csv").absolute())}
    loaded.data.data_files = config.data.data_files
    assert loaded == config
    assert loaded.data.label_names == ["no", "yes"]
    assert loaded.data.revision == "1.10"
    assert loaded.train.lr == 1e-5
    assert yaml.safe_load(path.read_text())["model"]["cell"] == "gru"


def test_to_dict_round_trips_through_json(tmp_path: Path) -> None:
    config = load_config(overrides=["model.pooling=attention", "train.schedule=cosine"])
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config.to_dict()))
    assert load_config(path) == config


def _dotted_keys(section: object, prefix: str = "") -> list[str]:
    import dataclasses as dc

    keys = []
    for f in dc.fields(section):  # type: ignore[arg-type]
        value = getattr(section, f.name)
        keys += _dotted_keys(value, f"{prefix}{f.name}.") if dc.is_dataclass(value) else [f"{prefix}{f.name}"]
    return keys


def test_quickstart_config_spells_out_the_defaults() -> None:
    """configs/quickstart.yaml documents every key with its default value: loading it changes nothing."""
    repo = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((repo / "configs" / "quickstart.yaml").read_text(encoding="utf-8"))
    assert config_from_dict(raw) == Config()
    written = _dotted_keys(config_from_dict(raw))
    flat = {f"{s}.{k}" for s, v in raw.items() if isinstance(v, dict) for k in v} | {k for k, v in raw.items() if not isinstance(v, dict)}
    assert sorted(flat) == sorted(written)


@pytest.mark.parametrize("name", ["sst2.yaml", "sst2-glove.yaml", "imdb.yaml", "imdb-ngrams.yaml", "imdb-pretrain.yaml"])
def test_shipped_recipes_load_and_validate(name: str) -> None:
    """A recipe with a misspelt key or a bad value fails here, not ten minutes into someone's run."""
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / name)
    assert config.data.dataset and config.output_dir  # a Hub dataset by default; local files: tests/config


# --- a config you did not write (issue 14) ------------------------------------------------------------------------


def alias_bomb(levels: int) -> str:
    """A YAML file whose data.load_kwargs expands to 10**levels leaves, in a few hundred bytes."""
    names = "abcdefghij"
    lines = [f"    a: &a [{', '.join(['lol'] * 10)}]"]
    lines += [f"    {n}: &{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip(names, names[1:levels])]
    return "data:\n  load_kwargs:\n" + "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """10**6 leaves from ~400 bytes: refused on the first anchor, without expanding anything."""
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(6), encoding="utf-8")
    assert path.stat().st_size < 500
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"config file {path}, line 3: YAML anchors and aliases (&a) are not allowed in a "
                               "config; write the value out")


@pytest.mark.parametrize(("text", "fragment"), [
    ("seed: &s 3\n", "line 1: YAML anchors and aliases (&s)"),
    ("model:\n  cell: lstm\ndata:\n  text_columns: [a]\n  load_kwargs: {x: *undefined}\n", "line 5"),
])
def test_any_anchor_or_alias_is_refused_naming_the_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(path)


def test_an_alias_in_a_set_override_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["data.load_kwargs={a: &x [1, 2], b: *x}"])
    assert str(info.value) == ("--set data.load_kwargs, line 1: YAML anchors and aliases (&x) are not allowed in a "
                               "config; write the value out")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_config_nested_thousands_deep_is_one_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text("{\"data\": " + "[" * 3000 + "]" * 3000 + "}", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{re.escape(str(path))}"):
        load_config(path)


def test_a_config_file_over_a_megabyte_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (1 << 20) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"big\.yaml is 1,048,579 bytes; a config is at most 1,048,576"):
        load_config(path)
