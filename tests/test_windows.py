"""Tests of tb_batchavg.stats.windows against independent references: pandas
rolling/ewm/groupby, a slow explicit loop over every window, and a Python
transcription of TensorBoard's smoothing loop."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from tb_batchavg.stats import blocks, ema, windows
from tb_batchavg.stats.windows import moving_average
from tests.helpers import tensorboard_smoothing

WINDOWS = (1, 4, 7, 30)
BANDS = ("none", "std", "minmax")


def random_series(seed, n=700):
    """Uneven steps (with one large gap), a decaying loss-like signal rounded
    to 2 decimals (ties for the median), NaN/+Inf/-Inf holes and a NaN run of
    30 points (windows with no finite value)."""
    rng = np.random.default_rng(seed)
    steps = 10 + np.cumsum(rng.choice([1, 1, 1, 2, 3, 7], size=n))
    steps[n // 2 :] += 40
    values = np.round(5 * np.exp(-np.arange(n) / 300) + rng.normal(0, 0.5, n), 2)
    punch_holes(rng, values, (0.06, 0.08, 0.09), slice(100, 130))
    return steps.astype(np.int64), values


def punch_holes(rng, values, below, nan_run):
    """NaN, +Inf and -Inf where a uniform draw per point falls below below[0], in
    [below[0], below[1]) and in [below[1], below[2]); NaN over the slice nan_run."""
    draw = rng.random(len(values))
    values[draw < below[0]] = np.nan
    values[(draw >= below[0]) & (draw < below[1])] = np.inf
    values[(draw >= below[1]) & (draw < below[2])] = -np.inf
    values[nan_run] = np.nan


def as_nan(values):
    return np.where(np.isfinite(values), values, np.nan)


def extents(window, align):
    before = window - 1 if align == "trailing" else window // 2  # pandas center=True
    return before, window - 1 - before


def window_members(steps, method, window, align, edges, unit):
    """Explicit loop: for every output point, select the window's members by
    comparing positions. Returns a list of (output index, member indices)."""
    n = len(steps)
    positions = steps if unit == "steps" else np.arange(n)
    members = []
    if method == "block":
        block = (positions - positions[0]) // window
        for b in np.unique(block):
            inside = np.flatnonzero(block == b)
            last_position_of_block = positions[0] + (b + 1) * window - 1
            if edges == "valid" and positions[-1] < last_position_of_block:
                continue
            members.append((inside[-1], inside))
    else:
        before, after = extents(window, align)
        for i in range(n):
            low, high = positions[i] - before, positions[i] + after
            if edges == "valid" and (low < positions[0] or high > positions[-1]):
                continue
            members.append((i, np.flatnonzero((positions >= low) & (positions <= high))))
    return members


def slow_reference(steps, values, method, window, align, edges, unit):
    """The statistics of the finite values of every window of
    ``window_members``. Returns (index, {statistic: array})."""
    members = window_members(steps, method, window, align, edges, unit)
    stats = {name: [] for name in ("mean", "median", "std", "min", "max")}
    for _, inside in members:
        x = values[inside]
        x = x[np.isfinite(x)]
        stats["mean"].append(x.mean() if len(x) else np.nan)
        stats["median"].append(np.median(x) if len(x) else np.nan)
        stats["std"].append(x.std(ddof=1) if len(x) > 1 else np.nan)
        stats["min"].append(x.min() if len(x) else np.nan)
        stats["max"].append(x.max() if len(x) else np.nan)
    index = np.array([i for i, _ in members], dtype=np.int64)
    return index, {name: np.array(v, dtype=float) for name, v in stats.items()}


def pandas_rolling(steps, values, window, align, edges, unit):
    """pandas rolling with min_periods=1. A window [p - before, p + after] is
    the trailing window ending at p + after: for points the series is padded
    with `after` NaNs; for steps, NaN rows are added at the times p + after and
    pandas' time-based window (t - w, t] is read there."""
    n = len(values)
    before, after = extents(window, align)
    if unit == "points":
        positions = np.arange(n)
        series = pd.Series(np.concatenate([as_nan(values), np.full(after, np.nan)]))
        rolling = series.rolling(window, min_periods=1)
        rows = np.arange(n) + after
    else:
        positions = steps
        times = np.union1d(steps, steps + after)
        series = pd.Series(as_nan(values), index=steps).reindex(times)
        series.index = pd.to_datetime(times, unit="ns")
        rolling = series.rolling(pd.Timedelta(window, unit="ns"), min_periods=1)
        rows = np.searchsorted(times, steps + after)
    keep = np.ones(n, dtype=bool)
    if edges == "valid":
        keep = (positions - before >= positions[0]) & (positions + after <= positions[-1])
    stats = {name: getattr(rolling, name)().to_numpy()[rows][keep] for name in ("mean", "median", "std", "min", "max")}
    return np.flatnonzero(keep), stats


