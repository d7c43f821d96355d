"""`tb-batchavg report` over a sweep: local worker processes against one process, measured in the
same run (issue 17, item 4), and optionally the Ray engine (a local Ray) on the same logdir.

    python -m bench.report_bench [--runs 200] [--steps 100000] [--workers N] [--ray] [--write]

The sweep is `--runs` runs of `--steps` steps x 3 tags (train/loss, train/grad_norm,
train/learning_rate, one Event per tag per step as tf.summary and PyTorch write them), each its
own seed, written once by bench/logs.py (real TFRecord event files, protobuf Events) into a cache
directory (default: $TMPDIR/tb-batchavg-bench, or --cache) and reused. The files are read from
the page cache in every pass (they were just written or read): the comparison is of computing,
not of a disk. Every pass gives the same report (checked). --write appends the section to
BENCHMARKS.md, replacing an earlier one of this script.
"""

import argparse
import os
import sys
import tempfile
import time

from bench import logs
from bench.report import code_version, load_average, machine
from tb_batchavg import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TITLE = "## tb-batchavg report over a sweep (issue 17)"


def sweep(cache, runs, steps):
    """The logdir of `runs` runs (hard links to cached event files), written if missing."""
    logdir = os.path.join(cache, "report-sweep-%dx%d" % (runs, steps))
    started = time.monotonic()
    for seed in range(runs):
        source = logs.cached_event_file(cache, steps, "tag", seed)
        logs.link_run(logdir, "trial_%04d" % seed, source)
        if seed % 20 == 19:
            print(
                "  %d/%d runs written or found (%.0f s)" % (seed + 1, runs, time.monotonic() - started), file=sys.stderr
            )
    return logdir


def read_only(logdir):
    """Seconds to read every run (no diagnostics), in this process: what the report cannot beat
    on one core."""
    from tb_batchavg.report import _reader

    started = time.monotonic()
    for _, directory in report.list_runs(logdir)[0]:
        _reader.Run("r", directory).load()
    return time.monotonic() - started


def timed(logdir, **kwargs):
    with open(os.devnull, "w") as quiet:
        started = time.monotonic()
        built, _ = report.build(logdir, stream=quiet, **kwargs)
        return time.monotonic() - started, built


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "tb-batchavg-bench"))
    parser.add_argument("--repeats", type=int, default=2, help="passes of each mode, alternating; the fastest kept")
    parser.add_argument("--ray", action="store_true", help="also time --engine ray on a local Ray")
    parser.add_argument("--write", action="store_true", help="append the section to BENCHMARKS.md")
    args = parser.parse_args(argv)

    info = machine()
    print("writing or finding %d runs x %d steps in %s" % (args.runs, args.steps, args.cache), file=sys.stderr)
    logdir = sweep(args.cache, args.runs, args.steps)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(logdir) for f in files)
    read_only(logdir)  # every file in the page cache
    rows = {}
    print("reading only, one process", file=sys.stderr)
    rows["read"] = read_only(logdir)
    rows["one"] = rows["local"] = float("inf")
    expected = None
    for _ in range(args.repeats):  # alternating, the fastest of each: the cores are shared
        for mode, workers in (("one", 1), ("local", args.workers)):
            print("report, %d process(es)" % workers, file=sys.stderr)
            seconds, built = timed(logdir, workers=workers)
            rows[mode] = min(rows[mode], seconds)
            expected = built if expected is None else expected
            assert built == expected, "one process and worker processes disagree"
    if args.ray:  # as on a cluster that is already up: Ray started before the timing
        import ray

        print("report, Ray engine (a local Ray, started before)", file=sys.stderr)
        started = time.monotonic()
        ray.init(include_dashboard=False, log_to_driver=False)
        rows["ray_start"] = time.monotonic() - started
        try:
            rows["ray"], built = timed(logdir, engine="ray")
        finally:
            ray.shutdown()
        assert built == expected, "the Ray engine and the local engine disagree"
    n = args.runs
    lines = [
        TITLE,
        "",
        "`python -m bench.report_bench --runs %d --steps %d --workers %d --repeats %d%s`: %d runs x %s steps x 3 tags "
        "(%.1f GB of event files, one Event per tag per step, bench/logs.py), each run its own seed; "
        "statuses %s. Files in the page cache in every pass; the passes ran one after the other in one "
        "process, one process and worker processes alternating (the fastest of each kept), and gave the "
        "same report."
        % (
            n,
            args.steps,
            args.workers,
            args.repeats,
            " --ray" if args.ray else "",
            n,
            format(args.steps, ","),
            size / 1e9,
            ", ".join("%s %d" % kv for kv in expected["summary"].items() if kv[1]),
        ),
        "",
        "Machine: %s; load before: %s, after: %s; code %s; %s."
        % (info["summary"], info["load_before"], load_average(), code_version(), info["date"]),
        "",
        "| pass | seconds | per run | speed-up over one process |",
        "|---|---:|---:|---:|",
        "| reading only (no diagnostics), one process | %.1f | %.3f s | |" % (rows["read"], rows["read"] / n),
        "| report, one process (`--workers 1`) | %.1f | %.3f s | 1.00x |" % (rows["one"], rows["one"] / n),
        "| report, %d worker processes (default: one per core) | %.1f | %.3f s | %.2fx |"
        % (args.workers, rows["local"], rows["local"] / n, rows["one"] / rows["local"]),
    ]
    if "ray" in rows:
        lines.append(
            "| report, `--engine ray` on a local Ray already up (%d CPUs) | %.1f | %.3f s | %.2fx |"
            % (os.cpu_count() or 1, rows["ray"], rows["ray"] / n, rows["one"] / rows["ray"])
        )
        lines.append(
            "| starting that local Ray (`ray.init()`, once per report without --address) | %.1f | | |"
            % rows["ray_start"]
        )
    lines += [
        "",
        "The ratio is measured in the same run, on %d cores shared with other work (the load "
        "averages above)." % (os.cpu_count() or 1),
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.write:
        path = os.path.join(ROOT, "BENCHMARKS.md")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        at = text.find(TITLE)
        if at >= 0:  # this script's section is the last one it wrote: replace it up to the next "## "
            end = text.find("\n## ", at + len(TITLE))
            text = text[:at] + (text[end + 1 :] if end >= 0 else "")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.rstrip("\n") + "\n\n" + section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
