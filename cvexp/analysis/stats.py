"""Statistics for repeated runs (seeds, folds): mean, sample std, t confidence interval, Welch's t-test.

    s = summarize([0.81, 0.79, 0.83])         # n, mean, std (ddof=1), sem, ci_low, ci_high
    w = welch([0.81, 0.79, 0.83], [0.85, 0.86, 0.84])   # diff (b - a), t, df, p (two-sided)

The moments are computed here; scipy supplies only the t distribution (quantile and tail). The
numbers equal scipy's `stats.t.interval(confidence, n - 1, loc=mean, scale=sem)` and
`stats.ttest_ind(b, a, equal_var=False)` (tests/test_seed_stats.py checks both).

With n = 1 there is no spread: std, the interval and any test are None. Two groups without any
spread (every repeat gave the same number) have no t statistic either: p is None, not 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONFIDENCE = 0.95
ALPHA = 0.05


def _clean(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summarize(values: Sequence[float | None], confidence: float = CONFIDENCE) -> dict:
    """{n, mean, std, sem, ci_low, ci_high} of the finite values; None where undefined."""
    from scipy import stats

    x = _clean(values)
    n = len(x)
    out = {"n": n, "mean": None, "std": None, "sem": None, "ci_low": None, "ci_high": None}
    if n == 0:
        return out
    mean = math.fsum(x) / n
    out["mean"] = mean
    if n < 2:
        return out
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in x) / (n - 1))
    sem = std / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    out.update(std=std, sem=sem, ci_low=mean - half, ci_high=mean + half)
    return out


def welch(a: Sequence[float | None], b: Sequence[float | None]) -> dict:
    """Welch's unequal-variance t-test of mean(b) - mean(a), two-sided:
    t = (mean_b - mean_a) / sqrt(s_a^2/n_a + s_b^2/n_b), degrees of freedom by Welch-Satterthwaite.
    Returns {diff, t, df, p}; t/df/p are None when either group has fewer than 2 values or neither
    varies."""
    from scipy import stats

    sa, sb = summarize(a), summarize(b)
    diff = sb["mean"] - sa["mean"] if sa["mean"] is not None and sb["mean"] is not None else None
    out = {"diff": diff, "t": None, "df": None, "p": None}
    if sa["std"] is None or sb["std"] is None:
        return out
    va, vb = sa["std"] ** 2 / sa["n"], sb["std"] ** 2 / sb["n"]
    if va + vb == 0:
        return out
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (sa["n"] - 1) + vb ** 2 / (sb["n"] - 1))
    out.update(t=t, df=df, p=float(2 * stats.t.sf(abs(t), df)))
    return out
