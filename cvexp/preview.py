"""`python -m cvexp.preview aug=strong`: a grid of augmented samples, to see what a pipeline does.

    python -m cvexp.preview aug=strong                                  # outputs/preview/runs/<time>/augment_grid.png
    python -m cvexp.preview aug=randaugment n_images=6 n_samples=4
    python -m cvexp.preview -m aug=flip,color,affine,cutout,randaugment  # one grid per option
    python -m cvexp.preview aug=basic data=wildlife paths.data_dir=/data model=resnet18

Rows are source images of different classes (seeded choice from `split`); the first column is
the image as the model sees it at evaluation (eval pipeline), the others are `n_samples` draws of
the train pipeline of the chosen `aug` option. Both pipelines end in the model's normalisation,
which is undone for display, so the grid shows exactly the model's input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from cvexp.engine import build, entry
from cvexp.errors import ConfigError

log = logging.getLogger("cvexp.preview")

GRID_FILE = "augment_grid.png"


def pick_sources(labels: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """Indices of `n` images, from as many different classes as possible, seeded."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    picked: list[int] = []
    while len(picked) < min(n, len(labels)):
        for c in classes:
            if len(picked) >= n:
                break
            pool = [i for i in np.flatnonzero(labels == c) if i not in picked]
            if pool:
                picked.append(int(rng.choice(pool)))
        if all(not [i for i in np.flatnonzero(labels == c) if i not in picked] for c in classes):
            break
    return picked


def augment_samples(datamodule, split: str, indices: Sequence[int], n_samples: int,
                    seed: int = 0) -> list[tuple[str, np.ndarray, list[np.ndarray]]]:
    """For each index: (class name, eval view, [n_samples train-pipeline draws]) as uint8 HWC RGB."""
    from cvexp.data.transforms import denormalize
    from cvexp.data.images import read_rgb

    ds = datamodule.dataset(split, augment=False)
    train_tf, eval_tf = datamodule.train_tf, datamodule.eval_tf
    if hasattr(train_tf, "set_random_seed"):
        train_tf.set_random_seed(seed)
    mean, std = datamodule.mean, datamodule.std
    out = []
    for i in indices:
        img = read_rgb(ds.path(i))
        view = denormalize(eval_tf(image=img)["image"], mean, std)
        draws = [denormalize(train_tf(image=img)["image"], mean, std) for _ in range(n_samples)]
        out.append((datamodule.class_names[ds.labels[i]], view, draws))
    return out


def plot_grid(samples: Sequence[tuple[str, np.ndarray, list[np.ndarray]]], path: str | Path,
              title: str = "") -> Path:
    import matplotlib.pyplot as plt

    n_rows = len(samples)
    n_cols = 1 + max((len(d) for _, _, d in samples), default=0)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols, 1.95 * n_rows + 0.4), squeeze=False)
    for r, (name, view, draws) in enumerate(samples):
        for c, img in enumerate([view, *draws]):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("eval view" if c == 0 else f"sample {c}", fontsize=9)
        axes[r, 0].set_ylabel(name, fontsize=9)
        for c in range(1 + len(draws), n_cols):
            axes[r, c].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()) if title else None)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def aug_name(cfg: DictConfig) -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().runtime.choices.get("aug") or "custom")
    except Exception:  # noqa: BLE001 - composed without Hydra's runtime (tests, notebooks)
        return str(cfg.get("aug_name") or "custom")


def preview(cfg: DictConfig) -> dict:
    out = entry.output_dir(cfg)
    if not cfg.get("aug") or "train" not in cfg.aug:
        raise ConfigError("nothing to preview: choose an augmentation, e.g. aug=strong")
    if int(cfg.n_images) < 1 or int(cfg.n_samples) < 1:
        raise ConfigError(f"n_images and n_samples must be >= 1, got {cfg.n_images} and {cfg.n_samples}")
    build.resolve_inputs(cfg)
    dm = build.build_datamodule(cfg)
    if getattr(dm, "task", "classification") != "classification":
        raise ConfigError(f"preview draws classification images; data={dm.__class__.__name__} is {dm.task} data: "
                          "use data=demo_wildlife or data=wildlife")
    dm.setup()
    seed = int(cfg.get("seed") or 0)
    ds = dm.dataset(cfg.split, augment=False)
    idx = pick_sources(ds.labels, int(cfg.n_images), seed)
    samples = augment_samples(dm, cfg.split, idx, int(cfg.n_samples), seed)
    name = aug_name(cfg)
    OmegaConf.save(build.resolved_container(cfg), out / "config.yaml")
    png = plot_grid(samples, out / GRID_FILE,
                    title=f"aug={name}: eval view, then {cfg.n_samples} train-pipeline samples "
                          f"({dm.image_size}px)")
    log.info("augmentation grid: %s", png)
    print(f"wrote {png.resolve()}")
    return {}


main = entry.entry_point(preview, "preview")


if __name__ == "__main__":
    main()
