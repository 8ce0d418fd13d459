"""cvexp.theory: L2 regularisation three ways, the demonstration tables, the `regularization`
config group, and the classification task's use of the penalty. See docs/theory.md."""

from __future__ import annotations

import copy
import math
import runpy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cvexp.theory import losses
from cvexp.theory import demos
from cvexp.theory.regularization import MODES, make_logistic_data, make_optimizer, train_logistic_regression

PROPS = settings(max_examples=15, deadline=None)
DT = torch.float64


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).to(DT)


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 4, generator=g, dtype=DT), torch.randint(0, 2, (8,), generator=g)


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int, penalty: float = 0.0):
    for i in range(steps):
        x, y = _batch(seed + i)
        opt.zero_grad()
        loss = losses.cross_entropy(model(x), y)
        if penalty:
            loss = loss + losses.l2_penalty(model.parameters(), penalty)
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# --------------------------------------------------------------------------- L2 three ways

@PROPS
@given(lr=st.floats(1e-3, 0.5), lam=st.floats(0.0, 0.5), momentum=st.sampled_from([0.0, 0.9]),
       seed=st.integers(0, 10_000))
def test_explicit_l2_penalty_with_sgd_equals_sgd_weight_decay(lr, lam, momentum, seed):
    """loss + lam/2 ||w||^2 under SGD follows the same trajectory as SGD(weight_decay=lam)."""
    a, b = _model(seed), _model(seed)
    wa = _train(a, torch.optim.SGD(a.parameters(), lr=lr, momentum=momentum), 5, seed, penalty=lam)
    wb = _train(b, torch.optim.SGD(b.parameters(), lr=lr, momentum=momentum, weight_decay=lam), 5, seed)
    assert torch.allclose(wa, wb, rtol=1e-10, atol=1e-12)


