"""The Batch Averages TensorBoard plugin: HTTP routes only.

Each route parses its parameters (`params`), fetches full-resolution series (`reader`, or the
sampled `provider` fallback), asks the numeric core (`windows`, `correlation`, `diagnostics`,
`decimate`) and shapes the JSON described in `http_api.md`. Responses are cached per
(route, parameters, run data version).
"""

import logging
import os
import re
import threading
import time
import zlib
from importlib import resources

import numpy as np
import orjson
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_batchavg import metadata
from tb_batchavg import params
from tb_batchavg import windows
from tb_batchavg.cache import ResultCache
from tb_batchavg.ingest.provider import ProviderReader
from tb_batchavg.ingest.reader import LogdirReader
from tb_batchavg.stats import correlation
from tb_batchavg.stats import decimate
from tb_batchavg.stats import diagnostics

logger = logging.getLogger(__name__)

_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_JSON = "application/json"
# At most this many responses are computed at once: each holds working memory proportional to its
# series (tens of MB per 100,000 points), so 32 concurrent requests would hold 32 times that; the
# GIL leaves little speed to gain from more. Cache hits never wait.
_COMPUTE_SLOTS = 4
# Computed responses are cached gzipped with Huffman coding only (TensorBoard's own is deflate level
# 3): on lists of numbers, deflate's string matching (at level 1) takes a third more time to save
# under 1% of the bytes (about 10% on the most repetitive answers).
_GZIP = {"level": 1, "method": zlib.DEFLATED, "wbits": 31, "strategy": zlib.Z_HUFFMAN_ONLY}
# Rows of a CSV export formed at a time.
_CSV_ROWS = 1 << 16
# The runs route answers within about a second: it waits this long for a first discovery.
_LISTING_WAIT_SECONDS = 0.8
# A run asked for this recently keeps its columns when the budget evicts: requests may read them.
IN_USE_SECONDS = 5.0


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json(obj):
    """UTF-8 JSON of `obj` (dicts with str keys, lists, str, int, float, None, numpy scalars).
    A NaN or +-Inf float is written as null: JSON has no such numbers, and every route
    documents a missing value as null. orjson formats each float as its shortest round-trip
    decimal, like Python's repr, about 20 times faster than the json module."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # a run name from a file name that is not UTF-8 (held as lone surrogates)
        return orjson.dumps(_utf8(obj), option=orjson.OPT_SERIALIZE_NUMPY)


def _utf8(obj):
    """`obj` (nested dicts and lists) with each lone surrogate in its strings replaced by U+FFFD,
    as a browser shows an undecodable byte."""
    if isinstance(obj, str):
        return _SURROGATE.sub("\ufffd", obj)
    if isinstance(obj, dict):
        return {_utf8(k): _utf8(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_utf8(v) for v in obj]
    return obj


class _Held:
    """A computed whole-run result kept in the ResultCache, which budgets entries by len():
    its numpy arrays' bytes (a small fixed size for anything else)."""

    __slots__ = ("value", "nbytes")

    def __init__(self, value):
        self.value = value
        parts = value if isinstance(value, tuple) else (value,)
        self.nbytes = 256 + sum(int(getattr(part, "nbytes", 0)) for part in parts)

    def __len__(self):
        return self.nbytes


def _in_range(steps, start, end):
    """Slice of positions whose step lies in [start, end] (None means unbounded)."""
    lo = 0 if start is None else int(np.searchsorted(steps, start, side="left"))
    hi = len(steps) if end is None else int(np.searchsorted(steps, end, side="right"))
    return slice(lo, hi)


