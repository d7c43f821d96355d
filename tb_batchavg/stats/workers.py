"""Independent pieces of one computation shared between the calling thread and helper threads.

numpy releases the GIL inside its loops, so pieces that are mostly numpy passes over disjoint
parts of a series (chunks of windows, groups of segments, whole-run statistics) run on several
cores at once. Pieces are taken in turn, so a slow piece does not hold back the others.

A helper that has not started by the time the caller ran out of pieces is cancelled, and the
caller never waits for a helper that has not started: a busy pool (other requests, nested
sharing) costs speed, never a deadlock, and a single core just runs everything in the caller.
"""

import concurrent.futures
import itertools
import os
from collections.abc import Callable, Iterable
from typing import TypeVar

# Helper threads besides the caller: one per further core, at most 7.
HELPERS = max(1, min(os.cpu_count() or 1, 8) - 1)
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=HELPERS, thread_name_prefix="batchavg")

_T = TypeVar("_T")
_R = TypeVar("_R")


def each(function: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """[function(item) for item in items], the calls spread over the caller and up to HELPERS
    helper threads. `function` must be safe to run concurrently for different items. The first
    exception raised (by the caller's calls first) is raised once every started call is over."""
    items = list(items)
    results = [None] * len(items)
    taken = itertools.count()  # next() on it is atomic: each index goes to one thread
    failed = []

    def work():
        for i in taken:
            if i >= len(items) or failed:
                return
            try:
                results[i] = function(items[i])
            except BaseException:
                failed.append(i)  # the others stop at their next piece
                raise

    helpers = [_POOL.submit(work) for _ in range(min(HELPERS, len(items) - 1))]
    try:
        work()
    finally:
        started = [future for future in helpers if not future.cancel()]
        concurrent.futures.wait(started)
    for future in started:
        future.result()  # raises a helper's exception
    return results


def call(*functions: Callable[[], _R]) -> list[_R]:
    """The results of calling each of `functions` (no arguments), shared as by `each`."""
    return each(lambda function: function(), functions)
