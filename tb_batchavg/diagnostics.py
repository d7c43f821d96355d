"""Anomaly diagnostics of a training run from its per-batch loss, gradient
norm and learning rate: pure numpy.

Each series is ``(steps, values)``: steps int64 strictly increasing, values
float64 that may hold NaN and +-Inf. "Finite" excludes NaN and +-Inf;
non-finite values are reported (``nonfinite``) and left out of every
statistic. Windows count points, not steps. Below, ``w = window`` and
``h = ceil(w / 2)``; every default is in ``DEFAULTS``.

Robust reference of a series x (the loss, or ``log(max(g, tiny))`` of the
gradient norm g, so a zero norm counts as the smallest positive float):

- ``m_i``: median of the finite x among the w points before i (i-w..i-1, so a
  spike does not inflate its own reference); undefined with fewer than h.
- ``r_i = |x_i - m_i|``: residual from that trailing median.
- ``MAD_i``: median of the finite residuals in the two blocks of h points
  before the block holding i (blocks of h points counted from the first
  point: the scale is re-estimated every h points from the 2h points before,
  which costs O(n log w)); undefined with fewer than h residuals.
- ``s_i = max(1.4826 * MAD_i, scale_floor * max(|m_i|, S))`` with
  ``S = 1.4826 * median(|x - median(x)|)`` over the whole run: the floor keeps
  a flat stretch (MAD 0) from flagging every tiny wiggle.
- ``z_i = (x_i - c_i) / s_i``, "robust SDs" above the centre c (1.4826 * MAD is
  the SD of Gaussian noise): ``c = m`` for the loss; for log g,
  ``c = max(m, log E)`` with E the earlier median level below, so a return
  to the usual level after a vanishing stretch is not an explosion.
- ``L_i`` (level): median of the finite x over the w points centred on i
  (i - floor((w-1)/2) .. i + ceil((w-1)/2)), the window truncated at the first
  point and shifted inward to the last w points at the end; undefined with
  fewer than h finite. It is the trailing median shifted, at no extra cost.
- ``E_i`` (earlier median level, gradient norm only): the median of the
  finite level ``G = exp(L(log g))`` sampled every ``B = max(h, ceil(n / 4096))``
  points (at B-1, 2B-1, ...), over the samples taken at or before i.

Hampel spike test (one-sided): point i is flagged when ``z_i > K``, K the
threshold calibrated to the run's own noise tails. Per-batch noise is often
heavy-tailed (Student-t noise with 3 degrees of freedom exceeds 6 robust SDs
at 0.3% of points), so a fixed k would flag hundreds of ordinary points per
100,000. With ``q_a`` the upper-tail quantile of the tested z at probability a
(``np.quantile(z, 1 - a)``) and the power-law tail extrapolation

    T(a, b) = q_b * (q_b / q_a) ** (log(b / tail_rate) / log(a / b)),

K is found per segment: the tested z, in step order, are cut into ``S = min(16, N // 1000)``
consecutive segments of equal size (N tested points; ``K = k`` when N <
1000, too few for a tail). In each segment, with ``p = max(0.001, 10 / M)``
and q taken over its M points with z <= 2K, ``K_seg`` is the smallest fixed
point of ``K = max(k, T(10p, p))``, iterated up from k (it stops when T no
longer raises K; k when ``q_a <= 0``). The run's K is the lower median of the
S values. T estimates the z that noise exceeds at a rate of ``tail_rate`` per
point: it is conservative for light tails (K is 6 to 7 for Gaussian noise,
so k governs) and about 45 for Student-t(3) noise. Real anomalies must not
set the threshold: leaving out the z beyond 2K (the "critical" spikes, see
below) handles scattered spikes, and the median over segments handles a
stretch of trouble, such as a blow-up at the end of the run.

Flagged points separated by at most ``merge_gap`` unflagged points form one
event from its first to its last flagged point; its peak is the flagged
point with the highest value; severity is "critical" when its largest z
exceeds 2 K (more than twice the threshold), else "warning".

A sustained condition is a run of points where it holds (gaps of up to
``merge_gap`` points bridged) spanning at least ``sustain`` points.

Event kinds (``value`` in brackets):

- ``nonfinite`` (critical): one per run of consecutive non-finite points, per
  role [the first non-finite value, NaN or +-Inf].
- ``loss_spike``: the Hampel test on the loss with ``spike_k`` [peak loss].
- ``grad_explosion``: the Hampel test on log g with ``explode_k`` [peak
  gradient norm]; and (critical) G above ``rise_factor * E`` sustained
  [highest G].
- ``vanishing_gradient`` (warning): G below ``vanish_fraction * E`` sustained
  [lowest G].
- ``divergence`` (critical): the loss level A = L(loss) above
  ``divergence_factor`` times its running minimum (tested where that minimum
  is > 0) sustained [highest A]; or the loss non-finite for ``sustain``
  consecutive points or up to the last point [its first value].
- ``lr_change`` (info), on the finite learning rates y with changes
  ``d_j = y_j - y_(j-1)``: jumps, where ``|d_j| >= lr_change *
  max(|y_(j-1)|, |y_j|)`` and on each side of j one of the two neighbouring
  changes is below ``|d_j| / 3`` (a missing neighbour counts as 0), so a step
  decay jumps while a smooth schedule (warm-up ramp, cosine, exponential)
  never does; consecutive jump points form one event [LR after]. And
  warm-up ends: in each stretch of non-negative, non-jump changes, the first
  point reaching the stretch's maximum, when the stretch rose by at least
  ``lr_change`` of that maximum and the log does not end at that point
  [peak LR].

status: "no_data" without any series (nothing to check); "diverged" with a divergence event or any non-finite loss; else
"warning" with any warning or critical event; else "ok" (info events do not
count).

precedence (do gradient-norm events lead loss spikes?): for each loss spike,
the grad_explosion event with the latest start in [start - precede_window,
start] (steps); ``matched`` of ``of`` loss spikes, and the median lead
(loss-spike start minus grad-event start, in steps). ``lag`` is the lag with
the largest |r| of the lagged Pearson (``correlation.lagged_pearson``, lags
-max_lag..max_lag in joined points) of the first differences of the loss
(x) and of log(grad norm) (y), both joined on step: lag > 0 means the
gradient norm leads the loss; ``lag_r`` is its r, ``lag_n`` its number of
pairs, ``pairs`` the differenced pairs. Only lags leaving at least
``PRECEDENCE_MIN_PAIRS`` (30) pairs count, so a short run has no best lag.
None without both series. A loss logged as a running mean since the epoch's
start (``loss_resets``) raises no loss spike in the ``window`` points after
each epoch start.

Complexity: two rolling medians (``windows.moving_average``, O(n log n)),
block sorts O(n log w), the lagged Pearson by FFT O(n log n), the rest O(n);
Python loops run over events only.
"""

