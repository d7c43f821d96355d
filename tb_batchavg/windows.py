"""Moving averages and bands over a scalar series: pure numpy.

A series is ``steps`` (int64, strictly increasing) and ``values`` (float64,
may hold NaN and +-Inf). "Finite" excludes NaN and +-Inf; non-finite values
are left out of every average and statistic.

Windows (methods ``sma`` and ``median``), for the point at position ``p``
(``p = i`` with ``unit="points"``, ``p = steps[i]`` with ``unit="steps"``)
and window ``w``, cover the points whose position lies in
``[p - before, p + after]``:

- ``align="trailing"``: ``before = w - 1``, ``after = 0`` (with steps: the
  steps in ``(s - w, s]``);
- ``align="centered"``: ``before = floor((w - 1) / 2)``,
  ``after = ceil((w - 1) / 2)``.

``edges="valid"`` keeps only the points whose whole position range lies inside
``[p_first, p_last]`` (for trailing points that is ``i >= w - 1``, as
``np.convolve(..., "valid")``); ``edges="partial"`` keeps every point with its
window truncated at the ends.

Methods (the output is NaN where a window has no finite value):

- ``sma``: mean of the window's finite values;
- ``median``: median of the window's finite values (even count: mean of the
  two middle values);
- ``block``: consecutive non-overlapping blocks, block id ``(p - p_first) // w``
  (``w`` points, or ``w`` steps); each block's finite mean is placed at the
  block's last point. ``edges="valid"`` drops a final block that is not
  complete (``(p_last - p_first + 1) % w != 0``); ``align`` is ignored;
- ``ema``: TensorBoard's debiased exponential moving average, exactly:
  ``last = weight * last + (1 - weight) * y`` over the finite ``y``, output
  ``last / (1 - weight ** k)`` with ``k`` the finite points so far; non-finite
  points are output as themselves and not counted; a series whose values all
  equal the first (NaN never equal) is returned unchanged. This is pandas'
  ``ewm(alpha=1 - weight, adjust=True, ignore_na=True).mean()`` on the finite
  points. ``align``, ``edges`` and ``unit`` are ignored; every point is kept.

Bands (``lower``/``upper``; all NaN with ``band="none"``):

- ``std``: value +- the sample standard deviation (ddof=1) of the window's (or
  block's) finite values, NaN with fewer than 2 (for ``median`` the band is
  centred on the median, its width is still the standard deviation about the
  window mean). For ``ema`` it is the exponentially weighted, bias-corrected
  standard deviation of pandas'
  ``ewm(alpha=1 - weight, adjust=True, ignore_na=True).std()``, NaN at
  non-finite points;
- ``minmax``: the window's (or block's) finite minimum and maximum (not
  defined for ``ema``).

Precision: a window's mean and standard deviation are merged from spans of
that window's own points only, so their rounding error is a small multiple
of eps * log2(w) times the largest finite |value| in the window, however
large the values elsewhere in the series (a loss that explodes to 1e36 leaves
the averages before it intact).

Complexity (n points, w the longest window): counts from prefix sums, O(n);
means and standard deviations from sliding dyadic spans merged with Chan's
update, O(n log w); medians from wavelet matrices over chunk-local ranks,
O(n log n); minima/maxima from a sparse table, O(n log w); the EMA and its
std from blocked matrix products, O(n B) with a fixed block B = 128.
All vectorised: Python loops run over levels and chunks only.
"""

from collections import namedtuple

import numpy as np

from tb_batchavg.median import window_median
from tb_batchavg.metadata import ALIGNS, BANDS, EDGES, METHODS, UNITS

Averaged = namedtuple("Averaged", "index step value lower upper")
Averaged.__doc__ = """Output points of ``moving_average``.

index: int64 positions (into the input arrays) of the output points;
step: int64 steps of those points; value, lower, upper: float64.
"""

# Block length of the blocked EMA recurrence: the cost per point is O(_EMA_BLOCK).
_EMA_BLOCK = 128
# Data chunk of the window means and standard deviations (their span tables
# stay in cache).
_CACHE_CHUNK = 1 << 15
_TINY = np.finfo(np.float64).tiny


