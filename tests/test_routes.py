"""HTTP routes through a real TensorBoard WSGI app (as `tensorboard --logdir` builds it, with
--load_fast=false and true) and through a real `tensorboard` process, on a logdir of 100,000
logged steps per tag, compared on every step with pandas (rolling, groupby, ewm), scipy.stats and
a transcription of TensorBoard's own smoothing.
"""

import argparse
import concurrent.futures
import contextlib
import csv
import gzip
import io
import json
import multiprocessing
import re
import shutil
import time
import urllib.parse
import urllib.request

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider as tb_data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from tb_batchavg.server import encoding
from tb_batchavg.server.plugin import BatchAvgPlugin
from tests import helpers

N = 100_000
FULL = 100_000  # max_points: every point
SPIKE_STEP = 77_777
LOSS_NONFINITE = {500: np.nan, 1500: np.inf, 2500: -np.inf, **{s: np.nan for s in range(30_000, 30_100)}}
GRAD_NONFINITE = {4000: np.nan, 4001: np.inf}
LEAD, LEAD_POINTS = 3, 500  # run "lead": grad_norm[i] = loss[i + LEAD]
ROLE_RUNS = {  # documented tag-name patterns -> the roles the runs route must detect
    "roles/a": (["loss", "grad_norm", "learning_rate"], ("loss", "grad_norm", "learning_rate")),
    "roles/b": (["batch_loss", "gradient_norm", "lr"], ("batch_loss", "gradient_norm", "lr")),
    "roles/c": (
        ["train/loss", "global_norm", "train/learning_rate", "val_loss", "validation/loss"],
        ("train/loss", "global_norm", "train/learning_rate"),
    ),
    "roles/d": (
        ["train_loss", "train/grad_norm", "epoch_learning_rate", "epoch_val_loss"],
        ("train_loss", "train/grad_norm", None),
    ),  # epoch_* is one point per epoch, not a batch series
    "roles/e": (["loss", "grad_norm/l2", "accuracy"], ("loss", "grad_norm/l2", None)),
    "roles/lr_only": (["lr"], (None, None, "lr")),
}


# The logdir -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def big(tmp_path_factory):
    """Runs "simple" (tensorboard's writer, simple_value, steps 0..N-1: loss, grad_norm) and "tf2"
    (tf.summary, uneven steps: loss, grad_norm, learning_rate), N points per tag with NaN/±Inf and
    a spike planted; tiny runs for roles and lags.
    Returns (logdir, {run: (steps, {tag: float32 values written})})."""
    root = tmp_path_factory.mktemp("big")
    simple = helpers.training_like(N, seed=7)
    del simple["train/learning_rate"]  # in the tf2 run: tensorboard's writer is the slow one
    for step, value in LOSS_NONFINITE.items():
        simple["train/loss"][step] = value
    simple["train/loss"][SPIKE_STEP] = 50.0
    for step, value in GRAD_NONFINITE.items():
        simple["train/grad_norm"][step] = value
    helpers.write_scalars(str(root / "simple"), simple)

    tf2 = helpers.training_like(N, seed=8)
    tf2["train/loss"][[100, 200]] = [np.nan, -np.inf]
    tf2_steps = np.cumsum(np.random.default_rng(8).integers(1, 4, N))
    helpers.write_tf2_scalars(str(root / "tf2"), tf2, steps=tf2_steps)

    for run, (tags, _) in ROLE_RUNS.items():
        helpers.write_scalars(str(root / run), {t: np.arange(3.0) + i for i, t in enumerate(tags)})
    lead = np.random.default_rng(9).standard_normal(LEAD_POINTS + LEAD)
    helpers.write_scalars(str(root / "lead"), {"loss": lead[:LEAD_POINTS], "grad_norm": lead[LEAD:]})
    return str(root), {"simple": (np.arange(N), simple), "tf2": (tf2_steps, tf2)}


@pytest.fixture(scope="module")
def apps(big):
    """apps(load_fast): a client of the app of `tensorboard --logdir BIG --load_fast=...`, built
    once. With load_fast=false, TensorBoard's own Python loader (a minute of CPU on this logdir,
    none of it used by the plugin) runs with --reload_task=process and is stopped at once: in that
    mode its data never reaches the app anyway."""
    built = {}

    def get(load_fast):
        if load_fast not in built:
            flags = ["--load_fast=" + load_fast]
            if load_fast == "false":
                flags += ["--reload_task=process", "--reload_interval=0"]
            app = helpers.make_app(big[0], *flags)
            for child in multiprocessing.active_children():  # that loader process
                child.terminate()
                child.join()
            built[load_fast] = Client(app)
        return built[load_fast]

    return get


