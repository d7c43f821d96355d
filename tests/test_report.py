"""`tb-batchavg report` (tb_batchavg.report): the diagnostics route's answers, run by run, over a
logdir written with TensorBoard's own writer; --fail-on, --runs, the output formats, and the Ray
engine against the local one."""

import json
import os
import re
import tempfile
import urllib.parse

import numpy as np
import pytest
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from werkzeug.test import Client

from tb_batchavg import cli, report
from tests import helpers

HOSTILE = "<img src=x onerror=alert(1)>"
EXPECTED = {"healthy": "ok", "diverging": "diverged", "spiky": "warning", "empty": "no_data", HOSTILE: "ok"}


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """A healthy run, a diverging one (rising loss, then NaN), one with gradient spikes, an
    empty one (an event file without scalars) and a healthy one with a hostile name."""
    root = tmp_path_factory.mktemp("sweep")
    n = 3000
    helpers.write_scalars(str(root / "healthy"), helpers.training_like(n, seed=1))
    columns = helpers.training_like(n, seed=2)
    loss = columns["train/loss"].astype(np.float64)
    loss[2000:] *= np.exp(np.linspace(0.0, 8.0, n - 2000))
    loss[2900:] = np.nan
    columns["train/loss"] = loss.astype(np.float32)
    helpers.write_scalars(str(root / "diverging"), columns)
    columns = helpers.training_like(n, seed=3)
    grad = columns["train/grad_norm"].copy()
    grad[[500, 1200, 2200]] *= 80
    columns["train/grad_norm"] = grad
    helpers.write_scalars(str(root / "spiky"), columns)
    os.makedirs(root / "empty")
    EventFileWriter(str(root / "empty")).close()
    if os.name != "nt":
        helpers.write_scalars(str(root / HOSTILE), helpers.training_like(400, seed=4))
    return str(root)


def _route_answers(logdir, query=""):
    client = Client(helpers.make_app(logdir))
    runs = [r["run"] for r in helpers.wait_loaded(client)["runs"]]
    return {
        run: helpers.get_json(client, "diagnostics?run=%s%s" % (urllib.parse.quote(run, safe=""), query))
        for run in runs
    }


def _entries(built):
    return {entry["run"]: entry for entry in built["runs"]}


def _without_health(entry):
    return {key: value for key, value in entry.items() if key != "health"}


@pytest.mark.parametrize(
    "values,query",
    [({}, ""), ({"spike_k": "8", "explode_k": "7.5", "max_points": "5"}, "&spike_k=8&explode_k=7.5&max_points=5")],
)
def test_runs_equal_the_diagnostics_route(logdir, values, query):
    built, _ = report.build(logdir, values, workers=2)
    entries = _entries(built)
    answers = _route_answers(logdir, query)
    assert sorted(entries) == sorted(answers)
    for run, answer in answers.items():
        assert _without_health(entries[run]) == answer, run
        assert entries[run]["status"] == answer["status"]
        assert entries[run]["events"] == answer["events"]
    assert {run: e["status"] for run, e in entries.items()} == {
        run: status for run, status in EXPECTED.items() if run in entries
    }
    assert built["summary"] == {
        "ok": 2 if HOSTILE in entries else 1,
        "warning": 1,
        "diverged": 1,
        "no_data": 1,
        "error": 0,
    }
    assert built["settings"] == {
        k: float(v) if k.endswith("_k") else int(v) for k, v in values.items() if k != "max_points"
    }


def test_one_process_equals_processes(logdir):
    assert report.build(logdir, workers=1)[0] == report.build(logdir, workers=2)[0]


