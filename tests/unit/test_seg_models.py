"""smp DeepLabV3+: logits at the input size, output strides, timm encoders, local weights, offline errors."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from cvexp.engine import build
from cvexp.errors import CheckpointError, ConfigError
from cvexp.models.segmentation import SmpDeepLabV3Plus


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Tiny convolutions: one thread each (the `one_thread` fixture in conftest)."""


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 (conftest) and an empty cache: nothing can be found, nothing is fetched."""
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_resnet18_logits_at_input_size(output_stride):
    net = SmpDeepLabV3Plus("resnet18", encoder_weights=None, output_stride=output_stride, num_classes=5).eval()
    assert net.size_multiple == output_stride
    rates = [m.dilation[0] for m in net.model.modules()
             if isinstance(m, torch.nn.Conv2d) and m.dilation[0] > 1 and m.in_channels == m.out_channels == m.groups]
    assert rates == ([6, 12, 18] if output_stride == 16 else [12, 24, 36])
    with torch.no_grad():
        for h, w in [(64, 64), (37, 53), (1 * output_stride + 1, 3)]:
            assert net(torch.randn(2, 3, h, w)).shape == (2, 5, h, w)


def test_padding_then_cropping_is_exact():
    net = SmpDeepLabV3Plus("resnet18", encoder_weights=None, num_classes=3).eval()
    x = torch.randn(1, 3, 40, 50)
    with torch.no_grad():
        out = net(x)
        ref = net.model(F.pad(x, (0, 14, 0, 8)))[..., :40, :50]  # pad to 48 x 64
        assert torch.equal(out, ref)
        y = torch.randn(1, 3, 32, 48)  # already a multiple: the plain smp model
        assert torch.equal(net(y), net.model(y))


def test_timm_encoder():
    net = SmpDeepLabV3Plus("tu-resnet10t", encoder_weights=None, output_stride=16, num_classes=4).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 33, 45)).shape == (1, 4, 33, 45)
    cfg = SmpDeepLabV3Plus.pretrained_input_config(encoder_name="tu-resnet10t")
    assert set(cfg) == {"mean", "std"} and len(cfg["mean"]) == 3


def test_pretrained_input_config_is_imagenet():
    assert SmpDeepLabV3Plus.pretrained_input_config(encoder_name="resnet50", output_stride=16) == {
        "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


@pytest.mark.parametrize("encoder", ["resnet18", "tu-resnet10t"])
def test_imagenet_weights_offline_fail_fast_with_both_ways_out(empty_hf_cache, encoder):
    start = time.monotonic()
    with pytest.raises(CheckpointError) as e:
        SmpDeepLabV3Plus(encoder, encoder_weights="imagenet", num_classes=3)
    assert time.monotonic() - start < 30
    msg = str(e.value)
    assert "\n" not in msg and "model.weights=" in msg and "model.encoder_weights=null" in msg


def test_hub_offline_error(empty_hf_cache):
    with pytest.raises(CheckpointError, match="smp-hub/segformer-b0-1024x1024-city-160k") as e:
        SmpDeepLabV3Plus(hub_id="smp-hub/segformer-b0-1024x1024-city-160k", num_classes=19)
    assert "\n" not in str(e.value)


def test_bad_config_values():
    with pytest.raises(ConfigError, match="model.encoder_name"):
        SmpDeepLabV3Plus("resnet_nonexistent", encoder_weights=None)
    with pytest.raises(ConfigError, match="model.encoder_name"):
        SmpDeepLabV3Plus("tu-not_a_timm_model", encoder_weights=None)
    with pytest.raises(ConfigError, match="model.output_stride"):
        SmpDeepLabV3Plus("resnet18", encoder_weights=None, output_stride=32)
    with pytest.raises(ConfigError, match="encoder_weights"):
        SmpDeepLabV3Plus("resnet18", encoder_weights="instagram")


def test_local_weights_round_trip(tmp_path):
    a = SmpDeepLabV3Plus("resnet18", encoder_weights=None, num_classes=3).eval()
    torch.save(a.model.state_dict(), tmp_path / "smp.pth")  # smp layout
    torch.save({"state_dict": {f"net.{k}": v for k, v in a.state_dict().items()}}, tmp_path / "run.ckpt")  # cvexp run
    x = torch.randn(1, 3, 35, 35)
    with torch.no_grad():
        for name in ("smp.pth", "run.ckpt"):
            b = SmpDeepLabV3Plus("resnet18", encoder_weights="imagenet", num_classes=3,
                                 weights=str(tmp_path / name)).eval()  # weights win: no download
            assert torch.equal(a(x), b(x))
    with pytest.raises(CheckpointError, match="wrong shape") as e:
        SmpDeepLabV3Plus("resnet18", encoder_weights=None, num_classes=5, weights=str(tmp_path / "smp.pth"))
    assert "\n" not in str(e.value)


def test_vainf_file_into_smp_points_to_the_right_config(tmp_path):
    from foreign_files import save_vainf_checkpoint

    from cvexp.models.deeplab_vainf import VainfDeepLabV3Plus

    path = save_vainf_checkpoint(VainfDeepLabV3Plus("mobilenet"), tmp_path / "best_deeplabv3plus_mobilenet.pth")
    with pytest.raises(CheckpointError, match="model=deeplabv3plus_cityscapes"):
        SmpDeepLabV3Plus("resnet18", encoder_weights=None, num_classes=19, weights=str(path))


def test_config(compose_cfg):

    cfg = compose_cfg("train", ["model=deeplabv3plus", "data=demo_cityscapes", "model.encoder_weights=null"])
    net = build.build_model(cfg.model, 19).eval()  # (train passes the data module's count)
    assert isinstance(net, SmpDeepLabV3Plus) and net.num_classes == 19
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 128)).shape == (1, 19, 64, 128)


def test_checkpoint_without_weight_keys_fetches_nothing(empty_hf_cache):
    """A checkpoint whose stored model config leaves `encoder_weights` out must not get the class's
    default ("imagenet", a download) when it is rebuilt: the weights come from the checkpoint."""
    from cvexp.engine.build import build_from_checkpoint

    net = SmpDeepLabV3Plus("resnet18", encoder_weights=None, num_classes=3)
    from cvexp.tasks.segmentation import SegmentationModule

    state = SegmentationModule(net=net, class_names=["a", "b", "c"]).state_dict()
    config = {"model": {"_target_": "cvexp.models.segmentation.SmpDeepLabV3Plus", "encoder_name": "resnet18"},
              "task": {"_target_": "cvexp.tasks.segmentation.SegmentationModule"}}
    ckpt = {"cvexp": {"config": config, "class_names": ["a", "b", "c"]}, "state_dict": state}
    module, _ = build_from_checkpoint(ckpt, "foreign.ckpt")
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in state.items())
