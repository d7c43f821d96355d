"""decimate: min/max bucketing against a per-bucket reference."""

import numpy as np
import pytest

from tb_batchavg.stats import decimate


def reference(values, max_points):
    """Per bucket (ceil(n / (max_points // 2)) points each): positions of the first finite min
    and max, or the bucket's first position when it has no finite value."""
    n = len(values)
    if n <= max_points:
        return list(range(n))
    size = -(-n // (max_points // 2))
    keep = set()
    for lo in range(0, n, size):
        hi = min(n, lo + size)
        part = values[lo:hi]
        finite = np.flatnonzero(np.isfinite(part))
        if not len(finite):
            keep.add(lo)
            continue
        keep.add(lo + finite[np.argmin(part[finite])])
        keep.add(lo + finite[np.argmax(part[finite])])
    return sorted(keep)


@pytest.mark.parametrize("holes", ["nan_inf", "minus_inf", "none"])
@pytest.mark.parametrize("n, max_points", [(10, 10), (11, 10), (1000, 2), (1000, 3), (10_007, 200), (5000, 4999)])
def test_minmax_indices_match_reference(n, max_points, holes):
    """Finite series (tried without a mask), series with NaN/+Inf or a lone -Inf (found
    when a bucket's extreme is not finite); the non-finite positions found on the way."""
    rng = np.random.default_rng(n)
    values = rng.standard_normal(n)
    if holes == "nan_inf":
        values[rng.integers(0, n, n // 20)] = np.nan
        values[rng.integers(0, n, n // 50)] = np.inf
        values[: n // 10] = np.nan  # whole buckets without a finite value
    elif holes == "minus_inf":
        values[n // 3] = -np.inf
    values[n // 2] = values[n // 2 + 1] = 5.0  # a tie: the first is kept
    got, nonfinite = decimate.extremes_and_nonfinite(values, max_points)
    assert got.tolist() == reference(values, max_points)
    assert len(got) <= max_points
    assert nonfinite.tolist() == np.flatnonzero(~np.isfinite(values)).tolist()
    assert decimate.minmax_indices(values, max_points).tolist() == got.tolist()


def test_a_spike_survives_any_reduction():
    values = np.sin(np.arange(100_000) / 500.0)
    values[77_777] = 1e6
    values[12_345] = -1e6
    for max_points in (2, 10, 2000):
        kept = decimate.minmax_indices(values, max_points)
        assert {77_777, 12_345} <= set(kept.tolist())


@pytest.mark.parametrize("n, max_points", [(0, 5), (5, 5), (100, 2), (101, 7), (10**6, 2000)])
def test_stride_indices(n, max_points):
    got = decimate.stride_indices(n, max_points)
    assert len(got) == min(n, max_points)
    assert np.all(np.diff(got) > 0)
    if n:
        assert (got[0], got[-1]) == (0, n - 1)
        if n > max_points:  # evenly spaced: gaps differ by at most one
            gaps = np.diff(got)
            assert gaps.max() - gaps.min() <= 1


@pytest.mark.parametrize(
    "values, want",
    [
        ([], []),
        ([1.0, 2.0], []),
        ([np.nan], [0]),
        ([1.0, np.inf, 2.0, -np.inf], [1, 3]),
        ([np.nan, 1.0, np.nan, np.inf], [0, 2, 3]),
        ([-np.inf] * 3, [0, 1, 2]),
    ],
)
def test_nonfinite_positions(values, want):
    got = decimate.nonfinite_positions(np.asarray(values, dtype=np.float64))
    assert got.dtype == np.int64 and got.tolist() == want
