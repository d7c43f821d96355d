"""Anomaly diagnostics of a training run from its per-batch loss, gradient
norm and learning rate: pure numpy.

Each series is ``(steps, values)``: steps int64 strictly increasing, values
float64 that may hold NaN and +-Inf. "Finite" excludes NaN and +-Inf;
non-finite values are reported (``nonfinite``) and left out of every
statistic. Windows count points, not steps. Below, ``w = window`` and
``h = ceil(w / 2)``; every default is in ``DEFAULTS``. The detectors were
calibrated on a corpus of real Keras runs labelled by eye
(tests/data/diagnostics_corpus, docs/diagnostics-corpus.md; scores in
BENCHMARKS.md, "Diagnostics against labelled real runs").

The loss floor. With L0 the median of the first 3 finite losses (the untrained
model's loss) and every finite loss >= 0, the floor is
``F = loss_floor * L0`` (1e-3 of it): losses below F count as F, so a loss
near or at exactly zero has a meaningful reference, and wobbles far below the
initial loss (1e-9 against 1e-12) are not events. A loss taking negative
values has no floor (and no level-based divergence, see below).

Robust reference of a series x (the loss clipped at F, or
``log(max(g, tiny))`` of the gradient norm g):

- ``m_i``: median of the finite x among the w points before i (i-w..i-1, so a
  spike does not inflate its own reference); undefined with fewer than h.
- ``r_i = x_i - m_i``: signed residual from that trailing median.
- ``MAD_i``: the smaller of the two one-sided MADs, median(r >= 0) and
  median(-r for r <= 0), over the finite residuals in the two blocks of h
  points before the block holding i (each side from at least h/4 values):
  a run's own dips inflate only the lower side and its spikes only the upper
  side, so neither inflates the scale (frequent spikes or deep dips used to
  hide 10-200x gradient spikes). One sort per block: O(n log w).
- ``s_i = max(1.4826 * MAD_i, scale_floor * max(|m_i|, S), A)`` with
  ``S = 1.4826 * median(|x - median(x)|)`` over the run, and an absolute
  floor A: 10 F for the loss (a loss spike must rise a few percent of the
  initial loss, enough to see on the run's plot), 0.01 for log g.
- ``z_i = r_i / s_i``, robust SDs above the trailing median.
- ``L_i`` (level): median of the finite x over the w points centred on i,
  truncated at the first point and shifted inward at the end; undefined with
  fewer than h finite.
- ``E_i`` (earlier median level, gradient norm only): the median of the
  finite level ``G = exp(L(log g))`` sampled every ``B = max(h, ceil(n /
  4096))`` points, over the samples taken at or before i.

Spike test (one-sided). K is the threshold calibrated to the run's own noise
tails (below). Point i is flagged when ``z_i > K``, or when it jumps
``jump_factor`` (10) times its trailing median or more (``x_i - m_i >=
log 10`` for log g; ``x_i >= 10 m_i`` for the clipped loss) with
``z_i > 3``: a 10x jump is an event however often it happens (the frequency
is reported, see ``frequency``); the z > 3 keeps out phases where the series
itself swings by decades. A gradient-norm point is flagged only if it is at
least 3x its trailing median (blips of 1.4-2.5x in a quiet run are not
explosions).

K: with ``q_a`` the upper-tail quantile of the tested z at probability a and
``T(a, b) = q_b * (q_b / q_a) ** (log(b / tail_rate) / log(a / b))`` (a
power-law tail extrapolation), the tested z, in step order, are cut into
``S = min(16, N // 1000)`` segments (``K = k`` when N < 1000); in each, with
``p = max(0.001, 10 / M)`` over its M points with z <= 2K, ``K_seg`` is the
smallest fixed point of ``K = max(k, T(10p, p))`` iterated up from k; K is the
lower median of the S values; for the loss, capped at 50 (or k if larger:
the gradient norm's frequent spikes are caught by their 10x jumps). K is 6-7 for
Gaussian noise (k governs) and about 45 for Student-t(3). The z beyond 2K, the
median over segments and the cap keep real anomalies from setting it (spikes at
0.3% of points used to lift K to thousands).

Episodes (one event each, with start, end and peak):

- Flagged points separated by at most ``merge_gap`` unflagged points form an
  event (for the loss, at most ``max(merge_gap, h)``: a burst of loss spikes is
  one episode); its peak is its highest value; severity "critical" when its largest
  z exceeds 2K or its peak is ``jump_factor`` times the trailing median at its
  start, else "warning".
- A loss event is an excursion when at least a tenth of the w points from
  its start exceed ``b + c s`` (b, s: m and s at its start, frozen;
  ``c = max(3, K / 2)``, so that heavy-tailed noise does not carry it on): it
  then lasts while the loss keeps exceeding ``b + c s`` at least once every
  2 w points. A slingshot (a chaotic phase of hundreds to thousands of steps
  after a loss of about 0) is one event, not 2-9 fragments.
- A gradient event whose level L rises to 10x the base b within h points
  lasts while L stays there; spike events and the sustained rises below are
  merged where they overlap. When it starts at most ``precede_window`` steps
  before a loss episode (or within it), it ends with that episode (or at its
  own last flagged point, if later): one episode seen in both series.

Sustained conditions: a run of points where a condition holds (gaps of up to
``merge_gap`` bridged) spanning at least ``sustain`` points.

Event kinds (``value`` in brackets):

- ``nonfinite`` (critical): one per run of consecutive non-finite points, per
  role [the first non-finite value, NaN or +-Inf].
- ``loss_spike``: the loss episodes above [peak loss].
- ``grad_explosion``: the gradient episodes above [peak gradient norm]; and
  (critical) G above ``rise_factor * E`` sustained [highest G].
- ``vanishing_gradient`` (warning): G below ``vanish_fraction * E`` sustained
  [lowest G], only while the loss has not converged: the median of the loss
  level over the stretch is at least 5% of L0 (or there is no loss). A
  gradient norm decaying by decades as the loss goes to ~0 is convergence.
  A gradient explosion starting within w points of the end of a vanishing
  stretch and not above ``rise_factor * E`` is the recovery, and dropped.
- ``divergence`` (critical): the loss rises and does not come back. With
  ``A = log L`` of the clipped loss sampled every h points, ``R`` the median
  of the 20 samples before (1000 points at the default window), the best
  long-run level ``B = min R so far``, and ``sigma = 1.4826 * median |A - R|``
  over the samples so far (the loss's own low-frequency variability), the
  first point i from which A stays above ``B + max(log divergence_factor,
  5 sigma)`` up to the end of the log, if that is at least ``sustain`` points
  [highest level]; a loss episode reaching into it is part of it (its start
  moves back to that episode's start; spikes within it are not reported
  apart). Or the
  loss non-finite for ``sustain`` points or up to the last point [its first
  value]. A rise that started within w points after a learning-rate rise, ends
  within 10 w points at the end of the log and stays below L0 is that rise's
  expected bump (a warm restart cut off by the end of the log), not a
  divergence.
- ``slingshot_precursor`` (info): before a loss episode that starts from a
  loss level at most 10 F (about zero), the quiet stretch where the loss
  level stayed at most 10 F (since the previous loss episode), if at least
  ``sustain`` points long and the gradient level fell at least
  ``jump_factor``-fold across it [the gradient level at its end]. The quiet
  phase before an epsilon-driven slingshot (Adam with a tiny epsilon, after
  the loss reached about 0); found once the slingshot happened, not before.
- ``lr_change`` (info), on the finite learning rates y with changes
  ``d_j = y_j - y_(j-1)``: jumps, where ``|d_j| >= lr_change *
  max(|y_(j-1)|, |y_j|)`` and on each side of j one of the two neighbouring
  changes is below ``|d_j| / 3`` (a missing neighbour counts as 0), so a step
  decay jumps while a smooth schedule (warm-up ramp, cosine, exponential)
  never does; consecutive jump points form one event [LR after]. And
  warm-up ends: in each stretch of non-negative, non-jump changes, the first
  point reaching the stretch's maximum, when the stretch rose by at least
  ``lr_change`` of that maximum and the log does not end at that point
  [peak LR]. Changes fewer than ``LR_MERGE_POINTS`` (100) points apart (a noisy learning
  rate) are then one event, from the first one's start to the last one's
  end [the last one's value]; ``count`` is the number of changes in an
  event (1 for a lone change). The learning-rate context below sees every
  change.

Learning-rate context: a loss spike or gradient explosion starting within
2 w points after a learning-rate jump up (a warm restart, a step up) is the
rise's expected response: severity "info", unless a divergence starts within
2 w points after that rise.

status: "no_data" without any series (nothing to check); "diverged" with a
divergence event or any non-finite loss; else "warning" with any warning or
critical event; else "ok" (info events do not count).

frequency: for ``loss_spike`` and ``grad_explosion``, the number of warning
or critical events and the steps the series spans ("gradient spikes: 73 in
4,000 steps").

precedence (do gradient-norm events lead loss episodes?): for each loss
episode (not info), the gradient explosion (not info) with the latest start in
[start - precede_window, start] (steps); ``matched`` of ``of`` loss episodes,
and the median lead (loss start minus gradient start, in steps). ``lag`` is the
lag with the largest |r| of the lagged Pearson (``correlation.lagged_pearson``,
lags -max_lag..max_lag in joined points) of the first differences of the loss
(x) and of log(grad norm) (y), both joined on step: lag > 0 means the
gradient norm leads the loss; ``lag_r`` is its r, ``lag_n`` its number of
pairs, ``pairs`` the differenced pairs. Only lags leaving at least
``PRECEDENCE_MIN_PAIRS`` (30) pairs count, so a short run has no best lag.
None without both series. A loss logged as a running mean since the epoch's
start (``loss_resets``) raises no loss spike in the ``window`` points after
each epoch start.

What it cannot see (see docs/diagnostics-corpus.md): events in the first h
points (no reference yet); loss spikes under about 6% of the initial loss
(by design) or, in a run whose noise is heavy-tailed, under the calibrated K
(catapults of 4-7x in a chaotic early phase were missed); a slow divergence
before it has lasted to the end of the log, or one smaller than 2x (or 5
sigma of the run's own wander); a precursor before its slingshot happens; a
divergence or precursor of a loss taking negative values; a gradient rise that
is gradual (over ~100 steps) and under 10x its trailing median.

Complexity: two rolling medians (``windows.moving_average``, O(n log n)),
block sorts O(n log w), the lagged Pearson by FFT O(n log n), the rest O(n);
Python loops run over events only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tb_batchavg.metadata import ROLES
from tb_batchavg.stats import correlation, validation, windows, workers

DEFAULTS = {
    "window": 100,  # points in the rolling median windows
    "spike_k": 6.0,  # minimum Hampel threshold for the loss, robust SDs
    "explode_k": 6.0,  # minimum Hampel threshold for log(grad norm)
    "tail_rate": 1e-5,  # false-alarm rate per point the threshold aims at
    "scale_floor": 1e-3,  # floor of the robust SD, relative to the level
    "merge_gap": 2,  # unflagged points bridged inside one event
    "jump_factor": 10.0,  # a value this many times its trailing median is a spike, however often
    "rise_factor": 10.0,  # grad level / its earlier median level: explosion
    "vanish_fraction": 0.01,  # grad level / its earlier median level: vanishing
    "divergence_factor": 2.0,  # loss level / its earlier long-run level for divergence (at least)
    "loss_floor": 1e-3,  # fraction of the initial loss below which loss values are the floor
    "sustain": 50,  # points a level condition must span
    "lr_change": 0.1,  # relative learning-rate change that counts
    "precede_window": 100,  # steps a grad event may lead a loss spike by
    "max_lag": 50,  # lags of the lagged Pearson, in joined points
}

MAD_TO_SD = 1.4826
# lr_change events fewer than this many points apart are one event (with a count).
LR_MERGE_POINTS = 100
# Tail levels of the threshold calibration (see the module docstring).
_TAIL_LEVEL = 1e-3
_TAIL_POINTS = 10
_SEGMENTS = 16
_SEGMENT_POINTS = 1000
# A learning-rate change is a jump when it exceeds this many times its neighbours'.
_JUMP_CONTRAST = 3.0
# Samples of the gradient-norm level behind its earlier median.
_EARLIER_SAMPLES = 4096
# Divergence: the long trailing level is the median over this many blocks of half a window,
# and the rise must exceed this many robust SDs of the level's own low-frequency variability.
_LONG_BLOCKS = 20
_LOW_FREQUENCY_K = 5.0
# A divergence after a learning-rate rise is its expected bump when the log ends within this many
# windows of its start (and it stays below the initial loss).
_RISE_GRACE = 10
# A gradient-norm spike is at least this many times its trailing median, whatever its z.
_GRAD_MIN_RATIO = 3.0
# Floor of the robust SD of log(gradient norm): 1%.
_LOG_SCALE_FLOOR = 0.01
# A loss level below this fraction of the initial loss has converged: its gradient may vanish.
_CONVERGED = 0.05
# The loss's calibrated threshold K never exceeds this many robust SDs (Student-t(3) noise needs
# about 42 for tail_rate 1e-5): spikes a few per thousand points would otherwise lift it (to 8,700
# in a run with 0.3% spikes of 60 robust SDs on Student-t noise) and silence themselves. (The
# gradient norm's frequent spikes are caught by their 10x jumps instead.)
_MAX_THRESHOLD = 50.0
# A jump of jump_factor over the trailing median is flagged when it is also this many robust SDs
# high: not where the series itself swings by decades (a chaotic phase).
_JUMP_Z = 3.0
# A loss episode is an excursion when this share of the window from its start exceeds
# base + _CHAIN_K s (noise does so at a few percent of points, even Student-t(3)); it then lasts
# while the loss keeps exceeding base + _CHAIN_K s, each time within _CHAIN_WINDOWS windows.
_EXCURSION_SHARE = 0.1
_CHAIN_K = 3.0
_CHAIN_WINDOWS = 2
# The initial loss: the median of the first this many finite values.
_INITIAL_POINTS = 3
# The loss's robust SD is at least this many floors (1% of the initial loss by default), so
# that a spike rises at least a few percent of the initial loss: visible on the run's plot.
_SPIKE_FLOORS = 10.0
# A loss level within this many floors is "near zero" (slingshot precursors).
_NEAR_ZERO = 10.0
_TINY = np.finfo(np.float64).tiny

_INTEGER = {"window": 3, "merge_gap": 0, "sustain": 1, "precede_window": 0, "max_lag": 0}
_POSITIVE = ("spike_k", "explode_k")
_ABOVE_ONE = ("rise_factor", "divergence_factor", "jump_factor")
_FRACTION = ("tail_rate", "scale_floor", "vanish_fraction", "lr_change", "loss_floor")


def nonfinite(steps: npt.ArrayLike, values: npt.ArrayLike) -> dict[str, int | list[int] | None]:
    """Count, first step and steps of the non-finite values of one series."""
    steps, values = validation.series(steps, values)
    bad = steps[~np.isfinite(values)]
    return {"count": int(len(bad)), "first_step": int(bad[0]) if len(bad) else None, "steps": bad.tolist()}


def diagnose(
    loss: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    grad_norm: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    learning_rate: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    *,
    loss_resets: npt.ArrayLike | None = None,
    **params: float,
) -> dict[str, Any]:
    """Events, status, non-finite summaries, spike frequencies and precedence of one run (see
    the module docstring). Each series is (steps, values) or None when the run lacks that
    role. `loss_resets`: the steps where a loss logged as a running mean since the epoch's
    start starts again (metadata.running_mean); no loss spike is raised from the `window`
    points after each. Raises ValueError naming an unknown or invalid parameter or a malformed
    series."""
    params = parameters(params)
    given = {"loss": loss, "grad_norm": grad_norm, "learning_rate": learning_rate}
    series = {role: _series(role, given[role]) for role in ROLES if given[role] is not None}
    events = []
    for role, (steps, values) in series.items():
        events += _nonfinite_events(role, steps, values)

    def of_role(role, analyse):
        return analyse(*series[role], params) if role in series else None

    # The roles' analyses are independent: shared among threads (workers.call).
    loss_part, grad_part, rate_events = workers.call(
        lambda: of_role("loss", _LossAnalysis),
        lambda: of_role("grad_norm", _GradientAnalysis),
        lambda: of_role("learning_rate", _learning_rate_events) or [],
    )
    loss_spikes, divergence, grad_events, vanishing, precursors = _in_context(
        loss_part, grad_part, rate_events, series, params
    )
    if loss_part is not None:
        loss_spikes = _outside_resets(loss_spikes, loss_part.steps, loss_resets, params["window"])
    if rate_events:
        rate_events = _merged_rate_changes(rate_events, series["learning_rate"][0], LR_MERGE_POINTS)
    events += loss_spikes + divergence + grad_events + vanishing + precursors + rate_events
    events = [{key: value for key, value in event.items() if not key.startswith("_")} for event in events]
    events.sort(key=lambda event: (event["start"], event["kind"], event["end"]))
    summaries = {role: nonfinite(*series[role]) if role in series else None for role in ROLES}
    alarms = [e for e in loss_spikes + grad_events if e["severity"] != "info"]
    return {
        "status": _status(events, summaries["loss"]) if series else "no_data",
        "events": events,
        "nonfinite": summaries,
        "params": params,
        "frequency": _frequency(alarms, series),
        "precedence": _precedence(
            [e for e in loss_spikes if e["severity"] != "info"],
            [e for e in grad_events if e["severity"] != "info"],
            series,
            params,
        ),
    }


# Parameters and inputs -------------------------------------------------------


def parameters(params: Mapping[str, float]) -> dict[str, int | float]:
    """DEFAULTS updated with `params`, each checked (a ValueError names the first one wrong)."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; known: {', '.join(DEFAULTS)}")
    merged = {**DEFAULTS, **params}
    for name, minimum in _INTEGER.items():
        merged[name] = validation.integer(name, merged[name], minimum, whole_floats=True)
    for name in _POSITIVE + _ABOVE_ONE + _FRACTION:
        value = validation.number(name, merged[name])
        if name in _POSITIVE and not value > 0:
            raise ValueError(f"{name} must be > 0; got {value!r}")
        if name in _ABOVE_ONE and not value > 1:
            raise ValueError(f"{name} must be > 1; got {value!r}")
        if name in _FRACTION and not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1); got {value!r}")
        merged[name] = value
    return merged


