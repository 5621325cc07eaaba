"""Paired confidence intervals over seeds, without requiring scipy."""

from __future__ import annotations

import math

__all__ = ["t_critical", "paired_ci", "verdict"]

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


def verdict(ci: dict) -> str:
    """'better' / 'worse' when the interval excludes zero, else 'within noise'."""
    if ci.get("low") is None:
        return "n/a (needs >= 2 seeds)"
    if ci["low"] > 0:
        return "better"
    if ci["high"] < 0:
        return "worse"
    return "within noise"
