import pytest

from revact.train.stats import paired_ci, t_critical, verdict


def test_t_table():
    assert t_critical(2) == pytest.approx(4.303, abs=1e-3)
    assert t_critical(30) == pytest.approx(2.042, abs=1e-3)
    assert t_critical(200) == pytest.approx(1.97, abs=0.02)


def test_paired_ci_by_hand():
    # Differences 1, 2, 3: mean 2, sd 1, half-width 4.303 / sqrt(3).
    ci = paired_ci([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    assert ci["mean"] == pytest.approx(2.0)
    assert ci["high"] - ci["mean"] == pytest.approx(4.303 / 3**0.5, abs=1e-3)
    assert verdict(ci) == "within noise"
    assert verdict(paired_ci([11.0, 11.1, 10.9], [10.0, 10.0, 10.0])) == "better"
    assert verdict(paired_ci([9.0, 9.1, 8.9], [10.0, 10.0, 10.0])) == "worse"
    assert verdict(paired_ci([11.0], [10.0])).startswith("n/a")
    # Pairing matters: a shift shared by the seeds does not widen the interval.
    shared = paired_ci([90.0, 80.0, 70.0], [89.0, 79.0, 69.0])
    assert shared["low"] == pytest.approx(1.0) and verdict(shared) == "better"
