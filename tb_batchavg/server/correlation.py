"""`GET correlation`: how the loss and the gradient norm (or any two tags) of a run move together:
Pearson and Spearman, on values and on changes, rolling, lagged (http_api.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tb_batchavg import metadata
from tb_batchavg.server import encoding, params
from tb_batchavg.server import series as named_series
from tb_batchavg.stats import correlation, decimate

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from tb_batchavg.server.store import Store


def handle(store: Store, request: Request) -> Response:
    args = request.args
    source = store.source(request)
    sampled = source.sampled
    run = params.text(args, "run")
    window = params.integer(args, "window", metadata.DEFAULT_CORR_WINDOW, 2, metadata.MAX_WINDOW)
    max_lag = params.integer(args, "max_lag", metadata.DEFAULT_MAX_LAG, 0, metadata.MAX_LAG_LIMIT)
    start, end = params.step_range(args)
    max_points = params.max_points(args)
    version = store.open(source, run)
    x_tag, x = named_series.named(source, run, params.text(args, "x", "") or None, "x", "loss")
    y_tag, y = named_series.named(source, run, params.text(args, "y", "") or None, "y", "grad_norm")
    key = ("correlation", run, x_tag, y_tag, window, max_lag, start, end, max_points, version, sampled)
    # The whole run's statistics do not depend on start..end: computed once, then sliced.
    whole_key = ("correlation:whole", run, x_tag, y_tag, window, max_lag, version, sampled)

    def compute():
        c = store.whole(
            whole_key, lambda: correlation.correlate(x.step, x.value, y.step, y.value, window=window, max_lag=max_lag)
        )
        rolling = decimate.in_range(c.rolling_step, start, end)
        rolling_keep = decimate.minmax_indices(c.rolling[rolling], max_points)
        scatter = decimate.stride_indices(len(c.steps), max_points)
        answer = {
            "run": run,
            "x": x_tag,
            "y": y_tag,
            "sampled": sampled,
            "n": int(c.n),
            "window": window,
            "max_lag": max_lag,
            "pearson": float(c.pearson),
            "spearman": float(c.spearman),
            "pearson_diff": float(c.pearson_diff),
            "spearman_diff": float(c.spearman_diff),
            "rolling": {
                "step": c.rolling_step[rolling][rolling_keep].tolist(),
                "value": c.rolling[rolling][rolling_keep].tolist(),
            },
            "lag": {
                "lags": c.lags.tolist(),
                "value": c.lag_r.tolist(),
                "pairs": c.lag_pairs.tolist(),
                "best": c.best_lag,
                "best_n": None if c.best_lag is None else int(c.n - abs(c.best_lag)),
                "min_pairs": correlation.MIN_BEST_LAG_PAIRS,
            },
            "scatter": {
                "step": c.steps[scatter].tolist(),
                "x": c.x[scatter].tolist(),
                "y": c.y[scatter].tolist(),
            },
        }
        if window > c.n:  # no rolling line; the rest covers the run (a 200: the tab asks for it)
            answer.update(
                rolling=None,
                reason="window_longer_than_series",
                length=int(c.n),
                unit="pairs",
                message="window %d is longer than the joined series of run %r (%d steps where %r "
                "and %r are both logged and finite)" % (window, run, c.n, x_tag, y_tag),
            )
        return answer

    return encoding.respond(request, store.cached(key, compute), gzipped=True)
