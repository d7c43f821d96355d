"""The averages of a series as a chart shows them: a step range of the whole run's moving average,
reduced for display, with its band."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy.typing as npt

from tb_batchavg.stats import decimate
from tb_batchavg.stats.windows import Averaged, band_at, moving_average


def shown_average(
    steps: npt.ArrayLike,
    values: npt.ArrayLike,
    params: Mapping[str, Any],
    start: int | None,
    end: int | None,
    max_points: int,
    whole: Callable[[Mapping[str, Any]], Averaged] | None = None,
) -> tuple[Averaged, int]:
    """(Averaged of the shown points, number of averages in the range): the moving average
    (`params` as moving_average's) of the points whose step lies in [start, end], reduced to at
    most `max_points` by min/max buckets (decimate.minmax_indices).

    The whole run's average is `whole(parameters)` (default: moving_average of steps and values;
    a caller may keep it to serve other ranges). A band over windows much shorter than the series
    (max_points * window <= points) is left out of the whole run's average and computed at the
    shown points only (band_at): the std band then equals moving_average's up to rounding, the
    minmax band exactly.
    """
    if whole is None:

        def whole(computed):
            return moving_average(steps, values, **computed)

    spot = params["band"] != "none" and params["method"] != "ema" and max_points * params["window"] <= len(steps)
    result = whole(dict(params, band="none") if spot else params)
    shown = decimate.in_range(result.step, start, end)
    value = result.value[shown]
    keep = decimate.minmax_indices(value, max_points)
    if spot:
        lower, upper = band_at(steps, values, shown.start + keep, value[keep], **params)
    else:
        lower, upper = result.lower[shown][keep], result.upper[shown][keep]
    return Averaged(result.index[shown][keep], result.step[shown][keep], value[keep], lower, upper), len(value)
