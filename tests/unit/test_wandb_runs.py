"""W&B as a dashboard: one run per job of a sweep (named after its overrides, grouped by sweep,
job_type train/eval), the learning rate per step whenever a logger is on, the task's pictures (e.g.
segmentation panels) and the sweep report sent to the loggers. W&B runs offline (conftest)."""


import pytest

from cvexp.engine import build
from cvexp.engine.results import log_images, result_images, write_run_results
from cvexp.engine.hydra_callbacks import GROUP_ENV, RUN_NAME_ENV


def test_wandb_name_group_and_job_type(compose_cfg, monkeypatch):
    monkeypatch.delenv(RUN_NAME_ENV, raising=False)
    monkeypatch.delenv(GROUP_ENV, raising=False)
    wb = build.resolved_container(compose_cfg("train", ["logger=wandb"]))["logger"]["wandb"]
    assert (wb["name"], wb["job_type"], wb["group"]) == ("train", "train", None)
    monkeypatch.setenv(RUN_NAME_ENV, "aug=strong seed=1")
    monkeypatch.setenv(GROUP_ENV, "outputs/train/multiruns/x")
    wb = build.resolved_container(compose_cfg("train", ["logger=wandb"]))["logger"]["wandb"]
    assert (wb["name"], wb["group"]) == ("aug=strong seed=1", "outputs/train/multiruns/x")
    ev = build.resolved_container(compose_cfg("eval", ["logger=wandb", "ckpt_path=x.ckpt"]))["logger"]["wandb"]
    assert ev["job_type"] == "eval"


@pytest.mark.parametrize("logger", ["csv", "tensorboard", "wandb", "many"])
def test_a_logger_brings_the_learning_rate_monitor(compose_cfg, logger):
    cfg = compose_cfg("train", [f"logger={logger}"])
    names = [type(c).__name__ for c in build.build_dict(cfg.callbacks)]
    assert names.count("LearningRateMonitor") == 1
    assert cfg.callbacks.lr_monitor.logging_interval == "step"
    assert "LearningRateMonitor" not in [type(c).__name__ for c in
                                         build.build_dict(compose_cfg("train", [f"logger={logger}", "callbacks=none"]).callbacks)]


def test_no_logger_no_learning_rate_monitor(compose_cfg):
    for extra in ([], ["callbacks=early_stopping"]):
        cfg = compose_cfg("train", ["logger=none", *extra])
        assert "LearningRateMonitor" not in [type(c).__name__ for c in build.build_dict(cfg.callbacks)]


class ImageLogger:
    def __init__(self):
        self.images = {}

    def log_image(self, key, images):
        self.images[key] = images


def test_segmentation_panels_go_to_the_loggers(tmp_path):
    import types

    files = {}
    for name in ("predictions", "failures_lowest_miou", "failures_low_class_iou", "confusion_matrix"):
        files[name] = tmp_path / f"{name}.png"
        files[name].write_bytes(b"png")
    files["per_image"] = tmp_path / "per_image.csv"
    images = result_images({**files, "learning_curves": tmp_path / "lc.png"})
    assert set(images) == {"test/predictions", "test/failures_lowest_miou", "test/failures_low_class_iou",
                           "test/confusion_matrix", "learning_curves"}
    lg = ImageLogger()
    trainer = types.SimpleNamespace(loggers=[lg], is_global_zero=True)
    module = types.SimpleNamespace(write_results=lambda out, dm: dict(files))
    write_run_results(tmp_path, module, trainer, {"test/miou": 0.5}, [], None)
    assert set(lg.images) == {"test/predictions", "test/failures_lowest_miou", "test/failures_low_class_iou",
                              "test/confusion_matrix"}
    assert lg.images["test/predictions"] == [str(files["predictions"])]
    log_images(trainer, {"missing": tmp_path / "nope.png"})
    assert "missing" not in lg.images
