"""Latency and payload of the plugin's routes through the real TensorBoard WSGI app.

The app is built as `tensorboard --logdir` builds it (`tests.helpers.make_app`), with TensorBoard's
own data loading detached (`--grpc_data_provider` pointing at an unused port: nothing connects
until a core route asks) so that only the plugin's work is measured; the plugin reads `--logdir`
itself. Requests carry `Accept-Encoding: gzip`, as browsers send it.

- "computed": the run's columns are loaded (warm), the response is computed. Each request adds
  a parameter that changes neither the work nor the points but makes it unique (`start=-k`, a
  bound before the first step; for `diagnostics`, a `max_points` other than the default, which
  only truncates lists of non-finite steps), so it misses the plugin's result cache.
- "cached": the route itself, asked again (a cache hit); payload sizes are the route's own.
"""

import gzip
import itertools
import statistics
import threading
import time

from werkzeug.test import Client

from bench.timing import clocked, repeat
from tests.helpers import make_app

PREFIX = "/data/plugin/batchavg/"
GZIP = {"Accept-Encoding": "gzip"}


# Cache-miss parameters: the same work and the same points as the request without them.
def start_before(k):
    """A step bound before the first step (the benchmark's steps start at 0)."""
    return "&start=-%d" % k


def max_points_below(k):
    """For diagnostics, where max_points only truncates the lists of non-finite steps."""
    return "&max_points=%d" % (100_000 - k)


def computed_routes(run, tag):
    """(label, route, cache-miss parameter) of the cached routes: `averages` per method (the
    targets name sma, ema and block with a band, and median), `correlation`, `diagnostics`."""
    base = "averages?run=%s&tag=%s&" % (run, tag)
    return [
        ("averages sma w=50 band=std", base + "method=sma&window=50&band=std", start_before),
        ("averages ema w=0.6 band=std", base + "method=ema&weight=0.6&band=std", start_before),
        ("averages block w=50 band=std", base + "method=block&window=50&band=std", start_before),
        ("averages sma w=50 band=minmax", base + "method=sma&window=50&band=minmax", start_before),
        ("averages median w=50", base + "method=median&window=50", start_before),
        ("averages median w=1000", base + "method=median&window=1000", start_before),
        ("correlation w=200 max_lag=200", "correlation?run=%s&window=200&max_lag=200" % run, start_before),
        ("diagnostics (defaults)", "diagnostics?run=%s" % run, max_points_below),
    ]


def export_routes(run, tag):
    """(label, route, None) of the exports (never cached)."""
    base = "export?run=%s&tag=%s&method=sma&window=50" % (run, tag)
    return [
        ("export csv (every point)", base + "&format=csv", None),
        ("export json (every point)", base + "&format=json", None),
    ]


def detached_app(logdir):
    return make_app(logdir, "--grpc_data_provider", "127.0.0.1:1")


def get(client, route, headers=GZIP):
    """(seconds, response body bytes as sent) of one GET; raises on a non-200 answer."""
    t0 = time.perf_counter()
    response = client.get(PREFIX + route, headers=headers)
    body = response.get_data()
    elapsed = time.perf_counter() - t0
    if response.status_code != 200:
        raise RuntimeError("%s -> %d: %s" % (route, response.status_code, body[:300]))
    return elapsed, body


_misses = itertools.count(1)


def missed(route, bust):
    """`route` made unique by `bust(k)`, so the plugin's result cache misses."""
    return route + bust(next(_misses))


def measure_route(client, route, bust, repeats, budget_seconds):
    """Computed latencies (cache misses when `bust` is given), cached latency, and the raw and
    gzipped payload of `route` itself."""
    runs = repeat(clocked(lambda: get(client, missed(route, bust) if bust else route)[1]), repeats, budget_seconds)
    sent = get(client, route)[1] if bust else runs[-1]["result"]  # with bust: fills the cache
    gzipped = sent[:2] == b"\x1f\x8b"
    raw = gzip.decompress(sent) if gzipped else sent
    seconds = [r["seconds"] for r in runs]
    out = {
        "seconds": seconds,
        "median": statistics.median(seconds),
        "raw_bytes": len(raw),
        "gzip_bytes": len(sent) if gzipped else len(gzip.compress(raw, compresslevel=3)),
    }
    if bust:
        out["cached"] = statistics.median(get(client, route)[0] for _ in range(max(3, repeats)))
    return out


def concurrent_warm(client, warm_route, cold_route, min_requests=5):
    """Warm requests for a loaded run issued back to back while `cold_route` loads another run in
    a thread, alternating a computed one (`warm_route`, missing the cache) and a cached one.

    Returns {"cold_seconds", "computed": [seconds], "cached": [seconds]}; requests continue until
    the cold one answered and at least `min_requests` of each kind were made.
    """
    get(client, warm_route)  # fills the cache for the cached kind
    done = threading.Event()
    result = {"computed": [], "cached": []}

    def cold():
        result["cold_seconds"] = get(Client(client.application), cold_route)[0]
        done.set()

    thread = threading.Thread(target=cold, name="cold-load")
    thread.start()
    while not done.is_set() or len(result["cached"]) < min_requests:
        result["computed"].append(get(client, missed(warm_route, start_before))[0])
        result["cached"].append(get(client, warm_route)[0])
    thread.join()
    return result
