"""Cold load of a logdir by five loaders, each timed until every point is held or readable.

- `ours`: `tb_batchavg.ingest.reader.LogdirReader(logdir).reload()`; `ours_numpy` the same with
  the numpy kernels instead of the C ones (what an install without a C compiler
  runs);
- `python`: TensorBoard's Python loader as `tensorboard --load_fast=false --samples_per_plugin
  scalars=0` runs it (`plugin_event_multiplexer.EventMultiplexer`, scalars kept in full);
- `tbparse`: `tbparse.SummaryReader(logdir).scalars` (a pandas DataFrame);
- `rust`: TensorBoard's Rust data server (`SubprocessServerDataIngester`, the
  `tensorboard_data_server` binary, `--samples_per_plugin scalars=0`), from spawning it until
  `read_scalars` through its data provider returns every point of every tag (and, separately,
  until `list_scalars` first shows every tag's last step).

The three in-process loaders run in a fresh worker process per loader (`python
-m bench.loaders NAME REPEATS BUDGET LOGDIR...`, the largest logdir first), so the first load's
resident-memory growth is that loader's own. Modules are imported and TensorBoard's filesystem
layer is touched (which imports TensorFlow when installed, as a running TensorBoard already has)
before the clock starts. Event files are in the OS page
cache in every case: "cold" means a process that holds no data yet.
"""

import gc
import json
import os
import subprocess
import sys
import time

from bench.timing import repeat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_bytes(pid="self"):
    """(current, peak) resident set size of a process, from /proc (0, 0 where unavailable)."""
    try:
        with open("/proc/%s/status" % pid) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return 0, 0
    kb = lambda key: int(fields.get(key, "0 kB").split()[0]) * 1024  # noqa: E731
    return kb("VmRSS"), kb("VmHWM")


def _load_ours(logdir):
    from tb_batchavg.ingest.reader import LogdirReader

    reader = LogdirReader(logdir)
    reader.reload()
    return reader


def _load_ours_numpy(logdir):
    from tb_batchavg.ingest import records

    records._kernels = None  # (this worker process loads with nothing else)
    return _load_ours(logdir)


def _count_ours(reader):
    held = [reader.series(run, tag) for run in reader.runs() for tag in reader.tags(run)]
    return sum(len(s.step) for s in held), sum(column.nbytes for s in held for column in s)


def _load_python(logdir):
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=plugin_event_multiplexer.event_accumulator.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance={"scalars": 0},
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return multiplexer


def _count_python(multiplexer):
    points = sum(
        len(multiplexer.Tensors(run, tag))
        for run, content in multiplexer.Runs().items()
        for tag in content.get("tensors", [])
    )
    return points, None


def _load_tbparse(logdir):
    import tbparse

    return tbparse.SummaryReader(logdir).scalars


def _count_tbparse(frame):
    return int(len(frame)), int(frame.memory_usage(deep=True).sum())


# name -> (load a logdir and return what holds the data, (points, bytes of the held columns))
_LOADERS = {
    "ours": (_load_ours, _count_ours),
    "ours_numpy": (_load_ours_numpy, _count_ours),
    "python": (_load_python, _count_python),
    "tbparse": (_load_tbparse, _count_tbparse),
}


def _prepare(name, logdir):
    """Imports what `name` needs and touches the filesystem layer, outside the timed region."""
    from tensorboard.compat import tf

    tf.io.gfile.listdir(logdir)
    if name.startswith("ours"):
        import tb_batchavg.ingest.reader  # noqa: F401
    elif name == "python":
        from tensorboard.backend.event_processing import plugin_event_multiplexer  # noqa: F401
    else:
        import tbparse  # noqa: F401


