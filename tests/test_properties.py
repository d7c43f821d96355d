"""Property tests of the numeric core on random series with NaN and Inf and random parameters."""

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tb_batchavg.stats import windows

VALUES = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([np.nan, np.inf, -np.inf]),
)
SERIES = st.lists(VALUES, min_size=0, max_size=120)
# Magnitudes from 1e-3 to 1e36 of either sign (a run that explodes), with holes.
WIDE_VALUES = st.one_of(
    st.builds(lambda sign, exponent: sign * 10.0**exponent, st.sampled_from([-1.0, 1.0]), st.floats(-3, 36)),
    st.sampled_from([np.nan, np.inf, -np.inf]),
)


def _steps(n, gaps):
    return np.cumsum(np.asarray(gaps[:n], dtype=np.int64)) if n else np.zeros(0, np.int64)


@st.composite
def cases(draw, series=SERIES):
    values = np.asarray(draw(series), dtype=np.float64)
    gaps = draw(st.lists(st.integers(1, 5), min_size=len(values), max_size=len(values)))
    return {
        "steps": _steps(len(values), gaps),
        "values": values,
        "method": draw(st.sampled_from(["sma", "median", "block"])),
        "window": draw(st.integers(1, 40)),
        "align": draw(st.sampled_from(["trailing", "centered"])),
        "edges": draw(st.sampled_from(["valid", "partial"])),
        "unit": draw(st.sampled_from(["points", "steps"])),
        "band": draw(st.sampled_from(["none", "std", "minmax"])),
    }


