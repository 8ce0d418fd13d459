"""A run's settings fitted to the machine, before Lightning or a DataLoader sees them.

Called where the data module and the trainer are built (`build.build_datamodule`,
`build.build_trainer`); it changes the config in place, so the saved config.yaml says what ran,
and is idempotent (the second call finds nothing left to change and says nothing).

* `trainer.accelerator=gpu|cuda` (`trainer=gpu`, `trainer=ddp`) without a usable GPU: one-line
  `ConfigError` naming `trainer=cpu`, instead of Lightning's "No supported gpu backend found!".
* Training on the CPU (accelerator `cpu`, or `auto` on a machine without CUDA/MPS), the GPU-only
  options of an experiment fall back: fp16 precision (`16-mixed`, `16-true`; Lightning would turn
  16-mixed into bf16 autocast, which crawls on most CPUs) becomes `32-true`, and more DataLoader
  workers than half the CPU cores becomes half the cores (workers take cores from the training
  threads). One warning line lists the changes.
* `debug=fast` (a `smoke` node in the config): the caps of `cvexp.engine.smoke`; then ONE info line
  lists everything changed, the CPU fallbacks included.
"""

from __future__ import annotations

import logging
import os

from omegaconf import DictConfig, open_dict

from cvexp.engine import smoke
from cvexp.errors import ConfigError

log = logging.getLogger("cvexp")

GPU_PRECISIONS = ("16-mixed", "16", "16-true", "bf16-mixed", "bf16", "bf16-true")  # GPU-only precisions
GPU_ACCELERATORS = ("gpu", "cuda")


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available())


def runs_on_cpu(accelerator: str | None) -> bool:
    acc = str(accelerator or "auto")
    return acc == "cpu" or (acc == "auto" and not gpu_available())


def check_accelerator(trainer_cfg: DictConfig | None) -> None:
    """`trainer=gpu` (or ddp) on a machine without a GPU: one line naming the fix."""
    acc = str(trainer_cfg.get("accelerator", "auto")) if trainer_cfg is not None else "auto"
    if acc in GPU_ACCELERATORS and not gpu_available():
        raise ConfigError(f"trainer.accelerator={acc} (trainer=gpu or trainer=ddp) needs a GPU and this machine has "
                          "none (torch.cuda.is_available() is False); use trainer=cpu, or trainer=default, which "
                          "takes a GPU when there is one")


def bf16_fallback(cfg: DictConfig) -> list[str]:
    """bf16 precision on a CUDA GPU without bf16 (before Ampere): 16-mixed, as `key old -> new`."""
    trainer = cfg.get("trainer")
    prec = str(trainer.get("precision", "32-true")) if trainer is not None else "32-true"
    if not prec.startswith("bf16") or runs_on_cpu(trainer.get("accelerator")):
        return []
    import torch

    if not torch.cuda.is_available() or torch.cuda.is_bf16_supported():
        return []
    with open_dict(cfg):
        trainer.precision = "16-mixed"
    return [f"trainer.precision {prec} -> 16-mixed (this GPU has no bf16)"]


def cpu_fallbacks(cfg: DictConfig) -> list[str]:
    """The GPU-only settings changed for a CPU run, as `key old -> new` strings (applied in place)."""
    trainer = cfg.get("trainer")
    if not runs_on_cpu(trainer.get("accelerator") if trainer is not None else None):
        return []
    changes = []
    with open_dict(cfg):
        if trainer is not None and str(trainer.get("precision", "32-true")) in GPU_PRECISIONS:
            changes.append(f"trainer.precision {trainer.precision} -> 32-true")
            trainer.precision = "32-true"
        data = cfg.get("data")
        cap = max(1, cpu_cores() // 2)
        if data is not None and int(data.get("num_workers") or 0) > cap:
            changes.append(f"data.num_workers {data.num_workers} -> {cap} (of {cpu_cores()} CPU cores)")
            data.num_workers = cap
    return changes


def auto_workers(cfg: DictConfig) -> None:
    """`data.num_workers=auto`: every core but one feeds a GPU (at most 8); on a CPU, half the
    cores load data and the rest train. Resolved in place, so the saved config says the number."""
    data = cfg.get("data")
    if data is None or str(data.get("num_workers", "")) != "auto":
        return
    trainer = cfg.get("trainer")
    cores = cpu_cores()
    on_cpu = runs_on_cpu(trainer.get("accelerator") if trainer is not None else None)
    with open_dict(cfg):
        data.num_workers = max(1, cores // 2) if on_cpu else max(1, min(8, cores - 1))


def fit_to_machine(cfg: DictConfig) -> list[str]:
    """Check the accelerator (and task.eval), apply the debug=fast caps and the CPU fallbacks; log
    one line if anything changed; return the changes."""
    check_accelerator(cfg.get("trainer"))
    auto_workers(cfg)
    smoke.check_eval_mode(cfg)  # a bad task.eval fails now, not after the data is read
    caps = smoke.apply_caps(cfg)
    fallbacks = cpu_fallbacks(cfg) + bf16_fallback(cfg)
    if smoke.active(cfg):
        if caps or fallbacks:
            log.info("debug=fast changed %s", ", ".join(caps + [f"{c} (no GPU)" for c in fallbacks]))
    elif fallbacks:
        log.warning("training on the CPU (no GPU here), so: %s", ", ".join(fallbacks))
    return caps + fallbacks
