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
- ``align="centered"``: ``before = floor(w / 2)``, ``after = ceil(w / 2) - 1``:
  pandas' ``rolling(w, center=True)`` (for an even w the window reaches one
  point further back than forward); with steps, the steps in
  ``[s - floor(w / 2), s + ceil(w / 2) - 1]``, which is pandas'
  ``rolling("<w>s", center=True, closed="left")`` on integer steps.

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

Precision: a window's mean and standard deviation are built from sums over
that window's own points only, each taken as deviations from one of those
points, so their rounding error is a small multiple of eps times the largest
finite |value| in the window, however large the values elsewhere in the
series (a loss that explodes to 1e36 leaves the averages before it intact),
and a window of equal values gets exactly that value (where that largest
|value| is subnormal, the error is at most two ulps of float64's subnormal
grid).

Extreme magnitudes: a window whose largest finite |value| exceeds 2**480
(where sums of squares could overflow), or, for the std band, lies in
(0, 2**-400) (where squares underflow), is computed exactly instead
(``_exact_moments``): its mean correctly rounded, its standard deviation the
correctly rounded square root of the exact sample variance (+inf beyond
float64; band edges beyond float64 are -+inf). An O(n) check of the
series' magnitudes finds them; each costs O(its points) Python integer
operations, every other window is computed as above. The median is correctly
rounded too (two middle values whose sum would overflow are halved first).
The EMA is TensorBoard's formula in float64 with every term down to the
subnormal range (no old term is cut off: an EMA decaying from 1e300 to
1e-300 follows TensorBoard's loop). Being a weighted mean it is at most the
largest |value|: where the formula's own roundings (and its debiasing
1 - weight**k) carry it past float64's largest value, it is that value, not
the formula's overflow. Its std band has an error of a small multiple of
eps times the series' largest |value| (values beyond 2**+-400 are scaled by
a power of two for it); edges beyond float64 are -+inf.

Steps: windows over any int64 steps, of any length, are exact: their ends are
taken as uint64 offsets from -2**63 and saturate at the int64 limits (where no
step lies), so windows near the limits or reaching past them keep exactly
the steps they cover.

Complexity (n points, w the longest window): the series is cut into blocks
of w points and every window is the tail of one block plus the head of the
next (``_BlockSplit``), so counts, means, standard deviations, minima and
maxima come from per-block running sums and extremes in O(n); windows that
fall strictly inside a block (partial edges, ``unit="steps"``) take merged
dyadic spans or a sparse table, O(n log w); blocks use reduceat, O(n);
medians see ``median.py``; the EMA and its std use blocked matrix products
(``_decayed_sums``), O(n).
All vectorised: Python loops run over levels and chunks only.
"""

import itertools
import math
from collections import namedtuple

import numpy as np

from tb_batchavg.metadata import ALIGNS, BANDS, EDGES, METHODS, UNITS
from tb_batchavg.stats import validation, workers
from tb_batchavg.stats.median import window_median

Averaged = namedtuple("Averaged", "index step value lower upper")
Averaged.__doc__ = """Output points of ``moving_average``.

