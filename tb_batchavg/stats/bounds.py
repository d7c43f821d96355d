"""Window bounds: which points each output point's window (or block) covers, as index bounds
[lo, hi) into the series (the layout of ``windows``' module docstring: align, edges, unit, and
steps taken as uint64 offsets that saturate at the int64 limits).

``Bounds`` is what the kernels read. ``PointBounds`` are the windows of consecutive points over
points (window j is [first + j - before, first + j + after + 1), cut at the ends), made per chunk
on demand; ``IndexBounds`` are given as arrays (windows over steps, blocks, gathered windows)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class Bounds:
    """Index bounds [lo, hi) (lo and hi non-decreasing) of the windows of ``count`` kept points:
    ``index`` the kept points, ``lo``/``hi`` the bounds whole, ``chunk(first, stop)`` those of the
    windows first..stop-1."""

    count = 0

    def chunk(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of the windows first..stop-1."""
        raise NotImplementedError

    def ends(self, first: int, stop: int) -> tuple[int, int]:
        """(lo of window ``first``, hi of window ``stop - 1``)."""
        raise NotImplementedError

    def full_run(self, first: int, stop: int) -> int | None:
        """lo of window ``first`` if the windows first..stop-1 are
        [lo + j, lo + j + before + after + 1) (over points, none cut by an
        edge), else None."""
        return None

    def at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of the windows at ``positions`` (indices of kept points)."""
        raise NotImplementedError

    def holding(self, positions: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(start, stop): the windows holding data position p (sorted ``positions``) are the kept
        points start..stop-1 (none where start >= stop)."""
        raise NotImplementedError

    def longest(self) -> int:
        """The longest window's length (at least 1)."""
        raise NotImplementedError

    def steps(self, steps: np.ndarray) -> np.ndarray:
        """steps[index] (a view where the index is a range)."""
        return steps[self.index]


