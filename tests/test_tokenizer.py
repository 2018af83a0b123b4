"""Tokenizers of every kind: special ids, vocabulary bound, empty texts, truncation, normalization, save/load,
and encoding a Dataset (types, columns, and the datasets cache)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets
import pyarrow as pa
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from tokenizers import Tokenizer, models, pre_tokenizers

import seqnlp.tokenizer as tokenizer_module
from seqnlp.config import TokenizerConfig
from seqnlp.errors import CheckpointError, ConfigError
from seqnlp.tokenizer import (
    build_tokenizer,
    encode_dataset,
    encode_texts,
    fallback_id,
    iter_texts,
    load_tokenizer,
    pad_id,
    train_tokenizer,
)

KINDS = ["word", "bpe", "wordpiece", "unigram", "char"]
SUBWORD_KINDS = ["bpe", "wordpiece", "unigram"]


def make_corpus(n: int = 300, seed: int = 0) -> list[str]:
    """Texts over 200 made-up words from a 16-letter alphabet: enough for every trainer, tiny to train on."""
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnop", k=rng.randint(2, 7))) for _ in range(200)]
    return [" ".join(rng.choices(words, k=rng.randint(3, 15))) for _ in range(n)]


CORPUS = make_corpus()
LONG_TEXT = CORPUS[0] + " " + CORPUS[1] + " " + CORPUS[2]  # only seen characters and words


def build(kind: str, **options: object) -> Tokenizer:
    options.setdefault("min_frequency", 1)
    return build_tokenizer(TokenizerConfig(kind=kind, **options), CORPUS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved tokenizer.json per kind (max_length 10,000: no truncation), trained once for the module."""
    root = tmp_path_factory.mktemp("tokenizers")
    paths = {}
    for kind in KINDS:
        paths[kind] = root / f"{kind}.json"
        build(kind, max_length=10_000).save(str(paths[kind]))
    return paths


# --- specials and vocabulary ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_pad_is_0_and_unk_is_1(kind: str) -> None:
    tokenizer = build(kind)
    assert tokenizer.token_to_id("[PAD]") == 0
    assert tokenizer.token_to_id("[UNK]") == 1
    assert pad_id(tokenizer) == 0
    assert fallback_id(tokenizer) == 1
    assert tokenizer.get_vocab_size() > 2  # something besides the specials was learned


@pytest.mark.parametrize("kind, bound", [("word", 40), ("bpe", 60), ("wordpiece", 60), ("unigram", 60), ("char", 10)])
def test_vocab_size_is_an_upper_bound(kind: str, bound: int) -> None:
    unbounded = build(kind).get_vocab_size()
    assert unbounded > bound  # so the bound below actually has to cut the vocabulary
    assert build(kind, vocab_size=bound).get_vocab_size() <= bound


@pytest.mark.parametrize(
    "kind",
    [
        "word",
        "char",
        *(
            pytest.param(
                kind,
            )
            for kind in SUBWORD_KINDS
        ),
    ],
)
def test_tiny_vocab_size_is_respected_or_rejected(kind: str) -> None:
    # 16 letters (+ '##' continuations for bpe/wordpiece) do not fit in 10 ids: cap the vocabulary or say so.
    try:
        tokenizer = build(kind, vocab_size=10)
    except ConfigError as exc:
        assert "vocab_size" in str(exc)
        return
    assert tokenizer.get_vocab_size() <= 10


# --- encoding -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_empty_text_encodes_to_exactly_unk(kind: str) -> None:
    tokenizer = build(kind)
    assert encode_texts(tokenizer, [""]) == [[1]]
    assert encode_texts(tokenizer, ["", CORPUS[0], ""])[::2] == [[1], [1]]


@pytest.mark.parametrize("kind", ["word", "bpe", "wordpiece"])
def test_whitespace_only_text_encodes_to_unk(kind: str) -> None:
    assert encode_texts(build(kind), ["   \t "]) == [[1]]


@pytest.mark.parametrize("kind", KINDS)
def test_seen_text_has_no_unk(kind: str) -> None:
    ids = encode_texts(build(kind), [CORPUS[5]])[0]
    assert ids
    assert 1 not in ids
    assert 0 not in ids


@pytest.mark.parametrize("kind", KINDS)
def test_texts_are_not_padded(kind: str) -> None:
    short, long = encode_texts(build(kind), ["ab", LONG_TEXT])
    assert len(short) < len(long)
    assert 0 not in short


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("side", ["right", "left"])
def test_truncation_keeps_the_right_end(trained: dict[str, Path], kind: str, side: str) -> None:
    full = load_tokenizer(trained[kind]).encode(LONG_TEXT).ids
    assert len(full) > 12
    tokenizer = build_tokenizer(TokenizerConfig(kind=kind, path=str(trained[kind]), max_length=5,
                                                truncation_side=side), [])
    ids = encode_texts(tokenizer, [LONG_TEXT])[0]
    assert ids == (full[:5] if side == "right" else full[-5:])


