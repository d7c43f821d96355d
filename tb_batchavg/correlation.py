"""Correlation of two scalar series (e.g. loss and gradient norm): pure numpy.

The series are inner-joined on step and only pairs where both values are finite
(not NaN, not +-Inf) are kept. All statistics use float64 on centred data
(x - mean of the stretch summed over), which keeps sums of squares small and
cancellation mild.

  Pearson   r = sum(xc*yc) / sqrt(sum(xc^2) * sum(yc^2)), clipped to [-1, 1].
  Spearman  Pearson of average ranks (tied values share the mean of their
            1-based positions in sorted order).
  Rolling   Pearson over the `window` joined points i-window+1..i, for
            i = window-1..n-1 (valid edges only), from windowed sums of
            xc, yc, xc^2, yc^2, xc*yc.
  Lagged    lag k pairs y[i] with x[i+k] over every i where both exist (n - |k|
            pairs): k > 0 means y leads x by k points, k < 0 means x leads.
            Each r_k is the exact Pearson of those pairs.

Edge policy: a statistic over fewer than 2 pairs, or where x or y is constant
over the pairs used, is NaN (rounding in sums never turns a constant into a
spurious r). Lags are limited to those leaving at least 3 pairs.
"""

import collections
import operator

import numpy as np

Correlation = collections.namedtuple(
    "Correlation",
    "n pearson spearman pearson_diff spearman_diff "
    "rolling_step rolling lags lag_r best_lag steps x y",
)

MIN_LAG_PAIRS = 3
ROLLING_CHUNK = 1 << 14  # windows per chunk: keeps the working set in cache
MIN_FFT_SIZE = 8192  # FFT length per block of lagged_pearson


def join(x_steps, x_values, y_steps, y_values):
    """Inner join of two series on step, keeping pairs where both values are finite.

    Step arrays must be strictly increasing. Returns (steps int64, x float64, y float64),
    which may share memory with the inputs when nothing had to be dropped.
    """
    x_steps, x_values = _series("x", x_steps, x_values)
    y_steps, y_values = _series("y", y_steps, y_values)
    if np.array_equal(x_steps, y_steps):  # the usual case: both logged at every step
        steps, x, y = x_steps, x_values, y_values
    else:
        steps, x_index, y_index = np.intersect1d(
            x_steps, y_steps, assume_unique=True, return_indices=True
        )
        x = x_values[x_index]
        y = y_values[y_index]
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.all():
        return steps, x, y
    return steps[finite], x[finite], y[finite]


def pearson(x, y):
    """Pearson r of paired finite values (as join returns them); NaN when n < 2 or
    x or y is constant."""
    x, y = _pair(x, y)
    if len(x) < 2 or x.min() == x.max() or y.min() == y.max():
        return float("nan")
    xc = x - x.mean()
    yc = y - y.mean()
    return float(_r(_dot(xc, yc), _dot(xc, xc), _dot(yc, yc), False))


def spearman(x, y):
    """Spearman rho of paired finite values: Pearson of their average ranks; NaN when
    n < 2 or x or y is constant."""
    x, y = _pair(x, y)
    return pearson(_average_ranks(x), _average_ranks(y))


def rolling_pearson(x, y, window):
    """Pearson r over each run of `window` consecutive pairs (points i-window+1..i).

    Returns n - window + 1 values (empty when n < window); NaN where x or y is
    constant in the window. O(n): window sums from cumulative sums that restart
    every `window` points, computed over cache-sized chunks of windows.
    """
    window = _integer("window", window, minimum=2)
    x, y = _pair(x, y)
    count = max(len(x) - window + 1, 0)
    r = np.empty(count)
    if count == 0:
        return r
    chunk = max(ROLLING_CHUNK, window)
    for first in range(0, count, chunk):
        stop = min(first + chunk, count)
        points = slice(first, stop + window - 1)
        r[first:stop] = _rolling_chunk(x[points], y[points], window)
    return r


