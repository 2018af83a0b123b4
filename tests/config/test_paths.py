"""Local paths in configs: a saved config names the same files wherever it is loaded from."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqnlp.config import load_config


def test_a_saved_config_names_the_same_files_when_loaded_as_a_config_file(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's config.yaml, given as --config, reads the files the run read, though its paths came relative
    from the command line (they are saved absolute; a config file's relative paths are read from its folder)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("text,label\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(updates={"data.data_files.train": ["data/train.csv"], "data.dataset": "./data/train.csv",
                                  "tokenizer.path": "tok.json", "model.pretrained_vectors": "glove-6b-50d",
                                  "model.embedding_dim": 50})
    assert config.data.data_files == {"train": ["data/train.csv"]}  # as given: relative to the current directory
    (tmp_path / "runs" / "x").mkdir(parents=True)
    config.save(tmp_path / "runs" / "x" / "config.yaml")
    assert config.data.data_files == {"train": ["data/train.csv"]}  # saving leaves the config alone
    again = load_config("runs/x/config.yaml")
    assert again.data.data_files == {"train": [str(tmp_path / "data" / "train.csv")]}
    assert again.data.dataset == str(tmp_path / "data" / "train.csv")
    assert again.tokenizer.path == str(tmp_path / "tok.json")
    assert again.model.pretrained_vectors == "glove-6b-50d"  # a named source, not a path
