"""Russian Wildlife Dataset: the real `<root>/<class>/*.jpg` layout, its demo twin, and the DataModule."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import albumentations as A
from torch.utils.data import Dataset

from cvexp.data.demo_wildlife import write_demo_wildlife
from cvexp.data.checked import CheckedImages
from cvexp.data.images import read_rgb
from cvexp.data.labels import WILDLIFE_CLASSES, normalize_class_name
from cvexp.data.split import SPLITS, stratified_kfold_split, stratified_split, write_split_csv
from cvexp.data.base import SAMPLERS, SplitDataModule
from cvexp.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_pipeline
from cvexp.data.cache import refuse_demo_root
from cvexp.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def expected_layout(class_names: Sequence[str]) -> str:
    shown = ", ".join(class_names[:3]) + ", ..., " + class_names[-1]
    return f"<root>/<class>/*.jpg or <root>/Cropped_final/<class>/*.jpg with class folders {shown}"


def find_class_root(root: str | os.PathLike, class_names: Sequence[str]) -> Path:
    """The folder that holds the class folders: `root`, `root/Cropped_final`, or one level below."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist; expected {expected_layout(class_names)}. "
                        "Set data.root=PATH or paths.data_dir=PATH")
    candidates = [root, root / "Cropped_final"]
    candidates += [d for sub in sorted(root.iterdir()) if sub.is_dir() for d in (sub, sub / "Cropped_final")]
    wanted = set(class_names)
    best, best_found = root, set()
    for cand in candidates:
        if not cand.is_dir():
            continue
        found = {normalize_class_name(d.name) for d in cand.iterdir() if d.is_dir()} & wanted
        if found == wanted:
            return cand
        if len(found) > len(best_found):
            best, best_found = cand, found
    if not best_found:
        raise DataError(f"no class folders found under {root}; expected {expected_layout(class_names)}")
    missing = [c for c in class_names if c not in best_found]
    raise DataError(f"{best} has no folder for class(es) {', '.join(missing)}; "
                    f"expected {expected_layout(class_names)}")


