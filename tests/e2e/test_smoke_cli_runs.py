"""`debug=fast` is a smoke run in seconds to a minute for every experiment on a CPU, and GPU-only
settings fall back on a machine without a GPU (cvexp/engine/hardware.py, cvexp/engine/smoke.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config, run_cli

from cvexp.metrics import names as M
from cvexp.engine import hardware

CONF = Path(__file__).resolve().parents[2] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# what an experiment needs to compose and build without network or files
NEEDS = {"idd_zero_shot_cityscapes": ["model.weights=/nowhere/best.pth"]}


# ------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_gpu_trainer_on_the_command_line_without_a_gpu(tmp_path):
    if hardware.gpu_available():
        pytest.skip("this machine has a GPU")
    r = run_cli(["-m", "cvexp", "trainer=gpu", "debug=fast", "logger=none", f"hydra.run.dir={tmp_path / 'r'}"])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("error: ") and "trainer=cpu" in lines[0]
    assert "No supported gpu backend" not in r.stderr + r.stdout


def write_idd_layout(root: Path, split: str, ident: str, seed: int, w: int = 1920, h: int = 1080) -> None:
    """One IDD image (PNG) and its polygons JSON: sky, building, road, a car, a person, a pole."""
    import cv2

    rng = np.random.default_rng(seed)
    img_dir, gt_dir = root / "leftImg8bit" / split / "0", root / "gtFine" / split / "0"
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 3] = (180, 130, 70)
    img[h // 3: h // 2] = (70, 70, 70)
    img[h // 2:] = (128, 64, 128)
    img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    cx = int(rng.integers(200, w - 600))

    def rect(label, x0, y0, x1, y1):
        return {"label": label, "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}

    objects = [rect("sky", 0, 0, w - 1, h // 3), rect("building", 0, h // 3, w - 1, h // 2),
               rect("road", 0, h // 2, w - 1, h - 1), rect("car", cx, h // 2, cx + 400, h // 2 + 250),
               rect("person", cx + 450, h // 2 - 100, cx + 520, h // 2 + 150), rect("pole", 100, 200, 112, h // 2)]
    cv2.rectangle(img, (cx, h // 2), (cx + 400, h // 2 + 250), (0, 0, 142), -1)
    (gt_dir / f"{ident}_gtFine_polygons.json").write_text(json.dumps({"imgWidth": w, "imgHeight": h,
                                                                      "objects": objects}))
    cv2.imwrite(str(img_dir / f"{ident}_leftImg8bit.png"), img[..., ::-1])


@pytest.mark.slow
def test_idd_deeplabv3plus_debug_fast_on_real_size_images_within_a_minute(tmp_path):
    """The command a new user runs on an IDD-layout folder of 1920x1080 images (2 train, 2 val)."""
    from cvexp.train import train

    root = tmp_path / "IDD_Segmentation"
    for split in ("train", "val"):
        for i in range(2):
            write_idd_layout(root, split, f"{i:06d}", seed=i + (10 if split == "val" else 0))
    cfg = compose_config("train", ["experiment=idd_deeplabv3plus", "debug=fast", "model.encoder_weights=null",
                                   f"paths.data_dir={root}", "logger=none", "callbacks.progress_bar=null"],
                         run_dir=tmp_path / "run", log_dir=tmp_path)
    t0 = time.time()
    metrics = train(cfg)
    wall = time.time() - t0
    assert wall < 60, f"debug=fast took {wall:.0f} s"
    assert M.TEST_MIOU in metrics and metrics["test/is_val"] == 1.0
    run = tmp_path / "run"
    record = json.loads((run / "evaluation.json").read_text())
    assert record["mode"] == "full" and record["size"] == 128 and record["labels"] == "original size"
    assert record["test_is_val"] is True
    assert json.loads((run / "metrics.json").read_text())["test/is_val"] == 1.0
    rows = (run / "per_image.csv").read_text().splitlines()
    assert len(rows) == 1 + 2  # both val images, scored at 1920x1080
