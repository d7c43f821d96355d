"""Window means and standard deviations (the kernels of ``sma``, ``block`` and the std band), and
the exact path for windows of extreme magnitudes (see ``windows``' module docstring: Precision,
Extreme magnitudes). Windows are given as ``bounds.Bounds``."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt

from tb_batchavg.stats import blocks
from tb_batchavg.stats.blocks import BlockSplit, chunked, prefix_counts, window_count
from tb_batchavg.stats.bounds import Bounds


def window_moments(
    values: np.ndarray, finite: np.ndarray, bounds: Bounds, spread: bool, center: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Finite mean of each (non-empty) window of ``bounds`` (NaN where it has
    no finite value) and, with ``spread``, the std band (``std_band``) about it
    or about ``center`` (else None, None), from M2 = sum of (y - mean)**2.

    Each window's head and tail parts (``BlockSplit``) are summed as
    deviations d = y - c from one of their own values (a head from its
    block's first finite value, a tail from its block's last): a part's mean
    is c + sum(d) / k and its M2 = sum(d**2) - sum(d)**2 / k, and the two
    parts are merged with Chan's update. Every sum runs over the window's own
    points, and since c is one of them sum(d**2) <= 2 k M2, so the error
    stays relative to the window's own values (a loss that explodes to 1e36
    leaves the averages before it intact) and a window of equal values gets
    exactly that value with M2 = 0. O(n); windows strictly inside a block
    take ``_merge_windows`` (O(n log w)). A chunk of finite values whose
    windows are [lo + j, lo + j + S) (over points, none cut by an edge)
    takes ``_consecutive_moments``."""
    every = bool(finite.all())

    def compute(first, stop, span, size):
        y, usable = values[span], finite[span]
        run = bounds.full_run(first, stop)
        if run is not None and (every or usable.all()):
            return _consecutive_moments(y, run - span.start, stop - first, size, spread)
        lo, hi = bounds.chunk(first, stop)
        split = BlockSplit(len(y), lo - span.start, hi - span.start, size)
        if usable.all():
            head_count = split.hi - split.head_start
            tail_count = split.tail_end - split.lo
        else:
            counts = prefix_counts(usable)
            head_count = counts[split.hi] - counts[split.head_start]
            tail_count = counts[split.tail_end] - counts[split.lo]
            y = np.where(usable, y, 0.0)
        usable = split.blocked(usable, False)
        data = split.blocked(y, 0.0)
        rows = np.arange(split.blocks)
        first = data[rows, usable.argmax(axis=1)]
        last = data[rows, split.size - 1 - usable[:, ::-1].argmax(axis=1)]
        parts = []
        for select, reference, block, part_count, used in (
            (split.tails, last, split.tail_block, tail_count, split.has_tail),
            (split.heads, first, split.head_block, head_count, split.has_head),
        ):
            deviation = data - reference[:, None]
            deviation *= usable  # non-finite values and padding count as 0
            k = np.where(used, part_count, 0).astype(np.float64)
            some = k > 0
            scale = 1.0 / np.maximum(k, 1.0)
            total = select(deviation, np.cumsum)
            part = [k, np.where(some, reference[block] + total * scale, 0.0)]
            if spread:
                squares = select(deviation * deviation, np.cumsum)
                part.append(np.where(some, np.maximum(squares - total * (total * scale), 0.0), 0.0))
            parts.append(part)
        merged = _merge_moments(*parts)
        if len(split.inside):
            per_point = (usable.ravel()[: split.n].astype(np.float64), data.ravel()[: split.n])
            if spread:
                per_point += (np.zeros(split.n),)
            inside = _merge_windows(per_point, split.lo[split.inside], split.hi[split.inside])
            for array, inside_part in zip(merged, inside):
                array[split.inside] = inside_part
        return merged

    def finish(first, stop, span, size):  # the band formed per chunk, in cache
        mean, *std = _finish(*compute(first, stop, span, size))
        if not spread:
            return (mean,)
        return (mean, *std_band(mean if center is None else center[first:stop], std[0]))

    out = chunked(bounds, len(values), finish, 3 if spread else 1)
    return (out[0], None, None) if not spread else tuple(out)


