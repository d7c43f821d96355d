"""workers.each: results in order, the work shared with helper threads, errors raised, and no
deadlock when the pool is busy or the sharing is nested."""

import threading
import time

import numpy as np
import pytest

from tb_batchavg.stats import workers


def test_results_come_back_in_the_order_of_the_items():
    assert workers.each(lambda i: i * i, range(100)) == [i * i for i in range(100)]
    assert workers.each(lambda i: i, []) == []
    assert workers.each(lambda i: -i, [7]) == [-7]
    assert workers.call(lambda: "a", lambda: "b") == ["a", "b"]


def test_each_item_is_computed_exactly_once():
    seen = []
    lock = threading.Lock()

    def record(i):
        with lock:
            seen.append(i)
        time.sleep(0.001)

    workers.each(record, range(200))
    assert sorted(seen) == list(range(200))


def test_helpers_take_part_while_the_caller_works():
    threads = set()

    def piece(i):
        threads.add(threading.current_thread().name)
        time.sleep(0.01)  # releases the GIL, as numpy's loops do

    workers.each(piece, range(20))
    assert threading.current_thread().name in threads
    assert any(name.startswith("batchavg") for name in threads)


def test_a_busy_pool_leaves_the_work_to_the_caller():
    release = threading.Event()
    blockers = [workers._POOL.submit(release.wait, 30) for _ in range(workers.HELPERS)]
    try:
        time.sleep(0.05)  # every helper thread is now waiting
        threads = set()
        result = workers.each(lambda i: threads.add(threading.current_thread().name) or i, range(10))
        assert result == list(range(10))
        assert threads == {threading.current_thread().name}
    finally:
        release.set()
        for blocker in blockers:
            blocker.result()


def test_nested_sharing_finishes():
    def outer(i):
        return sum(workers.each(lambda j: i * j, range(30)))

    assert workers.each(outer, range(30)) == [i * sum(range(30)) for i in range(30)]


def test_an_error_is_raised_once_the_started_calls_are_over():
    finished = []

    def piece(i):
        if i == 3:
            raise ValueError("piece 3")
        time.sleep(0.002)
        finished.append(i)
        return i

    with pytest.raises(ValueError, match="piece 3"):
        workers.each(piece, range(50))
    count = len(finished)
    time.sleep(0.05)
    assert len(finished) == count  # nothing still running after the raise
    assert count < 49  # the others stopped early


def test_numpy_results_equal_the_serial_ones():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=10_000) for _ in range(16)]
    shared = workers.each(np.cumsum, parts)
    assert all(np.array_equal(a, np.cumsum(p)) for a, p in zip(shared, parts, strict=True))