def _window_positions(case, i):
    """Positions of the points in the window of output point i, from the definitions."""
    steps, w = case["steps"], case["window"]
    before, after = (w - 1, 0) if case["align"] == "trailing" else (w // 2, w - 1 - w // 2)
    if case["unit"] == "points":
        return np.arange(max(0, i - before), min(len(steps), i + after + 1))
    s = steps[i]
    return np.flatnonzero((steps >= s - before) & (steps <= s + after))


@settings(max_examples=150, deadline=None)
@given(cases())
def test_averages_lie_within_the_windows_finite_range(case):
    kwargs = {k: case[k] for k in ("method", "window", "align", "edges", "unit", "band")}
    result = windows.moving_average(case["steps"], case["values"], **kwargs)
    values = case["values"]
    assert len(result.index) == len(result.step) == len(result.value)
    assert np.all(np.diff(result.step) > 0)
    for j, i in enumerate(result.index):
        if case["method"] == "block":
            continue  # the block case is checked against pandas below
        window = values[_window_positions(case, i)]
        finite = window[np.isfinite(window)]
        if not len(finite):
            assert np.isnan(result.value[j])
            continue
        scale = 1e-9 * max(1.0, np.abs(finite).max())
        assert finite.min() - scale <= result.value[j] <= finite.max() + scale
        if case["band"] == "minmax":
            assert result.lower[j] == finite.min() and result.upper[j] == finite.max()


@settings(max_examples=150, deadline=None)
@given(cases(st.lists(WIDE_VALUES, min_size=0, max_size=120)))
def test_sma_and_std_band_error_is_relative_to_each_window(case):
    """Values spanning 39 orders of magnitude: each window's sma and std band
    are within 1e-9 of its own largest finite |value| of the exact ones
    (math.fsum), whatever the values outside the window."""
    kwargs = {k: case[k] for k in ("window", "align", "edges", "unit")}
    result = windows.moving_average(case["steps"], case["values"], method="sma", band="std", **kwargs)
    values = case["values"]
    for j, i in enumerate(result.index):
        window = values[_window_positions(case, i)]
        finite = window[np.isfinite(window)]
        if not len(finite):
            assert np.isnan([result.value[j], result.lower[j], result.upper[j]]).all()
            continue
        tolerance = 1e-9 * np.abs(finite).max()
        mean = math.fsum(finite) / len(finite)
        assert abs(result.value[j] - mean) <= tolerance
        if len(finite) < 2:
            assert np.isnan(result.lower[j]) and np.isnan(result.upper[j])
            continue
        std = math.sqrt(math.fsum((finite - mean) ** 2) / (len(finite) - 1))
        assert abs(result.lower[j] - (mean - std)) <= tolerance
        assert abs(result.upper[j] - (mean + std)) <= tolerance


@settings(max_examples=150, deadline=None)
@given(cases())
def test_lengths_follow_the_edge_policy(case):
    kwargs = {k: case[k] for k in ("method", "window", "align", "edges", "unit", "band")}
    result = windows.moving_average(case["steps"], case["values"], **kwargs)
    n, w = len(case["values"]), case["window"]
    if case["method"] == "block":
        return
    if case["edges"] == "partial":
        assert len(result.index) == n
    elif case["unit"] == "points":
        assert len(result.index) == max(0, n - w + 1)
    else:
        kept = [
            i
            for i in range(n)
            if case["steps"][i] - (w - 1 if case["align"] == "trailing" else w // 2) >= case["steps"][0]
            and case["steps"][i] + (0 if case["align"] == "trailing" else w - 1 - w // 2) <= case["steps"][-1]
        ]
        assert result.index.tolist() == kept


@settings(max_examples=120, deadline=None)
@given(SERIES, st.integers(1, 30), st.sampled_from(["valid", "partial"]))
def test_sma_and_median_equal_pandas(values, window, edges):
    values = np.asarray(values, dtype=np.float64)
    steps = np.arange(len(values), dtype=np.int64)
    clean = pd.Series(np.where(np.isfinite(values), values, np.nan))
    for method, reference in (("sma", "mean"), ("median", "median")):
        result = windows.moving_average(steps, values, method=method, window=window, edges=edges)
        expected = getattr(clean.rolling(window, min_periods=1), reference)().to_numpy()
        if edges == "valid":
            expected = expected[window - 1 :]
        scale = 1e-9 * max(1.0, np.nanmax(np.abs(clean)) if clean.notna().any() else 1.0)
        np.testing.assert_allclose(result.value, expected, rtol=1e-9, atol=scale)


@settings(max_examples=120, deadline=None)
@given(SERIES, st.floats(0.0, 0.999))
def test_ema_equals_pandas_ewm(values, weight):
    values = np.asarray(values, dtype=np.float64)
    steps = np.arange(len(values), dtype=np.int64)
    result = windows.moving_average(steps, values, method="ema", weight=weight)
    finite = np.isfinite(values)
    if len(values) and np.all(values == values[0]):
        np.testing.assert_array_equal(result.value, values)  # TensorBoard's constant-series rule
        return
    np.testing.assert_array_equal(result.value[~finite], values[~finite])
    if finite.any():
        expected = pd.Series(values[finite]).ewm(alpha=1 - weight, adjust=True).mean().to_numpy()
        scale = 1e-9 * max(1.0, np.abs(values[finite]).max())
        np.testing.assert_allclose(result.value[finite], expected, rtol=1e-9, atol=scale)


@settings(max_examples=120, deadline=None)
@given(SERIES, st.integers(1, 20), st.sampled_from(["valid", "partial"]))
def test_block_means_equal_pandas_groupby(values, window, edges):
    values = np.asarray(values, dtype=np.float64)
    steps = np.arange(len(values), dtype=np.int64)
    result = windows.moving_average(steps, values, method="block", window=window, edges=edges)
    clean = pd.Series(np.where(np.isfinite(values), values, np.nan))
    groups = clean.groupby(np.arange(len(values)) // window)
    expected = groups.mean().to_numpy()
    last = groups.apply(lambda g: g.index[-1]).to_numpy() if len(values) else np.zeros(0)
    if edges == "valid" and len(values) % window:
        expected, last = expected[:-1], last[:-1]
    np.testing.assert_array_equal(result.index, last)
    scale = 1e-9 * max(1.0, np.nanmax(np.abs(clean)) if clean.notna().any() else 1.0)
    np.testing.assert_allclose(result.value, expected, rtol=1e-9, atol=scale)
