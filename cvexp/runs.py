"""What entry points share: building objects from config, guarding and filling run directories.

This is the one library module that knows Hydra (through `hydra.utils.instantiate`); the
entry points (train, eval, ...) are thin wrappers around it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from cvexp.callbacks import MetricHistory
from cvexp.data.transforms import resolve_input_config
from cvexp.errors import ConfigError, CvexpError, RunDirError

log = logging.getLogger("cvexp")

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.json"


# ------------------------------------------------------------------------------------ run dirs
def read_status(run_dir: str | os.PathLike) -> dict:
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def is_finished_run(run_dir: str | os.PathLike) -> bool:
    return read_status(run_dir).get("status") == "completed" or (Path(run_dir) / METRICS_FILE).is_file()


def refuse_finished_run_dir(argv: list[str]) -> None:
    """Before Hydra writes anything: an explicit `hydra.run.dir=` that holds a finished run is refused."""
    for arg in argv:
        if arg.startswith("hydra.run.dir="):
            d = arg.split("=", 1)[1]
            if d and is_finished_run(d):
                raise RunDirError(f"{d} holds a finished run ({STATUS_FILE}/{METRICS_FILE}); "
                                  "choose a new hydra.run.dir so its outputs are kept")


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def cli_overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def _log_to_files(level: int, msg: str) -> None:
    """Into the run's log file only: the console gets the message once, on stderr."""
    record = log.makeRecord(log.name, level, __file__, 0, msg, (), None)
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.FileHandler):
            h.handle(record)


def user_error_in(e: BaseException) -> CvexpError | None:
    """The CvexpError behind `e`, also when Hydra's instantiate wrapped it."""
    from omegaconf.errors import MissingMandatoryValue

    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, CvexpError):
            return e
        if isinstance(e, MissingMandatoryValue):
            key = getattr(e, "full_key", None) or str(e).split(":")[-1].strip().splitlines()[0]
            return ConfigError(f"{key} has no value; set it on the command line: {key}=...")
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def entry_point(fn: Callable[[DictConfig], dict], config_name: str) -> Callable[[], None]:
    """`main()` of an entry point: refuse a finished run dir before Hydra writes anything, then
    compose `conf/<config_name>.yaml` with the command line and run `fn` as a job (`run_job`)."""
    import hydra

    from cvexp.config import config_dir

    @hydra.main(version_base="1.3", config_path=config_dir(), config_name=config_name)
    def _hydra_main(cfg: DictConfig) -> float | None:
        return run_job(fn, cfg)

    def main() -> None:
        try:
            refuse_finished_run_dir(sys.argv[1:])
        except CvexpError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        _hydra_main()

    main.__doc__ = fn.__doc__
    return main


