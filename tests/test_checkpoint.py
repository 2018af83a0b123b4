"""Run directories in and out: round trips, broken or foreign files, and no pickle anywhere."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
from pathlib import Path
from typing import Iterator

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tokenizers import Tokenizer

from seqnlp.checkpoint import (
    CONFIG_FILE,
    LABELS_FILE,
    METRICS_FILE,
    REQUIRED_FILES,
    RESULTS_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    load_run,
    load_weights,
    prepare_run_dir,
    save_run_files,
    save_weights,
)
from seqnlp.config import Config, ModelConfig, TokenizerConfig, load_config
from seqnlp.errors import CheckpointError
from seqnlp.model import RNNClassifier
from seqnlp.predict import Classifier
from seqnlp.tokenizer import train_tokenizer, vocab_digest
from seqnlp.training.state import VERSION


@pytest.fixture
def run_copy(toy_run: Path, tmp_path: Path) -> Path:
    """A private copy of the trained run, free to break."""
    return Path(shutil.copytree(toy_run, tmp_path / "copy"))


def tiny_model(seed: int) -> RNNClassifier:
    torch.manual_seed(seed)
    cfg = ModelConfig(cell="gru", embedding_dim=8, hidden_size=6, num_layers=2, pooling="attention")
    return RNNClassifier(cfg, 25, 3).eval()


def sample_batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0], [9, 0, 0, 0]])  # [B, T]
    return ids, torch.tensor([4, 2, 1])


class _Planted:
    """Unpickling this creates the directory ``marker``: the payload of a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps({"state_dict": _Planted(marker)}, protocol=2)


# --- weights ---------------------------------------------------------------------------------------------


def test_save_then_load_weights_gives_identical_logits(tmp_path: Path) -> None:
    source, target = tiny_model(seed=0), tiny_model(seed=1)
    ids, lengths = sample_batch()
    with torch.no_grad():
        expected = source(ids, lengths)
        assert not torch.equal(target(ids, lengths), expected)  # different weights before loading
        save_weights(source, tmp_path / WEIGHTS_FILE)
        load_weights(target, tmp_path / WEIGHTS_FILE)
        assert torch.equal(target(ids, lengths), expected)
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor), name


def test_load_weights_into_a_different_model_is_a_checkpoint_error(tmp_path: Path) -> None:
    save_weights(tiny_model(seed=0), tmp_path / WEIGHTS_FILE)
    other = RNNClassifier(ModelConfig(cell="lstm", embedding_dim=8, hidden_size=6), 25, 3)
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not fit the model"):
        load_weights(other, tmp_path / WEIGHTS_FILE)


def test_load_weights_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tiny_model(seed=0), tmp_path / WEIGHTS_FILE)


# --- load_run --------------------------------------------------------------------------------------------


def test_load_run_returns_config_labels_tokenizer_and_eval_model(toy_run: Path) -> None:
    config, tokenizer, labels, model = load_run(toy_run)
    assert isinstance(config, Config)
    assert config.model.cell == "lstm" and config.model.hidden_size == 16 and config.model.embedding_dim == 16
    assert config.output_dir == str(toy_run)
    assert labels == ["neg", "pos"]
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.token_to_id("[PAD]") == 0 and tokenizer.token_to_id("[UNK]") == 1
    assert tokenizer.token_to_id("great") is not None and tokenizer.token_to_id("awful") is not None
    assert isinstance(model, RNNClassifier)
    assert not model.training and not any(m.training for m in model.modules())
    assert model.embedding.num_embeddings == tokenizer.get_vocab_size()
    assert model.head[-1].out_features == 2
    saved = load_file(str(toy_run / WEIGHTS_FILE))
    assert saved.keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def test_load_run_on_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "nope")


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_missing_required_file_is_named(run_copy: Path, name: str) -> None:
    (run_copy / name).unlink()
    with pytest.raises(CheckpointError, match=f"missing {name}"):
        load_run(run_copy)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated-half"),
        pytest.param(lambda data: data[:-1], id="truncated-last-byte"),
        pytest.param(lambda data: data[:8], id="header-size-only"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: data[:8] + b"\x00" * 12 + data[20:], id="header-not-json"),
        pytest.param(lambda data: bytes(range(256)) * 8, id="garbage"),
        pytest.param(lambda data: (1 << 40).to_bytes(8, "little") + data[8:], id="huge-header-size"),
    ],
)
def test_corrupt_weights_are_a_checkpoint_error(run_copy: Path, corrupt) -> None:  # type: ignore[no-untyped-def]
    path = run_copy / WEIGHTS_FILE
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_run(run_copy)


