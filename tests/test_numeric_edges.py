"""Numeric edges of the averages (issue 16, item 3): steps at the int64 limits and values at
float64's extremes.

References are exact: window members from the definitions in Python integers (steps of any size,
windows reaching past the limits), means and standard deviations in fractions.Fraction,
TensorBoard's smoothing loop in exact arithmetic for the EMA, and pandas on the same series moved
away from the limits. The last tests ask the real plugin app (TensorBoard's own event writer and
WSGI app) for `averages` and `export` on such runs."""

import bisect
import csv
import io
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from tb_batchavg.stats import moments
from tb_batchavg.stats.ema import _decayed_sums
from tb_batchavg.stats.windows import band_at, moving_average
from tests import helpers

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_MAX = np.finfo(np.float64).max
# Windows whose largest finite |value| is beyond these are computed exactly (moments.py).
HUGE, TINY = 2.0**480, 2.0**-400
WINDOWED = ("sma", "median", "block")
SUBNORMAL = Fraction(2.0**-1073)  # two ulps of float64's subnormal grid


# --- Exact references ---------------------------------------------------------------------------


def extents(window, align):
    before = window - 1 if align == "trailing" else window // 2
    return before, window - 1 - before


def members(steps, method, window, align, edges, unit):
    """[(output index, [member indices])] from the module docstring's definitions, in Python
    integers (no overflow, whatever the steps and the window)."""
    n = len(steps)
    positions = [int(s) for s in steps] if unit == "steps" else list(range(n))
    if not n:
        return []
    first, last = positions[0], positions[-1]
    out = []
    if method == "block":
        blocks = {}
        for i, p in enumerate(positions):
            blocks.setdefault((p - first) // window, []).append(i)
        for block, inside in sorted(blocks.items()):
            if edges == "valid" and first + (block + 1) * window - 1 > last:
                continue
            out.append((inside[-1], inside))
        return out
    before, after = extents(window, align)
    for i, p in enumerate(positions):
        low, high = p - before, p + after
        if edges == "valid" and (low < first or high > last):
            continue
        out.append((i, list(range(bisect.bisect_left(positions, low), bisect.bisect_right(positions, high)))))
    return out


def exact_moments(xs):
    """(mean, sample variance) of finite floats as Fractions (None where undefined)."""
    exact = [Fraction(x) for x in xs]
    if not exact:
        return None, None
    mean = sum(exact) / len(exact)
    if len(exact) < 2:
        return mean, None
    return mean, sum((x - mean) ** 2 for x in exact) / (len(exact) - 1)


def root(variance):
    """sqrt of a Fraction as a float, within an ulp or two (inf beyond float64)."""
    if variance == 0:
        return 0.0
    k = (variance.numerator.bit_length() - variance.denominator.bit_length()) // 2
    try:
        return math.ldexp(math.sqrt(float(variance / Fraction(4) ** k)), k)
    except OverflowError:
        return math.inf


def rounded(x):
    """A Fraction correctly rounded to float64 (+-inf beyond)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def exact_median(xs):
    xs = sorted(Fraction(x) for x in xs)
    k = len(xs)
    return xs[k // 2] if k % 2 else (xs[k // 2 - 1] + xs[k // 2]) / 2


def ulps(x, count=2):
    return count * math.ulp(x) if math.isfinite(x) else 0.0


def check_windows(steps, values, method, window, align, edges, unit, band):
    """moving_average against the exact references, window by window. Windows whose largest
    finite |value| M exceeds 2**480 (or, for the std band, is in (0, 2**-400)) are exact: the
    correctly rounded mean, the std within two ulps; the others within 1e-12 M (the documented
    bound: a small multiple of eps times M, and two subnormal ulps where M is subnormal). The median is the correctly rounded median, the
    minmax band the exact extremes."""
    result = moving_average(steps, values, method=method, window=window, align=align, edges=edges, unit=unit, band=band)
    expected = members(steps, method, window, align, edges, unit)
    np.testing.assert_array_equal(result.index, [i for i, _ in expected])
    np.testing.assert_array_equal(result.step, np.asarray(steps, dtype=np.int64)[result.index])
    for row, (i, inside) in enumerate(expected):
        xs = [float(values[j]) for j in inside if math.isfinite(values[j])]
        value, lower, upper = (float(result.value[row]), float(result.lower[row]), float(result.upper[row]))
        where = (method, window, align, edges, unit, band, i, xs)
        if not xs:
            assert math.isnan(value) and math.isnan(lower) and math.isnan(upper), where
            continue
        largest = max(abs(x) for x in xs)
        mean, variance = exact_moments(xs)
        exact = largest > HUGE or (band == "std" and 0 < largest < TINY)
        if method == "median":
            assert value == rounded(exact_median(xs)), where
            center = Fraction(value)
        else:
            if exact:
                assert value == rounded(mean), where
            else:
                assert abs(Fraction(value) - mean) <= Fraction(1e-12) * Fraction(largest) + SUBNORMAL, where
            center = Fraction(value)
        if band == "minmax":
            assert (lower, upper) == (min(xs), max(xs)), where
        elif band == "none":
            assert math.isnan(lower) and math.isnan(upper), where
        elif variance is None:
            assert math.isnan(lower) and math.isnan(upper), where
        else:
            std = root(variance)
            if math.isinf(std):  # beyond float64 (only windows of huge values): the edges are -+inf
                assert exact and (lower, upper) == (-math.inf, math.inf), where
                continue
            for got, want in ((lower, center - Fraction(std)), (upper, center + Fraction(std))):
                want = rounded(want)
                if math.isinf(want):
                    assert got == want or abs(got) >= FLOAT_MAX * (1 - 4e-16), where
                elif exact:  # the std within two ulps, then one rounding of center -+ std
                    assert abs(got - want) <= ulps(std) + ulps(want), where
                else:
                    assert abs(got - want) <= 1e-12 * largest + SUBNORMAL, where
    return result


# --- Steps at the int64 limits ------------------------------------------------------------------

OFFSETS = [0, 1, 2, 4, 5, 9, 10, 11, 17, 30]


def placed(where):
    """Steps within a few windows of the int64 limits: below the top, above the bottom, or at
    both ends at once (a span of 2**64 - 1 steps) with a few around 0."""
    if where == "top":
        return np.array([INT64_MAX - o for o in reversed(OFFSETS)], dtype=np.int64)
    if where == "bottom":
        return np.array([INT64_MIN + o for o in OFFSETS], dtype=np.int64)
    return np.array(
        [INT64_MIN + o for o in OFFSETS[:4]] + [-3, 0, 8] + [INT64_MAX - o for o in reversed(OFFSETS[:4])],
        dtype=np.int64,
    )


def some_values(n, seed=0):
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(5, 2, n), 2)
    values[rng.random(n) < 0.15] = np.nan
    return values


@pytest.mark.parametrize("where", ["top", "bottom", "both"])
@pytest.mark.parametrize("method", WINDOWED)
@pytest.mark.parametrize("align", ["trailing", "centered"])
@pytest.mark.parametrize("edges", ["valid", "partial"])
def test_step_windows_at_the_int64_limits(where, method, align, edges):
    """unit=steps with steps near 2**63 - 1, near -2**63, or at both: windows that stay inside,
    that reach past the limits (partial edges, and valid edges that then keep nothing), and
    windows of 2**63 and more steps, equal the exact members' statistics; no IndexError."""
    steps = placed(where)
    values = some_values(len(steps), seed=len(where) + len(method))
    for window in (1, 2, 3, 4, 7, 12, 31, 10_000_000, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 5):
        for band in ("std", "minmax"):
            check_windows(steps, values, method, window, align, edges, "steps", band)


@pytest.mark.parametrize("where", ["top", "bottom"])
def test_step_windows_at_the_limits_are_pandas_on_the_moved_series(where):
    """Windows depend on differences of steps only: the series moved from the limit to start at
    step 0 gives the same output, and there it is pandas' rolling("<w>ns", center=True,
    closed="left") (centered) and rolling("<w>ns") (trailing) on integer steps, partial edges."""
    steps = placed(where)
    values = some_values(len(steps), seed=3)
    moved = steps - steps[0]
    series = pd.Series(values, index=pd.to_datetime(moved, unit="ns"))
    for window in (1, 2, 3, 6, 11, 40):
        for align in ("trailing", "centered"):
            kwargs = {"window": window, "align": align, "edges": "partial", "unit": "steps"}
            if align == "centered":
                rolling = series.rolling(pd.Timedelta(window, unit="ns"), center=True, closed="left", min_periods=1)
            else:
                rolling = series.rolling(pd.Timedelta(window, unit="ns"), min_periods=1)
            for method, reference in (("sma", rolling.mean()), ("median", rolling.median())):
                at_limit = moving_average(steps, values, method=method, **kwargs)
                np.testing.assert_array_equal(
                    at_limit.value, moving_average(moved, values, method=method, **kwargs).value
                )
                np.testing.assert_allclose(at_limit.value, reference.to_numpy(), rtol=1e-12)
                np.testing.assert_array_equal(at_limit.step, steps)


LIMIT_WINDOWS = st.one_of(st.integers(1, 80), st.sampled_from([2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70]))


@st.composite
def limit_cases(draw):
    offsets = sorted(draw(st.sets(st.integers(0, 60), min_size=1, max_size=25)))
    where = draw(st.sampled_from(["top", "bottom", "both"]))
    if where == "top":
        steps = [INT64_MAX - o for o in reversed(offsets)]
    elif where == "bottom":
        steps = [INT64_MIN + o for o in offsets]
    else:
        half = len(offsets) // 2
        steps = [INT64_MIN + o for o in offsets[:half]] + [INT64_MAX - o for o in reversed(offsets[half:])]
    values = draw(
        st.lists(
            st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, -np.inf])),
            min_size=len(steps),
            max_size=len(steps),
        )
    )
    return {
        "steps": np.array(steps, dtype=np.int64),
        "values": np.array(values, dtype=np.float64),
        "method": draw(st.sampled_from(WINDOWED)),
        "window": draw(LIMIT_WINDOWS),
        "align": draw(st.sampled_from(["trailing", "centered"])),
        "edges": draw(st.sampled_from(["valid", "partial"])),
        "band": draw(st.sampled_from(["none", "std", "minmax"])),
    }