def run_job(fn: Callable[[DictConfig], dict], cfg: DictConfig) -> float | None:
    """Run one job: status.json before and after, the optimized metric back to Hydra.

    A user error (CvexpError) in a single run prints one line and exits with code 2; in a
    multirun any failing job is marked failed in its status.json, returns NaN and the sweep goes
    on (the sweep report lists it with its error).
    """
    if not is_rank_zero():  # DDP workers started by Lightning: rank 0 keeps the books
        return _metric(fn(cfg), cfg)
    out = output_dir(cfg)
    if is_finished_run(out):
        raise RunDirError(f"{out} holds a finished run; choose a new hydra.run.dir")
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    status = {"status": "running", "task_name": cfg.get("task_name"), "overrides": cli_overrides(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid()}
    write_json(out / STATUS_FILE, status)
    try:
        metrics = fn(cfg)
    except BaseException as e:  # noqa: BLE001 - record every failure, then decide how to surface it
        e = user_error_in(e) or e
        user_error = isinstance(e, CvexpError)
        msg = str(e) if user_error else f"{type(e).__name__}: {e}"
        status.update(status="failed", error=msg, wall_time_s=round(time.time() - started, 2))
        if not user_error:
            status["traceback"] = traceback.format_exc()
        write_json(out / STATUS_FILE, status)
        if isinstance(e, KeyboardInterrupt):
            raise
        if is_multirun():  # the sweep goes on; the report lists this job with its error
            log.error("job failed: %s", msg if user_error else status["traceback"])
            return float("nan")
        if user_error:
            _log_to_files(logging.ERROR, f"error: {msg}")
            print(f"error: {msg}", file=sys.stderr)
            sys.exit(2)
        raise
    status.update(status="completed", wall_time_s=round(time.time() - started, 2))
    write_json(out / STATUS_FILE, status)
    return _metric(metrics, cfg)


def _metric(metrics: dict, cfg: DictConfig) -> float | None:
    metric_name = cfg.get("optimized_metric")
    value = metrics.get(metric_name) if metric_name else None
    return float(value) if value is not None else None


def is_rank_zero() -> bool:
    """False in the extra processes of a multi-process (DDP) run; they must not write run files."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


# ------------------------------------------------------------------------------- composition
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
    return fn(**{k: v for k, v in model_cfg.items() if not str(k).startswith("_")})


def resolve_inputs(cfg: DictConfig) -> None:
    """Fill data.image_size/mean/std in place: explicit values, else the model's, else defaults."""
    resolved = resolve_input_config(cfg.data.get("image_size"), cfg.data.get("mean"), cfg.data.get("std"),
                                    model_input_config(cfg.model))
    with open_dict(cfg):
        for k, v in resolved.items():
            cfg.data[k] = v


def build_datamodule(cfg: DictConfig, **overrides) -> pl.LightningDataModule:
    train_tf = instantiate(cfg.aug.train, _convert_="all") if cfg.get("aug") and "train" in cfg.aug else None
    eval_tf = instantiate(cfg.aug.eval, _convert_="all") if cfg.get("aug") and "eval" in cfg.aug else None
    # partial first, then Python objects as plain arguments (Hydra would turn them into config nodes)
    dm = instantiate(cfg.data, _partial_=True)(train_transforms=train_tf, eval_transforms=eval_tf, **overrides)
    n = cfg.data.get("num_classes")
    if n is not None and getattr(dm, "num_classes", n) != n:
        raise ConfigError(f"data.num_classes={n} but data.class_names has {dm.num_classes} names; make them agree")
    return dm


def build_task(task_cfg: DictConfig, **objects) -> pl.LightningModule:
    """The LightningModule from its config plus live objects (network, class names, partials)."""
    return instantiate(task_cfg, _partial_=True)(**objects)


def task_objects(dm: Any) -> dict:
    """What a task module needs to know about its data: class names, and for segmentation the
    palette and the label space the network's classes live in."""
    objs = {"class_names": list(dm.class_names)}
    if getattr(dm, "task", None) == "segmentation":
        objs.update(palette=dm.palette, label_space=dm.target_space.name)
    return objs


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


def build_trainer(cfg: DictConfig, history: MetricHistory | None = None) -> pl.Trainer:
    callbacks = build_dict(cfg.get("callbacks"))
    if history is not None:
        callbacks.append(history)
    loggers = build_dict(cfg.get("logger"))
    return instantiate(cfg.trainer, _partial_=True)(callbacks=callbacks, logger=loggers or False)


def resolved_container(cfg: DictConfig) -> dict:
    """The run's config with every interpolation resolved (hydra node left out)."""
    c = OmegaConf.to_container(cfg, resolve=False)
    c.pop("hydra", None)
    return OmegaConf.to_container(OmegaConf.create(c), resolve=True)


def log_config(trainer: pl.Trainer, cfg: dict) -> None:
    flat = _flatten(cfg)
    for lg in trainer.loggers:
        lg.log_hyperparams(flat)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


def log_images(trainer: pl.Trainer, images: dict[str, Path]) -> None:
    """Send finished PNGs to loggers that take images (W&B, TensorBoard)."""
    for lg in trainer.loggers:
        for key, path in images.items():
            if path is None or not Path(path).is_file():
                continue
            if hasattr(lg, "log_image"):  # WandbLogger
                lg.log_image(key=key, images=[str(path)])
            elif hasattr(lg, "experiment") and hasattr(lg.experiment, "add_image"):
                import matplotlib.image as mpimg

                img = mpimg.imread(str(path))[..., :3]
                lg.experiment.add_image(key, img, dataformats="HWC")


def finite_metrics(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[k] = f if math.isfinite(f) else None
    return out


# ------------------------------------------------------------------------------------ results
def write_run_results(out: Path, module: pl.LightningModule, trainer: pl.Trainer, metrics: dict,
                      history: list[dict], datamodule: Any = None) -> dict[str, Path]:
    """metrics.json, the task's tables and plots, learning curves; images to the loggers;
    a short table on the console."""
    from cvexp.analysis import results

    if not trainer.is_global_zero:
        return {}
    write_json(out / METRICS_FILE, metrics)
    files: dict[str, Path] = {"metrics": out / METRICS_FILE}
    files.update(results.write_history(out, history))
    task = getattr(module, "task", None)
    if task == "classification" and getattr(module, "test_confusion", None) is not None:
        files.update(results.write_classification_results(out, module.test_confusion.numpy(),
                                                          module.class_names))
    elif task == "segmentation" and hasattr(module, "write_results"):
        files.update(module.write_results(out, datamodule))
    log_images(trainer, {"test/confusion_matrix": files.get("confusion_matrix"),
                         "learning_curves": files.get("learning_curves")})
    print_summary(out, metrics)
    return files


def print_summary(out: Path, metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="results", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in sorted(metrics):
        if k.count("/") > 1:  # per-class values live in per_class.csv
            continue
        v = metrics[k]
        table.add_row(k, "nan" if v is None else f"{v:.4f}")
    console = Console(file=sys.stdout, width=100)
    console.print(table)
    console.print(f"run directory: {out.resolve()}")
