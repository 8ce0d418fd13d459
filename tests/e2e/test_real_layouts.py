"""The three real dataset layouts at their real size, end to end through the command line (issue #10,
part 5).

The module writes small copies of

* IDD_Segmentation: `leftImg8bit/{train,val,test}/<seq>/frame<n>_leftImg8bit.png` (1920x1080) with
  `gtFine/{train,val}/<seq>/frame<n>_gtFine_polygons.json`; `test` has no gtFine, as released;
* Cityscapes: `leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png` (2048x1024) with
  `_gtFine_labelIds.png`, `_gtFine_color.png`, `_gtFine_instanceIds.png` (16 bit) and
  `_gtFine_polygons.json`; and the variant with the polygons JSON alone;
* the course's flat variant: `IDD20K_II/image_archive/image_<n>.jpg` with `mask_archive/mask_<n>.jpg`
  (level3 ids stored as JPEG; 1280x720, the resized images the course handed out),

from the demo street-scene renderer (`cvexp.data.demo_streets`, painted small and scaled up, the
polygons scaled with it). Label files are drawn here by a plain PIL rasteriser over the official
tables, independent of `cvexp.data.polygons`. Then, as a user would, through `python -m`:

(a) the zero-shot experiment (a DeepLabV3Plus-Pytorch mobilenet file scored on IDD in csTrainIds),
(b) a DeepLabV3+ fine-tune `debug=fast` on the Cityscapes copy and on its polygons-only variant,
(c) `cvexp.cross_eval` of the fine-tuned checkpoint on IDD, the flat variant and Cityscapes, each
    from its own root,
(d) `cvexp.predict` on IDD's unlabelled test images.

The runs are made once (module fixtures, independent ones side by side, one torch thread each) and
each test checks one of them. The module needs about 100 s of CPU time (four interpreters importing
torch and Lightning are a third of it): about a minute of wall time on two idle cores.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli
from PIL import Image, ImageDraw

from cvexp.data.demo_streets import render_scene, scene_json
from cvexp.data.idd import jpeg_mask_table
from cvexp.data.labels import CITYSCAPES_ID_TO_TRAIN_ID, CITYSCAPES_LABELS, IDD_LABELS, IGNORE_INDEX, get_mapping
from cvexp.data.seg_files import read_label_image

IDD_SIZE, CS_SIZE, FLAT_SIZE = (1920, 1080), (2048, 1024), (1280, 720)  # (width, height)
# scenes are painted at 1/SCALE and scaled up: the renderer's per-pixel painting is the slow part
SCALE = {"idd": 10, "cityscapes": 8, "flat": 10}
IDD_SPLITS = {"train": 2, "val": 2, "test": 2}
CS_SPLITS = {"train": ("aachen", "bremen"), "val": ("frankfurt", "lindau")}
N_FLAT = 10
QUIET = ["logger=none", "callbacks.progress_bar=null", "callbacks.model_summary=null"]
TIMEOUT = 300

IDD_CS_TRAIN = {lb.name: lb.cs_train_id for lb in IDD_LABELS}
IDD_LEVEL3 = {lb.name: lb.level3_id for lb in IDD_LABELS}
CS_IDS = {lb.name: lb.id for lb in CITYSCAPES_LABELS}
CS_INSTANCES = {lb.name for lb in CITYSCAPES_LABELS if lb.has_instances}
CS_TRAIN_LUT = np.full(256, IGNORE_INDEX, np.uint8)
for _id, _train in CITYSCAPES_ID_TO_TRAIN_ID.items():
    CS_TRAIN_LUT[_id] = _train
CS_COLORS = np.zeros((256, 3), np.uint8)
for _lb in CITYSCAPES_LABELS:
    if _lb.id >= 0:
        CS_COLORS[_lb.id] = _lb.color
# the label ids a Cityscapes-space prediction is written in (the 19 evaluated classes)
CS_EVAL_IDS = {lb.id for lb in CITYSCAPES_LABELS if 0 <= lb.train_id < IGNORE_INDEX}


# ------------------------------------------------------------------------------ writing the copies
def scene(layout: str, seed: int, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
    """An RGB street scene at `size` and its polygons JSON (in the layout's label names)."""
    w, h = size
    s = SCALE["flat" if layout == "flat" else layout]
    img, objs = render_scene(np.random.default_rng([7, seed]), "cityscapes" if layout == "cityscapes" else "idd",
                             w // s, h // s)
    ann = scene_json(objs, w // s, h // s)
    ann["imgWidth"], ann["imgHeight"] = w, h
    for o in ann["objects"]:
        o["polygon"] = [[int(x * s), int(y * s)] for x, y in o["polygon"]]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR), ann


def draw_values(ann: dict, values: list[int], background: int, min_points: int, mode: str = "L") -> np.ndarray:
    """A label image as the official tools draw one: object k filled with `values[k]` in file order,
    deleted objects, polygons under `min_points` points and negative values skipped. Plain PIL,
    written for this test (not cvexp's rasteriser)."""
    img = Image.new(mode, (ann["imgWidth"], ann["imgHeight"]), background)
    pen = ImageDraw.Draw(img)
    for obj, value in zip(ann["objects"], values):
        if obj.get("deleted") or len(obj["polygon"]) < min_points or value < 0:
            continue
        pen.polygon([tuple(p) for p in obj["polygon"]], fill=value)
    return np.asarray(img).copy()


def draw(ann: dict, table: dict[str, int], background: int, min_points: int) -> np.ndarray:
    """uint8 ids of one encoding (label name -> id)."""
    return draw_values(ann, [table[o["label"]] for o in ann["objects"]], background, min_points)


def cityscapes_instance_ids(ann: dict) -> np.ndarray:
    """*_gtFine_instanceIds.png (uint16): the label id, or id * 1000 + k for the k-th object of a
    class with instances."""
    values, seen = [], {}
    for obj in ann["objects"]:
        name = obj["label"]
        if name in CS_INSTANCES:
            seen[name] = seen.get(name, -1) + 1
            values.append(CS_IDS[name] * 1000 + seen[name])
        else:
            values.append(CS_IDS[name])
    return draw_values(ann, values, CS_IDS["unlabeled"], 2, mode="I").astype(np.uint16)


def png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array, [cv2.IMWRITE_PNG_COMPRESSION, 1])


def write_idd(root: Path) -> dict:
    """IDD_Segmentation at 1920x1080; returns {val id: csTrainId mask} for the checks."""
    truth = {}
    for si, (split, n) in enumerate(IDD_SPLITS.items()):
        for i in range(n):
            seq, frame = str(201 + i % 2), f"frame{50 * si + 7 * i + 11:04d}"
            img, ann = scene("idd", 100 * si + i, IDD_SIZE)
            png(root / "leftImg8bit" / split / seq / f"{frame}_leftImg8bit.png", img[..., ::-1])
            if split == "test":
                continue  # test labels are not public
            gt = root / "gtFine" / split / seq / f"{frame}_gtFine_polygons.json"
            gt.parent.mkdir(parents=True, exist_ok=True)
            gt.write_text(json.dumps(ann))
            if split == "val":
                truth[f"val/{seq}/{frame}"] = draw(ann, IDD_CS_TRAIN, IGNORE_INDEX, 3)
    return truth


def write_cityscapes(root: Path, polygons_only: Path) -> dict:
    """Cityscapes at 2048x1024 (all four gtFine files) and the polygons-only copy; returns
    {sample id: labelIds} of both splits."""
    label_ids = {}
    for si, (split, cities) in enumerate(CS_SPLITS.items()):
        for i, city in enumerate(cities):
            stem = f"{city}_{i:06d}_{19 + i:06d}"
            img, ann = scene("cityscapes", 1000 + 100 * si + i, CS_SIZE)
            rel_img = Path("leftImg8bit") / split / city / f"{stem}_leftImg8bit.png"
            gt = Path("gtFine") / split / city
            png(root / rel_img, img[..., ::-1])
            ids = draw(ann, CS_IDS, CS_IDS["unlabeled"], 2)
            png(root / gt / f"{stem}_gtFine_labelIds.png", ids)
            png(root / gt / f"{stem}_gtFine_color.png", CS_COLORS[ids][..., ::-1])
            png(root / gt / f"{stem}_gtFine_instanceIds.png", cityscapes_instance_ids(ann))
            (root / gt / f"{stem}_gtFine_polygons.json").write_text(json.dumps(ann))
            for name in (rel_img, gt / f"{stem}_gtFine_polygons.json"):
                (polygons_only / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / name, polygons_only / name)
            label_ids[f"{split}/{city}/{stem}"] = ids
    return label_ids


def write_flat(root: Path) -> None:
    flat = root / "IDD20K_II"
    for n in range(N_FLAT):
        img, ann = scene("flat", 5000 + n, FLAT_SIZE)
        for sub, name, array in (("image_archive", f"image_{n}.jpg", img[..., ::-1]),
                                 ("mask_archive", f"mask_{n}.jpg", draw(ann, IDD_LEVEL3, IGNORE_INDEX, 3))):
            (flat / sub).mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(flat / sub / name), array, [cv2.IMWRITE_JPEG_QUALITY, 90])


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """The copies, written once for the module."""
    base = tmp_path_factory.mktemp("real_layouts")
    t0 = time.time()
    vainf = base / "best_deeplabv3plus_mobilenet_cityscapes_os16.pth"
    from foreign_files import save_vainf_checkpoint

    from cvexp.models.deeplab_vainf import VainfDeepLabV3Plus

    save_vainf_checkpoint(VainfDeepLabV3Plus("mobilenet", num_classes=19), vainf)
    d = {"base": base, "idd": base / "IDD_Segmentation", "cityscapes": base / "cityscapes",
         "cs_polygons": base / "cityscapes_polygons_only", "flat": base / "idd_flat", "vainf": vainf}
    d["idd_truth"] = write_idd(d["idd"])
    d["cs_label_ids"] = write_cityscapes(d["cityscapes"], d["cs_polygons"])
    write_flat(d["flat"])
    d["write_s"] = time.time() - t0
    return d


