"""IDD (Indian Driving Dataset) segmentation files: polygon rasterisation, discovery, mask caching.

Two layouts are read:

* the real one, `<root>/leftImg8bit/<split>/<seq>/<id>_leftImg8bit.png|jpg` with
  `<root>/gtFine/<split>/<seq>/<id>_gtFine_polygons.json`. Masks are rasterised from the polygons
  exactly as the official AutoNUE `createLabels` tool does (`rasterize_polygons`) and cached as
  `<id>_gtFine_labellevel3Ids.png` beside the JSON (under `cache_dir` when the dataset is read-only).
  A level3 mask that already exists there, official or ours, is used as it is. Levels 2 and 1 are
  derived from level3 through the hierarchy in `labels.py`.
* the course's flat, resized variant, `<root>/IDD20K_II/image_archive/image_<n>.jpg` with
  `mask_archive/mask_<n>.jpg` holding level3 ids as JPEG; compression leaves stray values, which
  `clean_jpeg_mask` snaps to the nearest valid id (`snap`) or sets to 255 (`ignore`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cvexp.data.labels import IDD_LEVEL3_CLASSES, IDD_NAME_TO_LEVEL3, IGNORE_INDEX
from cvexp.data.seg_files import SegSample, write_png_atomic
from cvexp.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = ("_leftImg8bit.png", "_leftImg8bit.jpg")
POLYGONS_SUFFIX = "_gtFine_polygons.json"
LEVEL3_MASK_SUFFIX = "_gtFine_labellevel3Ids.png"
JPEG_MASK_POLICIES = ("snap", "ignore")

EXPECTED_LAYOUT = ("<root>/leftImg8bit/<split>/<seq>/<id>_leftImg8bit.png (or .jpg) with "
                   "<root>/gtFine/<split>/<seq>/<id>_gtFine_polygons.json")
EXPECTED_FLAT_LAYOUT = ("<root>/IDD20K_II/image_archive/image_<n>.jpg with "
                        "<root>/IDD20K_II/mask_archive/mask_<n>.jpg")


# ------------------------------------------------------------------------------ rasterisation
def load_annotation(source: Mapping[str, Any] | str | os.PathLike) -> tuple[dict, str]:
    """The polygons JSON as a dict, and a name for it in messages."""
    if isinstance(source, Mapping):
        return dict(source), "<annotation dict>"
    path = Path(source)
    try:
        return json.loads(path.read_text()), str(path)
    except FileNotFoundError:
        raise DataError(f"polygons file {path} does not exist; expected {EXPECTED_LAYOUT}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is not a valid polygons JSON ({type(e).__name__}: {e}); "
                        "re-extract it from the IDD archive or delete the image and JSON") from None


def fill_polygon(draw: ImageDraw.ImageDraw, polygon: Sequence[Sequence[float]], value) -> None:
    """The official tool's fill: PIL `ImageDraw.polygon(points, fill=value)` (no outline)."""
    draw.polygon([(p[0], p[1]) for p in polygon], fill=value)


def _image_size(ann: Mapping, where: str) -> tuple[int, int]:
    try:
        w, h = int(ann["imgWidth"]), int(ann["imgHeight"])
    except KeyError as e:
        raise DataError(f"{where} has no {e.args[0]!r}; an IDD polygons JSON needs imgWidth, imgHeight "
                        "and objects") from None
    except (TypeError, ValueError):
        raise DataError(f"{where}: imgWidth/imgHeight must be integers") from None
    if w <= 0 or h <= 0:
        raise DataError(f"{where}: imgWidth/imgHeight must be positive, got {w}x{h}")
    return w, h


def _check_polygon(polygon: Any, where: str, k: int) -> list[tuple[float, float]]:
    try:
        _ = [(float(p[0]), float(p[1])) for p in polygon]  # every point has numeric x, y
        if any(len(p) != 2 for p in polygon):
            raise ValueError
    except (TypeError, ValueError, IndexError, KeyError):
        raise DataError(f"{where}: objects[{k}].polygon must be a list of [x, y] points") from None
    # keep integer coordinates as integers: the official tool passes the JSON values to PIL as they are
    return [tuple(p) for p in polygon]