@pytest.mark.parametrize("kind", KINDS)
def test_texts_within_max_length_are_not_truncated(trained: dict[str, Path], kind: str) -> None:
    full = load_tokenizer(trained[kind]).encode(LONG_TEXT).ids
    exact = build_tokenizer(TokenizerConfig(kind=kind, path=str(trained[kind]), max_length=len(full)), [])
    assert encode_texts(exact, [LONG_TEXT]) == [full]


@pytest.mark.parametrize("kind", KINDS)
def test_lowercase_and_strip_accents(kind: str) -> None:
    accented = ["Café crème naïve"] * 3 + CORPUS[:20]
    folded = build_tokenizer(TokenizerConfig(kind=kind, min_frequency=1, strip_accents=True), accented)
    assert folded.normalizer.normalize_str("Café CRÈME Naïve") == "cafe creme naive"
    assert folded.encode("CAFÉ crème").ids == folded.encode("cafe creme").ids

    cased = build_tokenizer(TokenizerConfig(kind=kind, min_frequency=1, lowercase=False), accented)
    assert cased.normalizer.normalize_str("Café CRÈME") == "Café CRÈME"

    accents_kept = build_tokenizer(TokenizerConfig(kind=kind, min_frequency=1), accented)
    assert accents_kept.normalizer.normalize_str("Café CRÈME") == "café crème"
    assert accents_kept.encode("cafe").ids != accents_kept.encode("café").ids


def test_uppercase_is_unknown_without_lowercasing() -> None:
    tokenizer = build_tokenizer(TokenizerConfig(kind="word", min_frequency=1, lowercase=False), ["cafe naive"] * 2)
    assert tokenizer.encode("CAFE naive cafe").tokens == ["[UNK]", "naive", "cafe"]


def test_nfkc_normalization_is_the_default() -> None:
    tokenizer = build_tokenizer(TokenizerConfig(kind="word", min_frequency=1), ["office"] * 2)
    assert tokenizer.encode("oﬃce").tokens == ["office"]  # the 'ﬃ' ligature folds to 'ffi'
    raw = build_tokenizer(TokenizerConfig(kind="word", min_frequency=1, normalization="none"), ["office"] * 2)
    assert raw.encode("oﬃce").tokens == ["[UNK]"]


def test_unseen_and_rare_words_are_unk_for_word_level() -> None:
    texts = ["common rare", "common other", "other common"]
    tokenizer = build_tokenizer(TokenizerConfig(kind="word", min_frequency=2), texts)
    vocab = tokenizer.get_vocab()
    assert {"common", "other"} <= set(vocab)
    assert "rare" not in vocab  # seen once, below min_frequency
    assert tokenizer.encode("common rare never other").ids == [vocab["common"], 1, 1, vocab["other"]]


def test_unseen_characters_are_unk_for_char_level() -> None:
    tokenizer = build("char")
    ids = tokenizer.encode("azb").ids
    assert ids[1] == 1
    assert ids[0] != 1 and ids[2] != 1


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tokenizer.kind: 'sentencepiece'"):
        train_tokenizer(TokenizerConfig(kind="sentencepiece"), CORPUS)


def test_iter_texts_streams_every_text_in_order() -> None:
    split = Dataset.from_dict({"text": CORPUS[:25]})
    assert list(iter_texts(split, batch_size=7)) == CORPUS[:25]


# --- save and load --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(tmp_path: Path, kind: str) -> None:
    tokenizer = build(kind, max_length=7, truncation_side="left")
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    loaded = load_tokenizer(path)
    texts = ["", "Some UNSEEN words", LONG_TEXT, *CORPUS[:10]]
    assert encode_texts(loaded, texts) == encode_texts(tokenizer, texts)
    assert encode_texts(loaded, [LONG_TEXT])[0] == tokenizer.encode(LONG_TEXT).ids  # truncation came along
    assert len(encode_texts(loaded, [LONG_TEXT])[0]) == 7
    assert loaded.get_vocab() == tokenizer.get_vocab()


def test_build_tokenizer_loads_path_instead_of_training(trained: dict[str, Path]) -> None:
    expected = load_tokenizer(trained["bpe"]).get_vocab()
    tokenizer = build_tokenizer(TokenizerConfig(kind="word", path=str(trained["bpe"])), ["zzz yyy"])
    assert tokenizer.get_vocab() == expected  # the texts and kind were ignored


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nope.json"):
        load_tokenizer(tmp_path / "nope.json")


@pytest.mark.parametrize("content", ["not json at all", "{}", json.dumps({"model": {"type": "Nope"}})])
def test_load_garbage_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_tokenizer(path)


