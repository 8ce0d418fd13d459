"""Semantic segmentation data: a torch Dataset of (image, mask) pairs and the LightningDataModule.

Batch format (a dict, collated by the default collate):

    {"image": float32 (B, 3, H, W), normalised with the module's mean/std,
     "mask":  int64   (B, H, W), class ids of `dm.class_names`, 255 = ignore (dm.ignore_index),
     "id":    list[str] of stable sample ids (`val/0/000123`, `val/frankfurt/frankfurt_000000_000294`,
              `image_17`),
     "index": int64 (B,) positions in `dm.dataset(split).samples`, whose `image`/`mask` are the paths}

With `set_eval_resolution("original")` (what the segmentation task asks for in its `full` and
`sliding` evaluation modes) val/test samples are served at their files' own size, normalised and
nothing else (no `base_size`, no eval transforms); a batch of images of different sizes is padded
(image 0, mask 255) to the largest and carries `"size"`: int64 (B, 2), each sample's own (h, w).

Augmentations are albumentations transforms applied JOINTLY to image and mask
(`Compose(...)(image=img, mask=mask)`): geometric ones move both (masks resized nearest, padding
filled with 255 where the config says `fill_mask: 255`), photometric ones touch the image only.

Label spaces (see `labels.py`): the data's own space is `idd_level{label_level}` for IDD and
`cityscapes` (19 train ids) for Cityscapes. `target_space` serves the masks in another space so a
model trained in that space is evaluated on this data; `class_names`, `num_classes`, `palette` then
describe the target space. IDD in `cityscapes` follows the official protocol: masks drawn from the
raw polygon labels in AutoNUE's csTrainId encoding, not mapped from level3 (which has merged labels
the protocol scores apart). Only the flat variant, which has level3 masks and no polygons, maps
level3 ids (and says so in the log). Other pairs map the stored ids through `labels.get_mapping`.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cvexp.data import cityscapes, idd
from cvexp.data.cache import refuse_demo_root
from cvexp.data.demo_streets import LAYOUTS as DEMO_LAYOUTS
from cvexp.data.demo_streets import write_demo_streets
from cvexp.data.labels import IGNORE_INDEX, LabelSpace, get_mapping, label_space
from cvexp.data.seg_files import SegSample, read_label_image, read_rgb
from cvexp.data.split import SPLITS, stratified_split
from cvexp.data.base import SplitDataModule
from cvexp.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_pipeline
from cvexp.errors import ConfigError, DataError

log = logging.getLogger(__name__)

LAYOUTS = ("idd", "idd_flat", "cityscapes")
DEFAULT_SPLIT_DIRS = {"train": "train", "val": "val", "test": "val"}  # test labels are not public
EVAL_RESOLUTIONS = ("base", "original")


def pad_collate(items: Sequence[dict]) -> dict:
    """Samples of different sizes in one batch: images padded with 0 and masks with 255 (ignored)
    at the bottom/right to the largest, plus `"size"` (B, 2), each sample's own (h, w)."""
    h = max(int(it["image"].shape[-2]) for it in items)
    w = max(int(it["image"].shape[-1]) for it in items)
    images = items[0]["image"].new_zeros((len(items), items[0]["image"].shape[0], h, w))
    masks = torch.full((len(items), h, w), IGNORE_INDEX, dtype=torch.long)
    for j, it in enumerate(items):
        ih, iw = it["image"].shape[-2:]
        images[j, :, :ih, :iw] = it["image"]
        masks[j, :ih, :iw] = it["mask"]
    return {"image": images, "mask": masks, "id": [it["id"] for it in items],
            "index": torch.tensor([int(it["index"]) for it in items], dtype=torch.long),
            "size": torch.tensor([tuple(it["image"].shape[-2:]) for it in items], dtype=torch.long)}


def native_space(layout: str, label_level: int = 3) -> str:
    """The label space a layout's masks are served in before any `target_space` mapping."""
    if layout == "cityscapes":
        return "cityscapes"
    if int(label_level) not in (1, 2, 3):
        raise ConfigError(f"data.label_level={label_level}; use 3 (26 classes), 2 (16) or 1 (7)")
    return f"idd_level{int(label_level)}"


def default_transforms(train: bool, image_size: int | None = None) -> list:
    """What `aug=seg_basic` does without its scale and colour jitter, for use without a config."""
    if train:
        if not image_size:
            return []
        return [A.PadIfNeeded(min_height=image_size, min_width=image_size, border_mode=cv2.BORDER_CONSTANT,
                              fill=0, fill_mask=IGNORE_INDEX),
                A.RandomCrop(height=image_size, width=image_size), A.HorizontalFlip(p=0.5)]
    return [A.PadIfNeeded(min_height=None, min_width=None, pad_height_divisor=32, pad_width_divisor=32,
                          position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE_INDEX)]