@settings(max_examples=300, deadline=None)
@given(limit_cases())
def test_property_step_windows_near_the_limits(case):
    check_windows(
        case["steps"],
        case["values"],
        case["method"],
        case["window"],
        case["align"],
        case["edges"],
        "steps",
        case["band"],
    )
    if case["band"] != "none" and len(case["steps"]):  # and the band at a few shown points
        check_band_at(
            case["steps"],
            case["values"],
            case["method"],
            case["window"],
            case["align"],
            case["edges"],
            "steps",
            case["band"],
        )


def check_band_at(steps, values, method, window, align, edges, unit, band):
    """band_at at every other output point equals moving_average's band there: the extremes
    exactly, the std band as exactly as moving_average's (exact windows: within ulps)."""
    kwargs = {"method": method, "window": window, "align": align, "edges": edges, "unit": unit, "band": band}
    whole = moving_average(steps, values, **kwargs)
    at = np.arange(0, len(whole.index), 2)
    lower, upper = band_at(steps, values, at, whole.value[at], **kwargs)
    for got, want in ((lower, whole.lower[at]), (upper, whole.upper[at])):
        if band == "minmax":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


# --- Values at float64's extremes ---------------------------------------------------------------

ISSUE_WINDOWS = [
    [1e308, -1e308, 1.0],  # the huge values cancel: 1/3, not 1.0
    [1e308, 1e-308, -0.0],  # was null
    [1e308, 1e308, 1e308, 0.0],  # non-negative: was -inf
    [FLOAT_MAX, FLOAT_MAX, FLOAT_MAX],
    [-FLOAT_MAX, FLOAT_MAX, -FLOAT_MAX, FLOAT_MAX, 5e-324],
    [1e300, 3e300, 1e-300, -2e300],
    [1e-310, 3e-310, -2e-320, 5e-324],  # subnormal: the std's squares would underflow
    [1e-300, 2e-300],
]


