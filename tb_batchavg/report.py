"""`tb-batchavg report`: the diagnostics of every run of a logdir, for pipelines and sweeps.

Each run's answer is what the plugin's `diagnostics` route answers for it: `run_diagnostics`
calls the route's own handler (tb_batchavg.server.diagnostics.handle) on a request with the
report's settings, over a one-run source (same role detection, defaults, parsing and
post-processing); tests/test_report.py checks the answers equal the route's JSON run by run.

One task per run: a task is given the run's name and directory and reads that run itself
(through TensorBoard's filesystem layer, as the tab reads it: local paths, gs://, s3://), so no
column crosses a process boundary. Tasks run in worker processes (`engine="local"`, a
concurrent.futures.ProcessPoolExecutor, every core by default), or as Ray tasks (`engine="ray"`,
where each task reads its run on the node it runs on). Each task returns plain JSON values, so the
two engines give the same report.

The JSON report (schema version 1, docs/report.md):

    {"schema_version": 1, "logdir": str, "settings": {given diagnostics settings},
     "errors": [str],                       # the logdir itself could not be listed
     "runs": [{"run", "status", "tags", "events", ...the diagnostics answer..., "health"}],
     "summary": {"ok": n, "warning": n, "diverged": n, "no_data": n, "error": n}}
"""

from __future__ import annotations

import gzip
import html
import math
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import werkzeug.test
from werkzeug import wrappers

from tb_batchavg import metadata
from tb_batchavg.ingest import reader as _reader
from tb_batchavg.server import diagnostics as route_diagnostics
from tb_batchavg.server import encoding, params
from tb_batchavg.stats import decimate, diagnostics

if TYPE_CHECKING:
    import argparse

    from tb_batchavg.ingest.source import Source

SCHEMA_VERSION = 1
FORMATS = ("table", "json", "markdown", "html")
STATUSES = ("ok", "warning", "diverged", "no_data", "error")
# --fail-on LEVEL: the statuses that meet it.
FAIL_ON = {"warning": ("warning", "diverged"), "diverged": ("diverged",)}
FLAGGED = ("warning", "diverged")
ENGINES = ("local", "ray")
CHART_POINTS = 400  # loss points kept (extremes first, decimate.minmax_indices) per chart in HTML


# The settings ------------------------------------------------------------------------------


def settings_from(values: Mapping[str, str | None]) -> tuple[dict[str, float], dict[str, str | None], int]:
    """(settings, named tags, max_points) from the route's parameter names -> strings (as a
    query string gives them; absent or "" means the default), parsed exactly as the route
    parses them. Raises params.BadRequest."""
    values = {k: v for k, v in values.items() if v is not None}
    settings = params.diagnostics(values, diagnostics.DEFAULTS)
    named = {role: params.text(values, role, "") or None for role in metadata.ROLES}
    return settings, named, params.max_points(values)


# One run -----------------------------------------------------------------------------------


def run_diagnostics(source: Source, run: str, version: Any, values: Mapping[str, str | None]) -> dict[str, Any]:
    """The `diagnostics` route's answer for `run` (before JSON), computed by the route's own
    handler (tb_batchavg.server.diagnostics.handle) on a request carrying `values` (the route's
    parameter names -> strings): `source` has tags(run), counts(run), series(run, tag) and
    `sampled`, as the reader's Source. Raises params.NotFound or params.BadRequest where the
    route answers 404 or 400."""
    store = _OneRunStore(source, run, version)
    query = {k: v for k, v in values.items() if v not in (None, "")}
    request = wrappers.Request(
        werkzeug.test.EnvironBuilder(path="/diagnostics", query_string=dict(query, run=run)).get_environ()
    )
    route_diagnostics.handle(store, request)
    return store.answer


class _OneRunStore:
    """The store the route's handler is given here: one run's source; results are computed
    once, never kept; the answer is kept as computed (before JSON) in `answer`."""

    def __init__(self, source, run, version):
        self._source, self._run, self._version = source, run, version
        self.answer = None

    def source(self, request, wait=None):
        return self._source

    def open(self, source, run):
        if run != self._run:
            raise params.NotFound("unknown run %r" % run)
        return self._version

    def whole(self, key, compute):
        return compute()

    def cached(self, key, compute):
        self.answer = compute()
        return gzip.compress(b"{}")


