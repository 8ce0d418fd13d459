"""Segmentation label tables (IDD levels, Cityscapes 34 -> 19) and the mappings between spaces."""

from __future__ import annotations

import numpy as np
import pytest

from cvexp.data import labels as L
from cvexp.errors import ConfigError

# The official table (cityscapesScripts helpers/labels.py): Cityscapes label id -> train id, and colours per train id
CS_ID_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                  26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CS_COLORS = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
             (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
             (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)]
# IDD level3 -> Cityscapes train id: each level3 class as the csTrainId of the raw label it is named after
IDD_TO_CS = {0: 0, 2: 1, 3: 9, 22: 2, 14: 3, 15: 4, 20: 5, 19: 6, 18: 7, 24: 8, 25: 10, 4: 11, 5: 12, 9: 13,
             10: 14, 11: 15, 6: 17, 7: 18}

# AutoNUE public-code helpers/anue_labels.py, transcribed by hand (csId left out: see labels.py):
# name | id | csTrainId | level3Id | level2Id | level1Id | color
ANUE_TABLE = """
road|0|0|0|0|0|128,64,128
parking|1|255|1|1|0|250,170,160
drivable fallback|2|255|1|1|0|81,0,81
sidewalk|3|1|2|2|1|244,35,232
rail track|4|255|3|3|1|230,150,140
non-drivable fallback|5|9|3|3|1|152,251,152
person|6|11|4|4|2|220,20,60
animal|7|255|4|4|2|246,198,145
rider|8|12|5|5|2|255,0,0
motorcycle|9|17|6|6|3|0,0,230
bicycle|10|18|7|6|3|119,11,32
autorickshaw|11|255|8|7|3|255,204,54
car|12|13|9|7|3|0,0,142
truck|13|14|10|8|3|0,0,70
bus|14|15|11|8|3|0,60,100
caravan|15|255|12|8|3|0,0,90
trailer|16|255|12|8|3|0,0,110
train|17|16|12|8|3|0,80,100
vehicle fallback|18|255|12|8|3|136,143,153
curb|19|255|13|9|4|220,190,40
wall|20|3|14|9|4|102,102,156
fence|21|4|15|10|4|190,153,153
guard rail|22|255|16|10|4|180,165,180
billboard|23|255|17|11|4|174,64,67
traffic sign|24|7|18|11|4|220,220,0
traffic light|25|6|19|11|4|250,170,30
pole|26|5|20|12|4|153,153,153
polegroup|27|255|20|12|4|153,153,153
obs-str-bar-fallback|28|255|21|12|4|169,187,214
building|29|2|22|13|5|70,70,70
bridge|30|255|23|13|5|150,100,100
tunnel|31|255|23|13|5|150,120,90
vegetation|32|8|24|14|5|107,142,35
sky|33|10|25|15|6|70,130,180
fallback background|34|255|25|15|6|169,187,214
unlabeled|35|255|255|255|255|0,0,0
ego vehicle|36|255|255|255|255|0,0,0
rectification border|37|255|255|255|255|0,0,0
out of roi|38|255|255|255|255|0,0,0
license plate|39|255|255|255|255|0,0,142
"""


def anue_rows():
    for line in ANUE_TABLE.strip().splitlines():
        name, *ids, color = line.split("|")
        yield (name, *map(int, ids), tuple(map(int, color.split(","))))


def test_idd_table_is_autonue_s_in_order_with_every_column():
    got = [(lb.name, lb.id, lb.cs_train_id, lb.level3_id, lb.level2_id, lb.level1_id, lb.color)
           for lb in L.IDD_LABELS]
    assert got == list(anue_rows())
    cs_ids = {lb.name: lb.cs_id for lb in L.IDD_LABELS}
    assert cs_ids["parking"] == 9 and cs_ids["polegroup"] == 18 and cs_ids["unlabeled"] == 0
    assert cs_ids["vehicle fallback"] == 255  # 355 in the official table: not an 8-bit id


@pytest.mark.parametrize("name,cs_train_id,level3,via_level3", [
    ("non-drivable fallback", 9, 3, 9), ("rail track", 255, 3, 9), ("polegroup", 255, 20, 5),
    ("fallback background", 255, 25, 10), ("animal", 255, 4, 11), ("train", 16, 12, 255)])
def test_labels_level3_merged_are_scored_apart_in_cs_train_ids(name, cs_train_id, level3, via_level3):
    assert L.IDD_NAME_TO_CS_TRAIN_ID[name] == cs_train_id and L.IDD_NAME_TO_LEVEL3[name] == level3
    assert L.get_mapping("idd_level3", "cityscapes")[level3] == via_level3  # what the flat variant can do