import math
import operator

import numpy as np

from tb_batchavg import correlation, windows, workers

DEFAULTS = {
    "window": 100,             # points in the rolling median windows
    "spike_k": 6.0,            # minimum Hampel threshold for the loss, robust SDs
    "explode_k": 6.0,          # minimum Hampel threshold for log(grad norm)
    "tail_rate": 1e-5,         # false-alarm rate per point the threshold aims at
    "scale_floor": 1e-3,       # floor of the robust SD, relative to the level
    "merge_gap": 2,            # unflagged points bridged inside one event
    "rise_factor": 10.0,       # grad level / its earlier median level: explosion
    "vanish_fraction": 0.01,   # grad level / its earlier median level: vanishing
    "divergence_factor": 2.0,  # loss level / its running minimum for divergence
    "sustain": 50,             # points a level condition must span
    "lr_change": 0.1,          # relative learning-rate change that counts
    "precede_window": 100,     # steps a grad event may lead a loss spike by
    "max_lag": 50,             # lags of the lagged Pearson, in joined points
}

ROLES = ("loss", "grad_norm", "learning_rate")
MAD_TO_SD = 1.4826
# Tail levels of the threshold calibration (see the module docstring).
_TAIL_LEVEL = 1e-3
_TAIL_POINTS = 10
_SEGMENTS = 16
_SEGMENT_POINTS = 1000
# A learning-rate change is a jump when it exceeds this many times its neighbours'.
_JUMP_CONTRAST = 3.0
# Samples of the gradient-norm level behind its earlier median.
_EARLIER_SAMPLES = 4096
_TINY = np.finfo(np.float64).tiny

