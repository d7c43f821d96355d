"""Correlation of two scalar series (e.g. loss and gradient norm): pure numpy.

The series are inner-joined on step and only pairs where both values are finite
(not NaN, not +-Inf) are kept. All statistics use float64.

  Pearson   r = sum(xc*yc) / sqrt(sum(xc^2) * sum(yc^2)) with xc = x - mean(x),
            yc = y - mean(y) (two passes, so large offsets cost no precision),
            clipped to [-1, 1].
  Spearman  Pearson of average ranks (tied values share the mean of their
            1-based positions in sorted order).
  Rolling   Pearson over the `window` joined points i-window+1..i, for
            i = window-1..n-1 (valid edges only), from the window's sums of
            deviations from one of its own points (see rolling_pearson).
  Lagged    lag k pairs y[i] with x[i+k] over every i where both exist (n - |k|
            pairs): k > 0 means y leads x by k points, k < 0 means x leads.
            Each r_k is the exact Pearson of those pairs.

Edge policy: a statistic over fewer than 2 pairs, or where x or y is constant
over the pairs used, is NaN (rounding in sums never turns a constant into a
spurious r). Lags are limited to those leaving at least 3 pairs.

Precision of the rolling r: a window's sums hold only that window's points,
as deviations from one of them, so their rounding error is relative to the
window's own spread, whatever the values elsewhere (a run that explodes to
1e30 leaves the windows before and after the explosion intact). A window whose
squared deviations overflow (beyond ~1e154) is NaN.
"""

from __future__ import annotations

import collections

import numpy as np
import numpy.typing as npt

from tb_batchavg.stats import validation, workers

Correlation = collections.namedtuple(
    "Correlation",
    "n pearson spearman pearson_diff spearman_diff rolling_step rolling lags lag_r lag_pairs best_lag steps x y",
)

MIN_LAG_PAIRS = 3
# A best lag is chosen among the lags that leave at least this many pairs (the standard error of r
# is about 1/sqrt(n - 3): 0.19 at 30 pairs); a 20-point run has none.
MIN_BEST_LAG_PAIRS = 30
ROLLING_CHUNK = 1 << 15  # points per chunk of rolling_pearson: keeps its working set in cache
MIN_FFT_SIZE = 4096  # FFT length per block of lagged_pearson
RANK_CHUNK = 1 << 16  # positions per chunk of the rank sums and scatters (in cache)


