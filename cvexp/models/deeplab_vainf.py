"""DeepLabV3+ in the module layout of DeepLabV3Plus-Pytorch (VainF), to import its Cityscapes weights.

The Cityscapes DeepLabV3+ people have on disk are that project's
`best_deeplabv3plus_resnet101_cityscapes_os16.pth.tar`, `..._resnet50_...` and
`best_deeplabv3plus_mobilenet_cityscapes_os16.pth`: a dict with `model_state` (plus
`optimizer_state`, `scheduler_state`, `cur_itrs`, `best_score`). Its decoder differs from
segmentation-models-pytorch's, so this module rebuilds that network with the same parameter names:

    backbone.*                        IntermediateLayerGetter of the backbone:
        resnet50/101:  conv1, bn1, layer1..layer4 (torchvision ResNet; 'low_level' = layer1,
                       'out' = layer4; replace_stride_with_dilation [F, F, T] at OS16, [F, T, T] at OS8)
        mobilenet:     low_level_features.0-3, high_level_features.4-17 (VainF's MobileNetV2
                       `features` split after block 3; the last 1x1 conv and the classifier dropped)
    classifier.project.{0,1}          1x1 conv 48 + BN on the low-level features
    classifier.aspp.convs.{0..4}      ASPP: 1x1, three 3x3 atrous (6/12/18 at OS16, 12/24/36 at OS8), pooling
    classifier.aspp.project.{0,1}     1x1 conv 256 + BN (+ dropout 0.1)
    classifier.classifier.{0,1,3}     3x3 conv 256 + BN, ReLU, 1x1 conv to the classes

No separable convolutions. Logits are upsampled bilinearly (align_corners=False) to the input size.
Inference follows that model's conventions: ImageNet mean/std, full resolution.

Files load with `torch.load(weights_only=True)` (no pickled code runs); the only globals admitted
besides torch's defaults are numpy scalars/dtypes, because VainF stores `best_score` as a numpy
float64. Loading is strict: every tensor must be placed, and missing, unexpected or wrongly shaped
keys raise a one-line `CheckpointError` that says which backbone/num_classes the file looks like.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv_resnet
from torchvision.models._utils import IntermediateLayerGetter

from cvexp.errors import CheckpointError, ConfigError
from cvexp.io.checkpoint import load_state_dict_file
from cvexp.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from cvexp.models.weights import load_into, strip_prefixes

log = logging.getLogger(__name__)


BACKBONES = ("resnet50", "resnet101", "mobilenet")
_ALIASES = {"mobilenetv2": "mobilenet", "mobilenet_v2": "mobilenet"}
_RESNET_LAYER3_BLOCKS = {6: "resnet50", 23: "resnet101"}
# what the VainF Cityscapes checkpoints were trained with
CITYSCAPES_NUM_CLASSES = 19


def canonical_backbone(name: str) -> str:
    b = _ALIASES.get(str(name).lower(), str(name).lower())
    if b not in BACKBONES:
        raise ConfigError(f"model.backbone={name!r} is not a DeepLabV3Plus-Pytorch backbone; "
                          f"use one of {', '.join(BACKBONES)}")
    return b


def _aspp_rates(output_stride: int) -> tuple[int, int, int]:
    if output_stride not in (8, 16):
        raise ConfigError(f"model.output_stride={output_stride!r} is not supported; use 16 (the Cityscapes "
                          "checkpoints) or 8")
    return (12, 24, 36) if output_stride == 8 else (6, 12, 18)


# --------------------------------------------------------------------------- backbone plumbing
# (the backbone is wrapped in torchvision's IntermediateLayerGetter, as VainF does)

def _resnet_body(backbone: str, output_stride: int) -> nn.Module:
    dilation = [False, True, True] if output_stride == 8 else [False, False, True]
    build = tv_resnet.resnet50 if backbone == "resnet50" else tv_resnet.resnet101
    return build(weights=None, replace_stride_with_dilation=dilation)


# VainF's MobileNetV2: unpadded convs; each inverted residual pads its input ("fixed padding").

class _ConvBNReLU6(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, 0, dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dilation: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_ConvBNReLU6(cin, hidden, kernel=1))
        layers += [_ConvBNReLU6(hidden, hidden, stride=stride, dilation=dilation, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        total = 2 * dilation  # effective 3x3 kernel extent - 1
        self.input_padding = (total // 2, total - total // 2, total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, self.input_padding))
        return x + y if self.use_res_connect else y


# (expand t, channels c, repeats n, stride s), as in MobileNetV2 and VainF
_MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _mobilenet_features(output_stride: int) -> list[nn.Module]:
    """VainF `MobileNetV2(output_stride).features` (width 1.0): 19 modules, the last the 1x1 to 1280."""
    features: list[nn.Module] = [_ConvBNReLU6(3, 32, stride=2)]
    cin, current_stride, dilation = 32, 2, 1
    for t, c, n, s in _MOBILENET_V2_SETTING:
        previous_dilation = dilation
        if current_stride == output_stride:
            stride, dilation = 1, dilation * s
        else:
            stride, current_stride = s, current_stride * s
        for i in range(n):
            features.append(_InvertedResidual(cin, c, stride if i == 0 else 1,
                                              previous_dilation if i == 0 else dilation, t))
            cin = c
    features.append(_ConvBNReLU6(cin, 1280, kernel=1))
    for m in nn.Sequential(*features).modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return features


class _MobileNetBody(nn.Module):
    """Holds VainF's renamed halves; Sequential slices keep the original indices (4..17)."""

    def __init__(self, output_stride: int):
        super().__init__()
        features = _mobilenet_features(output_stride)
        self.low_level_features = nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(features[:4])))
        self.high_level_features = nn.Sequential(
            OrderedDict((str(i), m) for i, m in enumerate(features[:-1]) if i >= 4))


