"""The Batch Averages TensorBoard plugin: a routes table, the frontend's static files, and the one
edge where errors become HTTP answers.

Each route is a module of this package with `handle(store, request)`: it parses its parameters
(`params`), reads series through the store's source (`ingest.source.Source`), asks the statistics
(`stats`) and shapes the JSON of `http_api.md`.

At the edge: a route answers GET and HEAD, any other method a 405 with an `Allow` header; the
project's own `params.BadRequest` is a 400 and `params.NotFound` a 404, each with its message;
anything else is a 500 `{"error": "internal error"}`, its traceback logged here (the message of an
internal error, numpy's for instance, never reaches the client).
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from typing import TYPE_CHECKING

import numpy.ma  # noqa: F401 -- np.unique imports it at its first call: 10 ms of a first request
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_batchavg import metadata
from tb_batchavg.server import averages, correlation, diagnostics, encoding, export, group, params, run_order, runs
from tb_batchavg.server import store as store_module
from tb_batchavg.server.store import Store

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger(__name__)

ROUTES = {
    "/runs": runs.handle,
    "/run_order": run_order.handle,
    "/averages": averages.handle,
    "/correlation": correlation.handle,
    "/diagnostics": diagnostics.handle,
    "/export": export.handle,
    "/group": group.handle,
}
METHODS = ("GET", "HEAD")
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


class BatchAvgPlugin(base_plugin.TBPlugin):
    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext, store: Store | None = None) -> None:
        """`store`: one already reading the logdir (started by the loader as TensorBoard read its
        flags); else reading starts now, while TensorBoard starts, not at the first request."""
        if store is None:
            store = store_module.start(context.flags, context.logdir)
        store.provider = context.data_provider
        self._store = store

    # TensorBoard hooks ---------------------------------------------------------------------
    def get_plugin_apps(self) -> dict[str, WSGIApplication]:
        apps = {path: self._route(handle) for path, handle in ROUTES.items()}
        for name in _static_names():
            apps["/" + name] = _allowed(_static_app(name))
        return apps

    def is_active(self) -> bool:
        return False  # enabled through data_plugin_names when scalar data exists

    def data_plugin_names(self) -> tuple[str, ...]:
        return metadata.DATA_PLUGIN_NAMES

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name=metadata.TAB_NAME)

    # The edge ------------------------------------------------------------------------------
    def _route(self, handle):
        @wrappers.Request.application
        def app(request):
            try:
                params.query_string(request.query_string)
                return handle(self._store, request)
            except params.BadRequest as e:
                return encoding.error(request, 400, str(e), getattr(e, "detail", None))
            except params.NotFound as e:
                return encoding.error(request, 404, str(e))
            except Exception:
                logger.exception("batchavg: %s?%s failed", request.path, request.query_string.decode("latin-1"))
                return encoding.error(request, 500, "internal error")

        return _allowed(app)


def _allowed(app):
    """The WSGI `app` for GET and HEAD; a 405 JSON answer with an Allow header for any other
    method."""

    def checked(environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        if method in METHODS:
            return app(environ, start_response)
        allowed = ", ".join(METHODS)
        answer = encoding.error(
            wrappers.Request(environ),
            405,
            "method %s not allowed (allowed: %s)" % (method[:20], allowed),
            headers=[("Allow", allowed)],
        )
        return answer(environ, start_response)

    return checked


def _static_names():
    folder = resources.files("tb_batchavg.frontend")
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in _STATIC_TYPES)


def _static_app(name):
    """Serves the frontend file `name` (bound here: TensorBoard routes `name/` here too)."""
    content_type = _STATIC_TYPES[os.path.splitext(name)[1]]

    @wrappers.Request.application
    def app(request):
        body = resources.files("tb_batchavg.frontend").joinpath(name).read_bytes()
        return http_util.Respond(request, body, content_type)

    return app
