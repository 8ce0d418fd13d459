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

from cvexp.analysis import seg_confusion
from cvexp.metrics import segmentation as seg_metrics
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
    files["confusion_matrix"] = seg_confusion.plot_normalized_confusion(cm, names, out / "confusion_matrix.png")
    write_rows_csv(seg_confusion.most_confused_pairs(cm, names, k=15), out / "confused_pairs.csv")
    files["confused_pairs"] = out / "confused_pairs.csv"

    images = module.test_images
    write_rows_csv([{"id": r["id"], "miou": r["miou"], "pixel_acc": r["pixel_acc"],
                     **{f"iou/{n}": float(v) for n, v in zip(names, r["iou"])}} for r in images],
                   out / "per_image.csv")
    files["per_image"] = out / "per_image.csv"
    if not images:
        return files

    ds = dm.dataset("test", augment=False)
    picks = panel_picks(images, module.n_visualize, module.k_failures, module.failure_iou, names)
    kept = getattr(module, "panel_preds", {})  # the test pass's predictions of these images
    cache: dict[int, dict] = {}  # images drawn in several figures are read once
    files["predictions"] = _panels(module, dm, ds, picks.first, out / "predictions.png", names,
                                   "Test images: image | truth | prediction | errors", kept, cache=cache)
    if picks.worst:
        files["failures_lowest_miou"] = _panels(module, dm, ds, picks.worst, out / "failures_lowest_miou.png",
                                                names, f"{len(picks.worst)} lowest per-image mIoU", kept,
                                                cache=cache)
    rows = picks.failure_rows
    if rows:
        write_rows_csv(rows, out / "failures.csv")
    else:
        (out / "failures.csv").write_text("id,class_name,iou,image_miou,truth_pixels\n")
    files["failures"] = out / "failures.csv"
    if picks.failing:
        by_image = picks.failures_by_image
        files["failures_low_class_iou"] = _panels(
            module, dm, ds, picks.failing, out / "failures_low_class_iou.png", names,
            f"Images with a class at IoU <= {module.failure_iou} ({len(by_image)} in all, see failures.csv)", kept,
            notes={r["id"]: ", ".join(by_image[r["id"]][:3]) for r in picks.failing}, cache=cache)
    return files


class PanelPicks:
    """Which test images the result pictures show: the first `n_visualize`, the `k_failures` with
    the lowest per-image mIoU, and (at most MAX_FAILURE_PANELS, lowest mIoU first) images where a
    class present in the truth scores IoU <= `failure_iou`; with every such (image, class) row."""

    def __init__(self, first, worst, failing, failure_rows):
        self.first, self.worst, self.failing, self.failure_rows = first, worst, failing, failure_rows
        self.failures_by_image: dict[str, list[str]] = {}
        for x in failure_rows:
            self.failures_by_image.setdefault(x["id"], []).append(f"{x['class_name']} {x['iou']:.2f}")

    @property
    def indices(self) -> set[int]:
        return {r["index"] for r in (*self.first, *self.worst, *self.failing)}


def _failing_classes(r: dict, failure_iou: float) -> list[int]:
    return [c for c in range(len(r["iou"])) if r["truth_pixels"][c] > 0 and r["iou"][c] <= failure_iou]


def _failing_key(r: dict) -> float:
    return r["miou"] if not math.isnan(r["miou"]) else 1.0


def panel_picks(images, n_visualize: int, k_failures: int, failure_iou: float, names) -> PanelPicks:
    """The choice the pictures are drawn from (ties keep the test order)."""
    scored = [r for r in images if not math.isnan(r["miou"])]
    worst = sorted(scored, key=lambda r: r["miou"])[:k_failures]
    rows = [{"id": r["id"], "class_name": names[c], "iou": float(r["iou"][c]), "image_miou": r["miou"],
             "truth_pixels": int(r["truth_pixels"][c])}
            for r in images for c in _failing_classes(r, failure_iou)]
    rows.sort(key=lambda x: (x["iou"], -x["truth_pixels"]))
    failing = sorted((r for r in images if _failing_classes(r, failure_iou)), key=_failing_key)[:MAX_FAILURE_PANELS]
    return PanelPicks(list(images[:n_visualize]), worst, failing, rows)