def resolve_label(label: str, label_to_id: Mapping[str, int]) -> str | None:
    """The table key for a polygon label: as is, else without a trailing `group` (as official)."""
    if label in label_to_id:
        return label
    if label.endswith("group") and label[: -len("group")] in label_to_id:
        return label[: -len("group")]
    return None


def rasterize_polygons(annotation: Mapping[str, Any] | str | os.PathLike,
                       label_to_id: Mapping[str, int] | None = None, background: int = IGNORE_INDEX,
                       on_unknown: str = "skip") -> np.ndarray:
    """(imgHeight, imgWidth) uint8 ids drawn from an IDD/Cityscapes polygons JSON (dict or path).

    As AutoNUE `createLabels` (json2labelImg): start from `background` (255), fill the polygons in
    file order so later objects overwrite earlier ones, skip objects with `deleted` set and
    polygons with fewer than 3 points, strip a trailing `group` from unknown labels, and let PIL's
    fill clip coordinates outside the image. `label_to_id` defaults to the IDD label -> level3 id
    table (void labels map to 255). Unknown labels are skipped with a warning like the official
    tool (`on_unknown="skip"`) or raise DataError (`"error"`).
    """
    if on_unknown not in ("skip", "error"):
        raise ValueError(f"on_unknown must be 'skip' or 'error', got {on_unknown!r}")
    ann, where = load_annotation(annotation)
    table = IDD_NAME_TO_LEVEL3 if label_to_id is None else label_to_id
    w, h = _image_size(ann, where)
    objects = ann.get("objects")
    if not isinstance(objects, list):
        raise DataError(f"{where}: 'objects' must be a list of {{label, polygon}}")
    img = Image.new("L", (w, h), int(background))
    draw = ImageDraw.Draw(img)
    for k, obj in enumerate(objects):
        if not isinstance(obj, Mapping) or "label" not in obj or "polygon" not in obj:
            raise DataError(f"{where}: objects[{k}] needs 'label' and 'polygon'")
        if obj.get("deleted"):
            continue
        polygon = _check_polygon(obj["polygon"], where, k)
        if len(polygon) < 3:
            continue
        key = resolve_label(str(obj["label"]), table)
        if key is None:
            if on_unknown == "error":
                raise DataError(f"{where}: objects[{k}] has unknown label {obj['label']!r}; "
                                "fix the label or rasterise with on_unknown='skip'")
            log.warning("%s: label %r not known; object skipped", where, obj["label"])
            continue
        value = int(table[key])
        if value < 0:  # official: negative ids are not drawn
            continue
        fill_polygon(draw, polygon, value)
    return np.asarray(img, dtype=np.uint8).copy()


# ------------------------------------------------------------------------------ real layout
def _has_layout(d: Path) -> bool:
    return (d / "leftImg8bit").is_dir() and (d / "gtFine").is_dir()


