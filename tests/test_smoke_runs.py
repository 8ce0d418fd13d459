"""`debug=fast` is a smoke run in seconds to a minute for every experiment on a CPU, and GPU-only
settings fall back on a machine without a GPU (cvexp/engine/hardware.py, cvexp/engine/smoke.py)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config, run_cli

from cvexp import metric_names as M
from cvexp.engine import build, hardware
from cvexp.errors import ConfigError

CONF = Path(__file__).resolve().parent.parent / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# what an experiment needs to compose and build without network or files
NEEDS = {"idd_zero_shot_cityscapes": ["model.weights=/nowhere/best.pth"]}


@pytest.fixture
def cpu_only(monkeypatch):
    """A machine without a GPU and with 2 cores, whatever this one has."""
    monkeypatch.setattr(hardware, "gpu_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_cores", lambda: 2)


def _lines(caplog, level=logging.INFO):
    return [r.getMessage() for r in caplog.records if r.name == "cvexp" and r.levelno >= level]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_debug_fast_shrinks_every_experiment_with_one_log_line(compose_cfg, cpu_only, caplog, experiment):
    cfg = compose_cfg("train", [f"experiment={experiment}", "debug=fast", *NEEDS.get(experiment, [])])
    before = {k: cfg.data.get(k) for k in ("image_size", "base_size", "batch_size", "num_workers")}
    if experiment != "idd_zero_shot_cityscapes":  # (its model would read the weights file)
        build.resolve_inputs(cfg)
    with caplog.at_level(logging.INFO, logger="cvexp"):
        dm = build.build_datamodule(cfg)
        trainer = build.build_trainer(cfg)
    lines = _lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("debug=fast changed ") and "\n" not in lines[0], lines
    assert dm.batch_size <= 4 and dm.num_workers == 0
    if cfg.get("train"):
        assert cfg.data.image_size <= 64 and dm.image_size <= 64
    if dm.task == "segmentation":
        assert dm.base_size is not None and dm.base_size <= 128
        ev = cfg.task.eval
        if ev.mode != "resized":
            assert ev.size is not None and ev.size <= 128
    assert str(trainer.precision) == "32-true"
    assert trainer.max_epochs == 1 and trainer.limit_train_batches == 2 and trainer.limit_val_batches == 1
    changed = {k for k, v in before.items() if cfg.data.get(k) != v}
    assert all(f"data.{k} " in lines[0] for k in changed)  # the line names every change


def test_idd_experiment_settings_fall_back_on_a_cpu_machine_with_one_warning(compose_cfg, cpu_only, caplog):
    cfg = compose_cfg("train", ["experiment=idd_deeplabv3plus"])
    assert cfg.trainer.precision == "16-mixed" and cfg.data.num_workers == 8
    with caplog.at_level(logging.INFO, logger="cvexp"):
        dm = build.build_datamodule(cfg)
        trainer = build.build_trainer(cfg)
    assert dm.num_workers == 1 and str(trainer.precision) == "32-true"
    lines = _lines(caplog, logging.WARNING)
    assert len(lines) == 1 and "trainer.precision 16-mixed -> 32-true" in lines[0]
    assert "data.num_workers 8 -> 1" in lines[0]
    assert cfg.trainer.precision == "32-true"  # in the config the run saves


def test_settings_stay_on_a_gpu_machine(compose_cfg, monkeypatch, caplog):
    monkeypatch.setattr(hardware, "gpu_available", lambda: True)
    cfg = compose_cfg("train", ["experiment=idd_deeplabv3plus"])
    with caplog.at_level(logging.INFO, logger="cvexp"):
        assert hardware.fit_to_machine(cfg) == []
    assert cfg.trainer.precision == "16-mixed" and cfg.data.num_workers == 8 and not _lines(caplog)
    cfg = compose_cfg("train", ["experiment=idd_deeplabv3plus", "debug=fast"])
    changes = hardware.fit_to_machine(cfg)
    assert cfg.trainer.precision == "16-mixed" and not any("precision" in c for c in changes)


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_gpu_trainer_without_a_gpu_is_one_line_naming_trainer_cpu(compose_cfg, cpu_only, trainer):
    cfg = compose_cfg("train", [f"trainer={trainer}"])
    for fn in (build.build_datamodule, build.build_trainer):
        with pytest.raises(ConfigError, match="use trainer=cpu") as e:
            fn(cfg)
        assert "\n" not in str(e.value)


def test_eval_keeps_a_checkpoints_input_size_under_debug_fast(compose_cfg, cpu_only):
    cfg = compose_cfg("eval", ["ckpt_path=x.ckpt", "debug=fast", "data=demo_wildlife", "data.image_size=128"])
    changes = hardware.fit_to_machine(cfg)
    assert cfg.data.image_size == 128 and "data.batch_size 32 -> 4" in changes


def test_sliding_window_caps(compose_cfg, cpu_only):
    cfg = compose_cfg("train", ["experiment=idd_zero_shot_cityscapes", "eval_mode=sliding", "task.eval.crop=[512,1024]",
                                "task.eval.stride=[341,683]", "debug=fast", *NEEDS["idd_zero_shot_cityscapes"]])
    hardware.fit_to_machine(cfg)
    assert cfg.task.eval.size == 128 and list(cfg.task.eval.crop) == [64, 64]
    assert list(cfg.task.eval.stride) == [43, 43]  # 341 * 64 / 512, 683 * 64 / 1024


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


def test_a_bad_eval_mode_fails_before_any_data_is_read(compose_cfg):
    cfg = compose_cfg("train", ["experiment=seg_demo", "task.eval.mode=whole"])
    with pytest.raises(ConfigError, match="task.eval.mode='whole'"):
        build.build_datamodule(cfg)
