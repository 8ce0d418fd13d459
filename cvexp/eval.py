"""`python -m cvexp.eval ckpt_path=PATH [data=...]`: evaluate a checkpoint, write a run directory.

Without `data=...` the checkpoint's own data config is used (same files, split and transforms),
so the train-time test metrics are reproduced. With `data=...` the model is evaluated on another
dataset; its input size and normalisation still come from the checkpoint.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf, open_dict

from cvexp.engine import build, entry, results
from cvexp.errors import CheckpointError

log = logging.getLogger("cvexp.eval")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    import pytorch_lightning as pl

    from cvexp.io.checkpoint import load_run_checkpoint

    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = entry.output_dir(cfg)
    ckpt = load_run_checkpoint(cfg.ckpt_path)
    module, train_cfg = build.build_from_checkpoint(ckpt, cfg.ckpt_path)
    del ckpt
    build.merge_checkpoint_data(cfg, train_cfg)
    with open_dict(cfg):
        cfg.data.output_dir = str(out)
        eval_mode = cfg.task.get("eval") if cfg.get("task") else None  # eval_mode=... / task.eval.* given here
        cfg.task = train_cfg.task
        if eval_mode is not None:
            module.configure_evaluation(eval_mode)  # refused by tasks without evaluation modes
            cfg.task.eval = OmegaConf.merge(cfg.task.get("eval") or {}, eval_mode)
        for key, value in module.evaluation_data(cfg.get("space")).items():
            cfg.data[key] = value
    dm = build.build_datamodule(cfg)
    check_task(module, dm, cfg.ckpt_path)
    split = cfg.get("split", "test")
    # (after build_datamodule: debug=fast may have capped task.eval)
    module.configure_evaluation(cfg.task.get("eval"), split)
    dm.setup("test")
    module.adapt_to(dm)  # e.g. the model's predictions into the data's label space, masks at its eval resolution
    module.check_compatible(dm, cfg.ckpt_path)
    OmegaConf.save(build.resolved_container(cfg), out / "config.yaml")
    trainer = build.build_trainer(cfg)
    if split == "test":  # through the data module: under DDP its loaders shard the split exactly once
        trainer.test(module, datamodule=dm)
    else:
        trainer.test(module, dataloaders=dm.loader(split, augment=False, shuffle=False))
    metrics = results.finite_metrics({k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
    results.write_run_results(out, module, trainer, metrics, [], dm)
    return metrics


def check_task(module, dm, path: str) -> None:
    """A classification checkpoint on segmentation data (or the reverse): one line, before any
    data is read."""
    data_task = getattr(dm, "task", None)
    if data_task and module.task != data_task:
        raise CheckpointError(f"{path} is a {module.task} checkpoint but the data ({type(dm).__name__}) is a "
                              f"{data_task} dataset; evaluate it on {module.task} data, or drop data=... to "
                              "use the checkpoint's own")


main = entry.entry_point(evaluate, "eval")


if __name__ == "__main__":
    main()
