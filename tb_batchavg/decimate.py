"""Reduce a long series to at most `max_points` points for the browser, keeping its extremes.

The points are split into `max_points // 2` buckets of (nearly) equal count; each bucket keeps
the positions of its finite minimum and maximum (in step order), so a one-batch spike survives
any reduction. A bucket with no finite value keeps its first point (drawn as a gap). Series with
at most `max_points` points are returned whole. Pure numpy, O(n).
"""

import numpy as np


def minmax_indices(values, max_points):
    """Sorted int64 positions into `values` to keep (at most `max_points`, at least 2 if n >= 2)."""
    n = len(values)
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    buckets = max(1, max_points // 2)
    edges = (np.arange(buckets, dtype=np.int64) * n) // buckets
    finite = np.isfinite(values)
    low = np.where(finite, values, np.inf)
    high = np.where(finite, values, -np.inf)
    bucket_of = np.repeat(np.arange(buckets), np.diff(np.append(edges, n)))
    lows = np.minimum.reduceat(low, edges)
    highs = np.maximum.reduceat(high, edges)
    keep = np.zeros(n, dtype=bool)
    for extreme, per_point in ((lows, low), (highs, high)):
        hits = np.flatnonzero(per_point == extreme[bucket_of])
        _, first = np.unique(bucket_of[hits], return_index=True)
        keep[hits[first]] = True
    empty = ~np.isfinite(lows)
    keep[edges[empty]] = True
    return np.flatnonzero(keep)


def stride_indices(n, max_points):
    """At most `max_points` evenly spaced positions in range(n), first and last included."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, max(2, max_points)).round().astype(np.int64))