@pytest.mark.parametrize("values", ISSUE_WINDOWS)
@pytest.mark.parametrize("method", WINDOWED)
@pytest.mark.parametrize("band", ["none", "std", "minmax"])
def test_windows_of_float64_extremes_are_exact(values, method, band):
    """The issue's windows (and more at the limits of float64), alone and inside longer series
    of ordinary values with holes, over points and steps, trailing and centered, valid and
    partial: the exact mean (correctly rounded), never null, never of the wrong sign."""
    k = len(values)
    check_windows(np.arange(k) * 3, np.array(values), method, k, "trailing", "valid", "points", band)
    check_windows(np.arange(k) * 3, np.array(values), method, 3 * k - 2, "centered", "partial", "steps", band)
    ordinary = some_values(40, seed=k)
    series = np.concatenate([ordinary[:17], values, ordinary[17:]])
    steps = np.cumsum(np.random.default_rng(k).integers(1, 4, len(series)))
    for window, align, edges, unit in (
        (k, "trailing", "valid", "points"),
        (k + 2, "centered", "partial", "points"),
        (5, "trailing", "partial", "steps"),
        (4, "centered", "valid", "steps"),
    ):
        check_windows(steps, series, method, window, align, edges, unit, band)
    if band != "none":
        check_band_at(steps, series, method, k, "trailing", "partial", "points", band)
    if method == "sma" and max(map(abs, values)) > HUGE:  # the issue's own numbers
        got = moving_average(np.arange(k), np.array(values), window=k).value[0]
        assert got == float(sum(Fraction(v) for v in values) / k)
        assert got >= 0 or min(values) < 0


