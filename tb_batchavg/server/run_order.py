"""`GET run_order`: TensorBoard's own run order, as its core plugin serves /data/runs (first event
time, then name; every run with data of any kind): the tab gives colours in this order, as
TensorBoard's other tabs do (docs/tab.md, "Colours")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tensorboard import plugin_util

from tb_batchavg.server import encoding

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from tb_batchavg.server.store import Store


def handle(store: Store, request: Request) -> Response:
    names = []
    provider = store.provider
    if provider is not None:
        ctx = plugin_util.context(request.environ)
        experiment = plugin_util.experiment_id(request.environ)
        runs = provider.list_runs(ctx, experiment_id=experiment)
        names = [
            r.run_name
            for r in sorted(
                runs, key=lambda r: (r.start_time if r.start_time is not None else float("inf"), r.run_name)
            )
        ]
    return encoding.respond(request, encoding.json({"runs": names}))
