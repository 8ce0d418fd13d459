"""Small demonstration tables for docs/theory.md; `python -m cvexp.theory` prints them all.

Each function returns a `Table` whose rows hold plain numbers (tests read them) and renders as
aligned plain text. All of it runs on CPU in well under a second after torch is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from cvexp.theory import losses
from cvexp.theory.regularization import make_logistic_data, train_logistic_regression


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    note: str = ""

    def column(self, name: str) -> list:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def render(self) -> str:
        cells = [[_fmt(v) for v in row] for row in self.rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(self.columns)]
        line = "  ".join("-" * w for w in widths)
        out = [self.title, "=" * len(self.title),
               "  ".join(c.rjust(w) for c, w in zip(self.columns, widths)), line]
        out += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
        if self.note:
            out.append(self.note)
        return "\n".join(out)


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0:
            return "0"
        return f"{v:.4g}"
    return str(v)


def softmax_overflow() -> Table:
    """Naive exp(z)/sum exp(z) against exp(z - logsumexp(z)) in float32."""
    t = Table("Softmax: naive vs log-sum-exp (float32)",
              ["logits", "naive softmax", "stable softmax", "stable log-softmax"],
              note="exp overflows above ~88.7 in float32: inf/inf = nan; below ~-104 it underflows: 0/0 = nan.\n"
                   "Subtracting max(z) first leaves every exponent <= 0 and the largest term exactly 1.")
    for z in ([1.0, 2.0, 3.0], [100.0, 101.0, 102.0], [1000.0, 1001.0, 1002.0],
              [-1000.0, -1001.0, -1002.0], [1e4, 0.0, -1e4]):
        x = torch.tensor(z, dtype=torch.float32)
        t.rows.append([x.tolist(), losses.naive_softmax(x).tolist(), losses.softmax(x).tolist(),
                       losses.log_softmax(x).tolist()])
    return t


def bce_overflow() -> Table:
    """Naive sigmoid-then-log BCE against softplus(z) - y z in float32, with a float64 reference."""
    t = Table("Binary cross-entropy: naive vs stable (float32)",
              ["logit z", "y", "sigmoid(z)", "naive BCE", "stable BCE", "float64 reference"],
              note="sigmoid(z) rounds to exactly 1 (or 0) for |z| > ~17: log(0) = -inf gives inf, and 0 * log(0)\n"
                   "gives nan even for a confident *correct* prediction. y softplus(-z) + (1-y) softplus(z) takes no log of a probability.")
    for z, y in ((0.0, 1), (5.0, 1), (20.0, 1), (20.0, 0), (100.0, 1), (-100.0, 1),
                 (1e4, 1), (1e4, 0), (-1e4, 1), (-1e4, 0)):
        zt = torch.tensor([z], dtype=torch.float32)
        yt = torch.tensor([float(y)])
        ref = losses.bce_with_logits(zt.double(), yt.double())
        t.rows.append([z, y, float(losses.naive_sigmoid(zt)), float(losses.naive_bce(zt, yt)),
                       float(losses.bce_with_logits(zt, yt)), float(ref)])
    return t


def mse_vs_bce_gradients() -> Table:
    """Loss and d loss / d z for a positive example (y = 1) as the logit goes confidently wrong."""
    t = Table("MSE vs BCE on sigmoid outputs, true label y = 1",
              ["logit z", "p = sigmoid(z)", "MSE (p-y)^2", "dMSE/dz", "BCE", "dBCE/dz"],
              note="dMSE/dz = 2(p-y) p(1-p) vanishes as p -> 0: a confidently wrong model barely learns.\n"
                   "dBCE/dz = p - y stays near -1: the more wrong, the stronger the push.")
    for z in (-10.0, -6.0, -3.0, -1.0, 0.0, 2.0, 6.0):
        zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        y = torch.tensor(1.0, dtype=torch.float64)
        p = losses.sigmoid(zt)
        mse = losses.mse(p, y)
        (g_mse,) = torch.autograd.grad(mse, zt)
        bce = losses.bce_with_logits(zt, y)
        (g_bce,) = torch.autograd.grad(bce, zt)
        t.rows.append([z, float(p.detach()), float(mse.detach()), float(g_mse), float(bce.detach()), float(g_bce)])
    return t


BCE_EXAMPLES = ((1, 0.9), (1, 0.6), (1, 0.1), (0, 0.2), (0, 0.7))


def bce_worked_examples() -> Table:
    """BCE = -[y log p + (1-y) log(1-p)] for five predictions, and their mean (the dataset loss)."""
    t = Table("BCE worked examples: loss = -[y log p + (1 - y) log(1 - p)]",
              ["example", "y", "p", "term", "loss"])
    ys = torch.tensor([float(y) for y, _ in BCE_EXAMPLES], dtype=torch.float64)
    ps = torch.tensor([p for _, p in BCE_EXAMPLES], dtype=torch.float64)
    per = losses.bce_from_probs(ps, ys, reduction="none")
    for i, ((y, p), loss) in enumerate(zip(BCE_EXAMPLES, per.tolist()), start=1):
        term = f"-log({p:g})" if y == 1 else f"-log(1 - {p:g})"
        t.rows.append([str(i), y, p, term, loss])
    t.rows.append(["mean", "", "", "(1/N) sum", float(losses.bce_from_probs(ps, ys))])
    t.note = ("Confident and right costs little (0.105); unsure costs log 2-ish; confident and wrong costs most (2.303).\n"
              "The dataset loss is the mean over examples.")
    return t


def kl_vs_cross_entropy() -> Table:
    """KL(p||q) = H(p, q) - H(p): cross-entropy minus the target's own entropy."""
    t = Table("KL divergence = cross-entropy - entropy (nats)",
              ["p", "q", "H(p)", "H(p,q)", "KL(p||q)", "H(p,q) - H(p)"],
              note="With one-hot p, H(p) = 0 and minimising cross-entropy is minimising KL.")
    pairs = (([1.0, 0.0, 0.0], [0.7, 0.2, 0.1]), ([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]),
             ([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]), ([0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3]))
    for p, q in pairs:
        pt, qt = torch.tensor(p, dtype=torch.float64), torch.tensor(q, dtype=torch.float64)
        h, ce, kl = losses.entropy(pt), losses.cross_entropy_probs(pt, qt), losses.kl_divergence(pt, qt)
        t.rows.append([[round(v, 3) for v in p], [round(v, 3) for v in q], float(h), float(ce), float(kl),
                       float(ce - h)])
    return t


