"""The settings themselves: one dataclass per section, a comment on every field, choices as ``Literal`` types.

The valid-choice lists (``CHOICES``, ``CELLS``, ``PRECISIONS``, ...) are read from the ``Literal`` types, so a choice
is named in one place.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from seqnlp.config.paths import resolve_paths
from seqnlp.config.typed import literal_fields


@dataclass
class DataConfig:
    """Where the examples come from and which columns hold text and label."""

    dataset: Optional[str] = None  # Hub name, local dir, saved dataset, file, builder (csv/json/parquet), or synthetic:TASK?k=v; None: the embedded SMS Spam Collection
    config_name: Optional[str] = None  # Hub config (subset) name, e.g. "sst2" for "glue"
    revision: Optional[str] = None  # Hub revision (branch, tag or commit)
    data_files: dict[str, Any] = field(default_factory=dict)  # split -> path (or list of paths) for local files
    load_kwargs: dict[str, Any] = field(default_factory=dict)  # extra load_dataset options: delimiter, column_names, quoting, ...
    text_columns: list[str] = field(default_factory=lambda: ["text"])  # joined with text_separator when several
    text_separator: str = " "  # placed between several text columns
    label_column: str = "label"  # the column holding the label (a list of labels with multi_label)
    label_names: Optional[list[str]] = None  # names for integer labels 0..C-1 (ClassLabel names are used when present)
    multi_label: bool = False  # the label column holds lists of labels: a sigmoid per label (docs: Data, "Multi-label")
    train_split: str = "train"  # the split trained on
    validation_split: str = "validation"  # the split that picks the best epoch; carved from train (seeded, stratified) when the data has none
    test_split: Optional[str] = "test"  # used by `evaluate` when present
    validation_size: float = 0.1  # fraction of train carved off when there is no validation split
    test_size: float = 0.1  # fraction of train carved off as a test split when the data has neither test nor validation (0: none)
    max_train_samples: Optional[int] = None  # a seeded subset of train, for quick experiments (streaming: the first N)
    streaming: bool = False  # read train as a stream, never materialized: for corpora larger than memory or disk
    streaming_sample: int = 10000  # streaming: the first N training texts train the tokenizer (and name the labels)
    shuffle_buffer: int = 10000  # streaming: examples in the shuffle buffer the stream is read through
    streaming_validation_size: int = 1000  # streaming without a validation split: the first N examples become it
    streaming_size: Optional[int] = None  # streaming: training examples per epoch, for the lr schedule; None: metadata


@dataclass
class TokenizerConfig:
    """How text becomes ids: a `tokenizers.Tokenizer` trained on the training split, or loaded."""

    kind: Literal["word", "bpe", "wordpiece", "unigram", "char"] = "word"  # word | bpe | wordpiece | unigram | char
    path: Optional[str] = None  # an existing tokenizer.json to load instead of training one
    vocab_size: int = 30000  # upper bound on the vocabulary, special tokens included
    min_frequency: int = 2  # tokens seen fewer times in train map to [UNK] (word, bpe, wordpiece)
    lowercase: bool = True  # lowercase every text before tokenizing
    normalization: Literal["none", "nfc", "nfd", "nfkc", "nfkd"] = "nfkc"  # unicode normalization: none | nfc | nfd | nfkc | nfkd
    strip_accents: bool = False  # drop combining accents after normalization
    max_length: int = 256  # tokens kept per text; longer texts are truncated
    truncation_side: Literal["right", "left"] = "right"  # right keeps the beginning of a text, left keeps its end


@dataclass
class ModelConfig:
    """Embedding -> recurrent encoder -> pooling -> classifier head."""

    cell: Literal["rnn", "lstm", "gru"] = "lstm"  # rnn | lstm | gru
    nonlinearity: Literal["tanh", "relu"] = "tanh"  # for cell=rnn only: tanh | relu
    embedding_dim: int = 128  # width of the token embedding
    hidden_size: int = 128  # per direction
    num_layers: int = 1  # stacked recurrent layers
    bidirectional: bool = True  # also read every text right to left
    dropout: float = 0.3  # between stacked RNN layers (only when num_layers > 1) and before the head
    embedding_dropout: float = 0.2  # on the embedded tokens
    pooling: Literal["last", "mean", "max", "attention"] = "max"  # over real tokens only: last | mean | max | attention
    head_hidden_size: int = 0  # 0: a single linear layer; >0: one hidden layer of this width
    head_activation: Literal["relu", "tanh", "gelu"] = "relu"  # for the head's hidden layer: relu | tanh | gelu
    # How batches of mixed lengths run; every choice gives the same results, only speed differs.
    # auto: masked on the CPU when a batch has little padding or is long, packed otherwise and on CUDA.
    recurrence: Literal["auto", "masked", "packed"] = "auto"  # auto | masked | packed
    # Initial embedding rows from a GloVe/word2vec/fastText text file (.txt, .vec, .gz) or a named source
    # (glove-6b-50d); embedding_dim must equal the vectors' dimension. None: random initialization.
    pretrained_vectors: Optional[str] = None  # a vectors file or a named source; None: random initialization
    freeze_embeddings: Union[bool, int] = False  # false: fine-tuned; true: frozen; N: frozen for epochs 1..N, then fine-tuned
    # A wide n-gram branch beside the RNN (docs/accuracy.md): hashed n-grams of the token ids, averaged per text,
    # with one weight per label each; its logits add to the head's.
    ngram_orders: list[int] = field(default_factory=list)  # n-gram orders of the branch, e.g. [1, 2]; empty: no branch
    ngram_buckets: int = 1000000  # hash buckets shared by n-grams of order >= 2 (unigrams use their token ids)
    ngram_init: Literal["nb", "zeros"] = "nb"  # nb: Naive-Bayes log-count ratios of the training split (NBSVM) | zeros
    ngram_dropout: float = 0.0  # the share of a text's n-grams the branch ignores in a training step
    ngram_aux_loss: bool = True  # the RNN head's and the branch's own logits get a loss too: a branch that fits train cannot starve the RNN


@dataclass
class TrainConfig:
    """The optimization loop: AdamW, schedule, clipping, early stopping, precision, device."""

    epochs: int = 10  # passes over the training split (early stopping can end a run sooner)
    batch_size: int = 64  # examples per training step (per process under torchrun)
    eval_batch_size: int = 256  # examples per evaluation batch
    lr: float = 2e-3  # AdamW's peak learning rate
    weight_decay: float = 0.01  # AdamW's decoupled weight decay, on matrices only
    schedule: Literal["constant", "linear", "cosine", "plateau"] = "linear"  # constant | linear | cosine (each after warm-up) | plateau (reduce on plateau)
    warmup_ratio: float = 0.05  # fraction of all steps spent warming the learning rate up from 0
    plateau_factor: float = 0.5  # schedule=plateau: lr multiplier when the monitored metric stalls
    plateau_patience: int = 1  # schedule=plateau: epochs without improvement before the lr drops
    max_grad_norm: Optional[float] = 1.0  # gradient-norm clipping; None disables it
    label_smoothing: float = 0.0  # cross-entropy label smoothing (single-label)
    monitor: Literal["auto", "loss", "accuracy", "macro_f1"] = "auto"  # validation metric that picks the best epoch and drives early stopping; auto: macro_f1 for imbalanced or multi-label data, else accuracy
    class_weights: Any = None  # None/"none" | "auto" (inverse label frequency in train) | a list, one weight per label
    sampler: Literal["bucket", "weighted"] = "bucket"  # bucket: every example once per epoch | weighted: draws inverse to class frequency
    patience: Optional[int] = 3  # epochs without improvement before stopping; None trains every epoch
    bucketing: Literal["exact", "pool"] = "pool"  # pool: shuffled pools sorted by length | exact: batches of one length where possible
    bucket_pool: int = 50  # bucketing=pool (and streaming): batches per length-sorting pool
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # fp32 | bf16 (autocast, CPU or CUDA) | fp16 (autocast + grad scaling, CUDA)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: Union[int, Literal["auto"], None] = "auto"  # torch intra-op threads: auto (the usable CPUs, then the fastest count, timed while training: docs/performance.md) | N | null (torch's default)
    log_every: int = 50  # steps between progress-bar updates of the running loss
    checkpoint_every: Optional[int] = 1000  # steps between resumable checkpoints (also at every epoch end); None: epoch ends only
    on_nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/inf loss or gradient: stop (naming the step) | skip the step
    tensorboard: Union[bool, Literal["auto"]] = "auto"  # scalars to RUN_DIR/tensorboard: auto (when installed) | true | false
    ngram_lr: Optional[float] = None  # peak learning rate of the n-gram branch (model.ngram_orders); None: train.lr
    baseline: bool = False  # also fit the fast n-gram baseline (section baseline) and record it in results.json
    # Starting from a pretrained language model (docs/pretraining.md): its tokenizer, embedding and encoder.
    init_from: Optional[str] = None  # a run directory (seqnlp pretrain, or any seqnlp run) whose tokenizer, embedding and encoder this run starts from; None: random initialization
    pretrain: bool = False  # first pretrain a language model as the pretrain section says, into RUN_DIR/pretrained, and start from it
    gradual_unfreezing: int = 0  # with a pretrained start: 0 trains every layer from the start; N: the head alone for N epochs, then one more layer group (top recurrent layer first, the embedding last) every N epochs
    layer_lr_decay: float = 1.0  # each layer group below the head learns at this times the rate of the group above (ULMFiT's 1/2.6 = 0.38); 1.0: one rate


@dataclass
class BaselineConfig:
    """The fast linear baseline of `seqnlp baseline` and `train.baseline`: TF-IDF n-grams -> a linear classifier."""

    classifier: Literal["logistic", "svm"] = "svm"  # svm (linear SVM) | logistic (regression), from scikit-learn
    word_ngrams: int = 2  # word n-grams of orders 1..N
    char_ngrams: int = 0  # 0: none; N >= 2: also character n-grams of orders 2..N inside word boundaries
    min_df: int = 2  # n-grams in fewer training texts are dropped
    c: float = 0.5  # inverse regularization strength (scikit-learn's C)


@dataclass
class CalibrationConfig:
    """What is fitted on the validation split after training (calibration.json): a temperature, a binary decision."""

    temperature: bool = True  # fit temperature scaling (one scalar minimizing validation NLL); false: keep temperature 1
    threshold: Literal["argmax", "f1", "precision"] = "argmax"  # binary runs: argmax (most probable label) | f1 (best validation F1) | precision (most recall at target_precision)
    target_precision: float = 0.95  # threshold=precision: the validation precision of positive_label to reach
    positive_label: Optional[str] = None  # binary runs: the label the threshold is on; None: the second label of labels.json


@dataclass
class PretrainConfig:
    """The language-model stage: ``seqnlp pretrain``, or ``train`` with train.pretrain (see docs/pretraining.md)."""

    epochs: int = 2  # passes of the language model over its texts (train.patience can end it sooner)
    lr: float = 2e-3  # AdamW's peak learning rate for the language model (train.schedule and warmup_ratio apply)
    batch_size: int = 32  # texts per language-model step
    text_files: list[str] = field(default_factory=list)  # unlabelled texts read besides the training split: .txt one text a line; .jsonl/.csv/.tsv by data.text_columns
    dropout: Optional[float] = 0.1  # the language model's dropout (embedding, between layers, before the softmax); None: model.embedding_dropout and model.dropout
    cutoffs: list[int] = field(default_factory=lambda: [250, 1000, 5000])  # adaptive softmax: token ids below the first cutoff form its head, the rarer ones clusters between cutoffs


@dataclass
class Config:
    """Everything a run needs; saved as config.yaml in the run directory."""

    data: DataConfig = field(default_factory=DataConfig)  # the examples
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # text -> ids
    model: ModelConfig = field(default_factory=ModelConfig)  # ids -> logits
    train: TrainConfig = field(default_factory=TrainConfig)  # the optimization loop
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)  # the language-model stage (train.pretrain, seqnlp pretrain)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)  # fitted on validation after training
    baseline: BaselineConfig = field(default_factory=BaselineConfig)  # the fast n-gram baseline beside the RNN
    seed: int = 13  # seeds data splits, batch order, initialization and dropout
    output_dir: Optional[str] = None  # the run directory (config, tokenizer, labels, weights, metrics); None: runs/<cell>-<time>

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write as YAML; relative local paths are written absolute, since a config file's are read from its folder."""
        saved = copy.deepcopy(self)
        resolve_paths(saved, Path("."))
        Path(path).write_text(yaml.safe_dump(saved.to_dict(), sort_keys=False), encoding="utf-8")


# Valid choices per dotted key, read from the Literal types above; checked by validate().
CHOICES: dict[str, tuple[str, ...]] = literal_fields(Config)
CELLS, NONLINEARITIES, POOLINGS = CHOICES["model.cell"], CHOICES["model.nonlinearity"], CHOICES["model.pooling"]
RECURRENCES, ACTIVATIONS = CHOICES["model.recurrence"], CHOICES["model.head_activation"]
TOKENIZER_KINDS, NORMALIZATIONS = CHOICES["tokenizer.kind"], CHOICES["tokenizer.normalization"]
TRUNCATION_SIDES, SCHEDULES, MONITORS = CHOICES["tokenizer.truncation_side"], CHOICES["train.schedule"], CHOICES["train.monitor"]
SAMPLERS, PRECISIONS, BUCKETINGS = CHOICES["train.sampler"], CHOICES["train.precision"], CHOICES["train.bucketing"]
ON_NONFINITE, NGRAM_INITS = CHOICES["train.on_nonfinite"], CHOICES["model.ngram_init"]
THRESHOLD_RULES, BASELINE_CLASSIFIERS = CHOICES["calibration.threshold"], CHOICES["baseline.classifier"]


