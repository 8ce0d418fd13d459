"""`python -m cvexp.eval ckpt_path=PATH [data=...]`: evaluate a checkpoint, write a run directory.

Without `data=...` the checkpoint's own data config is used (same files, split and transforms),
so the train-time test metrics are reproduced. With `data=...` the model is evaluated on another
dataset; its input size and normalisation still come from the checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from cvexp import runs
from cvexp.errors import CheckpointError

log = logging.getLogger("cvexp.eval")

# model keys that would fetch or load weights at construction; the checkpoint supplies them
WEIGHT_KEYS = {"pretrained": False, "weights": None, "encoder_weights": None}


def load_checkpoint(path: str) -> dict:
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist; pass ckpt_path=<run dir>/checkpoints/best.ckpt")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(f"cannot load checkpoint {p} ({first}); pass a .ckpt written by python -m cvexp") from None
    if not isinstance(ckpt, dict) or "cvexp" not in ckpt or "config" not in ckpt.get("cvexp", {}):
        raise CheckpointError(f"{p} is not a cvexp checkpoint (no 'cvexp' entry); pass "
                              "<run dir>/checkpoints/best.ckpt or last.ckpt from python -m cvexp")
    return ckpt


def build_from_checkpoint(ckpt: dict, path: str):
    """The LightningModule with the checkpoint's weights, built from the config stored in it."""
    train_cfg = OmegaConf.create(ckpt["cvexp"]["config"])
    model_cfg = train_cfg.model
    with open_dict(model_cfg):
        for k, v in WEIGHT_KEYS.items():
            if k in model_cfg.keys():  # `in` alone is False for a missing (???) value
                model_cfg[k] = v
    net = instantiate(model_cfg)
    info = ckpt["cvexp"]
    objects = {"class_names": info["class_names"]}
    objects.update({k: info[k] for k in ("palette", "label_space") if info.get(k) is not None})
    module = runs.build_task(train_cfg.task, net=net, **objects)
    try:
        module.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"weights in {path} do not fit the model in its own config ({str(e)[:160]})") from None
    module.extra_checkpoint = dict(ckpt["cvexp"])
    return module, train_cfg


def evaluate(cfg: DictConfig) -> dict[str, float]:
    import pytorch_lightning as pl

    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = runs.output_dir(cfg)
    ckpt = load_checkpoint(cfg.ckpt_path)
    module, train_cfg = build_from_checkpoint(ckpt, cfg.ckpt_path)
    with open_dict(cfg):
        user_data = cfg.get("data")
        if user_data is None or "_target_" not in user_data:  # no data=...: the checkpoint's, plus any data.* keys
            cfg.data = OmegaConf.merge(train_cfg.data, user_data) if user_data is not None else train_cfg.data
        for k in ("image_size", "mean", "std"):  # the model's input convention
            if k in train_cfg.data:
                cfg.data[k] = train_cfg.data[k]
        cfg.data.output_dir = str(out)
        if cfg.get("aug") is None:
            cfg.aug = {"eval": train_cfg.aug.eval} if train_cfg.get("aug") else None
        cfg.model = train_cfg.model
        cfg.task = train_cfg.task
        if module.task == "segmentation" and cfg.get("space"):
            cfg.data.target_space = cfg.space  # the data's masks into the shared space
            cfg.data.num_classes = None  # now the target space's; the data module knows it
    dm = runs.build_datamodule(cfg)
    dm.setup("test")
    if hasattr(module, "adapt_to"):
        module.adapt_to(dm)  # the model's predictions into the data's space
    check_compatible(module, dm, cfg.ckpt_path)
    OmegaConf.save(runs.resolved_container(cfg), out / "config.yaml")
    trainer = runs.build_trainer(cfg)
    split = cfg.get("split", "test")
    loader = dm.test_dataloader() if split == "test" else dm.loader(split, augment=False, shuffle=False)
    trainer.test(module, dataloaders=loader)
    metrics = runs.finite_metrics({k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
    runs.write_run_results(out, module, trainer, metrics, [], dm)
    return metrics


def check_compatible(module, dm, path: str) -> None:
    if getattr(module, "task", None) == "classification":
        if list(module.class_names) != list(dm.class_names):
            raise CheckpointError(f"checkpoint {path} predicts classes {module.class_names} but the data has "
                                  f"{dm.class_names}; evaluate on data with the same classes in the same order")
    elif hasattr(module, "check_compatible"):
        module.check_compatible(dm, path)


main = runs.entry_point(evaluate, "eval")


if __name__ == "__main__":
    main()
