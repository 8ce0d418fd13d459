"""Feature-space and error analysis: centroid distances on hand-built features, t-SNE shapes and
files, and cvexp.analyze end to end on demo data for a trained convnet, a fine-tuned resnet18 and
a resnet18 as built from (pretrained) weights, before fine-tuning."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, predict_split


CLASSES = ["cat", "dog", "owl"]
# ------------------------------------------------------------------------------- end to end
TINY = ["debug=fast", "data.n_images=200", "data.image_size=32", "logger=none", "callbacks.progress_bar=null",
        "callbacks.model_summary=null", "trainer.limit_train_batches=3"]
FAST_ANALYSIS = ["analysis.tsne.max_points=50", "analysis.tsne.max_iter=250", "analysis.max_train_images=80",
                 "+data.batch_size=64"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A trained convnet and a fine-tuned resnet18 (random init: no hub in tests), tiny runs."""
    from cvexp.train import train

    base = tmp_path_factory.mktemp("ckpts")
    out = {}
    for name, extra in (("convnet", []), ("resnet18", ["model=resnet18", "model.pretrained=false"])):
        cfg = compose_config("train", TINY + extra, run_dir=base / name, log_dir=base / "logs")
        train(cfg)
        out[name] = base / name / "checkpoints" / "best.ckpt"
    return out


def val_predictions(ckpt: Path):
    """Predictions on the val split, computed here without cvexp.analyze."""
    return predict_split(ckpt, "val")


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("model,dim", [("convnet", 128 * 2 * 2), ("resnet18", 512)])  # 32px input
def test_analyze_checkpoint(checkpoints, tmp_path, model, dim):
    from cvexp.analyze import analyze

    run = tmp_path / "analysis"
    ckpt_arg = checkpoints[model] if model == "convnet" else checkpoints[model].parent.parent  # a run dir works too
    cfg = compose_config("analyze", [f"ckpt_path={ckpt_arg}", *FAST_ANALYSIS], run_dir=run)
    metrics = analyze(cfg)
    for f in ("tsne_train_2d.png", "tsne_val_2d.png", "tsne_val_3d.png", "misclassified_grid.png",
              "misclassified.csv", "misclassified_per_class.csv", "analysis.json", "config.yaml"):
        assert (run / f).is_file(), f
    summary = json.loads((run / "analysis.json").read_text())
    y, p = val_predictions(checkpoints[model])
    assert summary["feature_dim"] == dim and summary["val_images"] == len(y) == 20
    assert summary["train_images"] == 80 and summary["centroids_from"] == "train"
    assert summary["misclassified"] == int((y != p).sum()) == metrics["misclassified"]
    assert summary["val_acc_head"] == pytest.approx(float((y == p).mean()))
    mis = rows_of(run / "misclassified.csv")
    assert len(mis) == int((y != p).sum())
    for r in mis:
        assert r["true"] != r["pred"] and 0 < float(r["confidence"]) <= 1
        assert float(r["dist_true_centroid"]) >= 0 and float(r["dist_pred_centroid"]) >= 0
        assert Path(r["path"]).is_file()
    assert sorted(Path(r["path"]).name for r in mis) == sorted(
        Path(x).name for x, t, q in zip(_val_paths(run), y, p) if t != q)
    assert len(rows_of(run / "tsne_train_2d.csv")) == 50 and len(rows_of(run / "tsne_val_3d.csv")) == 20


def _val_paths(run: Path) -> list[str]:
    return [r["path"] for r in rows_of(run / "split.csv") if r["split"] == "val"]


def test_analyze_pretrained_resnet18_before_fine_tuning(tmp_path):
    """model=resnet18 with a weights file (stands in for the ImageNet weights of the hub) and no
    checkpoint: features only, t-SNE written, misclassification skipped (untrained head); W&B
    gets the images."""
    import timm

    from cvexp.analyze import analyze

    weights = tmp_path / "resnet18_imagenet.pth"
    ref = timm.create_model("resnet18", pretrained=False)
    torch.save(ref.state_dict(), weights)
    run = tmp_path / "pre"
    cfg = compose_config("analyze", ["model=resnet18", f"model.weights={weights}", "data=demo_wildlife",
                                     "data.n_images=200", "data.image_size=32", "logger=wandb",
                                     *FAST_ANALYSIS[:3]], run_dir=run)
    analyze(cfg)
    summary = json.loads((run / "analysis.json").read_text())
    assert summary["from_checkpoint"] is False and summary["feature_dim"] == 512
    assert "pretrained, before fine-tuning" in summary["title"]
    assert {"tsne_train_2d", "tsne_val_2d", "tsne_val_3d"} <= set(summary["files"])
    assert "misclassified" not in summary and not (run / "misclassified.csv").exists()
    assert "val_knn5_acc" in summary
    # the features are those of the given weights (the backbone, not a random init)
    from cvexp.models.timm_models import TimmClassifier

    net = TimmClassifier("resnet18", num_classes=10, pretrained=False, weights=str(weights)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(net.forward_features(x).numpy(), ref.eval().forward_head(
            ref.forward_features(x), pre_logits=True).numpy(), atol=1e-5)
    assert list((run / "wandb").glob("offline-run-*")), "logger=wandb: an offline W&B run in the run dir"
