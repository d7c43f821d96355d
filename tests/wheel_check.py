"""`make wheel-check`: run by the Python of a clean venv where only the built wheel (and its
dependencies) is installed. Starts `tensorboard --logdir` from that venv on a small logdir and
checks that the plugin is the installed one (its C kernels built), that `/data/plugins_listing` lists batchavg, that its
`runs` route answers with the run, and that the tab's frontend is served. Exit status 1 on failure.

    python tests/wheel_check.py   # from outside the checkout, with the venv's python
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def write_logdir(root, n=200):
    """One run of `n` steps (loss, grad_norm), written by TensorBoard's own event writer."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(os.path.join(root, "run_a"))
    for step in range(n):
        values = [
            summary_pb2.Summary.Value(tag="train/loss", simple_value=1.0 / (step + 1)),
            summary_pb2.Summary.Value(tag="train/grad_norm", simple_value=0.5),
        ]
        writer.add_event(event_pb2.Event(step=step, wall_time=1.7e9 + step, summary=summary_pb2.Summary(value=values)))
    writer.close()
    return n


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def main():
    import tb_batchavg

    where = os.path.dirname(os.path.abspath(tb_batchavg.__file__))
    assert where.startswith(sys.prefix), "tb_batchavg imported from %s, not the venv %s" % (where, sys.prefix)
    from tb_batchavg.ingest import records

    assert records._kernels is not None, "the wheel has no C kernels (tb_batchavg/ingest/_kernels.c)"
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    with tempfile.TemporaryDirectory() as logdir:
        n = write_logdir(logdir)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base = "http://127.0.0.1:%d" % port
        log = open(os.path.join(logdir, "tensorboard.log"), "w+")
        proc = subprocess.Popen(
            [tensorboard, "--logdir", logdir, "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            runs = listing = None
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    listing = json.loads(get(base + "/data/plugins_listing")[2])
                    runs = json.loads(get(base + "/data/plugin/batchavg/runs")[2])["runs"]
                    if [r["run"] for r in runs] == ["run_a"] and runs[0].get("state", "ready") == "ready":
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            else:
                proc.poll()
            if runs is None or [r["run"] for r in runs] != ["run_a"]:
                log.seek(0)
                raise SystemExit(
                    "no ready run_a from the batchavg runs route (tensorboard %s): %r\n%s"
                    % ("exited" if proc.returncode is not None else "running", runs, log.read()[-3000:])
                )
            assert "batchavg" in listing and listing["batchavg"]["enabled"], listing.get("batchavg")
            assert runs[0]["count"] == {"train/loss": n, "train/grad_norm": n}, runs[0]["count"]
            status, kind, body = get(base + "/data/plugin/batchavg/index.js")
            assert status == 200 and "javascript" in kind and b"export async function render" in body, kind
            status, _, body = get(base + "/data/plugin/batchavg/averages?run=run_a&tag=train/loss&window=10")
            assert status == 200 and json.loads(body)["count"] == n
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    print(
        "wheel check: tb_batchavg %s from %s served by tensorboard (plugins_listing, runs, index.js, averages)"
        % (tb_batchavg.__version__, where)
    )


if __name__ == "__main__":
    main()