class BatchAvgPlugin(base_plugin.TBPlugin):
    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        flags = context.flags
        logdir = getattr(flags, "logdir", None) or context.logdir or ""
        logdir_spec = getattr(flags, "logdir_spec", None) or ""
        cache_mb = getattr(flags, "batchavg_cache_mb", None)
        self._budget = (metadata.DEFAULT_CACHE_MB if cache_mb is None else cache_mb) * 2**20
        self._reader = LogdirReader(logdir, logdir_spec)
        self._provider = context.data_provider
        self._cache = ResultCache(self._budget)
        self._computing = threading.BoundedSemaphore(_COMPUTE_SLOTS)
        reload_seconds = getattr(flags, "batchavg_reload_seconds", None)
        # Reading starts now, while TensorBoard starts, not at the first request.
        self._reader.start(metadata.DEFAULT_RELOAD_SECONDS if reload_seconds is None else reload_seconds,
                           fit=self._fit)

    # TensorBoard hooks ---------------------------------------------------------------------
    def get_plugin_apps(self):
        apps = {
            "/runs": self._route(self._runs),
            "/run_order": self._route(self._run_order),
            "/averages": self._route(self._averages),
            "/correlation": self._route(self._correlation),
            "/diagnostics": self._route(self._diagnostics),
            "/export": self._route(self._export),
        }
        for name in self._static_names():
            apps["/" + name] = self._static_app(name)
        return apps

    def is_active(self):
        return False  # enabled through data_plugin_names when scalar data exists

    def data_plugin_names(self):
        return metadata.DATA_PLUGIN_NAMES

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name=metadata.TAB_NAME)

    # Plumbing ------------------------------------------------------------------------------
    def _route(self, handler):
        @wrappers.Request.application
        def app(request):
            try:
                params.query_string(request.query_string)
                body, content_type, headers, encoding = handler(request)
                return http_util.Respond(request, body, content_type, headers=headers,
                                         content_encoding=encoding)
            except params.BadRequest as e:
                return self._error(request, 400, str(e), getattr(e, "detail", None))
            except params.NotFound as e:
                return self._error(request, 404, str(e))
            except ValueError as e:  # a numeric-core precondition the parser did not catch
                return self._error(request, 400, str(e))

        return app

    @staticmethod
    def _error(request, code, message, detail=None):
        body = _json({"error": message, **(detail or {})})
        return http_util.Respond(request, body, _JSON, code=code)

    @staticmethod
    def _static_names():
        folder = resources.files("tb_batchavg.frontend")
        return sorted(
            p.name for p in folder.iterdir() if p.is_file() and p.suffix in _STATIC_TYPES
        )

    @staticmethod
    def _static_app(name):
        """Serves the frontend file `name` (bound here: TensorBoard routes `name/` here too)."""
        content_type = _STATIC_TYPES[os.path.splitext(name)[1]]

        @wrappers.Request.application
        def app(request):
            body = resources.files("tb_batchavg.frontend").joinpath(name).read_bytes()
            return http_util.Respond(request, body, content_type)

        return app

    def _source(self, request, wait=None):
        """The logdir reader (after a first discovery, waited for up to `wait` seconds), or the
        sampled data-provider fallback when no logdir is given (e.g. --grpc_data_provider).

        A logdir that cannot be read (a missing bucket, a store down) stays the source: its
        errors are listed, and the data already read stays served.
        """
        if self._provider is None or self._reader.roots:
            self._reader.wait_discovered(wait)
            return self._reader, False
        experiment = plugin_util.experiment_id(request.environ)
        return ProviderReader(self._provider, experiment, request.environ), True

    def _open_run(self, source, run):
        """Checks that `run` exists and has been read (waiting for its loading if it is still
        loading); returns its data version.

        The version is taken before any column is, so a cached result is never filed under a
        version newer than the data it was computed from.
        """
        version = source.open(run)
        if version is None:
            raise params.NotFound("unknown run %r" % run)
        self._fit(keep=run)
        return version

    def _fit(self, held=None, keep=None):
        """Keeps columns and results within the budget: evicts the columns of the runs least
        recently used (other than `keep` and those asked for in the last IN_USE_SECONDS) until
        the columns fit, then limits the results to what the columns leave. `held` is the bytes
        the columns hold, if known. Returns whether columns were evicted."""
        held = self._reader.nbytes() if held is None else held
        freed = 0
        if held > self._budget:
            freed = self._reader.evict_least_recent(held - self._budget, keep=keep,
                                                    used_before=time.monotonic() - IN_USE_SECONDS)
            held = self._reader.nbytes()
        self._cache.limit(self._budget - held)  # results give way to columns
        return freed > 0

    @staticmethod
    def _series(source, run, tag, parameter, role=None):
        """The series of `tag` (or, if None, of the tag playing `role`), named by `parameter`."""
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

    @staticmethod
    def _averaging_fits(avg, series, run, tag):
        """None when the averaging window fits `series` (the EMA has no window), else what a
        window longer than the series is answered with (http_api.md): {"reason":
        "window_longer_than_series", "window", "length", "unit", "message"}."""
        if avg["method"] == "ema":
            return None
        try:
            params.window_fits(avg["window"], avg["unit"], series.step, run, tag)
        except params.WindowTooLong as e:
            return dict(e.detail, message=str(e))
        return None

    def _whole(self, key, compute):
        """A whole-run result (numpy arrays), computed once per key and kept in the result cache
        (within the memory budget) so that a zoomed range is served by slicing it."""
        held = self._cache.get(key)
        if held is None:
            held = _Held(compute())
            self._cache.put(key, held)
        return held.value

    def _cached(self, key, compute):
        body = self._cache.get(key)
        if body is None:
            with self._computing:
                body = self._cache.get(key)  # computed by a request that held the slot before?
                if body is None:
                    body = _json(compute())
                    packer = zlib.compressobj(**_GZIP)
                    body = packer.compress(body) + packer.flush()
                    self._cache.put(key, body)
        return body, _JSON, None, "gzip"  # unzipped on the way out for a client that did not ask

    # Routes --------------------------------------------------------------------------------
    def _runs(self, request):
        source, sampled = self._source(request, wait=_LISTING_WAIT_SECONDS)
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
                entry.update(state=state["state"], progress=state["progress"], health=source.health(run),
                             evicted=state["evicted"])
            out.append(entry)
        answer = {"runs": out, "sampled": sampled}
        if not sampled:
            answer["loading"] = source.loading()
            answer["errors"] = list(source.errors)
        return _json(answer), _JSON, None, None

    def _run_order(self, request):
        """TensorBoard's own run order, as its core plugin serves /data/runs (first event time,
        then name; every run with data of any kind): the tab gives colours in this order, as
        TensorBoard's other tabs do (README, "Colours")."""
        names = []
        if self._provider is not None:
            ctx = plugin_util.context(request.environ)
            experiment = plugin_util.experiment_id(request.environ)
            runs = self._provider.list_runs(ctx, experiment_id=experiment)
            names = [r.run_name for r in sorted(runs, key=lambda r: (
                r.start_time if r.start_time is not None else float("inf"), r.run_name))]
        return _json({"runs": names}), _JSON, None, None

    def _averages(self, request):
        args = request.args
        source, sampled = self._source(request)
        run = params.text(args, "run")
        avg = params.averaging(args)
        start, end = params.step_range(args)
        max_points = params.max_points(args)
        version = self._open_run(source, run)
        tag, series = self._series(source, run, params.text(args, "tag"), "tag")
        too_long = self._averaging_fits(avg, series, run, tag)
        key = ("averages", run, tag, tuple(sorted(avg.items())), start, end, max_points, version, sampled)

        # A band over windows much shorter than the series is computed at the shown points only.
        spot = avg["band"] != "none" and avg["method"] != "ema" and max_points * avg["window"] <= len(series.step)
        computed = dict(avg, band="none") if spot else avg
        whole_key = ("averages:whole", run, tag, tuple(sorted(computed.items())), version, sampled)

        def compute():
            raw = _in_range(series.step, start, end)
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
                "running_mean": self._running_mean(run, tag, series, version, sampled, start, end, max_points),
            }
            if too_long is not None:  # the raw series only, and why (a 200: the tab asks for it)
                return dict(answer, average=None, **too_long)
            result = self._whole(whole_key, lambda: windows.moving_average(series.step, series.value, **computed))
            shown = _in_range(result.step, start, end)
            avg_value = result.value[shown]
            avg_keep = decimate.minmax_indices(avg_value, max_points)
            if spot:
                lower, upper = windows.band_at(series.step, series.value, shown.start + avg_keep,
                                               avg_value[avg_keep], **avg)
            else:
                lower, upper = result.lower[shown][avg_keep], result.upper[shown][avg_keep]
            answer["average"] = {
                "step": result.step[shown][avg_keep].tolist(),
                "wall_time": series.wall_time[result.index[shown][avg_keep]].tolist(),
                "value": avg_value[avg_keep].tolist(),
                "lower": lower.tolist(),
                "upper": upper.tolist(),
                "count": int(len(avg_value)),
            }
            return answer

        return self._cached(key, compute)

    def _running_mean(self, run, tag, series, version, sampled, start=None, end=None, max_points=None):
        """metadata.running_mean of a series (computed once per data version), with its resets
        cut to start..end (the first max_points) and counted."""
        found = self._whole(("running_mean", run, tag, version, sampled),
                            lambda: metadata.running_mean(tag, series.step, series.value))
        if found is None:
            return None
        resets = [s for s in found["resets"] if (start is None or s >= start) and (end is None or s <= end)]
        return dict(found, resets=resets[:max_points] if max_points else resets, reset_count=len(resets))

    def _correlation(self, request):
        args = request.args
        source, sampled = self._source(request)
        run = params.text(args, "run")
        window = params.integer(args, "window", metadata.DEFAULT_CORR_WINDOW, 2, metadata.MAX_WINDOW)
        max_lag = params.integer(args, "max_lag", metadata.DEFAULT_MAX_LAG, 0, metadata.MAX_LAG_LIMIT)
        start, end = params.step_range(args)
        max_points = params.max_points(args)
        version = self._open_run(source, run)
        x_tag, x = self._series(source, run, params.text(args, "x", "") or None, "x", "loss")
        y_tag, y = self._series(source, run, params.text(args, "y", "") or None, "y", "grad_norm")
        key = ("correlation", run, x_tag, y_tag, window, max_lag, start, end, max_points, version, sampled)
        # The whole run's statistics do not depend on start..end: computed once, then sliced.
        whole_key = ("correlation:whole", run, x_tag, y_tag, window, max_lag, version, sampled)

        def compute():
            c = self._whole(whole_key, lambda: correlation.correlate(x.step, x.value, y.step, y.value,
                                                                      window=window, max_lag=max_lag))
            rolling = _in_range(c.rolling_step, start, end)
            rolling_keep = decimate.minmax_indices(c.rolling[rolling], max_points)
            scatter = decimate.stride_indices(len(c.steps), max_points)
            lags = np.asarray(c.lags)
            pairs = c.n - np.abs(lags)  # joined pairs at each lag
            enough = pairs >= metadata.MIN_BEST_LAG_PAIRS
            best = correlation.best_lag(lags[enough], np.asarray(c.lag_r)[enough])
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
                    "lags": lags.tolist(),
                    "value": c.lag_r.tolist(),
                    "pairs": pairs.tolist(),
                    "best": None if best is None else int(best),
                    "best_n": None if best is None else int(c.n - abs(best)),
                    "min_pairs": metadata.MIN_BEST_LAG_PAIRS,
                },
                "scatter": {
                    "step": c.steps[scatter].tolist(),
                    "x": c.x[scatter].tolist(),
                    "y": c.y[scatter].tolist(),
                },
            }
            if window > c.n:  # no rolling line; the rest covers the run (a 200: the tab asks for it)
                answer.update(rolling=None, reason="window_longer_than_series", length=int(c.n), unit="pairs",
                              message="window %d is longer than the joined series of run %r (%d steps where %r "
                                      "and %r are both logged and finite)" % (window, run, c.n, x_tag, y_tag))
            return answer

        return self._cached(key, compute)

    def _diagnostics(self, request):
        args = request.args
        source, sampled = self._source(request)
        run = params.text(args, "run")
        settings = params.diagnostics(args, diagnostics.DEFAULTS)
        max_points = params.max_points(args)
        version = self._open_run(source, run)
        detected = metadata.detect_roles(source.tags(run), run, source.counts(run))
        tags, series = {}, {}
        for role in metadata.ROLES:
            named = params.text(args, role, "") or None
            if named is None and detected[role] is None:
                tags[role] = None
                continue
            tags[role], found = self._series(source, run, named, role, role)
            series[role] = (found.step, found.value)
        if "window" in settings:  # only a window asked for: the default works on any run
            for role in ("loss", "grad_norm"):  # the series the rolling medians run over
                if role in series:
                    params.window_fits(settings["window"], "points", series[role][0], run, tags[role])
        key = ("diagnostics", run, tuple(tags.items()), tuple(sorted(settings.items())), max_points,
               version, sampled)

        def compute():
            running = None
            if "loss" in series:  # a running mean since the epoch's start raises no spike at its resets
                found = source.series(run, tags["loss"])
                running = self._running_mean(run, tags["loss"], found, version, sampled)
            result = diagnostics.diagnose(**series, **settings, loss_resets=running and running["resets"])
            if running is not None:
                running["resets"] = running["resets"][:max_points]
            for summary in result["nonfinite"].values():
                if summary is not None:
                    summary["steps"] = summary["steps"][:max_points]
            return {"run": run, "tags": tags, "sampled": sampled, **result, "running_mean": {"loss": running}}

        return self._cached(key, compute)

    def _export(self, request):
        args = request.args
        source, sampled = self._source(request)
        run = params.text(args, "run")
        avg = params.averaging(args)
        fmt = params.choice(args, "format", metadata.X_FORMATS, "csv")
        self._open_run(source, run)
        tag, series = self._series(source, run, params.text(args, "tag"), "tag")
        too_long = self._averaging_fits(avg, series, run, tag)
        name = "%s_%s_%s%s" % (run, tag, avg["method"], avg["weight"] if avg["method"] == "ema" else avg["window"])
        filename = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:150] or "export"
        with self._computing:  # the body is built whole: working memory as in _cached
            average = np.full(len(series.step), np.nan)
            has_average = np.zeros(len(series.step), dtype=bool)
            if too_long is None:  # else every row has an empty average, and the answer says why
                result = windows.moving_average(series.step, series.value, **avg)
                average[result.index] = result.value
                has_average[result.index] = True
            if fmt == "json":
                body = _json(
                    {
                        "run": run,
                        "tag": tag,
                        "sampled": sampled,
                        "params": avg,
                        "step": series.step.tolist(),
                        "wall_time": series.wall_time.tolist(),
                        "value": series.value.tolist(),
                        "average": None if too_long else
                        [v if h else None for v, h in zip(average.tolist(), has_average.tolist())],
                        **(too_long or {}),
                    }
                )
                content_type = _JSON
            else:
                body = _csv(series, average, has_average)
                content_type = "text/csv"
        headers = [("Content-Disposition", 'attachment; filename="%s.%s"' % (filename, fmt))]
        if too_long is not None:
            headers.append(("X-Batchavg-Reason", too_long["reason"]))
        return body, content_type, headers, None


def _texts(array):
    """Each number of `array` as bytes: the shortest decimal that reads back as the same float
    (orjson's, one call for the whole column); NaN and +-Inf as nan, inf and -inf."""
    texts = orjson.dumps(array.tolist())[1:-1].split(b",") if len(array) else []
    if array.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(array))
        for i, x in zip(bad.tolist(), array[bad].tolist()):
            texts[i] = b"nan" if x != x else b"inf" if x > 0 else b"-inf"
    return texts


def _csv(series, average, has_average):
    """CSV bytes `step,wall_time,value,average`; an empty average where the window has none.
    Formed _CSV_ROWS rows at a time, so that the texts of single numbers never pile up."""
    parts = [b"step,wall_time,value,average\n"]
    for first in range(0, len(series.step), _CSV_ROWS):
        rows = slice(first, first + _CSV_ROWS)
        averages = _texts(average[rows])
        for i in np.flatnonzero(~has_average[rows]).tolist():
            averages[i] = b""
        columns = (_texts(series.step[rows]), _texts(series.wall_time[rows]), _texts(series.value[rows]), averages)
        parts.append(b"".join(b",".join(row) + b"\n" for row in zip(*columns)))
    return b"".join(parts)