def test_every_mapping_is_the_table_s():
    rows = list(anue_rows())
    for enc, col in (("id", 1), ("csTrainId", 2), ("level3Id", 3), ("level2Id", 4), ("level1Id", 5)):
        assert L.idd_name_to(enc) == {r[0]: r[col] for r in rows}
    # a level3 class lies in one level2 class, a level2 class in one level1 class
    assert {(r[3], r[4]) for r in rows if r[3] != 255} == set(enumerate(L.IDD_LEVEL3_TO_LEVEL2))
    assert {(r[4], r[5]) for r in rows if r[4] != 255} == set(enumerate(L.IDD_LEVEL2_TO_LEVEL1))
    cs = {r[0]: r[2] for r in rows}
    assert L.IDD_LEVEL3_TO_CITYSCAPES == {i: cs[n] for i, n in enumerate(L.IDD_LEVEL3_CLASSES) if cs[n] != 255}
    with pytest.raises(ConfigError, match="unknown IDD mask encoding 'level4Id'"):
        L.idd_name_to("level4Id")


def test_idd_palettes_are_the_first_raw_label_colours_as_before():
    rows = list(anue_rows())
    for pal, col in ((L.IDD_LEVEL3_PALETTE, 3), (L.IDD_LEVEL2_PALETTE, 4), (L.IDD_LEVEL1_PALETTE, 5)):
        assert list(pal) == [next(r[6] for r in rows if r[col] == i) for i in range(len(pal))]
    assert L.IDD_LEVEL3_PALETTE[1] == (250, 170, 160) and L.IDD_LEVEL3_PALETTE[3] == (230, 150, 140)
    assert L.IDD_LEVEL3_PALETTE[12] == (0, 0, 90) and L.IDD_LEVEL2_PALETTE[7] == (255, 204, 54)
    assert L.IDD_LEVEL1_PALETTE == ((128, 64, 128), (244, 35, 232), (220, 20, 60), (0, 0, 230), (220, 190, 40),
                                    (70, 70, 70), (70, 130, 180))


def test_idd_levels_have_26_16_7_classes_with_the_design_ids():
    assert len(L.IDD_LEVEL3_CLASSES) == 26 and len(L.IDD_LEVEL2_CLASSES) == 16 and len(L.IDD_LEVEL1_CLASSES) == 7
    l3 = L.IDD_LEVEL3_CLASSES
    assert (l3[0], l3[1], l3[8], l3[12], l3[13], l3[21], l3[23], l3[25]) == (
        "road", "drivable fallback", "autorickshaw", "vehicle fallback", "curb", "obs-str-bar-fallback",
        "bridge", "sky")
    assert L.IDD_LEVEL2_CLASSES[7] == "car-auto" and L.IDD_LEVEL1_CLASSES[4] == "road-side-objs"
    assert len(L.IDD_LEVEL3_PALETTE) == 26 and len(L.IDD_LEVEL2_PALETTE) == 16 and len(L.IDD_LEVEL1_PALETTE) == 7


@pytest.mark.parametrize("name,level3", [
    ("road", 0), ("parking", 1), ("drivable fallback", 1), ("rail track", 3), ("non-drivable fallback", 3),
    ("person", 4), ("animal", 4), ("rider", 5), ("autorickshaw", 8), ("caravan", 12), ("trailer", 12),
    ("train", 12), ("vehicle fallback", 12), ("curb", 13), ("polegroup", 20), ("bridge", 23), ("tunnel", 23),
    ("sky", 25), ("fallback background", 25), ("unlabeled", 255), ("ego vehicle", 255),
    ("rectification border", 255), ("out of roi", 255), ("license plate", 255)])
def test_raw_idd_label_names_map_to_level3_as_official(name, level3):
    assert L.IDD_NAME_TO_LEVEL3[name] == level3


def test_every_level3_class_has_its_own_raw_label():
    for i, name in enumerate(L.IDD_LEVEL3_CLASSES):
        assert L.IDD_NAME_TO_LEVEL3[name] == i


def test_hierarchy_level3_to_level2_to_level1():
    l3, l2, l1 = L.IDD_LEVEL3_CLASSES, L.IDD_LEVEL2_CLASSES, L.IDD_LEVEL1_CLASSES
    up2 = {l3[i]: l2[j] for i, j in enumerate(L.IDD_LEVEL3_TO_LEVEL2)}
    up1 = {l2[i]: l1[j] for i, j in enumerate(L.IDD_LEVEL2_TO_LEVEL1)}
    assert up2["motorcycle"] == up2["bicycle"] == "2-wheeler"
    assert up2["autorickshaw"] == up2["car"] == "car-auto"
    assert up2["truck"] == up2["bus"] == up2["vehicle fallback"] == "large-vehicle"
    assert up2["curb"] == up2["wall"] == "curb-wall" and up2["fence"] == up2["guard rail"] == "fence-guard rail"
    assert up2["billboard"] == up2["traffic sign"] == up2["traffic light"] == "info-structures"
    assert up2["pole"] == up2["obs-str-bar-fallback"] == "obs-fallback"
    assert up2["building"] == up2["bridge"] == "construction"
    assert sorted(set(L.IDD_LEVEL3_TO_LEVEL2)) == list(range(16))  # every level2 class is reached
    assert up1["road"] == up1["drivable fallback"] == "drivable"
    assert up1["sidewalk"] == up1["non-drivable fallback"] == "non-drivable"
    assert up1["person"] == up1["rider"] == "living-things"
    assert up1["2-wheeler"] == up1["large-vehicle"] == "vehicles"
    assert up1["obs-fallback"] == "road-side-objs" and up1["vegetation"] == "far-objects" and up1["sky"] == "sky"


