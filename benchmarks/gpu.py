"""The GPU benchmarks, one prepared script (< 5 min on one GPU):

1. ResNet-18 (timm, random init) training images/s at 224 px, batch 256, bf16 autocast, channels_last
   inputs, Adam: cvexp's ClassificationModule driven by the Trainer that `python -m cvexp
   model=resnet18 trainer=gpu trainer.precision=bf16-mixed` builds (its callbacks, logger and
   progress bar) against a plain timm/torch loop at the same settings (model in channels_last,
   torch.autocast(bfloat16), F.cross_entropy, Adam). Batches are made once on the GPU (synthetic,
   like timm's benchmark.py), so the input pipeline is not measured. The record says whether
   cvexp's network ended up in channels_last (`cvexp_channels_last`).
2. DeepLabV3+ inference images/s at 1024x2048, batch 4, bf16 autocast, channels_last (both sides):
   cvexp's SegmentationModule.infer + predict_ids against smp.DeepLabV3Plus forward + argmax, for
   the resnet18 (cvexp's default) and resnet101 encoders.

cvexp and plain alternate in pairs; best of each side. Without CUDA the script says so and exits 0.

    python benchmarks/gpu.py                          # on a GPU machine
    python benchmarks/gpu.py --results $OUT/gpu.jsonl # keep the records somewhere else as well
    python benchmarks/gpu.py --cvexp-overrides model.compile=true   # extra cvexp config overrides
    python benchmarks/gpu.py --smoke-cpu              # check the code paths on a CPU (tiny, not recorded)
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import common as C

CLASSES = 10


class SameBatch:
    """An iterable of `steps` references to one device-resident batch (synthetic data)."""

    def __init__(self, batch, steps: int):
        self.batch, self.steps = batch, steps

    def __len__(self):
        return self.steps

    def __iter__(self):
        return (self.batch for _ in range(self.steps))


def cvexp_config(out: Path, overrides: list[str], device: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cvexp.engine.config import config_dir

    trainer = ["trainer=gpu", "trainer.precision=bf16-mixed"] if device == "cuda" else ["trainer=cpu"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose(config_name="train", overrides=[
            f"paths.output_dir={out}", "model=resnet18", "model.pretrained=false", "data.image_size=224",
            *trainer, "trainer.max_epochs=1", "callbacks.model_checkpoint=null", *overrides])
    GlobalHydra.instance().clear()
    return cfg


def train_cvexp(s, x, y, out: Path, overrides: list[str]) -> tuple[float, bool]:
    import pytorch_lightning as pl
    import torch

    import cvexp
    from cvexp.engine.build import build_trainer

    cfg = cvexp_config(out, overrides, s.device)
    cfg.data.image_size = s.size
    run = cvexp.build_run(cfg)
    module = run.module
    sync = torch.cuda.synchronize if s.device == "cuda" else (lambda: None)

    class Clock(pl.Callback):
        t0 = t1 = None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == s.warmup - 1:
                sync()
                self.t0 = time.perf_counter()
            elif batch_idx == s.warmup + s.steps - 1:
                sync()
                self.t1 = time.perf_counter()

    clock = Clock()
    trainer = build_trainer(cfg, [clock])
    with contextlib.redirect_stdout(sys.stderr):
        trainer.fit(module, train_dataloaders=SameBatch((x, y), s.warmup + s.steps))
    conv = next(p for p in module.net.parameters() if p.dim() == 4)
    return s.steps * s.batch / (clock.t1 - clock.t0), bool(conv.is_contiguous(memory_format=torch.channels_last))


def train_plain(s, x, y) -> float:
    import timm
    import torch
    import torch.nn.functional as F

    model = timm.create_model("resnet18", pretrained=False, num_classes=CLASSES).to(s.device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sync = torch.cuda.synchronize if s.device == "cuda" else (lambda: None)
    model.train()
    t0 = None
    for i in range(s.warmup + s.steps):
        if i == s.warmup:
            sync()
            t0 = time.perf_counter()
        with torch.autocast(s.device, dtype=torch.bfloat16, enabled=s.device == "cuda"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return s.steps * s.batch / (time.perf_counter() - t0)


def bench_train(s, args, tmp: Path) -> dict:
    import torch

    x = torch.randn(s.batch, 3, s.size, s.size, device=s.device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (s.batch,), device=s.device)
    seen = {}

    def cvexp_side(k):
        v, seen["channels_last"] = train_cvexp(s, x, y, tmp / f"cvexp_{k}", args.cvexp_overrides)
        return v

    C.say(f"resnet18 training {s.size}px batch {s.batch}: {s.pairs} pairs of {s.steps} steps (images/s)")
    r = C.interleave(s.pairs, {"cvexp": cvexp_side, "baseline": lambda k: train_plain(s, x, y)}, C.say)
    return C.make_record(
        "gpu_train_resnet18", max(r["cvexp"]), max(r["baseline"]), "images/s", s.pairs, args.scale, None,
        what=f"timm resnet18 training, {s.size} px, batch {s.batch}, bf16 autocast, channels_last inputs, Adam, "
             "synthetic batch on the device; cvexp: ClassificationModule + the Trainer of model=resnet18 trainer=gpu "
             "trainer.precision=bf16-mixed; plain: timm model in channels_last + torch.autocast loop",
        cvexp_channels_last=seen.get("channels_last"), cvexp_overrides=args.cvexp_overrides, passes=r,
        steps=s.steps, warmup_steps=s.warmup)


def bench_seg(s, args, encoder: str) -> dict:
    import segmentation_models_pytorch as smp
    import torch

    import cvexp

    n_cls = 19
    cv = cvexp.SegmentationModule(cvexp.SmpDeepLabV3Plus(encoder_name=encoder, encoder_weights=None,
                                                         num_classes=n_cls),
                                  [f"c{i}" for i in range(n_cls)], eval={"mode": "full"})
    cv = cv.to(s.device).to(memory_format=torch.channels_last).eval()
    plain = smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, encoder_output_stride=16,
                              decoder_atrous_rates=(6, 12, 18), classes=n_cls)
    plain = plain.to(s.device).to(memory_format=torch.channels_last).eval()
    x = torch.randn(s.seg_batch, 3, *s.seg_size, device=s.device).contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if s.device == "cuda" else (lambda: None)

    def rate(fn):
        @torch.inference_mode()
        def run(_k):
            with torch.autocast(s.device, dtype=torch.bfloat16, enabled=s.device == "cuda"):
                for _ in range(s.seg_warmup):
                    fn(x)
                sync()
                t0 = time.perf_counter()
                for _ in range(s.seg_iters):
                    fn(x)
                sync()
            return s.seg_iters * s.seg_batch / (time.perf_counter() - t0)
        return run

    C.say(f"DeepLabV3+ {encoder} inference {s.seg_size[1]}x{s.seg_size[0]} batch {s.seg_batch} (images/s)")
    r = C.interleave(s.pairs, {"cvexp": rate(lambda t: cv.predict_ids(cv.infer(t))),
                               "baseline": rate(lambda t: plain(t).argmax(1))}, C.say)
    return C.make_record(
        f"gpu_seg_infer_{encoder}_{s.seg_size[1]}x{s.seg_size[0]}", max(r["cvexp"]), max(r["baseline"]), "images/s",
        s.pairs, args.scale, None,
        what=f"DeepLabV3+ {encoder} OS16, {n_cls} classes, random weights, batch {s.seg_batch}, bf16 autocast, "
             "channels_last (both sides): cvexp SegmentationModule.infer + predict_ids vs smp forward + argmax",
        passes=r)


class Settings:
    def __init__(self, smoke: bool):
        self.device = "cpu" if smoke else "cuda"
        self.size, self.batch = (64, 2) if smoke else (224, 256)
        self.warmup, self.steps, self.pairs = (2, 3, 1) if smoke else (15, 50, 3)
        self.seg_size, self.seg_batch = ((128, 256), 1) if smoke else ((1024, 2048), 4)
        self.seg_warmup, self.seg_iters = (1, 1) if smoke else (3, 10)


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--cvexp-overrides", nargs="*", default=[], help="extra cvexp config overrides (key=value)")
    p.add_argument("--encoders", nargs="+", default=["resnet18", "resnet101"])
    p.add_argument("--smoke-cpu", action="store_true", help="tiny sizes on the CPU: checks the code, records nothing")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.smoke_cpu:
        print("gpu.py: no CUDA device here (torch.cuda.is_available() is False); nothing measured. "
              "Run it on a GPU machine.", file=sys.stderr)
        return 0
    if args.smoke_cpu:
        args.no_record = True
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    s = Settings(args.smoke_cpu)
    torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cvexp-bench-gpu-") as tmp:
        C.emit(bench_train(s, args, Path(tmp)), args)
        for enc in args.encoders:
            C.emit(bench_seg(s, args, enc), args)
    C.say(f"gpu.py: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
