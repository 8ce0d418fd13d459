"""Paths a checkpoint or a run's config names are confined to the run's own folder: Lightning loads
a restored `best_model_path` (over http without weights_only) and deletes restored top-k paths, and a
resumed run writes wherever its config.yaml says."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from cvexp.errors import ConfigError
from cvexp.io.checkpoint import confine_callback_paths


def _state(**paths):
    return {"callbacks": {"ModelCheckpoint{'monitor': 'val/f1_macro'}": {"dirpath": "x", **paths}}}


def test_paths_outside_the_callbacks_folder_are_dropped(tmp_path):
    own = tmp_path / "run" / "checkpoints"
    own.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (own / "link").symlink_to(tmp_path / "elsewhere")
    key = "ModelCheckpoint{'monitor': 'val/f1_macro'}"
    inside = str(own / "best.ckpt")
    bad = [str(tmp_path / "victim.txt"), str(own / ".." / ".." / "victim.txt"), "http://127.0.0.1:9/evil.ckpt",
           str(own / "link" / "best.ckpt"), "s3://bucket/x.ckpt"]
    for path in bad:
        ckpt = _state(best_model_path=path, kth_best_model_path=path, last_model_path=path,
                      best_k_models={path: torch.tensor(-1.0), inside: torch.tensor(0.5)})
        dropped = confine_callback_paths(ckpt, {key: str(own)})
        state = ckpt["callbacks"][key]
        assert state["best_model_path"] == state["kth_best_model_path"] == state["last_model_path"] == "", path
        assert list(state["best_k_models"]) == [inside], path
        assert dropped.count(path) == 4
    ckpt = _state(best_model_path=inside, best_k_models={inside: torch.tensor(0.5)})
    assert confine_callback_paths(ckpt, {key: str(own)}) == []
    assert ckpt["callbacks"][key]["best_model_path"] == inside
    # a state no callback of this run owns, or a callback without a folder: nothing of it survives
    ckpt = _state(best_model_path=inside, best_k_models=[inside])
    assert confine_callback_paths(ckpt, {}) == [inside, "best_k_models of type list"]
    assert confine_callback_paths({"callbacks": "junk"}, {}) == [] and confine_callback_paths({}, {}) == []


def test_task_module_confines_paths_before_lightning_restores_callbacks(compose_cfg, tmp_path):
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from cvexp.engine import build

    cfg = compose_cfg("train", [])
    module = build.build_task(cfg.task, net=build.build_model(cfg.model, 10), class_names=list("abcdefghij"))
    cb = ModelCheckpoint(dirpath=tmp_path / "ckpts", monitor="val/f1_macro", mode="max")
    trainer = pl.Trainer(callbacks=[cb], logger=False, enable_progress_bar=False, enable_model_summary=False)
    module.trainer = trainer
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    ckpt = {"callbacks": {cb.state_key: {"dirpath": cb.dirpath, "best_model_score": torch.tensor(0.9),
                                         "best_model_path": "http://127.0.0.1:9/evil.ckpt",
                                         "kth_best_model_path": str(victim), "kth_value": torch.tensor(0.1),
                                         "best_k_models": {str(victim): torch.tensor(0.1)},
                                         "last_model_path": str(victim)}}}
    with pytest.warns(UserWarning, match="outside this run's checkpoint folder"):
        module.on_load_checkpoint(ckpt)
    cb.load_state_dict(ckpt["callbacks"][cb.state_key])  # what Lightning does next
    assert cb.best_model_path == "" and cb.kth_best_model_path == "" and cb.best_k_models == {}
    assert float(cb.best_model_score) == pytest.approx(0.9)  # the score itself is kept


def test_best_checkpoint_is_used_only_inside_the_run(tmp_path):
    from types import SimpleNamespace

    from pytorch_lightning.callbacks import ModelCheckpoint

    from cvexp.train import _best_checkpoint

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"x")
    (tmp_path / "other.ckpt").write_bytes(b"x")
    cb = ModelCheckpoint(dirpath=run / "checkpoints")
    trainer = SimpleNamespace(callbacks=[cb])
    for path, expected in [(run / "checkpoints" / "best.ckpt", str(run / "checkpoints" / "best.ckpt")),
                           (run / "checkpoints" / "gone.ckpt", ""), (tmp_path / "other.ckpt", ""),
                           (run / ".." / "other.ckpt", ""), ("http://127.0.0.1:9/evil.ckpt", ""), ("", "")]:
        cb.best_model_path = str(path)
        assert _best_checkpoint(trainer, run) == expected, path


def test_a_copied_run_resumes_into_itself_and_nothing_writes_outside(tmp_path):
    from cvexp.engine.resume import _moved_into

    old, new = "/data/runs/orig", tmp_path / "moved"
    new.mkdir()
    stored = OmegaConf.create({
        "paths": {"output_dir": old, "cache_dir": "/home/u/.cache/cvexp", "data_dir": "/data"},
        "data": {"output_dir": old, "root": "/data/wildlife"},
        "trainer": {"default_root_dir": old},
        "callbacks": {"model_checkpoint": {"dirpath": f"{old}/checkpoints"}},
        "logger": {"csv": {"save_dir": old}, "tb": {"save_dir": f"{old}/tensorboard"}},
        "note": [f"{old}/x", f"{old}2/y"]})
    moved = _moved_into(stored, new)
    assert moved.paths.output_dir == moved.data.output_dir == moved.trainer.default_root_dir == str(new)
    assert moved.callbacks.model_checkpoint.dirpath == f"{new}/checkpoints"
    assert moved.logger.tb.save_dir == f"{new}/tensorboard"
    assert list(moved.note) == [f"{new}/x", f"{old}2/y"]  # a neighbour with a longer name is not the run
    assert moved.paths.cache_dir == "/home/u/.cache/cvexp" and moved.data.root == "/data/wildlife"
    for key, value in [("logger.csv.save_dir", "/tmp/anywhere"), ("callbacks.model_checkpoint.dirpath", f"{old}2"),
                       ("trainer.default_root_dir", f"{new}/../escape")]:
        tampered = OmegaConf.create(OmegaConf.to_container(stored))
        OmegaConf.update(tampered, key, value)
        with pytest.raises(ConfigError, match=f"{key}=.* writes outside the run directory") as e:
            _moved_into(tampered, new)
        assert "\n" not in str(e.value)
