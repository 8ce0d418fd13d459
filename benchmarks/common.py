"""What every benchmark script shares: the size argument, one torch thread, timing of processes and
callables in interleaved pairs, the machine description and the JSON record.

Nothing here imports cvexp: the harness and the baselines share only the data files with it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results.jsonl"
PYTHON = sys.executable
SCALES = ("small", "full")
if str(REPO) not in sys.path:  # the cvexp side of in-process benchmarks, also without `pip install -e .`
    sys.path.append(str(REPO))

# one thread on both sides: in this process (one_thread) and in every child process (child_env)
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------ arguments
def parser(description: str) -> argparse.ArgumentParser:
    """`--scale small|full` (small: about a minute on 2 cores; full: the issue's figures),
    `--reps N` (pairs; default per scale), `--no-record` (print only, do not append)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--scale", choices=SCALES, default="small",
                   help="small: about a minute here (default); full: the issue's sizes")
    p.add_argument("--reps", type=int, default=None, help="interleaved pairs (default: by scale)")
    p.add_argument("--no-record", action="store_true", help=f"print the JSON, do not append it to {RESULTS.name}")
    p.add_argument("--results", type=Path, default=RESULTS, help="JSON-lines file the records are appended to")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where demo data lives (default: $CVEXP_CACHE_DIR or ~/.cache/cvexp, cvexp's own)")
    return p


def by_scale(args: argparse.Namespace, small, full):
    return small if args.scale == "small" else full


def reps(args: argparse.Namespace, small: int, full: int) -> int:
    return args.reps if args.reps else by_scale(args, small, full)


# ------------------------------------------------------------------------------ environment
def one_thread() -> None:
    """torch on one intra-op and one inter-op thread in this process, and OpenCV on one thread
    (cvexp decodes and resizes with OpenCV, the torchvision baseline with PIL and torch)."""
    os.environ.update(THREAD_ENV)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work has started
        pass


def cache_dir(args: argparse.Namespace | None = None) -> Path:
    """cvexp's demo-data cache (paths.cache_dir's default), so benchmark and user share the files."""
    if args is not None and getattr(args, "cache_dir", None):
        return Path(args.cache_dir).expanduser().resolve()
    env = os.environ.get("CVEXP_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else Path(os.environ.get("HOME", "/tmp")) / ".cache" / "cvexp"


def child_env(args: argparse.Namespace | None = None, **extra: str) -> dict[str, str]:
    """The environment of every timed child process: one thread, offline hubs, no GUI backend,
    the same demo-data cache. Children run in the repository root (`python -m cvexp` finds cvexp
    there, as a user's does); nothing is added to PYTHONPATH, so the baselines see no cvexp code
    (not even a `hydra_plugins` package in the repository root, which Hydra would scan)."""
    env = dict(os.environ)
    env.update(THREAD_ENV)
    env.update({"CVEXP_CACHE_DIR": str(cache_dir(args)), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1",
                "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONHASHSEED": "0"})
    env.update(extra)
    return env


def gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - no torch, no driver: no GPU
        return None


def machine() -> dict:
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu_count": os.cpu_count(), "cpus_usable": usable, "torch": torch_version,
            "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "gpu": gpu_name(),
            "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


# ------------------------------------------------------------------------------ timing
def run_cmd(argv: Sequence[str], env: dict | None = None, cwd: str | os.PathLike | None = None,
            timeout: float = 3600) -> tuple[float, subprocess.CompletedProcess]:
    """Wall-clock seconds of one child process (start to exit), and its result; raises with the
    tail of its output when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout,
                          check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-3000:]).strip()
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, argv))}\n{tail}")
    return dt, proc


def interleave(n_pairs: int, sides: dict[str, Callable[[int], float]],
               log: Callable[[str], None] | None = None, warmup: int = 0) -> dict[str, list[float]]:
    """Run each side once per pair, alternating which goes first (drift and warm caches hit both
    sides alike); every callable gets the pair index and returns a duration (or any number).
    `warmup` untimed calls of each side come first (index -1, -2, ...: byte-code compiled after
    a source change, files in the page cache, lazy initialisation)."""
    names = list(sides)
    for w in range(warmup):
        for n in names:
            v = sides[n](-1 - w)
            if log:
                log(f"  warm-up {n}: {v:.4g} (not counted)")
    out: dict[str, list[float]] = {n: [] for n in names}
    for k in range(n_pairs):
        order = names if k % 2 == 0 else names[::-1]
        for n in order:
            v = sides[n](k)
            out[n].append(v)
            if log:
                log(f"  pair {k + 1}/{n_pairs} {n}: {v:.4g}")
    return out


def best(values: Sequence[float]) -> float:
    return min(values)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def say(msg: str) -> None:
    """Progress to stderr; stdout carries only the JSON lines."""
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ records
def meets(cvexp: float, baseline: float, kind: str, value: float) -> bool:
    """kind: ratio_max (cvexp/baseline <= value), ratio_min (>= value), difference_max
    (cvexp - baseline <= value), absolute_max (cvexp <= value)."""
    if kind == "ratio_max":
        return cvexp / baseline <= value
    if kind == "ratio_min":
        return cvexp / baseline >= value
    if kind == "difference_max":
        return cvexp - baseline <= value
    if kind == "absolute_max":
        return cvexp <= value
    raise ValueError(f"unknown target kind {kind!r}")


TARGET_TEXT = {"ratio_max": "ratio <= {v:g}", "ratio_min": "ratio >= {v:g}",
               "difference_max": "cvexp - baseline <= {v:g} {unit}", "absolute_max": "cvexp <= {v:g} {unit}"}


def make_record(benchmark: str, cvexp: float, baseline: float | None, unit: str, repetitions: int, scale: str,
                target: tuple[str, float] | None = None, **extra) -> dict:
    """One result. `ratio` is cvexp / baseline in `unit` (for throughputs, > 1 means cvexp is
    faster); `target` is (kind, value) as in `meets`, or None when the issue sets none."""
    ratio = (cvexp / baseline) if baseline else None
    rec = {"benchmark": benchmark, "cvexp": _round(cvexp), "baseline": _round(baseline), "unit": unit,
           "ratio": _round(ratio)}
    if target is None:
        rec.update(target=None, meets_target=None)
    else:
        kind, value = target
        rec.update(target=TARGET_TEXT[kind].format(v=value, unit=unit),
                   meets_target=bool(meets(cvexp, baseline, kind, value)) if baseline or kind == "absolute_max"
                   else None)
    rec.update(repetitions=repetitions, scale=scale, **{k: _round(v) for k, v in extra.items()})
    rec.update(machine=machine(), date=_dt.datetime.now().astimezone().isoformat(timespec="seconds"))
    return rec


def emit(rec: dict, args: argparse.Namespace | None = None) -> dict:
    """Print the record as one JSON line on stdout and append it to the results file."""
    line = json.dumps(rec, sort_keys=False)
    print(line, flush=True)
    if args is None or not getattr(args, "no_record", False):
        path = Path(getattr(args, "results", RESULTS) or RESULTS)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(line + "\n")
    return rec


def _round(v):
    if isinstance(v, float):
        return float(f"{v:.5g}")
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_round(x) for x in v]
    return v


# ------------------------------------------------------------------------------ demo data
def demo_wildlife_root(args: argparse.Namespace, n_images: int = 1200, seed: int = 0) -> Path:
    """The demo wildlife images cvexp trains on by default (`data=demo_wildlife`), written by
    cvexp's own generator into its cache on first use (the one thing shared with the baselines:
    the files)."""
    from cvexp.data.wildlife import DemoWildlifeDataModule

    dm = DemoWildlifeDataModule(cache_dir=str(cache_dir(args)), n_images=n_images, demo_seed=seed)
    return Path(dm.dataset_root())
