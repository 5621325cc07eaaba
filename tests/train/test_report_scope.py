"""results.md says what a comparison of its length and intervals can show."""

from revact.train.report import _scope


def _results(epochs: int, train: int, batch: int, cis: list[tuple[float, float] | None]) -> dict:
    rows = [{"diff_ci_low": None, "diff_ci_high": None}]  # the baseline
    rows += [{"diff_ci_low": None, "diff_ci_high": None} if ci is None
             else {"diff_ci_low": ci[0], "diff_ci_high": ci[1]} for ci in cis]
    return {"recipe": {"epochs": epochs, "batch_size": batch}, "data": {"train": train},
            "leaderboard": rows}


def test_a_short_schedule_says_what_it_measures():
    text = _scope(_results(2, 2500, 64, [(-2.0, 4.0), (-1.1, 3.3), None]))
    assert "about 78 SGD steps" in text  # 2 x (2500 // 64)
    assert "±3.0 points" in text  # the widest half-width
    assert "starts learning" in text


def test_a_long_schedule_gives_the_interval_only():
    text = _scope(_results(5, 55000, 128, [(-0.35, 1.07), (-0.12, 0.04)]))
    assert "about 2,145 SGD steps" in text and "±0.7 points" in text
    assert "starts learning" not in text


def test_one_seed_has_no_interval_to_quote():
    text = _scope(_results(1, 1000, 100, [None, None]))
    assert text.startswith("What it can show: each run trained about 10 SGD steps.")
    assert "±" not in text
