import pytest
import timm
import torch

from cvexp.errors import CheckpointError, ConfigError
from cvexp.models.convnet import ConvNet
from cvexp.models.timm_models import TimmClassifier, timm_input_config


def test_convnet_default_is_the_reference_cnn():
    net = ConvNet(num_classes=10, input_size=224)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (3, 32, (3, 3), (1, 1), (1, 1)), (32, 64, (3, 3), (1, 1), (1, 1)), (64, 128, (3, 3), (1, 1), (1, 1))]
    pools = [m.kernel_size for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert pools == [4, 2, 2]
    assert all(isinstance(m, torch.nn.ReLU) for m in net.features.modules()
               if isinstance(m, (torch.nn.ReLU, torch.nn.GELU, torch.nn.SiLU)))
    assert net.num_features == 128 * 14 * 14  # computed, 224 / 16 = 14
    assert net(torch.zeros(2, 3, 224, 224)).shape == (2, 10)


@pytest.mark.parametrize("size", [32, 64, 96])
def test_convnet_flatten_size_follows_config(size):
    blocks = [{"channels": 8, "pool": 2, "activation": "gelu", "batch_norm": True, "dropout": 0.1},
              {"channels": 16, "kernel": 5, "padding": 2, "stride": 2, "activation": "leaky_relu"}]
    net = ConvNet(num_classes=3, blocks=blocks, input_size=size, activation="silu")
    assert net.num_features == 16 * (size // 4) ** 2
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.GELU) for m in net.modules())
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in net.modules())
    feats = net.forward_features(torch.zeros(1, 3, size, size))
    assert feats.shape == (1, net.num_features)
    assert net.forward_head(feats).shape == (1, 3)
    gp = ConvNet(num_classes=3, blocks=blocks, input_size=size, global_pool=True)
    assert gp.num_features == 16


def test_convnet_bad_config():
    from cvexp.errors import ConfigError

    with pytest.raises(ConfigError, match="activation"):
        ConvNet(num_classes=2, blocks=[{"channels": 4, "activation": "tanhh"}], input_size=32)
    with pytest.raises(ConfigError, match="shrink"):
        ConvNet(num_classes=2, blocks=[{"channels": 4, "pool": 8}] * 3, input_size=32)
    with pytest.raises(ConfigError, match=r"model.blocks\[0\] has unknown key\(s\) out_channels; a block takes"):
        ConvNet(num_classes=2, blocks=[{"out_channels": 8}], input_size=32)
    with pytest.raises(ConfigError, match=r"model.blocks\[1\] needs 'channels'"):
        ConvNet(num_classes=2, blocks=[{"channels": 4}, {"pool": 2}], input_size=32)


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    """A stand-in for downloaded ImageNet weights: a timm resnet18 state dict with 1000 classes."""
    torch.manual_seed(0)
    src = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(src.state_dict(), path)
    return path, src.state_dict()


def test_resnet18_from_local_file_keeps_backbone_and_gets_a_new_head(imagenet_file):
    path, src = imagenet_file
    net = TimmClassifier("resnet18", num_classes=10, weights=str(path))
    own = net.model.state_dict()
    assert torch.equal(own["conv1.weight"], src["conv1.weight"])
    assert torch.equal(own["layer4.1.bn2.running_mean"], src["layer4.1.bn2.running_mean"])
    assert own["fc.weight"].shape == (10, 512)
    assert net.forward_features(torch.zeros(2, 3, 64, 64)).shape == (2, 512)
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 10)


def test_resnet18_freeze_backbone_trains_only_the_head(imagenet_file):
    net = TimmClassifier("resnet18", num_classes=4, weights=str(imagenet_file[0]), freeze_backbone=True)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"model.fc.weight", "model.fc.bias"}
    net.train()
    assert not net.model.bn1.training and net.model.fc.training


def test_weights_file_errors(tmp_path, imagenet_file):
    with pytest.raises(CheckpointError, match="does not exist"):
        TimmClassifier("resnet18", num_classes=10, weights=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        TimmClassifier("resnet18", num_classes=10, weights=str(junk))
    other = tmp_path / "resnet34.pth"
    torch.save(timm.create_model("resnet34", pretrained=False).state_dict(), other)
    with pytest.raises(CheckpointError, match="do not fit") as e:
        TimmClassifier("resnet18", num_classes=10, weights=str(other))
    assert "\n" not in str(e.value)


def test_offline_without_cache_names_both_ways_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError) as e:
        TimmClassifier("resnet18", num_classes=10, pretrained=True)
    assert "model.weights=" in str(e.value) and "model.pretrained=false" in str(e.value)


def test_unknown_timm_name():
    with pytest.raises(ConfigError, match="not a timm model"):
        TimmClassifier("resnet_nonexistent", num_classes=2, pretrained=False)


def test_input_config_comes_from_the_pretrained_cfg():
    cfg = timm_input_config("resnet18")
    assert cfg["input_size"] == (3, 224, 224)
    assert tuple(cfg["mean"]) == (0.485, 0.456, 0.406)