class _OneRun:
    """One reader.Run seen through the reader's Source interface (what the handler uses)."""

    sampled = False

    def __init__(self, run):
        self._run = run

    def tags(self, run):
        return self._run.tags()

    def counts(self, run):
        return self._run.counts()

    def series(self, run, tag):
        return self._run.series(tag)


def _plain(obj):
    """`obj` as the route's JSON gives it back: plain lists, dicts, str, int, float and None
    (NaN and +-Inf as None, numpy scalars as numbers, lone surrogates as U+FFFD)."""
    return orjson.loads(encoding.json(obj))


def task(name: str, directory: str, values: Mapping[str, str | None], chart: bool = False) -> dict[str, Any]:
    """Reads one run from `directory` and diagnoses it: {"answer": the run's report entry (plain
    JSON values), "chart": None, or for a flagged run when `chart`, {"step", "value"} of its loss
    (at most CHART_POINTS, extremes kept)}. Runs in a worker process or a Ray task."""
    run = _reader.Run(name, directory)
    run.load()
    source = _OneRun(run)
    chart_data = None
    try:
        answer = run_diagnostics(source, name, run.version, values)
    except (params.BadRequest, params.NotFound, ValueError) as e:  # the route's 400 and 404
        answer = {
            "run": name,
            "status": "error",
            "error": str(e),
            "tags": metadata.detect_roles(source.tags(name), name, source.counts(name)),
            "events": [],
        }
    answer["health"] = run.health()
    if chart and answer["status"] in FLAGGED and answer["tags"].get("loss"):
        loss = source.series(name, answer["tags"]["loss"])
        keep = decimate.minmax_indices(loss.value, CHART_POINTS)
        chart_data = {"step": loss.step[keep], "value": loss.value[keep]}
    return _plain({"answer": answer, "chart": chart_data})


def _task_args(args):
    return task(*args)


# The runs ----------------------------------------------------------------------------------