# ------------------------------------------------------------------------------ the runs
def _cli(args: list[str]) -> dict:
    """One command; one torch thread (tiny convolutions: as fast, and immune to a busy machine,
    where a second thread waiting for a taken core costs ten times the work)."""
    t0 = time.time()
    r = run_cli(args, env={"OMP_NUM_THREADS": "1"}, timeout=TIMEOUT)
    return {"args": args, "rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr, "wall_s": time.time() - t0}


def _side_by_side(commands: dict[str, list[str]]) -> dict[str, dict]:
    with ThreadPoolExecutor(len(commands)) as pool:
        return dict(zip(commands, pool.map(_cli, commands.values())))


def _ok(run: dict) -> None:
    assert run["rc"] == 0, f"{' '.join(run['args'][:3])} exited {run['rc']}:\n{run['stderr'][-4000:]}"


@pytest.fixture(scope="module")
def runs(layouts):
    """Every command, once. First, side by side: the zero-shot run, the two fine-tunes (one
    multirun: Cityscapes with all gtFine files, then with polygons only) and predict; then
    cross_eval of the fine-tuned checkpoint. `<name>["dir"]` is each run's directory."""
    out = layouts["base"] / "runs"
    first = {
        "zero_shot": ["-m", "cvexp", "experiment=idd_zero_shot_cityscapes", "debug=fast", "model.backbone=mobilenet",
                      f"model.weights={layouts['vainf']}", f"paths.data_dir={layouts['idd']}",
                      f"hydra.run.dir={out / 'zero_shot'}", *QUIET],
        "finetune": ["-m", "cvexp", "--multirun", "experiment=idd_deeplabv3plus", "data=cityscapes", "debug=fast",
                     "model.encoder_weights=null", f"paths.data_dir={layouts['cityscapes']},{layouts['cs_polygons']}",
                     f"hydra.sweep.dir={out / 'finetune'}", *QUIET],
        "predict": ["-m", "cvexp.predict", f"ckpt_path={layouts['vainf']}",
                    f"input={layouts['idd'] / 'leftImg8bit' / 'test'}", "eval.size=256",
                    f"hydra.run.dir={out / 'predict'}"],
    }
    done = _side_by_side(first)
    ckpt = out / "finetune" / "0" / "checkpoints" / "best.ckpt"
    if ckpt.is_file():
        done["cross_eval"] = _cli(
            ["-m", "cvexp.cross_eval", f"ckpts=[{ckpt}]", "datasets=[idd,idd_flat,cityscapes]", "space=cityscapes",
             f"roots={{idd: {layouts['idd']}, idd_flat: {layouts['flat']}, cityscapes: {layouts['cityscapes']}}}",
             f"hydra.run.dir={out / 'cross_eval'}"])
    for name, run in done.items():
        run["dir"] = out / name
    print("wall time of each command (s):", {n: round(r["wall_s"], 1) for n, r in done.items()})
    done["finetune_dirs"] = {"labelIds": out / "finetune" / "0", "polygons": out / "finetune" / "1"}
    return done


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def scored_pixels(run_dir: Path) -> int:
    """Pixels in the test confusion matrix (every pixel with a valid truth class)."""
    return int(np.loadtxt(run_dir / "confusion_matrix.csv", delimiter=",", skiprows=1, ndmin=2).sum())


def check_metrics(run_dir: Path, headline: str = "test/miou") -> dict:
    metrics = _json(run_dir / "metrics.json")
    assert headline in metrics and math.isfinite(metrics[headline]) and 0 <= metrics[headline] <= 1, metrics
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)), metrics
    return metrics


