"""Paired confidence intervals, p-values and Holm's correction over seeds, without requiring
scipy (used where it is installed)."""

from __future__ import annotations

import math

__all__ = ["t_critical", "t_sf_two_sided", "paired_ci", "paired_p_value", "holm", "verdict",
           "ALPHA"]

ALPHA = 0.05
"""Family-wise error rate of a comparison's verdicts (after Holm's correction)."""

# Two-sided 95% critical values of Student's t, df = 1..30.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t_critical(df: int, confidence: float = 0.95) -> float:
    """Two-sided critical value of Student's t (scipy when installed, else a table at 95%)."""
    try:
        from scipy.stats import t

        return float(t.ppf(0.5 + confidence / 2, df))
    except ImportError:
        if confidence != 0.95:
            raise ValueError("without scipy only 95% intervals are available") from None
        # Beyond the table the normal value is within 2% of t.
        return _T975[df - 1] if df <= len(_T975) else 1.96


def paired_ci(a: list[float], b: list[float], confidence: float = 0.95) -> dict:
    """Mean of ``a − b`` over paired samples with a t-interval.

    Pairing by seed removes the variation the seeds share (initial weights, data order),
    which is most of it, so paired intervals are much tighter than comparing two means.

    Returns:
        ``{'n', 'mean', 'low', 'high'}``; ``low``/``high`` are None with fewer than 2 pairs.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None}
    mean = sum(d) / n
    if n < 2:
        return {"n": n, "mean": mean, "low": None, "high": None}
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = t_critical(n - 1, confidence) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half}


def _t_sf_exact(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with integer ``df``: the finite series of Abramowitz &
    Stegun 26.7.3-4 in θ = atan(|t|/√df), exact up to rounding."""
    theta = math.atan(abs(t) / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:
        term, series = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 3) // 2 + 1):  # (2·4···2k)/(3·5···(2k+1)) cos^2k θ
            term *= c2 * (2 * k) / (2 * k + 1)
            series += term
        inside = (2 / math.pi) * (theta + s * math.cos(theta) * series)
    else:
        term = series = 1.0
        for k in range(1, (df - 2) // 2 + 1):  # (1·3···(2k−1))/(2·4···2k) cos^2k θ
            term *= c2 * (2 * k - 1) / (2 * k)
            series += term
        inside = s * series
    return min(1.0, max(0.0, 1.0 - inside))


def t_sf_two_sided(t: float, df: int) -> float:
    """Two-sided p-value ``P(|T| >= |t|)`` of Student's t with ``df`` degrees of freedom
    (scipy's ``t.sf`` where installed, else the exact finite series for integer ``df``)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if math.isinf(t):
        return 0.0
    try:
        from scipy.stats import t as student_t

        return float(min(1.0, 2.0 * student_t.sf(abs(t), df)))
    except ImportError:
        return _t_sf_exact(t, df)


def paired_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided paired-t p-value of ``mean(a − b) = 0``; None with fewer than 2 pairs.

    Differences that are all equal give 0 when they are not zero (no noise, a real shift)
    and 1 when they are all zero (nothing to detect).
    """
    ci = paired_ci(a, b)
    n = ci["n"]
    if n < 2:
        return None
    d = [x - y for x, y in zip(a, b, strict=True)]
    sd = math.sqrt(sum((x - ci["mean"]) ** 2 for x in d) / (n - 1))
    if sd == 0.0:
        return 0.0 if ci["mean"] != 0 else 1.0
    return t_sf_two_sided(ci["mean"] / (sd / math.sqrt(n)), n - 1)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of ``k`` p-values (None entries are left out of ``k``).

    Sorted ascending, the i-th smallest (from 0) becomes ``max over j <= i of
    min(1, (k − j)·p_(j))``; rejecting where the adjusted value is below α keeps the chance
    of any false "better/worse" among the k comparisons below α.
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    k = len(order)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(ci: dict, p_adjusted: float | None = None, alpha: float = ALPHA) -> str:
    """'better' / 'worse' / 'within noise'.

    With ``p_adjusted`` (Holm's, over the comparison's k rows): better or worse when it is
    below ``alpha``, by the sign of the mean difference. Without it, when the 95% interval
    excludes zero (a single comparison).
    """
    if ci.get("low") is None:
        return "n/a (needs >= 2 seeds)"
    if p_adjusted is not None:
        if p_adjusted >= alpha:
            return "within noise"
        return "better" if ci["mean"] > 0 else "worse"
    if ci["low"] > 0:
        return "better"
    if ci["high"] < 0:
        return "worse"
    return "within noise"
