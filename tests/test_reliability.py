"""Reliability: hostile input on every route, static-file traversal, and faults in the logdir.

- Bad input: every route x {missing parameter, wrong type, zero/negative/huge window, window
  longer than the series, weight outside [0, 1), nan/inf strings, unknown choice, unknown run or
  tag, names with `..`, `/`, NUL, unicode and HTML, a 100 KB query string} answers a 4xx JSON
  error naming the problem. A window that just fits the series (or EMA's, which has no window,
  or diagnostics' default) is answered, and checked against pandas.
- Static files: only the frontend's own files, with their MIME type and nosniff; traversal
  (plain, encoded, doubly encoded) is a 404.
- Faults: a file truncated mid-record, a corrupted CRC, a zero-length file, a file deleted or
  replaced while being read, the logdir removed and recreated, an unreadable file, a non-event
  file named like one, 10,000 tiny runs. The plugin keeps serving, reports what it skipped in
  the `runs` health and loses no record it could read (values checked against what was written).

Event files here are framed with TensorBoard's own masked CRC (tensorflow_stub), not ours.
Tests run as root, where chmod 000 does not stop a read: unreadable files are simulated by a
directory named like an event file and by gfile raising PermissionDeniedError.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import struct
import time
import urllib.parse
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from tensorboard.backend import application
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from tb_batchavg import metadata
from tb_batchavg.ingest import reader
from tb_batchavg.server.plugin import BatchAvgPlugin
from tb_batchavg.stats import diagnostics
from tests import corpus, helpers

PREFIX = "/data/plugin/batchavg/"
RUN = "train"
N = 400
TAGS = ("train/loss", "train/grad_norm", "train/learning_rate")
HOSTILE_RUNS = ["dots..name", "nested/run", "ünïcødé λ", "<script>alert(1)</script>"]
HOSTILE_TAG = '<img src=x onerror=alert(1)>"\n\\'
WALL_START = 1_700_000_000.0


# Event files, framed independently of tb_batchavg.ingest.records -----------------------------------------
def framed(payload):
    """One TFRecord: length, masked CRC of the length, payload, masked CRC of the payload."""
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc32c(header)) + payload + struct.pack("<I", masked_crc32c(payload))


def event_records(steps, columns):
    """The framed records of an event file: file_version, then one Event per step with every tag."""
    out = [framed(event_pb2.Event(wall_time=WALL_START, file_version="brain.Event:2").SerializeToString())]
    for i, step in enumerate(steps):
        values = [summary_pb2.Summary.Value(tag=t, simple_value=float(v[i])) for t, v in columns.items()]
        event = event_pb2.Event(
            step=int(step), wall_time=WALL_START + int(step), summary=summary_pb2.Summary(value=values)
        )
        out.append(framed(event.SerializeToString()))
    return out


def write_file(directory, records, name="events.out.tfevents.1700000000.host"):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(str(directory), name)
    with open(path, "wb") as f:
        f.write(b"".join(records))
    return path


def plugin_client(logdir, reload_seconds=0.0):
    """The plugin alone in a TensorBoard WSGI app (no TensorBoard loader, no data provider)."""
    flags = argparse.Namespace(logdir=str(logdir), batchavg_reload_seconds=reload_seconds)
    context = base_plugin.TBContext(flags=flags, data_provider=None, logdir=str(logdir))
    return Client(application.TensorBoardWSGI([BatchAvgPlugin(context)]))


def url(route, **params):
    return PREFIX + route + ("?" + urllib.parse.urlencode(params) if params else "")


def get(client, route, expect=200, **params):
    response = client.get(url(route, **params))
    assert response.status_code == expect, (route, params, response.status_code, response.data[:300])
    return response


def runs_by_name(client):
    return {e["run"]: e for e in helpers.wait_loaded(client)["runs"]}


def settled(client, run, condition):
    """The run's `runs` entry once `condition(entry)` holds: the plugin reads what changed in
    the background, within its reload interval."""
    return helpers.wait_for(
        lambda: (lambda e: condition(e) and e)(runs_by_name(client).get(run, {})), what="run %r settled" % run
    )


def f32(values):
    return np.asarray(values, np.float32).astype(np.float64)


# The logdir of the bad-input matrix ------------------------------------------------------------------
@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    columns = helpers.training_like(N, seed=4)
    columns["train/loss"][[10, 11]] = [np.nan, np.inf]
    write_file(root / RUN, event_records(range(N), columns))
    write_file(root / "short", event_records(range(3), {"loss": [1.0, 2.0, 4.0], "grad_norm": [3.0, 1.0, 2.0]}))
    for i, name in enumerate(HOSTILE_RUNS):
        write_file(root / name, event_records(range(5), {"loss": np.arange(5.0) + i, HOSTILE_TAG: -np.arange(5.0)}))
    return root, columns


@pytest.fixture(scope="module")
def client(logdir):
    """The app as `tensorboard --logdir` builds it (plugins from entry points, its middleware)."""
    return Client(helpers.make_app(str(logdir[0]), "--load_fast=false", "--reload_interval=0"))


# Bad input on every route ------------------------------------------------------------------------
DIAGNOSTIC_INTS = [k for k, v in diagnostics.DEFAULTS.items() if isinstance(v, int)]
DIAGNOSTIC_REALS = [k for k, v in diagnostics.DEFAULTS.items() if isinstance(v, float)]
AVERAGING_CHOICES = ("method", "align", "edges", "unit", "band")
ROUTES = {
    # route: (valid base query, required, run/tag-name parameters, integer, real, choice parameters)
    "runs": ({}, (), (), (), (), ()),
    "averages": (
        {"run": RUN, "tag": "train/loss"},
        ("run", "tag"),
        ("run", "tag"),
        ("window", "max_points", "start", "end"),
        ("weight",),
        AVERAGING_CHOICES,
    ),
    "export": (
        {"run": RUN, "tag": "train/loss"},
        ("run", "tag"),
        ("run", "tag"),
        ("window",),
        ("weight",),
        AVERAGING_CHOICES + ("format",),
    ),
    "correlation": (
        {"run": RUN},
        ("run",),
        ("run", "x", "y"),
        ("window", "max_lag", "max_points", "start", "end"),
        (),
        (),
    ),
    "diagnostics": (
        {"run": RUN},
        ("run",),
        ("run", "loss", "grad_norm", "learning_rate"),
        (*DIAGNOSTIC_INTS, "max_points"),
        DIAGNOSTIC_REALS,
        (),
    ),
}
NOT_AN_INTEGER = ["abc", "1.5", "0x10", "1e3", " 7", "7 ", "1_000", "+", "--1", "１２", "9" * 100]
NOT_A_NUMBER = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e999"]
NOT_A_REAL = ["abc", "0,5", "1/2", "0x1p-1", "½", "", "."]
UNKNOWN_NAMES = [
    "nope",
    "..",
    "../" + RUN,
    RUN + "/..",
    "./" + RUN,
    "/",
    RUN + "/",
    "/" + RUN,
    "%2e%2e%2f" + RUN,
    "..\\" + RUN,
    RUN.upper(),
    " " + RUN,
    "a\nb",
    "\u202e" + RUN,
    "ünïcødé missing",
    "<script>alert(1)</script>missing",
    '"><img src=x onerror=alert(1)>',
]
BAD_NAMES = [RUN + "\x00", "\x00", "x" * (4096 + 1)]
BAD_CHOICES = ["foo", "SMA", "sma ", "sma\x00", "<b>"]
# Integer parameters whose value 0 or a negative is out of range, and the largest valid value + 1.
ABOVE_RANGE = {
    "window": metadata.MAX_WINDOW + 1,
    "max_points": metadata.MAX_POINTS_LIMIT + 1,
    "max_lag": metadata.MAX_LAG_LIMIT + 1,
    "start": 2**63,
    "end": 2**63,
    **{k: metadata.MAX_WINDOW + 1 for k in DIAGNOSTIC_INTS},
}
BELOW_RANGE = {"start": -(2**63) - 1, "end": -(2**63) - 1}
ZERO_REFUSED = {
    ("averages", "window"),
    ("export", "window"),
    ("correlation", "window"),
    ("diagnostics", "window"),
    ("diagnostics", "sustain"),
    *((route, "max_points") for route in ("averages", "correlation", "diagnostics")),
}
NEGATIVE_ALLOWED = {"start", "end"}
# Windows longer than the series of RUN (N points at steps 0..N-1; its loss has 2 non-finite values,
# so the loss and gradient norm join in N - 2 finite pairs), by route.
LONGER = {
    "averages": [
        {"window": N + 1},
        {"window": N + 1, "edges": "partial"},
        {"window": 10**7, "align": "centered"},
        {"window": N + 1, "unit": "steps"},
        {"window": N + 1, "method": "median", "band": "minmax"},
        {"window": N + 1, "method": "block"},
        {"window": N + 1, "method": "block", "unit": "steps"},
    ],
    "export": [
        {"window": N + 1},
        {"window": N + 1, "unit": "steps", "format": "json"},
        {"window": N + 1, "method": "block", "edges": "partial"},
    ],
    "correlation": [{"window": N - 1}, {"window": 10**7}],
    "diagnostics": [{"window": N + 1}, {"window": N + 1, "loss": "train/grad_norm"}],
}
WINDOW_DETAIL = {"reason", "window", "length", "unit"}


def names_parameter(parameter):
    """A regex finding `parameter` named as a word (quoted or not) in an error message."""
    return r"(?<![\w/])'?%s'?(?![\w/])" % re.escape(parameter)


def bad_input_cases():
    """(id, route, query, status, regex the message must match)."""
    cases = []

    def add(kind, route, change, status, pattern, drop=()):
        base = {k: v for k, v in ROUTES[route][0].items() if k not in drop}
        query = {**base, **change}
        label = "%s-%s-%s" % (route, kind, urllib.parse.urlencode(change)[:40] or "-".join(drop))
        cases.append(pytest.param(route, query, status, pattern, id=label))

    for route, (_, required, names, integers, reals, choices) in ROUTES.items():
        for parameter in required:
            add("missing", route, {}, 400, names_parameter(parameter), drop=(parameter,))
        for parameter in names:
            unknown = "unknown run" if parameter == "run" else r"\(parameter '%s'\)" % parameter
            for name in UNKNOWN_NAMES + ([""] if parameter in required else []):
                add("unknown", route, {parameter: name}, 404, unknown)
            for name in BAD_NAMES:
                add("badname", route, {parameter: name}, 400, names_parameter(parameter))
        for parameter in integers:
            for value in NOT_AN_INTEGER + NOT_A_NUMBER:
                add("type", route, {parameter: value}, 400, names_parameter(parameter))
            add("huge", route, {parameter: str(ABOVE_RANGE[parameter])}, 400, names_parameter(parameter))
            below = BELOW_RANGE.get(parameter, -ABOVE_RANGE[parameter])
            add("huge", route, {parameter: str(below)}, 400, names_parameter(parameter))
            if parameter not in NEGATIVE_ALLOWED:
                add("negative", route, {parameter: "-1"}, 400, names_parameter(parameter))
            if (route, parameter) in ZERO_REFUSED:
                add("zero", route, {parameter: "0"}, 400, names_parameter(parameter))
        for parameter in reals:
            for value in [v for v in NOT_A_REAL if v] + NOT_A_NUMBER + ["-0.1", "-1e-300"]:
                add("real", route, {parameter: value}, 400, names_parameter(parameter))
        if "weight" in reals:
            for value in ("1", "1.0", "1.5", "0.99999999999999999"):  # the last rounds to 1.0
                add("weight", route, {"method": "ema", "weight": value}, 400, names_parameter("weight"))
        for parameter in choices:
            for value in BAD_CHOICES:
                add("choice", route, {parameter: value}, 400, names_parameter(parameter))
        for change in LONGER.get(route, []) if route == "diagnostics" else []:  # the others answer (below)
            length = N
            add(
                "longer",
                route,
                change,
                400,
                r"^window %d (\(steps\) )?is longer than the (joined )?series of run "
                r"'%s'.*\b%d (points|steps|steps where)\b" % (change["window"], RUN, length),
            )
        add("query100k", route, {"pad": "x" * 100_000}, 400, "query string")
        add("query100k", route, {"run": RUN * 20_000}, 400, "query string")
    return cases


@pytest.mark.parametrize("route, query, status, pattern", bad_input_cases())
def test_bad_input_is_a_json_error_naming_the_problem(client, route, query, status, pattern):
    response = client.get(url(route, **query))
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = helpers.strict_json(response.data)
    if "longer" in pattern:  # machine-readable too, for the tab: it then shows the raw values
        assert set(body) == {"error"} | WINDOW_DETAIL and body["reason"] == "window_longer_than_series"
        assert body["window"] == int(query["window"]) and body["length"] < body["window"]
    else:
        assert list(body) == ["error"]
    assert re.search(pattern, body["error"]), body["error"]
    assert len(response.data) < 1000  # a hostile value is not echoed at length
    assert b"Traceback" not in response.data


@pytest.mark.parametrize(
    "route, change",
    [(route, change) for route, changes in LONGER.items() for change in changes if route != "diagnostics"],
)
def test_a_window_longer_than_the_series_is_a_200_with_the_raw_series(client, route, change):
    """Issue 14 item 4: a window longer than the series is answered (200) with the raw series,
    `average` null (for the correlation: `rolling` null, the table, lags and scatter kept) and
    the reason, window, length and unit, so that the tab never makes a request that gets a 4xx."""
    base = {"run": RUN} if route == "correlation" else {"run": RUN, "tag": "train/loss"}
    response = client.get(url(route, **base, **change))
    assert response.status_code == 200, response.data[:300]
    body = (
        helpers.strict_json(response.data)
        if change.get("format", "json" if route != "export" else "csv") == "json"
        else None
    )
    length = N - 2 if route == "correlation" else N
    if route == "export" and body is None:
        assert response.headers["X-Batchavg-Reason"] == "window_longer_than_series"
        rows = response.get_data(as_text=True).splitlines()
        assert len(rows) == N + 1 and all(r.endswith(",") for r in rows[1:])  # no average anywhere
        return
    assert (body["reason"], body["window"], body["length"]) == ("window_longer_than_series", change["window"], length)
    assert body["unit"] == ("pairs" if route == "correlation" else change.get("unit", "points"))
    assert re.match(
        r"^window %d (\(steps\) )?is longer than the (joined )?series of run '%s'" % (change["window"], RUN),
        body["message"],
    )
    if route == "correlation":
        assert body["rolling"] is None and body["n"] == N - 2 and body["lag"]["lags"]
    elif route == "export":
        assert body["average"] is None and len(body["value"]) == N
    else:
        assert body["average"] is None and body["raw"]["count"] == N and len(body["raw"]["step"]) > 0


def test_server_still_answers_after_the_bad_input(client, logdir):
    body = get(client, "averages", run=RUN, tag="train/loss", window=1, max_points=N).json
    np.testing.assert_array_equal(body["raw"]["step"], np.arange(N))


def test_a_window_longer_than_the_series_is_answered_raw_and_one_that_fits_averaged(client):
    """Run "short" has 3 points (steps 0..2): a window of 4 is a 200 with the raw series, average
    null and the reason, naming the window, the run, the tag and the series' length; a window of 3
    (the whole series) is averaged, checked against pandas; EMA has no window; diagnostics refuse
    only a window asked for."""
    values = pd.Series([1.0, 2.0, 4.0])
    for route, extra in (
        ("averages", {}),
        ("export", {"format": "json"}),
        ("averages", {"method": "median", "edges": "partial"}),
        ("averages", {"method": "block"}),
        ("averages", {"unit": "steps", "align": "centered"}),
    ):
        body = get(client, route, run="short", tag="loss", window=4, **extra).json
        unit = extra.get("unit", "points")
        assert (body["reason"], body["window"], body["length"], body["unit"], body["average"]) == (
            "window_longer_than_series",
            4,
            3,
            unit,
            None,
        )
        assert (body["raw"]["value"] if route == "averages" else body["value"]) == [1.0, 2.0, 4.0]
        assert body["message"] == (
            "window 4 (steps) is longer than the series of run 'short' tag 'loss' (steps 0 to 2: 3 steps)"
            if unit == "steps"
            else "window 4 is longer than the series of run 'short' tag 'loss' (3 points)"
        )
    valid = get(client, "averages", run="short", tag="loss", window=3).json
    assert (valid["count"], valid["raw"]["value"], valid["average"]["value"]) == (
        3,
        [1.0, 2.0, 4.0],
        [pytest.approx(values.mean())],
    )
    for method, reference in (
        ("sma", values.rolling(3, min_periods=1).mean()),
        ("median", values.rolling(3, min_periods=1).median()),
    ):
        partial = get(client, "averages", run="short", tag="loss", method=method, window=3, edges="partial").json
        np.testing.assert_allclose(partial["average"]["value"], reference.to_numpy())
    block = get(client, "averages", run="short", tag="loss", method="block", window=3, unit="steps").json
    assert (block["average"]["step"], block["average"]["value"]) == ([2], [pytest.approx(values.mean())])
    centered = get(
        client,
        "averages",
        run="short",
        tag="loss",
        window=3,
        unit="steps",
        align="centered",
        edges="partial",
        band="minmax",
    ).json
    assert centered["average"]["value"] == pytest.approx(values.rolling(3, center=True, min_periods=1).mean().tolist())
    ema = get(client, "averages", run="short", tag="loss", method="ema", window=10_000_000).json
    assert ema["average"]["count"] == 3
    rows = get(client, "export", run="short", tag="loss", window=3).get_data(as_text=True).splitlines()
    assert [r.rsplit(",", 1)[1] for r in rows[1:]][:2] == ["", ""]
    assert float(rows[3].rsplit(",", 1)[1]) == pytest.approx(values.mean())

    body = get(client, "correlation", run="short", window=4).json
    assert body["rolling"] is None and body["pearson"] == pytest.approx(stats.pearsonr([1, 2, 4], [3, 1, 2]).statistic)
    assert (body["message"], body["length"]) == (
        "window 4 is longer than the joined series of run 'short' (3 steps where 'loss' and 'grad_norm' are both "
        "logged and finite)",
        3,
    )
    correlation = get(client, "correlation", run="short", window=3, max_lag=10_000).json
    assert correlation["rolling"]["value"] == [pytest.approx(correlation["pearson"])]
    assert correlation["pearson"] == pytest.approx(stats.pearsonr([1, 2, 4], [3, 1, 2]).statistic)
    # Lags are cut to those keeping at least 3 pairs (correlation.lagged_pearson): only 0 here.
    assert correlation["lag"]["lags"] == [0]
    assert correlation["lag"]["value"] == [pytest.approx(correlation["pearson"])]

    assert get(client, "diagnostics", run="short").json["status"] == "ok"  # default window 100 > 3 points
    assert get(client, "diagnostics", run="short", window=3).json["params"]["window"] == 3
    body = get(client, "diagnostics", expect=400, run="short", window=100).json
    assert body["error"] == "window 100 is longer than the series of run 'short' tag 'loss' (3 points)"


@pytest.mark.parametrize("run", HOSTILE_RUNS)
def test_hostile_run_and_tag_names_are_data_not_markup(client, run):
    """Names with `..`, `/`, unicode and HTML are runs like any other: listed, echoed exactly in
    JSON, and the export's file name keeps only safe characters."""
    entry = runs_by_name(client)[run]
    assert entry["tags"] == sorted(["loss", HOSTILE_TAG]) and entry["count"] == {"loss": 5, HOSTILE_TAG: 5}
    body = get(client, "averages", run=run, tag=HOSTILE_TAG, window=2).json
    assert (body["run"], body["tag"], body["raw"]["value"]) == (run, HOSTILE_TAG, [-0.0, -1.0, -2.0, -3.0, -4.0])
    assert get(client, "correlation", run=run, x="loss", y=HOSTILE_TAG, window=2).json["pearson"] == pytest.approx(-1)
    assert get(client, "diagnostics", run=run, grad_norm=HOSTILE_TAG).json["tags"]["grad_norm"] == HOSTILE_TAG
    for fmt in ("csv", "json"):
        response = get(client, "export", run=run, tag=HOSTILE_TAG, format=fmt, window=2)
        assert re.fullmatch(
            r'attachment; filename="[A-Za-z0-9._-]+\.%s"' % fmt, response.headers["Content-Disposition"]
        )
    error = client.get(url("averages", run=run, tag=HOSTILE_TAG + "x"))
    assert error.status_code == 404 and error.headers["Content-Type"].startswith("application/json")
    assert error.json["error"] == "unknown tag %r in run %r (parameter 'tag')" % (HOSTILE_TAG + "x", run)
    longer = get(client, "averages", run=run, tag=HOSTILE_TAG, window=6).json["message"]
    assert longer == "window 6 is longer than the series of run %r tag %r (5 points)" % (run, HOSTILE_TAG)


