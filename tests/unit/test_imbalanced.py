"""Imbalanced data: class-weighted cross-entropy (balanced weights as scikit-learn computes them),
the class-balanced training sampler, per-class recall in the test metrics. No training."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TinyNet
from sklearn.utils.class_weight import compute_class_weight

from cvexp.theory import losses
from cvexp.data.base import BalancedSampler
from cvexp.data.demo_wildlife import write_demo_wildlife
from cvexp.data.wildlife import WildlifeDataModule
from cvexp.errors import ConfigError
from cvexp.tasks.classification import ClassificationModule

COUNTS = [978, 1049, 1446, 975, 1209, 1213, 1124, 1539, 1435, 700]  # the Russian Wildlife Dataset
CLASSES = [f"c{i}" for i in range(10)]


def test_balanced_weights_equal_sklearn():
    y = np.repeat(np.arange(10), COUNTS)
    ours = losses.balanced_class_weights(y, 10).numpy()
    ref = compute_class_weight("balanced", classes=np.arange(10), y=y)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    assert ours[9] > 1 > ours[7]  # people (700) weighs most, sika_deer (1539) least
    with pytest.raises(ValueError, match="no training samples"):
        losses.balanced_class_weights([0, 0, 2], 3)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weighted_cross_entropy_equals_torch(eps, reduction):
    g = torch.Generator().manual_seed(0)
    z, y, w = torch.randn(16, 5, generator=g) * 3, torch.randint(0, 5, (16,), generator=g), torch.rand(5, generator=g)
    ours = losses.cross_entropy(z, y, label_smoothing=eps, reduction=reduction, weight=w)
    ref = F.cross_entropy(z, y, weight=w, label_smoothing=eps, reduction=reduction)
    torch.testing.assert_close(ours, ref)
    seg_z, seg_y = torch.randn(2, 5, 4, 4, generator=g), torch.randint(0, 5, (2, 4, 4), generator=g)
    seg_y[0, 0] = 255
    torch.testing.assert_close(losses.cross_entropy(seg_z, seg_y, eps, 255, reduction, w),
                               F.cross_entropy(seg_z, seg_y, w, ignore_index=255, reduction=reduction,
                                               label_smoothing=eps))
    with pytest.raises(ValueError, match="one value per class"):
        losses.cross_entropy(z, y, weight=torch.ones(4))




class LabelsOnly:
    def __init__(self, labels):
        self._labels = labels

    def split_labels(self, split):
        return self._labels if split == "train" else None


def test_class_weights_in_the_task():
    names = ["a", "b", "c"]
    plain = ClassificationModule(TinyNet(), names)
    assert plain.class_weight is None and "class_weight" not in plain.state_dict()
    m = ClassificationModule(TinyNet(), names, class_weights="balanced")
    labels = [0] * 6 + [1] * 3 + [2] * 1
    w = m.set_balanced_weights(LabelsOnly(labels))
    np.testing.assert_allclose(w.numpy(), compute_class_weight("balanced", classes=np.arange(3), y=labels), rtol=1e-6)
    assert torch.equal(m.state_dict()["class_weight"], w)  # saved with every checkpoint
    z, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    torch.testing.assert_close(m.loss(z, y), F.cross_entropy(z, y, weight=w))
    explicit = ClassificationModule(TinyNet(), names, class_weights=[1.0, 2.0, 0.5])
    torch.testing.assert_close(explicit.loss(z, y), F.cross_entropy(z, y, weight=torch.tensor([1.0, 2.0, 0.5])))
    for bad in ("inverse", [1.0, 2.0], [1.0, -1.0, 1.0]):
        with pytest.raises(ConfigError, match="task.class_weights"):
            ClassificationModule(TinyNet(), names, class_weights=bad)
    with pytest.raises(ConfigError, match="training labels"):
        m.set_balanced_weights(LabelsOnly(None))


def test_balanced_sampler_draws_classes_evenly():
    y = np.repeat(np.arange(10), [c // 10 for c in COUNTS])  # 97..153 images per class
    rare = np.repeat([0, 1], [950, 50])  # and a 19:1 imbalance
    for labels in (y, rare):
        s = BalancedSampler(labels.tolist(), num_samples=20000, seed=0)
        drawn = np.bincount(labels[list(s)], minlength=labels.max() + 1) / 20000
        assert np.allclose(drawn, 1 / len(drawn), atol=0.015), drawn
    s = BalancedSampler(y.tolist(), seed=1)
    first = list(s)
    assert len(first) == len(y) and first == list(BalancedSampler(y.tolist(), seed=1))  # seeded: runs repeat
    assert len(set(first)) < len(y)  # with replacement
    s.set_epoch(1)
    second = list(s)
    assert second != first  # a new draw each epoch (Lightning calls set_epoch) ...
    resumed = BalancedSampler(y.tolist(), seed=1)
    resumed.set_epoch(1)
    assert list(resumed) == second  # ... that a resumed run repeats
    assert list(s) not in (first, second)  # a pass without set_epoch moves on


def test_datamodule_sampler(tmp_path):
    root = write_demo_wildlife(tmp_path / "demo", n_images=100)
    dm = WildlifeDataModule(root=str(root), image_size=16, num_workers=0, batch_size=8, sampler="balanced", seed=3)
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, BalancedSampler) and loader.sampler.seed == 3
    assert dm.split_labels("train") == dm.dataset("train").labels
    assert not isinstance(dm.val_dataloader().sampler, BalancedSampler)
    plain = WildlifeDataModule(root=str(root), image_size=16, num_workers=0, batch_size=8)
    assert type(plain.train_dataloader().sampler).__name__ == "RandomSampler"
    with pytest.raises(ConfigError, match="data.sampler"):
        WildlifeDataModule(root=str(root), sampler="oversample")


def test_schema_checks_the_new_keys(compose_cfg):
    from cvexp.engine.schema import validate

    validate(compose_cfg("train", ["data.sampler=balanced", "task.class_weights=balanced", "data.fold=0",
                                   "data.num_folds=5"]))
    for bad, key in (("data.sampler=oversample", "data.sampler"), ("data.num_folds=1", "data.num_folds"),
                     ("data.fold=-1", "data.fold"), ("task.class_weights=[1,-2]", "task.class_weights")):
        with pytest.raises(ConfigError, match=key):
            validate(compose_cfg("train", [bad]))
