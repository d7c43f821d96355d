"""Statistics across a group of runs (e.g. one model trained under several seeds): pure numpy.

Each run gives its averaged series (steps strictly increasing, values float64 that may hold NaN).

Alignment (as pandas' ``merge_asof(direction="backward")``): the grid is the union of the runs'
steps, kept within [start, end] (None: unbounded). At grid step ``s`` a run contributes its
average at its last step ``<= s``, and only when ``s`` lies within its own first..last step (no
extrapolation before its start or after its end). A non-finite average contributes nothing (an
earlier finite one is not carried forward). ``n`` counts the finite contributions at each step.

Across the contributions at a step: ``mean``; the band (``lower``, ``upper``):

- ``none``: null;
- ``minmax``: the smallest and largest contribution;
- ``std``: mean -+ the sample standard deviation (ddof=1), null with n < 2;
- ``ci95``: the 95% confidence interval of the mean, mean -+ t_{0.975, n-1} * sd / sqrt(n) (sd with
  ddof=1), null with n < 2. The t quantile is an exact table (to float64 rounding) for n - 1 <= 30
  and, beyond, the Cornish-Fisher expansion of Student's t about the normal quantile 1.959964 (terms
  to 1/df**4), whose relative error there is below 2e-8.

Mean and standard deviation are two passes (the mean, then squared deviations from it), so a group
of equal values gets exactly that value and a zero spread. Memory is O(grid) per statistic (runs
are streamed, never stacked in a runs x grid matrix).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

BANDS = ("none", "minmax", "std", "ci95")

# t_{0.975, df} for df = 1..30 (scipy.stats.t.ppf, to float64 rounding).
_T975 = (
    12.706204736174694,
    4.302652729749462,
    3.1824463052837078,
    2.7764451051977934,
    2.5705818356363146,
    2.4469118511449786,
    2.364624251592784,
    2.306004135204166,
    2.262157162798205,
    2.228138851986274,
    2.200985160091639,
    2.1788128296672284,
    2.1603686564627913,
    2.144786687917804,
    2.131449545559776,
    2.1199052992212546,
    2.1098155778333156,
    2.1009220402410382,
    2.0930240544083087,
    2.085963447265864,
    2.0796138447276795,
    2.0738730679040254,
    2.0686576104190486,
    2.0638985616280245,
    2.0595385527532972,
    2.0555294386428735,
    2.0518305164802846,
    2.0484071417952454,
    2.045229642132703,
    2.0422724563012378,
)
_Z975 = 1.959963984540054


def t975(df: npt.ArrayLike) -> np.ndarray:
    """Student's t quantile at 0.975 with `df` >= 1 degrees of freedom (float array or scalar): the
    table for df <= 30, the Cornish-Fisher expansion beyond (module docstring)."""
    df = np.asarray(df, dtype=np.float64)
    z = _Z975
    v = np.maximum(df, 1.0)
    expansion = (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )
    table = np.asarray(_T975)[np.clip(df, 1, 30).astype(np.int64) - 1]
    return np.where(df <= 30, table, expansion)


def grid(
    runs: Iterable[tuple[npt.ArrayLike, npt.ArrayLike]], start: int | None = None, end: int | None = None
) -> np.ndarray:
    """The union of the runs' steps (int64, sorted) within [start, end]."""
    parts = [np.asarray(steps, dtype=np.int64) for steps, _ in runs]
    steps = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
    lo = 0 if start is None else int(np.searchsorted(steps, start, side="left"))
    hi = len(steps) if end is None else int(np.searchsorted(steps, end, side="right"))
    return steps[lo:hi]


def contribution(steps: npt.ArrayLike, values: npt.ArrayLike, at: npt.ArrayLike) -> np.ndarray:
    """A run's contribution at each step of `at`: its value at its last step <= that step, NaN
    outside its own first..last step (and where that value is not finite)."""
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(at), np.nan)
    if len(steps) == 0:
        return out
    lo = int(np.searchsorted(at, steps[0], side="left"))
    hi = int(np.searchsorted(at, steps[-1], side="right"))
    index = np.searchsorted(steps, at[lo:hi], side="right") - 1
    out[lo:hi] = values[index]
    out[~np.isfinite(out)] = np.nan
    return out


def across(
    runs: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    band: str = "none",
    start: int | None = None,
    end: int | None = None,
) -> dict[str, np.ndarray]:
    """{"step", "mean", "lower", "upper", "n"} (numpy arrays) across `runs`, a list of (steps,
    values), aligned and reduced as the module docstring says. Steps where no run contributes have
    n = 0 and a NaN mean."""
    if band not in BANDS:
        raise ValueError("band must be one of %s, got %r" % (", ".join(BANDS), band))
    at = grid(runs, start, end)
    n = np.zeros(len(at), dtype=np.int64)
    total = np.zeros(len(at))
    for steps, values in runs:
        c = contribution(steps, values, at)
        ok = ~np.isnan(c)
        n += ok
        total += np.where(ok, c, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
    lower = upper = np.full(len(at), np.nan)
    if band == "minmax":
        lower, upper = np.full(len(at), np.inf), np.full(len(at), -np.inf)
        for steps, values in runs:
            c = contribution(steps, values, at)
            ok = ~np.isnan(c)
            np.minimum(lower, np.where(ok, c, np.inf), out=lower)
            np.maximum(upper, np.where(ok, c, -np.inf), out=upper)
        lower[n == 0] = np.nan
        upper[n == 0] = np.nan
    elif band in ("std", "ci95"):
        squares = np.zeros(len(at))
        for steps, values in runs:
            c = contribution(steps, values, at)
            d = np.where(np.isnan(c), 0.0, c - np.where(np.isnan(mean), 0.0, mean))
            squares += d * d
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(squares / (n - 1))
        sd[n < 2] = np.nan
        half = sd if band == "std" else t975(np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1))
        lower, upper = mean - half, mean + half
        # a zero spread leaves the mean itself (mean -+ 0), also where it is huge
        same = half == 0
        lower[same] = upper[same] = mean[same]
    return {"step": at, "mean": mean, "lower": lower, "upper": upper, "n": n}


def half_width_ci95(sd: float, n: int) -> float:
    """t_{0.975, n-1} * sd / sqrt(n) for scalars (n >= 2): what the ci95 band adds and subtracts."""
    return float(t975(n - 1)) * sd / math.sqrt(n)