def pandas_blocks(steps, values, window, edges, unit):
    n = len(values)
    positions = steps if unit == "steps" else np.arange(n)
    frame = pd.DataFrame({"block": (positions - positions[0]) // window, "value": as_nan(values), "row": np.arange(n)})
    grouped = frame.groupby("block")
    table = grouped["value"].agg(["mean", "median", "std", "min", "max"])
    table["row"] = grouped["row"].max()
    table["size"] = grouped["row"].size()
    last_block = table.index[-1]
    if edges == "valid":
        if unit == "points" and table["size"].iloc[-1] < window:
            table = table.drop(last_block)
        if unit == "steps" and steps[-1] < steps[0] + (last_block + 1) * window - 1:
            table = table.drop(last_block)
    return table["row"].to_numpy(), {name: table[name].to_numpy() for name in ("mean", "median", "std", "min", "max")}


def expected_output(stats, method, band):
    value = stats["median"] if method == "median" else stats["mean"]
    if band == "std":
        return value, value - stats["std"], value + stats["std"]
    if band == "minmax":
        return value, stats["min"], stats["max"]
    return value, np.full(len(value), np.nan), np.full(len(value), np.nan)


def assert_matches(result, steps, index, stats, method, band, scale):
    np.testing.assert_array_equal(result.index, index)
    np.testing.assert_array_equal(result.step, steps[index])
    assert result.index.dtype == np.int64 and result.step.dtype == np.int64
    for got, want in zip(result[2:], expected_output(stats, method, band)):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale)


@pytest.mark.parametrize(
    "method,align,edges,unit",
    list(
        itertools.product(
            ("sma", "median", "block"), ("trailing", "centered"), ("valid", "partial"), ("points", "steps")
        )
    ),
)
def test_windowed_methods_match_references(method, align, edges, unit):
    steps, values = random_series(seed=len(method) * 31 + len(align) + len(edges) + len(unit))
    scale = np.nanmax(np.abs(as_nan(values)))
    for window in WINDOWS:
        if method == "block":
            references = [pandas_blocks(steps, values, window, edges, unit)]
        else:
            references = [pandas_rolling(steps, values, window, align, edges, unit)]
        references.append(slow_reference(steps, values, method, window, align, edges, unit))
        for band in BANDS:
            result = moving_average(
                steps, values, method=method, window=window, align=align, edges=edges, unit=unit, band=band
            )
            for index, stats in references:
                assert_matches(result, steps, index, stats, method, band, scale)


def exploding_series(seed, n=900, holes=True):
    """A run that blows up: a loss near 0.1, a stretch near 1e-3, an explosion
    through 36 orders of magnitude (1 to 1e36), a fall back to ~1e-3 and a
    stretch of both signs (cancellation inside windows); uneven steps and,
    with ``holes``, NaN and +-Inf holes and a NaN run of 20 points."""
    rng = np.random.default_rng(seed)
    steps = 3 + np.cumsum(rng.choice([1, 1, 2, 3, 5], size=n))
    noise = rng.normal(size=n)
    sizes = np.array([n * 5 // 18, n // 9, n * 2 // 9, n // 6])
    values = np.concatenate(
        [
            0.1 * (1 + 0.05 * noise[: sizes[0]]),
            1e-3 * (1 + 0.1 * noise[sizes[0] : sizes[:2].sum()]),
            np.logspace(0, 36, sizes[2]) * (1 + 0.1 * noise[sizes[:2].sum() : sizes[:3].sum()]),
            1e-3 * np.exp(noise[sizes[:3].sum() : sizes.sum()]),
            noise[sizes.sum() :],
        ]
    )
    if holes:
        punch_holes(rng, values, (0.05, 0.07, 0.08), slice(300, 320))
    return steps.astype(np.int64), values


def exact_window_stats(values, members):
    """Mean, sample standard deviation (NaN below 2 values) and largest |value|
    of the finite values of each window, from correctly rounded sums
    (math.fsum); all NaN for a window without finite values."""
    stats = np.full((len(members), 3), np.nan)
    for row, (_, inside) in enumerate(members):
        x = values[inside]
        x = x[np.isfinite(x)]
        if len(x):
            mean = math.fsum(x) / len(x)
            std = math.sqrt(math.fsum((x - mean) ** 2) / (len(x) - 1)) if len(x) > 1 else np.nan
            stats[row] = mean, std, np.abs(x).max()
    return stats.T


def assert_within(got, want, tolerance):
    """got equals want up to tolerance (per element), NaN exactly where want is NaN."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    known = ~np.isnan(want)
    error = np.abs(got[known] - want[known])
    worst = np.argmax(error - tolerance[known]) if error.size else 0
    assert (error <= tolerance[known]).all(), (
        f"error {error[worst]:.3g} > {tolerance[known][worst]:.3g} at {want[known][worst]:.6g}"
    )


@pytest.mark.parametrize("chunk", [None, 37])
@pytest.mark.parametrize(
    "method,align,edges,unit",
    list(
        itertools.product(
            ("sma", "block", "median"), ("trailing", "centered"), ("valid", "partial"), ("points", "steps")
        )
    ),
)
def test_exploding_series_error_is_relative_to_each_window(method, align, edges, unit, chunk, monkeypatch):
    """Values from 1e-3 to 1e36: each window's mean and std band are within
    1e-9 of the window's own largest |value| of the exact (math.fsum) ones.
    chunk=37 makes the span tables cover many small data chunks."""
    if chunk:
        monkeypatch.setattr(blocks, "CACHE_CHUNK", chunk)
    steps, values = exploding_series(seed=len(method) + 2 * len(align) + 3 * len(edges))
    for window in (1, 3, 16, 50):
        members = window_members(steps, method, window, align, edges, unit)
        mean, std, scale = exact_window_stats(values, members)
        tolerance = 1e-9 * scale
        kwargs = {"method": method, "window": window, "align": align, "edges": edges, "unit": unit}
        result = moving_average(steps, values, band="std", **kwargs)
        np.testing.assert_array_equal(result.index, [i for i, _ in members])
        if method == "median":
            assert_within(result.upper - result.value, std, tolerance)
            assert_within(result.value - result.lower, std, tolerance)
            continue
        assert_within(result.value, mean, tolerance)
        assert_within(result.lower, mean - std, tolerance)
        assert_within(result.upper, mean + std, tolerance)
        np.testing.assert_array_equal(moving_average(steps, values, **kwargs).value, result.value)


@pytest.mark.parametrize("chunk", [None, 37])
@pytest.mark.parametrize("align,edges", list(itertools.product(("trailing", "centered"), ("valid", "partial"))))
def test_exploding_series_without_holes_error_is_relative_to_each_window(align, edges, chunk, monkeypatch):
    """The same bound where every value is finite: windows over points then
    take the per-block fast path (``_consecutive_moments``)."""
    if chunk:
        monkeypatch.setattr(blocks, "CACHE_CHUNK", chunk)
    steps, values = exploding_series(seed=len(align) + len(edges), holes=False)
    for window in (1, 2, 3, 16, 50, 899, 900):
        members = window_members(steps, "sma", window, align, edges, "points")
        mean, std, scale = exact_window_stats(values, members)
        tolerance = 1e-9 * scale
        result = moving_average(steps, values, window=window, align=align, edges=edges, band="std")
        np.testing.assert_array_equal(result.index, [i for i, _ in members])
        assert_within(result.value, mean, tolerance)
        assert_within(result.lower, mean - std, tolerance)
        assert_within(result.upper, mean + std, tolerance)


def test_smoothed_loss_before_an_explosion_is_the_loss():
    """A loss of 0.1 that later explodes to 1e36: the windows before the
    explosion hold only 0.1, so their mean is 0.1 and their std 0."""
    values = np.r_[np.full(1000, 0.1), np.logspace(0, 36, 300)]
    steps = np.arange(len(values))
    for method in ("sma", "block"):
        result = moving_average(steps, values, method=method, window=25, band="std")
        before = result.index < 1000
        assert before.sum() >= 40
        assert (result.value[before] == 0.1).all()
        assert (result.lower[before] == 0.1).all() and (result.upper[before] == 0.1).all()
        after = ~before
        assert (result.value[after] > 0.1).all()
        assert (result.upper[after] > result.value[after]).all()


def test_reference_shift_matches_pandas_center_for_odd_windows():
    steps, values = random_series(seed=3)
    _, stats = pandas_rolling(steps, values, 7, "centered", "partial", "points")
    centred = pd.Series(as_nan(values)).rolling(7, center=True, min_periods=1).mean()
    np.testing.assert_allclose(stats["mean"], centred.to_numpy())
    result = moving_average(steps, values, window=7, align="centered", edges="partial")
    np.testing.assert_allclose(result.value, centred.to_numpy(), rtol=1e-12, atol=1e-12)


def test_points_trailing_valid_is_convolve_valid():
    values = np.random.default_rng(5).normal(size=300)
    result = moving_average(np.arange(300), values, window=20)
    np.testing.assert_allclose(result.value, np.convolve(values, np.ones(20) / 20, "valid"), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result.index, np.arange(19, 300))


def test_long_windows_in_steps_span_several_median_chunks():
    """Windows of 3,000 steps over 40,000 points: the median is answered in
    several chunk groups, with partial edges and NaN holes."""
    rng = np.random.default_rng(11)
    n = 40_000
    steps = np.cumsum(rng.integers(1, 4, n)).astype(np.int64)
    values = rng.normal(size=n) + np.sin(np.arange(n) / 500)
    values[rng.random(n) < 0.05] = np.nan
    index, stats = pandas_rolling(steps, values, 3000, "centered", "partial", "steps")
    result = moving_average(
        steps, values, method="median", window=3000, align="centered", edges="partial", unit="steps", band="minmax"
    )
    assert_matches(result, steps, index, stats, "median", "minmax", scale=5.0)


@pytest.mark.parametrize("chunk", [None, 7])
@pytest.mark.parametrize("weight", [0.0, 0.001, 0.2, 0.6, 0.9, 0.999, 0.99999])
def test_ema_matches_tensorboard_and_pandas(weight, chunk, monkeypatch):
    """chunk=7: the chunked recurrence carries sums over hundreds of chunks
    (and, recursively, over chunks of chunks), and the EMA and its std their
    state over chunks of 11 points."""
    if chunk:
        monkeypatch.setattr(ema, "_EMA_BLOCK", chunk)
        monkeypatch.setattr(ema, "_EMA_PART", 11)
    steps, values = random_series(seed=int(weight * 1000), n=3000)
    finite = np.isfinite(values)
    result = moving_average(steps, values, method="ema", weight=weight, band="std")
    np.testing.assert_array_equal(result.index, np.arange(len(values)))
    np.testing.assert_array_equal(result.step, steps)
    np.testing.assert_allclose(result.value, tensorboard_smoothing(values, weight), rtol=1e-11, atol=1e-12)
    np.testing.assert_array_equal(result.value[~finite], values[~finite])
    ewm = pd.Series(values[finite]).ewm(alpha=1 - weight, adjust=True, ignore_na=True)
    np.testing.assert_allclose(result.value[finite], ewm.mean().to_numpy(), rtol=1e-11, atol=1e-12)
    std = ewm.std().to_numpy()
    np.testing.assert_allclose(result.upper[finite] - result.value[finite], std, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(result.value[finite] - result.lower[finite], std, rtol=1e-7, atol=1e-10)
    assert np.isnan(result.lower[~finite]).all() and np.isnan(result.upper[~finite]).all()


def test_ema_ignores_align_edges_unit():
    steps, values = random_series(seed=8)
    reference = moving_average(steps, values, method="ema", weight=0.7)
    other = moving_average(
        steps, values, method="ema", weight=0.7, window=3, align="centered", edges="partial", unit="steps"
    )
    for got, want in zip(other, reference):
        np.testing.assert_array_equal(got, want)
    assert np.isnan(reference.lower).all() and np.isnan(reference.upper).all()


@pytest.mark.parametrize("values", [[0.25] * 40, [np.inf] * 5, [3.0]])
def test_constant_series_is_unchanged(values):
    values = np.array(values)
    steps = np.arange(len(values)) * 2
    assert np.array_equal(moving_average(steps, values, method="ema", weight=0.9).value, values)
    assert values.tolist() == tensorboard_smoothing(values, 0.9)
    if np.isfinite(values[0]):
        for method in ("sma", "median", "block"):
            result = moving_average(steps, values, method=method, window=4, edges="partial", band="std")
            assert (result.value == values[0]).all()
            assert (result.upper[1:] == values[0]).all()


def test_ema_nan_breaks_constancy_like_tensorboard():
    values = np.array([2.0, np.nan, 2.0, 2.0, 5.0])
    result = moving_average(np.arange(5), values, method="ema", weight=0.5)
    np.testing.assert_allclose(result.value, tensorboard_smoothing(values, 0.5))
    all_nan = moving_average(np.arange(3), np.full(3, np.nan), method="ema")
    assert np.isnan(all_nan.value).all()


def test_window_longer_than_series():
    values = np.array([1.0, 3.0, np.nan, 8.0, 2.0, 7.0])
    steps = np.arange(6) * 10
    for method in ("sma", "median", "block"):
        for unit in ("points", "steps"):
            valid = moving_average(steps, values, method=method, window=100, unit=unit)
            assert all(len(array) == 0 for array in valid)
    partial = moving_average(steps, values, window=100, edges="partial")
    expanding = pd.Series(values).expanding().mean().to_numpy()
    np.testing.assert_allclose(partial.value, expanding)
    block = moving_average(steps, values, method="block", window=100, edges="partial")
    np.testing.assert_array_equal(block.index, [5])
    np.testing.assert_allclose(block.value, [np.nanmean(values)])


def test_empty_input():
    for method, band in itertools.product(("sma", "median", "block", "ema"), ("none", "std")):
        result = moving_average(np.array([], dtype=np.int64), np.array([]), method=method, band=band, edges="partial")
        assert all(len(array) == 0 for array in result)
        assert result.index.dtype == np.int64 and result.value.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"method": "mean"}, "method"),
        ({"align": "left"}, "align"),
        ({"edges": "same"}, "edges"),
        ({"unit": "seconds"}, "unit"),
        ({"band": "iqr"}, "band"),
        ({"window": 0}, "window"),
        ({"window": -3}, "window"),
        ({"window": 2.5}, "window"),
        ({"window": True}, "window"),
        ({"weight": -0.1}, "weight"),
        ({"weight": 1.0}, "weight"),
        ({"weight": float("nan")}, "weight"),
        ({"method": "ema", "band": "minmax"}, "^band=minmax is not defined for method=ema$"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        moving_average(np.arange(5), np.ones(5), **kwargs)


def test_invalid_series_raise():
    with pytest.raises(ValueError, match="strictly increasing"):
        moving_average(np.array([0, 2, 2]), np.ones(3))
    with pytest.raises(ValueError, match="same length"):
        moving_average(np.arange(3), np.ones(4))


def test_200k_points_match_pandas():
    rng = np.random.default_rng(2024)
    n = 200_000
    values = 8 * np.exp(-np.arange(n) / 40_000) + rng.gamma(2.0, 0.3, n)
    values[rng.random(n) < 0.01] = np.nan
    values[rng.random(n) < 0.001] = np.inf
    steps = np.arange(n, dtype=np.int64) * 4
    clean = pd.Series(as_nan(values))
    scale = np.nanmax(np.abs(clean))
    tolerance = {"rtol": 1e-9, "atol": 1e-9 * scale}

    sma = moving_average(steps, values, window=50, band="std")
    np.testing.assert_allclose(sma.value, clean.rolling(50, min_periods=1).mean()[49:], **tolerance)
    np.testing.assert_allclose(sma.upper - sma.value, clean.rolling(50, min_periods=1).std()[49:], **tolerance)

    median = moving_average(steps, values, method="median", window=51, align="centered", edges="partial")
    reference = clean.rolling(51, center=True, min_periods=1).median()
    np.testing.assert_allclose(median.value, reference, **tolerance)

    ema = moving_average(steps, values, method="ema", weight=0.95)
    finite = np.isfinite(values)
    reference = pd.Series(values[finite]).ewm(alpha=0.05, adjust=True, ignore_na=True).mean()
    np.testing.assert_allclose(ema.value[finite], reference, **tolerance)


@pytest.mark.parametrize(
    "method,align,edges,unit",
    list(
        itertools.product(
            ("sma", "block", "median"), ("trailing", "centered"), ("valid", "partial"), ("points", "steps")
        )
    ),
)
def test_band_at_is_the_band_of_moving_average_at_those_points(method, align, edges, unit):
    """windows.band_at (the averages route's band at the shown points only): the std band
    within 1e-9 of each window's largest |value| of moving_average's (a series that explodes,
    with holes and a NaN run), the minmax band exactly."""
    steps, values = exploding_series(seed=11)
    rng = np.random.default_rng(3)
    for window in (1, 3, 16, 50):
        kwargs = {"method": method, "window": window, "align": align, "edges": edges, "unit": unit}
        full = moving_average(steps, values, band="std", **kwargs)
        at = np.sort(rng.choice(len(full.value), size=min(80, len(full.value)), replace=False))
        members = window_members(steps, method, window, align, edges, unit)
        scale = exact_window_stats(values, [members[i] for i in at])[2]
        lower, upper = windows.band_at(steps, values, at, full.value[at], band="std", **kwargs)
        assert_within(lower, full.lower[at], 1e-9 * scale)
        assert_within(upper, full.upper[at], 1e-9 * scale)
        extremes = moving_average(steps, values, band="minmax", **kwargs)
        lower, upper = windows.band_at(steps, values, at, extremes.value[at], band="minmax", **kwargs)
        np.testing.assert_array_equal(lower, extremes.lower[at])
        np.testing.assert_array_equal(upper, extremes.upper[at])
    empty = windows.band_at(steps, values, [], [], method=method, window=5, band="std")
    assert [len(a) for a in empty] == [0, 0]


@pytest.mark.parametrize("kwargs", [{"method": "ema"}, {"band": "none"}])
def test_band_at_refuses_what_has_no_windowed_band(kwargs):
    steps, values = random_series(seed=2, n=50)
    with pytest.raises(ValueError, match="band_at"):
        windows.band_at(steps, values, [3], [1.0], **{"band": "std", **kwargs})


@pytest.mark.parametrize("block", [3, 32])
@pytest.mark.parametrize("decay", [0.0, 2.0**-199, 0.3, 0.9, 0.9999])
def test_decayed_sums_follow_the_recurrence(decay, block, monkeypatch):
    """Blocked matrix products with carries (recursively over blocks of blocks) equal the
    plain loop s_t = decay * s_{t-1} + x_t from a carried-in sum, at lengths around
    multiples of the block."""
    monkeypatch.setattr(ema, "_EMA_BLOCK", block)
    rng = np.random.default_rng(block)
    for n in (0, 1, 2, block - 1, block, block + 1, block * block, block * block + 2, 1000):
        for carry in (0.0, -2.5):
            x = rng.normal(size=n) * 10.0 ** rng.integers(-3, 4, n)
            expected, last = np.empty(n), carry
            for t in range(n):
                last = decay * last + x[t]
                expected[t] = last
            scale = np.abs(expected) + np.abs(x).max(initial=0.0) + abs(carry)
            got = ema._decayed_sums(x.copy(), decay, carry)
            assert got.shape == (n,)
            assert np.all(np.abs(got - expected) <= 1e-13 * scale), (n, carry)


@pytest.mark.parametrize("scale", [2.0**-900, 1e-300, 1e300, 2.0**900])
def test_ema_of_extreme_magnitudes_is_the_ema_scaled(scale):
    """The EMA and its std are homogeneous: values times a huge or tiny power of ten or two
    (beyond where the decayed sums are rescaled internally) give the results of the plain
    values (checked against pandas in test_ema_matches_tensorboard_and_pandas) times it."""
    rng = np.random.default_rng(4)
    values = 1.0 + rng.random(20_000)
    steps = np.arange(len(values))
    for weight in (0.6, 0.999):
        plain = moving_average(steps, values, method="ema", weight=weight, band="std")
        scaled = moving_average(steps, values * scale, method="ema", weight=weight, band="std")
        for name in ("value", "lower", "upper"):
            np.testing.assert_allclose(getattr(scaled, name)[1:], getattr(plain, name)[1:] * scale, rtol=1e-12)


@pytest.mark.parametrize("window", [2, 4, 7, 10, 51, 100])
@pytest.mark.parametrize("method", ["sma", "median"])
def test_centered_windows_are_pandas_center_true(window, method):
    """Issue 14 item 11: centered windows, odd and even, equal pandas' rolling(w, center=True)
    directly (no reference shift), with valid edges (min_periods=w on a finite series) and with
    partial edges (min_periods=1)."""
    steps, values = random_series(seed=window)
    clean = pd.Series(as_nan(values))
    for edges in ("partial", "valid"):
        rolling = clean.rolling(window, center=True, min_periods=1)
        reference = (rolling.median() if method == "median" else rolling.mean()).to_numpy()
        result = moving_average(steps, values, method=method, window=window, align="centered", edges=edges)
        if edges == "valid":  # pandas' rows whose whole window lies inside the series
            inside = np.flatnonzero(
                pd.Series(np.ones(len(values))).rolling(window, center=True, min_periods=window).sum().notna()
            )
            np.testing.assert_array_equal(result.index, inside)
            reference = reference[inside]
        np.testing.assert_allclose(result.value, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("window", [2, 3, 4, 9, 10, 250])
def test_centered_step_windows_are_pandas_offset_windows_closed_left(window):
    """unit=steps: the steps [s - floor(w/2), s + ceil(w/2) - 1], which on integer steps is
    pandas' time-based rolling("<w>ns", center=True, closed="left") (the points convention with
    steps for points); checked on uneven steps with NaN holes."""
    rng = np.random.default_rng(window)
    n = 2000
    steps = np.cumsum(rng.integers(1, 5, n)).astype(np.int64)
    values = rng.normal(size=n)
    values[rng.random(n) < 0.03] = np.nan
    series = pd.Series(values, index=pd.to_datetime(steps, unit="ns"))
    rolling = series.rolling(pd.Timedelta(window, unit="ns"), center=True, closed="left", min_periods=1)
    for method, reference in (("sma", rolling.mean()), ("median", rolling.median())):
        result = moving_average(
            steps, values, method=method, window=window, align="centered", edges="partial", unit="steps"
        )
        np.testing.assert_array_equal(result.index, np.arange(n))
        np.testing.assert_allclose(result.value, reference.to_numpy(), rtol=1e-10, atol=1e-10)
