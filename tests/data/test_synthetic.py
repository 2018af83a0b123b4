"""Synthetic tasks: what each text holds, determinism, spec errors, and the path through preflight and data."""

from __future__ import annotations

import pytest

from seqnlp.data import synthetic
from seqnlp.config import DataConfig, load_config
from seqnlp.data import load_splits
from seqnlp.errors import ConfigError
from seqnlp.training import preflight


@pytest.mark.parametrize("distance, prefix", [(0, 0), (7, 3), (40, 10)])
def test_marker_sits_exactly_distance_tokens_before_the_end(distance: int, prefix: int) -> None:
    data = synthetic.make("marker", distance=distance, prefix=prefix, classes=3, vocab=5, train=300)
    train = data["train"]
    names = train.features["label"].names
    assert names == ["x0", "x1", "x2"]
    for text, label in zip(train["text"], train["label"]):
        words = text.split()
        markers = [i for i, w in enumerate(words) if w.startswith("x")]
        assert len(markers) == 1, text
        position = markers[0]
        assert words[position] == names[label]
        assert len(words) - 1 - position == distance
        assert 0 <= position <= prefix
        assert all(w in {f"d{v}" for v in range(5)} for i, w in enumerate(words) if i != position)
    assert set(train["label"]) == {0, 1, 2}
    assert max(len(t.split()) for t in train["text"]) <= synthetic.max_tokens(
        f"synthetic:marker?distance={distance}&prefix={prefix}")


def test_parity_label_is_the_parity_of_the_ones() -> None:
    data = synthetic.load("synthetic:parity?length=9&train=200")
    assert data["train"].features["label"].names == ["even", "odd"]
    for text, label in zip(data["train"]["text"], data["train"]["label"]):
        bits = text.split()
        assert len(bits) == 9 and set(bits) <= {"0", "1"}
        assert label == bits.count("1") % 2
    assert set(data["train"]["label"]) == {0, 1}


def test_every_split_is_generated_with_the_asked_size() -> None:
    data = synthetic.load("synthetic:marker?train=30&validation=20&test=10")
    assert {name: len(split) for name, split in data.items()} == {"train": 30, "validation": 20, "test": 10}


def test_generation_is_deterministic_and_seeded() -> None:
    spec = "synthetic:marker?distance=5&train=50"
    assert synthetic.load(spec)["train"]["text"] == synthetic.load(spec)["train"]["text"]
    assert synthetic.load(spec + "&seed=1")["train"]["text"] != synthetic.load(spec)["train"]["text"]


def test_a_split_does_not_change_when_another_split_grows() -> None:
    small = synthetic.load("synthetic:parity?train=10&validation=20")
    large = synthetic.load("synthetic:parity?train=99&validation=20")
    assert small["validation"]["text"] == large["validation"]["text"]
    assert large["train"]["text"][:10] == small["train"]["text"]


@pytest.mark.parametrize("spec, fragments", [
    ("synthetic:copy", ["'copy'", "marker, parity"]),
    ("synthetic:marker?dist=3", ["'dist'", "distance, prefix"]),
    ("synthetic:marker?distance=far", ["distance='far'", "integer"]),
    ("synthetic:marker?distance", ["distance=''", "integer"]),
    ("synthetic:marker?classes=1", ["classes=1", ">= 2"]),
    ("synthetic:parity?length=0", ["length=0", ">= 1"]),
    ("synthetic:parity?test=0", ["test=0", ">= 1"]),
])
def test_bad_specs_name_the_part_and_the_choices(spec: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        synthetic.parse_spec(spec)
    message = str(info.value)
    assert message.startswith("data.dataset:")
    for fragment in fragments:
        assert fragment in message


def test_preflight_rejects_a_bad_spec() -> None:
    with pytest.raises(ConfigError, match="'copy' is not one of marker, parity"):
        preflight(load_config(updates={"data.dataset": "synthetic:copy"}))


def test_preflight_rejects_texts_longer_than_the_tokenizer_keeps() -> None:
    spec = "synthetic:marker?distance=60&prefix=10"
    with pytest.raises(ConfigError, match=r"up to 71 tokens, more than tokenizer.max_length=64"):
        preflight(load_config(updates={"data.dataset": spec, "tokenizer.max_length": 64}))
    preflight(load_config(updates={"data.dataset": spec, "tokenizer.max_length": 71}))


def test_preflight_rejects_data_files_beside_a_synthetic_task() -> None:
    with pytest.raises(ConfigError, match="leave data.data_files empty"):
        preflight(load_config(updates={"data.dataset": "synthetic:parity", "data.data_files": {"train": "x.csv"}}))


def test_load_splits_takes_the_generated_splits_without_carving() -> None:
    cfg = DataConfig(dataset="synthetic:marker?distance=3&train=40&validation=12&test=8", max_train_samples=30)
    splits = load_splits(cfg, seed=5)
    assert splits.label_names == ["x0", "x1"]
    assert {name: len(split) for name, split in splits.data.items()} == {"train": 30, "validation": 12, "test": 8}
    assert splits.data["test"]["text"] == synthetic.load(cfg.dataset)["test"]["text"]  # type: ignore[arg-type]