def test_the_issue_examples():
    assert moving_average([0, 1, 2], [1e308, -1e308, 1.0], window=3).value.tolist() == [1 / 3]
    assert moving_average([0, 1, 2], [1e308, 1e-308, -0.0], window=3, method="block").value.tolist() == [1e308 / 3]
    result = moving_average(np.arange(4), [1e308, 1e308, 1e308, 0.0], window=2, edges="partial", band="std")
    assert result.value.tolist() == [1e308, 1e308, 1e308, 5e307]
    assert (result.lower[1:3] == 1e308).all() and (result.upper[1:3] == 1e308).all()
    assert np.isfinite(result.lower[3]) and np.isfinite(result.upper[3])


def test_a_huge_spike_leaves_the_other_windows_as_they_were():
    """Only the windows holding a huge value take the exact path: every other output (value and
    band) is the same float as with 0 in the spike's place, and the spike's windows get the exact
    mean of their values."""
    rng = np.random.default_rng(5)
    values = rng.normal(1, 0.1, 5000)
    values[2500] = 1e307
    zeroed = values.copy()
    zeroed[2500] = 0.0
    for method, band, window, align in (
        ("sma", "std", 50, "trailing"),
        ("block", "std", 50, "trailing"),
        ("median", "std", 50, "centered"),
        ("sma", "none", 7, "centered"),
    ):
        kwargs = {"method": method, "window": window, "band": band, "align": align}
        spiked = moving_average(np.arange(5000), values, **kwargs)
        plain = moving_average(np.arange(5000), zeroed, **kwargs)
        windows_of = members(np.arange(5000), method, window, align, "valid", "points")
        holding = [row for row, (_, inside) in enumerate(windows_of) if 2500 in inside]
        for name in ("value", "lower", "upper"):
            a, b = getattr(spiked, name), getattr(plain, name)
            changed = np.flatnonzero((a != b) & ~(np.isnan(a) & np.isnan(b)))
            assert set(changed.tolist()) <= set(holding), name
        if method != "median":
            for row in holding:
                inside = windows_of[row][1]
                assert spiked.value[row] == float(sum(Fraction(v) for v in values[inside]) / len(inside))


