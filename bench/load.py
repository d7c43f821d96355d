"""Load test: a real `tensorboard` process on loopback, a writer appending steps live, and N
concurrent clients issuing mixed requests for D seconds.

    python -m bench.load                          # the long form: 32 clients, 60 s
    python -m bench.load --duration 10 --static-steps 20000 --cache-mb 16   # tests/test_load.py

The server is `python -m tensorboard.main --logdir LOGDIR --host 127.0.0.1` (loopback only) with
this checkout's plugin, TensorBoard's own loading left at its defaults. The logdir holds static
runs (training-like loss, gradient norm and learning rate, one Event per step) and the run
"live", to which a writer thread appends a batch of steps every interval, each batch in two
writes cut at a random byte (so the server often sees a partial record at the end); its values
are a formula of the step, with NaN and Inf planted.

Every client (a thread) loops until the deadline or its request quota, picking at random: runs,
averages (random method, window, align, edges, unit, band, zoom range), correlation,
diagnostics, export (JSON or CSV of the live run), the frontend's index.js, and a bad request.
Each answer is checked:
- no 5xx, and a bad request is a 4xx JSON error;
- per client, a (run, tag)'s count never goes backwards (runs, averages, export, correlation);
- no torn series: raw steps strictly increasing, arrays of one series of equal length, a run's
  tags counted together (one Event carries them all), the live run's export steps exactly 0..n-1;
- values: raw values equal what was written; trailing `sma` averages equal a cumulative-sum
  recomputation of the written values.
After the deadline the writer stops; once the server has read every step, full-resolution
answers are compared with an independent recomputation: the files read by TensorBoard's own
event loader, then pandas (rolling, ewm, groupby) and scipy.stats (pearsonr, spearmanr).

Reported: requests and throughput, p50/p99 latency (overall and per kind), statuses, and the
tensorboard process's memory from /proc/PID/status: VmRSS after start-up and a first request
(TensorFlow imported, nothing read: the baseline), VmHWM (peak) and VmRSS at the end. The peak
must stay within baseline + the cache budget (--batchavg_cache_mb) + twice the raw columns (24
bytes a point; a reload briefly holds the old and the new column) + an allowance (--working-mb,
default 384 MB, set from measurements) for what is not held but passes through: the working sets
of the responses being computed (at most 4 at once, server.store.COMPUTE_SLOTS), the bodies being
sent, and the allocator's overhead in the server's threads. What the plugin *holds* is checked
exactly in-process by tests/test_load.py (tracemalloc: cache within budget + raw columns).
Exit status 1 when any check fails.
"""

import argparse
import collections
import csv
import io
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import logs  # noqa: E402
from tests.helpers import strict_json, tensorboard_server  # noqa: E402

PREFIX = "/data/plugin/batchavg/"
LIVE = "live"
TAGS = logs.TAGS  # train/loss, train/grad_norm, train/learning_rate
BYTES_PER_POINT = 24  # step int64, wall_time float64, value float64
MAX_POINTS = 100_000  # the route's largest max_points: final answers at full resolution
KINDS = {  # kind: share of requests
    "runs": 0.08,
    "averages": 0.40,
    "zoom": 0.10,
    "correlation": 0.10,
    "diagnostics": 0.08,
    "export": 0.12,
    "static": 0.06,
    "bad": 0.06,
}
BAD_REQUESTS = [  # (query, status, word the error must contain)
    ("averages?run=live&tag=train/loss&window=0", 400, "window"),
    ("averages?run=live&tag=train/loss&method=ema&weight=1", 400, "weight"),
    ("averages?run=live&tag=train/loss&window=nan", 400, "window"),
    ("averages?run=live&tag=train/loss&method=mean", 400, "method"),
    ("averages?run=..%2Flive&tag=train/loss", 404, "run"),
    ("averages?run=live&tag=%3Cscript%3E", 404, "tag"),
    ("correlation?run=live&max_lag=-1", 400, "max_lag"),
    ("diagnostics?run=live&spike_k=inf", 400, "spike_k"),
    ("export?run=live&tag=train/loss&format=xml", 400, "format"),
    ("export?tag=train/loss", 400, "run"),
]


_STARTED = time.monotonic()


def log(message):
    print("[%6.1f s] %s" % (time.monotonic() - _STARTED, message), file=sys.stderr, flush=True)