class SegmentationDataset(Dataset):
    """Samples -> {"image", "mask", "id", "index"} (see the module docstring).

    `luts` maps each sample's `mask_space` to the (256,) table taking its stored ids to the output
    space; `jpeg_table` cleans JPEG-stored masks first.
    """

    def __init__(self, samples: Sequence[SegSample], transform: A.Compose | None,
                 luts: Mapping[str, np.ndarray], jpeg_table: np.ndarray | None = None):
        self.samples = list(samples)
        self.transform = transform
        self.luts = dict(luts)
        self.jpeg_table = jpeg_table

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 RGB and (H, W) uint8 ids in the output space, before any transform."""
        s = self.samples[i]
        if s.mask is None:
            raise DataError(f"no mask for {s.image} yet; call the data module's setup() first")
        img = read_rgb(s.image)
        mask = read_label_image(s.mask, grayscale=s.jpeg_mask)
        if s.jpeg_mask and self.jpeg_table is not None:
            mask = self.jpeg_table[mask]
        mask = self.luts[s.mask_space][mask]
        if img.shape[:2] != mask.shape:
            raise DataError(f"image {s.image} is {img.shape[1]}x{img.shape[0]} but its mask {s.mask} is "
                            f"{mask.shape[1]}x{mask.shape[0]}; replace one of them (delete a cached IDD mask "
                            "to remake it)")
        return img, mask

    def __getitem__(self, i: int) -> dict:
        img, mask = self.load(i)
        if self.transform is not None:
            out = self.transform(image=img, mask=mask)
            img, mask = out["image"], out["mask"]
        if not torch.is_tensor(img):
            img = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
        mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask).long()
        return {"image": img, "mask": mask, "id": self.samples[i].id, "index": i}


class SegmentationDataModule(SplitDataModule):
    """Segmentation DataModule for the IDD (`layout=idd`), flat IDD course (`idd_flat`) and
    Cityscapes (`cityscapes`) layouts.

    `train_transforms`/`eval_transforms` are lists of albumentations transforms (the `aug` group),
    applied jointly to image and mask after resizing to `base_size` (long side; None = keep);
    Normalize(mean, std) and ToTensorV2 are appended here (`image_size` is the crop side the aug
    configs use; without transforms, a padded random crop of it and a flip for train). The
    real layouts read their train/val folders through `split_dirs` (test defaults to val: test labels
    are not public); the flat variant is split at random with `split` fractions and `split_seed`.
    IDD masks (level3, or csTrainId for `target_space=cityscapes`) and the masks of Cityscapes
    images that have only a polygons JSON are made once from the polygons (`mask_cache_dir` when the
    dataset is read-only).
    `output_dir/split.csv` lists every sample's split, id, image and mask path.
    """

    task = "segmentation"
    drop_incomplete_train_batch = True

    def __init__(self, root: str | None = None, layout: str = "idd", label_level: int = 3,
                 target_space: str | None = None, image_size: int | None = 512,
                 base_size: int | None = None, mean: Sequence[float] | None = IMAGENET_MEAN,
                 std: Sequence[float] | None = IMAGENET_STD, train_transforms: Sequence | None = None,
                 eval_transforms: Sequence | None = None, batch_size: int = 8, num_workers: int = 4,
                 split_dirs: Mapping[str, str] | None = None, split: Sequence[float] = (0.8, 0.1, 0.1),
                 split_seed: int = 0, jpeg_mask_policy: str = "snap", mask_cache_dir: str | None = None,
                 output_dir: str | None = None):
        super().__init__()
        if layout not in LAYOUTS:
            raise ConfigError(f"data.layout={layout!r}; use one of {', '.join(LAYOUTS)}")
        self.root = root
        self.layout = layout
        self.label_level = int(label_level)
        self.label_space: LabelSpace = label_space(native_space(layout, label_level))
        self.target_space: LabelSpace = label_space(target_space or self.label_space.name)
        self.mapping = get_mapping(self.label_space.name, self.target_space.name)  # checks the pair now
        # IDD masks are drawn in the encoding the target space needs (csTrainId for cityscapes)
        self.idd_encoding = idd.encoding_for(self.target_space.name).name
        if layout == "idd_flat" and self.target_space.name == "cityscapes":
            log.warning("data=idd_flat with target_space=cityscapes: its masks are level3 ids (no raw polygon "
                        "labels), so Cityscapes train ids are mapped from level3 classes, not drawn in AutoNUE's "
                        "csTrainId encoding; rail track, animal, train, polegroup and fallback background are "
                        "scored differently from the official protocol (data=idd follows it)")
        elif layout == "idd" and self.target_space.name == "cityscapes":
            log.info("IDD in Cityscapes train ids: masks drawn from the raw polygon labels in AutoNUE's "
                     "csTrainId encoding (*%s), the official protocol", idd.CS_TRAIN_ID_MASK_SUFFIX)
        self.image_size = int(image_size) if image_size else None
        self.base_size = int(base_size) if base_size else None
        self.mean = list(mean if mean is not None else IMAGENET_MEAN)
        self.std = list(std if std is not None else IMAGENET_STD)
        # images (and masks, nearest) are first brought to the working resolution, then augmented
        # (INTER_NEAREST_EXACT: OpenCV's INTER_NEAREST shifts masks up to half a pixel against the image)
        base = ([A.LongestMaxSize(max_size=self.base_size, mask_interpolation=cv2.INTER_NEAREST_EXACT)]
                if self.base_size else [])
        train_list = train_transforms if train_transforms is not None else default_transforms(True, self.image_size)
        eval_list = eval_transforms if eval_transforms is not None else default_transforms(False)
        self.train_tf = build_pipeline(base + list(train_list), self.mean, self.std)
        self.eval_tf = build_pipeline(base + list(eval_list), self.mean, self.std)
        self.original_tf = build_pipeline([], self.mean, self.std)  # val/test at the files' own size
        self.eval_resolution = "base"
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.split_dirs = dict(split_dirs or DEFAULT_SPLIT_DIRS)
        missing = [s for s in SPLITS if not self.split_dirs.get(s)]
        if missing and layout != "idd_flat":
            raise ConfigError(f"data.split_dirs has no folder for {', '.join(missing)}; "
                              "e.g. {train: train, val: val, test: val}")
        self.split_fractions = tuple(split)
        self.split_seed = split_seed
        self.jpeg_table = idd.jpeg_mask_table(jpeg_mask_policy)
        self.jpeg_mask_policy = jpeg_mask_policy
        self.mask_cache_dir = mask_cache_dir
        self.output_dir = output_dir
        self.splits: dict[str, list[SegSample]] = {}

    # ---------------------------------------------------------------- what models and analyses use
    @property
    def class_names(self) -> list[str]:
        return list(self.target_space.class_names)

    @property
    def num_classes(self) -> int:
        return self.target_space.num_classes

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        return list(self.target_space.palette)

    @property
    def ignore_index(self) -> int:
        return IGNORE_INDEX

    @property
    def test_is_val(self) -> bool:
        """The test split reads the val folder (IDD and Cityscapes publish no test labels)."""
        return self.layout != "idd_flat" and self.split_dirs.get("test") == self.split_dirs.get("val")

    def set_eval_resolution(self, resolution: str) -> None:
        """`base`: val/test images and masks brought to `base_size` with the eval transforms (the
        default); `original`: at the files' own size (the task's `full`/`sliding` evaluation)."""
        if resolution not in EVAL_RESOLUTIONS:
            raise ConfigError(f"eval resolution {resolution!r}; use one of {', '.join(EVAL_RESOLUTIONS)}")
        self.eval_resolution = resolution

    def file_spaces(self) -> tuple[str, ...]:
        """The label spaces this layout's mask files can hold (`SegSample.mask_space`)."""
        if self.layout == "cityscapes":
            return ("cityscapes", "cityscapes_ids")
        if self.layout == "idd":  # the csTrainId (or level3) masks; level3 where there is no JSON
            return tuple(dict.fromkeys((idd.encoding_for(self.target_space.name).space, "idd_level3")))
        return ("idd_level3",)

    def luts(self) -> dict[str, np.ndarray]:
        """Stored-id space -> output space tables, for every space this layout's files hold: the
        identity for files already in the target space, else through the data's own space."""
        return {fs: get_mapping(fs, fs) if fs == self.target_space.name
                else self.mapping[get_mapping(fs, self.label_space.name)] for fs in self.file_spaces()}

    # ---------------------------------------------------------------- discovery
    def dataset_root(self) -> Path:
        if not self.root:
            raise DataError("no dataset root; set data.root=PATH or paths.data_dir=PATH")
        return Path(self.root)

    def _discover(self) -> dict[str, list[SegSample]]:
        root = self.dataset_root()
        if self.layout == "idd_flat":
            samples = idd.find_idd_flat_samples(root)
            idx = stratified_split([0] * len(samples), self.split_fractions, self.split_seed)
            return {s: [samples[i] for i in idx[s]] for s in SPLITS}
        by_dir = {d: self._split_samples(root, d) for d in dict.fromkeys(self.split_dirs[s] for s in SPLITS)}
        return {s: by_dir[self.split_dirs[s]] for s in SPLITS}

    def _split_samples(self, root: Path, split_dir: str) -> list[SegSample]:
        """The samples of one folder of a real layout, every mask made (rasterised once, cached)."""
        if self.layout == "cityscapes":
            found = cityscapes.find_cityscapes_samples(root, split_dir, self.mask_cache_dir)
            return cityscapes.ensure_masks(found, root, self.mask_cache_dir, workers=self.num_workers)
        found = idd.find_idd_samples(root, split_dir, self.mask_cache_dir, self.idd_encoding)
        return idd.ensure_masks(found, root, self.mask_cache_dir, self.num_workers, self.idd_encoding)

    def prepare_data(self) -> None:
        """On one process: make any missing masks from the polygons (setup finds them cached)."""
        if self.layout in ("idd", "cityscapes"):
            root = self.dataset_root()
            for d in dict.fromkeys(self.split_dirs[s] for s in SPLITS):
                self._split_samples(root, d)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.splits = self._discover()
        if self.test_is_val:
            log.warning("test = val for %s: without test labels (IDD and Cityscapes publish none) the test/* metrics "
                        "are measured on the val images (%s/), the ones that also choose the best checkpoint; "
                        "metrics.json records test/is_val = 1", self._dataset_name(), self.split_dirs["val"])
        if self.output_dir:
            out = Path(self.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "split.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["split", "id", "image", "mask"])
                w.writerows((s, x.id, x.image, x.mask) for s in SPLITS for x in self.splits[s])

    def _dataset_name(self) -> str:
        return {"idd": "IDD", "cityscapes": "Cityscapes"}.get(self.layout, self.layout)

    def samples(self, split: str) -> list[SegSample]:
        self.setup()
        return list(self.splits[split])

    # ---------------------------------------------------------------- datasets and loaders
    def dataset(self, split: str, augment: bool | None = None) -> SegmentationDataset:
        """The samples of one split; `augment` defaults to True for train only."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        self.setup()
        augment = split == "train" if augment is None else augment
        tf = self.train_tf if augment else self.original_tf if self.eval_resolution == "original" else self.eval_tf
        return SegmentationDataset(self.splits[split], tf, self.luts(), self.jpeg_table)

    def loader(self, split: str, augment: bool | None = None, shuffle: bool | None = None) -> DataLoader:
        """As `SplitDataModule.loader`; un-augmented loaders at the original resolution pad each
        batch to its largest image (`pad_collate`)."""
        augment_ = split == "train" if augment is None else augment
        if augment_ or self.eval_resolution != "original":
            return super().loader(split, augment, shuffle)
        shuffle = split == "train" if shuffle is None else shuffle
        return DataLoader(self.dataset(split, augment=False), batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=torch.cuda.is_available(), collate_fn=pad_collate)

    def describe(self) -> dict:
        self.setup()
        return {s: len(self.splits[s]) for s in SPLITS} | {
            "classes": self.num_classes, "label_space": self.label_space.name,
            "target_space": self.target_space.name, "layout": self.layout}


class DemoStreetsDataModule(SegmentationDataModule):
    """The same DataModule over the synthetic street scenes (`demo_streets.py`), written on first
    use into `cache_dir` in the real IDD (`layout=idd`) or Cityscapes (`layout=cityscapes`) layout."""

    def __init__(self, cache_dir: str, layout: str = "idd", n_train: int = 40, n_val: int = 12,
                 demo_seed: int = 0, **kwargs):
        if layout not in DEMO_LAYOUTS:
            raise ConfigError(f"data.layout={layout!r} for demo streets; use one of {', '.join(DEMO_LAYOUTS)}")
        if kwargs.get("root") is not None:
            raise ConfigError(refuse_demo_root("demo street scenes", "data=idd (or data=cityscapes)"))
        self.demo_dir = Path(cache_dir) / f"demo_streets_n{n_train}-{n_val}_s{demo_seed}"
        kwargs["root"] = str(self.demo_dir / layout)
        super().__init__(layout=layout, **kwargs)
        self.n_train, self.n_val, self.demo_seed = int(n_train), int(n_val), int(demo_seed)

    def _dataset_name(self) -> str:
        return f"the demo street scenes (in the {super()._dataset_name()} layout)"

    def _write(self) -> Path:
        return write_demo_streets(self.demo_dir, self.n_train, self.n_val, self.demo_seed)

    def prepare_data(self) -> None:
        self._write()
        super().prepare_data()

    def dataset_root(self) -> Path:
        self._write()
        return Path(self.root)

