"""p-values and Holm's correction: a hand-computed example, scipy, and the exact fallback."""

import math

import pytest

from revact.train import stats
from revact.train.stats import holm, paired_p_value, t_sf_two_sided, verdict

scipy_stats = pytest.importorskip("scipy.stats")


def test_holm_by_hand():
    # k = 4; sorted p: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04
    # -> kept monotone at 0.06); None is no comparison and does not count in k.
    got = holm([0.03, None, 0.01, 0.04, 0.02])
    assert got[1] is None
    assert got[0] == pytest.approx(0.06) and got[2] == pytest.approx(0.04)
    assert got[3] == pytest.approx(0.06) and got[4] == pytest.approx(0.06)
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 6, 9, 10, 29, 30])
@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.2, 4.7, 12.0, -3.1])
def test_exact_fallback_matches_scipy(t, df):
    want = 2 * scipy_stats.t.sf(abs(t), df)
    assert stats._t_sf_exact(t, df) == pytest.approx(want, rel=1e-9, abs=1e-14)
    assert t_sf_two_sided(t, df) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_fallback_used_without_scipy(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *args, **kw):
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    assert t_sf_two_sided(2.5, 4) == pytest.approx(2 * scipy_stats.t.sf(2.5, 4), rel=1e-9)


def test_paired_p_value_against_scipy(rng):
    import torch

    a = (torch.randn(5, generator=rng, dtype=torch.float64) + 0.7).tolist()
    b = torch.randn(5, generator=rng, dtype=torch.float64).tolist()
    want = scipy_stats.ttest_rel(a, b).pvalue
    assert paired_p_value(a, b) == pytest.approx(want, rel=1e-10)
    assert paired_p_value([1.0], [0.0]) is None
    assert paired_p_value([1.0, 2.0], [0.0, 1.0]) == 0.0  # the same shift on every seed
    assert paired_p_value([1.0, 2.0], [1.0, 2.0]) == 1.0


def test_verdict_reads_the_adjusted_p_value():
    ci = {"n": 3, "mean": 1.0, "low": 0.2, "high": 1.8}  # excludes 0 on its own
    assert verdict(ci) == "better"
    assert verdict(ci, p_adjusted=0.04) == "better"
    assert verdict(ci, p_adjusted=0.08) == "within noise"
    assert verdict({**ci, "mean": -1.0, "low": -1.8, "high": -0.2}, 0.01) == "worse"
    assert verdict({"n": 1, "mean": 1.0, "low": None, "high": None}, None).startswith("n/a")
    assert not math.isnan(t_sf_two_sided(float("inf"), 3))