# ------------------------------------------------------------------------------ the checks
@pytest.mark.slow
def test_the_copies_have_the_real_layouts_and_sizes(layouts):
    idd, cs, flat = layouts["idd"], layouts["cityscapes"], layouts["flat"] / "IDD20K_II"
    for split, n in IDD_SPLITS.items():
        images = sorted((idd / "leftImg8bit" / split).glob("*/frame*_leftImg8bit.png"))
        assert len(images) == n and Image.open(images[0]).size == IDD_SIZE
    assert sorted(p.name for p in (idd / "gtFine").iterdir()) == ["train", "val"]  # no test labels
    assert len(list((idd / "gtFine").rglob("*_gtFine_polygons.json"))) == IDD_SPLITS["train"] + IDD_SPLITS["val"]
    for kind in ("labelIds", "color", "instanceIds"):
        files = sorted(cs.glob(f"gtFine/*/*/*_gtFine_{kind}.png"))
        assert len(files) == 4 and Image.open(files[0]).size == CS_SIZE
    inst = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    assert inst.dtype == np.uint16 and (inst >= 1000).any()  # instances as id * 1000 + k
    assert not list(layouts["cs_polygons"].glob("gtFine/*/*/*.png"))
    assert len(list(layouts["cs_polygons"].glob("gtFine/*/*/*_gtFine_polygons.json"))) == 4
    assert len(list((flat / "image_archive").glob("image_*.jpg"))) == N_FLAT
    assert Image.open(flat / "mask_archive" / "mask_0.jpg").size == FLAT_SIZE
    assert layouts["write_s"] < 20, f"writing the copies took {layouts['write_s']:.0f} s"


