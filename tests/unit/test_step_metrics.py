"""The per-step fast paths give the numbers of their references: the fused training cross-entropy
equals cvexp.theory.losses.cross_entropy, and the confusion-matrix scores equal torchmetrics' and
scikit-learn's (absent classes, weighted means, DDP-style sums of shards)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassRecall

from cvexp.theory import losses
from cvexp.metrics import names as M
from cvexp.metrics.classification import ClassificationConfusion, confusion_counts, scores_from_confusion


@pytest.mark.parametrize("shape", [(16, 5), (4, 5, 6, 7)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_training_cross_entropy_equals_reference(shape, smoothing, weighted):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    target_shape = (shape[0], *shape[2:])
    target = torch.randint(0, shape[1], target_shape, generator=g)
    target[torch.rand(target_shape, generator=g) < 0.2] = 255
    weight = torch.rand(shape[1], generator=g, dtype=torch.float64) + 0.1 if weighted else None
    ref = losses.cross_entropy(logits, target, label_smoothing=smoothing, ignore_index=255, weight=weight)
    fast = losses.training_cross_entropy(logits, target, label_smoothing=smoothing, ignore_index=255, weight=weight)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-12)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    losses.cross_entropy(a, target, label_smoothing=smoothing, ignore_index=255, weight=weight).backward()
    losses.training_cross_entropy(b, target, label_smoothing=smoothing, ignore_index=255, weight=weight).backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_training_cross_entropy_all_ignored_is_zero(weighted):
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255)
    loss = losses.training_cross_entropy(logits, target, ignore_index=255,
                                         weight=torch.ones(3) if weighted else None)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_training_cross_entropy_soft_targets_fall_back():
    logits = torch.randn(6, 4)
    soft = torch.softmax(torch.randn(6, 4), 1)
    torch.testing.assert_close(losses.training_cross_entropy(logits, soft), losses.cross_entropy(logits, soft))


def test_training_cross_entropy_upcasts_half_precision():
    logits = torch.randn(8, 3).to(torch.bfloat16)
    target = torch.randint(0, 3, (8,))
    out = losses.training_cross_entropy(logits, target)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, losses.cross_entropy(logits, target))


def _random_case(seed: int, n: int = 200, c: int = 7, absent: tuple[int, ...] = (5,)):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    p = np.where(rng.random(n) < 0.6, y, rng.integers(0, c, n))
    for a in absent:  # a class in neither truth nor predictions
        y[y == a] = 0
        p[p == a] = 1
    p[:3] = 6  # class 6: predicted but (maybe) never true
    return torch.as_tensor(p), torch.as_tensor(y), c


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_equal_torchmetrics_and_sklearn(seed):
    p, y, c = _random_case(seed)
    s = scores_from_confusion(confusion_counts(p, y, c))
    assert s[M.ACC].item() == pytest.approx(MulticlassAccuracy(c, average="micro")(p, y).item(), abs=1e-7)
    assert s[M.F1_MACRO].item() == pytest.approx(MulticlassF1Score(c, average="macro")(p, y).item(), abs=1e-7)
    assert s[M.F1_WEIGHTED].item() == pytest.approx(MulticlassF1Score(c, average="weighted")(p, y).item(), abs=1e-7)
    assert s[M.RECALL_MACRO].item() == pytest.approx(MulticlassRecall(c, average="macro")(p, y).item(), abs=1e-7)
    np.testing.assert_allclose(s[M.F1].numpy(), MulticlassF1Score(c, average=None)(p, y).numpy(), atol=1e-7)
    np.testing.assert_allclose(s[M.RECALL].numpy(), MulticlassRecall(c, average=None)(p, y).numpy(), atol=1e-7)
    # scikit-learn over the classes that occur (its macro average uses the labels it sees)
    assert s[M.F1_MACRO].item() == pytest.approx(skm.f1_score(y, p, average="macro", zero_division=0), abs=1e-12)
    assert s[M.F1_WEIGHTED].item() == pytest.approx(skm.f1_score(y, p, average="weighted", zero_division=0),
                                                    abs=1e-12)


def test_metric_sums_shards_exactly():
    """Uneven batches and a DDP-style sum of two processes' states give the one-pass matrix."""
    p, y, c = _random_case(3, n=101)
    whole = ClassificationConfusion(c)
    whole.update(p, y)
    shards = [ClassificationConfusion(c), ClassificationConfusion(c)]
    for i, (ps, ys) in enumerate(zip(p.split(17), y.split(17))):
        shards[i % 2].update(torch.nn.functional.one_hot(ps, c).float(), ys)  # logits are argmaxed
    summed = shards[0].confmat + shards[1].confmat
    assert torch.equal(summed, whole.confmat)
    assert int(whole.confmat.sum()) == 101
    out = whole.compute()
    assert torch.equal(out["confusion"], whole.confmat)
    assert out[M.ACC].item() == pytest.approx(float((p == y).double().mean()), abs=1e-12)


def test_empty_stage_scores_zero_not_nan():
    s = scores_from_confusion(torch.zeros(3, 3, dtype=torch.long))
    assert all(torch.isfinite(v).all() for v in s.values())