_INTEGER = {"window": 3, "merge_gap": 0, "sustain": 1, "precede_window": 0, "max_lag": 0}
_POSITIVE = ("spike_k", "explode_k")
_ABOVE_ONE = ("rise_factor", "divergence_factor")
_FRACTION = ("tail_rate", "scale_floor", "vanish_fraction", "lr_change")


def nonfinite(steps, values):
    """Count, first step and steps of the non-finite values of one series."""
    steps, values = _series("series", (steps, values))
    bad = steps[~np.isfinite(values)]
    return {"count": int(len(bad)),
            "first_step": int(bad[0]) if len(bad) else None,
            "steps": bad.tolist()}


def diagnose(loss=None, grad_norm=None, learning_rate=None, *, loss_resets=None, **params):
    """Events, status, non-finite summaries and precedence of one run (see the
    module docstring). Each series is (steps, values) or None when the run
    lacks that role. `loss_resets`: the steps where a loss logged as a running
    mean since the epoch's start starts again (metadata.running_mean); no
    loss spike is raised from the `window` points after each. Raises ValueError
    naming an unknown or invalid parameter or a malformed series."""
    params = _parameters(params)
    given = {"loss": loss, "grad_norm": grad_norm, "learning_rate": learning_rate}
    series = {role: _series(role, given[role]) for role in ROLES if given[role] is not None}
    events = []
    for role, (steps, values) in series.items():
        events += _nonfinite_events(role, steps, values)

    def of_loss():  # (spikes, divergence)
        if "loss" not in series:
            return [], []
        steps, values = series["loss"]
        reference = _Reference(values, params)
        spikes = _spike_events("loss_spike", steps, values, reference, params["spike_k"], params)
        return (_outside_resets(spikes, steps, loss_resets, params["window"]),
                _divergence_events(steps, values, reference.level, params))

    def of_role(role, analyse):
        return analyse(*series[role], params) if role in series else []

    # The roles' analyses are independent: shared among threads (workers.call).
    (loss_spikes, divergence), grad_events, rate_events = workers.call(
        of_loss, lambda: of_role("grad_norm", _gradient_events),
        lambda: of_role("learning_rate", _learning_rate_events))
    events += loss_spikes + divergence + grad_events + rate_events
    events.sort(key=lambda event: (event["start"], event["kind"], event["end"]))
    summaries = {role: nonfinite(*series[role]) if role in series else None for role in ROLES}
    return {"status": _status(events, summaries["loss"]) if series else "no_data",
            "events": events,
            "nonfinite": summaries,
            "params": params,
            "precedence": _precedence(loss_spikes, grad_events, series, params)}


# Parameters and inputs -------------------------------------------------------

def _parameters(params):
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; known: {', '.join(DEFAULTS)}")
    merged = {**DEFAULTS, **params}
    for name, minimum in _INTEGER.items():
        merged[name] = _integer(name, merged[name], minimum)
    for name in _POSITIVE + _ABOVE_ONE + _FRACTION:
        value = _number(name, merged[name])
        if name in _POSITIVE and not value > 0:
            raise ValueError(f"{name} must be > 0; got {value!r}")
        if name in _ABOVE_ONE and not value > 1:
            raise ValueError(f"{name} must be > 1; got {value!r}")
        if name in _FRACTION and not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1); got {value!r}")
        merged[name] = value
    return merged


