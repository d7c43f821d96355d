"""Benchmark of tb-batchavg beside the alternatives, measured in one run; see bench/README.md.

    python -m bench.run            # full: 10k, 100k, 1M steps x 3 tags; 200 runs x 10k steps
    python -m bench.run --quick    # smoke run (< 2 minutes), does not write BENCHMARKS.md

Prints the tables and writes BENCHMARKS.md (full runs) with the machine and the targets of
issue 6 section 2 (PASS/FAIL), evaluated on the largest scale.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import core, loaders, logs, report  # noqa: E402
from bench.timing import repeat  # noqa: E402

RUN = "train"
APPENDED_STEPS = 1000
# Repeats of the warm measurements (routes, numeric core, incremental reload) at least: they take
# milliseconds, and the median of more of them moves less with the shared machine's noise.
MIN_WARM_REPEATS = 9


def log(message):
    print(message, file=sys.stderr, flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 10k and 20k steps, 20 runs, 1 repeat, short budgets"
    )
    parser.add_argument(
        "--steps",
        type=lambda s: [int(x) for x in s.split(",")],
        help="comma-separated steps per run for the cold-load scales; the largest "
        "is the target scale (default 10000,100000,1000000)",
    )
    parser.add_argument("--runs", type=int, help="runs in the many-runs logdir (default 200)")
    parser.add_argument("--run-steps", type=int, help="steps per run there (default 10000)")
    parser.add_argument("--repeats", type=int, help="repeats per measurement; medians are reported (default 3)")
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds after which a cold-load measurement stops repeating; route and "
        "numeric measurements use a quarter of it (default 45)",
    )
    parser.add_argument(
        "--layout",
        choices=("step", "tag"),
        default="step",
        help="one Event per step with all tags (default), or one per tag per step",
    )
    parser.add_argument(
        "--cache-dir",
        default=os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tb-batchavg-bench"),
        help="where generated event files are kept between runs (default %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="generate event files in a temporary dir")
    parser.add_argument(
        "--output", help="Markdown report path (default: BENCHMARKS.md of the checkout for full runs, none for --quick)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "steps": [10_000, 20_000] if quick else [10_000, 100_000, 1_000_000],
        "runs": 20 if quick else 200,
        "run_steps": 10_000,
        "repeats": 1 if quick else 3,
        "budget": 3.0 if quick else 45.0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.steps = sorted(set(args.steps))
    if args.output is None and not quick:
        args.output = os.path.join(ROOT, "BENCHMARKS.md")
    return args


def expected_tags(steps):
    return {RUN: {tag: (steps, steps - 1) for tag in logs.TAGS}}


def cold_loads(scale_dirs, args):
    """{steps: {loader: result}} for every scale; worker loaders see the largest scale first."""
    ordered = sorted(scale_dirs, reverse=True)
    results = {n: {} for n in ordered}
    for name in ("ours", "python", "tbparse"):
        log("cold load: %s at %s steps" % (name, ", ".join(map(str, ordered))))
        for n, result in zip(
            ordered, loaders.run_worker(name, [scale_dirs[n] for n in ordered], args.repeats, args.budget)
        ):
            _check_points(name, n, result)
            results[n][name] = result
    for n in ordered:
        log("cold load: Rust data server at %d steps" % n)
        try:
            runs = repeat(lambda n=n: loaders.rust_cold(scale_dirs[n], expected_tags(n)), args.repeats, args.budget)
        except Exception as e:  # reported in the table: the rest of the benchmark still runs
            results[n]["rust"] = {"error": "%s: %s" % (type(e).__name__, e)}
            continue
        results[n]["rust"] = {
            "seconds": [r["seconds"] for r in runs],
            "listed_seconds": [r["listed_seconds"] for r in runs],
            "points": runs[0]["points"],
            "rss": runs[0]["rss"],
        }
        _check_points("rust", n, results[n]["rust"])
    return results


def _check_points(name, steps, result):
    if "error" in result:
        log("  %s failed: %s" % (name, result["error"]))
        return
    expected = logs.point_count(steps)
    if result["points"] != expected:
        result["error"] = "read %d points, expected %d" % (result["points"], expected)
        log("  %s: %s" % (name, result["error"]))
    else:
        log("  %s: median %.3f s over %d" % (name, statistics.median(result["seconds"]), len(result["seconds"])))


def route_latencies(work, big_file, n, args):
    """Warm latencies and payloads on the target run, then warm requests during cold loads."""
    from werkzeug.test import Client

    from bench import routes

    logdir = os.path.join(work, "routes")
    logs.link_run(logdir, RUN, big_file)
    cold_runs = ["cold%d" % i for i in range(1, args.repeats + 1)]
    for name in cold_runs:
        logs.link_run(logdir, name, big_file)
    app = routes.detached_app(logdir)
    client = Client(app)
    tag = logs.TAGS[0]
    first, _ = routes.get(client, "averages?run=%s&tag=%s" % (RUN, tag))
    log("routes: first request (cold load of %d steps through the app) %.2f s" % (n, first))
    rows = []
    for label, route, bust in routes.computed_routes(RUN, tag) + routes.export_routes(RUN, tag):
        try:
            result = routes.measure_route(client, route, bust, max(args.repeats, MIN_WARM_REPEATS), args.budget / 4)
        except Exception as e:  # a broken route is reported in its row; the others still run
            result = {"error": "%s: %s" % (type(e).__name__, e)}
            log("  %-34s error %s" % (label, result["error"]))
        else:
            log("  %-34s %8.1f ms  gzip %6.1f KB" % (label, 1e3 * result["median"], result["gzip_bytes"] / 1024))
        result["label"] = label
        rows.append(result)
    warm_label, warm_route, _ = routes.computed_routes(RUN, tag)[0]
    concurrent = []
    for name in cold_runs:
        result = routes.concurrent_warm(client, warm_route, "averages?run=%s&tag=%s" % (name, tag))
        concurrent.append(result)
        log(
            "  during a cold load (%.1f s): %d warm requests, slowest computed %.0f ms, cached %.0f ms"
            % (
                result["cold_seconds"],
                2 * len(result["cached"]),
                1e3 * max(result["computed"]),
                1e3 * max(result["cached"]),
            )
        )
    return {"app_cold_seconds": first, "rows": rows, "concurrent": concurrent, "concurrent_route": warm_label}


def runs_latency(work, cache_dir, args):
    """Latency of `runs` over many runs: the first (cold) request, then warm repeats."""
    from werkzeug.test import Client

    from bench import routes

    logdir = os.path.join(work, "many")
    for i in range(args.runs):
        logs.link_run(logdir, "run%03d" % i, logs.cached_event_file(cache_dir, args.run_steps, args.layout, seed=i))
    client = Client(routes.detached_app(logdir))
    first, body = routes.get(client, "runs", headers={})
    result = routes.measure_route(client, "runs", None, max(args.repeats, MIN_WARM_REPEATS), args.budget / 4)
    result.update(cold_seconds=first, runs=args.runs, run_steps=args.run_steps)
    log("runs over %d runs: cold %.2f s, warm %.1f ms" % (args.runs, first, 1e3 * result["median"]))
    return result


def incremental_reload(work, big_file, n, args):
    """Cold load of a private copy, then reloads each after APPENDED_STEPS more steps."""
    from tb_batchavg.ingest.reader import LogdirReader

    logdir = os.path.join(work, "growing")
    path = logs.copy_run(logdir, RUN, big_file)
    reader = LogdirReader(logdir)
    t0 = time.perf_counter()
    reader.reload()
    cold = time.perf_counter() - t0
    seconds = []
    last = n - 1
    for _ in range(max(args.repeats, MIN_WARM_REPEATS)):
        logs.append_steps(path, last + 1, APPENDED_STEPS, args.layout)
        last += APPENDED_STEPS
        t0 = time.perf_counter()
        reader.reload()
        seconds.append(time.perf_counter() - t0)
        held = reader.series(RUN, logs.TAGS[0])
        if int(held.step[-1]) != last or len(held.step) != last + 1:
            raise RuntimeError("incremental reload read up to step %d, expected %d" % (held.step[-1], last))
    log(
        "incremental reload of %d steps: %.1f ms (cold in this process %.2f s)"
        % (APPENDED_STEPS, 1e3 * statistics.median(seconds), cold)
    )
    return {"seconds": seconds, "in_process_cold": cold, "appended": APPENDED_STEPS}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.perf_counter()
    machine = report.machine()
    log("machine: %s" % machine["summary"])
    cache_dir = tempfile.mkdtemp(prefix="tb-batchavg-bench-") if args.no_cache else args.cache_dir
    os.makedirs(cache_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="work-", dir=cache_dir)  # same filesystem: logdirs are hard links
    try:
        log("event files (cached in %s)" % cache_dir)
        files = {}
        for n in args.steps:
            t0 = time.perf_counter()
            files[n] = logs.cached_event_file(cache_dir, n, args.layout)
            log("  %d steps: %.1f s" % (n, time.perf_counter() - t0))
        t0 = time.perf_counter()
        for i in range(args.runs):
            logs.cached_event_file(cache_dir, args.run_steps, args.layout, seed=i)
        log("  %d runs x %d steps: %.1f s" % (args.runs, args.run_steps, time.perf_counter() - t0))
        scale_dirs = {}
        for n in args.steps:
            scale_dirs[n] = os.path.join(work, "scale-%d" % n)
            logs.link_run(scale_dirs[n], RUN, files[n])

        target = max(args.steps)
        results = {"machine": machine, "args": vars(args), "argv": argv, "target_steps": target}
        results["cold"] = cold_loads(scale_dirs, args)
        log("numeric core on %d points" % target)
        results["core"] = core.run(target, max(args.repeats, MIN_WARM_REPEATS), args.budget / 4, log=log)
        from tensorboard.compat import tf

        tf.io.gfile.listdir(work)  # imports TensorFlow (when installed) outside any timing
        results["routes"] = route_latencies(work, files[target], target, args)
        results["runs"] = runs_latency(work, cache_dir, args)
        results["incremental"] = incremental_reload(work, files[target], target, args)
        results["machine"]["load_after"] = report.load_average()
        results["machine"]["code_after"] = report.code_version()
        results["elapsed"] = time.perf_counter() - started
        text = report.markdown(results)
        print(text)
        if args.output:
            with open(args.output, "w") as f:
                f.write(text)
            log("wrote %s" % args.output)
        log("total %.0f s" % results["elapsed"])
        return 0 if args.quick or report.all_pass(results) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.no_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
