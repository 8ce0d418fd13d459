"""cvexp.theory.losses: stable losses against closed forms, autograd, PyTorch, and their naive references.

docs/theory.md names these tests next to the statements they check.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cvexp.theory import losses

PROPS = settings(max_examples=40, deadline=None)
DT = torch.float64

finite = st.floats(-50.0, 50.0, allow_nan=False, allow_infinity=False)
huge = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


def vec(values, dtype=DT, grad=False):
    return torch.tensor(values, dtype=dtype, requires_grad=grad)


@st.composite
def distributions(draw, size=None, allow_zeros=True):
    """A probability vector of `size` entries (some exactly 0 when allow_zeros)."""
    n = size or draw(st.integers(2, 6))
    entry = st.floats(1e-3, 1.0)
    if allow_zeros:
        entry = st.one_of(st.just(0.0), entry)
    w = draw(st.lists(entry, min_size=n, max_size=n).filter(lambda xs: sum(xs) > 0))
    t = vec(w)
    return t / t.sum()


@st.composite
def logits_and_target(draw, bound=50.0):
    c = draw(st.integers(2, 6))
    z = draw(st.lists(st.floats(-bound, bound), min_size=c, max_size=c))
    y = draw(st.integers(0, c - 1))
    return vec(z), y


# --------------------------------------------------------------------------- log-sum-exp and softmax

@PROPS
@given(st.lists(huge, min_size=1, max_size=8))
def test_logsumexp_matches_torch(values):
    x = vec(values)
    assert torch.allclose(losses.logsumexp(x), torch.logsumexp(x, dim=-1), rtol=1e-12, atol=1e-12)


def test_logsumexp_handles_infinities_and_dims():
    assert losses.logsumexp(vec([-math.inf, -math.inf])) == -math.inf
    assert losses.logsumexp(vec([math.inf, 0.0])) == math.inf
    assert torch.allclose(losses.logsumexp(vec([-math.inf, 0.0])), vec(0.0))
    x = torch.randn(3, 4, 5, dtype=DT)
    for dim in (0, 1, 2, -1):
        assert torch.allclose(losses.logsumexp(x, dim=dim, keepdim=True), torch.logsumexp(x, dim, keepdim=True))


@PROPS
@given(st.lists(huge, min_size=1, max_size=8))
def test_logsumexp_gradient_is_softmax(values):
    x = vec(values, grad=True)
    (g,) = torch.autograd.grad(losses.logsumexp(x), x)
    assert torch.allclose(g, losses.softmax(x.detach()), atol=1e-12)


@PROPS
@given(st.lists(huge, min_size=1, max_size=8))
def test_softmax_is_a_distribution(values):
    s = losses.softmax(vec(values))
    assert torch.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    assert math.isclose(float(s.sum()), 1.0, abs_tol=1e-12)


@PROPS
@given(st.lists(finite, min_size=2, max_size=8), st.floats(-1e3, 1e3))
def test_softmax_shift_invariance(values, c):
    z = vec(values)
    assert torch.allclose(losses.softmax(z + c), losses.softmax(z), atol=1e-10)
    assert torch.allclose(losses.log_softmax(z + c), losses.log_softmax(z), atol=1e-9)


@PROPS
@given(st.lists(huge, min_size=1, max_size=8))
def test_log_softmax_and_softmax_match_torch(values):
    z = vec(values)
    assert torch.allclose(losses.log_softmax(z), F.log_softmax(z, dim=-1), atol=1e-9)
    assert torch.allclose(losses.softmax(z), F.softmax(z, dim=-1), atol=1e-12)


@PROPS
@given(st.lists(finite, min_size=2, max_size=6))
def test_softmax_jacobian_matches_autograd(values):
    z = vec(values)
    auto = torch.autograd.functional.jacobian(lambda t: losses.softmax(t), z)
    closed = losses.softmax_jacobian(z)
    assert torch.allclose(auto, closed, atol=1e-12)
    assert torch.allclose(closed, closed.T)                                          # symmetric
    assert torch.allclose(closed.sum(dim=1), torch.zeros_like(z), atol=1e-12)        # shift invariance


def test_softmax_jacobian_batched():
    z = torch.randn(4, 3, dtype=DT)
    jac = losses.softmax_jacobian(z)
    assert jac.shape == (4, 3, 3)
    for i in range(4):
        assert torch.allclose(jac[i], losses.softmax_jacobian(z[i]))


# --------------------------------------------------------------------------- closed-form gradients

@PROPS
@given(logits_and_target(), st.sampled_from([0.0, 0.1, 0.3]))
def test_cross_entropy_gradient_is_p_minus_y(zy, eps):
    z, y = zy
    z.requires_grad_(True)
    target = torch.tensor(y)
    loss = losses.cross_entropy(z, target, label_smoothing=eps)
    (g,) = torch.autograd.grad(loss, z)
    closed = losses.cross_entropy_grad_logits(z.detach(), target, label_smoothing=eps)
    assert torch.allclose(g, closed, atol=1e-12)
    one_hot = F.one_hot(target, z.numel()).to(DT)
    smoothed = (1 - eps) * one_hot + eps / z.numel()
    assert torch.allclose(g, losses.softmax(z.detach()) - smoothed, atol=1e-12)


@PROPS
@given(st.data())
def test_cross_entropy_gradient_soft_targets_batched(data):
    n, c = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 5))
    z = vec([data.draw(st.lists(finite, min_size=c, max_size=c)) for _ in range(n)], grad=True)
    t = torch.stack([data.draw(distributions(size=c)) for _ in range(n)])
    (g,) = torch.autograd.grad(losses.cross_entropy(z, t, reduction="sum"), z)
    assert torch.allclose(g, losses.cross_entropy_grad_logits(z.detach(), t), atol=1e-12)
    (g_mean,) = torch.autograd.grad(losses.cross_entropy(z, t), z)
    assert torch.allclose(g_mean, g / n, atol=1e-12)


@PROPS
@given(huge, st.sampled_from([0.0, 1.0, 0.25]))
@example(0.0, 1.0)
@example(0.0, 0.0)
def test_bce_gradient_is_sigmoid_minus_y(z, y):
    zt = vec(z, grad=True)
    (g,) = torch.autograd.grad(losses.bce_with_logits(zt, vec(y)), zt)
    expected = 1.0 / (1.0 + math.exp(-z)) - y if z > -700 else -y
    assert math.isclose(float(g), expected, abs_tol=1e-12)
    assert torch.allclose(g, losses.bce_grad_logits(zt.detach(), vec(y)), atol=1e-15)


@PROPS
@given(finite, st.sampled_from([0.0, 1.0]))
def test_mse_sigmoid_gradient_matches_autograd(z, y):
    zt = vec(z, grad=True)
    (g,) = torch.autograd.grad(losses.mse(losses.sigmoid(zt), vec(y)), zt)
    p = 1.0 / (1.0 + math.exp(-z))
    assert math.isclose(float(g), 2 * (p - y) * p * (1 - p), abs_tol=1e-12)
    assert torch.allclose(g, losses.mse_sigmoid_grad_logits(zt.detach(), vec(y)), atol=1e-15)


@PROPS
@given(st.lists(finite, min_size=1, max_size=6))
def test_softplus_and_sigmoid_gradients(values):
    x = vec(values, grad=True)
    (g,) = torch.autograd.grad(losses.softplus(x).sum(), x)
    assert torch.allclose(g, torch.sigmoid(x.detach()), atol=1e-12)
    (g,) = torch.autograd.grad(losses.sigmoid(x).sum(), x)
    s = torch.sigmoid(x.detach())
    assert torch.allclose(g, s * (1 - s), atol=1e-12)


def test_mse_gradient_vanishes_where_bce_does_not():
    """Confidently wrong (y = 1, z << 0): MSE's gradient ~ 0, BCE's ~ -1."""
    y = vec(1.0)
    for z in (-6.0, -10.0, -20.0):
        zt = vec(z, grad=True)
        (g_mse,) = torch.autograd.grad(losses.mse(losses.sigmoid(zt), y), zt)
        (g_bce,) = torch.autograd.grad(losses.bce_with_logits(zt, y), zt)
        assert abs(float(g_mse)) < 5e-3
        assert float(g_bce) < -0.99
        assert abs(float(g_mse)) < 0.01 * abs(float(g_bce))
    # and MSE's gradient keeps shrinking the more wrong the prediction
    g = [float(losses.mse_sigmoid_grad_logits(vec(z), y)) for z in (-2.0, -4.0, -8.0, -16.0)]
    assert all(abs(a) > abs(b) for a, b in zip(g, g[1:]))


def _second_derivative(f, z: float) -> float:
    zt = vec(z, grad=True)
    (g,) = torch.autograd.grad(f(zt), zt, create_graph=True)
    (h,) = torch.autograd.grad(g, zt)
    return float(h)


@PROPS
@given(finite, st.sampled_from([0.0, 1.0]))
def test_bce_is_convex_in_the_logit(z, y):
    h = _second_derivative(lambda t: losses.bce_with_logits(t, vec(y)), z)
    p = 1.0 / (1.0 + math.exp(-z))
    assert math.isclose(h, p * (1 - p), rel_tol=1e-9, abs_tol=1e-15)
    assert h >= 0


def test_mse_with_sigmoid_is_not_convex():
    """(sigmoid(z) - 1)^2 curves downwards for z < -ln 2 (where p < 1/3): a plateau, not a bowl."""
    f = lambda t: losses.mse(losses.sigmoid(t), vec(1.0))  # noqa: E731
    assert _second_derivative(f, -3.0) < 0
    assert _second_derivative(f, 1.0) > 0
    # a chord lies below the curve between two points: the definition of non-convexity
    a, b = vec(-6.0), vec(-1.0)
    mid = f((a + b) / 2)
    assert float(mid) > float((f(a) + f(b)) / 2)


# --------------------------------------------------------------------------- stability at +-1e4

LARGE = [1e4, 0.0, -1e4]


def test_stable_softmax_finite_at_large_logits():
    for values in (LARGE, [1e4, 1e4 - 1, 1e4 - 2], [-1e4, -1e4 - 1, -1e4 - 2]):
        z = vec(values, dtype=torch.float32)
        naive = losses.naive_softmax(z)
        assert torch.isnan(naive).any()
        stable = losses.softmax(z)
        assert torch.isfinite(stable).all()
        assert torch.allclose(stable, F.softmax(z.double(), -1).float(), atol=1e-6)
        assert torch.isfinite(losses.log_softmax(z)).all()
        assert torch.allclose(losses.log_softmax(z), F.log_softmax(z.double(), -1).float())
    assert torch.equal(losses.softmax(vec(LARGE, dtype=torch.float32)), vec([1.0, 0.0, 0.0], dtype=torch.float32))
    assert not torch.isfinite(losses.naive_logsumexp(vec(LARGE, dtype=torch.float32)))
    assert float(losses.logsumexp(vec(LARGE, dtype=torch.float32))) == 1e4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stable_bce_finite_at_large_logits(dtype):
    z = vec([1e4, 1e4, -1e4, -1e4], dtype=dtype)
    y = vec([1.0, 0.0, 1.0, 0.0], dtype=dtype)
    naive = losses.naive_bce(z, y, reduction="none")
    assert not torch.isfinite(naive).any()          # inf for the wrong ones, nan for the right ones
    assert torch.isnan(naive[0]) and torch.isinf(naive[1])
    stable = losses.bce_with_logits(z, y, reduction="none")
    assert torch.equal(stable, vec([0.0, 1e4, 1e4, 0.0], dtype=dtype))
    assert torch.allclose(stable, F.binary_cross_entropy_with_logits(z, y, reduction="none"))
    zg = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(losses.bce_with_logits(zg, y, reduction="sum"), zg)
    assert torch.equal(g, vec([0.0, 1.0, -1.0, 0.0], dtype=dtype))


def test_stable_cross_entropy_finite_at_large_logits():
    z = vec([LARGE, [-1e4, 1e4, 0.0]], dtype=torch.float32)
    y = torch.tensor([1, 1])
    assert not torch.isfinite(losses.naive_cross_entropy(z, y, reduction="none")).all()
    stable = losses.cross_entropy(z, y, reduction="none")
    assert torch.equal(stable, vec([1e4, 0.0], dtype=torch.float32))
    assert torch.allclose(stable, F.cross_entropy(z, y, reduction="none"))
    zg = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(losses.cross_entropy(zg, y, reduction="sum"), zg)
    assert torch.isfinite(g).all()
    assert torch.allclose(g, vec([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float32))


def test_stable_sigmoid_family_at_large_logits():
    z = vec([1e4, -1e4, 0.0], dtype=torch.float32)
    assert torch.equal(losses.sigmoid(z), vec([1.0, 0.0, 0.5], dtype=torch.float32))
    assert torch.equal(losses.log_sigmoid(z), vec([0.0, -1e4, -math.log(2)], dtype=torch.float32))
    assert torch.equal(losses.softplus(z), vec([1e4, 0.0, math.log(2)], dtype=torch.float32))
    assert torch.isinf(torch.log(losses.naive_sigmoid(z)))[1]  # log(0): the naive path breaks


@PROPS
@given(st.lists(st.floats(-15.0, 15.0), min_size=2, max_size=6), st.data())
def test_naive_references_agree_at_moderate_logits(values, data):
    """Where nothing over/underflows the naive formulas are right: they are valid references."""
    z = vec(values)
    assert torch.allclose(losses.naive_softmax(z), losses.softmax(z), atol=1e-12)
    assert torch.allclose(losses.naive_log_softmax(z), losses.log_softmax(z), atol=1e-9)
    assert torch.allclose(losses.naive_logsumexp(z), losses.logsumexp(z), atol=1e-12)
    assert torch.allclose(losses.naive_sigmoid(z), losses.sigmoid(z), atol=1e-12)
    y = vec([float(data.draw(st.integers(0, 1))) for _ in values])
    assert torch.allclose(losses.naive_bce(z, y), losses.bce_with_logits(z, y), atol=1e-6)
    k = torch.tensor(data.draw(st.integers(0, len(values) - 1)))
    assert torch.allclose(losses.naive_cross_entropy(z, k), losses.cross_entropy(z, k), atol=1e-9)


# --------------------------------------------------------------------------- BCE values

def test_bce_worked_examples():
    """The table in docs/theory.md: -log 0.9, -log 0.6, -log 0.1, -log 0.8, -log 0.3 and their mean."""
    y = vec([1.0, 1.0, 1.0, 0.0, 0.0])
    p = vec([0.9, 0.6, 0.1, 0.2, 0.7])
    per = losses.bce_from_probs(p, y, reduction="none")
    expected = [0.1054, 0.5108, 2.3026, 0.2231, 1.2040]
    assert per.tolist() == pytest.approx(expected, abs=1e-4)
    assert float(losses.bce_from_probs(p, y)) == pytest.approx(0.8692, abs=1e-4)
    assert float(losses.bce_from_probs(p, y, reduction="sum")) == pytest.approx(sum(expected), abs=1e-3)
    logits = torch.log(p / (1 - p))                          # the same predictions as logits
    assert torch.allclose(losses.bce_with_logits(logits, y, reduction="none"), per, atol=1e-12)
    assert float(losses.bce_from_probs(vec([0.5]), vec([1.0]))) == pytest.approx(math.log(2))
    # 0 log 0 = 0: certain and right costs nothing, certain and wrong is infinite
    assert losses.bce_from_probs(vec([1.0, 0.0]), vec([1.0, 0.0]), reduction="none").tolist() == [0.0, 0.0]
    assert math.isinf(float(losses.bce_from_probs(vec([0.0]), vec([1.0]))))


@PROPS
@given(st.lists(huge, min_size=1, max_size=8), st.data())
def test_bce_with_logits_matches_torch(values, data):
    z = vec(values)
    y = vec([data.draw(st.floats(0.0, 1.0)) for _ in values])
    assert torch.allclose(losses.bce_with_logits(z, y, reduction="none"),
                          F.binary_cross_entropy_with_logits(z, y, reduction="none"), rtol=1e-9, atol=1e-9)


def test_small_bce_losses_keep_their_precision():
    """y softplus(-z) + (1-y) softplus(z) keeps exp(-20) where softplus(z) - y z would round to 0."""
    got = float(losses.bce_with_logits(vec([20.0], dtype=torch.float32), vec([1.0], dtype=torch.float32)))
    assert got == pytest.approx(math.log1p(math.exp(-20.0)), rel=1e-5)


# --------------------------------------------------------------------------- multi-class cross-entropy

@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.1]), st.booleans())
def test_cross_entropy_matches_torch_segmentation_shapes(seed, eps, with_ignore):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 5, 3, 4, generator=g, dtype=DT) * 10
    target = torch.randint(0, 5, (2, 3, 4), generator=g)
    if with_ignore:
        target[torch.rand(2, 3, 4, generator=g) < 0.3] = 255
    for reduction in ("mean", "sum", "none"):
        ours = losses.cross_entropy(logits, target, label_smoothing=eps, ignore_index=255, reduction=reduction)
        ref = F.cross_entropy(logits, target, label_smoothing=eps, ignore_index=255, reduction=reduction)
        if (target == 255).all() and reduction == "mean":
            continue
        assert torch.allclose(ours, ref, atol=1e-10)


def test_cross_entropy_default_matches_torch_and_accepts_uint8_masks():
    logits = torch.randn(3, 4, 2, 2)
    target = torch.randint(0, 4, (3, 2, 2), dtype=torch.uint8)
    target[0, 0, 0] = 255
    ours = losses.cross_entropy(logits, target, ignore_index=255)
    assert torch.allclose(ours, F.cross_entropy(logits, target.long(), ignore_index=255))
    flat = torch.randn(5, 3)
    y = torch.tensor([0, 2, 1, -100, 2])
    assert torch.allclose(losses.cross_entropy(flat, y), F.cross_entropy(flat, y))
    assert torch.allclose(losses.cross_entropy(flat[0], y[0]), F.cross_entropy(flat[0], y[0]))


@PROPS
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.2]))
def test_cross_entropy_soft_targets_match_torch(seed, eps):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 3, 2, 2, generator=g, dtype=DT) * 5
    soft = torch.softmax(torch.randn(4, 3, 2, 2, generator=g, dtype=DT), dim=1)
    ours = losses.cross_entropy(logits, soft, label_smoothing=eps)
    assert torch.allclose(ours, F.cross_entropy(logits, soft, label_smoothing=eps), atol=1e-12)


def test_cross_entropy_one_hot_soft_targets_equal_hard_targets():
    logits = torch.randn(6, 4, dtype=DT)
    y = torch.tensor([0, 3, 1, 1, 2, 0])
    one_hot = F.one_hot(y, 4).to(DT)
    for eps in (0.0, 0.1):
        assert torch.allclose(losses.cross_entropy(logits, one_hot, label_smoothing=eps),
                              losses.cross_entropy(logits, y, label_smoothing=eps))


def test_cross_entropy_all_ignored_is_zero_not_nan():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), 255)
    loss = losses.cross_entropy(logits, target, ignore_index=255)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    assert torch.isnan(F.cross_entropy(logits, target, ignore_index=255))  # what PyTorch does instead


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_losses_compute_half_precision_inputs_in_float32(dtype):
    """Mixed precision: a mean over ~260k pixel losses overflows float16 if reduced in it."""
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 19, 256, 256, generator=g) * 3).to(dtype)
    target = torch.randint(0, 19, (2, 256, 256), generator=g)
    target[:, :10] = 255
    ours = losses.cross_entropy(logits, target, ignore_index=255)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours, F.cross_entropy(logits.float(), target, ignore_index=255), rtol=1e-5)
    assert torch.isfinite(losses.cross_entropy(logits, target, ignore_index=255, reduction="sum"))
    z, y = logits[:, 0], (target % 2).float()
    assert torch.allclose(losses.bce_with_logits(z, y), F.binary_cross_entropy_with_logits(z.float(), y), rtol=1e-5)
    assert losses.mse(z, y).dtype == torch.float32
    assert losses.l2_penalty([torch.full((300,), 20.0, dtype=dtype)], 1.0).item() == pytest.approx(60000.0)


def test_cross_entropy_rejects_bad_targets():
    logits = torch.randn(2, 3)
    with pytest.raises(ValueError, match="class ids must be in"):
        losses.cross_entropy(logits, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="class ids must be in"):
        losses.cross_entropy(logits, torch.tensor([0, 255]))  # 255 without ignore_index=255
    with pytest.raises(ValueError, match="shape"):
        losses.cross_entropy(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="soft targets"):
        losses.cross_entropy(logits, torch.rand(2, 4))
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.cross_entropy(logits, torch.tensor([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        losses.cross_entropy(logits, torch.tensor([0, 1]), reduction="avg")


# --------------------------------------------------------------------------- entropy and KL

@PROPS
@given(st.data())
def test_kl_equals_ce_minus_entropy(data):
    n = data.draw(st.integers(2, 6))
    p = data.draw(distributions(size=n))
    q = data.draw(distributions(size=n, allow_zeros=False))
    kl = losses.kl_divergence(p, q)
    assert torch.allclose(kl, losses.cross_entropy_probs(p, q) - losses.entropy(p), atol=1e-12)
    assert float(kl) >= -1e-12                                            # Gibbs' inequality
    assert torch.allclose(kl, F.kl_div(q.log(), p, reduction="sum"), atol=1e-12)
    # the same identity through logits: cross_entropy with soft targets is H(p, softmax(z))
    z = q.log() + data.draw(st.floats(-5, 5))
    ce = losses.cross_entropy(z.unsqueeze(0), p.unsqueeze(0), reduction="none")[0]
    assert torch.allclose(ce - losses.entropy(p), kl, atol=1e-10)
    assert torch.allclose(losses.kl_divergence_logits(torch.log(p.clamp_min(1e-300)), z), kl, atol=1e-10)


@PROPS
@given(distributions())
def test_kl_zero_iff_equal_and_entropy_bounds(p):
    assert float(losses.kl_divergence(p, p)) == pytest.approx(0.0, abs=1e-12)
    n = p.numel()
    uniform = torch.full_like(p, 1 / n)
    h = float(losses.entropy(p))
    assert -1e-12 <= h <= math.log(n) + 1e-12
    # KL(p || uniform) = log n - H(p)
    assert float(losses.kl_divergence(p, uniform)) == pytest.approx(math.log(n) - h, abs=1e-12)
    if not torch.allclose(p, uniform):
        assert float(losses.kl_divergence(p, uniform)) > 0


def test_kl_is_asymmetric_and_infinite_off_support():
    p, q = vec([0.5, 0.5, 0.0]), vec([0.9, 0.05, 0.05])
    assert float(losses.kl_divergence(p, q)) != pytest.approx(float(losses.kl_divergence(q, p)))
    assert math.isinf(float(losses.kl_divergence(q, p)))     # q puts mass where p has none
    assert losses.entropy(vec([[1.0, 0.0], [0.5, 0.5]])).tolist() == pytest.approx([0.0, math.log(2)])


# --------------------------------------------------------------------------- MSE, L2

def test_mse_reductions():
    a, b = vec([1.0, 2.0, 4.0]), vec([1.0, 0.0, 1.0])
    assert losses.mse(a, b, reduction="none").tolist() == [0.0, 4.0, 9.0]
    assert float(losses.mse(a, b)) == pytest.approx(13 / 3)
    assert float(losses.mse(a, b, reduction="sum")) == 13.0
    assert torch.allclose(losses.mse(a, b), F.mse_loss(a, b))


@PROPS
@given(st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_l2_penalty_value_and_gradient(lam, seed):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(3, 2, generator=g, dtype=DT, requires_grad=True),
              torch.randn(4, generator=g, dtype=DT, requires_grad=True)]
    pen = losses.l2_penalty(params, lam)
    expected = 0.5 * lam * sum(float((p.detach() ** 2).sum()) for p in params)
    assert float(pen.detach()) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    grads = torch.autograd.grad(pen, params)
    for p, gr in zip(params, grads):
        assert torch.allclose(gr, lam * p.detach())
    assert float(losses.l2_penalty([], lam)) == 0.0


@PROPS
@given(st.floats(1e-4, 1.0), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_sgd_l2_update_closed_form(lr, lam, seed):
    """w <- (1 - lr lam) w - lr grad is a gradient step on loss + lam/2 ||w||^2."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(5, generator=g, dtype=DT, requires_grad=True)
    x = torch.randn(5, generator=g, dtype=DT)
    data_loss = torch.sin(w @ x)
    (grad_data,) = torch.autograd.grad(data_loss, w, retain_graph=True)
    (grad_total,) = torch.autograd.grad(data_loss + losses.l2_penalty([w], lam), w)
    step = w.detach() - lr * grad_total
    assert torch.allclose(losses.sgd_l2_update(w.detach(), grad_data, lr, lam), step, atol=1e-12)


def test_dice_loss_perfect_and_ignored_pixels():
    target = torch.tensor([[[0, 1], [2, 255]]])
    perfect = torch.full((1, 3, 2, 2), -50.0)
    for c, (i, j) in zip((0, 1, 2), ((0, 0), (0, 1), (1, 0))):
        perfect[0, c, i, j] = 50.0
    perfect[0, 0, 1, 1] = -50.0
    perfect[0, 1, 1, 1] = 50.0  # wrong, but on an ignored pixel
    from cvexp.theory.losses import dice_loss

    assert float(dice_loss(perfect, target)) < 1e-6
    wrong = perfect.roll(1, dims=1)
    assert float(dice_loss(wrong, target)) > 0.5
    logits = torch.randn(2, 4, 5, 5, requires_grad=True)
    dice_loss(logits, torch.randint(0, 4, (2, 5, 5))).backward()
    assert torch.isfinite(logits.grad).all()
