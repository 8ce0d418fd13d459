"""Segmentation metrics: the Cityscapes definitions, checked by hand and against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from cvexp.metrics import names as M
from cvexp.analysis import seg_confusion as P
from cvexp.metrics import segmentation as S
from cvexp.errors import DataError

IGN = 255


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.long)


def test_hand_computed_three_classes():
    # truth 0 0 0 1 1 2 | 255 255
    # pred  0 0 1 1 2 2 |  1   2     (predictions on ignored pixels are no false positives)
    target = _t([0, 0, 0, 1, 1, 2, IGN, IGN])
    pred = _t([0, 0, 1, 1, 2, 2, 1, 2])
    cm = S.confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    m = S.metrics_from_confusion(cm)
    # class 0: TP 2, FP 0, FN 1; class 1: TP 1, FP 1, FN 1; class 2: TP 1, FP 1, FN 0
    np.testing.assert_allclose(m["iou"], [2 / 3, 1 / 3, 1 / 2])
    np.testing.assert_allclose(m["precision"], [1.0, 1 / 2, 1 / 2])
    np.testing.assert_allclose(m["recall"], [2 / 3, 1 / 2, 1.0])
    np.testing.assert_allclose(m["f1"], [0.8, 0.5, 2 / 3])
    assert m[M.MIOU] == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)
    assert m[M.PIXEL_ACC] == pytest.approx(4 / 6)
    assert m[M.MEAN_PRECISION] == pytest.approx(2 / 3)
    assert m[M.MEAN_RECALL] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m[M.MEAN_F1] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["truth_pixels"].tolist() == [3, 2, 1] and m["predicted_pixels"].tolist() == [2, 2, 2]
    assert set(M.SEGMENTATION_METRICS) - {M.LOSS} <= set(m)


def test_absent_class_is_nan_and_left_out_of_the_means():
    # class 1 has neither truth nor prediction; class 2 has truth but is never predicted
    cm = np.array([[5, 0, 1], [0, 0, 0], [2, 0, 0]])
    m = S.metrics_from_confusion(cm)
    assert math.isnan(m["iou"][1]) and math.isnan(m["precision"][1]) and math.isnan(m["recall"][1])
    assert math.isnan(m["f1"][1]) and not m["present"][1]
    # present but failing classes score 0, not NaN: they pull the means down
    assert m["iou"][2] == 0 and m["precision"][2] == 0 and m["recall"][2] == 0
    assert m[M.MIOU] == pytest.approx((5 / 8 + 0) / 2)
    assert m[M.MEAN_PRECISION] == pytest.approx((5 / 7 + 0) / 2)
    # predicted but no truth: IoU 0, recall 0 (present)
    m2 = S.metrics_from_confusion(np.array([[3, 1], [0, 0]]))
    assert m2["iou"][1] == 0 and m2["recall"][1] == 0 and m2["precision"][1] == 0
    assert m2[M.MIOU] == pytest.approx(3 / 8)


def test_nothing_valid_gives_nan_without_warnings():
    with np.errstate(all="raise"):
        m = S.metrics_from_confusion(np.zeros((4, 4), dtype=np.int64))
    assert all(math.isnan(m[k]) for k in (M.MIOU, M.PIXEL_ACC, M.MEAN_F1))
    assert np.isnan(m["iou"]).all()


def test_fp_counts_only_pixels_with_valid_truth():
    target = _t([[0, 0, IGN, IGN]])
    pred = _t([[0, 1, 1, 1]])
    m = S.metrics_from_confusion(S.confusion_matrix(pred, target, 2))
    assert m["predicted_pixels"].tolist() == [1, 1]  # the two predictions on void are not counted
    assert m["iou"][1] == 0.0 and m["iou"][0] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    c = 7
    target = rng.integers(0, c, size=(3, 24, 32))
    target[rng.random(target.shape) < 0.15] = IGN
    target[target == 5] = 4  # class 5 never in the truth ...
    pred = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, c, size=target.shape))
    pred[pred == IGN] = 0
    pred[pred == 6] = 3  # ... class 6 never predicted
    target[target == 6] = 2  # ... nor in the truth: absent
    cm = S.confusion_matrix(_t(pred), _t(target), c)
    valid = target != IGN
    yt, yp = target[valid], pred[valid]
    labels = list(range(c))
    np.testing.assert_array_equal(cm.numpy(), skm.confusion_matrix(yt, yp, labels=labels))
    m = S.metrics_from_confusion(cm)
    present = sorted(set(yt) | set(yp))
    assert 6 not in present and 5 in present
    assert np.isnan(m["iou"][6])
    for name, fn in (("iou", skm.jaccard_score), ("precision", skm.precision_score),
                     ("recall", skm.recall_score), ("f1", skm.f1_score)):
        ref = fn(yt, yp, labels=present, average=None, zero_division=0)
        np.testing.assert_allclose(m[name][present], ref, err_msg=name)
    assert m[M.MIOU] == pytest.approx(skm.jaccard_score(yt, yp, labels=present, average="macro", zero_division=0))
    assert m[M.MEAN_F1] == pytest.approx(skm.f1_score(yt, yp, labels=present, average="macro", zero_division=0))
    assert m[M.PIXEL_ACC] == pytest.approx(skm.accuracy_score(yt, yp))


def test_predictions_outside_the_classes_are_misses():
    target = _t([0, 0, 1, 1, IGN])
    pred = _t([0, IGN, 1, 7, IGN])
    with pytest.raises(ValueError, match="unassigned_column=True"):
        S.confusion_matrix(pred, target, 2)
    cm = S.confusion_matrix(pred, target, 2, unassigned_column=True)
    assert cm.tolist() == [[1, 0, 1], [0, 1, 1]]
    m = S.metrics_from_confusion(cm)
    # each class: TP 1, FN 1 (the unassigned pixel), FP 0 -> IoU 1/2, recall 1/2, precision 1
    np.testing.assert_allclose(m["iou"], [0.5, 0.5])
    np.testing.assert_allclose(m["precision"], [1.0, 1.0])
    assert m[M.PIXEL_ACC] == pytest.approx(0.5)
    assert m["truth_pixels"].tolist() == [2, 2]
    pairs = P.most_confused_pairs(cm, ["a", "b"], k=5)
    assert {p["predicted"] for p in pairs} == {P.UNASSIGNED}


def test_stray_label_values_raise_data_error():
    with pytest.raises(DataError, match=r"\[9\]"):
        S.confusion_matrix(_t([0, 9, 1]), _t([0, 9, 1]), 3)
    with pytest.raises(ValueError, match="shape"):
        S.confusion_matrix(_t([0, 1]), _t([0, 1, 1]), 3)


def test_ignore_index_none_counts_every_pixel():
    cm = S.confusion_matrix(_t([0, 1]), _t([0, 1]), 2, ignore_index=None)
    assert cm.sum() == 2


def test_metric_accumulates_batches_like_one_shot_and_takes_logits():
    g = torch.Generator().manual_seed(0)
    c = 5
    targets = torch.randint(0, c, (6, 16, 20), generator=g)
    targets[torch.rand(targets.shape, generator=g) < 0.1] = IGN
    logits = torch.randn(6, c, 16, 20, generator=g)
    metric = S.SegmentationConfusion(c)
    for i in range(0, 6, 2):
        metric.update(logits[i:i + 2], targets[i:i + 2])
    out = metric.compute()
    one_shot = S.confusion_matrix(logits.argmax(1), targets, c)
    assert torch.equal(out["confusion"][:, :c], one_shot)
    ref = S.metrics_from_confusion(one_shot)
    for k in (M.MIOU, M.PIXEL_ACC, M.MEAN_PRECISION, M.MEAN_RECALL, M.MEAN_F1):
        assert out[k].ndim == 0 and float(out[k]) == pytest.approx(ref[k])
    np.testing.assert_allclose(out["iou"].numpy(), ref["iou"])
    metric.reset()
    assert metric.confmat.sum() == 0


def test_metric_states_merge_by_sum_as_in_ddp():
    g = torch.Generator().manual_seed(1)
    p, t = torch.randint(0, 4, (2, 8, 8), generator=g), torch.randint(0, 4, (2, 8, 8), generator=g)
    a, b, both = S.SegmentationConfusion(4), S.SegmentationConfusion(4), S.SegmentationConfusion(4)
    a.update(p[:1], t[:1])
    b.update(p[1:], t[1:])
    both.update(p, t)
    a.merge_state(b)  # applies dist_reduce_fx, as the DDP sync does
    assert torch.equal(a.compute()["confusion"], both.compute()["confusion"])


def test_sort_based_count_matches_bincount():
    idx = torch.randint(0, 50, (1000,))
    assert torch.equal(S._count_sorted(idx, 60), torch.bincount(idx, minlength=60))


def test_per_image_iou():
    target = _t([[[0, 0], [1, 1]], [[0, 0], [0, IGN]], [[IGN, IGN], [IGN, IGN]]])
    pred = _t([[[0, 1], [1, 1]], [[0, 0], [0, 2]], [[0, 1], [2, 0]]])
    r = S.per_image_iou(pred, target, 3)
    assert r.iou.shape == (3, 3) and r.miou.shape == (3,)
    # image 0: class 0 IoU 1/2, class 1 IoU 2/3, class 2 absent
    np.testing.assert_allclose(r.iou[0, :2].numpy(), [0.5, 2 / 3])
    assert math.isnan(r.iou[0, 2]) and r.miou[0] == pytest.approx((0.5 + 2 / 3) / 2)
    # image 1: only class 0, all right (the prediction on the void pixel does not count)
    assert r.iou[1, 0] == 1.0 and torch.isnan(r.iou[1, 1:]).all() and r.miou[1] == 1.0
    assert r.pixel_acc[1] == 1.0
    # image 2: nothing valid
    assert torch.isnan(r.miou[2]) and torch.isnan(r.pixel_acc[2])
    # each row equals the dataset-level computation on that image alone
    for i in range(2):
        one = S.metrics_from_confusion(S.confusion_matrix(pred[i], target[i], 3))
        np.testing.assert_allclose(r.iou[i].numpy(), one["iou"])


def test_most_confused_pairs_and_rows():
    cm = np.array([[50, 7, 1], [2, 30, 9], [0, 0, 0]])
    pairs = P.most_confused_pairs(cm, ["road", "sidewalk", "car"], k=2)
    assert [(p["true"], p["predicted"], p["pixels"]) for p in pairs] == [("sidewalk", "car", 9), ("road", "sidewalk", 7)]
    assert pairs[0]["share_of_true"] == pytest.approx(9 / 41)
    assert len(P.most_confused_pairs(cm, ["a", "b", "c"], k=100)) == 4  # zeros are not pairs
    rows = S.per_class_rows(S.metrics_from_confusion(cm), ["road", "sidewalk", "car"])
    assert rows[1]["class_name"] == "sidewalk" and rows[1]["truth_pixels"] == 41


@pytest.mark.parametrize("n,extra", [(26, False), (19, True)])
def test_plot_normalized_confusion(tmp_path, n, extra):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 100, size=(n, n + extra)) + np.eye(n, n + extra, dtype=int) * 2000
    cm[3] = 0  # a class without truth
    path = P.plot_normalized_confusion(cm, [f"class_{i}" for i in range(n)], tmp_path / "cm.png")
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    size = max(6.0, 0.42 * (n + extra) + 3.0)  # the figure grows with the classes
    assert img.shape[1] == round((size + 1.2) * P.CONFUSION_DPI)
    assert img.shape[0] == round(max(5.0, 0.42 * n + 3.0) * P.CONFUSION_DPI)
    blues = (img[..., 2] > img[..., 0] + 60).mean()  # the dominant diagonal is drawn in saturated blue
    assert 0.002 < blues < 0.5


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 5).flatmap(lambda c: st.tuples(
    st.just(c),
    st.lists(st.tuples(st.sampled_from([*range(c), IGN]), st.integers(0, c - 1)), min_size=1, max_size=40))))
def test_scores_match_their_definitions(case):
    c, pairs = case
    t, p = _t([a for a, _ in pairs]), _t([b for _, b in pairs])
    m = S.metrics_from_confusion(S.confusion_matrix(p, t, c))
    ious = []
    for k in range(c):
        valid = t != IGN
        tp = int(((t == k) & (p == k)).sum())
        fp = int(((t != k) & valid & (p == k)).sum())
        fn = int(((t == k) & (p != k)).sum())
        if tp + fp + fn == 0:
            assert math.isnan(m["iou"][k])
        else:
            assert m["iou"][k] == pytest.approx(tp / (tp + fp + fn))
            ious.append(tp / (tp + fp + fn))
    if ious:
        assert m[M.MIOU] == pytest.approx(sum(ious) / len(ious))
    else:
        assert math.isnan(m[M.MIOU])
