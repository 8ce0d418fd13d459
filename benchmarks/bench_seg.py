"""Segmentation figures:

1. IDD polygon rasterisation: cvexp.data.polygons.rasterize_polygons (JSON file -> level3 mask)
   against plain PIL ImageDraw with a dict of labels (the AutoNUE createLabels recipe) written here;
   masks/s, both reading the same JSON files; the masks must be equal (`same_masks`). The inputs are
   cvexp's demo IDD annotations, scaled to IDD's 1920x1080 with every polygon edge subdivided and the
   object list repeated (`--density`), a stand-in for real IDD frames (~50-150 polygons of tens to
   hundreds of points). Target (issue 12): cvexp >= plain PIL speed (ratio >= 1).
2. DeepLabV3+ evaluation images/s at 1280x720 and 2048x1024: cvexp's segmentation task module
   (`module.infer` + `module.predict_ids`, the path its test pass takes) against a plain
   segmentation_models_pytorch DeepLabV3Plus of the same architecture (forward + argmax). Random
   weights and inputs, batch 1, one torch thread. Reported, no target.
3. Result pictures per evaluation: the time cvexp spends after a segmentation test pass writing its
   tables and pictures (`module.write_results`: predictions.png, failure panels, confusion matrix,
   CSVs) against plain numpy + PIL drawing the same number of image | truth | prediction | error
   rows and a confusion-matrix image. Target (issue 12): <= 5 s per evaluation. Needs a segmentation
   checkpoint: one `experiment=seg_demo debug=fast` run is trained into a temporary folder first.
4. `--scale full` also times one whole `python -m cvexp experiment=seg_demo` (target: <= 90 s here).

    python benchmarks/bench_seg.py                  # small (~1.5 min on 2 cores): see the record's notes
    python benchmarks/bench_seg.py --scale full     # more masks/images/pairs, plus the whole seg_demo run
    python benchmarks/bench_seg.py --parts raster pictures
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import common as C
import numpy as np

PARTS = ("raster", "infer", "pictures", "seg_demo")
# AutoNUE's label table, level3Id column: polygon label -> id drawn (255 = void, drawn as 255)
IDD_LEVEL3 = {
    "road": 0, "parking": 1, "drivable fallback": 1, "sidewalk": 2, "rail track": 3, "non-drivable fallback": 3,
    "person": 4, "animal": 4, "rider": 5, "motorcycle": 6, "bicycle": 7, "autorickshaw": 8, "car": 9, "truck": 10,
    "bus": 11, "caravan": 12, "trailer": 12, "train": 12, "vehicle fallback": 12, "curb": 13, "wall": 14,
    "fence": 15, "guard rail": 16, "billboard": 17, "traffic sign": 18, "traffic light": 19, "pole": 20,
    "polegroup": 20, "obs-str-bar-fallback": 21, "building": 22, "bridge": 23, "tunnel": 23, "vegetation": 24,
    "sky": 25, "fallback background": 25, "unlabeled": 255, "ego vehicle": 255, "rectification border": 255,
    "out of roi": 255, "license plate": 255,
}
RESOLUTIONS = ((720, 1280), (1024, 2048))


# ------------------------------------------------------------------------------ 1. rasterisation
def plain_rasterize(path: str | Path) -> np.ndarray:
    """createLabels' recipe in plain PIL: background 255, polygons in file order, deleted objects and
    polygons of < 3 points skipped, `<label>group` read as `<label>`."""
    from PIL import Image, ImageDraw

    with open(path) as fh:
        ann = json.load(fh)
    img = Image.new("L", (ann["imgWidth"], ann["imgHeight"]), 255)
    draw = ImageDraw.Draw(img)
    for obj in ann["objects"]:
        if obj.get("deleted") or len(obj["polygon"]) < 3:
            continue
        label = obj["label"]
        if label not in IDD_LEVEL3 and label.endswith("group"):
            label = label[:-5]
        value = IDD_LEVEL3.get(label)
        if value is not None:
            draw.polygon([tuple(p) for p in obj["polygon"]], fill=value)
    return np.asarray(img)


def _subdivide(poly: list, k: int) -> list:
    out = []
    for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1]):
        out += [[round(x0 + (x1 - x0) * t / k, 2), round(y0 + (y1 - y0) * t / k, 2)] for t in range(k)]
    return out


def idd_like_annotations(args, out: Path, density: int, n: int) -> list[Path]:
    """cvexp's demo IDD polygons, scaled to 1920x1080, edges split into `density` pieces and the
    object list repeated `density` // 2 + 1 times (the mask stays the same); `n` files in `out`."""
    import cvexp

    root = Path(cvexp.DemoStreetsDataModule(cache_dir=str(C.cache_dir(args)), layout="idd").dataset_root())
    sources = sorted(root.rglob("*_gtFine_polygons.json"))[:n]
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, src in enumerate(sources):
        ann = json.loads(src.read_text())
        sx, sy = 1920 / ann["imgWidth"], 1080 / ann["imgHeight"]
        objects = [{**o, "polygon": _subdivide([[x * sx, y * sy] for x, y in o["polygon"]], density)}
                   for o in ann["objects"]]
        ann.update(imgWidth=1920, imgHeight=1080, objects=objects * (density // 2 + 1))
        files.append(out / f"frame{i:04d}_gtFine_polygons.json")
        files[-1].write_text(json.dumps(ann))
    return files


def bench_raster(args, tmp: Path) -> dict:
    from cvexp.data.polygons import rasterize_polygons

    n_files = C.by_scale(args, 24, 52)
    files = idd_like_annotations(args, tmp / "polygons", args.density, n_files)
    same = all(np.array_equal(rasterize_polygons(f), plain_rasterize(f)) for f in files)
    n = C.reps(args, 3, 7)

    def rate(fn):
        def run(_k):
            t0 = time.perf_counter()
            for f in files:
                fn(f)
            return len(files) / (time.perf_counter() - t0)
        return run

    C.say(f"rasterisation: {n} pairs over {len(files)} annotation files (masks/s)")
    r = C.interleave(n, {"cvexp": rate(rasterize_polygons), "baseline": rate(plain_rasterize)}, C.say)
    ann = json.loads(files[0].read_text())
    return C.make_record(
        "seg_rasterize_idd", max(r["cvexp"]), max(r["baseline"]), "masks/s", n, args.scale, ("ratio_min", 1.0),
        what="polygons JSON file -> level3 mask at 1920x1080; cvexp.data.polygons.rasterize_polygons vs plain "
             "PIL ImageDraw", same_masks=same, files=len(files),
        objects_per_file=len(ann["objects"]), points_per_file=sum(len(o["polygon"]) for o in ann["objects"]),
        input=f"demo IDD annotations scaled to 1920x1080, edges subdivided x{args.density}, objects repeated "
              f"x{args.density // 2 + 1}", passes=r)


# ------------------------------------------------------------------------------ 2. inference
def bench_infer(args) -> list[dict]:
    import segmentation_models_pytorch as smp
    import torch

    import cvexp

    encoder = args.encoder
    classes = 26
    cv_net = cvexp.SmpDeepLabV3Plus(encoder_name=encoder, encoder_weights=None, num_classes=classes)
    module = cvexp.SegmentationModule(cv_net, [f"c{i}" for i in range(classes)], eval={"mode": "full"}).eval()
    plain = smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, encoder_output_stride=16,
                              decoder_atrous_rates=(6, 12, 18), classes=classes).eval()
    images = C.by_scale(args, 1, 2)
    n = C.reps(args, 1, 3)

    @torch.inference_mode()
    def cvexp_pred(x):
        return module.predict_ids(module.infer(x))

    @torch.inference_mode()
    def plain_pred(x):
        return plain(x).argmax(1)

    # warm-up at a small size (allocator, kernels) so the single small-scale pair is fair
    w = torch.randn(1, 3, 128, 256)
    cvexp_pred(w), plain_pred(w)
    records = []
    for h, wd in RESOLUTIONS:
        xs = [torch.randn(1, 3, h, wd, generator=torch.Generator().manual_seed(i)) for i in range(images)]
        if cvexp_pred(xs[0][..., :64, :128]).shape[-2:] != (64, 128):
            raise RuntimeError("cvexp's prediction is not at the input size")

        def rate(fn, xs=xs):
            def run(_k):
                t0 = time.perf_counter()
                for x in xs:
                    fn(x)
                return len(xs) / (time.perf_counter() - t0)
            return run

        C.say(f"DeepLabV3+ ({encoder}) eval {wd}x{h}: {n} pair(s) of {images} image(s) (images/s)")
        r = C.interleave(n, {"cvexp": rate(cvexp_pred), "baseline": rate(plain_pred)}, C.say)
        records.append(C.make_record(
            f"seg_eval_{wd}x{h}", max(r["cvexp"]), max(r["baseline"]), "images/s", n, args.scale, None,
            what=f"DeepLabV3+ {encoder} OS16, {classes} classes, random weights, batch 1, CPU, one thread: "
                 "cvexp SegmentationModule.infer + predict_ids vs smp DeepLabV3Plus forward + argmax",
            encoder=encoder, images_per_pass=images, passes=r,
            note="small scale: 1 image per pass, one pair" if args.scale == "small" else None))
    return records


# ------------------------------------------------------------------------------ 3. pictures
def train_seg_checkpoint(args, tmp: Path) -> Path:
    run = tmp / "seg_train"
    C.run_cmd([C.PYTHON, "-m", "cvexp", "experiment=seg_demo", "debug=fast", "cross_eval.datasets=[]",
               f"hydra.run.dir={run}"], env=C.child_env(args))
    ckpt = run / "checkpoints" / "best.ckpt"
    return ckpt if ckpt.is_file() else next((run / "checkpoints").glob("*.ckpt"))


def _colorize(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    return palette[mask]


def plain_pictures(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], cm: np.ndarray, n_classes: int,
                   out: Path, figures: int, per_figure: int) -> None:
    """image | truth | prediction | error rows, tiles scaled to 480 px wide, stacked into `figures`
    PNGs of `per_figure` rows, plus a normalised confusion-matrix image: numpy + PIL only."""
    from PIL import Image

    palette = np.zeros((256, 3), np.uint8)
    palette[:n_classes] = np.random.default_rng(0).integers(30, 256, (n_classes, 3))
    out.mkdir(parents=True, exist_ok=True)
    for f in range(figures):
        strips = []
        for k in range(per_figure):
            img, truth, pred = rows[(f * per_figure + k) % len(rows)]
            err = np.zeros(truth.shape + (3,), np.uint8)
            valid = truth != 255
            err[valid & (pred == truth)] = (0, 160, 0)
            err[valid & (pred != truth)] = (220, 0, 0)
            tiles = [img, _colorize(truth, palette), _colorize(pred, palette), err]
            scale = max(1, round(480 / truth.shape[1]))
            strips.append(np.concatenate([t.repeat(scale, 0).repeat(scale, 1) for t in tiles], axis=1))
        Image.fromarray(np.concatenate(strips, axis=0)).save(out / f"panels_{f}.png")
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    cells = (255 * (1 - norm)).astype(np.uint8).repeat(20, 0).repeat(20, 1)
    Image.fromarray(cells).save(out / "confusion_matrix.png")


def bench_pictures(args, tmp: Path) -> dict:
    import contextlib
    import logging
    import sys
    import warnings

    import pytorch_lightning as pl
    import torch

    import cvexp

    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    C.say("pictures: training a segmentation checkpoint (experiment=seg_demo debug=fast)")
    ckpt = train_seg_checkpoint(args, tmp)
    run = cvexp.load_checkpoint(ckpt, data={"num_workers": 0})
    module, dm = run.module, run.datamodule
    dm.setup("test")
    if hasattr(module, "adapt_to"):
        module.adapt_to(dm)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with contextlib.redirect_stdout(sys.stderr):
        trainer.test(module, datamodule=dm, verbose=False)
    # the baseline's inputs: images, truths and predictions of the test images (not timed)
    ds = dm.dataset("test", augment=False)
    rows = []
    mean, std = np.asarray(dm.mean), np.asarray(dm.std)
    with torch.inference_mode():
        for i in range(min(len(ds), 8)):
            item = ds[i]
            pred = module.predict_ids(module.infer(item["image"][None]))[0].numpy().astype(np.uint8)
            img = ((item["image"].permute(1, 2, 0).numpy() * std + mean).clip(0, 1) * 255).astype(np.uint8)
            truth = item["mask"].numpy().astype(np.uint8)
            h, w = truth.shape
            rows.append((img[:h, :w], truth, pred[:h, :w]))
    cm = module.test_confusion.numpy() if module.test_confusion is not None else np.eye(module.num_classes)
    n_classes = cm.shape[0]
    per_figure = max(module.n_visualize, module.k_failures, 1)
    n = C.reps(args, 3, 7)

    def cvexp_side(k):
        out = tmp / f"cvexp_results_{k}"
        out.mkdir()
        t0 = time.perf_counter()
        module.write_results(out, dm)
        dt = time.perf_counter() - t0
        cvexp_side.files = sorted(p.name for p in out.iterdir())
        return dt

    def plain_side(k):
        t0 = time.perf_counter()
        plain_pictures(rows, cm, n_classes, tmp / f"plain_results_{k}", 3, per_figure)
        return time.perf_counter() - t0

    C.say(f"pictures: {n} pairs (s per evaluation)")
    t = C.interleave(n, {"cvexp": cvexp_side, "baseline": plain_side}, C.say)
    return C.make_record(
        "seg_result_pictures", C.best(t["cvexp"]), C.best(t["baseline"]), "s", n, args.scale, ("absolute_max", 5.0),
        what="after a segmentation test pass: cvexp module.write_results (tables + pictures) vs numpy + PIL drawing "
             f"3 figures of {per_figure} image|truth|prediction|error rows and a confusion-matrix image",
        data="demo IDD test split (128x64 images), seg_demo debug=fast checkpoint", test_images=len(ds),
        cvexp_files=getattr(cvexp_side, "files", None), times_s=t)


# ------------------------------------------------------------------------------ 4. seg_demo
def bench_seg_demo(args, tmp: Path) -> dict:
    C.say("python -m cvexp experiment=seg_demo (whole run, once)")
    dt, _ = C.run_cmd([C.PYTHON, "-m", "cvexp", "experiment=seg_demo", f"hydra.run.dir={tmp / 'seg_demo'}"],
                      env=C.child_env(args))
    return C.make_record("seg_demo_run", dt, None, "s", 1, args.scale, ("absolute_max", 90.0),
                         what="python -m cvexp experiment=seg_demo, whole process (train 20 epochs, test, "
                              "cross-dataset evaluation, pictures); no baseline")


def main(argv=None) -> list[dict]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", choices=PARTS, default=None,
                   help="default: raster infer pictures (+ seg_demo at --scale full)")
    p.add_argument("--density", type=int, default=4, help="polygon edge subdivision (and object repeats)")
    p.add_argument("--encoder", default="resnet18", help="DeepLabV3+ encoder for the inference figure")
    args = p.parse_args(argv)
    C.one_thread()
    parts = args.parts or (["raster", "infer", "pictures"] + (["seg_demo"] if args.scale == "full" else []))
    records = []
    with tempfile.TemporaryDirectory(prefix="cvexp-bench-seg-") as tmp:
        tmp = Path(tmp)
        if "raster" in parts:
            records.append(C.emit(bench_raster(args, tmp), args))
        if "infer" in parts:
            records += [C.emit(r, args) for r in bench_infer(args)]
        if "pictures" in parts:
            records.append(C.emit(bench_pictures(args, tmp), args))
        if "seg_demo" in parts:
            records.append(C.emit(bench_seg_demo(args, tmp), args))
    return records


if __name__ == "__main__":
    main()
