"""Text -> token ids with a `tokenizers.Tokenizer`: trained on the training split, or loaded from tokenizer.json.

Every tokenizer seqnlp makes has ``[PAD]`` at id 0 and ``[UNK]`` at id 1, truncates to ``max_length`` and is
saved whole (normalizer, pre-tokenizer, model, truncation) in tokenizer.json, so inference encodes exactly
as training did. Encoding runs batched in Rust through ``Dataset.map``; its result is cached by datasets.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, Iterable, Iterator

import datasets
from datasets import Dataset, IterableDataset
from datasets.fingerprint import Hasher
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from seqnlp.config import TOKENIZER_KINDS, TokenizerConfig
from seqnlp.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

PAD = "[PAD]"
UNK = "[UNK]"
SPECIAL_TOKENS = [PAD, UNK]
ENCODE_BATCH = 1000  # texts per Dataset.map batch
CHARS_PER_TOKEN = 64  # texts are clipped to max_length * this many characters before tokenizing


def build_tokenizer(cfg: TokenizerConfig, texts: Iterable[str]) -> Tokenizer:
    """Load ``cfg.path`` if set, else train a new tokenizer of ``cfg.kind`` on ``texts``."""
    if cfg.path is not None:
        tokenizer = load_tokenizer(cfg.path)
    else:
        tokenizer = train_tokenizer(cfg, texts)
    tokenizer.enable_truncation(cfg.max_length, direction=cfg.truncation_side)
    tokenizer.no_padding()  # batches are padded per batch, to their own longest text
    return tokenizer


def train_tokenizer(cfg: TokenizerConfig, texts: Iterable[str]) -> Tokenizer:
    """Train a fresh tokenizer on ``texts``; ``[PAD]`` gets id 0 and ``[UNK]`` id 1."""
    kind = cfg.kind
    if kind == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(
            vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=SPECIAL_TOKENS
        )
    elif kind == "char":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        # Every character, whitespace included, is a token of its own.
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        trainer = trainers.WordLevelTrainer(
            vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=SPECIAL_TOKENS
        )
    elif kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK, continuing_subword_prefix="##"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.BpeTrainer(
            vocab_size=cfg.vocab_size,
            min_frequency=cfg.min_frequency,
            special_tokens=SPECIAL_TOKENS,
            continuing_subword_prefix="##",
        )
    elif kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=SPECIAL_TOKENS
        )
    elif kind == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=cfg.vocab_size, special_tokens=SPECIAL_TOKENS, unk_token=UNK)
    else:  # validated in config; kept for library callers who build a TokenizerConfig by hand
        raise ConfigError(f"tokenizer.kind: {kind!r} is not one of word, bpe, wordpiece, unigram, char")
    tokenizer.normalizer = _normalizer(cfg)
    try:
        tokenizer.train_from_iterator(texts, trainer=trainer)
    except Exception as exc:  # tokenizers raises a plain Exception, e.g. when the alphabet outgrows vocab_size
        raise ConfigError(f"tokenizer.vocab_size={cfg.vocab_size}: {kind} training failed: {exc}") from None
    if tokenizer.get_vocab_size() > cfg.vocab_size:
        raise ConfigError(
            f"tokenizer.vocab_size={cfg.vocab_size} is smaller than the {kind} tokenizer's alphabet "
            f"({tokenizer.get_vocab_size()} tokens); raise it"
        )
    _check_specials(tokenizer, cfg)
    log.info("trained a %s tokenizer: %d tokens", kind, tokenizer.get_vocab_size())
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer.json; it must define ``[PAD]`` (used for padding and as the embedding's padding index)."""
    path = Path(path)
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"tokenizer file {path} does not exist") from None
    except Exception as exc:  # tokenizers raises a plain Exception on malformed JSON
        raise CheckpointError(f"tokenizer file {path} cannot be read: {str(exc).splitlines()[0]}") from None
    if tokenizer.token_to_id(PAD) is None:
        raise CheckpointError(f"tokenizer file {path} has no {PAD} token; seqnlp pads with it")
    return tokenizer