def _series(role, pair):
    try:
        steps, values = pair
    except (TypeError, ValueError):
        raise ValueError(f"{role} must be a (steps, values) pair") from None
    return validation.series(steps, values, role)


def _log_norm(values):
    """log of the gradient norm, values <= 0 clipped to the smallest positive float."""
    with np.errstate(invalid="ignore"):
        return np.log(np.maximum(values, _TINY))


# Robust reference and spike test ---------------------------------------------


class _Reference:
    """Trailing median m, one-sided robust SD s, centred level L and z = (x - m) / s of a
    series (module docstring), NaN where undefined. `scale_floor`: an absolute floor of s."""

    def __init__(self, values, params, scale_floor=0.0):
        window = params["window"]
        n = len(values)
        half = (window + 1) // 2
        finite = np.isfinite(values)
        trailing = windows.moving_average(
            np.arange(n), values, method="median", window=window, align="trailing", edges="partial", unit="points"
        ).value
        finite_before = np.concatenate(([0], np.cumsum(finite)))
        index = np.arange(n)
        # finite points in the trailing window ending at each point
        count = finite_before[index + 1] - finite_before[np.maximum(index + 1 - window, 0)]
        trailing[count < half] = np.nan
        self.values = values
        self.half = half
        self.median = np.concatenate(([np.nan], trailing[:-1]))[:n]
        self.level = trailing[np.minimum(index + (window - 1 - (window - 1) // 2), n - 1)]
        with np.errstate(invalid="ignore"):
            residual = values - self.median
        overall = _finite_median(np.abs(values - _finite_median(values)))
        floor = np.maximum(params["scale_floor"] * np.maximum(np.abs(self.median), MAD_TO_SD * overall), scale_floor)
        # the smaller one-sided MAD: dips inflate only the lower side, spikes only the upper
        mad = _block_side_mad(residual, half, max(1, half // 4))
        self.scale = np.fmax(MAD_TO_SD * mad, floor)
        self.scale[self.scale == 0] = _TINY
        self.scale[np.isnan(mad)] = np.nan  # untested: no robust SD yet
        with np.errstate(invalid="ignore", over="ignore"):
            self.z = residual / self.scale
        # a finite rise over a level with no spread (a loss at exactly 0) is an infinite z, and
        # tested; a non-finite value is not (it is its own event, `nonfinite`)
        self.tested = np.isfinite(self.z) | ((self.z == np.inf) & np.isfinite(values))

    def threshold(self, k, tail_rate, cap=math.inf):
        """The calibrated threshold K: the lower median over consecutive
        segments of the tested z of each segment's trimmed tail estimate."""
        z = self.z[self.tested]
        if len(z) < _SEGMENT_POINTS:
            return k
        segments = min(_SEGMENTS, len(z) // _SEGMENT_POINTS)
        tails = sorted(_trimmed_tail(np.sort(part), k, tail_rate) for part in np.array_split(z, segments))
        # frequent spikes (a few per thousand points) must not lift K out of their own reach
        return min(tails[(segments - 1) // 2], max(k, cap))

    def flag(self, k, params, log_ratio, cap=math.inf):
        """(K, flagged): z above K (capped at `cap`), or a jump of jump_factor over the trailing
        median (log_ratio, however often that happens) with z above _JUMP_Z."""
        threshold = self.threshold(k, params["tail_rate"], cap)
        with np.errstate(invalid="ignore"):
            flagged = self.tested & (
                (self.z > threshold) | ((log_ratio >= math.log(params["jump_factor"])) & (self.z > _JUMP_Z))
            )
        return threshold, flagged


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


def _block_side_mad(residual, half, minimum):
    """Per point i, over the finite signed residuals r in the two blocks of `half` points before
    i's block: the smaller of median(r >= 0) and median(-r for r <= 0), each only from at least
    `minimum` values (NaN when neither has them). One sort per block."""
    n = len(residual)
    if half >= n:
        return np.full(n, np.nan)
    blocks = -(-n // half)
    padded = np.full(blocks * half, np.nan)
    padded[:n] = residual
    padded = padded.reshape(blocks, half)
    rows = np.full((blocks, 2 * half), np.nan)
    rows[2:, :half] = padded[:-2]
    rows[1:, half:] = padded[:-1]
    rows.sort(axis=1)  # NaN sorts last
    count = np.isfinite(rows).sum(axis=1)
    with np.errstate(invalid="ignore"):
        lower_count = (rows <= 0).sum(axis=1)
        upper_count = count - (rows < 0).sum(axis=1)

    def at(position):
        return np.take_along_axis(rows, np.clip(position, 0, 2 * half - 1)[:, None], axis=1)[:, 0]

    first = count - upper_count
    upper = (at(first + (upper_count - 1) // 2) + at(first + upper_count // 2)) / 2
    lower = -(at((lower_count - 1) // 2) + at(lower_count // 2)) / 2
    upper[upper_count < minimum] = np.nan
    lower[lower_count < minimum] = np.nan
    return np.repeat(np.fmin(upper, lower), half)[:n]


def _finite_median(values):
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else float("nan")


def _chain_end(values, bar, last, gap):
    """The last index of the chain of values above `bar` that starts at `last`, each link at
    most `gap` points after the one before."""
    n = len(values)
    size = 8 * gap
    while last < n - 1:
        stop = min(n, last + 1 + size)
        with np.errstate(invalid="ignore"):
            hits = last + 1 + np.flatnonzero(values[last + 1 : stop] > bar)
        links = np.concatenate(([last], hits))
        breaks = np.flatnonzero(np.diff(links) > gap)
        if len(breaks):
            return int(links[breaks[0]])
        if len(hits):
            last = int(hits[-1])
        if stop == n or stop - 1 - last >= gap:
            return last
        size *= 2
    return last


def _internal(kind, steps, first, last, peak, value, severity, detail, **extra):
    event = _event(kind, steps, first, last, peak, value, severity, detail)
    event.update({"_first": int(first), "_last": int(last), "_peak": int(peak)}, **extra)
    return event


def _sds(z):
    """A z in words: "12.3 robust SDs", or "infinitely many robust SDs" over a level with no spread."""
    return f"{float(z):.1f} robust SDs" if math.isfinite(z) else "infinitely many robust SDs"


def _excursion(kind, steps, first, last, peak, value, critical, detail, base, flagged_last, **extra):
    """A spike episode's event: critical or warning, with the reference level and last flagged point."""
    severity = "critical" if critical else "warning"
    extra.update(_base=float(base), _flagged_last=int(flagged_last))
    return _internal(kind, steps, first, last, peak, value, severity, detail, **extra)


class _LossAnalysis:
    """Loss spikes (episodes) and divergence candidates of the loss (module docstring)."""

    def __init__(self, steps, values, params):
        self.steps, self.values, self.params = steps, values, params
        finite = values[np.isfinite(values)]
        self.initial = float(np.median(finite[:_INITIAL_POINTS])) if len(finite) else math.nan
        positive = bool(len(finite)) and float(finite.min()) >= 0 and self.initial > 0
        self.floor = params["loss_floor"] * self.initial if positive else None
        if self.floor is not None:
            with np.errstate(invalid="ignore"):
                self.clipped = np.where(values < self.floor, self.floor, values)
        else:
            self.clipped = values
        self.reference = reference = _Reference(self.clipped, params, _SPIKE_FLOORS * (self.floor or 0.0))
        if self.floor is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_ratio = np.log(self.clipped / reference.median)
        else:
            log_ratio = np.full(len(values), -np.inf)
        self.threshold, flagged = reference.flag(params["spike_k"], params, log_ratio, _MAX_THRESHOLD)
        self.spikes = self._episodes(flagged)
        self.divergence = self._divergence()

    def _episodes(self, flagged):
        reference, params, values = self.reference, self.params, self.values
        n = len(values)
        events, covered = [], -1
        # flagged points at most h apart are one burst: one episode
        for first, last in zip(*_runs(flagged, max(params["merge_gap"], reference.half))):
            if first <= covered:
                continue
            base, scale = reference.median[first], reference.scale[first]
            flagged_last = last
            with np.errstate(invalid="ignore"):
                # K / 2 for heavy-tailed noise, whose own 3-SD points would carry the chain on
                chain = base + max(_CHAIN_K, self.threshold / 2) * scale
                ahead = self.clipped[first : min(first + params["window"], n)]
                excursion = bool(np.count_nonzero(ahead > chain) >= _EXCURSION_SHARE * len(ahead))
            if excursion:  # the level rose too: the episode lasts while the loss stays above
                last = _chain_end(self.clipped, chain, last, _CHAIN_WINDOWS * params["window"])
            covered = last
            span = slice(first, last + 1)
            peak = first + int(np.argmax(np.where(np.isfinite(values[span]), values[span], -np.inf)))
            largest = float(np.max(np.where(flagged[span], reference.z[span], -np.inf)))
            ratio = float(self.clipped[peak] / base) if self.floor is not None and base > 0 else None
            value = float(values[peak])
            what = (
                f"loss jumped to {value:.4g} at step {self.steps[peak]} "
                f"({_sds(reference.z[peak])} above the rolling median "
                f"{base:.4g}" + (f", {ratio:.3g}x" if ratio is not None else "") + f"; threshold {self.threshold:.1f})"
            )
            if last > first:
                what += (
                    f"; {'an excursion' if excursion else 'flagged'} from step "
                    f"{self.steps[first]} to {self.steps[last]}"
                )
            critical = largest > 2 * self.threshold or (ratio is not None and ratio >= params["jump_factor"])
            events.append(
                _excursion("loss_spike", self.steps, first, last, peak, value, critical, what, base, flagged_last)
            )
        return events

    def _divergence(self):
        """Candidates: the loss level stays above its long trailing level x max(divergence_factor,
        exp(5 sigma_low)) from some point to the end of the log; and the loss non-finite at the
        end or for `sustain` points."""
        params, steps, values = self.params, self.steps, self.values
        n = len(values)
        events = []
        if self.floor is not None and n:
            events += self._level_divergence()
        firsts, lasts = _runs(~np.isfinite(values), 0)
        lasting = (lasts - firsts + 1 >= params["sustain"]) | (lasts == n - 1)
        for first, last in zip(firsts[lasting], lasts[lasting]):
            until = "the end of the log" if last == n - 1 else f"step {steps[last]}"
            what = (
                f"loss became {_name(values[first])} at step {steps[first]} and stayed "
                f"non-finite to {until} ({last - first + 1} points)"
            )
            if events and last == n - 1 and events[-1]["_last"] == n - 1:
                events[-1]["detail"] += "; then " + what
                continue
            events.append(_internal("divergence", steps, first, last, first, values[first], "critical", what))
        return events

    def _level_divergence(self):
        params, steps = self.params, self.steps
        reference = self.reference
        half = reference.half
        n = len(steps)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.log(reference.level)
        samples = level[half - 1 :: half]
        if len(samples) < 4:
            return []
        long_level = windows.moving_average(
            np.arange(len(samples)),
            samples,
            method="median",
            window=_LONG_BLOCKS,
            align="trailing",
            edges="partial",
            unit="points",
        ).value
        before = np.concatenate(([np.nan], long_level[:-1]))  # samples strictly before
        deviation = np.abs(samples - before)
        spread = (
            MAD_TO_SD
            * windows.moving_average(
                np.arange(len(samples)),
                deviation,
                method="median",
                window=len(samples),
                align="trailing",
                edges="partial",
                unit="points",
            ).value
        )
        margin = np.fmax(math.log(params["divergence_factor"]), _LOW_FREQUENCY_K * spread)
        best = np.fmin.accumulate(before)  # the best long-run level so far
        threshold_samples = best + margin
        taken = (np.arange(n) + 1) // half  # samples taken at or before each point
        threshold = np.concatenate(([np.nan], threshold_samples))[taken]
        reference_level = np.concatenate(([np.nan], best))[taken]
        remaining_min = np.fmin.accumulate(level[::-1])[::-1]
        with np.errstate(invalid="ignore"):
            above = np.flatnonzero(remaining_min > threshold)
        if not len(above) or n - above[0] < params["sustain"]:
            return []
        first, last = int(above[0]), n - 1
        peak = first + int(np.nanargmax(level[first:]))
        reached = _exp(reference_level[first])
        top = float(np.exp(level[peak]))
        what = (
            f"averaged loss (rolling median) rose to {top:.4g} at step {steps[peak]}, "
            f"{top / reached:.3g}x its best long-run level {reached:.4g} before step {steps[first]} "
            f"(threshold {_exp(margin[max(taken[first] - 1, 0)]):.3g}x), and stayed "
            f"above to the end of the log"
        )
        return [
            _internal(
                "divergence",
                steps,
                first,
                last,
                peak,
                top,
                "critical",
                what,
                _final=float(np.exp(np.nanmax(level[-half:]))) if np.isfinite(level[-half:]).any() else math.inf,
            )
        ]


class _GradientAnalysis:
    """Gradient-norm explosions (spikes and sustained rises, merged into episodes) and
    vanishing candidates (module docstring)."""

    def __init__(self, steps, values, params):
        self.steps, self.params = steps, params
        log_norm = _log_norm(values)
        self.reference = reference = _Reference(log_norm, params, _LOG_SCALE_FLOOR)
        self.level = level = np.exp(reference.level)
        self.earlier = earlier = _earlier_median(level, reference.half)
        with np.errstate(invalid="ignore"):
            log_ratio = log_norm - reference.median
        self.threshold, flagged = reference.flag(params["explode_k"], params, log_ratio)
        with np.errstate(invalid="ignore"):
            flagged &= log_ratio >= math.log(_GRAD_MIN_RATIO)  # no blips of under 3x
        jump = math.log(params["jump_factor"])
        n = len(values)
        events = []
        covered = -1
        for first, last in zip(*_runs(flagged, params["merge_gap"])):
            if first <= covered:
                continue
            base = reference.median[first]
            flagged_last = last
            with np.errstate(invalid="ignore"):
                # the level rises to jump_factor x the base within half a window: it lasts
                # while the level stays there
                high = np.flatnonzero(reference.level[last : last + reference.half + 1] >= base + jump)
                if len(high):
                    rest = last + int(high[0])
                    low = np.flatnonzero(~(reference.level[rest:] >= base + jump))
                    last = rest + int(low[0]) - 1 if len(low) else n - 1
            covered = last
            span = slice(first, last + 1)
            peak = first + int(np.argmax(np.where(np.isfinite(log_norm[span]), log_norm[span], -np.inf)))
            largest = float(np.max(np.where(flagged[span], reference.z[span], -np.inf)))
            value = float(np.exp(log_norm[peak]))
            ratio = _exp(log_norm[peak] - base)
            what = (
                f"gradient norm jumped to {value:.4g} at step {steps[peak]}, {ratio:.3g}x its "
                f"usual level {_exp(base):.4g} ({_sds(reference.z[peak])} "
                f"of log gradient norm above it; threshold {self.threshold:.1f})"
            )
            if last > first:
                what += f"; from step {steps[first]} to {steps[last]}"
            critical = largest > 2 * self.threshold or ratio >= params["jump_factor"]
            events.append(
                _excursion(
                    "grad_explosion",
                    steps,
                    first,
                    last,
                    peak,
                    value,
                    critical,
                    what,
                    base,
                    flagged_last,
                    _usual=float(earlier[peak]),
                )
            )
        with np.errstate(invalid="ignore"):
            rising = level > params["rise_factor"] * earlier
            vanishing = level < params["vanish_fraction"] * earlier
        for first, last, peak, what in _median_shifts(steps, level, earlier, rising, params, rose=True):
            events.append(
                _internal(
                    "grad_explosion",
                    steps,
                    first,
                    last,
                    peak,
                    level[peak],
                    "critical",
                    what,
                    _flagged_last=int(last),
                    _usual=math.inf,
                )
            )
        self.explosions = _merge_overlapping(events, steps)
        self.vanishing = [
            _internal("vanishing_gradient", steps, first, last, peak, level[peak], "warning", what)
            for first, last, peak, what in _median_shifts(steps, level, earlier, vanishing, params, rose=False)
        ]


def _median_shifts(steps, level, earlier, mask, params, rose):
    """(first, last, peak, detail) of each sustained run of `mask`: where the gradient norm's rolling
    median `level` rose above rise_factor x (or fell below vanish_fraction x) its `earlier` level."""
    factor = params["rise_factor"] if rose else params["vanish_fraction"]
    for first, last in _sustained(mask, params):
        span = level[first : last + 1]
        peak = first + int(np.nanargmax(span) if rose else np.nanargmin(span))
        what = (
            f"gradient norm's rolling median {'rose' if rose else 'fell'} to {level[peak]:.4g} at step "
            f"{steps[peak]}, {level[peak] / earlier[peak]:.3g}x its earlier median level "
            f"{earlier[peak]:.4g}; {'above' if rose else 'below'} {factor:g}x from step "
            f"{steps[first]} to {steps[last]}"
        )
        yield first, last, peak, what


def _merge_overlapping(events, steps):
    """Events overlapping in points merged into one: the union of their spans, the detail and
    peak of the one with the highest value, the highest severity."""
    events = sorted(events, key=lambda e: e["_first"])
    merged = []
    for event in events:
        if merged and event["_first"] <= merged[-1]["_last"] + 1:
            into = merged[-1]
            if event["value"] > into["value"]:
                keep = {key: into[key] for key in ("_first", "_last", "_flagged_last")}
                into.update(event)
                into.update(keep)
            into["_last"] = max(into["_last"], event["_last"])
            into["_flagged_last"] = max(into["_flagged_last"], event["_flagged_last"])
            if event["severity"] == "critical":
                into["severity"] = "critical"
            into["start"], into["end"] = int(steps[into["_first"]]), int(steps[into["_last"]])
        else:
            merged.append(dict(event))
    return merged


def _sustained(condition, params):
    """(first, last) index pairs of the runs of `condition` spanning >= sustain points."""
    first, last = _runs(condition, params["merge_gap"])
    long_enough = last - first + 1 >= params["sustain"]
    return zip(first[long_enough], last[long_enough])


def _earlier_median(level, half):
    """E_i: median of the finite level samples taken at or before i, one sample
    every B = max(half, ceil(n / _EARLIER_SAMPLES)) points (at B-1, 2B-1, ...);
    NaN before the first sample."""
    n = len(level)
    stride = max(half, -(-n // _EARLIER_SAMPLES))
    samples = level[stride - 1 :: stride]
    expanding = windows.moving_average(
        np.arange(len(samples)),
        samples,
        method="median",
        window=max(len(samples), 1),
        align="trailing",
        edges="partial",
        unit="points",
    ).value
    taken = (np.arange(n) + 1) // stride
    return np.concatenate(([np.nan], expanding))[taken]


# The run in context: learning-rate rises, the loss's convergence, episodes across roles ----------


def _in_context(loss, grad, rate_events, series, params):
    """(loss spikes, divergence, gradient explosions, vanishing, precursors) of the analyses
    (None for a missing role), judged together: learning-rate rises, the loss's convergence,
    episodes seen in both series (module docstring)."""
    loss_spikes = loss.spikes if loss is not None else []
    divergence = loss.divergence if loss is not None else []
    explosions = grad.explosions if grad is not None else []
    rises = [e["start"] for e in rate_events if e.get("_rise")]
    window = params["window"]
    # A divergence that started just after a learning-rate rise, at most _RISE_GRACE windows
    # before the end of the log, and stays below the initial loss is the rise's expected bump
    # (a warm restart) cut off by the end of the log.
    if loss is not None and rises:
        kept = []
        for event in divergence:
            after = _after_rise(rises, event, loss.steps, window)
            if (
                after is not None
                and event["_last"] - event["_first"] < _RISE_GRACE * window
                and event.get("_final", math.inf) < loss.initial
            ):
                continue
            kept.append(event)
        divergence = kept
    # A loss episode reaching into the divergence is part of it (spikes within it too).
    for event in divergence:
        inside = [s for s in loss_spikes if s["_last"] >= event["_first"]]
        if inside:
            first = min(s["_first"] for s in inside)
            if first < event["_first"]:
                event["_first"], event["start"] = first, int(loss.steps[first])
            loss_spikes = [s for s in loss_spikes if s["_last"] < event["_first"]]
    # Spikes after a learning-rate rise are its expected response (a warm restart), unless
    # the loss diverges from there.
    diverging = min((e["start"] for e in divergence), default=None)
    for role_events, role_steps in (
        (loss_spikes, loss.steps if loss is not None else None),
        (explosions, grad.steps if grad is not None else None),
    ):
        for event in role_events:
            after = _after_rise(rises, event, role_steps, 2 * window)
            if after is not None and not (
                diverging is not None
                and diverging <= after + 2 * window * max(1, _spacing(role_steps))
                and diverging >= after
            ):
                event["severity"] = "info"
                event["detail"] += (
                    f"; after the learning-rate rise at step {after} "
                    f"(a warm restart or schedule step): expected, not an alarm"
                )
    # Vanishing only while the loss has not converged (a converged run's gradient shrinks).
    vanishing = grad.vanishing if grad is not None else []
    if loss is not None and grad is not None and vanishing:
        kept = []
        for event in vanishing:
            at = np.searchsorted(loss.steps, [event["start"], event["end"]])
            stretch = loss.reference.level[at[0] : max(at[1], at[0] + 1)]
            stretch = stretch[np.isfinite(stretch)]
            if len(stretch) and np.median(stretch) < _CONVERGED * loss.initial:
                continue
            kept.append(event)
        vanishing = kept
    # A return to the usual level right after a vanishing stretch is a recovery.
    if vanishing:
        ends = [v["_last"] for v in vanishing]
        explosions = [
            e
            for e in explosions
            if not (
                any(-window <= e["_first"] - end <= window for end in ends)
                and e["value"] <= params["rise_factor"] * e.get("_usual", math.inf)
            )
        ]
    precursors = []
    if loss is not None and grad is not None:
        _pair_episodes(loss, grad, loss_spikes, explosions, params)
        precursors = _precursors(loss, grad, loss_spikes, explosions, params)
    return loss_spikes, divergence, explosions, vanishing, precursors


def _spacing(steps):
    """The median step spacing of a series (1 for fewer than two points)."""
    return int(np.median(np.diff(steps))) if len(steps) > 1 else 1


def _after_rise(rises, event, steps, points):
    """The step of the learning-rate rise that `event` starts within `points` points after."""
    for rise in rises:
        at = int(np.searchsorted(steps, rise))
        if at <= event["_first"] <= at + points:
            return rise
    return None


def _pair_episodes(loss, grad, loss_spikes, explosions, params):
    """A gradient explosion that leads a loss episode ends with it (at the latest at its own
    last flagged point): one episode, seen in both series."""
    explosions = sorted(explosions, key=lambda e: e["start"])
    starts = np.array([e["start"] for e in explosions], dtype=np.int64)
    for spike in loss_spikes:
        if spike["severity"] == "info":
            continue
        low = int(np.searchsorted(starts, spike["start"] - params["precede_window"]))
        high = int(np.searchsorted(starts, spike["end"], side="right"))
        for event in explosions[low:high]:
            if event["end"] > spike["end"]:
                last = max(
                    int(np.searchsorted(grad.steps, spike["end"], side="right")) - 1,
                    event["_flagged_last"],
                    event["_peak"],
                )
                if last < event["_last"]:
                    event["_last"], event["end"] = last, int(grad.steps[last])


def _precursors(loss, grad, loss_spikes, explosions, params):
    """The quiet stretch before a loss episode that starts from a loss near zero (at most
    _NEAR_ZERO x the floor) while the gradient norm fell jump_factor-fold or more: the
    precursor of an epsilon-driven slingshot."""
    if loss.floor is None:
        return []
    near = loss.reference.level <= _NEAR_ZERO * loss.floor
    starts = np.flatnonzero(np.diff(np.concatenate(([False], near))) > 0)  # run starts
    starts_sorted = np.sort(np.array([e["start"] for e in explosions], dtype=np.int64))
    events = []
    previous_end = -1
    for spike in loss_spikes:
        quiet_end = previous_end
        previous_end = spike["_last"]
        if spike["severity"] == "info" or spike["_base"] > _NEAR_ZERO * loss.floor:
            continue
        onset = spike["start"]
        first_leading = int(np.searchsorted(starts_sorted, onset - params["precede_window"]))
        if first_leading < len(starts_sorted) and starts_sorted[first_leading] <= onset:
            onset = int(starts_sorted[first_leading])
        stop = int(np.searchsorted(loss.steps, onset)) - 1  # last loss point before the onset
        if stop < 1 or not near[stop]:
            continue
        begin = int(starts[np.searchsorted(starts, stop, side="right") - 1])
        begin = max(begin, quiet_end + 1)
        if stop - begin + 1 < params["sustain"]:
            continue
        g = np.searchsorted(grad.steps, [loss.steps[begin], onset])
        g_begin, g_end = int(g[0]), int(g[1]) - 1
        if g_end - g_begin < 2:
            continue
        level = grad.level
        head = level[g_begin : min(g_begin + grad.reference.half, g_end)]
        tail = level[max(g_end - grad.reference.half, g_begin) : g_end + 1]
        if not (np.isfinite(head).any() and np.isfinite(tail).any()):
            continue
        top, bottom = float(np.nanmax(head)), float(np.nanmin(tail))
        if not top >= params["jump_factor"] * bottom:
            continue
        what = (
            f"quiet phase before the loss spike at step {spike['peak_step']}: the loss stayed "
            f"near zero (rolling median at most {_NEAR_ZERO * loss.floor:.3g}) from step "
            f"{loss.steps[begin]} to {loss.steps[stop]} while the gradient norm fell "
            f"{top / bottom:.3g}x to {bottom:.3g}; then it jumped. A slingshot: typical of "
            f"Adam with a tiny epsilon once the loss is about zero"
        )
        events.append(_internal("slingshot_precursor", loss.steps, begin, stop, stop, bottom, "info", what))
    return events


# Non-finite values and the learning rate ------------------------------------------


def _nonfinite_events(role, steps, values):
    events = []
    for first, last in zip(*_runs(~np.isfinite(values), 0)):
        span = values[first : last + 1]
        kinds = ", ".join(
            f"{np.count_nonzero(mask)} {name}"
            for name, mask in (("NaN", np.isnan(span)), ("+Inf", span == np.inf), ("-Inf", span == -np.inf))
            if mask.any()
        )
        where = (
            f"at step {steps[first]}"
            if first == last
            else f"at {last - first + 1} consecutive points, steps {steps[first]} to {steps[last]}"
        )
        what = f"{role.replace('_', ' ')} was non-finite ({kinds}) {where}"
        events.append(_event("nonfinite", steps, first, last, first, values[first], "critical", what))
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
    jump = (relative >= params["lr_change"]) & (size > _JUMP_CONTRAST * np.maximum(smaller_before, smaller_after))
    events = []
    for first, last in zip(*_runs(jump, 0)):
        before, after = rate[first], rate[last + 1]
        direction = "dropped" if after < before else "rose"
        when = (
            f"at step {steps[last + 1]}" if first == last else f"between steps {steps[first + 1]} and {steps[last + 1]}"
        )
        what = (
            f"learning rate {direction} from {before:.4g} to {after:.4g} "
            f"({after / before if before else math.inf:.3g}x) {when}"
        )
        event = _event("lr_change", steps, first + 1, last + 1, last + 1, after, "info", what)
        event["_rise"] = bool(after > before)
        events.append(event)
    rising_stretch = (change >= 0) & ~jump
    masked = np.where(rising_stretch, rate[1:], -np.inf)
    for first, last in zip(*_runs(rising_stretch, 0)):
        peak = first + 1 + int(np.argmax(masked[first : last + 1]))
        base, top = rate[first], rate[peak]
        if peak == len(rate) - 1 or not (top > 0 and top - base >= params["lr_change"] * top):
            continue
        what = (
            f"learning-rate warm-up ended at step {steps[peak]}: it rose from {base:.4g} "
            f"(step {steps[first]}) to {top:.4g}"
        )
        events.append(_event("lr_change", steps, peak, peak, peak, top, "info", what))
    return events


def _merged_rate_changes(events, steps, span):
    """lr_change `events` fewer than `span` points of the learning rate's `steps` apart (from one's
    end to the next one's start) merged into one: the first one's start, the last one's end, peak,
    value and detail (after how many changes since which step), and "count", the changes merged
    (1 for a lone change). A noisy learning rate so gives a few events, not one per point."""
    events = sorted(events, key=lambda e: (e["start"], e["end"]))
    first = np.searchsorted(steps, [e["start"] for e in events])
    last = np.searchsorted(steps, [e["end"] for e in events])
    merged, counts = [], []
    for i, event in enumerate(events):
        if merged and first[i] - last[i - 1] < span:
            counts[-1] += 1
            merged[-1] = dict(event, start=merged[-1]["start"], end=max(event["end"], merged[-1]["end"]))
            continue
        merged.append(event)
        counts.append(1)
    for event, count in zip(merged, counts):
        event["count"] = count
        if count > 1:
            event["detail"] = (
                f"{count} learning-rate changes from step {event['start']} to "
                f"{event['end']}, each within {span} points of the next; the last: "
                f"{event['detail']}"
            )
    return merged


# Summary -------------------------------------------------------------------


def _status(events, loss_nonfinite):
    if (loss_nonfinite and loss_nonfinite["count"]) or any(event["kind"] == "divergence" for event in events):
        return "diverged"
    if any(event["severity"] != "info" for event in events):
        return "warning"
    return "ok"


def _frequency(alarms, series):
    """{kind: {"count", "steps"}}: how many loss-spike and gradient-explosion events of warning
    or critical severity the run has, over how many steps of its series."""
    out = {}
    for kind, role in (("loss_spike", "loss"), ("grad_explosion", "grad_norm")):
        if role not in series or not len(series[role][0]):
            continue
        steps = series[role][0]
        out[kind] = {"count": sum(e["kind"] == kind for e in alarms), "steps": int(steps[-1] - steps[0] + 1)}
    return out


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
        lags, r = correlation.lagged_pearson(np.diff(loss_joined), np.diff(grad_joined), params["max_lag"])
        pairs = max(0, len(loss_joined) - 1)
        lag = correlation.best_lag(lags, r, pairs, PRECEDENCE_MIN_PAIRS)
        if lag is not None:
            lag_r = float(r[lags == lag][0])
            lag_n = int(pairs - abs(lag))
    return {
        "lag": lag,
        "lag_r": lag_r,
        "lag_n": lag_n,
        "pairs": int(pairs),
        "min_pairs": PRECEDENCE_MIN_PAIRS,
        "matched": len(leads),
        "of": len(loss_spikes),
        "median_lead_steps": float(np.median(leads)) if leads else None,
    }


# Helpers -------------------------------------------------------------------


def _runs(mask, gap):
    """First and last indices of the runs of True in mask, bridging up to `gap` False."""
    index = np.flatnonzero(mask)
    if len(index) == 0:
        return index, index
    breaks = np.flatnonzero(np.diff(index) > gap + 1)
    return index[np.concatenate(([0], breaks + 1))], index[np.append(breaks, len(index) - 1)]


def _event(kind, steps, first, last, peak, value, severity, detail):
    return {
        "kind": kind,
        "start": int(steps[first]),
        "end": int(steps[last]),
        "peak_step": int(steps[peak]),
        "value": float(value),
        "severity": severity,
        "detail": detail,
    }


def _exp(x):
    """math.exp(x), or +inf where it overflows (a ratio to a level clipped at the smallest
    positive float, as a gradient norm of 0 is)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _name(value):
    return "NaN" if np.isnan(value) else ("+Inf" if value > 0 else "-Inf")
