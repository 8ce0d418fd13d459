"""segmentation-models-pytorch models: DeepLabV3+ with any smp/timm encoder, or an smp hub model.

`SmpSegmenter.forward(x)` returns logits (B, C, H, W) at the input size for any H, W. smp models
need sides divisible by the encoder's output stride; inputs that are not are zero-padded at the
bottom/right (0 is the ImageNet mean after normalisation) and the logits cropped back, so every
output pixel sits exactly on its input pixel and the image is never resampled. A model whose output
is smaller than its (padded) input is upsampled bilinearly first.

Weights, in order of precedence: `weights=PATH` (a local state dict of the whole model: smp layout,
this wrapper's, or a cvexp checkpoint), `hub_id` (`smp.from_pretrained`: a Hugging Face repo id such
as the Cityscapes Segformer `smp-hub/segformer-b0-1024x1024-city-160k`, or a local folder written by
`save_pretrained`), `encoder_weights="imagenet"` (encoder only, from the Hugging Face hub or its
cache), none. Offline without a cache, the hub paths fail fast with a one-line CheckpointError.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from cvexp.errors import CheckpointError, ConfigError
from cvexp.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from cvexp.models.deeplab_vainf import describe_state, load_checkpoint_state
from cvexp.models.weights import load_into, strip_prefixes

log = logging.getLogger(__name__)

_NO_WEIGHTS = (None, False, "", "none", "null", "None", "random")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def imagenet_input_config() -> dict[str, Any]:
    return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}


class SmpSegmenter(nn.Module):
    """Wraps any smp segmentation model so that forward gives logits at the input size."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def size_multiple(self) -> int:
        if not getattr(self.model, "requires_divisible_input_shape", True):
            return 1
        encoder = getattr(self.model, "encoder", None)
        return int(getattr(encoder, "output_stride", 32) or 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.size_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        out = self.model(x)
        if isinstance(out, (tuple, list)):  # (masks, labels) when an auxiliary head is configured
            out = out[0]
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out[..., :h, :w]

    def _load_local(self, path: str) -> None:
        state = strip_prefixes(load_checkpoint_state(path), ("module.", "net.model.", "net.", "model."))
        try:
            load_into(self.model, state, path)
        except CheckpointError as e:
            if describe_state(state)["layout"].startswith("vainf"):
                raise CheckpointError(f"{e} (the file is a DeepLabV3Plus-Pytorch checkpoint: use "
                                      "model=deeplabv3plus_cityscapes model.weights=PATH)") from None
            raise
        log.info("loaded %s weights from %s", type(self.model).__name__, path)


class SmpDeepLabV3Plus(SmpSegmenter):
    """smp DeepLabV3+ (`smp.DeepLabV3Plus`) built from config.

    encoder_name: any smp encoder (resnet18/50/101, mobilenet_v2, efficientnet-b0, ...) or a timm
    encoder as `tu-<timm name>`. encoder_weights: "imagenet" or None. output_stride: 16 or 8.
    atrous_rates: None means the DeepLab paper's (6, 12, 18) at OS16 and (12, 24, 36) at OS8 (smp's
    own default is (12, 24, 36) for both). hub_id: load an smp hub model instead (any architecture;
    the encoder_* keys are then ignored).
    """

    def __init__(self, encoder_name: str = "resnet18", encoder_weights: str | None = "imagenet",
                 output_stride: int = 16, num_classes: int = 19, weights: str | None = None,
                 hub_id: str | None = None, atrous_rates: Sequence[int] | None = None,
                 aspp_separable: bool = True, aspp_dropout: float = 0.5):
        if hub_id:
            model = _from_hub(hub_id, num_classes)
        else:
            if output_stride not in (8, 16):
                raise ConfigError(f"model.output_stride={output_stride!r} is not supported; use 16 or 8")
            _check_encoder(encoder_name)
            rates = tuple(atrous_rates) if atrous_rates else ((12, 24, 36) if output_stride == 8 else (6, 12, 18))
            enc_weights = None if (weights or encoder_weights in _NO_WEIGHTS) else encoder_weights
            if enc_weights is not None and encoder_name.startswith("tu-"):
                enc_weights = True  # timm encoders take a flag; the tag is part of the name
            kwargs = dict(encoder_name=encoder_name, encoder_output_stride=output_stride, classes=int(num_classes),
                          decoder_atrous_rates=rates, decoder_aspp_separable=aspp_separable,
                          decoder_aspp_dropout=aspp_dropout)
            try:
                model = smp.DeepLabV3Plus(encoder_weights=enc_weights, **kwargs)
            except (KeyError, ValueError, TypeError, NotImplementedError) as e:
                raise ConfigError(f"cannot build smp DeepLabV3+ with encoder {encoder_name!r}, "
                                  f"encoder_weights={encoder_weights!r}, output_stride={output_stride} "
                                  f"({_first_line(e)}); check model.encoder_name/encoder_weights") from None
            except Exception as e:  # noqa: BLE001 - offline, no cache, hub errors: all mean "no weights"
                raise CheckpointError(
                    f"cannot get {encoder_weights} weights for encoder {encoder_name} from the Hugging Face hub "
                    f"or its cache ({_first_line(e)}); pass model.weights=/path/to/model.pth (a local state dict "
                    "of the whole model) or model.encoder_weights=null (random init)") from None
        super().__init__(model)
        self.encoder_name = encoder_name
        self.num_classes = int(num_classes)
        if weights:
            self._load_local(str(weights))

    @staticmethod
    def pretrained_input_config(encoder_name: str = "resnet18", **_) -> dict[str, Any]:
        """ImageNet mean/std; a timm (`tu-`) encoder's own pretrained mean/std when it has one."""
        if str(encoder_name).startswith("tu-"):
            from cvexp.models.timm_models import timm_input_config

            cfg = timm_input_config(encoder_name[3:])
            if "mean" in cfg and "std" in cfg:
                return {"mean": tuple(cfg["mean"]), "std": tuple(cfg["std"])}
        return imagenet_input_config()


def _check_encoder(name: str) -> None:
    if name.startswith("tu-"):
        import timm

        if not timm.is_model(name[3:].split(".")[0]):
            raise ConfigError(f"model.encoder_name={name!r}: {name[3:]!r} is not a timm model; "
                              "see timm.list_models()")
    elif name not in smp.encoders.get_encoder_names():
        raise ConfigError(f"model.encoder_name={name!r} is not an smp encoder; see "
                          "smp.encoders.get_encoder_names() or use a timm encoder as 'tu-<name>'")


def _from_hub(hub_id: str, num_classes: int | None) -> nn.Module:
    if not hasattr(smp, "from_pretrained"):
        raise ConfigError("model.hub_id needs segmentation-models-pytorch >= 0.4 (smp.from_pretrained)")
    try:
        model = smp.from_pretrained(hub_id)
    except Exception as e:  # noqa: BLE001 - offline, no cache, unknown repo
        raise CheckpointError(
            f"cannot load smp hub model {hub_id!r} from the Hugging Face hub or its cache ({_first_line(e)}); "
            "run once online to cache it, give a local folder written by save_pretrained as model.hub_id, "
            "or set model.hub_id=null") from None
    head = getattr(model, "segmentation_head", None)
    conv = next((m for m in head.modules() if isinstance(m, nn.Conv2d)), None) if head is not None else None
    if num_classes is not None and conv is not None and conv.out_channels != int(num_classes):
        raise ConfigError(f"smp hub model {hub_id!r} predicts {conv.out_channels} classes but "
                          f"model.num_classes={num_classes}; use a dataset with {conv.out_channels} classes "
                          "(e.g. Cityscapes train ids for the Cityscapes checkpoints)")
    return model