def test_load_tokenizer_without_pad(tmp_path: Path) -> None:
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    with pytest.raises(CheckpointError, match=r"no \[PAD\] token"):
        load_tokenizer(path)


# --- encode_dataset -------------------------------------------------------------------------------------------

FEATURES = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})


def labelled_split(n: int = 30) -> Dataset:
    return Dataset.from_dict({"text": [""] + CORPUS[: n - 1], "label": [i % 2 for i in range(n)]}, features=FEATURES)


@pytest.mark.parametrize("kind", KINDS)
def test_encode_dataset_columns_types_and_values(kind: str) -> None:
    tokenizer = build(kind, max_length=12)
    split = labelled_split()
    encoded = encode_dataset(split, tokenizer)
    assert encoded.column_names == ["label", "input_ids", "length"]  # text dropped, label kept
    assert encoded.features["label"] == FEATURES["label"]
    schema = encoded.data.schema
    assert schema.field("input_ids").type == pa.list_(pa.int32())
    assert schema.field("length").type == pa.int32()
    ids = encoded["input_ids"]
    assert list(encoded["length"]) == [len(x) for x in ids]
    assert list(encoded["label"]) == list(split["label"])
    assert ids[0] == [1]  # the empty text
    assert all(1 <= len(x) <= 12 for x in ids)
    assert list(ids) == encode_texts(tokenizer, list(split["text"]))


def test_encode_dataset_keeps_other_columns_and_unlabeled_data() -> None:
    split = Dataset.from_dict({"text": CORPUS[:5], "id": [10, 11, 12, 13, 14]})
    encoded = encode_dataset(split, build("word"))
    assert encoded.column_names == ["id", "input_ids", "length"]
    assert list(encoded["id"]) == [10, 11, 12, 13, 14]


def test_encode_dataset_spans_several_map_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokenizer_module, "ENCODE_BATCH", 4)
    tokenizer = build("word")
    split = labelled_split(11)
    encoded = encode_dataset(split, tokenizer)
    assert list(encoded["input_ids"]) == encode_texts(tokenizer, list(split["text"]))


@pytest.fixture
def on_disk_split(tmp_path: Path) -> Dataset:
    """A split backed by an Arrow file, so Dataset.map writes (and can reuse) cache files."""
    labelled_split(40).save_to_disk(str(tmp_path / "split"))
    split = datasets.load_from_disk(str(tmp_path / "split"))
    assert split.cache_files  # precondition: caching is possible for this split
    return split


def test_encoding_twice_reuses_the_cache(on_disk_split: Dataset, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    calls: list[int] = []
    original = tokenizer_module.encode_texts

    def counting(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
        calls.append(len(texts))
        return original(tokenizer, texts)

    monkeypatch.setattr(tokenizer_module, "encode_texts", counting)
    tokenizer = build("word", max_length=3)
    first = encode_dataset(on_disk_split, tokenizer)
    assert calls == [40]  # the first pass really encoded
    second = encode_dataset(on_disk_split, tokenizer)
    assert calls == [40]  # ...the second did not: it read the cache file
    assert second._fingerprint == first._fingerprint
    assert second.cache_files == first.cache_files
    assert second.cache_files[0]["filename"].startswith(str(tmp_path))
    assert list(second["input_ids"]) == list(first["input_ids"])

    # The same tokenizer reloaded from its JSON hits the same cache.
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    reloaded = encode_dataset(on_disk_split, load_tokenizer(tmp_path / "tokenizer.json"))
    assert calls == [40]
    assert reloaded._fingerprint == first._fingerprint

    # The same vocabulary truncating elsewhere encodes differently: a new fingerprint, a new pass, other ids.
    longer = build_tokenizer(TokenizerConfig(path=str(tmp_path / "tokenizer.json"), max_length=6), [])
    third = encode_dataset(on_disk_split, longer)
    assert calls == [40, 40]
    assert third._fingerprint != first._fingerprint
    assert max(third["length"]) == 6
    assert max(first["length"]) == 3
    assert [ids[:3] for ids in third["input_ids"]] == list(first["input_ids"])


def test_a_trained_tokenizer_without_the_special_ids_is_a_config_error() -> None:
    """Not a CheckpointError: no file is at fault, the settings are, and the message says which to change."""
    odd = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "the": 2}, unk_token="[UNK]"))
    with pytest.raises(ConfigError, match=r"tokenizer.kind=bpe with tokenizer.vocab_size=30000 trained a tokenizer "
                                          r"that maps \[PAD\] to 1, not 0; raise tokenizer.vocab_size or choose "
                                          r"another tokenizer.kind \(word, bpe, wordpiece, unigram, char\)"):
        tokenizer_module._check_specials(odd, TokenizerConfig(kind="bpe"))
