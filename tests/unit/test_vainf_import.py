"""Import of DeepLabV3Plus-Pytorch (VainF) checkpoints: round trip in the real file format, strictness."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from foreign_files import save_vainf_checkpoint

from cvexp.engine import build
from cvexp.errors import CheckpointError, ConfigError
from cvexp.models import deeplab_vainf as V

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Tiny convolutions: one thread each (the `one_thread` fixture in conftest)."""


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights and batch-norm statistics, so that every tensor matters for the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if not v.is_floating_point():
                continue
            noise = torch.randn(v.shape, generator=g)
            v.copy_(noise.abs() * 0.5 + 0.5 if k.endswith("running_var") else noise * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def mobilenet():
    return _randomize(V.VainfDeepLabV3Plus("mobilenet"), 1)


@pytest.fixture(scope="module")
def resnet50():
    return _randomize(V.VainfDeepLabV3Plus("resnet50"), 2)


@pytest.fixture(scope="module")
def mobilenet_file(mobilenet, tmp_path_factory):
    # as VainF writes it: best_score is a numpy float64 (from np.nanmean)
    path = tmp_path_factory.mktemp("vainf") / "best_deeplabv3plus_mobilenet_cityscapes_os16.pth"
    return save_vainf_checkpoint(mobilenet, path, cur_itrs=30000, best_score=np.float64(0.721))


def _same_output(a, b):
    with torch.no_grad():
        return torch.equal(a(X), b(X))


def _one_line_error(fn, *match):
    with pytest.raises(CheckpointError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg
    for m in match:
        assert m in msg, msg
    return msg


def test_file_has_the_real_format(mobilenet_file):
    ckpt = torch.load(mobilenet_file, weights_only=False)
    assert set(ckpt) == {"model_state", "optimizer_state", "scheduler_state", "cur_itrs", "best_score"}
    keys = list(ckpt["model_state"])
    assert keys[0] == "backbone.low_level_features.0.0.weight"
    assert "backbone.high_level_features.17.conv.2.weight" in keys
    assert not any(k.startswith("backbone.high_level_features.18") for k in keys)
    for k in ("classifier.project.0.weight", "classifier.aspp.convs.0.0.weight", "classifier.aspp.convs.3.0.weight",
              "classifier.aspp.convs.4.1.weight", "classifier.aspp.project.0.weight",
              "classifier.classifier.0.weight", "classifier.classifier.3.bias"):
        assert k in keys, k
    assert ckpt["model_state"]["classifier.classifier.3.weight"].shape == (19, 256, 1, 1)
    assert isinstance(ckpt["optimizer_state"]["param_groups"], list) and ckpt["cur_itrs"] == 30000


def test_round_trip_mobilenet(mobilenet, mobilenet_file):
    imported = V.import_vainf_checkpoint(mobilenet_file, "mobilenet")
    assert not imported.training
    assert _same_output(mobilenet, imported)
    out = imported(X)
    assert out.shape == (1, 19, 64, 64)


def test_round_trip_resnet50_and_the_config_class(resnet50, tmp_path):
    path = save_vainf_checkpoint(resnet50, tmp_path / "best_deeplabv3plus_resnet50_cityscapes_os16.pth.tar")
    imported = V.import_vainf_checkpoint(path, "resnet50")
    assert _same_output(resnet50, imported)
    from_config = V.VainfDeepLabV3Plus(backbone="resnet50", num_classes=19, output_stride=16, weights=str(path)).eval()
    assert _same_output(resnet50, from_config)


def test_resnet101_builds_with_the_checkpoint_layout():
    model = V.VainfDeepLabV3Plus("resnet101")
    state = model.state_dict()
    assert len(state) == 674
    assert V.describe_state(state) == {"layout": "vainf-deeplabv3plus", "backbone": "resnet101", "num_classes": 19}
    assert "backbone.layer3.22.conv3.weight" in state and not any(k.startswith("backbone.fc") for k in state)
    # OS16: layer4 dilated (stride 1, dilation 2), layer3 strided
    assert model.backbone.layer4[0].conv2.stride == (1, 1) and model.backbone.layer4[0].conv2.dilation == (1, 1)
    assert model.backbone.layer4[1].conv2.dilation == (2, 2) and model.backbone.layer3[0].conv2.stride == (2, 2)
    assert [c[0].dilation[0] for c in list(model.classifier.aspp.convs)[1:4]] == [6, 12, 18]


def test_output_stride_8_and_odd_sizes():
    model = V.VainfDeepLabV3Plus("mobilenet", num_classes=5, output_stride=8).eval()
    assert [c[0].dilation[0] for c in list(model.classifier.aspp.convs)[1:4]] == [12, 24, 36]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 61)).shape == (1, 5, 45, 61)
    assert V.VainfDeepLabV3Plus.pretrained_input_config(backbone="mobilenet") == {
        "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def test_dataparallel_prefix_bare_state_dict_and_numpy1_pickles(mobilenet, mobilenet_file, tmp_path):
    state = torch.load(mobilenet_file, weights_only=False)["model_state"]
    torch.save({"model_state": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "dp.pth")
    assert _same_output(mobilenet, V.import_vainf_checkpoint(tmp_path / "dp.pth", "mobilenetv2"))
    torch.save(state, tmp_path / "bare.pth")
    assert _same_output(mobilenet, V.import_vainf_checkpoint(tmp_path / "bare.pth", "mobilenet"))
    # files from the numpy 1.x era name numpy.core.multiarray.scalar (legacy torch format here)
    legacy = tmp_path / "legacy.pth"
    torch.save({"model_state": state, "best_score": np.float64(0.7)}, legacy, _use_new_zipfile_serialization=False)
    raw = legacy.read_bytes()
    assert b"numpy._core.multiarray\nscalar" in raw
    legacy.write_bytes(raw.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar"))
    assert _same_output(mobilenet, V.import_vainf_checkpoint(legacy, "mobilenet"))


def test_missing_num_batches_tracked_is_tolerated(mobilenet, mobilenet_file, tmp_path):
    state = torch.load(mobilenet_file, weights_only=False)["model_state"]
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"model_state": state}, tmp_path / "old.pth")
    assert _same_output(mobilenet, V.import_vainf_checkpoint(tmp_path / "old.pth", "mobilenet"))


def test_wrong_backbone_names_the_one_that_fits(mobilenet_file):
    _one_line_error(lambda: V.import_vainf_checkpoint(mobilenet_file, "resnet50"),
                    "missing", "unexpected", "model.backbone=mobilenet")


def test_wrong_num_classes(mobilenet_file):
    _one_line_error(lambda: V.import_vainf_checkpoint(mobilenet_file, "mobilenet", num_classes=21),
                    "wrong shape", "classifier.classifier.3", "model.num_classes=19")


def _edited(path, tmp_path, edit):
    state = torch.load(path, weights_only=False)["model_state"]
    out = tmp_path / "edited.pth"
    torch.save({"model_state": edit(dict(state)), "cur_itrs": 1}, out)
    return out


def test_missing_keys(mobilenet_file, tmp_path):
    path = _edited(mobilenet_file, tmp_path, lambda s: {k: v for k, v in s.items() if "aspp.project" not in k})
    _one_line_error(lambda: V.import_vainf_checkpoint(path, "mobilenet"), "5 missing", "classifier.aspp.project")


def test_extra_keys(mobilenet_file, tmp_path):
    path = _edited(mobilenet_file, tmp_path, lambda s: {**s, "aux_classifier.weight": torch.zeros(3)})
    _one_line_error(lambda: V.import_vainf_checkpoint(path, "mobilenet"), "1 unexpected", "aux_classifier.weight")


def test_wrong_shape(mobilenet_file, tmp_path):
    path = _edited(mobilenet_file, tmp_path,
                   lambda s: {**s, "classifier.project.0.weight": torch.zeros(48, 24, 3, 3)})
    _one_line_error(lambda: V.import_vainf_checkpoint(path, "mobilenet"), "wrong shape", "classifier.project.0.weight")


class NotTensors:  # a pickled object: loading it would need code
    pass


def test_not_a_plain_checkpoint(tmp_path):
    torch.save({"model_state": {"a": torch.zeros(1)}, "extra": NotTensors()}, tmp_path / "code.pth")
    _one_line_error(lambda: V.import_vainf_checkpoint(tmp_path / "code.pth", "mobilenet"),
                    "not a plain checkpoint", "NotTensors")
    (tmp_path / "text.pth").write_text("hello")
    _one_line_error(lambda: V.import_vainf_checkpoint(tmp_path / "text.pth", "mobilenet"), "cannot read")
    torch.save({"cur_itrs": 3, "best_score": 0.5}, tmp_path / "nostate.pth")
    _one_line_error(lambda: V.import_vainf_checkpoint(tmp_path / "nostate.pth", "mobilenet"), "holds no state dict")


def test_file_missing(tmp_path):
    _one_line_error(lambda: V.import_vainf_checkpoint(tmp_path / "nope.pth.tar", "resnet101"),
                    "does not exist", "model.weights")


def test_bad_config_values():
    with pytest.raises(ConfigError, match="model.backbone"):
        V.VainfDeepLabV3Plus("xception")
    with pytest.raises(ConfigError, match="model.output_stride"):
        V.VainfDeepLabV3Plus("mobilenet", output_stride=32)


def test_local_imagenet_backbone_in_torchvision_layout(tmp_path):
    import torchvision

    tv = torchvision.models.mobilenet_v2(weights=None)
    torch.save(tv.state_dict(), tmp_path / "mobilenet_v2.pth")
    model = V.VainfDeepLabV3Plus("mobilenet", pretrained_backbone=str(tmp_path / "mobilenet_v2.pth"))
    high = model.backbone.high_level_features
    assert torch.equal(getattr(high, "14").conv[1][0].weight, tv.features[14].conv[1][0].weight)
    assert torch.equal(model.backbone.low_level_features[0][0].weight, tv.features[0][0].weight)


def test_config_route(compose_cfg, mobilenet, mobilenet_file):

    cfg = compose_cfg("train", ["model=deeplabv3plus_cityscapes", "data=demo_cityscapes", "model.backbone=mobilenet",
                                f"model.weights={mobilenet_file}"])
    net = build.build_model(cfg.model, 19).eval()
    assert _same_output(mobilenet, net)
    assert collections.Counter(type(m).__name__ for m in net.modules())["_InvertedResidual"] == 17
