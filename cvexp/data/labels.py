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
    """One raw polygon label of IDD (AutoNUE `anue_labels.py`) and where it lands in each level."""

    name: str  # the `label` string in *_gtFine_polygons.json
    id: int  # level-4 raw id
    cs_id: int  # the Cityscapes label id it corresponds to (255 = none)
    level3_id: int  # 26 classes (the benchmark), 255 = void
    level2_id: int  # 16 classes
    level1_id: int  # 7 classes


def _idd(name, id_, cs_id, l3, l2, l1):
    return IddLabel(name, id_, cs_id, l3, l2, l1)


IDD_LABELS: tuple[IddLabel, ...] = (
    _idd("road", 0, 7, 0, 0, 0),
    _idd("parking", 1, 9, 1, 1, 0),
    _idd("drivable fallback", 2, 255, 1, 1, 0),
    _idd("sidewalk", 3, 8, 2, 2, 1),
    _idd("rail track", 4, 10, 3, 3, 1),
    _idd("non-drivable fallback", 5, 255, 3, 3, 1),
    _idd("person", 6, 24, 4, 4, 2),
    _idd("animal", 7, 255, 4, 4, 2),
    _idd("rider", 8, 25, 5, 5, 2),
    _idd("motorcycle", 9, 32, 6, 6, 3),
    _idd("bicycle", 10, 33, 7, 6, 3),
    _idd("autorickshaw", 11, 255, 8, 7, 3),
    _idd("car", 12, 26, 9, 7, 3),
    _idd("truck", 13, 27, 10, 8, 3),
    _idd("bus", 14, 28, 11, 8, 3),
    _idd("caravan", 15, 29, 12, 8, 3),
    _idd("trailer", 16, 30, 12, 8, 3),
    _idd("train", 17, 31, 12, 8, 3),
    _idd("vehicle fallback", 18, 255, 12, 8, 3),
    _idd("curb", 19, 255, 13, 9, 4),
    _idd("wall", 20, 12, 14, 9, 4),
    _idd("fence", 21, 13, 15, 10, 4),
    _idd("guard rail", 22, 14, 16, 10, 4),
    _idd("billboard", 23, 255, 17, 11, 4),
    _idd("traffic sign", 24, 20, 18, 11, 4),
    _idd("traffic light", 25, 19, 19, 11, 4),
    _idd("pole", 26, 17, 20, 12, 4),
    _idd("polegroup", 27, 18, 20, 12, 4),
    _idd("obs-str-bar-fallback", 28, 255, 21, 12, 4),
    _idd("building", 29, 11, 22, 13, 5),
    _idd("bridge", 30, 15, 23, 13, 5),
    _idd("tunnel", 31, 16, 23, 13, 5),
    _idd("vegetation", 32, 21, 24, 14, 5),
    _idd("sky", 33, 23, 25, 15, 6),
    _idd("fallback background", 34, 255, 25, 15, 6),
    _idd("unlabeled", 35, 0, 255, 255, 255),
    _idd("ego vehicle", 36, 1, 255, 255, 255),
    _idd("rectification border", 37, 2, 255, 255, 255),
    _idd("out of roi", 38, 3, 255, 255, 255),
    _idd("license plate", 39, 255, 255, 255, 255),
)
# polygon `label` -> level3 id, as the official createLabels tool encodes it (255 = void)
IDD_NAME_TO_LEVEL3: dict[str, int] = {lb.name: lb.level3_id for lb in IDD_LABELS}

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
# the hierarchy: IDD_LEVEL3_TO_LEVEL2[level3 id] = level2 id, IDD_LEVEL2_TO_LEVEL1[level2 id] = level1 id
IDD_LEVEL3_TO_LEVEL2: tuple[int, ...] = tuple(
    next(lb.level2_id for lb in IDD_LABELS if lb.level3_id == i) for i in range(len(IDD_LEVEL3_CLASSES)))
IDD_LEVEL2_TO_LEVEL1: tuple[int, ...] = tuple(
    next(lb.level1_id for lb in IDD_LABELS if lb.level2_id == i) for i in range(len(IDD_LEVEL2_CLASSES)))