def moving_average(steps, values, method="sma", window=50, weight=0.6,
                   align="trailing", edges="valid", unit="points", band="none"):
    """Averages ``values`` (ordered by ``steps``) as described in the module
    docstring and returns an ``Averaged``.

    Raises ValueError naming the parameter for an unknown method, align,
    edges, unit or band, a window < 1, a weight outside [0, 1), band="minmax"
    with method="ema", or mismatched/unsorted inputs.
    """
    steps, values = _check_series(steps, values)
    window = _check_options(method, window, weight, align, edges, unit, band)
    if method == "ema":
        return _ema(steps, values, weight, band)
    positions = steps if unit == "steps" else np.arange(len(steps), dtype=np.int64)
    if method == "block":
        index, lo, hi = _block_bounds(positions, window, edges)
    else:
        index, lo, hi = _window_bounds(positions, window, align, edges, unit)
    finite = np.isfinite(values)
    count = _window_count(finite, lo, hi)
    mean = m2 = None
    if method != "median" or band == "std":  # the median uses the mean for its band only
        mean, m2 = _window_moments(values, finite, lo, hi, spread=band == "std")
    value = window_median(values, finite, lo, hi, count) if method == "median" else mean
    if band == "std":
        with np.errstate(divide="ignore", invalid="ignore"):
            std = np.where(count > 1, np.sqrt(m2 / (count - 1)), np.nan)
        lower, upper = value - std, value + std
    elif band == "minmax":
        lower, upper = _window_extremes(values, finite, lo, hi, count)
    else:
        lower = upper = np.full(len(index), np.nan)
    return Averaged(index, steps[index], value, lower, upper)


def _check_series(steps, values):
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if steps.ndim != 1 or values.shape != steps.shape:
        raise ValueError(
            f"steps and values must be 1-D arrays of the same length, got shapes "
            f"{steps.shape} and {values.shape}")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    return steps, values


def _check_options(method, window, weight, align, edges, unit, band):
    """Validates the options; returns the window as a Python int."""
    for name, given, allowed in (("method", method, METHODS), ("align", align, ALIGNS),
                                 ("edges", edges, EDGES), ("unit", unit, UNITS),
                                 ("band", band, BANDS)):
        if given not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {given!r}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an integer >= 1; got {window!r}")
    try:
        weight_ok = 0.0 <= float(weight) < 1.0
    except (TypeError, ValueError):
        weight_ok = False
    if not weight_ok:
        raise ValueError(f"weight must be a number in [0, 1); got {weight!r}")
    if band == "minmax" and method == "ema":
        raise ValueError("band=minmax is not defined for method=ema")
    return int(window)


def _window_bounds(positions, window, align, edges, unit):
    """Index bounds [lo, hi) of each kept point's window over positions
    [p - before, p + after]; returns (index, lo, hi)."""
    n = len(positions)
    before = window - 1 if align == "trailing" else (window - 1) // 2
    after = window - 1 - before
    if edges == "valid" and n:
        index = np.flatnonzero((positions - before >= positions[0])
                               & (positions + after <= positions[-1]))
    else:
        index = np.arange(n, dtype=np.int64)
    if unit == "points":
        return index, np.maximum(index - before, 0), np.minimum(index + after + 1, n)
    kept = positions[index]
    lo = np.searchsorted(positions, kept - before, side="left")
    hi = np.searchsorted(positions, kept + after, side="right")
    return index, lo.astype(np.int64), hi.astype(np.int64)


def _block_bounds(positions, window, edges):
    """Index bounds [lo, hi) of the blocks (p - p_first) // window; returns
    (index of each block's last point, lo, hi)."""
    if len(positions) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    block = (positions - positions[0]) // window
    lo = np.flatnonzero(np.diff(block, prepend=-1))
    hi = np.append(lo[1:], len(positions))
    if edges == "valid" and (positions[-1] - positions[0] + 1) % window:
        lo, hi = lo[:-1], hi[:-1]
    return hi - 1, lo, hi


def _window_count(finite, lo, hi):
    """Number of finite values in each window values[lo:hi] (int64, exact),
    from the prefix sums of the finite flags."""
    count_prefix = np.concatenate(([0], np.cumsum(finite, dtype=np.int64)))
    return count_prefix[hi] - count_prefix[lo]


