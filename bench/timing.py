"""Repeating a measurement within a time budget."""

import time


def repeat(measure, repeats, budget_seconds):
    """Calls `measure()` (which returns a dict with "seconds") up to `repeats` times, stopping
    once another call, as long as the last, would exceed `budget_seconds` in total. At least one
    call is made. Returns the dicts."""
    results, seconds = [], []
    while len(results) < repeats and not spent(seconds, budget_seconds):
        results.append(measure())
        seconds.append(results[-1]["seconds"])
    return results


def spent(seconds, budget_seconds):
    """Whether another call as long as the last of `seconds` would take their total over
    `budget_seconds` (never before the first call)."""
    return bool(seconds) and sum(seconds) + seconds[-1] > budget_seconds


def clocked(function):
    """A measure for `repeat`: calls `function()`, returns {"seconds", "result"}."""

    def measure():
        t0 = time.perf_counter()
        result = function()
        return {"seconds": time.perf_counter() - t0, "result": result}

    return measure
