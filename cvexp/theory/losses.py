"""The theory as code: numerically stable losses, their naive references, closed-form gradients,
and the explicit L2 penalty. docs/theory.md derives each formula and names the test that checks it.

Conventions
-----------
- Multi-class functions that take *logits* follow PyTorch's layout: the class dimension is 1 for
  inputs of 2 or more dimensions, ``(N, C)`` or ``(N, C, H, W)``, and 0 for a single ``(C,)`` vector.
- Functions that take *probability vectors* (``entropy``, ``kl_divergence``, ...) reduce over
  ``dim`` (default: the last one) and return one value per distribution.
- Losses compute in float32 when given float16/bfloat16 inputs (mixed-precision training), like
  PyTorch's losses under autocast; softmax and friends keep the input dtype.
- ``naive_*`` functions compute the textbook formula literally. They overflow, underflow or return
  NaN at large logits and exist only as a reference to compare against (``python -m cvexp.theory``).

Everything stable is built on one trick, log-sum-exp with the maximum subtracted::

    logsumexp(x) = m + log(sum_i exp(x_i - m)),   m = max_i x_i

Every ``exp`` argument is <= 0, so nothing overflows and the largest term is exactly 1.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = [
    "logsumexp", "naive_logsumexp", "dice_loss",
    "softmax", "log_softmax", "naive_softmax", "naive_log_softmax", "softmax_jacobian",
    "softplus", "sigmoid", "log_sigmoid", "naive_sigmoid",
    "bce_with_logits", "bce_from_probs", "naive_bce", "bce_grad_logits",
    "cross_entropy", "naive_cross_entropy", "cross_entropy_grad_logits", "balanced_class_weights",
    "entropy", "cross_entropy_probs", "kl_divergence", "kl_divergence_logits",
    "mse", "mse_sigmoid_grad_logits",
    "l2_penalty", "sgd_l2_update",
]

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32, as autocast does for PyTorch's own losses: a mean over a
    segmentation batch (~1e6 pixel losses) overflows float16 (max 65504)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _class_dim(logits: torch.Tensor) -> int:
    return 1 if logits.dim() >= 2 else 0


# --------------------------------------------------------------------------- log-sum-exp, softmax

def _shift_by_max(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x - m, m) with m = max(x) along `dim`, detached; m = 0 where the max is not finite."""
    m = x.detach().amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return x - m, m


def logsumexp(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """log(sum(exp(x))) along `dim`, computed as m + log(sum(exp(x - m))) with m = max(x).

    The shift m is detached: the result does not depend on it, so its gradient is exactly
    softmax(x). Rows that are all -inf give -inf (m is then replaced by 0 to avoid inf - inf).
    """
    shifted, m = _shift_by_max(x, dim)
    out = m + torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


def naive_logsumexp(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """log(sum(exp(x))) literally: exp overflows to inf for x > ~88 (float32) / ~709 (float64)."""
    return torch.log(torch.exp(x).sum(dim=dim, keepdim=keepdim))


def log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log softmax(z)_i = z_i - logsumexp(z), evaluated as (z_i - m) - log(sum_j exp(z_j - m)).

    Finite for any finite logits. Subtracting m first keeps float32 precision at large logits
    (z - logsumexp(z) would round logsumexp to the spacing of floats near z, ~1e-3 at 1e4).
    """
    shifted, _ = _shift_by_max(logits, dim)
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax(z)_i = exp(z_i - m) / sum_j exp(z_j - m): every exponent is <= 0 and the largest
    term is 1, so it neither overflows nor divides 0 by 0."""
    e = torch.exp(_shift_by_max(logits, dim)[0])
    return e / e.sum(dim=dim, keepdim=True)


def naive_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """exp(z_i) / sum_j exp(z_j) literally: inf/inf = NaN for large z, 0/0 = NaN for very negative z."""
    e = torch.exp(logits)
    return e / e.sum(dim=dim, keepdim=True)


def naive_log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(naive_softmax(z)): -inf where the softmax underflows to 0, NaN where it overflows."""
    return torch.log(naive_softmax(logits, dim=dim))


def softmax_jacobian(logits: torch.Tensor) -> torch.Tensor:
    """d softmax(z)_i / d z_j = s_i (delta_ij - s_j), i.e. diag(s) - s s^T, over the last dim.

    Input (..., C) -> output (..., C, C). Symmetric, rows sum to 0 (shift invariance).
    """
    s = softmax(logits, dim=-1)
    return torch.diag_embed(s) - s.unsqueeze(-1) * s.unsqueeze(-2)


# --------------------------------------------------------------------------- sigmoid family

def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(x)) = logsumexp([0, x]) = max(x, 0) + log1p(exp(-|x|)), stable for any x.

    Written so autograd gives exactly sigmoid(x), also at x = 0 (where |x| has a kink):
    the exponent is -x for x > 0 and x otherwise, and relu'(0) = 0.
    """
    neg_abs = torch.where(x > 0, -x, x)
    return torch.relu(x) + torch.log1p(torch.exp(neg_abs))


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """log sigmoid(x) = -softplus(-x): finite for any finite x (about x for x << 0)."""
    return -softplus(-x)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + exp(-x)) evaluated as exp(log_sigmoid(x)): no overflow, no 0 * inf."""
    return torch.exp(log_sigmoid(x))


def naive_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + exp(-x)) literally (exp(-x) overflows for x << 0; the result is still 0)."""
    return 1.0 / (1.0 + torch.exp(-x))


# --------------------------------------------------------------------------- binary cross-entropy

def bce_with_logits(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy of logits z against targets y in [0, 1]:

        -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))] = y softplus(-z) + (1 - y) softplus(z)

    (using log sigmoid(z) = -softplus(-z) and log(1 - sigmoid(z)) = log sigmoid(-z)). Algebraically
    this is softplus(z) - y z, but that form loses small losses to cancellation (z = 20, y = 1 gives
    20 - 20 = 0 in float32 instead of 2e-9). Finite for any finite z; gradient sigmoid(z) - y.
    """
    logits = _upcast(logits)
    target = target.to(logits.dtype)
    return _reduce(target * softplus(-logits) + (1 - target) * softplus(logits), reduction)


def bce_from_probs(probs: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-[y log p + (1 - y) log(1 - p)] on probabilities (the textbook formula; worked examples).

    Terms with a zero coefficient count as 0 (0 log 0 = 0), so p = y = 1 gives 0, not NaN.
    p = 0 with y = 1 is a certain wrong answer: inf.
    """
    probs = _upcast(probs)
    target = target.to(probs.dtype)
    loss = -(torch.xlogy(target, probs) + torch.xlogy(1 - target, 1 - probs))
    return _reduce(loss, reduction)


