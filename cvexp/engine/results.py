"""A finished run's files (metrics.json, the task's tables and plots, learning curves), images to
the loggers that take them, and the console summary. No Hydra here."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvexp.engine.rundir import METRICS_FILE, write_json

if TYPE_CHECKING:
    import pytorch_lightning as pl


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


def result_images(files: dict[str, Path]) -> dict[str, Path]:
    """The run's pictures for the loggers: every PNG the task wrote (confusion matrix; for
    segmentation the prediction and failure panels) as `test/<name>`, and the learning curves."""
    out = {f"test/{k}": Path(v) for k, v in files.items()
           if k != "learning_curves" and v is not None and str(v).endswith(".png")}
    if files.get("learning_curves"):
        out["learning_curves"] = Path(files["learning_curves"])
    return out


def finite_metrics(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[k] = f if math.isfinite(f) else None
    return out


def write_run_results(out: Path, module: pl.LightningModule, trainer: pl.Trainer, metrics: dict,
                      history: list[dict], datamodule: Any = None) -> dict[str, Path]:
    """The task's tables and plots (`module.write_results`), learning curves, and metrics.json last
    (its presence marks a finished run); images to the loggers; a short table on the console."""
    from cvexp.analysis import results

    if not trainer.is_global_zero:
        return {}
    files: dict[str, Path] = dict(results.write_history(out, history))
    files.update(module.write_results(out, datamodule))
    write_json(out / METRICS_FILE, metrics)
    files["metrics"] = out / METRICS_FILE
    log_images(trainer, result_images(files))
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
