"""The step rule (steps.merge_steps) and counting by it without the columns (steps.StepCounts)."""

import numpy as np

from tb_batchavg.ingest import steps
from tb_batchavg.ingest.source import Series


def reservoir(batches):
    """The rule transcribed record by record: a record at step s drops held steps >= s."""
    held = []
    for batch in batches:
        for s in batch.tolist():
            held = [h for h in held if h < s] + [s]
    return held


def random_batches(rng):
    """Batches as writers make them: runs of every step or every k-th step, with restarts."""
    batches, step = [], 0
    for _ in range(rng.integers(1, 6)):
        parts = []
        for _ in range(rng.integers(1, 4)):
            if rng.random() < 0.3:
                step = max(0, step - int(rng.integers(0, 50)))  # a restart from a checkpoint
            stride = int(rng.choice([1, 1, 3, 10]))
            n = int(rng.integers(0, 40))
            parts.append(step + stride * np.arange(n))
            step += stride * n
        if rng.random() < 0.2:
            parts.append(rng.integers(0, step + 1, rng.integers(0, 5)))  # steps out of any order
        batches.append(np.concatenate(parts).astype(np.int64))
    return batches


def test_step_counts_equal_the_merged_columns_and_the_reservoir():
    rng = np.random.default_rng(7)
    for _ in range(300):
        batches = random_batches(rng)
        counts = steps.StepCounts()
        held = Series(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
        for batch in batches:
            counts.add("t", batch)
            held = steps.merge_steps(held, Series(batch, batch * 0.0, batch * 1.0))
        expect = reservoir(batches)
        assert held.step.tolist() == expect
        assert counts.counts() == ({"t": len(expect)} if expect else {})


def test_step_counts_hold_a_few_runs_for_regular_steps():
    counts = steps.StepCounts()
    for first in range(0, 1_000_000, 100_000):
        counts.add("every", np.arange(first, first + 100_000))
        counts.add("tenth", np.arange(first, first + 100_000, 10))
    counts.add("every", np.arange(500_000, 600_000))  # a restart: 600,000 steps from here on
    assert counts.counts() == {"every": 600_000, "tenth": 100_000}
    assert sum(len(first) for first, _, _ in counts._runs.values()) <= 25


def test_arithmetic_runs_rebuild_the_steps():
    rng = np.random.default_rng(3)
    for _ in range(200):
        s = np.unique(rng.integers(0, 200, rng.integers(0, 30)))
        first, stride, count = steps._arithmetic_runs(s)
        rebuilt = np.concatenate([f + d * np.arange(c) for f, d, c in zip(first, stride, count)] or [[]])
        assert rebuilt.tolist() == s.tolist()


def series(step):
    step = np.asarray(step, np.int64)
    return Series(step, step * 0.5, step * 2.0)


def test_appends_write_only_past_the_frontier_of_the_room():
    """A plain append goes into the room of the held arrays when they end at its frontier; a view
    taken before never changes; another view ending at an older frontier appends by copying."""
    held = steps.merge_steps(series(range(3)), series([3, 4]))  # a new array, with room
    longer = steps.merge_steps(held, series([5]))
    assert np.shares_memory(held.step, longer.step)  # written in the room
    other = steps.merge_steps(held, series([7, 8]))  # `held` ends before the frontier now
    assert not np.shares_memory(other.step, longer.step)
    assert steps.extends(longer.step, held.step) and not steps.extends(other.step, held.step)
    assert held.step.tolist() == [0, 1, 2, 3, 4]
    assert longer.step.tolist() == [0, 1, 2, 3, 4, 5] and longer.value.tolist() == [0, 2, 4, 6, 8, 10]
    assert other.step.tolist() == [0, 1, 2, 3, 4, 7, 8] and other.wall_time.tolist()[-1] == 4.0
    restarted = steps.merge_steps(longer, series([2, 3]))  # not a plain append: a copy
    assert restarted.step.tolist() == [0, 1, 2, 3] and longer.step.tolist() == [0, 1, 2, 3, 4, 5]


def test_footprint_counts_each_room_once():
    held = steps.merge_steps(series(range(100)), series([100]))
    longer = steps.merge_steps(held, series([101]))
    room = held.step.base.nbytes
    assert room >= 8 * 125  # a quarter more than held
    assert steps.footprint([held.step, longer.step]) == room
    assert steps.footprint([*held, *longer]) == sum(a.base.nbytes for a in held)
    plain = np.arange(10)
    assert steps.footprint([plain, plain, plain[:5]]) == plain.nbytes + plain[:5].nbytes


def test_increasing_columns_merge_as_checked_ones():
    """A file's columns (strictly increasing steps) folded without the check give what the check
    gives, whatever the held steps: above, overlapping (a later file restarting), or none."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        held = series(np.cumsum(rng.integers(1, 4, rng.integers(0, 30))))
        new = series(int(rng.integers(0, 60)) + np.cumsum(rng.integers(1, 4, rng.integers(0, 30))))
        want = steps.merge_steps(held, new)
        got = steps.merge_steps(held, new, increasing=True)
        for field in Series._fields:
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
