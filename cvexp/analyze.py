"""`python -m cvexp.analyze`: feature-space and error analysis of a classifier, in a run directory.

    python -m cvexp.analyze ckpt_path=outputs/train/runs/<time>/checkpoints/best.ckpt
    python -m cvexp.analyze ckpt_path=<run dir> analysis=tsne          # t-SNE only
    python -m cvexp.analyze model=resnet18 data=demo_wildlife           # ImageNet resnet18, not fine-tuned
    python -m cvexp.analyze model=resnet18 model.weights=resnet18.pth data=wildlife   # offline weights

Penultimate-layer features (`forward_features`) of the train and val splits are extracted with
the eval transforms. `analysis=tsne` draws 2-D t-SNE of train and val and 3-D t-SNE of val,
coloured by class (PCA to 50 dims first, at most `analysis.tsne.max_points` points per plot);
`analysis=misclassified` writes a grid of up to k misclassified val images per class with true
label, prediction and confidence, and misclassified.csv with every one of them and its distance to
its true-class and predicted-class centroids (centroids from the TRAIN features);
`analysis=all` (default) does both. Files go to outputs/analyze/runs/<time>/ with analysis.json
(counts, kNN accuracy and silhouette of the features); with `logger=wandb` the PNGs and numbers
are also logged to W&B.

With a checkpoint, its own data config (files, split, input size, normalisation) is used unless
`data=...` is given. Without one, `model=...` and `data=...` are required and the model is
analysed as built: for a pretrained timm model that is its ImageNet features before fine-tuning
(its new head is untrained, so only the feature analyses run).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace

from omegaconf import DictConfig, OmegaConf, open_dict

from cvexp.engine import build, entry, results, rundir
from cvexp.errors import ConfigError

log = logging.getLogger("cvexp.analyze")

ANALYSES = ("tsne", "misclassified")


def model_name(model_cfg: DictConfig | dict) -> str:
    name = model_cfg.get("name") or str(model_cfg.get("_target_", "model")).rsplit(".", 1)[-1].lower()
    return str(name)


def prepare(cfg: DictConfig):
    """(net, class_names, title, from_checkpoint, module, check_compatible) with cfg.data, cfg.aug
    and cfg.model filled in."""
    user_data = cfg.get("data")
    if cfg.get("ckpt_path"):
        from cvexp.io.checkpoint import checkpoint_file, load_run_checkpoint

        path = str(checkpoint_file(cfg.ckpt_path))
        module, train_cfg = build.build_from_checkpoint(load_run_checkpoint(path), path)
        if module.task != "classification":
            raise ConfigError(f"{path} is a {module.task} checkpoint; cvexp.analyze analyses classification "
                              "checkpoints")
        build.merge_checkpoint_data(cfg, train_cfg)
        with open_dict(cfg):
            cfg.ckpt_path = path
        title = cfg.get("title") or f"{model_name(train_cfg.model)}, trained ({Path(path).name})"
        return module.net, list(module.class_names), title, True, module
    if cfg.get("model") is None or "_target_" not in cfg.model:
        raise ConfigError("pass ckpt_path=<run dir>/checkpoints/best.ckpt, or model=... and data=... to "
                          "analyse a model as built (e.g. model=resnet18 data=demo_wildlife)")
    if user_data is None or "_target_" not in user_data:
        raise ConfigError("without a checkpoint the data is not known: add data=demo_wildlife or data=wildlife")
    build.resolve_inputs(cfg)
    classes = build.build_datamodule(cfg).num_classes  # the data module knows its classes
    net = build.build_model(cfg.model, classes)
    pretrained = bool(cfg.model.get("weights") or cfg.model.get("pretrained"))
    how = "pretrained, before fine-tuning" if pretrained else "random init, untrained"
    title = cfg.get("title") or f"{model_name(cfg.model)}, {how}"
    return net, None, title, False, None


def analyze(cfg: DictConfig) -> dict[str, float]:
    import pytorch_lightning as pl

    from cvexp.analysis import features as F

    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    seed = int(cfg.get("seed") or 0)
    out = entry.output_dir(cfg)
    acfg = cfg.analysis
    wanted = [a for a in acfg.get("run", ANALYSES)]
    unknown = [a for a in wanted if a not in ANALYSES]
    if unknown:
        raise ConfigError(f"analysis.run has unknown analyses {unknown}; choose from {list(ANALYSES)}")
    net, class_names, title, from_ckpt, module = prepare(cfg)
    with open_dict(cfg):
        cfg.data.output_dir = str(out)
    dm = build.build_datamodule(cfg)
    dm.setup("fit")
    if from_ckpt:
        module.check_compatible(dm, cfg.ckpt_path)
    class_names = class_names or list(dm.class_names)
    OmegaConf.save(build.resolved_container(cfg), out / "config.yaml")

    if "misclassified" in wanted and not from_ckpt:
        log.warning("no checkpoint: the model's head is untrained, so its predictions mean nothing; "
                    "skipping the misclassification analysis (t-SNE and feature statistics still run)")
        wanted = [a for a in wanted if a != "misclassified"]
    tcfg = acfg.get("tsne") or {}
    need_train = ("misclassified" in wanted or
                  ("tsne" in wanted and any(s == "train" for s, _ in tcfg.get("plots", []))))
    device = cfg.get("device", "auto")
    bs = acfg.get("batch_size")
    log.info("extracting features (%s) on %s", title, F.pick_device(device))
    val = F.extract_split(net, dm, "val", acfg.get("max_val_images"), seed, device, bs)
    train = F.extract_split(net, dm, "train", acfg.get("max_train_images"), seed, device, bs) if need_train else None
    summary: dict = {"title": title, "from_checkpoint": from_ckpt, "ckpt_path": cfg.get("ckpt_path"),
                     "feature_dim": int(val.features.shape[1]), "val_images": len(val),
                     "train_images": len(train) if train is not None else 0,
                     "val_acc_head": float((val.preds == val.labels).mean()) if from_ckpt else None}
    files: dict[str, Path] = {}
    if "tsne" in wanted:
        from cvexp.analysis import tsne

        plots = [tuple(p) for p in tcfg.get("plots", tsne.DEFAULT_PLOTS)]
        files.update(tsne.write_tsne_plots({"train": train, "val": val}, class_names, out, plots=plots,
                                           max_points=tcfg.get("max_points", 2000),
                                           pca_dim=tcfg.get("pca_dim", 50),
                                           perplexity=tcfg.get("perplexity", 30.0), seed=seed, title=title,
                                           max_iter=tcfg.get("max_iter", 1000)))
        summary.update(tsne.feature_space_stats(train, val, k=int(tcfg.get("knn_k", 5)), seed=seed))
    if "misclassified" in wanted:
        from cvexp.analysis import misclassified

        mcfg = acfg.get("misclassified") or {}
        mfiles, msum = misclassified.write_misclassified(val, class_names, out, train=train,
                                                         k=int(mcfg.get("k", 3)),
                                                         thumb=int(mcfg.get("thumb", 128)))
        files.update(mfiles)
        summary.update(msum)
    summary["files"] = {k: str(v.name) for k, v in files.items()}
    rundir.write_json(out / "analysis.json", summary)
    log_to_loggers(cfg, files, summary)
    print_summary(out, summary)
    return {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def log_to_loggers(cfg: DictConfig, files: dict[str, Path], summary: dict) -> None:
    """PNGs as images and the numbers as metrics, to the configured loggers (W&B, TensorBoard)."""
    loggers = build.build_dict(cfg.get("logger"))
    if not loggers:
        return
    holder = SimpleNamespace(loggers=loggers)
    results.log_config(holder, build.resolved_container(cfg))
    results.log_images(holder, {f"analysis/{k}": v for k, v in files.items() if str(v).endswith(".png")})
    numbers = {f"analysis/{k}": float(v) for k, v in summary.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for lg in loggers:
        if numbers:
            lg.log_metrics(numbers, step=0)
        lg.save()
        lg.finalize("success")
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()


def print_summary(out: Path, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"analysis: {summary['title']}", show_header=True, header_style="bold")
    table.add_column("item")
    table.add_column("value", justify="right")
    for k, v in summary.items():
        if k in ("title", "files") or v is None:
            continue
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    for k, v in summary.get("files", {}).items():
        table.add_row(k, v)
    console = Console(file=sys.stdout, width=110)
    console.print(table)
    console.print(f"run directory: {out.resolve()}")


main = entry.entry_point(analyze, "analyze")


if __name__ == "__main__":
    main()
