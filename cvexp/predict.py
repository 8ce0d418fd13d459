"""`python -m cvexp.predict ckpt_path=PATH input=DIR_OR_FILE_OR_GLOB`: predictions for images without labels.

    python -m cvexp.predict ckpt_path=outputs/train/runs/<time> input=/photos top_k=3
    python -m cvexp.predict ckpt_path=best_deeplabv3plus_resnet101_cityscapes_os16.pth.tar input='/data/*.png'
    python -m cvexp.predict ckpt_path=<seg run> input=/data/IDD/leftImg8bit/test eval.mode=sliding

Classification: `predictions.csv` (file, the top-k classes with probabilities) and `contact_sheet.png`.
Segmentation: per image `<name>_labelIds.png` in the dataset's label ids (Cityscapes label ids for a
Cityscapes-space model, IDD level ids for IDD; what the official evaluation scripts read),
`<name>_color.png` and `<name>_overlay.png`, at the image's own size; `predictions.csv` lists them.
Folders are searched recursively; unreadable files are skipped with a warning and listed in
`skipped_files.txt`. The output directory is a run directory (`outputs/predict/runs/<time>/`).
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from cvexp.engine import entry, rundir
from cvexp.errors import ConfigError, DataError

log = logging.getLogger("cvexp.predict")


def predict(cfg: DictConfig) -> dict:
    import torch

    from cvexp.engine.inference import find_images, load_inference_model

    out = entry.output_dir(cfg)
    files = find_images(cfg.input)
    if not files:
        raise DataError(f"input={cfg.input} matches no image files ({', '.join(_exts())}); pass a file, a folder "
                        "or a glob such as 'photos/*.jpg'")
    _refuse_output_among_inputs(out, Path(str(cfg.input)), files)
    model = load_inference_model(cfg.ckpt_path, cfg.get("output_stride"))
    from cvexp.analysis.features import pick_device

    device = pick_device(cfg.get("device", "auto"))
    model.module.to(device)
    OmegaConf.save(OmegaConf.to_container(cfg, resolve=True), out / "config.yaml")
    rundir.write_json(out / "contract.json", model.contract())
    log.info("predicting %d image(s) with %s (%s)", len(files), cfg.ckpt_path, model.task)
    with torch.no_grad():
        if model.task == "classification":
            summary = _classify(model, files, cfg, out, device)
        else:
            summary = _segment(model, files, cfg, out, device)
    if summary["skipped"]:
        (out / "skipped_files.txt").write_text("".join(f"{f}\n" for f in summary["skipped"]))
    if not summary["images"]:
        raise DataError(f"input={cfg.input}: none of its {len(files)} image file(s) could be read (listed in "
                        f"{out / 'skipped_files.txt'}); check the files")
    summary = {"images": summary["images"], "skipped": len(summary["skipped"]), "task": model.task}
    rundir.write_json(out / "summary.json", summary)
    print(f"{summary['images']} prediction(s), {summary['skipped']} skipped -> {out.resolve()}")
    return summary


def _exts() -> list[str]:
    from cvexp.engine.inference import IMAGE_EXTENSIONS

    return list(IMAGE_EXTENSIONS)


def _read(path: Path, skipped: list) -> np.ndarray | None:
    from cvexp.data.images import header_size, is_readable_image, read_rgb

    try:
        header_size(path)  # an image too large to decode says so
        if not is_readable_image(path):
            raise DataError(f"cannot read image {path}")
        return read_rgb(path)
    except DataError as e:
        log.warning("skipping %s", str(e).split(";")[0])
        skipped.append(str(path))
        return None


def _progress():
    """A progress bar on a terminal, quiet otherwise (logs, CI)."""
    from rich.progress import Progress

    return Progress(transient=True, disable=not sys.stderr.isatty())


# ------------------------------------------------------------------------------ classification
def _classify(model, files: list[Path], cfg: DictConfig, out: Path, device) -> dict:
    import torch

    k = max(1, min(int(cfg.top_k), len(model.class_names)))
    bs = max(1, int(cfg.batch_size))
    skipped: list[str] = []
    rows, sheet = [], []
    with _progress() as bar:
        task = bar.add_task("predicting", total=len(files))
        for start in range(0, len(files), bs):
            batch_files, tensors = [], []
            for f in files[start:start + bs]:
                img = _read(f, skipped)
                if img is None:
                    continue
                batch_files.append(f)
                tensors.append(model.preprocess(img))
                if len(sheet) < int(cfg.contact_sheet):
                    sheet.append((f, img))
            bar.advance(task, len(files[start:start + bs]))
            if not tensors:
                continue
            probs = model.module(torch.stack(tensors).to(device)).float().softmax(1).cpu()
            top_p, top_i = probs.topk(k, dim=1)
            for f, p, i in zip(batch_files, top_p.tolist(), top_i.tolist()):
                row = {"file": str(f)}
                for r, (pi, ii) in enumerate(zip(p, i), 1):
                    row[f"class_{r}"] = model.class_names[ii]
                    row[f"prob_{r}"] = round(float(pi), 6)
                rows.append(row)
    with open(out / "predictions.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file"] + [c for r in range(1, k + 1) for c in (f"class_{r}", f"prob_{r}")])
        w.writeheader()
        w.writerows(rows)
    labels = {r["file"]: f"{r['class_1']} {r['prob_1']:.2f}" for r in rows}
    _contact_sheet([(img, labels[str(f)]) for f, img in sheet if str(f) in labels], out / "contact_sheet.png")
    return {"images": len(rows), "skipped": skipped}


def _contact_sheet(items: list[tuple[np.ndarray, str]], path: Path, thumb: int = 128) -> None:
    import cv2
    import matplotlib.pyplot as plt

    if not items:
        return
    cols = min(8, len(items))
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (img, label) in zip(axes.flat, items):
        h, w = img.shape[:2]
        s = thumb / max(h, w)
        ax.imshow(cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA))
        ax.set_title(label, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------ segmentation
def file_ids_lut(label_space: str | None) -> np.ndarray:
    """Model class ids -> the ids the dataset's label files use (Cityscapes: train ids -> label
    ids; IDD level spaces: the level ids themselves)."""
    from cvexp.data.labels import CITYSCAPES_LABELS

    lut = np.arange(256, dtype=np.uint8)
    if label_space == "cityscapes":
        lut[:] = 0  # unlabeled
        for lab in CITYSCAPES_LABELS:
            if 0 <= lab.train_id < 255:
                lut[lab.train_id] = lab.id
    return lut


def _segment(model, files: list[Path], cfg: DictConfig, out: Path, device) -> dict:
    import cv2
    import torch

    from cvexp.data.labels import label_space as get_space
    from cvexp.tasks.seg_inference import EvalMode, predict_logits
    from cvexp.analysis.seg_visualize import colorize, overlay

    ecfg = dict(OmegaConf.to_container(cfg.get("eval") or {}, resolve=True))
    if ecfg.get("size") is None and ecfg.get("mode", "full") != "sliding":
        ecfg["size"] = model.extra.get("base_size")  # the checkpoint's training resolution
    mode = EvalMode.from_config(ecfg)
    space = get_space(model.label_space) if model.label_space else None
    lut = file_ids_lut(model.label_space)
    alpha = float(cfg.get("overlay_alpha", 0.5))
    skipped: list[str] = []
    rows = []
    names = _out_names(files)
    with _progress() as bar:
        task = bar.add_task("predicting", total=len(files))
        for f in files:
            bar.advance(task)
            img = _read(f, skipped)
            if img is None:
                continue
            x = model.preprocess(img)[None].to(device)
            pred = predict_logits(model.module, x, mode).argmax(1)[0].to(torch.uint8).cpu().numpy()
            stem = names[f]
            label_png = out / f"{stem}_labelIds.png"
            cv2.imwrite(str(label_png), lut[pred])
            color = colorize(pred, space.palette if space else (model.palette or []))
            cv2.imwrite(str(out / f"{stem}_color.png"), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
            blend = overlay(img, color, alpha)
            cv2.imwrite(str(out / f"{stem}_overlay.png"), cv2.cvtColor(blend, cv2.COLOR_RGB2BGR))
            rows.append({"file": str(f), "label_ids": label_png.name, "height": img.shape[0], "width": img.shape[1]})
    with open(out / "predictions.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "label_ids", "height", "width"])
        w.writeheader()
        w.writerows(rows)
    return {"images": len(rows), "skipped": skipped}


def _common_parent(files: list[Path]) -> Path:
    import os

    return Path(os.path.commonpath([str(f.parent.resolve()) for f in files])) if files else Path(".")


def _out_names(files: list[Path]) -> dict[Path, str]:
    """Each file's path below the files' common folder, '/' -> '__', without the suffix; a name
    taken already (a.png and a.jpg, sub/b.png and sub__b.png) gets -2, -3, ... so no output
    overwrites another."""
    common = _common_parent(files)
    names: dict[Path, str] = {}
    used: set[str] = set()
    for f in files:
        base = "__".join(f.resolve().relative_to(common).with_suffix("").parts)
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        names[f] = name
    return names


def _refuse_output_among_inputs(out: Path, given: Path, files: list[Path]) -> None:
    """The output folder is not the input folder or inside it: predictions would overwrite or mix
    with the images (and a later run would read them back as input)."""
    roots = {_common_parent(files)} | ({given.resolve()} if given.is_dir() else set())
    o = out.resolve()
    for root in roots:
        if o == root or (given.is_dir() and o.is_relative_to(root)):
            raise ConfigError(f"the output folder {out} is {'the' if o == root else 'inside the'} input folder "
                              f"{root}; predictions would mix with the images: choose hydra.run.dir outside it")


main = entry.entry_point(predict, "predict")


if __name__ == "__main__":
    main()
