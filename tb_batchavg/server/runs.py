"""`GET runs`: every run with its tags, detected roles, point counts and, when the plugin reads the
files itself, its loading state, progress, health and eviction (http_api.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tb_batchavg import metadata
from tb_batchavg.server import encoding

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from tb_batchavg.server.store import Store

# The runs route answers within about a second: it waits this long for a first discovery.
LISTING_WAIT_SECONDS = 0.8


def handle(store: Store, request: Request) -> Response:
    source = store.source(request, wait=LISTING_WAIT_SECONDS)
    sampled = source.sampled
    out = []
    for run in source.runs():
        count = source.counts(run)  # of one reload
        tags = sorted(count)
        entry = {
            "run": run,
            "tags": tags,
            "roles": metadata.detect_roles(tags, run, count),
            "count": count,
        }
        if not sampled:  # a sampled source has no loading, health or eviction (http_api.md)
            state = source.state(run)
            entry.update(
                state=state["state"], progress=state["progress"], health=source.health(run), evicted=state["evicted"]
            )
        out.append(entry)
    answer = {"runs": out, "sampled": sampled}
    if not sampled:
        answer["loading"] = source.loading()
        answer["errors"] = list(source.errors)
    return encoding.respond(request, encoding.json(answer))