def _window_moments(values, finite, lo, hi, spread):
    """Finite mean of each window values[lo:hi] (NaN where it has no finite
    value) and, with ``spread``, its M2 = sum of (y - mean)**2 over the finite
    values (else None): the windows' (count, mean[, M2]) merged from O(log w)
    spans of their own points by Chan's update (``_merge_windows``), so the
    rounding error scales with the window's own values (a prefix sum would
    carry that of every earlier value, e.g. of a loss that later explodes to
    1e36), a window of equal values gets exactly that value and M2 is a sum
    of non-negative terms without cancellation."""
    parts = (finite.astype(np.float64), np.where(finite, values, 0.0))
    if spread:
        parts += (np.zeros(len(values)),)
    merged = _merge_windows(parts, lo, hi)
    mean = np.where(merged[0] > 0, merged[1], np.nan)
    return mean, merged[2] if spread else None


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
    C = max(_CACHE_CHUNK, longest window) points for the windows starting in
    it (data of at most 2C points, kept in cache), with zero padding so that
    one index holds the empty span at every level."""
    merged = tuple(np.zeros(len(lo)) for _ in parts)
    if len(lo) == 0:
        return merged
    length = hi - lo
    longest = int(length.max())
    chunk = max(_CACHE_CHUNK, longest)
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
            spans = _merge_moments(tuple(span[:-width] for span in spans),
                                   tuple(span[width:] for span in spans))
            width *= 2
        for array, group_array in zip(merged, group or ()):  # None: only empty windows
            array[first:stop] = group_array
    return merged


def _window_extremes(values, finite, lo, hi, count):
    """Finite minimum and maximum of each window values[lo:hi] (NaN where count
    is 0), from a sparse table built only up to the longest window's level:
    a window of length L with 2**j <= L < 2**(j+1) is covered by the two
    (overlapping) spans of 2**j points starting at lo and ending at hi."""
    level = np.frexp((hi - lo).astype(np.float64))[1] - 1
    smallest = np.where(finite, values, np.inf)
    largest = np.where(finite, values, -np.inf)
    minimum = np.full(len(lo), np.nan)
    maximum = np.full(len(lo), np.nan)
    for j in range(int(level.max(initial=-1)) + 1):
        if j:
            half = 1 << (j - 1)
            smallest = np.minimum(smallest[:-half], smallest[half:])
            largest = np.maximum(largest[:-half], largest[half:])
        at = np.flatnonzero(level == j)
        first, last = lo[at], hi[at] - (1 << j)
        minimum[at] = np.minimum(smallest[first], smallest[last])
        maximum[at] = np.maximum(largest[first], largest[last])
    none = count == 0
    minimum[none] = np.nan
    maximum[none] = np.nan
    return minimum, maximum


def _ema(steps, values, weight, band):
    """TensorBoard's debiased EMA and, for band="std", pandas' bias-corrected
    exponentially weighted std (see the module docstring)."""
    weight = float(weight)
    finite = np.isfinite(values)
    y = values[finite]
    decayed = np.arange(1, len(y) + 1, dtype=np.float64)
    debias = 1.0 - weight ** decayed  # 1 - weight**k, as TensorBoard computes it
    ema = (1.0 - weight) * _decayed_sums(y, weight) / debias
    value = values.copy()
    constant = len(values) > 0 and bool(np.all(values == values[0]))
    if not constant:
        value[finite] = ema
    lower = np.full(len(values), np.nan)
    upper = np.full(len(values), np.nan)
    if band == "std":
        std = _ew_std(y, ema, weight, debias)
        lower[finite] = value[finite] - std
        upper[finite] = value[finite] + std
    index = np.arange(len(values), dtype=np.int64)
    return Averaged(index, steps.copy(), value, lower, upper)


def _ew_std(y, ema, weight, debias):
    """Bias-corrected exponentially weighted std with weights weight**(t-i)
    (pandas ewm adjust=True). With W_t = sum of weights = debias_t / (1 - weight)
    and the weighted Welford update
    M2_t = weight * M2_{t-1} + weight * W_{t-1} / W_t * (y_t - ema_{t-1})**2,
    var_t = M2_t / W_t * W_t**2 / (W_t**2 - sum of squared weights)
          = M2_t * (1 + weight) / (2 * weight * W_{t-1}),
    which avoids both cancellations. NaN for the first point and weight 0."""
    total = debias / (1.0 - weight)
    previous_total = np.concatenate(([0.0], total[:-1]))
    previous_ema = np.concatenate(([0.0], ema[:-1]))
    increment = weight * previous_total / total * (y - previous_ema) ** 2
    m2 = _decayed_sums(increment, weight)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = m2 * (1.0 + weight) / (2.0 * weight * previous_total)
    return np.where(previous_total * weight > 0, np.sqrt(variance), np.nan)


def _decayed_sums(x, decay):
    """s_t = sum over i <= t of decay**(t - i) * x_i, i.e. s_t = decay * s_{t-1} + x_t.

    Blocks of B points: within a block a lower-triangular matrix of decay**(j-i)
    gives the sums from the block start; the sums carried in at each block's
    start follow the same recurrence over the blocks' last values with decay**B,
    solved recursively. Powers below the smallest normal float are set to 0
    (they only contribute underflowing terms)."""
    n = len(x)
    if n == 0:
        return np.zeros(0)
    block = _EMA_BLOCK if n > _EMA_BLOCK else n
    powers = decay ** np.arange(block + 1, dtype=np.float64)
    powers[powers < _TINY] = 0.0
    lag = np.arange(block)[:, None] - np.arange(block)[None, :]
    kernel = np.where(lag >= 0, powers[np.maximum(lag, 0)], 0.0)
    chunks = -(-n // block)
    padded = np.zeros(chunks * block)
    padded[:n] = x
    sums = padded.reshape(chunks, block) @ kernel.T
    if chunks > 1:
        carried = _decayed_sums(sums[:-1, -1], powers[block])
        sums[1:] += carried[:, None] * powers[1:][None, :]
    return sums.ravel()[:n]
