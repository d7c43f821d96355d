"""The step rule of a tag's records, and counting by it without holding the columns.

Steps are strictly increasing: a record at step s discards the records held at steps >= s, then
is appended (a restart from a checkpoint, as TensorBoard's Rust loader does; the latest record of
a step wins). Applied to a batch of records in file order, a record survives if its step is below
every later step of the batch, and the held records at or after the batch's smallest step go.
The rule is associative: folding files one by one, or chunk by chunk, gives the same columns.

`StepCounts` applies the same rule to steps alone, kept as arithmetic runs (first, stride,
count): a writer's steps are a few such runs (every step, every k-th step), so counting the
points of a run bigger than the memory budget holds almost nothing.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import numpy as np

from tb_batchavg.ingest.source import Series


def survivors(step: np.ndarray) -> tuple[np.ndarray, int]:
    """(which records of a non-empty batch survive later ones, the smallest step of the batch:
    held steps at or above it are discarded)."""
    later_min = np.minimum.accumulate(step[::-1])[::-1]
    return np.append(step[:-1] < later_min[1:], True), int(later_min[0])


def merge_steps(held: Series, new: Series, increasing: bool = False) -> Series:
    """Appends `new` records (Series, in file order) to `held` (strictly increasing steps);
    `increasing` says that new's steps are strictly increasing too (a file's columns), so that
    they need no check.

    `held` is never changed. A plain append (every new step above the held ones) writes the new
    records after the held ones in the room their arrays were given (`appended`), so that a run
    growing by a few steps costs those steps, not a copy of its columns."""
    if not len(new.step):
        return held
    if increasing:
        keep, smallest, whole = slice(None), int(new.step[0]), True
    else:
        keep, smallest = survivors(new.step)
        whole = bool(keep.all())
    if not len(held.step) and whole:
        return new
    cut = int(np.searchsorted(held.step, smallest, side="left"))
    if cut == len(held.step) and whole:
        return Series(*(appended(h, n) for h, n in zip(held, new)))
    return Series(*(np.concatenate((h[:cut], n[keep])) for h, n in zip(held, new)))


_GROWTH = 1.25  # room given to an array appended to: a quarter more than it holds
_FILLED = {}  # id of an array given room -> how much of it is written (its frontier)


def appended(held: np.ndarray, new: np.ndarray) -> np.ndarray:
    """held followed by new. If `held` is the written part of an array given room here (it ends
    at that array's frontier), `new` is written after it and a longer view is returned: views
    already taken never see a change. Else a new array is made, with room for later appends.
    Any other view of the same array ends before the moved frontier, so it appends by copying."""
    base, size = held.base, len(held) + len(new)
    frontier = _FILLED.get(id(base)) if base is not None else None
    if frontier == len(held) and held.ctypes.data == base.ctypes.data and size <= len(base):
        base[len(held) : size] = new
        _FILLED[id(base)] = size
        return base[:size]
    base = np.empty(max(size, int(size * _GROWTH)), dtype=held.dtype)
    base[: len(held)] = held
    base[len(held) : size] = new
    _FILLED[id(base)] = size
    weakref.finalize(base, _FILLED.pop, id(base), None)
    return base[:size]


def extends(new: np.ndarray, held: np.ndarray) -> bool:
    """Whether `new` is `held` with more points after it, written in the room of the array both
    view from its start (`appended`): held's points are new's first ones."""
    return (
        new.base is not None and new.base is held.base and new.ctypes.data == held.ctypes.data and len(new) >= len(held)
    )


def footprint(arrays: Iterable[np.ndarray]) -> int:
    """The bytes the arrays hold, each buffer once: an array given room for appends counts its
    whole room, which all its views share."""
    held = {}
    for array in arrays:
        owner = array.base if id(array.base) in _FILLED else array
        held[id(owner)] = owner.nbytes
    return sum(held.values())


class StepCounts:
    """Per tag, the steps the rule keeps, as arithmetic runs: `add` records in file order, then
    `counts()`. Equal to len(merge_steps(...).step) over the same records (tested)."""

    def __init__(self) -> None:
        self._runs = {}  # tag -> (first, stride, count) int64 arrays, in increasing step order

    def add(self, tag: str, step: np.ndarray) -> None:
        if not len(step):
            return
        keep, smallest = survivors(step)
        first, stride, count = self._runs.get(tag, (np.zeros(0, np.int64),) * 3)
        # Held steps below `smallest`: every step of a run up to it, none of a run after it.
        below = np.where(first < smallest, -(-(smallest - first) // np.maximum(stride, 1)), 0)
        count = np.minimum(count, below)
        held = count > 0
        added = _arithmetic_runs(np.asarray(step, np.int64)[keep])
        self._runs[tag] = tuple(np.concatenate((old[held], new)) for old, new in zip((first, stride, count), added))

    def counts(self) -> dict[str, int]:
        """{tag: points} of the tags with points."""
        totals = {tag: int(runs[2].sum()) for tag, runs in sorted(self._runs.items())}
        return {tag: n for tag, n in totals.items() if n}


def _arithmetic_runs(steps):
    """(first, stride, count) of the maximal runs of equal differences of increasing `steps`:
    run k holds steps[a_k : a_k+1], where a_k are the indices at which the difference changes."""
    if len(steps) < 2:
        return steps[:1], np.ones(len(steps), np.int64), np.ones(len(steps), np.int64)
    gaps = np.diff(steps)
    at = np.flatnonzero(np.append(True, gaps[1:] != gaps[:-1]))
    return steps[at], gaps[at], np.diff(np.append(at, len(steps)))
