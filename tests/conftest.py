"""Shared fixtures. No test touches the network: hubs are forced offline, W&B runs offline,
demo data goes to a per-session cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TORCH_HOME", "/nonexistent-cvexp-test-torch-home")


def worker_threads(cpus: int, workers: int | None) -> int | None:
    """Threads per pytest-xdist worker: the cores shared out, at least one (None: not under xdist)."""
    return max(1, cpus // workers) if workers else None


# Under pytest-xdist (`make test` runs one worker per core), each worker and every command it
# starts get their share of the cores as intra-op threads (OMP_NUM_THREADS, read when torch loads,
# so set before any import of it). Two workers with two OpenMP threads each on two cores made the
# training tests 3-7x slower than alone; an explicit OMP_NUM_THREADS is kept.
_threads = worker_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
                          int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 0)) or None)
if _threads is not None:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, str(_threads))

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Demo datasets are written once per test session, never into the user's cache."""
    cache = tmp_path_factory.mktemp("cvexp-cache")
    os.environ["CVEXP_CACHE_DIR"] = str(cache)
    yield cache


_COMPOSED: dict = {}


def compose_config(config_name: str = "train", overrides=(), run_dir=None, log_dir=None):
    """A composed config as the entry point would see it, its run dir set to `run_dir`.

    Hydra takes ~0.15 s per composition and a third of the unit tests' compositions repeat one made
    before (same config dir, name and overrides; the files do not change during a session): those
    get a deep copy of it."""
    import copy

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from cvexp.engine.config import config_dir

    key = (config_dir(), config_name, tuple(overrides), os.getcwd())
    if key not in _COMPOSED:
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
            _COMPOSED[key] = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
        GlobalHydra.instance().clear()
    cfg = copy.deepcopy(_COMPOSED[key])
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        if run_dir is not None:
            cfg.paths.output_dir = str(run_dir)
        if log_dir is not None:
            cfg.paths.log_dir = str(log_dir)
        cfg.paths.cache_dir = os.environ["CVEXP_CACHE_DIR"]
    return cfg


@pytest.fixture
def compose_cfg(tmp_path):
    """compose_cfg("train", ["model=resnet18"]) -> a composed config whose run dir is tmp_path/run."""

    def _compose(config_name: str = "train", overrides=(), run_dir: Path | None = None):
        return compose_config(config_name, overrides, run_dir or tmp_path / "run", tmp_path / "logs")

    return _compose


def run_cli(args, cwd=None, env=None, timeout=600):
    """Run `python -m ...` in a subprocess with the test environment; return CompletedProcess."""
    import subprocess

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=timeout)


def predict_split(ckpt, split: str):
    """(labels, predicted ids) of a classification checkpoint on one split of its own data,
    computed directly (not through the entry points under test)."""
    import torch
    from omegaconf import OmegaConf

    from cvexp.engine import build as runs
    from cvexp.io.checkpoint import load_run_checkpoint

    module, train_cfg = runs.build_from_checkpoint(load_run_checkpoint(str(ckpt)), str(ckpt))
    cfg = OmegaConf.create({"data": train_cfg.data, "aug": {"eval": train_cfg.aug.eval}})
    cfg.data.output_dir = None
    dm = runs.build_datamodule(cfg)
    module.eval()
    ys, ps = [], []
    with torch.no_grad():
        for x, y in dm.loader(split, augment=False, shuffle=False):
            ps.append(module(x).argmax(1))
            ys.append(y)
    return torch.cat(ys).numpy(), torch.cat(ps).numpy()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions: one intra-op thread is as fast and immune to a busy shared machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items):
    """tests/e2e: training runs and subprocesses (still run in CI); tests/unit: neither, under a
    minute in all. Everything in e2e is marked `slow`, so `-m "not slow"` = the unit folder."""
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.slow)


def _tiny_net():
    from torch import nn

    class TinyNet(nn.Module):
        """A linear classifier over 4 features with the forward_features/forward_head interface."""

        def __init__(self, n=3):
            super().__init__()
            self.fc = nn.Linear(4, n)

        def forward_features(self, x):
            return x.flatten(1)

        def forward_head(self, f):
            return self.fc(f)

        def forward(self, x):
            return self.forward_head(self.forward_features(x))

    return TinyNet


TinyNet = _tiny_net()


def read_only_dataset(monkeypatch, data):
    """Mask writes into `data` fail as on a read-only dataset (root ignores chmod); other writes go on."""
    from cvexp.data import polygons

    real = polygons.write_png_atomic

    def refuse_dataset(path, array):
        if str(path).startswith(str(data)):
            raise PermissionError(13, "Read-only file system")
        return real(path, array)

    monkeypatch.setattr(polygons, "write_png_atomic", refuse_dataset)
