"""Files that change under a running reader give the columns a fresh reader gives on the same
files (issue 13 item 6), and discovery ends on any symbolic-link graph (item 8).

Every file is written by a real writer: TensorBoard's own EventFileWriter (simple values) or
tensorboardX's SummaryWriter."""

import os
import time

import numpy as np
import pytest
from tensorboard import context
from tensorboardX import SummaryWriter

from tb_batchavg.ingest import records
from tb_batchavg.ingest.reader import LogdirReader
from tests import helpers


def columns(reader):
    return {(run, tag): reader.series(run, tag) for run in reader.runs() for tag in reader.tags(run)}


def assert_as_fresh(live, logdir):
    """`live` (reloaded now) holds what a new reader of `logdir` holds, point for point."""
    live.reload()
    fresh = LogdirReader(logdir)
    fresh.reload()
    got, want = columns(live), columns(fresh)
    assert sorted(got) == sorted(want)
    for key in want:
        for field in want[key]._fields:
            np.testing.assert_array_equal(getattr(got[key], field), getattr(want[key], field), err_msg=str(key))
    return want


def write(directory, steps, value=1.0, suffix=""):
    """A file of the three training tags at `steps` (values offset by `value`), by EventFileWriter."""
    base = helpers.training_like(len(steps), seed=int(value))
    cols = {tag: v + value for tag, v in base.items()}
    os.makedirs(directory, exist_ok=True)
    before = set(os.listdir(directory))
    helpers.write_scalars(directory, cols, steps=steps, filename_suffix=suffix)
    (name,) = set(os.listdir(directory)) - before
    return os.path.join(directory, name)


def test_a_file_replaced_by_a_shorter_copy_rereads_the_files_after_it(tmp_path):
    run = tmp_path / "run"
    a = write(str(run), np.arange(1000), suffix=".a")
    write(str(run), np.arange(1000, 2000), suffix=".b")
    live = LogdirReader(str(tmp_path))
    live.reload()
    shorter = write(str(tmp_path / "scratch"), np.arange(500), suffix=".a")
    os.replace(shorter, a)
    want = assert_as_fresh(live, str(tmp_path))
    assert len(want["run", "train/loss"].step) == 1500


@pytest.mark.parametrize("how", ["rename", "in_place"])
def test_a_file_replaced_by_one_of_the_same_size(tmp_path, how):
    path = write(str(tmp_path / "run"), np.arange(300), value=1.0)
    live = LogdirReader(str(tmp_path))
    live.reload()
    other = write(str(tmp_path / "scratch"), np.arange(300), value=2.0)
    assert os.path.getsize(other) == os.path.getsize(path)
    time.sleep(0.01)  # a new mtime even on coarse clocks
    if how == "rename":
        os.replace(other, path)
    else:
        with open(path, "r+b") as f:
            f.write(open(other, "rb").read())
    want = assert_as_fresh(live, str(tmp_path))
    assert want["run", "train/loss"].value[0] == np.float32(helpers.training_like(300, seed=2)["train/loss"][0] + 2.0)


def test_a_file_replaced_in_place_by_a_longer_one_with_other_content(tmp_path):
    path = write(str(tmp_path / "run"), np.arange(3000), value=1.0)
    live = LogdirReader(str(tmp_path))
    live.reload()
    other = write(str(tmp_path / "scratch"), np.arange(4000), value=3.0)
    with open(path, "r+b") as f:
        f.write(open(other, "rb").read())
    want = assert_as_fresh(live, str(tmp_path))
    assert len(want["run", "train/loss"].step) == 4000  # not old 0..2999 then new 3000..3999


def record_bounds(data, index):
    """(first byte, end) of record `index` of an event file's bytes, its header and footer in."""
    scan = records.scan(data)
    start, length = int(scan.starts[index]), int(scan.lengths[index])
    return start - records.HEADER_BYTES, start + length + records.FOOTER_BYTES


def test_a_longer_file_renamed_over_one_that_keeps_its_last_bytes(tmp_path):
    """A longer file renamed over the one read, equal to it before the old end except one record
    in the middle (which a look at the bytes before the old end cannot see): a new inode, so it is
    read again whole, as a fresh reader reads it."""
    path = write(str(tmp_path / "run"), np.arange(1000), value=1.0)
    other = write(str(tmp_path / "scratch"), np.arange(1500), value=4.0)
    live = LogdirReader(str(tmp_path))
    live.reload()
    old, new = open(path, "rb").read(), open(other, "rb").read()
    (head, end), (other_head, other_end) = [record_bounds(b, 500) for b in (old, new)]
    assert (head, end) == (other_head, other_end)  # the same layout: records lie at equal offsets
    spliced = old[:head] + new[head:end] + old[end:] + new[len(old) :]
    staged = tmp_path / "scratch" / "staged"
    staged.write_bytes(spliced)
    os.replace(staged, path)
    want = assert_as_fresh(live, str(tmp_path))
    assert len(want["run", "train/loss"].step) == 1500


