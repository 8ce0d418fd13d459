"""Runs as plain Python objects: a checkpoint or a run config to (task module, data module, config).

    run = cvexp.load_checkpoint("outputs/train/runs/<time>/checkpoints/best.ckpt")
    run.module.eval(); logits = run.module(x)               # the trained network
    loader = run.datamodule.test_dataloader()               # the data it was tested on, same split

    run = cvexp.build_run(config)   # a run's config (e.g. its config.yaml) -> untrained objects

Checkpoints go through the same allow-list as the entry points (cvexp.io.checkpoint).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class Run:
    module: Any       # the task LightningModule (network in `module.net`)
    datamodule: Any   # the LightningDataModule
    config: Any       # the run's config (OmegaConf DictConfig)


def load_checkpoint(path: str | os.PathLike, data: dict | None = None) -> Run:
    """A cvexp checkpoint (or a run directory) with its weights, on its own data (`data` overrides
    keys of the stored data config, e.g. `{"root": "/data/wildlife", "num_workers": 0}`)."""
    from omegaconf import OmegaConf

    from cvexp.io.checkpoint import checkpoint_file, load_run_checkpoint
    from cvexp.engine import build

    p = checkpoint_file(path)
    module, train_cfg = build.build_from_checkpoint(load_run_checkpoint(p), str(p))
    cfg = OmegaConf.create({"data": OmegaConf.merge(train_cfg.data, data or {}), "aug": None})
    build.merge_checkpoint_data(cfg, train_cfg)
    cfg.data.output_dir = None
    module.eval()
    return Run(module, build.build_datamodule(cfg), train_cfg)


def build_run(config: Any) -> Run:
    """Untrained task module and data module from a run config (a dict, a DictConfig or a path to
    a run's config.yaml) with `data`, `model`, `task` and optionally `aug`, `optimizer`, `scheduler`."""
    from omegaconf import DictConfig, OmegaConf

    from cvexp.io.checkpoint import check_targets
    from cvexp.engine import build

    if isinstance(config, (str, os.PathLike)):
        from cvexp.io.yamlfile import load_config

        config = load_config(config)
    cfg = config if isinstance(config, DictConfig) else OmegaConf.create(config)
    check_targets(OmegaConf.to_container(cfg, resolve=True), "the run config")
    build.resolve_inputs(cfg)
    dm = build.build_datamodule(cfg)
    net = build.build_model(cfg.model, dm.num_classes)
    module = build.build_task(cfg.task, net=net, optimizer=build.optional(cfg.get("optimizer")),
                              scheduler=build.optional(cfg.get("scheduler")), **build.task_objects(cfg.task, dm))
    return Run(module, dm, cfg)