@PROPS
@given(lr=st.floats(1e-4, 0.1), lam=st.floats(1e-3, 0.5), seed=st.integers(0, 10_000))
def test_explicit_l2_penalty_with_adam_equals_adam_weight_decay_not_adamw(lr, lam, seed):
    """Adam's weight_decay is coupled (= explicit penalty); AdamW's decoupled decay is a different update."""
    a, b, c = _model(seed), _model(seed), _model(seed)
    wa = _train(a, torch.optim.Adam(a.parameters(), lr=lr), 5, seed, penalty=lam)
    wb = _train(b, torch.optim.Adam(b.parameters(), lr=lr, weight_decay=lam), 5, seed)
    wc = _train(c, torch.optim.AdamW(c.parameters(), lr=lr, weight_decay=lam), 5, seed)
    assert torch.allclose(wa, wb, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(wa, wc, rtol=1e-6, atol=1e-9)


@PROPS
@given(lr=st.floats(1e-3, 0.5), lam=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_sgd_weight_decay_update_is_shrink_then_step(lr, lam, seed):
    """One SGD(weight_decay) step is w <- (1 - lr lam) w - lr grad (losses.sgd_l2_update)."""
    model = _model(seed)
    w0 = [p.detach().clone() for p in model.parameters()]
    x, y = _batch(seed)
    grads = torch.autograd.grad(losses.cross_entropy(model(x), y), list(model.parameters()))
    _train(model, torch.optim.SGD(model.parameters(), lr=lr, weight_decay=lam), 1, seed)
    for p, w, g in zip(model.parameters(), w0, grads):
        assert torch.allclose(p.detach(), losses.sgd_l2_update(w, g, lr, lam), rtol=1e-12, atol=1e-14)


@PROPS
@given(lr=st.floats(1e-4, 0.1), lam=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_adamw_first_step_decays_then_takes_adam_step(lr, lam, seed):
    """AdamW step 1: w <- (1 - lr lam) w - lr g / (|g| + eps); the decay never enters Adam's moments."""
    model = _model(seed)
    w0 = [p.detach().clone() for p in model.parameters()]
    x, y = _batch(seed)
    grads = torch.autograd.grad(losses.cross_entropy(model(x), y), list(model.parameters()))
    _train(model, torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=lam, eps=1e-8), 1, seed)
    for p, w, g in zip(model.parameters(), w0, grads):
        expected = (1 - lr * lam) * w - lr * g / (g.abs() + 1e-8)
        assert torch.allclose(p.detach(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("mode", "optimizer"), [("l2_penalty", "sgd"), ("weight_decay", "sgd"),
                                                 ("l2_penalty", "adam"), ("weight_decay", "adam"),
                                                 ("decoupled_weight_decay", "adam")])
def test_training_with_l2_gives_smaller_weight_norms(mode, optimizer):
    x, y = make_logistic_data(n=100)
    lr = 0.5 if optimizer == "sgd" else 0.05
    plain = train_logistic_regression(x, y, "none", lam=0.0, lr=lr, steps=150, optimizer=optimizer)
    reg = train_logistic_regression(x, y, mode, lam=0.05, lr=lr, steps=150, optimizer=optimizer)
    assert reg.weight_norm < 0.9 * plain.weight_norm
    assert reg.accuracy == 1.0 and plain.accuracy == 1.0          # separable: both still fit it
    assert reg.data_loss > plain.data_loss                          # L2 trades data fit for small weights


def test_l2_bounds_the_weights_on_separable_data():
    """Without L2 the norm keeps growing (no finite minimiser); with L2 it converges."""
    x, y = make_logistic_data(n=100)
    norms = {steps: train_logistic_regression(x, y, "none", lam=0.0, steps=steps).weight_norm for steps in (100, 400)}
    assert norms[400] > norms[100] + 0.5
    reg = {steps: train_logistic_regression(x, y, "l2_penalty", lam=0.05, steps=steps).weight_norm
           for steps in (200, 400)}
    assert abs(reg[400] - reg[200]) < 1e-4 and reg[400] < norms[100]


def test_l2_penalty_and_weight_decay_fits_coincide():
    x, y = make_logistic_data(n=50)
    a = train_logistic_regression(x.double(), y.double(), "l2_penalty", lam=0.1, steps=50)
    b = train_logistic_regression(x.double(), y.double(), "weight_decay", lam=0.1, steps=50)
    assert torch.allclose(a.weight, b.weight, rtol=1e-10) and torch.allclose(a.bias, b.bias, rtol=1e-10)


def test_make_optimizer_modes():
    p = [nn.Parameter(torch.zeros(2))]
    cases = {("none", "sgd"): (torch.optim.SGD, 0.0), ("l2_penalty", "sgd"): (torch.optim.SGD, 0.0),
             ("weight_decay", "sgd"): (torch.optim.SGD, 0.1), ("decoupled_weight_decay", "sgd"): (torch.optim.SGD, 0.1),
             ("weight_decay", "adam"): (torch.optim.Adam, 0.1),
             ("decoupled_weight_decay", "adam"): (torch.optim.AdamW, 0.1)}
    for (mode, name), (cls, wd) in cases.items():
        opt = make_optimizer(p, mode, lr=0.1, lam=0.1, optimizer=name)
        assert type(opt) is cls and opt.param_groups[0]["weight_decay"] == wd
    assert set(MODES) == {m for m, _ in cases}
    with pytest.raises(ValueError, match="mode"):
        make_optimizer(p, "l1", 0.1, 0.1)
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer(p, "none", 0.1, 0.1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="decoupled"):
        make_optimizer(p, "decoupled_weight_decay", 0.1, 0.1, momentum=0.9)


# --------------------------------------------------------------------------- demonstration tables

def test_demo_softmax_table_naive_nan_stable_finite():
    t = demos.softmax_overflow()
    naive, stable = t.column("naive softmax"), t.column("stable softmax")
    assert not any(math.isnan(v) for v in naive[0])                       # [1, 2, 3] is fine both ways
    assert all(any(math.isnan(v) for v in row) for row in naive[1:])      # large logits break it
    for row in stable:
        assert all(math.isfinite(v) for v in row) and sum(row) == pytest.approx(1.0, abs=1e-6)
    assert stable[1] == pytest.approx(stable[0], abs=1e-6)                 # shift invariance


def test_demo_bce_table():
    t = demos.bce_overflow()
    for z, y, _, naive, stable, ref in t.rows:
        assert math.isfinite(stable) and stable == pytest.approx(ref, rel=1e-4, abs=1e-30)
        if abs(z) >= 100:
            assert not math.isfinite(naive)


def test_demo_gradient_table():
    t = demos.mse_vs_bce_gradients()
    rows = {r[0]: r for r in t.rows}
    assert abs(rows[-10.0][3]) < 1e-3 and rows[-10.0][5] < -0.99
    for z, p, _, g_mse, _, g_bce in t.rows:
        assert g_bce == pytest.approx(p - 1.0)
        assert g_mse == pytest.approx(2 * (p - 1) * p * (1 - p))


def test_demo_worked_examples_and_mean():
    t = demos.bce_worked_examples()
    per = t.column("loss")[:-1]
    assert per == pytest.approx([-math.log(0.9), -math.log(0.6), -math.log(0.1), -math.log(0.8), -math.log(0.3)])
    assert t.rows[-1][0] == "mean" and t.rows[-1][-1] == pytest.approx(sum(per) / len(per))


def test_demo_kl_table():
    for _, _, h, ce, kl, diff in demos.kl_vs_cross_entropy().rows:
        assert kl == pytest.approx(diff, abs=1e-12) and kl >= 0 and ce >= h


def test_demo_weight_norms_table():
    t = demos.l2_weight_norms(steps=150)
    norm = {(r[0], r[1].split()[0]): r[3] for r in t.rows}
    assert norm[("l2_penalty", "sgd")] < norm[("none", "sgd")]
    assert norm[("l2_penalty", "sgd")] == pytest.approx(norm[("weight_decay", "sgd")], rel=1e-5)
    assert norm[("weight_decay", "adam")] < norm[("none", "adam")]
    assert norm[("decoupled_weight_decay", "adam")] < norm[("none", "adam")]


def test_python_m_cvexp_theory_prints_all_tables(capsys):
    runpy.run_module("cvexp.theory", run_name="__main__")
    out = capsys.readouterr().out
    for title in ("Softmax: naive vs log-sum-exp", "Binary cross-entropy: naive vs stable",
                  "MSE vs BCE", "BCE worked examples", "KL divergence", "Logistic regression"):
        assert title in out
    assert "nan" in out and "inf" in out
    assert demos.Table("t", ["a", "b"], [[1.5, "x"]]).render().splitlines()[-1].split() == ["1.5", "x"]


# --------------------------------------------------------------------------- config group

REG_EXPECTED = {
    "none": ("torch.optim.Adam", 0.0, 0.0),
    "l2_penalty": ("torch.optim.Adam", 0.0, 5e-4),
    "weight_decay": ("torch.optim.Adam", 5e-4, 0.0),
    "decoupled_weight_decay": ("torch.optim.AdamW", 1e-2, 0.0),
}


@pytest.mark.parametrize("option", sorted(REG_EXPECTED))
def test_regularization_config_options(compose_cfg, option):
    from hydra.utils import instantiate

    target, wd, pen = REG_EXPECTED[option]
    cfg = compose_cfg("train", [f"regularization={option}"])
    assert cfg.hydra.runtime.choices.regularization == option
    assert cfg.optimizer._target_ == target and cfg.optimizer._partial_ is True
    assert cfg.optimizer.weight_decay == pytest.approx(wd)
    assert cfg.task.l2_penalty == pytest.approx(pen)
    assert "regularization" not in cfg                       # _global_: the group only sets other keys
    opt = instantiate(cfg.optimizer)(params=[nn.Parameter(torch.zeros(2))])
    assert type(opt).__name__ == target.rsplit(".", 1)[1]
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(wd)


def test_regularization_options_with_other_optimizers(compose_cfg):
    cfg = compose_cfg("train", ["optimizer=sgd", "regularization=weight_decay"])
    assert cfg.optimizer._target_ == "torch.optim.SGD" and cfg.optimizer.weight_decay == pytest.approx(5e-4)
    assert cfg.optimizer.momentum == 0.9                      # the rest of the optimizer is kept
    cfg = compose_cfg("train", ["optimizer=sgd", "regularization=l2_penalty", "task.l2_penalty=0.01"])
    assert cfg.optimizer.weight_decay == 0.0 and cfg.task.l2_penalty == pytest.approx(0.01)
    cfg = compose_cfg("train", ["optimizer=adamw", "regularization=l2_penalty"])
    assert cfg.optimizer.weight_decay == 0.0                  # adamw's own decay switched off
    cfg = compose_cfg("train", ["optimizer=adamw", "regularization=decoupled_weight_decay",
                                "optimizer.weight_decay=0.05"])
    assert cfg.optimizer._target_ == "torch.optim.AdamW" and cfg.optimizer.weight_decay == pytest.approx(0.05)


# --------------------------------------------------------------------------- classification task

class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.head = nn.Linear(3, 2)

    def forward_features(self, x):
        return torch.relu(self.body(x))

    def forward_head(self, f):
        return self.head(f)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def test_classification_loss_includes_l2_penalty():
    from cvexp.tasks.classification import ClassificationModule

    torch.manual_seed(0)
    net = TinyNet()
    plain = ClassificationModule(net=net, class_names=["a", "b"])
    lam = 0.3
    penalised = ClassificationModule(net=copy.deepcopy(net), class_names=["a", "b"], l2_penalty=lam)
    logits, y = torch.randn(5, 2), torch.tensor([0, 1, 1, 0, 1])
    base = plain.loss(logits, y)
    assert torch.allclose(base, losses.cross_entropy(logits, y))
    expected_pen = 0.5 * lam * sum(float((p.detach() ** 2).sum()) for p in net.parameters())
    assert float(penalised.loss(logits, y).detach() - base) == pytest.approx(expected_pen, rel=1e-5)
    net.head.weight.requires_grad_(False)          # only trainable parameters are penalised
    frozen = ClassificationModule(net=net, class_names=["a", "b"], l2_penalty=lam)
    expected_frozen = expected_pen - 0.5 * lam * float((net.head.weight.detach() ** 2).sum())
    assert float(frozen.loss(logits, y).detach() - base) == pytest.approx(expected_frozen, rel=1e-5)
