"""`GET averages`: the raw series and its moving average over a step range, reduced for display
(http_api.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tb_batchavg.server import encoding, params
from tb_batchavg.server import series as named_series
from tb_batchavg.stats import decimate
from tb_batchavg.stats.rolling import shown_average
from tb_batchavg.stats.windows import moving_average

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from tb_batchavg.server.store import Store


def handle(store: Store, request: Request) -> Response:
    args = request.args
    source = store.source(request)
    sampled = source.sampled
    run = params.text(args, "run")
    avg = params.averaging(args)
    start, end = params.step_range(args)
    max_points = params.max_points(args)
    version, tag, series, too_long = named_series.averaged(store, source, args, run, avg)
    key = ("averages", run, tag, tuple(sorted(avg.items())), start, end, max_points, version, sampled)

    def whole(computed):  # kept, so that another range of the run is served by slicing it
        key = ("averages:whole", run, tag, tuple(sorted(computed.items())), version, sampled)
        return store.whole(key, lambda: moving_average(series.step, series.value, **computed))

    def compute():
        raw = decimate.in_range(series.step, start, end)
        raw_step, raw_value, raw_wall = series.step[raw], series.value[raw], series.wall_time[raw]
        keep, raw_nonfinite = decimate.extremes_and_nonfinite(raw_value, max_points)
        nonfinite = raw_step[raw_nonfinite]
        answer = {
            "run": run,
            "tag": tag,
            "count": int(len(series.step)),
            "first_wall_time": float(series.wall_time[0]),
            "sampled": sampled,
            "params": avg,
            "range": {"start": start, "end": end},
            "nonfinite": nonfinite[:max_points].tolist(),
            "nonfinite_count": int(len(nonfinite)),
            "nonpositive_count": int(np.count_nonzero(raw_value <= 0)),  # what a log axis cannot show
            "raw": {
                "step": raw_step[keep].tolist(),
                "wall_time": raw_wall[keep].tolist(),
                "value": raw_value[keep].tolist(),
                "count": int(len(raw_step)),
            },
            "running_mean": named_series.running_mean(
                store, run, tag, series, version, sampled, start, end, max_points
            ),
        }
        if too_long is not None:  # the raw series only, and why (a 200: the tab asks for it)
            return dict(answer, average=None, **too_long)
        shown, count = shown_average(series.step, series.value, avg, start, end, max_points, whole)
        answer["average"] = {
            "step": shown.step.tolist(),
            "wall_time": series.wall_time[shown.index].tolist(),
            "value": shown.value.tolist(),
            "lower": shown.lower.tolist(),
            "upper": shown.upper.tolist(),
            "count": int(count),
        }
        return answer

    return encoding.respond(request, store.cached(key, compute), gzipped=True)