def test_weights_replaced_by_a_pickle_are_refused_unopened(run_copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (run_copy / WEIGHTS_FILE).write_bytes(malicious_pickle(marker))
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_run(run_copy)
    assert not marker.exists()


def foreign_tokenizer(texts: list[str]) -> Tokenizer:
    return train_tokenizer(TokenizerConfig(min_frequency=1), texts)


def test_tokenizer_of_another_vocabulary_size_is_refused(run_copy: Path) -> None:
    foreign = foreign_tokenizer(["completely different words here", "nothing like the toy data at all"])
    assert foreign.get_vocab_size() != Tokenizer.from_file(str(run_copy / TOKENIZER_FILE)).get_vocab_size()
    foreign.save(str(run_copy / TOKENIZER_FILE))
    with pytest.raises(CheckpointError, match="tokenizer.json is not the tokenizer these weights were trained with"):
        load_run(run_copy)


def test_tokenizer_of_another_vocabulary_with_the_same_size_is_refused(run_copy: Path) -> None:
    own = Tokenizer.from_file(str(run_copy / TOKENIZER_FILE))
    words = [f"w{i}" for i in range(own.get_vocab_size() - 2)]  # [PAD] and [UNK] make up the rest
    foreign = foreign_tokenizer([" ".join(words)])
    assert foreign.get_vocab_size() == own.get_vocab_size()
    assert foreign.get_vocab() != own.get_vocab()
    foreign.save(str(run_copy / TOKENIZER_FILE))
    with pytest.raises(CheckpointError):
        load_run(run_copy)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("not json", id="not-json"),
        pytest.param('{"0": "neg", "1": "pos"}', id="mapping"),
        pytest.param('["pos"]', id="one-label"),
        pytest.param('["neg", 1]', id="non-string"),
        pytest.param("[]", id="empty-list"),
        pytest.param("\xff\xfe", id="not-utf8"),
    ],
)
def test_bad_labels_json_is_a_checkpoint_error(run_copy: Path, content: str) -> None:
    (run_copy / LABELS_FILE).write_bytes(content.encode("latin-1"))
    with pytest.raises(CheckpointError, match=r"labels\.json"):
        load_run(run_copy)


def test_labels_that_do_not_fit_the_head_are_a_checkpoint_error(run_copy: Path) -> None:
    (run_copy / LABELS_FILE).write_text('["neg", "pos", "meh"]', encoding="utf-8")
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_run(run_copy)


def test_config_that_does_not_fit_the_weights_is_a_checkpoint_error(run_copy: Path) -> None:
    raw = yaml.safe_load((run_copy / CONFIG_FILE).read_text(encoding="utf-8"))
    raw["model"]["hidden_size"] = 7
    (run_copy / CONFIG_FILE).write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_run(run_copy)


@pytest.mark.parametrize(
    "content",
    [pytest.param("model: [unclosed", id="bad-yaml"), pytest.param("model:\n  cell: transformer\n", id="bad-value"),
     pytest.param("modle: {}\n", id="unknown-key")],
)
def test_bad_config_is_a_checkpoint_error_naming_the_file(run_copy: Path, content: str) -> None:
    (run_copy / CONFIG_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"config\.yaml"):
        load_run(run_copy)