def test_a_deleted_file_and_a_new_file_sorting_between_others(tmp_path):
    run = tmp_path / "run"
    os.replace(write(str(run), np.arange(100)), run / "events.out.tfevents.1.a")
    c = run / "events.out.tfevents.3.c"
    os.replace(write(str(run), np.arange(200, 300)), c)
    live = LogdirReader(str(tmp_path))
    live.reload()
    os.replace(write(str(tmp_path / "scratch"), np.arange(50, 150), value=5.0), run / "events.out.tfevents.2.b")
    assert_as_fresh(live, str(tmp_path))
    os.remove(c)
    want = assert_as_fresh(live, str(tmp_path))
    assert want["run", "train/loss"].step.tolist() == list(range(150))  # a up to 49, then b


def test_two_writers_on_one_tag_read_live_as_after_a_restart(tmp_path):
    """Two tensorboardX writers log the same tag into one run, flushing in turns."""
    first = SummaryWriter(str(tmp_path / "run"), filename_suffix=".w1")
    second = SummaryWriter(str(tmp_path / "run"), filename_suffix=".w2")
    live = LogdirReader(str(tmp_path))
    for block in range(6):
        for k in range(50):
            step = block * 50 + k
            first.add_scalar("loss", 1.0 + step, step)
            second.add_scalar("loss", -1.0 - step, step + (25 if block % 2 else -25))
        first.flush()
        second.flush()
        assert_as_fresh(live, str(tmp_path))
    first.close()
    second.close()
    assert_as_fresh(live, str(tmp_path))


def test_appends_read_only_the_new_bytes_and_match_a_fresh_reader(tmp_path):
    writer = SummaryWriter(str(tmp_path / "run"))
    live = LogdirReader(str(tmp_path))
    for block in range(5):
        for step in range(block * 100, block * 100 + 100):
            writer.add_scalar("train/loss", np.sin(step), step)
        writer.flush()  # tensorboardX's queue may still hold a few: whatever is there matches
        assert_as_fresh(live, str(tmp_path))
    writer.close()
    want = assert_as_fresh(live, str(tmp_path))
    assert len(want["run", "train/loss"].step) == 500


def data_server_runs(logdir):
    """The run names TensorBoard's Rust data server lists for `logdir`, once it lists any."""
    provider = helpers.tensorboard_provider(str(logdir), "--load_fast=true", "--reload_interval=0")
    return helpers.wait_for(
        lambda: sorted(r.run_name for r in provider.list_runs(context.RequestContext(), experiment_id="")),
        what="the data server's runs",
    )


def test_symlink_cycles_end_and_runs_agree_with_tensorboard(tmp_path):
    logdir = tmp_path / "logs"
    write(str(logdir / "run"), np.arange(50))
    write(str(tmp_path / "elsewhere"), np.arange(50))
    os.symlink(".", logdir / "run" / "loop0")
    os.symlink(".", logdir / "run" / "loop1")
    os.symlink("..", logdir / "run" / "up")
    os.symlink(str(tmp_path / "elsewhere"), logdir / "linked")
    os.symlink(str(tmp_path / "missing"), logdir / "dangling")
    reader = LogdirReader(str(logdir))
    reader.reload()
    theirs = data_server_runs(logdir)
    assert reader.runs() == theirs == ["linked", "run"]


def test_a_directory_reached_by_several_link_paths_is_named_as_tensorboard_names_it(tmp_path):
    """Three levels, each linking twice to the next (and once back to the top): 8 paths to the
    run, as TensorBoard's data server lists them, and the walk ends."""
    logdir = tmp_path / "logs"
    levels = [logdir] + [tmp_path / ("level%d" % i) for i in range(1, 4)]
    for level in levels:
        level.mkdir()
    write(str(levels[-1]), np.arange(10))
    for here, below in zip(levels, levels[1:]):
        os.symlink(str(below), here / "x")
        os.symlink(str(below), here / "y")
        os.symlink(str(logdir), here / "top")
    reader = LogdirReader(str(logdir))
    reader.reload()
    theirs = data_server_runs(logdir)
    assert reader.runs() == theirs
    assert len(theirs) == 8 and all(reader.counts(run) == {t: 10 for t in helpers.training_like(1)} for run in theirs)