def join(
    x_steps: npt.ArrayLike, x_values: npt.ArrayLike, y_steps: npt.ArrayLike, y_values: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inner join of two series on step, keeping pairs where both values are finite.

    Step arrays must be strictly increasing. Returns (steps int64, x float64, y float64),
    which may share memory with the inputs when nothing had to be dropped.
    """
    x_steps, x_values = validation.series(x_steps, x_values, "x")
    y_steps, y_values = validation.series(y_steps, y_values, "y")
    if np.array_equal(x_steps, y_steps):  # the usual case: both logged at every step
        steps, x, y = x_steps, x_values, y_values
    else:
        steps, x_index, y_index = np.intersect1d(x_steps, y_steps, assume_unique=True, return_indices=True)
        x = x_values[x_index]
        y = y_values[y_index]
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.all():
        return steps, x, y
    return steps[finite], x[finite], y[finite]


def pearson(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Pearson r of paired finite values (as join returns them); NaN when n < 2 or
    x or y is constant."""
    x, y = _pair(x, y)
    if len(x) < 2 or x.min() == x.max() or y.min() == y.max():
        return float("nan")
    xc = x - x.mean()
    yc = y - y.mean()
    return float(_r(_dot(xc, yc), _dot(xc, xc), _dot(yc, yc), False))


def spearman(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Spearman rho of paired finite values: Pearson of their average ranks; NaN when
    n < 2 or x or y is constant.

    Ranks are doubled, 2 * rank - 2 (`_Ranks`): integers summing to n(n - 1) whatever
    the ties, so sum((rx - (n - 1)) * (ry - (n - 1))) = sum(rx * ry) - n(n - 1)**2, and
    the sum of squares of one side's centred ranks is exactly (n**3 - n - sum over tie
    groups of t**3 - t) / 3. One sort of y gives each point's y rank (one scatter back to the
    points); one sort of x, carrying those ranks along, lists the rank pairs in x order,
    so x's ranks are never scattered.
    """
    x, y = _pair(x, y)
    n = len(x)
    if n < 2:
        return float("nan")
    y_order, y_ranks = _sorted_ranks(y)
    y_by_point = np.empty(n, dtype=np.int64)
    y_ranks.scatter(y_order, y_by_point)
    yr, x_ranks = _sorted_ranks(x, y_by_point, (2 * n - 2).bit_length())
    spread = n**3 - n
    cross = x_ranks.dot(yr) - float(n * (n - 1) ** 2)
    return float(_r(cross, (spread - x_ranks.ties) / 3, (spread - y_ranks.ties) / 3))


def rolling_pearson(x: npt.ArrayLike, y: npt.ArrayLike, window: int) -> np.ndarray:
    """Pearson r over each run of `window` consecutive pairs (points i-window+1..i).

    Returns n - window + 1 values (empty when n < window); NaN where x or y is
    constant in the window. O(n) from block-local running sums: with blocks of
    `window` points, the window ending at point p of block b is the part of block
    b-1 after p plus the part of block b up to p; its sums of dx, dy, dx^2, dy^2,
    dx*dy are a reverse running sum over block b-1 plus a forward one over block b,
    both of the deviations (dx, dy) from block b's first point, which every window
    ending in block b contains. So a window's sums hold only its own points, and a
    constant side gives sums of exactly 0 (variance 0, r NaN).
    """
    window = validation.integer("window", window, minimum=2)
    x, y = _pair(x, y)
    n = len(x)
    if n < window:
        return np.empty(0)
    blocks = -(-n // window)
    # block j sits at padded block j + 1, after a block of zeros (its windows are dropped)
    padded = np.zeros((2, blocks + 1, window))
    padded[0].reshape(-1)[window : window + n] = x
    padded[1].reshape(-1)[window : window + n] = y
    r = np.empty((blocks, window))  # r[b, p]: the window ending at point b * window + p
    step = max(1, ROLLING_CHUNK // window)
    workers.each(
        lambda first: _rolling_blocks(padded[:, first : first + step + 1], r[first : first + step]),
        range(0, blocks, step),
    )
    return r.reshape(-1)[window - 1 : n]


def lagged_pearson(x: npt.ArrayLike, y: npt.ArrayLike, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r of (x[i+k], y[i]) over all valid i, for k = -max_lag..max_lag.

    k > 0: y leads x by k points; k < 0: x leads y. Lags are clipped so that every
    lag keeps at least 3 pairs (empty arrays when n < 3). Returns (lags int64, r).
    O(n log max_lag): per-lag sums from edge prefix sums, cross products by blocked FFT
    but at lag 0, whose cross product is a direct sum (so r at lag 0 is `pearson`'s r
    to rounding of the means, ~eps).
    """
    max_lag = validation.integer("max_lag", max_lag, minimum=0)
    x, y = _pair(x, y)
    n = len(x)
    max_lag = min(max_lag, n - MIN_LAG_PAIRS)
    if max_lag < 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    lags = np.arange(-max_lag, max_lag + 1, dtype=np.int64)
    shift = np.abs(lags)
    count = n - shift
    y_leads = lags >= 0
    cross, xc, yc = _lagged_cross(x, y, max_lag)
    cross[max_lag] = _dot(xc, yc)
    # lag k >= 0 uses x[k:] and y[:n-k]; k < 0 uses x[:n+k] and y[-k:].
    x_head, x_tail, x_total = _edge_moments(xc, max_lag)
    y_head, y_tail, y_total = _edge_moments(yc, max_lag)
    sx, sxx = x_total[:, None] - np.where(y_leads, x_head[:, shift], x_tail[:, shift])
    sy, syy = y_total[:, None] - np.where(y_leads, y_tail[:, shift], y_head[:, shift])

    # a suffix v[a:] is constant when v's last change is at or before a; a prefix
    # v[:b] when v's first change is at or after b
    x_first, x_last = _change_span(x)
    y_first, y_last = _change_span(y)
    constant = np.where(y_leads, x_last <= shift, x_first >= count) | np.where(
        y_leads, y_first >= count, y_last <= shift
    )
    r = _r(cross - sx * sy / count, sxx - sx * sx / count, syy - sy * sy / count, constant)
    return lags, r