def find_idd_root(root: str | os.PathLike) -> Path:
    """The folder holding `leftImg8bit/` and `gtFine/`: `root` or one level below it."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist; expected {EXPECTED_LAYOUT}. "
                        "Set data.root=PATH or paths.data_dir=PATH")
    if _has_layout(root):
        return root
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and _has_layout(sub):
            return sub
    raise DataError(f"no leftImg8bit/ and gtFine/ folders under {root}; expected {EXPECTED_LAYOUT} "
                    f"(for the flat course variant use data.dataset=idd_flat: {EXPECTED_FLAT_LAYOUT})")


def image_id(path: Path) -> str:
    """`000123` from `000123_leftImg8bit.png`."""
    for suf in IMAGE_SUFFIXES:
        if path.name.endswith(suf):
            return path.name[: -len(suf)]
    raise ValueError(path)


def mask_cache_path(cache_dir: str | os.PathLike, idd_root: Path, polygons: Path) -> Path:
    """Where a mask goes when the dataset is read-only: a folder per dataset root, same sub-layout."""
    key = hashlib.sha1(str(idd_root.resolve()).encode()).hexdigest()[:12]
    rel = polygons.relative_to(idd_root)
    return Path(cache_dir) / f"idd_{key}" / rel.parent / (polygons.name[: -len(POLYGONS_SUFFIX)] + LEVEL3_MASK_SUFFIX)


def find_idd_samples(root: str | os.PathLike, split_dir: str,
                     cache_dir: str | os.PathLike | None = None) -> list[SegSample]:
    """Image/label pairs of one split folder, sorted. A sample's `mask` is an existing level3 mask
    (beside the JSON, else in `cache_dir`) or None when it still has to be made from `polygons`.
    Images without a JSON or mask are skipped with a warning."""
    idd_root = find_idd_root(root)
    img_dir = idd_root / "leftImg8bit" / split_dir
    if not img_dir.is_dir():
        found = sorted(d.name for d in (idd_root / "leftImg8bit").iterdir() if d.is_dir())
        raise DataError(f"no split folder {img_dir}; found {', '.join(found) or 'none'}. Expected "
                        f"{EXPECTED_LAYOUT}; set data.split_dirs to the folder names")
    images = sorted(p for p in img_dir.rglob("*") if p.is_file() and p.name.endswith(IMAGE_SUFFIXES))
    samples, unlabelled = [], []
    for img in images:
        rel_dir = img.parent.relative_to(img_dir)
        ident = image_id(img)
        gt_dir = idd_root / "gtFine" / split_dir / rel_dir
        polygons = gt_dir / f"{ident}{POLYGONS_SUFFIX}"
        mask = gt_dir / f"{ident}{LEVEL3_MASK_SUFFIX}"
        if not mask.is_file():
            cached = mask_cache_path(cache_dir, idd_root, polygons) if cache_dir else None
            mask = cached if cached is not None and cached.is_file() else None
        if mask is None and not polygons.is_file():
            unlabelled.append(img)
            continue
        sid = "/".join((split_dir, *rel_dir.parts, ident))
        samples.append(SegSample(sid, img, mask, "idd_level3", polygons if polygons.is_file() else None))
    if unlabelled:
        log.warning("%d image(s) in %s have no %s; skipped (first: %s)", len(unlabelled), img_dir,
                    POLYGONS_SUFFIX, unlabelled[0])
    if not samples:
        raise DataError(f"no image/label pairs in {img_dir} ({len(images)} image(s), none with a "
                        f"polygons JSON or level3 mask); expected {EXPECTED_LAYOUT}")
    return samples


def make_level3_mask(sample: SegSample, idd_root: Path, cache_dir: str | os.PathLike | None = None) -> SegSample:
    """Rasterise `sample.polygons` once and write `<id>_gtFine_labellevel3Ids.png` beside it
    (atomically), or under `cache_dir` if the dataset folder is read-only."""
    if sample.mask is not None:
        return sample
    assert sample.polygons is not None
    mask = rasterize_polygons(sample.polygons)
    beside = sample.polygons.with_name(sample.polygons.name[: -len(POLYGONS_SUFFIX)] + LEVEL3_MASK_SUFFIX)
    if os.access(beside.parent, os.W_OK):
        try:
            return sample.with_mask(write_png_atomic(beside, mask))
        except OSError:
            pass
    if cache_dir is None:
        raise DataError(f"cannot write {beside} (read-only dataset) and no cache folder is set; "
                        "set data.mask_cache_dir=PATH")
    target = mask_cache_path(cache_dir, idd_root, sample.polygons)
    try:
        return sample.with_mask(write_png_atomic(target, mask))
    except OSError as e:
        raise DataError(f"cannot write mask {target} ({e}); set data.mask_cache_dir to a writable folder") from None


def _make_one(args) -> SegSample:
    return make_level3_mask(*args)


def ensure_masks(samples: Sequence[SegSample], root: str | os.PathLike,
                 cache_dir: str | os.PathLike | None = None, workers: int = 0) -> list[SegSample]:
    """Every sample with its level3 mask on disk; the missing ones are made (in `workers` processes
    when there are many)."""
    idd_root = find_idd_root(root)
    todo = [i for i, s in enumerate(samples) if s.mask is None]
    out = list(samples)
    if not todo:
        return out
    log.info("rasterising %d IDD mask(s) from polygons (once; cached as *%s)", len(todo), LEVEL3_MASK_SUFFIX)
    jobs = [(samples[i], idd_root, cache_dir) for i in todo]
    if workers > 1 and len(todo) >= 64:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            made = list(pool.map(_make_one, jobs, chunksize=16))
    else:
        made = [_make_one(j) for j in jobs]
    for i, s in zip(todo, made):
        out[i] = s
    return out


# ------------------------------------------------------------------------------ flat variant
_FLAT_IMAGE = re.compile(r"^image_(\d+)\.(jpe?g|png)$", re.IGNORECASE)
_FLAT_MASK = re.compile(r"^mask_(\d+)\.(jpe?g|png)$", re.IGNORECASE)


def find_idd_flat_root(root: str | os.PathLike) -> Path:
    """The folder holding `image_archive/` and `mask_archive/`: root, root/IDD20K_II, or one below."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist; expected {EXPECTED_FLAT_LAYOUT}. "
                        "Set data.root=PATH or paths.data_dir=PATH")
    cands = [root, root / "IDD20K_II"] + [d for d in sorted(root.iterdir()) if d.is_dir()]
    for d in cands:
        if (d / "image_archive").is_dir() and (d / "mask_archive").is_dir():
            return d
    raise DataError(f"no image_archive/ and mask_archive/ folders under {root}; expected "
                    f"{EXPECTED_FLAT_LAYOUT} (for the real layout use data.dataset=idd)")


