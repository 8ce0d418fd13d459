"""The segmentation Dataset/DataModule: joint augmentation keeps image and mask aligned, batches,
label-space mapping, the data/aug configs, and the one-line data errors."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from cvexp.data.labels import IDD_NAME_TO_CS_TRAIN_ID, get_mapping
from cvexp.data.polygons import rasterize_polygons
from cvexp.data.segmentation import SegmentationDataModule
from cvexp.errors import ConfigError, DataError

COLORS = np.zeros((256, 3), np.uint8)
COLORS[:26] = [(10 * i, 255 - 9 * i, (37 * i) % 256) for i in range(26)]
COLORS[255] = (0, 0, 0)
SAME = {"train": "train", "val": "train", "test": "train"}


def write_flat_png(root, masks):
    """Flat-variant layout with PNG masks; each image paints its mask with COLORS (class readable from colour)."""
    (root / "image_archive").mkdir(parents=True)
    (root / "mask_archive").mkdir(parents=True)
    for k, m in enumerate(masks):
        cv2.imwrite(str(root / "image_archive" / f"image_{k}.png"), COLORS[m][..., ::-1])
        cv2.imwrite(str(root / "mask_archive" / f"mask_{k}.png"), m)


def structured_mask(h=40, w=60, seed=0):
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.uint8)
    m[:, w // 2:] = 9
    for _ in range(6):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        m[y:y + int(rng.integers(4, 9)), x:x + int(rng.integers(4, 9))] = rng.integers(0, 26)
    m[:3, :3] = 255
    return m


def flat_dm(root, train, **kw):
    return SegmentationDataModule(root=str(root), layout="idd_flat", split=(1.0, 0.0, 0.0), num_workers=0,
                                  mean=(0, 0, 0), std=(1, 1, 1), train_transforms=train, **kw)


def decode(item):
    img = (item["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return img, item["mask"].numpy()


def test_horizontal_flip_moves_image_and_mask_together(tmp_path):
    m = structured_mask()
    write_flat_png(tmp_path, [m])
    item = flat_dm(tmp_path, [A.HorizontalFlip(p=1.0)]).dataset("train", augment=True)[0]
    img, mask = decode(item)
    assert item["mask"].dtype == torch.int64 and item["image"].dtype == torch.float32
    assert item["image"].shape == (3, 40, 60) and item["mask"].shape == (40, 60)
    assert np.array_equal(mask, m[:, ::-1]) and np.array_equal(img, COLORS[m[:, ::-1]])
    assert (mask[:, : 30] == 9).mean() > 0.7 and (mask[:3, -3:] == 255).all()


def aligned_fraction(img, mask, k):
    """Share of mask-interior pixels (k x k neighbourhood of one class) whose colour is that class's."""
    m8, kernel = mask.astype(np.uint8), np.ones((k, k), np.uint8)
    interior = (cv2.erode(m8, kernel) == cv2.dilate(m8, kernel)) & (mask != 255)
    assert interior.sum() > 200
    return (np.abs(img.astype(int) - COLORS[mask].astype(int)).max(-1) <= 2)[interior].mean()


@pytest.mark.parametrize("aug,k,share", [("seg_basic", 3, 0.995), ("seg_strong", 5, 0.97)])
def test_config_augmentations_keep_image_and_mask_aligned(compose_cfg, tmp_path, aug, k, share):
    """The geometric (dual) transforms of the aug configs, random draws: every mask id sits on its
    own colour (masks resized nearest-exact; rotations blend one pixel at edges), no new ids appear."""
    cfg = compose_cfg("train", ["data=demo_idd", f"aug={aug}"])
    geo = [t for t in instantiate(cfg.aug.train, _convert_="all") if isinstance(t, A.DualTransform)]
    assert {type(t).__name__ for t in geo} >= {"RandomScale", "PadIfNeeded", "RandomCrop", "HorizontalFlip"}
    for seed in range(4):
        m = structured_mask(seed=seed)
        root = tmp_path / f"{aug}{seed}"
        write_flat_png(root, [m])
        img, mask = decode(flat_dm(root, geo).dataset("train", augment=True)[0])
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= set(np.unique(m)) | {255}
        assert aligned_fraction(img, mask, k) > share


def test_padding_fills_the_mask_with_255_and_int64_is_kept(tmp_path):
    m = structured_mask(h=20, w=30)
    write_flat_png(tmp_path, [m])
    pad = [A.PadIfNeeded(min_height=32, min_width=48, position="top_left", border_mode=0, fill=0, fill_mask=255)]
    img, mask = decode(flat_dm(tmp_path, pad).dataset("train", augment=True)[0])
    assert mask.shape == (32, 48) and (mask[20:] == 255).all() and (mask[:, 30:] == 255).all()
    assert np.array_equal(mask[:20, :30], m) and (img[20:] == 0).all()


def test_eval_default_pads_to_a_multiple_of_32_without_moving_pixels(tmp_path):
    m = structured_mask(h=40, w=60)
    write_flat_png(tmp_path, [m])
    item = flat_dm(tmp_path, None).dataset("train", augment=False)[0]
    img, mask = decode(item)
    assert mask.shape == (64, 64) and np.array_equal(mask[:40, :60], m) and (mask[40:] == 255).all()