index: int64 positions (into the input arrays) of the output points;
step: int64 steps of those points; value, lower, upper: float64.
"""

# Block of the EMA recurrence: one matrix product per _EMA_BLOCK points.
_EMA_BLOCK = 32
# Part of the series the EMA and its std are computed over at a time (in cache).
_EMA_PART = 1 << 17
# Data chunk of the window means and standard deviations (their span tables
# stay in cache).
_CACHE_CHUNK = 1 << 15


def moving_average(
    steps, values, method="sma", window=50, weight=0.6, align="trailing", edges="valid", unit="points", band="none"
):
    """Averages ``values`` (ordered by ``steps``) as described in the module
    docstring and returns an ``Averaged``.

    Raises ValueError naming the parameter for an unknown method, align,
    edges, unit or band, a window < 1, a weight outside [0, 1), band="minmax"
    with method="ema", or mismatched/unsorted inputs.
    """
    steps, values = validation.series(steps, values)
    window = _check_options(method, window, weight, align, edges, unit, band)
    if method == "ema":
        return _ema(steps, values, weight, band)
    finite = np.isfinite(values)
    bounds = _bounds(steps, method, window, align, edges, unit)
    blocks = method == "block"
    spread = band == "std"
    center = None  # of the std band: the mean, except for the median
    if method == "median":
        lo, hi = bounds.chunk(0, bounds.count)
        count = _window_count(finite, lo, hi)
        value = center = window_median(values, finite, lo, hi, count)
    extreme = False
    if method != "median" or spread:  # the median uses the mean for its band only
        extreme = _extreme(values, finite, spread)
        moments = _block_moments if blocks else _window_moments
        # Huge values (set to 0 here) are left to _exact_moments: windows without them never overflow.
        usable = _without_huge(values) if extreme else values
        mean, lower, upper = moments(usable, finite, bounds, spread, center)
        if method != "median":
            value = mean
    if band == "minmax":
        lower, upper = _window_extremes(values, finite, bounds, blocks)
    elif band == "none":
        lower = upper = np.broadcast_to(np.nan, value.shape)  # read-only
    if extreme:
        at, exact_mean, exact_std = _extreme_windows(values, finite, bounds, spread)
        if method != "median":
            value[at] = exact_mean
        if spread:
            _set_band(lower, upper, at, value[at], exact_std)
    return Averaged(bounds.index, bounds.steps(steps), value, lower, upper)


def band_at(
    steps,
    values,
    at,
    center,
    method="sma",
    window=50,
    weight=0.6,
    align="trailing",
    edges="valid",
    unit="points",
    band="std",
):
    """(lower, upper) of ``moving_average(steps, values, ..., band=band)`` at
    its output positions ``at`` only, with the std band centred on
    ``center`` (the averages at ``at``): for a chart that shows a few
    thousand of a long series' averages. The windows' own points are
    gathered (O(len(at) * window)) and taken as contiguous blocks: mean,
    std and extremes as ``_block_moments`` and ``_window_extremes`` give
    them (the std equals moving_average's up to rounding, the extremes
    exactly). Not for method="ema" (its band is a recurrence) nor
    band="none"; ``weight`` (of the EMA) is accepted and ignored."""
    steps, values = validation.series(steps, values)
    window = _check_options(method, window, weight, align, edges, unit, band)
    if method == "ema" or band == "none":
        raise ValueError("band_at needs band std or minmax and a windowed method")
    lo, hi = _bounds(steps, method, window, align, edges, unit).at(np.asarray(at, dtype=np.int64))
    length = hi - lo
    starts = np.zeros(len(at), dtype=np.int64)
    np.cumsum(length[:-1], out=starts[1:])
    gathered = np.repeat(lo - starts, length) + np.arange(int(length.sum()), dtype=np.int64)
    y = values[gathered]
    finite = np.isfinite(y)
    windows = _Bounds(np.arange(len(at), dtype=np.int64), starts, starts + length)
    if band == "minmax":
        return _window_extremes(y, finite, windows, blocks=True)
    center = np.asarray(center, dtype=np.float64)
    extreme = _extreme(y, finite, True)
    usable = _without_huge(y) if extreme else y
    lower, upper = _block_moments(usable, finite, windows, True, center)[1:]
    if extreme:
        picked, _, exact_std = _extreme_windows(y, finite, windows, True)
        _set_band(lower, upper, picked, center[picked], exact_std)
    return lower, upper


def _check_options(method, window, weight, align, edges, unit, band):
    """Validates the options; returns the window as a Python int."""
    for name, given, allowed in (
        ("method", method, METHODS),
        ("align", align, ALIGNS),
        ("edges", edges, EDGES),
        ("unit", unit, UNITS),
        ("band", band, BANDS),
    ):
        if given not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {given!r}")
    window = validation.integer("window", window, 1)
    try:
        weight_ok = 0.0 <= float(weight) < 1.0
    except (TypeError, ValueError):
        weight_ok = False
    if not weight_ok:
        raise ValueError(f"weight must be a number in [0, 1); got {weight!r}")
    if band == "minmax" and method == "ema":
        raise ValueError("band=minmax is not defined for method=ema")
    return window


class _Bounds:
    """Index bounds [lo, hi) of the windows of the kept points ``index``:
    given as arrays, or, over points (an int ``index``: the kept points are
    index, index + 1, ..., ``count`` of them; ``n``, ``before``, ``after``
    given), consecutive and made per chunk on demand (``chunk``); ``lo``/
    ``hi`` return them whole, ``index`` the kept points."""

    def __init__(self, index, lo=None, hi=None, n=None, before=0, after=0, count=None):
        self.consecutive = lo is None
        self.first = index if self.consecutive else None
        self._index, self._lo, self._hi = (None, None, None) if self.consecutive else (index, lo, hi)
        self.count = count if self.consecutive else len(index)
        self.n, self.before, self.after = n, before, after

    @property
    def index(self):
        if self._index is None:
            self._index = np.arange(self.first, self.first + self.count, dtype=np.int64)
        return self._index

    def chunk(self, first, stop):
        if not self.consecutive:
            return self._lo[first:stop], self._hi[first:stop]
        index = np.arange(self.first + first, self.first + stop, dtype=np.int64)
        lo = index - self.before
        hi = index + (self.after + 1)
        if len(index) and lo[0] < 0:  # partial edges, at the start
            np.maximum(lo, 0, out=lo)
        if len(index) and hi[-1] > self.n:  # and at the end
            np.minimum(hi, self.n, out=hi)
        return lo, hi

    @property
    def lo(self):
        return self.chunk(0, self.count)[0] if self.consecutive else self._lo

    @property
    def hi(self):
        return self.chunk(0, self.count)[1] if self.consecutive else self._hi

    def ends(self, first, stop):
        """(lo of window ``first``, hi of window ``stop - 1``)."""
        if not self.consecutive:
            return int(self._lo[first]), int(self._hi[stop - 1])
        return (max(0, self.first + first - self.before), min(self.n, self.first + stop + self.after))

    def full_run(self, first, stop):
        """lo of window ``first`` if the windows first..stop-1 are
        [lo + j, lo + j + before + after + 1) (over points, none cut by an
        edge), else None."""
        if not self.consecutive:
            return None
        lo = self.first + first - self.before
        return lo if lo >= 0 and self.first + stop + self.after <= self.n else None

    def at(self, positions):
        """(lo, hi) of the windows at ``positions`` (indices of kept points)."""
        if not self.consecutive:
            return self._lo[positions], self._hi[positions]
        index = self.first + positions
        return np.maximum(index - self.before, 0), np.minimum(index + (self.after + 1), self.n)

    def holding(self, positions):
        """(start, stop): the windows holding data position p (sorted ``positions``) are the kept
        points start..stop-1 (none where start >= stop)."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.consecutive:  # index - before <= p <= index + after
            return (
                np.clip(positions - self.after - self.first, 0, self.count),
                np.clip(positions + self.before + 1 - self.first, 0, self.count),
            )
        # hi and lo are non-decreasing: hi > p from start on, lo <= p before stop
        return (np.searchsorted(self._hi, positions, side="right"), np.searchsorted(self._lo, positions, side="right"))

    def longest(self):
        if self.consecutive:
            return max(1, min(self.before + self.after + 1, self.n))
        return max(1, int((self._hi - self._lo).max(initial=1)))

    def steps(self, steps):
        """steps[index] (a view where the index is a range)."""
        if self.consecutive:
            return steps[self.first : self.first + self.count]
        return steps[self.index]


