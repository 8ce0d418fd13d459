"""Objects from config: data module, model, task module, trainer; and a run's objects rebuilt from a
checkpoint's stored config, which passes `cvexp.io.checkpoint.check_targets` (the allow-list) first.

`hydra.utils.instantiate` is called here and nowhere else.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from cvexp.engine.hardware import fit_to_machine
from cvexp.errors import CheckpointError, ConfigError

log = logging.getLogger("cvexp")

# model keys that would fetch or load weights at construction; a checkpoint supplies the weights
WEIGHT_KEYS = {"pretrained": False, "weights": None, "encoder_weights": None, "hub_id": None,
               "pretrained_backbone": False}


LEGACY_DATA_KEYS = ("num_classes", "num_classes_of")


@contextmanager
def misspelt_keys_named(key: str, node: DictConfig):
    """A config key the class does not take (a typo, or a key of another option) as one line
    naming it, instead of Python's TypeError."""
    try:
        yield
    except Exception as e:  # TypeError, or Hydra's InstantiationException around it
        found = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if not found:
            raise
        target = str(node.get("_target_", "?")).rsplit(".", 1)[-1]
        raise ConfigError(f"{key}.{found.group(1)} is not a setting of {target}; check its spelling against "
                          f"conf/{key}/ (or drop it)") from None


def build_dict(node: DictConfig | None) -> list[Any]:
    """Instantiate the named entries of a group such as `callbacks` or `logger` that have a
    `_target_`; `None` entries (dropped with key=null) and plain values are skipped."""
    if not node:
        return []
    return [instantiate(v) for v in node.values() if isinstance(v, DictConfig) and "_target_" in v]


def optional(node: DictConfig | None) -> Any:
    """Instantiate a `_partial_` optimizer/scheduler node; empty groups (scheduler=none) give None."""
    if node is None or not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    return instantiate(node)


def model_input_config(model_cfg: DictConfig) -> dict:
    """The model's pretrained input convention, if its class publishes one
    (`pretrained_input_config(**model_cfg)`), without building the model."""
    try:
        cls = get_class(model_cfg._target_)
    except Exception:  # noqa: BLE001 - a function target or unknown class publishes nothing
        return {}
    fn = getattr(cls, "pretrained_input_config", None)
    if fn is None:
        return {}
    return fn(**{k: v for k, v in model_cfg.items() if not str(k).startswith("_") and k not in FAST_PATH_KEYS})


def resolve_inputs(cfg: DictConfig) -> None:
    """Fill data.image_size/mean/std in place: explicit values, else the model's, else defaults."""
    from cvexp.data.transforms import resolve_input_config  # albumentations + torch: only when running

    resolved = resolve_input_config(cfg.data.get("image_size"), cfg.data.get("mean"), cfg.data.get("std"),
                                    model_input_config(cfg.model))
    with open_dict(cfg):
        for k, v in resolved.items():
            cfg.data[k] = v


def build_datamodule(cfg: DictConfig, **overrides):
    fit_to_machine(cfg)  # GPU-only settings on a CPU, debug=fast caps: in place, one log line (hardware.py)
    train_tf = instantiate(cfg.aug.train, _convert_="all") if cfg.get("aug") and "train" in cfg.aug else None
    eval_tf = instantiate(cfg.aug.eval, _convert_="all") if cfg.get("aug") and "eval" in cfg.aug else None
    # partial first, then Python objects as plain arguments (Hydra would turn them into config nodes)
    make = instantiate(cfg.data, _partial_=True)
    with misspelt_keys_named("data", cfg.data):
        return make(train_transforms=train_tf, eval_transforms=eval_tf, **overrides)


def build_task(task_cfg: DictConfig, **objects):
    """The LightningModule from its config plus live objects (network, class names, partials)."""
    make = instantiate(task_cfg, _partial_=True)
    with misspelt_keys_named("task", task_cfg):
        return make(**objects)


FAST_PATH_KEYS = ("channels_last", "compile")  # model keys for cvexp.models.fast, not the network's own


def build_model(model_cfg: DictConfig, num_classes: int):
    """The network of `model_cfg` for `num_classes` classes (the data module's count), with the
    fast paths of `model.channels_last` / `model.compile` (cvexp.models.fast)."""
    from cvexp.models.fast import apply_fast_paths

    fast = {k: model_cfg.get(k) for k in FAST_PATH_KEYS if k in model_cfg}
    own = model_cfg
    if fast:  # a resolved copy without them (interpolations such as ${data.image_size} resolved first)
        own = OmegaConf.create({k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
                                if k not in FAST_PATH_KEYS})
    with misspelt_keys_named("model", own):
        net = instantiate(own, num_classes=num_classes)
    return apply_fast_paths(net, **fast) if fast else net


def task_objects(task_cfg: DictConfig, dm: Any) -> dict:
    """What the task module of `task_cfg` takes from the data module (TaskModule.data_objects)."""
    return get_class(task_cfg._target_).data_objects(dm)