def test_a_run_directory_named_in_bytes_that_are_not_utf8(tmp_path):
    """A run directory whose name is not UTF-8 (Python holds its bytes as lone surrogates, which
    JSON cannot carry) is listed with U+FFFD in their place and its counts (a local logdir is
    walked, listed and read with Python's own calls, which take any bytes; gfile takes UTF-8 paths
    only); asking for that name is a clear 404 (it names no run), and the other runs are served
    as usual."""
    write_file(tmp_path / "plain", event_records(range(5), {"loss": np.arange(5.0)}))
    write_file(tmp_path / "moved", event_records(range(5), {"loss": np.arange(5.0)}))
    os.rename(os.fsencode(tmp_path / "moved"), os.fsencode(tmp_path) + b"/caf\xe9-\xff")
    client = plugin_client(tmp_path)
    listed = runs_by_name(client)
    assert sorted(listed) == ["caf\ufffd-\ufffd", "plain"]
    odd = listed["caf\ufffd-\ufffd"]
    assert odd["count"] == {"loss": 5} and odd["health"]["errors"] == [], odd
    error = get(client, "averages", expect=404, run="caf\ufffd-\ufffd", tag="loss", window=2).json["error"]
    assert error.startswith("unknown run 'caf\ufffd-\ufffd'"), error
    assert get(client, "averages", run="plain", tag="loss", window=2).json["average"]["count"] == 4


