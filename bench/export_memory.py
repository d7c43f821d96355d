"""Memory of slow concurrent exports: a real `tensorboard` process serving a 1,000,000-step run,
SLOW_CLIENTS clients each downloading its CSV (or JSON) export at once and reading it slowly.

The export's body is streamed (server/export.py): formed a chunk of rows at a time as the client
reads it. So the server's resident memory should grow by a fixed amount per client, not by the
run's size times the clients (issue 16: six slow readers of a 1M-point export must grow RSS by at
most 300 MB; 8.9 GB before streaming).

Reported: the server's VmRSS once the run is read and one averages answer computed (the
baseline), its peak while the clients read (sampled every 20 ms), the growth, and each client's
bytes and time. Run from the checkout's root:

    python -m bench.export_memory [--steps 1000000] [--clients 6] [--format csv] [--cache-mb 64]
"""

import argparse
import os
import tempfile
import threading
import time
import urllib.request

from bench import logs
from tests import helpers

LIMIT_MB = 300


def rss_mb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no %s for pid %d" % (field, pid))


def slow_read(url, read_bytes, pause, out):
    """Reads the whole body `read_bytes` at a time with `pause` seconds between reads."""
    start, total = time.time(), 0
    with urllib.request.urlopen(url, timeout=600) as response:
        while True:
            data = response.read(read_bytes)
            if not data:
                break
            total += len(data)
            time.sleep(pause)
    out.append((total, time.time() - start))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("--cache-mb", type=float, default=64)
    parser.add_argument("--read-bytes", type=int, default=64 << 10, help="bytes a client reads at a time")
    parser.add_argument("--pause", type=float, default=0.01, help="seconds a client waits between reads")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tb-batchavg-export-memory-") as logdir:
        os.makedirs(os.path.join(logdir, "big"))
        logs.write_event_file(os.path.join(logdir, "big", "events.out.tfevents.1.big"), args.steps, "step", 0)
        with helpers.tensorboard_server(logdir, "--batchavg_cache_mb", str(args.cache_mb)) as (base, proc):
            api = base + "/data/plugin/batchavg/"
            while b'"loading":false' not in urllib.request.urlopen(api + "runs", timeout=60).read():
                time.sleep(0.2)
            urllib.request.urlopen(api + "averages?run=big&tag=train/loss&window=50", timeout=600).read()
            baseline = rss_mb(proc.pid)
            url = api + "export?run=big&tag=train/loss&window=50&format=" + args.format
            done, peak = [], baseline
            clients = [
                threading.Thread(target=slow_read, args=(url, args.read_bytes, args.pause, done))
                for _ in range(args.clients)
            ]
            for client in clients:
                client.start()
            while any(client.is_alive() for client in clients):
                peak = max(peak, rss_mb(proc.pid))
                time.sleep(0.02)
    growth = peak - baseline
    print(
        "%d slow clients, %s export of %d steps, --batchavg_cache_mb %g"
        % (args.clients, args.format, args.steps, args.cache_mb)
    )
    for total, seconds in done:
        print("  client: %.1f MB in %.1f s" % (total / 2**20, seconds))
    print(
        "server RSS: baseline %.0f MB, peak %.0f MB, growth %.0f MB (limit %d MB): %s"
        % (baseline, peak, growth, LIMIT_MB, "ok" if growth <= LIMIT_MB else "OVER")
    )
    return 0 if growth <= LIMIT_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
