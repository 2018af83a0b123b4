"""A fast linear baseline on the very splits ``train`` uses: TF-IDF n-grams and a linear classifier (scikit-learn).

Every recurrent result is worth reading beside what a linear model on n-grams gets from the same examples in
seconds: on long reviews such a model is hard to beat (Wang & Manning 2012), on short phrases an RNN should win
clearly. ``fit_baseline(config)`` loads and carves the data exactly as ``seqnlp.train`` does (same loading, same
seed, same ``max_train_samples`` subset), fits on the training split and scores the validation and (labelled)
test splits with accuracy and macro-F1, the numbers ``train`` reports. Multi-label data gets one classifier per
label (a text's labels are those scored above 0.5 / 0); its ``accuracy`` is the exact match, as in ``train``.

scikit-learn is an optional extra (``pip install 'seqnlp[baseline]'``); without it ``fit_baseline`` raises one
line naming the extra.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from seqnlp.config import BaselineConfig, Config
from seqnlp.errors import ConfigError, DataError, SeqnlpError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'seqnlp[baseline]'"
# Words, numbers and single punctuation marks ("!", "?", ":)" -> ":", ")"): punctuation carries sentiment, and
# scikit-learn's default pattern drops it and every one-letter word.
TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]"


@dataclass
class BaselineResult:
    """What ``fit_baseline`` measured; ``to_dict`` is the ``baseline`` entry of a run's results.json."""

    description: str  # e.g. "TF-IDF word 1-2-grams + logistic regression (C=1.0)"
    validation: dict[str, float]  # accuracy and macro_f1 on the validation split
    test: Optional[dict[str, float]]  # the same on the test split, when it has labels
    num_features: int
    train_examples: int
    seconds: float  # fitting and scoring, data loading excluded
    settings: dict[str, Any] = field(default_factory=dict)  # the baseline section it ran with

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def require_sklearn() -> None:
    """One line naming the extra when scikit-learn is missing (``train.baseline`` checks it in preflight)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise SeqnlpError(f"the baseline needs scikit-learn: {INSTALL_HINT}") from None


def fit_baseline(config: Config, splits: Any = None) -> BaselineResult:
    """Fit ``config.baseline``'s model on the training split of ``config.data`` and score validation and test.

    ``splits`` (a ``seqnlp.data.Splits``) reuses data a caller has already loaded with the same config, as
    ``train`` does; by default the data is loaded here exactly as ``train`` would load it.
    """
    require_sklearn()
    data = config.data
    if data.streaming:
        raise ConfigError("the baseline needs the training split in memory: it cannot read data.streaming")
    if splits is None:
        from seqnlp.data import load_splits

        splits = load_splits(data, config.seed)
    train = splits.split(data.train_split)
    validation = splits.split(data.validation_split)
    if train is None or validation is None:
        raise DataError(f"the baseline needs the {data.train_split!r} and {data.validation_split!r} splits")
    test = splits.split(data.test_split)
    if test is not None and "label" not in test.column_names:
        test = None
    start = time.perf_counter()
    model = _pipeline(config.baseline, config.tokenizer.lowercase, data.multi_label)
    model.fit(train["text"], _labels(train))
    classes = len(splits.label_names)
    result = BaselineResult(
        description=describe(config.baseline),
        validation=_score(model, validation, data.multi_label, classes),
        test=None if test is None else _score(model, test, data.multi_label, classes),
        num_features=_num_features(model),
        train_examples=len(train),
        seconds=0.0,
        settings=asdict(config.baseline),
    )
    result.seconds = time.perf_counter() - start
    log.info("baseline %s: validation accuracy %.4f macro-F1 %.4f%s (%.1f s)", result.description,
             result.validation["accuracy"], result.validation["macro_f1"],
             "" if result.test is None else f", test accuracy {result.test['accuracy']:.4f}", result.seconds)
    return result


def describe(cfg: BaselineConfig) -> str:
    """A one-line name of the model ``cfg`` builds."""
    words = f"word 1-{cfg.word_ngrams}-grams" if cfg.word_ngrams > 1 else "words"
    chars = f" + char 2-{cfg.char_ngrams}-grams" if cfg.char_ngrams >= 2 else ""
    model = "logistic regression" if cfg.classifier == "logistic" else "linear SVM"
    return f"TF-IDF {words}{chars} + {model} (C={cfg.c:g})"


def _pipeline(cfg: BaselineConfig, lowercase: bool, multi_label: bool) -> Any:
    """TF-IDF features (sublinear tf, as in most strong n-gram baselines) -> a linear classifier."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    features = [TfidfVectorizer(lowercase=lowercase, token_pattern=TOKEN_PATTERN, ngram_range=(1, cfg.word_ngrams),
                                min_df=cfg.min_df, sublinear_tf=True, dtype=np.float32)]
    if cfg.char_ngrams >= 2:
        features.append(TfidfVectorizer(lowercase=lowercase, analyzer="char_wb", ngram_range=(2, cfg.char_ngrams),
                                        min_df=cfg.min_df, sublinear_tf=True, dtype=np.float32))
    if cfg.classifier == "logistic":
        classifier: Any = LogisticRegression(C=cfg.c, max_iter=1000, solver="liblinear")
    else:
        classifier = LinearSVC(C=cfg.c)
    if multi_label:
        classifier = OneVsRestClassifier(classifier)
    return make_pipeline(make_union(*features) if len(features) > 1 else features[0], classifier)


def _labels(split: Any) -> np.ndarray:
    """[N] class indices, or [N, C] multi-hot rows for multi-label data."""
    return np.asarray(split["label"], dtype=np.int64)


def _score(model: Any, split: Any, multi_label: bool, num_labels: int) -> dict[str, float]:
    """Accuracy (exact match for multi-label) and macro-F1 over every label, as train's metrics count them."""
    from sklearn.metrics import accuracy_score, f1_score

    truth, predicted = _labels(split), model.predict(split["text"])
    labels = None if multi_label else list(range(num_labels))  # a class absent from a split still counts
    macro = f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(truth, predicted)), "macro_f1": float(macro)}


def _num_features(model: Any) -> int:
    """The width of the fitted feature vector (every n-gram kept by min_df, over every vectorizer)."""
    features = model.steps[0][1]
    parts = [vectorizer for _, vectorizer in features.transformer_list] if hasattr(features, "transformer_list") \
        else [features]
    return sum(len(part.vocabulary_) for part in parts)
