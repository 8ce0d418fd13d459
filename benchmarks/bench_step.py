"""Cost per training step with in-memory batches: cvexp's ClassificationModule (training_step,
backward, optimizer step) run by the Lightning Trainer that cvexp's default config builds (its
logger, callbacks, progress bar and log_every_n_steps), against a plain PyTorch loop (forward,
F.cross_entropy, zero_grad, backward, Adam step) over the same DataLoader of random tensors.

A step is the time between the ends of consecutive training batches (fetch + step + hooks +
logging), so everything the framework does per step counts; the first steps of every pass are
warm-up and left out. cvexp and plain alternate in pairs; the median over all passes counts.
Target (issue 12): cvexp - plain <= 3 ms per step at the default model (the reference CNN, 64 px,
batch 32). `tiny` (one 8-channel conv) shows the fixed per-step tax where compute is small.

    python benchmarks/bench_step.py                 # small: 3 pairs x 60 steps per model (~1 min)
    python benchmarks/bench_step.py --scale full    # 5 pairs x 200 steps
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import common as C

BATCH = 32
SIZE = 64
WARMUP = 10
CLASSES = ["amur_leopard", "amur_tiger", "birds", "black_bear", "brown_bear", "dog", "roe_deer",
           "sika_deer", "wild_boar", "people"]
TINY_BLOCKS = [{"channels": 8, "kernel": 3, "stride": 1, "padding": 1, "pool": 4}]


def loader(steps: int, seed: int = 0):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(steps * BATCH, 3, SIZE, SIZE, generator=g)
    y = torch.randint(0, len(CLASSES), (steps * BATCH,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, num_workers=0)


# ------------------------------------------------------------------------------ plain side
def plain_net(model: str):
    from plain_torch import ReferenceCNN
    from torch import nn

    if model == "default":
        return ReferenceCNN(len(CLASSES), SIZE)
    return nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(4, 4), nn.Flatten(),
                         nn.Linear(8 * (SIZE // 4) ** 2, len(CLASSES)))


def plain_steps(model: str, steps: int) -> list[float]:
    import torch
    import torch.nn.functional as F

    net = plain_net(model)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    ends = []
    for x, y in loader(steps):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ends.append(time.perf_counter())
    return _intervals(ends)


# ------------------------------------------------------------------------------ cvexp side
def cvexp_config(out: Path):
    """cvexp's default composed training config (as `python -m cvexp` sees it), run dir `out`; no
    best-checkpoint callback (no val pass here) and one epoch."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cvexp.engine.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose(config_name="train", overrides=[f"paths.output_dir={out}", "trainer.max_epochs=1",
                                                      "callbacks.model_checkpoint=null"])
    GlobalHydra.instance().clear()
    return cfg


def cvexp_trainer(cfg, callbacks: list):
    """The Trainer `python -m cvexp` builds from `cfg` (cvexp.engine.build.build_trainer); should
    that internal function move, the same objects instantiated from the config."""
    try:
        from cvexp.engine.build import build_trainer
    except ImportError:
        build_trainer = None
    if build_trainer is not None:
        return build_trainer(cfg, callbacks)
    from hydra.utils import instantiate
    from omegaconf import DictConfig

    def named(node):
        return [instantiate(v) for v in (node or {}).values() if isinstance(v, DictConfig) and "_target_" in v]

    return instantiate(cfg.trainer, _partial_=True)(callbacks=named(cfg.get("callbacks")) + callbacks,
                                                    logger=named(cfg.get("logger")) or False)


def cvexp_steps(model: str, steps: int, tmp: Path, k: int) -> tuple[list[float], float]:
    import pytorch_lightning as pl
    import torch

    import cvexp

    class Clock(pl.Callback):
        def __init__(self):
            self.ends: list[float] = []
            self.fit_start = time.perf_counter()
            self.first_batch: float | None = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if self.first_batch is None:
                self.first_batch = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.ends.append(time.perf_counter())

    cfg = cvexp_config(tmp / f"cvexp_{model}_{k}")
    blocks = {} if model == "default" else {"blocks": TINY_BLOCKS}
    net = cvexp.ConvNet(num_classes=len(CLASSES), input_size=SIZE, **blocks)
    module = cvexp.ClassificationModule(net, CLASSES, optimizer=partial(torch.optim.Adam, lr=1e-3))
    clock = Clock()
    trainer = cvexp_trainer(cfg, [clock])
    dl = loader(steps)
    clock.fit_start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # progress bar and summary: stdout carries only JSON
        trainer.fit(module, train_dataloaders=dl)
    return _intervals(clock.ends), (clock.first_batch or clock.fit_start) - clock.fit_start


def _intervals(ends: list[float]) -> list[float]:
    return [(b - a) * 1000 for a, b in zip(ends[WARMUP:], ends[WARMUP + 1:])]


def main(argv=None) -> list[dict]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="steps per pass (default 60 small, 200 full)")
    p.add_argument("--models", nargs="+", choices=("default", "tiny"), default=["default", "tiny"])
    args = p.parse_args(argv)
    C.one_thread()
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    n = C.reps(args, 3, 5)
    steps = args.steps or C.by_scale(args, 60, 200)
    if steps <= WARMUP + 2:
        p.error(f"--steps must be more than {WARMUP + 2}")
    records = []
    with tempfile.TemporaryDirectory(prefix="cvexp-bench-step-") as tmp:
        tmp = Path(tmp)
        for model in args.models:
            per: dict[str, list[float]] = {"cvexp": [], "baseline": []}
            setup: list[float] = []

            def cvexp_side(k, model=model, per=per, setup=setup):
                iv, s = cvexp_steps(model, steps, tmp, k)
                per["cvexp"] += iv
                setup.append(s)
                return C.median(iv)

            def plain_side(k, model=model, per=per):
                iv = plain_steps(model, steps)
                per["baseline"] += iv
                return C.median(iv)

            C.say(f"per step, {model} model: {n} pairs x {steps} steps (ms per step, median of the pass)")
            passes = C.interleave(n, {"cvexp": cvexp_side, "baseline": plain_side}, C.say)
            cv, base = C.median(per["cvexp"]), C.median(per["baseline"])
            records.append(C.emit(C.make_record(
                f"train_step_{model}", cv, base, "ms/step", n, args.scale,
                ("difference_max", 3.0) if model == "default" else None,
                what=f"{'reference CNN' if model == 'default' else 'one 8-channel conv'}, {SIZE} px, batch {BATCH}, "
                     "in-memory batches, median step over all passes",
                overhead_ms=cv - base, steps_per_pass=steps, warmup_steps=WARMUP, pass_medians_ms=passes,
                cvexp_fit_setup_s=min(setup)), args))
    return records


if __name__ == "__main__":
    main()
