"""Cold load of runs written by the real writers: our reader against TensorBoard's Rust data server,
and, from `tensorboard --logdir`, the tab's averages of every step against the Scalars tab's last step.

    python -m bench.writers                 # 1,000,000 steps x 3 tags per writer (cached runs)
    python -m bench.writers --steps 100000  # smaller

Runs come from tests/corpus.py (each written by the writer itself, cached under its cache dir).
For each writer:
- `ours`: `LogdirReader(logdir).reload()` in a fresh process (bench/loaders.py), median of repeats;
  `ours, numpy kernels`: the same with the numpy kernels instead of the C ones;
- `rust listed`: the Rust data server from its start until `list_scalars` shows every tag's last
  step, which is when TensorBoard's Scalars route returns the last step; `rust readable`: until
  `read_scalars` returns every point. Ratio = ours / rust listed (target <= 0.5).
- `launch`: a `tensorboard --logdir` process started per loader (`--load_fast=true` and `false`);
  from the spawn, polled side by side: the Scalars route (`/data/plugin/scalars/scalars`) until it
  returns the last step of the loss tag, and our `averages` route until its count is every step.
  Both include TensorBoard's start-up. Ratio = ours / Scalars (target <= 1).
Prints a markdown table to paste into BENCHMARKS.md, and the JSON of every measurement.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import loaders  # noqa: E402
from tests import corpus, helpers  # noqa: E402

# Writers fast enough for a 1M-step run (Keras and eager TF take about 1 ms a step: hours), and
# the two "mostly images and histograms" runs (an image, a histogram and a text every 10 steps).
WRITERS = ("tf2_function", "tf1_scalar_pb", "tbx", "torch", "mixed_tf2", "mixed_tbx")
MIXED_STEPS = 200_000
LOSS = "train/loss"


def log(message):
    print(message, file=sys.stderr, flush=True)


def expected(logdir):
    """{run: {tag: (points, last step)}} as our reader reads it (checked against TensorBoard's
    loaders by tests/test_writers.py)."""
    from tb_batchavg.ingest.reader import LogdirReader

    reader = LogdirReader(logdir)
    reader.reload()
    return {
        run: {tag: (len(s.step), int(s.step[-1])) for tag in reader.tags(run) for s in [reader.series(run, tag)]}
        for run in reader.runs()
    }


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())
    except OSError:
        return None


def launch(logdir, run, tag, points, last, load_fast, timeout=600):
    """Seconds from spawning `tensorboard --logdir` until (the Scalars route shows `last`, our
    averages route has `points` points), each polled in its own thread (a request may block)."""
    port = helpers.free_port()
    base = "http://127.0.0.1:%d/data/plugin/" % port
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    cmd = helpers.tensorboard_command(logdir, port, "--load_fast=" + load_fast, "--reload_interval=1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = {}

    def poll(name, url, ready):
        while time.perf_counter() - t0 < timeout and proc.poll() is None:
            body = get_json(url)
            if body is not None and ready(body):
                done[name] = time.perf_counter() - t0
                return
            time.sleep(0.05)

    pollers = [
        threading.Thread(
            target=poll,
            args=(
                "scalars",
                base + "scalars/scalars?" + query,
                lambda b: isinstance(b, list) and bool(b) and b[-1][1] == last,
            ),
        ),
        threading.Thread(
            target=poll,
            args=(
                "ours",
                base + "batchavg/averages?" + query + "&window=50",
                lambda b: isinstance(b, dict) and b.get("count") == points,
            ),
        ),
    ]
    try:
        for t in pollers:
            t.start()
        for t in pollers:
            t.join()
    finally:
        proc.terminate()
        proc.wait()
    if len(done) < 2:
        raise RuntimeError("tensorboard (load_fast=%s) did not serve %s in time: %s" % (load_fast, logdir, done))
    return done["scalars"], done["ours"]


def measure(name, steps, repeats, launch_loaders):
    n = MIXED_STEPS if name.startswith("mixed") else steps
    logdir = corpus.cached(name, n)
    want = expected(logdir)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(logdir) for f in files)
    ours, ours_numpy = (loaders.run_worker(k, [logdir], repeats, 120.0)[0] for k in ("ours", "ours_numpy"))
    for result in (ours, ours_numpy):
        if "error" in result:
            raise RuntimeError(result["error"])
    rust = [loaders.rust_cold(logdir, want) for _ in range(repeats)]
    ((run, tags),) = want.items()
    tag = next(t for t in tags if t.endswith(LOSS) or LOSS in t)
    points, last = tags[tag]
    launched = {lf: launch(logdir, run, tag, points, last, lf) for lf in launch_loaders}
    return {
        "writer": name,
        "steps": n,
        "bytes": size,
        "points": sum(p for p, _ in tags.values()),
        "ours": statistics.median(ours["seconds"]),
        "ours_numpy": statistics.median(ours_numpy["seconds"]),
        "rust_listed": statistics.median(r["listed_seconds"] for r in rust),
        "rust_readable": statistics.median(r["seconds"] for r in rust),
        "launch": {lf: {"scalars": s, "ours": o} for lf, (s, o) in launched.items()},
    }


def table(rows):
    lines = [
        "| writer | steps | file MB | ours | ours, numpy kernels | Rust listed | ours / listed | Rust readable | "
        "launch: Scalars last step (Rust) | launch: our averages | ratio | launch: Scalars (Python loader) | "
        "our averages | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            r["writer"],
            "%d" % r["steps"],
            "%.0f" % (r["bytes"] / 2**20),
            "%.2f s" % r["ours"],
            "%.2f s" % r["ours_numpy"],
            "%.2f s" % r["rust_listed"],
            "%.2fx" % (r["ours"] / r["rust_listed"]),
            "%.2f s" % r["rust_readable"],
        ]
        for lf in ("true", "false"):
            times = r["launch"].get(lf)
            cells += (
                ["%.1f s" % times["scalars"], "%.1f s" % times["ours"], "%.2fx" % (times["ours"] / times["scalars"])]
                if times
                else ["not run"] * 3
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--writers", default=",".join(WRITERS))
    parser.add_argument(
        "--launch", default="true,false", help="TensorBoard loaders to launch (--load_fast values; empty: no launch)"
    )
    args = parser.parse_args(argv)
    rows = []
    for name in args.writers.split(","):
        if not corpus.available(name):
            log("%s: its library is not installed, left out" % name)
            continue
        log("%s ..." % name)
        rows.append(measure(name, args.steps, args.repeats, [lf for lf in args.launch.split(",") if lf]))
        log(json.dumps(rows[-1]))
    print(table(rows))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, prefix="writers-") as f:
        json.dump(rows, f, indent=1)
    log("measurements: %s" % f.name)


if __name__ == "__main__":
    main()
