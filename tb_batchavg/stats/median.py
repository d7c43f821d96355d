"""Rolling medians over index windows: pure numpy.

``window_median(values, finite, lo, hi, count)`` gives, for each window
``values[lo:hi]``, the median of its finite values (even count: the mean of
the two middle values; NaN where the window has no finite value). The window
layout (alignment, edges, units) is decided by ``windows.moving_average``.
"""

import collections

import numpy as np

from tb_batchavg.stats import workers

# The last _MASK_BITS bits of a rank are found in a 128-bit mask (two words)
# of the ranks present, not in wavelet levels.
_MASK_BITS = 7
# Segments are processed in groups of about this many points, and their
# windows in parts of this many, so that the arrays stay in cache.
_GROUP = 1 << 16
_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)


def window_median(
    values: np.ndarray, finite: np.ndarray, lo: np.ndarray, hi: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """Median of the finite values in each window values[lo:hi] (NaN where
    count is 0); lo and hi must be non-decreasing.

    Segments of S = 2**L points (S >= the longest window, see
    ``_segment_size``) start every D = S - longest + 1 points, so the window
    starting at lo lies in segment lo // D and every point is in at most two
    segments (Suomela's sorted-blocks idea). The points are ranked within
    their segment (non-finite values ranked last, so the k-th smallest rank
    in a window with k < count is its k-th smallest finite value), which
    keeps the rank alphabet at L bits. A wavelet matrix over a group of
    segments finds the top L - 7 bits of the middle rank; the last 7 bits
    are those of the k-th set bit of a 128-bit mask of the window's ranks in
    the final wavelet node. For even counts the upper middle rank is the
    next set bit of that mask, or (rarely, when the node has none) a second
    descent. Windows up to the whole series and of varying lengths take the
    same path (longer windows: more wavelet levels)."""
    median = np.full(len(lo), np.nan)
    nonempty = count > 0
    if len(lo) == 0 or not nonempty.all():
        queries = np.flatnonzero(nonempty)
        if len(queries) == 0:
            return median
        median[queries] = window_median(values, finite, lo[queries], hi[queries], count[queries])
        return median
    n = len(values)
    # Segments laid end to end span less than 4n + 256 points.
    index = np.int32 if 4 * n + 256 < np.iinfo(np.int32).max else np.int64
    longest = int((hi - lo).max())
    size = _segment_size(n, longest)
    stride = size if size >= n else size - longest + 1
    segments = int(lo[-1]) // stride + 1
    padded = np.empty((segments - 1) * stride + size)
    held = min(n, len(padded))  # the last segment ends after the last window's end
    padded[held:] = np.inf
    np.copyto(padded[:held], values[:held])
    if not finite[:held].all():
        padded[:held][~finite[:held]] = np.inf
    rows = np.lib.stride_tricks.sliding_window_view(padded, size)[::stride]
    per_group = max(1, _GROUP // size)
    firsts = np.arange(0, segments, per_group)
    bounds = np.append(np.searchsorted(lo, firsts * stride), len(lo))

    def group(first, q0, q1):
        rows_here = rows[first : first + per_group]
        by_rank = _argsort_rows(_sort_key(rows_here), index)
        matrix = _WaveletMatrix(_ranks(by_rank.ravel(), size), size.bit_length() - 1)
        by_rank += (np.arange(first, first + len(rows_here), dtype=by_rank.dtype) * stride)[:, None]
        layout = _Layout(stride, size, first * size, index)
        for part in (slice(p, min(p + _GROUP, q1)) for p in range(q0, q1, _GROUP)):
            median[part] = _group_median(matrix, padded, by_rank.ravel(), lo[part], hi[part], count[part], layout)

    workers.each(lambda task: group(*task), zip(firsts, bounds[:-1], bounds[1:]))
    return median


def _segment_size(n, longest):
    """The segment length S: the least power of two >= 128 that is at least
    2 * (longest - 1) or the series length (so points are in at most two
    segments), doubled when a segment still fits a group and the estimated
    work is less: the points of all segments times (wavelet levels + 4, for
    ranking and masks) plus 1.7 times the windows times the levels (relative
    costs measured at 1M points). A window of 1000 points thus takes
    segments of 4096 points (1.3 n points, 5 levels) instead of 2048
    (1.95 n points, 4 levels)."""

    def work(size):
        stride = size if size >= n else size - longest + 1
        levels = size.bit_length() - 1 - _MASK_BITS
        return -(-n // stride) * size * (levels + 4) + 1.7 * n * levels

    size = 1 << _MASK_BITS
    while size < min(2 * (longest - 1), n):
        size *= 2
    if 2 * size <= _GROUP and work(2 * size) < work(size):
        size *= 2
    return size


_Layout = collections.namedtuple("_Layout", "stride size offset index")


def _group_median(matrix, padded, positions, lo, hi, count, layout):
    """Medians of the windows values[lo:hi] (count finite values) that start
    in a group of segments laid end to end (``matrix`` over their ranks; the
    group starts at ``layout.offset`` there); positions holds each segment's
    points (indices into padded) in rank order."""
    stride, size, offset, index = layout
    lo = lo.astype(index)
    segment = lo // stride
    row_start = segment * size - offset
    start = row_start + (lo - segment * stride)  # the window's start in the segments laid end to end
    stop = start + (hi - lo).astype(index)
    middle, even = ((count - 1) >> 1).astype(index), (count & 1) == 0
    lower, upper = matrix.kth_smallest(start, stop, middle, following=bool(even.any()))
    median = padded[positions[lower + row_start]]
    if upper is not None:
        every = bool(even.all())  # e.g. every window of an even length over finite values
        pick = slice(None) if every else np.flatnonzero(even)
        upper = upper[pick]
        elsewhere = np.flatnonzero(upper < 0)
        if len(elsewhere):
            at = elsewhere if every else pick[elsewhere]
            upper[elsewhere] = matrix.kth_smallest(start[at], stop[at], middle[at] + 1)[0]
        median[pick] = _midpoint(median[pick], padded[positions[upper + row_start[pick]]])
    return median


def _midpoint(a, b):
    """(a + b) / 2 of finite a and b, correctly rounded: a + b is (the halving is exact but in
    the subnormals, where the sum itself was exact), and where it overflows the halves are
    exact and a / 2 + b / 2 is."""
    with np.errstate(over="ignore"):
        middle = a + b
    middle /= 2
    over = np.isinf(middle)
    if over.any():
        middle[over] = a[over] / 2 + b[over] / 2
    return middle


def _sort_key(x):
    """uint64 keys ordered as the float64 values x (NaN-free)."""
    bits = np.ascontiguousarray(x).view(np.uint64)
    flip = (bits.view(np.int64) >> 63).view(np.uint64) | np.uint64(1 << 63)
    return bits ^ flip


def _argsort_rows(keys, dtype):
    """Stable argsort of each row of uint64 ``keys`` (rows of 2**L): sorts
    the keys with their last L bits replaced by the column (one fast
    non-stable sort), then redoes exactly the rows where two keys that agree
    up to those bits came out of order. Returns ``dtype`` columns."""
    width = keys.shape[1]
    low = np.uint64(width - 1)
    packed = (keys & ~low) | np.arange(width, dtype=np.uint64)
    packed.sort(axis=1)
    order = (packed & low).astype(dtype)
    row, column = np.nonzero((packed[:, 1:] ^ packed[:, :-1]) <= low)
    if len(row):
        first = keys[row, order[row, column]]
        second = keys[row, order[row, column + 1]]
        bad = np.unique(row[second < first])
        if len(bad):
            order[bad] = np.argsort(keys[bad], axis=1, kind="stable")
    return order


def _ranks(by_rank, width):
    """Inverse permutation of each row of ``width`` positions (flat)."""
    ranks = np.empty(len(by_rank), dtype=np.uint16 if width <= 1 << 16 else np.uint32)
    rows = np.arange(0, len(by_rank), width, dtype=by_rank.dtype)
    ranks[(by_rank.reshape(-1, width) + rows[:, None]).ravel()] = np.tile(
        np.arange(width, dtype=ranks.dtype), len(rows)
    )
    return ranks


class _WaveletMatrix:
    """Wavelet matrix over a sequence of L-bit ranks for its top L - 7 bits
    (one level per bit, most significant first; each level stably moves the
    elements with a 0 bit before those with a 1 bit and keeps the prefix
    counts of 0 bits), then the prefix XORs, in the final order, of the
    one-hot 128-bit masks (two words) of rank % 128. The ranks in a window
    must be distinct, so that the XOR over a final node is the set of its
    ranks."""

    def __init__(self, ranks, bits):
        n = len(ranks)
        self.dtype = dtype = np.int32 if n < np.iinfo(np.int32).max else np.int64
        levels = max(0, bits - _MASK_BITS)
        self.zeros_before = np.zeros((levels, n + 1), dtype=dtype)
        self.zeros_total = np.empty(levels, dtype=dtype)
        position = np.arange(n, dtype=dtype)
        current, partitioned = ranks, np.empty_like(ranks)
        for level in range(levels):
            one = (current >> (bits - 1 - level)) & 1
            zeros_before = self.zeros_before[level]
            np.cumsum(one == 0, dtype=dtype, out=zeros_before[1:])
            zeros_total = self.zeros_total[level] = zeros_before[-1]
            # A 0 goes to zeros_before[i], a 1 to zeros_total + ones before
            # i (integer blends: numpy runs them much faster than np.where or
            # masked copies with unpredictable masks).
            zeros_before = zeros_before[:-1]
            destination = zeros_before + one * (zeros_total + position - 2 * zeros_before)
            partitioned[destination] = current
            current, partitioned = partitioned, current
        low = current & 127
        one_hot = np.left_shift(np.uint64(1), (low & 63).astype(np.uint64))
        high = (low >> 6).astype(np.uint64)
        self.masks_before = np.zeros((2, n + 1), dtype=np.uint64)
        np.bitwise_xor.accumulate(one_hot * (1 - high), out=self.masks_before[0, 1:])
        np.bitwise_xor.accumulate(one_hot * high, out=self.masks_before[1, 1:])

    def kth_smallest(self, lo, hi, k, following=False):
        """Per query, the k-th smallest (0-based) rank in sequence[lo:hi] and,
        with ``following``, the next larger rank in the window if it is in
        the same 128-rank node (else -1; without ``following``, None)."""
        dtype = self.dtype
        lo, hi, k = lo.astype(dtype), hi.astype(dtype), k.astype(dtype)
        prefix = np.zeros(len(lo), dtype=dtype)
        for zeros_before, zeros_total in zip(self.zeros_before, self.zeros_total):
            zeros_lo, zeros_hi = zeros_before[lo], zeros_before[hi]
            zeros = zeros_hi - zeros_lo
            one = (k >= zeros).astype(dtype)
            k -= zeros * one
            lo = zeros_lo + one * (zeros_total + lo - 2 * zeros_lo)
            hi = zeros_hi + one * (zeros_total + hi - 2 * zeros_hi)
            prefix = (prefix << 1) | one
        low_word, high_word = (masks[hi] ^ masks[lo] for masks in self.masks_before)
        k = k.astype(np.uint64)
        low_count = _popcount(low_word)
        high = (k >= low_count).astype(np.uint64)
        k -= low_count * high
        mask = low_word ^ ((low_word ^ high_word) & (np.uint64(0) - high))
        bit = _select_bit(mask, k)
        prefix <<= _MASK_BITS
        kth = prefix + (bit + (high << np.uint64(6))).astype(dtype)
        if not following:
            return kth, None
        # The next set bit: above ``bit`` in its word, else (from the low
        # word) the lowest of the high word.
        above = (mask >> bit) >> np.uint64(1)
        spill = (above == 0) & (high == 0)
        above |= high_word * spill
        lowest = above & (~above + np.uint64(1))
        # log2(lowest) from its float64 exponent (-1023 if none).
        step = (lowest.astype(np.float64).view(np.int64) >> 52).astype(dtype) - 1023
        base = kth + 1 + spill * (63 - bit.astype(dtype))
        found = (step >= 0).astype(dtype)
        return kth, (base + step + 1) * found - 1


def _popcount(x):
    """Number of set bits of each uint64 x (uint64)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x).astype(np.uint64)
    return (_byte_counts(x) * _ONES) >> np.uint64(56)


def _byte_counts(x):
    """Population count of each byte of the uint64 x, in that byte."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x.view(np.uint8)).view(np.uint64)
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    return (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)


def _select_table():
    """_SELECT[8 * byte + j]: position of the j-th set bit of byte."""
    bits = (np.arange(256)[:, None] >> np.arange(8)) & 1
    table = np.zeros((256, 8), dtype=np.uint8)
    byte, position = np.nonzero(bits)
    table[byte, np.cumsum(bits, axis=1)[byte, position] - 1] = position
    return table.ravel()


_SELECT = _select_table()


def _select_bit(mask, k):
    """Position (uint64) of the k-th (0-based) set bit of each uint64 mask,
    which must have more than k set bits (broadword select: cumulative byte
    counts by one multiplication, the byte holding the bit by a bytewise
    comparison, then a table within the byte)."""
    cumulative = _byte_counts(mask) * _ONES  # byte i: set bits in bytes 0..i
    below = (((k * _ONES) | _HIGHS) - cumulative) & _HIGHS  # byte i: cumulative <= k
    shift = (((below >> np.uint64(7)) * _ONES) >> np.uint64(56)) << np.uint64(3)
    before = ((cumulative << np.uint64(8)) >> shift) & np.uint64(0xFF)
    byte = (mask >> shift) & np.uint64(0xFF)
    return shift + _SELECT[(byte << np.uint64(3)) + k - before]
