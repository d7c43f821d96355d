"""`GET diagnostics`: the run's health from its loss, gradient norm and learning rate: spikes,
explosions, divergence, vanishing gradients, learning-rate changes (http_api.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tb_batchavg import metadata
from tb_batchavg.server import encoding, params
from tb_batchavg.server import series as named_series
from tb_batchavg.stats import diagnostics

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from tb_batchavg.server.store import Store


def handle(store: Store, request: Request) -> Response:
    args = request.args
    source = store.source(request)
    sampled = source.sampled
    run = params.text(args, "run")
    settings = params.diagnostics(args, diagnostics.DEFAULTS, diagnostics.parameters)
    max_points = params.max_points(args)
    version = store.open(source, run)
    detected = metadata.detect_roles(source.tags(run), run, source.counts(run))
    tags, series = {}, {}
    for role in metadata.ROLES:
        named = params.text(args, role, "") or None
        if named is None and detected[role] is None:
            tags[role] = None
            continue
        tags[role], found = named_series.named(source, run, named, role, role)
        series[role] = (found.step, found.value)
    if "window" in settings:  # only a window asked for: the default works on any run
        for role in ("loss", "grad_norm"):  # the series the rolling medians run over
            if role in series:
                params.window_fits(settings["window"], "points", series[role][0], run, tags[role])
    key = ("diagnostics", run, tuple(tags.items()), tuple(sorted(settings.items())), max_points, version, sampled)

    def compute():
        running = None
        if "loss" in series:  # a running mean since the epoch's start raises no spike at its resets
            found = source.series(run, tags["loss"])
            running = named_series.running_mean(store, run, tags["loss"], found, version, sampled)
        result = diagnostics.diagnose(**series, **settings, loss_resets=running and running["resets"])
        if running is not None:
            running["resets"] = running["resets"][:max_points]
        for summary in result["nonfinite"].values():
            if summary is not None:
                summary["steps"] = summary["steps"][:max_points]
        result["event_count"] = len(result["events"])
        result["events"] = bounded(result["events"], max_points)
        return {"run": run, "tags": tags, "sampled": sampled, **result, "running_mean": {"loss": running}}

    return encoding.respond(request, store.cached(key, compute), gzipped=True)


def bounded(events: list[dict[str, Any]], max_points: int) -> list[dict[str, Any]]:
    """At most `max_points` of `events` (in their order): every warning and critical one first,
    then info events from the start of the run."""
    if len(events) <= max_points:
        return events
    alarms = [i for i, e in enumerate(events) if e["severity"] != "info"][:max_points]
    infos = [i for i, e in enumerate(events) if e["severity"] == "info"][: max_points - len(alarms)]
    return [events[i] for i in sorted(alarms + infos)]
