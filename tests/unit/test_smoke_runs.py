"""`debug=fast` is a smoke run in seconds to a minute for every experiment on a CPU, and GPU-only
settings fall back on a machine without a GPU (cvexp/engine/hardware.py, cvexp/engine/smoke.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cvexp.engine import build, hardware
from cvexp.errors import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"
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


def test_a_bad_eval_mode_fails_before_any_data_is_read(compose_cfg):
    cfg = compose_cfg("train", ["experiment=seg_demo", "task.eval.mode=whole"])
    with pytest.raises(ConfigError, match="task.eval.mode='whole'"):
        build.build_datamodule(cfg)


def test_gpu_trainer_uses_bf16_and_older_gpus_fall_back_to_fp16(compose_cfg, monkeypatch, caplog):
    import torch

    monkeypatch.setattr(hardware, "gpu_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = compose_cfg("train", ["trainer=gpu"])
    assert cfg.trainer.precision == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert hardware.fit_to_machine(cfg) == [] and cfg.trainer.precision == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with caplog.at_level(logging.INFO, logger="cvexp"):
        changes = hardware.fit_to_machine(cfg)
    assert changes == ["trainer.precision bf16-mixed -> 16-mixed (this GPU has no bf16)"]
    assert cfg.trainer.precision == "16-mixed" and len(_lines(caplog, logging.WARNING)) == 1


def test_bf16_falls_back_to_32_on_a_cpu(compose_cfg, cpu_only):
    cfg = compose_cfg("train", ["trainer=gpu", "trainer.accelerator=auto"])
    assert "trainer.precision bf16-mixed -> 32-true" in hardware.fit_to_machine(cfg)


@pytest.mark.parametrize("gpu,cores,expected", [(True, 16, 8), (True, 4, 3), (True, 1, 1), (False, 16, 8),
                                                (False, 2, 1)])
def test_auto_workers_follow_the_machine(compose_cfg, monkeypatch, gpu, cores, expected):
    monkeypatch.setattr(hardware, "gpu_available", lambda: gpu)
    monkeypatch.setattr(hardware, "cpu_cores", lambda: cores)
    cfg = compose_cfg("train", ["data=wildlife", "paths.data_dir=/nowhere"])
    assert cfg.data.num_workers == "auto"
    hardware.fit_to_machine(cfg)
    assert cfg.data.num_workers == expected  # the saved config says the number


def test_num_workers_takes_a_number_or_auto(compose_cfg):
    from cvexp.engine.schema import validate
    from cvexp.errors import ConfigError

    validate(compose_cfg("train", ["data.num_workers=auto"]))
    validate(compose_cfg("train", ["data.num_workers=3"]))
    with pytest.raises(ConfigError, match="data.num_workers='many' is not allowed: a number or auto"):
        validate(compose_cfg("train", ["data.num_workers=many"]))
