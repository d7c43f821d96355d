"""Memory while a logdir bigger than the budget is listed: the tensorboard process's resident
memory against the same process on a logdir of one small run.

    python -m bench.budget                         # 8 runs x 1M steps x 3 tags, budgets 1 and 200 MB
    python -m bench.budget --runs 4 --budget 100

The runs are one tensorboardX run of tests/corpus.py (cached), linked into `--runs` run
directories. For the baseline and for each budget, a `tensorboard --logdir ... --load_fast=true
--batchavg_cache_mb B` process is sampled (VmRSS every 50 ms) from its spawn until every run of
`runs` is ready, and 3 s more. Reported: the peak and final resident memory, each above the
baseline's own peak and final figures, and how many runs were held (not evicted). Target: the
final excess is the columns of the runs held (24 bytes a point), within the budget; the peak
excess stays within the budget plus a read's working memory (tens of MB), not a run's columns
per run listed.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tests import corpus, helpers  # noqa: E402

STEPS = 1_000_000


def sample(logdir, budget_mb, timeout=300):
    """(peak MB, final MB, runs held, runs listed) of a tensorboard process listing `logdir`."""
    port = helpers.free_port()
    command = helpers.tensorboard_command(logdir, port, "--load_fast=true", "--batchavg_cache_mb", str(budget_mb))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, ready_at, runs = 0, None, []
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            rss = resident_mb(process.pid)
            peak = max(peak, rss)
            if ready_at is None:
                runs = listing(port)
                if runs and all(r["state"] == "ready" for r in runs):
                    ready_at = time.monotonic()
            elif time.monotonic() - ready_at > 3:
                return peak, rss, sum(not r["evicted"] for r in listing(port)), len(runs)
            time.sleep(0.05)
        raise RuntimeError("runs not ready after %d s" % timeout)
    finally:
        process.terminate()
        process.wait()


def resident_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def listing(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/data/plugin/batchavg/runs" % port, timeout=5) as r:
            return json.loads(r.read())["runs"]
    except OSError:
        return []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--budget", type=float, action="append", help="MB (repeatable; default 1 and 200)")
    args = parser.parse_args()
    source = corpus.cached("tbx", STEPS)
    with tempfile.TemporaryDirectory() as root:
        small = os.path.join(root, "baseline", "run")
        os.makedirs(small)
        corpus.write_tbx(small, 1_000)
        many = os.path.join(root, "many")
        for i in range(args.runs):
            run = os.path.join(many, "run%d" % i)
            os.makedirs(run)
            for name in os.listdir(source):
                os.symlink(os.path.join(source, name), os.path.join(run, name))
        base_peak, base_end, _, _ = sample(os.path.dirname(small), 512)
        print("| budget | runs listed | runs held | columns held | peak over baseline | final over baseline |")
        print("|---|---|---|---|---|---|")
        for budget in args.budget or [1.0, 200.0]:
            peak, end, held, listed = sample(many, budget)
            print(
                "| %g MB | %d | %d | %d MB | %+.0f MB | %+.0f MB |"
                % (budget, listed, held, held * 3 * STEPS * 24 / 2**20, peak - base_peak, end - base_end)
            )
        print("baseline (one 1,000-step run): peak %.0f MB, final %.0f MB" % (base_peak, base_end))


if __name__ == "__main__":
    main()
