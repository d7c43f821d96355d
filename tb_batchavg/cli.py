"""The `tb-batchavg` command.

    tb-batchavg demo [--logdir DIR] [--port N] [--host 127.0.0.1] [--steps N] [--no-serve]

writes the demo logs (`tb_batchavg.demo_runs`) into DIR unless finished ones are there, then
starts TensorBoard from this Python environment (`python -m tensorboard.main`) on DIR, bound to
--host (127.0.0.1: this machine only), prints the URL of the Batch Averages tab and serves until
Ctrl-C. Without --port TensorBoard takes 6006 or the next free port; --port 0 takes any free
port. --no-serve only writes the logs.

    tb-batchavg report LOGDIR [--format table|json|markdown|html] [--fail-on warning|diverged]
                       [--runs REGEX] [--workers N] [--engine local|ray] [--address ADDR] [settings]

diagnoses every run of LOGDIR as the tab's diagnostics route does (`tb_batchavg.report`).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

DEFAULT_LOGDIR = "demo_logs"

# TensorBoard announces itself with "TensorBoard 2.x at http://HOST:PORT/ (Press CTRL+C to quit)".
_SERVING = re.compile(r"TensorBoard \S+ at (https?://\S+?:(\d+)\S*)")


def _parser():
    parser = argparse.ArgumentParser(prog="tb-batchavg", description="TensorBoard's Batch Averages tab: tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from tb_batchavg.demo_runs import DEFAULT_STEPS, RUNS

    demo = commands.add_parser(
        "demo",
        help="train the demo runs (if their logs are missing) and serve them",
        description="Trains %s on generated data, logging every batch, unless DIR already "
        "holds them, then serves DIR with TensorBoard and prints the URL of the Batch "
        "Averages tab." % ", ".join(RUNS),
    )
    demo.add_argument(
        "--logdir", default=DEFAULT_LOGDIR, metavar="DIR", help="where the demo logs live (default: ./%(default)s)"
    )
    demo.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="N",
        help="TensorBoard's port (default: 6006 or the next free one; 0: any)",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    demo.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, metavar="N", help="batches per run (default: %(default)s)"
    )
    demo.add_argument("--no-serve", dest="serve", action="store_false", help="only write the logs")
    _report_parser(commands)
    return parser


def _report_parser(commands):
    """`tb-batchavg report`: tb_batchavg.report. The diagnostics settings are the `diagnostics`
    route's parameters, parsed as the route parses them (strings here)."""
    from tb_batchavg import metadata
    from tb_batchavg import report as _report

    report = commands.add_parser(
        "report",
        help="the diagnostics of every run of a logdir (exit 1 on --fail-on)",
        description="Diagnoses every run under LOGDIR as the Batch Averages tab's diagnostics "
        "do (statuses, events, numbers: the diagnostics route's answer, run by run) and prints "
        "a health report. Exits 1 when a run meets --fail-on, 2 on a bad setting or an "
        "unreadable logdir, else 0. Progress goes to stderr.",
    )
    report.add_argument("logdir", metavar="LOGDIR", help="a local path, gs://... or s3://...")
    report.add_argument(
        "--format",
        choices=_report.FORMATS,
        default="table",
        help="output format (default: %(default)s); json schema: docs/report.md",
    )
    report.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE, not stdout")
    report.add_argument(
        "--fail-on",
        choices=tuple(_report.FAIL_ON),
        default=None,
        help="exit 1 when a run has this status or worse (warning: warning or diverged)",
    )
    report.add_argument("--runs", metavar="REGEX", help="only the runs whose name matches REGEX (re.search)")
    report.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (default: one per core; 1: in this process)",
    )
    report.add_argument(
        "--engine",
        choices=_report.ENGINES,
        default="local",
        help="local processes, or Ray tasks (pip install 'tb-batchavg[ray]')",
    )
    report.add_argument(
        "--address",
        metavar="ADDR",
        default=None,
        help="with --engine ray: the cluster (ray.init(address=ADDR)); default: a local Ray",
    )
    settings = report.add_argument_group(
        "diagnostics settings", "the diagnostics route's parameters (http_api.md); default: the route's"
    )
    from tb_batchavg.stats import diagnostics as _diagnostics

    for name, default in _diagnostics.DEFAULTS.items():
        settings.add_argument("--" + name.replace("_", "-"), dest=name, metavar="N", help="default %s" % default)
    for role in metadata.ROLES:
        settings.add_argument(
            "--" + role.replace("_", "-"),
            dest=role,
            metavar="TAG",
            help="the %s tag (default: detected as the route detects it)" % role.replace("_", " "),
        )
    settings.add_argument(
        "--max-points",
        dest="max_points",
        metavar="N",
        help="non-finite steps and resets listed per run (default %d)" % metadata.DEFAULT_MAX_POINTS,
    )