# Static files ----------------------------------------------------------------------------------
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
TRAVERSALS = [
    "../index.js",
    "..%2Findex.js",
    "..%2findex.js",
    "%2e%2e%2findex.js",
    "%2E%2E%2F%2E%2E%2Fsetup.py",
    "%252e%252e%252findex.js",
    "..%252findex.js",
    "%252e%252e/%252e%252e/setup.py",
    "%25252e%25252e%25252f",
    "....//index.js",
    "..\\index.js",
    "..%5cindex.js",
    "%2e%2e%5cindex.js",
    "index.js%00",
    "index.js%00.js",
    "index.js/../../../setup.py",
    "index.js/..%2f..%2fsetup.py",
    "./index.js",
    ".%2findex.js",
    "frontend/index.js",
    "tb_batchavg/plugin.py",
    "plugin.py",
    "__init__.py",
    "http_api.md",
    "%2fetc%2fpasswd",
    "/etc/passwd",
    "../../../../../../etc/passwd",
    "%c0%ae%c0%ae/index.js",
    "INDEX.JS",
    "index.js.map",
    "index",
    ".",
    "..",
    "%2e",
    "%2e%2e",
    "~/index.js",
    "file:///etc/passwd",
]


def frontend_files():
    folder = resources.files("tb_batchavg.frontend")
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_every_frontend_file_is_served_with_its_type_and_nosniff(client):
    served = {n: b for n, b in frontend_files().items() if os.path.splitext(n)[1] in STATIC_TYPES}
    assert "index.js" in served and "style.css" in served
    for name, content in sorted(frontend_files().items()):
        response = client.get(PREFIX + name)
        if name not in served:
            assert response.status_code == 404, name  # e.g. __init__.py
            continue
        assert response.status_code == 200, name
        assert response.data == content
        assert response.headers["Content-Type"].split(";")[0] == STATIC_TYPES[os.path.splitext(name)[1]]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert client.get(PREFIX + name + "?../../setup.py").data == content  # the query is not a path


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_a_404(client, path):
    response = client.get(PREFIX + path)
    assert response.status_code == 404, (path, response.data[:200])
    assert b"root:" not in response.data and b"setuptools" not in response.data and b"import " not in response.data