class PointBounds(Bounds):
    """The windows of the kept points first, first + 1, ..., ``count`` of them, over ``n``
    points: window j is [first + j - before, first + j + after + 1) cut to [0, n)."""

    def __init__(self, first: int, count: int, n: int, before: int, after: int) -> None:
        self.first, self.count = first, count
        self.n, self.before, self.after = n, before, after
        self._index = None

    @property
    def index(self) -> np.ndarray:
        if self._index is None:
            self._index = np.arange(self.first, self.first + self.count, dtype=np.int64)
        return self._index

    def chunk(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        index = np.arange(self.first + first, self.first + stop, dtype=np.int64)
        lo = index - self.before
        hi = index + (self.after + 1)
        if len(index) and lo[0] < 0:  # partial edges, at the start
            np.maximum(lo, 0, out=lo)
        if len(index) and hi[-1] > self.n:  # and at the end
            np.minimum(hi, self.n, out=hi)
        return lo, hi

    @property
    def lo(self) -> np.ndarray:
        return self.chunk(0, self.count)[0]

    @property
    def hi(self) -> np.ndarray:
        return self.chunk(0, self.count)[1]

    def ends(self, first: int, stop: int) -> tuple[int, int]:
        return (max(0, self.first + first - self.before), min(self.n, self.first + stop + self.after))

    def full_run(self, first: int, stop: int) -> int | None:
        lo = self.first + first - self.before
        return lo if lo >= 0 and self.first + stop + self.after <= self.n else None

    def at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = self.first + positions
        return np.maximum(index - self.before, 0), np.minimum(index + (self.after + 1), self.n)

    def holding(self, positions: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        positions = np.asarray(positions, dtype=np.int64)
        # index - before <= p <= index + after
        return (
            np.clip(positions - self.after - self.first, 0, self.count),
            np.clip(positions + self.before + 1 - self.first, 0, self.count),
        )

    def longest(self) -> int:
        return max(1, min(self.before + self.after + 1, self.n))

    def steps(self, steps: np.ndarray) -> np.ndarray:
        return steps[self.first : self.first + self.count]


class IndexBounds(Bounds):
    """Windows given as arrays: kept points ``index``, bounds ``lo`` and ``hi``."""

    def __init__(self, index: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        self.index, self.lo, self.hi = index, lo, hi
        self.count = len(index)

    def chunk(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return self.lo[first:stop], self.hi[first:stop]

    def ends(self, first: int, stop: int) -> tuple[int, int]:
        return int(self.lo[first]), int(self.hi[stop - 1])

    def at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lo[positions], self.hi[positions]

    def holding(self, positions: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        positions = np.asarray(positions, dtype=np.int64)
        # hi and lo are non-decreasing: hi > p from start on, lo <= p before stop
        return (np.searchsorted(self.hi, positions, side="right"), np.searchsorted(self.lo, positions, side="right"))

    def longest(self) -> int:
        return max(1, int((self.hi - self.lo).max(initial=1)))


def of_method(steps: np.ndarray, method: str, window: int, align: str, edges: str, unit: str) -> Bounds:
    """The ``Bounds`` of the output points of ``method`` (blocks or windows)."""
    if method != "block":
        return _window_bounds(steps, window, align, edges, unit)
    index, lo, hi = _block_bounds(steps, window, edges, unit)
    return IndexBounds(index, lo, hi)


def _window_bounds(steps, window, align, edges, unit):
    """The ``Bounds`` of each kept point's window over positions
    [p - before, p + after] (p = i, or steps[i] with unit="steps")."""
    n = len(steps)
    before = window - 1 if align == "trailing" else window // 2  # pandas' center=True
    after = window - 1 - before
    if unit == "points":
        first, stop = (before, max(before, n - after)) if edges == "valid" else (0, n)
        return PointBounds(first, stop - first, n, before, after)
    position = _unsigned(steps)
    if edges == "valid" and n:
        fits = (position - position[0] >= np.uint64(before)) if before <= _UINT64_MAX else np.zeros(n, dtype=bool)
        if after:
            fits &= (position[-1] - position >= np.uint64(after)) if after <= _UINT64_MAX else False
        index = np.flatnonzero(fits)
    else:
        index = np.arange(n, dtype=np.int64)
    kept = position[index]
    lo = np.searchsorted(position, _saturating(kept, -before), side="left")
    hi = np.searchsorted(position, _saturating(kept, after), side="right")
    return IndexBounds(index, lo.astype(np.int64), hi.astype(np.int64))


_UINT64_MAX = (1 << 64) - 1


def _unsigned(steps):
    """int64 ``steps`` as uint64 steps + 2**63, in the same order: differences of steps
    (up to 2**64 - 1) and window ends past the int64 limits are exact there."""
    return steps.view(np.uint64) ^ np.uint64(1 << 63)


def _saturating(position, offset):
    """Sorted uint64 ``position`` + ``offset`` (a Python int of any size), clamped to [0, 2**64 - 1]:
    a window end past an int64 limit, where no step lies, is the limit itself."""
    if len(position) == 0 or offset == 0:
        return position
    if offset < 0:
        if -offset > _UINT64_MAX:
            return np.zeros_like(position)
        amount = np.uint64(-offset)
        if position[0] >= amount:  # sorted: every position is
            return position - amount
        return np.where(position >= amount, position - amount, np.uint64(0))
    if offset > _UINT64_MAX:
        return np.full_like(position, _UINT64_MAX)
    room = np.uint64(_UINT64_MAX - offset)
    if position[-1] <= room:
        return position + np.uint64(offset)
    return np.where(position <= room, position + np.uint64(offset), np.uint64(_UINT64_MAX))


def _block_bounds(steps, window, edges, unit):
    """Index bounds [lo, hi) of the blocks (p - p_first) // window; returns
    (index of each block's last point, lo, hi)."""
    n = len(steps)
    if n == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    if unit == "points":
        lo = np.arange(0, n, window, dtype=np.int64)
        hi = np.minimum(lo + window, n)
        span = n
    else:  # the differences of steps are exact as uint64 (up to 2**64 - 1)
        position = _unsigned(steps)
        offset = position - position[0]
        block = offset // np.uint64(window) if window <= _UINT64_MAX else np.zeros(n, dtype=np.uint64)
        lo = np.flatnonzero(np.concatenate(([True], block[1:] != block[:-1])))
        hi = np.append(lo[1:], n)
        span = int(steps[-1]) - int(steps[0]) + 1
    if edges == "valid" and span % window:
        lo, hi = lo[:-1], hi[:-1]
    return hi - 1, lo, hi
