"""Rolling medians over index windows: pure numpy.

``window_median(values, finite, lo, hi, count)`` gives, for each window
``values[lo:hi]``, the median of its finite values (even count: the mean of
the two middle values; NaN where the window has no finite value). The window
layout (alignment, edges, units) is decided by ``windows.moving_average``.
"""

import numpy as np

# Data chunk: spans of up to twice this many points keep the wavelet matrix at
# ~15 levels and its arrays in cache.
_CHUNK = 1 << 14


def window_median(values, finite, lo, hi, count):
    """Median of the finite values in each window values[lo:hi] (NaN where
    count is 0); lo and hi must be non-decreasing.

    The data are cut into chunks of C = max(_CHUNK, longest window)
    points; the windows starting in a chunk are answered together from the
    chunk's data plus the overlap up to their last end (at most 2C points, so
    the total work is O(n log n)). Within that span the values are ranked
    (non-finite ranked last), so the k-th smallest rank in a window is its
    k-th smallest finite value, found with a wavelet matrix; the small spans
    keep the matrix levels few and the arrays in cache."""
    median = np.full(len(lo), np.nan)
    if len(lo) == 0:
        return median
    chunk = max(_CHUNK, int((hi - lo).max()))
    key = np.where(finite, values, np.inf)
    group_starts = np.searchsorted(lo, np.arange(0, len(values), chunk), side="left")
    for first, stop in zip(group_starts, np.append(group_starts[1:], len(lo))):
        queries = first + np.flatnonzero(count[first:stop] > 0)
        if len(queries) == 0:
            continue
        span_start, span_stop = lo[queries[0]], hi[queries[-1]]
        span = key[span_start:span_stop]
        dtype = _index_dtype(len(span))
        order = np.argsort(span)
        ranks = np.empty(len(span), dtype=dtype)
        ranks[order] = np.arange(len(span), dtype=dtype)
        window_lo = (lo[queries] - span_start).astype(dtype)
        window_hi = (hi[queries] - span_start).astype(dtype)
        window_count = count[queries].astype(dtype)
        even = np.flatnonzero(window_count % 2 == 0)
        # k-th smallest for the lower middle of every window, then the upper
        # middle of the windows with an even count.
        middle_ranks = _WaveletMatrix(ranks).kth_smallest(
            np.concatenate((window_lo, window_lo[even])),
            np.concatenate((window_hi, window_hi[even])),
            np.concatenate(((window_count - 1) // 2, window_count[even] // 2)))
        middles = span[order[middle_ranks]]
        group_median = middles[:len(queries)]
        group_median[even] = (group_median[even] + middles[len(queries):]) / 2
        median[queries] = group_median
    return median


def _index_dtype(n):
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


class _WaveletMatrix:
    """Wavelet matrix over a permutation of [0, n): one level per bit, most
    significant first; each level stably moves the elements with a 0 bit
    before those with a 1 bit, and keeps the prefix counts of 0 bits. Answers
    arrays of "k-th smallest in [lo, hi)" queries in O(log n) vectorised
    steps (branch-free integer blends, which numpy runs much faster than
    np.where or masked ufuncs)."""

    def __init__(self, sequence):
        n = len(sequence)
        dtype = sequence.dtype
        self.bits = max(1, (n - 1).bit_length())
        self.zeros_before = np.zeros((self.bits, n + 1), dtype=dtype)
        self.zeros_total = np.empty(self.bits, dtype=dtype)
        position = np.arange(n, dtype=dtype)
        current, partitioned = sequence.copy(), np.empty_like(sequence)
        for level in range(self.bits):
            one = (current >> (self.bits - 1 - level)) & 1
            zeros_before = self.zeros_before[level]
            np.cumsum(1 - one, dtype=dtype, out=zeros_before[1:])
            zeros_total = self.zeros_total[level] = zeros_before[-1]
            # A 0 goes to zeros_before[i], a 1 to zeros_total + ones before i.
            zeros_before = zeros_before[:-1]
            destination = zeros_before + one * (zeros_total + position - 2 * zeros_before)
            partitioned[destination] = current
            current, partitioned = partitioned, current

    def kth_smallest(self, lo, hi, k):
        """The k-th smallest (0-based) element of sequence[lo:hi], per query;
        lo, hi, k of the matrix's dtype."""
        result = np.zeros(len(lo), dtype=lo.dtype)
        k = k.copy()
        for zeros_before, zeros_total in zip(self.zeros_before, self.zeros_total):
            zeros_lo, zeros_hi = zeros_before[lo], zeros_before[hi]
            zeros = zeros_hi - zeros_lo
            one = (k >= zeros).astype(lo.dtype)
            k -= zeros * one
            lo = zeros_lo + one * (zeros_total + lo - 2 * zeros_lo)
            hi = zeros_hi + one * (zeros_total + hi - 2 * zeros_hi)
            result = (result << 1) | one
        return result