def lagged_pearson(x, y, max_lag):
    """Pearson r of (x[i+k], y[i]) over all valid i, for k = -max_lag..max_lag.

    k > 0: y leads x by k points; k < 0: x leads y. Lags are clipped so that every
    lag keeps at least 3 pairs (empty arrays when n < 3). Returns (lags int64, r).
    O(n log max_lag): per-lag sums from edge prefix sums, cross products by blocked FFT.
    """
    max_lag = _integer("max_lag", max_lag, minimum=0)
    x, y = _pair(x, y)
    n = len(x)
    max_lag = min(max_lag, n - MIN_LAG_PAIRS)
    if max_lag < 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    lags = np.arange(-max_lag, max_lag + 1, dtype=np.int64)
    shift = np.abs(lags)
    count = n - shift
    y_leads = lags >= 0
    xc = x - x.mean()
    yc = y - y.mean()

    cross = _lagged_cross(xc, yc, max_lag)
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


def best_lag(lags, r):
    """Lag with the largest |r| (NaN ignored; ties: smallest |lag|, then the positive one).

    None when no r is finite.
    """
    lags = np.asarray(lags, dtype=np.int64)
    magnitude = np.abs(np.asarray(r, dtype=np.float64))
    finite = np.isfinite(magnitude)
    if not finite.any():
        return None
    tied = lags[finite & (magnitude == magnitude[finite].max())]
    closest = tied[np.abs(tied) == np.abs(tied).min()]
    return int(closest.max())


def correlate(x_steps, x_values, y_steps, y_values, window=200, max_lag=50):
    """Join x and y on step and compute every correlation statistic (see module doc).

    pearson_diff / spearman_diff use np.diff of the joined series; rolling_step is
    the step at the last point of each rolling window. Raises ValueError for
    window < 2 or max_lag < 0.
    """
    steps, x, y = join(x_steps, x_values, y_steps, y_values)
    rolling = rolling_pearson(x, y, window)
    lags, lag_r = lagged_pearson(x, y, max_lag)
    x_diff = np.diff(x)
    y_diff = np.diff(y)
    return Correlation(
        n=len(steps),
        pearson=pearson(x, y),
        spearman=spearman(x, y),
        pearson_diff=pearson(x_diff, y_diff),
        spearman_diff=spearman(x_diff, y_diff),
        rolling_step=steps[window - 1:],
        rolling=rolling,
        lags=lags,
        lag_r=lag_r,
        best_lag=best_lag(lags, lag_r),
        steps=steps,
        x=x,
        y=y,
    )


def _series(name, steps, values):
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if steps.ndim != 1 or steps.shape != values.shape:
        raise ValueError(f"{name}: steps and values must be 1-d arrays of equal length")
    if np.any(steps[1:] <= steps[:-1]):
        raise ValueError(f"{name}: steps must be strictly increasing")
    return steps, values