def _bounds(steps, method, window, align, edges, unit):
    """The ``_Bounds`` of the output points of ``method`` (blocks or windows)."""
    if method != "block":
        return _window_bounds(steps, window, align, edges, unit)
    index, lo, hi = _block_bounds(steps, window, edges, unit)
    return _Bounds(index, lo, hi)


def _window_bounds(steps, window, align, edges, unit):
    """The ``_Bounds`` of each kept point's window over positions
    [p - before, p + after] (p = i, or steps[i] with unit="steps")."""
    n = len(steps)
    before = window - 1 if align == "trailing" else window // 2  # pandas' center=True
    after = window - 1 - before
    if unit == "points":
        first, stop = (before, max(before, n - after)) if edges == "valid" else (0, n)
        return _Bounds(first, n=n, before=before, after=after, count=stop - first)
    position = _unsigned(steps)
    if edges == "valid" and n:
        fits = (position - position[0] >= np.uint64(before)) if before <= _UINT64_MAX else np.zeros(n, dtype=bool)
        if after:
            fits &= (position[-1] - position >= np.uint64(after)) if after <= _UINT64_MAX else False
        index = np.flatnonzero(fits)
    else:
        index = np.arange(n, dtype=np.int64)
    kept = position[index]
    lo = np.searchsorted(position, _saturating(kept, -before), side="left")
    hi = np.searchsorted(position, _saturating(kept, after), side="right")
    return _Bounds(index, lo.astype(np.int64), hi.astype(np.int64))


