"""TensorBoard's debiased EMA and its std band (pandas' ewm std): see ``windows``' module docstring
(method ``ema``, Extreme magnitudes)."""

import numpy as np

from tb_batchavg.stats.moments import std_band

# Block of the EMA recurrence: one matrix product per _EMA_BLOCK points.
_EMA_BLOCK = 32
# Part of the series the EMA and its std are computed over at a time (in cache).
_EMA_PART = 1 << 17


def average(values: np.ndarray, weight: float, band: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, lower, upper) at every point: TensorBoard's debiased EMA and, for band="std",
    pandas' bias-corrected exponentially weighted std (see ``windows``' module docstring), over
    the finite values in parts of _EMA_PART points that carry the recurrences' state."""
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
            lower, upper = std_band(value, std)
    else:
        lower = np.full(len(values), np.nan)
        upper = np.full(len(values), np.nan)
        with np.errstate(over="ignore"):
            lower[finite], upper[finite] = std_band(value[finite], std)
    return value, lower, upper


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
    """Points [first, stop) of ``average``: writes the EMA (and the std) of the
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
