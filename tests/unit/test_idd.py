"""IDD: the official polygon rasterisation on hand-made cases, the csTrainId protocol against an
independent rasteriser over AutoNUE's table, mask caching, the flat JPEG variant."""

from __future__ import annotations

import json
import logging
import os

import cv2
import numpy as np
import pytest
from conftest import read_only_dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from cvexp.data import idd, polygons
from cvexp.data.labels import IDD_LABELS, IDD_NAME_TO_LEVEL3, get_mapping
from cvexp.data.seg_files import read_label_image
from cvexp.data.segmentation import SegmentationDataModule
from cvexp.errors import ConfigError, DataError


def ann(w, h, *objects):
    return {"imgWidth": w, "imgHeight": h, "objects": [dict(o) for o in objects]}


def rect(label, x0, y0, x1, y1, **kw):
    return {"label": label, "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], **kw}


def box(h, w, x0, y0, x1, y1):
    """Bool mask of the inclusive box, clipped to the image (what PIL fills for an integer rectangle)."""
    m = np.zeros((h, w), bool)
    m[max(0, y0):max(0, y1 + 1), max(0, x0):max(0, x1 + 1)] = True
    return m


# ------------------------------------------------------------------------------ rasterisation
def test_background_is_255_and_shape_is_height_by_width():
    m = idd.rasterize_polygons(ann(7, 4))
    assert m.shape == (4, 7) and m.dtype == np.uint8 and (m == 255).all()


def test_later_polygons_overwrite_earlier_ones_in_file_order():
    a = ann(10, 8, rect("road", 0, 0, 9, 7), rect("car", 2, 2, 6, 5), rect("person", 5, 4, 8, 6))
    m = idd.rasterize_polygons(a)
    expect = np.zeros((8, 10), np.uint8)  # road
    expect[box(8, 10, 2, 2, 6, 5)] = 9  # car over road
    expect[box(8, 10, 5, 4, 8, 6)] = 4  # person over car
    assert (m == expect).all()
    a["objects"] = a["objects"][::-1]  # reversed order: the road hides everything
    assert (idd.rasterize_polygons(a) == 0).all()


def test_deleted_objects_and_polygons_with_fewer_than_3_points_are_skipped():
    a = ann(6, 6, rect("road", 0, 0, 5, 5),
            rect("car", 1, 1, 4, 4, deleted=1),
            {"label": "pole", "polygon": [[2, 0], [2, 5]]},  # PIL alone would draw this 2-point line
            {"label": "sky", "polygon": [[0, 0]]},
            {"label": "sky", "polygon": []},
            rect("person", 0, 0, 1, 1, deleted=0))
    m = idd.rasterize_polygons(a)
    expect = np.zeros((6, 6), np.uint8)
    expect[:2, :2] = 4
    assert (m == expect).all()


def test_coordinates_outside_the_image_are_clipped_by_the_fill():
    a = ann(8, 6, rect("sky", -50, -20, 3, 2), rect("car", 5, 3, 400, 300), rect("road", -9, -9, -1, -1))
    m = idd.rasterize_polygons(a)
    expect = np.full((6, 8), 255, np.uint8)
    expect[box(6, 8, 0, 0, 3, 2)] = 25
    expect[box(6, 8, 5, 3, 7, 5)] = 9
    assert (m == expect).all()


def test_void_labels_are_drawn_as_255_over_earlier_objects():
    m = idd.rasterize_polygons(ann(4, 4, rect("road", 0, 0, 3, 3), rect("ego vehicle", 0, 2, 3, 3)))
    assert (m[:2] == 0).all() and (m[2:] == 255).all()


def test_unknown_labels_are_skipped_with_a_warning_or_raise(caplog):
    a = ann(4, 4, rect("road", 0, 0, 3, 3), rect("spaceship", 0, 0, 1, 1))
    with caplog.at_level(logging.WARNING):
        m = idd.rasterize_polygons(a)
    assert (m == 0).all() and "spaceship" in caplog.text
    with pytest.raises(DataError, match="unknown label 'spaceship'"):
        idd.rasterize_polygons(a, on_unknown="error")


def test_group_suffix_is_stripped_like_the_official_tool():
    m = idd.rasterize_polygons(ann(4, 4, rect("persongroup", 0, 0, 3, 3), rect("polegroup", 0, 0, 0, 3)))
    assert (m[:, 1:] == 4).all() and (m[:, 0] == 20).all()


def test_float_coordinates_and_a_custom_table_and_background():
    a = ann(5, 5, {"label": "a", "polygon": [[0.4, 0.4], [3.6, 0.4], [3.6, 3.6], [0.4, 3.6]]})
    m = idd.rasterize_polygons(a, {"a": 7}, background=0)
    assert set(np.unique(m)) == {0, 7} and m[2, 2] == 7 and m[4, 4] == 0


@settings(max_examples=40, deadline=None)
@given(st.integers(-20, 30), st.integers(-20, 30), st.integers(0, 30), st.integers(0, 30))
def test_an_integer_rectangle_fills_exactly_its_clipped_inclusive_box(x0, y0, dw, dh):
    w, h = 12, 9
    m = idd.rasterize_polygons(ann(w, h, rect("car", x0, y0, x0 + dw, y0 + dh)))
    assert ((m == 9) == box(h, w, x0, y0, x0 + dw, y0 + dh)).all()
    assert ((m == 255) | (m == 9)).all()


def test_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "x_gtFine_polygons.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=f"{bad} is not a valid polygons JSON"):
        idd.rasterize_polygons(bad)
    bad.write_text(json.dumps({"imgHeight": 4, "objects": []}))
    with pytest.raises(DataError, match="has no 'imgWidth'"):
        idd.rasterize_polygons(bad)
    bad.write_text(json.dumps(ann(4, 4, {"label": "road", "polygon": [[0, 0], "x", [1, 1]]})))
    with pytest.raises(DataError, match=r"objects\[0\].polygon must be a list of \[x, y\] points"):
        idd.rasterize_polygons(bad)
    with pytest.raises(DataError, match="does not exist"):
        idd.rasterize_polygons(tmp_path / "missing.json")


# ------------------------------------------------------------------------------ real layout
def write_idd(root, split="train", seq="0", ident="000001", w=16, h=8, objects=None, ext="png"):
    img_dir, gt_dir = root / "leftImg8bit" / split / seq, root / "gtFine" / split / seq
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.imwrite(str(img_dir / f"{ident}_leftImg8bit.{ext}"), img)
    if objects is None:
        objects = [rect("road", 0, h // 2, w - 1, h - 1), rect("sky", 0, 0, w - 1, h // 2 - 1)]
    (gt_dir / f"{ident}_gtFine_polygons.json").write_text(json.dumps(ann(w, h, *objects)))
    return gt_dir / f"{ident}_gtFine_labellevel3Ids.png"


def test_masks_are_made_once_beside_the_json_and_reused(tmp_path):
    mask_a = write_idd(tmp_path, ident="000001")
    write_idd(tmp_path, seq="1", ident="000002", ext="jpg")
    found = idd.find_idd_samples(tmp_path, "train")
    assert [s.id for s in found] == ["train/0/000001", "train/1/000002"]
    assert all(s.mask is None and s.mask_space == "idd_level3" for s in found)
    made = idd.ensure_masks(found, tmp_path)
    assert made[0].mask == mask_a and mask_a.is_file()
    m = read_label_image(mask_a)
    assert (m[:4] == 25).all() and (m[4:] == 0).all()
    # a second discovery finds the cached masks; a changed JSON does not remake them
    json_a = mask_a.with_name("000001_gtFine_polygons.json")
    json_a.write_text(json.dumps(ann(16, 8, rect("car", 0, 0, 15, 7))))
    again = idd.find_idd_samples(tmp_path, "train")
    assert again[0].mask == mask_a and (read_label_image(again[0].mask) == m).all()
    assert not list(tmp_path.rglob(".*.png"))  # no temporary files left behind


def test_existing_official_masks_are_used_as_they_are(tmp_path):
    official = write_idd(tmp_path, objects=[rect("road", 0, 0, 15, 7)])
    cv2.imwrite(str(official), np.full((8, 16), 9, np.uint8))  # says "car" everywhere
    dm = SegmentationDataModule(root=str(tmp_path), layout="idd", split_dirs={"train": "train", "val": "train",
                                                                               "test": "train"}, num_workers=0)
    _, mask = dm.dataset("train", augment=False).load(0)
    assert (mask == 9).all()


def test_a_polygons_only_sample_without_an_image_mask_is_found_and_images_without_labels_skipped(tmp_path, caplog):
    write_idd(tmp_path)
    img_dir = tmp_path / "leftImg8bit" / "train" / "0"
    cv2.imwrite(str(img_dir / "000009_leftImg8bit.png"), np.zeros((8, 16, 3), np.uint8))  # no JSON
    with caplog.at_level(logging.WARNING):
        found = idd.find_idd_samples(tmp_path, "train")
    assert [s.id for s in found] == ["train/0/000001"] and "no _gtFine_polygons.json" in caplog.text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_dataset_caches_masks_under_cache_dir(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    beside = write_idd(data)
    gt = beside.parent
    gt.chmod(0o555)
    try:
        made = idd.ensure_masks(idd.find_idd_samples(data, "train", cache), data, cache)
        assert not beside.exists() and made[0].mask.is_relative_to(cache)
        assert made[0].mask.name == "000001_gtFine_labellevel3Ids.png"
        assert idd.find_idd_samples(data, "train", cache)[0].mask == made[0].mask  # found again
        with pytest.raises(DataError, match="data.mask_cache_dir"):
            idd.ensure_masks(idd.find_idd_samples(data, "train"), data, None)
    finally:
        gt.chmod(0o755)


def test_read_only_fallback_when_writing_beside_fails(tmp_path, monkeypatch):
    data, cache = tmp_path / "data", tmp_path / "cache"
    beside = write_idd(data)
    read_only_dataset(monkeypatch, data)
    made = idd.ensure_masks(idd.find_idd_samples(data, "train", cache), data, cache)
    assert not beside.exists() and str(made[0].mask).startswith(str(cache))
    assert idd.find_idd_samples(data, "train", cache)[0].mask == made[0].mask
    with pytest.raises(DataError, match="set data.mask_cache_dir=PATH"):
        idd.ensure_masks(idd.find_idd_samples(data, "train"), data, None)


def test_layout_errors_name_the_path_and_the_expected_layout(tmp_path):
    with pytest.raises(DataError, match="does not exist; expected <root>/leftImg8bit"):
        idd.find_idd_samples(tmp_path / "nope", "train")
    with pytest.raises(DataError, match="no leftImg8bit/ and gtFine/ folders") as e:
        idd.find_idd_samples(tmp_path, "train")
    assert "use data=idd_flat:" in str(e.value) and "data.dataset" not in str(e.value)
    write_idd(tmp_path / "IDD_Segmentation")  # one level below is found
    assert len(idd.find_idd_samples(tmp_path, "train")) == 1
    with pytest.raises(DataError, match="no split folder .*val; found train"):
        idd.find_idd_samples(tmp_path, "val")
    (tmp_path / "IDD_Segmentation" / "gtFine" / "train" / "0" / "000001_gtFine_polygons.json").unlink()
    with pytest.raises(DataError, match="no image/label pairs"):
        idd.find_idd_samples(tmp_path, "train")


def test_an_invalid_json_fails_setup_naming_the_file(tmp_path):
    write_idd(tmp_path)
    bad = tmp_path / "gtFine" / "train" / "0" / "000001_gtFine_polygons.json"
    bad.write_text("[")
    dm = SegmentationDataModule(root=str(tmp_path), layout="idd", num_workers=0,
                                split_dirs={"train": "train", "val": "train", "test": "train"})
    with pytest.raises(DataError, match=str(bad)):
        dm.setup()


def test_label_levels_map_level3_masks_through_the_hierarchy(tmp_path):
    objs = [rect("road", 0, 0, 3, 7), rect("autorickshaw", 4, 0, 7, 7), rect("car", 8, 0, 11, 7),
            rect("guard rail", 12, 0, 15, 7)]
    write_idd(tmp_path, objects=objs)
    dirs = {"train": "train", "val": "train", "test": "train"}
    got = {}
    for level in (3, 2, 1):
        dm = SegmentationDataModule(root=str(tmp_path), layout="idd", label_level=level, split_dirs=dirs, num_workers=0)
        got[level] = dm.dataset("train", augment=False).load(0)[1][0, ::4].tolist()
        assert dm.num_classes == {3: 26, 2: 16, 1: 7}[level]
    assert got[3] == [0, 8, 9, 16] and got[2] == [0, 7, 7, 10] and got[1] == [0, 3, 3, 4]
    dm = SegmentationDataModule(root=str(tmp_path), layout="idd", target_space="cityscapes", split_dirs=dirs,
                                num_workers=0)
    assert dm.dataset("train", augment=False).load(0)[1][0, ::4].tolist() == [0, 255, 13, 255]
    assert dm.class_names[13] == "car" and dm.num_classes == 19


# ------------------------------------------------------------------------------ flat JPEG variant
def test_jpeg_mask_tables_snap_or_ignore_stray_values():
    snap, ignore = idd.jpeg_mask_table("snap"), idd.jpeg_mask_table("ignore")
    for v in list(range(26)) + [255]:
        assert snap[v] == v and ignore[v] == v
    assert snap[26] == 25 and snap[140] == 25 and snap[141] == 255 and snap[254] == 255
    assert ignore[26] == 255 and ignore[140] == 255
    with pytest.raises(ConfigError, match="jpeg_mask_policy"):
        idd.jpeg_mask_table("round")


def write_flat(root, n=10, size=(48, 32)):
    w, h = size
    (root / "IDD20K_II" / "image_archive").mkdir(parents=True)
    (root / "IDD20K_II" / "mask_archive").mkdir(parents=True)
    truth = {}
    for k in range(n):
        mask = np.full((h, w), 0, np.uint8)
        mask[: h // 3] = 25
        mask[h // 3:, (k * 3) % w: (k * 3) % w + 12] = 9
        mask[-6:, -6:] = 255
        truth[k] = mask
        cv2.imwrite(str(root / "IDD20K_II" / "image_archive" / f"image_{k}.jpg"), np.dstack([mask] * 3))
        cv2.imwrite(str(root / "IDD20K_II" / "mask_archive" / f"mask_{k}.jpg"), mask, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return truth


def test_flat_variant_pairs_split_and_cleans_jpeg_masks(tmp_path):
    truth = write_flat(tmp_path)
    raw = read_label_image(tmp_path / "IDD20K_II" / "mask_archive" / "mask_3.jpg", grayscale=True)
    valid = set(range(26)) | {255}
    assert set(np.unique(raw)) - valid, "JPEG should leave stray values for this test to mean anything"
    kw = dict(root=str(tmp_path), layout="idd_flat", split=(0.6, 0.2, 0.2), split_seed=3, num_workers=0)
    dm = SegmentationDataModule(**kw, jpeg_mask_policy="snap")
    sizes = {s: len(dm.samples(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 2, "test": 2}
    ids = sorted(x.id for s in ("train", "val", "test") for x in dm.samples(s))
    assert ids == sorted(f"image_{k}" for k in range(10))
    assert [x.id for x in SegmentationDataModule(**kw).samples("val")] == [x.id for x in dm.samples("val")]
    ds = dm.dataset("train", augment=False)
    for i, s in enumerate(ds.samples):
        _, m = ds.load(i)
        stored = read_label_image(s.mask, grayscale=True)
        assert set(np.unique(m)) <= valid and s.jpeg_mask
        assert (m == idd.jpeg_mask_table("snap")[stored]).all()
        # JPEG also moves values onto other valid ids near edges; those cannot be told apart
        assert (m == truth[int(s.id.split("_")[1])]).mean() > 0.85
    ig = SegmentationDataModule(**kw, jpeg_mask_policy="ignore").dataset("train", augment=False)
    for i in range(len(ig)):
        _, m = ig.load(i)
        _, snapped = ds.load(i)
        assert set(np.unique(m)) <= valid
        assert ((m == snapped) | (m == 255)).all() and (m == 255).sum() >= (snapped == 255).sum()


def test_flat_layout_errors(tmp_path):
    with pytest.raises(DataError, match="no image_archive/ and mask_archive/ folders .*IDD20K_II") as e:
        idd.find_idd_flat_samples(tmp_path)
    assert "use data=idd)" in str(e.value)
    (tmp_path / "image_archive").mkdir()
    (tmp_path / "mask_archive").mkdir()
    cv2.imwrite(str(tmp_path / "image_archive" / "image_1.jpg"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "mask_archive" / "mask_2.jpg"), np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="no image_<n>/mask_<n> pairs"):
        idd.find_idd_flat_samples(tmp_path)


def test_default_table_is_the_official_level3_encoding():
    a = ann(len(IDD_NAME_TO_LEVEL3), 1, *[rect(n, i, 0, i, 0) for i, n in enumerate(IDD_NAME_TO_LEVEL3)])
    m = idd.rasterize_polygons(a)
    assert m[0].tolist() == list(IDD_NAME_TO_LEVEL3.values())


# ------------------------------------------------------------------------------ the csTrainId protocol
ROWS = {lb.name: lb for lb in IDD_LABELS}
COLUMN = {"id": "id", "csTrainId": "cs_train_id", "level3Id": "level3_id", "level2Id": "level2_id",
          "level1Id": "level1_id"}
# the raw labels that level3 merges but the csTrainId encoding scores apart (the level3 route differs)
SCORED_APART = ("rail track", "animal", "train", "polegroup", "fallback background")


def reference_mask(annotation: dict, encoding: str) -> np.ndarray:
    """AutoNUE's createLabelImage written out plainly: one PIL polygon per object in file order over
    the `unlabeled` background, straight from the table's column; deleted or < 3 points skipped,
    `<label>group` read as `<label>`, unknown labels skipped."""
    col = COLUMN[encoding]
    img = Image.new("L", (annotation["imgWidth"], annotation["imgHeight"]), getattr(ROWS["unlabeled"], col))
    draw = ImageDraw.Draw(img)
    for obj in annotation["objects"]:
        name, points = obj["label"], obj["polygon"]
        if obj.get("deleted") or len(points) < 3:
            continue
        if name not in ROWS and name.endswith("group"):
            name = name[: -len("group")]
        if name in ROWS:
            draw.polygon([(p[0], p[1]) for p in points], fill=getattr(ROWS[name], col))
    return np.asarray(img)


def every_label_annotation(seed: int, w: int = 160, h: int = 100) -> dict:
    """A tile for each of the 40 raw labels, then random polygons of every label over them (rectangles,
    float triangles, concave stars, some outside the image), `<label>group` names, deleted objects,
    2-point polygons and an unknown label."""
    rng = np.random.default_rng(seed)
    names = list(ROWS)
    order = rng.permutation(len(names))
    objs = [rect(names[j], (k % 8) * 20, (k // 8) * 20, (k % 8) * 20 + 19, (k // 8) * 20 + 19)
            for k, j in enumerate(order)]
    for _ in range(3):
        for j in rng.permutation(len(names)):
            name = names[j]
            x, y = float(rng.uniform(-20, w + 10)), float(rng.uniform(-20, h + 10))
            kind = int(rng.integers(0, 4))
            if kind == 0:
                obj = rect(name, int(x), int(y), int(x + rng.integers(3, 40)), int(y + rng.integers(3, 30)))
            elif kind == 1:
                obj = {"label": name, "polygon": [[x, y], [x + rng.uniform(4, 30), y + rng.uniform(-5, 5)],
                                                  [x + rng.uniform(-5, 5), y + rng.uniform(4, 30)]]}
            else:
                n = int(rng.integers(5, 9))
                angles = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
                radii = np.where(np.arange(2 * n) % 2 == 0, rng.uniform(8, 18), rng.uniform(2, 6))
                pts = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], 1)
                obj = {"label": name, "polygon": (np.round(pts) if kind == 2 else np.round(pts, 2)).tolist()}
            if name in ("person", "car", "motorcycle", "rider", "bicycle") and rng.random() < 0.5:
                obj["label"] = name + "group"
            if rng.random() < 0.1:
                obj["deleted"] = 1
            objs.append(obj)
    objs.insert(int(rng.integers(0, len(objs))), {"label": "sky", "polygon": [[0, 0], [w - 1, h - 1]]})
    objs.insert(int(rng.integers(0, len(objs))), rect("spaceship", 0, 0, w - 1, h - 1))
    return ann(w, h, *objs)


@pytest.fixture(scope="module")
def every_label_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("idd_every_label")
    annotations = {}
    for k in range(3):
        a = every_label_annotation(k)
        write_idd(root, seq=str(k % 2), ident=f"00000{k}", w=a["imgWidth"], h=a["imgHeight"], objects=a["objects"])
        annotations[f"train/{k % 2}/00000{k}"] = a
    return root, annotations


def served_masks(root, **kw) -> dict[str, np.ndarray]:
    dm = SegmentationDataModule(root=str(root), layout="idd", split_dirs={"train": "train", "val": "train",
                                                                          "test": "train"}, num_workers=0, **kw)
    ds = dm.dataset("train", augment=False)
    return {s.id: ds.load(i)[1] for i, s in enumerate(ds.samples)}


def test_the_synthetic_annotations_cover_every_label(every_label_dataset):
    _, annotations = every_label_dataset
    seen = set()
    for a in annotations.values():
        seen |= set(np.unique(reference_mask(a, "id")).tolist())
    assert seen == {lb.id for lb in IDD_LABELS}  # every raw label is visible somewhere


def test_idd_in_cityscapes_ids_is_autonue_s_cs_train_id_encoding_exactly(every_label_dataset, caplog):
    root, annotations = every_label_dataset
    with caplog.at_level(logging.INFO, logger="cvexp.data.segmentation"):
        got = served_masks(root, target_space="cityscapes")
    assert "csTrainId" in caplog.text
    assert sorted(got) == sorted(annotations)
    level3_route = get_mapping("idd_level3", "cityscapes")
    apart = [ROWS[n].id for n in SCORED_APART]
    for sid, a in annotations.items():
        expect = reference_mask(a, "csTrainId")
        assert got[sid].dtype == np.uint8 and np.array_equal(got[sid], expect), sid
        # the masks are cached under AutoNUE's name for them, beside the JSON
        cached = root / "gtFine" / f"{sid}_gtFine_labelcsTrainIds.png"
        assert np.array_equal(read_label_image(cached), expect)
        # mapping level3 instead differs exactly on the labels level3 merged
        differs = level3_route[reference_mask(a, "level3Id")] != expect
        assert np.array_equal(differs, np.isin(reference_mask(a, "id"), apart)) and differs.any()


@pytest.mark.parametrize("level", [3, 2, 1])
def test_level_masks_are_still_autonue_s_level_encodings(every_label_dataset, level):
    root, annotations = every_label_dataset
    got = served_masks(root, label_level=level)
    for sid, a in annotations.items():
        assert np.array_equal(got[sid], reference_mask(a, f"level{level}Id")), sid
        cached = root / "gtFine" / f"{sid}_gtFine_labellevel3Ids.png"  # levels 2 and 1 come from level3
        assert np.array_equal(read_label_image(cached), reference_mask(a, "level3Id"))


def test_cs_train_id_masks_of_a_read_only_dataset_go_to_the_cache(tmp_path, monkeypatch):
    data, cache = tmp_path / "data", tmp_path / "cache"
    write_idd(data, objects=[rect("non-drivable fallback", 0, 0, 15, 7), rect("animal", 0, 0, 3, 3)])
    read_only_dataset(monkeypatch, data)
    found = idd.find_idd_samples(data, "train", cache, "csTrainId")
    assert found[0].mask is None and found[0].mask_space == "cityscapes"
    [s] = idd.ensure_masks(found, data, cache, encoding="csTrainId")
    assert s.mask.is_relative_to(cache) and s.mask.name == "000001_gtFine_labelcsTrainIds.png"
    assert s.mask == idd.mask_cache_path(cache, data, s.polygons, "csTrainId")
    m = read_label_image(s.mask)
    assert (m[:4, :4] == 255).all() and (m[4:] == 9).all()
    assert idd.find_idd_samples(data, "train", cache, "csTrainId")[0].mask == s.mask  # found again
    assert idd.find_idd_samples(data, "train", cache)[0].mask is None  # level3 is another file
    assert [p.name for p in data.rglob("*.png")] == ["000001_leftImg8bit.png"]  # nothing written there


def test_without_polygons_a_level3_mask_serves_cityscapes_ids_with_a_warning(tmp_path, caplog):
    level3 = write_idd(tmp_path, objects=[rect("road", 0, 0, 15, 7)])
    cv2.imwrite(str(level3), np.tile(np.array([0, 3, 4, 12, 20, 25, 8, 255], np.uint8), (8, 2)))
    level3.with_name("000001_gtFine_polygons.json").unlink()
    with caplog.at_level(logging.WARNING):
        got = served_masks(tmp_path, target_space="cityscapes")
    assert "mapped from level3 classes" in caplog.text
    assert got["train/0/000001"][0, :8].tolist() == [0, 9, 11, 255, 5, 10, 255, 255]


def test_flat_variant_in_cityscapes_ids_maps_level3_and_says_so(tmp_path, caplog):
    truth = write_flat(tmp_path, n=4)
    with caplog.at_level(logging.WARNING):
        dm = SegmentationDataModule(root=str(tmp_path), layout="idd_flat", target_space="cityscapes",
                                    split=(1.0, 0.0, 0.0), num_workers=0, jpeg_mask_policy="ignore")
    lines = [r.getMessage() for r in caplog.records if "idd_flat" in r.getMessage()]
    assert len(lines) == 1 and "mapped from level3" in lines[0] and "csTrainId" in lines[0]
    ds = dm.dataset("train", augment=False)
    lut = get_mapping("idd_level3", "cityscapes")
    for i, s in enumerate(ds.samples):
        m = ds.load(i)[1]
        stored = idd.jpeg_mask_table("ignore")[read_label_image(s.mask, grayscale=True)]
        assert np.array_equal(m, lut[stored]) and dm.num_classes == 19
        assert (m == lut[truth[int(s.id.split("_")[1])]]).mean() > 0.85


def test_a_progress_bar_only_when_many_masks_are_made(tmp_path, monkeypatch):
    import rich.progress

    calls = []

    def track(items, **kw):
        calls.append(kw["total"])
        yield from items

    monkeypatch.setattr(rich.progress, "track", track)
    for k in range(polygons.PROGRESS_MIN + 1):
        write_idd(tmp_path, ident=f"{k:06d}")
    made = idd.ensure_masks(idd.find_idd_samples(tmp_path, "train"), tmp_path)
    assert calls == [polygons.PROGRESS_MIN + 1] and all(s.mask.is_file() for s in made)
    assert list(polygons.progress(iter(range(3)), 3, "few")) == [0, 1, 2] and len(calls) == 1
