"""tb_batchavg.stats.correlation against independent references: pandas (merge, rolling
corr) and scipy.stats (pearsonr, spearmanr, rankdata)."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tb_batchavg.stats import correlation
from tb_batchavg.stats.correlation import (
    best_lag,
    correlate,
    join,
    lagged_pearson,
    pearson,
    rolling_pearson,
    spearman,
)


def correlated(rng, n, decimals=None, offset=0.0):
    """x and y = 0.6 x + noise; rounded to `decimals` (creates ties) when given."""
    x = rng.standard_normal(n).cumsum() * 0.1 + rng.standard_normal(n)
    y = 0.6 * x + rng.standard_normal(n)
    if decimals is not None:
        x, y = np.round(x, decimals), np.round(y, decimals)
    return x + offset, y


def holey_series(rng, n):
    """Two series on steps 0, 3, 6, ... with steps missing on each side and NaN/Inf values."""
    x, y = correlated(rng, n, decimals=1)
    steps = np.arange(n, dtype=np.int64) * 3
    x_keep = rng.random(n) > 0.1
    y_keep = rng.random(n) > 0.1
    for values in (x, y):
        holes = rng.choice(n, size=n // 20, replace=False)
        values[holes] = rng.choice([np.nan, np.inf, -np.inf], size=len(holes))
    return steps[x_keep], x[x_keep], steps[y_keep], y[y_keep]


def pandas_join(x_steps, x_values, y_steps, y_values):
    merged = pd.merge(
        pd.DataFrame({"step": x_steps, "x": x_values}),
        pd.DataFrame({"step": y_steps, "y": y_values}),
        on="step",
        how="inner",
    )
    merged = merged.replace([np.inf, -np.inf], np.nan).dropna()
    return merged["step"].to_numpy(), merged["x"].to_numpy(), merged["y"].to_numpy()


def assert_close(actual, expected, tolerance=1e-10):
    assert math.isclose(actual, expected, rel_tol=tolerance, abs_tol=tolerance), (actual, expected)


# join --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_join_matches_pandas_merge(seed):
    series = holey_series(np.random.default_rng(seed), 3000)
    steps, x, y = join(*series)
    ref_steps, ref_x, ref_y = pandas_join(*series)
    assert len(steps) < min(len(series[0]), len(series[2]))  # something was dropped
    np.testing.assert_array_equal(steps, ref_steps)
    np.testing.assert_array_equal(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)
    assert steps.dtype == np.int64 and x.dtype == y.dtype == np.float64


def test_join_same_steps_drops_nonfinite_pairs():
    steps = np.array([1, 5, 9, 12, 20])
    x = np.array([1.0, np.nan, 3.0, 4.0, np.inf])
    y = np.array([2.0, 2.0, -np.inf, 8.0, 1.0])
    got = join(steps, x, steps, y)
    for actual, expected in zip(got, pandas_join(steps, x, steps, y)):
        np.testing.assert_array_equal(actual, expected)
    np.testing.assert_array_equal(got[0], [1, 12])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 40), unique=True),
    st.lists(st.integers(0, 40), unique=True),
    st.data(),
)
def test_join_property(x_steps, y_steps, data):
    x_steps, y_steps = sorted(x_steps), sorted(y_steps)
    value = st.sampled_from([0.5, -2.0, 3.25, np.nan, np.inf, -np.inf])
    x_values = data.draw(st.lists(value, min_size=len(x_steps), max_size=len(x_steps)))
    y_values = data.draw(st.lists(value, min_size=len(y_steps), max_size=len(y_steps)))
    series = (
        np.array(x_steps, dtype=np.int64),
        np.array(x_values),
        np.array(y_steps, dtype=np.int64),
        np.array(y_values),
    )
    for actual, expected in zip(join(*series), pandas_join(*series)):
        np.testing.assert_array_equal(actual, expected)


def test_join_rejects_bad_steps():
    with pytest.raises(ValueError, match="increasing"):
        join([1, 3, 3], [1.0, 2.0, 3.0], [1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="increasing"):
        join([1, 2], [1.0, 2.0], [5, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="same length"):
        join([1, 2, 3], [1.0, 2.0], [1, 2], [1.0, 2.0])


# pearson / spearman ------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [None, 1, 0])
@pytest.mark.parametrize("seed", range(2))
def test_pearson_spearman_match_scipy(seed, decimals):
    x, y = correlated(np.random.default_rng(seed), 5000, decimals, offset=1e4)
    assert_close(pearson(x, y), stats.pearsonr(x, y).statistic)
    assert_close(spearman(x, y), stats.spearmanr(x, y).statistic)


def average_ranks(values, payload=None, payload_bits=0):
    """1-based average ranks from correlation._sorted_ranks (carrying indices)."""
    order, ranks = correlation._sorted_ranks(np.asarray(values, dtype=np.float64))
    doubled = np.empty(len(order), dtype=np.int64)
    ranks.scatter(order, doubled)
    return doubled / 2 + 1


def test_average_ranks_match_rankdata_on_near_ties():
    rng = np.random.default_rng(7)
    one_ulp_apart = 1.0 + np.arange(-40, 40) * np.finfo(float).eps
    values = np.concatenate(
        (
            rng.standard_normal(20000),
            np.round(rng.standard_normal(20000), 2),
            one_ulp_apart,
            -one_ulp_apart,
            [0.0, -0.0, 5e-324, -5e-324, 1e308, -1e308],
        )
    )
    rng.shuffle(values)
    np.testing.assert_array_equal(average_ranks(values), stats.rankdata(values))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.sampled_from([0.0, -0.0, 1.0, 1.0000000000000002]),
        ),
        max_size=60,
    )
)
def test_average_ranks_property(values):
    values = np.array(values, dtype=np.float64)
    np.testing.assert_array_equal(average_ranks(values), stats.rankdata(values))


@pytest.mark.parametrize("seed", range(3))
def test_correlate_levels_and_differences_match_scipy_on_joined_series(seed):
    series = holey_series(np.random.default_rng(seed), 4000)
    result = correlate(*series, window=50, max_lag=5)
    steps, x, y = pandas_join(*series)
    assert result.n == len(steps)
    np.testing.assert_array_equal(result.steps, steps)
    np.testing.assert_array_equal(result.x, x)
    np.testing.assert_array_equal(result.y, y)
    assert_close(result.pearson, stats.pearsonr(x, y).statistic)
    assert_close(result.spearman, stats.spearmanr(x, y).statistic)
    assert_close(result.pearson_diff, stats.pearsonr(np.diff(x), np.diff(y)).statistic)
    assert_close(result.spearman_diff, stats.spearmanr(np.diff(x), np.diff(y)).statistic)
    # the levels' Pearson is the lag-0 coefficient; that one is pearson()'s to rounding
    assert result.pearson == result.lag_r[list(result.lags).index(0)]
    assert abs(result.pearson - pearson(x, y)) <= 1e-14


def test_constant_or_short_series_give_nan():
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(50)
    constant = np.full(50, 0.1)
    for x, y in [(constant, noise), (noise, constant), (constant, constant)]:
        assert math.isnan(pearson(x, y))
        assert math.isnan(spearman(x, y))
        assert np.isnan(rolling_pearson(x, y, 10)).all()
        lags, r = lagged_pearson(x, y, 5)
        assert len(lags) == 11 and np.isnan(r).all()
        assert best_lag(lags, r) is None
    for n in (0, 1):
        assert math.isnan(pearson(noise[:n], noise[:n]))
        assert math.isnan(spearman(noise[:n], noise[:n]))


def test_correlate_empty_and_constant_results():
    result = correlate([1, 2], [1.0, np.nan], [1, 2], [3.0, 4.0], window=2, max_lag=3)
    assert result.n == 1
    assert math.isnan(result.pearson) and math.isnan(result.spearman_diff)
    assert len(result.rolling) == len(result.rolling_step) == 0
    assert len(result.lags) == len(result.lag_r) == 0 and result.best_lag is None

    steps = np.arange(30)
    result = correlate(steps, np.full(30, 2.0), steps, np.arange(30.0), window=5, max_lag=3)
    assert math.isnan(result.pearson) and math.isnan(result.pearson_diff)
    assert np.isnan(result.rolling).all() and result.best_lag is None


# rolling -------------------------------------------------------------------------------


def pandas_rolling_corr(x, y, window):
    r = pd.Series(x).rolling(window).corr(pd.Series(y)).to_numpy()[window - 1 :]
    # A window with a constant side has no correlation: pandas says NaN, or inf with numpy < 2.
    return np.where(np.isinf(r), np.nan, r)


@pytest.mark.parametrize("chunk", [None, 7, 64])
@pytest.mark.parametrize("window", [2, 3, 50])
def test_rolling_matches_pandas(monkeypatch, chunk, window):
    if chunk is not None:
        monkeypatch.setattr(correlation, "ROLLING_CHUNK", chunk)
    x, y = correlated(np.random.default_rng(window), 1500, decimals=2, offset=300.0)
    x[400:520] = 7.0  # windows inside this stretch have constant x
    y[900:1000] = -1.5  # and here constant y
    got = rolling_pearson(x, y, window)
    expected = pandas_rolling_corr(x, y, window)
    assert got.shape == expected.shape == (len(x) - window + 1,)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got).sum() > 0
    # Each window recomputed on its own, two-pass: as exact as float64 allows.
    np.testing.assert_allclose(got, two_pass_rolling_corr(x, y, window), rtol=1e-12, atol=1e-12, equal_nan=True)
    # pandas' rolling update cancels on these offset values: 1e-8 from the two-pass values with numpy 1.26.
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-7, equal_nan=True)


def two_pass_rolling_corr(x, y, window):
    """Pearson's r of every full window, each centred on its own means; NaN where a side is constant."""
    xs = np.lib.stride_tricks.sliding_window_view(np.asarray(x, dtype=np.float64), window)
    ys = np.lib.stride_tricks.sliding_window_view(np.asarray(y, dtype=np.float64), window)
    dx, dy = xs - xs.mean(axis=1, keepdims=True), ys - ys.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (dx * dy).sum(axis=1) / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
    r[(np.ptp(xs, axis=1) == 0) | (np.ptp(ys, axis=1) == 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def test_rolling_on_joined_series_across_chunks():
    """Long enough for several chunks of the default size; steps align to window ends."""
    rng = np.random.default_rng(11)
    n = 3 * correlation.ROLLING_CHUNK + 123
    steps = np.arange(n, dtype=np.int64) * 2
    x, y = correlated(rng, n)
    x += np.linspace(20.0, 0.0, n)  # drift: window means far from the global mean
    y[rng.choice(n, 500, replace=False)] = np.nan
    result = correlate(steps, x, steps, y, window=200, max_lag=2)
    joined_steps, joined_x, joined_y = pandas_join(steps, x, steps, y)
    np.testing.assert_array_equal(result.rolling_step, joined_steps[199:])
    expected = pandas_rolling_corr(joined_x, joined_y, 200)
    np.testing.assert_allclose(result.rolling, expected, rtol=1e-9, atol=1e-9)


def test_rolling_shorter_than_window_is_empty():
    assert rolling_pearson([1.0, 2.0, 4.0], [1.0, 3.0, 2.0], 4).shape == (0,)
    np.testing.assert_allclose(
        rolling_pearson([1.0, 2.0, 4.0], [1.0, 3.0, 2.0], 3),
        [stats.pearsonr([1.0, 2.0, 4.0], [1.0, 3.0, 2.0]).statistic],
    )


# lagged --------------------------------------------------------------------------------


def scipy_lagged(x, y, lag):
    """Pearson of y[i] with x[i+lag] over the overlapping i, by explicit slicing."""
    n = len(x)
    if lag >= 0:
        x_part, y_part = x[lag:], y[: n - lag]
    else:
        x_part, y_part = x[: n + lag], y[-lag:]
    return stats.pearsonr(x_part, y_part).statistic


@pytest.mark.parametrize("n, max_lag", [(600, 40), (10, 50), (3, 2), (9000, 300), (1500, 1100)])
def test_lagged_matches_scipy_on_shifted_slices(n, max_lag):
    x, y = correlated(np.random.default_rng(n), n, decimals=1, offset=50.0)
    lags, r = lagged_pearson(x, y, max_lag)
    expected_max = min(max_lag, n - 3)
    np.testing.assert_array_equal(lags, np.arange(-expected_max, expected_max + 1))
    checked = np.unique(np.r_[np.arange(0, len(lags), max(1, len(lags) // 150)), len(lags) - 1])
    for index in checked:  # every lag for short lists, an even spread (and both ends) of long ones
        assert_close(r[index], scipy_lagged(x, y, lags[index]), tolerance=1e-9)


def test_lagged_too_short_is_empty():
    lags, r = lagged_pearson([1.0, 2.0], [2.0, 1.0], 5)
    assert lags.shape == r.shape == (0,)
    assert best_lag(lags, r) is None


def test_lagged_nan_where_a_shifted_slice_is_constant():
    x = np.array([5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    y = np.array([0.3, 2.0, -1.0, 4.0, 0.5, 2.5, 1.0, -2.0])
    lags, r = lagged_pearson(x, y, 3)
    for lag, value in zip(lags, r):
        if lag > 0:  # x[lag:] is all 1.0
            assert np.isnan(value)
        else:
            assert_close(value, scipy_lagged(x, y, lag))


@pytest.mark.parametrize("lead", [7, -7, 13, -1])
def test_best_lag_finds_planted_lead(lead):
    """y[i] = s[i + lead]: for lead > 0 y runs ahead of x = s (y leads), so best lag = lead."""
    rng = np.random.default_rng(abs(lead) + (lead > 0))
    n = 5000
    white = rng.standard_normal(n + 60)
    signal = white[2:-2] + 0.5 * (white[1:-3] + white[3:-1])  # correlated over neighbours
    x = signal[20 : 20 + n] + 0.3 * rng.standard_normal(n)
    y = signal[20 + lead : 20 + lead + n] + 0.3 * rng.standard_normal(n)
    steps = np.arange(n, dtype=np.int64) + 1000
    result = correlate(steps, x, steps, y, window=100, max_lag=20)
    assert result.best_lag == lead
    assert_close(result.lag_r[result.lags == lead][0], scipy_lagged(x, y, lead), 1e-9)


def test_best_lag_tie_breaking_and_nan():
    lags = np.array([-2, -1, 0, 1, 2])
    assert best_lag(lags, [0.5, np.nan, 0.1, -0.5, 0.5]) == 1
    assert best_lag(lags, [0.9, 0.2, np.nan, 0.2, -0.9]) == 2
    assert best_lag(lags, [-0.95, 0.2, 0.3, 0.2, 0.9]) == -2
    assert best_lag(lags, [0.1, 0.2, 0.2, 0.2, 0.1]) == 0
    assert best_lag(lags, [np.nan] * 5) is None


# parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 0, -5, 2.5, "20"])
def test_invalid_window(window):
    steps = np.arange(10)
    with pytest.raises(ValueError, match="window"):
        correlate(steps, steps * 1.0, steps, steps * 2.0, window=window)
    with pytest.raises(ValueError, match="window"):
        rolling_pearson(steps * 1.0, steps * 2.0, window)


@pytest.mark.parametrize("max_lag", [-1, 1.5, None])
def test_invalid_max_lag(max_lag):
    steps = np.arange(10)
    with pytest.raises(ValueError, match="max_lag"):
        correlate(steps, steps * 1.0, steps, steps * 2.0, max_lag=max_lag)
    with pytest.raises(ValueError, match="max_lag"):
        lagged_pearson(steps * 1.0, steps * 2.0, max_lag)


def test_mismatched_pairs_rejected():
    with pytest.raises(ValueError):
        pearson([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        rolling_pearson([1.0, 2.0, 3.0], [1.0, 2.0], 2)


# fast paths: packed-rank sorts, block-local rolling sums --------------------------------


@pytest.mark.parametrize("chunk", [None, 7])
@pytest.mark.parametrize("kind", ["float32", "float64", "ties", "constant_stretch"])
@pytest.mark.parametrize("seed", range(2))
def test_spearman_paths_match_scipy(kind, seed, chunk, monkeypatch):
    """float32 values carry the other side's ranks in their low mantissa bits; float64
    values do not fit and take the index-carrying path; both against scipy. chunk=7:
    ranks scattered and summed over hundreds of chunks of positions."""
    if chunk:
        monkeypatch.setattr(correlation, "RANK_CHUNK", chunk)
    rng = np.random.default_rng(seed)
    x, y = correlated(rng, 4000, decimals=1 if kind == "ties" else None, offset=1e6)
    if kind == "float32":
        x, y = x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
    if kind == "constant_stretch":
        x[1000:3000] = 5.0
        y[:2000] = -0.0
        y[2000:2100] = 0.0  # equal to -0.0: one tie group
    expected = stats.spearmanr(x, y).statistic
    assert_close(spearman(x, y), expected)
    assert_close(spearman(y, x), expected)
    assert_close(spearman(np.diff(x), np.diff(y)), stats.spearmanr(np.diff(x), np.diff(y)).statistic)


def test_tie_sums_are_exact_beyond_int64():
    """sum of t**3 - t over tie groups: int64 where nothing overflows, Python ints beyond
    (a group of 3 million equal values: 2.7e19 > 2**63)."""
    sizes = np.array([1, 2, 3, 40], dtype=np.int64)
    assert correlation._tie_sum(sizes) == 0 + 6 + 24 + 63960
    sizes = np.array([3_000_000, 5, 1], dtype=np.int64)
    assert correlation._tie_sum(sizes) == 3_000_000**3 - 3_000_000 + 120


def test_spearman_near_ties_and_all_tied():
    one_ulp_apart = 1.0 + np.arange(-30, 30) * np.finfo(float).eps
    x = np.tile(one_ulp_apart, 20)
    y = np.repeat(np.arange(60.0), 20) + 2.0**-40  # low bits set: index-carrying path
    assert_close(spearman(x, y), stats.spearmanr(x, y).statistic)
    assert_close(spearman(y, x), stats.spearmanr(x, y).statistic)
    assert math.isnan(spearman(np.full(10, 3.0), np.arange(10.0)))
    assert math.isnan(spearman(np.arange(10.0), np.zeros(10)))
    assert_close(spearman([1.0, 2.0], [5.0, 4.0]), -1.0)


def exact_rolling(x, y, window):
    """Two-pass Pearson of every window, NaN where a side is constant."""
    r = np.full(len(x) - window + 1, np.nan)
    for end in range(window - 1, len(x)):
        a, b = x[end - window + 1 : end + 1], y[end - window + 1 : end + 1]
        if a.min() != a.max() and b.min() != b.max():
            r[end - window + 1] = stats.pearsonr(a, b).statistic
    return r


@pytest.mark.filterwarnings("ignore::scipy.stats.NearConstantInputWarning")
@pytest.mark.parametrize("chunk", [None, 5, 64])
@pytest.mark.parametrize("window", [2, 7, 100])
def test_rolling_huge_values_leave_other_windows_exact(monkeypatch, chunk, window):
    """Values near 1e6 with 1e-3 noise, and two exploding points (1e30, -1e25): every
    window without them matches the two-pass Pearson to 1e-9; windows with them too,
    since their sums are centred on one of their own points."""
    if chunk is not None:
        monkeypatch.setattr(correlation, "ROLLING_CHUNK", chunk)
    rng = np.random.default_rng(window)
    n = 700
    x = 1e6 + 1e-3 * rng.standard_normal(n)
    y = -3e6 + 1e-3 * (0.5 * (x - 1e6) / 1e-3 + rng.standard_normal(n))
    x[300] = 1e30
    y[450] = -1e25
    x[500:560] = 1e6  # constant stretch
    got = rolling_pearson(x, y, window)
    expected = exact_rolling(x, y, window)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("n", [2, 3, 10, 57])
def test_rolling_window_equal_to_length(n):
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    got = rolling_pearson(x, y, n)
    assert got.shape == (1,)
    assert_close(got[0], stats.pearsonr(x, y).statistic)
    np.testing.assert_allclose(
        rolling_pearson(x, y, max(2, n - 1)), exact_rolling(x, y, max(2, n - 1)), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("n, max_lag", [(50, 47), (50, 60), (400, 397)])
def test_lagged_max_lag_near_length(n, max_lag):
    x, y = correlated(np.random.default_rng(n), n, offset=1e5)
    lags, r = lagged_pearson(x, y, max_lag)
    assert lags[-1] == min(max_lag, n - 3)
    for lag, value in zip(lags, r):
        assert_close(value, scipy_lagged(x, y, lag), tolerance=1e-9)


def test_best_lag_only_among_lags_with_enough_pairs():
    lags = np.array([-2, -1, 0, 1, 2])
    r = [0.99, 0.2, 0.3, 0.2, 0.1]
    assert best_lag(lags, r) == -2
    # 31 pairs at lag 0: lag -2 leaves 29, fewer than 30, so it does not compete
    assert best_lag(lags, r, 31, 30) == 0
    assert best_lag(lags, r, 29, 30) is None


def test_correlate_reports_pairs_per_lag_and_a_best_lag_with_enough_of_them():
    rng = np.random.default_rng(3)
    steps = np.arange(40)
    x, y = rng.normal(size=40), rng.normal(size=40)
    result = correlate(steps, x, steps, y, window=5, max_lag=15)
    np.testing.assert_array_equal(result.lag_pairs, 40 - np.abs(result.lags))
    allowed = result.lags[result.lag_pairs >= 30]
    assert result.best_lag in allowed
    magnitude = np.abs(result.lag_r[np.isin(result.lags, allowed)])
    assert abs(result.lag_r[result.lags == result.best_lag][0]) == magnitude.max()