# Faults ----------------------------------------------------------------------------------------
def loss_columns(n, offset=0.0):
    return {"loss": np.arange(n) + offset, "grad_norm": np.sqrt(np.arange(n) + 1.0)}


def assert_served(client, run, steps, columns):
    """Every route answers; raw values and a window-5 mean equal pandas on what was written."""
    steps = np.asarray(steps)
    body = get(client, "averages", run=run, tag="loss", window=5, max_points=100_000).json
    np.testing.assert_array_equal(body["raw"]["step"], steps)
    values = f32(columns["loss"])
    np.testing.assert_array_equal(body["raw"]["value"], values)
    np.testing.assert_allclose(body["average"]["value"], pd.Series(values).rolling(5).mean().to_numpy()[4:])
    export = get(client, "export", run=run, tag="grad_norm", format="json", window=5).json
    np.testing.assert_array_equal(export["value"], f32(columns["grad_norm"]))
    assert get(client, "correlation", run=run, window=3).json["n"] == len(steps)
    get(client, "diagnostics", run=run)


@pytest.fixture
def faulty(tmp_path):
    """A logdir with one run per fault; returns (root, {run: (steps kept, columns kept)})."""
    columns = loss_columns(100)
    records = event_records(range(100), columns)
    keep = {}

    def kept(steps):
        steps = list(steps)
        return steps, {t: np.asarray(v)[steps] for t, v in columns.items()}

    write_file(tmp_path / "healthy", records)
    keep["healthy"] = kept(range(100))
    for name, cut in (("cut_in_body", len(records[-1]) - 3), ("cut_in_header", 5)):
        write_file(tmp_path / name, records[:-1] + [records[-1][:cut]])
        keep[name] = kept(range(99))
    bad = bytearray(records[31])
    bad[12 + 4] ^= 0x10  # a payload byte of step 30: its data CRC fails
    write_file(tmp_path / "bad_crc", records[:31] + [bytes(bad)] + records[32:])
    keep["bad_crc"] = kept([s for s in range(100) if s != 30])
    bad = bytearray(records[41])
    bad[2] ^= 0x10  # the length of step 40's record: its header CRC fails
    write_file(tmp_path / "bad_header", records[:41] + [bytes(bad)] + records[42:])
    keep["bad_header"] = kept(range(40))
    for name in ("empty_file", "not_events", "noise", "unreadable"):
        write_file(tmp_path / name, records)
        keep[name] = kept(range(100))
    write_file(tmp_path / "empty_file", [], name="events.out.tfevents.1600000000.empty")
    write_file(tmp_path / "not_events", [b"step,loss\n0,1.0\n" * 50], name="events.out.tfevents.1.notes.csv")
    write_file(tmp_path / "noise", [np.random.default_rng(0).bytes(5000)], name="events.out.tfevents.2.noise")
    os.makedirs(tmp_path / "unreadable" / "events.out.tfevents.3.is_a_directory")
    write_file(tmp_path / "only_noise", [np.random.default_rng(1).bytes(300)], name="events.out.tfevents.4.x")
    return tmp_path, keep