def list_runs(logdir: str, pattern: str | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """([(run, directory)] in name order, matching the regular expression `pattern` (searched
    anywhere in the name) when given, [errors of the logdir's listing])."""
    reader = _reader.LogdirReader(logdir)
    reader.discover()
    found = re.compile(pattern) if pattern else None
    runs = [(run.name, run.directory) for run in reader.run_objects() if found is None or found.search(run.name)]
    return runs, list(reader.errors)


class Progress:
    """A plain-text progress bar, `[#####.....] 12/200 runs`, on `stream` (stderr): redrawn in
    place on a terminal, else a line each time the bar grows (at most `width` + 1 lines)."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 20) -> None:
        self.total, self.width = total, width
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown = None

    def update(self, done: int) -> None:
        filled = self.width * done // self.total if self.total else self.width
        if not self.tty and filled == self._shown and done < self.total:
            return
        self._shown = filled
        bar = "[%s%s] %d/%d runs" % ("#" * filled, "." * (self.width - filled), done, self.total)
        self.stream.write(("\r" + bar + ("\n" if done >= self.total else "")) if self.tty else bar + "\n")
        self.stream.flush()


def _local(tasks, workers, progress):
    results = [None] * len(tasks)
    if workers <= 1 or len(tasks) <= 1:
        for i, args in enumerate(tasks):
            results[i] = _task_args(args)
            progress.update(i + 1)
        return results
    import concurrent.futures

    with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        futures = {pool.submit(_task_args, args): i for i, args in enumerate(tasks)}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            results[futures[future]] = future.result()
            progress.update(done)
    return results


def _ray(tasks, address, progress):
    """The tasks as Ray remote functions, on the cluster at `address` (ray.init(address=...)) or
    a local Ray started here (and stopped after). Ray is imported here only."""
    import ray

    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(_task_args)
        refs = [remote.remote(args) for args in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        results = [None] * len(tasks)
        pending, done = list(refs), 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                results[index[ref]] = ray.get(ref)
                done += 1
            progress.update(done)
        return results
    finally:
        if started:
            ray.shutdown()


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def build(
    logdir: str,
    values: Mapping[str, str | None] | None = None,
    runs: str | None = None,
    workers: int | None = None,
    engine: str = "local",
    address: str | None = None,
    charts: bool = False,
    stream: TextIO | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The report of `logdir`: (report dict (JSON schema above), {run: chart data} of the
    flagged runs when `charts`). `values`: the route's parameter names -> strings; `runs`: a
    regular expression over run names; `workers`: processes (default: every core)."""
    values = {k: v for k, v in (values or {}).items() if v not in (None, "")}
    settings = settings_from(values)[0]  # refused here, before any run is read
    listed, errors = list_runs(logdir, runs)
    tasks = [(name, directory, values, charts) for name, directory in listed]
    progress = Progress(len(tasks), stream)
    if engine == "ray":
        results = _ray(tasks, address, progress)
    elif engine == "local":
        results = _local(tasks, workers or cores(), progress)
    else:
        raise ValueError("unknown engine %r (one of %s)" % (engine, ", ".join(ENGINES)))
    entries = [r["answer"] for r in results]
    summary = {status: 0 for status in STATUSES}
    for entry in entries:
        summary[entry["status"]] += 1
    report = {
        "schema_version": SCHEMA_VERSION,
        "logdir": logdir,
        "settings": _plain(settings),
        "errors": errors,
        "runs": entries,
        "summary": summary,
    }
    return report, {r["answer"]["run"]: r["chart"] for r in results if r["chart"] is not None}


def fails(report: Mapping[str, Any], level: str | None) -> bool:
    """Whether some run meets --fail-on `level` (None: never)."""
    return level is not None and any(entry["status"] in FAIL_ON[level] for entry in report["runs"])


# Formats -----------------------------------------------------------------------------------


def _kinds(entry):
    counts = {}
    for event in entry.get("events", []):
        if event["severity"] != "info":
            counts[event["kind"]] = counts.get(event["kind"], 0) + 1
    return ", ".join("%s %d" % item for item in sorted(counts.items()))


def _first(entry):
    for event in entry.get("events", []):
        if event["severity"] != "info":
            return "%s at step %d" % (event["kind"], event["start"])
    return ""


def _rows(report):
    """(header, rows) of the health table: one row per run."""
    header = ("run", "status", "events", "first event", "kinds", "loss tag")
    rows = []
    for entry in report["runs"]:
        alarms = [e for e in entry.get("events", []) if e["severity"] != "info"]
        status = entry["status"] + (": " + entry["error"] if entry["status"] == "error" else "")
        rows.append(
            (
                entry["run"],
                status,
                str(len(alarms)),
                _first(entry),
                _kinds(entry),
                (entry.get("tags") or {}).get("loss") or "",
            )
        )
    return header, rows


def _summary_line(report):
    summary = report["summary"]
    parts = ["%d %s" % (summary[s], s.replace("_", " ")) for s in STATUSES if summary[s] or s != "error"]
    return "%d runs: %s" % (len(report["runs"]), ", ".join(parts))


def format_table(report: Mapping[str, Any]) -> str:
    header, rows = _rows(report)
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(len(header))]
    lines = ["  ".join(cell.upper().ljust(w) for cell, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines += [""] + ["error: %s" % e for e in report["errors"]] + [_summary_line(report)]
    return "\n".join(lines) + "\n"


def _md_cell(text):
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "


def format_markdown(report: Mapping[str, Any]) -> str:
    header, rows = _rows(report)
    lines = ["# Training health: %s" % _md_cell(report["logdir"]), "", _summary_line(report), ""]
    lines += ["error: %s" % _md_cell(e) for e in report["errors"]] + ([""] if report["errors"] else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def format_json(report: Mapping[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n"


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}.ok{color:#1b7f3b}.warning{color:#b26a00}.diverged{color:#c62828;font-weight:bold}
.no_data,.error{color:#777}.chart{margin:1.5em 0}.chart h3{margin:.2em 0;font-size:1em}
svg{background:#fff;border:1px solid #ddd}.loss{fill:none;stroke:#1565c0;stroke-width:1}
.ev-critical{fill:#c62828;fill-opacity:.18;stroke:#c62828}.ev-warning{fill:#ef6c00;fill-opacity:.15;stroke:#ef6c00}
.axis{font-size:10px;fill:#555}
"""


def _svg(chart, events, width=720, height=180, pad=36):
    """An inline SVG of the loss (`chart`) with the warning and critical events as bands."""
    e = html.escape
    points = [(s, v) for s, v in zip(chart["step"], chart["value"]) if v is not None]
    if not points:
        return "<p>no finite loss to draw</p>"
    steps = [s for s, _ in points]
    values = [v for _, v in points]
    x0, x1 = min(steps), max(steps)
    y0, y1 = min(values), max(values)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def x(s):
        return pad + (width - 2 * pad) * (s - x0) / (x1 - x0)

    def y(v):
        return height - pad / 2 - (height - pad) * (v - y0) / (y1 - y0)

    parts = ['<svg width="%d" height="%d" role="img">' % (width, height)]  # inline: no namespace URL
    for event in events:
        if event["severity"] == "info":
            continue
        a, b = x(max(x0, min(x1, event["start"]))), x(max(x0, min(x1, event["end"])))
        parts.append(
            '<rect class="ev-%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s</title></rect>'
            % (
                e(event["severity"]),
                a,
                pad / 4,
                max(b - a, 1.0),
                height - pad * 0.75,
                e("%s, steps %d-%d: %s" % (event["kind"], event["start"], event["end"], event.get("detail", ""))),
            )
        )
    path, pen = [], "M"
    for s, v in zip(chart["step"], chart["value"]):  # a gap at each non-finite value
        if v is None or not math.isfinite(v):
            pen = "M"
            continue
        path.append("%s%.1f,%.1f" % (pen, x(s), y(v)))
        pen = "L"
    parts.append('<path class="loss" d="%s"/>' % " ".join(path))
    parts.append('<text class="axis" x="%d" y="%.1f">%s</text>' % (pad, height - 4, e("step %d" % x0)))
    parts.append(
        '<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>' % (width - pad, height - 4, e("step %d" % x1))
    )
    parts.append('<text class="axis" x="2" y="%.1f">%s</text>' % (pad / 2, e("%.4g" % y1)))
    parts.append('<text class="axis" x="2" y="%.1f">%s</text>' % (height - pad / 2, e("%.4g" % y0)))
    parts.append("</svg>")
    return "".join(parts)


def format_html(report: Mapping[str, Any], charts: Mapping[str, Mapping[str, Any]]) -> str:
    """One self-contained page: inline CSS and SVG, no script, every text from data escaped."""
    e = html.escape
    header, rows = _rows(report)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Training health: %s</title>" % e(report["logdir"]),
        "<style>%s</style></head><body>" % _CSS,
        "<h1>Training health</h1>",
        "<p>%s</p>" % e(report["logdir"]),
        "<p>%s</p>" % e(_summary_line(report)),
    ]
    out += ['<p class="error">error: %s</p>' % e(error) for error in report["errors"]]
    out.append("<table><thead><tr>%s</tr></thead><tbody>" % "".join("<th>%s</th>" % e(h) for h in header))
    for i, (entry, row) in enumerate(zip(report["runs"], rows)):
        cells = ["<td>%s</td>" % e(c) for c in row]
        cells[1] = '<td class="%s">%s</td>' % (e(entry["status"]), e(row[1]))
        if entry["run"] in charts:
            cells[0] = '<td><a href="#chart-%d">%s</a></td>' % (i, e(row[0]))
        out.append("<tr>%s</tr>" % "".join(cells))
    out.append("</tbody></table>")
    for i, entry in enumerate(report["runs"]):
        if entry["run"] not in charts:
            continue
        out.append(
            '<div class="chart" id="chart-%d"><h3>%s <span class="%s">%s</span> (loss: %s)</h3>'
            % (i, e(entry["run"]), e(entry["status"]), e(entry["status"]), e(entry["tags"]["loss"]))
        )
        out.append(_svg(charts[entry["run"]], entry["events"]))
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render(report: Mapping[str, Any], charts: Mapping[str, Mapping[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return format_json(report)
    if fmt == "markdown":
        return format_markdown(report)
    if fmt == "html":
        return format_html(report, charts)
    return format_table(report)


def main(args: argparse.Namespace) -> int:
    """The `report` command (cli.py parses `args`): writes the report to stdout (or --output);
    returns 1 when some run meets --fail-on, 2 on a bad setting or an unreadable logdir, else 0."""
    values = {name: getattr(args, name) for name in list(diagnostics.DEFAULTS) + list(metadata.ROLES) + ["max_points"]}
    started = time.monotonic()
    try:
        report, charts = build(
            args.logdir, values, args.runs, args.workers, args.engine, args.address, charts=args.format == "html"
        )
    except (params.BadRequest, re.error) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    text = render(report, charts, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8", errors="replace") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    print("%s (%.1f s)" % (_summary_line(report), time.monotonic() - started), file=sys.stderr)
    if report["errors"] and not report["runs"]:
        for error in report["errors"]:
            print("error: %s" % error, file=sys.stderr)
        return 2
    return 1 if fails(report, args.fail_on) else 0
