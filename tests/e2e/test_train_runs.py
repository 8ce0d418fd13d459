"""End to end: compose -> train -> test -> run dir; eval reproduces; metrics agree with sklearn."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import compose_config, predict_split
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from cvexp.metrics import names as M
from cvexp.data.labels import WILDLIFE_CLASSES

TINY = ["data.n_images=200", "data.image_size=32", "trainer.max_epochs=2", "data.batch_size=16",
        "callbacks.progress_bar=null", "callbacks.model_summary=null"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from cvexp.train import train

    base = tmp_path_factory.mktemp("tiny")
    cfg = compose_config("train", TINY, run_dir=base / "run", log_dir=base / "logs")
    metrics = train(cfg)
    return base / "run", metrics


def test_run_dir_holds_everything(tiny_run):
    run, metrics = tiny_run
    for name in ("config.yaml", "metrics.json", "per_class.csv", "confusion_matrix.png", "confusion_matrix.csv",
                 "learning_curves.png", "history.csv", "split.csv", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    # the numbers agree with the run's own tables: confusion matrix, per-class table, history
    import csv

    import numpy as np

    cm = np.loadtxt(run / "confusion_matrix.csv", delimiter=",", skiprows=1)  # header: the class names
    assert cm.shape == (10, 10) and cm.sum() == len([r for r in csv.DictReader(open(run / "split.csv"))
                                                      if r["split"] == "test"])
    assert saved[M.TEST_ACC] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-6)
    rows = list(csv.DictReader(open(run / "per_class.csv")))
    assert len(rows) == 10
    f1 = np.array([float(r["f1"]) for r in rows])
    support = np.array([float(r["support"]) for r in rows])
    assert saved[M.TEST_F1_MACRO] == pytest.approx(f1.mean(), abs=1e-6)
    assert saved[M.TEST_F1_WEIGHTED] == pytest.approx((f1 * support).sum() / support.sum(), abs=1e-6)
    assert np.array_equal(support, cm.sum(1))
    history = list(csv.DictReader(open(run / "history.csv")))
    assert len(history) == 2 and all(float(h["train/loss"]) > 0 for h in history)
    assert saved[M.VAL_F1_MACRO_BEST] == pytest.approx(max(float(h["val/f1_macro"]) for h in history), abs=1e-6)
    assert 0 < saved["test/loss"] < 10


def test_metrics_agree_with_sklearn(tiny_run):
    run, _ = tiny_run
    y, p = predict_split(run / "checkpoints" / "best.ckpt", "test")
    saved = json.loads((run / "metrics.json").read_text())
    assert saved[M.TEST_ACC] == pytest.approx(accuracy_score(y, p), abs=1e-6)
    assert saved[M.TEST_F1_MACRO] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-6)
    assert saved[M.TEST_F1_WEIGHTED] == pytest.approx(f1_score(y, p, average="weighted"), abs=1e-6)
    pr, rc, f1, sup = precision_recall_fscore_support(y, p, labels=list(range(10)), zero_division=0)
    rows = [line.split(",") for line in (run / "per_class.csv").read_text().strip().splitlines()[1:]]
    assert [r[1] for r in rows] == list(WILDLIFE_CLASSES)
    np.testing.assert_allclose([float(r[2]) for r in rows], pr, atol=1e-6)
    np.testing.assert_allclose([float(r[3]) for r in rows], rc, atol=1e-6)
    np.testing.assert_allclose([float(r[4]) for r in rows], f1, atol=1e-6)
    assert [int(r[5]) for r in rows] == sup.tolist()


def test_eval_reproduces_train_time_test_metrics(tiny_run, tmp_path):
    from cvexp.eval import evaluate

    run, metrics = tiny_run
    cfg = compose_config("eval", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "logger=none"],
                         run_dir=tmp_path / "eval", log_dir=tmp_path)
    got = evaluate(cfg)
    for key in (M.TEST_ACC, M.TEST_F1_MACRO, M.TEST_F1_WEIGHTED, "test/loss"):
        assert got[key] == pytest.approx(metrics[key], abs=1e-6), key
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()
    assert (tmp_path / "eval" / "split.csv").read_text() == (run / "split.csv").read_text()


def test_same_seed_same_metrics(tiny_run, tmp_path):
    from cvexp.train import train

    run, metrics = tiny_run
    again = train(compose_config("train", TINY, run_dir=tmp_path / "again", log_dir=tmp_path))
    assert again == pytest.approx(metrics, abs=1e-6)
    assert (tmp_path / "again" / "split.csv").read_text() == (run / "split.csv").read_text()


def test_checkpoint_classes_must_match_data(tiny_run, tmp_path):
    import shutil

    from cvexp.errors import CheckpointError
    from cvexp.eval import evaluate

    run, _ = tiny_run
    root = tmp_path / "three"
    demo = next(p for p in (tmp_path.parent.parent).rglob("amur_tiger") if p.is_dir()).parent
    for c in ("amur_tiger", "birds", "dog"):
        shutil.copytree(demo / c, root / c)
    cfg = compose_config("eval", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "data=wildlife",
                                  f"data.root={root}", "data.class_names=[amur_tiger,birds,dog]",
                                  "data.num_workers=0", "logger=none"],
                         run_dir=tmp_path / "eval", log_dir=tmp_path)
    with pytest.raises(CheckpointError, match="predicts classes"):
        evaluate(cfg)


def test_resnet18_from_a_local_weights_file(tmp_path):
    import timm

    from cvexp.train import train

    weights = tmp_path / "resnet18_imagenet.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), weights)
    cfg = compose_config("train", ["model=resnet18", f"model.weights={weights}", "debug=fast",
                                   "data.n_images=200", "data.image_size=32", "callbacks.progress_bar=null"],
                         run_dir=tmp_path / "run", log_dir=tmp_path)
    metrics = train(cfg)
    assert M.TEST_ACC in metrics
    assert cfg.data.mean == [0.485, 0.456, 0.406]  # from the model's pretrained config


def test_input_size_comes_from_the_model_when_data_leaves_it_open(compose_cfg):
    from cvexp.engine import build as runs

    cfg = compose_cfg("train", ["model=resnet18", "data.image_size=null"])
    runs.resolve_inputs(cfg)
    assert cfg.data.image_size == 224
    cfg = compose_cfg("train", ["data.image_size=null"])
    runs.resolve_inputs(cfg)
    assert cfg.data.image_size == 224 and cfg.model.input_size == 224


@pytest.mark.slow
def test_default_run_beats_chance_by_far(tmp_path):
    """The README's first command: default config on demo data, test accuracy >= 0.6."""
    from cvexp.train import train

    metrics = train(compose_config("train", ["callbacks.progress_bar=null"], run_dir=tmp_path / "run",
                                   log_dir=tmp_path))
    assert metrics[M.TEST_ACC] >= 0.6, metrics


@pytest.mark.slow
def test_wandb_offline_run_lives_in_the_run_dir(tmp_path):
    from cvexp.train import train

    os.environ["WANDB_MODE"] = "offline"
    cfg = compose_config("train", ["logger=wandb", "debug=fast", "data.n_images=200", "data.image_size=32",
                                   "callbacks.progress_bar=null"], run_dir=tmp_path / "run", log_dir=tmp_path)
    train(cfg)
    import wandb

    wandb.finish()
    runs_ = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs_) == 1
    assert any(runs_[0].rglob("*.wandb"))