HEALTHY = {"bad_records": 0, "corrupt_files": [], "errors": [], "skipped_values": {}}


def test_faulty_files_are_skipped_reported_and_the_rest_served(faulty):
    root, keep = faulty
    client = plugin_client(root)
    runs = runs_by_name(client)
    assert sorted(runs) == sorted([*keep, "only_noise"])
    for run, (steps, columns) in keep.items():
        assert runs[run]["count"] == {"loss": len(steps), "grad_norm": len(steps)}, run
        assert_served(client, run, steps, columns)
    for run in ("healthy", "cut_in_body", "cut_in_header", "empty_file"):
        assert runs[run]["health"] == HEALTHY, run  # a cut tail is pending, not skipped
    assert runs["bad_crc"]["health"] == {**HEALTHY, "bad_records": 1}
    for run, name in (
        ("bad_header", "events.out.tfevents.1700000000.host"),
        ("not_events", "events.out.tfevents.1.notes.csv"),
        ("noise", "events.out.tfevents.2.noise"),
        ("only_noise", "events.out.tfevents.4.x"),
    ):
        assert runs[run]["health"] == {**HEALTHY, "corrupt_files": [name]}, run
    (error,) = runs["unreadable"]["health"]["errors"]
    assert "events.out.tfevents.3.is_a_directory" in error
    assert runs["only_noise"]["tags"] == [] and runs["only_noise"]["count"] == {}
    assert get(client, "averages", expect=404, run="only_noise", tag="loss").json["error"].startswith("unknown tag")


