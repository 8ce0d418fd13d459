"""The synthetic street scenes: deterministic, pixel-exact labels, both real layouts, a domain shift."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cvexp.data import cityscapes, demo_streets, idd
from cvexp.data.cache import MARKER
from cvexp.data.labels import CITYSCAPES_NAME_TO_ID, IDD_NAME_TO_LEVEL3
from cvexp.data.seg_files import read_label_image

TABLES = {"idd": (IDD_NAME_TO_LEVEL3, 255), "cityscapes": (CITYSCAPES_NAME_TO_ID, 0)}


def scenes(layout, n=24, seed=5):
    return [demo_streets.render_scene(np.random.default_rng([seed, i]), layout) for i in range(n)]


@pytest.fixture(scope="module")
def both():
    return {layout: scenes(layout) for layout in demo_streets.LAYOUTS}


def test_rendering_is_deterministic():
    a_img, a_objs = demo_streets.render_scene(np.random.default_rng([1, 2]), "idd")
    b_img, b_objs = demo_streets.render_scene(np.random.default_rng([1, 2]), "idd")
    c_img, _ = demo_streets.render_scene(np.random.default_rng([1, 3]), "idd")
    assert np.array_equal(a_img, b_img) and [o.polygon for o in a_objs] == [o.polygon for o in b_objs]
    assert not np.array_equal(a_img, c_img)
    assert a_img.shape == (64, 128, 3) and a_img.dtype == np.uint8


@pytest.mark.parametrize("layout", demo_streets.LAYOUTS)
def test_painted_objects_are_exactly_the_rasterised_labels(both, layout):
    table, background = TABLES[layout]
    for img, objs in both[layout][:10]:
        h, w = img.shape[:2]
        painted = np.full((h, w), background, np.uint8)
        for o in objs:
            if o.drawn:
                painted[demo_streets._object_mask(o, w, h)] = table[o.label]
        labels = idd.rasterize_polygons(demo_streets.scene_json(objs, w, h), table, background, on_unknown="error")
        assert np.array_equal(painted, labels)


def test_idd_json_holds_deleted_objects_and_degenerate_polygons_that_are_not_drawn(both):
    objs = [o for _, os_ in both["idd"] for o in os_]
    assert any(o.deleted for o in objs) and any(len(o.polygon) < 3 for o in objs)
    assert all(not o.drawn for o in objs if o.deleted or len(o.polygon) < 3)
    js = demo_streets.scene_json(objs[:3], 128, 64)
    assert set(js) == {"imgHeight", "imgWidth", "objects"} and {"label", "polygon", "deleted"} <= set(js["objects"][0])


def test_visible_domain_shift_between_idd_and_cityscapes(both):
    def freq(layout):
        table, background = TABLES[layout]
        counts = {}
        for img, objs in both[layout]:
            m = idd.rasterize_polygons(demo_streets.scene_json(objs, 128, 64), table, background)
            for name, v in table.items():
                counts[name] = counts.get(name, 0) + int((m == v).sum())
        total = sum(counts.values())
        return {k: v / total for k, v in counts.items()}

    f_idd, f_cs = freq("idd"), freq("cityscapes")
    for only_idd in ("autorickshaw", "drivable fallback", "curb", "billboard"):
        assert f_idd[only_idd] > 0 and f_cs.get(only_idd, 0) == 0
    assert f_cs["terrain"] > 0 and f_cs["ego vehicle"] > 0
    assert f_idd["motorcycle"] > 2 * f_cs["motorcycle"]
    assert f_cs["car"] > 1.5 * f_idd["car"] and f_cs["sidewalk"] > 1.5 * f_idd["sidewalk"]
    # palettes: the IDD sky is hazy (little blue over red), the Cityscapes sky clearly blue
    def sky_blueness(layout):
        table, background = TABLES[layout]
        vals = []
        for img, objs in both[layout]:
            m = idd.rasterize_polygons(demo_streets.scene_json(objs, 128, 64), table, background)
            sky = img[m == table["sky"]].astype(float)
            vals.append((sky[:, 2] - sky[:, 0]).mean())
        return np.mean(vals)

    assert sky_blueness("cityscapes") > sky_blueness("idd") + 40
    mean_idd = np.mean([img.mean(axis=(0, 1)) for img, _ in both["idd"]], axis=0)
    mean_cs = np.mean([img.mean(axis=(0, 1)) for img, _ in both["cityscapes"]], axis=0)
    assert np.abs(mean_idd - mean_cs).max() > 15


def test_writer_is_deterministic_idempotent_and_both_layouts_parse(tmp_path):
    a = demo_streets.write_demo_streets(tmp_path / "a", n_train=3, n_val=2, seed=1)
    b = demo_streets.write_demo_streets(tmp_path / "b", n_train=3, n_val=2, seed=1)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    marker = a / MARKER
    stamp = marker.stat().st_mtime_ns
    assert demo_streets.write_demo_streets(a, n_train=3, n_val=2, seed=1) == a
    assert marker.stat().st_mtime_ns == stamp  # nothing rewritten
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left

    for split, n in (("train", 3), ("val", 2)):
        found = idd.find_idd_samples(a / "idd", split)
        assert len(found) == n and all(s.polygons is not None for s in found)
        for s in found:
            m = idd.rasterize_polygons(s.polygons, on_unknown="error")
            assert m.shape == (64, 128)
        cs = cityscapes.find_cityscapes_samples(a / "cityscapes", split)
        assert len(cs) == n and all(s.mask_space == "cityscapes_ids" for s in cs)
        assert set(np.unique(read_label_image(cs[0].mask))) <= set(CITYSCAPES_NAME_TO_ID.values())
    assert (a / "cityscapes" / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_color.png").is_file()

    c = demo_streets.write_demo_streets(a, n_train=2, n_val=2, seed=1)  # other settings: rewritten
    assert json.loads((c / MARKER).read_text())["n_train"] == 2
    assert len(idd.find_idd_samples(c / "idd", "train")) == 2
