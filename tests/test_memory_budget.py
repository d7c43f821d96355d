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


def test_a_run_beyond_the_budget_is_counted_as_it_is_read_never_held(tmp_path, monkeypatch):
    """Background listing within a budget smaller than a run: the run is listed with the counts
    a full read gives, its columns are never built (traced memory stays far below them), and a
    request then reads it whole."""
    import tracemalloc

    from tb_batchavg.ingest import reader as reader_module

    monkeypatch.setattr(reader_module, "_READ_CHUNK", 64 << 10)
    write_scalars(str(tmp_path / "big"), training_like(3 * STEPS))
    whole = LogdirReader(str(tmp_path))
    whole.reload()
    columns = whole.nbytes()
    assert columns == 9 * STEPS * 24

    listed = LogdirReader(str(tmp_path))
    budget = columns // 4
    tracemalloc.start()
    try:
        listed.cycle(budget=budget)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    run = listed.get("big")
    assert run.evicted == whole.counts("big") and run.state == "ready"
    assert listed.nbytes() == 0 and run.columns == {}
    # Columns up to the budget, then a read chunk's working memory (a full read: all 4.3 MB).
    assert peak < budget + 8 * (64 << 10), "reading held %d bytes, the budget is %d" % (peak, budget)
    assert run.health() == whole.get("big").health()

    assert listed.open("big") is not None  # asked for: read whole
    for tag in whole.tags("big"):
        np.testing.assert_array_equal(listed.series("big", tag).value, whole.series("big", tag).value)


def test_counting_from_the_middle_of_a_run_gives_a_fresh_readers_counts(tmp_path):
    """A run of two files, the second restarting from a checkpoint and adding a tag: whatever
    room the read had (none, the first file's, all), the counts are a full read's."""
    run = str(tmp_path / "run")
    first = write_scalars(run, training_like(3000))
    os.rename(first, os.path.join(run, "events.out.tfevents.1.a"))  # names fix the order files fold in
    later = {**training_like(2000, seed=1), "eval/loss": np.ones(2000, np.float32)}
    second = write_scalars(run, later, steps=np.arange(2000, 4000))
    os.rename(second, os.path.join(run, "events.out.tfevents.2.b"))
    whole = LogdirReader(str(tmp_path))
    whole.reload()
    expect = whole.counts("run")
    assert expect == {"eval/loss": 2000, **{t: 4000 for t in training_like(1)}}
    first_file = 3 * 3000 * 24
    for room in (0, first_file - 1, first_file + 100, 10 * whole.nbytes()):
        r = LogdirReader(str(tmp_path))
        r.discover()
        r.get("run").load(room=room)
        held = room >= whole.nbytes()
        assert r.counts("run") == expect, room
        assert (r.get("run").evicted is None) == held and r.nbytes() == (whole.nbytes() if held else 0)