@pytest.mark.parametrize("span,gap", [(1, 0), (5, 2), (1 << 16, 1 << 10)])
def test_exact_windows_in_groups_of_bounded_span(monkeypatch, span, gap):
    """The exact windows go in groups of bounded data span (split within runs of overlapping
    windows, and across gaps): huge values isolated, in clusters and near the ends, holes
    between, over points and steps, give the exact references whatever the grouping."""
    monkeypatch.setattr(moments, "_EXACT_SPAN", span)
    monkeypatch.setattr(moments, "_EXACT_GAP", gap)
    rng = np.random.default_rng(span)
    values = rng.normal(1.0, 0.5, 300)
    for at in (0, 3, 40, 41, 42, 43, 120, 200, 204, 299):
        values[at] = rng.choice([-1.0, 1.0]) * 10.0 ** rng.integers(150, 308)
    values[rng.random(300) < 0.1] = np.nan
    steps = np.cumsum(rng.integers(1, 4, 300))
    for method, window, align, edges, unit in (
        ("sma", 6, "trailing", "partial", "points"),
        ("sma", 9, "centered", "valid", "steps"),
        ("block", 5, "trailing", "partial", "points"),
        ("median", 4, "centered", "partial", "points"),
    ):
        check_windows(steps, values, method, window, align, edges, unit, "std")


# Magnitudes over the whole float64 range, subnormals included, of both signs; zeros and holes.
MAGNITUDES = st.one_of(
    st.builds(
        lambda sign, fraction, exponent: sign * math.ldexp(fraction, exponent),
        st.sampled_from([-1.0, 1.0]),
        st.floats(0.5, 1.0, exclude_max=True),
        st.integers(-1074, 1024),
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1e308, -1e308, FLOAT_MAX, -FLOAT_MAX, 5e-324, 2.0**-1022]),
    st.sampled_from([np.nan, np.inf, -np.inf]),
)


@st.composite
def extreme_cases(draw, max_size=24):
    values = draw(st.lists(MAGNITUDES, min_size=0, max_size=max_size))
    gaps = draw(st.lists(st.integers(1, 4), min_size=len(values), max_size=len(values)))
    return {
        "steps": np.cumsum(np.array(gaps, dtype=np.int64)),
        "values": np.array(values, dtype=np.float64),
        "method": draw(st.sampled_from(WINDOWED)),
        "window": draw(st.integers(1, 9)),
        "align": draw(st.sampled_from(["trailing", "centered"])),
        "edges": draw(st.sampled_from(["valid", "partial"])),
        "unit": draw(st.sampled_from(["points", "steps"])),
        "band": draw(st.sampled_from(["none", "std", "minmax"])),
    }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extreme_cases())
def test_property_windows_of_extreme_magnitudes(case):
    """Random series over float64's whole range against Fraction references (see check_windows),
    and band_at against moving_average."""
    args = (
        case["steps"],
        case["values"],
        case["method"],
        case["window"],
        case["align"],
        case["edges"],
        case["unit"],
        case["band"],
    )
    check_windows(*args)
    if case["band"] != "none" and len(case["values"]):
        check_band_at(*args)


# --- The EMA at float64's extremes --------------------------------------------------------------