def test_corrupt_tokenizer_is_a_checkpoint_error(run_copy: Path) -> None:
    (run_copy / TOKENIZER_FILE).write_text('{"model": ', encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json"):
        load_run(run_copy)


# --- the run directory -------------------------------------------------------------------------------------


def test_prepare_run_dir_creates_nested_directories(tmp_path: Path) -> None:
    run_dir = prepare_run_dir(tmp_path / "a" / "b")
    assert run_dir.is_dir() and not any(run_dir.iterdir())


def test_prepare_run_dir_accepts_a_directory_without_a_run(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    assert prepare_run_dir(tmp_path) == tmp_path
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me"


@pytest.mark.parametrize("name", REQUIRED_FILES + (METRICS_FILE, RESULTS_FILE))
def test_prepare_run_dir_refuses_an_existing_run_unless_overwrite(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("old", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(CheckpointError, match=f"already holds a run.*{name}.*overwrite"):
        prepare_run_dir(tmp_path)
    assert (tmp_path / name).read_text(encoding="utf-8") == "old"

    prepare_run_dir(tmp_path, overwrite=True)
    assert not (tmp_path / name).exists()  # the old run's files go: a new metrics.jsonl must not append to them
    assert (tmp_path / "notes.txt").exists()


def test_prepare_run_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("", encoding="utf-8")
    with pytest.raises(CheckpointError, match="is a file"):
        prepare_run_dir(tmp_path / "run", overwrite=True)


def test_no_file_in_a_run_is_a_pickle(toy_run: Path) -> None:
    files = sorted(p for p in toy_run.iterdir() if p.is_file())
    names = {p.name for p in files}
    assert names >= {CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE, WEIGHTS_FILE, METRICS_FILE, RESULTS_FILE}
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]  # no temporary files left behind
    for path in files:
        data = path.read_bytes()
        assert not data.startswith(b"\x80"), f"{path.name} starts like a pickle"
        assert not data.startswith(b"PK\x03\x04"), f"{path.name} is a zip (torch.save) archive"

    data = (toy_run / WEIGHTS_FILE).read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])  # safetensors: an 8-byte length, a JSON header, raw tensor bytes
    tokenizer = Tokenizer.from_file(str(toy_run / TOKENIZER_FILE))
    assert header["__metadata__"] == {"format": "pt", "producer": "seqnlp", "vocab_sha256": vocab_digest(tokenizer)}
    assert "embedding.weight" in header and header["embedding.weight"]["dtype"] == "F32"
    assert yaml.safe_load((toy_run / CONFIG_FILE).read_text(encoding="utf-8"))["model"]["cell"] == "lstm"
    for name in (LABELS_FILE, TOKENIZER_FILE, RESULTS_FILE):
        json.loads((toy_run / name).read_text(encoding="utf-8"))
    for line in (toy_run / METRICS_FILE).read_text(encoding="utf-8").splitlines():
        json.loads(line)


@pytest.mark.parametrize("name", ["model.pt", "state.bin", "pytorch_model.bin", "optimizer.pt"])
def test_planted_pickles_are_never_unpickled(run_copy: Path, tmp_path: Path, name: str) -> None:
    # The payload works: unpickling it creates its marker.
    control = tmp_path / "control"
    pickle.loads(malicious_pickle(control))
    assert control.exists()

    marker = tmp_path / "pwned"
    (run_copy / name).write_bytes(malicious_pickle(marker))
    config, _, labels, model = load_run(run_copy)
    Classifier.load(run_copy, device="cpu").predict(["great movie"])
    assert labels == ["neg", "pos"] and isinstance(model, RNNClassifier)
    assert not marker.exists()


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def write_run(run_dir: Path) -> None:
    """Every writer of a run directory, on a tiny model."""
    from seqnlp.checkpoint import append_jsonl, write_json

    config = load_config(updates={"model.embedding_dim": 4, "model.hidden_size": 4})
    tokenizer = foreign_tokenizer(["a small text", "another one"])
    save_run_files(run_dir, config, tokenizer, ["neg", "pos"])
    save_weights(RNNClassifier(config.model, tokenizer.get_vocab_size(), 2), run_dir / WEIGHTS_FILE)
    append_jsonl(run_dir / METRICS_FILE, {"epoch": 1})
    write_json(run_dir / RESULTS_FILE, {"best_epoch": 1})


@pytest.mark.parametrize("umask", [0o022], indirect=True)
def test_run_files_are_readable_by_group_and_others(tmp_path: Path, umask: int) -> None:
    write_run(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE, WEIGHTS_FILE, METRICS_FILE, RESULTS_FILE])
    for path in tmp_path.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o044 == 0o044, f"{path.name} has mode {mode:o}"
        assert mode == 0o644, f"{path.name} has mode {mode:o}"  # 0666 & ~umask, like any new file


