"""GPU fast paths (cvexp.models.fast) change speed, never results or checkpoints: checked on the
CPU with them forced on."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from cvexp.engine import build
from cvexp.errors import ConfigError
from cvexp.models.fast import apply_fast_paths

CONVNET = {"_target_": "cvexp.models.convnet.ConvNet", "input_size": 32,
           "blocks": [{"channels": 8, "kernel": 3, "stride": 1, "padding": 1, "pool": 2},
                      {"channels": 16, "kernel": 3, "stride": 1, "padding": 1, "pool": 2}]}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny convolutions: one thread each (conftest)."""


def _net(**fast):
    torch.manual_seed(0)
    return build.build_model(OmegaConf.create({**CONVNET, **fast}), 5)


def test_channels_last_gives_the_same_outputs_and_gradients():
    x = torch.randn(4, 3, 32, 32)
    ref, fast = _net(channels_last=False), _net(channels_last=True)
    assert fast.state_dict().keys() == ref.state_dict().keys()
    out_ref, out_fast = ref(x), fast(x)
    assert next(p for p in fast.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-5, atol=1e-5)
    out_ref.sum().backward()
    out_fast.sum().backward()
    for (n, a), b in zip(ref.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=n)


def test_channels_last_auto_leaves_cpu_runs_alone():
    net = _net(channels_last="auto")
    net(torch.randn(2, 3, 32, 32))
    assert not next(p for p in net.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)


def test_compile_keeps_results_and_state_dict_keys():
    x = torch.randn(2, 3, 32, 32)
    ref = _net(channels_last=False)
    compiled = _net(channels_last=False, compile={"backend": "eager"})
    assert list(compiled.state_dict()) == list(ref.state_dict())  # checkpoints load either way
    torch.testing.assert_close(compiled(x), ref(x))


@pytest.mark.parametrize("fast,match", [({"channels_last": "yes"}, "model.channels_last='yes'"),
                                        ({"compile": {"modee": "x"}}, "model.compile=")])
def test_wrong_values_are_one_line(fast, match):
    with pytest.raises(ConfigError, match=match):
        apply_fast_paths(torch.nn.Conv2d(3, 3, 1), **fast)


def test_every_model_config_has_the_fast_path_keys():
    from cvexp.engine.config import config_dir
    from pathlib import Path

    for f in sorted(Path(config_dir(), "model").glob("*.yaml")):
        cfg = OmegaConf.load(f)
        assert cfg.channels_last == "auto" and cfg.compile is False, f.name
