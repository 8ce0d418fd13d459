"""Feature-space and error analysis: centroid distances on hand-built features, t-SNE shapes and
files, and cvexp.analyze end to end on demo data for a trained convnet, a fine-tuned resnet18 and
a resnet18 as built from (pretrained) weights, before fine-tuning."""

import csv

import numpy as np
import pytest
import torch
from conftest import compose_config

from cvexp.analysis import misclassified as MC
from cvexp.analysis import tsne
from cvexp.analysis.features import FeatureSet, extract_features, stratified_subsample
from cvexp.errors import ConfigError

CLASSES = ["cat", "dog", "owl"]


# ------------------------------------------------------------------------ hand-built features
def hand_built():
    """Train: cat at (0,0),(2,0) -> centroid (1,0); dog at (10,0),(10,2) -> (10,1); no owl."""
    train = FeatureSet(np.array([[0, 0], [2, 0], [10, 0], [10, 2]], np.float32),
                       np.full((4, 3), 1 / 3, np.float32), np.array([0, 0, 1, 1]))
    # val: a cat predicted dog (0.7), a dog predicted cat (0.9), a correct cat, a dog predicted owl (0.6)
    val = FeatureSet(np.array([[4, 0], [9, 1], [1, 0], [10, 1]], np.float32),
                     np.array([[0.3, 0.7, 0], [0.9, 0.1, 0], [0.8, 0.1, 0.1], [0.1, 0.3, 0.6]], np.float32),
                     np.array([0, 1, 0, 1]), ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], "val")
    return train, val


def test_class_centroids_and_distances():
    train, val = hand_built()
    c = MC.class_centroids(train.features, train.labels, 3)
    np.testing.assert_allclose(c[:2], [[1, 0], [10, 1]])
    assert np.isnan(c[2]).all()  # no owl images: no centroid
    d_true, d_pred = MC.centroid_distances(val.features[:2], np.array([0, 1]), np.array([1, 0]), c)
    np.testing.assert_allclose(d_true, [3.0, 1.0])
    np.testing.assert_allclose(d_pred, [np.sqrt(36 + 1), np.sqrt(64 + 1)])


def test_misclassified_rows():
    train, val = hand_built()
    rows = MC.misclassified_rows(val, MC.class_centroids(train.features, train.labels, 3), CLASSES)
    assert [r["path"] for r in rows] == ["b.jpg", "a.jpg", "d.jpg"]  # most confident mistakes first
    b, a, d = rows
    assert (a["true"], a["pred"], a["confidence"], a["prob_true"]) == ("cat", "dog", pytest.approx(0.7),
                                                                      pytest.approx(0.3))
    assert a["dist_true_centroid"] == pytest.approx(3.0) and a["dist_pred_centroid"] == pytest.approx(np.sqrt(37))
    assert not a["closer_to_pred"]
    assert b["dist_true_centroid"] == pytest.approx(1.0) and b["dist_pred_centroid"] == pytest.approx(np.sqrt(65))
    assert d["pred"] == "owl" and np.isnan(d["dist_pred_centroid"]) and d["dist_true_centroid"] == 0
    picked = MC.select_per_class(rows, k=1)
    assert {c: [r["path"] for r in v] for c, v in picked.items()} == {0: ["a.jpg"], 1: ["b.jpg"]}


def test_write_misclassified_files(tmp_path):
    train, val = hand_built()
    files, summary = MC.write_misclassified(val, CLASSES, tmp_path, train=train, k=3)
    with open(files["misclassified_csv"], newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [t["path"] for t in table] == ["b.jpg", "a.jpg", "d.jpg"]
    assert list(table[0]) == list(MC.CSV_FIELDS)
    assert float(table[1]["dist_true_centroid"]) == pytest.approx(3.0)
    assert summary["misclassified"] == 3 and summary["val_images"] == 4 and summary["centroids_from"] == "train"
    assert files["misclassified_grid"].is_file()
    with open(files["misclassified_per_class"], newline="") as fh:
        per = {r["class"]: r for r in csv.DictReader(fh)}
    assert per["dog"]["misclassified"] == "2" and per["cat"]["most_often_predicted_as"] == "dog"
    # no train features: val centroids, and the summary says so
    _, s2 = MC.write_misclassified(val, CLASSES, tmp_path / "v", train=None)
    assert s2["centroids_from"] == "val"


def test_no_mistakes_still_writes_files(tmp_path):
    _, val = hand_built()
    ok = val.subset([2])
    files, summary = MC.write_misclassified(ok, CLASSES, tmp_path)
    assert summary["misclassified"] == 0 and files["misclassified_grid"].is_file()
    assert files["misclassified_csv"].read_text().strip() == ",".join(MC.CSV_FIELDS)


# ----------------------------------------------------------------------------- subsample/t-SNE
def test_stratified_subsample():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 3)
    idx = stratified_subsample(labels, 20, seed=1)
    assert len(idx) == 20 and len(set(idx)) == 20
    counts = np.bincount(labels[idx], minlength=3)
    assert counts.min() >= 1 and counts[0] > counts[1] > counts[2]  # every class, in proportion
    np.testing.assert_array_equal(idx, stratified_subsample(labels, 20, seed=1))
    assert len(stratified_subsample(labels, None)) == len(labels)
    assert len(stratified_subsample(labels, 1000)) == len(labels)