_UINT64_MAX = (1 << 64) - 1


def _unsigned(steps):
    """int64 ``steps`` as uint64 steps + 2**63, in the same order: differences of steps
    (up to 2**64 - 1) and window ends past the int64 limits are exact there."""
    return steps.view(np.uint64) ^ np.uint64(1 << 63)


def _saturating(position, offset):
    """Sorted uint64 ``position`` + ``offset`` (a Python int of any size), clamped to [0, 2**64 - 1]:
    a window end past an int64 limit, where no step lies, is the limit itself."""
    if len(position) == 0 or offset == 0:
        return position
    if offset < 0:
        if -offset > _UINT64_MAX:
            return np.zeros_like(position)
        amount = np.uint64(-offset)
        if position[0] >= amount:  # sorted: every position is
            return position - amount
        return np.where(position >= amount, position - amount, np.uint64(0))
    if offset > _UINT64_MAX:
        return np.full_like(position, _UINT64_MAX)
    room = np.uint64(_UINT64_MAX - offset)
    if position[-1] <= room:
        return position + np.uint64(offset)
    return np.where(position <= room, position + np.uint64(offset), np.uint64(_UINT64_MAX))


def _block_bounds(steps, window, edges, unit):
    """Index bounds [lo, hi) of the blocks (p - p_first) // window; returns
    (index of each block's last point, lo, hi)."""
    n = len(steps)
    if n == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    if unit == "points":
        lo = np.arange(0, n, window, dtype=np.int64)
        hi = np.minimum(lo + window, n)
        span = n
    else:  # the differences of steps are exact as uint64 (up to 2**64 - 1)
        position = _unsigned(steps)
        offset = position - position[0]
        block = offset // np.uint64(window) if window <= _UINT64_MAX else np.zeros(n, dtype=np.uint64)
        lo = np.flatnonzero(np.concatenate(([True], block[1:] != block[:-1])))
        hi = np.append(lo[1:], n)
        span = int(steps[-1]) - int(steps[0]) + 1
    if edges == "valid" and span % window:
        lo, hi = lo[:-1], hi[:-1]
    return hi - 1, lo, hi


def _window_count(finite, lo, hi):
    """Number of finite values in each window values[lo:hi] (exact), from the
    prefix sums of the finite flags."""
    if finite.all():
        return hi - lo
    counts = _prefix_counts(finite)
    return (counts[hi] - counts[lo]).astype(np.int64)


