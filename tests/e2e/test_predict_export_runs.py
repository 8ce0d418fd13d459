"""Predict and export: predictions equal those behind the run's test metrics; exported networks
reproduce PyTorch within tolerance, with dynamic batch (and height/width for segmentation)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import predict_split, run_cli

FAST = ["debug=fast", "data.n_images=200", "data.image_size=32", "logger=none", "callbacks.progress_bar=null"]


# ------------------------------------------------------------------------------- classification
@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("predict") / "run"
    r = run_cli(["-m", "cvexp", *FAST, f"hydra.run.dir={run}"])
    assert r.returncode == 0, r.stderr[-2000:]
    return run


@pytest.mark.slow
def test_predict_equals_the_test_time_predictions(cls_run, tmp_path):
    import shutil
    from pathlib import Path

    from omegaconf import OmegaConf

    test_files = [r["path"] for r in csv.DictReader(open(cls_run / "split.csv")) if r["split"] == "test"]
    cfg = OmegaConf.load(cls_run / "config.yaml")
    root = Path(cfg.data.cache_dir) / f"demo_wildlife_n{cfg.data.n_images}_s{cfg.data.demo_seed}"
    src = tmp_path / "images"
    src.mkdir()
    for i, f in enumerate(test_files):  # numbered: the files sort in the loader's order
        shutil.copy(root / f, src / f"{i:04d}_{Path(f).name}")
    (src / "zz_broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "pred"
    r = run_cli(["-m", "cvexp.predict", f"ckpt_path={cls_run}", f"input={src}", "top_k=3", f"hydra.run.dir={out}"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "zz_broken.jpg" in r.stdout + r.stderr and "zz_broken.jpg" in (out / "skipped_files.txt").read_text()
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == len(test_files) and {"class_1", "prob_1", "class_3", "prob_3"} <= set(rows[0])
    labels, preds = predict_split(cls_run / "checkpoints" / "best.ckpt", "test")
    names = json.loads((out / "contract.json").read_text())["class_names"]
    got = [names.index(row["class_1"]) for row in rows]  # rows are in file order = split order
    assert got == preds.tolist()
    assert all(float(row["prob_1"]) >= float(row["prob_2"]) >= float(row["prob_3"]) for row in rows)
    assert (out / "contact_sheet.png").stat().st_size > 5000


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_classification_round_trip(cls_run, tmp_path, fmt):
    out = tmp_path / fmt
    r = run_cli(["-m", "cvexp.export", f"ckpt_path={cls_run / 'checkpoints' / 'best.ckpt'}", f"format={fmt}",
                 f"hydra.run.dir={out}"])
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "export.json").read_text())
    assert report["ok"] and report["max_abs_diff"] <= 1e-4
    contract = json.loads((out / "model.json").read_text())
    assert contract["input_size"] == [32, 32] and len(contract["class_names"]) == 10
    assert contract["mean"] and contract["std"] and contract["task"] == "classification"
    from cvexp.engine.inference import load_inference_model

    net = load_inference_model(cls_run / "checkpoints" / "best.ckpt").module.net
    x = torch.randn(5, 3, 32, 32)  # a batch size the export never saw
    with torch.no_grad():
        ref = net(x)
    if fmt == "onnx":
        import onnxruntime as ort

        got = torch.from_numpy(ort.InferenceSession(str(out / "model.onnx")).run(None, {"image": x.numpy()})[0])
    else:
        got = torch.jit.load(str(out / "model.pt"))(x)
    assert (got - ref).abs().max() <= 1e-4


# ------------------------------------------------------------------------------- segmentation
@pytest.fixture(scope="module")
def vainf_file(tmp_path_factory):
    from foreign_files import save_vainf_checkpoint

    from cvexp.models.deeplab_vainf import VainfDeepLabV3Plus

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vainf") / "best_deeplabv3plus_mobilenet_cityscapes_os16.pth"
    save_vainf_checkpoint(VainfDeepLabV3Plus("mobilenet", num_classes=19), path)
    return path


@pytest.mark.slow
def test_predict_segmentation_with_a_vainf_checkpoint(vainf_file, tmp_path, one_thread):
    import cv2

    from cvexp.data.labels import CITYSCAPES_LABELS
    from cvexp.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
    from cvexp.models.deeplab_vainf import VainfDeepLabV3Plus
    from cvexp.predict import file_ids_lut

    src = tmp_path / "street"
    (src / "city").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {"city/a_leftImg8bit.png": rng.integers(0, 255, (72, 120, 3), np.uint8),
              "b.png": rng.integers(0, 255, (50, 66, 3), np.uint8)}
    for name, img in images.items():
        cv2.imwrite(str(src / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = tmp_path / "pred"
    r = run_cli(["-m", "cvexp.predict", f"ckpt_path={vainf_file}", f"input={src}", f"hydra.run.dir={out}"])
    assert r.returncode == 0, r.stderr[-2000:]
    net = VainfDeepLabV3Plus("mobilenet", 19, 16, weights=str(vainf_file)).eval()
    valid = {lab.id for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < 255}
    for name, img in images.items():
        stem = name.rsplit(".", 1)[0].replace("/", "__")
        got = cv2.imread(str(out / f"{stem}_labelIds.png"), cv2.IMREAD_UNCHANGED)
        x = (torch.from_numpy(img).permute(2, 0, 1).float() / 255 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) \
            / torch.tensor(IMAGENET_STD).view(3, 1, 1)
        with torch.no_grad():
            want = file_ids_lut("cityscapes")[net(x[None]).argmax(1)[0].numpy().astype(np.uint8)]
        assert got.shape == img.shape[:2] and set(np.unique(got)) <= valid
        assert (got == want).mean() > 0.999  # (float noise may flip a near-tie pixel)
        for kind in ("color", "overlay"):
            assert cv2.imread(str(out / f"{stem}_{kind}.png")).shape == img.shape
    assert json.loads((out / "contract.json").read_text())["label_space"] == "cityscapes"


@pytest.mark.slow
def test_export_segmentation_onnx_dynamic_size(vainf_file, tmp_path, one_thread):
    out = tmp_path / "onnx"
    r = run_cli(["-m", "cvexp.export", f"ckpt_path={vainf_file}", "format=onnx", f"hydra.run.dir={out}"])
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "export.json").read_text())
    assert report["ok"] and {tuple(s[2:]) for s in report["inputs"]} == {(64, 96), (80, 48)}
    contract = json.loads((out / "model.json").read_text())
    assert contract["dynamic_axes"] == ["batch", "height", "width"] and len(contract["palette"]) == 19