def test_cityscapes_34_labels_to_19_train_ids():
    ids = sorted(lb.id for lb in L.CITYSCAPES_LABELS)
    assert ids == [-1] + list(range(34))
    assert L.CITYSCAPES_ID_TO_TRAIN_ID == {i: CS_ID_TO_TRAIN.get(i, 255) for i in range(34)}
    assert len(L.CITYSCAPES_TRAIN_CLASSES) == 19
    assert L.CITYSCAPES_TRAIN_CLASSES[9] == "terrain" and L.CITYSCAPES_TRAIN_CLASSES[16] == "train"
    assert list(L.CITYSCAPES_PALETTE) == CS_COLORS
    lut = L.get_mapping("cityscapes_ids", "cityscapes")
    assert [int(lut[i]) for i in range(34)] == [CS_ID_TO_TRAIN.get(i, 255) for i in range(34)]


def test_idd_level3_to_cityscapes_is_each_class_s_namesake_label():
    assert L.IDD_LEVEL3_TO_CITYSCAPES == IDD_TO_CS
    lut = L.get_mapping("idd_level3", "cityscapes")
    assert lut.shape == (256,) and lut.dtype == np.uint8
    for i in range(26):
        assert lut[i] == IDD_TO_CS.get(i, 255)
        if i in IDD_TO_CS:  # same class name on both sides, but AutoNUE's non-drivable fallback -> terrain
            assert L.IDD_LEVEL3_CLASSES[i] == L.CITYSCAPES_TRAIN_CLASSES[IDD_TO_CS[i]] or (i, IDD_TO_CS[i]) == (3, 9)
    assert lut[255] == 255 and lut[26] == 255
    mask = np.array([[0, 8, 9], [255, 25, 13]], np.uint8)  # road, autorickshaw, car / void, sky, curb
    assert lut[mask].tolist() == [[0, 255, 13], [255, 10, 255]]
    back = L.get_mapping("cityscapes", "idd_level3")
    assert all(back[v] == k for k, v in IDD_TO_CS.items()) and back[9] == 3 and back[16] == 255


def test_idd_palette_shares_cityscapes_colours_and_is_distinct():
    pal = L.IDD_LEVEL3_PALETTE
    for i, j in IDD_TO_CS.items():
        assert pal[i] == CS_COLORS[j] or i == 3  # non-drivable fallback keeps rail track's colour, not terrain's
    assert len(set(pal)) == 26
    own = [pal[i] for i in range(26) if i not in IDD_TO_CS or i == 3]
    assert not set(own) & set(CS_COLORS)


def test_label_spaces_and_identity_mappings():
    for name, n in [("cityscapes", 19), ("idd_level3", 26), ("idd_level2", 16), ("idd_level1", 7)]:
        sp = L.label_space(name)
        assert sp.num_classes == n == len(sp.palette) and sp.ignore_index == 255
        lut = L.get_mapping(name, name)
        assert lut[:n].tolist() == list(range(n)) and (lut[n:] == 255).all()
    from cvexp.analysis.seg_visualize import colorize

    rgb = colorize(np.array([[0, 255]], np.uint8), L.label_space("cityscapes").palette)
    assert rgb.tolist() == [[[128, 64, 128], [0, 0, 0]]]


def test_level_mappings_compose_through_the_hierarchy():
    l3_l1 = L.get_mapping("idd_level3", "idd_level1")
    expect = [L.IDD_LEVEL2_TO_LEVEL1[L.IDD_LEVEL3_TO_LEVEL2[i]] for i in range(26)]
    assert l3_l1[:26].tolist() == expect
    l2_l1, l3_l2 = L.get_mapping("idd_level2", "idd_level1"), L.get_mapping("idd_level3", "idd_level2")
    assert (l2_l1[l3_l2][:26] == l3_l1[:26]).all()


def test_lookup_table_from_dict_and_sequence():
    lut = L.lookup_table({1: 4, 2: -1, 300: 1})
    assert lut[1] == 4 and lut[2] == 255 and lut[0] == 255 and lut[255] == 255
    assert L.lookup_table([3, 2, 1])[:4].tolist() == [3, 2, 1, 255]
    assert L.lookup_table({255: 0})[255] == 255  # ignore stays ignore


def test_unsupported_or_unknown_spaces_raise_one_line_errors():
    with pytest.raises(ConfigError, match="no label mapping from idd_level2 to cityscapes") as e:
        L.get_mapping("idd_level2", "cityscapes")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="unknown label space 'kitti'"):
        L.get_mapping("kitti", "cityscapes")
    with pytest.raises(ConfigError, match="unknown label space"):
        L.label_space("idd")