def test_truncated_files_are_completed_when_the_rest_arrives(tmp_path):
    columns = loss_columns(60)
    records = event_records(range(60), columns)
    path = write_file(tmp_path / "run", records[:30] + [records[30][:7]])
    client = plugin_client(tmp_path)
    assert runs_by_name(client)["run"]["count"] == {"loss": 29, "grad_norm": 29}
    with open(path, "ab") as f:
        f.write(records[30][7:] + b"".join(records[31:]))
    settled(client, "run", lambda e: e["count"] == {"loss": 60, "grad_norm": 60})
    assert_served(client, "run", range(60), columns)
    assert runs_by_name(client)["run"]["health"] == HEALTHY


MALFORMED = {  # route: (a malformed parameter, the name its error gives)
    "averages": ({"tag": "loss", "window": "0"}, "window"),
    "export": ({"tag": "loss", "format": "xml"}, "format"),
    "correlation": ({"max_lag": "-1"}, "max_lag"),
    "diagnostics": ({"spike_k": "inf"}, "spike_k"),
}


def test_a_run_without_data_yet_lists_and_parameters_are_checked_first(tmp_path):
    """A training job's run before its first step is complete (file_version and half a record):
    listed with no tags; its tags are 404s until that record is read; a malformed parameter is the
    400 that names it, for this run as for an unknown one."""
    columns = loss_columns(20)
    records = event_records(range(20), columns)
    path = write_file(tmp_path / "run", [records[0], records[1][:9]])
    client = plugin_client(tmp_path)
    assert runs_by_name(client)["run"]["count"] == {} and runs_by_name(client)["run"]["tags"] == []
    for route, (query, parameter) in MALFORMED.items():
        for run in ("run", "nope"):
            body = get(client, route, 400, run=run, **query).json
            assert parameter in body["error"], (route, run, body)
    for route, query, word in [
        ("averages", {"tag": "loss"}, "unknown tag 'loss'"),
        ("export", {"tag": "loss"}, "unknown tag 'loss'"),
        ("correlation", {}, "has no loss tag"),
    ]:
        assert word in get(client, route, 404, run="run", **query).json["error"], route
    assert set(get(client, "diagnostics", run="run").json["nonfinite"].values()) == {None}
    with open(path, "ab") as f:
        f.write(records[1][9:] + b"".join(records[2:]))
    settled(client, "run", lambda e: e["count"] == {"loss": 20, "grad_norm": 20})
    assert_served(client, "run", range(20), columns)


