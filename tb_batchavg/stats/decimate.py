"""Reduce a long series to at most `max_points` points for the browser, keeping its extremes.

The points are split into consecutive buckets of ceil(n / (max_points // 2)) points (the last may
be shorter); each bucket keeps the positions of its first finite minimum and maximum (in step
order), so a one-batch spike survives any reduction. A bucket with no finite value keeps its first
point (drawn as a gap). Series with at most `max_points` points are returned whole. Pure numpy,
O(n).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def in_range(steps: npt.ArrayLike, start: int | None, end: int | None) -> slice:
    """Slice of the positions whose step lies in [start, end] (None means unbounded) of sorted
    `steps`."""
    lo = 0 if start is None else int(np.searchsorted(steps, start, side="left"))
    hi = len(steps) if end is None else int(np.searchsorted(steps, end, side="right"))
    return slice(lo, hi)


def minmax_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """Sorted int64 positions into `values` to keep (at most `max_points`, at least 2 if n >= 2)."""
    return extremes_and_nonfinite(values, max_points)[0]


def extremes_and_nonfinite(values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(minmax_indices(values, max_points), nonfinite_positions(values)). A long series is first
    decimated without a mask: a NaN or +-Inf would be picked as a bucket's extreme, so when every
    pick is finite, so is every value; else the non-finite positions are found and it is
    decimated again with them masked."""
    n = len(values)
    if n <= max_points:
        return np.arange(n, dtype=np.int64), nonfinite_positions(values)
    size = -(-n // max(1, max_points // 2))  # points per bucket
    keep = _extremes(values, size, ())
    if np.isfinite(values[keep]).all():
        return keep, np.empty(0, dtype=np.int64)
    nonfinite = nonfinite_positions(values)
    return _extremes(values, size, nonfinite), nonfinite


def _extremes(values, size, nonfinite):
    """Sorted positions of each bucket's first minimum and maximum, the `nonfinite` positions
    taking part as +Inf and -Inf respectively (so they lose to any finite value)."""
    n = len(values)
    usable = values.copy() if len(nonfinite) else values  # one copy, its non-finite values refilled
    whole = n - n % size
    keep = []
    for fill, pick in ((np.inf, np.argmin), (-np.inf, np.argmax)):
        if len(nonfinite):
            usable[nonfinite] = fill
        keep.append(pick(usable[:whole].reshape(-1, size), axis=1) + np.arange(0, whole, size))
        if whole < n:  # the last, shorter bucket
            keep.append([whole + pick(usable[whole:])])
    return np.unique(np.concatenate(keep)).astype(np.int64)  # first extreme, else the first point


def nonfinite_positions(values: np.ndarray) -> np.ndarray:
    """int64 positions of the NaN and +-Inf in `values`. min and max are finite only if every value
    is (NaN propagates), so a finite series costs two fast passes and no mask."""
    if len(values) == 0 or (np.isfinite(values.min()) and np.isfinite(values.max())):
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(~np.isfinite(values))


def stride_indices(n: int, max_points: int) -> np.ndarray:
    """At most `max_points` evenly spaced positions in range(n), first and last included."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, max(2, max_points)).round().astype(np.int64))