def tab_url(host: str, port: int | str) -> str:
    """The Batch Averages tab's URL on `host` (a wildcard address is shown as 127.0.0.1)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = "[%s]" % host
    return "http://%s:%s/#batchavg" % (host, port)


def _plugin_installed():
    return any(entry.name == "batchavg" for entry in importlib.metadata.entry_points(group="tensorboard_plugins"))


class _Stopped(Exception):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals():
    """SIGINT, SIGTERM and SIGHUP stop the wrapper, which then stops TensorBoard: handlers are set
    here whatever was inherited (a shell that ignores SIGINT passes that on)."""

    def stop(signum, frame):
        raise _Stopped(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In TensorBoard's process, before it starts (Linux): SIGTERM when the wrapper dies, even by
    SIGKILL, so TensorBoard is never left serving on its own."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _forward(stream, sink):
    for line in stream:
        sink.write(line)
        sink.flush()


def serve(logdir: str, host: str, port: int | None) -> int:
    """Runs TensorBoard on `logdir` until it exits or Ctrl-C; returns the exit status."""
    if not _plugin_installed():
        print(
            "warning: the tb-batchavg TensorBoard plugin is not installed in this Python "
            "(pip install . in the checkout); TensorBoard will start without the Batch "
            "Averages tab.",
            file=sys.stderr,
        )
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", host]
    if port is not None:
        command += ["--port", str(port)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, bufsize=1, preexec_fn=_die_with_parent)
    _stop_on_signals()
    try:
        for line in process.stderr:
            match = _SERVING.search(line)
            if match:
                break
            sys.stderr.write(line)
        else:
            status = process.wait()
            print("error: TensorBoard exited (status %d) before serving" % status, file=sys.stderr)
            return status or 1
        threading.Thread(target=_forward, args=(process.stderr, sys.stderr), daemon=True).start()
        print("TensorBoard is serving %s at %s" % (logdir, match.group(1)), flush=True)
        print("Batch Averages tab: %s   (Ctrl-C to stop)" % tab_url(host, match.group(2)), flush=True)
        return process.wait()
    except _Stopped as stop:
        return 0 if stop.signum == signal.SIGINT else 128 + stop.signum
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def demo(args: argparse.Namespace) -> int:
    from tb_batchavg import demo_runs

    if args.steps < 1:
        print("error: --steps must be >= 1", file=sys.stderr)
        return 2
    logdir = os.path.abspath(args.logdir)
    if demo_runs.logs_complete(logdir, args.steps):
        print("Using the demo logs in %s (delete that directory to train again)" % logdir, file=sys.stderr)
    else:
        # Quiet TensorFlow's C++ start-up chatter; the progress bars say what happens.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if importlib.util.find_spec("tensorflow") is None:
            print("error: the demo trains models with TensorFlow: pip install 'tb-batchavg[tf]'", file=sys.stderr)
            return 1
        print("Training the demo runs into %s" % logdir, file=sys.stderr)
        demo_runs.write_logs(logdir, args.steps)
    if not args.serve:
        return 0
    return serve(logdir, args.host, args.port)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        from tb_batchavg import report

        return report.main(args)
    return {"demo": demo}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