def test_an_unreadable_file_is_reported_and_read_once_readable(tmp_path, monkeypatch):
    first = loss_columns(50)
    write_file(tmp_path / "run", event_records(range(50), first), name="events.out.tfevents.1.a")
    second = loss_columns(50, offset=50.0)
    locked = write_file(tmp_path / "run", event_records(range(50, 100), second), name="events.out.tfevents.2.b")
    os.chmod(locked, 0)
    real_read_at = reader._read_at

    def read_at(path, *args):  # root reads a file whatever its mode: refuse as the OS would
        if path == locked and not os.stat(path).st_mode & 0o444:
            raise PermissionError(13, "Permission denied", path)
        return real_read_at(path, *args)

    monkeypatch.setattr(reader, "_read_at", read_at)
    client = plugin_client(tmp_path)
    entry = runs_by_name(client)["run"]
    assert entry["count"] == {"loss": 50, "grad_norm": 50}
    (error,) = entry["health"]["errors"]
    assert "events.out.tfevents.2.b" in error and "Permission denied" in error
    assert_served(client, "run", range(50), first)
    os.chmod(locked, 0o644)
    both = {t: np.concatenate((first[t], second[t])) for t in first}
    settled(client, "run", lambda e: e["count"]["loss"] == 100)
    assert_served(client, "run", range(100), both)
    assert runs_by_name(client)["run"]["health"] == HEALTHY


@pytest.mark.parametrize("moment", ["before_stat", "before_read"])
def test_a_file_deleted_while_being_read(tmp_path, monkeypatch, moment):
    """The second file of a run vanishes between listing and reading it: what was read of it
    is kept and the error reported for that reload; the next reload finds it gone and drops
    it, as a fresh reader would."""
    first = loss_columns(50)
    write_file(tmp_path / "run", event_records(range(50), first), name="events.out.tfevents.1.a")
    second = loss_columns(50, offset=50.0)
    records = event_records(range(50, 100), second)
    doomed = write_file(tmp_path / "run", records[:26], name="events.out.tfevents.2.b")  # steps 50..74
    logs = reader.LogdirReader(str(tmp_path))
    logs.reload()
    assert logs.counts("run")["loss"] == 75
    with open(doomed, "ab") as f:
        f.write(b"".join(records[26:]))
    name = "_stamp" if moment == "before_stat" else "_read_at"
    real = getattr(reader, name)

    def deleting(path, *args):
        if path == doomed and os.path.exists(doomed):
            os.remove(doomed)
        return real(path, *args)

    monkeypatch.setattr(reader, name, deleting)
    logs.reload()
    assert not os.path.exists(doomed)
    (error,) = logs.get("run").health()["errors"]
    assert "events.out.tfevents.2.b" in error
    kept = np.concatenate((first["loss"], second["loss"][:25]))
    np.testing.assert_array_equal(logs.series("run", "loss").value, f32(kept))
    monkeypatch.undo()
    logs.reload()
    assert logs.get("run").health() == HEALTHY
    np.testing.assert_array_equal(logs.series("run", "loss").value, f32(first["loss"]))


def test_a_read_failing_midway_through_a_file_loses_no_record(tmp_path, monkeypatch):
    """A file larger than a read buffer (tensorboardX's own file) whose third read fails (a store
    that goes down mid-load): the reload reports it, keeps every record of the buffers decoded
    before, and the next reload resumes where they end, giving what a fresh reader gives."""
    monkeypatch.setattr(reader, "_READ_CHUNK", 16 << 10)
    corpus.write_tbx(str(tmp_path / "run"), 3000)
    (path,) = [str(p) for p in (tmp_path / "run").iterdir()]
    assert os.path.getsize(path) > 6 * reader._READ_CHUNK
    real, calls = reader._read_at, []

    def failing(name, *args):
        calls.append(name)
        if len(calls) == 3:
            raise ConnectionError("endpoint went away")
        return real(name, *args)

    monkeypatch.setattr(reader, "_read_at", failing)
    logs = reader.LogdirReader(str(tmp_path))
    logs.reload()
    (error,) = logs.get("run").health()["errors"]
    assert "ConnectionError: endpoint went away" in error
    held = logs.counts("run")
    assert 0 < held[corpus.TAGS[0]] < 3000  # the buffers before the failure are served
    logs.reload()
    fresh = reader.LogdirReader(str(tmp_path))
    fresh.reload()
    assert logs.get("run").health() == HEALTHY
    for tag in corpus.TAGS:
        np.testing.assert_array_equal(logs.series("run", tag).step, np.arange(3000))
        for field in ("wall_time", "value"):
            np.testing.assert_array_equal(
                getattr(logs.series("run", tag), field), getattr(fresh.series("run", tag), field)
            )


@pytest.mark.parametrize("replacement", ["shorter_rewrite", "longer_copy"])
def test_a_file_replaced_while_being_read(tmp_path, monkeypatch, replacement):
    """Between the size check and the read, the file is atomically replaced (a sync tool, a
    restarted writer): by a shorter, different file, or by a longer copy of itself. No record is
    lost, none is mixed up: after the next reload the run is what a fresh reader reads."""
    columns = loss_columns(200)
    records = event_records(range(200), columns)
    path = write_file(tmp_path / "run", records[:101])  # steps 0..99
    logs = reader.LogdirReader(str(tmp_path))
    logs.reload()
    assert logs.counts("run")["loss"] == 100
    with open(path, "ab") as f:
        f.write(b"".join(records[101:121]))  # steps 100..119: the size grows, a read is due
    if replacement == "shorter_rewrite":
        other = loss_columns(10, offset=1000.0)
        content, steps_after, columns_after = b"".join(event_records(range(10), other)), range(10), other
    else:
        content, steps_after, columns_after = b"".join(records), range(200), columns
    staged = str(tmp_path / "staged")
    with open(staged, "wb") as f:
        f.write(content)
    real = reader._read_at

    def replacing(name, *args):
        if name == path and os.path.exists(staged):
            os.replace(staged, path)
        return real(name, *args)

    monkeypatch.setattr(reader, "_read_at", replacing)
    logs.reload()
    monkeypatch.undo()
    assert not os.path.exists(staged)
    logs.reload()
    fresh = reader.LogdirReader(str(tmp_path))
    fresh.reload()
    for tag in ("loss", "grad_norm"):
        np.testing.assert_array_equal(logs.series("run", tag).step, np.asarray(steps_after))
        np.testing.assert_array_equal(logs.series("run", tag).value, f32(columns_after[tag])[: len(steps_after)])
        np.testing.assert_array_equal(logs.series("run", tag).value, fresh.series("run", tag).value)
    assert logs.get("run").health() == HEALTHY