# IDD level3 id -> Cityscapes train id; every level3 id not listed -> 255. Terrain (9) and train (16)
# have no faithful level3 source, so a Cityscapes model's terrain/train predictions count as errors.
IDD_LEVEL3_TO_CITYSCAPES: dict[int, int] = {
    0: 0,  # road
    2: 1,  # sidewalk
    22: 2,  # building
    14: 3,  # wall
    15: 4,  # fence
    20: 5,  # pole
    19: 6,  # traffic light
    18: 7,  # traffic sign
    24: 8,  # vegetation
    25: 10,  # sky
    4: 11,  # person
    5: 12,  # rider
    9: 13,  # car
    10: 14,  # truck
    11: 15,  # bus
    6: 17,  # motorcycle
    7: 18,  # bicycle
}

_CS_COLOR = dict(zip(CITYSCAPES_TRAIN_CLASSES, CITYSCAPES_PALETTE))
# Classes with a Cityscapes counterpart keep its colour; the rest keep the official IDD level3
# colours, none of which is a Cityscapes train-class colour.
_IDD_OWN_COLORS: dict[str, Color] = {
    "drivable fallback": (250, 170, 160),
    "non-drivable fallback": (230, 150, 140),
    "autorickshaw": (255, 204, 54),
    "vehicle fallback": (0, 0, 90),
    "curb": (220, 190, 40),
    "guard rail": (180, 165, 180),
    "billboard": (174, 64, 67),
    "obs-str-bar-fallback": (169, 187, 214),
    "bridge": (150, 100, 100),
}
IDD_LEVEL3_PALETTE: tuple[Color, ...] = tuple(
    _CS_COLOR[CITYSCAPES_TRAIN_CLASSES[IDD_LEVEL3_TO_CITYSCAPES[i]]] if i in IDD_LEVEL3_TO_CITYSCAPES
    else _IDD_OWN_COLORS[n] for i, n in enumerate(IDD_LEVEL3_CLASSES))
# official AutoNUE level2/level1 colours
IDD_LEVEL2_PALETTE: tuple[Color, ...] = (
    (128, 64, 128), (250, 170, 160), (244, 35, 232), (230, 150, 140), (220, 20, 60), (255, 0, 0),
    (0, 0, 230), (255, 204, 54), (0, 0, 70), (220, 190, 40), (190, 153, 153), (174, 64, 67),
    (153, 153, 153), (70, 70, 70), (107, 142, 35), (70, 130, 180),
)
IDD_LEVEL1_PALETTE: tuple[Color, ...] = (
    (128, 64, 128), (244, 35, 232), (220, 20, 60), (0, 0, 230), (220, 190, 40), (70, 70, 70),
    (70, 130, 180),
)


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

    def colorize(self, mask: np.ndarray, ignore_color: Color = (0, 0, 0)) -> np.ndarray:
        """(H, W) ids -> (H, W, 3) uint8 RGB; ids outside the space get `ignore_color`."""
        lut = np.zeros((256, 3), np.uint8)
        lut[:] = ignore_color
        lut[: self.num_classes] = np.asarray(self.palette, np.uint8)
        return lut[np.asarray(mask).astype(np.int64).clip(0, 255)]


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


@lru_cache(maxsize=1)
def _mappings() -> dict[tuple[str, str], np.ndarray]:
    l3_l2 = lookup_table(IDD_LEVEL3_TO_LEVEL2)
    l2_l1 = lookup_table(IDD_LEVEL2_TO_LEVEL1)
    l3_cs = lookup_table(IDD_LEVEL3_TO_CITYSCAPES)
    return {
        ("idd_level3", "cityscapes"): l3_cs,
        # the inverse is exact: no two level3 classes share a Cityscapes train id
        ("cityscapes", "idd_level3"): lookup_table({v: k for k, v in IDD_LEVEL3_TO_CITYSCAPES.items()}),
        ("idd_level3", "idd_level2"): l3_l2,
        ("idd_level3", "idd_level1"): l2_l1[l3_l2],
        ("idd_level2", "idd_level1"): l2_l1,
        ("cityscapes_ids", "cityscapes"): lookup_table(CITYSCAPES_ID_TO_TRAIN_ID),
        ("cityscapes_ids", "idd_level3"): lookup_table({v: k for k, v in IDD_LEVEL3_TO_CITYSCAPES.items()})[
            lookup_table(CITYSCAPES_ID_TO_TRAIN_ID)],
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