def blobs(n_per=25, d=64, classes=3, seed=0) -> FeatureSet:
    """Gaussian blobs around fixed class centres (the same for every `seed`)."""
    centers = np.random.default_rng(123).normal(0, 5, (classes, d))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per)
    feats = centers[labels] + rng.normal(0, 1, (len(labels), d))
    probs = np.eye(classes)[labels] * 0.8 + 0.2 / classes
    return FeatureSet(feats.astype(np.float32), probs.astype(np.float32), labels,
                      [f"{i}.jpg" for i in range(len(labels))])


def test_embed_shapes_and_pca():
    fs = blobs()
    x = tsne.reduce_pca(fs.features, 10)
    assert x.shape == (75, 10)
    assert tsne.embed(fs.features, dim=2, max_iter=250).shape == (75, 2)
    assert tsne.embed(fs.features[:3], dim=3).shape == (3, 3)  # too few for t-SNE: still an answer


def test_tsne_plots_files_and_counts(tmp_path):
    train, val = blobs(40, seed=1), blobs(20, seed=2)
    files = tsne.write_tsne_plots({"train": train, "val": val}, CLASSES, tmp_path, max_points=60, max_iter=250)
    assert {k for k in files if not k.endswith("_csv")} == {"tsne_train_2d", "tsne_val_2d", "tsne_val_3d"}
    for key, n, dims in (("tsne_train_2d", 60, 2), ("tsne_val_2d", 60, 2), ("tsne_val_3d", 60, 3)):
        assert files[key].is_file() and files[key].stat().st_size > 5000
        with open(files[f"{key}_csv"], newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == n and len([c for c in rows[0] if c in "xyz"]) == dims
        assert {r["class_name"] for r in rows} == set(CLASSES)
    stats = tsne.feature_space_stats(train, val, k=5)
    assert stats["val_knn5_acc"] == 1.0 and stats["val_silhouette"] > 0.5  # well separated blobs


def test_extract_features_matches_the_model():
    from cvexp.models.convnet import ConvNet

    net = ConvNet(num_classes=4, input_size=32)
    x = torch.randn(10, 3, 32, 32)
    y = torch.arange(10) % 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    fs = extract_features(net, loader, device="cpu")
    assert fs.features.shape == (10, net.num_features) and fs.probs.shape == (10, 4)
    np.testing.assert_array_equal(fs.labels, y.numpy())
    np.testing.assert_allclose(fs.probs.sum(1), 1, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(fs.probs, net.eval()(x).softmax(1).numpy(), atol=1e-5)
    net.train()
    extract_features(net, loader, device="cpu")
    assert net.training  # the model's mode is restored


# ------------------------------------------------------------------------------- end to end
TINY = ["debug=fast", "data.n_images=200", "data.image_size=32", "logger=none", "callbacks.progress_bar=null",
        "callbacks.model_summary=null", "trainer.limit_train_batches=3"]
FAST_ANALYSIS = ["analysis.tsne.max_points=50", "analysis.tsne.max_iter=250", "analysis.max_train_images=80",
                 "+data.batch_size=64"]


def test_analyze_needs_a_checkpoint_or_model_and_data(tmp_path):
    from cvexp.analyze import analyze

    with pytest.raises(ConfigError, match="ckpt_path"):
        analyze(compose_config("analyze", [], run_dir=tmp_path / "a"))
    with pytest.raises(ConfigError, match="data=demo_wildlife"):
        analyze(compose_config("analyze", ["model=convnet"], run_dir=tmp_path / "b"))