def _run_cli(capsys, *argv):
    status = cli.main(["report", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    "runs,level,status",
    [
        ("^healthy$", "warning", 0),
        ("^healthy$", "diverged", 0),
        ("^(healthy|spiky)$", "warning", 1),
        ("^(healthy|spiky)$", "diverged", 0),
        ("^(healthy|diverging)$", "warning", 1),
        ("^(healthy|diverging)$", "diverged", 1),
        ("^empty$", "warning", 0),
        (".", None, 0),
    ],
)
def test_fail_on(logdir, capsys, runs, level, status):
    argv = [logdir, "--runs", runs, "--format", "json", "--workers", "1"]
    got, out, err = _run_cli(capsys, *argv + (["--fail-on", level] if level else []))
    assert got == status
    assert all(re.search(runs, entry["run"]) for entry in json.loads(out)["runs"])
    assert re.search(r"\[#+\] \d+/\d+ runs", err)  # the progress bar, on stderr


def test_runs_filter(logdir, capsys):
    _, out, _ = _run_cli(capsys, logdir, "--runs", "ing", "--format", "json")
    assert [e["run"] for e in json.loads(out)["runs"]] == ["diverging"]
    assert _run_cli(capsys, logdir, "--runs", "(")[0] == 2  # a bad regular expression


def test_bad_setting_exits_2(logdir, capsys):
    status, out, err = _run_cli(capsys, logdir, "--spike-k", "nan")
    assert status == 2 and "spike_k" in err and out == ""


def test_json_schema(logdir, capsys):
    _, out, err = _run_cli(capsys, logdir, "--format", "json", "--window", "50")
    built = helpers.strict_json(out)
    assert set(built) == {"schema_version", "logdir", "settings", "errors", "runs", "summary"}
    assert built["schema_version"] == 1 and built["logdir"] == logdir and built["settings"] == {"window": 50}
    assert set(built["summary"]) == {"ok", "warning", "diverged", "no_data", "error"}
    assert sum(built["summary"].values()) == len(built["runs"])
    for entry in built["runs"]:
        assert {
            "run",
            "status",
            "tags",
            "events",
            "nonfinite",
            "params",
            "frequency",
            "precedence",
            "running_mean",
            "health",
        } <= set(entry)
        assert entry["params"]["window"] == 50
    assert [e["run"] for e in built["runs"]] == sorted(e["run"] for e in built["runs"])


def test_window_longer_than_a_run_is_that_runs_error(logdir, capsys):
    status, out, _ = _run_cli(capsys, logdir, "--format", "json", "--window", "1000", "--fail-on", "diverged")
    entries = _entries(json.loads(out))
    if HOSTILE in entries:  # 400 points: the route answers 400 for it
        assert entries[HOSTILE]["status"] == "error" and "longer than" in entries[HOSTILE]["error"]
    assert entries["diverging"]["status"] == "diverged" and status == 1


def test_table_and_markdown(logdir, capsys):
    _, table, _ = _run_cli(capsys, logdir)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["RUN", "STATUS"]
    for run, status in EXPECTED.items():
        if run != HOSTILE or os.name != "nt":
            assert any(line.startswith(run) and status in line for line in lines), run
    assert "1 diverged" in lines[-1]
    _, markdown, _ = _run_cli(capsys, logdir, "--format", "markdown")
    assert "| run | status | events | first event | kinds | loss tag |" in markdown
    assert re.search(r"^\| diverging \| diverged \| \d+ \| divergence at step \d+ \|", markdown, re.M)
    assert re.search(r"^\| spiky \| warning \| 3 \| grad_explosion at step 500 \|", markdown, re.M)


def test_html_is_self_contained_and_escaped(logdir, capsys, tmp_path):
    path = tmp_path / "report.html"
    status, out, _ = _run_cli(capsys, logdir, "--format", "html", "--output", str(path))
    assert status == 0 and out == ""
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"(?:https?:)?//[a-z0-9]", page, re.I)  # nothing fetched from the network
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert "onerror" not in page.replace("onerror=alert(1)&gt;", "")  # only as escaped text
    if os.name != "nt":
        assert "&lt;img src=x onerror=alert(1)&gt;" in page and HOSTILE not in page
    charts = re.findall(r'<div class="chart" id="chart-\d+"><h3>([^<]*) ', page)
    assert charts == ["diverging", "spiky"]  # a chart per flagged run
    assert page.count("<svg") == 2 and page.count('class="loss"') == 2
    assert page.count('class="ev-') >= 4  # the events marked (divergence, non-finite, 3 explosions)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_engine_equals_local(logdir, capsys):
    local, _ = report.build(logdir, {"spike_k": "7"}, workers=2)
    status, out, err = _run_cli(
        capsys, logdir, "--format", "json", "--engine", "ray", "--spike-k", "7", "--fail-on", "diverged"
    )
    assert status == 1
    assert json.loads(out) == json.loads(report.format_json(local))
    assert re.search(r"\[#+\] %d/%d runs" % (len(local["runs"]), len(local["runs"])), err)


@pytest.mark.cloud
@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_cloud_logdir(kind, monkeypatch, capsys):
    """An s3:// or gs:// logdir (local moto / gcp-storage-emulator servers, read through
    TensorBoard's own gfile as in tests/test_cloud.py), in worker processes: the route's answers."""
    from tests import test_cloud

    with test_cloud.server(kind) as (endpoint, _):
        store = test_cloud.Store(kind, endpoint, monkeypatch)
        bucket = store.bucket()
        store.put(bucket, "logs/a/" + test_cloud.FILE, test_cloud.event_bytes(2000, seed=1))
        columns = helpers.training_like(2000, seed=2)
        columns["train/loss"][1500:] = np.nan
        with tempfile.TemporaryDirectory() as d:
            store.put(bucket, "logs/b/" + test_cloud.FILE, open(helpers.write_scalars(d, columns), "rb").read())
        root = store.root(bucket)
        built, _ = report.build(root, workers=2)
        assert [(e["run"], e["status"]) for e in built["runs"]] == [("a", "ok"), ("b", "diverged")]
        answers = _route_answers(root)
        assert {e["run"]: _without_health(e) for e in built["runs"]} == answers
        assert _run_cli(capsys, root, "--fail-on", "diverged")[0] == 1
        missing = store.root("no-such-bucket-%d" % helpers.free_port())
        status, _, err = _run_cli(capsys, missing)
        assert status == 2 and missing in err
