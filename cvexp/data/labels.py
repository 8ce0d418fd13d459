"""Label tables as data: class ids, names, colours, counts. One place for every dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cvexp.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Russian Wildlife Dataset (classification). The order is the course's, NOT alphabetical.
# --------------------------------------------------------------------------------------------
WILDLIFE_CLASSES: tuple[str, ...] = (
    "amur_leopard",  # 0
    "amur_tiger",  # 1
    "birds",  # 2
    "black_bear",  # 3
    "brown_bear",  # 4
    "dog",  # 5
    "roe_deer",  # 6
    "sika_deer",  # 7
    "wild_boar",  # 8
    "people",  # 9
)
# images per class in the full dataset (11,668 in all): imbalanced, so report macro and weighted F1
WILDLIFE_COUNTS: dict[str, int] = dict(
    zip(WILDLIFE_CLASSES, (978, 1049, 1446, 975, 1209, 1213, 1124, 1539, 1435, 700))
)


def normalize_class_name(name: str) -> str:
    """Folder names in the wild vary in case and separators: `Amur Leopard` -> `amur_leopard`."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


# ============================================================================================
# Semantic segmentation: Cityscapes and IDD (Indian Driving Dataset) label tables.
# Every mask in this package holds class ids as uint8 with IGNORE_INDEX (255) for void.
# ============================================================================================
IGNORE_INDEX = 255
Color = tuple[int, int, int]


@dataclass(frozen=True)
class CityscapesLabel:
    """One row of the official table (cityscapesScripts/helpers/labels.py)."""

    name: str
    id: int  # value in *_gtFine_labelIds.png
    train_id: int  # 0..18, 255 = ignored in training/evaluation (-1 for the license plate, as official)
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: Color


def _cs(name, id_, train_id, cat, cat_id, inst, ign, color):
    return CityscapesLabel(name, id_, train_id, cat, cat_id, inst, ign, color)


CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    _cs("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
    _cs("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
    _cs("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
    _cs("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
    _cs("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
    _cs("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
    _cs("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
    _cs("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
    _cs("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
    _cs("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
    _cs("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
    _cs("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
    _cs("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
    _cs("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
    _cs("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
    _cs("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
    _cs("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
    _cs("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
    _cs("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
    _cs("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
    _cs("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
    _cs("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
    _cs("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
    _cs("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
    _cs("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
    _cs("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
    _cs("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
    _cs("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
    _cs("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
    _cs("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
    _cs("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
    _cs("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
    _cs("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
    _cs("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
    _cs("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
)
CITYSCAPES_NAME_TO_ID: dict[str, int] = {lb.name: lb.id for lb in CITYSCAPES_LABELS}
# the 19 evaluated classes, in train-id order, and their colours
CITYSCAPES_TRAIN_CLASSES: tuple[str, ...] = tuple(
    lb.name for lb in sorted((lb for lb in CITYSCAPES_LABELS if 0 <= lb.train_id < IGNORE_INDEX),
                             key=lambda lb: lb.train_id))
CITYSCAPES_PALETTE: tuple[Color, ...] = tuple(
    next(lb.color for lb in CITYSCAPES_LABELS if lb.name == n) for n in CITYSCAPES_TRAIN_CLASSES)
# labelIds value -> train id (255 for the 15 ignored labels)
CITYSCAPES_ID_TO_TRAIN_ID: dict[int, int] = {
    lb.id: (lb.train_id if 0 <= lb.train_id < IGNORE_INDEX else IGNORE_INDEX)
    for lb in CITYSCAPES_LABELS if lb.id >= 0}


@dataclass(frozen=True)
class IddLabel:
    """One raw polygon label of IDD: a row of AutoNUE's table (public-code `helpers/anue_labels.py`),
    with the columns the mask encodings of its `createLabels --id-type` read."""

    name: str  # the `label` string in *_gtFine_polygons.json
    id: int  # `id`: the raw label id (0..39)
    cs_id: int  # `csId`: the Cityscapes label id it corresponds to (255 = none)
    cs_train_id: int  # `csTrainId`: the Cityscapes train id it is scored as (255 = void)
    level3_id: int  # `level3Id`: 26 classes (the benchmark), 255 = void
    level2_id: int  # `level2Id`: 16 classes
    level1_id: int  # `level1Id`: 7 classes
    color: Color  # `color`


def _idd(name, id_, cs_id, cs_train_id, l3, l2, l1, color):
    return IddLabel(name, id_, cs_id, cs_train_id, l3, l2, l1, color)


# Every value as in anue_labels.py, but `vehicle fallback`'s csId, which the official table has as
# 355 (an 8-bit mask cannot hold it; every other label without a Cityscapes counterpart has 255).
IDD_LABELS: tuple[IddLabel, ...] = (
    #     name                      id  csId csTrainId l3   l2   l1   color
    _idd("road",                    0,   7,    0,    0,   0,   0,  (128, 64, 128)),
    _idd("parking",                 1,   9,  255,    1,   1,   0,  (250, 170, 160)),
    _idd("drivable fallback",       2, 255,  255,    1,   1,   0,  (81, 0, 81)),
    _idd("sidewalk",                3,   8,    1,    2,   2,   1,  (244, 35, 232)),
    _idd("rail track",              4,  10,  255,    3,   3,   1,  (230, 150, 140)),
    _idd("non-drivable fallback",   5, 255,    9,    3,   3,   1,  (152, 251, 152)),
    _idd("person",                  6,  24,   11,    4,   4,   2,  (220, 20, 60)),
    _idd("animal",                  7, 255,  255,    4,   4,   2,  (246, 198, 145)),
    _idd("rider",                   8,  25,   12,    5,   5,   2,  (255, 0, 0)),
    _idd("motorcycle",              9,  32,   17,    6,   6,   3,  (0, 0, 230)),
    _idd("bicycle",                10,  33,   18,    7,   6,   3,  (119, 11, 32)),
    _idd("autorickshaw",           11, 255,  255,    8,   7,   3,  (255, 204, 54)),
    _idd("car",                    12,  26,   13,    9,   7,   3,  (0, 0, 142)),
    _idd("truck",                  13,  27,   14,   10,   8,   3,  (0, 0, 70)),
    _idd("bus",                    14,  28,   15,   11,   8,   3,  (0, 60, 100)),
    _idd("caravan",                15,  29,  255,   12,   8,   3,  (0, 0, 90)),
    _idd("trailer",                16,  30,  255,   12,   8,   3,  (0, 0, 110)),
    _idd("train",                  17,  31,   16,   12,   8,   3,  (0, 80, 100)),
    _idd("vehicle fallback",       18, 255,  255,   12,   8,   3,  (136, 143, 153)),
    _idd("curb",                   19, 255,  255,   13,   9,   4,  (220, 190, 40)),
    _idd("wall",                   20,  12,    3,   14,   9,   4,  (102, 102, 156)),
    _idd("fence",                  21,  13,    4,   15,  10,   4,  (190, 153, 153)),
    _idd("guard rail",             22,  14,  255,   16,  10,   4,  (180, 165, 180)),
    _idd("billboard",              23, 255,  255,   17,  11,   4,  (174, 64, 67)),
    _idd("traffic sign",           24,  20,    7,   18,  11,   4,  (220, 220, 0)),
    _idd("traffic light",          25,  19,    6,   19,  11,   4,  (250, 170, 30)),
    _idd("pole",                   26,  17,    5,   20,  12,   4,  (153, 153, 153)),
    _idd("polegroup",              27,  18,  255,   20,  12,   4,  (153, 153, 153)),
    _idd("obs-str-bar-fallback",   28, 255,  255,   21,  12,   4,  (169, 187, 214)),
    _idd("building",               29,  11,    2,   22,  13,   5,  (70, 70, 70)),
    _idd("bridge",                 30,  15,  255,   23,  13,   5,  (150, 100, 100)),
    _idd("tunnel",                 31,  16,  255,   23,  13,   5,  (150, 120, 90)),
    _idd("vegetation",             32,  21,    8,   24,  14,   5,  (107, 142, 35)),
    _idd("sky",                    33,  23,   10,   25,  15,   6,  (70, 130, 180)),
    _idd("fallback background",    34, 255,  255,   25,  15,   6,  (169, 187, 214)),
    _idd("unlabeled",              35,   0,  255,  255, 255, 255,  (0, 0, 0)),
    _idd("ego vehicle",            36,   1,  255,  255, 255, 255,  (0, 0, 0)),
    _idd("rectification border",   37,   2,  255,  255, 255, 255,  (0, 0, 0)),
    _idd("out of roi",             38,   3,  255,  255, 255, 255,  (0, 0, 0)),
    _idd("license plate",          39, 255,  255,  255, 255, 255,  (0, 0, 142)),
)
# the official encodings (createLabels `--id-type`) -> the table column they read
IDD_ENCODING_COLUMNS: dict[str, str] = {
    "id": "id", "csId": "cs_id", "csTrainId": "cs_train_id",
    "level3Id": "level3_id", "level2Id": "level2_id", "level1Id": "level1_id",
}


def idd_name_to(encoding: str) -> dict[str, int]:
    """Polygon `label` -> the id it is drawn with in one official encoding (`level3Id`, `csTrainId`, ...)."""
    try:
        column = IDD_ENCODING_COLUMNS[encoding]
    except KeyError:
        raise ConfigError(f"unknown IDD mask encoding {encoding!r}; use one of "
                          f"{', '.join(IDD_ENCODING_COLUMNS)}") from None
    return {lb.name: getattr(lb, column) for lb in IDD_LABELS}


# polygon `label` -> level3 id / Cityscapes train id, as the official createLabels tool encodes them
IDD_NAME_TO_LEVEL3: dict[str, int] = idd_name_to("level3Id")
IDD_NAME_TO_CS_TRAIN_ID: dict[str, int] = idd_name_to("csTrainId")

# class names as in AutoNUE evaluation/evaluate_mIoU.py (each level3 class is named after one raw label)
IDD_LEVEL3_CLASSES: tuple[str, ...] = (
    "road", "drivable fallback", "sidewalk", "non-drivable fallback", "person", "rider", "motorcycle",
    "bicycle", "autorickshaw", "car", "truck", "bus", "vehicle fallback", "curb", "wall", "fence",
    "guard rail", "billboard", "traffic sign", "traffic light", "pole", "obs-str-bar-fallback",
    "building", "bridge", "vegetation", "sky",
)
IDD_LEVEL2_CLASSES: tuple[str, ...] = (
    "road", "drivable fallback", "sidewalk", "non-drivable fallback", "person", "rider", "2-wheeler",
    "car-auto", "large-vehicle", "curb-wall", "fence-guard rail", "info-structures", "obs-fallback",
    "construction", "vegetation", "sky",
)
IDD_LEVEL1_CLASSES: tuple[str, ...] = (
    "drivable", "non-drivable", "living-things", "vehicles", "road-side-objs", "far-objects", "sky",
)


def _first_row(column: str, value: int) -> IddLabel:
    """The first raw label (in table order) with `column == value`."""
    return next(lb for lb in IDD_LABELS if getattr(lb, column) == value)


# the hierarchy: IDD_LEVEL3_TO_LEVEL2[level3 id] = level2 id, IDD_LEVEL2_TO_LEVEL1[level2 id] = level1 id
# (every raw label of a level3 class has the same level2 id, and so on: tests check it)
IDD_LEVEL3_TO_LEVEL2: tuple[int, ...] = tuple(
    _first_row("level3_id", i).level2_id for i in range(len(IDD_LEVEL3_CLASSES)))
IDD_LEVEL2_TO_LEVEL1: tuple[int, ...] = tuple(
    _first_row("level2_id", i).level1_id for i in range(len(IDD_LEVEL2_CLASSES)))

# IDD level3 id -> Cityscapes train id, for masks that are already level3 (the flat course variant)
# and for a level3 model's predictions: each level3 class takes the csTrainId of the raw label it is
# named after; level3 ids not listed -> 255. Approximate by nature: the official protocol draws
# csTrainId masks from the raw labels, which level3 has merged (rail track, animal, train, polegroup
# and fallback background are scored differently there; see docs/segmentation_protocol.md).
IDD_LEVEL3_TO_CITYSCAPES: dict[int, int] = {
    i: IDD_NAME_TO_CS_TRAIN_ID[name] for i, name in enumerate(IDD_LEVEL3_CLASSES)
    if IDD_NAME_TO_CS_TRAIN_ID[name] != IGNORE_INDEX}

# palettes: each class has the colour of its first raw label in the table (so classes with a
# Cityscapes counterpart have the Cityscapes colour)
IDD_LEVEL3_PALETTE: tuple[Color, ...] = tuple(
    _first_row("level3_id", i).color for i in range(len(IDD_LEVEL3_CLASSES)))
IDD_LEVEL2_PALETTE: tuple[Color, ...] = tuple(
    _first_row("level2_id", i).color for i in range(len(IDD_LEVEL2_CLASSES)))
IDD_LEVEL1_PALETTE: tuple[Color, ...] = tuple(
    _first_row("level1_id", i).color for i in range(len(IDD_LEVEL1_CLASSES)))


@dataclass(frozen=True)
class LabelSpace:
    """A set of classes a mask or a model speaks: names in id order, colours, the ignore id."""

    name: str
    class_names: tuple[str, ...]
    palette: tuple[Color, ...]
    ignore_index: int = IGNORE_INDEX

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


LABEL_SPACES: dict[str, LabelSpace] = {
    "cityscapes": LabelSpace("cityscapes", CITYSCAPES_TRAIN_CLASSES, CITYSCAPES_PALETTE),
    "idd_level3": LabelSpace("idd_level3", IDD_LEVEL3_CLASSES, IDD_LEVEL3_PALETTE),
    "idd_level2": LabelSpace("idd_level2", IDD_LEVEL2_CLASSES, IDD_LEVEL2_PALETTE),
    "idd_level1": LabelSpace("idd_level1", IDD_LEVEL1_CLASSES, IDD_LEVEL1_PALETTE),
}
# spaces that only label files speak (never a model): Cityscapes' 34 raw labelIds
FILE_SPACES: tuple[str, ...] = ("cityscapes_ids",)


def label_space(name: str) -> LabelSpace:
    """`cityscapes` (19 train ids), `idd_level3` (26), `idd_level2` (16) or `idd_level1` (7)."""
    try:
        return LABEL_SPACES[name]
    except KeyError:
        raise ConfigError(f"unknown label space {name!r}; use one of {', '.join(LABEL_SPACES)}") from None


def lookup_table(mapping: Mapping[int, int] | Sequence[int], default: int = IGNORE_INDEX) -> np.ndarray:
    """A (256,) uint8 table `lut` so that `lut[mask]` remaps a whole mask in one indexing op.

    `mapping` is {source id: target id} or a sequence whose i-th entry is the target of id i.
    Ids not in `mapping` go to `default`; IGNORE_INDEX always stays IGNORE_INDEX.
    """
    items = mapping.items() if isinstance(mapping, Mapping) else enumerate(mapping)
    lut = np.full(256, default, np.uint8)
    for src, dst in items:
        if 0 <= int(src) < 256:
            lut[int(src)] = IGNORE_INDEX if int(dst) < 0 else int(dst)
    lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


def _identity(n: int) -> np.ndarray:
    return lookup_table(range(n))


def _inverse(mapping: Mapping[int, int]) -> dict[int, int]:
    inverse = {v: k for k, v in mapping.items()}
    if len(inverse) != len(mapping):
        raise AssertionError("mapping is not one-to-one; it has no inverse")
    return inverse


@lru_cache(maxsize=1)
def _mappings() -> dict[tuple[str, str], np.ndarray]:
    l3_l2 = lookup_table(IDD_LEVEL3_TO_LEVEL2)
    l2_l1 = lookup_table(IDD_LEVEL2_TO_LEVEL1)
    l3_cs = lookup_table(IDD_LEVEL3_TO_CITYSCAPES)
    # the inverse is exact: no two level3 classes share a Cityscapes train id (checked)
    cs_l3 = lookup_table(_inverse(IDD_LEVEL3_TO_CITYSCAPES))
    cs_ids = lookup_table(CITYSCAPES_ID_TO_TRAIN_ID)
    return {
        ("idd_level3", "cityscapes"): l3_cs,
        ("cityscapes", "idd_level3"): cs_l3,
        ("idd_level3", "idd_level2"): l3_l2,
        ("idd_level3", "idd_level1"): l2_l1[l3_l2],
        ("idd_level2", "idd_level1"): l2_l1,
        ("cityscapes_ids", "cityscapes"): cs_ids,
        ("cityscapes_ids", "idd_level3"): cs_l3[cs_ids],
    }


def supported_mappings() -> list[tuple[str, str]]:
    return sorted(_mappings())


def get_mapping(src: str, dst: str) -> np.ndarray:
    """The (256,) uint8 lookup table taking masks in space `src` to space `dst`.

    Identity for src == dst; else one of `supported_mappings()` (IDD level3 -> Cityscapes train ids
    and back, IDD level3 -> level2 -> level1, Cityscapes labelIds -> train ids).
    """
    known = set(LABEL_SPACES) | set(FILE_SPACES)
    for s in (src, dst):
        if s not in known:
            raise ConfigError(f"unknown label space {s!r}; use one of {', '.join(sorted(known))}")
    if src == dst:
        return _identity(256 if src in FILE_SPACES else LABEL_SPACES[src].num_classes)
    table = _mappings().get((src, dst))
    if table is None:
        pairs = ", ".join(f"{a}->{b}" for a, b in supported_mappings())
        raise ConfigError(f"no label mapping from {src} to {dst}; supported: {pairs} "
                          "(set data.target_space to one of these or to the data's own space)")
    return table.copy()
