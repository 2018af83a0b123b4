"""Integrated Gradients and occlusion (``seqnlp.explain.attribution``): completeness, convergence with the steps,
occlusion equal to deleting the word from the text, the cue word found, and the model left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqnlp.config import ModelConfig
from seqnlp.explain.attribution import integrated_gradients, occlusion, target_score
from seqnlp.model import RNNClassifier
from seqnlp.predict import Classifier


def random_model(cell: str = "gru", pooling: str = "max", labels: int = 3, seed: int = 0,
                 ngram_orders: tuple[int, ...] = ()) -> RNNClassifier:
    """An untrained model with large weights, so its logits curve along the interpolation path."""
    torch.manual_seed(seed)
    config = ModelConfig(cell=cell, embedding_dim=8, hidden_size=8, bidirectional=True, pooling=pooling,
                         dropout=0.5, embedding_dropout=0.5,  # dropout must be off while explaining
                         ngram_orders=list(ngram_orders), ngram_buckets=64)
    model = RNNClassifier(config, 30, labels)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    return model.train()


IDS = torch.tensor([4, 9, 2, 17, 5, 28, 3])


def test_the_target_is_the_labels_log_odds() -> None:
    logits = torch.tensor([[1.0, -0.5, 2.0], [0.0, 0.0, 0.0]])
    probs = torch.softmax(logits, dim=1)
    expected = torch.log(probs[:, 2] / (1 - probs[:, 2]))
    torch.testing.assert_close(target_score(logits, 2, multi_label=False), expected)
    binary = torch.tensor([[0.3, 1.7]])
    torch.testing.assert_close(target_score(binary, 1, multi_label=False), torch.tensor([1.4]))
    torch.testing.assert_close(target_score(logits, 0, multi_label=True), logits[:, 0])  # a sigmoid's own logit


@pytest.mark.parametrize("cell, pooling", [("lstm", "max"), ("gru", "attention"), ("rnn", "last")])
def test_attributions_add_up_to_the_logit_difference(cell: str, pooling: str) -> None:
    model = random_model(cell, pooling)
    attributions, logit, baseline, _ = integrated_gradients(model, IDS, 1, False, steps=512, rounds=0)
    assert attributions.shape == (len(IDS),)
    assert abs(float(attributions.sum()) - (logit - baseline)) < 0.01 * max(abs(logit - baseline), 1.0)
    with torch.no_grad():
        expected = target_score(model.eval()(IDS[None], torch.tensor([len(IDS)])), 1, False)
    assert logit == pytest.approx(float(expected), abs=1e-5)


def test_an_ngram_branch_counts_in_the_score_and_takes_no_share() -> None:
    """The branch reads ids, not embeddings: the explained score is the whole model's, the shares the RNN's."""
    model = random_model("lstm", ngram_orders=(1, 2))
    with torch.no_grad():
        torch.nn.init.normal_(model.ngrams.weight.weight, std=2.0)  # NB-like weights, not the zeros of a new one
    attributions, logit, baseline, _ = integrated_gradients(model, IDS, 1, False, steps=512, rounds=0)
    with torch.no_grad():
        expected = target_score(model.eval()(IDS[None], torch.tensor([len(IDS)])), 1, False)
    assert logit == pytest.approx(float(expected), abs=1e-5)
    assert abs(float(attributions.sum()) - (logit - baseline)) < 0.01 * max(abs(logit - baseline), 1.0)


def test_without_refinement_it_is_the_midpoint_sum_of_the_gradient() -> None:
    """A reference written out: mean over alpha_k = (k + 1/2) / S of (x - x') * grad f, summed over the embedding."""
    model = random_model("lstm").eval()
    with torch.no_grad():
        x, base = model.embedding(IDS[None]), model.embedding(torch.zeros_like(IDS)[None])
    expected = torch.zeros(len(IDS))
    for k in range(8):
        point = (base + (k + 0.5) / 8 * (x - base)).requires_grad_(True)
        score = target_score(model.from_embeddings(point, torch.tensor([len(IDS)])), 2, False)
        (grad,) = torch.autograd.grad(score.sum(), point)
        expected += ((x - base) * grad)[0].sum(dim=1) / 8
    attributions, _, _, points = integrated_gradients(model, IDS, 2, False, steps=8, rounds=0)
    torch.testing.assert_close(attributions, expected.detach(), atol=1e-5, rtol=1e-4)
    assert points == 8


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_refinement_converges_where_equal_steps_do_not(cell: str) -> None:
    model = random_model(cell)
    uniform, logit, baseline, _ = integrated_gradients(model, IDS, 0, False, steps=8, rounds=0)
    refined, _, _, points = integrated_gradients(model, IDS, 0, False, steps=8)
    difference = logit - baseline
    assert abs(float(refined.sum()) - difference) <= 0.01 * max(abs(difference), 1.0) + 1e-6  # within TOLERANCE
    assert abs(float(refined.sum()) - difference) <= abs(float(uniform.sum()) - difference)
    fine = integrated_gradients(model, IDS, 0, False, steps=1024, rounds=0)[0]  # what refinement should approach
    assert float((refined - fine).abs().max()) < 0.05 * float(fine.abs().max())
    assert 8 <= points <= 8 + 16 * 2 * 2  # at most steps / 4 = 2 segments halved per round, 2 points each


def test_explaining_leaves_the_model_as_it_was() -> None:
    model = random_model()
    flags = [p.requires_grad for p in model.parameters()]
    first = integrated_gradients(model, IDS, 2, False, steps=16)[0]
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(integrated_gradients(model, IDS, 2, False, steps=16)[0], first)  # no dropout: repeatable


def test_occlusion_is_the_logit_lost_without_each_token() -> None:
    model = random_model("lstm").eval()
    lost = occlusion(model, IDS, 1, False, empty_id=1)
    with torch.no_grad():
        full = target_score(model(IDS[None], torch.tensor([len(IDS)])), 1, False)
        for t in range(len(IDS)):
            without = torch.cat([IDS[:t], IDS[t + 1:]])
            expected = full - target_score(model(without[None], torch.tensor([len(without)])), 1, False)
            assert float(lost[t]) == pytest.approx(float(expected), abs=1e-5)
    torch.testing.assert_close(occlusion(model, IDS, 1, False, empty_id=1, batch_size=2), lost)
    one = occlusion(model, IDS[:1], 1, False, empty_id=1)  # a one-token text becomes the empty text's token
    with torch.no_grad():
        alone, empty = (target_score(model(torch.tensor([[i]]), torch.tensor([1])), 1, False) for i in (4, 1))
    assert float(one[0]) == pytest.approx(float(alone - empty), abs=1e-5)


def test_on_the_toy_task_both_methods_single_out_the_cue_word(toy_run: Path) -> None:
    clf = Classifier.load(toy_run, device="cpu")
    for text, label in (("the film was great and the plot", "pos"), ("this movie is awful really", "neg")):
        ids = torch.tensor(clf.tokenizer.encode(text).ids)
        cue = clf.tokenizer.encode(text).tokens.index("great" if label == "pos" else "awful")
        target = clf.label_names.index(label)
        attributions, _, _, _ = integrated_gradients(clf.model, ids, target, False)
        lost = occlusion(clf.model, ids, target, False, empty_id=1)
        assert int(attributions.argmax()) == cue and float(attributions[cue]) > 0
        assert int(lost.argmax()) == cue and float(lost[cue]) > 0
        # Occlusion of the word is the same as the model's verdict on the text without it, as text.
        words = text.split()
        shorter = " ".join(words[:cue] + words[cue + 1:])
        expected = target_score(clf.logits([text]), target, False) - target_score(clf.logits([shorter]), target, False)
        assert float(lost[cue]) == pytest.approx(float(expected), abs=1e-5)
