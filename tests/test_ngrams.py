"""The wide n-gram branch (seqnlp.ngrams): shapes, hashing range, padding invariance, gradients, Naive-Bayes
initialization, and a toy task learned through the full model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from seqnlp.config import ModelConfig
from seqnlp.model import RNNClassifier
from seqnlp.ngrams import NgramBranch

VOCAB, BUCKETS, LABELS = 40, 97, 3


def padded_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (len(lengths), max(lengths)), generator=generator)  # [B, T]
    lens = torch.tensor(lengths)
    ids[torch.arange(max(lengths))[None, :] >= lens[:, None]] = 0
    return ids, lens


def random_branch(orders: list[int], dropout: float = 0.0) -> NgramBranch:
    torch.manual_seed(0)
    branch = NgramBranch(orders, VOCAB, BUCKETS, LABELS, dropout)
    torch.nn.init.normal_(branch.weight.weight)
    return branch


@pytest.mark.parametrize("orders", [[1], [2], [1, 2], [1, 2, 3], [3, 5]])
def test_features_count_the_ngrams_inside_each_text(orders: list[int]) -> None:
    branch = random_branch(orders)
    ids, lens = padded_batch([5, 1, 3])
    rows, mask = branch.features(ids, lens)
    assert rows.shape == mask.shape == (3, 5 * len(orders))
    expected = [sum(max(0, length - n + 1) for n in orders) for length in (5, 1, 3)]
    assert mask.sum(dim=1).tolist() == expected
    assert int(rows.min()) >= 0 and int(rows.max()) < branch.weight.num_embeddings
    if 1 in orders:  # unigrams keep their own ids; hashed n-grams come after the vocabulary
        assert torch.equal(rows[:, :5], ids)
    higher = rows[:, 5:] if 1 in orders else rows
    assert higher.numel() == 0 or int(higher.min()) >= branch.offset


def test_logits_have_one_column_per_label_and_are_sqrt_normalized() -> None:
    branch = NgramBranch([1], VOCAB, BUCKETS, LABELS)
    with torch.no_grad():
        branch.weight.weight.fill_(1.0)
    ids, lens = padded_batch([4, 9])
    logits = branch(ids, lens)
    assert logits.shape == (2, LABELS)
    assert_close(logits[:, 0], torch.tensor([4.0, 9.0]).sqrt())  # 4 rows of 1 -> 4 / sqrt(4)


@pytest.mark.parametrize("orders", [[1, 2], [1, 2, 3], [2, 3]])
def test_a_text_alone_and_in_a_padded_batch_gives_the_same_logits(orders: list[int]) -> None:
    cfg = ModelConfig(embedding_dim=8, hidden_size=6, ngram_orders=orders, ngram_buckets=BUCKETS, dropout=0.0,
                      embedding_dropout=0.0)
    torch.manual_seed(0)
    model = RNNClassifier(cfg, VOCAB, LABELS).eval()
    torch.nn.init.normal_(model.ngrams.weight.weight)
    ids, lens = padded_batch([7, 2, 5, 1])
    ids_garbage = ids.clone()
    ids_garbage[ids == 0] = 3  # what padding holds must not matter either
    with torch.no_grad():
        batch = model(ids, lens)
        assert_close(model(ids_garbage, lens), batch, atol=1e-6, rtol=0)
        for i, length in enumerate(lens.tolist()):
            alone = model(ids[i: i + 1, :length], lens[i: i + 1])
            assert_close(alone[0], batch[i], atol=1e-6, rtol=0)


def test_gradients_reach_the_branch_and_the_encoder() -> None:
    cfg = ModelConfig(embedding_dim=8, hidden_size=6, ngram_orders=[1, 2], ngram_buckets=BUCKETS)
    model = RNNClassifier(cfg, VOCAB, LABELS).train()
    ids, lens = padded_batch([6, 3])
    model(ids, lens).sum().backward()
    grad = model.ngrams.weight.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    rows, mask = model.ngrams.features(ids, lens)
    untouched = torch.ones(grad.shape[0], dtype=torch.bool)
    untouched[rows[mask]] = False
    assert grad[untouched].abs().sum() == 0  # only the texts' n-grams learn
    assert model.encoder.rnn.weight_ih_l0.grad.abs().sum() > 0


def test_ngram_dropout_acts_in_training_only() -> None:
    branch = random_branch([1, 2], dropout=0.5)
    ids, lens = padded_batch([30, 30])
    branch.eval()
    assert torch.equal(branch(ids, lens), branch(ids, lens))
    branch.train()
    torch.manual_seed(1)
    assert not torch.equal(branch(ids, lens), branch.eval()(ids, lens))


def test_naive_bayes_init_weighs_each_ngram_by_its_class_ratio() -> None:
    """Word 5 only in class-0 texts, word 6 only in class-1 texts, word 7 in both; 8 never seen."""
    branch = NgramBranch([1, 2], VOCAB, BUCKETS, 2)
    ids = torch.tensor([[5, 7, 5], [5, 7, 0], [6, 7, 6], [6, 7, 0]])
    lens = torch.tensor([3, 2, 3, 2])
    labels = torch.tensor([0, 0, 1, 1])
    branch.init_naive_bayes([(ids[:2], lens[:2], labels[:2]), (ids[2:], lens[2:], labels[2:])])
    table = branch.weight.weight.detach()
    assert table[5, 0] > 0 > table[5, 1] and table[6, 1] > 0 > table[6, 0]
    assert_close(table[5, 0], -table[6, 0])  # symmetric data, symmetric ratios
    assert abs(float(table[7, 0])) < float(table[5, 0])
    assert torch.equal(table[8], torch.zeros(2))  # never seen: no evidence either way
    logits = branch(ids, lens)
    assert (logits.argmax(dim=1) == labels).all()  # the initialization alone is a Naive-Bayes classifier


def test_naive_bayes_init_takes_multi_hot_labels() -> None:
    branch = NgramBranch([1], VOCAB, BUCKETS, 2)
    ids, lens = torch.tensor([[5, 6], [5, 9]]), torch.tensor([2, 2])
    branch.init_naive_bayes([(ids, lens, torch.tensor([[1.0, 1.0], [1.0, 0.0]]))])
    table = branch.weight.weight.detach()
    assert table[6, 1] > 0 > table[9, 1]


def test_a_model_with_only_the_branch_learns_the_toy_task(make_config, tmp_path: Path) -> None:
    """The toy label is a cue word: the n-gram branch with NB initialization gets it, whole model trained."""
    from seqnlp.training import train

    config = make_config(**{"model.ngram_orders": [1, 2], "model.ngram_buckets": 1000, "train.epochs": 2})
    result = train(config, progress=False)
    assert result.test is not None and result.test["accuracy"] == 1.0


def test_training_parts_add_the_heads_and_the_branchs_own_logits_with_the_auxiliary_loss() -> None:
    ids, lens = padded_batch([6, 3])
    for aux, expected in ((True, 3), (False, 1)):
        cfg = ModelConfig(embedding_dim=8, hidden_size=6, ngram_orders=[1, 2], ngram_buckets=BUCKETS, dropout=0.0,
                          embedding_dropout=0.0, ngram_aux_loss=aux)
        torch.manual_seed(0)
        model = RNNClassifier(cfg, VOCAB, LABELS).eval()
        torch.nn.init.normal_(model.ngrams.weight.weight)
        parts = model(ids, lens, parts=True)
        assert parts.shape == (expected, 2, LABELS)
        assert_close(parts[0], model(ids, lens))
        if aux:  # then the recurrent head alone and the branch alone, which sum to the logits
            assert_close(parts[2], model.ngrams(ids, lens))
            assert_close(parts[1] + parts[2], model(ids, lens))
    plain = RNNClassifier(ModelConfig(embedding_dim=8, hidden_size=6), VOCAB, LABELS).eval()
    assert plain(ids, lens, parts=True).shape == (1, 2, LABELS)  # no branch: the logits alone


def test_a_resumed_run_with_the_branch_ends_where_the_uninterrupted_one_does(make_config, tmp_path: Path) -> None:
    """Resuming restores the branch and its optimizer group from the checkpoint (NB counting runs once, fresh)."""
    from safetensors.torch import load_file

    from seqnlp.training import resume, train
    from seqnlp.training.loop import Hook

    class StopAt(Hook):
        def on_step(self, state, batch, stats) -> None:  # type: ignore[no-untyped-def]
            if state.step == 13:
                raise KeyboardInterrupt

    settings = {"model.ngram_orders": [1, 2], "model.ngram_buckets": 101, "train.ngram_lr": 0.05,
                "train.epochs": 2, "train.checkpoint_every": 1, "model.embedding_dropout": 0.1}
    reference = make_config(**settings, output_dir=str(tmp_path / "reference"))
    expected = train(reference, progress=False)
    interrupted = make_config(**settings, output_dir=str(tmp_path / "interrupted"))
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, progress=False, hooks=[StopAt()])
    got = resume(interrupted.output_dir, progress=False)
    assert got.validation["accuracy"] == expected.validation["accuracy"]
    weights = [load_file(str(Path(c.output_dir) / "model.safetensors")) for c in (reference, interrupted)]
    for name, tensor in weights[0].items():
        assert_close(weights[1][name], tensor, atol=1e-6, rtol=0, msg=name)