def best_lag(lags: npt.ArrayLike, r: npt.ArrayLike, pairs: int | None = None, min_pairs: int = 0) -> int | None:
    """Lag with the largest |r| (NaN ignored; ties: smallest |lag|, then the positive one).

    With `pairs` (the points joined at lag 0), only lags with pairs - |lag| >= min_pairs
    compete. None when no such lag has a finite r.
    """
    lags = np.asarray(lags, dtype=np.int64)
    magnitude = np.abs(np.asarray(r, dtype=np.float64))
    finite = np.isfinite(magnitude)
    if pairs is not None:
        finite &= pairs - np.abs(lags) >= min_pairs
    if not finite.any():
        return None
    tied = lags[finite & (magnitude == magnitude[finite].max())]
    closest = tied[np.abs(tied) == np.abs(tied).min()]
    return int(closest.max())


def correlate(
    x_steps: npt.ArrayLike,
    x_values: npt.ArrayLike,
    y_steps: npt.ArrayLike,
    y_values: npt.ArrayLike,
    window: int = 200,
    max_lag: int = 50,
) -> Correlation:
    """Join x and y on step and compute every correlation statistic (see module doc).

    pearson_diff / spearman_diff use np.diff of the joined series; rolling_step is
    the step at the last point of each rolling window. Raises ValueError for
    window < 2 or max_lag < 0.
    """
    steps, x, y = join(x_steps, x_values, y_steps, y_values)
    # Four independent parts, shared among threads (mostly sorts and numpy passes, which release
    # the GIL), the costliest first. The levels' Pearson is the lag-0 coefficient of
    # lagged_pearson (lags exist from n = 3).
    (changes, spearman_changes), spearman_levels, rolling, (lags, lag_r) = workers.call(
        lambda: _of_changes(x, y),
        lambda: spearman(x, y),
        lambda: rolling_pearson(x, y, window),
        lambda: lagged_pearson(x, y, max_lag),
    )
    levels = float(lag_r[len(lags) // 2]) if len(lags) else pearson(x, y)
    return Correlation(
        n=len(steps),
        pearson=levels,
        spearman=spearman_levels,
        pearson_diff=changes,
        spearman_diff=spearman_changes,
        rolling_step=steps[window - 1 :],
        rolling=rolling,
        lags=lags,
        lag_r=lag_r,
        lag_pairs=len(steps) - np.abs(lags),
        best_lag=best_lag(lags, lag_r, len(steps), MIN_BEST_LAG_PAIRS),
        steps=steps,
        x=x,
        y=y,
    )


def _of_changes(x, y):
    """Pearson and Spearman of the step-to-step changes."""
    x, y = np.diff(x), np.diff(y)
    return pearson(x, y), spearman(x, y)


def _pair(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("x and y must be 1-d arrays of equal length")
    return x, y


def _rolling_blocks(padded, out):
    """rolling_pearson for the windows ending in blocks 1.. of `padded` (2, blocks,
    window), into out[j, p] for the window ending at point p of block j + 1.

    Each running sum is one complex np.cumsum along the block: the real part runs
    forward over block j + 1, the imaginary part backward over block j (two
    independent additions per step, so twice the throughput of real cumsums).
    """
    blocks, window = out.shape
    origin = padded[:, 1:, :1]
    terms = np.empty((5, blocks, window), dtype=np.complex128)
    pairs = terms.view(np.float64)  # [term, block, 2 * point + (0 forward | 1 backward)]
    for side in (0, 1):
        np.subtract(padded[side, 1:], origin[side], out=pairs[side, :, 0::2])
        np.subtract(padded[side, :-1, ::-1], origin[side], out=pairs[side, :, 1::2])
    np.multiply(pairs[0], pairs[0], out=pairs[2])
    np.multiply(pairs[1], pairs[1], out=pairs[3])
    np.multiply(pairs[0], pairs[1], out=pairs[4])
    np.cumsum(terms, axis=2, out=terms)
    sums = np.empty((5, blocks, window))
    sums[:, :, -1] = terms.real[:, :, -1]
    np.add(terms.real[:, :, :-1], terms.imag[:, :, -2::-1], out=sums[:, :, :-1])
    sx, sy, sxx, syy, sxy = sums
    x_mean, y_mean = sx / window, sy / window
    sxy -= sx * y_mean
    sxx -= sx * x_mean
    syy -= sy * y_mean
    _r(sxy, sxx, syy, out=out)


def _dot(a, b):
    """sum(a * b) in float64 (integers converted in buffered chunks), without BLAS: OpenBLAS
    worker threads cost more CPU than they save here."""
    return np.einsum("i,i", a, b, dtype=np.float64)


def _r(cross, x_var, y_var, degenerate=False, out=None):
    """cross / sqrt(x_var * y_var) clipped to [-1, 1] (into `out`, which may be `cross`);
    NaN where degenerate or unless both variances are positive and their product finite
    (a constant side has variance exactly 0 or, after cancellation, a tiny one of either
    sign: `degenerate` then). x_var and y_var are kept."""
    shape = np.broadcast(cross, x_var, y_var).shape
    x_var = np.atleast_1d(x_var)  # so that every result below is an array
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = np.multiply(x_var, y_var)
        np.sqrt(scale, out=scale)
        r = np.divide(cross, scale, out=out)
        np.clip(r, -1.0, 1.0, out=r)
        invalid = np.minimum(x_var, y_var) <= 0
        invalid |= scale == np.inf
        invalid |= np.isnan(scale)
    invalid |= degenerate
    np.copyto(r, np.nan, where=invalid)
    return r.reshape(shape)


class _Ranks(collections.namedtuple("_Ranks", "n slots doubled ties")):
    """Doubled average ranks (2 * rank - 2) of n sorted values: 2k at sorted position k,
    but `doubled` at the positions `slots` of tie groups (the sum of the group's first
    and last position); ties: the sum over tie groups of t**3 - t, t the group's size.
    2k is formed a chunk at a time, never as an n-long array."""

    def scatter(self, order, out):
        """out[order[k]] = the rank at sorted position k."""
        twice = np.arange(0, 2 * RANK_CHUNK, 2)
        for first in range(0, self.n, RANK_CHUNK):
            part = order[first : first + RANK_CHUNK]
            out[part] = twice[: len(part)] + 2 * first
        out[order[self.slots]] = self.doubled

    def dot(self, values):
        """sum over k of rank k * values[k] (int `values`), in float64."""
        twice = np.arange(0, 2 * RANK_CHUNK, 2, dtype=np.float64)
        total = 0.0
        for first in range(0, self.n, RANK_CHUNK):
            part = values[first : first + RANK_CHUNK]
            total += _dot(twice[: len(part)], part) + 2.0 * first * float(part.sum())
        return total + _dot(self.doubled - 2 * self.slots, values[self.slots])


def _sorted_ranks(values, payload=None, payload_bits=0):
    """Sort finite float64 `values`, carrying `payload` (ints below 2**payload_bits,
    overwritten; default: the indices) along. Returns (carried, ranks): the payload in
    ascending value order and the `_Ranks` of the sorted values.

    One sort of float64 words, each a value with the payload in its low mantissa
    bits: that keeps the order of finite values and makes each value's words a
    contiguous run. Values with nonzero bits there (never float32 data with
    payloads below 2**29) have those bits cleared and carry their index instead;
    values that then collide are re-sorted exactly and the payload is gathered.
    """
    n = len(values)
    bits = values.view(np.int64)
    used = int(np.bitwise_or.reduce(bits)) if n else 0  # the bits set in any value
    exact = payload is not None and not used & ((1 << payload_bits) - 1)
    if not exact:
        payload_bits = max(n - 1, 0).bit_length()  # the indices
    low = (1 << payload_bits) - 1
    if exact:
        packed = np.bitwise_or(bits, payload, out=payload)
    else:
        packed = np.arange(n)
        packed |= bits & ~low if used & low else bits
    packed.view(np.float64).sort()
    grouped = _equal_neighbours(packed, ~low)
    ranks = _Ranks(n, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), 0)
    if grouped.any():
        in_group = np.zeros(n, dtype=bool)
        in_group[1:] = grouped
        in_group[:-1] |= grouped
        slots = np.flatnonzero(in_group)
        if exact:
            members = (packed[slots] & ~low).view(np.float64)
        else:
            points = packed[slots] & low
            members = values[points]
            if np.any(members[1:] < members[:-1]):  # distinct values shared a truncation
                resort = np.argsort(members, kind="stable")
                members = members[resort]
                packed[slots] = points[resort]
        starts = np.flatnonzero(np.concatenate(([True], members[1:] != members[:-1])))
        ends = np.append(starts[1:], len(slots))
        # a group of equal values occupies consecutive slots
        sizes = ends - starts
        doubled = np.repeat(slots[starts] + slots[ends - 1], sizes)
        ranks = _Ranks(n, slots, doubled, _tie_sum(sizes))
    carried = np.bitwise_and(packed, low, out=packed)
    if payload is not None and not exact:
        carried = payload[carried]
    return carried, ranks


def _equal_neighbours(words, mask):
    """(words & mask)[1:] == (words & mask)[:-1] compared as float64 (so -0.0 == 0.0), a
    chunk of RANK_CHUNK words at a time."""
    equal = np.empty(max(len(words) - 1, 0), dtype=bool)
    for first in range(0, len(equal), RANK_CHUNK):
        head = (words[first : first + RANK_CHUNK + 1] & mask).view(np.float64)
        np.equal(head[1:], head[:-1], out=equal[first : first + RANK_CHUNK])
    return equal


def _tie_sum(sizes):
    """sum of t**3 - t over int64 `sizes` (positive, summing to at most n), exactly."""
    largest = int(sizes.max())
    if largest**2 * int(sizes.sum()) < 1 << 62:  # no int64 term or partial sum overflows
        return int(np.sum(sizes * (sizes * sizes - 1)))
    return sum(t**3 - t for t in sizes.tolist())


def _edge_moments(centred, width):
    """Rows (sum of v, sum of v^2) over the first j points (head) and the last j
    points (tail) for j = 0..width, and over all points (total)."""
    edges = np.stack((centred[:width], centred[::-1][:width]))
    running = np.zeros((2, 2, width + 1))
    np.cumsum(np.stack((edges, edges * edges)), axis=2, out=running[:, :, 1:])
    total = np.array([centred.sum(), _dot(centred, centred)])
    return running[:, 0], running[:, 1], total


def _change_span(values):
    """(first, last) index i with values[i] != values[i-1]; (len, 0) when constant."""
    differs = values[1:] != values[:-1]
    if not differs.any():
        return len(values), 0
    return int(differs.argmax()) + 1, len(values) - 1 - int(differs[::-1].argmax())


def _lagged_cross(x, y, max_lag):
    """(cross, xc, yc): xc = x - mean(x), yc = y - mean(y) and
    cross[k + max_lag] = sum over i of xc[i+k] * yc[i], for k = -max_lag..max_lag.

    Blocked FFT: block b pairs yc[bB:(b+1)B] with xc[bB-max_lag:(b+1)B+max_lag]
    (zero outside the series); with FFT length B + 2*max_lag no lag wraps around.
    The centred series are written into their zero-padded buffers, x's blocks are
    overlapping views of its buffer, and the blocks' cross spectra are summed
    (in place) before a single inverse transform.
    """
    n = len(x)
    span = 2 * max_lag
    size = _fft_size(max(MIN_FFT_SIZE, 4 * span + 4))
    block = size - span
    blocks = -(-n // block)
    x_padded = np.empty(blocks * block + span)
    x_padded[:max_lag] = 0.0
    x_padded[max_lag + n :] = 0.0
    xc = np.subtract(x, x.mean(), out=x_padded[max_lag : max_lag + n])
    y_padded = np.empty(blocks * block)
    y_padded[n:] = 0.0
    yc = np.subtract(y, y.mean(), out=y_padded[:n])
    x_blocks = np.lib.stride_tricks.sliding_window_view(x_padded, size)[::block]
    spectra = np.fft.rfft(x_blocks, axis=1)
    y_spectra = np.fft.rfft(y_padded.reshape(blocks, block), size, axis=1)
    spectra *= np.conjugate(y_spectra, out=y_spectra)
    return np.fft.irfft(spectra.sum(axis=0), size)[: span + 1], xc, yc


def _fft_size(minimum):
    """Smallest 2**a * 3**b * 5**c >= minimum (FFT lengths numpy transforms fast)."""
    best = 1 << (minimum - 1).bit_length()
    power_of_5 = 1
    while power_of_5 < best:
        odd_part = power_of_5
        while odd_part < best:
            best = min(best, odd_part << (-(-minimum // odd_part) - 1).bit_length())
            odd_part *= 3
        power_of_5 *= 5
    return best
