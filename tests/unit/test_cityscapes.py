"""Cityscapes: discovery, labelIds -> train ids through the official table, labelTrainIds preferred,
polygons-only folders rasterised like json2labelImg (against an independent rasteriser)."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
from conftest import read_only_dataset
from PIL import Image, ImageDraw

from cvexp.data import cityscapes
from cvexp.data.labels import CITYSCAPES_LABELS, get_mapping
from cvexp.data.seg_files import read_label_image
from cvexp.data.segmentation import SegmentationDataModule
from cvexp.errors import DataError

DIRS = {"train": "train", "val": "val", "test": "val"}
# label ids in a row: unlabeled, ego vehicle, road, sidewalk, parking, terrain, car, train, bicycle
ROW = np.array([0, 1, 7, 8, 9, 22, 26, 31, 33], np.uint8)
ROW_TRAIN = [255, 255, 0, 1, 255, 9, 13, 16, 18]


def write_cs(root, split="train", city="aachen", stem=None, label_ids=ROW, train_ids=None, h=4):
    stem = stem or f"{city}_000000_000019"
    (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
    (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
    w = len(ROW)
    cv2.imwrite(str(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"), np.zeros((h, w, 3), np.uint8))
    if label_ids is not None:
        cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"), np.tile(label_ids, (h, 1)))
    if train_ids is not None:
        cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png"),
                    np.tile(np.asarray(train_ids, np.uint8), (h, 1)))
    return stem


def test_label_ids_become_the_19_train_ids(tmp_path):
    write_cs(tmp_path)
    write_cs(tmp_path, split="val", city="frankfurt")
    dm = SegmentationDataModule(root=str(tmp_path), layout="cityscapes", split_dirs=DIRS, num_workers=0)
    assert dm.num_classes == 19 and dm.class_names[13] == "car" and dm.palette[0] == (128, 64, 128)
    [s] = dm.samples("train")
    assert s.id == "train/aachen/aachen_000000_000019" and s.mask_space == "cityscapes_ids"
    img, mask = dm.dataset("train", augment=False).load(0)
    assert mask.shape == img.shape[:2] and mask[0].tolist() == ROW_TRAIN
    assert [x.id for x in dm.samples("test")] == [x.id for x in dm.samples("val")]  # test reads val


def test_label_train_ids_are_preferred_when_present(tmp_path):
    write_cs(tmp_path, train_ids=[3] * len(ROW))
    [s] = cityscapes.find_cityscapes_samples(tmp_path, "train")
    assert s.mask.name.endswith("_gtFine_labelTrainIds.png") and s.mask_space == "cityscapes"
    dm = SegmentationDataModule(root=str(tmp_path), layout="cityscapes", num_workers=0,
                                split_dirs={"train": "train", "val": "train", "test": "train"})
    assert (dm.dataset("train", augment=False).load(0)[1] == 3).all()


def test_cityscapes_masks_in_the_idd_level3_space(tmp_path):
    write_cs(tmp_path)
    dm = SegmentationDataModule(root=str(tmp_path), layout="cityscapes", target_space="idd_level3", num_workers=0,
                                split_dirs={"train": "train", "val": "train", "test": "train"})
    assert dm.num_classes == 26 and dm.label_space.name == "cityscapes"
    # road 0, sidewalk 2, terrain 3 (non-drivable fallback, as AutoNUE scores it), car 9, bicycle 7;
    # train has no IDD level3 class
    assert dm.dataset("train", augment=False).load(0)[1][0].tolist() == [255, 255, 0, 2, 255, 3, 9, 255, 7]


def test_images_without_labels_are_skipped_and_errors_name_the_layout(tmp_path, caplog):
    write_cs(tmp_path)
    write_cs(tmp_path, stem="aachen_000001_000019", label_ids=None)
    with caplog.at_level(logging.WARNING):
        assert len(cityscapes.find_cityscapes_samples(tmp_path, "train")) == 1
    assert "have no _gtFine_labelIds.png or _gtFine_polygons.json" in caplog.text
    with pytest.raises(DataError, match="no split folder .*val; found train"):
        cityscapes.find_cityscapes_samples(tmp_path, "val")
    with pytest.raises(DataError, match="does not exist; expected <root>/leftImg8bit/<split>/<city>"):
        cityscapes.find_cityscapes_samples(tmp_path / "nope", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no leftImg8bit/ and gtFine/ folders"):
        cityscapes.find_cityscapes_samples(tmp_path / "empty", "train")
    write_cs(tmp_path / "more", split="train", label_ids=None)
    with pytest.raises(DataError, match="no image/label pairs"):
        cityscapes.find_cityscapes_samples(tmp_path / "more", "train")


def test_a_colour_label_image_is_refused(tmp_path):
    stem = write_cs(tmp_path)
    colour = np.zeros((4, len(ROW), 3), np.uint8)
    colour[..., 0] = 128
    path = tmp_path / "gtFine" / "train" / "aachen" / f"{stem}_gtFine_labelIds.png"
    cv2.imwrite(str(path), colour)
    dm = SegmentationDataModule(root=str(tmp_path), layout="cityscapes", num_workers=0,
                                split_dirs={"train": "train", "val": "train", "test": "train"})
    with pytest.raises(DataError, match="has colour channels"):
        dm.dataset("train", augment=False).load(0)


# ------------------------------------------------------------------------------ polygons only
ROWS = {lb.name: lb for lb in CITYSCAPES_LABELS}


def reference_label_ids(annotation: dict) -> np.ndarray:
    """cityscapesScripts' json2labelImg ("ids") written out plainly: PIL polygons in file order over
    the `unlabeled` id, deleted objects skipped, `<label>group` read as `<label>`, negative ids not drawn."""
    img = Image.new("L", (annotation["imgWidth"], annotation["imgHeight"]), ROWS["unlabeled"].id)
    draw = ImageDraw.Draw(img)
    for obj in annotation["objects"]:
        name = obj["label"]
        if obj.get("deleted"):
            continue
        if name not in ROWS and name.endswith("group"):
            name = name[: -len("group")]
        if ROWS[name].id >= 0:
            draw.polygon([(p[0], p[1]) for p in obj["polygon"]], fill=ROWS[name].id)
    return np.asarray(img)


def every_cs_label_annotation(seed: int, w: int = 96, h: int = 48) -> dict:
    """Every Cityscapes label as a tile, then random rectangles, float triangles and 2-point lines of
    every label over them, `cargroup`-style names, deleted objects."""
    rng = np.random.default_rng(seed)
    names = list(ROWS)
    objs = []
    for k, j in enumerate(rng.permutation(len(names))):
        x, y = (k % 12) * 8, (k // 12) * 16
        objs.append({"label": names[j], "polygon": [[x, y], [x + 7, y], [x + 7, y + 15], [x, y + 15]]})
    for _ in range(2):
        for j in rng.permutation(len(names)):
            x, y = float(rng.uniform(-10, w)), float(rng.uniform(-10, h))
            kind = int(rng.integers(0, 3))
            if kind == 0:
                x, y = int(x), int(y)
                pts = [[x, y], [x + int(rng.integers(2, 30)), y], [x + int(rng.integers(2, 30)), y + int(rng.integers(2, 20))]]
            elif kind == 1:
                pts = [[x, y], [x + rng.uniform(3, 20), y + rng.uniform(-4, 4)], [x + rng.uniform(-4, 4), y + rng.uniform(3, 20)]]
            else:
                pts = [[int(x), int(y)], [int(x) + int(rng.integers(1, 20)), int(y) + int(rng.integers(-5, 5))]]
            obj = {"label": names[j], "polygon": pts}
            if ROWS[names[j]].has_instances and rng.random() < 0.5:
                obj["label"] += "group"
            if rng.random() < 0.1:
                obj["deleted"] = 1
            objs.append(obj)
    return {"imgWidth": w, "imgHeight": h, "objects": objs}


def write_cs_polygons(root, annotation, split="train", city="aachen", stem=None):
    stem = stem or f"{city}_000000_000019"
    write_cs(root, split, city, stem, label_ids=None, h=annotation["imgHeight"])
    img = root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
    cv2.imwrite(str(img), np.zeros((annotation["imgHeight"], annotation["imgWidth"], 3), np.uint8))
    path = root / "gtFine" / split / city / f"{stem}_gtFine_polygons.json"
    path.write_text(json.dumps(annotation))
    return path


def test_polygons_only_cityscapes_is_rasterised_like_json2label_img(tmp_path):
    annotations = {}
    for k in range(3):
        a = every_cs_label_annotation(k)
        city = ("aachen", "bremen")[k % 2]
        stem = f"{city}_00000{k}_000019"
        write_cs_polygons(tmp_path, a, city=city, stem=stem)
        annotations[f"train/{city}/{stem}"] = a
    seen = set().union(*(np.unique(reference_label_ids(a)).tolist() for a in annotations.values()))
    assert seen == set(range(34))  # every label id shows
    found = cityscapes.find_cityscapes_samples(tmp_path, "train")
    assert all(s.mask is None and s.polygons is not None for s in found)
    dm = SegmentationDataModule(root=str(tmp_path), layout="cityscapes", num_workers=0,
                                split_dirs={"train": "train", "val": "train", "test": "train"})
    ds = dm.dataset("train", augment=False)
    assert sorted(s.id for s in ds.samples) == sorted(annotations)
    for i, s in enumerate(ds.samples):
        expect = reference_label_ids(annotations[s.id])
        assert s.mask == s.polygons.with_name(s.polygons.name.replace("polygons.json", "labelIds.png"))
        assert np.array_equal(read_label_image(s.mask), expect), s.id  # cached beside, as json2labelImg names it
        assert np.array_equal(ds.load(i)[1], get_mapping("cityscapes_ids", "cityscapes")[expect])
    again = cityscapes.find_cityscapes_samples(tmp_path, "train")  # found as label ids next time
    assert all(s.mask is not None and s.mask_space == "cityscapes_ids" for s in again)


def test_polygons_of_a_read_only_cityscapes_go_to_the_cache(tmp_path, monkeypatch):
    data, cache = tmp_path / "data", tmp_path / "cache"
    a = every_cs_label_annotation(7)
    write_cs_polygons(data, a)
    read_only_dataset(monkeypatch, data)
    dm = SegmentationDataModule(root=str(data), layout="cityscapes", num_workers=0, mask_cache_dir=str(cache),
                                split_dirs={"train": "train", "val": "train", "test": "train"})
    [s] = dm.samples("train")
    assert s.mask.is_relative_to(cache) and s.mask.name == "aachen_000000_000019_gtFine_labelIds.png"
    assert s.mask.relative_to(cache).parts[0].startswith("cityscapes_")
    assert np.array_equal(read_label_image(s.mask), reference_label_ids(a))
    assert [p.name for p in data.rglob("*.png")] == ["aachen_000000_000019_leftImg8bit.png"]
    assert cityscapes.find_cityscapes_samples(data, "train", cache)[0].mask == s.mask  # found again
    with pytest.raises(DataError, match="set data.mask_cache_dir=PATH"):
        cityscapes.ensure_masks(cityscapes.find_cityscapes_samples(data, "train"), data)


def test_an_unknown_cityscapes_label_names_file_and_label(tmp_path):
    a = {"imgWidth": 4, "imgHeight": 4, "objects": [
        {"label": "road", "polygon": [[0, 0], [3, 0], [3, 3]]}, {"label": "spaceship", "polygon": [[0, 0], [3, 0], [3, 3]]}]}
    path = write_cs_polygons(tmp_path, a)
    dm = SegmentationDataModule(root=str(tmp_path), layout="cityscapes", num_workers=0,
                                split_dirs={"train": "train", "val": "train", "test": "train"})
    with pytest.raises(DataError, match=rf"{path}: objects\[1\] has unknown label 'spaceship'"):
        dm.setup()
