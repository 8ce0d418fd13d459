"""Weights and checkpoint files are data, never code: the one place that reads them.

- `read_file(path)`: any `.pth`/`.pth.tar`/`.ckpt`/`.pt` through `torch.load(weights_only=True)`;
  the only globals admitted besides torch's own are numpy scalars and dtypes (DeepLabV3Plus-Pytorch
  stores `best_score` as a numpy float64). `.safetensors` through safetensors.
- `state_dict_from(obj)`: the tensors inside `{"state_dict": ...}`, `{"model_state": ...}`, ...
- `load_run_checkpoint(path)`: a checkpoint written by `python -m cvexp` (or a run directory, which
  stands for its `checkpoints/best.ckpt`), with its stored config checked by `check_targets`.
- `check_targets(config)`: the allow-list. A checkpoint's (or run directory's) config is rebuilt
  into objects, so every `_target_` in it must name, in its own node, one of cvexp's data modules,
  models or task modules, an albumentations transform, or a Lightning/torch trainer, callback,
  logger, optimizer or scheduler; anything else (`os.system`, `pathlib.Path.touch`, a function,
  a module outside those packages) is refused before it is imported or instantiated.

Every failure is a one-line `CheckpointError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvexp.errors import CheckpointError

STATE_DICT_KEYS = ("state_dict", "model_state", "model", "net", "module")
RUN_CHECKPOINTS = ("best.ckpt", "last.ckpt")

# --------------------------------------------------------------------------------- reading files


def _numpy_safe_globals() -> list:
    """numpy scalars and dtypes. Pickles written with numpy 1.x name `numpy.core.multiarray.scalar`,
    numpy 2.x `numpy._core.multiarray.scalar`."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    out: list = [np.dtype, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType", "Int32DType",
                                             "BoolDType") if hasattr(dtypes, n)]
    return out