class _BlockSplit:
    """Non-empty windows [lo, hi) of at most S points over the blocks
    [b S, (b + 1) S) of n points: a window is the tail [lo, tail_end) of the
    block holding lo joined to the head [head_start, hi) of the next block, or
    only a head (it starts a block) or only a tail (it ends a block, or the
    data). A window strictly inside a block has neither (``inside``); only
    windows shorter than S can be, i.e. with partial edges or
    ``unit="steps"``. Per-block running reductions (heads forward, tails
    backward) then give every window's statistic from its own points only."""

    def __init__(self, n, lo, hi, size):
        self.n, self.size, self.blocks = n, size, -(-n // size)
        self.lo, self.hi, self.last = lo, hi, hi - 1
        tail_block = lo - lo % size
        self.head_start = self.last - self.last % size
        self.tail_end = np.minimum(tail_block + size, n)
        self.head_block = self.head_start // size
        self.tail_block = tail_block // size
        self.has_head = lo <= self.head_start
        self.has_tail = (self.tail_end < hi) | ((self.tail_end == hi) & ~self.has_head)
        self.inside = np.flatnonzero(~self.has_head & ~self.has_tail)

    def blocked(self, array, fill):
        """``array`` padded with ``fill`` to whole blocks, shaped (blocks, S)."""
        out = np.empty(self.blocks * self.size, dtype=array.dtype)
        out[: self.n] = array
        out[self.n :] = fill
        return out.reshape(self.blocks, self.size)

    def heads(self, blocked, accumulate):
        """``accumulate`` (a ufunc's accumulate) over each window's head
        [head_start, hi) (meaningless where it has no head)."""
        return accumulate(blocked, axis=1).ravel()[self.last]

    def tails(self, blocked, accumulate):
        """``accumulate`` over each window's tail [lo, end of its block)."""
        backward = blocked.ravel()[::-1].reshape(blocked.shape)  # a view
        return accumulate(backward, axis=1).ravel()[::-1][self.lo]


def _chunked(bounds, n, compute, outputs):
    """Runs ``compute(first, stop, span, S)`` over chunks first..stop-1 of
    about _CACHE_CHUNK windows (at least the longest window S), each on the
    data span its windows cover, cut at multiples of S so that the blocks of
    every chunk are the global ones; ``compute`` returns one array per
    output for its windows. Small chunks keep the working set in cache;
    they are shared among threads (``workers.each``)."""
    count = bounds.count
    out = [np.empty(count) for _ in range(outputs)]
    size = bounds.longest()
    chunk = max(_CACHE_CHUNK, size)

    def one(first):
        stop = min(first + chunk, count)
        lo, hi = bounds.ends(first, stop)
        start = lo - lo % size
        end = min(n, (hi - 1) // size * size + size)
        for array, part in zip(out, compute(first, stop, slice(start, end), size)):
            array[first:stop] = part

    workers.each(one, range(0, count, chunk))
    return out


def _prefix_counts(flags):
    """counts[i] = number of True in flags[:i] (n + 1 entries; int32, exact
    below 2**31 points)."""
    counts = np.zeros(len(flags) + 1, dtype=np.int32 if len(flags) < 2**31 else np.int64)
    np.cumsum(flags.view(np.int8), dtype=counts.dtype, out=counts[1:])
    return counts


def _window_moments(values, finite, bounds, spread, center=None):
    """Finite mean of each (non-empty) window of ``bounds`` (NaN where it has
    no finite value) and, with ``spread``, the std band (``_band``) about it
    or about ``center`` (else None, None), from M2 = sum of (y - mean)**2.

    Each window's head and tail parts (``_BlockSplit``) are summed as
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
        split = _BlockSplit(len(y), lo - span.start, hi - span.start, size)
        if usable.all():
            head_count = split.hi - split.head_start
            tail_count = split.tail_end - split.lo
        else:
            counts = _prefix_counts(usable)
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
        return (mean, *_band(mean if center is None else center[first:stop], std[0]))

    out = _chunked(bounds, len(values), finish, 3 if spread else 1)
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


def _band(center, std):
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
    M2 = sum(d**2) - sum(d)**2 / S (``_window_moments``' bounds hold). Row b
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


def _block_moments(values, finite, bounds, spread, center=None):
    """Finite mean (NaN without a finite value) and, with ``spread``, the std
    band (``_band``) about it or about ``center`` (else None, None) of each
    of the contiguous, non-empty blocks values[lo:hi], in two exact passes:
    mean = c + sum(y - c) / k with c the block's first finite value (a block
    of equal values gets exactly that value), then M2 = sum((y - mean)**2)."""
    lo, hi = bounds.lo, bounds.hi
    if len(lo) == 0:
        return (np.zeros(0),) + ((np.zeros(0), np.zeros(0)) if spread else (None, None))
    count = _window_count(finite, lo, hi)
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
    return (mean, *_band(mean if center is None else center, std))


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


def _extreme(values, finite, spread):
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


def _extreme_windows(values, finite, bounds, spread):
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
            usual = _window_count(finite & (magnitude >= _TINY), lo, hi)
            pick[candidates[usual == 0]] = True
    at = np.flatnonzero(pick)
    lo, hi = bounds.at(at)
    return (at, *_exact_moments(values, finite, lo, hi, spread))


def _holding(bounds, positions):
    """Flags of the windows of ``bounds`` that hold any of the sorted data ``positions``: the
    windows holding one are a range (``_Bounds.holding``), marked by differences."""
    start, stop = bounds.holding(positions)
    marks = np.bincount(start, minlength=bounds.count + 1) - np.bincount(stop, minlength=bounds.count + 1)
    return np.cumsum(marks[:-1]) > 0


def _without_huge(values):
    """``values`` with 0 where |value| > _HUGE."""
    usable = values.copy()
    usable[np.abs(values) > _HUGE] = 0.0
    return usable


def _set_band(lower, upper, at, center, std):
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
    counts = _prefix_counts(finite).astype(np.int64)
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


def _window_extremes(values, finite, bounds, blocks):
    """Finite minimum and maximum of each window of ``bounds`` (NaN where it
    has no finite value): for contiguous ``blocks`` by reduceat, else from the running
    minima/maxima of each window's head and tail parts (``_BlockSplit``, van
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
            split = _BlockSplit(span.stop - span.start, lo - span.start, hi - span.start, size)
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

        minimum, maximum = _chunked(bounds, len(values), compute, 2)
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


def _ema(steps, values, weight, band):
    """TensorBoard's debiased EMA and, for band="std", pandas' bias-corrected
    exponentially weighted std (see the module docstring), over the finite
    values in parts of _EMA_PART points that carry the recurrences' state."""
    weight = float(weight)
    lowest, highest = (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)
    every = bool(np.isfinite(lowest) and np.isfinite(highest))  # NaN reaches both
    finite = None if every else np.isfinite(values)
    y = values if every else values[finite]
    ema = np.empty(len(y))
    std = np.empty(len(y)) if band == "std" else None
    exponent = 0  # the std squares deviations: far from 1, y is scaled by 2**-exponent (exact)
    given = y
    if std is not None:
        y, exponent = _normalised(y, _EMA_SCALED_BEYOND, max(highest, -lowest) if every else None)
    debias = _Debias(weight, len(y))
    scratch = np.empty(min(len(y), _EMA_PART))
    for data, std_out in ((y, std),) + (((given, None),) if exponent else ()):
        # Scaled, values far below the largest would lose low bits: the EMA itself is then
        # computed again on the values as given (the std keeps the scaled values' precision).
        state = (0.0, 0.0)  # the recurrences' sums at the end of the previous part
        with np.errstate(over="ignore"):  # see below
            for first in range(0, len(y), _EMA_PART):
                state = _ema_part(
                    data, first, min(len(y), first + _EMA_PART), debias, weight, state, ema, std_out, scratch
                )
    largest = max(highest, -lowest) if every or not len(given) else max(float(given.max()), -float(given.min()))
    if largest > 2.0**1000:
        # The EMA is a weighted mean, at most the largest |value|; TensorBoard's formula rounded
        # in float64 (and its debiasing 1 - weight**k) can carry it past float64's largest value
        # where values come within rounding of it, and overflow: that is the largest value here
        # (within those roundings of the exact EMA).
        np.clip(ema, -_FLOAT_MAX, _FLOAT_MAX, out=ema)
    if exponent:
        with np.errstate(over="ignore"):  # a std beyond float64 is +inf
            std = _times_power_of_two(std, exponent)
    constant = len(values) > 0 and values[-1] == values[0] and bool(np.all(values == values[0]))
    value = values.copy() if constant or not every else ema
    if not constant and not every:
        value[finite] = ema
    if std is None:
        lower = upper = np.broadcast_to(np.nan, value.shape)  # read-only
    elif every:
        with np.errstate(over="ignore"):  # edges beyond float64 are -+inf
            lower, upper = _band(value, std)
    else:
        lower = np.full(len(values), np.nan)
        upper = np.full(len(values), np.nan)
        with np.errstate(over="ignore"):
            lower[finite], upper[finite] = _band(value[finite], std)
    index = np.arange(len(values), dtype=np.int64)
    return Averaged(index, steps, value, lower, upper)


class _Debias:
    """TensorBoard's debiasing d_t = 1 - weight**(t + 1), t = 0..n-1, kept for
    the first points only: the powers are computed while 1 - weight**k differs
    from 1 in float64; d_t = 1 after them."""

    def __init__(self, weight, n):
        significant = int(min(n, 64 * np.log(2.0) // -np.log(weight) + 1)) if weight > 0 else 0
        self.current = 1.0 - weight ** np.arange(1, significant + 1, dtype=np.float64)
        self.previous = np.concatenate(([0.0], self.current))  # d_{t-1}, d_{-1} = 0
        # d_{t-1} / d_t, t = 0..significant
        self.ratio = self.previous / np.concatenate((self.current, [1.0]))


def _ema_part(y, first, stop, debias, weight, state, ema, std, scratch):
    """Points [first, stop) of ``_ema``: writes the EMA (and the std) of the
    finite ``y`` there into ``ema`` (and ``std``); returns the recurrences'
    sums carried to the next part.

    ema_t = s_t / d_t (``_Debias``), s_t = weight * s_{t-1} + (1 - weight) * y_t.
    std: with W_t = d_t / (1 - weight), the sum of weights, pandas' weighted
    Welford update M2_t = weight * M2_{t-1} + weight * W_{t-1} / W_t *
    (y_t - ema_{t-1})**2 and its bias correction
    var_t = M2_t / W_t * W_t**2 / (W_t**2 - sum of squared weights)
          = M2_t * (1 + weight) / (2 * weight * W_{t-1})
    avoid both cancellations; that is var_t = (1 - weight**2) / 2 * v_t / d_{t-1}
    with v_t = weight * v_{t-1} + d_{t-1} / d_t * (y_t - ema_{t-1})**2.
    NaN for the first point and for weight 0."""
    summed, spread = state
    chunk, averaged, work = y[first:stop], ema[first:stop], scratch[: stop - first]
    np.multiply(chunk, 1.0 - weight, out=work)
    _decayed_sums(work, weight, summed, out=averaged)
    summed = averaged[-1]
    early = max(0, min(stop, len(debias.current)) - first)  # points of the part with d_t < 1
    averaged[:early] /= debias.current[first : first + early]
    if std is None:
        return summed, spread
    work[0] = chunk[0] - (ema[first - 1] if first else 0.0)
    np.subtract(chunk[1:], averaged[:-1], out=work[1:])
    np.multiply(work, work, out=work)
    early = max(0, min(stop, len(debias.ratio)) - first)  # and with d_{t-1} / d_t < 1
    work[:early] *= debias.ratio[first : first + early]
    deviation = std[first:stop]
    _decayed_sums(work, weight, spread, out=deviation)
    spread = deviation[-1]
    deviation *= (1.0 - weight * weight) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation[:early] /= debias.previous[first : first + early]
    np.sqrt(deviation, out=deviation)
    if weight == 0.0:
        deviation[:] = np.nan
    return summed, spread


def _decayed_sums(x, decay, carry=0.0, out=None):
    """s_t = decay * s_{t-1} + x_t, s_{-1} = ``carry``, into ``out``; returns
    it. ``x`` is overwritten.

    Blocks of L = _EMA_BLOCK points: within block k, s = x' @ T with
    T[i, j] = decay**(j - i) for j >= i (a matrix product: BLAS does the work)
    and x' = x but for x'[0] = x[0] + decay * c_k, c_k the sum at the end of
    the previous block (``carry`` for the first). Those sums follow the same
    recurrence c_{k+1} = decay**L * c_k + e_k over the blocks' own sums
    e = x @ T[:, -1], solved recursively. Every term is x times a weight at
    most 1: no overflow where |x| / (1 - decay) does not. A decay whose
    powers up to decay**L would leave the normal range (the blocks' decay
    decay**L after a few levels: 0.6**1024 ~ 1e-227) takes ``_horner``
    instead, whose products only underflow where the recurrence's own do.
    O(n L)."""
    n = len(x)
    out = np.empty(n) if out is None else out
    if n == 0 or decay == 0.0:
        out[:] = x
        return out
    if decay < _NORMAL_DECAY:
        return _horner(x, decay, carry, out)
    length = min(n, _EMA_BLOCK)
    blocks = n // length
    whole = blocks * length
    rows = x[:whole].reshape(blocks, length)
    powers = decay ** np.arange(length + 1, dtype=np.float64)
    parts = blocks + (whole < n)
    if parts > 1 or carry != 0.0:
        carried = np.empty(parts)  # the sum before each block
        carried[0] = carry
        carried[1:] = _decayed_sums(rows[: parts - 1] @ powers[length - 1 :: -1], powers[length], carry)
        carried *= decay
        rows[:, 0] += carried[:blocks]
        x[whole : whole + 1] += carried[blocks:]
    lag = np.arange(length)[None, :] - np.arange(length)[:, None]
    weights = np.where(lag >= 0, powers[np.abs(lag)], 0.0)
    np.matmul(rows, weights, out=out[:whole].reshape(blocks, length))
    np.matmul(x[whole:], weights[: n - whole, : n - whole], out=out[whole:])
    return out


# The EMA's std squares deviations (up to twice the largest |value|) and sums them with weights
# adding up to 1 / (1 - weight) <= 2**53: with values beyond 2**+-400 it runs on the values
# times 2**-e (exact), e the exponent of the largest, so that neither overflows nor underflows.
_EMA_SCALED_BEYOND = 400
_FLOAT_MAX = float(np.finfo(np.float64).max)
# The least decay whose powers up to decay**_EMA_BLOCK are normal floats.
_NORMAL_DECAY = 2.0 ** (-1022 / _EMA_BLOCK)


def _horner(x, decay, carry, out):
    """``_decayed_sums`` for a decay below _NORMAL_DECAY, in the recurrence's own order:
    s_t = x_t + decay * (x_{t-1} + decay * (... + decay * x_{t-J+1})), with x_{-1} = carry and
    x_t = 0 before it, for the J terms that decay**(J-1) keeps above 2**-2100 (the next term, a
    float below 2**1024 times decay**J, is below the least subnormal): J vectorised passes,
    J <= 66 (decay < 2**-31.9), and J <= 11 where decay < 2**-200."""
    n = len(x)
    depth = int(-2100 // np.log2(decay)) + 1
    padded = np.zeros(n + depth)
    padded[depth:] = x
    padded[depth - 1] = carry
    out[:] = padded[1 : n + 1]  # x_{t-J+1}
    for back in range(depth - 2, -1, -1):
        out *= decay
        out += padded[depth - back : depth - back + n]
    return out


def _normalised(x, limit, largest=None):
    """(x * 2**-e, e), e the binary exponent of max |x| (``largest``, when the
    caller knows it), where |e| > ``limit``; else (x, 0). Exact."""
    if largest is None:
        largest = max(float(x.max()), -float(x.min())) if len(x) else 0.0
    exponent = int(np.frexp(largest)[1])
    if abs(exponent) <= limit:
        return x, 0
    return _times_power_of_two(x, -exponent), exponent


def _times_power_of_two(x, exponent):
    """x * 2**exponent, exact (two factors, so that neither overflows)."""
    half = exponent // 2
    return x * 2.0**half * 2.0 ** (exponent - half)