def test_image_and_mask_of_different_sizes_is_a_data_error(tmp_path):
    write_flat_png(tmp_path, [structured_mask()])
    cv2.imwrite(str(tmp_path / "mask_archive" / "mask_0.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match="image .*image_0.png is 60x40 but its mask .*mask_0.png is 10x10"):
        flat_dm(tmp_path, None).dataset("train")[0]


def test_constructor_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="data.layout='kitti'"):
        SegmentationDataModule(root=str(tmp_path), layout="kitti")
    with pytest.raises(ConfigError, match="no label mapping from idd_level2 to cityscapes"):
        SegmentationDataModule(root=str(tmp_path), layout="idd", label_level=2, target_space="cityscapes")
    with pytest.raises(ConfigError, match="data.label_level=4"):
        SegmentationDataModule(root=str(tmp_path), layout="idd", label_level=4)
    with pytest.raises(ConfigError, match="jpeg_mask_policy"):
        SegmentationDataModule(root=str(tmp_path), layout="idd_flat", jpeg_mask_policy="round")
    dm = SegmentationDataModule(root=str(tmp_path / "missing"), layout="cityscapes", num_workers=0)
    with pytest.raises(DataError, match="missing does not exist; expected <root>/leftImg8bit") as e:
        dm.setup()
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------ configs + demo data
def build(cfg):
    """What the entry points do: settings fitted to the machine (num_workers=auto), aug lists
    instantiated, then the data module with them."""
    from cvexp.engine.hardware import fit_to_machine

    fit_to_machine(cfg)
    train_tf = instantiate(cfg.aug.train, _convert_="all")
    eval_tf = instantiate(cfg.aug.eval, _convert_="all")
    return instantiate(cfg.data, _partial_=True)(train_transforms=train_tf, eval_transforms=eval_tf)


@pytest.mark.parametrize("data,overrides,n", [
    ("idd", [], 26), ("idd", ["data.label_level=2"], 16), ("idd", ["data.label_level=1"], 7),
    ("idd", ["data.target_space=cityscapes"], 19), ("idd_flat", [], 26), ("cityscapes", [], 19),
    ("cityscapes", ["data.target_space=idd_level3"], 26), ("demo_idd", [], 26), ("demo_cityscapes", [], 19)])
def test_data_configs_compose_and_build_with_matching_num_classes(compose_cfg, tmp_path, data, overrides, n):
    cfg = compose_cfg("train", [f"data={data}", "aug=seg_strong", *overrides])
    assert "num_classes" not in cfg.data and "num_classes_of" not in cfg.data  # the data module knows
    dm = build(cfg)
    assert dm.num_classes == n == len(dm.class_names) == len(dm.palette) and dm.ignore_index == 255
    assert dm.task == "segmentation"


def test_demo_data_modules_give_batches_of_the_right_shapes(compose_cfg, tmp_path):
    for data, n in (("demo_idd", 26), ("demo_cityscapes", 19)):
        cfg = compose_cfg("train", [f"data={data}", "aug=seg_basic"], run_dir=tmp_path / data)
        dm = build(cfg)
        dm.setup("fit")
        assert dm.describe() | {} == {"train": 40, "val": 12, "test": 12, "classes": n,
                                      "label_space": dm.label_space.name, "target_space": dm.label_space.name,
                                      "layout": data.split("_")[1]}
        b = next(iter(dm.train_dataloader()))
        assert b["image"].shape == (8, 3, 64, 64) and b["image"].dtype == torch.float32
        assert b["mask"].shape == (8, 64, 64) and b["mask"].dtype == torch.int64
        v = next(iter(dm.val_dataloader()))
        assert v["image"].shape == (8, 3, 64, 128) and v["mask"].shape == (8, 64, 128)
        for batch in (b, v):
            vals = set(batch["mask"].unique().tolist())
            assert vals <= set(range(n)) | {255} and len(vals - {255}) >= 5
        samples = dm.dataset("val").samples
        assert [samples[i].id for i in v["index"].tolist()] == list(v["id"])
        assert all(samples[i].image.is_file() for i in v["index"].tolist())
        rows = (tmp_path / data / "split.csv").read_text().splitlines()
        assert rows[0] == "split,id,image,mask" and len(rows) == 1 + 40 + 12 + 12


def test_target_space_cityscapes_serves_demo_idd_from_cs_train_id_masks(compose_cfg):
    native = build(compose_cfg("train", ["data=demo_idd", "aug=seg_basic"]))
    mapped = build(compose_cfg("train", ["data=demo_idd", "aug=seg_basic", "data.target_space=cityscapes"]))
    assert mapped.class_names[0] == "road" and mapped.num_classes == 19 and mapped.label_space.name == "idd_level3"
    lut = get_mapping("idd_level3", "cityscapes")
    ds_n, ds_m = native.dataset("val", augment=False), mapped.dataset("val", augment=False)
    for i in range(3):
        _, a = ds_n.load(i)
        _, b = ds_m.load(i)
        s = ds_m.samples[i]
        # drawn from the raw polygon labels in AutoNUE's csTrainId encoding, cached under its name
        assert s.mask_space == "cityscapes" and s.mask.name.endswith("_gtFine_labelcsTrainIds.png")
        assert np.array_equal(b, rasterize_polygons(s.polygons, IDD_NAME_TO_CS_TRAIN_ID))
        # the demo scenes hold none of the labels level3 merges, so the level3 route agrees here
        assert np.array_equal(b, lut[a])
        assert ((a == 8) <= (b == 255)).all()  # autorickshaws are void for Cityscapes