@pytest.mark.parametrize("umask", [0o077], indirect=True)
def test_run_files_follow_a_strict_umask(tmp_path: Path, umask: int) -> None:
    write_run(tmp_path)
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_toy_run_files_are_readable_by_group_and_others(toy_run: Path) -> None:
    mask = os.umask(0)
    os.umask(mask)
    if mask & 0o044:
        pytest.skip(f"the session's umask {mask:o} forbids group/other reads")
    for path in toy_run.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path.name


# --- resumable training state ----------------------------------------------------------------------------------


def _state_file(run_dir: Path) -> Path:
    from seqnlp.checkpoint import CHECKPOINT_DIR, LAST_POINTER, STATE_FILE

    name = json.loads((run_dir / CHECKPOINT_DIR / LAST_POINTER).read_text(encoding="utf-8"))["dir"]
    return run_dir / CHECKPOINT_DIR / name / STATE_FILE


def test_state_json_is_the_training_state_plus_the_optimizer_groups(toy_run: Path) -> None:
    from seqnlp.training.state import TrainingState

    data = json.loads(_state_file(toy_run).read_text(encoding="utf-8"))
    groups = data.pop("optimizer_param_groups")
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    state = TrainingState.from_json(data)
    assert state.world_size == 1 and len(state.rng_by_rank) == 1 and state.epoch == len(state.history) + 1


def _resume_error(run_dir: Path) -> str:
    from seqnlp.training import resume

    with pytest.raises(CheckpointError) as info:
        resume(run_dir, progress=False)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_checkpoint_of_the_old_layout_is_a_one_line_error(run_copy: Path) -> None:
    """state.json as seqnlp wrote it before TrainingState (no version, monitor inside "loop") cannot resume."""
    path = _state_file(run_copy)
    data = json.loads(path.read_text(encoding="utf-8"))
    old = {"loop": {**data["loop"], **data["monitor"], "history": data["history"]}, "rng": data["rng_by_rank"][0],
           "world_size": 1, "scaler": {}, "optimizer_param_groups": data["optimizer_param_groups"]}
    path.write_text(json.dumps(old), encoding="utf-8")
    assert f"another seqnlp version (1, this one reads {VERSION}); train the run again" in _resume_error(run_copy)


@pytest.mark.parametrize(("content", "message"), [
    ("[1, 2]", "has no optimizer_param_groups list"),
    ("{not json", "is not valid JSON"),
])
def test_a_damaged_state_json_is_a_one_line_error(run_copy: Path, content: str, message: str) -> None:
    _state_file(run_copy).write_text(content, encoding="utf-8")
    assert message in _resume_error(run_copy)


def test_a_state_json_missing_a_key_names_it(run_copy: Path) -> None:
    path = _state_file(run_copy)
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["loop"]["step"]
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "key 'loop.step' is missing" in _resume_error(run_copy)


def test_overwrite_clears_the_old_checkpoints(run_copy: Path) -> None:
    from seqnlp.checkpoint import CHECKPOINT_DIR

    assert (run_copy / CHECKPOINT_DIR).is_dir()
    prepare_run_dir(run_copy, overwrite=True)
    assert not (run_copy / CHECKPOINT_DIR).exists()
