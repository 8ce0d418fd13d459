"""Cityscapes: discovery, labelIds -> train ids through the official table, labelTrainIds preferred."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from cvexp.data import cityscapes
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
    # road 0, sidewalk 2, car 9, bicycle 7; terrain and train have no IDD level3 class
    assert dm.dataset("train", augment=False).load(0)[1][0].tolist() == [255, 255, 0, 2, 255, 255, 9, 255, 7]


def test_images_without_labels_are_skipped_and_errors_name_the_layout(tmp_path, caplog):
    write_cs(tmp_path)
    write_cs(tmp_path, stem="aachen_000001_000019", label_ids=None)
    with caplog.at_level(logging.WARNING):
        assert len(cityscapes.find_cityscapes_samples(tmp_path, "train")) == 1
    assert "have no _gtFine_labelIds.png" in caplog.text
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
