"""`python -m cvexp`: compose a run from config groups, train, test, write the run directory.

    python -m cvexp                                   # demo data, from-scratch CNN
    python -m cvexp model=resnet18 aug=strong
    python -m cvexp -m model=convnet,resnet18         # a sweep, one job each
    python -m cvexp resume=outputs/train/runs/<time>  # continue an interrupted run
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cvexp.engine import signals
from cvexp.engine import build, entry, resume, results
from cvexp.errors import CheckpointError, ConfigError

log = logging.getLogger("cvexp.train")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test the composed run; write its outputs; return the flat metrics."""
    import pytorch_lightning as pl

    from cvexp.engine.callbacks import RunState

    choices = build.hydra_choices()
    resuming = bool(cfg.get("resume"))
    if resuming:
        cfg, info = resume.resumed_config(cfg)
        choices = info["choices"] or choices
        log.info("resuming %s after epoch %d", cfg.resume, info["epoch"])
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.get("train", True) and not resuming and OmegaConf.select(cfg, "trainer.max_epochs") == 0:
        raise ConfigError("trainer.max_epochs=0 trains nothing, and the test would measure untrained weights; "
                          "give trainer.max_epochs >= 1 (-1 = no limit), or train=false to only test")
    out = entry.output_dir(cfg)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        _check_lightning_checkpoint(ckpt_path)
    build.resolve_inputs(cfg)
    dm = build.build_datamodule(cfg)
    dm.setup("fit")  # data problems surface now, as one-line errors, before any model is built
    build.check_task_matches_data(cfg.task, dm, choices)
    net = build.build_model(cfg.model, dm.num_classes)  # the data module knows its classes
    module = build.build_task(cfg.task, net=net, optimizer=build.optional(cfg.get("optimizer")),
                              scheduler=build.optional(cfg.get("scheduler")), **build.task_objects(cfg.task, dm))
    if ckpt_path:
        _check_weights_fit(module, ckpt_path)
    resolved = build.resolved_container(cfg)
    if not resuming:  # a resumed run keeps the config.yaml it started with
        OmegaConf.save(resolved, out / "config.yaml")
    module.extra_checkpoint.update(config=resolved, choices=choices)
    state = RunState(out / "checkpoints")
    trainer = build.build_trainer(cfg, [state])
    _remember_wandb_id(trainer, module)
    results.log_config(trainer, resolved)

    if cfg.get("train", True):
        with signals.deferred_to(trainer):
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, **_weights_only(trainer.fit))
    # (a resumed run with no epoch left has no fresh callback metrics: its trackers come from the checkpoint)
    best = {**module.best_metrics(), **{k: v for k, v in trainer.callback_metrics.items() if k.endswith("_best")}}
    if cfg.get("test", True):
        best_ckpt = _best_checkpoint(trainer, out)
        if not best_ckpt:
            log.warning("no best checkpoint; testing the weights at the end of training")
        trainer.test(module, datamodule=dm, ckpt_path=best_ckpt or None, **_weights_only(trainer.test))
    metrics = results.finite_metrics({**best, **{k: v for k, v in trainer.callback_metrics.items()
                                                 if k.startswith("test/")}})
    cross = cfg.get("cross_eval") or {}
    results.write_run_results(out, module, trainer, metrics, state.history, dm)
    if cross.get("datasets") and trainer.is_global_zero:
        from cvexp.cross_eval import evaluate_grid

        ckpt = _best_checkpoint(trainer, out) or _save_final(trainer, out)
        evaluate_grid([ckpt], list(cross.datasets), cross.get("space"), out / "cross_dataset", cfg)
        print((out / "cross_dataset" / "cross_dataset.md").read_text())
    log.info("run directory: %s", out)
    return metrics


def _best_checkpoint(trainer, out) -> str:
    """The best checkpoint's path, if it is a file this run wrote under its own folder: a path
    restored from a checkpoint never reaches `trainer.test` (which would load it)."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    cb = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    path = cb.best_model_path if cb is not None else ""
    if not path:
        return ""
    p = Path(path).resolve()
    if "://" in path or not p.is_relative_to(Path(out).resolve()) or not p.is_file():
        log.warning("the best checkpoint %s is not a file in this run's folder; it is not used", path[:200])
        return ""
    return str(p)


def _weights_only(method) -> dict:
    """`weights_only=True` where this Lightning takes it: checkpoints are loaded as data only."""
    import inspect

    return {"weights_only": True} if "weights_only" in inspect.signature(method).parameters else {}


def _save_final(trainer, out) -> str:
    path = out / "checkpoints" / "final.ckpt"
    trainer.save_checkpoint(path)
    return str(path)


def _check_lightning_checkpoint(path: str) -> None:
    """`ckpt_path=` names a readable Lightning checkpoint, checked before any data is read."""
    from cvexp.io.checkpoint import read_file

    ckpt = read_file(path, "checkpoint", "ckpt_path= must name a .ckpt written by python -m cvexp")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "loops" not in ckpt:
        raise CheckpointError(f"ckpt_path={path} is not a Lightning training checkpoint (no state_dict/loops); "
                              "to start from plain weights use model.weights=PATH")


def _check_weights_fit(module, path: str) -> None:
    """The checkpoint's tensors have the shapes of this run's model (one line, not Lightning's
    multi-page load error)."""
    from cvexp.io.checkpoint import read_file

    state = read_file(path, "checkpoint")["state_dict"]
    own = module.state_dict()
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    if wrong or missing:
        what = f"{len(wrong)} tensor(s) of another shape (e.g. {wrong[0]})" if wrong else \
            f"{len(missing)} missing tensor(s) (e.g. {missing[0]})"
        raise CheckpointError(f"ckpt_path={path} does not fit this run's model: {what}; resume with the "
                              "config it was trained with (python -m cvexp resume=<its run dir>)")


def _remember_wandb_id(trainer, module) -> None:
    """The W&B run id goes into every checkpoint, so a resumed run logs into the same W&B run."""
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger":
            try:
                module.extra_checkpoint["wandb_id"] = lg.version
            except Exception as e:  # noqa: BLE001 - W&B trouble must not stop training
                log.warning("could not read the W&B run id (%s); a resumed run will start a new W&B run", e)


main = entry.entry_point(train, "train", prepare_argv=resume.prepare_argv)


if __name__ == "__main__":
    main()

