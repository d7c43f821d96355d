"""Finite minima and maxima of windows (the minmax band)."""

import numpy as np

from tb_batchavg.stats.blocks import BlockSplit, chunked
from tb_batchavg.stats.bounds import Bounds


def window_extremes(
    values: np.ndarray, finite: np.ndarray, bounds: Bounds, blocks: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Finite minimum and maximum of each window of ``bounds`` (NaN where it
    has no finite value): for contiguous ``blocks`` by reduceat, else from the running
    minima/maxima of each window's head and tail parts (``BlockSplit``, van
    Herk's O(n) filter), windows strictly inside a block from a sparse table."""
    smallest = np.where(finite, values, np.inf)
    largest = np.where(finite, values, -np.inf)
    if blocks:
        lo, hi = bounds.lo, bounds.hi
        if len(lo) == 0:
            return np.zeros(0), np.zeros(0)
        minimum = np.minimum.reduceat(smallest[: hi[-1]], lo)
        maximum = np.maximum.reduceat(largest[: hi[-1]], lo)
    else:

        def compute(first, stop, span, size):
            lo, hi = bounds.chunk(first, stop)
            split = BlockSplit(span.stop - span.start, lo - span.start, hi - span.start, size)
            extremes = []
            for data, fill, ufunc in ((smallest[span], np.inf, np.minimum), (largest[span], -np.inf, np.maximum)):
                blocked = split.blocked(data, fill)
                head = np.where(split.has_head, split.heads(blocked, ufunc.accumulate), fill)
                tail = np.where(split.has_tail, split.tails(blocked, ufunc.accumulate), fill)
                extremes.append(ufunc(head, tail))
            if len(split.inside):
                at = split.inside
                inside = _sparse_extremes(smallest[span], largest[span], split.lo[at], split.hi[at])
                for extreme, part in zip(extremes, inside):
                    extreme[at] = part
            return extremes

        minimum, maximum = chunked(bounds, len(values), compute, 2)
    none = minimum == np.inf  # no finite value
    minimum[none] = np.nan
    maximum[none] = np.nan
    return minimum, maximum


def _sparse_extremes(smallest, largest, lo, hi):
    """Minimum of ``smallest`` and maximum of ``largest`` over each non-empty
    window [lo, hi), from a sparse table built only up to the longest window's
    level: a window of length L with 2**j <= L < 2**(j+1) is covered by the
    two (overlapping) spans of 2**j points starting at lo and ending at hi."""
    level = np.frexp((hi - lo).astype(np.float64))[1] - 1
    minimum = np.empty(len(lo))
    maximum = np.empty(len(lo))
    for j in range(int(level.max(initial=-1)) + 1):
        if j:
            half = 1 << (j - 1)
            smallest = np.minimum(smallest[:-half], smallest[half:])
            largest = np.maximum(largest[:-half], largest[half:])
        at = np.flatnonzero(level == j)
        first, last = lo[at], hi[at] - (1 << j)
        minimum[at] = np.minimum(smallest[first], smallest[last])
        maximum[at] = np.maximum(largest[first], largest[last])
    return minimum, maximum