def vocab_digest(tokenizer: Tokenizer) -> str:
    """A fingerprint of the token -> id mapping: weights are only valid with the vocabulary they were trained on."""
    vocab = sorted(tokenizer.get_vocab(with_added_tokens=True).items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()


def pad_id(tokenizer: Tokenizer) -> int:
    token_id = tokenizer.token_to_id(PAD)
    assert token_id is not None, "tokenizers built by seqnlp always define [PAD]"
    return token_id


def fallback_id(tokenizer: Tokenizer) -> int:
    """The id an empty text encodes to, so every sequence has at least one step."""
    unk = tokenizer.token_to_id(UNK)
    return unk if unk is not None else pad_id(tokenizer)


def encode_texts(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Encode a batch of texts (in parallel, in Rust); empty results become ``[UNK]``.

    A text far longer than the tokens that will be kept is clipped first, so a multi-megabyte text costs
    no more than a long one; text that Rust cannot hold (lone surrogates) has those characters replaced.
    """
    texts = _clip(tokenizer, texts)
    try:
        encodings = tokenizer.encode_batch(texts, add_special_tokens=True)
    except TypeError:  # a str with lone surrogates is not valid UTF-8
        texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
        encodings = tokenizer.encode_batch(texts, add_special_tokens=True)
    fallback = [fallback_id(tokenizer)]
    return [enc.ids or fallback for enc in encodings]


def _clip(tokenizer: Tokenizer, texts: list[str]) -> list[str]:
    truncation = tokenizer.truncation
    if not truncation:
        return texts
    limit = truncation["max_length"] * CHARS_PER_TOKEN
    keep_end = truncation["direction"] == "left"
    return [t if len(t) <= limit else (t[-limit:] if keep_end else t[:limit]) for t in texts]


def encode_dataset(split: Dataset, tokenizer: Tokenizer, desc: str = "encoding") -> Dataset:
    """Add ``input_ids`` (int32) and ``length`` columns; drop the text. Cached by datasets."""
    return split.map(
        _encoder(tokenizer),
        batched=True,
        batch_size=ENCODE_BATCH,
        remove_columns=["text"],
        features=_encoded_features(split.features),
        # The tokenizer is hashed by its JSON so the cache is reused exactly when encoding is the same.
        new_fingerprint=Hasher.hash((split._fingerprint, tokenizer.to_str(), "seqnlp-encode-v1")),
        desc=desc,
    )


def encode_stream(stream: IterableDataset, tokenizer: Tokenizer) -> IterableDataset:
    """``encode_dataset`` for a stream: the same columns, computed lazily, batch by batch, as it is read."""
    return stream.map(_encoder(tokenizer), batched=True, batch_size=ENCODE_BATCH, remove_columns=["text"],
                      features=_encoded_features(stream.features))


def _encoder(tokenizer: Tokenizer) -> Callable[[dict[str, list]], dict[str, list]]:
    def encode(batch: dict[str, list]) -> dict[str, list]:
        ids = encode_texts(tokenizer, batch["text"])
        return {"input_ids": ids, "length": [len(x) for x in ids]}

    return encode


def _encoded_features(features: datasets.Features) -> datasets.Features:
    features = features.copy()
    del features["text"]
    features["input_ids"] = datasets.Sequence(datasets.Value("int32"))
    features["length"] = datasets.Value("int32")
    return features


def iter_texts(split: Dataset, batch_size: int = 10_000) -> Iterator[str]:
    """Stream the ``text`` column for tokenizer training without holding all of it in Python lists."""
    for start in range(0, len(split), batch_size):
        yield from split[start : start + batch_size]["text"]


def _normalizer(cfg: TokenizerConfig) -> normalizers.Normalizer:
    steps: list[normalizers.Normalizer] = []
    unicode_forms = {"nfc": normalizers.NFC, "nfd": normalizers.NFD, "nfkc": normalizers.NFKC, "nfkd": normalizers.NFKD}
    if cfg.normalization in unicode_forms:
        steps.append(unicode_forms[cfg.normalization]())
    if cfg.strip_accents:
        if cfg.normalization not in ("nfd", "nfkd"):
            steps.append(normalizers.NFD())  # accents are stripped from decomposed characters
        steps.append(normalizers.StripAccents())
    if cfg.lowercase:
        steps.append(normalizers.Lowercase())
    return normalizers.Sequence(steps)


def _check_specials(tokenizer: Tokenizer, cfg: TokenizerConfig) -> None:
    """A freshly trained tokenizer must put [PAD] at 0 and [UNK] at 1; the settings, not a file, are at fault."""
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != expected_id:
            raise ConfigError(
                f"tokenizer.kind={cfg.kind} with tokenizer.vocab_size={cfg.vocab_size} trained a tokenizer that maps "
                f"{token} to {tokenizer.token_to_id(token)}, not {expected_id}; raise tokenizer.vocab_size or choose "
                f"another tokenizer.kind ({', '.join(TOKENIZER_KINDS)})")
