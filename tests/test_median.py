"""Tests of tb_batchavg.stats.median.window_median against pandas' rolling median
and np.median of every window's finite values."""

import numpy as np
import pandas as pd
import pytest

from tb_batchavg.stats import median as median_module
from tb_batchavg.stats.median import window_median


def noisy_series(rng, n, integers=False):
    """A decaying loss (or small integers, for ties) with NaN, +Inf and -Inf."""
    if integers:
        values = rng.integers(-3, 4, n).astype(np.float64)
    else:
        values = 3 * np.exp(-np.arange(n) / max(n / 3, 1)) + rng.normal(0, 0.3, n)
    holes = rng.random(n)
    values[holes < 0.05] = np.nan
    values[(holes >= 0.05) & (holes < 0.07)] = np.inf
    values[(holes >= 0.07) & (holes < 0.08)] = -np.inf
    return values


def run(values, lo, hi):
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    finite = np.isfinite(values)
    prefix = np.concatenate(([0], np.cumsum(finite, dtype=np.int64)))
    return window_median(values, finite, lo, hi, prefix[hi] - prefix[lo])


def explicit(values, lo, hi):
    """np.median of each window's finite values (NaN for none)."""
    out = np.full(len(lo), np.nan)
    for i, (a, b) in enumerate(zip(lo, hi)):
        x = values[a:b]
        x = x[np.isfinite(x)]
        if len(x):
            out[i] = np.median(x)
    return out


def point_windows(n, window, align):
    """Windows of ``window`` points clipped at the ends (centred as pandas)."""
    before = window - 1 if align == "trailing" else window // 2
    index = np.arange(n)
    return np.maximum(index - before, 0), np.minimum(index + window - before, n)


def assert_same(actual, expected):
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("window", [1, 2, 3, 10, 50, 64, 65, 127, 128, 129, 1000])
@pytest.mark.parametrize("align", ["trailing", "centered"])
@pytest.mark.parametrize("integers", [False, True])
def test_point_windows_equal_pandas(window, align, integers):
    """Fixed windows with partial edges, bit for bit against pandas."""
    rng = np.random.default_rng(window)
    values = noisy_series(rng, 5000, integers)
    clean = pd.Series(np.where(np.isfinite(values), values, np.nan))
    expected = clean.rolling(window, center=align == "centered", min_periods=1).median()
    assert_same(run(values, *point_windows(len(values), window, align)), expected.to_numpy())


@pytest.mark.parametrize("window", [1, 2, 7, 40, 300, 5000])
def test_variable_windows_in_steps_with_gaps(window):
    """lo/hi from searchsorted on steps with gaps (windows of varying length,
    some empty in the gaps), against np.median per window."""
    rng = np.random.default_rng(window)
    n = 3000
    steps = np.cumsum(rng.choice([1, 1, 2, 5, 300], size=n))
    values = noisy_series(rng, n)
    values[1000:1100] = np.nan
    lo = np.searchsorted(steps, steps - window // 2)
    hi = np.searchsorted(steps, steps + window - 1 - window // 2, side="right")
    assert_same(run(values, lo, hi), explicit(values, lo, hi))


def test_arbitrary_non_decreasing_windows_including_empty():
    rng = np.random.default_rng(7)
    n = 2000
    values = noisy_series(rng, n, integers=True)
    lo = np.sort(rng.integers(0, n, 700))
    hi = np.minimum(lo + rng.integers(0, 150, 700), n)
    hi = np.maximum.accumulate(hi)
    assert_same(run(values, lo, hi), explicit(values, lo, hi))


@pytest.mark.parametrize("n, window", [(1, 1), (5, 5), (5, 9), (300, 300), (300, 1000), (20000, 20000)])
def test_windows_as_long_as_the_series(n, window):
    rng = np.random.default_rng(n)
    values = noisy_series(rng, n)
    lo, hi = point_windows(n, window, "centered")
    assert_same(run(values, lo, hi), explicit(values, lo, hi))


def test_many_segments_and_groups():
    """A long series: windows spread over many segments and groups, with
    a few repeated values and runs without any finite value."""
    rng = np.random.default_rng(11)
    n = 200_000
    values = np.round(noisy_series(rng, n), 3)
    values[5000:5300] = np.nan
    clean = pd.Series(np.where(np.isfinite(values), values, np.nan))
    for window in (10, 50, 1000):
        expected = clean.rolling(window, min_periods=1).median().to_numpy()
        assert_same(run(values, *point_windows(n, window, "trailing")), expected)


def test_even_counts_average_the_two_middle_values():
    values = np.array([1.0, 4.0, np.nan, 2.0, np.inf, 8.0, -np.inf])
    lo, hi = np.array([0, 0, 0, 1, 2, 4, 6, 7]), np.array([2, 4, 6, 4, 3, 6, 7, 7])
    assert_same(run(values, lo, hi), [2.5, 2.0, 3.0, 3.0, np.nan, 8.0, np.nan, np.nan])


def test_distinct_values_closer_than_the_packed_key_bits():
    """Values differing only in their last bits (sorted by the exact
    fallback) and extreme magnitudes."""
    rng = np.random.default_rng(3)
    base = np.array([1.0, -1.0, 1e300, -1e-300, 0.0, 5e-324])
    values = base[rng.integers(0, len(base), 4000)] * (1 + rng.integers(-40, 40, 4000) * np.finfo(float).eps)
    lo, hi = point_windows(len(values), 33, "centered")
    assert_same(run(values, lo, hi), explicit(values, lo, hi))


def test_numpy_1_popcount_fallback(monkeypatch):
    """Without np.bitwise_count (numpy < 2) the bit counts come from SWAR."""
    x = np.random.default_rng(5).integers(0, 2**63, 1000, dtype=np.int64).view(np.uint64)
    x[:3] = [0, np.uint64(2**64 - 1), 1]
    expected = median_module._popcount(x), median_module._byte_counts(x)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert_same(median_module._popcount(x), expected[0])
    assert_same(median_module._byte_counts(x), expected[1])
    values = noisy_series(np.random.default_rng(6), 3000)
    lo, hi = point_windows(len(values), 200, "trailing")
    assert_same(run(values, lo, hi), explicit(values, lo, hi))


def test_odd_counts_only():
    """Full windows of an odd length over finite values (no even count in the
    whole call)."""
    rng = np.random.default_rng(9)
    values = np.round(rng.normal(size=20000), 2)
    window = 51
    lo = np.arange(len(values) - window + 1)
    expected = pd.Series(values).rolling(window).median().to_numpy()[window - 1 :]
    assert_same(run(values, lo, lo + window), expected)


def test_a_run_ending_in_non_finite_values():
    """A diverged run: the last 800 of 5,000 points are NaN/Inf, so the last windows with a finite
    value end long before the series does (the segments then stop short of its end)."""
    rng = np.random.default_rng(7)
    values = noisy_series(rng, 5000)
    values[4200:] = np.where(rng.random(800) < 0.5, np.nan, np.inf)
    for window in (50, 1000):
        lo, hi = point_windows(len(values), window, "trailing")
        assert_same(run(values, lo, hi), explicit(values, lo, hi))
