"""Fuzzing the text path (normalize -> tokenize -> encode -> predict) with arbitrary unicode.

Whatever a user pipes in (empty strings, control and format characters, bidi overrides, NUL, lone surrogates
that no UTF-8 codec accepts, multi-hundred-kilobyte texts), ``encode_texts`` must give every text at least one
in-vocabulary id and at most ``max_length`` of them, and ``Classifier.predict`` must give every text one valid
label with a probability distribution, the same alone as inside a batch.

Examples are derandomized and the database is off, so every run (CI included) checks the same inputs and
writes nothing to disk.
"""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import toy_rows
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from seqnlp.config import TOKENIZER_KINDS, TokenizerConfig
from seqnlp.predict import Classifier
from seqnlp.tokenizer import build_tokenizer, encode_texts

MAX_LENGTH = 24  # small, so that truncation is exercised by ordinary fuzzed texts too

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Every unicode category, surrogates (Cs), controls (Cc), format characters (Cf), private use (Co) and
# unassigned code points (Cn) included.
ANY_CHAR = st.characters(exclude_categories=())
ODD_CHAR = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"])

# Hand-picked inputs that have broken text pipelines before: the empty text, whitespace only, NUL, bidi
# override, BOM, lone and reversed surrogate halves, a valid astral character, NFKC expansions, literal
# special tokens, and a text far longer than anything kept.
EXPLICIT = [
    "",
    " ",
    "\t\n\r\x0b\x0c",
    "\x00",
    "\u202e",
    "\ufeff",
    "\ud800",
    "\udfff",
    "\udfff\ud800",
    "great \ud83d awful",
    "\U0001f600",
    "\ufdfa",
    "ﬁ",
    "[PAD] [UNK]",
    "\u0085\u2028\u2029",
    "a" * 200_000,
    "great " * 40_000,
]

# Long texts are built by repetition: cheap to generate, and past the clipping limit when the repeat is high.
LONG_TEXT = st.builds(operator.mul, st.text(alphabet=ANY_CHAR, min_size=1, max_size=8), st.integers(1, 60_000))
TEXT = st.one_of(
    st.text(alphabet=ANY_CHAR, max_size=60),
    st.text(alphabet=ODD_CHAR, max_size=20),
    st.sampled_from(EXPLICIT),
    LONG_TEXT,
)
TEXTS = st.lists(TEXT, min_size=1, max_size=6)


def _explicit_examples(test):  # type: ignore[no-untyped-def]
    """Attach every EXPLICIT text as an example, alone and all together in one batch."""
    for text in EXPLICIT:
        test = example(texts=[text])(test)
    return example(texts=list(EXPLICIT))(test)




# --- tokenizers of every kind ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizers_by_kind() -> dict[str, Tokenizer]:
    texts = [row["text"] for row in toy_rows(200, seed=0)]
    built = {}
    for kind in TOKENIZER_KINDS:
        vocab_size = 30_000 if kind in ("word", "char") else 120
        cfg = TokenizerConfig(kind=kind, min_frequency=1, vocab_size=vocab_size, max_length=MAX_LENGTH)
        built[kind] = build_tokenizer(cfg, texts)
    return built


def test_every_kind_is_fuzzed(tokenizers_by_kind: dict[str, Tokenizer]) -> None:
    assert set(tokenizers_by_kind) == {"word", "bpe", "wordpiece", "unigram", "char"}
    for kind, tokenizer in tokenizers_by_kind.items():
        assert tokenizer.truncation is not None and tokenizer.truncation["max_length"] == MAX_LENGTH, kind
        assert tokenizer.get_vocab_size() > 2, kind  # more than [PAD] and [UNK]: it learned something


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
@FUZZ
@_explicit_examples
@given(texts=TEXTS)
def test_encode_texts_never_fails(tokenizers_by_kind: dict[str, Tokenizer], kind: str, texts: list[str]) -> None:
    tokenizer = tokenizers_by_kind[kind]
    vocab_size = tokenizer.get_vocab_size()
    ids = encode_texts(tokenizer, texts)
    assert len(ids) == len(texts)
    for text, seq in zip(texts, ids):
        assert 1 <= len(seq) <= MAX_LENGTH, (text[:50], seq)
        assert all(isinstance(i, int) and 0 <= i < vocab_size for i in seq), (text[:50], seq)
    # Encoding is per text: a text alone encodes as it does inside the batch (the lone-surrogate fallback
    # re-encodes the whole batch, which must not change its neighbours).
    for text, seq in zip(texts, ids):
        assert encode_texts(tokenizer, [text]) == [seq], text[:50]


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_long_text_encodes_as_its_prefix(tokenizers_by_kind: dict[str, Tokenizer], kind: str) -> None:
    """Clipping a long text before tokenizing keeps exactly the tokens that truncation alone would keep."""
    tokenizer = tokenizers_by_kind[kind]
    text = " ".join(row["text"] for row in toy_rows(3000, seed=4))  # > 100,000 characters
    assert len(text) > 100_000
    (long_ids,) = encode_texts(tokenizer, [text])
    assert len(long_ids) == MAX_LENGTH
    assert long_ids == tokenizer.encode(text).ids  # the whole text through the tokenizer, unclipped


# --- the trained classifier --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(trained_run: Path) -> Classifier:
    return Classifier.load(trained_run, device="cpu")


def _check_prediction(result: dict, labels: list[str]) -> None:
    assert result["label"] in labels
    assert 0.0 <= result["score"] <= 1.0
    top = result["top_k"]
    assert sorted(t["label"] for t in top) == sorted(labels)  # top_k = every label, each once
    assert all(0.0 <= t["score"] <= 1.0 for t in top)
    assert sum(t["score"] for t in top) == pytest.approx(1.0, abs=1e-5)
    assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
    assert top[0]["label"] == result["label"] and top[0]["score"] == result["score"]


@FUZZ
@_explicit_examples
@given(texts=TEXTS)
def test_predict_any_text(classifier: Classifier, texts: list[str]) -> None:
    labels = classifier.label_names
    results = classifier.predict(texts, top_k=len(labels))
    assert len(results) == len(texts)
    for result in results:
        _check_prediction(result, labels)

    probs = classifier.predict_proba(texts)
    assert probs.shape == (len(texts), len(labels))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    # Alone (a dense batch of one) and inside a padded, length-sorted batch: the same answer.
    for text, in_batch in zip(texts, results):
        (alone,) = classifier.predict([text], top_k=len(labels))
        batch_scores = {t["label"]: t["score"] for t in in_batch["top_k"]}
        alone_scores = {t["label"]: t["score"] for t in alone["top_k"]}
        for label in labels:
            assert alone_scores[label] == pytest.approx(batch_scores[label], abs=1e-5), (text[:50], label)
        ordered = sorted(batch_scores.values(), reverse=True)
        if ordered[0] - ordered[1] > 1e-5:  # not a tie within float noise: the label must agree too
            assert alone["label"] == in_batch["label"], text[:50]


@FUZZ
@given(text=TEXT, position=st.integers(0, 5))
def test_prediction_does_not_depend_on_batch_neighbours(classifier: Classifier, text: str, position: int) -> None:
    """A text's probabilities are the same wherever it sits in a batch of ordinary texts."""
    others = [row["text"] for row in toy_rows(5, seed=9)]
    batch = others[:position] + [text] + others[position:]
    alone = classifier.predict_proba([text])[0]
    np.testing.assert_allclose(classifier.predict_proba(batch)[position], alone, atol=1e-5)