def scan_images(class_root: Path, class_names: Sequence[str]) -> tuple[list[str], list[int]]:
    """Relative paths `<class folder>/<file>` and label ids, sorted, in the fixed class order."""
    folders = {normalize_class_name(d.name): d for d in class_root.iterdir() if d.is_dir()}
    files: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(class_names):
        folder = folders[cls]
        imgs = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not imgs:
            raise DataError(f"class folder {folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                            "add images or remove the class from data.class_names")
        files += [str(p.relative_to(class_root)) for p in imgs]
        labels += [label] * len(imgs)
    return files, labels


class ImageFolderDataset(Dataset):
    """(image tensor, label) pairs from a list of files under one root."""

    def __init__(self, root: str | Path, files: Sequence[str], labels: Sequence[int],
                 transform: A.Compose | None = None, decode_min_side: int | None = None):
        self.root = Path(root)
        self.files = list(files)
        self.labels = list(labels)
        self.transform = transform
        self.decode_min_side = decode_min_side  # large JPEGs decode at reduced size (images.read_rgb)

    def __len__(self) -> int:
        return len(self.files)

    def path(self, i: int) -> Path:
        return self.root / self.files[i]

    def __getitem__(self, i: int):
        img = read_rgb(self.path(i), self.decode_min_side)
        if self.transform is not None:
            img = self.transform(image=img)["image"]
        return img, self.labels[i]


class WildlifeDataModule(SplitDataModule):
    """Classification DataModule for the Russian Wildlife Dataset layout.

    `train_transforms`/`eval_transforms` are lists of albumentations transforms (the `aug` group);
    normalisation with `mean`/`std` and tensor conversion are appended here. The split is
    stratified and seeded, and written to `output_dir/split.csv` when `output_dir` is given.

    `fold`/`num_folds` (both or neither): stratified k-fold cross-validation; the test split stays
    the one `split` gives, train+val is dealt into `num_folds` stratified folds and fold `fold` is
    val (cvexp.data.split.stratified_kfold_split). `sampler="balanced"` draws training batches
    class-balanced, with replacement (cvexp.data.base.BalancedSampler, seeded by `seed`).
    """

    task = "classification"

    def __init__(self, root: str, class_names: Sequence[str] | None = None,
                 image_size: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, train_transforms: Sequence | None = None,
                 eval_transforms: Sequence | None = None, batch_size: int = 32, num_workers: int = 4,
                 split: Sequence[float] = (0.7, 0.1, 0.2), split_seed: int = 0,
                 skip_corrupt: bool = False, verify_images: bool = True,
                 output_dir: str | None = None, seed: int = 0,
                 fold: int | None = None, num_folds: int | None = None, sampler: str | None = None,
                 reduced_decode: bool = True, cache_dir: str | None = None):
        super().__init__()
        self.cache_dir = cache_dir  # remembers which images passed the readability check (cvexp.data.checked)
        self.reduced_decode = bool(reduced_decode)
        if (fold is None) != (num_folds is None):
            raise ConfigError(f"data.fold={fold} and data.num_folds={num_folds}: give both for k-fold "
                              "cross-validation (e.g. data.fold=0 data.num_folds=5), or neither")
        if num_folds is not None and (num_folds < 2 or not 0 <= fold < num_folds):
            raise ConfigError(f"data.fold={fold} data.num_folds={num_folds}: need num_folds >= 2 and "
                              f"fold in 0..{max(num_folds, 2) - 1}")
        self.fold, self.num_folds = fold, num_folds
        if sampler is not None and sampler not in SAMPLERS:
            raise ConfigError(f"data.sampler={sampler!r} is not allowed: choose one of {', '.join(SAMPLERS)}, "
                              "or null for a plain shuffle")
        self.sampler = sampler
        self.seed = 0 if seed is None else int(seed)
        self.root = root
        self.class_names = list(class_names or WILDLIFE_CLASSES)
        self.image_size = int(image_size)
        self.mean, self.std = list(mean), list(std)
        default_eval = [A.Resize(self.image_size, self.image_size)]
        self.train_tf = build_pipeline(train_transforms if train_transforms is not None else default_eval,
                                       self.mean, self.std, seed=seed)
        self.eval_tf = build_pipeline(eval_transforms if eval_transforms is not None else default_eval,
                                      self.mean, self.std, seed=seed)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.split_fractions = tuple(split)
        self.split_seed = split_seed
        self.skip_corrupt = skip_corrupt
        self.verify_images = verify_images
        self.output_dir = output_dir
        self.class_root: Path | None = None
        self.files: list[str] = []
        self.labels: list[int] = []
        self.skipped: list[str] = []
        self.split: dict[str, list[int]] = {}
        self._verified: set[str] = set()
        self._checked: CheckedImages | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def dataset_root(self) -> Path:
        return Path(self.root)

    # training checks the test images too: it tests them at the end, and a damaged one must not
    # surface only after hours of training
    STAGE_SPLITS = {"fit": SPLITS, "validate": ("val",), "test": ("test",)}

    def setup(self, stage: str | None = None) -> None:
        """Scan, split and check the images the stage reads (all of them for `data.skip_corrupt=true`,
        where the split depends on which files are skipped): an evaluation reads only its split."""
        if not self.split:
            self._scan_and_split()
        for split in self.STAGE_SPLITS.get(stage, SPLITS):
            self._verify(split)

    def _verify(self, split: str) -> None:
        """A one-line DataError naming the first unreadable image of `split` (checked once)."""
        if not self.verify_images or self.skip_corrupt or split in self._verified:
            return
        checked = self.checked_images()
        bad = [self.files[i] for i in self.split[split] if not checked.readable(self.files[i])]
        checked.save()
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise DataError(f"cannot read image {self.class_root / bad[0]}{more} (damaged or truncated); delete or "
                            "replace it, or set data.skip_corrupt=true to skip unreadable files")
        self._verified.add(split)

    def checked_images(self) -> CheckedImages:
        """Which images under the class root passed the readability check (remembered in cache_dir)."""
        if self._checked is None or self._checked.root != self.class_root:
            self._checked = CheckedImages(self.class_root, self.cache_dir)
        return self._checked

    def _scan_and_split(self) -> None:
        self.class_root = find_class_root(self.dataset_root(), self.class_names)
        files, labels = scan_images(self.class_root, self.class_names)
        if self.verify_images and self.skip_corrupt:
            checked = self.checked_images()
            bad = [f for f in files if not checked.readable(f)]
            checked.save()
            if bad:
                log.warning("skipping %d unreadable image(s), listed in skipped_files.txt", len(bad))
                unreadable = set(bad)
                keep = [i for i, f in enumerate(files) if f not in unreadable]
                files, labels = [files[i] for i in keep], [labels[i] for i in keep]
            self.skipped = bad
        self.files, self.labels = files, labels
        if self.num_folds is not None:
            self.split = stratified_kfold_split(labels, self.fold, self.num_folds, self.split_fractions,
                                                self.split_seed)
        else:
            self.split = stratified_split(labels, self.split_fractions, self.split_seed)
        empty = [name for name, frac in zip(SPLITS, self.split_fractions) if frac > 0 and not self.split[name]]
        if empty:
            raise DataError(f"data.split={list(self.split_fractions)} leaves the {' and '.join(empty)} split empty "
                            f"({len(files)} images in {self.class_root}); add images, or raise the fraction of "
                            f"{' and '.join(empty)}")
        if self.output_dir:
            out = Path(self.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            write_split_csv(out / "split.csv", files, labels, self.class_names, self.split)
            if self.skipped:
                (out / "skipped_files.txt").write_text(
                    "".join(f"{self.class_root / f}\n" for f in self.skipped))

    def dataset(self, split: str, augment: bool | None = None) -> ImageFolderDataset:
        """The images of one split; `augment` defaults to True for train only."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        if not self.split:
            self._scan_and_split()
        self._verify(split)
        augment = split == "train" if augment is None else augment
        idx = self.split[split]
        tf = self.train_tf if augment else self.eval_tf
        return ImageFolderDataset(self.class_root, [self.files[i] for i in idx], [self.labels[i] for i in idx],
                                  tf, self.decode_min_side(tf))

    def decode_min_side(self, transform) -> int | None:
        """How many pixels the shorter side must keep when a JPEG is decoded at reduced size: twice
        the input size for pipelines that only resize (the reduction stays invisible after the
        area resize); None (full decode) when `data.reduced_decode=false` or the pipeline crops,
        where a small crop of a reduced image would lose detail."""
        if not self.reduced_decode:
            return None
        names = [type(t).__name__ for t in getattr(transform, "transforms", [])]
        if any("Crop" in n or "Affine" in n or "Rotate" in n or "Scale" in n for n in names):
            return None
        return 2 * self.image_size

    def describe(self) -> dict:
        self.setup()
        folds = {"fold": self.fold, "num_folds": self.num_folds} if self.num_folds else {}
        return {s: len(self.split[s]) for s in SPLITS} | {"classes": self.num_classes,
                                                          "skipped": len(self.skipped)} | folds


class DemoWildlifeDataModule(WildlifeDataModule):
    """The same DataModule over the synthetic demo set, written on first use into `cache_dir`."""

    def __init__(self, cache_dir: str, n_images: int = 1200, demo_seed: int = 0, **kwargs):
        if kwargs.get("root") is not None:
            raise ConfigError(refuse_demo_root("demo wildlife images", "data=wildlife"))
        kwargs["root"] = str(Path(cache_dir) / f"demo_wildlife_n{n_images}_s{demo_seed}")
        super().__init__(cache_dir=cache_dir, **kwargs)
        self.n_images = n_images
        self.demo_seed = demo_seed

    def prepare_data(self) -> None:
        write_demo_wildlife(self.root, self.n_images, self.demo_seed)

    def dataset_root(self) -> Path:
        return write_demo_wildlife(self.root, self.n_images, self.demo_seed)