@pytest.mark.slow
def test_zero_shot_scores_idd_in_cstrainids_at_full_size(layouts, runs):
    run = runs["zero_shot"]
    _ok(run)
    d = run["dir"]
    record = _json(d / "evaluation.json")
    assert record["mode"] == "full" and record["labels"] == "original size" and record["size"] == 128
    assert record["scored_split"] == "test" and record["test_is_val"] is True
    metrics = check_metrics(d)
    assert metrics["test/is_val"] == 1.0
    truth = layouts["idd_truth"]
    ids = [r["id"] for r in _rows(d / "per_image.csv")]
    assert sorted(ids) == sorted(truth)  # both val images (batch 2, one test batch)
    # the masks were scored at 1920x1080 in csTrainIds: every valid truth pixel, no more, no fewer
    assert scored_pixels(d) == sum(int((truth[i] != IGNORE_INDEX).sum()) for i in ids)
    for i in ids:  # and the cached masks are AutoNUE's csTrainId encoding, at full size
        split, seq, frame = i.split("/")
        made = cv2.imread(str(layouts["idd"] / "gtFine" / split / seq / f"{frame}_gtFine_labelcsTrainIds.png"),
                          cv2.IMREAD_UNCHANGED)
        assert made.shape == IDD_SIZE[::-1] and np.array_equal(made, truth[i])
    assert "debug=fast changed" in run["stderr"] + run["stdout"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["labelIds", "polygons"])