def naive_bce(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """sigmoid, then log, literally: sigmoid saturates to exactly 0 or 1 for |z| > ~17 (float32),
    so log(0) = -inf gives inf losses and 0 * log(0) gives NaN even for correct predictions."""
    target = target.to(logits.dtype)
    p = naive_sigmoid(logits)
    return _reduce(-(target * torch.log(p) + (1 - target) * torch.log(1 - p)), reduction)


def bce_grad_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Closed form d BCE / d z = sigmoid(z) - y, per element (the loss with reduction='none')."""
    return sigmoid(logits) - target.to(logits.dtype)


# --------------------------------------------------------------------------- multi-class cross-entropy

def cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0,
                  ignore_index: int = -100, reduction: str = "mean",
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy -sum_c t_c log softmax(z)_c, computed through log-sum-exp.

    `logits`: (C,), (N, C) or (N, C, d1, ...), classes on dim 1 (dim 0 for a single vector).
    `target`: either hard class ids, an integer tensor shaped like `logits` without the class dim,
    where `ignore_index` marks elements to skip (segmentation void = 255); or soft targets,
    a float tensor shaped like `logits` holding a probability distribution over the class dim.

    `label_smoothing` eps mixes the target with the uniform distribution: (1 - eps) t + eps / C.

    reduction 'mean' averages over the non-ignored elements (like torch.nn.functional.cross_entropy
    without class weights), except that a batch with *every* element ignored gives 0 (with a
    zero gradient) where PyTorch gives NaN: one fully void crop must not poison training.
    'none' returns the per-element losses (0 at ignored elements); 'sum' their sum.

    `weight` (C,) scales each class's terms, as `torch.nn.functional.cross_entropy(weight=...)`:
    element i counts w[y_i] times (the smoothing term -eps/C sum_c log p_c becomes
    -eps/C sum_c w_c log p_c), and 'mean' divides by sum_i w[y_i] rather than by the count, so
    the loss stays on the same scale. Soft targets weight each class term, mean over elements.
    `balanced_class_weights` gives the usual choice for imbalanced data.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    cdim = _class_dim(logits)
    n_classes = logits.shape[cdim]
    logp = log_softmax(_upcast(logits), dim=cdim)

    if target.is_floating_point():  # soft targets: a distribution per element
        if target.shape != logits.shape:
            raise ValueError(f"soft targets must have the logits' shape {tuple(logits.shape)}, "
                             f"got {tuple(target.shape)}")
        t = target.to(logp.dtype)
        if label_smoothing:
            t = (1.0 - label_smoothing) * t + label_smoothing / n_classes
        if weight is not None:
            t = t * _class_shaped(weight, logp, cdim)
        loss = -torch.where(t == 0, torch.zeros_like(logp), t * logp).sum(dim=cdim)
        return _reduce(loss, reduction)

    expected = logits.shape[:cdim] + logits.shape[cdim + 1:]
    if target.shape != expected:
        raise ValueError(f"class-id targets must have shape {tuple(expected)} for logits "
                         f"{tuple(logits.shape)}, got {tuple(target.shape)}")
    valid = target != ignore_index
    safe_target = torch.where(valid, target, torch.zeros_like(target)).long()
    out_of_range = (safe_target < 0) | (safe_target >= n_classes)
    if out_of_range.any():  # one host sync; a clear error instead of a CUDA device-side assert
        bad = target[out_of_range].unique()[:5].tolist()
        raise ValueError(f"class ids must be in [0, {n_classes}) or ignore_index={ignore_index}; "
                         f"found {bad}")
    nll = -logp.gather(cdim, safe_target.unsqueeze(cdim)).squeeze(cdim)
    if weight is None:
        if label_smoothing:
            # -sum_c (eps / C) log p_c = eps * mean_c(-log p_c)
            nll = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(dim=cdim)
        loss = torch.where(valid, nll, torch.zeros_like(nll))
        if reduction == "mean":  # all ignored: 0 / 1 = 0, not 0 / 0; no host sync
            return loss.sum() / valid.sum().clamp_min(1)
        return _reduce(loss, reduction)
    w = _check_weight(weight, n_classes, logp)
    w_y = torch.where(valid, w[safe_target], torch.zeros_like(nll))
    nll = w_y * nll
    if label_smoothing:
        smooth = -(logp * _class_shaped(w, logp, cdim)).mean(dim=cdim)
        nll = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    loss = torch.where(valid, nll, torch.zeros_like(nll))
    if reduction == "mean":  # the weighted mean; all ignored (or zero weight): 0, not 0 / 0
        den = w_y.sum()
        return loss.sum() / torch.where(den > 0, den, torch.ones_like(den))
    return _reduce(loss, reduction)


def training_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0,
                           ignore_index: int = -100, weight: torch.Tensor | None = None) -> torch.Tensor:
    """`cross_entropy(..., reduction="mean")` for hard class-id targets through PyTorch's fused
    kernel: the same value (tested), a third of the time, and no host sync (the range check of
    `cross_entropy` reads a tensor on the host every call; here the data modules guarantee ids in
    range, and PyTorch's own bounds check still stops a bad id). A batch with every element ignored
    gives 0, as `cross_entropy` does. Soft (float) targets go to `cross_entropy`."""
    if target.is_floating_point():
        return cross_entropy(logits, target, label_smoothing=label_smoothing, weight=weight)
    F = torch.nn.functional
    x = _upcast(logits)
    w = None if weight is None else _check_weight(weight, x.shape[_class_dim(x)], x)
    total = F.cross_entropy(x, target.long(), weight=w, ignore_index=ignore_index, reduction="sum",
                            label_smoothing=label_smoothing)
    valid = target != ignore_index
    if w is None:
        den = valid.sum()
    else:  # PyTorch's weighted mean divides by the summed weights of the targets
        den = torch.where(valid, w[torch.where(valid, target, torch.zeros_like(target)).long()], 0).sum()
    return total / torch.where(den > 0, den, torch.ones_like(den)).to(total.dtype)


def _check_weight(weight: torch.Tensor, n_classes: int, like: torch.Tensor) -> torch.Tensor:
    if weight.dim() != 1 or weight.shape[0] != n_classes:
        raise ValueError(f"class weights must be one value per class ({n_classes}), got shape "
                         f"{tuple(weight.shape)}")
    return weight.to(device=like.device, dtype=like.dtype)


def _class_shaped(weight: torch.Tensor, like: torch.Tensor, cdim: int) -> torch.Tensor:
    """(C,) weights shaped to broadcast against `like` along its class dim."""
    w = _check_weight(weight, like.shape[cdim], like)
    shape = [1] * like.dim()
    shape[cdim] = -1
    return w.view(shape)


def balanced_class_weights(labels, num_classes: int) -> torch.Tensor:
    """n_samples / (n_classes * count_c) per class, from the training labels: scikit-learn's
    `compute_class_weight("balanced")`. A class with weight w counts as w samples of the loss, so
    every class contributes the same total; a class without samples is an error (its weight would
    be infinite)."""
    y = torch.as_tensor(labels, dtype=torch.long).flatten()
    if y.numel() == 0:
        raise ValueError("no labels to compute class weights from")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}), found {int(y.min())}..{int(y.max())}")
    counts = torch.bincount(y, minlength=num_classes).double()
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"class(es) {missing} have no training samples; balanced class weights "
                         "need every class")
    return (y.numel() / (num_classes * counts)).float()


def naive_cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-log(naive_softmax(z)[y]) on hard class ids: inf or NaN once the softmax over/underflows."""
    cdim = _class_dim(logits)
    p = naive_softmax(logits, dim=cdim)
    loss = -torch.log(p.gather(cdim, target.long().unsqueeze(cdim)).squeeze(cdim))
    return _reduce(loss, reduction)


def cross_entropy_grad_logits(logits: torch.Tensor, target: torch.Tensor,
                              label_smoothing: float = 0.0) -> torch.Tensor:
    """Closed form d CE / d z = softmax(z) - t for one example (reduction='sum' over a batch).

    `target`: class ids or a distribution (as in `cross_entropy`), smoothed the same way.
    """
    cdim = _class_dim(logits)
    n_classes = logits.shape[cdim]
    if target.is_floating_point():
        t = target.to(logits.dtype)
    else:
        t = torch.nn.functional.one_hot(target.long(), n_classes).to(logits.dtype).movedim(-1, cdim)
    if label_smoothing:
        t = (1.0 - label_smoothing) * t + label_smoothing / n_classes
    return softmax(logits, dim=cdim) - t


# --------------------------------------------------------------------------- distributions

def entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """H(p) = -sum_i p_i log p_i, with 0 log 0 = 0 (nats)."""
    return -torch.xlogy(p, p).sum(dim=dim)


def cross_entropy_probs(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """H(p, q) = -sum_i p_i log q_i between two distributions (inf where q_i = 0 < p_i)."""
    return -torch.xlogy(p, q).sum(dim=dim)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """KL(p || q) = sum_i p_i (log p_i - log q_i) = H(p, q) - H(p) >= 0, zero iff p = q."""
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(dim=dim)


def kl_divergence_logits(target_logits: torch.Tensor, logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """KL(softmax(target_logits) || softmax(logits)) from logits through log_softmax (distillation)."""
    logp = log_softmax(_upcast(target_logits), dim=dim)
    logq = log_softmax(_upcast(logits), dim=dim)
    return (torch.exp(logp) * (logp - logq)).sum(dim=dim)


# --------------------------------------------------------------------------- regression losses

def mse(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error (pred - target)^2."""
    pred = _upcast(pred)
    return _reduce((pred - target.to(pred.dtype)) ** 2, reduction)


def mse_sigmoid_grad_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Closed form d/dz (sigmoid(z) - y)^2 = 2 (p - y) p (1 - p), p = sigmoid(z).

    The factor p (1 - p) vanishes when the prediction is confident, right *or wrong*.
    """
    p = sigmoid(logits)
    return 2.0 * (p - target.to(logits.dtype)) * p * (1.0 - p)


# --------------------------------------------------------------------------- L2 regularisation

def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
              smooth: float = 1.0) -> torch.Tensor:
    """Soft multi-class Dice loss, 1 - mean_c (2 |P_c . Y_c| + s) / (|P_c| + |Y_c| + s), over the
    whole batch; P = softmax(logits) (N, C, H, W), Y = one-hot(target), ignored pixels left out.
    Classes with neither truth nor predicted mass score ~1 (the smoothing term) and barely count."""
    logits = _upcast(logits)
    probs = softmax(logits, dim=1)
    valid = (target != ignore_index)
    safe = torch.where(valid, target, torch.zeros_like(target)).long()
    onehot = torch.zeros_like(probs).scatter_(1, safe.unsqueeze(1), 1.0)
    w = valid.unsqueeze(1).to(probs.dtype)
    dims = (0, 2, 3) if probs.dim() == 4 else tuple(d for d in range(probs.dim()) if d != 1)
    inter = (probs * onehot * w).sum(dims)
    denom = (probs * w).sum(dims) + (onehot * w).sum(dims)
    return 1.0 - ((2 * inter + smooth) / (denom + smooth)).mean()


def l2_penalty(params: Iterable[torch.Tensor], lam: float) -> torch.Tensor:
    """lam/2 * sum ||w||^2: its gradient lam * w equals SGD's coupled weight decay."""
    params = list(params)
    if not params:
        return torch.zeros(())
    return 0.5 * lam * sum((_upcast(p) ** 2).sum() for p in params)


def sgd_l2_update(w: torch.Tensor, grad: torch.Tensor, lr: float, lam: float) -> torch.Tensor:
    """One plain gradient-descent step on loss + lam/2 ||w||^2:

        w <- w - lr (grad + lam w) = (1 - lr lam) w - lr grad

    `grad` is the gradient of the data loss alone; the factor (1 - lr lam) shrinks w every step.
    """
    return (1.0 - lr * lam) * w - lr * grad
