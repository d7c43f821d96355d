"""Repeating a measurement within a time budget."""

import time


def repeat(measure, repeats, budget_seconds):
    """Calls `measure()` (which returns a dict with "seconds") up to `repeats` times, stopping
    once another call, as long as the last, would exceed `budget_seconds` in total. At least one
    call is made. Returns the dicts."""
    results, spent = [], 0.0
    while len(results) < repeats:
        result = measure()
        results.append(result)
        spent += result["seconds"]
        if spent + result["seconds"] > budget_seconds:
            break
    return results


def clocked(function):
    """A measure for `repeat`: calls `function()`, returns {"seconds", "result"}."""
    def measure():
        t0 = time.perf_counter()
        result = function()
        return {"seconds": time.perf_counter() - t0, "result": result}

    return measure