def read_file(path: str | os.PathLike, what: str = "weights file", hint: str = "check the path") -> Any:
    """The object stored in a weights/checkpoint file. No pickled code ever runs."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist; {hint}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return load_file(str(path))
        except Exception as e:  # noqa: BLE001 - truncated or not a safetensors file
            raise CheckpointError(f"cannot read {what} {path} ({_first_line(e)}); "
                                  "give a complete .safetensors file") from None
    _check_zip_sizes(path, what)
    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    try:
        with allow(_numpy_safe_globals()) if allow else contextlib.nullcontext():
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if not found:  # damaged, or not a pickle at all
            detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(e))
            raise CheckpointError(f"cannot read {what} {path} ({detail.group(1).strip() if detail else _first_line(e)}); "
                                  "the file is damaged or not a PyTorch file") from None
        code = found.group(1)
        raise CheckpointError(
            f"{path} is not a plain checkpoint: loading it would run pickled code ({code}), which cvexp "
            "refuses; if you trust the file, re-save just its tensors with torch.save(state_dict, "
            "'clean.pth') and pass that file") from None
    except Exception as e:  # noqa: BLE001 - truncated, empty, not a torch file, ...
        raise CheckpointError(f"cannot read {what} {path} ({_first_line(e)}); the file is damaged or "
                              "not a PyTorch file") from None


def _check_zip_sizes(path: Path, what: str) -> None:
    """torch.save stores its zip entries uncompressed, so their sizes add up to about the file's;
    entries that would inflate far beyond it (a zip bomb: a few MB that fill the memory when
    torch.load reads them) are refused before anything is read."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return  # the legacy (pre-1.6) format, or not a zip at all: torch.load reports it
    try:
        with zipfile.ZipFile(path) as zf:
            inflated = sum(max(0, i.file_size) for i in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {what} {path} ({_first_line(e)}); the file is damaged") from None
    on_disk = path.stat().st_size
    if inflated > 2 * on_disk + (1 << 20):
        raise CheckpointError(f"{what} {path} would inflate from {on_disk / 1e6:.1f} MB to {inflated / 1e6:.0f} MB "
                              "(compressed entries, which torch.save never writes); refused. Re-save it with "
                              "torch.save(state_dict, 'clean.pth') where it came from")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def state_dict_from(obj: Any, source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a loaded file: bare, or under `state_dict` (Lightning), `model_state`
    (DeepLabV3Plus-Pytorch), `model`, `net` or `module`, up to three levels deep."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not is_state_dict(obj):
            inner = next((obj[k] for k in STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not is_state_dict(obj):
        keys = ", ".join(map(str, list(obj)[:5])) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{source} holds no state dict (tensors by name; found {keys}); give a file "
                              "saved with torch.save(model.state_dict())")
    return dict(obj)


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a weights file (`model.weights=...` and friends)."""
    return state_dict_from(read_file(path, "weights file", "check the path given in model.weights"),
                           Path(path).expanduser())


# ------------------------------------------------------------- paths a checkpoint names

CALLBACK_PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


def confine_callback_paths(checkpoint: dict, folders: Mapping[str, str | os.PathLike | None]) -> list[str]:
    """Drop, in place, every file path a checkpoint's callback states name outside that callback's
    own folder now (`folders`: state key -> the callback's dirpath); return what was dropped.

    Lightning restores a ModelCheckpoint's `best_model_path` (which `trainer.test` then loads, and
    over http without weights_only) and its top-k paths (which it deletes when a better model comes),
    so a path that another folder, `..`, a symlink or a URL names must not survive loading."""
    dropped: list[str] = []
    states = checkpoint.get("callbacks")
    if not isinstance(states, dict):
        return dropped
    for key, state in states.items():
        if not isinstance(state, dict):
            continue
        folder = folders.get(key)
        root = Path(folder).expanduser().resolve() if folder else None

        def inside(p: Any) -> bool:
            if not isinstance(p, (str, os.PathLike)) or not str(p) or "://" in str(p) or root is None:
                return False
            return Path(p).expanduser().resolve().is_relative_to(root)

        for name in CALLBACK_PATH_KEYS:
            value = state.get(name)
            if value and not inside(value):
                dropped.append(str(value))
                state[name] = ""
        top = state.get("best_k_models")
        if isinstance(top, dict):
            dropped += [str(p) for p in top if not inside(p)]
            state["best_k_models"] = {p: v for p, v in top.items() if inside(p)}
        elif top is not None:
            dropped.append(f"best_k_models of type {type(top).__name__}")
            state["best_k_models"] = {}
    return dropped


# ---------------------------------------------------------------------------- run checkpoints

def checkpoint_file(path: str | os.PathLike) -> Path:
    """A run directory stands for its checkpoints/best.ckpt (else last.ckpt)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in RUN_CHECKPOINTS:
            if (p / "checkpoints" / name).is_file():
                return p / "checkpoints" / name
        raise CheckpointError(f"{p} is a folder without checkpoints/best.ckpt or last.ckpt; pass a run "
                              "directory of python -m cvexp or a .ckpt file")
    return p


def load_run_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by `python -m cvexp`, its config checked against the allow-list."""
    p = checkpoint_file(path)
    ckpt = read_file(p, "checkpoint", "pass ckpt_path=<run dir>/checkpoints/best.ckpt")
    info = ckpt.get("cvexp") if isinstance(ckpt, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        if isinstance(ckpt, dict) and "model_state" in ckpt:
            raise CheckpointError(
                f"{p} is a DeepLabV3Plus-Pytorch (VainF) checkpoint, not a cvexp run: evaluate it with "
                f"python -m cvexp experiment=idd_zero_shot_cityscapes model.weights={p} (add "
                "model.backbone=mobilenet|resnet50 to match the file), or fine-tune from it with "
                f"model=deeplabv3plus_cityscapes model.weights={p}")
        raise CheckpointError(f"{p} is not a cvexp checkpoint (no 'cvexp' entry with the run's config); "
                              "pass <run dir>/checkpoints/best.ckpt or last.ckpt from python -m cvexp")
    if not isinstance(ckpt.get("state_dict"), Mapping):
        raise CheckpointError(f"{p} has no 'state_dict'; it is not a complete cvexp checkpoint")
    check_targets(info["config"], p)
    return ckpt


# ------------------------------------------------------------------------------ the allow-list

def _allowed() -> dict[str, tuple[tuple[str, ...], tuple[type, ...]]]:
    """config node -> (module prefixes its `_target_`s may name, the classes they must subclass)."""
    import albumentations as A
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import Logger
    from torch import nn

    from cvexp.data.base import SplitDataModule
    from cvexp.tasks.base import TaskModule

    return {
        "model": (("cvexp.models.",), (nn.Module,)),
        "task": (("cvexp.tasks.",), (TaskModule,)),
        "data": (("cvexp.data.",), (SplitDataModule,)),
        "aug": (("albumentations.",), (A.BasicTransform, A.BaseCompose)),
        # never built from a checkpoint, but a resumed run builds them from its run directory's config
        "trainer": (("pytorch_lightning.",), (pl.Trainer,)),
        "callbacks": (("pytorch_lightning.callbacks.", "cvexp.engine.callbacks."), (pl.Callback,)),
        "logger": (("pytorch_lightning.loggers.",), (Logger,)),
        "optimizer": (("torch.optim.",), (torch.optim.Optimizer,)),
        "scheduler": (("torch.optim.lr_scheduler.",), (torch.optim.lr_scheduler.LRScheduler,)),
    }


# Hydra keys that change how a node is called
CALL_KEYS = {"_target_", "_partial_", "_args_", "_recursive_", "_convert_"}


def check_targets(config: Mapping, source: str | os.PathLike = "the checkpoint") -> None:
    """Refuse a stored config that would make cvexp import or call anything but its own data
    modules, models and task modules, albumentations transforms, and Lightning/torch trainers,
    callbacks, loggers, optimizers and schedulers, each only in its own node (checked by name before
    any import, then by class); or that holds interpolations (a stored config is resolved)."""
    allowed = _allowed()
    for key, node in config.items():
        for where, value in walk(node, str(key)):
            if isinstance(value, str) and "${" in value:
                raise CheckpointError(f"{source}: {where} holds an interpolation ({value[:60]}); a cvexp "
                                      "run stores its config resolved, so this file is refused")
            name = where.rsplit(".", 1)[-1]
            if name not in CALL_KEYS:
                continue
            if str(key) not in allowed or name in ("_args_", "_recursive_"):
                raise CheckpointError(f"{source}: {where} would be called when the run is rebuilt, and "
                                      "nothing outside cvexp's own parts may be; the file is refused")
            if name == "_target_":
                prefixes, bases = allowed[str(key)]
                _check_class(value, prefixes, bases, where, source)


def walk(node: Any, where: str):
    """Every node of a config container with its dotted path (`model.blocks.0.channels`)."""
    yield where, node
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from walk(v, f"{where}.{k}")
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from walk(v, f"{where}.{i}")


def _check_class(target: Any, prefixes: tuple[str, ...], bases: tuple[type, ...], where: str, source) -> None:
    refused = CheckpointError(f"{source}: {where}={target!r} is not allowed there (only "
                              f"{' or '.join(b.__name__ for b in bases)} classes from "
                              f"{', '.join(p + '*' for p in prefixes)}); the file is refused and nothing "
                              "from it was run")
    if not isinstance(target, str) or not target.startswith(prefixes) or not re.fullmatch(r"[\w.]+", target):
        raise refused
    try:
        obj = _resolve_dotted(target)
    except (ImportError, AttributeError):
        raise CheckpointError(f"{source}: {where}={target!r} does not exist in this installation; the "
                              "file was written by another version of cvexp or its libraries") from None
    if not (isinstance(obj, type) and issubclass(obj, bases)):
        raise refused


def _resolve_dotted(target: str) -> Any:
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for p in parts[i:]:
            obj = getattr(obj, p)
        return obj
    raise ImportError(target)


# ------------------------------------------------------------------------------ writing files

def save_file(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` into a temporary file beside `path`, then a rename: a full disk or a kill
    mid-write leaves the previous checkpoint intact and no truncated file."""
    import io

    from cvexp.io.atomic import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(obj, buf)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getbuffer())


def atomic_checkpoint_io():
    """A Lightning CheckpointIO plugin whose saves go through `save_file` (Lightning's own writes
    through fsspec and can leave a truncated file when the disk fills up)."""
    from pytorch_lightning.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            save_file(checkpoint, path)

    return AtomicCheckpointIO()