def _pair(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("x and y must be 1-d arrays of equal length")
    return x, y


def _integer(name, value, minimum):
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _rolling_chunk(x, y, window):
    """rolling_pearson over one stretch of points (at least `window` of them), centred
    by the stretch's own means."""
    xc = x - x.mean()
    yc = y - y.mean()
    sx, sy, sxx, syy, sxy = _window_sums(np.stack((xc, yc, xc * xc, yc * yc, xc * yc)), window)
    x_changes = _change_counts(x)
    y_changes = _change_counts(y)
    constant = (x_changes[window - 1:] == x_changes[: 1 - window]) | (
        y_changes[window - 1:] == y_changes[: 1 - window]
    )
    return _r(sxy - sx * sy / window, sxx - sx * sx / window, syy - sy * sy / window, constant)


def _window_sums(columns, window):
    """Sums of each row of `columns` over every run of `window` consecutive points.

    Cumulative sums restart every `window` points (blocks), so rounding error grows
    with the window, not with the series. A window starting at s > 0 is the part of
    s's block after s-1 (block total - running sum at s-1; zero when s-1 ends its
    block) plus the running sum of the next block up to the window's end.
    """
    rows, n = columns.shape
    blocks = -(-n // window)
    padded = np.zeros((rows, blocks, window))
    padded.reshape(rows, -1)[:, :n] = columns
    running = np.cumsum(padded, axis=2)
    after = (running[:, :, -1:] - running).reshape(rows, -1)
    running = running.reshape(rows, -1)
    sums = running[:, window - 1:n].copy()
    sums[:, 1:] += after[:, : n - window]
    return sums


def _dot(a, b):
    """sum(a * b) without BLAS: OpenBLAS worker threads cost more CPU than they save here."""
    return np.einsum("i,i", a, b)


def _r(cross, x_var, y_var, degenerate):
    """cross / sqrt(x_var * y_var) clipped to [-1, 1]; NaN where degenerate or a
    variance is <= 0 (a tiny negative one can come from cancellation)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.minimum(np.maximum(cross / (np.sqrt(x_var) * np.sqrt(y_var)), -1.0), 1.0)
    return np.where(degenerate | (x_var <= 0) | (y_var <= 0), np.nan, r)


def _average_ranks(values):
    """1-based ranks of finite values; a group of tied values gets the mean of its positions.

    The order comes from one sort of 64-bit words (numpy sorts plain integers with
    SIMD, far faster than argsort) holding the top bits of an order-preserving
    integer image of each value and, in the low bits, its index. Runs of values
    sharing those top bits are then checked: re-sorted exactly by full value if
    they differ, and tied values get their mean rank.
    """
    n = len(values)
    index_bits = max(n - 1, 0).bit_length()
    packed = _ordered_keys(values)
    packed >>= index_bits
    packed <<= index_bits
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    top = packed >> index_bits
    packed &= (1 << index_bits) - 1
    order = packed.view(np.intp)
    collides = top[1:] == top[:-1]
    rank_at = np.arange(1.0, n + 1)
    if collides.any():
        in_collision = np.zeros(n, dtype=bool)
        in_collision[1:] = collides
        in_collision[:-1] |= collides
        slots = np.flatnonzero(in_collision)
        members = order[slots]
        member_keys = _ordered_keys(values[members])
        if np.any(member_keys[1:] < member_keys[:-1]):  # distinct values share top bits
            exact = np.argsort(member_keys)
            members = members[exact]
            member_keys = member_keys[exact]
            order[slots] = members
        starts = np.flatnonzero(np.concatenate(([True], member_keys[1:] != member_keys[:-1])))
        ends = np.append(starts[1:], len(slots))
        # a tie group occupies consecutive slots, so its mean rank is (first + last) / 2 + 1
        rank_at[slots] = np.repeat((slots[starts] + slots[ends - 1]) / 2 + 1, ends - starts)
    ranks = np.empty(n)
    ranks[order] = rank_at
    return ranks


def _ordered_keys(values):
    """uint64 images of float64 values with the same order (-0.0 and 0.0 map alike)."""
    bits = (values + 0.0).view(np.uint64)
    flip = (bits.view(np.int64) >> 63).view(np.uint64)  # all ones for negatives, else 0
    flip |= np.uint64(1 << 63)
    flip ^= bits
    return flip


def _change_counts(values):
    """counts[i] = number of j in 1..i with values[j] != values[j-1]; so values[a..b]
    (inclusive) is constant exactly when counts[a] == counts[b]."""
    return np.concatenate(([0], np.cumsum(values[1:] != values[:-1])))


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


def _lagged_cross(xc, yc, max_lag):
    """cross[k + max_lag] = sum over i of xc[i+k] * yc[i], for k = -max_lag..max_lag.

    Blocked FFT: block b pairs yc[bB:(b+1)B] with xc[bB-max_lag:(b+1)B+max_lag]
    (zero outside the series); with FFT length B + 2*max_lag no lag wraps around.
    The blocks' cross spectra are summed before a single inverse transform.
    """
    n = len(xc)
    span = 2 * max_lag
    size = _fft_size(max(MIN_FFT_SIZE, 4 * span + 4))
    block = size - span
    blocks = -(-n // block)
    x_padded = np.zeros((blocks + 1) * block)
    x_padded[max_lag:max_lag + n] = xc
    x_rows = x_padded.reshape(blocks + 1, block)
    x_blocks = np.empty((blocks, size))
    x_blocks[:, :block] = x_rows[:-1]
    x_blocks[:, block:] = x_rows[1:, :span]
    y_padded = np.zeros(blocks * block)
    y_padded[:n] = yc
    x_spectra = np.fft.rfft(x_blocks, axis=1)
    y_spectra = np.fft.rfft(y_padded.reshape(blocks, block), size, axis=1)
    cross_spectrum = (x_spectra * np.conj(y_spectra)).sum(axis=0)
    return np.fft.irfft(cross_spectrum, size)[: span + 1]


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
