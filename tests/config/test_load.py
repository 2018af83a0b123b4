"""Loading configs: paths in a config file are read from its folder, data files merge per split and replace a
dataset the file names, dotted keys reach inside mappings (``data.load_kwargs.delimiter``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from seqnlp.config import load_config
from seqnlp.config.paths import path_origin
from seqnlp.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- dotted keys inside mappings -------------------------------------------------------------------------------


def test_dotted_keys_set_one_entry_of_a_mapping() -> None:
    config = load_config(overrides=["data.load_kwargs.delimiter=;", "data.load_kwargs.column_names=[label, text]",
                                    "data.load_kwargs.quoting=3"])
    assert config.data.load_kwargs == {"delimiter": ";", "column_names": ["label", "text"], "quoting": 3}


@pytest.mark.parametrize("char", ["|", "#", "\t", ",", ":", "-", "?"])
def test_one_punctuation_character_inside_a_mapping_is_itself(char: str) -> None:
    """YAML would read | as a block scalar, # as a comment, - as a list: a delimiter is meant literally."""
    assert load_config(overrides=[f"data.load_kwargs.delimiter={char}"]).data.load_kwargs == {"delimiter": char}


def test_a_dotted_key_keeps_the_mappings_other_entries(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "data:\n  load_kwargs: {quoting: 3}\n")
    config = load_config(path, overrides=["data.load_kwargs.delimiter=;"])
    assert config.data.load_kwargs == {"quoting": 3, "delimiter": ";"}


def test_a_dotted_key_below_a_value_in_a_mapping_is_an_error() -> None:
    with pytest.raises(ConfigError, match="data.load_kwargs.quoting.x: 'quoting' holds 3, not a mapping"):
        load_config(overrides=["data.load_kwargs.quoting=3", "data.load_kwargs.quoting.x=1"])


def test_an_unknown_key_before_a_mapping_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'data.load_kwarg'"):
        load_config(overrides=["data.load_kwarg.delimiter=;"])


# --- data files: merged per split, replacing a dataset the file names ------------------------------------------


def test_data_files_merge_per_split(tmp_path: Path) -> None:
    """--data-files train=X on a config with train and validation files keeps validation (issue 17: it was dropped,
    and validation then carved from train)."""
    for name in ("train.tsv", "dev.tsv", "mine.tsv"):
        write(tmp_path / name, "sentence\tlabel\n")
    path = write(tmp_path / "c.yaml", "data:\n  data_files: {train: train.tsv, validation: dev.tsv}\n")
    config = load_config(path, updates={"data.data_files.train": [str(tmp_path / "mine.tsv")]})
    assert config.data.data_files == {"train": [str(tmp_path / "mine.tsv")], "validation": str(tmp_path / "dev.tsv")}


def test_data_files_replace_a_hub_dataset_named_in_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "recipe.yaml", "data:\n  dataset: nyu-mll/glue\n  config_name: sst2\n")
    with caplog.at_level(logging.INFO, logger="seqnlp.config.load"):
        config = load_config(path, updates={"data.data_files.train": ["t.tsv"]})
    assert config.data.dataset is None and config.data.config_name is None
    assert config.data.data_files == {"train": ["t.tsv"]}
    assert "they replace data.dataset 'nyu-mll/glue'" in caplog.text


def test_a_file_format_or_a_dataset_given_with_the_files_stays(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "data:\n  dataset: csv\n")
    assert load_config(path, updates={"data.data_files.train": ["t.txt"]}).data.dataset == "csv"
    path = write(tmp_path / "d.yaml", "data:\n  dataset: nyu-mll/glue\n")
    config = load_config(path, updates={"data.dataset": "json", "data.data_files.train": ["t.jsonl"]})
    assert config.data.dataset == "json"


@pytest.mark.parametrize("name", ["sst2.yaml", "sst2-glove.yaml", "imdb.yaml"])
def test_recipes_name_a_hub_dataset_and_take_local_files(name: str) -> None:
    """The documented local override: --data-files per split replaces the recipe's Hub dataset."""
    recipe = REPO / "configs" / name
    assert load_config(recipe).data.dataset in ("nyu-mll/glue", "stanfordnlp/imdb")
    config = load_config(recipe, updates={"data.data_files.train": ["train.tsv"]})
    assert config.data.dataset is None and config.data.data_files == {"train": ["train.tsv"]}


# --- paths in a config file are read from its folder ----------------------------------------------------------


def test_relative_paths_resolve_against_the_config_files_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    data = tmp_path / "project" / "data"
    for name in ("train.csv", "test.csv", "tokenizer.json", "vectors.txt"):
        write(data / name, "x\n")
    write(tmp_path / "project" / "configs" / "run.yaml",
          "data:\n  data_files: {train: ../data/train.csv, test: [../data/test.csv]}\n"
          "tokenizer:\n  path: ../data/tokenizer.json\nmodel:\n  pretrained_vectors: ../data/vectors.txt\n")
    monkeypatch.chdir(tmp_path)  # anywhere but the config's folder
    config = load_config(Path("project/configs/run.yaml"))
    assert config.data.data_files == {"train": str(data / "train.csv"), "test": [str(data / "test.csv")]}
    assert config.tokenizer.path == str(data / "tokenizer.json")
    assert config.model.pretrained_vectors == str(data / "vectors.txt")


def test_hub_names_named_sources_urls_and_absolute_paths_are_kept(tmp_path: Path) -> None:
    absolute = write(tmp_path / "elsewhere" / "t.csv", "x\n")
    path = write(tmp_path / "c.yaml", "data:\n  dataset: stanfordnlp/imdb\nmodel:\n  pretrained_vectors: glove-6b-50d\n"
                                      "  embedding_dim: 50\n")
    config = load_config(path)
    assert config.data.dataset == "stanfordnlp/imdb" and config.model.pretrained_vectors == "glove-6b-50d"
    path = write(tmp_path / "d.yaml", f"data:\n  data_files: {{train: {absolute}, test: 'https://x.org/t.csv'}}\n")
    assert load_config(path).data.data_files == {"train": str(absolute), "test": "https://x.org/t.csv"}


def test_a_dataset_path_beside_the_config_file_is_resolved(tmp_path: Path) -> None:
    write(tmp_path / "cfg" / "mydata" / "dataset_dict.json", "{}")
    path = write(tmp_path / "cfg" / "c.yaml", "data:\n  dataset: mydata\n")
    assert load_config(path).data.dataset == str(tmp_path / "cfg" / "mydata")


def test_command_line_paths_stay_relative_to_the_current_directory(tmp_path: Path) -> None:
    write(tmp_path / "cfg" / "train.csv", "x\n")
    path = write(tmp_path / "cfg" / "c.yaml", "data:\n  data_files: {train: train.csv}\n")
    config = load_config(path, updates={"data.data_files.test": ["here/test.csv"]})
    assert config.data.data_files["test"] == ["here/test.csv"]
    assert config.data.data_files["train"] == str(tmp_path / "cfg" / "train.csv")


def test_resolved_paths_remember_where_they_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading checks no file (a config may name data that is made later); an error about a path can say what it
    was resolved against (tests/data/test_sources.py)."""
    write(tmp_path / "configs" / "run.yaml", "data:\n  data_files: {train: ../data/train.tsv}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config("configs/run.yaml")
    resolved = config.data.data_files["train"]
    assert resolved == os.fspath(tmp_path / "data" / "train.tsv")
    assert path_origin(resolved) == "configs/run.yaml names it as ../data/train.tsv, read from that file's folder, configs/"
    assert path_origin("elsewhere.csv") is None
