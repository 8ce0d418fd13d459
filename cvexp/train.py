"""`python -m cvexp`: compose a run from config groups, train, test, write the run directory.

    python -m cvexp                                   # demo data, from-scratch CNN
    python -m cvexp model=resnet18 aug=strong
    python -m cvexp -m model=convnet,resnet18         # a sweep, one job each
"""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cvexp import runs
from cvexp.callbacks import MetricHistory

log = logging.getLogger("cvexp.train")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test the composed run; write its outputs; return the flat metrics."""
    import pytorch_lightning as pl

    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = runs.output_dir(cfg)
    runs.resolve_inputs(cfg)
    dm = runs.build_datamodule(cfg)
    dm.setup("fit")  # data problems surface now, as one-line errors, before any model is built
    choices = runs.hydra_choices()
    runs.check_task_matches_data(cfg.task, dm, choices)
    net = instantiate(cfg.model)
    module = runs.build_task(cfg.task, net=net, optimizer=runs.optional(cfg.get("optimizer")),
                             scheduler=runs.optional(cfg.get("scheduler")), **runs.task_objects(dm))
    resolved = runs.resolved_container(cfg)
    OmegaConf.save(resolved, out / "config.yaml")
    module.extra_checkpoint.update(config=resolved, choices=choices)
    history = MetricHistory()
    trainer = runs.build_trainer(cfg, history)
    runs.log_config(trainer, resolved)

    if cfg.get("train", True):
        trainer.fit(module, datamodule=dm, ckpt_path=cfg.get("ckpt_path"))
    best = {k: v for k, v in trainer.callback_metrics.items() if k.endswith("_best")}
    if cfg.get("test", True):
        ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not ckpt:
            log.warning("no best checkpoint; testing the weights at the end of training")
        trainer.test(module, datamodule=dm, ckpt_path=ckpt or None)
    metrics = runs.finite_metrics({**best, **{k: v for k, v in trainer.callback_metrics.items()
                                              if k.startswith("test/")}})
    runs.write_run_results(out, module, trainer, metrics, history.history, dm)
    cross = cfg.get("cross_eval") or {}
    if cross.get("datasets") and trainer.is_global_zero:
        from cvexp.cross_eval import evaluate_grid

        ckpt = (trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else "") or \
            _save_final(trainer, out)
        evaluate_grid([ckpt], list(cross.datasets), cross.get("space"), out / "cross_dataset", cfg)
        print((out / "cross_dataset" / "cross_dataset.md").read_text())
    log.info("run directory: %s", out)
    return metrics


def _save_final(trainer, out) -> str:
    path = out / "checkpoints" / "final.ckpt"
    trainer.save_checkpoint(path)
    return str(path)


main = runs.entry_point(train, "train")


if __name__ == "__main__":
    main()
