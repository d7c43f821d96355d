"""`GET group`: the mean across a group of runs of each run's moving average, with a band across
the runs (http_api.md; alignment and statistics: stats.groups)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tb_batchavg import metadata
from tb_batchavg.server import encoding, params
from tb_batchavg.server import series as named_series
from tb_batchavg.stats import decimate, groups
from tb_batchavg.stats.windows import moving_average

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from tb_batchavg.server.store import Store


def handle(store: Store, request: Request) -> Response:
    args = request.args
    source = store.source(request)
    sampled = source.sampled
    pattern = params.text(args, "runs")
    try:
        matcher = re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as e:
        raise params.BadRequest(
            "parameter 'runs' is not a valid regular expression: %r (%s)" % (pattern[:200], e)
        ) from None
    tag = params.text(args, "tag", "") or None
    role = args.get("role") or None
    if tag is None and role is None:
        raise params.BadRequest("missing parameter 'tag' or 'role'")
    if tag is not None and role is not None:
        raise params.BadRequest("parameters 'tag' and 'role' are exclusive: give one")
    if role is not None:
        role = params.choice(args, "role", metadata.ROLES, None)
    # The group's band is across runs (none|minmax|std|ci95); each run's own average has no band.
    avg = params.averaging({k: v for k, v in args.items() if k != "band"})
    band = params.choice(args, "band", groups.BANDS, "none")
    start, end = params.step_range(args)
    max_points = params.max_points(args)

    names = [run for run in source.runs() if matcher.search(run)]
    if not names:
        raise params.NotFound("no run matches parameter 'runs' %r" % pattern[:200])
    members, left_out, versions = [], [], []
    for run in names:
        version = store.open(source, run)
        versions.append(version)
        try:
            run_tag, found = named_series.named(source, run, tag, "tag" if tag else "role", role)
        except params.NotFound as e:
            left_out.append({"run": run, "reason": "no_series", "message": str(e)})
            continue
        too_long = named_series.averaging_fits(avg, found, run, run_tag)
        if too_long is not None:
            left_out.append(dict(too_long, run=run))
            continue
        members.append((run, run_tag, version))
    if not members and all(item["reason"] == "no_series" for item in left_out):
        raise params.NotFound(
            "no run matching %r has %s"
            % (pattern[:200], "tag %r" % tag if tag else "a %s tag" % role.replace("_", "-"))
        )
    computed = dict(avg, band="none")
    key = (
        "group",
        tuple(names),
        tuple(versions),
        tag,
        role,
        tuple(sorted(computed.items())),
        band,
        start,
        end,
        max_points,
        sampled,
    )

    def compute():
        averaged = []
        for run, run_tag, _ in members:
            version = store.open(source, run)
            found = source.series(run, run_tag)
            whole_key = ("averages:whole", run, run_tag, tuple(sorted(computed.items())), version, sampled)
            result = store.whole(whole_key, lambda found=found: moving_average(found.step, found.value, **computed))
            averaged.append((result.step, result.value))
        stats = groups.across(averaged, band, start, end)
        keep = decimate.minmax_indices(stats["mean"], max_points)
        answer = {
            "runs": [run for run, _, _ in members],
            "tags": {run: run_tag for run, run_tag, _ in members},
            "sampled": sampled,
            "params": computed,
            "band": band,
            "range": {"start": start, "end": end},
            "count": int(len(stats["step"])),
            "step": stats["step"][keep].tolist(),
            "mean": stats["mean"][keep].tolist(),
            "lower": stats["lower"][keep].tolist(),
            "upper": stats["upper"][keep].tolist(),
            "n": stats["n"][keep].tolist(),
            "left_out": left_out,
        }
        answer["tag" if tag else "role"] = tag or role
        return answer

    return encoding.respond(request, store.cached(key, compute), gzipped=True)
