"""The numeric core against pandas and against the article's `np.convolve` moving average.

Every case runs on the same arrays: a training-like loss and gradient norm of `n` points (as
float64, the reader's column type), steps 0..n-1. Each callable is timed `repeats` times (fewer
once a time budget is spent); the median is reported.
"""

import os
import statistics
import sys

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tb_batchavg import correlation, windows  # noqa: E402
from tests.helpers import training_like  # noqa: E402
from timing import clocked, repeat  # noqa: E402


def timed(function, repeats, budget_seconds):
    """Median seconds of up to `repeats` calls after one untimed call (first-call costs, such as
    the page faults of a heap still growing, would otherwise fall on whichever case runs first),
    and the call count."""
    function()
    runs = repeat(clocked(function), repeats, budget_seconds)
    return statistics.median(r["seconds"] for r in runs), len(runs)


def convolve_sma(values, window):
    """The article's moving average: np.convolve with a box, 'valid' edges (O(n * window))."""
    return np.convolve(values, np.ones(window) / window, mode="valid")


def cases(n, sma_windows=(50, 1000), median_windows=(50, 1000), corr_window=200, max_lag=200):
    """[(label, ours, [(baseline label, baseline callable)])] on one n-point series."""
    columns = training_like(n, seed=7)
    steps = np.arange(n, dtype=np.int64)
    loss = columns["train/loss"].astype(np.float64)
    grad = columns["train/grad_norm"].astype(np.float64)
    s_loss, s_grad = pd.Series(loss), pd.Series(grad)

    def ours(**kwargs):
        return lambda: windows.moving_average(steps, loss, **kwargs)

    out = []
    for w in sma_windows:
        out.append(("SMA w=%d" % w, ours(method="sma", window=w), [
            ("pandas rolling mean", lambda w=w: s_loss.rolling(w).mean()),
            ("np.convolve (article)", lambda w=w: convolve_sma(loss, w)),
        ]))
    out.append(("SMA w=50 + std band", ours(method="sma", window=50, band="std"), [
        ("pandas rolling mean + std", lambda: (s_loss.rolling(50).mean(), s_loss.rolling(50).std())),
    ]))
    for w in median_windows:
        out.append(("median w=%d" % w, ours(method="median", window=w), [
            ("pandas rolling median", lambda w=w: s_loss.rolling(w).median()),
        ]))
    out.append(("EMA weight=0.6", ours(method="ema", weight=0.6), [
        ("pandas ewm mean", lambda: s_loss.ewm(alpha=0.4, adjust=True, ignore_na=True).mean()),
    ]))
    out.append(("rolling Pearson w=%d" % corr_window, lambda: correlation.rolling_pearson(loss, grad, corr_window), [
        ("pandas rolling corr", lambda: s_loss.rolling(corr_window).corr(s_grad)),
    ]))
    out.append(("lagged Pearson lags -%d..%d" % (max_lag, max_lag),
                lambda: correlation.lagged_pearson(loss, grad, max_lag), [
        ("np.corrcoef per lag (loop)", lambda: _corrcoef_per_lag(loss, grad, max_lag)),
    ]))
    return out


def _corrcoef_per_lag(x, y, max_lag):
    """The loop the plugin avoids: one np.corrcoef per lag (lag k pairs y[i] with x[i+k])."""
    n = len(x)
    r = []
    for k in range(-max_lag, max_lag + 1):
        if k >= 0:
            r.append(np.corrcoef(x[k:], y[: n - k])[0, 1])
        else:
            r.append(np.corrcoef(x[: n + k], y[-k:])[0, 1])
    return r


def run(n, repeats, budget_seconds, log=print):
    """[{"case", "ours", "ours_repeats", "baselines": [{"name", "seconds", "repeats"}]}]."""
    results = []
    for label, ours, baselines in cases(n):
        seconds, count = timed(ours, repeats, budget_seconds)
        entry = {"case": label, "ours": seconds, "ours_repeats": count, "baselines": []}
        for name, baseline in baselines:
            b_seconds, b_count = timed(baseline, repeats, budget_seconds)
            entry["baselines"].append({"name": name, "seconds": b_seconds, "repeats": b_count})
        log("  %-32s ours %8.1f ms  %s" % (label, 1e3 * seconds, "  ".join(
            "%s %.1f ms" % (b["name"], 1e3 * b["seconds"]) for b in entry["baselines"])))
        results.append(entry)
    return results
