"""Tests of helpers.lessons.stats: the Wilson interval against SciPy and by its definition."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from helpers.lessons import stats


@pytest.mark.parametrize(("correct", "total"), [(0, 10), (3, 10), (10, 10), (912, 1000), (1, 1)])
def test_matches_scipy_wilson_interval(correct, total):
    expected = scipy_stats.binomtest(correct, total).proportion_ci(0.95, method="wilson")
    low, high = stats.accuracy_interval(correct, total)
    assert low == pytest.approx(expected.low, abs=1e-4)  # SciPy's z is 1.95996..., ours 1.96
    assert high == pytest.approx(expected.high, abs=1e-4)


def test_bounds_solve_the_score_equation():
    # Wilson's bounds are the p with |p_hat - p| = z sqrt(p (1 - p) / n).
    correct, total, z = 437, 500, 1.96
    p_hat = correct / total
    for bound in stats.accuracy_interval(correct, total, z):
        assert abs(p_hat - bound) == pytest.approx(z * math.sqrt(bound * (1 - bound) / total))


def test_interval_contains_the_estimate_and_narrows_with_more_examples():
    small = stats.accuracy_interval(45, 50)
    large = stats.accuracy_interval(4500, 5000)
    assert small[0] < 0.9 < small[1] and large[0] < 0.9 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 5  # width ~ 1 / sqrt(n)


def test_format_accuracy():
    assert stats.format_accuracy(912, 1000) == "0.912 (95% CI 0.893-0.928)"


BAD = [(1, 0, 1.96), (-1, 5, 1.96), (6, 5, 1.96), (2.5, 5, 1.96), (1, 5, 0)]


@pytest.mark.parametrize(("correct", "total", "z"), BAD)
def test_rejects_bad_input(correct, total, z):
    with pytest.raises(ValueError):
        stats.accuracy_interval(correct, total, z)
