"""The `group` route (http_api.md) through a real TensorBoard WSGI app, on runs written with
TensorBoard's own writer, against pandas: each run's rolling mean, `merge_asof` onto the union of
the runs' steps restricted to each run's own first..last step, then mean, std (ddof=1), min, max and
count across runs; the ci95 band against scipy.stats.t.ppf (test-only)."""

import urllib.parse

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from werkzeug.test import Client

from tb_batchavg.stats import groups
from tests import helpers

SEEDS = 4
N = 600
# name -> steps: every step, every 3 steps, and offset starts and ends
CADENCES = {
    "cad/every": np.arange(0, 900),
    "cad/third": np.arange(0, 900, 3),
    "cad/late": np.arange(150, 700),
    "cad/early_even": np.arange(7, 500, 2),
}


def _values(seed, n):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (2.0 * np.exp(-3.0 * t / n) + 0.2 + 0.1 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("group")
    written = {}
    for i in range(SEEDS):
        values = _values(i, N)
        if i == 1:
            values[100] = np.nan  # a NaN point: the run's windows over it average the others
        helpers.write_scalars(str(root / "seeds" / ("seed_%d" % i)), {"train/loss": values})
        written["seeds/seed_%d" % i] = (np.arange(N), values)
    for j, (name, steps) in enumerate(CADENCES.items()):
        values = _values(10 + j, len(steps))
        helpers.write_scalars(str(root / name), {"loss": values}, steps=steps)
        written[name] = (steps, values)
    # "short": 20 points, shorter than the window of 50; "other": another tag only
    helpers.write_scalars(str(root / "cad" / "short"), {"loss": _values(99, 20)})
    helpers.write_scalars(str(root / "cad" / "zz_other"), {"accuracy": _values(98, 100)})
    return root, written


@pytest.fixture(scope="module")
def client(logdir):
    app = Client(helpers.make_app(str(logdir[0]), "--batchavg_reload_seconds", "0"))
    helpers.wait_loaded(app)
    return app


def group(client, expect=200, **query):
    query.setdefault("max_points", "100000")
    return helpers.get_json(client, "group?" + urllib.parse.urlencode(query), expect)


def pandas_group(written, names, window, roll=None):
    """(grid, frame of each run's contribution): rolling mean (trailing, valid edges, NaN skipped)
    then merge_asof onto the union grid, kept within each run's own first..last step."""
    rolled = {}
    for name in names:
        steps, values = written[name]
        series = pd.Series(values.astype(np.float64), index=steps)
        mean = series.rolling(window, min_periods=1).mean().iloc[window - 1 :] if roll is None else roll(series)
        rolled[name] = pd.DataFrame({"step": mean.index.to_numpy(np.int64), name: mean.to_numpy()})
    grid = pd.DataFrame({"step": np.unique(np.concatenate([r["step"].to_numpy() for r in rolled.values()]))})
    frame = grid.copy()
    for name, r in rolled.items():
        merged = pd.merge_asof(grid, r, on="step", direction="backward")
        inside = (grid["step"] >= r["step"].iloc[0]) & (grid["step"] <= r["step"].iloc[-1])
        frame[name] = merged[name].where(inside)
    return frame["step"].to_numpy(), frame[names]


def _close(got, expected):
    """Equal within 1e-8: pandas' own rolling sums drift by up to about 1e-8 at numpy 1.26 (the
    lowest supported versions); a wrong alignment or band differs by orders more."""
    got = np.array([np.nan if v is None else v for v in got], dtype=np.float64)
    np.testing.assert_allclose(got, np.asarray(expected, dtype=np.float64), rtol=1e-8, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(
    "runs,names,window",
    [
        (r"^seeds/", ["seeds/seed_%d" % i for i in range(SEEDS)], 50),
        (r"^seeds/seed_[0-3]$", ["seeds/seed_%d" % i for i in range(SEEDS)], 1),
        (r"^cad/(every|third|late|early_even)$", sorted(CADENCES), 10),
    ],
)
def test_mean_std_minmax_and_n_equal_pandas(client, logdir, runs, names, window):
    _, written = logdir
    step, frame = pandas_group(written, names, window)
    common = {"runs": runs, "role": "loss", "method": "sma", "window": str(window)}
    std = group(client, band="std", **common)
    assert std["runs"] == names and std["role"] == "loss" and std["left_out"] == []
    assert std["step"] == step.tolist() and std["count"] == len(step)
    mean, sd = frame.mean(axis=1, skipna=True), frame.std(axis=1, ddof=1, skipna=True)
    _close(std["mean"], mean)
    _close(std["lower"], mean - sd)
    _close(std["upper"], mean + sd)
    assert std["n"] == frame.count(axis=1).tolist()
    minmax = group(client, band="minmax", **common)
    _close(minmax["mean"], mean)
    _close(minmax["lower"], frame.min(axis=1))
    _close(minmax["upper"], frame.max(axis=1))
    none = group(client, band="none", **common)
    assert all(v is None for v in none["lower"] + none["upper"])
    n = frame.count(axis=1).to_numpy()
    half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd.to_numpy() / np.sqrt(n)
    ci = group(client, band="ci95", **common)
    _close(ci["lower"], np.where(n >= 2, mean - half, np.nan))
    _close(ci["upper"], np.where(n >= 2, mean + half, np.nan))


def test_different_cadences_count_only_runs_inside_their_steps(client, logdir):
    answer = group(client, runs=r"^cad/(every|third|late|early_even)$", tag="loss", window="10", band="std")
    step, n = np.array(answer["step"]), np.array(answer["n"])
    assert answer["tag"] == "loss"
    # first averages (window 10): every 9, early_even 25, third 27, late 159; last: early_even 499,
    # late 699, third 897, every 899
    assert (n[step < 25] == 1).all()
    assert (n[(step >= 159) & (step <= 499)] == 4).all()
    assert (n[(step > 699) & (step <= 897)] == 2).all()  # late and early_even have ended: no extrapolation
    assert (n[step > 897] == 1).all()
    assert all(v is None for v, k in zip(answer["lower"], n) if k < 2)


def test_start_end_and_decimation_keep_the_extremes(client, logdir):
    _, written = logdir
    names = ["seeds/seed_%d" % i for i in range(SEEDS)]
    step, frame = pandas_group(written, names, 5)
    mean = frame.mean(axis=1).to_numpy()
    whole = group(client, runs="^seeds/", role="loss", window="5", max_points="40")
    assert len(whole["step"]) <= 40 and whole["count"] == len(step)
    assert min(whole["mean"]) == pytest.approx(mean.min(), rel=1e-12)
    assert max(whole["mean"]) == pytest.approx(mean.max(), rel=1e-12)
    part = group(client, runs="^seeds/", role="loss", window="5", start="200", end="300")
    inside = (step >= 200) & (step <= 300)
    assert part["step"] == step[inside].tolist()
    _close(part["mean"], mean[inside])


def test_a_short_run_is_left_out_with_its_reason(client):
    answer = group(client, runs=r"^cad/(every|short)$", tag="loss", window="50")
    assert answer["runs"] == ["cad/every"]
    (out,) = answer["left_out"]
    assert out["run"] == "cad/short" and out["reason"] == "window_longer_than_series"
    assert out["window"] == 50 and out["length"] == 20


def test_a_run_without_the_tag_is_left_out(client):
    answer = group(client, runs=r"^cad/(every|zz_other)$", tag="loss", window="5")
    assert answer["runs"] == ["cad/every"]
    assert [o["run"] for o in answer["left_out"]] == ["cad/zz_other"]
    assert answer["left_out"][0]["reason"] == "no_series"


def test_errors(client):
    bad = group(client, 400, runs="seeds/(", role="loss")
    assert "'runs'" in bad["error"] and "regular expression" in bad["error"]
    missing = group(client, 404, runs="^nothing_here$", role="loss")
    assert "no run matches" in missing["error"]
    assert "no run matching" in group(client, 404, runs="^cad/zz_other$", tag="loss")["error"]
    assert "'tag' or 'role'" in group(client, 400, runs="^seeds/")["error"]
    assert "'band'" in group(client, 400, runs="^seeds/", role="loss", band="iqr")["error"]
    assert "'role'" in group(client, 400, runs="^seeds/", role="lossy")["error"]
    # band=minmax across runs is fine with ema (each run's own average has no band)
    assert group(client, runs="^seeds/", role="loss", method="ema", band="minmax")["n"][0] == SEEDS


def test_t_quantile_against_scipy():
    df = np.concatenate([np.arange(1, 200), [500, 1000, 10**5, 10**7]])
    np.testing.assert_allclose(groups.t975(df), stats.t.ppf(0.975, df), rtol=3e-8)


@pytest.mark.parametrize(
    "method,roll",
    [
        ("median", lambda s: s.rolling(7, min_periods=1).median().iloc[6:]),
        ("ema", lambda s: s.ewm(alpha=1 - 0.6, adjust=True, ignore_na=True).mean()),
    ],
)
def test_each_run_is_averaged_with_the_method_first(client, logdir, method, roll):
    _, written = logdir
    names = sorted(CADENCES)
    step, frame = pandas_group(written, names, 7, roll)
    answer = group(
        client, runs="^cad/(every|third|late|early_even)$", tag="loss", method=method, window="7", band="std"
    )
    assert answer["step"] == step.tolist() and answer["n"] == frame.count(axis=1).tolist()
    mean, sd = frame.mean(axis=1), frame.std(axis=1, ddof=1)
    _close(answer["mean"], mean)
    _close(answer["upper"], mean + sd)


def test_alignment_by_hand():
    a = (np.array([0, 1, 2]), np.array([1.0, np.nan, 3.0]))
    b = (np.array([1, 3]), np.array([5.0, 7.0]))
    out = groups.across([a, b], "std")
    assert out["step"].tolist() == [0, 1, 2, 3]
    assert out["n"].tolist() == [1, 1, 2, 1]  # a's NaN at 1 contributes nothing; a ends at 2
    np.testing.assert_array_equal(out["mean"], [1.0, 5.0, 4.0, 7.0])
    np.testing.assert_allclose(out["lower"], [np.nan, np.nan, 4 - np.sqrt(2), np.nan])
    same = groups.across([(np.array([0, 5]), np.array([1e300, 2.0]))] * 3, "ci95", start=1)
    assert same["step"].tolist() == [5] and same["lower"][0] == same["upper"][0] == 2.0
    assert groups.across([a, b], "minmax", end=2)["upper"].tolist() == [1.0, 5.0, 5.0]
