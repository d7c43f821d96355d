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
(``moments.extreme_windows``): its mean correctly rounded, its standard deviation the
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
next (``blocks.BlockSplit``), so counts, means, standard deviations, minima and
maxima come from per-block running sums and extremes in O(n); windows that
fall strictly inside a block (partial edges, ``unit="steps"``) take merged
dyadic spans or a sparse table, O(n log w); blocks use reduceat, O(n);
medians see ``median.py``; the EMA and its std use blocked matrix products
(``ema._decayed_sums``), O(n).
All vectorised: Python loops run over levels and chunks only.

Layout, as pandas' window code: this module is the API (options, and which kernel each method and
band takes); ``bounds`` gives the windows' index bounds, ``moments``, ``extremes``, ``ema`` and
``median`` the kernels, over the blocks of ``blocks``.
"""

from collections import namedtuple

import numpy as np
import numpy.typing as npt

from tb_batchavg.metadata import ALIGNS, BANDS, EDGES, METHODS, UNITS
from tb_batchavg.stats import ema, validation
from tb_batchavg.stats.blocks import window_count
from tb_batchavg.stats.bounds import IndexBounds, of_method
from tb_batchavg.stats.extremes import window_extremes
from tb_batchavg.stats.median import window_median
from tb_batchavg.stats.moments import (
    any_extreme,
    block_moments,
    extreme_windows,
    set_band,
    window_moments,
    without_huge,
)

Averaged = namedtuple("Averaged", "index step value lower upper")
Averaged.__doc__ = """Output points of ``moving_average``.

index: int64 positions (into the input arrays) of the output points;
step: int64 steps of those points; value, lower, upper: float64.
"""


def moving_average(
    steps: npt.ArrayLike,
    values: npt.ArrayLike,
    method: str = "sma",
    window: int = 50,
    weight: float = 0.6,
    align: str = "trailing",
    edges: str = "valid",
    unit: str = "points",
    band: str = "none",
) -> Averaged:
    """Averages ``values`` (ordered by ``steps``) as described in the module
    docstring and returns an ``Averaged``.

    Raises ValueError naming the parameter for an unknown method, align,
    edges, unit or band, a window < 1, a weight outside [0, 1), band="minmax"
    with method="ema", or mismatched/unsorted inputs.
    """
    steps, values = validation.series(steps, values)
    window = _check_options(method, window, weight, align, edges, unit, band)
    if method == "ema":
        return Averaged(np.arange(len(values), dtype=np.int64), steps, *ema.average(values, weight, band))
    finite = np.isfinite(values)
    bounds = of_method(steps, method, window, align, edges, unit)
    blocks = method == "block"
    spread = band == "std"
    center = None  # of the std band: the mean, except for the median
    if method == "median":
        lo, hi = bounds.chunk(0, bounds.count)
        count = window_count(finite, lo, hi)
        value = center = window_median(values, finite, lo, hi, count)
    extreme = False
    if method != "median" or spread:  # the median uses the mean for its band only
        extreme = any_extreme(values, finite, spread)
        moments = block_moments if blocks else window_moments
        # Huge values (set to 0 here) are left to the exact path (moments.extreme_windows): windows without them never overflow.
        usable = without_huge(values) if extreme else values
        mean, lower, upper = moments(usable, finite, bounds, spread, center)
        if method != "median":
            value = mean
    if band == "minmax":
        lower, upper = window_extremes(values, finite, bounds, blocks)
    elif band == "none":
        lower = upper = np.broadcast_to(np.nan, value.shape)  # read-only
    if extreme:
        at, exact_mean, exact_std = extreme_windows(values, finite, bounds, spread)
        if method != "median":
            value[at] = exact_mean
        if spread:
            set_band(lower, upper, at, value[at], exact_std)
    return Averaged(bounds.index, bounds.steps(steps), value, lower, upper)


def band_at(
    steps: npt.ArrayLike,
    values: npt.ArrayLike,
    at: npt.ArrayLike,
    center: npt.ArrayLike,
    method: str = "sma",
    window: int = 50,
    weight: float = 0.6,
    align: str = "trailing",
    edges: str = "valid",
    unit: str = "points",
    band: str = "std",
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of ``moving_average(steps, values, ..., band=band)`` at
    its output positions ``at`` only, with the std band centred on
    ``center`` (the averages at ``at``): for a chart that shows a few
    thousand of a long series' averages. The windows' own points are
    gathered (O(len(at) * window)) and taken as contiguous blocks: mean,
    std and extremes as ``block_moments`` and ``window_extremes`` give
    them (the std equals moving_average's up to rounding, the extremes
    exactly). Not for method="ema" (its band is a recurrence) nor
    band="none"; ``weight`` (of the EMA) is accepted and ignored."""
    steps, values = validation.series(steps, values)
    window = _check_options(method, window, weight, align, edges, unit, band)
    if method == "ema" or band == "none":
        raise ValueError("band_at needs band std or minmax and a windowed method")
    lo, hi = of_method(steps, method, window, align, edges, unit).at(np.asarray(at, dtype=np.int64))
    length = hi - lo
    starts = np.zeros(len(at), dtype=np.int64)
    np.cumsum(length[:-1], out=starts[1:])
    gathered = np.repeat(lo - starts, length) + np.arange(int(length.sum()), dtype=np.int64)
    y = values[gathered]
    finite = np.isfinite(y)
    windows = IndexBounds(np.arange(len(at), dtype=np.int64), starts, starts + length)
    if band == "minmax":
        return window_extremes(y, finite, windows, blocks=True)
    center = np.asarray(center, dtype=np.float64)
    extreme = any_extreme(y, finite, True)
    usable = without_huge(y) if extreme else y
    lower, upper = block_moments(usable, finite, windows, True, center)[1:]
    if extreme:
        picked, _, exact_std = extreme_windows(y, finite, windows, True)
        set_band(lower, upper, picked, center[picked], exact_std)
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
