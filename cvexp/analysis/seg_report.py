"""What a segmentation test run leaves in its run dir: how it was scored (evaluation.json), per-class
table, confusion matrix, most confused pairs, per-image scores, predicted-vs-truth panels and failure
cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from cvexp.analysis import seg_metrics
from cvexp.analysis.confusion import write_rows_csv
from cvexp.analysis.seg_visualize import plot_panels
from cvexp.data.transforms import denormalize

MAX_FAILURE_PANELS = 8
PANEL_MAX_SIDE = 640  # a panel is ~470 px wide in the figure: full-resolution pixels would only cost time


def write_segmentation_results(out: Path, module, dm) -> dict[str, Path]:
    names = list(module.eval_class_names)
    cm = module.test_confusion.numpy()
    metrics = seg_metrics.metrics_from_confusion(cm)
    files: dict[str, Path] = {"evaluation": write_evaluation_record(out, module, dm)}
    write_rows_csv(seg_metrics.per_class_rows(metrics, names), out / "per_class.csv")
    files["per_class"] = out / "per_class.csv"
    np.savetxt(out / "confusion_matrix.csv", cm.astype(np.int64), fmt="%d", delimiter=",",
               header=",".join(names + (["(no class)"] if cm.shape[1] > cm.shape[0] else [])), comments="")
    files["confusion_matrix"] = seg_metrics.plot_normalized_confusion(cm, names, out / "confusion_matrix.png")
    write_rows_csv(seg_metrics.most_confused_pairs(cm, names, k=15), out / "confused_pairs.csv")
    files["confused_pairs"] = out / "confused_pairs.csv"

    images = module.test_images
    write_rows_csv([{"id": r["id"], "miou": r["miou"], "pixel_acc": r["pixel_acc"],
                     **{f"iou/{n}": float(v) for n, v in zip(names, r["iou"])}} for r in images],
                   out / "per_image.csv")
    files["per_image"] = out / "per_image.csv"
    if not images:
        return files

    ds = dm.dataset("test", augment=False)
    cache: dict[int, dict] = {}  # images drawn in several figures are predicted once
    first = images[: module.n_visualize]
    files["predictions"] = _panels(module, dm, ds, first, out / "predictions.png", names,
                                   "Test images: image | truth | prediction | errors", cache=cache)
    scored = [r for r in images if not math.isnan(r["miou"])]
    worst = sorted(scored, key=lambda r: r["miou"])[: module.k_failures]
    if worst:
        files["failures_lowest_miou"] = _panels(module, dm, ds, worst, out / "failures_lowest_miou.png", names,
                                                f"{len(worst)} lowest per-image mIoU", cache=cache)
    # every image where a class that is in its truth gets IoU <= threshold
    rows = [{"id": r["id"], "class_name": names[c], "iou": float(r["iou"][c]), "image_miou": r["miou"],
             "truth_pixels": int(r["truth_pixels"][c])}
            for r in images for c in range(len(names))
            if r["truth_pixels"][c] > 0 and r["iou"][c] <= module.failure_iou]
    rows.sort(key=lambda x: (x["iou"], -x["truth_pixels"]))
    if rows:
        write_rows_csv(rows, out / "failures.csv")
    else:
        (out / "failures.csv").write_text("id,class_name,iou,image_miou,truth_pixels\n")
    files["failures"] = out / "failures.csv"
    by_image: dict[str, list[str]] = {}
    for x in rows:
        by_image.setdefault(x["id"], []).append(f"{x['class_name']} {x['iou']:.2f}")
    picked = [r for r in sorted(images, key=lambda r: r["miou"] if not math.isnan(r["miou"]) else 1.0)
              if r["id"] in by_image][:MAX_FAILURE_PANELS]
    if picked:
        files["failures_low_class_iou"] = _panels(
            module, dm, ds, picked, out / "failures_low_class_iou.png", names,
            f"Images with a class at IoU <= {module.failure_iou} ({len(by_image)} in all, see failures.csv)",
            notes={r["id"]: ", ".join(by_image[r["id"]][:3]) for r in picked}, cache=cache)
    return files


def write_evaluation_record(out: Path, module, dm) -> Path:
    """evaluation.json: the eval mode (mode, size, scales, flip, windows), the resolution labels
    were scored at, the split the test numbers come from and whether it is the val split."""
    record = module.evaluation_record()
    if not module.eval_mode.original_resolution:
        record["base_size"] = getattr(dm, "base_size", None)
    path = out / "evaluation.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def _shrink(a: np.ndarray, interpolation: int) -> np.ndarray:
    h, w = a.shape[:2]
    f = PANEL_MAX_SIDE / max(h, w)
    if f >= 1:
        return a
    return cv2.resize(a, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interpolation)


@torch.no_grad()
def _panel_row(module, dm, ds, index: int) -> dict:
    """Image, truth and prediction of one test sample, shrunk for a panel (the prediction made as
    the test pass made it, at the mask's size, before shrinking)."""
    item = ds[index]
    was_training = module.training
    module.eval()
    logits = module.infer(item["image"][None].to(module.device))
    module.train(was_training)
    pred = module.predict_ids(logits)[0].cpu().numpy()
    return {"image": _shrink(denormalize(item["image"], dm.mean, dm.std), cv2.INTER_AREA),
            "truth": _shrink(item["mask"].numpy().astype(np.uint8), cv2.INTER_NEAREST_EXACT),
            "pred": _shrink(pred.astype(np.uint8), cv2.INTER_NEAREST_EXACT)}


def _panels(module, dm, ds, records, path: Path, names, title, notes=None, cache: dict | None = None) -> Path:
    """`cache` (index -> row) spares a second forward pass for an image drawn in several figures."""
    cache = {} if cache is None else cache
    rows = []
    for r in records:
        if r["index"] not in cache:
            cache[r["index"]] = _panel_row(module, dm, ds, r["index"])
        label = f"{r['id']}  mIoU {r['miou']:.2f}"
        if notes and r["id"] in notes:
            label += "  (" + notes[r["id"]] + ")"
        rows.append({**cache[r["index"]], "label": label})
    return plot_panels(rows, names, dm.palette, path, ignore_index=module.ignore_index, title=title)
