"""timm classifiers: ImageNet weights from timm's hub/cache, or from a local file."""

from __future__ import annotations

import logging
from typing import Any

import timm
import torch
from torch import nn

from cvexp.errors import CheckpointError, ConfigError
from cvexp.io.checkpoint import load_state_dict_file
from cvexp.models.weights import load_into, strip_prefixes

log = logging.getLogger(__name__)


def timm_input_config(name: str) -> dict[str, Any]:
    """The model's pretrained input convention (`input_size`, `mean`, `std`) without building it."""
    cfg = timm.get_pretrained_cfg(name)
    if cfg is None:
        return {}
    cfg = cfg.to_dict()
    return {k: cfg[k] for k in ("input_size", "mean", "std") if k in cfg}


class TimmClassifier(nn.Module):
    """A timm model with the `forward_features`/`forward_head` split the analysis tools use.

    `freeze_backbone=True` trains the classifier only (linear probing): backbone parameters get
    no gradients and its batch-norm statistics stay fixed.
    """

    def __init__(self, name: str = "resnet18", num_classes: int = 10, pretrained: bool = True,
                 weights: str | None = None, freeze_backbone: bool = False, drop_rate: float = 0.0):
        super().__init__()
        if name not in timm.list_models():
            raise ConfigError(f"model.name={name!r} is not a timm model; see timm.list_models()")
        self.name = name
        if weights:
            self.model = timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
            self._load_local(weights)
        elif pretrained:
            self.model = self._create_from_hub(name, num_classes, drop_rate)
        else:
            self.model = timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
        self.num_features = self.model.num_features
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            head = {id(p) for p in self.model.get_classifier().parameters()}
            for p in self.model.parameters():
                p.requires_grad_(id(p) in head)

    @staticmethod
    def pretrained_input_config(name: str = "resnet18", **_) -> dict[str, Any]:
        return timm_input_config(name)

    @staticmethod
    def _create_from_hub(name: str, num_classes: int, drop_rate: float) -> nn.Module:
        try:
            return timm.create_model(name, pretrained=True, num_classes=num_classes, drop_rate=drop_rate)
        except Exception as e:  # noqa: BLE001 - offline, no cache, hub errors: all mean "no weights"
            raise CheckpointError(
                f"cannot get ImageNet weights for {name}: not in the timm/Hugging Face cache and the hub "
                f"cannot be reached ({type(e).__name__}); "
                f"pass model.weights=/path/to/{name}.pth (a local state dict) or model.pretrained=false"
            ) from None

    def _load_local(self, path: str) -> None:
        state = strip_prefixes(load_state_dict_file(path), ("module.", "net.model.", "model."))
        classifier = self.model.pretrained_cfg.get("classifier", "fc")
        own = self.model.state_dict()
        # A new head is trained when the file's classifier has another number of classes.
        head_mismatch = any(k.startswith(classifier + ".") and k in own and v.shape != own[k].shape
                            for k, v in state.items())
        load_into(self.model, state, path, skip=(classifier + ".",) if head_mismatch else ())
        log.info("loaded %s weights from %s%s", self.name, path, " (new classifier)" if head_mismatch else "")

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone and mode:
            self.model.eval()
            self.model.get_classifier().train()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.get_classifier()(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
