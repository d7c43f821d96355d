"""What the route handlers share about the series a request names: finding it, whether an
averaging window fits it, and its running mean since each epoch's start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tb_batchavg import metadata
from tb_batchavg.server import params

if TYPE_CHECKING:
    from tb_batchavg.ingest.source import Series, Source
    from tb_batchavg.server.store import Store


def named(source: Source, run: str, tag: str | None, parameter: str, role: str | None = None) -> tuple[str, Series]:
    """(tag, series) of `tag` in `run` (or, if `tag` is None, of the tag playing `role`), named by
    request parameter `parameter`; NotFound if there is none or it has no point."""
    if tag is None:
        tag = metadata.detect_roles(source.tags(run), run, source.counts(run))[role]
        if tag is None:
            raise params.NotFound(
                "run %r has no %s tag (known patterns: see http_api.md); name one with "
                "parameter '%s'" % (run, role.replace("_", "-"), parameter)
            )
    series = source.series(run, tag)
    if series is None or not len(series.step):
        raise params.NotFound("unknown tag %r in run %r (parameter '%s')" % (tag, run, parameter))
    return tag, series


def averaged(
    store: Store, source: Source, args: Mapping[str, str], run: str, avg: Mapping[str, Any]
) -> tuple[Any, str, Series, dict[str, Any] | None]:
    """(version, tag, series, averaging_fits(...)) of the series named by parameter `tag` in
    `run`, opened in the store, for averaging parameters `avg`."""
    version = store.open(source, run)
    tag, series = named(source, run, params.text(args, "tag"), "tag")
    return version, tag, series, averaging_fits(avg, series, run, tag)


def averaging_fits(avg: Mapping[str, Any], series: Series, run: str, tag: str) -> dict[str, Any] | None:
    """None when the averaging window fits `series` (the EMA has no window), else what a window
    longer than the series is answered with (http_api.md): {"reason":
    "window_longer_than_series", "window", "length", "unit", "message"}."""
    if avg["method"] == "ema":
        return None
    try:
        params.window_fits(avg["window"], avg["unit"], series.step, run, tag)
    except params.WindowTooLong as e:
        return dict(e.detail, message=str(e))
    return None


def running_mean(
    store: Store,
    run: str,
    tag: str,
    series: Series,
    version: Any,
    sampled: bool,
    start: int | None = None,
    end: int | None = None,
    max_points: int | None = None,
) -> dict[str, Any] | None:
    """metadata.running_mean of a series (computed once per data version), with its resets cut to
    start..end (the first max_points) and counted."""
    found = store.whole(
        ("running_mean", run, tag, version, sampled), lambda: metadata.running_mean(tag, series.step, series.value)
    )
    if found is None:
        return None
    resets = [s for s in found["resets"] if (start is None or s >= start) and (end is None or s <= end)]
    return dict(found, resets=resets[:max_points] if max_points else resets, reset_count=len(resets))
