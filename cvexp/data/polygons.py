"""Polygon annotations (`*_gtFine_polygons.json` of IDD and Cityscapes) -> label masks, and the
cache of the masks made.

`rasterize_polygons` draws like the official tools (AutoNUE `createLabels`, cityscapesScripts
`json2labelImg`): a `background` image, the polygons filled with PIL in file order (later objects
overwrite earlier ones), `deleted` objects skipped, an unknown label ending in `group` read as its
base label. A `MaskEncoding` says which table and background a dataset's masks use and the file
name they are cached under; `ensure_masks` makes the missing ones once, beside the JSON or, when
the dataset folder is read-only, under a cache folder (`mask_cache_path`), with a progress bar when
there are many.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cvexp.data.labels import IDD_NAME_TO_LEVEL3, IGNORE_INDEX
from cvexp.data.seg_files import SegSample, write_png_atomic
from cvexp.errors import DataError
from cvexp.io.progress import PROGRESS_MIN, progress  # noqa: F401  (a bar when more masks than PROGRESS_MIN are made)

log = logging.getLogger(__name__)

POLYGONS_SUFFIX = "_gtFine_polygons.json"
PARALLEL_MIN = 64  # worker processes only pay off for this many masks


# ------------------------------------------------------------------------------ reading
def load_annotation(source: Mapping[str, Any] | str | os.PathLike) -> tuple[dict, str]:
    """The polygons JSON as a dict, and a name for it in messages."""
    if isinstance(source, Mapping):
        return dict(source), "<annotation dict>"
    path = Path(source)
    try:
        return json.loads(path.read_text()), str(path)
    except FileNotFoundError:
        raise DataError(f"polygons file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is not a valid polygons JSON ({type(e).__name__}: {e}); "
                        "re-extract it from the dataset archive or delete the image and JSON") from None


def _image_size(ann: Mapping, where: str) -> tuple[int, int]:
    try:
        w, h = int(ann["imgWidth"]), int(ann["imgHeight"])
    except KeyError as e:
        raise DataError(f"{where} has no {e.args[0]!r}; a polygons JSON needs imgWidth, imgHeight "
                        "and objects") from None
    except (TypeError, ValueError):
        raise DataError(f"{where}: imgWidth/imgHeight must be integers") from None
    if w <= 0 or h <= 0:
        raise DataError(f"{where}: imgWidth/imgHeight must be positive, got {w}x{h}")
    return w, h


def _polygon_error(where: str, k: int) -> DataError:
    return DataError(f"{where}: objects[{k}].polygon must be a list of [x, y] points")


def _check_polygon(polygon: Any, where: str, k: int) -> list[tuple]:
    """The points of a polygon PIL is not handed as is (not a list/tuple, or not drawn): every
    point must be numeric [x, y]."""
    try:
        points = [tuple(p) for p in polygon]
        for x, y in points:  # exactly two numeric coordinates per point
            float(x), float(y)
    except (TypeError, ValueError, IndexError, KeyError):
        raise _polygon_error(where, k) from None
    # keep integer coordinates as integers: the official tools pass the JSON values to PIL as they are
    return points


# ------------------------------------------------------------------------------ drawing
def fill_polygon(draw: ImageDraw.ImageDraw, polygon: Sequence[Sequence[float]], value) -> None:
    """The official tools' fill: PIL `ImageDraw.polygon(points, fill=value)` (no outline). A list
    or tuple of [x, y] lists/tuples goes to PIL as it is (PIL reads the coordinates as doubles, as
    from tuples; nothing is copied); anything else is made a list of (x, y) first."""
    if not isinstance(polygon, (list, tuple)):
        polygon = [(p[0], p[1]) for p in polygon]
    draw.polygon(polygon, fill=value)


def _shared_canvas(w: int, h: int, background: int) -> tuple[np.ndarray, Image.Image]:
    """A (h, w) uint8 array and an "L" image drawing into the same memory, so the mask needs no
    copy out of PIL (`np.asarray(img)` copies it three times). Falls back to a plain image (and one
    copy at the end) where this Pillow does not share the buffer."""
    arr = np.full((h, w), background, np.uint8)
    if _SHARES_BUFFER[0]:
        img = Image.frombuffer("L", (w, h), arr, "raw", "L", 0, 1)
        img.readonly = 0  # draw into `arr` (frombuffer marks it read-only; drawing would copy)
        return arr, img
    return arr, Image.new("L", (w, h), background)


def _probe_shared_buffer() -> bool:
    try:
        arr = np.zeros((3, 4), np.uint8)
        img = Image.frombuffer("L", (4, 3), arr, "raw", "L", 0, 1)
        img.readonly = 0
        ImageDraw.Draw(img).point((1, 2), fill=7)
        return int(arr[2, 1]) == 7 and int(arr.sum()) == 7
    except Exception:  # noqa: BLE001 - any failure: use the copying path
        return False


_UNSEEN = object()
_SHARES_BUFFER = [True]
_SHARES_BUFFER[0] = _probe_shared_buffer()


def resolve_label(label: str, label_to_id: Mapping[str, int]) -> str | None:
    """The table key for a polygon label: as is, else without a trailing `group` (as official)."""
    if label in label_to_id:
        return label
    if label.endswith("group") and label[: -len("group")] in label_to_id:
        return label[: -len("group")]
    return None


def rasterize_polygons(annotation: Mapping[str, Any] | str | os.PathLike,
                       label_to_id: Mapping[str, int] | None = None, background: int = IGNORE_INDEX,
                       on_unknown: str = "skip", min_points: int = 3) -> np.ndarray:
    """(imgHeight, imgWidth) uint8 ids drawn from a polygons JSON (dict or path).

    Start from `background`, fill the polygons in file order so later objects overwrite earlier
    ones, skip objects with `deleted` set and polygons with fewer than `min_points` points (3 for
    IDD as AutoNUE; json2labelImg draws 2-point polygons as PIL does, a line), read an unknown
    label ending in `group` as its base label, let PIL's fill clip coordinates outside the image, and
    draw nothing for labels whose id is negative (Cityscapes' license plate). `label_to_id`
    defaults to the IDD label -> level3 id table. Unknown labels are skipped with a warning like
    AutoNUE's tool (`on_unknown="skip"`) or raise DataError naming file and label (`"error"`, as
    json2labelImg).
    """
    if on_unknown not in ("skip", "error"):
        raise ValueError(f"on_unknown must be 'skip' or 'error', got {on_unknown!r}")
    ann, where = load_annotation(annotation)
    if label_to_id is None:
        label_to_id = IDD_NAME_TO_LEVEL3
    w, h = _image_size(ann, where)
    objects = ann.get("objects")
    if not isinstance(objects, list):
        raise DataError(f"{where}: 'objects' must be a list of {{label, polygon}}")
    arr, img = _shared_canvas(w, h, int(background))
    draw = ImageDraw.Draw(img)
    min_points = max(int(min_points), 2)  # PIL cannot draw fewer than 2 points
    values: dict[str, int | None] = {}  # label -> value drawn (None: unknown), resolved once per label
    for k, obj in enumerate(objects):
        if not isinstance(obj, Mapping) or "label" not in obj or "polygon" not in obj:
            raise DataError(f"{where}: objects[{k}] needs 'label' and 'polygon'")
        if obj.get("deleted"):
            continue
        polygon = obj["polygon"]
        try:
            # PIL reads and checks the [x, y] lists itself when drawing; only bare numbers, which
            # it would read as a flat x, y, x, y list, are to be refused here (a C-speed pass)
            simple = isinstance(polygon, (list, tuple)) and min(map(len, polygon), default=2) == 2
        except TypeError:
            simple = False
        if not simple:
            polygon = _check_polygon(polygon, where, k)  # raises, or makes it a list of (x, y)
        label = obj["label"]
        value = values.get(label, _UNSEEN) if type(label) is str else _UNSEEN
        if value is _UNSEEN:
            key = resolve_label(str(label), label_to_id)
            value = None if key is None else int(label_to_id[key])
            if type(label) is str:
                values[label] = value
        drawn = len(polygon) >= min_points and value is not None and value >= 0
        if simple and not drawn:
            _check_polygon(polygon, where, k)  # not drawn, still checked (as PIL would)
        if len(polygon) < min_points:
            continue
        if value is None:
            if on_unknown == "error":
                raise DataError(f"{where}: objects[{k}] has unknown label {obj['label']!r}; it is not in "
                                "the dataset's label table (fix the label in the JSON)")
            log.warning("%s: label %r not known; object skipped", where, obj["label"])
            continue
        if value < 0:  # official: negative ids are not drawn
            continue
        try:
            draw.polygon(polygon, fill=value)
        except (TypeError, ValueError):  # a point that is not two numbers
            raise _polygon_error(where, k) from None
    if _SHARES_BUFFER[0]:
        del draw, img  # `arr` holds the mask
        return arr
    return np.array(img, dtype=np.uint8)


# ------------------------------------------------------------------------------ encodings + cache
@dataclass(frozen=True)
class MaskEncoding:
    """How one kind of mask is drawn from the polygons and where it is kept.

    `space` is the label space of the drawn values (a `SegSample.mask_space`); `suffix` replaces
    `_gtFine_polygons.json` in the file name (the official tools' names); `cache_prefix` names the
    dataset's folder under a cache dir.
    """

    name: str
    label_to_id: Mapping[str, int]
    background: int
    suffix: str
    space: str
    cache_prefix: str
    min_points: int = 3
    on_unknown: str = "skip"

    def rasterize(self, annotation: Mapping[str, Any] | str | os.PathLike) -> np.ndarray:
        return rasterize_polygons(annotation, self.label_to_id, self.background, self.on_unknown, self.min_points)

    def beside(self, polygons: Path) -> Path:
        """The mask's path beside its JSON."""
        return polygons.with_name(polygons.name[: -len(POLYGONS_SUFFIX)] + self.suffix)


def mask_cache_path(cache_dir: str | os.PathLike, dataset_root: Path, polygons: Path,
                    encoding: MaskEncoding) -> Path:
    """Where a mask goes when the dataset is read-only: a folder per dataset root, same sub-layout."""
    key = hashlib.sha1(str(dataset_root.resolve()).encode()).hexdigest()[:12]
    rel = polygons.relative_to(dataset_root)
    return Path(cache_dir) / f"{encoding.cache_prefix}_{key}" / encoding.beside(rel)


def find_mask(polygons: Path, dataset_root: Path, encoding: MaskEncoding,
              cache_dir: str | os.PathLike | None = None) -> Path | None:
    """An existing mask of `encoding` for `polygons`: beside it (official or ours), else cached."""
    beside = encoding.beside(polygons)
    if beside.is_file():
        return beside
    if cache_dir is not None:
        cached = mask_cache_path(cache_dir, dataset_root, polygons, encoding)
        if cached.is_file():
            return cached
    return None


def make_mask(sample: SegSample, dataset_root: Path, encoding: MaskEncoding,
              cache_dir: str | os.PathLike | None = None) -> SegSample:
    """Rasterise `sample.polygons` once and write the mask beside it (atomically), or under
    `cache_dir` if the dataset folder is read-only; the sample with its mask."""
    if sample.mask is not None:
        return sample
    assert sample.polygons is not None
    mask = encoding.rasterize(sample.polygons)
    beside = encoding.beside(sample.polygons)
    if os.access(beside.parent, os.W_OK):
        try:
            return sample.with_mask(write_png_atomic(beside, mask))
        except OSError:
            pass
    if cache_dir is None:
        raise DataError(f"cannot write {beside} (read-only dataset) and no cache folder is set; "
                        "set data.mask_cache_dir=PATH")
    target = mask_cache_path(cache_dir, dataset_root, sample.polygons, encoding)
    try:
        return sample.with_mask(write_png_atomic(target, mask))
    except OSError as e:
        raise DataError(f"cannot write mask {target} ({e}); set data.mask_cache_dir to a writable folder") from None


def _make_one(args) -> SegSample:
    return make_mask(*args)


def ensure_masks(samples: Sequence[SegSample], dataset_root: Path, encoding: MaskEncoding,
                 cache_dir: str | os.PathLike | None = None, workers: int = 0,
                 what: str = "mask") -> list[SegSample]:
    """Every sample with its mask on disk; the missing ones are made from their polygons (in
    `workers` processes when there are many), with one log line and a progress bar."""
    todo = [i for i, s in enumerate(samples) if s.mask is None]
    out = list(samples)
    if not todo:
        return out
    log.info("rasterising %d %s(s) from polygons (once; cached as *%s)", len(todo), what, encoding.suffix)
    jobs = [(samples[i], dataset_root, encoding, cache_dir) for i in todo]
    desc = f"{what}s ({encoding.name})"
    if workers > 1 and len(todo) >= PARALLEL_MIN:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            made = list(progress(pool.map(_make_one, jobs, chunksize=16), len(jobs), desc))
    else:
        made = list(progress(map(_make_one, jobs), len(jobs), desc))
    for i, s in zip(todo, made):
        out[i] = s
    return out
