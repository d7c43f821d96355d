"""The numeric core against pandas and against the article's `np.convolve` moving average, and
against itself on one thread (the plugin shares a computation's pieces among threads, one per
core: `tb_batchavg.stats.workers`; pandas and np.convolve use one).

Every case runs on the same arrays: a training-like loss and gradient norm of `n` points (as
float64, the reader's column type), steps 0..n-1. A case's callables (ours and its baselines) are
timed in alternation, `repeats` rounds (fewer once a callable's time budget is spent), so that a
drift in the shared machine's speed falls on all of them alike; medians are reported.
"""

import statistics
import time

import numpy as np
import pandas as pd

from bench.timing import spent
from tb_batchavg.stats import correlation, windows, workers
from tests.helpers import training_like


def timed_together(functions, repeats, budget_seconds):
    """[(median seconds, calls)] of each function: one untimed call each (first-call costs, such
    as the page faults of a heap still growing), then `repeats` rounds that call each once; a
    function sits out the rest once another call, as long as its last, would take its total over
    `budget_seconds`."""
    for function in functions:
        function()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, seconds in zip(functions, times):
            if spent(seconds, budget_seconds):
                continue
            started = time.perf_counter()
            function()
            seconds.append(time.perf_counter() - started)
    return [(statistics.median(seconds), len(seconds)) for seconds in times]


def on_one_thread(function):
    """`function` with the plugin's helper threads turned off (workers.HELPERS = 0): all its
    work in the calling thread, as on a machine with one core."""

    def call():
        helpers, workers.HELPERS = workers.HELPERS, 0
        try:
            return function()
        finally:
            workers.HELPERS = helpers

    return call


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
        out.append(
            (
                "SMA w=%d" % w,
                ours(method="sma", window=w),
                [
                    ("pandas rolling mean", lambda w=w: s_loss.rolling(w).mean()),
                    ("np.convolve (article)", lambda w=w: convolve_sma(loss, w)),
                ],
            )
        )
    out.append(
        (
            "SMA w=50 + std band",
            ours(method="sma", window=50, band="std"),
            [
                ("pandas rolling mean + std", lambda: (s_loss.rolling(50).mean(), s_loss.rolling(50).std())),
            ],
        )
    )
    for w in median_windows:
        out.append(
            (
                "median w=%d" % w,
                ours(method="median", window=w),
                [
                    ("pandas rolling median", lambda w=w: s_loss.rolling(w).median()),
                ],
            )
        )
    out.append(
        (
            "EMA weight=0.6",
            ours(method="ema", weight=0.6),
            [
                ("pandas ewm mean", lambda: s_loss.ewm(alpha=0.4, adjust=True, ignore_na=True).mean()),
            ],
        )
    )
    out.append(
        (
            "rolling Pearson w=%d" % corr_window,
            lambda: correlation.rolling_pearson(loss, grad, corr_window),
            [
                ("pandas rolling corr", lambda: s_loss.rolling(corr_window).corr(s_grad)),
            ],
        )
    )
    out.append(
        (
            "lagged Pearson lags -%d..%d" % (max_lag, max_lag),
            lambda: correlation.lagged_pearson(loss, grad, max_lag),
            [
                ("np.corrcoef per lag (loop)", lambda: _corrcoef_per_lag(loss, grad, max_lag)),
            ],
        )
    )
    # ours again with every piece in the calling thread: what the helper threads bring (the EMA
    # and the lagged Pearson have no pieces to share)
    return [
        (
            label,
            mine,
            baselines + ([] if label.startswith(("EMA", "lagged")) else [("ours on one thread", on_one_thread(mine))]),
        )
        for label, mine, baselines in out
    ]


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
        (seconds, count), *measured = timed_together([ours] + [b for _, b in baselines], repeats, budget_seconds)
        entry = {"case": label, "ours": seconds, "ours_repeats": count, "baselines": []}
        for (name, _), (b_seconds, b_count) in zip(baselines, measured):
            entry["baselines"].append({"name": name, "seconds": b_seconds, "repeats": b_count})
        log(
            "  %-32s ours %8.1f ms  %s"
            % (
                label,
                1e3 * seconds,
                "  ".join("%s %.1f ms" % (b["name"], 1e3 * b["seconds"]) for b in entry["baselines"]),
            )
        )
        results.append(entry)
    return results