# --------------------------------------------------------------------------- head

class _ASPPPooling(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    pad = 0 if kernel == 1 else dilation
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    def __init__(self, cin: int, rates: tuple[int, int, int], cout: int = 256):
        super().__init__()
        self.convs = nn.ModuleList([_conv_bn_relu(cin, cout, 1), *(_conv_bn_relu(cin, cout, 3, r) for r in rates),
                                    _ASPPPooling(cin, cout)])
        self.project = nn.Sequential(nn.Conv2d(5 * cout, cout, 1, bias=False), nn.BatchNorm2d(cout),
                                     nn.ReLU(inplace=True), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


class DeepLabHeadV3Plus(nn.Module):
    def __init__(self, in_channels: int, low_level_channels: int, num_classes: int, rates: tuple[int, int, int]):
        super().__init__()
        self.project = _conv_bn_relu(low_level_channels, 48, 1)
        self.aspp = ASPP(in_channels, rates)
        self.classifier = nn.Sequential(nn.Conv2d(304, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256),
                                        nn.ReLU(inplace=True), nn.Conv2d(256, num_classes, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        low = self.project(features["low_level"])
        out = self.aspp(features["out"])
        out = F.interpolate(out, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(torch.cat([low, out], dim=1))


# --------------------------------------------------------------------------- the model

class VainfDeepLabV3Plus(nn.Module):
    """DeepLabV3+ whose `state_dict()` is exactly a DeepLabV3Plus-Pytorch `model_state`.

    `weights=PATH` imports a VainF checkpoint (strict). `pretrained_backbone` is False, True
    (torchvision ImageNet weights via torch.hub's cache/download) or a local torchvision-layout file;
    it is ignored when `weights` is given. forward(x) returns logits (B, num_classes, H, W) at the input size.
    Note: as in VainF, the ASPP pooling branch has batch norm on a 1x1 map, so training needs batches of 2+.
    """

    def __init__(self, backbone: str = "resnet101", num_classes: int = CITYSCAPES_NUM_CLASSES,
                 output_stride: int = 16, weights: str | None = None, pretrained_backbone: bool | str = False):
        super().__init__()
        self.backbone_name = canonical_backbone(backbone)
        self.num_classes = int(num_classes)
        self.output_stride = int(output_stride)
        rates = _aspp_rates(self.output_stride)
        if weights and not Path(weights).expanduser().is_file():  # before building a large network
            raise CheckpointError(f"weights file {Path(weights).expanduser()} does not exist; "
                                  "check the path given in model.weights")
        if self.backbone_name == "mobilenet":
            body: nn.Module = _MobileNetBody(self.output_stride)
            layers, cin, low = {"high_level_features": "out", "low_level_features": "low_level"}, 320, 24
        else:
            body = _resnet_body(self.backbone_name, self.output_stride)
            layers, cin, low = {"layer4": "out", "layer1": "low_level"}, 2048, 256
        self.backbone = IntermediateLayerGetter(body, layers)
        self.classifier = DeepLabHeadV3Plus(cin, low, self.num_classes, rates)
        if weights:
            load_vainf_weights(self, weights)
        elif pretrained_backbone:
            self._load_imagenet_backbone(pretrained_backbone)

    @staticmethod
    def pretrained_input_config(**_) -> dict[str, Any]:
        """ImageNet mean/std, as the VainF checkpoints were trained with; full-resolution input."""
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.backbone(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    # ImageNet backbone (training this layout from scratch) ---------------------------------------
    def _load_imagenet_backbone(self, source: bool | str) -> None:
        if isinstance(source, (str, os.PathLike)) and str(source).lower() not in ("true", "imagenet"):
            state, name = load_state_dict_file(source), str(source)
        else:
            state, name = _download_torchvision_imagenet(self.backbone_name), "torchvision ImageNet weights"
        state = strip_prefixes(state, ("module.",))
        if self.backbone_name == "mobilenet":
            mapped = {}
            for k, v in state.items():
                m = re.match(r"features\.(\d+)\.(.*)", k)
                if m and int(m.group(1)) < 18:
                    half = "low_level_features" if int(m.group(1)) < 4 else "high_level_features"
                    mapped[f"{half}.{k[len('features.'):]}"] = v
                else:
                    mapped[k] = v
            state, skip = mapped, ("features.", "classifier.")
        else:
            skip = ("fc.", "avgpool.")
        load_into(self.backbone, state, name, skip=skip)
        log.info("loaded ImageNet %s backbone from %s", self.backbone_name, name)


def _download_torchvision_imagenet(backbone: str) -> dict[str, torch.Tensor]:
    from torchvision.models import MobileNet_V2_Weights, ResNet50_Weights, ResNet101_Weights

    w = {"resnet50": ResNet50_Weights, "resnet101": ResNet101_Weights, "mobilenet": MobileNet_V2_Weights}[backbone]
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # fail instead of hanging when the network is unreachable
    try:
        return w.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as e:  # noqa: BLE001 - offline, no cache, proxy: all mean "no weights"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(
            f"cannot get torchvision ImageNet weights for {backbone} from torch.hub or its cache ({reason}); "
            f"pass model.pretrained_backbone=/path/to/{backbone}.pth (a torchvision state dict) or false") from None
    finally:
        socket.setdefaulttimeout(old)


# --------------------------------------------------------------------------- reading files

def load_checkpoint_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint file: `model_state` (VainF), `state_dict` (Lightning), ...
    or a bare state dict; `.safetensors` too (cvexp.io.checkpoint: never unpickles code)."""
    return load_state_dict_file(path)


# --------------------------------------------------------------------------- import / export

def describe_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """What a state dict looks like: {'layout': 'vainf-deeplabv3plus'|'vainf-deeplabv3'|'smp'|'unknown',
    'backbone': 'resnet50'|'resnet101'|'mobilenet'|None, 'num_classes': int|None}."""
    keys = list(state)
    out: dict[str, Any] = {"layout": "unknown", "backbone": None, "num_classes": None}
    if any(k.startswith("backbone.low_level_features.") for k in keys):
        out["backbone"] = "mobilenet"
    else:
        blocks = {int(m.group(1)) for k in keys if (m := re.match(r"backbone\.layer3\.(\d+)\.", k))}
        if blocks:
            out["backbone"] = _RESNET_LAYER3_BLOCKS.get(max(blocks) + 1, f"a resnet with {max(blocks) + 1} layer3 blocks")
    if "classifier.classifier.3.weight" in state:
        out["layout"] = "vainf-deeplabv3plus"
        out["num_classes"] = int(state["classifier.classifier.3.weight"].shape[0])
    elif any(k.startswith("classifier.classifier.0.convs.") for k in keys):
        out["layout"] = "vainf-deeplabv3"
    elif any(k.startswith("encoder.") for k in keys) and any(k.startswith("decoder.") for k in keys):
        out["layout"] = "smp"
    return out


def _hint(state: Mapping[str, torch.Tensor], model: VainfDeepLabV3Plus) -> str:
    d = describe_state(state)
    if d["layout"] == "smp":
        return "the file is a segmentation-models-pytorch model: use model=deeplabv3plus model.weights=PATH"
    if d["layout"] == "vainf-deeplabv3":
        return "the file is a DeepLabV3 (not V3+) checkpoint, which this model does not build"
    fixes = []
    if d["backbone"] and d["backbone"] != model.backbone_name:
        fixes.append(f"model.backbone={d['backbone']}")
    if d["num_classes"] is not None and d["num_classes"] != model.num_classes:
        fixes.append(f"model.num_classes={d['num_classes']}")
    if fixes:
        return f"the file looks like {' '.join(fixes)}"
    return "the file is not a DeepLabV3Plus-Pytorch DeepLabV3+ of this backbone"


def load_vainf_weights(model: VainfDeepLabV3Plus, path: str | os.PathLike) -> None:
    """Strict import of a VainF checkpoint (or a state dict of this class, e.g. from a cvexp run)."""
    state = strip_prefixes(load_checkpoint_state(path), ("module.", "net."))
    own = model.state_dict()
    # BN step counters do not affect outputs; very old files lack them
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    try:
        load_into(model, state, str(path))
    except CheckpointError as e:
        raise CheckpointError(f"{e} ({_hint(state, model)})") from None
    log.info("imported DeepLabV3Plus-Pytorch %s weights (%d tensors) from %s", model.backbone_name, len(state), path)


def import_vainf_checkpoint(path: str | os.PathLike, backbone: str, num_classes: int = CITYSCAPES_NUM_CLASSES,
                            output_stride: int = 16) -> VainfDeepLabV3Plus:
    """Build the VainF layout for `backbone` and import the file strictly; returned in eval mode.
    The output stride is not stored in the file (the Cityscapes checkpoints are OS16)."""
    return VainfDeepLabV3Plus(backbone, num_classes, output_stride, weights=str(path)).eval()
