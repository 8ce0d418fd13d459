"""Segmentation end to end on demo data: train -> test -> pictures; eval in another label space;
the cross-dataset grid; a DeepLabV3Plus-Pytorch checkpoint imported and evaluated on IDD layout."""

import csv
import json

import pytest
import torch
from conftest import compose_config

from cvexp.metrics import names as M

TINY = ["data.n_train=8", "data.n_val=4", "data.image_size=32", "data.base_size=64", "data.batch_size=4",
        "callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]
SEG = ["task=segmentation", "model=deeplabv3plus", "model.encoder_weights=null", "aug=seg_basic",
       "scheduler=poly", "optimizer=adamw"]


@pytest.fixture(scope="module")
def idd_run(tmp_path_factory):
    from cvexp.train import train

    base = tmp_path_factory.mktemp("seg")
    cfg = compose_config("train", ["data=demo_idd", *SEG, *TINY, "trainer.max_epochs=2",
                                   "cross_eval.datasets=[demo_idd,demo_cityscapes]", "cross_eval.space=cityscapes",
                                   "data.n_train=8"],
                         run_dir=base / "run", log_dir=base / "logs")
    return base / "run", train(cfg)


def test_run_dir_has_tables_and_pictures(idd_run):
    run, metrics = idd_run
    for key in (M.TEST_MIOU, "test/pixel_acc", "test/mean_precision", "test/mean_recall", M.VAL_MIOU_BEST):
        assert 0 <= metrics[key] <= 1, key
    for name in ("per_class.csv", "per_image.csv", "confusion_matrix.png", "confused_pairs.csv", "predictions.png",
                 "failures_lowest_miou.png", "failures.csv", "learning_curves.png", "checkpoints/best.ckpt",
                 "evaluation.json"):
        assert (run / name).is_file(), name
    # how it was scored, and that test/* are val numbers (the demo, like IDD, has no test labels)
    record = json.loads((run / "evaluation.json").read_text())
    assert record["mode"] == "resized" and record["base_size"] == 64 and record["test_is_val"] is True
    assert json.loads((run / "metrics.json").read_text())["test/is_val"] == 1.0
    rows = list(csv.DictReader(open(run / "per_class.csv")))
    assert len(rows) == 26 and rows[0]["class_name"] == "road"
    assert {"iou", "precision", "recall", "truth_pixels", "predicted_pixels"} <= set(rows[0])
    # the headline numbers are the means of the table and the matrix (Cityscapes convention: absent
    # classes, NaN in the table, are left out of the means)
    import math

    import numpy as np

    iou = [float(r["iou"]) for r in rows]
    assert metrics[M.TEST_MIOU] == pytest.approx(np.nanmean(iou), abs=1e-6)
    assert metrics["test/mean_recall"] == pytest.approx(np.nanmean([float(r["recall"]) for r in rows]), abs=1e-6)
    assert all(math.isnan(v) == (int(r["truth_pixels"]) + int(r["predicted_pixels"]) == 0)
               for v, r in zip(iou, rows))
    cm = np.loadtxt(run / "confusion_matrix.csv", delimiter=",", skiprows=1)
    assert metrics["test/pixel_acc"] == pytest.approx(np.trace(cm[:, :26]) / cm.sum(), abs=1e-6)
    per_class = {f"test/iou/{r['class_name']}": v for r, v in zip(rows, iou)}
    assert all(metrics[k] == pytest.approx(v, abs=1e-6) for k, v in per_class.items() if not math.isnan(v))
    assert len(list(csv.DictReader(open(run / "per_image.csv")))) == 4  # the demo's val images
    failures = list(csv.DictReader(open(run / "failures.csv")))
    assert all(float(r["iou"]) <= 0.5 and int(r["truth_pixels"]) > 0 for r in failures)


def test_cross_dataset_table(idd_run):
    run, _ = idd_run
    table = list(csv.DictReader(open(run / "cross_dataset" / "cross_dataset.csv")))
    assert [r["evaluated_on"] for r in table] == ["demo_idd", "demo_cityscapes"]
    assert all(r["space"] == "cityscapes" and r["metric"] == M.TEST_MIOU for r in table)
    md = (run / "cross_dataset" / "cross_dataset.md").read_text()
    assert "deeplabv3plus@demo_idd" in md
    assert list((run / "cross_dataset").glob("per_class_iou_*.png"))
    sub = run / "cross_dataset" / "deeplabv3plus@demo_idd" / "demo_cityscapes"
    assert len(list(csv.DictReader(open(sub / "per_class.csv")))) == 19  # the shared space


def test_eval_in_domain_reproduces_test_metrics(idd_run, tmp_path):
    from cvexp.eval import evaluate

    run, metrics = idd_run
    cfg = compose_config("eval", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "logger=none"],
                         run_dir=tmp_path / "eval", log_dir=tmp_path)
    got = evaluate(cfg)
    assert got[M.TEST_MIOU] == pytest.approx(metrics[M.TEST_MIOU], abs=1e-6)