def _integer(name, value, minimum):
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}") from None
    if isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _number(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return value


def _series(role, pair):
    try:
        steps, values = pair
    except (TypeError, ValueError):
        raise ValueError(f"{role} must be a (steps, values) pair") from None
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if steps.ndim != 1 or values.shape != steps.shape:
        raise ValueError(f"{role}: steps and values must be 1-D arrays of the same length, "
                         f"got shapes {steps.shape} and {values.shape}")
    if np.any(steps[1:] <= steps[:-1]):
        raise ValueError(f"{role}: steps must be strictly increasing")
    return steps, values


def _log_norm(values):
    """log of the gradient norm, values <= 0 clipped to the smallest positive float."""
    with np.errstate(invalid="ignore"):
        return np.log(np.maximum(values, _TINY))


# Robust reference and spike test ---------------------------------------------

class _Reference:
    """Trailing median m, robust SD s and centred level L of a series (module
    docstring), NaN where undefined; z-scores against a centre that is m
    unless raised with ``raise_centre``."""

    def __init__(self, values, params):
        window = params["window"]
        n = len(values)
        half = (window + 1) // 2
        finite = np.isfinite(values)
        trailing = windows.moving_average(np.arange(n), values, method="median", window=window,
                                          align="trailing", edges="partial", unit="points").value
        finite_before = np.concatenate(([0], np.cumsum(finite)))
        index = np.arange(n)
        # finite points in the trailing window ending at each point
        count = finite_before[index + 1] - finite_before[np.maximum(index + 1 - window, 0)]
        trailing[count < half] = np.nan
        self.values = values
        self.median = np.concatenate(([np.nan], trailing[:-1]))[:n]
        self.level = trailing[np.minimum(index + (window - 1 - (window - 1) // 2), n - 1)]
        with np.errstate(invalid="ignore"):
            residual = np.abs(values - self.median)
        overall = _finite_median(np.abs(values - _finite_median(values)))
        floor = params["scale_floor"] * np.maximum(np.abs(self.median), MAD_TO_SD * overall)
        mad = _block_mad(residual, half)
        self.scale = np.fmax(MAD_TO_SD * mad, floor)
        self.scale[self.scale == 0] = _TINY
        self.scale[np.isnan(mad)] = np.nan  # untested: no robust SD yet
        self.raise_centre(self.median)

    def raise_centre(self, floor):
        """Sets the centre to max(m, floor) where m is defined, and the z-scores."""
        with np.errstate(invalid="ignore"):
            self.centre = np.where(self.median < floor, floor, self.median)
            self.z = (self.values - self.centre) / self.scale
        self.tested = np.isfinite(self.z)

    def threshold(self, k, tail_rate):
        """The calibrated threshold K: the lower median over consecutive
        segments of the tested z of each segment's trimmed tail estimate."""
        z = self.z[self.tested]
        if len(z) < _SEGMENT_POINTS:
            return k
        segments = min(_SEGMENTS, len(z) // _SEGMENT_POINTS)
        tails = sorted(_trimmed_tail(np.sort(part), k, tail_rate)
                       for part in np.array_split(z, segments))
        return tails[(segments - 1) // 2]


def _trimmed_tail(z, k, tail_rate):
    """Smallest fixed point of K = max(k, T(10p, p) over the sorted z <= 2K),
    iterated up from k; k when q_a <= 0."""
    threshold, kept = k, 0
    while True:
        count = int(np.searchsorted(z, 2 * threshold, side="right"))
        if count == kept:
            return threshold
        kept = count
        level = max(_TAIL_LEVEL, _TAIL_POINTS / count)
        tail = _tail_extrapolation(z[:count], 10 * level, level, tail_rate)
        if tail is None or tail <= threshold:
            return threshold
        threshold = tail


def _tail_extrapolation(z, a, b, tail_rate):
    """T(a, b) of the module docstring over sorted z; None when q_a <= 0."""
    q_a, q_b = (_sorted_quantile(z, 1 - level) for level in (a, b))
    if q_a <= 0:
        return None
    return float(q_b * (q_b / q_a) ** (math.log(b / tail_rate) / math.log(a / b)))


def _sorted_quantile(z, probability):
    """np.quantile(z, probability) (linear interpolation) of sorted z."""
    position = probability * (len(z) - 1)
    below = int(position)
    above = min(below + 1, len(z) - 1)
    return z[below] + (position - below) * (z[above] - z[below])


def _block_mad(residual, half):
    """Per point i: median of the finite residuals in the two blocks of `half`
    points before i's block; NaN with fewer than `half` of them."""
    n = len(residual)
    if half >= n:  # one block: nothing before it (and no (1, 2 * half) rows for a huge window)
        return np.full(n, np.nan)
    blocks = -(-n // half)
    padded = np.full(blocks * half, np.nan)
    padded[:n] = residual
    padded = padded.reshape(blocks, half)
    rows = np.full((blocks, 2 * half), np.nan)
    rows[2:, :half] = padded[:-2]
    rows[1:, half:] = padded[:-1]
    median, count = _finite_row_medians(rows)
    median[count < half] = np.nan
    return np.repeat(median, half)[:n]


def _finite_row_medians(rows):
    """Median of the finite values of each row (NaN for none) and their count."""
    rows = np.where(np.isfinite(rows), rows, np.nan)
    rows.sort(axis=1)  # NaN sorts last
    count = np.isfinite(rows).sum(axis=1)
    lower = np.take_along_axis(rows, np.maximum((count - 1) // 2, 0)[:, None], axis=1)[:, 0]
    upper = np.take_along_axis(rows, np.maximum(count // 2, 0)[:, None], axis=1)[:, 0]
    return np.where(count > 0, (lower + upper) / 2, np.nan), count


def _finite_median(values):
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else float("nan")


def _spike_events(kind, steps, values, reference, k, params):
    """Hampel events: tested points with z above the calibrated threshold."""
    threshold = reference.threshold(k, params["tail_rate"])
    flagged = reference.tested & (reference.z > threshold)
    events = []
    for first, last in zip(*_runs(flagged, params["merge_gap"])):
        span = slice(first, last + 1)
        peak = first + int(np.argmax(np.where(flagged[span], values[span], -np.inf)))
        largest = float(np.max(np.where(flagged[span], reference.z[span], -np.inf)))
        points = int(np.count_nonzero(flagged[span]))
        z, centre = float(reference.z[peak]), float(reference.centre[peak])
        if kind == "loss_spike":
            value = float(values[peak])
            what = (f"loss jumped to {value:.4g} at step {steps[peak]} ({z:.1f} robust SDs above "
                    f"the rolling median {centre:.4g}; threshold {threshold:.1f})")
        else:
            value = float(np.exp(values[peak]))
            what = (f"gradient norm jumped to {value:.4g} at step {steps[peak]}, "
                    f"{math.exp(values[peak] - centre):.3g}x its usual level "
                    f"{math.exp(centre):.4g} "
                    f"({z:.1f} robust SDs of log gradient norm above it; "
                    f"threshold {threshold:.1f})")
        if points > 1:
            what += f"; {points} points flagged from step {steps[first]} to {steps[last]}"
        events.append(_event(kind, steps, first, last, peak, value,
                             "critical" if largest > 2 * threshold else "warning", what))
    return events


# Sustained conditions ----------------------------------------------------------

def _sustained(condition, params):
    """(first, last) index pairs of the runs of `condition` spanning >= sustain points."""
    first, last = _runs(condition, params["merge_gap"])
    long_enough = last - first + 1 >= params["sustain"]
    return zip(first[long_enough], last[long_enough])


def _gradient_events(steps, values, params):
    """grad_explosion (spikes of log g above the earlier median level, and
    sustained rises) and vanishing_gradient events."""
    log_norm = _log_norm(values)
    reference = _Reference(log_norm, params)
    level = np.exp(reference.level)
    earlier = _earlier_median(level, (params["window"] + 1) // 2)
    with np.errstate(divide="ignore"):
        reference.raise_centre(np.log(earlier))
    with np.errstate(invalid="ignore"):
        rising = level > params["rise_factor"] * earlier
        vanishing = level < params["vanish_fraction"] * earlier
    events = _spike_events("grad_explosion", steps, log_norm, reference, params["explode_k"],
                           params)
    for kind, condition, factor, extreme in (
            ("grad_explosion", rising, params["rise_factor"], np.nanargmax),
            ("vanishing_gradient", vanishing, params["vanish_fraction"], np.nanargmin)):
        for first, last in _sustained(condition, params):
            peak = first + int(extreme(level[first:last + 1]))
            what = (f"gradient norm's rolling median {'rose' if factor > 1 else 'fell'} to "
                    f"{level[peak]:.4g} at step {steps[peak]}, {level[peak] / earlier[peak]:.3g}x "
                    f"its earlier median level {earlier[peak]:.4g}; "
                    f"{'above' if factor > 1 else 'below'} {factor:g}x from step {steps[first]} "
                    f"to {steps[last]}")
            events.append(_event(kind, steps, first, last, peak, level[peak],
                                 "critical" if factor > 1 else "warning", what))
    return events


def _earlier_median(level, half):
    """E_i: median of the finite level samples taken at or before i, one sample
    every B = max(half, ceil(n / _EARLIER_SAMPLES)) points (at B-1, 2B-1, ...);
    NaN before the first sample."""
    n = len(level)
    stride = max(half, -(-n // _EARLIER_SAMPLES))
    samples = level[stride - 1::stride]
    expanding = windows.moving_average(np.arange(len(samples)), samples, method="median",
                                       window=max(len(samples), 1), align="trailing",
                                       edges="partial", unit="points").value
    taken = (np.arange(n) + 1) // stride
    return np.concatenate(([np.nan], expanding))[taken]


def _divergence_events(steps, values, level, params):
    best = np.fmin.accumulate(level)
    index = np.arange(len(level))
    with np.errstate(invalid="ignore"):
        rising = (best > 0) & (level > params["divergence_factor"] * best)
    events = []
    for first, last in _sustained(rising, params):
        peak = first + int(np.nanargmax(level[first:last + 1]))
        reached = int(np.flatnonzero((level == best[peak]) & (index <= peak))[0])
        what = (f"averaged loss (rolling median) rose to {level[peak]:.4g} at step {steps[peak]}, "
                f"{level[peak] / best[peak]:.3g}x its best {best[peak]:.4g} (step "
                f"{steps[reached]}); above {params['divergence_factor']:g}x from step "
                f"{steps[first]} to {steps[last]}")
        events.append(_event("divergence", steps, first, last, peak, level[peak],
                             "critical", what))
    first, last = _runs(~np.isfinite(values), 0)
    lasting = (last - first + 1 >= params["sustain"]) | (last == len(values) - 1)
    for first, last in zip(first[lasting], last[lasting]):
        until = ("the end of the log" if last == len(values) - 1
                 else f"step {steps[last]}")
        what = (f"loss became {_name(values[first])} at step {steps[first]} and stayed "
                f"non-finite to {until} ({last - first + 1} points)")
        events.append(_event("divergence", steps, first, last, first, values[first],
                             "critical", what))
    return events


# Non-finite values and the learning rate ------------------------------------------

def _nonfinite_events(role, steps, values):
    events = []
    for first, last in zip(*_runs(~np.isfinite(values), 0)):
        span = values[first:last + 1]
        kinds = ", ".join(f"{np.count_nonzero(mask)} {name}" for name, mask in
                          (("NaN", np.isnan(span)), ("+Inf", span == np.inf),
                           ("-Inf", span == -np.inf)) if mask.any())
        where = (f"at step {steps[first]}" if first == last else
                 f"at {last - first + 1} consecutive points, steps {steps[first]} to {steps[last]}")
        what = f"{role.replace('_', ' ')} was non-finite ({kinds}) {where}"
        events.append(_event("nonfinite", steps, first, last, first, values[first],
                             "critical", what))
    return events


def _learning_rate_events(steps, values, params):
    finite = np.isfinite(values)
    steps, rate = steps[finite], values[finite]
    if len(rate) < 2:
        return []
    change = np.diff(rate)  # change[j] arrives at point j + 1
    size = np.abs(change)
    scale = np.maximum(np.abs(rate[:-1]), np.abs(rate[1:]))
    relative = np.divide(size, scale, out=np.zeros_like(size), where=scale > 0)
    padded = np.pad(size, 2)  # a missing neighbour counts as no change
    smaller_before = np.minimum(padded[:-4], padded[1:-3])
    smaller_after = np.minimum(padded[3:-1], padded[4:])
    jump = ((relative >= params["lr_change"])
            & (size > _JUMP_CONTRAST * np.maximum(smaller_before, smaller_after)))
    events = []
    for first, last in zip(*_runs(jump, 0)):
        before, after = rate[first], rate[last + 1]
        direction = "dropped" if after < before else "rose"
        when = (f"at step {steps[last + 1]}" if first == last else
                f"between steps {steps[first + 1]} and {steps[last + 1]}")
        what = (f"learning rate {direction} from {before:.4g} to {after:.4g} "
                f"({after / before if before else math.inf:.3g}x) {when}")
        events.append(_event("lr_change", steps, first + 1, last + 1, last + 1, after,
                             "info", what))
    rising_stretch = (change >= 0) & ~jump
    masked = np.where(rising_stretch, rate[1:], -np.inf)
    for first, last in zip(*_runs(rising_stretch, 0)):
        peak = first + 1 + int(np.argmax(masked[first:last + 1]))
        base, top = rate[first], rate[peak]
        if peak == len(rate) - 1 or not (top > 0 and top - base >= params["lr_change"] * top):
            continue
        what = (f"learning-rate warm-up ended at step {steps[peak]}: it rose from {base:.4g} "
                f"(step {steps[first]}) to {top:.4g}")
        events.append(_event("lr_change", steps, peak, peak, peak, top, "info", what))
    return events


# Summary -------------------------------------------------------------------

def _status(events, loss_nonfinite):
    if (loss_nonfinite and loss_nonfinite["count"]) or any(
            event["kind"] == "divergence" for event in events):
        return "diverged"
    if any(event["severity"] != "info" for event in events):
        return "warning"
    return "ok"


def _outside_resets(spikes, steps, resets, points):
    """The spikes that do not start within `points` points from a reset step (a running mean's
    epoch start, where it restarts from one batch's value)."""
    if resets is None or not len(resets):
        return spikes
    reset_index = np.searchsorted(steps, np.asarray(resets, dtype=np.int64), side="left")
    kept = []
    for spike in spikes:
        at = int(np.searchsorted(steps, spike["start"], side="left"))
        latest = reset_index[np.searchsorted(reset_index, at, side="right") - 1] if at >= reset_index[0] else None
        if latest is None or at - latest >= points:
            kept.append(spike)
    return kept


# The best lag of the precedence needs at least this many differenced pairs at that lag (the
# standard error of r is about 1/sqrt(n - 3): 0.19 at 30 pairs); a shorter run has no best lag.
PRECEDENCE_MIN_PAIRS = 30


def _precedence(loss_spikes, grad_events, series, params):
    grad_starts = np.sort(np.array([event["start"] for event in grad_events], dtype=np.int64))
    leads = []
    for spike in loss_spikes:
        before = np.searchsorted(grad_starts, spike["start"], side="right")
        if before and spike["start"] - grad_starts[before - 1] <= params["precede_window"]:
            leads.append(int(spike["start"] - grad_starts[before - 1]))
    lag = lag_r = lag_n = None
    pairs = 0
    if "loss" in series and "grad_norm" in series:
        grad_steps, grad_values = series["grad_norm"]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_norm = np.log(grad_values)
        _, loss_joined, grad_joined = correlation.join(*series["loss"], grad_steps, log_norm)
        lags, r = correlation.lagged_pearson(np.diff(loss_joined), np.diff(grad_joined),
                                             params["max_lag"])
        pairs = max(0, len(loss_joined) - 1)
        enough = pairs - np.abs(lags) >= PRECEDENCE_MIN_PAIRS
        lag = correlation.best_lag(lags[enough], r[enough])
        if lag is not None:
            lag_r = float(r[lags == lag][0])
            lag_n = int(pairs - abs(lag))
    return {"lag": lag, "lag_r": lag_r, "lag_n": lag_n, "pairs": int(pairs),
            "min_pairs": PRECEDENCE_MIN_PAIRS, "matched": len(leads), "of": len(loss_spikes),
            "median_lead_steps": float(np.median(leads)) if leads else None}


# Helpers -------------------------------------------------------------------

def _runs(mask, gap):
    """First and last indices of the runs of True in mask, bridging up to `gap` False."""
    index = np.flatnonzero(mask)
    if len(index) == 0:
        return index, index
    breaks = np.flatnonzero(np.diff(index) > gap + 1)
    return index[np.concatenate(([0], breaks + 1))], index[np.append(breaks, len(index) - 1)]


def _event(kind, steps, first, last, peak, value, severity, detail):
    return {"kind": kind, "start": int(steps[first]), "end": int(steps[last]),
            "peak_step": int(steps[peak]), "value": float(value), "severity": severity,
            "detail": detail}


def _name(value):
    return "NaN" if np.isnan(value) else ("+Inf" if value > 0 else "-Inf")