@pytest.fixture(params=["false", "true"], ids=["load_fast=false", "load_fast=true"])
def client(request, apps):
    return apps(request.param)


def query(route, **params):
    return route + "?" + urllib.parse.urlencode(params)


def floats(values):
    """A JSON list (null for non-finite) as float64 with NaN."""
    return np.array(values, dtype=np.float64)  # None -> NaN


def nan_nonfinite(values):
    values = np.array(values, dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


# References ---------------------------------------------------------------------------------------
def window_reference(steps, values, method, window, align="trailing", edges="valid", unit="points", band="none"):
    """(positions, value, lower, upper) of DESIGN.md's Semantics, computed with pandas: rolling
    windows over a dense grid of positions (points or steps), blocks with groupby."""
    y = nan_nonfinite(values)
    pos = np.arange(len(y)) if unit == "points" else np.asarray(steps) - steps[0]
    if method == "block":
        frame = pd.DataFrame({"y": y, "block": pos // window})
        group = frame.groupby("block")["y"]
        keep = frame.groupby("block").tail(1).index.to_numpy()
        value, std, low, high = (group.mean(), group.std(ddof=1), group.min(), group.max())
        value, std, low, high = (s.to_numpy() for s in (value, std, low, high))
        if edges == "valid" and (pos[-1] + 1) % window:
            keep, value, std, low, high = keep[:-1], value[:-1], std[:-1], low[:-1], high[:-1]
    else:
        # The window [p - before, p + after] is pandas' trailing window ending at p + after, on a
        # grid of every position padded with NaN (pandas' own centering differs for even windows).
        before = window - 1 if align == "trailing" else window // 2  # pandas center=True
        after = window - 1 - before
        dense = np.full(pos[-1] + 1 + after, np.nan)
        dense[pos] = y
        rolling = pd.Series(dense).rolling(window, min_periods=1)
        stat = rolling.median() if method == "median" else rolling.mean()
        at = pos + after
        value, std, low, high = (s.to_numpy()[at] for s in (stat, rolling.std(ddof=1), rolling.min(), rolling.max()))
        inside = (pos - before >= 0) & (pos + after <= pos[-1])
        keep = np.flatnonzero(inside) if edges == "valid" else np.arange(len(pos))
        value, std, low, high = value[keep], std[keep], low[keep], high[keep]
    if band == "std":
        return keep, value, value - std, value + std
    if band == "minmax":
        return keep, value, low, high
    nothing = np.full(len(keep), np.nan)
    return keep, value, nothing, nothing


def ema_reference(values, weight, band):
    value = np.array(helpers.tensorboard_smoothing(values, weight))
    finite = np.isfinite(np.asarray(values, np.float64))
    lower = upper = np.full(len(value), np.nan)
    if band == "std":
        std = np.full(len(value), np.nan)
        std[finite] = pd.Series(np.asarray(values, np.float64)[finite]).ewm(alpha=1 - weight, adjust=True).std()
        lower, upper = value - std, value + std
    return np.arange(len(value)), value, lower, upper


def assert_close(got, want, what, rtol=1e-9, atol=1e-9):
    np.testing.assert_allclose(floats(got), nan_nonfinite(want), rtol=rtol, atol=atol, err_msg=what)


def check_averages(client, big, run, tag, **options):
    """Requests every point of `averages` and compares raw and average with the reference."""
    steps, columns = big[1][run]
    values = columns[tag]
    body = helpers.get_json(client, query("averages", run=run, tag=tag, max_points=FULL, **options))
    assert (body["count"], body["sampled"], body["raw"]["count"]) == (len(steps), False, len(steps))
    assert body["raw"]["step"] == steps.tolist()
    assert_close(body["raw"]["value"], values, "raw", rtol=0, atol=0)
    params = {
        "method": "sma",
        "window": 50,
        "weight": 0.6,
        "align": "trailing",
        "edges": "valid",
        "unit": "points",
        "band": "none",
        **options,
    }
    assert body["params"] == params
    if params["method"] == "ema":
        keep, value, lower, upper = ema_reference(values, params["weight"], params["band"])
    else:
        window_params = {k: v for k, v in params.items() if k != "weight"}
        keep, value, lower, upper = window_reference(steps, values, **window_params)
    average = body["average"]
    assert average["count"] == len(keep)
    assert average["step"] == steps[keep].tolist()
    for name, want in (("value", value), ("lower", lower), ("upper", upper)):
        assert_close(average[name], want, "%s %s" % (name, options))
    return body


# Runs and roles ------------------------------------------------------------------------------------
@pytest.mark.tf
def test_runs_lists_tags_roles_counts_and_health(client, big):
    body = helpers.wait_loaded(client)
    assert body["sampled"] is False
    by_run = {e["run"]: e for e in body["runs"]}
    assert sorted(by_run) == sorted(["simple", "tf2", "lead", *ROLE_RUNS])
    simple = by_run["simple"]
    assert simple["tags"] == ["train/grad_norm", "train/loss"]
    assert simple["roles"] == {"loss": "train/loss", "grad_norm": "train/grad_norm", "learning_rate": None}
    assert simple["count"] == {t: N for t in simple["tags"]}
    assert simple["health"] == {"bad_records": 0, "corrupt_files": [], "errors": [], "skipped_values": {}}
    tf2 = by_run["tf2"]
    assert tf2["roles"] == {
        "loss": "train/loss",
        "grad_norm": "train/grad_norm",
        "learning_rate": "train/learning_rate",
    }
    assert tf2["count"] == {t: N for t in tf2["tags"]}
    for run, (tags, roles) in ROLE_RUNS.items():
        assert by_run[run]["tags"] == sorted(tags)
        assert by_run[run]["roles"] == dict(zip(("loss", "grad_norm", "learning_rate"), roles)), run


@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_tab_is_enabled_by_scalar_data(tmp_path, load_fast):
    helpers.write_scalars(str(tmp_path / "run"), {"loss": np.arange(3.0)})
    for logdir, enabled in ((tmp_path, True), (tmp_path / "run" / "nothing_here", False)):
        client = Client(helpers.make_app(str(logdir), "--load_fast=" + load_fast, "--reload_interval=0"))
        deadline = time.time() + 30
        while True:  # TensorBoard's loader (whose data enables tabs) runs in the background
            listing = client.get("/data/plugins_listing").json["batchavg"]
            if listing["enabled"] is enabled or time.time() > deadline:
                break
            time.sleep(0.2)
        assert listing["enabled"] is enabled
        assert listing["tab_name"] == "Batch Averages"
        assert listing["loading_mechanism"] == {"type": "IFRAME", "module_path": "/data/plugin/batchavg/index.js"}


# Averages on every step ---------------------------------------------------------------------------
POINT_CASES = [
    dict(),  # the defaults: sma, window 50, trailing, valid
    dict(window=1, edges="partial"),
    dict(window=200, band="std"),
    dict(window=64, edges="partial", band="minmax"),
    dict(window=50, align="centered", band="minmax"),
    dict(window=51, align="centered", edges="partial", band="std"),
    dict(method="median", window=50, band="std"),
    dict(method="median", window=32, align="centered", edges="partial", band="minmax"),
    dict(method="block", window=300, band="std"),  # valid: the incomplete last block is dropped
    dict(method="block", window=300, edges="partial", band="minmax"),
    dict(method="ema", weight=0.6, band="std"),
    dict(method="ema", weight=0.0),
    dict(method="ema", weight=0.999, band="std"),
]
STEP_CASES = [
    dict(unit="steps", window=50, band="std"),
    dict(unit="steps", window=64, align="centered", edges="partial", band="minmax"),
    dict(unit="steps", method="median", window=40, edges="partial", band="std"),
    dict(unit="steps", method="median", window=25, align="centered", band="minmax"),
    dict(unit="steps", method="block", window=100, band="std"),
    dict(unit="steps", method="block", window=7, edges="partial", band="minmax"),
]


def matrix(cases, both_modes):
    """Every case with load_fast=true; with load_fast=false only `both_modes` (one per method):
    the averaging path is the same in both apps (the plugin never reads through TensorBoard's
    loader) and each full-resolution response costs about a second of JSON."""
    return [
        pytest.param(mode, case, id="load_fast=%s-%s" % (mode, json.dumps(case, separators=(",", ":"))))
        for mode in ("true", "false")
        for i, case in enumerate(cases)
        if mode == "true" or i in both_modes
    ]


@pytest.mark.tf
@pytest.mark.parametrize("load_fast, options", matrix(POINT_CASES, both_modes={0, 6, 8, 10}))
def test_averages_on_every_point_match_pandas(apps, big, load_fast, options):
    check_averages(apps(load_fast), big, "simple", "train/loss", **options)


@pytest.mark.tf
@pytest.mark.parametrize("load_fast, options", matrix(STEP_CASES, both_modes={0}))
def test_averages_over_uneven_steps_match_pandas(apps, big, load_fast, options):
    """The tf.summary run: TF2 scalar tensors at uneven steps, windows counted in steps."""
    check_averages(apps(load_fast), big, "tf2", "train/loss", **options)


def test_json_writes_non_finite_numbers_as_null_and_floats_exactly():
    rng = np.random.default_rng(3)
    floats = np.concatenate(
        (
            rng.normal(size=500) * 10.0 ** rng.integers(-300, 300, 500),
            rng.random(500).astype(np.float32),
            [5e-324, 1.7976931348623157e308, -0.0, 1e16],
        )
    )
    body = encoding.json(
        {
            "x": floats.tolist(),
            "bad": [np.nan, np.inf, -np.inf, np.float64("nan")],
            "scalars": [np.float64(0.1), np.int64(7), None],
        }
    )
    decoded = helpers.strict_json(body)
    assert decoded["x"] == floats.tolist()  # every float64 round-trips exactly
    assert decoded["bad"] == [None] * 4
    assert decoded["scalars"] == [0.1, 7, None]


@pytest.mark.tf
def test_nonfinite_steps_are_reported(client, big):
    body = helpers.get_json(client, query("averages", run="simple", tag="train/loss", max_points=50))
    nonfinite = sorted(LOSS_NONFINITE)
    assert body["nonfinite_count"] == len(nonfinite)
    assert body["nonfinite"] == nonfinite[:50]
    body = helpers.get_json(client, query("averages", run="simple", tag="train/loss", start=1000, end=3000))
    assert (body["nonfinite"], body["nonfinite_count"]) == ([1500, 2500], 2)


@pytest.mark.tf
@pytest.mark.parametrize("options", [dict(), dict(align="centered", window=101, band="std"), dict(method="ema")])
def test_step_range_is_cut_after_averaging(client, big, options):
    full = check_averages(client, big, "simple", "train/loss", **options)
    body = helpers.get_json(
        client, query("averages", run="simple", tag="train/loss", start=1000, end=2000, max_points=FULL, **options)
    )
    assert body["range"] == {"start": 1000, "end": 2000}
    assert body["raw"]["step"] == list(range(1000, 2001))
    assert body["raw"]["count"] == 1001
    average = full["average"]
    inside = [i for i, s in enumerate(average["step"]) if 1000 <= s <= 2000]
    for name in ("step", "value", "lower", "upper", "wall_time"):
        assert body["average"][name] == [average[name][i] for i in inside]
    empty = helpers.get_json(client, query("averages", run="simple", tag="train/loss", start=N + 5))
    assert (empty["raw"]["step"], empty["average"]["step"], empty["raw"]["count"]) == ([], [], 0)


@pytest.mark.tf
def test_max_points_keeps_the_planted_spike(client, big):
    _, columns = big[1]["simple"]
    _, value, _, _ = window_reference(np.arange(N), columns["train/loss"], "sma", 50)
    for max_points in (2, 200, 2000):
        body = helpers.get_json(client, query("averages", run="simple", tag="train/loss", max_points=max_points))
        raw, average = body["raw"], body["average"]
        assert len(raw["step"]) <= max_points and len(average["step"]) <= max_points
        assert SPIKE_STEP in raw["step"]
        assert raw["value"][raw["step"].index(SPIKE_STEP)] == 50.0
        assert np.nanmax(floats(average["value"])) == pytest.approx(np.nanmax(value), rel=1e-12)
        assert (raw["count"], average["count"]) == (N, N - 49)


@pytest.mark.tf
@pytest.mark.parametrize(
    "run, options",
    [
        ("simple", dict(band="std")),
        ("simple", dict(band="minmax", align="centered", edges="partial")),
        ("simple", dict(method="median", window=25, band="std")),
        ("simple", dict(method="block", window=20, band="minmax")),
        ("tf2", dict(unit="steps", window=40, band="std")),
    ],
)
def test_bands_of_a_reduced_response_match_pandas(client, big, run, options):
    """With max_points * window at most the series' length the band is computed at the shown
    points only (windows.band_at): it still matches pandas at every point returned."""
    steps, columns = big[1][run]
    values = columns["train/loss"]
    params = {"method": "sma", "window": 50, "align": "trailing", "edges": "valid", "unit": "points", **options}
    body = helpers.get_json(client, query("averages", run=run, tag="train/loss", max_points=1000, **params))
    keep, value, lower, upper = window_reference(steps, values, **params)
    average = body["average"]
    at = np.searchsorted(steps[keep], average["step"])
    assert 500 <= len(at) <= 1000 and steps[keep][at].tolist() == average["step"]
    for name, want in (("value", value), ("lower", lower), ("upper", upper)):
        assert_close(average[name], want[at], "%s %s" % (name, options))


@pytest.mark.tf
@pytest.mark.parametrize("route", ["averages", "correlation", "diagnostics"])
def test_computed_responses_are_gzipped_when_accepted_and_plain_otherwise(client, route):
    """Computed bodies are cached gzipped: a browser (Accept-Encoding: gzip) gets them as they
    are, any other client the same JSON unzipped; a second request is a cache hit and the same."""
    url = "/data/plugin/batchavg/" + (
        query(route, run="simple", tag="train/loss") if route == "averages" else query(route, run="simple")
    )
    plain = client.get(url)
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    again = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == zipped.status_code == again.status_code == 200
    assert "Content-Encoding" not in plain.headers and plain.headers["Content-Type"].startswith("application/json")
    assert zipped.headers["Content-Encoding"] == "gzip" and int(zipped.headers["Content-Length"]) == len(zipped.data)
    assert int(plain.headers["Content-Length"]) == len(plain.data) > len(zipped.data)
    assert (
        helpers.strict_json(gzip.decompress(zipped.data))
        == helpers.strict_json(plain.data)
        == helpers.strict_json(gzip.decompress(again.data))
    )


# Correlation ----------------------------------------------------------------------------------
def joined(big, run, x_tag, y_tag):
    steps, columns = big[1][run]
    x, y = np.asarray(columns[x_tag], np.float64), np.asarray(columns[y_tag], np.float64)
    both = np.isfinite(x) & np.isfinite(y)
    return steps[both], x[both], y[both]


@pytest.mark.tf
@pytest.mark.parametrize(
    "run, x, y, window, max_lag",
    [
        ("simple", None, None, 200, 50),
        ("tf2", None, None, 1000, 5),
        ("tf2", "train/learning_rate", "train/loss", 2, 0),
    ],
)
def test_correlation_matches_scipy_and_pandas(client, big, run, x, y, window, max_lag):
    x_tag, y_tag = x or "train/loss", y or "train/grad_norm"
    steps, xs, ys = joined(big, run, x_tag, y_tag)
    params = dict(run=run, window=window, max_lag=max_lag, max_points=FULL)
    params.update({k: v for k, v in (("x", x), ("y", y)) if v})
    body = helpers.get_json(client, query("correlation", **params))
    assert (body["x"], body["y"], body["n"], body["sampled"]) == (x_tag, y_tag, len(steps), False)
    assert body["pearson"] == pytest.approx(stats.pearsonr(xs, ys).statistic, abs=1e-12)
    assert body["spearman"] == pytest.approx(stats.spearmanr(xs, ys).statistic, abs=1e-12)
    dx, dy = np.diff(xs), np.diff(ys)
    assert body["pearson_diff"] == pytest.approx(stats.pearsonr(dx, dy).statistic, abs=1e-12)
    assert body["spearman_diff"] == pytest.approx(stats.spearmanr(dx, dy).statistic, abs=1e-12)

    rolling = pd.Series(xs).rolling(window).corr(pd.Series(ys)).to_numpy()[window - 1 :]
    assert body["rolling"]["step"] == steps[window - 1 :].tolist()
    assert_close(body["rolling"]["value"], rolling, "rolling", atol=1e-7)

    lags = list(range(-max_lag, max_lag + 1))
    want = [
        stats.pearsonr(xs[k:], ys[: len(xs) - k]).statistic if k >= 0 else stats.pearsonr(xs[:k], ys[-k:]).statistic
        for k in lags
    ]
    assert body["lag"]["lags"] == lags
    assert_close(body["lag"]["value"], want, "lagged", atol=1e-10)
    assert body["lag"]["best"] == lags[int(np.argmax(np.abs(want)))]

    scatter = body["scatter"]
    assert len(scatter["step"]) == min(len(steps), FULL)
    position = np.searchsorted(steps, scatter["step"])
    assert_close(scatter["x"], xs[position], "scatter x", rtol=0, atol=0)
    assert_close(scatter["y"], ys[position], "scatter y", rtol=0, atol=0)


@pytest.mark.tf
def test_correlation_lag_finds_a_planted_lead(client):
    """In run "lead" the gradient norm at point i is the loss at point i + 3: y leads x by 3."""
    body = helpers.get_json(client, query("correlation", run="lead", max_lag=10))
    assert body["lag"]["best"] == LEAD
    assert body["lag"]["value"][body["lag"]["lags"].index(LEAD)] == pytest.approx(1.0)
    assert abs(body["pearson"]) < 0.2


@pytest.mark.tf
def test_correlation_reduced_for_the_browser(client, big):
    steps, xs, ys = joined(big, "simple", "train/loss", "train/grad_norm")
    body = helpers.get_json(client, query("correlation", run="simple", max_points=300, start=10_000, end=60_000))
    assert len(body["scatter"]["step"]) <= 300 and len(body["rolling"]["step"]) <= 300
    assert all(10_000 <= s <= 60_000 for s in body["rolling"]["step"])
    assert body["n"] == len(steps)


# Export ----------------------------------------------------------------------------------------
@pytest.mark.tf
def test_export_csv_every_point(client, big):
    steps, columns = big[1]["simple"]
    values = columns["train/loss"]
    response = client.get("/data/plugin/batchavg/" + query("export", run="simple", tag="train/loss"))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"] == 'attachment; filename="simple_train_loss_sma50.csv"'
    text = response.get_data(as_text=True)
    assert text.split("\n", 1)[0] == "step,wall_time,value,average"
    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert len(rows) == N
    assert [int(r[0]) for r in rows] == steps.tolist()
    assert [float(r[1]) for r in rows] == (1_700_000_000.0 + np.arange(N)).tolist()
    tokens = {r[2] for r, v in zip(rows, values) if not np.isfinite(v)}
    assert tokens == {"nan", "inf", "-inf"}
    assert [rows[s][2] for s in (500, 1500, 2500)] == ["nan", "inf", "-inf"]
    np.testing.assert_array_equal(np.array([float(r[2]) for r in rows]), np.asarray(values, np.float64))
    keep, value, _, _ = window_reference(steps, values, "sma", 50)
    assert all(r[3] == "" for r in rows[:49])
    average = np.array([float(rows[i][3]) for i in keep])
    np.testing.assert_allclose(average, value, rtol=1e-9, atol=1e-9)
    assert {rows[i][3] for i in keep[np.isnan(value)]} == {"nan"}  # a window of NaN only


@pytest.mark.tf
@pytest.mark.parametrize(
    "options, filename",
    [
        (dict(method="ema", weight=0.9), "tf2_train_loss_ema0.9.json"),
        (dict(method="block", window=7, unit="steps"), "tf2_train_loss_block7.json"),
    ],
)
def test_export_json_every_point(client, big, options, filename):
    steps, columns = big[1]["tf2"]
    values = columns["train/loss"]
    url = "/data/plugin/batchavg/" + query("export", run="tf2", tag="train/loss", format="json", **options)
    response = client.get(url)
    assert response.headers["Content-Disposition"] == 'attachment; filename="%s"' % filename
    body = response.json
    assert (body["run"], body["tag"], body["sampled"]) == ("tf2", "train/loss", False)
    assert body["step"] == steps.tolist()
    assert_close(body["value"], values, "value", rtol=0, atol=0)
    if options["method"] == "ema":
        keep, value, _, _ = ema_reference(values, options["weight"], "none")
    else:
        keep, value, _, _ = window_reference(steps, values, "block", 7, unit="steps")
    average = np.full(N, np.nan)
    average[keep] = value
    has = np.zeros(N, bool)
    has[keep] = True
    assert all(body["average"][i] is None for i in np.flatnonzero(~has))
    assert_close(body["average"], average, "average")


def test_export_filename_of_root_run_and_unsafe_names(tmp_path):
    helpers.write_scalars(str(tmp_path), {'we"ird tag/é': np.arange(5.0)})
    client = Client(helpers.make_app(str(tmp_path), "--load_fast=false", "--reload_interval=0"))
    response = client.get("/data/plugin/batchavg/" + query("export", run=".", tag='we"ird tag/é', window=2))
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="we_ird_tag__sma2.csv"'
    assert response.get_data(as_text=True).splitlines()[1:3] == ["0,1700000000.0,0.0,", "1,1700000001.0,1.0,0.5"]


# Errors -----------------------------------------------------------------------------------------
ERRORS = [
    # (route, parameters, status, the parameter the message must name)
    ("averages", dict(tag="train/loss"), 400, "run"),
    ("averages", dict(run="simple"), 400, "tag"),
    ("averages", dict(run="nope", tag="train/loss"), 404, "run"),
    ("averages", dict(run="simple", tag="nope"), 404, "tag"),
    ("averages", dict(run="sim\x00ple", tag="train/loss"), 400, "run"),
    ("averages", dict(run="simple", tag="train/\x00loss"), 400, "tag"),
    ("averages", dict(run="simple", tag="x" * 5000), 400, "tag"),
    ("averages", dict(run="simple", tag="train/loss", method="mean"), 400, "method"),
    ("averages", dict(run="simple", tag="train/loss", align="left"), 400, "align"),
    ("averages", dict(run="simple", tag="train/loss", edges="same"), 400, "edges"),
    ("averages", dict(run="simple", tag="train/loss", unit="seconds"), 400, "unit"),
    ("averages", dict(run="simple", tag="train/loss", band="iqr"), 400, "band"),
    ("averages", dict(run="simple", tag="train/loss", method="ema", band="minmax"), 400, "band"),
    *[
        ("averages", dict(run="simple", tag="train/loss", window=w), 400, "window")
        for w in ("0", "-3", "10000001", "1.5", "1e3", "abc", "nan", "inf", "0x10", "1_000", " 5", "9" * 50)
    ],
    *[
        ("averages", dict(run="simple", tag="train/loss", method="ema", weight=w), 400, "weight")
        for w in ("1", "1.0", "-0.1", "nan", "inf", "-inf", "1e999", "abc", "0,5")
    ],
    *[
        ("averages", dict(run="simple", tag="train/loss", max_points=m), 400, "max_points")
        for m in ("1", "0", "100001", "nan", "2.5")
    ],
    ("averages", dict(run="simple", tag="train/loss", start="abc"), 400, "start"),
    ("averages", dict(run="simple", tag="train/loss", end="1.5"), 400, "end"),
    ("averages", dict(run="simple", tag="train/loss", end="99999999999999999999"), 400, "end"),
    ("averages", dict(run="simple", tag="train/loss", start="10", end="9"), 400, "start"),
    ("correlation", dict(), 400, "run"),
    ("correlation", dict(run="nope"), 404, "run"),
    ("correlation", dict(run="simple", x="nope"), 404, "x"),
    ("correlation", dict(run="simple", y="no\x00pe"), 400, "y"),
    ("correlation", dict(run="roles/lr_only"), 404, "x"),
    ("correlation", dict(run="roles/lr_only", x="lr"), 404, "y"),
    ("correlation", dict(run="simple", window="1"), 400, "window"),
    ("correlation", dict(run="simple", max_lag="-1"), 400, "max_lag"),
    ("correlation", dict(run="simple", max_lag="10001"), 400, "max_lag"),
    ("correlation", dict(run="simple", start="5", end="4"), 400, "start"),
    ("export", dict(run="simple", tag="train/loss", format="xml"), 400, "format"),
    ("export", dict(run="simple", tag="train/loss", window="0"), 400, "window"),
    ("export", dict(run="simple", tag="nope"), 404, "tag"),
    ("export", dict(tag="train/loss"), 400, "run"),
]


@pytest.mark.tf
@pytest.mark.parametrize(
    "route, params, status, parameter",
    ERRORS,
    ids=["%s-%s" % (e[0], urllib.parse.urlencode(e[1])[:60]) for e in ERRORS],
)
def test_errors_are_json_and_name_the_parameter(client, route, params, status, parameter):
    response = client.get("/data/plugin/batchavg/" + query(route, **params))
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json
    assert list(body) == ["error"]
    assert re.search(r"\b%s\b" % parameter, body["error"]), body["error"]


@settings(max_examples=150, deadline=None)
@given(
    route=st.sampled_from(["averages", "correlation", "export"]),
    params=st.dictionaries(
        st.sampled_from(
            [
                "run",
                "tag",
                "x",
                "y",
                "method",
                "window",
                "weight",
                "align",
                "edges",
                "unit",
                "band",
                "start",
                "end",
                "max_points",
                "max_lag",
                "format",
            ]
        ),
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(
                ["roles/a", "loss", "grad_norm", "ema", "block", "minmax", "steps", "centered", "2", "-1", "0.5"]
            ),
        ),
    ),
)
def test_no_input_gives_a_server_error(small_client, route, params):
    response = small_client.get("/data/plugin/batchavg/" + query(route, **params))
    assert response.status_code in (200, 400, 404), (params, response.data[:300])
    if response.status_code != 200:
        assert list(response.json) == ["error"]


@pytest.fixture(scope="module")
def small_client(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("small")
    for run, (tags, _) in ROLE_RUNS.items():
        helpers.write_scalars(str(logdir / run), {t: np.arange(3.0) + i for i, t in enumerate(tags)})
    return Client(helpers.make_app(str(logdir), "--load_fast=false", "--reload_interval=0"))


# Static files ----------------------------------------------------------------------------------
@pytest.mark.tf
def test_static_files(client):
    response = client.get("/data/plugin/batchavg/index.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == "text/javascript"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert b"export" in response.data and b"render" in response.data
    for path in (
        "nope.js",
        "../index.js",
        "..%2Findex.js",
        "%2e%2e/%2e%2e/setup.py",
        "../../../../etc/passwd",
        "frontend/index.js",
        "__init__.py",
        "",
        "/",
    ):
        assert client.get("/data/plugin/batchavg/" + path).status_code == 404, path
    assert client.get("/data/plugin/batchavg/index.js/").data == response.data  # TensorBoard drops the slash


# Sampled fallback --------------------------------------------------------------------------------
def test_sampled_fallback_through_the_data_provider(tmp_path):
    """No logdir the plugin can read (as with --grpc_data_provider): it asks TensorBoard's data
    provider, whose scalars are a 1,000-point sample, and says so."""
    columns = helpers.training_like(3000, seed=9)
    helpers.write_scalars(str(tmp_path / "run"), columns)
    # A restart at an equal step: TensorBoard's Python loader keeps both points of step 20.
    helpers.write_scalars(str(tmp_path / "dup"), {"loss": np.arange(30.0)}, steps=[*range(21), *range(20, 29)])
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"scalars": 1000})  # TensorBoard's default
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    provider = tb_data_provider.MultiplexerDataProvider(mux, str(tmp_path))
    context = base_plugin.TBContext(flags=argparse.Namespace(), data_provider=provider, multiplexer=mux, logdir="")
    client = Client(application.TensorBoardWSGI([BatchAvgPlugin(context)], data_provider=provider))

    runs = helpers.get_json(client, "runs")
    assert runs["sampled"] is True
    entry = {e["run"]: e for e in runs["runs"]}["run"]
    assert entry["roles"]["loss"] == "train/loss"
    assert entry["count"] == {t: 1000 for t in columns}
    assert "health" not in entry

    body = helpers.get_json(client, query("averages", run="run", tag="train/loss", window=10, max_points=FULL))
    assert (body["sampled"], body["count"]) == (True, 1000)
    steps = np.array(body["raw"]["step"])
    assert steps[-1] == 2999 and np.all(np.diff(steps) > 0)
    sample = columns["train/loss"][steps]
    assert_close(body["raw"]["value"], sample, "sampled raw", rtol=0, atol=0)
    _, value, _, _ = window_reference(steps, sample, "sma", 10)
    assert_close(body["average"]["value"], value, "sampled average")

    grad = helpers.get_json(client, query("averages", run="run", tag="train/grad_norm", max_points=FULL))
    grad_steps = grad["raw"]["step"]
    correlation = helpers.get_json(client, query("correlation", run="run"))
    assert (correlation["sampled"], correlation["n"]) == (True, len(np.intersect1d(steps, grad_steps)))
    export = client.get("/data/plugin/batchavg/" + query("export", run="run", tag="train/loss", format="json")).json
    assert export["sampled"] is True and export["step"] == steps.tolist()

    dup = helpers.get_json(client, query("averages", run="dup", tag="loss", window=2, max_points=FULL))
    assert dup["raw"]["step"] == list(range(29))
    assert dup["raw"]["value"][19:22] == [19.0, 21.0, 22.0]  # step 20: the later point


# A real tensorboard process ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_run_logdir(big, tmp_path_factory):
    """A logdir holding only the run "simple" (100,000 steps of 3 tags)."""
    logdir = tmp_path_factory.mktemp("one_run")
    shutil.copytree(big[0] + "/simple", logdir / "simple")
    return str(logdir)


@pytest.fixture(scope="module")
def servers(one_run_logdir):
    """`tensorboard --logdir ONE_RUN --load_fast=true` and `=false` processes, started together."""
    modes = ("true", "false")
    with contextlib.ExitStack() as stack, concurrent.futures.ThreadPoolExecutor(len(modes)) as pool:
        starting = [helpers.tensorboard_process(one_run_logdir, "--load_fast=" + mode) for mode in modes]
        yield dict(zip(modes, pool.map(stack.enter_context, starting)))


@pytest.mark.tf
@pytest.mark.parametrize("load_fast", ["true", "false"])
def test_tensorboard_process_serves_averages_on_every_step(big, servers, load_fast):
    steps, columns = big[1]["simple"]
    values = columns["train/loss"]

    def get(route, **params):
        url = servers[load_fast] + "/data/plugin/batchavg/" + query(route, **params)
        with urllib.request.urlopen(url, timeout=120) as response:
            return helpers.strict_json(response.read())

    runs = helpers.wait_for(lambda: (lambda r: not r["loading"] and r)(get("runs")), what="runs loaded")
    (run,) = runs["runs"]
    assert (run["run"], run["count"]) == ("simple", {t: N for t in columns})
    assert run["roles"]["loss"] == "train/loss"
    sma = get("averages", run="simple", tag="train/loss", window=100, max_points=FULL)
    keep, value, _, _ = window_reference(steps, values, "sma", 100)
    assert sma["average"]["step"] == keep.tolist()
    assert_close(sma["average"]["value"], value, "sma over HTTP")
    ema = get("averages", run="simple", tag="train/loss", method="ema", weight=0.95, max_points=FULL)
    assert ema["average"]["step"] == steps.tolist()
    assert_close(ema["average"]["value"], helpers.tensorboard_smoothing(values, 0.95), "ema over HTTP")