def _finish(count, mean, m2=None):
    """(mean, std) from (count, mean[, M2]): NaN mean without a value, NaN std below 2."""
    if np.ndim(count) == 0 and count > 1:  # every window full (``_consecutive_moments``)
        return (mean,) if m2 is None else (mean, np.sqrt(m2 * (1.0 / (count - 1.0))))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(count > 0, mean, np.nan)
        if m2 is None:
            return (mean,)
        return mean, np.where(count > 1, np.sqrt(m2 / (count - 1.0)), np.nan)


def std_band(center: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The std band (center - std, center + std); NaN where std is."""
    lower = center - std
    std += center  # std is the caller's to reuse
    return lower, std


def _consecutive_moments(y, start, count, size, spread):
    """(count, mean[, M2]) of the windows [start + j, start + j + S), j < count,
    of finite ``y`` whose blocks of S = ``size`` points start at y[0].

    The window starting at position p of block b is the tail [p, S) of b and
    the head [0, p) of b + 1, and it holds c_b, the last value of b: its
    deviations d = y - c_b give mean = c_b + sum(d) / S and
    M2 = sum(d**2) - sum(d)**2 / S (``window_moments``' bounds hold). Row b
    of one complex array holds, in its real part, the deviations of b + 1's
    head shifted by one (position p then sums the p points before it) and,
    in its imaginary part, b's deviations reversed (position S - 1 - p sums
    b's last S - p points): one cumulative sum gives both parts' sums, and
    one more over the squared parts their sums of squares."""
    blocks = -(-(start + count) // size)  # the blocks the windows start in
    data = np.empty((blocks + 1) * size)  # and the one after: the last windows' heads
    stored = min(len(y), len(data))
    data[:stored] = y[:stored]
    data[stored:] = y[stored - 1]  # padding (never inside a window)
    data = data.reshape(blocks + 1, size)
    reference = data[:-1, -1:]  # c_b
    lanes = np.empty((blocks, size, 2))  # (real, imaginary) of the complex array
    lanes[:, 0, 0] = 0.0
    np.subtract(data[1:, :-1], reference, out=lanes[:, 1:, 0])
    np.subtract(data[:-1, ::-1], reference, out=lanes[:, :, 1])
    sums = _lane_sums(lanes)
    mean = sums / size
    mean += reference
    windows = slice(start, start + count)
    if not spread:
        return float(size), mean.ravel()[windows]
    lanes *= lanes
    m2 = _lane_sums(lanes)
    sums *= sums
    sums /= size
    m2 -= sums
    np.maximum(m2, 0.0, out=m2)
    return float(size), mean.ravel()[windows], m2.ravel()[windows]


def _lane_sums(lanes):
    """For row b and position p of ``lanes`` (blocks, S, 2): the sum of
    lanes[b, :p + 1, 0] plus the sum of lanes[b, :S - p, 1], by one
    cumulative sum of the lanes as complex numbers."""
    sums = np.cumsum(lanes.view(np.complex128)[..., 0], axis=1)
    return sums.real + sums.imag[:, ::-1]


def block_moments(
    values: np.ndarray, finite: np.ndarray, bounds: Bounds, spread: bool, center: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Finite mean (NaN without a finite value) and, with ``spread``, the std
    band (``std_band``) about it or about ``center`` (else None, None) of each
    of the contiguous, non-empty blocks values[lo:hi], in two exact passes:
    mean = c + sum(y - c) / k with c the block's first finite value (a block
    of equal values gets exactly that value), then M2 = sum((y - mean)**2)."""
    lo, hi = bounds.lo, bounds.hi
    if len(lo) == 0:
        return (np.zeros(0),) + ((np.zeros(0), np.zeros(0)) if spread else (None, None))
    count = window_count(finite, lo, hi)
    stop = int(hi[-1])
    finite = finite[:stop]
    every = bool(finite.all())
    lengths = hi - lo
    if every:  # each block's first value is finite; no value to mask
        data, first = values[:stop], lo
    else:
        data = np.where(finite, values[:stop], 0.0)
        first = np.minimum.reduceat(np.where(finite, np.arange(stop), stop - 1), lo)

    def deviations(per_block):  # y - per_block[block of y], 0 at non-finite y
        deviation = data - np.repeat(per_block, lengths)
        return deviation if every else np.where(finite, deviation, 0.0)

    reference = data[first]
    mean = reference + np.add.reduceat(deviations(reference), lo) / np.maximum(count, 1)
    if not spread:
        return _finish(count, mean)[0], None, None
    deviation = deviations(mean)
    deviation *= deviation
    mean, std = _finish(count, mean, np.add.reduceat(deviation, lo))
    return (mean, *std_band(mean if center is None else center, std))


def _merge_moments(a, b):
    """Chan's pairwise update of (count, mean) or (count, mean, M2); an empty
    part (count 0, mean 0, M2 0) merges exactly as a no-op (the products are
    ordered so that it does even when the other part's mean squared would
    overflow)."""
    count_a, mean_a = a[0], a[1]
    count = count_a + b[0]
    delta = b[1] - mean_a
    shift = delta * (b[0] / np.maximum(count, 1.0))
    if len(a) == 2:
        return count, mean_a + shift
    return count, mean_a + shift, a[2] + b[2] + shift * (delta * count_a)


def _merge_windows(parts, lo, hi):
    """``_merge_moments`` of the per-point ``parts`` (count, mean[, M2]) over
    each window [lo, hi), lo non-decreasing; returns one array per part (all
    zero for an empty window).

    The window of length L is composed left to right of the spans
    [c, c + 2**k) for the set bits k of L, each a merge over points of the
    window only. The spans of 2**k points starting at every point come from
    those of 2**(k-1) (a sparse table, O(n log w)), built per chunk of
    C = max(blocks.CACHE_CHUNK, longest window) points for the windows starting in
    it (data of at most 2C points, kept in cache), with zero padding so that
    one index holds the empty span at every level."""
    merged = tuple(np.zeros(len(lo)) for _ in parts)
    if len(lo) == 0:
        return merged
    length = hi - lo
    longest = int(length.max())
    chunk = max(blocks.CACHE_CHUNK, longest)
    padding = np.zeros(longest + 1)
    group_starts = np.searchsorted(lo, np.arange(0, lo[-1] + 1, chunk), side="left")
    for first, stop in zip(group_starts, np.append(group_starts[1:], len(lo))):
        if first == stop:
            continue
        start, end = lo[first], int(hi[first:stop].max())
        spans = tuple(np.concatenate((part[start:end], padding)) for part in parts)
        empty = end - start
        group_length = length[first:stop]
        in_every = np.bitwise_and.reduce(group_length)  # bits set in every length
        in_some = np.bitwise_or.reduce(group_length)
        cursor = lo[first:stop] - start
        group = None
        width = 1
        while True:
            if width & in_some:
                taken = width if width & in_every else group_length & width
                at = cursor if width & in_every else np.where(taken != 0, cursor, empty)
                piece = tuple(span[at] for span in spans)
                group = piece if group is None else _merge_moments(group, piece)
                cursor += taken
            if 2 * width > longest:
                break
            spans = _merge_moments(tuple(span[:-width] for span in spans), tuple(span[width:] for span in spans))
            width *= 2
        for array, group_array in zip(merged, group or ()):  # None: only empty windows
            array[first:stop] = group_array
    return merged


# Windows whose largest finite |value| is above _HUGE (or, for the std, in (0, _TINY)) take
# _exact_moments. Below _HUGE, deviations (at most 2 _HUGE), their squares and their sums over
# up to 2**40 points stay below 2**1004; above _TINY, the squares of the deviations that matter
# (eps times the window's largest |value|, 2**-453) stay normal (above 2**-1022).
_HUGE = 2.0**480
_TINY = 2.0**-400


def any_extreme(values: np.ndarray, finite: np.ndarray, spread: bool) -> bool:
    """Whether some finite |value| exceeds _HUGE or, with ``spread``, lies in (0, _TINY): an O(n)
    check, two reductions (with ``spread``: over the bits of |value| shifted left by one, ordered
    as |value|, minus one, so that 0 wraps to the top)."""
    if len(values) == 0:
        return False
    every = bool(finite.all())
    if not spread:
        if every:
            return max(float(values.max()), -float(values.min())) > _HUGE
        return float(np.max(np.abs(values), where=finite, initial=0.0)) > _HUGE
    magnitude = values.view(np.uint64) << np.uint64(1)
    largest = magnitude.max() if every else np.max(magnitude, where=finite, initial=np.uint64(0))
    if largest > _magnitude_bits(_HUGE):
        return True
    magnitude -= np.uint64(1)
    return bool(magnitude.min() < _magnitude_bits(_TINY) - np.uint64(1))


def _magnitude_bits(x):
    """The bits of the float64 |x| shifted left by one, as a uint64."""
    return np.array(x, dtype=np.float64).view(np.uint64) << np.uint64(1)


def extreme_windows(
    values: np.ndarray, finite: np.ndarray, bounds: Bounds, spread: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(positions, mean, std) of the windows of ``bounds`` whose largest finite |value| exceeds
    _HUGE (those holding a huge value) or, with ``spread``, lies in (0, _TINY) (those holding a
    tiny non-zero value and no value of at least _TINY), from ``_exact_moments`` (std None
    without ``spread``). O(n) passes over the values, then work for the flagged values only."""
    magnitude = np.abs(values)
    flagged = finite & (magnitude > _HUGE)
    pick = _holding(bounds, np.flatnonzero(flagged))
    if spread:
        tiny = np.flatnonzero(finite & (magnitude < _TINY) & (magnitude > 0.0))
        if len(tiny):
            candidates = np.flatnonzero(_holding(bounds, tiny) & ~pick)
            lo, hi = bounds.at(candidates)
            usual = window_count(finite & (magnitude >= _TINY), lo, hi)
            pick[candidates[usual == 0]] = True
    at = np.flatnonzero(pick)
    lo, hi = bounds.at(at)
    return (at, *_exact_moments(values, finite, lo, hi, spread))


def _holding(bounds, positions):
    """Flags of the windows of ``bounds`` that hold any of the sorted data ``positions``: the
    windows holding one are a range (``Bounds.holding``), marked by differences."""
    start, stop = bounds.holding(positions)
    marks = np.bincount(start, minlength=bounds.count + 1) - np.bincount(stop, minlength=bounds.count + 1)
    return np.cumsum(marks[:-1]) > 0


def without_huge(values: np.ndarray) -> np.ndarray:
    """``values`` with 0 where |value| > _HUGE."""
    usable = values.copy()
    usable[np.abs(values) > _HUGE] = 0.0
    return usable


def set_band(lower: np.ndarray, upper: np.ndarray, at: npt.ArrayLike, center: np.ndarray, std: np.ndarray) -> None:
    """lower[at], upper[at] = center -+ std (+-inf beyond float64)."""
    with np.errstate(over="ignore"):
        lower[at] = center - std
        upper[at] = center + std


def _exact_moments(values, finite, lo, hi, spread):
    """(mean, std) of the finite values of each non-empty window values[lo:hi] (lo and hi
    non-decreasing), exactly (``_exact_group``): mean correctly rounded, std the correctly
    rounded square root of the exact sample variance, +inf beyond float64; NaN without a finite
    value (std: below 2); std None without ``spread``. The windows go in groups whose data
    spans at most _EXACT_SPAN points more than the longest window (so the Python integers held
    at a time are bounded), a group ending too where the next window starts more than
    _EXACT_GAP points after the previous one ends (the points between are not read)."""
    mean = np.full(len(lo), np.nan)
    std = np.full(len(lo), np.nan) if spread else None
    if len(lo) == 0:
        return mean, std
    starts, ends = np.asarray(lo).tolist(), np.asarray(hi).tolist()
    limit = _EXACT_SPAN + max(e - s for s, e in zip(starts, ends))
    first = 0
    for i in range(1, len(starts) + 1):
        if i < len(starts) and starts[i] - ends[i - 1] <= _EXACT_GAP and ends[i] - starts[first] <= limit:
            continue
        a, b = starts[first], ends[i - 1]
        part = slice(first, i)
        group_lo = np.asarray(starts[part], dtype=np.int64) - a
        group_hi = np.asarray(ends[part], dtype=np.int64) - a
        mean[part], group_std = _exact_group(values[a:b], finite[a:b], group_lo, group_hi, spread)
        if spread:
            std[part] = group_std
        first = i
    return mean, std


# Data points of a group of _exact_moments (beyond the longest window), and the longest run of
# points between two of its windows.
_EXACT_SPAN = 1 << 16
_EXACT_GAP = 1 << 10


def _exact_group(values, finite, lo, hi, spread):
    """``_exact_moments`` of windows within ``values``: every finite float64 is an integer times
    2**e (e >= -1074), so here the values are integers Y times one 2**base, and the prefix sums of
    Y and Y**2 are exact (Python integers). From a window's k values, S = sum(Y), Q = sum(Y**2):
    mean = S 2**base / k correctly rounded (``_scaled_ratio``); std = sqrt((k Q - S**2) /
    (k (k - 1))) 2**base correctly rounded (``_sqrt_ratio``). O(points + windows) operations on
    integers as wide as the values' range of magnitudes."""
    y = np.where(finite, values, 0.0)
    fraction, exponent = np.frexp(y)
    integer = (fraction * 2.0**53).astype(np.int64)  # y = integer * 2**(exponent - 53), exactly
    exponent -= 53
    nonzero = integer != 0
    base = int(exponent[nonzero].min()) if nonzero.any() else 0
    exponent = np.where(nonzero, exponent - base, 0)
    exact = [m << e for m, e in zip(integer.tolist(), exponent.tolist())]
    total = np.array(list(itertools.accumulate(exact, initial=0)), dtype=object)
    counts = prefix_counts(finite).astype(np.int64)
    count = (counts[hi] - counts[lo]).tolist()
    sums = (total[hi] - total[lo]).tolist()
    mean = [_scaled_ratio(s, k, base) if k else math.nan for s, k in zip(sums, count)]
    if not spread:
        return mean, None
    squares = np.array(list(itertools.accumulate((m * m for m in exact), initial=0)), dtype=object)
    square_sums = (squares[hi] - squares[lo]).tolist()
    return mean, [
        _sqrt_ratio(k * q - s * s, k * (k - 1), base) if k > 1 else math.nan
        for s, q, k in zip(sums, square_sums, count)
    ]


def _scaled_ratio(numerator, denominator, exponent):
    """numerator * 2**exponent / denominator (integers, denominator > 0) correctly rounded
    (Python's integer true division is), +-inf beyond float64."""
    try:
        if exponent >= 0:
            return (numerator << exponent) / denominator
        return numerator / (denominator << -exponent)
    except OverflowError:
        return math.inf if numerator > 0 else -math.inf


def _sqrt_ratio(numerator, denominator, exponent):
    """sqrt(numerator / denominator) * 2**exponent (integers, numerator >= 0, denominator > 0)
    correctly rounded, +inf beyond float64: with q = floor(numerator 4**t / denominator) of
    about 130 bits (t of either sign), r = isqrt(q) has 65 and the root lies in [r, r + 1)
    (times 2**-t); when it is not r exactly, r + 1/2 lies in the same open interval, which holds
    no rounding boundary, so rounding r + 1/2 rounds the root."""
    if numerator == 0:
        return 0.0
    t = (130 - numerator.bit_length() + denominator.bit_length()) // 2
    if t >= 0:
        quotient, remainder = divmod(numerator << (2 * t), denominator)
    else:  # floor(floor(n / 4**-t) / d) = floor(n / (4**-t d)); the bits shifted out are a remainder too
        quotient, remainder = divmod(numerator >> (-2 * t), denominator)
        remainder = remainder or numerator & ((1 << (-2 * t)) - 1)
    root = math.isqrt(quotient)
    if remainder or root * root != quotient:
        root, t = 2 * root + 1, t + 1
    return _scaled_ratio(root, 1, exponent - t)