def exact_ema(values, weight):
    """TensorBoard's smoothing loop (helpers.tensorboard_smoothing) in exact arithmetic, with the
    float weight: (EMA, EMA of |y|), Fractions, None at non-finite points; and pandas'
    bias-corrected ewm variance (alpha = 1 - weight, adjust=True, ignore_na=True)."""
    w = Fraction(weight)
    last = last_abs = Fraction(0)
    finite = []
    emas, scales, variances = [], [], []
    for y in values:
        if not math.isfinite(y):
            emas.append(None)
            scales.append(None)
            variances.append(None)
            continue
        finite.append(Fraction(y))
        k = len(finite)
        last = w * last + (1 - w) * Fraction(y)
        last_abs = w * last_abs + (1 - w) * abs(Fraction(y))
        debias = 1 - w**k
        emas.append(last / debias)
        scales.append(last_abs / debias)
        if k < 2 or weight == 0:
            variances.append(None)
            continue
        weights = [w ** (k - 1 - i) for i in range(k)]
        total = sum(weights)
        mean = sum(a * x for a, x in zip(weights, finite)) / total
        biased = sum(a * (x - mean) ** 2 for a, x in zip(weights, finite)) / total
        variances.append(biased * total**2 / (total**2 - sum(a * a for a in weights)))
    return emas, scales, variances


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MAGNITUDES, min_size=1, max_size=16), st.sampled_from([0.0, 1e-300, 1e-12, 0.1, 0.6, 0.9, 0.999]))
def test_property_ema_of_extreme_magnitudes(values, weight):
    """The EMA is TensorBoard's formula: within 1e-13 of the EMA of |y| of the exact value (the
    formula's own rounding, its terms reordered), plus the rounding of its debiasing 1 - w**k
    (which TensorBoard computes alike) and a few subnormal ulps; it never overflows (it is at most
    the largest |value|). Its std band (pandas' ewm std) is within 1e-9 of the series' largest
    |value| (the documented bound: squared deviations far below it may underflow, and beyond
    2**+-400 the values are scaled by a power of two); edges beyond float64 are -inf and +inf."""
    values = np.array(values, dtype=np.float64)
    if len(values) > 1 and np.array_equal(values, np.full(len(values), values[0])):
        return  # a constant series is returned unchanged (tested in test_windows)
    result = moving_average(np.arange(len(values)), values, method="ema", weight=weight, band="std")
    emas, scales, variances = exact_ema(values.tolist(), weight)
    largest = float(np.max(np.abs(values), where=np.isfinite(values), initial=0.0))
    finite_count = 0
    for i, (y, ema, scale, variance) in enumerate(zip(values.tolist(), emas, scales, variances)):
        got, lower, upper = float(result.value[i]), float(result.lower[i]), float(result.upper[i])
        if ema is None:
            assert got == y or (math.isnan(got) and math.isnan(y)), (i, got, y)
            assert math.isnan(lower) and math.isnan(upper)
            continue
        finite_count += 1
        debias = float(1 - Fraction(weight) ** finite_count)
        floor = 2.0**-1060 / debias
        assert math.isfinite(got), (i, got)
        tolerance = Fraction(1e-13 + 4 * 2.0**-52 / debias) * scale + Fraction(floor)
        assert abs(Fraction(got) - ema) <= tolerance, (i, got, float(ema))
        if variance is None:
            assert math.isnan(lower) and math.isnan(upper), (i, lower, upper)
            continue
        std = root(variance)
        if math.isinf(std):
            assert lower == -math.inf and upper == math.inf, (i, lower, upper)
            continue
        tolerance = 1e-9 * largest + floor
        for edge, want in ((lower, Fraction(got) - Fraction(std)), (upper, Fraction(got) + Fraction(std))):
            want = rounded(want)
            if math.isinf(want) or math.isinf(edge):  # beyond float64, within the tolerance
                assert edge == want or min(abs(edge), abs(want)) >= FLOAT_MAX - tolerance, (i, edge, want)
                assert (edge > 0) == (want > 0), (i, edge, want)
            else:
                assert abs(edge - want) <= tolerance, (i, edge, want)


@pytest.mark.parametrize("weight", [0.0, 1e-250, 1e-20, 0.1, 0.6, 0.99, 0.999])
def test_ema_after_a_huge_value_decays_as_tensorboards(weight):
    """A value of 1e300 and then 3000 of 1e-300: TensorBoard's own loop (helpers.
    tensorboard_smoothing) decays the first through every magnitude down to 1e-300. Each point is
    within 1e-12 of the same loop on |y| (the blocks' decay, 0.6**1024 ~ 1e-227 for weight 0.6,
    once cut off there, left 1e-300 where the EMA is 1e-162)."""
    values = np.array([1e300] + [1e-300] * 3000 + [-1e300] + [2e-300] * 200)
    reference = np.array(helpers.tensorboard_smoothing(values.tolist(), weight))
    scale = np.array(helpers.tensorboard_smoothing(np.abs(values).tolist(), weight))
    for band in ("none", "std"):
        got = moving_average(np.arange(len(values)), values, method="ema", weight=weight, band=band).value
        assert (np.abs(got - reference) <= 1e-12 * scale + 2.0**-1060).all(), band