def test_finetune_debug_fast_on_cityscapes_scores_at_2048x1024(layouts, runs, variant):
    run = runs["finetune"]
    _ok(run)
    d = runs["finetune_dirs"][variant]
    assert (d / "checkpoints" / "best.ckpt").is_file()
    record = _json(d / "evaluation.json")
    assert record["mode"] == "full" and record["labels"] == "original size" and record["size"] == 128
    assert record["test_is_val"] is True
    check_metrics(d)
    truth = layouts["cs_label_ids"]
    ids = [r["id"] for r in _rows(d / "per_image.csv")]
    assert sorted(ids) == sorted(i for i in truth if i.startswith("val/"))  # both (batch 4, one test batch)
    # scored at 2048x1024: exactly the pixels of a valid train id in the official label ids
    assert scored_pixels(d) == sum(int((CS_TRAIN_LUT[truth[i]] != IGNORE_INDEX).sum()) for i in ids)
    if variant == "polygons":  # label ids rasterised beside the JSON, equal to the official files
        for i, ids_truth in truth.items():
            split, city, stem = i.split("/")
            made = cv2.imread(str(layouts["cs_polygons"] / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"),
                              cv2.IMREAD_UNCHANGED)
            assert made is not None and made.shape == CS_SIZE[::-1] and np.array_equal(made, ids_truth), i


@pytest.mark.slow
def test_cross_eval_reads_each_dataset_from_its_own_root(layouts, runs):
    run = runs.get("cross_eval")
    assert run is not None, "no fine-tuned checkpoint to cross-evaluate"
    _ok(run)
    d = run["dir"]
    rows = _rows(d / "cross_dataset.csv")
    assert [r["evaluated_on"] for r in rows] == ["idd", "idd_flat", "cityscapes"]
    assert {r["checkpoint"] for r in rows} == {"deeplabv3plus@cityscapes"}
    assert all(r["space"] == "cityscapes" and r["metric"] == "test/miou" for r in rows)
    values = {r["evaluated_on"]: float(r["value"]) for r in rows}
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in values.values()), values
    table = (d / "cross_dataset.md").read_text()
    assert "| deeplabv3plus@cityscapes | " + " | ".join(f"{values[s]:.4f}" for s in values) + " |" in table
    jobs = {r["evaluated_on"]: Path(r["run_dir"]) for r in rows}
    for name, job in jobs.items():
        record = _json(job / "evaluation.json")
        assert record["labels"] == "original size" and record["mode"] == "full", name
        assert _json(job / "metrics.json")["test/miou"] == pytest.approx(values[name])
    # every val image of IDD and Cityscapes scored at its own size, in the official encodings
    assert scored_pixels(jobs["idd"]) == sum(int((m != IGNORE_INDEX).sum()) for m in layouts["idd_truth"].values())
    cs_val = [m for i, m in layouts["cs_label_ids"].items() if i.startswith("val/")]
    assert scored_pixels(jobs["cityscapes"]) == sum(int((CS_TRAIN_LUT[m] != IGNORE_INDEX).sum()) for m in cs_val)
    # the flat variant: a held-out test part of its own (not val), read through the level3 mapping
    flat_ids = [r["id"] for r in _rows(jobs["idd_flat"] / "per_image.csv")]
    assert flat_ids and all(i.startswith("image_") for i in flat_ids)
    to_cs = get_mapping("idd_level3", "cityscapes")[jpeg_mask_table("snap")]  # stray JPEG values snapped, then mapped
    masks = [read_label_image(layouts["flat"] / "IDD20K_II" / "mask_archive" / f"mask_{i[6:]}.jpg", grayscale=True)
             for i in flat_ids]
    assert all(m.shape == FLAT_SIZE[::-1] for m in masks)
    assert scored_pixels(jobs["idd_flat"]) == sum(int((to_cs[m] != IGNORE_INDEX).sum()) for m in masks)
    assert _json(jobs["idd_flat"] / "evaluation.json")["test_is_val"] is False
    assert "mapped from level3" in run["stdout"] + run["stderr"]


@pytest.mark.slow
def test_predict_writes_full_size_label_pngs_for_unlabelled_idd_test_images(layouts, runs):
    run = runs["predict"]
    _ok(run)
    d = run["dir"]
    rows = _rows(d / "predictions.csv")
    test_images = sorted((layouts["idd"] / "leftImg8bit" / "test").rglob("*_leftImg8bit.png"))
    assert sorted(Path(r["file"]).resolve() for r in rows) == [p.resolve() for p in test_images]
    for r in rows:
        assert (int(r["width"]), int(r["height"])) == IDD_SIZE
        label = cv2.imread(str(d / r["label_ids"]), cv2.IMREAD_UNCHANGED)
        assert label.shape == IDD_SIZE[::-1] and label.dtype == np.uint8
        assert set(np.unique(label).tolist()) <= CS_EVAL_IDS  # Cityscapes label ids of the 19 classes
        color = cv2.imread(str(d / r["label_ids"].replace("_labelIds.png", "_color.png")))
        assert color is not None and color.shape == (*IDD_SIZE[::-1], 3)
    assert _json(d / "summary.json") == {"images": len(test_images), "skipped": 0, "task": "segmentation"}