def test_eval_mode_given_to_the_evaluation_of_a_checkpoint(idd_run, tmp_path):
    from cvexp.eval import evaluate

    run, _ = idd_run
    cfg = compose_config("eval", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "logger=none", "eval_mode=sliding",
                                  "task.eval.crop=32", "task.eval.stride=16", "split=val"],
                         run_dir=tmp_path / "eval", log_dir=tmp_path)
    got = evaluate(cfg)
    record = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert record["mode"] == "sliding" and record["crop"] == [32, 32] and record["stride"] == [16, 16]
    assert record["labels"] == "original size" and record["scored_split"] == "val" and record["test_is_val"]
    assert got["test/is_val"] == 1.0 and 0 <= got[M.TEST_MIOU] <= 1


def test_eval_maps_predictions_into_the_datas_space(idd_run, tmp_path):
    from cvexp.eval import evaluate

    run, _ = idd_run
    cfg = compose_config("eval", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "data=demo_idd",
                                  "data.label_level=1", "data.n_val=4", "logger=none"],
                         run_dir=tmp_path / "eval", log_dir=tmp_path)
    got = evaluate(cfg)  # level3 predictions go up the IDD hierarchy to level1
    assert M.TEST_MIOU in got
    assert len(list(csv.DictReader(open(tmp_path / "eval" / "per_class.csv")))) == 7


def test_unmappable_label_spaces_are_refused():
    from types import SimpleNamespace

    from cvexp.data.labels import label_space
    from cvexp.errors import CvexpError
    from cvexp.tasks.segmentation import SegmentationModule

    module = SegmentationModule(torch.nn.Identity(), class_names=label_space("cityscapes").class_names,
                                label_space="cityscapes")
    level1 = label_space("idd_level1")
    dm = SimpleNamespace(target_space=level1, class_names=list(level1.class_names), num_classes=7)
    with pytest.raises(CvexpError):
        module.adapt_to(dm)


def test_vainf_checkpoint_zero_shot_on_idd_layout(tmp_path):
    from foreign_files import save_vainf_checkpoint

    from cvexp.models.deeplab_vainf import VainfDeepLabV3Plus
    from cvexp.train import train

    torch.manual_seed(0)
    ckpt = tmp_path / "best_deeplabv3plus_mobilenet_cityscapes_os16.pth"
    save_vainf_checkpoint(VainfDeepLabV3Plus("mobilenet", num_classes=19), ckpt)
    cfg = compose_config("train", ["experiment=idd_zero_shot_cityscapes", "data=demo_idd", "data.target_space=cityscapes",
                                   "model.backbone=mobilenet", f"model.weights={ckpt}", *TINY],
                         run_dir=tmp_path / "run", log_dir=tmp_path)
    metrics = train(cfg)
    assert M.TEST_MIOU in metrics
    assert len(list(csv.DictReader(open(tmp_path / "run" / "per_class.csv")))) == 19
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())[M.TEST_MIOU] == pytest.approx(
        metrics[M.TEST_MIOU])
    record = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert record["mode"] == "full" and record["labels"] == "original size"  # the experiment's default


def test_classification_task_on_segmentation_data_is_refused(tmp_path):
    from cvexp.errors import ConfigError
    from cvexp.train import train

    cfg = compose_config("train", ["data=demo_idd", *TINY], run_dir=tmp_path / "run", log_dir=tmp_path)
    with pytest.raises(ConfigError, match="task=classification cannot train on data=demo_idd"):
        train(cfg)


@pytest.mark.slow
def test_seg_demo_far_above_chance_and_shows_the_domain_shift(tmp_path):
    """experiment=seg_demo as documented (about a minute on 2 cores)."""
    from cvexp.train import train

    metrics = train(compose_config("train", ["experiment=seg_demo", "callbacks.progress_bar=null"],
                                   run_dir=tmp_path / "run", log_dir=tmp_path))
    assert metrics[M.TEST_MIOU] > 0.35  # chance (uniform over 26 classes) is below 0.05
    rows = {r["evaluated_on"]: float(r["value"])
            for r in csv.DictReader(open(tmp_path / "run" / "cross_dataset" / "cross_dataset.csv"))}
    assert rows["demo_idd"] > 0.35 and rows["demo_cityscapes"] < rows["demo_idd"]


def test_cross_eval_entry_point_grid(idd_run, tmp_path):
    from cvexp.cross_eval import cross_eval

    run, _ = idd_run
    ckpt = run / "checkpoints" / "best.ckpt"
    cfg = compose_config("cross_eval", [f"ckpts=[{ckpt},{ckpt}]", "datasets=[demo_idd,demo_cityscapes]",
                                        "space=cityscapes", "overrides=['data.n_val=4','data.batch_size=2']"],
                         run_dir=tmp_path / "grid", log_dir=tmp_path)
    values = cross_eval(cfg)
    rows = list(csv.DictReader(open(tmp_path / "grid" / "cross_dataset.csv")))
    assert len(rows) == 4 and len(values) == 4  # two checkpoints with the same label each keep their own
    assert [r["checkpoint"] for r in rows] == ["deeplabv3plus@demo_idd"] * 2 + ["deeplabv3plus@demo_idd-2"] * 2
    for label in ("deeplabv3plus@demo_idd", "deeplabv3plus@demo_idd-2"):
        assert len(list(csv.DictReader(open(tmp_path / "grid" / label / "demo_idd" /
                                            "per_image.csv")))) == 4  # the data.n_val override reached it
