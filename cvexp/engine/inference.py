"""A trained network with its preprocessing contract, for prediction and export.

`load_inference_model(path)` takes a cvexp checkpoint (or run directory), or a DeepLabV3Plus-Pytorch
(VainF) Cityscapes checkpoint, and returns an `InferenceModel`: the task module in eval mode, the
eval preprocessing (albumentations pipeline ending in the model's normalisation and a tensor), and
the contract that travels with an exported model (`contract()`: task, input size, mean/std, class
names, label space, palette).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvexp.errors import CheckpointError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class InferenceModel:
    module: Any                       # the task LightningModule, eval mode
    transform: Any                    # albumentations Compose: HWC uint8 RGB -> CHW float tensor
    task: str
    class_names: list[str]
    mean: list[float]
    std: list[float]
    input_size: int | None = None     # classification: the square input side; segmentation: None (any)
    label_space: str | None = None
    palette: list | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    def contract(self) -> dict:
        """What a user of the exported network must do to its input and how to read its output."""
        out = {"task": self.task, "class_names": list(self.class_names), "mean": list(self.mean),
               "std": list(self.std), "input": "RGB, float32, (batch, 3, height, width), pixel/255 then "
                                               "(x - mean) / std", "source": self.source}
        if self.task == "classification":
            out.update(input_size=[self.input_size, self.input_size], output="logits (batch, classes)")
        else:
            out.update(input_size=None, output="logits (batch, classes, height, width) at the input size",
                       label_space=self.label_space, palette=[list(c) for c in (self.palette or [])])
        out.update(self.extra)
        return out

    def preprocess(self, rgb: np.ndarray):
        return self.transform(image=rgb)["image"]


def load_inference_model(path: str | os.PathLike, output_stride: int | None = None) -> InferenceModel:
    from cvexp.io.checkpoint import checkpoint_file, read_file

    p = checkpoint_file(path)
    obj = read_file(p, "checkpoint", "pass ckpt_path=<run dir>/checkpoints/best.ckpt or a VainF .pth(.tar)")
    if isinstance(obj, dict) and "model_state" in obj and "cvexp" not in obj:
        return _vainf_model(p, obj, output_stride)
    return _cvexp_model(p)


def _cvexp_model(p: Path) -> InferenceModel:
    from omegaconf import OmegaConf

    from cvexp.io.checkpoint import load_run_checkpoint
    from cvexp.data.transforms import build_pipeline
    from cvexp.engine import build

    module, train_cfg = build.build_from_checkpoint(load_run_checkpoint(p), str(p))
    module.eval()
    cfg = OmegaConf.create({"data": train_cfg.data, "aug": None})
    build.merge_checkpoint_data(cfg, train_cfg)
    from hydra.utils import instantiate

    eval_list = instantiate(cfg.aug.eval, _convert_="all") if cfg.get("aug") and "eval" in cfg.aug else []
    mean, std = list(cfg.data.mean), list(cfg.data.std)
    if module.task == "segmentation":
        base = cfg.data.get("base_size")
        # the whole image at its own size; the network sees it at `base_size` (its training
        # resolution) through the evaluation mode (cvexp.tasks.seg_inference), logits come back full size
        transform = build_pipeline([], mean, std, seed=0)
        return InferenceModel(module, transform, "segmentation", list(module.class_names), mean, std, None,
                              module.label_space, [list(c) for c in module.palette], str(p),
                              {"base_size": int(base) if base else None})
    size = int(cfg.data.image_size)
    transform = build_pipeline(list(eval_list), mean, std, seed=0)
    return InferenceModel(module, transform, "classification", list(module.class_names), mean, std, size,
                          source=str(p))


def _vainf_model(p: Path, obj: dict, output_stride: int | None) -> InferenceModel:
    from cvexp.io.checkpoint import state_dict_from
    from cvexp.data.labels import label_space
    from cvexp.data.transforms import build_pipeline
    from cvexp.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
    from cvexp.models.deeplab_vainf import VainfDeepLabV3Plus, describe_state
    from cvexp.tasks.segmentation import SegmentationModule

    d = describe_state(state_dict_from(obj, p))
    if d["layout"] != "vainf-deeplabv3plus" or d["backbone"] not in ("mobilenet", "resnet50", "resnet101"):
        raise CheckpointError(f"{p} holds 'model_state' but is not a DeepLabV3Plus-Pytorch DeepLabV3+ "
                              f"({d['layout']}, backbone {d['backbone']}); it cannot be used here")
    if output_stride is None:
        output_stride = 8 if re.search(r"os8", p.name) else 16
    space = label_space("cityscapes")
    if d["num_classes"] != space.num_classes:
        raise CheckpointError(f"{p} predicts {d['num_classes']} classes, not the 19 Cityscapes train ids; "
                              "only the Cityscapes checkpoints can be used without a cvexp run")
    net = VainfDeepLabV3Plus(d["backbone"], space.num_classes, output_stride, weights=str(p))
    module = SegmentationModule(net, list(space.class_names), palette=list(space.palette), label_space=space.name)
    module.eval()
    transform = build_pipeline([], IMAGENET_MEAN, IMAGENET_STD, seed=0)
    return InferenceModel(module, transform, "segmentation", list(space.class_names), list(IMAGENET_MEAN),
                          list(IMAGENET_STD), None, space.name, [list(c) for c in space.palette], str(p),
                          {"backbone": d["backbone"], "output_stride": output_stride})


def find_images(spec: str | os.PathLike) -> list[Path]:
    """A file, a folder (searched recursively) or a glob pattern -> image files, sorted."""
    import glob

    p = Path(spec).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        files = (f for f in p.rglob("*") if f.is_file())
    else:
        files = (Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
    return sorted(f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS)