def worker(name, logdirs, repeats, budget_seconds):
    """Loads each logdir up to `repeats` times (fewer once `budget_seconds` would be exceeded).

    Returns one {"seconds": [...], "points", "nbytes"} per logdir; the first logdir's entry also
    has "rss_growth" and "rss_peak_growth" (bytes, from its first load in this fresh process,
    measured while the loaded data is still held).
    """
    _prepare(name, logdirs[0])
    results = []
    for index, logdir in enumerate(logdirs):

        def measure(index=index, logdir=logdir):
            load, count = _LOADERS[name]
            gc.collect()
            base, _ = rss_bytes()
            t0 = time.perf_counter()
            held = load(logdir)
            out = {"seconds": time.perf_counter() - t0}
            if index == 0:
                gc.collect()
                rss, peak = rss_bytes()
                out.update(rss_growth=rss - base, rss_peak_growth=peak - base)
            out["points"], out["nbytes"] = count(held)
            del held
            return out

        runs = repeat(measure, repeats, budget_seconds)
        results.append(dict(runs[0], seconds=[r["seconds"] for r in runs]))
    return results


def run_worker(name, logdirs, repeats, budget_seconds):
    """Runs `worker` in a fresh Python process; returns its results, or {"error"} for each logdir."""
    if name == "tbparse":
        try:
            import tbparse  # noqa: F401
        except ImportError:
            return [{"error": "tbparse is not installed (pip install tbparse)"} for _ in logdirs]
    cmd = [sys.executable, "-m", "bench.loaders", name, str(repeats), str(budget_seconds), *logdirs]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        error = "exit %d: %s" % (done.returncode, done.stderr.strip()[-800:])
        return [{"error": error} for _ in logdirs]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _children_of_binary(binary_path):
    """Pids of this process's children running `binary_path`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            exe = os.readlink("/proc/%s/exe" % entry)
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and os.path.realpath(exe) == os.path.realpath(binary_path):
            pids.append(int(entry))
    return pids


def rust_cold(logdir, expected, timeout=600.0):
    """One cold load by TensorBoard's Rust data server.

    `expected` maps run -> {tag: (point count, last step)}. Returns {"seconds" (until
    read_scalars returns every point), "listed_seconds" (until list_scalars shows every last
    step), "points", "rss" (the server's resident memory then)}.
    """
    from tensorboard import context
    from tensorboard.data import server_ingester
    from tensorboard.util import grpc_util

    binary = server_ingester.get_server_binary()
    ctx = context.RequestContext()
    total = sum(count for tags in expected.values() for count, _ in tags.values())
    largest = max(count for tags in expected.values() for count, _ in tags.values())
    t0 = time.perf_counter()
    ingester = server_ingester.SubprocessServerDataIngester(
        binary,
        logdir,
        reload_interval=0,
        channel_creds_type=grpc_util.ChannelCredsType.LOCAL,
        samples_per_plugin={"scalars": 0},
    )
    ingester.start()
    pids = _children_of_binary(binary.path)
    try:
        provider = ingester.data_provider
        deadline = t0 + timeout
        while True:
            listing = provider.list_scalars(ctx, experiment_id="", plugin_name="scalars")
            if all(
                tag in listing.get(run, {}) and listing[run][tag].max_step == last
                for run, tags in expected.items()
                for tag, (_, last) in tags.items()
            ):
                break
            if time.perf_counter() > deadline:
                raise RuntimeError("data server did not load %s within %ss" % (logdir, timeout))
            time.sleep(0.02)
        listed = time.perf_counter() - t0
        while True:
            data = provider.read_scalars(ctx, experiment_id="", plugin_name="scalars", downsample=2 * largest)
            points = sum(len(data.get(run, {}).get(tag, ())) for run, tags in expected.items() for tag in tags)
            if points >= total:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError("data server returned %d of %d points" % (points, total))
            time.sleep(0.02)
        readable = time.perf_counter() - t0
        rss = sum(rss_bytes(pid)[0] for pid in pids)
    finally:
        ingester._stdin_handle.close()  # the server runs with --die-after-stdin
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    return {"seconds": readable, "listed_seconds": listed, "points": points, "rss": rss}


if __name__ == "__main__":
    _name, _repeats, _budget, *_logdirs = sys.argv[1:]
    print(json.dumps(worker(_name, _logdirs, int(_repeats), float(_budget))))