REG_RUNS = (("none", "sgd"), ("l2_penalty", "sgd"), ("weight_decay", "sgd"),
            ("none", "adam"), ("weight_decay", "adam"), ("decoupled_weight_decay", "adam"))


def l2_weight_norms(lam: float = 0.05, steps: int = 300) -> Table:
    """Tiny logistic regression on separable data, trained with and without L2."""
    x, y = make_logistic_data()
    t = Table(f"Logistic regression on separable data ({x.shape[0]} points, {x.shape[1]} features), "
              f"{steps} full-batch steps",
              ["regularisation", "optimizer", "lambda", "||w||", "train BCE", "train acc"],
              note="Without L2 the loss keeps falling as ||w|| grows (separable data has no finite minimiser);\n"
                   "with L2 each step multiplies w by (1 - lr*lambda) and the norm settles. l2_penalty and\n"
                   "weight_decay are the same update; with Adam too they reach the minimiser of loss + lambda/2 ||w||^2.\n"
                   "AdamW's decay is not rescaled by Adam's step sizes, so it minimises no such objective (same lambda, weaker pull here).")
    for mode, opt in REG_RUNS:
        lr = 0.5 if opt == "sgd" else 0.05
        r = train_logistic_regression(x, y, mode=mode, lam=0.0 if mode == "none" else lam, lr=lr,
                                      steps=steps, optimizer=opt)
        t.rows.append([mode, f"{opt} lr={lr:g}", r.lam, r.weight_norm, r.data_loss, r.accuracy])
    return t


ALL_DEMOS = (softmax_overflow, bce_overflow, mse_vs_bce_gradients, bce_worked_examples,
             kl_vs_cross_entropy, l2_weight_norms)


def render_all() -> str:
    return "\n\n".join(demo().render() for demo in ALL_DEMOS)