class PanelCandidates:
    """Keeps, while the test pass runs, the predictions of the images that `panel_picks` can still
    choose, so the pictures reuse them instead of running the model again; memory stays bounded
    by n_visualize + k_failures + MAX_FAILURE_PANELS label maps."""

    def __init__(self, n_visualize: int, k_failures: int, failure_iou: float):
        self.n_visualize, self.k_failures, self.failure_iou = n_visualize, k_failures, failure_iou
        self.preds: dict[int, np.ndarray] = {}
        self._seen = 0
        self._first: set[int] = set()
        self._worst: list[tuple[float, int, int]] = []  # (-miou, -seq, index): a max-heap of the kept worst
        self._failing: list[tuple[float, int, int]] = []

    @staticmethod
    def _keep(heap: list, key: float, seq: int, index: int, k: int) -> tuple[bool, int | None]:
        """Push into the bounded max-heap; (kept, index dropped)."""
        import heapq

        item = (-key, -seq, index)
        if len(heap) < k:
            heapq.heappush(heap, item)
            return True, None
        if k and item > heap[0]:  # smaller key, or equal key and earlier
            return True, heapq.heapreplace(heap, item)[2]
        return False, None

    def offer(self, record: dict, pred: torch.Tensor) -> None:
        """`record` as SegmentationModule writes it to test_images; `pred` its (H, W) class ids."""
        seq = self._seen
        self._seen += 1
        index = record["index"]
        keep = seq < self.n_visualize
        if keep:
            self._first.add(index)
        dropped = []
        if not math.isnan(record["miou"]):
            kept, d = self._keep(self._worst, record["miou"], seq, index, self.k_failures)
            keep, dropped = keep or kept, dropped + [d]
        if _failing_classes(record, self.failure_iou):
            kept, d = self._keep(self._failing, _failing_key(record), seq, index, MAX_FAILURE_PANELS)
            keep, dropped = keep or kept, dropped + [d]
        if keep:  # class ids (< 256, 255 = no class) as the pictures store them
            self.preds[index] = pred.detach().to("cpu", torch.uint8).numpy()
        held = self._first | {i for _, _, i in (*self._worst, *self._failing)}
        for d in dropped:
            if d is not None and d not in held:
                self.preds.pop(d, None)


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
def _panel_row(module, dm, ds, index: int, pred: np.ndarray | None = None) -> dict:
    """Image, truth and prediction of one test sample, shrunk for a panel. `pred` is the test
    pass's prediction (at the mask's size); without it the model predicts the image again, as the
    test pass did."""
    item = ds[index]
    if pred is None:
        was_training = module.training
        module.eval()
        logits = module.infer(item["image"][None].to(module.device))
        module.train(was_training)
        pred = module.predict_ids(logits)[0].cpu().numpy()
    return {"image": _shrink(denormalize(item["image"], dm.mean, dm.std), cv2.INTER_AREA),
            "truth": _shrink(item["mask"].numpy().astype(np.uint8), cv2.INTER_NEAREST_EXACT),
            "pred": _shrink(pred.astype(np.uint8), cv2.INTER_NEAREST_EXACT)}


def _panels(module, dm, ds, records, path: Path, names, title, kept: dict, notes=None,
            cache: dict | None = None) -> Path:
    """`kept` (index -> prediction) from the test pass; `cache` (index -> row) spares reading an
    image drawn in several figures twice."""
    cache = {} if cache is None else cache
    rows = []
    for r in records:
        if r["index"] not in cache:
            cache[r["index"]] = _panel_row(module, dm, ds, r["index"], kept.get(r["index"]))
        label = f"{r['id']}  mIoU {r['miou']:.2f}"
        if notes and r["id"] in notes:
            label += "  (" + notes[r["id"]] + ")"
        rows.append({**cache[r["index"]], "label": label})
    return plot_panels(rows, names, dm.palette, path, ignore_index=module.ignore_index, title=title)