def test_logdir_removed_and_recreated(tmp_path):
    """Through the full TensorBoard app, with its data provider present: while the logdir is gone
    the plugin keeps serving what it read (full resolution, not the provider's sample) and says
    why in each run's health; once recreated, the runs are what is there (a new training from
    step 0 replaces the old file) and new runs appear."""
    logdir = tmp_path / "logs"
    old = loss_columns(100)
    write_file(logdir / "a", event_records(range(100), old), name="events.out.tfevents.1.old")
    write_file(logdir / "b", event_records(range(100), old), name="events.out.tfevents.1.old")
    client = Client(
        helpers.make_app(str(logdir), "--load_fast=false", "--reload_interval=0", "--batchavg_reload_seconds=0")
    )
    assert_served(client, "a", range(100), old)
    assert [e["count"]["loss"] for e in runs_by_name(client).values()] == [100, 100]
    shutil.rmtree(logdir)
    settled(client, "b", lambda e: e["health"]["errors"])
    body = get(client, "runs").json
    assert body["sampled"] is False
    for entry in body["runs"]:
        assert entry["count"] == {"loss": 100, "grad_norm": 100}
        assert len(entry["health"]["errors"]) == 1 and "cannot list" in entry["health"]["errors"][0]
    assert_served(client, "a", range(100), old)
    assert get(client, "averages", run="a", tag="loss").json["sampled"] is False
    new = loss_columns(30, offset=500.0)
    write_file(logdir / "a", event_records(range(30), new), name="events.out.tfevents.2.new")
    write_file(logdir / "c", event_records(range(30), new), name="events.out.tfevents.2.new")
    settled(client, "c", lambda e: e.get("count", {}).get("loss") == 30)
    runs = settled(client, "a", lambda e: e["count"]["loss"] == 30) and runs_by_name(client)
    assert sorted(runs) == ["a", "b", "c"]
    assert runs["a"]["health"] == runs["c"]["health"] == HEALTHY
    assert runs["b"]["count"]["loss"] == 100 and runs["b"]["health"]["errors"]  # still gone: kept
    assert_served(client, "a", range(30), new)
    assert_served(client, "c", range(30), new)


# 10,000 tiny runs -----------------------------------------------------------------------------------
MANY = 10_000
BROKEN = {
    "run_00017": "corrupt",
    "run_04242": "corrupt",
    "run_09999": "corrupt",
    "run_00500": "cut",
    "run_07777": "cut",
}


@pytest.fixture(scope="module")
def many_runs(tmp_path_factory):
    """10,000 run directories of 3 steps each (run i logs loss i, i+0.5, i+0.25); a few broken."""
    root = tmp_path_factory.mktemp("many")
    for i in range(MANY):
        name = "run_%05d" % i
        records = event_records(range(3), {"loss": [i, i + 0.5, i + 0.25]})
        if BROKEN.get(name) == "corrupt":
            records[3] = records[3][:2] + bytes([records[3][2] ^ 1]) + records[3][3:]  # step 2's length
        elif BROKEN.get(name) == "cut":
            records[-1] = records[-1][:-5]
        write_file(root / name, records)
    yield root
    shutil.rmtree(root)  # 10,000 directories: not left for pytest's clean-up of old temporary dirs


def test_ten_thousand_tiny_runs(many_runs):
    """The first `runs` reads 10,000 runs; meanwhile other requests are answered. Every run is
    listed with its count and health; sampled runs' values are their own."""
    client = plugin_client(many_runs, reload_seconds=3600)
    assert get(client, "averages", run="run_00001", tag="loss", window=1).json["raw"]["value"] == [1.0, 1.5, 1.25]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        listing = pool.submit(lambda: plugin_runs(client))
        answered = 0
        while not listing.done():
            body = get(Client(client.application), "averages", run="run_00002", tag="loss", window=2).json
            assert body["raw"]["value"] == [2.0, 2.5, 2.25]
            answered += 1
            time.sleep(0.2)
        runs = listing.result()
    assert answered >= 1  # served while the 10,000 runs were being read
    assert len(runs) == MANY
    for name, entry in runs.items():
        broken = BROKEN.get(name)
        assert entry["count"] == {"loss": 2 if broken else 3}, name
        if broken == "corrupt":
            assert entry["health"]["corrupt_files"] == ["events.out.tfevents.1700000000.host"], name
        else:
            assert entry["health"] == HEALTHY, name
    for i in np.random.default_rng(0).choice(MANY, 20, replace=False).tolist():
        name = "run_%05d" % i
        export = get(client, "export", run=name, tag="loss", format="json", window=2).json
        assert export["value"] == ([i, i + 0.5] if name in BROKEN else [i, i + 0.5, i + 0.25]), name


def plugin_runs(client):
    return {e["run"]: e for e in helpers.wait_loaded(Client(client.application))["runs"]}
