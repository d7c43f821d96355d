"""--batchavg_cache_mb bounds raw columns plus computed results: results go first, then the columns
of the runs least recently asked for, which are read again, whole, when asked for again."""

import os

import numpy as np
from werkzeug.test import Client

from tb_batchavg.ingest.reader import LogdirReader
from tb_batchavg.server import store as store_module
from tests.helpers import get_json, make_app, training_like, wait_loaded, write_scalars

STEPS = 20_000  # 3 tags x 20,000 points x 24 bytes = 1.44 MB of columns per run


def write_runs(logdir, names):
    for seed, name in enumerate(names):
        write_scalars(os.path.join(logdir, name), training_like(STEPS, seed=seed))


def test_evicted_run_keeps_its_listing_and_reads_back_identical(tmp_path):
    write_runs(str(tmp_path), ["a", "b"])
    reader = LogdirReader(str(tmp_path))
    reader.reload()
    a = reader.get("a")
    before = {tag: a.series(tag) for tag in a.tags()}
    counts, version = a.counts(), a.version
    assert a.nbytes == 3 * STEPS * 24 and reader.nbytes() == 2 * a.nbytes

    freed = reader.evict_least_recent(1, keep="b")
    assert freed == 3 * STEPS * 24
    assert a.nbytes == 0 and a.columns == {} and a.series("train/loss") is None
    assert a.counts() == counts and a.tags() == sorted(counts)  # still listed as it was
    assert reader.get("b").nbytes == 3 * STEPS * 24  # kept

    assert a.reload() is True
    assert a.evicted is None and a.version > version and a.counts() == counts
    for tag, series in before.items():
        for field in series._fields:
            np.testing.assert_array_equal(getattr(a.series(tag), field), getattr(series, field))


def test_budget_holds_from_the_start_and_evicts_least_recently_used(tmp_path, monkeypatch):
    """Background loading reads all three runs (each is listed with its counts) but keeps only
    what fits; requests then evict the run least recently asked for, and a run read back gives
    the same answers."""
    monkeypatch.setattr(store_module, "IN_USE_SECONDS", 0.0)  # requests here follow one another
    write_runs(str(tmp_path), ["a", "b", "c"])
    # Room for two runs' columns (2.88 MB) but not three.
    app = make_app(str(tmp_path), "--batchavg_cache_mb", "3.5", "--batchavg_reload_seconds", "0")
    client = Client(app)
    listing = wait_loaded(client)["runs"]
    assert [r["count"] for r in listing] == [{t: STEPS for t in training_like(1)}] * 3
    assert sum(r["evicted"] for r in listing) == 1  # the budget held while loading
    route = "averages?run=%s&tag=train/loss&method=sma&window=50&band=std"

    def evicted():
        return {r["run"]: r["evicted"] for r in get_json(client, "runs")["runs"]}

    first = {run: get_json(client, route % run) for run in "abc"}
    assert evicted() == {"a": True, "b": False, "c": False}  # a is the least recently used
    assert evicted()["a"] is True  # listing does not read it back

    again = get_json(client, route % "a")  # read again from the files, whole
    assert again == first["a"]
    assert evicted() == {"a": False, "b": True, "c": False}
    assert get_json(client, route % "b") == first["b"]


def test_runs_in_use_keep_their_columns(tmp_path):
    """Runs asked for within the last _IN_USE_SECONDS (5 s) are not evicted: a request may still
    be reading them. The budget is then exceeded until they age."""
    write_runs(str(tmp_path), ["a", "b"])
    client = Client(make_app(str(tmp_path), "--batchavg_cache_mb", "2", "--batchavg_reload_seconds", "0"))
    wait_loaded(client)
    for run in "ab":
        get_json(client, "averages?run=%s&tag=train/loss&window=50" % run)
    assert {r["run"]: r["evicted"] for r in get_json(client, "runs")["runs"]} == {"a": False, "b": False}


def test_results_are_evicted_before_columns(tmp_path):
    write_runs(str(tmp_path), ["a"])
    # 1.44 MB of columns fit in 2 MB; results fill the rest and are evicted, the columns stay.
    app = make_app(str(tmp_path), "--batchavg_cache_mb", "2", "--batchavg_reload_seconds", "0")
    client = Client(app)
    for window in range(10, 60):
        get_json(client, "averages?run=a&tag=train/loss&method=sma&band=std&window=%d" % window)
    assert get_json(client, "runs")["runs"][0]["evicted"] is False