def test_decayed_sums_of_tiny_decays_follow_the_recurrence():
    """Decays below 2**-31.9, whose powers leave the normal range within a block (the deep
    levels of every EMA, and tiny weights), follow the recurrence s = decay s + x (its loop in
    floats) within its own rounding, 1e-15 of the same loop on |x|, over magnitudes from 1e-300
    to 1e300, a carry included."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=500) * 10.0 ** rng.integers(-300, 300, 500)
    for decay in (2.0**-32, 1e-20, 1e-100, 1e-250, 2.0**-1074):
        for carry in (0.0, 1e300, -3.5):
            expected, scale = np.empty(len(x)), np.empty(len(x))
            last, last_abs = carry, abs(carry)
            for t, value in enumerate(x.tolist()):
                last = decay * last + value
                last_abs = decay * last_abs + abs(value)
                expected[t], scale[t] = last, last_abs
            got = _decayed_sums(x.copy(), decay, carry)
            assert (np.abs(got - expected) <= 1e-15 * scale + 2.0**-1070).all(), (decay, carry)


def test_ema_std_band_beyond_float64_is_infinite():
    """The std band's edges beyond float64 are -inf and +inf (null in JSON), the EMA finite."""
    result = moving_average(np.arange(3), [FLOAT_MAX, FLOAT_MAX, -FLOAT_MAX], method="ema", weight=0.5, band="std")
    assert np.isfinite(result.value).all()
    assert result.upper[2] == np.inf and np.isfinite(result.lower[1])


# --- Through the plugin app ---------------------------------------------------------------------