def check_task_matches_data(task_cfg: DictConfig, dm: Any, choices: dict) -> None:
    task = getattr(get_class(task_cfg._target_), "task", None)
    data_task = getattr(dm, "task", None)
    if task and data_task and task != data_task:
        raise ConfigError(f"task={choices.get('task', task)} cannot train on data={choices.get('data', '?')} "
                          f"(a {data_task} dataset); add task={data_task} (and a {data_task} model), "
                          "or use an experiment such as experiment=seg_demo")


def hydra_choices() -> dict:
    try:
        return dict(HydraConfig.get().runtime.choices)
    except ValueError:
        return {}


def build_trainer(cfg: DictConfig, extra_callbacks: list | None = None):
    """The Trainer of `cfg.trainer` with the configured callbacks and loggers; checkpoints are
    written atomically (cvexp.io.checkpoint.save_file)."""
    from cvexp.io.checkpoint import atomic_checkpoint_io

    fit_to_machine(cfg)  # (a no-op when build_datamodule has done it)
    callbacks = build_dict(cfg.get("callbacks")) + list(extra_callbacks or [])
    loggers = build_dict(cfg.get("logger"))
    extra = cfg.trainer.get("plugins")
    plugins = [atomic_checkpoint_io(), *(instantiate(extra, _convert_="all") if extra else [])]
    # (keyword arguments of the call replace the config's own `plugins`)
    return instantiate(cfg.trainer, _partial_=True)(callbacks=callbacks, logger=loggers or False,
                                                    plugins=plugins)


def resolved_container(cfg: DictConfig) -> dict:
    """The run's config with every interpolation resolved (hydra node left out)."""
    c = OmegaConf.to_container(cfg, resolve=False)
    c.pop("hydra", None)
    return OmegaConf.to_container(OmegaConf.create(c), resolve=True)


# ----------------------------------------------------------------------------- from checkpoints

def _init_params(target: Any) -> set[str]:
    """The keyword names the class `target` takes (nothing for what cannot be located)."""
    import inspect

    try:
        return set(inspect.signature(get_class(str(target))).parameters) if target else set()
    except Exception:  # noqa: BLE001 - building the model reports a bad target with its own message
        return set()


def build_from_checkpoint(ckpt: dict, path: str):
    """The task module with the checkpoint's weights, and the run's stored config. The checkpoint
    has passed `cvexp.io.checkpoint.load_run_checkpoint` (its `_target_`s are on the allow-list)."""
    train_cfg = OmegaConf.create(ckpt["cvexp"]["config"])
    model_cfg = train_cfg.model
    with open_dict(model_cfg):
        for k, v in WEIGHT_KEYS.items():
            # also where the stored config leaves the key out: the class's default would fetch weights
            if k in model_cfg.keys() or k in _init_params(model_cfg.get("_target_")):
                model_cfg[k] = v
    info = ckpt["cvexp"]
    class_names = info.get("class_names")
    if not isinstance(class_names, list) or not all(isinstance(c, str) for c in class_names):
        raise CheckpointError(f"{path} has no list of class names; it is not a complete cvexp checkpoint")
    try:
        net = build_model(model_cfg, len(class_names))
        objects = {"class_names": class_names}
        objects.update({k: info[k] for k in ("palette", "label_space") if info.get(k) is not None})
        module = build_task(train_cfg.task, net=net, **objects)
    except Exception as e:  # noqa: BLE001 - a config this version cannot build
        from cvexp.engine.entry import user_error_in

        if user_error_in(e):
            raise
        raise CheckpointError(f"cannot rebuild the model stored in {path} ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0][:160] if str(e).strip() else ''}); was it "
                              "written by another cvexp version?") from None
    try:
        module.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"weights in {path} do not fit the model in its own config "
                              f"({str(e).strip().splitlines()[0][:160]})") from None
    if ckpt.get("cvexp_best"):
        module.load_best_state(ckpt["cvexp_best"])
    module.extra_checkpoint = dict(info)
    return module, train_cfg


def merge_checkpoint_data(cfg: DictConfig, train_cfg: DictConfig) -> None:
    """`cfg.data`/`cfg.aug` for evaluating a checkpoint: without `data=...` the checkpoint's own data
    config plus any `data.*` keys given; the model's input convention (size, mean, std) and eval
    transforms always from the checkpoint unless `aug=...` is given."""
    with open_dict(train_cfg):
        for k in LEGACY_DATA_KEYS:  # checkpoints of earlier versions stored the class count in data too
            train_cfg.data.pop(k, None)
    with open_dict(cfg):
        user_data = cfg.get("data")
        if user_data is None or "_target_" not in user_data:
            cfg.data = OmegaConf.merge(train_cfg.data, user_data) if user_data is not None else train_cfg.data
        for k in ("image_size", "mean", "std"):
            if k in train_cfg.data:
                cfg.data[k] = train_cfg.data[k]
        if "cache_dir" in cfg.data and cfg.get("paths") and cfg.paths.get("cache_dir") and \
                not (user_data is not None and "cache_dir" in user_data):
            cfg.data.cache_dir = cfg.paths.cache_dir  # this machine's cache, not the one stored in the file
        if cfg.get("aug") is None:
            cfg.aug = {"eval": train_cfg.aug.eval} if train_cfg.get("aug") else None
        cfg.model = train_cfg.model
