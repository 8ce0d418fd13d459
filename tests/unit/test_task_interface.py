"""Every task module has the same small interface (tasks/base.py), and entry points use it instead
of comparing task names: what it takes from the data, its headline metric, how evaluation options
apply to it."""

from __future__ import annotations

import types

import pytest
import torch

from cvexp.metrics import names as M
from cvexp.errors import CheckpointError, ConfigError
from cvexp.tasks import TASKS, task_class
from cvexp.tasks.classification import ClassificationModule
from cvexp.tasks.segmentation import SegmentationModule


def test_task_names_map_to_their_classes():
    assert task_class("classification") is ClassificationModule
    assert task_class("segmentation") is SegmentationModule
    for name in TASKS:
        cls = task_class(name)
        assert cls.task == name
        assert cls.headline in M.all_names() or M.name(M.TEST, cls.headline) in M.all_names()
    with pytest.raises(CheckpointError, match="unknown task 'detection'"):
        task_class("detection")


def test_data_objects():
    dm = types.SimpleNamespace(class_names=("a", "b"), palette=[(1, 2, 3), (4, 5, 6)],
                               target_space=types.SimpleNamespace(name="cityscapes"))
    assert ClassificationModule.data_objects(dm) == {"class_names": ["a", "b"]}
    assert SegmentationModule.data_objects(dm) == {"class_names": ["a", "b"], "palette": dm.palette,
                                                   "label_space": "cityscapes"}


def test_evaluation_options_a_classifier_refuses():
    m = ClassificationModule(torch.nn.Linear(2, 2), ["a", "b"])
    m.configure_evaluation(None, "val")  # nothing to configure
    with pytest.raises(ConfigError, match="drop eval_mode"):
        m.configure_evaluation({"mode": "sliding"})
    with pytest.raises(ConfigError, match="drop space="):
        ClassificationModule.evaluation_data("cityscapes")
    assert ClassificationModule.evaluation_data(None) == {}


def test_evaluation_options_segmentation_takes():
    m = SegmentationModule(torch.nn.Conv2d(3, 2, 1), ["a", "b"])
    m.configure_evaluation({"mode": "sliding", "crop": 32}, "val")
    assert m.eval_mode.mode == "sliding" and m.scored_split == "val"
    assert SegmentationModule.evaluation_data("cityscapes") == {"target_space": "cityscapes"}


def test_best_metrics_come_back_with_the_checkpoint_state():
    """A resumed run with no epoch left still reports its best validation score."""
    import math

    c = ClassificationModule(torch.nn.Linear(2, 2), ["a", "b"])
    assert c.best_metrics() == {}
    c.val_f1_best.update(torch.tensor(0.4))
    c.val_f1_best.update(torch.tensor(0.7))
    fresh = ClassificationModule(torch.nn.Linear(2, 2), ["a", "b"])
    fresh.load_best_state(c.best_state())
    assert fresh.best_metrics() == {M.VAL_F1_MACRO_BEST: pytest.approx(0.7)}
    s = SegmentationModule(torch.nn.Conv2d(3, 2, 1), ["a", "b"])
    assert s.best_metrics() == {} and s.best_miou == -math.inf
    s.load_best_state({"best_miou": 0.42})
    assert s.best_metrics() == {M.VAL_MIOU_BEST: 0.42}