def write_doubles(directory, tag, values, steps):
    """float64 scalars (a DT_DOUBLE tensor with the scalars plugin's metadata, as
    tf.summary.scalar of a float64 writes), with TensorBoard's own event writer: simple_value is a
    float32 and cannot hold 1e308."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.scalar import metadata as scalar_metadata
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    writer = EventFileWriter(directory)
    metadata = scalar_metadata.create_summary_metadata(display_name=tag, description="")
    for i, (step, value) in enumerate(zip(steps, values)):
        summary = summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(
                    tag=tag, metadata=metadata, tensor=tensor_util.make_tensor_proto(np.float64(value))
                )
            ]
        )
        writer.add_event(event_pb2.Event(step=int(step), wall_time=1.7e9 + i, summary=summary))
    writer.close()


APP_VALUES = [3.5, 1e308, -1e308, 1.0, 1e308, 1e-308, -0.0, 1e308, 1e308, 1e308, 0.0, 2.5, -1e-310, 4e-310]
APP_RUNS = {  # run: (steps, values, float64)
    "top": ([INT64_MAX - o for o in reversed(OFFSETS)], some_values(len(OFFSETS), 1).astype(np.float32), False),
    "bottom": ([INT64_MIN + o for o in OFFSETS], some_values(len(OFFSETS), 2).astype(np.float32), False),
    "both": (placed("both").tolist(), some_values(11, 3).astype(np.float32), False),
    "extremes": (list(range(0, 3 * len(APP_VALUES), 3)), np.array(APP_VALUES), True),
}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges")
    for run, (steps, values, doubles) in APP_RUNS.items():
        if doubles:
            write_doubles(str(root / run), "loss", values, steps)
        else:
            helpers.write_scalars(str(root / run), {"loss": values}, steps=steps)
    client = Client(helpers.make_app(str(root), "--load_fast=false", "--reload_interval=0"))
    helpers.wait_loaded(client)
    return client


APP_QUERIES = [
    (run, method, window, align, edges, unit, band)
    for run in APP_RUNS
    for method in WINDOWED
    for window, align, edges in (
        (3, "trailing", "partial"),
        (3, "centered", "valid"),
        (4, "centered", "partial"),
        (2, "trailing", "valid"),
        (9, "centered", "partial"),
    )
    for unit in (("steps",) if run != "extremes" else ("points", "steps"))
    for band in ("std", "minmax")
]


def as_floats(column):
    return np.array([np.nan if v is None else v for v in column], dtype=np.float64)


@pytest.mark.parametrize("run,method,window,align,edges,unit,band", APP_QUERIES)
def test_app_answers_edges_with_the_exact_numbers(app, run, method, window, align, edges, unit, band):
    """`averages` (JSON) and `export` (CSV and JSON) of runs at the int64 limits and of float64
    extremes: 200 with the numbers check_windows accepts (null where non-finite), never a 500."""
    steps, values, _ = APP_RUNS[run]
    values = np.asarray(values, dtype=np.float64)  # what the plugin reads (float32 widened)
    query = "run=%s&tag=loss&method=%s&window=%d&align=%s&edges=%s&unit=%s&band=%s" % (
        run,
        method,
        window,
        align,
        edges,
        unit,
        band,
    )
    answer = helpers.get_json(app, "averages?" + query)
    span = (steps[-1] - steps[0] + 1) if unit == "steps" else len(steps)
    if window > span:
        assert answer["average"] is None and answer["reason"] == "window_longer_than_series"
        return
    expected = check_windows(np.array(steps, dtype=np.int64), values, method, window, align, edges, unit, band)
    average = answer["average"]
    assert average["step"] == expected.step.tolist()
    for name in ("value", "lower", "upper"):
        want = np.where(np.isfinite(getattr(expected, name)), getattr(expected, name), np.nan)
        np.testing.assert_array_equal(as_floats(average[name]), want, err_msg=name)

    exported = helpers.strict_json(checked(app.get("/data/plugin/batchavg/export?format=json&" + query)))
    assert exported["step"] == [int(s) for s in steps]
    by_index = np.full(len(steps), np.nan)
    by_index[expected.index] = np.where(np.isfinite(expected.value), expected.value, np.nan)
    np.testing.assert_array_equal(as_floats(exported["average"]), by_index)

    text = checked(app.get("/data/plugin/batchavg/export?format=csv&" + query)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["step"]) for r in rows] == [int(s) for s in steps]
    average = dict(zip(expected.index.tolist(), expected.value.tolist()))
    for i, row in enumerate(rows):
        if i not in average:
            assert row["average"] == ""
        else:
            np.testing.assert_array_equal(float(row["average"]), average[i])


def checked(response):
    assert response.status_code == 200, (response.status_code, response.data[:300])
    assert b"Traceback" not in response.data and b"numpy" not in response.data
    return response.data


def test_app_extreme_windows_read_back_as_the_issue_expects(app):
    answer = helpers.get_json(app, "averages?run=extremes&tag=loss&window=3&edges=partial")
    value = dict(zip(answer["average"]["step"], answer["average"]["value"]))
    assert value[9] == 1 / 3  # {1e308, -1e308, 1}: not 1.0
    assert value[18] == float((Fraction(1e308) + Fraction(1e-308)) / 3)  # {1e308, 1e-308, -0.0}: not null
    assert all(v is not None for v in value.values())
    block = helpers.get_json(app, "averages?run=extremes&tag=loss&window=4&method=block&band=std")["average"]
    assert block["value"][1] == float((2 * Fraction(1e308) + Fraction(1e-308)) / 4)  # non-negative: not -inf
    assert None not in block["value"] + block["lower"] + block["upper"]


def test_app_runs_hold_the_limits(app):
    """The runs really are at the limits (the plugin reads the steps as written)."""
    answer = helpers.get_json(app, "averages?run=both&tag=loss&window=1&unit=steps")
    assert answer["raw"]["step"][0] == INT64_MIN and answer["raw"]["step"][-1] == INT64_MAX
    assert answer["average"]["step"] == answer["raw"]["step"]