# The data ------------------------------------------------------------------------------------
def live_columns(first, count):
    """The live run's values at steps first..first+count-1 (float32, as loggers write): a
    decaying, oscillating loss with NaN every 997 steps, a gradient norm with +Inf every 1499
    steps, a stepwise learning rate."""
    s = np.arange(first, first + count, dtype=np.float64)
    loss = 2.0 * np.exp(-s / 20_000) + 0.2 + 0.1 * np.sin(0.37 * s)
    loss[s % 997 == 996] = np.nan
    grad_norm = 0.5 + 0.2 * np.cos(0.11 * s) + 1e-5 * s
    grad_norm[s % 1499 == 1498] = np.inf
    learning_rate = 1e-3 / (1 + s // 5000)
    return {tag: v.astype(np.float32) for tag, v in zip(TAGS, (loss, grad_norm, learning_rate))}


class LiveWriter(threading.Thread):
    """Appends `batch` steps to the live run's event file every `interval` seconds, each batch in
    two writes cut at a random byte, until stopped or `max_steps` steps are written; the first
    after `delay` seconds (the file holds only its file_version record until then)."""

    def __init__(self, path, batch, interval, max_steps, seed=0, delay=0.0):
        super().__init__(daemon=True)
        self.path, self.batch, self.interval, self.max_steps = path, batch, interval, max_steps
        self.delay = delay
        self.rng = np.random.default_rng(seed)
        self.steps = 0  # complete steps in the file
        self.stop = threading.Event()
        self.error = None
        with open(path, "wb") as f:
            f.write(logs.frame([logs.file_version_record()]))

    def run(self):
        try:
            self.stop.wait(self.delay)
            with open(self.path, "ab", buffering=0) as f:
                while not self.stop.is_set() and self.steps < self.max_steps:
                    count = min(self.batch, self.max_steps - self.steps)
                    data = logs.frame(logs.events(self.steps, count, live_columns(self.steps, count), "step"))
                    cut = int(self.rng.integers(1, len(data)))
                    f.write(data[:cut])
                    self.stop.wait(self.interval / 2)
                    f.write(data[cut:])
                    self.steps += count
                    self.stop.wait(self.interval / 2)
        except Exception as e:  # reported as a failure of the run
            self.error = repr(e)


def build_logdir(root, options):
    """Static runs and the live run's file; returns ({run: {tag: values}} of the static runs,
    the live file's path)."""
    static = {}
    for i in range(options.static_runs):
        run = "static_%d" % i
        os.makedirs(os.path.join(root, run))
        path = os.path.join(root, run, "events.out.tfevents.%d.static" % int(logs.WALL_START))
        logs.write_event_file(path, options.static_steps, "step", seed=i)
        static[run] = {t: v.astype(np.float64) for t, v in logs.series(options.static_steps, i).items()}
    os.makedirs(os.path.join(root, LIVE))
    return static, os.path.join(root, LIVE, "events.out.tfevents.%d.live" % int(logs.WALL_START))


# The server ----------------------------------------------------------------------------------
def memory(pid, field):
    """A field of /proc/PID/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def tensorboard(logdir, flags, timeout=180):
    """`python -m tensorboard.main --logdir LOGDIR --host 127.0.0.1 --port P FLAGS` with this
    checkout on PYTHONPATH; yields (base URL, process) once the plugin is listed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    return tensorboard_server(logdir, *flags, timeout=timeout, env=env)


def fetch(url, timeout=60):
    """(status, headers, body bytes) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


# The clients ---------------------------------------------------------------------------------
class Inconsistent(Exception):
    """An answer that breaks an invariant."""


def require(condition, message, *args):
    if not condition:
        raise Inconsistent(message % args)


def strictly_increasing(values):
    return bool(np.all(np.diff(np.asarray(values, dtype=np.int64)) > 0))


def as_floats(values):
    return np.array(values, dtype=np.float64)  # JSON null -> NaN


def same_values(got, want):
    """JSON values (null for non-finite) against float64 values, exactly."""
    got, want = as_floats(got), np.asarray(want, dtype=np.float64)
    return len(got) == len(want) and bool(np.all((got == want) | (np.isnan(got) & ~np.isfinite(want))))


def trailing_means(values, window):
    """Mean of the finite values among points i-window+1..i, for every i (cumulative sums)."""
    finite = np.isfinite(values)
    sums = np.concatenate(([0.0], np.cumsum(np.where(finite, values, 0.0))))
    counts = np.concatenate(([0], np.cumsum(finite)))
    i = np.arange(len(values))
    lo = np.maximum(i + 1 - window, 0)
    n = counts[i + 1] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[i + 1] - sums[lo]) / n, np.nan)


class LoadClient(threading.Thread):
    def __init__(self, index, base, deadline, max_requests, expected):
        super().__init__(daemon=True)
        self.base, self.deadline, self.max_requests, self.expected = base, deadline, max_requests, expected
        self.rng = np.random.default_rng(1000 + index)
        self.latency = collections.defaultdict(list)
        self.status = collections.Counter()
        self.window_longer = 0  # answered 200 with a reason: a window longer than the (live, still short) series
        self.before_data = 0  # documented 404s: the live run before its first complete step is read
        self.failures = []
        self.last = {}  # (run, tag) -> the largest count seen
        self.checked = collections.Counter()  # kind -> answers that passed every check of their kind
        self.compared = 0  # values compared with what was written

    # Invariants shared by the kinds
    def values(self, run, tag, count):
        """The first `count` values written for (run, tag), float64."""
        values = self.expected[run][tag]
        require(count <= len(values), "%s/%s: count %d is more than was written (%d)", run, tag, count, len(values))
        self.compared += count
        return values[:count]

    def advance(self, run, tag, count):
        previous = self.last.get((run, tag), 0)
        require(count >= previous, "%s/%s: count went back from %d to %d", run, tag, previous, count)
        self.last[(run, tag)] = count

    def seen(self, run):
        """Whether this client has been answered with any of `run`'s points yet."""
        return any(count for (r, _), count in self.last.items() if r == run)

    def pick_series(self):
        runs = sorted(self.expected)
        run = LIVE if self.rng.random() < 0.5 else runs[int(self.rng.integers(len(runs)))]
        return run, TAGS[int(self.rng.integers(len(TAGS)))]

    # Kinds
    def runs(self):
        def check(body):
            listed = {e["run"]: e for e in body["runs"]}
            require(set(self.expected) <= set(listed), "runs missing: %s", set(self.expected) - set(listed))
            for run, entry in listed.items():
                counts = set(entry["count"].values())
                require(len(counts) <= 1, "%s: tags counted apart: %s", run, entry["count"])
                for tag, count in entry["count"].items():
                    self.advance(run, tag, count)
                    self.values(run, tag, count)
                require(
                    entry["health"]["bad_records"] == 0 and not entry["health"]["corrupt_files"],
                    "%s: health %s",
                    run,
                    entry["health"],
                )

        return "runs", {}, check

    def averages(self, zoom=False):
        run, tag = self.pick_series()
        method = str(self.rng.choice(["sma", "sma", "ema", "median", "block"]))
        query = {
            "run": run,
            "tag": tag,
            "method": method,
            "window": int(self.rng.choice([1, 5, 50, 200, 1000])),
            "weight": float(self.rng.choice([0.0, 0.6, 0.99])),
            "align": str(self.rng.choice(["trailing", "centered"])),
            "edges": str(self.rng.choice(["valid", "partial"])),
            "unit": str(self.rng.choice(["points", "steps"])),
            "band": str(self.rng.choice(["none", "std"] + ([] if method == "ema" else ["minmax"]))),
            "max_points": int(self.rng.choice([200, 2000])),
        }
        known = self.last.get((run, tag), 0)
        if zoom and known > 10:
            start = int(self.rng.integers(0, known))
            query.update(start=start, end=start + int(self.rng.integers(1, 5000)))

        def check(body):
            count = body["count"]
            self.advance(run, tag, count)
            values = self.values(run, tag, count)
            raw, average = body["raw"], body["average"]
            steps = np.asarray(raw["step"], dtype=np.int64)
            require(len(raw["step"]) == len(raw["value"]) == len(raw["wall_time"]), "raw arrays of unequal length")
            require(len(raw["step"]) <= query["max_points"] and raw["count"] <= count, "raw counts %s", raw["count"])
            require(strictly_increasing(steps), "raw steps not strictly increasing")
            require(not len(steps) or (steps[0] >= 0 and steps[-1] < count), "raw steps outside 0..%d", count - 1)
            if "start" in query and len(steps):
                require(steps[0] >= query["start"] and steps[-1] <= query["end"], "raw steps outside the range")
            require(same_values(raw["value"], values[steps]), "raw values differ from what was written")
            if average is None:  # a window longer than the series: the raw series and the reason
                require(
                    body.get("reason") == "window_longer_than_series", "average null, reason %s", body.get("reason")
                )
                self.window_longer += 1
                return
            names = ("step", "wall_time", "value", "lower", "upper")
            require(len({len(average[k]) for k in names}) == 1, "average arrays of unequal length")
            require(strictly_increasing(average["step"]), "average steps not strictly increasing")
            if (method, query["unit"], query["align"]) == ("sma", "points", "trailing"):
                at = np.asarray(average["step"], dtype=np.int64)
                want = trailing_means(values, query["window"])[at]
                got = as_floats(average["value"])
                require(
                    np.allclose(got, want, rtol=1e-7, atol=1e-9, equal_nan=True),
                    "sma differs from the recomputation (max error %g)",
                    float(np.nanmax(np.abs(got - want))) if len(got) else 0.0,
                )

        return "averages", query, check

    def correlation(self):
        run = LIVE if self.rng.random() < 0.5 else sorted(self.expected)[0]
        query = {"run": run, "window": int(self.rng.choice([20, 200])), "max_lag": int(self.rng.choice([0, 10, 50]))}

        def check(body):
            require(body["x"] == "train/loss" and body["y"] == "train/grad_norm", "roles %s %s", body["x"], body["y"])
            self.advance(run, "correlation pairs", body["n"])
            require(len(body["lag"]["lags"]) == len(body["lag"]["value"]) <= 2 * query["max_lag"] + 1, "lag arrays")
            if body["rolling"] is None:  # a window longer than the joined series: the reason says so
                require(
                    body.get("reason") == "window_longer_than_series" and body["n"] < query["window"],
                    "rolling null with n %s, reason %s",
                    body["n"],
                    body.get("reason"),
                )
                self.window_longer += 1
            else:
                require(len(body["rolling"]["step"]) == len(body["rolling"]["value"]), "rolling arrays")
                require(strictly_increasing(body["rolling"]["step"]), "rolling steps not strictly increasing")
            require(len({len(body["scatter"][k]) for k in ("step", "x", "y")}) == 1, "scatter arrays")

        return "correlation", query, check

    def diagnostics(self):
        run = LIVE if self.rng.random() < 0.5 else sorted(self.expected)[0]

        def check(body):
            require(body["status"] in ("ok", "warning", "diverged", "no_data"), "status %s", body["status"])
            require(body["status"] != "no_data" or body["nonfinite"]["loss"] is None, "no_data with a loss")
            loss = body["nonfinite"]["loss"]
            if loss is None:  # no loss tag: only the live run, before its first step is read
                require(run == LIVE and not self.seen(LIVE), "%s: no loss tag after its data was seen", run)
                return
            self.advance(run, "nonfinite loss", loss["count"])
            require(strictly_increasing(loss["steps"]), "non-finite steps not strictly increasing")

        return "diagnostics", {"run": run}, check

    def export(self):
        tag = TAGS[int(self.rng.integers(len(TAGS)))]
        fmt = str(self.rng.choice(["json", "csv"]))
        query = {"run": LIVE, "tag": tag, "format": fmt, "window": 20}

        def check(body):
            if fmt == "json":
                steps, value, average = body["step"], body["value"], body["average"]
            else:
                rows = list(csv.reader(io.StringIO(body.decode())))
                require(rows[0] == ["step", "wall_time", "value", "average"], "CSV header %s", rows[0])
                steps = [int(r[0]) for r in rows[1:]]
                value = [float(r[2]) for r in rows[1:]]
                average = [r[3] for r in rows[1:]]
            count = len(steps)
            self.advance(LIVE, tag, count)
            require(np.array_equal(steps, np.arange(count)), "export steps are not exactly 0..%d", count - 1)
            require(len(value) == len(average) == count, "export columns of unequal length")
            want = self.values(LIVE, tag, count)
            require(same_values(value, want), "exported values differ from what was written")

        return "export", query, check

    def request(self, kind):
        """(url, check(status, headers, body)) for a request of `kind`."""
        if kind == "static":

            def check_static(status, headers, body):
                require(
                    status == 200
                    and headers["Content-Type"].startswith("text/javascript")
                    and headers["X-Content-Type-Options"] == "nosniff",
                    "index.js: %s %s",
                    status,
                    dict(headers),
                )

            return self.base + PREFIX + "index.js", check_static
        if kind == "bad":
            query, expect, word = BAD_REQUESTS[int(self.rng.integers(len(BAD_REQUESTS)))]

            def check_bad(status, headers, body):
                require(status == expect, "%s: status %d, expected %d", query, status, expect)
                require(headers["Content-Type"].startswith("application/json"), "%s: not JSON", query)
                require(word in strict_json(body)["error"], "%s: error does not name %s", query, word)

            return self.base + PREFIX + query, check_bad
        route, query, check = self.averages(zoom=True) if kind == "zoom" else getattr(self, kind)()

        def check_ok(status, headers, body):
            if status == 404 and query.get("run") == LIVE and not self.seen(LIVE):
                error = strict_json(body)["error"]  # the writer's first step is not read yet
                require("unknown tag" in error or "has no loss tag" in error, "%s %s: %s", route, query, error)
                self.before_data += 1
                return
            require(status == 200, "%s %s: status %d %s", route, query, status, body[:200])
            if route == "export" and query["format"] == "csv":
                check(body)
            else:
                check(strict_json(body))

        return self.base + PREFIX + route + "?" + urllib.parse.urlencode(query), check_ok

    def run(self):
        kinds, shares = list(KINDS), np.array(list(KINDS.values()))
        done = 0
        while time.monotonic() < self.deadline and done < self.max_requests:
            kind = kinds[int(self.rng.choice(len(kinds), p=shares / shares.sum()))]
            url, check = self.request(kind)
            started = time.perf_counter()
            try:
                status, headers, body = fetch(url)
            except OSError as e:
                self.status["connection error"] += 1
                self.failures.append("%s: %r" % (url[:200], e))
                continue
            finally:
                done += 1
            self.latency[kind].append(time.perf_counter() - started)
            self.status[status] += 1
            try:
                check(status, headers, body)
                self.checked[kind] += 1
            except Exception as e:  # any answer the checks cannot digest is a failure, not a crash
                self.failures.append("%s: %s: %s" % (url[len(self.base) :][:200], type(e).__name__, e))


# Final answers against an independent recomputation ---------------------------------------------
def import_tensorflow():
    """Loads TensorFlow, which TensorBoard's event loader reads records with when installed."""
    from tensorboard.compat import tf

    getattr(tf, "__version__", None)


def read_with_tensorboard(run_dir):
    """{tag: (steps, values)} of a run's event files, read by TensorBoard's own event loader."""
    from tensorboard.backend.event_processing import event_file_loader

    steps, values = collections.defaultdict(list), collections.defaultdict(list)
    for name in sorted(os.listdir(run_dir)):
        for event in event_file_loader.LegacyEventFileLoader(os.path.join(run_dir, name)).Load():
            for value in event.summary.value:
                steps[value.tag].append(event.step)
                values[value.tag].append(value.simple_value)
    return {t: (np.array(steps[t], np.int64), np.array(values[t], np.float64)) for t in steps}


def pandas_references(values, window=50, weight=0.6, median_window=25, block=100):
    """sma (trailing, valid), ema (TensorBoard's debiased EMA = pandas ewm adjust=True over the
    finite values, non-finite points passing through), median (centred, partial) and block
    (partial) averages of `values`, as {method: (positions, averages)}."""
    import pandas as pd

    series = pd.Series(np.where(np.isfinite(values), values, np.nan))
    finite = np.isfinite(values)
    ema = np.full(len(values), np.nan)  # non-finite points pass through: null in JSON
    ema[finite] = series[finite].ewm(alpha=1 - weight, adjust=True).mean().to_numpy()
    positions = np.arange(len(values))
    blocks = series.groupby(positions // block)
    return {
        "sma": (positions[window - 1 :], series.rolling(window, min_periods=1).mean().to_numpy()[window - 1 :]),
        "ema": (positions, ema),
        "median": (positions, series.rolling(median_window, center=True, min_periods=1).median().to_numpy()),
        "block": (np.minimum(np.arange(blocks.ngroups) * block + block - 1, len(values) - 1), blocks.mean().to_numpy()),
    }


FINAL_QUERIES = {
    "sma": {"method": "sma", "window": 50},
    "ema": {"method": "ema", "weight": 0.6},
    "median": {"method": "median", "window": 25, "align": "centered", "edges": "partial"},
    "block": {"method": "block", "window": 100, "edges": "partial"},
}


def final_checks(base, logdir, runs):
    """Full-resolution answers of every run against the files read by TensorBoard and pandas /
    scipy. Returns (checks made, failures)."""
    from scipy import stats

    def get(route, **query):
        status, _, body = fetch(base + PREFIX + route + "?" + urllib.parse.urlencode(query), timeout=300)
        if status != 200:
            raise Inconsistent("%s %s: status %d" % (route, query, status))
        return strict_json(body)

    checks, failures = 0, []

    def expect(condition, message):
        nonlocal checks
        checks += 1
        if not condition:
            failures.append("final: " + message)

    listed = {e["run"]: e for e in get("runs")["runs"]}
    for run in runs:
        files = read_with_tensorboard(os.path.join(logdir, run))
        expect(
            listed[run]["count"] == {t: len(files[t][0]) for t in TAGS},
            "%s: counts %s, files hold %s" % (run, listed[run]["count"], {t: len(files[t][0]) for t in TAGS}),
        )
        for tag in TAGS if run == LIVE else TAGS[:1]:
            steps, values = files[tag]
            references = pandas_references(values)
            for method, query in FINAL_QUERIES.items():
                body = get("averages", run=run, tag=tag, max_points=MAX_POINTS, **query)
                expect(
                    body["raw"]["step"] == steps.tolist() and same_values(body["raw"]["value"], values),
                    "%s/%s: raw points differ from the files" % (run, tag),
                )
                positions, want = references[method]
                got = as_floats(body["average"]["value"])
                expect(
                    body["average"]["step"] == steps[positions].tolist()
                    and np.allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True),
                    "%s/%s %s: averages differ from pandas" % (run, tag, method),
                )
        export = get("export", run=run, tag=TAGS[0], format="json")
        expect(
            export["step"] == files[TAGS[0]][0].tolist() and same_values(export["value"], files[TAGS[0]][1]),
            "%s: export differs from the files" % run,
        )
        (x_steps, x), (y_steps, y) = files[TAGS[0]], files[TAGS[1]]
        _, xi, yi = np.intersect1d(x_steps, y_steps, return_indices=True)
        x, y = x[xi], y[yi]
        keep = np.isfinite(x) & np.isfinite(y)
        body = get("correlation", run=run, window=20, max_lag=5)
        expect(body["n"] == int(keep.sum()), "%s: correlation n %d, want %d" % (run, body["n"], keep.sum()))
        for name, want in (
            ("pearson", stats.pearsonr(x[keep], y[keep]).statistic),
            ("spearman", stats.spearmanr(x[keep], y[keep]).statistic),
        ):
            expect(
                math.isclose(body[name], want, rel_tol=1e-9, abs_tol=1e-12),
                "%s: %s %r, scipy %r" % (run, name, body[name], want),
            )
        nonfinite = int((~np.isfinite(files[TAGS[0]][1])).sum())
        got = get("diagnostics", run=run)["nonfinite"]["loss"]["count"]
        expect(
            got == nonfinite, "%s: diagnostics counts %d non-finite losses, the file holds %d" % (run, got, nonfinite)
        )
    return checks, failures


# The run -----------------------------------------------------------------------------------------
def percentile_ms(seconds, q):
    return float(np.percentile(seconds, q)) * 1e3 if len(seconds) else float("nan")


def run(options, after=None):
    """Runs the load test; returns the report (a dict). `after(base_url)`, if given, runs while
    the server is still up, after the final checks."""
    root = tempfile.mkdtemp(prefix="batchavg-load-") if options.logdir is None else options.logdir
    logdir = os.path.join(root, "logs")
    report = {
        "clients": options.clients,
        "duration_s": options.duration,
        "cache_mb": options.cache_mb,
        "working_mb": options.working_mb,
        "failures": [],
    }
    try:
        log("writing %d static runs of %d steps" % (options.static_runs, options.static_steps))
        static, live_path = build_logdir(logdir, options)
        max_steps = MAX_POINTS  # final answers are compared at full resolution
        expected = dict(static)
        expected[LIVE] = {t: v.astype(np.float64) for t, v in live_columns(0, max_steps).items()}
        writer = LiveWriter(live_path, options.batch, options.interval, max_steps, delay=options.writer_delay)
        flags = [
            "--batchavg_cache_mb",
            str(options.cache_mb),
            "--batchavg_reload_seconds",
            str(options.reload_seconds),
            *options.tensorboard_flags,
        ]
        log("starting tensorboard %s" % " ".join(flags))
        importing = threading.Thread(target=import_tensorflow, daemon=True)  # for the final checks,
        importing.start()  # while tensorboard starts
        with tensorboard(logdir, flags) as (base, proc):
            log("tensorboard is up")
            fetch(base + PREFIX + "averages?run=warm-up&tag=none")  # imports TensorFlow, lists runs
            report["rss_baseline_mb"] = memory(proc.pid, "VmRSS") / 2**20
            writer.start()
            deadline = time.monotonic() + options.duration
            clients = [LoadClient(i, base, deadline, options.max_requests, expected) for i in range(options.clients)]
            log("%d clients for %g s" % (len(clients), options.duration))
            started = time.monotonic()
            for c in clients:
                c.start()
            for c in clients:
                c.join(max(0.0, deadline + options.request_timeout - time.monotonic()))
            elapsed = time.monotonic() - started
            stuck = sum(c.is_alive() for c in clients)
            if stuck:
                report["failures"].append(
                    "%d clients still waiting for an answer %g s after the deadline" % (stuck, options.request_timeout)
                )
            writer.stop.set()
            writer.join()
            if writer.error:
                report["failures"].append("writer: " + writer.error)
            report["writer_steps"] = writer.steps
            log("writer wrote %d steps; waiting for the server to read them" % writer.steps)
            catch_up = time.monotonic() + 60
            while True:
                listed = {e["run"]: e for e in json.loads(fetch(base + PREFIX + "runs")[2])["runs"]}
                if listed[LIVE]["count"].get(TAGS[0]) == writer.steps or time.monotonic() > catch_up:
                    break
                time.sleep(0.2)
            points = sum(sum(e["count"].values()) for e in listed.values())
            log("final checks")
            importing.join()
            try:
                checks, failures = final_checks(base, logdir, sorted(expected))
            except Inconsistent as e:  # an answer the final checks could not get
                checks, failures = 0, ["final: %s" % e]
            report["final_checks"] = checks
            report["failures"] += failures
            report["rss_peak_mb"] = memory(proc.pid, "VmHWM") / 2**20
            report["rss_end_mb"] = memory(proc.pid, "VmRSS") / 2**20
            if after is not None:
                after(base)
            log("stopping tensorboard")
        log("done")
        latency = collections.defaultdict(list)
        status = collections.Counter()
        for c in clients:
            for kind, seconds in c.latency.items():
                latency[kind] += seconds
            status.update(c.status)
            report["failures"] += c.failures
        report["window_longer"] = sum(c.window_longer for c in clients)
        report["checked"] = dict(sum((c.checked for c in clients), collections.Counter()))
        report["values_compared"] = sum(c.compared for c in clients)
        report["before_data"] = sum(c.before_data for c in clients)
        every = [s for seconds in latency.values() for s in seconds]
        report.update(
            requests=len(every),
            throughput_rps=len(every) / elapsed,
            p50_ms=percentile_ms(every, 50),
            p99_ms=percentile_ms(every, 99),
            by_kind={
                k: {"requests": len(v), "p50_ms": percentile_ms(v, 50), "p99_ms": percentile_ms(v, 99)}
                for k, v in sorted(latency.items())
            },
            status={str(k): v for k, v in sorted(status.items(), key=str)},
            server_errors=sum(v for k, v in status.items() if isinstance(k, int) and k >= 500),
            points=points,
            raw_columns_mb=points * BYTES_PER_POINT / 2**20,
        )
        report["memory_bound_mb"] = (
            report["rss_baseline_mb"] + options.cache_mb + 2 * report["raw_columns_mb"] + options.working_mb
        )
        if report["server_errors"]:
            report["failures"].append("%d answers were 5xx" % report["server_errors"])
        if report["rss_peak_mb"] > report["memory_bound_mb"]:
            report["failures"].append(
                "peak RSS %.0f MB above the bound %.0f MB" % (report["rss_peak_mb"], report["memory_bound_mb"])
            )
        return report
    finally:
        if options.logdir is None:
            shutil.rmtree(root, ignore_errors=True)


def markdown(report):
    lines = [
        "| figure | value |",
        "| --- | --- |",
        "| clients x duration | %d x %g s |" % (report["clients"], report["duration_s"]),
        "| requests (throughput) | %d (%.1f/s) |" % (report["requests"], report["throughput_rps"]),
        "| latency p50 / p99 | %.0f ms / %.0f ms |" % (report["p50_ms"], report["p99_ms"]),
        "| statuses | %s |" % ", ".join("%s: %d" % kv for kv in report["status"].items()),
        "| 5xx | %d |" % report["server_errors"],
        "| answers checked / values compared with what was written | %d / %d |"
        % (sum(report["checked"].values()), report["values_compared"]),
        "| windows longer than the series (200, with a reason) / documented 404s: live run before its first step "
        "| %d / %d |" % (report["window_longer"], report["before_data"]),
        "| steps appended live | %d |" % report["writer_steps"],
        "| points held at the end (raw columns) | %d (%.1f MB) |" % (report["points"], report["raw_columns_mb"]),
        "| RSS after start-up / peak (VmHWM) / end | %.0f / %.0f / %.0f MB |"
        % (report["rss_baseline_mb"], report["rss_peak_mb"], report["rss_end_mb"]),
        "| bound: baseline + cache %g MB + 2 x raw + working %g MB | %.0f MB |"
        % (report["cache_mb"], report["working_mb"], report["memory_bound_mb"]),
        "| final answers checked against TensorBoard's loader + pandas/scipy | %d |" % report["final_checks"],
        "| failures | %d |" % len(report["failures"]),
        "",
        "| kind | requests | p50 | p99 |",
        "| --- | --- | --- | --- |",
    ]
    for kind, figures in report["by_kind"].items():
        lines.append(
            "| %s | %d | %.0f ms | %.0f ms |" % (kind, figures["requests"], figures["p50_ms"], figures["p99_ms"])
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="requests per client at most")
    parser.add_argument("--request-timeout", type=float, default=60, help="seconds a request may take")
    parser.add_argument("--static-runs", type=int, default=2, help="static runs (default 2)")
    parser.add_argument("--static-steps", type=int, default=100_000, help="steps per static run (default 100000)")
    parser.add_argument("--batch", type=int, default=50, help="steps the writer appends at a time (default 50)")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between appends (default 0.05)")
    parser.add_argument(
        "--writer-delay",
        type=float,
        default=0.0,
        help="seconds before the writer's first step, while clients already ask for the run",
    )
    parser.add_argument("--cache-mb", type=float, default=64, help="--batchavg_cache_mb (default 64)")
    parser.add_argument("--reload-seconds", type=float, default=0.5, help="--batchavg_reload_seconds (default 0.5)")
    parser.add_argument(
        "--working-mb",
        type=float,
        default=384,
        help="memory allowed over baseline + cache + 2 x raw columns: the working sets of the "
        "responses being computed, bodies being sent, allocator overhead (default 384)",
    )
    parser.add_argument(
        "--tensorboard-flag",
        dest="tensorboard_flags",
        action="append",
        default=[],
        help="an extra flag for tensorboard (repeatable), e.g. --tensorboard-flag=--load_fast=false",
    )
    parser.add_argument("--logdir", help="where to write the logs (default: a temporary directory, removed)")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    return parser.parse_args(argv)


def main(argv=None):
    options = parse_args(argv)
    if options.static_steps > MAX_POINTS:
        sys.exit("--static-steps is at most %d: final answers are compared at full resolution" % MAX_POINTS)
    report = run(options)
    print(markdown(report))
    for failure in report["failures"][:50]:
        print("FAIL", failure)
    if options.json:
        with open(options.json, "w") as f:
            json.dump(report, f, indent=1)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