def find_idd_flat_samples(root: str | os.PathLike) -> list[SegSample]:
    """`image_<n>` / `mask_<n>` pairs, sorted by n; unmatched files are skipped with a warning."""
    flat = find_idd_flat_root(root)

    def index(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
        return {int(m.group(1)): p for p in folder.iterdir() if p.is_file() and (m := pattern.match(p.name))}

    images, masks = index(flat / "image_archive", _FLAT_IMAGE), index(flat / "mask_archive", _FLAT_MASK)
    common = sorted(images.keys() & masks.keys())
    lonely = len(images) + len(masks) - 2 * len(common)
    if lonely:
        log.warning("%d file(s) in %s without a partner image/mask; skipped", lonely, flat)
    if not common:
        raise DataError(f"no image_<n>/mask_<n> pairs in {flat} ({len(images)} image(s), {len(masks)} "
                        f"mask(s)); expected {EXPECTED_FLAT_LAYOUT}")
    return [SegSample(f"image_{n}", images[n], masks[n], "idd_level3",
                      jpeg_mask=masks[n].suffix.lower() in (".jpg", ".jpeg")) for n in common]


def jpeg_mask_table(policy: str = "snap", valid_ids: Iterable[int] | None = None) -> np.ndarray:
    """(256,) uint8 table cleaning JPEG-stored ids in one indexing op: valid ids stay; any other value
    goes to the nearest valid id (`snap`, ties to the smaller) or to 255 (`ignore`)."""
    if policy not in JPEG_MASK_POLICIES:
        raise ConfigError(f"data.jpeg_mask_policy={policy!r}; use one of {', '.join(JPEG_MASK_POLICIES)}")
    valid = np.array(sorted(set(valid_ids if valid_ids is not None
                                else [*range(len(IDD_LEVEL3_CLASSES)), IGNORE_INDEX])), np.int64)
    values = np.arange(256)
    if policy == "ignore":
        return np.where(np.isin(values, valid), values, IGNORE_INDEX).astype(np.uint8)
    nearest = np.abs(values[:, None] - valid[None, :]).argmin(axis=1)  # argmin: first = smaller on ties
    return valid[nearest].astype(np.uint8)


def clean_jpeg_mask(mask: np.ndarray, policy: str = "snap", valid_ids: Iterable[int] | None = None) -> np.ndarray:
    """Stray values of a JPEG mask snapped or ignored (see `jpeg_mask_table`). Values that JPEG moved
    onto another valid id cannot be told apart and stay as they are."""
    return jpeg_mask_table(policy, valid_ids)[mask]
