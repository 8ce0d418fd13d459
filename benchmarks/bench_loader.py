"""Input pipeline: images/s of cvexp's wildlife training loader (DemoWildlifeDataModule with the
`aug` config's albumentations pipeline, built through cvexp.build_run from the default config)
against torchvision's ImageFolder + transforms.v2 doing the same augmentation, on the same demo
files, at several image sizes; batch 32, 0 workers, shuffled; one full pass over the training split
(the baseline over a random subset of the same size).

cvexp and torchvision alternate in pairs; the best pass of each side counts.
Target (issue 12): cvexp >= 2x torchvision's images/s at every size.

    python benchmarks/bench_loader.py                  # small: basic 64/128/224 + strong 224, 2 pairs (~1 min)
    python benchmarks/bench_loader.py --scale full     # basic and strong at 64/128/224, 5 pairs
    python benchmarks/bench_loader.py --sizes 96 --augs strong
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import common as C

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BATCH = 32


def cvexp_loader(size: int, aug: str, out: Path):
    """The training DataLoader `python -m cvexp data.image_size=SIZE aug=AUG` trains on."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import cvexp
    from cvexp.engine.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose(config_name="train", overrides=[f"paths.output_dir={out}", f"data.image_size={size}",
                                                      f"aug={aug}", "data.batch_size=32", "data.num_workers=0"])
    GlobalHydra.instance().clear()
    dm = cvexp.build_run(cfg).datamodule
    dm.setup("fit")
    return dm.train_dataloader(), len(dm.train_dataloader().dataset)


def torchvision_transform(size: int, aug: str):
    import torch
    from torchvision.transforms import v2

    if aug == "basic":  # conf/aug/basic.yaml
        steps = [v2.ToImage(), v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
                 v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    elif aug == "strong":  # conf/aug/strong.yaml, in torchvision's terms
        steps = [v2.ToImage(), v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
                 v2.RandomHorizontalFlip(),
                 v2.RandomApply([v2.ColorJitter(0.3, 0.3, 0.3, 0.05)], p=0.8),
                 v2.RandomApply([v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1))], p=0.5),
                 v2.ToDtype(torch.float32, scale=True),
                 v2.RandomApply([v2.RandomChoice([v2.GaussianBlur(5, sigma=(0.1, 2.0)), v2.GaussianNoise(sigma=0.05)])],
                                p=0.3),
                 v2.Normalize(MEAN, STD),
                 v2.RandomErasing(p=0.5, scale=(0.0025, 0.04))]
    else:
        raise ValueError(aug)
    return v2.Compose(steps)


def torchvision_loader(root: Path, size: int, aug: str, n: int):
    import torch
    from torch.utils.data import DataLoader, Subset
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(root), transform=torchvision_transform(size, aug))
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].tolist()
    return DataLoader(Subset(ds, idx), batch_size=BATCH, shuffle=True, num_workers=0)


def images_per_s(loader) -> float:
    t0 = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += len(x)
    return n / (time.perf_counter() - t0)


def main(argv=None) -> list[dict]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    p.add_argument("--augs", nargs="+", choices=("basic", "strong"), default=None)
    args = p.parse_args(argv)
    C.one_thread()
    n = C.reps(args, 2, 5)
    sizes = args.sizes or [64, 128, 224]
    if args.augs:
        grid = [(a, s) for a in args.augs for s in sizes]
    else:
        grid = [("basic", s) for s in sizes] + C.by_scale(args, [("strong", 224)], [("strong", s) for s in sizes])
    root = C.demo_wildlife_root(args)
    records = []
    with tempfile.TemporaryDirectory(prefix="cvexp-bench-loader-") as tmp:
        for aug, size in grid:
            cv_dl, n_train = cvexp_loader(size, aug, Path(tmp) / f"run_{aug}_{size}")
            tv_dl = torchvision_loader(root, size, aug, n_train)
            C.say(f"loader aug={aug} {size}px: {n} pairs of one pass over {n_train} images (images/s)")
            r = C.interleave(n, {"cvexp": lambda k, dl=cv_dl: images_per_s(dl),
                                 "baseline": lambda k, dl=tv_dl: images_per_s(dl)},
                             C.say)
            records.append(C.emit(C.make_record(
                f"loader_{aug}_{size}px", max(r["cvexp"]), max(r["baseline"]), "images/s", n, args.scale,
                ("ratio_min", 2.0), what=f"one shuffled pass over the {n_train} training images, aug={aug}, "
                f"batch {BATCH}, 0 workers; baseline torchvision ImageFolder + transforms.v2 (PIL decode)",
                images=n_train, passes=r), args))
    return records


if __name__ == "__main__":
    main()
